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
/// Metadata key naming the sending member's id (hex).
pub const MEMBER_ID_METADATA: &str = "raftkv-member-id";
/// Metadata key carrying the sending member's advertised client URLs,
/// comma-separated, so every member can list every member's client URLs.
pub const CLIENT_URLS_METADATA: &str = "raftkv-client-urls";

/// Who opens a peer stream: checked and recorded by the receiving member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SenderIdentity {
    pub cluster_id: u64,
    pub member_id: raft::NodeId,
    pub client_urls: Vec<String>,
}

impl SenderIdentity {
    /// The identity as stream metadata.
    fn to_metadata(&self) -> Result<tonic::metadata::MetadataMap, String> {
        let mut metadata = tonic::metadata::MetadataMap::new();
        let value = |text: String| {
            text.parse::<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>()
                .map_err(|_| format!("{text:?} is not valid stream metadata"))
        };
        metadata.insert(
            CLUSTER_ID_METADATA,
            value(format!("{:x}", self.cluster_id))?,
        );
        metadata.insert(MEMBER_ID_METADATA, value(format!("{:x}", self.member_id))?);
        metadata.insert(CLIENT_URLS_METADATA, value(self.client_urls.join(","))?);
        Ok(metadata)
    }
}
/// The largest batch (or single message) a peer accepts or sends: room for a
/// whole-store snapshot in one InstallSnapshot message.
pub const PEER_MESSAGE_BYTES_MAX: usize = 1 << 30;
