//! The raftkv server: etcd's v3 gRPC API, the peer transport, the node thread and
//! the `serve` configuration. It drives the consensus core and never decides
//! anything the core decides.
//!
//! - [`api`]: etcd's KV, Watch, Lease, Maintenance and Cluster services on
//!   any [`backend::Backend`] ([`api::routes`]).
//! - [`watch`]: the watch hub: watchers fed by the events the node applies,
//!   catching up from the store's history when they start in the past or
//!   fall behind.
//! - [`lease`]: the lessor: the leader's lease deadlines, expiry, and
//!   forwarding of keepalives to the leader.
//! - [`proto`]: the generated etcd v3 API (`etcdserverpb`, `mvccpb`, `authpb`)
//!   and our peer schema (`raftkvpb`).
//! - [`etcd_error`]: etcd's API errors with their exact gRPC codes and messages.
//! - [`config`]: `raftkv serve` flags (etcd's) and the checked [`config::ServeConfig`].
//! - [`peer_codec`]: [`raft::Message`] to and from bytes for the peer transport.
//! - [`node`]: the node thread running the `node` crate's loop over the WAL,
//!   mvcc and the transport; its handle is the [`backend::Backend`].
//! - [`transport`]: Raft messages between members over gRPC streams.
//! - [`startup`]: what a member without data asks its peers before it starts:
//!   refuse a wiped member, adopt the id of the cluster it joins.
//! - [`to_leader`]: requests only the leader answers (lease renewals,
//!   membership changes), passed on to it by a follower.
//! - [`serve`]: a whole member: listeners, transport, node, clean shutdown.

pub mod api;
pub mod backend;
pub mod config;
pub mod etcd_error;
pub mod lease;
pub mod node;
pub mod peer_codec;
pub mod proto;
pub mod serve;
pub mod startup;
pub mod to_leader;
pub mod transport;
pub mod watch;
