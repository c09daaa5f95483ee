//! KV: Range, Put, DeleteRange, Txn and Compact, one rule per test.

use std::sync::Arc;

use server::api::{ApiLimits, KvService};
use server::backend::KvBackend;
use server::backend::{BackendError, RequestError};
use server::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use server::proto::etcdserverpb::kv_server::Kv;
use server::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use server::proto::etcdserverpb::{
    request_op, response_op, CompactionRequest, Compare, DeleteRangeRequest, PutRequest,
    RangeRequest, RangeResponse, RequestOp, TxnRequest, TxnResponse,
};
use tonic::{Code, Request};

use crate::common::local_backend::{LocalBackend, CLUSTER_ID, MEMBER_ID, RAFT_TERM};
use crate::{assert_status, run};

const EMPTY_KEY: &str = "etcdserver: key is not provided";
const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";

struct Fixture {
    backend: Arc<LocalBackend>,
    kv: KvService<LocalBackend>,
}

fn fixture() -> Fixture {
    fixture_with(ApiLimits::default())
}

fn fixture_with(limits: ApiLimits) -> Fixture {
    let backend = LocalBackend::in_memory();
    let kv = KvService::new(Arc::clone(&backend), limits);
    Fixture { backend, kv }
}

impl Fixture {
    /// Puts each pair in its own revision, starting at revision 2.
    fn put_all(&self, pairs: &[(&str, &str)]) {
        for (key, value) in pairs {
            self.put(key, value);
        }
    }

    fn put(&self, key: &str, value: &str) -> i64 {
        run(self.kv.put(Request::new(put_request(key, value))))
            .expect("put succeeds")
            .into_inner()
            .header
            .expect("put has a header")
            .revision
    }

    fn range(&self, request: RangeRequest) -> RangeResponse {
        run(self.kv.range(Request::new(request)))
            .expect("range succeeds")
            .into_inner()
    }

    fn txn(&self, request: TxnRequest) -> TxnResponse {
        run(self.kv.txn(Request::new(request)))
            .expect("txn succeeds")
            .into_inner()
    }
}

fn put_request(key: &str, value: &str) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..PutRequest::default()
    }
}

fn range_of(key: &str, range_end: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.into(),
        range_end: range_end.to_vec(),
        ..RangeRequest::default()
    }
}

fn keys(response: &RangeResponse) -> Vec<String> {
    response
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

fn values(response: &RangeResponse) -> Vec<String> {
    response
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .collect()
}

// --- headers -------------------------------------------------------------

#[test]
fn every_answer_carries_cluster_member_revision_and_term() {
    let fixture = fixture();
    let put = run(fixture.kv.put(Request::new(put_request("a", "1"))))
        .unwrap()
        .into_inner();
    let header = put.header.unwrap();
    assert_eq!(
        (
            header.cluster_id,
            header.member_id,
            header.revision,
            header.raft_term
        ),
        (CLUSTER_ID, MEMBER_ID, 2, RAFT_TERM)
    );
    let range = fixture.range(range_of("a", b""));
    assert_eq!(range.header.unwrap(), header);
    let delete = run(fixture.kv.delete_range(Request::new(DeleteRangeRequest {
        key: "a".into(),
        ..DeleteRangeRequest::default()
    })))
    .unwrap()
    .into_inner();
    assert_eq!(delete.header.unwrap().revision, 3);
    let txn = fixture.txn(TxnRequest::default());
    assert_eq!(txn.header.unwrap().member_id, MEMBER_ID);
}

// --- Range -----------------------------------------------------------------

#[test]
fn range_reads_a_single_key() {
    let fixture = fixture();
    fixture.put_all(&[("a", "1"), ("ab", "2")]);
    let response = fixture.range(range_of("a", b""));
    assert_eq!(keys(&response), ["a"]);
    assert_eq!(values(&response), ["1"]);
    assert_eq!(response.count, 1);
    let kv = &response.kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 2, 1));
    assert!(fixture.range(range_of("missing", b"")).kvs.is_empty());
}

#[test]
fn range_reads_half_open_ranges_prefixes_from_keys_and_all_keys() {
    let fixture = fixture();
    fixture.put_all(&[("a", "1"), ("b", "2"), ("b/x", "3"), ("c", "4")]);
    assert_eq!(keys(&fixture.range(range_of("a", b"c"))), ["a", "b", "b/x"]);
    assert_eq!(keys(&fixture.range(range_of("b", b"c"))), ["b", "b/x"]);
    assert_eq!(
        keys(&fixture.range(range_of("b", b"\0"))),
        ["b", "b/x", "c"]
    );
    assert_eq!(
        keys(&fixture.range(range_of("\0", b"\0"))),
        ["a", "b", "b/x", "c"]
    );
}

#[test]
fn range_limit_sets_more_and_count_covers_the_whole_range() {
    let fixture = fixture();
    fixture.put_all(&[("a", "1"), ("b", "2"), ("c", "3")]);
    let limited = fixture.range(RangeRequest {
        limit: 2,
        ..range_of("a", b"\0")
    });
    assert_eq!(keys(&limited), ["a", "b"]);
    assert!(limited.more);
    assert_eq!(limited.count, 3);
    let exact = fixture.range(RangeRequest {
        limit: 3,
        ..range_of("a", b"\0")
    });
    assert!(!exact.more);
}

#[test]
fn range_reads_a_historic_revision() {
    let fixture = fixture();
    fixture.put("k", "old");
    fixture.put("k", "new");
    let old = fixture.range(RangeRequest {
        revision: 2,
        ..range_of("k", b"")
    });
    assert_eq!(values(&old), ["old"]);
    assert_eq!(
        old.header.unwrap().revision,
        3,
        "the header names the current revision"
    );
    assert_eq!(values(&fixture.range(range_of("k", b""))), ["new"]);
}

#[test]
fn range_sorts_by_every_target_in_both_orders() {
    let fixture = fixture();
    // Keys in one order, values and revisions in others.
    fixture.put_all(&[("b", "x"), ("c", "z"), ("a", "y")]);
    fixture.put("c", "w");
    let sorted = |order: SortOrder, target: SortTarget| {
        keys(&fixture.range(RangeRequest {
            sort_order: order as i32,
            sort_target: target as i32,
            ..range_of("a", b"\0")
        }))
    };
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Key), ["a", "b", "c"]);
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Key), ["c", "b", "a"]);
    assert_eq!(
        sorted(SortOrder::Ascend, SortTarget::Value),
        ["c", "b", "a"]
    );
    assert_eq!(
        sorted(SortOrder::Descend, SortTarget::Value),
        ["a", "b", "c"]
    );
    assert_eq!(
        sorted(SortOrder::Ascend, SortTarget::Create),
        ["b", "c", "a"]
    );
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Mod), ["c", "a", "b"]);
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Version)[0], "c");
}

#[test]
fn range_keys_only_drops_values_and_count_only_drops_keys() {
    let fixture = fixture();
    fixture.put_all(&[("a", "1"), ("b", "2")]);
    let keys_only = fixture.range(RangeRequest {
        keys_only: true,
        ..range_of("a", b"\0")
    });
    assert_eq!(keys(&keys_only), ["a", "b"]);
    assert!(keys_only.kvs.iter().all(|kv| kv.value.is_empty()));
    let count_only = fixture.range(RangeRequest {
        count_only: true,
        ..range_of("a", b"\0")
    });
    assert!(count_only.kvs.is_empty());
    assert_eq!(count_only.count, 2);
}

#[test]
fn range_filters_on_mod_and_create_revision() {
    let fixture = fixture();
    fixture.put_all(&[("a", "1"), ("b", "2"), ("c", "3")]); // revisions 2, 3, 4
    fixture.put("a", "again"); // a: create 2, mod 5
    let filtered = |request: RangeRequest| keys(&fixture.range(request));
    assert_eq!(
        filtered(RangeRequest {
            min_mod_revision: 4,
            ..range_of("a", b"\0")
        }),
        ["a", "c"]
    );
    assert_eq!(
        filtered(RangeRequest {
            max_mod_revision: 3,
            ..range_of("a", b"\0")
        }),
        ["b"]
    );
    assert_eq!(
        filtered(RangeRequest {
            min_create_revision: 3,
            ..range_of("a", b"\0")
        }),
        ["b", "c"]
    );
    assert_eq!(
        filtered(RangeRequest {
            max_create_revision: 2,
            ..range_of("a", b"\0")
        }),
        ["a"]
    );
}

#[test]
fn linearizable_range_waits_for_the_barrier_and_serializable_does_not() {
    let fixture = fixture();
    fixture.range(range_of("a", b""));
    assert_eq!(fixture.backend.barriers(), 1);
    fixture.range(RangeRequest {
        serializable: true,
        ..range_of("a", b"")
    });
    assert_eq!(fixture.backend.barriers(), 1);
    assert_eq!(
        fixture.backend.proposals(),
        0,
        "reads never go through the log"
    );
}

#[test]
fn range_fails_with_etcds_error_when_the_barrier_fails() {
    let cases = [
        (
            BackendError::Request(RequestError::NoLeader),
            "etcdserver: no leader",
        ),
        (
            BackendError::Request(RequestError::Timeout),
            "etcdserver: request timed out",
        ),
        (
            BackendError::Request(RequestError::LeaderChanged),
            "etcdserver: leader changed",
        ),
    ];
    for (error, message) in cases {
        let fixture = fixture();
        fixture.backend.fail_next(error);
        assert_status(
            run(fixture.kv.range(Request::new(range_of("a", b"")))),
            Code::Unavailable,
            message,
        );
    }
}

#[test]
fn range_refuses_an_empty_key_before_the_barrier() {
    let fixture = fixture();
    assert_status(
        run(fixture.kv.range(Request::new(range_of("", b"")))),
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_eq!(fixture.backend.barriers(), 0);
}

#[test]
fn range_refuses_future_and_compacted_revisions() {
    let fixture = fixture();
    fixture.put("k", "1");
    fixture.put("k", "2");
    assert_status(
        run(fixture.kv.range(Request::new(RangeRequest {
            revision: 4,
            ..range_of("k", b"")
        }))),
        Code::OutOfRange,
        FUTURE_REV,
    );
    run(fixture.kv.compact(Request::new(CompactionRequest {
        revision: 3,
        physical: true,
    })))
    .unwrap();
    assert_status(
        run(fixture.kv.range(Request::new(RangeRequest {
            revision: 2,
            ..range_of("k", b"")
        }))),
        Code::OutOfRange,
        COMPACTED,
    );
}

#[test]
fn range_refuses_an_unknown_sort_option() {
    let fixture = fixture();
    assert_status(
        run(fixture.kv.range(Request::new(RangeRequest {
            sort_order: 9,
            ..range_of("k", b"")
        }))),
        Code::InvalidArgument,
        "etcdserver: invalid sort option",
    );
}

// --- Put -------------------------------------------------------------------

#[test]
fn put_returns_the_previous_pair_when_asked() {
    let fixture = fixture();
    let first = run(fixture.kv.put(Request::new(PutRequest {
        prev_kv: true,
        ..put_request("k", "1")
    })))
    .unwrap()
    .into_inner();
    assert_eq!(first.prev_kv, None);
    let second = run(fixture.kv.put(Request::new(PutRequest {
        prev_kv: true,
        ..put_request("k", "2")
    })))
    .unwrap()
    .into_inner();
    let previous = second.prev_kv.unwrap();
    assert_eq!((previous.value, previous.mod_revision), (b"1".to_vec(), 2));
    let third = run(fixture.kv.put(Request::new(put_request("k", "3"))))
        .unwrap()
        .into_inner();
    assert_eq!(third.prev_kv, None, "not asked for");
}

#[test]
fn put_with_ignore_value_keeps_the_value_and_needs_the_key() {
    let fixture = fixture();
    assert_status(
        run(fixture.kv.put(Request::new(PutRequest {
            ignore_value: true,
            ..put_request("k", "")
        }))),
        Code::InvalidArgument,
        "etcdserver: key not found",
    );
    fixture.put("k", "kept");
    run(fixture.kv.put(Request::new(PutRequest {
        ignore_value: true,
        ..put_request("k", "")
    })))
    .unwrap();
    let response = fixture.range(range_of("k", b""));
    assert_eq!(values(&response), ["kept"]);
    assert_eq!(response.kvs[0].version, 2);
    assert_status(
        run(fixture.kv.put(Request::new(PutRequest {
            ignore_value: true,
            ..put_request("k", "v")
        }))),
        Code::InvalidArgument,
        "etcdserver: value is provided",
    );
}

#[test]
fn put_with_ignore_lease_refuses_a_lease() {
    let fixture = fixture();
    fixture.put("k", "v");
    run(fixture.kv.put(Request::new(PutRequest {
        ignore_lease: true,
        ..put_request("k", "w")
    })))
    .unwrap();
    assert_status(
        run(fixture.kv.put(Request::new(PutRequest {
            ignore_lease: true,
            lease: 5,
            ..put_request("k", "w")
        }))),
        Code::InvalidArgument,
        "etcdserver: lease is provided",
    );
}

#[test]
fn put_refuses_an_empty_key_without_proposing() {
    let fixture = fixture();
    assert_status(
        run(fixture.kv.put(Request::new(put_request("", "v")))),
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    assert_eq!(fixture.backend.proposals(), 0);
}

#[test]
fn writes_above_the_request_limit_are_refused_without_proposing() {
    let fixture = fixture_with(ApiLimits {
        request_bytes_max: 64,
        ..ApiLimits::default()
    });
    let too_large = "x".repeat(100);
    assert_status(
        run(fixture.kv.put(Request::new(put_request("k", &too_large)))),
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
    let txn = TxnRequest {
        success: vec![put_op("k", &too_large)],
        ..TxnRequest::default()
    };
    assert_status(
        run(fixture.kv.txn(Request::new(txn))),
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
    assert_status(
        run(fixture.kv.delete_range(Request::new(DeleteRangeRequest {
            key: too_large.into(),
            ..DeleteRangeRequest::default()
        }))),
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
    assert_eq!(fixture.backend.proposals(), 0);
    fixture.put("k", "small");
}

#[test]
fn writes_fail_with_etcds_error_when_the_proposal_fails() {
    let cases = [
        (
            BackendError::Request(RequestError::NoLeader),
            "etcdserver: no leader",
        ),
        (
            BackendError::Request(RequestError::LeaderChanged),
            "etcdserver: leader changed",
        ),
        (
            BackendError::Request(RequestError::Timeout),
            "etcdserver: request timed out",
        ),
    ];
    for (error, message) in cases {
        let fixture = fixture();
        fixture.backend.fail_next(error);
        assert_status(
            run(fixture.kv.put(Request::new(put_request("k", "v")))),
            Code::Unavailable,
            message,
        );
    }
}

// --- DeleteRange -----------------------------------------------------------

#[test]
fn delete_range_counts_and_returns_previous_pairs_when_asked() {
    let fixture = fixture();
    fixture.put_all(&[("a", "1"), ("b", "2"), ("c", "3")]);
    let response = run(fixture.kv.delete_range(Request::new(DeleteRangeRequest {
        key: "a".into(),
        range_end: "c".into(),
        prev_kv: true,
    })))
    .unwrap()
    .into_inner();
    assert_eq!(response.deleted, 2);
    let deleted: Vec<&[u8]> = response
        .prev_kvs
        .iter()
        .map(|kv| kv.value.as_slice())
        .collect();
    assert_eq!(deleted, [b"1", b"2"]);
    assert_eq!(response.header.unwrap().revision, 5);
    assert_eq!(keys(&fixture.range(range_of("\0", b"\0"))), ["c"]);
    let nothing = run(fixture.kv.delete_range(Request::new(DeleteRangeRequest {
        key: "zz".into(),
        ..DeleteRangeRequest::default()
    })))
    .unwrap()
    .into_inner();
    assert_eq!((nothing.deleted, nothing.header.unwrap().revision), (0, 5));
}

#[test]
fn delete_range_refuses_an_empty_key() {
    let fixture = fixture();
    assert_status(
        run(fixture
            .kv
            .delete_range(Request::new(DeleteRangeRequest::default()))),
        Code::InvalidArgument,
        EMPTY_KEY,
    );
}

// --- Txn -------------------------------------------------------------------

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(put_request(key, value))),
    }
}

fn range_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(range_of(key, b""))),
    }
}

fn delete_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.into(),
                ..DeleteRangeRequest::default()
            },
        )),
    }
}

fn compare(key: &str, result: CompareResult, target: CompareTarget, union: TargetUnion) -> Compare {
    Compare {
        result: result as i32,
        target: target as i32,
        key: key.into(),
        range_end: Vec::new(),
        target_union: Some(union),
    }
}

#[test]
fn txn_compares_every_target_with_every_operator() {
    let fixture = fixture();
    fixture.put("k", "m"); // create 2
    fixture.put("k", "m"); // mod 3, version 2
                           // (target, union below, union equal, union above) around k's actual field.
    let targets = [
        (
            CompareTarget::Value,
            TargetUnion::Value("a".into()),
            TargetUnion::Value("m".into()),
            TargetUnion::Value("z".into()),
        ),
        (
            CompareTarget::Version,
            TargetUnion::Version(1),
            TargetUnion::Version(2),
            TargetUnion::Version(3),
        ),
        (
            CompareTarget::Create,
            TargetUnion::CreateRevision(1),
            TargetUnion::CreateRevision(2),
            TargetUnion::CreateRevision(3),
        ),
        (
            CompareTarget::Mod,
            TargetUnion::ModRevision(2),
            TargetUnion::ModRevision(3),
            TargetUnion::ModRevision(4),
        ),
    ];
    for (target, below, equal, above) in targets {
        // The key's field is compared on the left: field > below, field == equal, field < above.
        let cases = [
            (CompareResult::Equal, equal.clone(), true),
            (CompareResult::Equal, below.clone(), false),
            (CompareResult::NotEqual, below.clone(), true),
            (CompareResult::NotEqual, equal.clone(), false),
            (CompareResult::Greater, below.clone(), true),
            (CompareResult::Greater, equal.clone(), false),
            (CompareResult::Less, above.clone(), true),
            (CompareResult::Less, equal.clone(), false),
        ];
        for (result, union, expected) in cases {
            let response = fixture.txn(TxnRequest {
                compare: vec![compare("k", result, target, union.clone())],
                ..TxnRequest::default()
            });
            assert_eq!(
                response.succeeded, expected,
                "k {target:?} {result:?} {union:?}"
            );
        }
    }
}

#[test]
fn txn_runs_the_success_branch_with_every_operation_kind() {
    let fixture = fixture();
    fixture.put_all(&[("k", "v"), ("gone", "x")]);
    let nested = TxnRequest {
        success: vec![put_op("inner", "i")],
        ..TxnRequest::default()
    };
    let response = fixture.txn(TxnRequest {
        compare: vec![compare(
            "k",
            CompareResult::Equal,
            CompareTarget::Value,
            TargetUnion::Value("v".into()),
        )],
        success: vec![
            range_op("k"),
            put_op("new", "n"),
            delete_op("gone"),
            RequestOp {
                request: Some(request_op::Request::RequestTxn(nested)),
            },
        ],
        failure: vec![put_op("failed", "f")],
    });
    assert!(response.succeeded);
    assert_eq!(response.header.unwrap().revision, 4);
    let kinds: Vec<&response_op::Response> = response
        .responses
        .iter()
        .map(|op| op.response.as_ref().unwrap())
        .collect();
    let response_op::Response::ResponseRange(range) = kinds[0] else {
        panic!("{kinds:?}");
    };
    assert_eq!(values(range), ["v"]);
    assert!(matches!(kinds[1], response_op::Response::ResponsePut(_)));
    assert!(matches!(kinds[2], response_op::Response::ResponseDeleteRange(d) if d.deleted == 1));
    assert!(matches!(kinds[3], response_op::Response::ResponseTxn(t) if t.succeeded));
    let all = fixture.range(range_of("\0", b"\0"));
    assert_eq!(keys(&all), ["inner", "k", "new"]);
}

#[test]
fn txn_runs_the_failure_branch_when_a_compare_fails() {
    let fixture = fixture();
    let response = fixture.txn(TxnRequest {
        compare: vec![compare(
            "absent",
            CompareResult::Greater,
            CompareTarget::Version,
            TargetUnion::Version(0),
        )],
        success: vec![put_op("s", "1")],
        failure: vec![put_op("f", "1")],
    });
    assert!(!response.succeeded);
    assert_eq!(keys(&fixture.range(range_of("\0", b"\0"))), ["f"]);
}

#[test]
fn read_only_txn_is_served_after_the_barrier_without_proposing() {
    let fixture = fixture();
    fixture.put("k", "v");
    let proposals = fixture.backend.proposals();
    let response = fixture.txn(TxnRequest {
        compare: vec![compare(
            "k",
            CompareResult::Equal,
            CompareTarget::Value,
            TargetUnion::Value("v".into()),
        )],
        success: vec![range_op("k")],
        failure: vec![],
    });
    assert!(response.succeeded);
    assert_eq!(response.header.unwrap().revision, 2);
    assert_eq!(fixture.backend.proposals(), proposals);
    assert_eq!(fixture.backend.barriers(), 1);
    let serializable = RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            serializable: true,
            ..range_of("k", b"")
        })),
    };
    fixture.txn(TxnRequest {
        success: vec![serializable],
        ..TxnRequest::default()
    });
    assert_eq!(
        fixture.backend.barriers(),
        1,
        "a serializable txn skips the barrier"
    );
}

#[test]
fn txn_refuses_too_many_operations_without_proposing() {
    let fixture = fixture_with(ApiLimits {
        txn_ops_max: 2,
        ..ApiLimits::default()
    });
    let ops = vec![put_op("a", "1"), put_op("b", "2"), put_op("c", "3")];
    assert_status(
        run(fixture.kv.txn(Request::new(TxnRequest {
            success: ops,
            ..TxnRequest::default()
        }))),
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    assert_eq!(fixture.backend.proposals(), 0);
    fixture.txn(TxnRequest {
        success: vec![put_op("a", "1"), put_op("b", "2")],
        ..TxnRequest::default()
    });
}

#[test]
fn txn_refuses_duplicate_keys_in_a_branch() {
    let fixture = fixture();
    assert_status(
        run(fixture.kv.txn(Request::new(TxnRequest {
            success: vec![put_op("a", "1"), put_op("a", "2")],
            ..TxnRequest::default()
        }))),
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );
    assert_eq!(fixture.backend.proposals(), 0);
}

#[test]
fn txn_refuses_empty_keys_and_empty_operations() {
    let fixture = fixture();
    assert_status(
        run(fixture.kv.txn(Request::new(TxnRequest {
            success: vec![put_op("", "1")],
            ..TxnRequest::default()
        }))),
        Code::InvalidArgument,
        EMPTY_KEY,
    );
    let empty_op = run(fixture.kv.txn(Request::new(TxnRequest {
        success: vec![RequestOp { request: None }],
        ..TxnRequest::default()
    })));
    assert_eq!(empty_op.unwrap_err().code(), Code::InvalidArgument);
}

// --- Compact ---------------------------------------------------------------

#[test]
fn compact_removes_history_and_refuses_old_and_future_revisions() {
    let fixture = fixture();
    fixture.put("k", "1");
    fixture.put("k", "2");
    fixture.put("k", "3"); // current revision 4
    let response = run(fixture.kv.compact(Request::new(CompactionRequest {
        revision: 3,
        physical: true,
    })))
    .unwrap()
    .into_inner();
    assert_eq!(response.header.unwrap().revision, 4);
    assert_eq!(fixture.backend.store().compact_revision(), 3);
    assert_eq!(
        values(&fixture.range(RangeRequest {
            revision: 3,
            ..range_of("k", b"")
        })),
        ["2"]
    );
    assert_status(
        run(fixture.kv.compact(Request::new(CompactionRequest {
            revision: 3,
            physical: false,
        }))),
        Code::OutOfRange,
        COMPACTED,
    );
    assert_status(
        run(fixture.kv.compact(Request::new(CompactionRequest {
            revision: 5,
            physical: false,
        }))),
        Code::OutOfRange,
        FUTURE_REV,
    );
}

#[test]
fn txn_operation_headers_follow_etcd() {
    let fixture = fixture();
    fixture.put_all(&[("a", "1"), ("b", "2")]); // revision 3
    let response = fixture.txn(TxnRequest {
        success: vec![
            range_op("a"),
            delete_op("absent"),
            put_op("z", "1"),
            range_op("z"),
        ],
        ..TxnRequest::default()
    });
    let revisions: Vec<i64> = response
        .responses
        .iter()
        .map(|op| match op.response.as_ref().unwrap() {
            response_op::Response::ResponseRange(r) => r.header.unwrap().revision,
            response_op::Response::ResponsePut(r) => r.header.unwrap().revision,
            response_op::Response::ResponseDeleteRange(r) => r.header.unwrap().revision,
            response_op::Response::ResponseTxn(r) => r.header.unwrap().revision,
        })
        .collect();
    assert_eq!(revisions, [3, 3, 4, 4]);
    assert_eq!(response.header.unwrap().revision, 4);
    let response_op::Response::ResponseRange(read_back) =
        response.responses[3].response.as_ref().unwrap()
    else {
        panic!("{response:?}");
    };
    assert_eq!(
        values(read_back),
        ["1"],
        "a read after a put in the same txn sees it"
    );
}

#[test]
fn writes_naming_an_ungranted_lease_are_refused_when_applied() {
    let fixture = fixture();
    assert_status(
        run(fixture.kv.put(Request::new(PutRequest {
            lease: 0x1234,
            ..put_request("k", "v")
        }))),
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    let nested_lease_put = |key: &str| TxnRequest {
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                lease: 7,
                ..put_request(key, "v")
            })),
        }],
        ..TxnRequest::default()
    };
    assert_status(
        run(fixture.kv.txn(Request::new(TxnRequest {
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestTxn(nested_lease_put("n"))),
            }],
            ..TxnRequest::default()
        }))),
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    // As in etcd, only the branch taken is checked.
    let untaken = fixture.txn(TxnRequest {
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestTxn(nested_lease_put("m"))),
        }],
        ..TxnRequest::default()
    });
    assert!(untaken.succeeded);
    assert_eq!(fixture.backend.proposals(), 3);
    assert_eq!(fixture.backend.store().current_revision(), 1);
}

#[test]
fn txn_compare_over_a_range_holds_only_when_it_holds_for_every_key() {
    let fixture = fixture();
    fixture.put_all(&[("a", "1"), ("b", "2"), ("b", "3")]); // a version 1, b version 2
    let over_a_to_c = |result: CompareResult, version: i64| Compare {
        range_end: "c".into(),
        ..compare(
            "a",
            result,
            CompareTarget::Version,
            TargetUnion::Version(version),
        )
    };
    let succeeded = |compare: Compare| {
        fixture
            .txn(TxnRequest {
                compare: vec![compare],
                ..TxnRequest::default()
            })
            .succeeded
    };
    assert!(succeeded(over_a_to_c(CompareResult::Greater, 0)));
    assert!(
        !succeeded(over_a_to_c(CompareResult::Greater, 1)),
        "a's version is 1"
    );
    assert!(succeeded(over_a_to_c(CompareResult::Less, 3)));
    assert!(
        !succeeded(over_a_to_c(CompareResult::Equal, 2)),
        "a's version is 1"
    );
}
