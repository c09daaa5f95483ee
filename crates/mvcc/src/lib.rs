//! etcd's v3 data model as raftkv's replicated state machine, persisted in redb.
//!
//! The server decodes client requests into the types of [`types`], proposes the
//! writes as [`Command`]s (encoded with [`Command::encode`]), and applies
//! committed log entries in index order with [`Store::apply`],
//! [`Store::apply_batch`], or [`Store::apply_committed`] straight from the
//! entries' bytes (what the server and the simulator both do). Reads go straight to [`Store::range`]. Every write
//! transaction bumps the cluster-wide revision once; keys keep their history
//! (create revision, mod revision, version, tombstones) until a compaction, so
//! reads at past revisions work. Leases are replicated state too: granted
//! with their TTL, revoked with every key attached to them; their remaining
//! time is the server's to track.
//!
//! The crate must never know about Raft roles, the network or gRPC: it sees
//! only committed commands with their log index, and answers with plain values
//! and typed errors ([`RequestError`] carries etcd's messages for the server to
//! pass on).
//!
//! ```
//! use mvcc::{ApplyOutcome, Command, Durability, PutRequest, RangeRequest, Store};
//!
//! let store = Store::in_memory()?;
//! let put = Command::Put(PutRequest::new("greeting", "hello"));
//! // The bytes that go into the Raft log, and back.
//! let command = Command::decode(&put.encode())?;
//! command.validate()?; // the server refuses bad requests before proposing
//! let outcomes = store.apply_batch([(1, Some(&command)), (2, None)], Durability::Deferred)?;
//! assert!(matches!(&outcomes[0], ApplyOutcome::Applied(applied) if applied.revision == 2));
//! store.flush()?;
//! let response = store.range(&RangeRequest::single("greeting"))?;
//! assert_eq!(response.kvs[0].value, b"hello");
//! assert_eq!(store.applied_index(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod codec;
mod committed;
mod engine;
mod error;
mod hash;
mod history;
mod keys;
mod lease;
mod meta;
mod record;
mod snapshot;
mod store;
#[cfg(test)]
mod test_support;
pub mod types;
mod validate;
mod view;

/// What [`Store::with_backend`] stores the database in.
pub use redb::StorageBackend;

pub use codec::{DecodeError, COMMAND_FORMAT_VERSION, TXN_NESTING_DEPTH_MAX};
pub use committed::CommittedBatch;
pub use error::{Error, RequestError, StatusClass, StoreError};
pub use snapshot::SnapshotInfo;
#[cfg(feature = "mutations")]
pub use store::Mutation;
pub use store::{Applied, ApplyOutcome, Durability, Store, DEFERRED_COMMITS_MAX};
pub use types::*;
