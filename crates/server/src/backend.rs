//! The seam between the etcd API services and the node that replicates:
//! the services decode requests and encode answers; a [`Backend`] turns writes
//! into committed, applied log entries and confirms linearizable reads. The
//! real backend is the node driver; tests may use a single-process one.
//!
//! The KV path needs only the part in [`KvBackend`]; the deterministic
//! simulator implements that part for its members, so its clients run the
//! same request handling as the gRPC service ([`crate::api::kv_requests`])
//! without a watch hub or a member list it could not honestly provide.

use std::future::Future;

use raft::NodeId;

pub use node::{Member, RequestError};

/// A single-member configuration change as the Cluster service asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipChange {
    pub change: raft::ConfChange,
    /// The member's name and peer URLs, recorded in the replicated list when
    /// the change adds it; ignored by the other kinds.
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// What the Maintenance service and every response header report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub cluster_id: u64,
    pub member_id: NodeId,
    /// The leader this member knows of, if any.
    pub leader: Option<NodeId>,
    pub raft_term: u64,
    /// The last index in the member's Raft log.
    pub raft_index: u64,
    pub raft_applied_index: u64,
    /// The index of the snapshot the member's log is compacted behind.
    pub snapshot_index: u64,
    /// Set while this member's disk is full: the log's error, naming the
    /// file. Writes are refused and a NOSPACE alarm is listed meanwhile.
    pub disk_full: Option<String>,
}

/// Why a backend could not serve a request; the services map these to etcd's
/// errors (`EtcdError::NoLeader`, `LeaderChanged`, `Timeout`, ...).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The node could not see the request through (no leader, a timeout, a
    /// stop, a storage failure, a refused configuration change).
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error("state machine failure: {0}")]
    Store(#[from] mvcc::StoreError),
}

/// What the KV path needs of a replicated node: writes through the log,
/// the read barrier, and the local store.
pub trait KvBackend: Send + Sync + 'static {
    /// Replicates a write, waits until it is committed and applied on this
    /// member, and returns the state machine's answer. Works on any member:
    /// followers pass the write to the leader.
    fn propose(
        &self,
        command: mvcc::Command,
    ) -> impl Future<Output = Result<mvcc::Applied, BackendError>> + Send;

    /// Resolves once this member has applied everything committed before the
    /// call (the ReadIndex barrier), so a read of the local store that follows
    /// is linearizable.
    fn read_barrier(&self) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// The local state machine, for reads after `read_barrier` and for
    /// serializable reads without it.
    fn store(&self) -> &mvcc::Store;

    /// The deliberate bug the KV path runs with, if any (test builds with
    /// the `mutations` feature, to prove the simulator catches it).
    #[cfg(feature = "mutations")]
    fn kv_mutation(&self) -> Option<crate::api::kv_requests::Mutation> {
        None
    }
}

/// A replicated key-value node as the API services see it.
pub trait Backend: KvBackend {
    /// The watchers of this member, fed by what it applies.
    fn watch_hub(&self) -> &crate::watch::Hub;

    fn status(&self) -> NodeStatus;

    /// A fresh id for a new member with `peer_urls`, none of `taken` (see
    /// [`crate::config::fresh_member_id`]); the joining member learns it from
    /// its peers' member list.
    fn new_member_id(&self, peer_urls: &[crate::config::Url], taken: &[NodeId]) -> NodeId;

    /// The members as this member last applied them.
    fn members(&self) -> Vec<Member>;

    /// Replicates a configuration change through the leader and resolves once
    /// it is applied on this member, so `members` then includes it.
    fn change_membership(
        &self,
        change: MembershipChange,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}
