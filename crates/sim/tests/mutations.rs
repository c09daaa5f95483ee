//! Deliberate bugs the simulator must catch: each test switches one on and
//! asserts a violation appears within a bounded number of seeds. A checker
//! that misses its bug fails here. Takes a few seconds (each mutation stops
//! at its first failing seed).
//!
//! The node loop's and the core's switches need the `mutations` feature (the
//! core's also a build without debug assertions):
//! `cargo test --release -p sim --features mutations --test mutations`.

use sim::{run_seeds, FaultSet, Invariant, ReadMode, SimConfig, Violation};

/// Seeds tried before a mutation counts as missed.
const SEEDS_MAX: u64 = 200;

/// The first violation over seeds `1..=SEEDS_MAX` that one of `expected`
/// reports. Seeds whose first violation is another one (say, the mutated
/// core tripping its own hard assertion first) are passed over, so the test
/// proves the simulator's own checker for the bug fires.
fn first_violation(name: &str, config: &SimConfig, expected: &[Invariant]) -> Violation {
    let mut passed_over = Vec::new();
    for start in (1..=SEEDS_MAX).step_by(20) {
        let batch = run_seeds(config, start..start + 20, 2, |_| {});
        for violation in batch.failures {
            if expected.contains(&violation.invariant) {
                return violation;
            }
            passed_over.push((violation.seed, violation.invariant, violation.detail));
        }
    }
    panic!(
        "mutation {name}: none of {expected:?} reported in {SEEDS_MAX} seeds; the checkers miss \
         this bug. Other violations seen: {passed_over:?}"
    );
}

#[cfg(feature = "mutations")]
fn assert_caught(name: &str, config: SimConfig, expected: &[Invariant]) {
    let violation = first_violation(name, &config, expected);
    assert!(
        !violation.trace.is_empty(),
        "a violation must carry its story"
    );
}

#[test]
fn local_reads_without_read_index_are_caught_as_stale_reads() {
    let mut config = SimConfig::new(5, FaultSet::all());
    config.workload.read_mode = ReadMode::LocalUnsafe;
    let violation = first_violation("local reads", &config, &[Invariant::Linearizability]);
    let story = violation.to_string();
    assert!(
        story.contains("calls #") && story.contains(" from node "),
        "the story of a stale read shows the operations and who served them:\n{story}"
    );
}

/// The node loop sends vote grants and append acknowledgements before the
/// write they promise is durable.
#[cfg(feature = "mutations")]
#[test]
fn persisted_messages_sent_before_fsync_are_caught() {
    let mut config = SimConfig::new(3, "crash".parse().unwrap());
    config.node_mutation = Some(node::Mutation::PersistedMessagesBeforeSync);
    config.disk.fsync_us_min = 5_000;
    config.disk.fsync_us_max = 20_000;
    assert_caught(
        "persisted messages before fsync",
        config,
        &[
            Invariant::DoubleVote,
            Invariant::CommitWithoutMajority,
            Invariant::ElectionSafety,
            Invariant::StateMachineSafety,
            Invariant::LeaderCompleteness,
            Invariant::AcknowledgedWriteLost,
            Invariant::Linearizability,
        ],
    );
}

/// The core's switches. Built without debug assertions, since the core's
/// own `debug_assert!`s would otherwise report some of these bugs before the
/// simulator's checkers get the chance:
/// `cargo test --release -p sim --features mutations --test mutations`.
#[cfg(all(feature = "mutations", not(debug_assertions)))]
mod core {
    use super::*;
    use raft::Mutation;
    use sim::lab::{self, Lab};
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// How a mutation is hunted.
    #[derive(Clone, Copy, Debug)]
    enum Hunt {
        /// Random seeds of the mixed-fault workload, five members.
        Seeds,
        /// The same with three members, where one pre-vote grant besides
        /// the candidate's own is a majority.
        SeedsAtThreeMembers,
        /// The Figure 8 crash scenario with one entry per append, over seeds.
        Figure8,
    }

    /// One line per core switch: the bug, how to hunt it, and the
    /// invariants that may report it.
    const CASES: &[(Mutation, Hunt, &[Invariant])] = &[
        (
            Mutation::SecondVoteInTerm,
            Hunt::Seeds,
            &[Invariant::DoubleVote, Invariant::ElectionSafety],
        ),
        (
            Mutation::VoteWithoutLogCheck,
            Hunt::Seeds,
            &[Invariant::LeaderCompleteness, Invariant::StateMachineSafety],
        ),
        (
            Mutation::CommitOldTermByCounting,
            Hunt::Figure8,
            &[Invariant::LeaderCompleteness, Invariant::StateMachineSafety],
        ),
        (
            Mutation::ReplyBeforePersist,
            Hunt::Seeds,
            &[
                Invariant::DoubleVote,
                Invariant::CommitWithoutMajority,
                Invariant::ElectionSafety,
                Invariant::StateMachineSafety,
                Invariant::LeaderCompleteness,
            ],
        ),
        (
            Mutation::SkipConsistencyCheck,
            Hunt::Seeds,
            &[
                Invariant::LogMatching,
                Invariant::StateMachineSafety,
                Invariant::CommitWithoutMajority,
            ],
        ),
        (
            Mutation::ApplyUncommitted,
            Hunt::Seeds,
            // An applied entry counts as committed, so a later leader without
            // it breaks Leader Completeness, usually before another member
            // applies something else at that index.
            &[Invariant::StateMachineSafety, Invariant::LeaderCompleteness],
        ),
        (
            Mutation::ConfChangeWhilePending,
            Hunt::Seeds,
            &[
                Invariant::ConfChangeOneAtATime,
                Invariant::ElectionSafety,
                Invariant::StateMachineSafety,
                Invariant::LeaderCompleteness,
            ],
        ),
        (
            Mutation::ForgetVoteOnRestart,
            Hunt::Seeds,
            &[Invariant::DoubleVote],
        ),
        (
            Mutation::PreVoteBumpsTerm,
            Hunt::Seeds,
            &[Invariant::TermWithoutCampaign],
        ),
        (
            Mutation::CheckQuorumIgnoresHeartbeats,
            Hunt::Seeds,
            &[Invariant::NeedlessElection],
        ),
        (
            Mutation::PreVoteGrantCountsAsVote,
            Hunt::SeedsAtThreeMembers,
            &[Invariant::LeaderWithoutMajority, Invariant::ElectionSafety],
        ),
    ];

    /// The first violation Figure 8 runs find over seeds `1..=SEEDS_MAX`.
    fn hunt_figure_8(mutation: Mutation) -> Violation {
        for seed in 1..=SEEDS_MAX {
            let mut config = Lab::config(5);
            config.message_bytes_max = 1;
            config.core_mutation = Some(mutation);
            let mut lab = Lab::with_config(config, seed);
            let _ = catch_unwind(AssertUnwindSafe(|| lab::figure_8(&mut lab, 1000)));
            if let Some(violation) = lab.world.violation() {
                return violation.clone();
            }
        }
        panic!("mutation {mutation:?}: no violation in {SEEDS_MAX} Figure 8 runs");
    }

    #[test]
    fn every_core_mutation_is_caught() {
        for &(mutation, hunt, expected) in CASES {
            let name = format!("{mutation:?}");
            let violation = match hunt {
                Hunt::Seeds | Hunt::SeedsAtThreeMembers => {
                    let nodes = if matches!(hunt, Hunt::Seeds) { 5 } else { 3 };
                    let mut config = SimConfig::new(nodes, FaultSet::all());
                    config.core_mutation = Some(mutation);
                    first_violation(&name, &config, expected)
                }
                Hunt::Figure8 => hunt_figure_8(mutation),
            };
            assert!(
                expected.contains(&violation.invariant),
                "mutation {name} was caught as {}, expected one of {expected:?}:\n{violation}",
                violation.invariant
            );
        }
    }
}
