//! The Rust types and gRPC services generated from the .proto files under
//! `proto/`. This module only exposes generated code and the compiled
//! descriptors; it holds no logic and must never hand-edit a wire type.
//!
//! The etcd packages keep etcd's names and field numbers, so etcd's clients
//! and `etcdctl` speak to these services unchanged.

/// etcd's MVCC records (`mvccpb`): key-values and watch events.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod mvccpb {
    tonic::include_proto!("mvccpb");
}

/// etcd's authentication records (`authpb`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod authpb {
    tonic::include_proto!("authpb");
}

/// etcd's v3 API (`etcdserverpb`): the KV, Watch, Lease, Cluster, Maintenance
/// and Auth services with their request and response messages.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod etcdserverpb {
    tonic::include_proto!("etcdserverpb");
}

/// raftkv's own peer protocol (`raftkvpb`): the consensus core's messages on
/// the wire between members. Converted to and from the core's types by
/// [`crate::peer_codec`].
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod raftkvpb {
    tonic::include_proto!("raftkvpb");
}

/// The encoded `google.protobuf.FileDescriptorSet` of every .proto file this
/// crate compiles, for gRPC server reflection and for checking the API shape.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/raftkv_descriptor_set.bin"));

#[cfg(test)]
mod tests {
    use super::etcdserverpb::{
        alarm_request, compare, range_request, AlarmRequest, AlarmType, Compare, LeaseGrantRequest,
        Member, RangeRequest, RangeResponse, ResponseHeader, StatusResponse, WatchResponse,
    };
    use super::mvccpb::{event::EventType, Event, KeyValue};
    use super::FILE_DESCRIPTOR_SET;
    use prost::Message;
    use prost_types::FileDescriptorSet;

    /// Every method of etcd 3.4's v3 API: (service, method, client streams,
    /// server streams). A client calls `/<package>.<service>/<method>`, so a
    /// renamed or missing entry breaks etcdctl.
    const ETCD_V3_METHODS: &[(&str, &str, bool, bool)] = &[
        ("KV", "Range", false, false),
        ("KV", "Put", false, false),
        ("KV", "DeleteRange", false, false),
        ("KV", "Txn", false, false),
        ("KV", "Compact", false, false),
        ("Watch", "Watch", true, true),
        ("Lease", "LeaseGrant", false, false),
        ("Lease", "LeaseRevoke", false, false),
        ("Lease", "LeaseKeepAlive", true, true),
        ("Lease", "LeaseTimeToLive", false, false),
        ("Lease", "LeaseLeases", false, false),
        ("Cluster", "MemberAdd", false, false),
        ("Cluster", "MemberRemove", false, false),
        ("Cluster", "MemberUpdate", false, false),
        ("Cluster", "MemberList", false, false),
        ("Cluster", "MemberPromote", false, false),
        ("Maintenance", "Alarm", false, false),
        ("Maintenance", "Status", false, false),
        ("Maintenance", "Defragment", false, false),
        ("Maintenance", "Hash", false, false),
        ("Maintenance", "HashKV", false, false),
        ("Maintenance", "Snapshot", false, true),
        ("Maintenance", "MoveLeader", false, false),
        ("Auth", "AuthEnable", false, false),
        ("Auth", "AuthDisable", false, false),
        ("Auth", "Authenticate", false, false),
        ("Auth", "UserAdd", false, false),
        ("Auth", "UserGet", false, false),
        ("Auth", "UserList", false, false),
        ("Auth", "UserDelete", false, false),
        ("Auth", "UserChangePassword", false, false),
        ("Auth", "UserGrantRole", false, false),
        ("Auth", "UserRevokeRole", false, false),
        ("Auth", "RoleAdd", false, false),
        ("Auth", "RoleGet", false, false),
        ("Auth", "RoleList", false, false),
        ("Auth", "RoleDelete", false, false),
        ("Auth", "RoleGrantPermission", false, false),
        ("Auth", "RoleRevokePermission", false, false),
    ];

    fn etcdserverpb_methods() -> Vec<(String, String, bool, bool)> {
        let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
        let file = set
            .file
            .iter()
            .find(|file| file.package() == "etcdserverpb")
            .expect("etcdserverpb is compiled");
        let mut methods = Vec::new();
        for service in &file.service {
            for method in &service.method {
                methods.push((
                    service.name().to_owned(),
                    method.name().to_owned(),
                    method.client_streaming(),
                    method.server_streaming(),
                ));
            }
        }
        methods
    }

    #[test]
    fn services_expose_exactly_the_etcd_3_4_methods() {
        let mut expected: Vec<_> = ETCD_V3_METHODS
            .iter()
            .map(|&(service, method, client, server)| {
                (service.to_owned(), method.to_owned(), client, server)
            })
            .collect();
        let mut actual = etcdserverpb_methods();
        expected.sort();
        actual.sort();
        assert_eq!(actual, expected);
    }

    #[test]
    fn generated_services_use_etcd_grpc_names() {
        use super::etcdserverpb::{
            auth_server, cluster_server, kv_server, lease_server, maintenance_server, watch_server,
        };
        assert_eq!(kv_server::SERVICE_NAME, "etcdserverpb.KV");
        assert_eq!(watch_server::SERVICE_NAME, "etcdserverpb.Watch");
        assert_eq!(lease_server::SERVICE_NAME, "etcdserverpb.Lease");
        assert_eq!(cluster_server::SERVICE_NAME, "etcdserverpb.Cluster");
        assert_eq!(maintenance_server::SERVICE_NAME, "etcdserverpb.Maintenance");
        assert_eq!(auth_server::SERVICE_NAME, "etcdserverpb.Auth");
    }

    /// Decodes bytes laid out by hand from etcd's field numbers and wire types,
    /// and checks both that they decode to `expected` and that `expected`
    /// encodes to bytes that decode back to it.
    fn assert_wire<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8], expected: M) {
        let decoded = M::decode(bytes).expect("hand-laid bytes decode");
        assert_eq!(decoded, expected);
        let reencoded =
            M::decode(expected.encode_to_vec().as_slice()).expect("re-encoding decodes");
        assert_eq!(reencoded, expected);
    }

    #[test]
    fn range_request_fields_have_etcd_numbers() {
        let bytes = [
            0x0a, 1, b'a', // 1: key
            0x12, 1, b'b', // 2: range_end
            0x18, 5, // 3: limit
            0x20, 7, // 4: revision
            0x28, 2, // 5: sort_order = DESCEND
            0x30, 3, // 6: sort_target = MOD
            0x38, 1, // 7: serializable
            0x40, 1, // 8: keys_only
            0x48, 1, // 9: count_only
            0x50, 1, // 10: min_mod_revision
            0x58, 2, // 11: max_mod_revision
            0x60, 3, // 12: min_create_revision
            0x68, 4, // 13: max_create_revision
        ];
        let expected = RangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            limit: 5,
            revision: 7,
            sort_order: range_request::SortOrder::Descend as i32,
            sort_target: range_request::SortTarget::Mod as i32,
            serializable: true,
            keys_only: true,
            count_only: true,
            min_mod_revision: 1,
            max_mod_revision: 2,
            min_create_revision: 3,
            max_create_revision: 4,
        };
        assert_wire(&bytes, expected);
    }

    #[test]
    fn range_response_carries_header_and_key_values() {
        let bytes = [
            0x0a, 8, 0x08, 1, 0x10, 2, 0x18, 3, 0x20, 4, // 1: header {1,2,3,4}
            0x12, 7, 0x0a, 1, b'k', 0x10, 9, 0x2a,
            0, // 2: kvs [{key, create_revision, value}]
            0x18, 1, // 3: more
            0x20, 2, // 4: count
        ];
        let expected = RangeResponse {
            header: Some(ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![KeyValue {
                key: b"k".to_vec(),
                create_revision: 9,
                ..KeyValue::default()
            }],
            more: true,
            count: 2,
        };
        assert_wire(&bytes, expected);
    }

    #[test]
    fn compare_range_end_is_field_64_and_lease_is_in_the_oneof() {
        let bytes = [
            0x08, 3, // 1: result = NOT_EQUAL
            0x10, 4, // 2: target = LEASE
            0x1a, 1, b'k', // 3: key
            0x40, 9, // 8: lease (target_union)
            0x82, 0x04, 1, b'z', // 64: range_end
        ];
        let expected = Compare {
            result: compare::CompareResult::NotEqual as i32,
            target: compare::CompareTarget::Lease as i32,
            key: b"k".to_vec(),
            range_end: b"z".to_vec(),
            target_union: Some(compare::TargetUnion::Lease(9)),
        };
        assert_wire(&bytes, expected);
    }

    #[test]
    fn watch_response_events_are_field_11() {
        let bytes = [
            0x10, 3, // 2: watch_id
            0x5a, 9, // 11: events, one event of 9 bytes
            0x08, 1, // event 1: type = DELETE
            0x12, 5, 0x0a, 1, b'k', 0x18, 5, // event 2: kv {key, mod_revision}
        ];
        let expected = WatchResponse {
            watch_id: 3,
            events: vec![Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: b"k".to_vec(),
                    mod_revision: 5,
                    ..KeyValue::default()
                }),
                prev_kv: None,
            }],
            ..WatchResponse::default()
        };
        assert_wire(&bytes, expected);
    }

    #[test]
    fn lease_grant_ttl_is_field_1_and_id_field_2() {
        assert_wire(&[0x08, 60, 0x10, 7], LeaseGrantRequest { ttl: 60, id: 7 });
    }

    #[test]
    fn member_fields_have_etcd_numbers() {
        let bytes = [
            0x08, 0xb4, 0x24, // 1: ID = 0x1234
            0x12, 2, b'n', b'1', // 2: name
            0x1a, 1, b'p', // 3: peerURLs
            0x22, 1, b'c', // 4: clientURLs
            0x28, 1, // 5: isLearner
        ];
        let expected = Member {
            id: 0x1234,
            name: "n1".to_owned(),
            peer_ur_ls: vec!["p".to_owned()],
            client_ur_ls: vec!["c".to_owned()],
            is_learner: true,
        };
        assert_wire(&bytes, expected);
    }

    #[test]
    fn status_response_fields_have_etcd_numbers() {
        let bytes = [
            0x12, 5, b'3', b'.', b'4', b'.', b'0', // 2: version
            0x18, 3, // 3: dbSize
            0x20, 4, // 4: leader
            0x28, 5, // 5: raftIndex
            0x30, 6, // 6: raftTerm
            0x38, 7, // 7: raftAppliedIndex
            0x42, 1, b'e', // 8: errors
            0x48, 9, // 9: dbSizeInUse
            0x50, 1, // 10: isLearner
        ];
        let expected = StatusResponse {
            header: None,
            version: "3.4.0".to_owned(),
            db_size: 3,
            leader: 4,
            raft_index: 5,
            raft_term: 6,
            raft_applied_index: 7,
            errors: vec!["e".to_owned()],
            db_size_in_use: 9,
            is_learner: true,
        };
        assert_wire(&bytes, expected);
    }

    #[test]
    fn alarm_request_fields_have_etcd_numbers() {
        let expected = AlarmRequest {
            action: alarm_request::AlarmAction::Activate as i32,
            member_id: 5,
            alarm: AlarmType::Nospace as i32,
        };
        assert_wire(&[0x08, 1, 0x10, 5, 0x18, 1], expected);
    }
}
