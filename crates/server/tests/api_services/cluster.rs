//! Cluster: MemberList from the backend; membership changes checked with
//! etcd's errors before they reach the backend.

use std::sync::Arc;
use std::time::Duration;

use server::api::cluster::MEMBER_UPDATE_UNSUPPORTED;
use server::api::ClusterService;
use server::proto::etcdserverpb::cluster_server::Cluster;
use server::proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MemberUpdateRequest,
};
use tonic::{Code, Request};

use crate::common::local_backend::{LocalBackend, CLUSTER_ID, MEMBER_ID, RAFT_TERM};
use crate::{assert_status, run};

/// How long a change may take; these backends answer at once.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn member_list_reports_the_backends_members_under_a_full_header() {
    let backend = LocalBackend::in_memory();
    let service = ClusterService::new(Arc::clone(&backend), REQUEST_TIMEOUT);
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
fn membership_changes_are_checked_against_the_list_with_etcds_errors() {
    let service = ClusterService::new(LocalBackend::in_memory(), REQUEST_TIMEOUT);
    let add = |urls: &[&str]| {
        run(service.member_add(Request::new(MemberAddRequest {
            peer_ur_ls: urls.iter().map(|url| url.to_string()).collect(),
            is_learner: true,
        })))
    };
    assert_status(
        add(&[]),
        Code::InvalidArgument,
        "etcdserver: given member URLs are invalid",
    );
    assert_status(
        add(&["not a url"]),
        Code::InvalidArgument,
        "etcdserver: given member URLs are invalid",
    );
    assert_status(
        add(&["http://localhost:2380"]),
        Code::FailedPrecondition,
        "etcdserver: Peer URLs already exists",
    );
    assert_status(
        add(&["http://localhost:2380", "http://localhost:2381"]),
        Code::FailedPrecondition,
        "etcdserver: Peer URLs already exists",
    );
    assert_status(
        run(service.member_remove(Request::new(MemberRemoveRequest { id: MEMBER_ID + 1 }))),
        Code::NotFound,
        "etcdserver: member not found",
    );
    assert_status(
        run(service.member_promote(Request::new(MemberPromoteRequest { id: MEMBER_ID + 1 }))),
        Code::NotFound,
        "etcdserver: member not found",
    );
    assert_status(
        run(service.member_promote(Request::new(MemberPromoteRequest { id: MEMBER_ID }))),
        Code::FailedPrecondition,
        "etcdserver: can only promote a learner member",
    );
    assert_status(
        run(service.member_update(Request::new(MemberUpdateRequest::default()))),
        Code::Unimplemented,
        MEMBER_UPDATE_UNSUPPORTED,
    );
}

#[test]
fn a_change_that_passes_the_checks_goes_to_the_backend() {
    let service = ClusterService::new(LocalBackend::in_memory(), REQUEST_TIMEOUT);
    // The single-process backend refuses every change as a member with no
    // leader would; the refusal reaches the client as etcd's error.
    assert_status(
        run(service.member_add(Request::new(MemberAddRequest {
            peer_ur_ls: vec!["http://127.0.0.1:12380".to_string()],
            is_learner: false,
        }))),
        Code::Unavailable,
        "etcdserver: no leader",
    );
    assert_status(
        run(service.member_remove(Request::new(MemberRemoveRequest { id: MEMBER_ID }))),
        Code::Unavailable,
        "etcdserver: no leader",
    );
}
