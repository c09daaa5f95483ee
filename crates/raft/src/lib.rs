//! The Raft consensus algorithm as a pure, deterministic state machine.
//!
//! This crate owns the algorithm: roles, terms, votes, the log's in-memory
//! view, replication progress, commitment, read barriers, leadership
//! transfer and single-server membership changes. It never does I/O, never reads a clock and never draws global
//! randomness: time is [`RawNode::tick`], randomness is a generator seeded from
//! [`Config::random_seed`], input is [`RawNode::step`], and output is a
//! [`Ready`] batch. The same inputs give the same outputs, every time, which is
//! what lets the simulator explore millions of interleavings and replay any of
//! them from a seed.
//!
//! # The persistence contract
//!
//! A message may leave only when the state it promises is durable:
//! - a vote (granted or not) is sent only after the term and vote are on disk,
//!   so a restarted member cannot vote twice in one term;
//! - an append acknowledgement is sent only after the acknowledged entries are
//!   on disk, so a majority's acknowledgement means a majority holds them;
//! - a leader may send its own appends before writing them locally, but counts
//!   itself towards the commit quorum only once `advance` reports them durable.
//!
//! [`Ready`] separates [`Ready::messages`] (safe to send at once) from
//! [`Ready::persisted_messages`] (send after the fsync), so an embedder that
//! follows the field order cannot break the contract.

mod config;
mod log;
mod membership;
mod node;
mod progress;
mod raft;
mod read_only;
mod rng;
mod storage;
mod types;

pub use config::{Config, ConfigError};
pub use node::{RawNode, Ready};
pub use progress::{ProgressState, ProgressView};
pub use raft::Status;
pub use storage::{limit_size, InitialState, LogStore, MemStorage, Storage, StorageError};
pub use types::*;

/// Deliberate bugs that break one Raft rule each, so tests can prove the
/// simulator's checkers catch them. Only with the test-only `mutations` feature.
#[cfg(feature = "mutations")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mutation {
    /// Grant a vote even after voting for someone else in the term.
    SecondVoteInTerm,
    /// Grant votes without the up-to-date log check.
    VoteWithoutLogCheck,
    /// Commit whatever a majority holds, even an older term's entry (Figure 8).
    CommitOldTermByCounting,
    /// Send vote and append replies before their state is durable.
    ReplyBeforePersist,
    /// Accept appends without comparing the previous entry's term (only that
    /// the follower's log reaches the previous index).
    SkipConsistencyCheck,
    /// Hand out entries for applying before they are committed.
    ApplyUncommitted,
    /// Accept a configuration change while an earlier one is uncommitted.
    ConfChangeWhilePending,
    /// Accept a configuration change before the leader committed an entry
    /// of its term, while an earlier leader's uncommitted change may still be
    /// replaced (the single-server change bug of 2015).
    ConfChangeBeforeTermCommitted,
    /// A follower commits up to its last index, not up to the last entry the
    /// append vouched for: a divergent suffix beyond it gets committed.
    CommitToLastIndex,
    /// Serve a ReadIndex read before the leader committed an entry of its
    /// term, at a commit index that may lag the one an earlier leader reached.
    ReadBeforeTermCommitted,
    /// Count any heartbeat answer towards the newest pending read, even one
    /// answering a heartbeat sent before the read arrived.
    ReadConfirmedByEarlierHeartbeat,
    /// Recover the hard state on restart without its vote, so a member that
    /// voted before it crashed may vote again in the same term.
    ForgetVoteOnRestart,
    /// Adopt the term of a pre-vote request, as if it were a real one: a
    /// member that cannot win raises the others' terms all the same.
    PreVoteBumpsTerm,
    /// Count a late pre-vote grant as a vote once the real campaign began.
    PreVoteGrantCountsAsVote,
    /// CheckQuorum counts a follower active only when it answers an append,
    /// not a heartbeat, so an idle leader steps down in a healthy cluster.
    CheckQuorumIgnoresHeartbeats,
}

/// Why the core refused an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaftError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// This member is not the leader; `leader` is the one it knows of, if any.
    #[error("not leader{}", match .leader { Some(id) => format!(", leader is {id:x}"), None => String::from(", no leader known") })]
    NotLeader { leader: Option<NodeId> },
    /// The leader is handing leadership over and accepts no proposals meanwhile.
    #[error("leadership transfer to {target:x} in progress")]
    TransferInProgress { target: NodeId },
    /// Too many linearizable reads wait for confirmation already.
    #[error("too many pending linearizable reads (limit {limit}); retry later")]
    TooManyPendingReads { limit: usize },
    /// A configuration change is still uncommitted; one change at a time.
    #[error("configuration change at index {index} is not committed yet; retry once it is")]
    ConfChangePending { index: LogIndex },
    /// The leader has not yet committed an entry of its term, so an earlier
    /// leader's uncommitted change may still be replaced.
    #[error("leader has not committed an entry of term {term} yet; retry shortly")]
    ConfChangeBeforeTermCommitted { term: Term },
    /// The change does not fit the configuration in force.
    #[error("invalid configuration change: {0}")]
    InvalidConfChange(#[from] ConfChangeError),
    /// The transfer target is not a voting member of the cluster.
    #[error("member {0:x} is not a voter of this cluster")]
    UnknownMember(NodeId),
    /// A message addressed to another member, or from a member this one does not know.
    #[error("message from {from:x} to {to:x} does not belong at member {local:x}")]
    MisroutedMessage {
        from: NodeId,
        to: NodeId,
        local: NodeId,
    },
}
