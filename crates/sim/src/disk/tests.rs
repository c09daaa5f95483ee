//! The disk model on its own: what survives a crash, by rule.

use std::io;
use std::path::Path;

use wal::fs::FileSystem;

use super::*;

const DIR: &str = "/member/wal";

/// A disk with `DIR` durable and the file `name` in it durable with `content`.
fn disk_with_file(name: &str, content: &[u8]) -> (SimDisk, SimFileSystem) {
    let disk = SimDisk::new();
    let fs = disk.mount();
    fs.create_dir_all(Path::new(DIR)).unwrap();
    fs.sync_dir(Path::new("/")).unwrap();
    fs.sync_dir(Path::new("/member")).unwrap();
    let file = fs.create(&Path::new(DIR).join(name)).unwrap();
    file.write_all_at(content, 0).unwrap();
    file.sync_data().unwrap();
    fs.sync_dir(Path::new(DIR)).unwrap();
    disk.complete_syncs();
    (disk, fs)
}

fn path(name: &str) -> std::path::PathBuf {
    Path::new(DIR).join(name)
}

fn crash_durable_only(disk: &SimDisk) -> CrashReport {
    disk.crash(&mut SimRng::new(0), &CrashOptions::DURABLE_ONLY)
}

#[test]
fn a_write_is_durable_only_once_its_sync_completes() {
    let (disk, fs) = disk_with_file("a", b"old");
    let file = fs.open(&path("a")).unwrap();
    file.write_all_at(b"new", 0).unwrap();
    assert_eq!(
        fs.read(&path("a")).unwrap(),
        b"new",
        "the process sees its write"
    );
    crash_durable_only(&disk);
    assert_eq!(disk.mount().read(&path("a")).unwrap(), b"old");

    let fs = disk.mount();
    let file = fs.open(&path("a")).unwrap();
    file.write_all_at(b"new", 0).unwrap();
    file.sync_data().unwrap();
    assert_eq!(disk.pending_syncs(), 1);
    assert_eq!(disk.complete_syncs(), 1);
    crash_durable_only(&disk);
    assert_eq!(disk.mount().read(&path("a")).unwrap(), b"new");
}

#[test]
fn syncs_asked_for_after_a_mark_stay_in_flight() {
    let (disk, fs) = disk_with_file("a", b"a0");
    let file = fs.open(&path("a")).unwrap();
    file.write_all_at(b"a1", 0).unwrap();
    file.sync_data().unwrap();
    let mark = disk.sync_mark();
    file.write_all_at(b"a2", 0).unwrap();
    file.sync_data().unwrap();
    assert_eq!(disk.complete_syncs_through(mark), 1);
    assert_eq!(disk.pending_syncs(), 1);
    let report = crash_durable_only(&disk);
    let expected: &[u8] = if report.syncs_completed == 0 {
        b"a1"
    } else {
        b"a2"
    };
    assert_eq!(disk.mount().read(&path("a")).unwrap(), expected);
}

#[test]
fn a_sync_in_flight_at_the_crash_may_or_may_not_complete() {
    let mut outcomes = std::collections::BTreeSet::new();
    for seed in 0..32 {
        let (disk, fs) = disk_with_file("a", b"old");
        let file = fs.open(&path("a")).unwrap();
        file.write_all_at(b"new", 0).unwrap();
        file.sync_data().unwrap();
        let report = disk.crash(&mut SimRng::new(seed), &CrashOptions::DURABLE_ONLY);
        let content = disk.mount().read(&path("a")).unwrap();
        let expected: &[u8] = if report.syncs_completed == 1 {
            b"new"
        } else {
            b"old"
        };
        assert_eq!(content, expected, "seed {seed}: {report:?}");
        outcomes.insert(report.syncs_completed);
    }
    assert_eq!(outcomes.len(), 2, "both outcomes happen across seeds");
}

#[test]
fn creates_renames_and_removes_need_a_directory_sync() {
    let (disk, fs) = disk_with_file("a", b"a");
    fs.rename(&path("a"), &path("b")).unwrap();
    let created = fs.create(&path("c")).unwrap();
    created.sync_all().unwrap();
    disk.complete_syncs();
    assert_eq!(fs.list_dir(Path::new(DIR)).unwrap(), ["b", "c"]);
    drop(created);
    crash_durable_only(&disk);
    let fs = disk.mount();
    assert_eq!(
        fs.list_dir(Path::new(DIR)).unwrap(),
        ["a"],
        "without a directory sync the rename and the create are undone"
    );

    fs.rename(&path("a"), &path("b")).unwrap();
    fs.sync_dir(Path::new(DIR)).unwrap();
    disk.complete_syncs();
    fs.remove_file(&path("b")).unwrap();
    crash_durable_only(&disk);
    let fs = disk.mount();
    assert_eq!(
        fs.list_dir(Path::new(DIR)).unwrap(),
        ["b"],
        "the synced rename stays, the unsynced removal is undone"
    );
    assert_eq!(fs.read(&path("b")).unwrap(), b"a");
}

#[test]
fn a_directory_whose_creation_was_not_synced_vanishes_with_its_files() {
    let disk = SimDisk::new();
    let fs = disk.mount();
    fs.create_dir_all(Path::new(DIR)).unwrap();
    let file = fs.create(&path("a")).unwrap();
    file.write_all_at(b"a", 0).unwrap();
    file.sync_all().unwrap();
    fs.sync_dir(Path::new(DIR)).unwrap();
    disk.complete_syncs();
    crash_durable_only(&disk);
    assert!(!disk.mount().is_dir(Path::new("/member")));
}

#[test]
fn a_crash_may_keep_a_prefix_of_unsynced_directory_changes() {
    let options = CrashOptions {
        unsynced_dir_change_kept_probability: 1.0,
        ..CrashOptions::DURABLE_ONLY
    };
    let mut listings = std::collections::BTreeSet::new();
    for seed in 0..32 {
        let (disk, fs) = disk_with_file("a", b"a");
        drop(fs.create(&path("b")).unwrap());
        fs.rename(&path("b"), &path("c")).unwrap();
        let report = disk.crash(&mut SimRng::new(seed), &options);
        let names = disk.mount().list_dir(Path::new(DIR)).unwrap();
        let expected: &[&str] = match report.dir_changes_kept {
            1 => &["a", "b"],
            2 => &["a", "c"],
            kept => panic!("seed {seed}: kept {kept} of 2 changes"),
        };
        assert_eq!(names, expected, "seed {seed}");
        listings.insert(names);
    }
    assert_eq!(listings.len(), 2, "both prefixes happen across seeds");
}

#[test]
fn a_torn_write_keeps_any_subset_of_the_sectors_of_the_first_unsynced_write_only() {
    let options = CrashOptions {
        torn_write_probability: 1.0,
        ..CrashOptions::DURABLE_ONLY
    };
    let sector = SECTOR_BYTES as usize;
    let mut subsets = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let (disk, fs) = disk_with_file("a", &vec![b'o'; 5 * sector]);
        let file = fs.open(&path("a")).unwrap();
        // Unaligned: a partial first piece, two whole sectors, a partial last piece.
        let written_from = sector + 100;
        file.write_all_at(&vec![b'n'; 3 * sector], written_from as u64)
            .unwrap();
        file.write_all_at(&vec![b'x'; 5 * sector], 0).unwrap();
        let report = disk.crash(&mut SimRng::new(seed), &options);
        let content = disk.mount().read(&path("a")).unwrap();
        let kept: Vec<u64> = match report.torn_writes.as_slice() {
            [] => Vec::new(),
            [torn] => {
                assert_eq!(
                    (torn.path.as_path(), torn.offset),
                    (path("a").as_path(), written_from as u64)
                );
                assert_eq!(torn.bytes_written, 3 * sector);
                torn.sectors_kept.clone()
            }
            more => panic!("seed {seed}: {more:?}"),
        };
        let mut expected = vec![b'o'; 5 * sector];
        for (index, byte) in expected.iter_mut().enumerate() {
            let in_write = (written_from..written_from + 3 * sector).contains(&index);
            let sector_start = if index / sector == written_from / sector {
                written_from
            } else {
                index / sector * sector
            };
            if in_write && kept.contains(&(sector_start as u64)) {
                *byte = b'n';
            }
        }
        assert_eq!(content, expected, "seed {seed}: kept {kept:?}");
        subsets.insert(kept);
    }
    assert!(
        subsets.len() > 8,
        "many subsets of the 4 pieces happen: {subsets:?}"
    );
    assert!(
        subsets
            .iter()
            .any(|kept| kept.len() == 1 && kept[0] > (2 * sector) as u64),
        "a later sector survives without the earlier ones: {subsets:?}"
    );
    assert_eq!(SimDisk::new().stats().torn_writes, 0);
}

#[test]
fn nothing_done_after_the_interrupted_sync_survives() {
    let options = CrashOptions {
        torn_write_probability: 1.0,
        unsynced_dir_change_kept_probability: 1.0,
    };
    for seed in 0..32 {
        let (disk, fs) = disk_with_file("a", b"old");
        let file = fs.open(&path("a")).unwrap();
        file.write_all_at(b"new", 0).unwrap();
        file.sync_data().unwrap();
        fs.open(&path("a"))
            .unwrap()
            .write_all_at(b"later", 3)
            .unwrap();
        drop(fs.create(&path("later")).unwrap());
        let report = disk.crash(&mut SimRng::new(seed), &options);
        let fs = disk.mount();
        if report.syncs_completed == 0 {
            assert!(report.torn_writes.iter().all(|torn| torn.offset == 0));
            assert_eq!(fs.list_dir(Path::new(DIR)).unwrap(), ["a"], "seed {seed}");
        } else {
            assert!(fs.read(&path("a")).unwrap().starts_with(b"new"));
        }
    }
}

#[test]
fn a_crashed_process_can_do_nothing_more_and_its_lock_is_released() {
    let (disk, fs) = disk_with_file("a", b"a");
    let file = fs.open(&path("a")).unwrap();
    let lock = fs.lock_file(&path("LOCK")).unwrap();
    let refused = fs.lock_file(&path("LOCK")).unwrap_err();
    assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
    crash_durable_only(&disk);
    assert!(file.write_all_at(b"b", 0).is_err());
    assert!(fs.read(&path("a")).is_err());
    drop(lock);
    drop(file);
    let fs = disk.mount();
    let _lock = fs.lock_file(&path("LOCK")).unwrap();
    assert_eq!(fs.read(&path("a")).unwrap(), b"a");
}

#[test]
fn an_injected_fault_fails_the_next_operation_of_its_kind_once() {
    let (disk, fs) = disk_with_file("a", b"a");
    let file = fs.open(&path("a")).unwrap();
    disk.fail_next(DiskFault::WriteNoSpace);
    file.sync_data().unwrap();
    let full = file.write_all_at(b"b", 0).unwrap_err();
    assert_eq!(full.kind(), io::ErrorKind::StorageFull);
    assert_eq!(
        fs.read(&path("a")).unwrap(),
        b"a",
        "a failed write changes nothing"
    );
    file.write_all_at(b"b", 0).unwrap();
    disk.fail_next(DiskFault::SyncIo);
    assert!(fs.sync_dir(Path::new(DIR)).is_err());
    disk.complete_syncs();
    crash_durable_only(&disk);
    assert_eq!(disk.mount().read(&path("a")).unwrap(), b"a");
    assert_eq!(disk.stats().faults_injected, 2);
}

#[test]
fn an_unlinked_file_stays_writable_while_open() {
    let (disk, fs) = disk_with_file("a", b"a");
    let file = fs.open(&path("a")).unwrap();
    fs.remove_file(&path("a")).unwrap();
    fs.sync_dir(Path::new(DIR)).unwrap();
    disk.complete_syncs();
    file.write_all_at(b"b", 0).unwrap();
    file.sync_data().unwrap();
    disk.complete_syncs();
    assert!(fs.read(&path("a")).is_err());
}

#[test]
fn the_same_seed_crashes_the_same_way() {
    let options = CrashOptions {
        torn_write_probability: 0.5,
        unsynced_dir_change_kept_probability: 0.5,
    };
    let run = |seed| {
        let (disk, fs) = disk_with_file("a", b"0123456789");
        let file = fs.open(&path("a")).unwrap();
        file.write_all_at(b"abcdefghij", 0).unwrap();
        file.sync_data().unwrap();
        fs.rename(&path("a"), &path("b")).unwrap();
        let report = disk.crash(&mut SimRng::new(seed), &options);
        let fs = disk.mount();
        let names = fs.list_dir(Path::new(DIR)).unwrap();
        let content = fs.read(&path(&names[0])).unwrap();
        (report, names, content)
    };
    for seed in 0..16 {
        assert_eq!(run(seed), run(seed));
    }
}
