//! What a failed run reports: which invariant broke, on which members, when,
//! and the story of the events that led there.
//!
//! Owns: [`Violation`] and [`Invariant`]. Must never: decide whether something
//! is a violation (the checkers do that).

use std::fmt;

use raft::NodeId;

use crate::trace::TraceRecord;

/// The property a run broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// Two leaders in one term.
    ElectionSafety,
    /// Two logs agree on an entry's index and term but not on the entry or
    /// on what precedes it.
    LogMatching,
    /// A leader overwrote or dropped an entry of its own log.
    LeaderAppendOnly,
    /// A new leader lacks an entry committed before its term.
    LeaderCompleteness,
    /// Two members applied different commands at one index.
    StateMachineSafety,
    /// A member's commit index moved backwards.
    CommitRegressed,
    /// A leader committed an index that a majority does not hold durably.
    CommitWithoutMajority,
    /// A member applied an entry its own log did not yet hold durably.
    AppliedBeforeDurable,
    /// A crashed member's log refused to reopen: it lost or damaged what it
    /// had made durable, or could not tell a torn tail from damage.
    LogRecovery,
    /// A leader's log held two uncommitted configuration changes at once.
    ConfChangeOneAtATime,
    /// A write acknowledged to a client is missing from a member's state.
    AcknowledgedWriteLost,
    /// A serializable read answered a value the store's history does not
    /// hold at the revision the answer named.
    SerializableReadOffHistory,
    /// A member granted its vote to two candidates in one term.
    DoubleVote,
    /// A member acted as leader without the votes of a majority.
    LeaderWithoutMajority,
    /// A member moved to a term in which nobody campaigned (say, a pre-vote's).
    TermWithoutCampaign,
    /// The client history has no linearization.
    Linearizability,
    /// After faults healed, no leader appeared in time.
    NoLeaderAfterHeal,
    /// After faults healed, a client operation never completed.
    OperationStuckAfterHeal,
    /// Once healed and calm, a member raised its term: an election nobody needed.
    NeedlessElection,
    /// The core panicked or refused input it should accept.
    CoreFailure,
    /// The simulated world itself saw something impossible (a bug in the simulator).
    SimulatorFault,
}

impl fmt::Display for Invariant {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Invariant::ElectionSafety => "election safety",
            Invariant::LogMatching => "log matching",
            Invariant::LeaderAppendOnly => "leader append-only",
            Invariant::LeaderCompleteness => "leader completeness",
            Invariant::StateMachineSafety => "state machine safety",
            Invariant::CommitRegressed => "commit monotonicity",
            Invariant::CommitWithoutMajority => "commit needs a durable majority",
            Invariant::AppliedBeforeDurable => "apply only what the own log holds durably",
            Invariant::LogRecovery => "the log reopens after a crash",
            Invariant::ConfChangeOneAtATime => "one configuration change at a time",
            Invariant::AcknowledgedWriteLost => "no acknowledged write lost",
            Invariant::SerializableReadOffHistory => "serializable reads are of the history",
            Invariant::DoubleVote => "one vote per term",
            Invariant::LeaderWithoutMajority => "a leader holds a majority of votes",
            Invariant::TermWithoutCampaign => "terms rise only by campaigns",
            Invariant::Linearizability => "linearizability",
            Invariant::NoLeaderAfterHeal => "liveness: leader after heal",
            Invariant::OperationStuckAfterHeal => "liveness: operations complete after heal",
            Invariant::NeedlessElection => "liveness: no election once calm",
            Invariant::CoreFailure => "core failure",
            Invariant::SimulatorFault => "simulator fault",
        };
        formatter.write_str(name)
    }
}

/// A broken invariant, with enough context to read the failure like a story.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Violation {
    pub invariant: Invariant,
    pub nodes: Vec<NodeId>,
    pub time_us: u64,
    pub detail: String,
    /// The seed that reproduces it (filled in by the runner).
    pub seed: Option<u64>,
    /// The last events before the violation, oldest first.
    pub trace: Vec<TraceRecord>,
}

impl Violation {
    /// A violation without trace or seed; the world attaches both.
    pub fn new(
        invariant: Invariant,
        nodes: Vec<NodeId>,
        time_us: u64,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            invariant,
            nodes,
            time_us,
            detail: detail.into(),
            seed: None,
            trace: Vec::new(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{} violated at {}.{:03} ms on node(s) {:?}",
            self.invariant,
            self.time_us / 1000,
            self.time_us % 1000,
            self.nodes
        )?;
        if let Some(seed) = self.seed {
            write!(formatter, " (seed {seed})")?;
        }
        writeln!(formatter, ": {}", self.detail)?;
        if !self.trace.is_empty() {
            writeln!(
                formatter,
                "the story, {} events (oldest first):",
                self.trace.len()
            )?;
            for record in &self.trace {
                writeln!(formatter, "  {record}")?;
            }
        }
        Ok(())
    }
}
