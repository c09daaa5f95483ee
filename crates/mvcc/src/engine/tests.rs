//! One test per MVCC rule, through the store's public operations.

use crate::error::{Error, RequestError};
use crate::test_support::Harness;
use crate::types::*;

fn kv(key: &str, value: &str, create: i64, modified: i64, version: i64) -> KeyValue {
    KeyValue {
        key: key.as_bytes().to_vec(),
        create_revision: create,
        mod_revision: modified,
        version,
        value: value.as_bytes().to_vec(),
        lease: 0,
    }
}

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp::Put(PutRequest::new(key, value))
}

fn range_op(key: &str, range_end: &str) -> RequestOp {
    RequestOp::Range(RangeRequest::between(key, range_end))
}

fn compact(harness: &mut Harness, revision: i64) -> Result<Response, RequestError> {
    harness.result(Command::Compact(CompactionRequest {
        revision,
        physical: false,
    }))
}

fn range_request_error(harness: &Harness, request: &RangeRequest) -> RequestError {
    match harness.range(request) {
        Err(Error::Request(error)) => error,
        other => panic!("expected a refused range, got {other:?}"),
    }
}

#[test]
fn an_empty_store_is_at_revision_one() {
    let harness = Harness::new();
    assert_eq!(harness.store.current_revision(), 1);
    assert_eq!(harness.store.compact_revision(), 0);
    let response = harness.range(&RangeRequest::all()).unwrap();
    assert_eq!((response.revision, response.count), (1, 0));
}

#[test]
fn each_put_bumps_the_revision_once_and_versions_count_puts() {
    let mut harness = Harness::new();
    assert_eq!(harness.put("a", "1").revision, 2);
    assert_eq!(harness.put("b", "1").revision, 3);
    assert_eq!(harness.put("a", "2").revision, 4);
    assert_eq!(harness.get("a"), Some(kv("a", "2", 2, 4, 2)));
    assert_eq!(harness.get("b"), Some(kv("b", "1", 3, 3, 1)));
    assert_eq!(harness.store.current_revision(), 4);
}

#[test]
fn put_returns_the_previous_pair_only_when_asked() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    let silent = harness.result(Command::Put(PutRequest::new("a", "2")));
    assert_eq!(silent, Ok(Response::Put(PutResponse { prev_kv: None })));
    let asked = harness.result(Command::Put(PutRequest {
        prev_kv: true,
        ..PutRequest::new("a", "3")
    }));
    let expected = Some(kv("a", "2", 2, 3, 2));
    assert_eq!(asked, Ok(Response::Put(PutResponse { prev_kv: expected })));
    let fresh = harness.result(Command::Put(PutRequest {
        prev_kv: true,
        ..PutRequest::new("new", "x")
    }));
    assert_eq!(fresh, Ok(Response::Put(PutResponse { prev_kv: None })));
}

#[test]
fn lease_is_carried_and_ignore_flags_keep_the_old_fields() {
    let mut harness = Harness::new();
    for id in [4, 9] {
        harness.apply(Command::LeaseGrant(LeaseGrantRequest {
            id,
            ttl_seconds: 60,
        }));
    }
    harness.apply(Command::Put(PutRequest {
        lease: 9,
        ..PutRequest::new("a", "1")
    }));
    harness.apply(Command::Put(PutRequest {
        ignore_value: true,
        ..PutRequest::new("a", "")
    }));
    let kept_value = harness.get("a").unwrap();
    assert_eq!(
        (kept_value.value.as_slice(), kept_value.lease),
        (&b"1"[..], 0)
    );
    assert_eq!(kept_value.version, 2);
    harness.apply(Command::Put(PutRequest {
        lease: 4,
        ..PutRequest::new("a", "2")
    }));
    harness.apply(Command::Put(PutRequest {
        ignore_lease: true,
        ..PutRequest::new("a", "3")
    }));
    let kept_lease = harness.get("a").unwrap();
    assert_eq!(
        (kept_lease.value.as_slice(), kept_lease.lease),
        (&b"3"[..], 4)
    );
}

#[test]
fn ignore_flags_on_a_missing_key_are_refused_without_a_revision() {
    let mut harness = Harness::new();
    let refused = harness.apply(Command::Put(PutRequest {
        ignore_value: true,
        ..PutRequest::new("a", "")
    }));
    assert_eq!(refused.result, Err(RequestError::KeyNotFound));
    assert_eq!(refused.revision, 1);
    assert!(refused.events.is_empty());
    harness.put("a", "1");
    harness.delete("a", "");
    let after_delete = harness.result(Command::Put(PutRequest {
        ignore_lease: true,
        ..PutRequest::new("a", "2")
    }));
    assert_eq!(after_delete, Err(RequestError::KeyNotFound));
}

#[test]
fn delete_leaves_a_tombstone_and_a_new_put_starts_a_new_generation() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    harness.put("a", "2");
    let deleted = harness.delete("a", "");
    assert_eq!(deleted.revision, 4);
    assert_eq!(
        deleted.result,
        Ok(Response::DeleteRange(DeleteRangeResponse {
            deleted: 1,
            prev_kvs: vec![]
        }))
    );
    assert_eq!(harness.get("a"), None);
    assert_eq!(harness.put("a", "3").revision, 5);
    assert_eq!(harness.get("a"), Some(kv("a", "3", 5, 5, 1)));
    assert_eq!(harness.get_at("a", 3), Some(kv("a", "2", 2, 3, 2)));
    assert_eq!(harness.get_at("a", 4), None);
}

#[test]
fn a_delete_that_removes_nothing_keeps_the_revision() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    let nothing = harness.delete("b", "");
    assert_eq!(nothing.revision, 2);
    assert!(nothing.events.is_empty());
    assert_eq!(
        nothing.result,
        Ok(Response::DeleteRange(DeleteRangeResponse::default()))
    );
    harness.delete("a", "");
    assert_eq!(harness.delete("a", "").revision, 3);
}

#[test]
fn a_range_delete_is_one_revision_with_prev_kvs() {
    let mut harness = Harness::new();
    for key in ["a", "b", "c", "d"] {
        harness.put(key, key);
    }
    let applied = harness.apply(Command::DeleteRange(DeleteRangeRequest {
        prev_kv: true,
        ..DeleteRangeRequest::between("b", "d")
    }));
    assert_eq!(applied.revision, 6);
    let Ok(Response::DeleteRange(response)) = applied.result else {
        panic!("{applied:?}")
    };
    assert_eq!(response.deleted, 2);
    assert_eq!(
        response.prev_kvs,
        vec![kv("b", "b", 3, 3, 1), kv("c", "c", 4, 4, 1)]
    );
    assert!(applied
        .events
        .iter()
        .all(|event| event.kind == EventKind::Delete && event.kv.mod_revision == 6));
    let left = harness.range(&RangeRequest::all()).unwrap();
    assert_eq!(Harness::keys(&left), ["a", "d"]);
    let everything_from_c = harness.delete("c", "\0");
    assert_eq!(everything_from_c.events.len(), 1);
}

#[test]
fn historic_reads_see_each_revision() {
    let mut harness = Harness::new();
    harness.put("a", "1"); // 2
    harness.put("b", "1"); // 3
    harness.put("a", "2"); // 4
    harness.delete("b", ""); // 5
    let keys_at = |revision| {
        Harness::keys(
            &harness
                .range(&RangeRequest {
                    revision,
                    ..RangeRequest::all()
                })
                .unwrap(),
        )
    };
    assert_eq!(keys_at(1), Vec::<String>::new());
    assert_eq!(keys_at(2), ["a"]);
    assert_eq!(keys_at(3), ["a", "b"]);
    assert_eq!(keys_at(5), ["a"]);
    assert_eq!(harness.get_at("a", 3).unwrap().value, b"1");
    let response = harness
        .range(&RangeRequest {
            revision: 3,
            ..RangeRequest::all()
        })
        .unwrap();
    assert_eq!(
        response.revision, 5,
        "the header carries the current revision"
    );
}

#[test]
fn reads_beyond_the_current_revision_are_future() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    let error = range_request_error(
        &harness,
        &RangeRequest {
            revision: 3,
            ..RangeRequest::single("a")
        },
    );
    assert_eq!(
        error,
        RequestError::FutureRevision {
            requested: 3,
            current_revision: 2
        }
    );
    assert_eq!(error.status(), crate::StatusClass::OutOfRange);
}

#[test]
fn compaction_drops_superseded_history_and_keeps_live_keys() {
    let mut harness = Harness::new();
    harness.put("a", "1"); // 2
    harness.put("a", "2"); // 3
    harness.put("b", "1"); // 4
    harness.delete("b", ""); // 5
    harness.put("c", "1"); // 6
    harness.put("a", "3"); // 7
    assert_eq!(harness.store.revision_count().unwrap(), 6);
    let compacted = harness.apply(Command::Compact(CompactionRequest {
        revision: 5,
        physical: true,
    }));
    assert_eq!(
        compacted.result,
        Ok(Response::Compact(CompactionResponse {}))
    );
    assert_eq!(
        compacted.revision, 7,
        "compaction does not bump the revision"
    );
    assert_eq!(harness.store.compact_revision(), 5);
    // Kept: a@3 (live at 5), c@6, a@7. Gone: a@2, b@4 and its tombstone b@5.
    assert_eq!(harness.store.revision_count().unwrap(), 3);
    assert_eq!(harness.get_at("a", 5), Some(kv("a", "2", 2, 3, 2)));
    assert_eq!(harness.get_at("b", 5), None);
    assert_eq!(harness.get("a"), Some(kv("a", "3", 2, 7, 3)));
    let below = range_request_error(
        &harness,
        &RangeRequest {
            revision: 4,
            ..RangeRequest::single("a")
        },
    );
    assert_eq!(
        below,
        RequestError::Compacted {
            requested: 4,
            compact_revision: 5
        }
    );
    assert_eq!(below.status(), crate::StatusClass::OutOfRange);
}

#[test]
fn compaction_refuses_old_and_future_revisions() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    harness.put("a", "2");
    assert!(matches!(
        compact(&mut harness, 4),
        Err(RequestError::FutureRevision { requested: 4, .. })
    ));
    assert!(compact(&mut harness, 3).is_ok());
    assert!(matches!(
        compact(&mut harness, 3),
        Err(RequestError::Compacted { requested: 3, .. })
    ));
    assert!(matches!(
        compact(&mut harness, 2),
        Err(RequestError::Compacted { .. })
    ));
    assert_eq!(harness.get("a").unwrap().version, 2);
}

#[test]
fn a_txn_with_many_writes_bumps_the_revision_once() {
    let mut harness = Harness::new();
    let response = harness
        .txn(TxnRequest {
            success: vec![put_op("a", "1"), put_op("b", "1"), range_op("a", "c")],
            ..TxnRequest::default()
        })
        .unwrap();
    assert!(response.succeeded);
    assert_eq!(harness.store.current_revision(), 2);
    assert_eq!(harness.get("a").unwrap().mod_revision, 2);
    assert_eq!(harness.get("b").unwrap().mod_revision, 2);
    let ResponseOp::Range(inner) = &response.responses[2] else {
        panic!("{response:?}")
    };
    assert_eq!(
        Harness::keys(inner),
        ["a", "b"],
        "a txn reads its own writes"
    );
    assert_eq!(inner.revision, 2);
}

#[test]
fn a_txn_that_changes_nothing_keeps_the_revision() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    let read_only = harness.apply(Command::Txn(TxnRequest {
        success: vec![range_op("a", "")],
        failure: vec![put_op("x", "never")],
        ..TxnRequest::default()
    }));
    assert_eq!(read_only.revision, 2);
    let empty_delete = harness.apply(Command::Txn(TxnRequest {
        success: vec![RequestOp::DeleteRange(DeleteRangeRequest::single("zz"))],
        ..TxnRequest::default()
    }));
    assert_eq!(empty_delete.revision, 2);
    assert!(empty_delete.events.is_empty());
}

/// The key `k` at create 2, mod 3, version 2, value "m", lease 0.
fn harness_with_k() -> Harness {
    let mut harness = Harness::new();
    harness.put("k", "a");
    harness.put("k", "m");
    harness
}

fn holds(harness: &mut Harness, compare: Compare) -> bool {
    harness
        .txn(TxnRequest {
            compare: vec![compare],
            ..TxnRequest::default()
        })
        .unwrap()
        .succeeded
}

#[test]
fn every_compare_target_and_result() {
    use CompareResult::{Equal, Greater, Less, NotEqual};
    let mut harness = harness_with_k();
    let at = |value: i64| {
        [
            CompareTarget::Version(value - 1),
            CompareTarget::CreateRevision(value - 1),
            CompareTarget::ModRevision(value),
            CompareTarget::Lease(value - 3),
        ]
    };
    // For a field equal to the target (at 3), below it (at 4) and above it (at 2).
    for (base, expect) in [
        (3, [true, false, false, false]),
        (4, [false, false, true, true]),
        (2, [false, true, false, true]),
    ] {
        for target in at(base) {
            for (result, expected) in [Equal, Greater, Less, NotEqual].into_iter().zip(expect) {
                let compare = Compare::new("k", result, target.clone());
                assert_eq!(
                    holds(&mut harness, compare),
                    expected,
                    "{result:?} {target:?}"
                );
            }
        }
    }
    let value = |v: &str| CompareTarget::Value(v.as_bytes().to_vec());
    for (target, expect) in [
        (value("m"), [true, false, false, false]),
        (value("n"), [false, false, true, true]),
        (value("l"), [false, true, false, true]),
    ] {
        for (result, expected) in [Equal, Greater, Less, NotEqual].into_iter().zip(expect) {
            let compare = Compare::new("k", result, target.clone());
            assert_eq!(
                holds(&mut harness, compare),
                expected,
                "{result:?} {target:?}"
            );
        }
    }
}

#[test]
fn compares_on_a_missing_key_see_zeros_but_values_always_fail() {
    let mut harness = Harness::new();
    let missing = |result, target| Compare::new("nope", result, target);
    assert!(holds(
        &mut harness,
        missing(CompareResult::Equal, CompareTarget::Version(0))
    ));
    assert!(holds(
        &mut harness,
        missing(CompareResult::Equal, CompareTarget::CreateRevision(0))
    ));
    assert!(holds(
        &mut harness,
        missing(CompareResult::Less, CompareTarget::ModRevision(1))
    ));
    assert!(!holds(
        &mut harness,
        missing(CompareResult::Equal, CompareTarget::Value(vec![]))
    ));
    assert!(!holds(
        &mut harness,
        missing(CompareResult::NotEqual, CompareTarget::Value(b"x".to_vec()))
    ));
}

#[test]
fn a_compare_over_a_range_needs_every_key() {
    let mut harness = Harness::new();
    harness.put("a1", "x");
    harness.put("a2", "x");
    harness.put("b", "y");
    let over = |range_end: &str, value: &str| Compare {
        key: b"a".to_vec(),
        range_end: range_end.as_bytes().to_vec(),
        result: CompareResult::Equal,
        target: CompareTarget::Value(value.as_bytes().to_vec()),
    };
    assert!(holds(&mut harness, over("b", "x")));
    assert!(!holds(&mut harness, over("\0", "x")));
    harness.put("a2", "z");
    assert!(!holds(&mut harness, over("b", "x")));
}

#[test]
fn the_failure_branch_runs_when_a_compare_fails() {
    let mut harness = harness_with_k();
    let response = harness
        .txn(TxnRequest {
            compare: vec![
                Compare::new("k", CompareResult::Equal, CompareTarget::Version(2)),
                Compare::new("k", CompareResult::Equal, CompareTarget::Version(5)),
            ],
            success: vec![put_op("s", "1")],
            failure: vec![put_op("f", "1"), range_op("f", "")],
        })
        .unwrap();
    assert!(!response.succeeded);
    assert_eq!(response.responses.len(), 2);
    assert!(harness.get("s").is_none());
    assert_eq!(harness.get("f").unwrap().mod_revision, 4);
}

#[test]
fn nested_txn_compares_see_the_state_before_the_txn() {
    let mut harness = Harness::new();
    let nested = TxnRequest {
        compare: vec![Compare::new(
            "a",
            CompareResult::Equal,
            CompareTarget::Version(0),
        )],
        success: vec![put_op("b", "then")],
        failure: vec![put_op("b", "else")],
    };
    let response = harness
        .txn(TxnRequest {
            success: vec![put_op("a", "1"), RequestOp::Txn(nested)],
            ..TxnRequest::default()
        })
        .unwrap();
    let ResponseOp::Txn(inner) = &response.responses[1] else {
        panic!("{response:?}")
    };
    assert!(inner.succeeded, "a did not exist before the outer txn");
    assert_eq!(harness.get("b").unwrap().value, b"then");
    assert_eq!(harness.store.current_revision(), 2);
}

#[test]
fn a_duplicate_key_txn_changes_nothing_but_consumes_its_index() {
    let mut harness = Harness::new();
    let applied = harness.apply(Command::Txn(TxnRequest {
        success: vec![
            put_op("a", "1"),
            RequestOp::DeleteRange(DeleteRangeRequest::single("a")),
        ],
        ..TxnRequest::default()
    }));
    assert!(matches!(
        applied.result,
        Err(RequestError::DuplicateKey { .. })
    ));
    assert_eq!((applied.revision, applied.index), (1, 1));
    assert_eq!(harness.store.applied_index(), 1);
    assert!(harness.get("a").is_none());
}

#[test]
fn a_txn_range_at_a_compacted_or_future_revision_refuses_the_whole_txn() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    harness.put("a", "2");
    compact(&mut harness, 3).unwrap();
    for (revision, future) in [(2, false), (9, true)] {
        let result = harness.txn(TxnRequest {
            success: vec![
                put_op("b", "1"),
                RequestOp::Range(RangeRequest {
                    revision,
                    ..RangeRequest::single("a")
                }),
            ],
            ..TxnRequest::default()
        });
        match result {
            Err(RequestError::FutureRevision { .. }) => assert!(future),
            Err(RequestError::Compacted { .. }) => assert!(!future),
            other => panic!("{other:?}"),
        }
        assert!(harness.get("b").is_none());
    }
    assert_eq!(harness.store.current_revision(), 3);
}

#[test]
fn a_txn_range_may_read_history() {
    let mut harness = Harness::new();
    harness.put("a", "old");
    harness.put("a", "new");
    let response = harness
        .txn(TxnRequest {
            success: vec![
                put_op("a", "newest"),
                RequestOp::Range(RangeRequest {
                    revision: 2,
                    ..RangeRequest::single("a")
                }),
            ],
            ..TxnRequest::default()
        })
        .unwrap();
    let ResponseOp::Range(inner) = &response.responses[1] else {
        panic!("{response:?}")
    };
    assert_eq!(inner.kvs, vec![kv("a", "old", 2, 2, 1)]);
}

fn five_keys() -> Harness {
    let mut harness = Harness::new();
    // Values run against key order so that value sorting is visible.
    for (key, value) in [("a", "5"), ("b", "4"), ("c", "3"), ("d", "2"), ("e", "1")] {
        harness.put(key, value);
    }
    harness.put("b", "4"); // b: version 2, mod 7
    harness
}

#[test]
fn limit_cuts_and_reports_more_and_count() {
    let harness = five_keys();
    let with_limit = |limit| {
        harness
            .range(&RangeRequest {
                limit,
                ..RangeRequest::all()
            })
            .unwrap()
    };
    let two = with_limit(2);
    assert_eq!(
        (Harness::keys(&two), two.more, two.count),
        (vec!["a".into(), "b".into()], true, 5)
    );
    let five = with_limit(5);
    assert_eq!((five.kvs.len(), five.more, five.count), (5, false, 5));
    let unlimited = with_limit(0);
    assert_eq!((unlimited.kvs.len(), unlimited.more), (5, false));
    let exact = harness
        .range(&RangeRequest {
            limit: 4,
            ..RangeRequest::between("b", "\0")
        })
        .unwrap();
    assert_eq!((exact.kvs.len(), exact.more, exact.count), (4, false, 4));
}

#[test]
fn sorting_follows_target_and_order() {
    let harness = five_keys();
    let sorted = |sort_order, sort_target| {
        Harness::keys(
            &harness
                .range(&RangeRequest {
                    sort_order,
                    sort_target,
                    ..RangeRequest::all()
                })
                .unwrap(),
        )
        .concat()
    };
    assert_eq!(sorted(SortOrder::None, SortTarget::Key), "abcde");
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Key), "abcde");
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Key), "edcba");
    assert_eq!(sorted(SortOrder::None, SortTarget::Value), "edcba");
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Value), "edcba");
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Value), "abcde");
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Create), "abcde");
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Create), "edcba");
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Mod), "bedca");
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Mod), "acdeb");
    assert_eq!(sorted(SortOrder::Descend, SortTarget::Version), "bacde");
    assert_eq!(sorted(SortOrder::Ascend, SortTarget::Version), "acdeb");
}

#[test]
fn sorting_happens_before_the_limit() {
    let harness = five_keys();
    let response = harness
        .range(&RangeRequest {
            limit: 2,
            sort_order: SortOrder::Descend,
            sort_target: SortTarget::Key,
            ..RangeRequest::all()
        })
        .unwrap();
    assert_eq!(Harness::keys(&response), ["e", "d"]);
    assert!(response.more);
}

#[test]
fn revision_filters_prune_after_counting() {
    let harness = five_keys();
    let filtered = |request: RangeRequest| harness.range(&request).unwrap();
    let min_mod = filtered(RangeRequest {
        min_mod_revision: 5,
        ..RangeRequest::all()
    });
    assert_eq!(
        (Harness::keys(&min_mod).concat(), min_mod.count),
        ("bde".to_string(), 5)
    );
    let max_mod = filtered(RangeRequest {
        max_mod_revision: 4,
        ..RangeRequest::all()
    });
    assert_eq!(Harness::keys(&max_mod).concat(), "ac");
    let min_create = filtered(RangeRequest {
        min_create_revision: 4,
        ..RangeRequest::all()
    });
    assert_eq!(Harness::keys(&min_create).concat(), "cde");
    let max_create = filtered(RangeRequest {
        max_create_revision: 3,
        limit: 1,
        ..RangeRequest::all()
    });
    assert_eq!(Harness::keys(&max_create).concat(), "a");
    assert!(max_create.more);
}

#[test]
fn keys_only_and_count_only() {
    let harness = five_keys();
    let keys_only = harness
        .range(&RangeRequest {
            keys_only: true,
            ..RangeRequest::all()
        })
        .unwrap();
    assert_eq!(keys_only.kvs.len(), 5);
    assert!(keys_only
        .kvs
        .iter()
        .all(|kv| kv.value.is_empty() && kv.version > 0));
    let count_only = harness
        .range(&RangeRequest {
            count_only: true,
            limit: 1,
            ..RangeRequest::between("b", "e")
        })
        .unwrap();
    assert_eq!(
        (count_only.kvs.len(), count_only.count, count_only.more),
        (0, 3, false)
    );
}

#[test]
fn range_end_conventions() {
    let harness = five_keys();
    let keys = |key: &str, range_end: &str| {
        Harness::keys(
            &harness
                .range(&RangeRequest::between(key, range_end))
                .unwrap(),
        )
        .concat()
    };
    assert_eq!(keys("c", ""), "c");
    assert_eq!(keys("c", "\0"), "cde");
    assert_eq!(keys("b", "d"), "bc");
    assert_eq!(keys("d", "b"), "");
    assert_eq!(keys("\0", "\0"), "abcde");
    assert!(matches!(
        harness.range(&RangeRequest::single("")),
        Err(Error::Request(RequestError::EmptyKey))
    ));
}

#[test]
fn events_describe_each_change() {
    let mut harness = Harness::new();
    harness.put("a", "1");
    let applied = harness.apply(Command::Txn(TxnRequest {
        success: vec![
            put_op("a", "2"),
            RequestOp::DeleteRange(DeleteRangeRequest::single("zz")),
            put_op("b", "1"),
        ],
        ..TxnRequest::default()
    }));
    let kinds: Vec<_> = applied.events.iter().map(|event| event.kind).collect();
    assert_eq!(kinds, [EventKind::Put, EventKind::Put]);
    assert_eq!(applied.events[0].kv, kv("a", "2", 2, 3, 2));
    assert_eq!(applied.events[0].prev_kv, Some(kv("a", "1", 2, 2, 1)));
    assert_eq!(applied.events[1].prev_kv, None);
    let deleted = harness.delete("a", "");
    assert_eq!(deleted.events[0].kv.mod_revision, 4);
    assert_eq!(deleted.events[0].kv.version, 0);
    assert_eq!(deleted.events[0].prev_kv, Some(kv("a", "2", 2, 3, 2)));
}

#[test]
fn a_put_and_an_open_ended_delete_apply_in_order_like_etcd() {
    let mut harness = Harness::new();
    harness.put("b", "old");
    let delete_all_from_a = || RequestOp::DeleteRange(DeleteRangeRequest::between("a", "\0"));
    let put_then_delete = harness.apply(Command::Txn(TxnRequest {
        success: vec![put_op("b", "new"), delete_all_from_a()],
        ..TxnRequest::default()
    }));
    assert!(put_then_delete.result.is_ok(), "{put_then_delete:?}");
    assert_eq!(put_then_delete.revision, 3);
    assert_eq!(put_then_delete.events.len(), 2);
    assert!(harness.get("b").is_none());
    let delete_then_put = harness.apply(Command::Txn(TxnRequest {
        success: vec![delete_all_from_a(), put_op("b", "again")],
        ..TxnRequest::default()
    }));
    assert_eq!(delete_then_put.revision, 4);
    assert_eq!(harness.get("b"), Some(kv("b", "again", 4, 4, 1)));
    assert_eq!(harness.get_at("b", 2).unwrap().value, b"old");
    assert!(harness.get_at("b", 3).is_none());
}

#[test]
fn an_ignore_value_put_after_an_open_ended_delete_of_its_key_does_not_crash() {
    let mut harness = Harness::new();
    harness.apply(Command::LeaseGrant(LeaseGrantRequest {
        id: 5,
        ttl_seconds: 60,
    }));
    harness.apply(Command::Put(PutRequest {
        lease: 5,
        ..PutRequest::new("b", "old")
    }));
    let applied = harness.apply(Command::Txn(TxnRequest {
        success: vec![
            RequestOp::DeleteRange(DeleteRangeRequest::between("a", "\0")),
            RequestOp::Put(PutRequest {
                ignore_value: true,
                ignore_lease: true,
                ..PutRequest::new("b", "")
            }),
        ],
        ..TxnRequest::default()
    }));
    assert!(applied.result.is_ok(), "{applied:?}");
    assert_eq!(harness.get("b"), Some(kv("b", "", 3, 3, 1)));
}

#[test]
fn a_read_only_txn_answers_like_the_same_txn_through_the_log() {
    let mut harness = five_keys();
    for (version, historic) in [(2, 3), (1, 0)] {
        let txn = TxnRequest {
            compare: vec![Compare::new(
                "b",
                CompareResult::Equal,
                CompareTarget::Version(version),
            )],
            success: vec![
                range_op("a", "c"),
                RequestOp::Range(RangeRequest {
                    revision: historic,
                    ..RangeRequest::all()
                }),
            ],
            failure: vec![RequestOp::Range(RangeRequest {
                sort_order: SortOrder::Descend,
                limit: 2,
                ..RangeRequest::all()
            })],
        };
        assert!(txn.is_read_only());
        let served = harness.store.read_only_txn(&txn).unwrap();
        assert_eq!(served.succeeded, version == 2);
        assert_eq!(Ok(served), harness.txn(txn));
    }
}

#[test]
fn a_read_only_txn_refuses_writes_and_bad_revisions() {
    let harness = five_keys();
    let with_put = TxnRequest {
        failure: vec![put_op("a", "1")],
        ..TxnRequest::default()
    };
    assert!(!with_put.is_read_only());
    assert!(matches!(
        harness.store.read_only_txn(&with_put),
        Err(Error::WritesOutsideTheLog)
    ));
    let nested = TxnRequest {
        success: vec![RequestOp::Txn(TxnRequest::default())],
        ..TxnRequest::default()
    };
    assert!(matches!(
        harness.store.read_only_txn(&nested),
        Err(Error::WritesOutsideTheLog)
    ));
    let future = TxnRequest {
        success: vec![RequestOp::Range(RangeRequest {
            revision: 99,
            ..RangeRequest::all()
        })],
        ..TxnRequest::default()
    };
    assert!(matches!(
        harness.store.read_only_txn(&future),
        Err(Error::Request(RequestError::FutureRevision { .. }))
    ));
    let empty_key = TxnRequest {
        success: vec![range_op("", "")],
        ..TxnRequest::default()
    };
    assert!(matches!(
        harness.store.read_only_txn(&empty_key),
        Err(Error::Request(RequestError::EmptyKey))
    ));
}
