//! Crash test with real processes: a child process (this test binary run
//! again) appends to a log and prints every index it learns is durable; the
//! parent SIGKILLs it at a random moment, reopens the log and checks that every
//! index reported durable is there, intact and in order. Rounds alternate
//! between the group committer (several appending threads) and the node
//! driver's pattern (batches through `persist`, with compactions). Takes about
//! 15 s. Set `WAL_CRASH_SEED` to replay a run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::{
    ConfState, Entry, EntryKind, HardState, LogIndex, Snapshot, SnapshotMeta, Storage, Term,
};
use wal::{GroupCommitOptions, GroupCommitter, Wal, WalError, WalOptions};

const CHILD_DIR_VAR: &str = "WAL_CRASH_CHILD_DIR";
const CHILD_ROUND_VAR: &str = "WAL_CRASH_CHILD_ROUND";
const CHILD_TEST_NAME: &str = "crash_child_process";
/// Markers in the child's output (libtest may print on the same line before them).
const READY_MARKER: &str = "@ready";
const DURABLE_MARKER: &str = "@durable ";
const CHILD_READY_TIMEOUT: Duration = Duration::from_secs(20);
const TOTAL_TIME_MAX: Duration = Duration::from_secs(14);
const ROUNDS_MIN: u64 = 12;
const ROUNDS_MAX: u64 = 60;
const GROUP_COMMIT_WRITERS: usize = 4;
const SEGMENT_BYTES: u64 = 64 << 10;

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: SEGMENT_BYTES,
        ..WalOptions::new(0xc4a5)
    }
}

/// Small deterministic generator, so a failing run can be replayed from its seed.
struct XorShift(u64);

impl XorShift {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Payload of an entry appended through `persist`: names its index and term.
fn driver_payload(index: LogIndex, term: Term) -> Vec<u8> {
    let mut data = format!("driver|i{index}|t{term}|").into_bytes();
    data.resize(data.len() + (index % 97) as usize, b'.');
    data
}

/// Payload of an entry appended through the group committer: names its term,
/// writer and sequence number (the committer assigns the index).
fn group_payload(term: Term, writer: usize, sequence: u64) -> Vec<u8> {
    let mut data = format!("group|t{term}|w{writer}|n{sequence}|").into_bytes();
    data.resize(data.len() + (sequence % 61) as usize, b'.');
    data
}

/// The child process: appends until killed, printing `@durable N` after each
/// index it learns is durable. Run only by the crash test.
#[test]
#[ignore = "the crash test runs this in a child process"]
fn crash_child_process() {
    let dir = std::env::var(CHILD_DIR_VAR)
        .expect("run only by the crash test, which sets WAL_CRASH_CHILD_DIR");
    let round: u64 = std::env::var(CHILD_ROUND_VAR).unwrap().parse().unwrap();
    let wal = Wal::open_or_create(Path::new(&dir), &options(), vec![1, 2, 3]).unwrap();
    println!("{READY_MARKER}");
    let term = round + 1;
    if round.is_multiple_of(2) {
        append_through_group_committer(wal, term);
    } else {
        append_like_a_node_driver(wal, term, round);
    }
}

fn append_through_group_committer(wal: Wal, term: Term) {
    let committer = Arc::new(GroupCommitter::start(wal, GroupCommitOptions::new(term)).unwrap());
    let writers: Vec<_> = (0..GROUP_COMMIT_WRITERS)
        .map(|writer| {
            let committer = Arc::clone(&committer);
            std::thread::spawn(move || {
                for sequence in 0.. {
                    let index = committer
                        .append(group_payload(term, writer, sequence))
                        .unwrap();
                    println!("{DURABLE_MARKER}{index}");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
}

fn append_like_a_node_driver(mut wal: Wal, term: Term, seed: u64) {
    let mut random = XorShift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for batch_number in 1u64.. {
        let first = wal.last_index() + 1;
        let count = 1 + random.below(40);
        let entries: Vec<Entry> = (first..first + count)
            .map(|index| Entry {
                term,
                index,
                kind: EntryKind::Normal,
                data: driver_payload(index, term),
            })
            .collect();
        let hard_state = HardState {
            term,
            vote: 1,
            commit: first - 1,
        };
        let durable = wal.persist(Some(hard_state), &entries).unwrap();
        println!("{DURABLE_MARKER}{durable}");
        if batch_number.is_multiple_of(25) {
            let index = wal
                .hard_state()
                .commit
                .saturating_sub(10)
                .max(wal.snapshot_meta().index);
            let snapshot = Snapshot {
                meta: SnapshotMeta {
                    index,
                    term: wal.term(index).unwrap(),
                    conf_state: ConfState {
                        voters: vec![1, 2, 3],
                        learners: Vec::new(),
                    },
                },
                data: format!("image at {index}").into_bytes(),
            };
            wal.compact(snapshot).unwrap();
        }
    }
}

/// Runs one child until a random moment, then kills it. Returns the highest
/// index it reported durable.
fn run_child_round(dir: &Path, round: u64, random: &mut XorShift) -> Option<LogIndex> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            CHILD_TEST_NAME,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_VAR, dir)
        .env(CHILD_ROUND_VAR, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_sender, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_sender.send(line).is_err() {
                break;
            }
        }
    });
    let ready_deadline = Instant::now() + CHILD_READY_TIMEOUT;
    let ready = loop {
        match lines.recv_timeout(ready_deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(READY_MARKER) => break true,
            Ok(_) => {}
            Err(_) => break false,
        }
    };
    if !ready {
        child.kill().unwrap();
        child.wait().unwrap();
        panic!("round {round}: the child did not open the log within {CHILD_READY_TIMEOUT:?}");
    }
    // While the child runs, a second opener is refused.
    assert!(
        matches!(Wal::open(dir, &options()), Err(WalError::Locked { .. })),
        "round {round}: a second process could open a locked log"
    );
    std::thread::sleep(Duration::from_millis(20 + random.below(250)));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut durable_max = None;
    for line in lines.iter() {
        if let Some((_, index)) = line.split_once(DURABLE_MARKER) {
            let index: LogIndex = index.trim().parse().unwrap();
            durable_max = durable_max.max(Some(index));
        }
    }
    reader.join().unwrap();
    durable_max
}

/// Reopens the log and checks it holds every reported-durable index, and that
/// every entry it holds is one some child really appended, in order.
fn check_log(dir: &Path, durable_max: LogIndex, rounds_done: u64) {
    let wal = Wal::open(dir, &options())
        .unwrap_or_else(|error| panic!("recovery failed after a crash: {error}"));
    let first = wal.first_index().unwrap();
    let last = wal.last_index();
    assert!(
        last >= durable_max,
        "entries up to {durable_max} were reported durable, the log ends at {last}"
    );
    assert!(wal.hard_state().commit <= last);
    let entries = wal.entries(first, last + 1, u64::MAX).unwrap();
    assert_eq!(entries.len() as u64, last + 1 - first);
    let mut previous_term = wal.term(first - 1).unwrap();
    let first_term = entries.first().map_or(0, |entry| entry.term);
    let mut last_sequence: std::collections::HashMap<(Term, String), u64> = Default::default();
    for entry in &entries {
        assert!(
            entry.term >= previous_term && entry.term <= rounds_done,
            "entry {} has term {}",
            entry.index,
            entry.term
        );
        previous_term = entry.term;
        let text = String::from_utf8(entry.data.clone()).unwrap();
        if text.starts_with("driver|") {
            assert_eq!(
                entry.data,
                driver_payload(entry.index, entry.term),
                "entry {}",
                entry.index
            );
        } else {
            let fields: Vec<&str> = text.split('|').collect();
            assert_eq!(fields[0], "group", "entry {}: {text}", entry.index);
            assert_eq!(
                fields[1],
                format!("t{}", entry.term),
                "entry {}",
                entry.index
            );
            let sequence: u64 = fields[3][1..].parse().unwrap();
            let writer = fields[2].to_string();
            assert_eq!(
                entry.data,
                group_payload(entry.term, writer[1..].parse().unwrap(), sequence)
            );
            // Each writer's entries appear once each, in the order it appended
            // them, from its first (unless compaction cut into this term).
            let previous = last_sequence.insert((entry.term, writer), sequence);
            match previous {
                Some(previous) => assert_eq!(previous + 1, sequence, "entry {}", entry.index),
                None if entry.term != first_term => {
                    assert_eq!(sequence, 0, "entry {}", entry.index)
                }
                None => {}
            }
        }
    }
}

#[test]
fn killed_writers_never_lose_durable_entries() {
    let seed = std::env::var("WAL_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            now.as_nanos() as u64 | 1
        });
    println!("crash test seed {seed} (set WAL_CRASH_SEED={seed} to replay)");
    let mut random = XorShift(seed);
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut durable_max = 0;
    let mut round = 0;
    while round < ROUNDS_MAX && (round < ROUNDS_MIN || started.elapsed() < TOTAL_TIME_MAX) {
        if let Some(reported) = run_child_round(dir.path(), round, &mut random) {
            durable_max = durable_max.max(reported);
        }
        round += 1;
        check_log(dir.path(), durable_max, round);
    }
    assert!(
        durable_max > 0,
        "no child reported anything durable in {round} rounds"
    );
    println!("{round} rounds, last durable index {durable_max}");
}
