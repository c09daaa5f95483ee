//! Real `raftkv serve` clusters of 1, 3 and 5 members under concurrent
//! clients, judged by the simulator's linearizability checker. Ten clients,
//! pinned round-robin to the members so that reads go through the leader
//! and through followers, each do about 50% linearizable Range, 25% Put of
//! a value nobody else writes and 25% compare-and-swap (the key holds the
//! value this client last saw, or is absent) on three keys. Every call is
//! stamped from one monotonic clock; a call without an answer within 2 s is
//! an unknown outcome. A read that misses a write acknowledged before the
//! read began fails the test with the operations around it.
//!
//! Each cluster size runs for `RAFTKV_LINEARIZABLE_RUN_SECONDS` seconds (10
//! by default; CI also runs 120 per size), plus a few to start and check.
//! The negative control records a 3 s history, changes one read to a value
//! that had been overwritten before the read began, and requires the
//! checker to reject it: the path from real clients to the verdict can say
//! "not linearizable".

mod common;

use std::collections::HashMap;
use std::time::Duration;

use chaos::connection::{CallErrors, Connection, HistoryClock};
use chaos::register::{
    count_returned, describe_violation, run_client, value_seen, RegisterClient, Rounds,
};
use common::Cluster;
use sim::linearizability::{
    check, KvInput, KvModel, KvOperation, KvOutput, KvValue, Limits, Outcome, Verdict,
};
use sim::rng::SimRng;

const CLIENTS: u64 = 10;
/// Three fresh keys every 5 s, calls back to back.
const ROUNDS: Rounds = Rounds {
    keys_per_round: 3,
    round: Duration::from_secs(5),
    think: Duration::ZERO,
};
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const KEY_PREFIX: &str = "register/";
const RUN_SECONDS_ENV: &str = "RAFTKV_LINEARIZABLE_RUN_SECONDS";
const RUN_SECONDS_DEFAULT: u64 = 10;
/// Below these a run checked too little to mean anything.
const READS_RETURNED_MIN: usize = 50;
const WRITES_ACKNOWLEDGED_MIN: usize = 20;
/// How far around a violation the report lists the key's operations.
const VIOLATION_WINDOW_NS: u64 = 10_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_serves_linearizable_registers() {
    registers_stay_linearizable(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_serve_linearizable_registers() {
    registers_stay_linearizable(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_serve_linearizable_registers() {
    registers_stay_linearizable(5).await;
}

/// The negative control: one read of a real history, changed to a value
/// that was overwritten (by a write acknowledged before the read began),
/// must make the checker say "not linearizable" on that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_changed_to_an_overwritten_value_is_rejected() {
    let recorded = record(1, Duration::from_secs(3), 7).await;
    assert_linearizable(&recorded);
    let (read_index, overwritten) =
        overwritten_value_for_a_read(&recorded.history).unwrap_or_else(|| {
            panic!(
                "no read followed two acknowledged writes of its key in turn; \
                 the workload did too little:\n{}",
                recorded.summary()
            )
        });
    let mut tampered = recorded.history.clone();
    let Outcome::Returned { output, .. } = &mut tampered[read_index].outcome else {
        unreachable!("only returned reads are chosen")
    };
    *output = KvOutput::Value(Some(overwritten));
    let verdict = check(&KvModel, &tampered, &Limits::default()).expect("a well-formed history");
    let read_key = tampered[read_index].input.key();
    match verdict {
        Verdict::NotLinearizable(violation) => {
            assert_eq!(violation.key, format!("{read_key:?}"), "{violation}");
        }
        other => panic!(
            "read #{read_index} changed to the overwritten value {overwritten}, \
             yet the checker says: {other}"
        ),
    }
}

async fn registers_stay_linearizable(size: usize) {
    let recorded = record(size, run_duration(), size as u64).await;
    assert_linearizable(&recorded);
}

/// The run length per cluster size, from `RUN_SECONDS_ENV`.
fn run_duration() -> Duration {
    let seconds = match std::env::var(RUN_SECONDS_ENV) {
        Err(_) => RUN_SECONDS_DEFAULT,
        Ok(text) => text.parse().unwrap_or_else(|_| {
            panic!("{RUN_SECONDS_ENV}={text:?} is not a whole number of seconds")
        }),
    };
    let run_max = ROUNDS.run_max().as_secs();
    assert!(
        (1..=run_max).contains(&seconds),
        "{RUN_SECONDS_ENV}={seconds} is outside 1..={run_max}, what the key space allows"
    );
    Duration::from_secs(seconds)
}

/// A history recorded from one cluster, with what explains it.
struct Recorded {
    size: usize,
    leader: usize,
    /// Which member each client (by `client_id - 1`) was pinned to.
    pinned_member: Vec<usize>,
    errors: Vec<CallErrors>,
    history: Vec<KvOperation>,
}

/// Starts `size` members and runs the clients against them for `run`.
async fn record(size: usize, run: Duration, seed: u64) -> Recorded {
    let cluster = Cluster::start(size, &[]);
    let leader = cluster.wait_for_leader(None).await;
    let clock = HistoryClock::start();
    let pinned_member: Vec<usize> = (0..CLIENTS as usize).map(|index| index % size).collect();
    let tasks: Vec<_> = (1..=CLIENTS)
        .zip(&pinned_member)
        .map(|(client_id, &member)| {
            // Given one endpoint alone, the client stays with its member.
            let connection =
                Connection::new(client_id, &[cluster.endpoint(member)], 0, CALL_TIMEOUT);
            let client = RegisterClient::new(connection, KEY_PREFIX);
            let rng = SimRng::new(seed.wrapping_mul(1_000).wrapping_add(client_id));
            tokio::spawn(run_client(client, rng, clock, run, ROUNDS))
        })
        .collect();
    let mut recorded = Recorded {
        size,
        leader,
        pinned_member,
        errors: Vec::new(),
        history: Vec::new(),
    };
    for task in tasks {
        let (operations, connection) = task.await.expect("a client task");
        recorded.history.extend(operations);
        recorded.errors.push(connection.errors().clone());
    }
    recorded
}

/// Checks `recorded`; on any verdict but linearizable, panics with the
/// cluster, the clients and the operations around the violation.
fn assert_linearizable(recorded: &Recorded) {
    let reads_returned = count_returned(&recorded.history, |operation| {
        matches!(operation.input, KvInput::Get { .. })
    });
    let writes_acknowledged = count_returned(&recorded.history, |operation| {
        value_seen(operation).is_some() && !matches!(operation.input, KvInput::Get { .. })
    });
    assert!(
        reads_returned >= READS_RETURNED_MIN && writes_acknowledged >= WRITES_ACKNOWLEDGED_MIN,
        "too little was answered to check anything:\n{}",
        recorded.summary()
    );
    let verdict = check(&KvModel, &recorded.history, &Limits::default())
        .unwrap_or_else(|error| panic!("the recorded history is malformed: {error}"));
    match verdict {
        Verdict::Linearizable => eprintln!("linearizable:\n{}", recorded.summary()),
        Verdict::NotLinearizable(violation) => panic!(
            "{}\n{}",
            recorded.summary(),
            describe_violation(&recorded.history, &violation, VIOLATION_WINDOW_NS)
        ),
        Verdict::Unknown { reason } => panic!(
            "the checker could not decide: {reason}\n{}",
            recorded.summary()
        ),
    }
}

impl Recorded {
    fn summary(&self) -> String {
        let unknown = self.history.len() - count_returned(&self.history, |_| true);
        let reads = count_returned(&self.history, |operation| {
            matches!(operation.input, KvInput::Get { .. })
        });
        let cas_not_applied = count_returned(&self.history, |operation| {
            matches!(
                operation.outcome,
                Outcome::Returned {
                    output: KvOutput::CasDone { succeeded: false },
                    ..
                }
            )
        });
        let mut text = format!(
            "{} member(s), m{} leader when the clients started; {} operations: {reads} \
             reads returned, {} writes acknowledged, {cas_not_applied} CAS not applied, \
             {unknown} with unknown outcome\n",
            self.size,
            self.leader + 1,
            self.history.len(),
            self.history.len() - unknown - reads - cas_not_applied,
        );
        for (index, (member, errors)) in self.pinned_member.iter().zip(&self.errors).enumerate() {
            text.push_str(&format!(
                "client {} -> m{}{}: {} calls unanswered {:?}\n",
                index + 1,
                member + 1,
                if *member == self.leader {
                    " (leader)"
                } else {
                    ""
                },
                errors.total,
                errors.first
            ));
        }
        text
    }
}

/// A returned read and a value it could not have read: one written by a
/// write that was acknowledged before the write of the read's value began,
/// which itself was acknowledged before the read began. Values are unique,
/// so reading the older one would put its write after the newer one, which
/// real time forbids.
fn overwritten_value_for_a_read(history: &[KvOperation]) -> Option<(usize, KvValue)> {
    let acknowledged_writes: Vec<(usize, KvValue)> = history
        .iter()
        .enumerate()
        .filter(|(_, operation)| !matches!(operation.input, KvInput::Get { .. }))
        .filter_map(|(index, operation)| Some((index, value_seen(operation)??)))
        .collect();
    let write_of: HashMap<KvValue, usize> = acknowledged_writes
        .iter()
        .map(|&(index, value)| (value, index))
        .collect();
    history.iter().enumerate().find_map(|(read_index, read)| {
        let Outcome::Returned {
            output: KvOutput::Value(Some(value)),
            ..
        } = read.outcome
        else {
            return None;
        };
        let newer = &history[*write_of.get(&value)?];
        if newer.return_time()? >= read.call_time {
            return None;
        }
        acknowledged_writes
            .iter()
            .filter(|&&(index, older_value)| {
                older_value != value
                    && history[index].input.key() == read.input.key()
                    && history[index]
                        .return_time()
                        .is_some_and(|returned| returned < newer.call_time)
            })
            .map(|&(_, older_value)| (read_index, older_value))
            .next()
    })
}
