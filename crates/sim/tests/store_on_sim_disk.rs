//! The real state machine (`mvcc::Store` over redb) on a simulated disk:
//! immediate applies survive every crash, deferred ones may be lost (the log
//! replays them), and the store reopens cleanly after a crash at any point,
//! torn writes included. About two seconds (debug build).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use mvcc::{Command, Durability, PutRequest, RangeRequest, Store};
use sim::disk::{CrashOptions, SimDisk};
use sim::rng::SimRng;
use wal::fs::FileSystem;

const DB_DIR: &str = "/member/snap";
const DB_PATH: &str = "/member/snap/db";
const SEEDS: u64 = 40;
const ROUNDS_PER_SEED: usize = 3;
const OPERATIONS_PER_ROUND_MAX: u64 = 30;
const KEYS: u64 = 8;

/// A disk holding an empty, durable database file.
fn disk_with_database() -> SimDisk {
    let disk = SimDisk::new();
    let fs = disk.mount();
    fs.create_dir_all(Path::new(DB_DIR)).unwrap();
    drop(fs.storage_backend(Path::new(DB_PATH)).unwrap());
    for dir in ["/", "/member", DB_DIR] {
        fs.sync_dir(Path::new(dir)).unwrap();
    }
    disk.complete_syncs();
    disk
}

fn open(disk: &SimDisk) -> Result<Store, mvcc::StoreError> {
    Store::with_backend(disk.mount().storage_backend(Path::new(DB_PATH)).unwrap())
}

fn put(index: u64, rng: &mut SimRng) -> Command {
    let key = format!("key-{}", rng.between(0, KEYS - 1));
    Command::Put(PutRequest::new(key, format!("value at {index}")))
}

/// Keys and values after applying `commands[..applied]`.
fn expected_state(commands: &[Command], applied: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut state = BTreeMap::new();
    for command in &commands[..applied as usize] {
        if let Command::Put(put) = command {
            state.insert(put.key.clone(), put.value.clone());
        }
    }
    state
}

fn state_of(store: &Store) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store
        .range(&RangeRequest::all())
        .unwrap()
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect()
}

/// Applies commands from `commands.len() + 1` on: immediate ones (each
/// sync completes before the next operation), deferred batches, reads (which
/// commit deferred applies without a sync) and flushes. Ends with writes
/// nothing made durable yet: an immediate apply whose sync is still in
/// flight, or deferred applies a read committed. Returns the index known
/// durable.
fn run_round(rng: &mut SimRng, disk: &SimDisk, store: &Store, commands: &mut Vec<Command>) -> u64 {
    for _ in 0..rng.between(0, OPERATIONS_PER_ROUND_MAX) {
        match rng.between(0, 9) {
            0..=3 => apply_immediately(rng, store, commands),
            4..=6 => apply_deferred(rng, store, commands),
            7 | 8 => {
                store.range(&RangeRequest::all()).unwrap();
            }
            _ => store.flush().unwrap(),
        }
        disk.complete_syncs();
    }
    let durable = store.durable_applied_index();
    if rng.chance(0.5) {
        apply_immediately(rng, store, commands);
        assert_eq!(disk.pending_syncs(), 1, "the apply's sync is in flight");
    } else {
        apply_deferred(rng, store, commands);
        store.range(&RangeRequest::all()).unwrap();
    }
    durable
}

fn apply_immediately(rng: &mut SimRng, store: &Store, commands: &mut Vec<Command>) {
    let index = commands.len() as u64 + 1;
    commands.push(put(index, rng));
    store.apply(index, &commands[index as usize - 1]).unwrap();
}

fn apply_deferred(rng: &mut SimRng, store: &Store, commands: &mut Vec<Command>) {
    let first = commands.len() as u64 + 1;
    let count = rng.between(1, 5);
    for index in first..first + count {
        commands.push(put(index, rng));
    }
    let batch = (first..first + count).map(|index| (index, Some(&commands[index as usize - 1])));
    store.apply_batch(batch, Durability::Deferred).unwrap();
}

#[test]
fn immediate_applies_survive_crashes_and_the_store_always_reopens() {
    let crash_options = CrashOptions {
        torn_write_probability: 0.5,
        unsynced_dir_change_kept_probability: 0.5,
    };
    let mut torn_database_writes = 0;
    let mut outcomes = BTreeSet::new();
    for seed in 0..SEEDS {
        let mut rng = SimRng::new(seed);
        let disk = disk_with_database();
        let mut store = open(&disk).unwrap();
        disk.complete_syncs();
        let mut commands = Vec::new();
        for round in 0..ROUNDS_PER_SEED {
            let durable = run_round(&mut rng, &disk, &store, &mut commands);
            let applied_before = store.applied_index();
            let report = disk.crash(&mut rng, &crash_options);
            drop(store);
            torn_database_writes += report.torn_writes.len();
            store = open(&disk).unwrap_or_else(|error| {
                panic!("seed {seed} round {round}: the store does not reopen: {error}\n{report:?}")
            });
            let applied = store.applied_index();
            assert!(
                (durable..=applied_before).contains(&applied),
                "seed {seed} round {round}: applied {applied} after the crash, \
                 durable {durable}, applied before {applied_before}\n{report:?}"
            );
            assert_eq!(
                state_of(&store),
                expected_state(&commands, applied),
                "seed {seed} round {round}: the store does not hold exactly entries 1..={applied}"
            );
            assert_eq!(
                store.current_revision(),
                applied as i64 + 1,
                "one revision per put"
            );
            outcomes.insert(applied == applied_before);
            // The log replays what the store lost; here, new commands take those indices.
            commands.truncate(applied as usize);
            if rng.chance(0.5) {
                disk.complete_syncs();
            }
        }
    }
    assert!(
        torn_database_writes > SEEDS as usize / 4,
        "crashes tore database writes only {torn_database_writes} times"
    );
    assert_eq!(
        outcomes,
        BTreeSet::from([false, true]),
        "some crashes lose applies that were not durable, some lose nothing"
    );
}

#[test]
fn a_deferred_apply_is_lost_without_a_sync_and_kept_after_a_flush() {
    let disk = disk_with_database();
    let store = open(&disk).unwrap();
    disk.complete_syncs();
    let mut rng = SimRng::new(7);
    let first = Command::Put(PutRequest::new("a", "1"));
    let second = Command::Put(PutRequest::new("b", "2"));
    store.apply(1, &first).unwrap();
    disk.complete_syncs();
    store
        .apply_batch([(2, Some(&second))], Durability::Deferred)
        .unwrap();
    assert_eq!(state_of(&store).len(), 2, "a read sees the deferred apply");
    assert_eq!(
        disk.pending_syncs(),
        0,
        "committing it for the read did not sync"
    );
    disk.crash(&mut rng, &CrashOptions::DURABLE_ONLY);
    drop(store);
    let store = open(&disk).unwrap();
    assert_eq!(store.applied_index(), 1);
    store
        .apply_batch([(2, Some(&second))], Durability::Deferred)
        .unwrap();
    store.flush().unwrap();
    disk.complete_syncs();
    disk.crash(&mut rng, &CrashOptions::DURABLE_ONLY);
    drop(store);
    assert_eq!(open(&disk).unwrap().applied_index(), 2);
}
