//! What the node loop needs from the world, as traits: the durable log
//! (`raft::LogStore`), the state machine, where messages for peers go, and
//! how a waiting client is answered. The server implements them with the WAL,
//! mvcc, sockets and channels; the simulator with simulated disks and its own
//! clients. Nothing here does I/O.

use raft::{Entry, LogIndex, LogStore, Message, NodeId, Ready};

use crate::members::MemberList;

/// A member of the cluster as the Cluster service reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    /// A non-voting member that receives the log (etcd's learner).
    pub is_learner: bool,
}

/// Why a client's request was not answered with a result; the server maps
/// these to etcd's errors.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    #[error("no leader")]
    NoLeader,
    #[error("leader changed before the request committed")]
    LeaderChanged,
    #[error("request timed out")]
    Timeout,
    #[error("the member is shutting down")]
    Stopped,
    #[error("storage failure: {0}")]
    Storage(String),
    /// This member's disk is full: it takes no writes until space is freed.
    #[error("this member's disk is full")]
    NoSpace,
    /// The core refused a configuration change (not the leader, another
    /// change pending, or a change that does not fit the configuration).
    #[error("configuration change refused: {0}")]
    Reconfiguration(raft::RaftError),
}

/// One committed entry as the state machine sees it: its index and, for a
/// normal entry, the command its proposer framed (`None` for no-ops,
/// configuration changes and bytes no member can read, which only move the
/// applied index on every member alike).
#[derive(Clone, Copy, Debug)]
pub struct Committed<'a> {
    pub index: LogIndex,
    pub command: Option<&'a [u8]>,
}

/// The replicated state machine. Applies happen only on the node loop, in
/// index order; each index exactly once across restarts (an index at or below
/// `applied_index` is skipped by the implementation).
pub trait StateMachine {
    /// What applying one entry gives its proposer.
    type Answer;
    type Error: std::error::Error + Send + Sync + 'static;

    /// The last index whose effects are visible to reads.
    fn applied_index(&self) -> LogIndex;

    /// Applies committed entries in index order, visible to reads started
    /// after it returns; one answer per entry, in order. Durability may be
    /// deferred: the log replays what a crash loses.
    fn apply(&mut self, entries: &[Committed<'_>]) -> Result<Vec<Self::Answer>, Self::Error>;

    /// Makes every applied entry durable (before the log behind them is cut,
    /// and when the node stops).
    fn flush(&mut self) -> Result<(), Self::Error>;

    /// Replaces the state with the leader's snapshot `data`, durably.
    fn restore(&mut self, data: &[u8]) -> Result<(), Self::Error>;

    /// Starts taking a snapshot of the applied state; it may finish later
    /// (on another thread), reported by [`StateMachine::finished_snapshot`].
    fn start_snapshot(&mut self) -> Result<(), Self::Error>;

    /// The snapshot started last, once it is finished: its applied index and
    /// bytes.
    fn finished_snapshot(&mut self) -> Result<Option<(LogIndex, Vec<u8>)>, Self::Error>;

    /// What a node with the [`crate::Mutation::WriteAckedBeforeApplied`]
    /// bug answers for `command` before applying it: the answer the command
    /// usually gets, if it has one that does not depend on the state.
    #[cfg(feature = "mutations")]
    fn answer_unapplied(&self, _command: &[u8]) -> Option<Self::Answer> {
        None
    }

    /// Saves the member list durably. Called before the entries that changed
    /// it are applied, so a restart never finds the state machine ahead of
    /// the list.
    fn save_members(&mut self, members: &MemberList) -> Result<(), Self::Error>;
}

/// Where the node puts messages for peers. Must not block.
pub trait Outbox {
    fn send(&self, message: Message);

    /// The member list changed (or was loaded at start): send to these
    /// members from now on, and to no other.
    fn set_members(&self, members: &[Member]);
}

/// How one waiting client is answered.
pub trait Reply<T> {
    fn send(self, answer: T);

    /// The client stopped waiting: its request may be forgotten.
    fn is_closed(&self) -> bool;
}

/// Watches what the node does, for an embedder that checks it (the
/// simulator's invariant checkers). It sees; it never changes anything. The
/// server observes nothing (`()`).
pub trait Observer {
    /// A `Ready` was just taken from the core; nothing of it is handled yet.
    fn ready(&mut self, _ready: &Ready) {}

    /// `entry` is about to be applied; `command` is what the state machine
    /// gets of it (see [`Committed::command`]).
    fn applying(&mut self, _entry: &Entry, _command: Option<&[u8]>) {}
}

impl Observer for () {}

/// Everything a node runs over, chosen once per embedding.
pub trait Host {
    type Log: LogStore;
    type StateMachine: StateMachine;
    type Outbox: Outbox;
    /// Answers a proposed command: the state machine's answer once applied here.
    type CommandReply: Reply<Result<<Self::StateMachine as StateMachine>::Answer, RequestError>>;
    /// Answers a read barrier: reads may start once it is answered `Ok`.
    type ReadReply: Reply<Result<(), RequestError>>;
    /// Answers a configuration change: applied on this member.
    type MembershipReply: Reply<Result<(), RequestError>>;
    type Observer: Observer;
}

impl<O: Outbox + ?Sized> Outbox for std::sync::Arc<O> {
    fn send(&self, message: Message) {
        (**self).send(message);
    }

    fn set_members(&self, members: &[Member]) {
        (**self).set_members(members);
    }
}
