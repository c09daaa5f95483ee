//! Crafted damage, one case each: recovery must cut a torn tail and keep
//! everything acknowledged, and must refuse to start, naming the file and
//! offset, on damage to acknowledged data. (Disk full, while appending and
//! while preallocating a segment, is tested in `src/wal.rs`: it needs the
//! test-only disk budget.)

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use raft::{ConfState, Entry, EntryKind, HardState, LogIndex, Snapshot, SnapshotMeta, Storage};
use wal::{Wal, WalError, WalOptions, MIN_SEGMENT_BYTES, REJOIN_ADVICE};

const CLUSTER_ID: u64 = 0xda3a;
const ENTRIES_PER_BATCH: u64 = 10;

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: MIN_SEGMENT_BYTES,
        ..WalOptions::new(CLUSTER_ID)
    }
}

fn batch(first: LogIndex) -> Vec<Entry> {
    (first..first + ENTRIES_PER_BATCH)
        .map(|index| Entry {
            term: 1,
            index,
            kind: EntryKind::Normal,
            data: vec![index as u8; 100],
        })
        .collect()
}

/// A log of `batches` synced batches; returns where each batch's records end
/// in the last segment they reached (segment path, end offset).
fn write_log(dir: &Path, batches: u64) -> Vec<(PathBuf, u64)> {
    let mut wal = Wal::create(dir, &options(), vec![1, 2, 3]).unwrap();
    let mut ends = Vec::new();
    for number in 0..batches {
        let first = number * ENTRIES_PER_BATCH + 1;
        let hard_state = HardState {
            term: 1,
            vote: 1,
            commit: first - 1,
        };
        wal.persist(Some(hard_state), &batch(first)).unwrap();
        let last_segment = segments(dir).pop().unwrap();
        let end = data_end(&last_segment);
        ends.push((last_segment, end));
    }
    ends
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "wal"))
        .collect();
    paths.sort();
    paths
}

fn temp_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect()
}

/// One past the last non-zero byte.
fn data_end(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    bytes
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(0, |position| position as u64 + 1)
}

fn overwrite(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

fn flip_bit(path: &Path, offset: u64) {
    let mut byte = [0u8];
    fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut byte, offset)
        .unwrap();
    overwrite(path, offset, &[byte[0] ^ 0x08]);
}

fn open_error(dir: &Path) -> WalError {
    Wal::open(dir, &options()).expect_err("recovery must refuse this log")
}

/// The error names the file and tells the operator what to do.
fn assert_actionable(error: &WalError, path: &Path) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "names {}: {message}",
        path.display()
    );
    assert!(
        message.contains(REJOIN_ADVICE),
        "says what to do: {message}"
    );
}

#[test]
fn torn_tail_is_cut_and_everything_acknowledged_survives() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 5);
    let (path, last_end) = ends[4].clone();
    let (previous_path, previous_end) = ends[3].clone();
    assert_eq!(path, previous_path, "the last two batches share a segment");
    // The last write reached the disk only halfway: its second half is still zeros.
    let middle = previous_end + (last_end - previous_end) / 2;
    overwrite(&path, middle, &vec![0u8; (last_end - middle) as usize]);
    let mut wal = Wal::open(dir.path(), &options()).unwrap();
    assert_eq!(
        wal.last_index(),
        4 * ENTRIES_PER_BATCH,
        "only the torn batch is gone"
    );
    assert_eq!(wal.entries(1, 41, u64::MAX).unwrap().len(), 40);
    // The log goes on after the cut, and the cut stays clean across reopens.
    wal.persist(None, &batch(41)).unwrap();
    drop(wal);
    let wal = Wal::open(dir.path(), &options()).unwrap();
    assert_eq!(wal.last_index(), 5 * ENTRIES_PER_BATCH);
}

#[test]
fn garbage_after_the_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 3);
    let (path, end) = ends[2].clone();
    // A write that died after its first bytes: a header-like fragment.
    overwrite(
        &path,
        end.next_multiple_of(8),
        &[0x13, 0x37, 0, 0, 200, 1, 0, 0],
    );
    let wal = Wal::open(dir.path(), &options()).unwrap();
    assert_eq!(wal.last_index(), 3 * ENTRIES_PER_BATCH);
}

#[test]
fn bit_flip_in_the_middle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 5);
    let (path, _) = ends[4].clone();
    let (first_batch_path, first_batch_end) = ends[0].clone();
    assert_eq!(path, first_batch_path);
    flip_bit(&path, first_batch_end - 40);
    let error = open_error(dir.path());
    assert!(matches!(error, WalError::Corrupt { .. }), "{error}");
    assert_actionable(&error, &path);
}

#[test]
fn bit_flip_in_a_sealed_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 40);
    let all = segments(dir.path());
    assert!(
        all.len() >= 3,
        "expected several segments, got {}",
        all.len()
    );
    let sealed = &all[1];
    flip_bit(sealed, data_end(sealed) / 2);
    let error = open_error(dir.path());
    assert!(matches!(error, WalError::Corrupt { .. }), "{error}");
    assert_actionable(&error, sealed);
}

#[test]
fn zeroed_sector_mid_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 5);
    let (path, _) = ends[4].clone();
    let sector_offset = (ends[1].1 / 512) * 512;
    overwrite(&path, sector_offset, &[0u8; 512]);
    let error = open_error(dir.path());
    match &error {
        WalError::Corrupt { offset, .. } => assert!(
            *offset >= sector_offset.saturating_sub(2048) && *offset < sector_offset + 512,
            "offset {offset}"
        ),
        other => panic!("expected corruption, got {other}"),
    }
    assert_actionable(&error, &path);
}

#[test]
fn truncated_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 40);
    let all = segments(dir.path());
    let victim = &all[1];
    let file = OpenOptions::new().write(true).open(victim).unwrap();
    file.set_len(data_end(victim) / 2).unwrap();
    let error = open_error(dir.path());
    assert!(matches!(error, WalError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("truncated"), "{error}");
    assert_actionable(&error, victim);
}

#[test]
fn zeroed_tail_of_a_sealed_segment_is_refused() {
    // Looks like a clean end on its own; the next segment's header says where it really ended.
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 40);
    let all = segments(dir.path());
    let victim = &all[1];
    // Zero whole records: from the end of a batch that is not the segment's
    // last, to the end of the segment's data.
    let batch_ends: Vec<u64> = ends
        .iter()
        .filter(|(path, _)| path == victim)
        .map(|(_, end)| *end)
        .collect();
    assert!(
        batch_ends.len() >= 2,
        "several batches end in {}",
        victim.display()
    );
    let cut = batch_ends[batch_ends.len() - 2].next_multiple_of(8);
    let end = data_end(victim);
    overwrite(victim, cut, &vec![0u8; (end - cut) as usize]);
    let error = open_error(dir.path());
    assert!(error.to_string().contains("records were lost"), "{error}");
    assert_actionable(&error, victim);
}

#[test]
fn missing_middle_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 40);
    let all = segments(dir.path());
    fs::remove_file(&all[1]).unwrap();
    let error = open_error(dir.path());
    assert!(
        matches!(&error, WalError::MissingSegment { missing, .. } if *missing == all[1]),
        "{error}"
    );
    assert_actionable(&error, &all[1]);
}

#[test]
fn missing_first_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 40);
    let all = segments(dir.path());
    fs::remove_file(&all[0]).unwrap();
    let error = open_error(dir.path());
    assert!(
        matches!(
            error,
            WalError::MissingEntries {
                first_missing: 1,
                ..
            }
        ),
        "{error}"
    );
    assert_actionable(&error, &all[1]);
}

#[test]
fn segment_from_another_cluster_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3);
    let other_options = WalOptions {
        cluster_id: CLUSTER_ID + 1,
        ..options()
    };
    drop(Wal::create(other.path(), &other_options, vec![1]).unwrap());
    let victim = segments(dir.path()).remove(0);
    fs::copy(segments(other.path()).remove(0), &victim).unwrap();
    let error = open_error(dir.path());
    assert!(
        matches!(error, WalError::ClusterMismatch { expected: CLUSTER_ID, found, .. } if found == CLUSTER_ID + 1),
        "{error}"
    );
    assert_actionable(&error, &victim);
}

fn compacted_log(dir: &Path) -> PathBuf {
    write_log(dir, 3);
    let mut wal = Wal::open(dir, &options()).unwrap();
    let snapshot = Snapshot {
        meta: SnapshotMeta {
            index: 15,
            term: 1,
            conf_state: ConfState {
                voters: vec![1, 2, 3],
                learners: Vec::new(),
            },
        },
        data: vec![7; 1000],
    };
    wal.compact(snapshot).unwrap();
    drop(wal);
    let snapshot_files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains(&format!("{:016x}-", 15)))
        .collect();
    assert_eq!(snapshot_files.len(), 1);
    snapshot_files[0].clone()
}

#[test]
fn corrupted_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot_path = compacted_log(dir.path());
    flip_bit(&snapshot_path, 500);
    let error = open_error(dir.path());
    assert!(matches!(error, WalError::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("checksum"), "{error}");
    assert_actionable(&error, &snapshot_path);
}

#[test]
fn missing_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot_path = compacted_log(dir.path());
    fs::remove_file(&snapshot_path).unwrap();
    let error = open_error(dir.path());
    assert!(
        matches!(error, WalError::MissingSnapshot { index: 15, .. }),
        "{error}"
    );
    assert_actionable(&error, &snapshot_path);
}

#[test]
fn compacted_log_reopens_with_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    compacted_log(dir.path());
    let wal = Wal::open(dir.path(), &options()).unwrap();
    assert_eq!(wal.first_index().unwrap(), 16);
    assert_eq!(wal.snapshot().unwrap().data, vec![7; 1000]);
}

#[test]
fn files_left_by_an_interrupted_write_are_ignored() {
    // A crash while a segment or snapshot was being written leaves a temp file,
    // and a crash between writing a snapshot and recording it leaves a snapshot
    // the log does not refer to. Neither was acknowledged.
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 3);
    fs::write(dir.path().join("0000000000000001.wal.tmp"), vec![0u8; 4096]).unwrap();
    fs::write(
        dir.path()
            .join("0000000000000014-0000000000000001.snap.tmp"),
        b"partial",
    )
    .unwrap();
    let unreferenced = dir.path().join(format!("{:016x}-{:016x}.snap", 20, 1));
    let other = tempfile::tempdir().unwrap();
    let mut donor = Wal::create(other.path(), &options(), vec![1, 2, 3]).unwrap();
    donor.persist(None, &batch(1)).unwrap();
    donor.persist(None, &batch(11)).unwrap();
    donor
        .compact(Snapshot {
            meta: SnapshotMeta {
                index: 20,
                term: 1,
                conf_state: ConfState {
                    voters: vec![1, 2, 3],
                    learners: Vec::new(),
                },
            },
            data: vec![1; 10],
        })
        .unwrap();
    drop(donor);
    fs::copy(
        other.path().join(unreferenced.file_name().unwrap()),
        &unreferenced,
    )
    .unwrap();
    let wal = Wal::open(dir.path(), &options()).unwrap();
    assert_eq!(
        wal.first_index().unwrap(),
        1,
        "the unreferenced snapshot is not used"
    );
    assert_eq!(wal.last_index(), 30);
    // The open log prepares its next segment (sequence 1) in the background
    // under the very temp name planted above, so the directory is checked
    // only once the log is closed and that preparation has been cleaned up.
    drop(wal);
    assert_eq!(temp_files(dir.path()), Vec::<String>::new());
}
