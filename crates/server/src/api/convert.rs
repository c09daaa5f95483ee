//! etcd's protobuf messages to the state machine's request types and its
//! answers back to protobuf. Owns field-by-field mapping and the rejection of
//! values the protobuf enums do not name; must never check rules the state
//! machine checks (empty keys, duplicates, revisions) nor fill in headers.

use tonic::Status;

use crate::api::errors::INVALID_SORT_OPTION;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::{compare, range_request, request_op, response_op};
use crate::proto::mvccpb;

/// A request field the protobuf schema allows but etcd's API has no meaning for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// A range names a sort order or target outside the enums (etcd's own error).
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
    #[error(
        "raftkv: compare on key {key:?} has unknown result {value}; use EQUAL, GREATER, LESS or NOT_EQUAL"
    )]
    UnknownCompareResult { key: String, value: i32 },
    #[error(
        "raftkv: compare on key {key:?} has unknown target {value}; use VERSION, CREATE, MOD, VALUE or LEASE"
    )]
    UnknownCompareTarget { key: String, value: i32 },
    #[error(
        "raftkv: transaction operation {position} of the {branch} branch holds no request; set one of range, put, delete_range or txn"
    )]
    EmptyRequestOp {
        branch: &'static str,
        position: usize,
    },
}

impl ConvertError {
    pub fn to_status(&self) -> Status {
        debug_assert_eq!(
            matches!(self, ConvertError::InvalidSortOption),
            self.to_string() == INVALID_SORT_OPTION
        );
        Status::invalid_argument(self.to_string())
    }
}

impl From<ConvertError> for Status {
    fn from(error: ConvertError) -> Status {
        error.to_status()
    }
}

/// A range request, and whether the client asked for a serializable read.
pub fn range_request(
    request: pb::RangeRequest,
) -> Result<(mvcc::RangeRequest, bool), ConvertError> {
    let sort_order = match range_request::SortOrder::try_from(request.sort_order) {
        Ok(range_request::SortOrder::None) => mvcc::SortOrder::None,
        Ok(range_request::SortOrder::Ascend) => mvcc::SortOrder::Ascend,
        Ok(range_request::SortOrder::Descend) => mvcc::SortOrder::Descend,
        Err(_) => return Err(ConvertError::InvalidSortOption),
    };
    let sort_target = match range_request::SortTarget::try_from(request.sort_target) {
        Ok(range_request::SortTarget::Key) => mvcc::SortTarget::Key,
        Ok(range_request::SortTarget::Version) => mvcc::SortTarget::Version,
        Ok(range_request::SortTarget::Create) => mvcc::SortTarget::Create,
        Ok(range_request::SortTarget::Mod) => mvcc::SortTarget::Mod,
        Ok(range_request::SortTarget::Value) => mvcc::SortTarget::Value,
        Err(_) => return Err(ConvertError::InvalidSortOption),
    };
    let range = mvcc::RangeRequest {
        key: request.key,
        range_end: request.range_end,
        limit: request.limit,
        revision: request.revision,
        sort_order,
        sort_target,
        keys_only: request.keys_only,
        count_only: request.count_only,
        min_mod_revision: request.min_mod_revision,
        max_mod_revision: request.max_mod_revision,
        min_create_revision: request.min_create_revision,
        max_create_revision: request.max_create_revision,
    };
    Ok((range, request.serializable))
}

pub fn put_request(request: pb::PutRequest) -> mvcc::PutRequest {
    mvcc::PutRequest {
        key: request.key,
        value: request.value,
        lease: request.lease,
        prev_kv: request.prev_kv,
        ignore_value: request.ignore_value,
        ignore_lease: request.ignore_lease,
    }
}

pub fn delete_range_request(request: pb::DeleteRangeRequest) -> mvcc::DeleteRangeRequest {
    mvcc::DeleteRangeRequest {
        key: request.key,
        range_end: request.range_end,
        prev_kv: request.prev_kv,
    }
}

pub fn compaction_request(request: pb::CompactionRequest) -> mvcc::CompactionRequest {
    mvcc::CompactionRequest {
        revision: request.revision,
        physical: request.physical,
    }
}

/// A transaction, and whether every range in it asked for a serializable read
/// (etcd then skips the read barrier for a read-only transaction).
pub fn txn_request(request: pb::TxnRequest) -> Result<(mvcc::TxnRequest, bool), ConvertError> {
    let mut serializable = true;
    let txn = txn(request, &mut serializable)?;
    Ok((txn, serializable))
}

fn txn(request: pb::TxnRequest, serializable: &mut bool) -> Result<mvcc::TxnRequest, ConvertError> {
    let compare = request
        .compare
        .into_iter()
        .map(compare)
        .collect::<Result<_, _>>()?;
    Ok(mvcc::TxnRequest {
        compare,
        success: branch(request.success, "success", serializable)?,
        failure: branch(request.failure, "failure", serializable)?,
    })
}

fn branch(
    ops: Vec<pb::RequestOp>,
    name: &'static str,
    serializable: &mut bool,
) -> Result<Vec<mvcc::RequestOp>, ConvertError> {
    ops.into_iter()
        .enumerate()
        .map(|(position, op)| match op.request {
            Some(request_op::Request::RequestRange(range)) => {
                let (range, range_serializable) = range_request(range)?;
                *serializable &= range_serializable;
                Ok(mvcc::RequestOp::Range(range))
            }
            Some(request_op::Request::RequestPut(put)) => {
                Ok(mvcc::RequestOp::Put(put_request(put)))
            }
            Some(request_op::Request::RequestDeleteRange(delete)) => {
                Ok(mvcc::RequestOp::DeleteRange(delete_range_request(delete)))
            }
            Some(request_op::Request::RequestTxn(nested)) => {
                Ok(mvcc::RequestOp::Txn(txn(nested, serializable)?))
            }
            None => Err(ConvertError::EmptyRequestOp {
                branch: name,
                position,
            }),
        })
        .collect()
}

/// A compare; its `target` decides which field is compared, and a
/// `target_union` of another kind counts as that field's zero value, as in etcd.
pub fn compare(request: pb::Compare) -> Result<mvcc::Compare, ConvertError> {
    let key_text = || String::from_utf8_lossy(&request.key).into_owned();
    let result = match compare::CompareResult::try_from(request.result) {
        Ok(compare::CompareResult::Equal) => mvcc::CompareResult::Equal,
        Ok(compare::CompareResult::Greater) => mvcc::CompareResult::Greater,
        Ok(compare::CompareResult::Less) => mvcc::CompareResult::Less,
        Ok(compare::CompareResult::NotEqual) => mvcc::CompareResult::NotEqual,
        Err(_) => {
            return Err(ConvertError::UnknownCompareResult {
                key: key_text(),
                value: request.result,
            });
        }
    };
    let Ok(target_kind) = compare::CompareTarget::try_from(request.target) else {
        return Err(ConvertError::UnknownCompareTarget {
            key: key_text(),
            value: request.target,
        });
    };
    use compare::TargetUnion as Union;
    let union = request.target_union;
    let target = match target_kind {
        compare::CompareTarget::Version => mvcc::CompareTarget::Version(match union {
            Some(Union::Version(version)) => version,
            _ => 0,
        }),
        compare::CompareTarget::Create => mvcc::CompareTarget::CreateRevision(match union {
            Some(Union::CreateRevision(revision)) => revision,
            _ => 0,
        }),
        compare::CompareTarget::Mod => mvcc::CompareTarget::ModRevision(match union {
            Some(Union::ModRevision(revision)) => revision,
            _ => 0,
        }),
        compare::CompareTarget::Value => mvcc::CompareTarget::Value(match union {
            Some(Union::Value(value)) => value,
            _ => Vec::new(),
        }),
        compare::CompareTarget::Lease => mvcc::CompareTarget::Lease(match union {
            Some(Union::Lease(lease)) => lease,
            _ => 0,
        }),
    };
    Ok(mvcc::Compare {
        key: request.key,
        range_end: request.range_end,
        result,
        target,
    })
}

pub fn key_value(kv: mvcc::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// A range answer under `header`.
pub fn range_response(
    response: mvcc::RangeResponse,
    header: Option<pb::ResponseHeader>,
) -> pb::RangeResponse {
    pb::RangeResponse {
        header,
        kvs: response.kvs.into_iter().map(key_value).collect(),
        more: response.more,
        count: response.count,
    }
}

pub fn put_response(
    response: mvcc::PutResponse,
    header: Option<pb::ResponseHeader>,
) -> pb::PutResponse {
    pb::PutResponse {
        header,
        prev_kv: response.prev_kv.map(key_value),
    }
}

pub fn delete_range_response(
    response: mvcc::DeleteRangeResponse,
    header: Option<pb::ResponseHeader>,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header,
        deleted: response.deleted,
        prev_kvs: response.prev_kvs.into_iter().map(key_value).collect(),
    }
}

/// A transaction answer under `header`. `begin_revision` is the store's
/// revision before the transaction. The answers of its operations carry a
/// header with the revision only, as etcd's do: the revision a reader inside
/// the transaction would see at that point (`begin_revision`, plus one once
/// an earlier or this operation changed something); nested transactions get
/// an empty header.
pub fn txn_response(
    response: mvcc::TxnResponse,
    header: Option<pb::ResponseHeader>,
    begin_revision: i64,
) -> pb::TxnResponse {
    let mut changed = false;
    txn_response_at(response, header, begin_revision, &mut changed)
}

fn txn_response_at(
    response: mvcc::TxnResponse,
    header: Option<pb::ResponseHeader>,
    begin_revision: i64,
    changed: &mut bool,
) -> pb::TxnResponse {
    let revision_header = |changed: bool| {
        Some(pb::ResponseHeader {
            revision: begin_revision + i64::from(changed),
            ..pb::ResponseHeader::default()
        })
    };
    let responses = response
        .responses
        .into_iter()
        .map(|op| {
            let response = match op {
                mvcc::ResponseOp::Range(range) => response_op::Response::ResponseRange(
                    range_response(range, revision_header(*changed)),
                ),
                mvcc::ResponseOp::Put(put) => {
                    *changed = true;
                    response_op::Response::ResponsePut(put_response(put, revision_header(true)))
                }
                mvcc::ResponseOp::DeleteRange(delete) => {
                    *changed |= delete.deleted > 0;
                    response_op::Response::ResponseDeleteRange(delete_range_response(
                        delete,
                        revision_header(*changed),
                    ))
                }
                mvcc::ResponseOp::Txn(nested) => {
                    response_op::Response::ResponseTxn(txn_response_at(
                        nested,
                        Some(pb::ResponseHeader::default()),
                        begin_revision,
                        changed,
                    ))
                }
            };
            pb::ResponseOp {
                response: Some(response),
            }
        })
        .collect();
    pb::TxnResponse {
        header,
        succeeded: response.succeeded,
        responses,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb_range(key: &str) -> pb::RangeRequest {
        pb::RangeRequest {
            key: key.as_bytes().to_vec(),
            ..pb::RangeRequest::default()
        }
    }

    #[test]
    fn range_request_maps_every_field() {
        let request = pb::RangeRequest {
            key: b"a".to_vec(),
            range_end: b"z".to_vec(),
            limit: 3,
            revision: 9,
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
        let (range, serializable) = range_request(request).unwrap();
        assert!(serializable);
        assert_eq!(
            range,
            mvcc::RangeRequest {
                key: b"a".to_vec(),
                range_end: b"z".to_vec(),
                limit: 3,
                revision: 9,
                sort_order: mvcc::SortOrder::Descend,
                sort_target: mvcc::SortTarget::Mod,
                keys_only: true,
                count_only: true,
                min_mod_revision: 1,
                max_mod_revision: 2,
                min_create_revision: 3,
                max_create_revision: 4,
            }
        );
    }

    #[test]
    fn every_sort_order_and_target_maps_to_its_namesake() {
        let orders = [
            (range_request::SortOrder::None, mvcc::SortOrder::None),
            (range_request::SortOrder::Ascend, mvcc::SortOrder::Ascend),
            (range_request::SortOrder::Descend, mvcc::SortOrder::Descend),
        ];
        for (wire, ours) in orders {
            let request = pb::RangeRequest {
                sort_order: wire as i32,
                ..pb_range("k")
            };
            assert_eq!(range_request(request).unwrap().0.sort_order, ours);
        }
        let targets = [
            (range_request::SortTarget::Key, mvcc::SortTarget::Key),
            (
                range_request::SortTarget::Version,
                mvcc::SortTarget::Version,
            ),
            (range_request::SortTarget::Create, mvcc::SortTarget::Create),
            (range_request::SortTarget::Mod, mvcc::SortTarget::Mod),
            (range_request::SortTarget::Value, mvcc::SortTarget::Value),
        ];
        for (wire, ours) in targets {
            let request = pb::RangeRequest {
                sort_target: wire as i32,
                ..pb_range("k")
            };
            assert_eq!(range_request(request).unwrap().0.sort_target, ours);
        }
    }

    #[test]
    fn unknown_sort_options_get_etcds_error() {
        for request in [
            pb::RangeRequest {
                sort_order: 3,
                ..pb_range("k")
            },
            pb::RangeRequest {
                sort_target: -1,
                ..pb_range("k")
            },
        ] {
            let status = range_request(request).unwrap_err().to_status();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert_eq!(status.message(), "etcdserver: invalid sort option");
        }
    }

    #[test]
    fn put_delete_and_compaction_map_every_field() {
        let put = put_request(pb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 5,
            prev_kv: true,
            ignore_value: true,
            ignore_lease: true,
        });
        assert_eq!(
            put,
            mvcc::PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                lease: 5,
                prev_kv: true,
                ignore_value: true,
                ignore_lease: true,
            }
        );
        let delete = delete_range_request(pb::DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            prev_kv: true,
        });
        assert_eq!(
            delete,
            mvcc::DeleteRangeRequest {
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
                prev_kv: true,
            }
        );
        let compaction = compaction_request(pb::CompactionRequest {
            revision: 7,
            physical: true,
        });
        assert_eq!(
            compaction,
            mvcc::CompactionRequest {
                revision: 7,
                physical: true
            }
        );
    }

    fn pb_compare(
        result: compare::CompareResult,
        target: compare::CompareTarget,
        union: compare::TargetUnion,
    ) -> pb::Compare {
        pb::Compare {
            result: result as i32,
            target: target as i32,
            key: b"k".to_vec(),
            range_end: b"z".to_vec(),
            target_union: Some(union),
        }
    }

    #[test]
    fn compares_map_every_result_and_target() {
        use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
        let results = [
            (R::Equal, mvcc::CompareResult::Equal),
            (R::Greater, mvcc::CompareResult::Greater),
            (R::Less, mvcc::CompareResult::Less),
            (R::NotEqual, mvcc::CompareResult::NotEqual),
        ];
        let targets = [
            (T::Version, U::Version(4), mvcc::CompareTarget::Version(4)),
            (
                T::Create,
                U::CreateRevision(5),
                mvcc::CompareTarget::CreateRevision(5),
            ),
            (
                T::Mod,
                U::ModRevision(6),
                mvcc::CompareTarget::ModRevision(6),
            ),
            (
                T::Value,
                U::Value(b"v".to_vec()),
                mvcc::CompareTarget::Value(b"v".to_vec()),
            ),
            (T::Lease, U::Lease(7), mvcc::CompareTarget::Lease(7)),
        ];
        for (wire_result, result) in results {
            for (wire_target, union, target) in targets.clone() {
                let converted = compare(pb_compare(wire_result, wire_target, union)).unwrap();
                assert_eq!(
                    converted,
                    mvcc::Compare {
                        key: b"k".to_vec(),
                        range_end: b"z".to_vec(),
                        result,
                        target,
                    }
                );
            }
        }
    }

    #[test]
    fn a_compare_whose_union_disagrees_with_its_target_compares_the_zero_value() {
        use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
        let converted = compare(pb_compare(R::Equal, T::Value, U::Version(3))).unwrap();
        assert_eq!(converted.target, mvcc::CompareTarget::Value(Vec::new()));
        let missing = pb::Compare {
            target_union: None,
            ..pb_compare(R::Equal, T::Mod, U::ModRevision(1))
        };
        assert_eq!(
            compare(missing).unwrap().target,
            mvcc::CompareTarget::ModRevision(0)
        );
    }

    #[test]
    fn unknown_compare_enums_are_refused_naming_the_key() {
        use compare::{CompareResult as R, CompareTarget as T, TargetUnion as U};
        let bad_result = pb::Compare {
            result: 9,
            ..pb_compare(R::Equal, T::Version, U::Version(1))
        };
        let error = compare(bad_result).unwrap_err();
        assert!(matches!(
            error,
            ConvertError::UnknownCompareResult { value: 9, .. }
        ));
        assert!(error.to_string().contains("\"k\""), "{error}");
        let bad_target = pb::Compare {
            target: 5,
            ..pb_compare(R::Equal, T::Version, U::Version(1))
        };
        assert!(matches!(
            compare(bad_target).unwrap_err(),
            ConvertError::UnknownCompareTarget { value: 5, .. }
        ));
    }

    fn op(request: request_op::Request) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(request),
        }
    }

    #[test]
    fn txn_maps_branches_and_nesting_and_tracks_serializability() {
        let serializable_range = pb::RangeRequest {
            serializable: true,
            ..pb_range("r")
        };
        let request = pb::TxnRequest {
            compare: vec![],
            success: vec![
                op(request_op::Request::RequestRange(
                    serializable_range.clone(),
                )),
                op(request_op::Request::RequestPut(pb::PutRequest {
                    key: b"p".to_vec(),
                    ..pb::PutRequest::default()
                })),
            ],
            failure: vec![op(request_op::Request::RequestTxn(pb::TxnRequest {
                success: vec![op(request_op::Request::RequestDeleteRange(
                    pb::DeleteRangeRequest {
                        key: b"d".to_vec(),
                        ..pb::DeleteRangeRequest::default()
                    },
                ))],
                ..pb::TxnRequest::default()
            }))],
        };
        let (txn, serializable) = txn_request(request.clone()).unwrap();
        assert!(serializable);
        assert!(matches!(&txn.success[0], mvcc::RequestOp::Range(range) if range.key == b"r"));
        assert!(matches!(&txn.success[1], mvcc::RequestOp::Put(put) if put.key == b"p"));
        let mvcc::RequestOp::Txn(nested) = &txn.failure[0] else {
            panic!("nested txn lost: {txn:?}");
        };
        assert!(
            matches!(&nested.success[0], mvcc::RequestOp::DeleteRange(delete) if delete.key == b"d")
        );

        let mut linearizable = request;
        linearizable
            .failure
            .push(op(request_op::Request::RequestRange(pb_range("l"))));
        assert!(!txn_request(linearizable).unwrap().1);
    }

    #[test]
    fn an_empty_txn_operation_is_refused_with_its_position() {
        let request = pb::TxnRequest {
            failure: vec![
                op(request_op::Request::RequestRange(pb_range("a"))),
                pb::RequestOp { request: None },
            ],
            ..pb::TxnRequest::default()
        };
        assert_eq!(
            txn_request(request).unwrap_err(),
            ConvertError::EmptyRequestOp {
                branch: "failure",
                position: 1
            }
        );
    }

    fn kv(key: &str, revision: i64) -> mvcc::KeyValue {
        mvcc::KeyValue {
            key: key.as_bytes().to_vec(),
            create_revision: revision - 1,
            mod_revision: revision,
            version: 2,
            value: b"v".to_vec(),
            lease: 8,
        }
    }

    #[test]
    fn key_values_and_responses_map_every_field() {
        let converted = key_value(kv("k", 5));
        assert_eq!(
            converted,
            mvccpb::KeyValue {
                key: b"k".to_vec(),
                create_revision: 4,
                mod_revision: 5,
                version: 2,
                value: b"v".to_vec(),
                lease: 8,
            }
        );
        let header = Some(pb::ResponseHeader {
            cluster_id: 1,
            member_id: 2,
            revision: 3,
            raft_term: 4,
        });
        let range = range_response(
            mvcc::RangeResponse {
                revision: 5,
                kvs: vec![kv("k", 5)],
                more: true,
                count: 9,
            },
            header,
        );
        assert_eq!((range.header, range.more, range.count), (header, true, 9));
        assert_eq!(range.kvs, vec![converted.clone()]);
        let put = put_response(
            mvcc::PutResponse {
                prev_kv: Some(kv("k", 5)),
            },
            header,
        );
        assert_eq!(put.prev_kv, Some(converted.clone()));
        let delete = delete_range_response(
            mvcc::DeleteRangeResponse {
                deleted: 1,
                prev_kvs: vec![kv("k", 5)],
            },
            header,
        );
        assert_eq!((delete.deleted, delete.prev_kvs), (1, vec![converted]));
    }

    #[test]
    fn txn_operation_headers_name_the_revision_seen_at_that_point() {
        let range = || {
            mvcc::ResponseOp::Range(mvcc::RangeResponse {
                revision: 6,
                ..mvcc::RangeResponse::default()
            })
        };
        let deleted = |deleted| {
            mvcc::ResponseOp::DeleteRange(mvcc::DeleteRangeResponse {
                deleted,
                prev_kvs: Vec::new(),
            })
        };
        let response = mvcc::TxnResponse {
            succeeded: true,
            responses: vec![
                range(),
                deleted(0),
                mvcc::ResponseOp::Txn(mvcc::TxnResponse {
                    succeeded: false,
                    responses: vec![deleted(1)],
                }),
                range(),
                mvcc::ResponseOp::Put(mvcc::PutResponse::default()),
            ],
        };
        let converted = txn_response(response, None, 6);
        assert!(converted.succeeded);
        let revisions: Vec<i64> = converted
            .responses
            .iter()
            .map(|op| match op.response.as_ref().unwrap() {
                response_op::Response::ResponseRange(r) => r.header.unwrap().revision,
                response_op::Response::ResponsePut(r) => r.header.unwrap().revision,
                response_op::Response::ResponseDeleteRange(r) => r.header.unwrap().revision,
                response_op::Response::ResponseTxn(r) => {
                    assert!(!r.succeeded);
                    let response_op::Response::ResponseDeleteRange(inner) =
                        r.responses[0].response.as_ref().unwrap()
                    else {
                        panic!("{r:?}");
                    };
                    assert_eq!(
                        inner.header.unwrap().revision,
                        7,
                        "the nested delete changed something"
                    );
                    r.header.unwrap().revision
                }
            })
            .collect();
        assert_eq!(revisions, [6, 6, 0, 7, 7]);
    }

    #[test]
    fn a_put_bumps_the_revision_of_its_own_header() {
        let response = mvcc::TxnResponse {
            succeeded: true,
            responses: vec![mvcc::ResponseOp::Put(mvcc::PutResponse::default())],
        };
        let converted = txn_response(response, None, 3);
        let Some(response_op::Response::ResponsePut(put)) = &converted.responses[0].response else {
            panic!("{converted:?}");
        };
        assert_eq!(put.header.unwrap().revision, 4);
    }
}
