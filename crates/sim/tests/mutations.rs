//! Deliberate bugs the simulator must catch: each test switches one on and
//! asserts a violation appears within 2,000 seeds. A checker that misses its
//! bug fails here. Takes seconds: each hunt stops at the first batch of
//! seeds that catches its mutation.
//!
//! The node loop's and the core's switches need the `mutations` feature (the
//! core's also a build without debug assertions):
//! `cargo test --release -p sim --features mutations --test mutations`.

use sim::{run_seeds, FaultSet, Invariant, ReadMode, SimConfig, Violation};

/// Seeds tried before a mutation counts as missed: each must be caught
/// within 2,000 seeds. A hunt stops at the first batch that catches it.
const SEEDS_MAX: u64 = 2000;

/// Seeds run side by side; the lowest catching seed of a batch is reported,
/// so the answer does not depend on which thread finished first.
const BATCH_SEEDS: u64 = 20;

/// The violation of the lowest seed in `1..=SEEDS_MAX` that one of
/// `expected` reports. Seeds whose first violation is another one (say, the
/// mutated core tripping its own hard assertion first) are passed over, so
/// the test proves the simulator's own checker for the bug fires.
fn first_violation(name: &str, config: &SimConfig, expected: &[Invariant]) -> Violation {
    let mut passed_over = Vec::new();
    for start in (1..=SEEDS_MAX).step_by(BATCH_SEEDS as usize) {
        let mut failures = run_seeds(config, start..start + BATCH_SEEDS, 2, |_| {}).failures;
        failures.sort_by_key(|violation| violation.seed);
        for violation in failures {
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

/// Asserts one of `expected` reports the node loop mutation `mutation`
/// within [`SEEDS_MAX`] seeds, and that the catching seed passes with the
/// mutation off: the catch is the mutation's, not some other bug's.
#[cfg(feature = "mutations")]
fn assert_node_mutation_caught(
    mutation: node::Mutation,
    mut config: SimConfig,
    expected: &[Invariant],
) {
    let clean = config.clone();
    config.node_mutation = Some(mutation);
    assert_caught_only_with(&format!("{mutation:?}"), &config, &clean, expected);
}

/// Asserts one of `expected` reports a run of `mutated` within
/// [`SEEDS_MAX`] seeds, and that the catching seed passes under `clean`,
/// the same configuration without the bug.
#[cfg(feature = "mutations")]
fn assert_caught_only_with(
    name: &str,
    mutated: &SimConfig,
    clean: &SimConfig,
    expected: &[Invariant],
) {
    let violation = first_violation(name, mutated, expected);
    assert!(
        !violation.trace.is_empty(),
        "a violation must carry its story"
    );
    let seed = violation.seed.expect("a run's violation names its seed");
    if let Err(failure) = sim::run_seed(clean, seed) {
        panic!(
            "mutation {name}: seed {seed} fails without the mutation too, so its catch \
             proves nothing:\n{failure}"
        );
    }
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

/// A read barrier released once its read index is confirmed, before the
/// member serving the read has applied up to it.
#[cfg(feature = "mutations")]
#[test]
fn reads_released_before_the_read_index_is_applied_are_caught() {
    assert_node_mutation_caught(
        node::Mutation::ReadBeforeApplied,
        SimConfig::new(5, FaultSet::all()),
        &[Invariant::Linearizability],
    );
}

/// A write answered once it is in the proposer's log, before it commits.
#[cfg(feature = "mutations")]
#[test]
fn writes_acknowledged_before_they_are_applied_are_caught() {
    assert_node_mutation_caught(
        node::Mutation::WriteAckedBeforeApplied,
        SimConfig::new(5, FaultSet::all()),
        &[Invariant::Linearizability, Invariant::AcknowledgedWriteLost],
    );
}

/// A read released by a read index asked before it arrived. The bug shows
/// only when a write is acknowledged while an earlier read index request is
/// still on its way: slow links keep requests in flight, and one key written
/// by clients that never pause makes such a write likely (about 1 seed in
/// 75; with every fault and three keys, none in 300).
#[cfg(feature = "mutations")]
#[test]
fn reads_joining_an_earlier_read_index_are_caught() {
    let mut config = SimConfig::new(5, "delay".parse().expect("fault names"));
    config.workload.key_count = 1;
    config.workload.think_us_max = 0;
    assert_node_mutation_caught(
        node::Mutation::ReadJoinsEarlierReadIndex,
        config,
        &[Invariant::Linearizability],
    );
}

/// A client's Range reads the store's last committed state and misses the
/// applies gathered in its open write transaction: a write answered after
/// its apply is not yet visible to the read that follows it.
#[cfg(feature = "mutations")]
#[test]
fn reads_missing_the_gathered_applies_are_caught() {
    let clean = SimConfig::new(5, FaultSet::all());
    let mut mutated = clean.clone();
    mutated.store_mutation = Some(mvcc::Mutation::ReadMissesGatheredApplies);
    assert_caught_only_with(
        "ReadMissesGatheredApplies",
        &mutated,
        &clean,
        &[Invariant::Linearizability],
    );
}

/// Committed entries applied before the write that appends them is durable.
#[cfg(feature = "mutations")]
#[test]
fn applies_before_the_log_is_durable_are_caught() {
    assert_node_mutation_caught(
        node::Mutation::ApplyBeforeDurable,
        SimConfig::new(5, FaultSet::all()),
        &[Invariant::AppliedBeforeDurable],
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
            Hunt::Seeds,
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
                Hunt::Seeds => {
                    let mut config = SimConfig::new(5, FaultSet::all());
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

/// The core's switches whose bug shows only in a situation the nemesis
/// stages on purpose: each is hunted over up to 2,000 seeds, stopping at the
/// first that catches it, and the catching seed must pass without the bug.
#[cfg(all(feature = "mutations", not(debug_assertions)))]
mod rare_core {
    use super::*;
    use raft::Mutation;

    fn hunt(mutation: Mutation, clean: SimConfig, expected: &[Invariant]) {
        let mut mutated = clean.clone();
        mutated.core_mutation = Some(mutation);
        assert_caught_only_with(&format!("{mutation:?}"), &mutated, &clean, expected);
    }

    /// Answers to heartbeats sent before a read arrived confirm it. The
    /// nemesis backs a leader's inbound queue up and asks it to hand
    /// leadership over: it keeps serving reads until it hears of its
    /// successor, and the answers to its old rounds all arrive before that.
    #[test]
    fn a_read_confirmed_by_an_earlier_heartbeat_round_is_caught() {
        let faults = "delay,transfer".parse().expect("fault names");
        hunt(
            Mutation::ReadConfirmedByEarlierHeartbeat,
            SimConfig::new(5, faults),
            &[Invariant::Linearizability],
        );
    }

    /// A new leader serves a read at its commit index before it committed an
    /// entry of its term. The nemesis cuts a leader off the moment it commits
    /// a write its followers do not yet know committed, so its successor's
    /// commit index lags the write its clients saw acknowledged.
    #[test]
    fn a_read_served_before_the_term_commits_is_caught() {
        hunt(
            Mutation::ReadBeforeTermCommitted,
            SimConfig::new(5, FaultSet::all()),
            &[Invariant::Linearizability],
        );
    }

    /// A new leader changes the configuration before it committed an entry
    /// of its term. The nemesis cuts a leader of four voters off with a
    /// change adding a fifth, and asks its successor at once to remove it:
    /// the two changes' majorities do not overlap, and both sides commit.
    #[test]
    fn a_configuration_change_before_the_term_commits_is_caught() {
        hunt(
            Mutation::ConfChangeBeforeTermCommitted,
            SimConfig::new(5, FaultSet::all()),
            &[
                Invariant::ElectionSafety,
                Invariant::StateMachineSafety,
                Invariant::LeaderCompleteness,
                Invariant::LogMatching,
                Invariant::AcknowledgedWriteLost,
                Invariant::Linearizability,
            ],
        );
    }

    /// A late pre-vote grant counted as a vote, at three members, where one
    /// grant besides the candidate's own is a majority. The nemesis restarts
    /// the leader at once, so both followers grant the next pre-vote, one of
    /// them late.
    #[test]
    fn a_pre_vote_grant_counted_as_a_vote_is_caught_at_three_members() {
        hunt(
            Mutation::PreVoteGrantCountsAsVote,
            SimConfig::new(3, FaultSet::all()),
            &[Invariant::LeaderWithoutMajority, Invariant::ElectionSafety],
        );
    }
}

/// The server's KV path, which simulated clients go through as gRPC clients
/// do, serves a linearizable Range at the revision its member held before
/// the read barrier: a member behind the leader answers with a stale value.
#[cfg(feature = "mutations")]
#[test]
fn ranges_at_a_revision_taken_before_the_read_barrier_are_caught() {
    let clean = SimConfig::new(5, FaultSet::all());
    let mut mutated = clean.clone();
    mutated.kv_mutation = Some(server::api::kv_requests::Mutation::RangeAtRevisionBeforeBarrier);
    assert_caught_only_with(
        "range at the revision before the barrier",
        &mutated,
        &clean,
        &[Invariant::Linearizability],
    );
}
