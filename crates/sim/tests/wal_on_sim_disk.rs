//! The real log (`wal::Wal`) on a simulated disk: what a completed sync made
//! durable survives every crash, what was in flight is either there or cut
//! cleanly, a torn tail is recovered from without error, and the log's
//! directory syncs are what keep its files. About a second (debug build).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use raft::{Entry, EntryKind, HardState, LogIndex, Snapshot, SnapshotMeta, Storage, Term};
use sim::disk::{CrashOptions, CrashReport, DiskFault, SimDisk};
use sim::rng::SimRng;
use wal::fs::FileSystem;
use wal::{Wal, WalOptions, MIN_SEGMENT_BYTES};

const WAL_DIR: &str = "/member/wal";
const SEEDS: u64 = 150;
const ROUNDS_PER_SEED: usize = 6;
const BATCHES_PER_ROUND_MAX: u64 = 24;

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: MIN_SEGMENT_BYTES,
        snapshots_kept: 2,
        ..WalOptions::new(0x51d)
    }
}

fn create(disk: &SimDisk) -> Wal {
    Wal::create_on(
        Arc::new(disk.mount()),
        Path::new(WAL_DIR),
        &options(),
        vec![1, 2, 3],
    )
    .unwrap()
}

fn open(disk: &SimDisk) -> Result<Wal, wal::WalError> {
    Wal::open_on(Arc::new(disk.mount()), Path::new(WAL_DIR), &options())
}

fn entry(index: LogIndex, term: Term, data_bytes: usize) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: (0..data_bytes)
            .map(|offset| (index as usize * 31 + offset + term as usize) as u8)
            .collect(),
    }
}

fn snapshot(index: LogIndex, term: Term) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            conf_state: raft::ConfState {
                voters: vec![1, 2, 3],
                learners: Vec::new(),
            },
        },
        data: format!("state machine at {index}").into_bytes(),
    }
}

/// What the log holds: entries after the snapshot, and the hard state.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LogState {
    snapshot_index: LogIndex,
    entries: Vec<Entry>,
    hard_state: HardState,
}

impl LogState {
    fn of(wal: &Wal) -> Self {
        let first = wal.first_index().unwrap();
        LogState {
            snapshot_index: first - 1,
            entries: wal.entries(first, wal.last_index() + 1, u64::MAX).unwrap(),
            hard_state: wal.hard_state(),
        }
    }

    fn last_index(&self) -> LogIndex {
        self.snapshot_index + self.entries.len() as u64
    }

    fn term(&self) -> Term {
        self.entries
            .last()
            .map_or(self.hard_state.term, |entry| entry.term)
            .max(self.hard_state.term)
    }
}

/// One Ready's worth of writes: entries (perhaps overwriting an uncommitted
/// suffix, as a new leader's would) and a hard state.
fn next_batch(rng: &mut SimRng, log: &LogState) -> (HardState, Vec<Entry>) {
    let last = log.last_index();
    let commit = log.hard_state.commit;
    let overwrite = last > commit && rng.chance(0.2);
    let first = if overwrite {
        rng.between(commit + 1, last)
    } else {
        last + 1
    };
    let term = if overwrite {
        log.term() + 1
    } else {
        log.term().max(1)
    };
    let count = rng.between(1, 12);
    let entries: Vec<Entry> = (first..first + count)
        .map(|index| entry(index, term, rng.between(0, 1500) as usize))
        .collect();
    let new_last = first + count - 1;
    let hard_state = HardState {
        term,
        vote: 1,
        commit: rng.between(commit, new_last).max(log.snapshot_index),
    };
    (hard_state, entries)
}

/// The log after `batch` is applied to `log` whole.
fn after(log: &LogState, (hard_state, entries): &(HardState, Vec<Entry>)) -> LogState {
    let first = entries[0].index;
    let mut next = log.clone();
    next.entries
        .truncate((first - log.snapshot_index - 1) as usize);
    next.entries.extend(entries.iter().cloned());
    next.hard_state = *hard_state;
    next
}

/// A log the crash may have left: the acknowledged one, or the in-flight
/// batch (whose entries start at `first_written`) applied whole or in part.
/// In part only when the batch spanned a segment rollover: the records in the
/// segment it sealed were synced then, and those in the new segment, torn or
/// lost, are cut whole. Entries come first and the hard state last.
fn is_allowed_outcome(
    recovered: &LogState,
    acknowledged: &LogState,
    in_flight: &LogState,
    first_written: LogIndex,
) -> bool {
    recovered == acknowledged
        || recovered == in_flight
        || (recovered.hard_state == acknowledged.hard_state
            && recovered.snapshot_index == acknowledged.snapshot_index
            && recovered.last_index() >= first_written
            && in_flight.entries.starts_with(&recovered.entries))
}

/// Runs batches (each acknowledged once its syncs complete), compacting now
/// and then, and leaves the last batch's syncs in flight. Returns the
/// acknowledged log, the log the in-flight batch would make, and the first
/// index that batch writes.
fn run_round(rng: &mut SimRng, disk: &SimDisk, wal: &mut Wal) -> (LogState, LogState, LogIndex) {
    let batches = rng.between(1, BATCHES_PER_ROUND_MAX);
    let mut acknowledged = LogState::of(wal);
    for batch_number in 1..=batches {
        let batch = next_batch(rng, &acknowledged);
        let in_flight = after(&acknowledged, &batch);
        wal.persist(Some(batch.0), &batch.1).unwrap();
        assert!(disk.pending_syncs() >= 1, "a persist waits for a sync");
        if batch_number == batches {
            return (acknowledged, in_flight, batch.1[0].index);
        }
        disk.complete_syncs();
        acknowledged = in_flight;
        let commit = acknowledged.hard_state.commit;
        if commit > acknowledged.snapshot_index && rng.chance(0.15) {
            let at = rng.between(acknowledged.snapshot_index + 1, commit);
            let term = acknowledged.entries[(at - acknowledged.snapshot_index - 1) as usize].term;
            wal.compact(snapshot(at, term)).unwrap();
            disk.complete_syncs();
            acknowledged = LogState::of(wal);
        }
    }
    unreachable!("the last batch returns")
}

#[test]
fn completed_syncs_survive_crashes_and_a_batch_in_flight_is_kept_or_cut_cleanly() {
    let crash_options = CrashOptions {
        torn_write_probability: 0.5,
        unsynced_dir_change_kept_probability: 0.5,
    };
    let mut torn_segment_writes = 0;
    let mut outcomes = BTreeSet::new();
    for seed in 0..SEEDS {
        let mut rng = SimRng::new(seed);
        let disk = SimDisk::new();
        let mut wal = create(&disk);
        disk.complete_syncs();
        for round in 0..ROUNDS_PER_SEED {
            let (acknowledged, in_flight, first_written) = run_round(&mut rng, &disk, &mut wal);
            let report = disk.crash(&mut rng, &crash_options);
            drop(wal);
            torn_segment_writes += report
                .torn_writes
                .iter()
                .filter(|torn| torn.path.extension() == Some("wal".as_ref()))
                .count();
            wal = open(&disk).unwrap_or_else(|error| {
                panic!("seed {seed} round {round}: the log does not reopen: {error}\n{report:?}")
            });
            let recovered = LogState::of(&wal);
            assert!(
                is_allowed_outcome(&recovered, &acknowledged, &in_flight, first_written),
                "seed {seed} round {round}: recovered {} entries after {}, hard state {:?}; \
                 acknowledged last {} {:?}, in flight last {} {:?}\n{report:?}",
                recovered.entries.len(),
                recovered.snapshot_index,
                recovered.hard_state,
                acknowledged.last_index(),
                acknowledged.hard_state,
                in_flight.last_index(),
                in_flight.hard_state,
            );
            outcomes.insert(if recovered == acknowledged {
                "lost"
            } else if recovered == in_flight {
                "kept"
            } else {
                "kept in part"
            });
            disk.complete_syncs();
        }
    }
    assert!(
        torn_segment_writes > SEEDS as usize / 4,
        "crashes tore segment writes only {torn_segment_writes} times"
    );
    assert_eq!(
        outcomes,
        BTreeSet::from(["kept", "kept in part", "lost"]),
        "a batch in flight is lost, kept whole and kept in part across seeds"
    );
}

fn segment_names(disk: &SimDisk) -> Vec<String> {
    disk.mount()
        .list_dir(Path::new(WAL_DIR))
        .unwrap()
        .into_iter()
        .filter(|name| name.ends_with(".wal"))
        .collect()
}

/// Persists batches until the log starts its second segment, leaving that
/// batch's syncs in flight. Returns the acknowledged last index.
fn persist_until_rollover(disk: &SimDisk, wal: &mut Wal) -> LogIndex {
    for index in 1..=1000 {
        let segments_before = segment_names(disk).len();
        wal.persist(None, &[entry(index, 1, 400)]).unwrap();
        if segment_names(disk).len() > segments_before {
            return index - 1;
        }
        disk.complete_syncs();
    }
    panic!("no rollover in 1000 entries of 400 bytes");
}

#[test]
fn a_crash_before_the_directory_sync_undoes_a_new_segment() {
    let mut outcomes = BTreeSet::new();
    for seed in 0..40 {
        let disk = SimDisk::new();
        let mut wal = create(&disk);
        disk.complete_syncs();
        let acknowledged = persist_until_rollover(&disk, &mut wal);
        let report: CrashReport = disk.crash(&mut SimRng::new(seed), &CrashOptions::DURABLE_ONLY);
        drop(wal);
        let segments = segment_names(&disk);
        let wal = open(&disk).unwrap();
        let last = wal.last_index();
        assert!(
            last == acknowledged || last == acknowledged + 1,
            "seed {seed}: last index {last}, acknowledged {acknowledged}"
        );
        if segments.len() == 1 {
            assert_eq!(
                last, acknowledged,
                "seed {seed}: the new segment held the entry"
            );
        }
        outcomes.insert((segments.len(), report.syncs_completed == 0));
    }
    assert!(
        outcomes.contains(&(1, true)),
        "a crash before any sync completed leaves one segment: {outcomes:?}"
    );
    assert!(
        outcomes.iter().any(|(segments, _)| *segments == 2),
        "a completed directory sync keeps the new segment: {outcomes:?}"
    );
}

#[test]
fn a_log_created_on_a_fresh_disk_survives_a_crash() {
    let disk = SimDisk::new();
    let mut wal = create(&disk);
    let voted = HardState {
        term: 3,
        vote: 2,
        commit: 0,
    };
    wal.persist(Some(voted), &[]).unwrap();
    disk.complete_syncs();
    disk.crash(&mut SimRng::new(0), &CrashOptions::DURABLE_ONLY);
    drop(wal);
    let wal = open(&disk).expect("the acknowledged vote survives");
    assert_eq!(wal.hard_state(), voted);
}

#[test]
fn an_injected_disk_error_poisons_the_log_and_a_restart_keeps_what_was_acknowledged() {
    for fault in [DiskFault::WriteIo, DiskFault::SyncIo] {
        let disk = SimDisk::new();
        let mut wal = create(&disk);
        wal.persist(None, &[entry(1, 1, 100)]).unwrap();
        disk.complete_syncs();
        disk.fail_next(fault);
        wal.persist(None, &[entry(2, 1, 100)]).unwrap_err();
        let refused = wal.persist(None, &[entry(2, 1, 100)]).unwrap_err();
        assert!(
            matches!(refused, wal::WalError::Poisoned { .. }),
            "{fault:?}: {refused}"
        );
        disk.crash(&mut SimRng::new(0), &CrashOptions::DURABLE_ONLY);
        drop(wal);
        let wal = open(&disk).unwrap();
        assert_eq!(wal.last_index(), 1, "{fault:?}");
        assert_eq!(wal.entries(1, 2, u64::MAX).unwrap(), [entry(1, 1, 100)]);
    }
}

#[test]
fn a_write_the_disk_has_no_room_for_is_held_and_a_retry_makes_it_durable() {
    let disk = SimDisk::new();
    let mut wal = create(&disk);
    wal.persist(None, &[entry(1, 1, 100)]).unwrap();
    disk.complete_syncs();
    disk.fail_next(DiskFault::WriteNoSpace);
    let error = wal.persist(None, &[entry(2, 1, 100)]).unwrap_err();
    assert!(matches!(error, wal::WalError::DiskFull { .. }), "{error}");
    assert_eq!(wal.last_index(), 1, "the held batch is not in the log yet");
    assert_eq!(wal.sync().unwrap(), 2, "the retry writes the held batch");
    disk.complete_syncs();
    disk.crash(&mut SimRng::new(0), &CrashOptions::DURABLE_ONLY);
    drop(wal);
    let wal = open(&disk).unwrap();
    assert_eq!(
        wal.entries(1, 3, u64::MAX).unwrap(),
        [entry(1, 1, 100), entry(2, 1, 100)]
    );
}
