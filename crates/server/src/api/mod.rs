//! etcd's v3 gRPC services (KV, Watch, Lease, Maintenance, Cluster) on any
//! [`Backend`].
//!
//! The services decode requests, apply etcd's stateless checks (empty key,
//! operation budget, duplicate keys, request size) before anything reaches the
//! log, hand writes to [`Backend::propose`] and serve reads from the local
//! store after [`Backend::read_barrier`] (or straight away for serializable
//! reads), and answer with etcd's messages and errors. They own no state of
//! their own and must never decide what the state machine or the consensus
//! core decides: revisions, compare outcomes and compaction are the store's.
//!
//! - [`limits`]: [`ApiLimits`], etcd's `--max-request-bytes` and `--max-txn-ops`.
//! - [`convert`]: protobuf messages to and from the state machine's types.
//! - [`errors`]: which etcd error answers which failure.
//! - [`kv_requests`]: the KV requests in the store's terms over any
//!   [`KvBackend`]: barrier or not, which store call, which header revision;
//!   shared by the KV service and the simulator's clients.
//! - [`kv`], [`watch`], [`lease`], [`maintenance`], [`cluster`]: the
//!   services. Watch streams are served by the backend's watch hub
//!   ([`crate::watch`]); lease deadlines are kept by the member's
//!   [`Lessor`](crate::lease::Lessor).
//!
//! Where the answers differ from etcd 3.4's, on purpose:
//! - every response header carries the store's revision, MemberList's too
//!   (etcd leaves it out there);
//! - Status reports version [`maintenance::ETCD_CLUSTER_VERSION`], the API
//!   level, and the whole database file as in use;
//! - a watch response may carry the events of several revisions (never part
//!   of one, unless fragmenting), where etcd sends a synced watcher one
//!   response per revision; a stream-wide progress answer names the
//!   revision every watcher of the stream has been handed, where etcd 3.4
//!   names the store's current revision regardless;
//! - membership changes, Snapshot, MoveLeader and raising alarms answer
//!   `Unimplemented`; LeaseLeases lists leases by id (see [`lease`]).
//!
//! [`Backend`]: crate::backend::Backend
//! [`KvBackend`]: crate::backend::KvBackend
//! [`Backend::propose`]: crate::backend::KvBackend::propose
//! [`Backend::read_barrier`]: crate::backend::KvBackend::read_barrier

pub mod cluster;
pub mod convert;
pub mod errors;
mod header;
pub mod kv;
pub mod kv_requests;
pub mod lease;
pub mod limits;
pub mod maintenance;
mod oversize;
pub mod watch;

use std::sync::Arc;

use tonic::service::Routes;

use crate::backend::Backend;
use crate::lease::Lessor;
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use oversize::EtcdOversizeStatus;

pub use cluster::ClusterService;
pub use kv::KvService;
pub use lease::LeaseService;
pub use limits::ApiLimits;
pub use maintenance::MaintenanceService;
pub use watch::WatchService;

/// The KV, Watch, Lease, Maintenance and Cluster services over `backend`
/// (the Lease service with the member's `lessor`), ready to be added to a
/// tonic server. Each refuses to decode a message larger than
/// [`ApiLimits::decoding_bytes_max`] with etcd's `ResourceExhausted`, as
/// etcd's gRPC server does; smaller writes above
/// [`ApiLimits::request_bytes_max`] get etcd's "request is too large".
pub fn routes<B: Backend>(backend: Arc<B>, lessor: Arc<Lessor>, limits: ApiLimits) -> Routes {
    let decoding_bytes_max = limits.decoding_bytes_max();
    let kv = KvServer::new(KvService::new(Arc::clone(&backend), limits))
        .max_decoding_message_size(decoding_bytes_max);
    let request_timeout = lessor.options().request_timeout;
    let lease = LeaseServer::new(LeaseService::new(Arc::clone(&backend), lessor))
        .max_decoding_message_size(decoding_bytes_max);
    let maintenance = MaintenanceServer::new(MaintenanceService::new(Arc::clone(&backend)))
        .max_decoding_message_size(decoding_bytes_max);
    let cluster = ClusterServer::new(ClusterService::new(Arc::clone(&backend), request_timeout))
        .max_decoding_message_size(decoding_bytes_max);
    let watch = WatchServer::new(WatchService::new(backend, limits))
        .max_decoding_message_size(decoding_bytes_max);
    Routes::new(EtcdOversizeStatus::new(kv))
        .add_service(EtcdOversizeStatus::new(lease))
        .add_service(EtcdOversizeStatus::new(maintenance))
        .add_service(EtcdOversizeStatus::new(cluster))
        .add_service(EtcdOversizeStatus::new(watch))
}
