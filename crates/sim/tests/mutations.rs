//! Deliberate bugs the simulator must catch: each test switches one on and
//! asserts a violation appears within a bounded number of seeds. A checker
//! that misses its bug fails here. Takes a few seconds (each mutation stops
//! at its first failing seed).
//!
//! Core-side switches need the `mutations` feature:
//! `cargo test -p sim --features mutations --test mutations`.

use sim::{run_seeds, FaultSet, Invariant, ReadMode, SimConfig, Violation};

/// Seeds tried before a mutation counts as missed.
const SEEDS_MAX: u64 = 200;

/// The first violation over seeds `1..=SEEDS_MAX`, or a panic naming the mutation.
fn first_violation(name: &str, config: &SimConfig) -> Violation {
    for start in (1..=SEEDS_MAX).step_by(20) {
        let batch = run_seeds(config, start..start + 20, 2, |_| {});
        if let Some(violation) = batch.failures.into_iter().next() {
            return violation;
        }
    }
    panic!("mutation {name}: no violation in {SEEDS_MAX} seeds; the checkers miss this bug");
}

fn assert_caught(name: &str, config: SimConfig, expected: &[Invariant]) {
    let violation = first_violation(name, &config);
    assert!(
        expected.contains(&violation.invariant),
        "mutation {name} was caught as {}, expected one of {expected:?}:\n{violation}",
        violation.invariant
    );
    assert!(
        !violation.trace.is_empty(),
        "a violation must carry its story"
    );
}

#[test]
fn local_reads_without_read_index_are_caught_as_stale_reads() {
    let mut config = SimConfig::new(5, FaultSet::all());
    config.workload.read_mode = ReadMode::LocalUnsafe;
    assert_caught("local reads", config, &[Invariant::Linearizability]);
}

#[test]
fn persisted_messages_sent_before_fsync_are_caught() {
    let mut config = SimConfig::new(3, "crash".parse().unwrap());
    config.mutations.persisted_messages_before_fsync = true;
    config.disk.fsync_us_min = 5_000;
    config.disk.fsync_us_max = 20_000;
    assert_caught(
        "persisted messages before fsync",
        config,
        &[
            Invariant::CommitWithoutMajority,
            Invariant::ElectionSafety,
            Invariant::StateMachineSafety,
            Invariant::LeaderCompleteness,
            Invariant::AcknowledgedWriteLost,
            Invariant::Linearizability,
        ],
    );
}

#[cfg(feature = "mutations")]
mod core {
    use super::*;
    use raft::Mutation;

    /// One line per core switch: the mutation and the invariants that may report it.
    const CASES: &[(Mutation, &[Invariant])] = &[
        (Mutation::SecondVoteInTerm, &[Invariant::ElectionSafety]),
        (
            Mutation::VoteWithoutLogCheck,
            &[
                Invariant::LeaderCompleteness,
                Invariant::StateMachineSafety,
                Invariant::LogMatching,
            ],
        ),
        (
            Mutation::CommitOldTermByCounting,
            &[Invariant::StateMachineSafety, Invariant::LeaderCompleteness],
        ),
        (
            Mutation::ReplyBeforePersist,
            &[
                Invariant::CommitWithoutMajority,
                Invariant::ElectionSafety,
                Invariant::StateMachineSafety,
            ],
        ),
        (
            Mutation::SkipConsistencyCheck,
            &[Invariant::LogMatching, Invariant::StateMachineSafety],
        ),
        (Mutation::ApplyUncommitted, &[Invariant::StateMachineSafety]),
    ];

    #[test]
    fn every_core_mutation_is_caught() {
        for &(mutation, expected) in CASES {
            let mut config = SimConfig::new(5, FaultSet::all());
            config.core_mutation = Some(mutation);
            assert_caught(&format!("{mutation:?}"), config, expected);
        }
    }
}
