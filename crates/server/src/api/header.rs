//! The response header every etcd answer carries. Owns only its assembly.

use crate::backend::{Backend, NodeStatus};
use crate::proto::etcdserverpb::ResponseHeader;

/// etcd's header: who answered (cluster and member), at which store revision,
/// in which Raft term.
pub(crate) fn header(status: &NodeStatus, revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: status.cluster_id,
        member_id: status.member_id,
        revision,
        raft_term: status.raft_term,
    })
}

/// The header of an answer that reads no particular revision: the member's
/// status now, at the store's current revision.
pub(crate) fn current_header<B: Backend>(backend: &B) -> Option<ResponseHeader> {
    header(&backend.status(), backend.store().current_revision())
}
