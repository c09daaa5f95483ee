//! Crafted damage, one case each: recovery must cut a torn last write (some of
//! its 512-byte sectors persisted, the others still zeros) and keep everything
//! before it, and must refuse to start, naming the file and offset, on any
//! damage to data that may have been acknowledged, the last batch included. (Disk full, while appending and
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

const SECTOR_BYTES: u64 = 512;
/// Offset of the first batch in a segment: the header has sector 0.
const FIRST_BATCH_OFFSET: u64 = SECTOR_BYTES;
/// Bytes of a sector that carry records (the rest is its checksum and write number).
const SECTOR_DATA_BYTES: u64 = 504;
/// In a segment's first batch: the snapshot marker record, then the hard state.
const HEAD_HARD_STATE_OFFSET: u64 = FIRST_BATCH_OFFSET + 40;

/// A log of `batches` synced batches; returns where each batch's sectors end
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

/// One past the last sector that is not all zeros.
fn data_end(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    bytes
        .iter()
        .rposition(|&byte| byte != 0)
        .map_or(0, |position| {
            (position as u64 + 1).next_multiple_of(SECTOR_BYTES)
        })
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

/// The sectors of the last of five batches: (segment, first sector offset, end offset).
fn last_batch_sectors(ends: &[(PathBuf, u64)]) -> (PathBuf, u64, u64) {
    let (path, last_end) = ends[4].clone();
    let (previous_path, previous_end) = ends[3].clone();
    assert_eq!(path, previous_path, "the last two batches share a segment");
    assert_eq!(previous_end % SECTOR_BYTES, 0);
    assert!(
        last_end - previous_end >= 3 * SECTOR_BYTES,
        "the last batch spans several sectors"
    );
    (path, previous_end, last_end)
}

/// Asserts the log lost exactly its last (torn) batch and goes on cleanly after the cut.
fn assert_only_last_batch_cut(dir: &Path) {
    let mut wal = Wal::open(dir, &options()).unwrap();
    assert_eq!(
        wal.last_index(),
        4 * ENTRIES_PER_BATCH,
        "only the torn batch is gone"
    );
    assert_eq!(wal.entries(1, 41, u64::MAX).unwrap().len(), 40);
    // The log goes on after the cut, and the cut stays clean across reopens.
    wal.persist(None, &batch(41)).unwrap();
    drop(wal);
    let wal = Wal::open(dir, &options()).unwrap();
    assert_eq!(wal.last_index(), 5 * ENTRIES_PER_BATCH);
}

#[test]
fn torn_last_write_with_only_its_first_sectors_persisted_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 5);
    let (path, start, end) = last_batch_sectors(&ends);
    // The last write reached the disk only in its first sector: the rest is still zeros.
    overwrite(
        &path,
        start + SECTOR_BYTES,
        &vec![0u8; (end - start - SECTOR_BYTES) as usize],
    );
    assert_only_last_batch_cut(dir.path());
}

#[test]
fn torn_last_write_missing_a_middle_sector_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 5);
    let (path, start, end) = last_batch_sectors(&ends);
    // Sectors reached the disk out of order: a later one is there, an earlier one is not.
    overwrite(&path, start + SECTOR_BYTES, &[0u8; SECTOR_BYTES as usize]);
    assert!(
        data_end(&path) == end,
        "the batch's last sector is still there"
    );
    assert_only_last_batch_cut(dir.path());
}

/// Flips one byte at `offset` and checks that opening names the file and the
/// offset of the sector it is in.
fn assert_flip_refused(dir: &Path, path: &Path, offset: u64) {
    flip_bit(path, offset);
    let error = open_error(dir);
    let sector_offset = offset / SECTOR_BYTES * SECTOR_BYTES;
    assert!(
        matches!(&error, WalError::Corrupt { offset: at, .. } if *at == sector_offset),
        "expected corruption at byte {sector_offset}: {error}"
    );
    assert!(
        error.to_string().contains(&format!("byte {sector_offset}")),
        "{error}"
    );
    assert_actionable(&error, path);
}

#[test]
fn flipped_byte_in_the_last_record_of_the_last_batch_is_refused() {
    // The last batch was synced, so it may have been acknowledged: a single
    // flipped byte in it must never be mistaken for a torn write and cut.
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 5);
    let (path, _, end) = last_batch_sectors(&ends);
    let last_sector =
        fs::read(&path).unwrap()[(end - SECTOR_BYTES) as usize..end as usize].to_vec();
    let last_record_byte = last_sector[..SECTOR_DATA_BYTES as usize]
        .iter()
        .rposition(|&byte| byte != 0)
        .expect("the last sector holds the end of the last record");
    assert_flip_refused(
        dir.path(),
        &path,
        end - SECTOR_BYTES + last_record_byte as u64,
    );
}

#[test]
fn bit_flip_in_the_middle_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 5);
    let (path, _) = ends[4].clone();
    let (first_batch_path, first_batch_end) = ends[0].clone();
    assert_eq!(path, first_batch_path);
    assert_flip_refused(dir.path(), &path, first_batch_end - 40);
}

#[test]
fn flipped_byte_in_a_hard_state_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 2);
    let (path, _) = ends[1].clone();
    // The vote field of the hard state every segment starts with.
    assert_flip_refused(dir.path(), &path, HEAD_HARD_STATE_OFFSET + 16 + 8);
}

#[test]
fn garbage_after_the_last_batch_is_refused() {
    // A torn write leaves whole sectors or zeros, never a fragment: bytes
    // that fail their sector's checksum are damage.
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 3);
    let (path, end) = ends[2].clone();
    overwrite(&path, end, &[0x13, 0x37, 0, 0, 200, 1, 0, 0]);
    let error = open_error(dir.path());
    assert!(
        matches!(error, WalError::Corrupt { offset, .. } if offset == end),
        "{error}"
    );
    assert_actionable(&error, &path);
}

#[test]
fn damaged_segment_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 2);
    let path = segments(dir.path()).remove(0);
    flip_bit(&path, 33);
    let error = open_error(dir.path());
    assert!(error.to_string().contains("header checksum"), "{error}");
    assert_actionable(&error, &path);
}

#[test]
fn segment_of_the_previous_format_is_refused_with_its_version() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 2);
    let path = segments(dir.path()).remove(0);
    let mut header = fs::read(&path).unwrap()[..64].to_vec();
    header[8..12].copy_from_slice(&1u32.to_le_bytes());
    let crc = crc32c::crc32c(&header[..56]);
    header[56..60].copy_from_slice(&crc.to_le_bytes());
    overwrite(&path, 0, &header);
    let error = open_error(dir.path());
    assert!(
        matches!(error, WalError::UnsupportedVersion { found: 1, .. }),
        "{error}"
    );
    assert!(
        error.to_string().contains(&path.display().to_string()),
        "{error}"
    );
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
    // The second batch's last sector reads as never written, yet the third
    // batch was written after that batch's sync returned: a synced write was lost.
    let dir = tempfile::tempdir().unwrap();
    let ends = write_log(dir.path(), 5);
    let (path, _) = ends[4].clone();
    overwrite(
        &path,
        ends[1].1 - SECTOR_BYTES,
        &[0u8; SECTOR_BYTES as usize],
    );
    let error = open_error(dir.path());
    assert!(
        matches!(&error, WalError::Corrupt { offset, .. } if *offset == ends[1].1),
        "expected corruption where the next write starts, byte {}: {error}",
        ends[1].1
    );
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
