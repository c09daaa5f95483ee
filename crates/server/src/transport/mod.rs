//! Raft messages between members over gRPC: per peer a bounded outbound
//! queue and a task holding one long-lived client stream that writes many
//! messages per batch ([`outbound`]); the `raftkvpb.Peer` service that
//! decodes received batches and hands them to the node ([`inbound`]).
//! Also the one fix applied to client connections before HTTP/2 parses them:
//! etcdctl's `http://host:port` authority made acceptable ([`client_authority`]).
//!
//! Raft tolerates lost messages, so the transport never blocks the node and
//! never retries a message: a full queue or a broken stream drops it. It
//! never interprets a message beyond its destination.

mod client_authority;
mod inbound;
mod outbound;

pub use client_authority::{AuthorityFix, AuthorityFixError};
pub use inbound::PeerService;
pub use outbound::Transport;

/// Metadata key naming the sender's cluster id (hex) on every peer stream.
pub const CLUSTER_ID_METADATA: &str = "raftkv-cluster-id";
/// The largest batch (or single message) a peer accepts or sends: room for a
/// whole-store snapshot in one InstallSnapshot message.
pub const PEER_MESSAGE_BYTES_MAX: usize = 1 << 30;
