//! The one node loop of raftkv, without I/O: it drives the Raft core
//! ([`raft::RawNode`]) through its `Ready` batches, frames proposals so a
//! member finds its own entries in the log, answers the clients waiting on
//! them once applied, releases linearizable reads once their read index is
//! applied, applies committed entries in order, keeps the replicated member
//! list and decides when to snapshot and compact.
//!
//! It talks to the world only through the traits of [`Host`]: the durable log
//! ([`raft::LogStore`]), the [`StateMachine`], the [`Outbox`] for peers, and a
//! [`Reply`] per waiting client. Time is [`Node::tick`]. The server drives it
//! on an OS thread over the WAL, mvcc and sockets; the simulator drives the
//! same code in virtual time over simulated disks. It must never open a
//! file, a socket or a thread, read a clock, or know which log or store sits
//! behind its traits.

mod envelope;
mod host;
mod members;
mod node;
mod snapshots;
mod waiters;

#[cfg(test)]
mod test_support;

pub use host::{Committed, Host, Member, Observer, Outbox, Reply, RequestError, StateMachine};
pub use members::{MemberContext, MemberList, MembersDecodeError};
#[cfg(feature = "mutations")]
pub use node::Mutation;
pub use node::{Node, NodeError, NodeOptions, PersistedReady};
