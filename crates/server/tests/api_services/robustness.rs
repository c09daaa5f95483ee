//! Arbitrary requests, valid or not, get an answer and never a panic: every
//! refusal is one of etcd's client errors (`InvalidArgument`, `OutOfRange`,
//! `NotFound` for a lease),
//! never `Internal`, which would mean the services and the store disagree.
//! Runs 64 random sequences of up to 12 requests; about two seconds.

use std::sync::Arc;

use proptest::prelude::*;
use server::api::{ApiLimits, KvService};
use server::proto::etcdserverpb::compare::TargetUnion;
use server::proto::etcdserverpb::kv_server::Kv;
use server::proto::etcdserverpb::{
    request_op, CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};
use tonic::{Code, Request, Status};

use crate::common::local_backend::LocalBackend;
use crate::run;

/// Keys from a small alphabet so requests collide, plus the empty key and
/// etcd's "\0" range end.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        1 => Just(vec![0]),
        10 => proptest::collection::vec(prop::sample::select(b"abc".to_vec()), 1..3),
    ]
}

/// Revisions and limits around the interesting edges.
fn number() -> impl Strategy<Value = i64> {
    prop_oneof![10 => -2i64..8, 1 => Just(i64::MAX), 1 => Just(i64::MIN)]
}

/// Enum fields: mostly values every enum names, sometimes ones they do not.
fn enum_value() -> impl Strategy<Value = i32> {
    prop_oneof![20 => 0i32..3, 1 => 3i32..6, 1 => Just(-1), 1 => Just(i32::MAX)]
}

/// Mostly no lease, since none exist and a lease refuses the whole request.
fn lease() -> impl Strategy<Value = i64> {
    prop_oneof![9 => Just(0i64), 1 => number()]
}

fn range() -> impl Strategy<Value = RangeRequest> {
    (
        (key(), key(), number(), number(), enum_value(), enum_value()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        (number(), number(), number(), number()),
    )
        .prop_map(
            |((k, end, limit, revision, order, target), flags, filters)| RangeRequest {
                key: k,
                range_end: end,
                limit,
                revision,
                sort_order: order,
                sort_target: target,
                serializable: flags.0,
                keys_only: flags.1,
                count_only: flags.2,
                min_mod_revision: filters.0,
                max_mod_revision: filters.1,
                min_create_revision: filters.2,
                max_create_revision: filters.3,
            },
        )
}

fn put() -> impl Strategy<Value = PutRequest> {
    (
        key(),
        key(),
        lease(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(k, value, lease, prev_kv, ignore_value, ignore_lease)| PutRequest {
                key: k,
                value,
                lease,
                prev_kv,
                ignore_value,
                ignore_lease,
            },
        )
}

fn delete() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), key(), any::<bool>()).prop_map(|(k, range_end, prev_kv)| DeleteRangeRequest {
        key: k,
        range_end,
        prev_kv,
    })
}

fn compare() -> impl Strategy<Value = Compare> {
    let union = prop_oneof![
        Just(None),
        number().prop_map(|n| Some(TargetUnion::Version(n))),
        number().prop_map(|n| Some(TargetUnion::CreateRevision(n))),
        number().prop_map(|n| Some(TargetUnion::ModRevision(n))),
        key().prop_map(|v| Some(TargetUnion::Value(v))),
        number().prop_map(|n| Some(TargetUnion::Lease(n))),
    ];
    (enum_value(), enum_value(), key(), key(), union).prop_map(
        |(result, target, k, range_end, target_union)| Compare {
            result,
            target,
            key: k,
            range_end,
            target_union,
        },
    )
}

fn txn() -> impl Strategy<Value = TxnRequest> {
    let leaf = prop_oneof![
        Just(None),
        range().prop_map(|r| Some(request_op::Request::RequestRange(r))),
        put().prop_map(|p| Some(request_op::Request::RequestPut(p))),
        delete().prop_map(|d| Some(request_op::Request::RequestDeleteRange(d))),
    ]
    .prop_map(|request| RequestOp { request });
    let branch = |op: BoxedStrategy<RequestOp>| proptest::collection::vec(op, 0..4);
    let flat = (
        proptest::collection::vec(compare(), 0..3),
        branch(leaf.clone().boxed()),
        branch(leaf.clone().boxed()),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        });
    let nested_op = flat
        .prop_map(|txn| RequestOp {
            request: Some(request_op::Request::RequestTxn(txn)),
        })
        .boxed();
    let any_op = prop_oneof![3 => leaf, 1 => nested_op].boxed();
    (
        proptest::collection::vec(compare(), 0..3),
        branch(any_op.clone()),
        branch(any_op),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
}

#[derive(Debug, Clone)]
enum Call {
    Range(RangeRequest),
    Put(PutRequest),
    Delete(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        range().prop_map(Call::Range),
        put().prop_map(Call::Put),
        delete().prop_map(Call::Delete),
        txn().prop_map(Call::Txn),
        (number(), any::<bool>()).prop_map(|(revision, physical)| Call::Compact(
            CompactionRequest { revision, physical }
        )),
    ]
}

/// The call's outcome, reduced to the status code it failed with, if any.
fn outcome(kv: &KvService<LocalBackend>, call: Call) -> Result<(), Status> {
    run(async {
        match call {
            Call::Range(r) => kv.range(Request::new(r)).await.map(drop),
            Call::Put(p) => kv.put(Request::new(p)).await.map(drop),
            Call::Delete(d) => kv.delete_range(Request::new(d)).await.map(drop),
            Call::Txn(t) => kv.txn(Request::new(t)).await.map(drop),
            Call::Compact(c) => kv.compact(Request::new(c)).await.map(drop),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn arbitrary_requests_get_client_errors_never_internal_ones(
        calls in proptest::collection::vec(call(), 1..12)
    ) {
        let backend = LocalBackend::in_memory();
        let kv = KvService::new(Arc::clone(&backend), ApiLimits { txn_ops_max: 3, ..ApiLimits::default() });
        for call in calls {
            let described = format!("{call:?}");
            if let Err(status) = outcome(&kv, call) {
                prop_assert!(
                    matches!(status.code(), Code::InvalidArgument | Code::OutOfRange | Code::NotFound),
                    "{described} failed with {status:?}"
                );
            }
        }
    }
}
