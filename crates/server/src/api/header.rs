//! The response header every etcd answer carries. Owns only its assembly.

use crate::backend::NodeStatus;
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
