//! How long the real log and store take on a simulated disk: one log append,
//! sync and sync completion; one immediate store apply and its completion;
//! one deferred apply; a crash and a reopen of each.
//!
//! `cargo run --release -p sim --example disk_speed -- [OPERATIONS]`

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mvcc::{Command, Durability, PutRequest, Store};
use raft::{Entry, EntryKind, HardState};
use sim::disk::{CrashOptions, SimDisk};
use sim::rng::SimRng;
use wal::fs::FileSystem;
use wal::{Wal, WalOptions, MIN_SEGMENT_BYTES};

const WAL_DIR: &str = "/member/wal";
const DB_PATH: &str = "/member/snap/db";
const OPERATIONS_DEFAULT: u64 = 10_000;
const REOPENS: u32 = 20;

fn main() {
    let operations = std::env::args().nth(1).map_or(OPERATIONS_DEFAULT, |arg| {
        arg.parse().expect("OPERATIONS is a number")
    });
    let options = WalOptions {
        segment_bytes: MIN_SEGMENT_BYTES,
        ..WalOptions::new(1)
    };
    let disk = SimDisk::new();
    let open_wal = |disk: &SimDisk| {
        Wal::open_or_create_on(
            Arc::new(disk.mount()),
            Path::new(WAL_DIR),
            &options,
            vec![1],
        )
        .unwrap()
    };
    let mut wal = open_wal(&disk);
    disk.complete_syncs();
    let started = Instant::now();
    for index in 1..=operations {
        let entry = Entry {
            term: 1,
            index,
            kind: EntryKind::Normal,
            data: vec![7; 256],
        };
        let hard_state = HardState {
            term: 1,
            vote: 1,
            commit: index - 1,
        };
        wal.persist(Some(hard_state), &[entry]).unwrap();
        disk.complete_syncs();
        if index % 1000 == 0 {
            wal.compact(raft::Snapshot {
                meta: raft::SnapshotMeta {
                    index: index - 500,
                    term: 1,
                    conf_state: raft::ConfState {
                        voters: vec![1],
                        learners: Vec::new(),
                    },
                },
                data: Vec::new(),
            })
            .unwrap();
            disk.complete_syncs();
        }
    }
    report(
        "wal: persist 1 entry of 256 bytes + complete",
        started.elapsed(),
        operations,
    );
    let started = Instant::now();
    let mut rng = SimRng::new(1);
    for _ in 0..REOPENS {
        disk.crash(&mut rng, &CrashOptions::DURABLE_ONLY);
        wal = open_wal(&disk);
        disk.complete_syncs();
    }
    report("wal: crash + reopen", started.elapsed(), u64::from(REOPENS));
    drop(wal);

    let disk = SimDisk::new();
    let fs = disk.mount();
    fs.create_dir_all(Path::new(DB_PATH).parent().unwrap())
        .unwrap();
    drop(fs.storage_backend(Path::new(DB_PATH)).unwrap());
    for dir in ["/", "/member", "/member/snap"] {
        fs.sync_dir(Path::new(dir)).unwrap();
    }
    let open_store = |disk: &SimDisk| {
        Store::with_backend(disk.mount().storage_backend(Path::new(DB_PATH)).unwrap()).unwrap()
    };
    let mut store = open_store(&disk);
    disk.complete_syncs();
    let put = |index: u64| {
        Command::Put(PutRequest::new(
            format!("key-{}", index % 1000),
            vec![7; 256],
        ))
    };
    let started = Instant::now();
    for index in 1..=operations {
        store.apply(index, &put(index)).unwrap();
        disk.complete_syncs();
    }
    report(
        "mvcc: immediate apply + complete",
        started.elapsed(),
        operations,
    );
    let started = Instant::now();
    for index in operations + 1..=2 * operations {
        store
            .apply_batch([(index, Some(&put(index)))], Durability::Deferred)
            .unwrap();
    }
    store.flush().unwrap();
    disk.complete_syncs();
    report("mvcc: deferred apply", started.elapsed(), operations);
    let started = Instant::now();
    for _ in 0..REOPENS {
        disk.crash(&mut rng, &CrashOptions::DURABLE_ONLY);
        drop(store);
        store = open_store(&disk);
        disk.complete_syncs();
    }
    report(
        "mvcc: crash + reopen",
        started.elapsed(),
        u64::from(REOPENS),
    );
    println!("disk: {:?}", disk.stats());
}

fn report(what: &str, elapsed: Duration, count: u64) {
    let per_operation_us = elapsed.as_secs_f64() * 1e6 / count as f64;
    println!("{what}: {per_operation_us:.1} µs each ({count} in {elapsed:.2?})");
}
