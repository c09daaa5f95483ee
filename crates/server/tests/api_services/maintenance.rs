//! Maintenance: Status, Hash, HashKV, Alarm, Defragment.

use std::sync::Arc;

use server::api::maintenance::ETCD_CLUSTER_VERSION;
use server::api::{ApiLimits, KvService, MaintenanceService};
use server::backend::KvBackend;
use server::proto::etcdserverpb::alarm_request::AlarmAction;
use server::proto::etcdserverpb::kv_server::Kv;
use server::proto::etcdserverpb::maintenance_server::Maintenance;
use server::proto::etcdserverpb::{
    AlarmRequest, DefragmentRequest, HashKvRequest, HashRequest, PutRequest, StatusRequest,
};
use tonic::{Code, Request};

use crate::common::local_backend::{LocalBackend, CLUSTER_ID, MEMBER_ID, RAFT_TERM};
use crate::{assert_status, run};

fn put(backend: &Arc<LocalBackend>, key: &str, value: &str) {
    let kv = KvService::new(Arc::clone(backend), ApiLimits::default());
    run(kv.put(Request::new(PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    })))
    .expect("put succeeds");
}

#[test]
fn status_reports_version_leader_raft_progress_and_db_size() {
    let backend = LocalBackend::in_memory();
    put(&backend, "a", "1");
    put(&backend, "b", "2");
    let service = MaintenanceService::new(Arc::clone(&backend));
    let status = run(service.status(Request::new(StatusRequest {})))
        .unwrap()
        .into_inner();
    let header = status.header.unwrap();
    assert_eq!(
        (
            header.cluster_id,
            header.member_id,
            header.raft_term,
            header.revision
        ),
        (CLUSTER_ID, MEMBER_ID, RAFT_TERM, 3)
    );
    assert_eq!(status.version, ETCD_CLUSTER_VERSION);
    assert_eq!(status.leader, MEMBER_ID);
    assert_eq!(status.raft_term, RAFT_TERM);
    assert_eq!((status.raft_index, status.raft_applied_index), (2, 2));
    let db_size = i64::try_from(backend.store().db_size_bytes().unwrap()).unwrap();
    assert!(db_size > 0);
    assert_eq!(status.db_size, db_size);
    assert!(status.errors.is_empty(), "{:?}", status.errors);
}

#[test]
fn status_without_a_leader_says_so() {
    let backend = LocalBackend::in_memory();
    backend.set_leader(None);
    let service = MaintenanceService::new(backend);
    let status = run(service.status(Request::new(StatusRequest {})))
        .unwrap()
        .into_inner();
    assert_eq!(status.leader, 0);
    assert_eq!(status.errors, ["etcdserver: no leader"]);
}

#[test]
fn hash_follows_the_store_and_changes_with_a_write() {
    let backend = LocalBackend::in_memory();
    let service = MaintenanceService::new(Arc::clone(&backend));
    let before = run(service.hash(Request::new(HashRequest {})))
        .unwrap()
        .into_inner();
    assert_eq!(before.hash, backend.store().hash().unwrap());
    put(&backend, "a", "1");
    let after = run(service.hash(Request::new(HashRequest {})))
        .unwrap()
        .into_inner();
    assert_eq!(after.hash, backend.store().hash().unwrap());
    assert_ne!(before.hash, after.hash);
    assert_eq!(after.header.unwrap().revision, 2);
}

#[test]
fn hash_kv_hashes_up_to_the_requested_revision() {
    let backend = LocalBackend::in_memory();
    put(&backend, "a", "1");
    put(&backend, "a", "2");
    let service = MaintenanceService::new(Arc::clone(&backend));
    let at_2 = run(service.hash_kv(Request::new(HashKvRequest { revision: 2 })))
        .unwrap()
        .into_inner();
    let current = run(service.hash_kv(Request::new(HashKvRequest { revision: 0 })))
        .unwrap()
        .into_inner();
    assert_eq!(at_2.hash, backend.store().hash_kv(2).unwrap().hash);
    assert_eq!(current.hash, backend.store().hash_kv(3).unwrap().hash);
    assert_ne!(at_2.hash, current.hash);
    assert_eq!(current.compact_revision, 0);
    assert_eq!(current.header.unwrap().revision, 3);
    assert_status(
        run(service.hash_kv(Request::new(HashKvRequest { revision: 9 }))),
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
}

#[test]
fn alarms_list_none_and_cannot_be_raised() {
    let service = MaintenanceService::new(LocalBackend::in_memory());
    for action in [AlarmAction::Get, AlarmAction::Deactivate] {
        let response = run(service.alarm(Request::new(AlarmRequest {
            action: action as i32,
            ..AlarmRequest::default()
        })))
        .unwrap()
        .into_inner();
        assert!(response.alarms.is_empty());
        assert_eq!(response.header.unwrap().member_id, MEMBER_ID);
    }
    let activate = run(service.alarm(Request::new(AlarmRequest {
        action: AlarmAction::Activate as i32,
        ..AlarmRequest::default()
    })));
    assert_eq!(activate.unwrap_err().code(), Code::Unimplemented);
    let unknown = run(service.alarm(Request::new(AlarmRequest {
        action: 7,
        ..AlarmRequest::default()
    })));
    assert_eq!(unknown.unwrap_err().code(), Code::InvalidArgument);
}

#[test]
fn defragment_succeeds_without_changing_the_store() {
    let backend = LocalBackend::in_memory();
    put(&backend, "a", "1");
    let hash_before = backend.store().hash().unwrap();
    let service = MaintenanceService::new(Arc::clone(&backend));
    let response = run(service.defragment(Request::new(DefragmentRequest {})))
        .unwrap()
        .into_inner();
    assert_eq!(response.header.unwrap().revision, 2);
    assert_eq!(backend.store().hash().unwrap(), hash_before);
}
