//! Cluster: MemberList from the backend; membership changes refused for good.

use std::sync::Arc;

use server::api::cluster::MEMBERSHIP_CHANGE_UNSUPPORTED;
use server::api::ClusterService;
use server::proto::etcdserverpb::cluster_server::Cluster;
use server::proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MemberUpdateRequest,
};
use tonic::{Code, Request};

use crate::common::local_backend::{LocalBackend, CLUSTER_ID, MEMBER_ID, RAFT_TERM};
use crate::{assert_status, run};

#[test]
fn member_list_reports_the_backends_members_under_a_full_header() {
    let backend = LocalBackend::in_memory();
    let service = ClusterService::new(Arc::clone(&backend));
    let response = run(service.member_list(Request::new(MemberListRequest {})))
        .unwrap()
        .into_inner();
    let header = response.header.unwrap();
    assert_eq!(
        (
            header.cluster_id,
            header.member_id,
            header.raft_term,
            header.revision
        ),
        (CLUSTER_ID, MEMBER_ID, RAFT_TERM, 1)
    );
    assert_eq!(response.members.len(), 1);
    let member = &response.members[0];
    assert_eq!(member.id, MEMBER_ID);
    assert_eq!(member.name, "default");
    assert_eq!(member.peer_ur_ls, ["http://localhost:2380"]);
    assert_eq!(member.client_ur_ls, ["http://localhost:2379"]);
    assert!(!member.is_learner);
}

#[test]
fn membership_changes_are_unimplemented() {
    let service = ClusterService::new(LocalBackend::in_memory());
    let unimplemented = (Code::Unimplemented, MEMBERSHIP_CHANGE_UNSUPPORTED);
    assert_status(
        run(service.member_add(Request::new(MemberAddRequest::default()))),
        unimplemented.0,
        unimplemented.1,
    );
    assert_status(
        run(service.member_remove(Request::new(MemberRemoveRequest { id: MEMBER_ID }))),
        unimplemented.0,
        unimplemented.1,
    );
    assert_status(
        run(service.member_update(Request::new(MemberUpdateRequest::default()))),
        unimplemented.0,
        unimplemented.1,
    );
    assert_status(
        run(service.member_promote(Request::new(MemberPromoteRequest { id: MEMBER_ID }))),
        unimplemented.0,
        unimplemented.1,
    );
}
