//! Random command sequences through the store and through a deliberately naive
//! reference model (a full copy of the key space per revision), compared after
//! every command on the command's answer and on range reads at every revision;
//! then the same log applied as one batch and a snapshot restore must give the
//! same store. A few seconds.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::error::{Error, RequestError};
use crate::store::{Durability, Store};
use crate::test_support::Harness;
use crate::types::*;

type KeySpace = BTreeMap<Vec<u8>, KeyValue>;

/// etcd's semantics, written as plainly as possible.
#[derive(Debug)]
struct Model {
    /// The whole key space after each revision.
    states: BTreeMap<i64, KeySpace>,
    /// How many keys each revision wrote (puts and deletions).
    changes: BTreeMap<i64, usize>,
    compact_revision: i64,
    /// Granted leases: id to TTL.
    leases: BTreeMap<i64, i64>,
}

fn in_range(key: &[u8], start: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        key == start
    } else if range_end == [0] {
        key >= start
    } else {
        key >= start && key < range_end
    }
}

fn compare_holds(state: &KeySpace, compare: &Compare) -> bool {
    let matching: Vec<&KeyValue> = state
        .values()
        .filter(|kv| in_range(&kv.key, &compare.key, &compare.range_end))
        .collect();
    let missing = KeyValue::default();
    let subjects = if matching.is_empty() {
        if matches!(compare.target, CompareTarget::Value(_)) {
            return false;
        }
        vec![&missing]
    } else {
        matching
    };
    subjects.into_iter().all(|kv| {
        let ordering = match &compare.target {
            CompareTarget::Version(v) => kv.version.cmp(v),
            CompareTarget::CreateRevision(r) => kv.create_revision.cmp(r),
            CompareTarget::ModRevision(r) => kv.mod_revision.cmp(r),
            CompareTarget::Value(v) => kv.value.cmp(v),
            CompareTarget::Lease(l) => kv.lease.cmp(l),
        };
        match compare.result {
            CompareResult::Equal => ordering.is_eq(),
            CompareResult::NotEqual => ordering.is_ne(),
            CompareResult::Greater => ordering.is_gt(),
            CompareResult::Less => ordering.is_lt(),
        }
    })
}

fn read(state: &KeySpace, request: &RangeRequest, header_revision: i64) -> RangeResponse {
    let mut kvs: Vec<KeyValue> = state
        .values()
        .filter(|kv| in_range(&kv.key, &request.key, &request.range_end))
        .cloned()
        .collect();
    let count = kvs.len() as i64;
    if request.count_only {
        kvs.clear();
    }
    let filtered = request.min_mod_revision != 0
        || request.max_mod_revision != 0
        || request.min_create_revision != 0
        || request.max_create_revision != 0;
    if request.limit > 0 && request.sort_order == SortOrder::None && !filtered {
        kvs.truncate(request.limit as usize + 1);
    }
    kvs.retain(|kv| {
        (request.min_mod_revision == 0 || kv.mod_revision >= request.min_mod_revision)
            && (request.max_mod_revision == 0 || kv.mod_revision <= request.max_mod_revision)
            && (request.min_create_revision == 0
                || kv.create_revision >= request.min_create_revision)
            && (request.max_create_revision == 0
                || kv.create_revision <= request.max_create_revision)
    });
    let sort_key = |kv: &KeyValue| -> (i64, Vec<u8>) {
        match request.sort_target {
            SortTarget::Key => (0, kv.key.clone()),
            SortTarget::Version => (kv.version, Vec::new()),
            SortTarget::Create => (kv.create_revision, Vec::new()),
            SortTarget::Mod => (kv.mod_revision, Vec::new()),
            SortTarget::Value => (0, kv.value.clone()),
        }
    };
    match request.sort_order {
        SortOrder::Descend => kvs.sort_by_key(|kv| std::cmp::Reverse(sort_key(kv))),
        SortOrder::Ascend => kvs.sort_by_key(sort_key),
        SortOrder::None if request.sort_target != SortTarget::Key => kvs.sort_by_key(sort_key),
        SortOrder::None => {}
    }
    let mut more = false;
    if request.limit > 0 && kvs.len() as i64 > request.limit {
        kvs.truncate(request.limit as usize);
        more = true;
    }
    if request.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    RangeResponse {
        revision: header_revision,
        kvs,
        more,
        count,
    }
}

/// The state of one command in progress.
struct Scratch {
    before: KeySpace,
    now: KeySpace,
    revision: i64,
    changed: bool,
    changes: usize,
}

impl Model {
    fn new() -> Self {
        Self {
            states: BTreeMap::from([(1, KeySpace::new())]),
            changes: BTreeMap::new(),
            compact_revision: 0,
            leases: BTreeMap::new(),
        }
    }

    fn current_revision(&self) -> i64 {
        *self.states.keys().next_back().unwrap()
    }

    /// What a compacted store keeps: every change after the compaction, and
    /// the value of each key live at it.
    fn retained_revisions(&self) -> u64 {
        let after: usize = self
            .changes
            .range(self.compact_revision + 1..)
            .map(|(_, count)| count)
            .sum();
        let live_at_compaction = if self.compact_revision == 0 {
            0
        } else {
            self.state_at(self.compact_revision).len()
        };
        (after + live_at_compaction) as u64
    }

    fn state_at(&self, revision: i64) -> &KeySpace {
        self.states.range(..=revision).next_back().unwrap().1
    }

    fn range(&self, request: &RangeRequest) -> Result<RangeResponse, RequestError> {
        request.validate()?;
        let current = self.current_revision();
        if request.revision > current {
            return Err(RequestError::FutureRevision {
                requested: request.revision,
                current_revision: current,
            });
        }
        let at = if request.revision <= 0 {
            current
        } else {
            request.revision
        };
        if at < self.compact_revision {
            return Err(RequestError::Compacted {
                requested: request.revision,
                compact_revision: self.compact_revision,
            });
        }
        Ok(read(self.state_at(at), request, current))
    }

    fn apply(&mut self, command: &Command) -> Result<Response, RequestError> {
        command.validate()?;
        let current = self.current_revision();
        if let Command::Compact(compaction) = command {
            if compaction.revision <= self.compact_revision {
                return Err(RequestError::Compacted {
                    requested: compaction.revision,
                    compact_revision: self.compact_revision,
                });
            }
            if compaction.revision > current {
                return Err(RequestError::FutureRevision {
                    requested: compaction.revision,
                    current_revision: current,
                });
            }
            self.compact_revision = compaction.revision;
            return Ok(Response::Compact(CompactionResponse {}));
        }
        let before = self.state_at(current).clone();
        let mut scratch = Scratch {
            now: before.clone(),
            before,
            revision: current + 1,
            changed: false,
            changes: 0,
        };
        let response = match command {
            Command::Put(put) => {
                self.check_put(&scratch.before, put)?;
                Response::Put(self.put(&mut scratch, put))
            }
            Command::DeleteRange(delete) => {
                Response::DeleteRange(self.delete(&mut scratch, delete))
            }
            Command::Txn(txn) => {
                self.check_txn(&scratch.before, txn)?;
                Response::Txn(self.txn(&mut scratch, txn))
            }
            Command::LeaseGrant(grant) => {
                if self.leases.contains_key(&grant.id) {
                    return Err(RequestError::LeaseExists { id: grant.id });
                }
                self.leases.insert(grant.id, grant.ttl_seconds);
                Response::LeaseGrant(LeaseGrantResponse {
                    id: grant.id,
                    ttl_seconds: grant.ttl_seconds,
                })
            }
            Command::LeaseRevoke(revoke) => {
                if self.leases.remove(&revoke.id).is_none() {
                    return Err(RequestError::LeaseNotFound { id: revoke.id });
                }
                let attached: Vec<Vec<u8>> = scratch
                    .before
                    .values()
                    .filter(|kv| kv.lease == revoke.id)
                    .map(|kv| kv.key.clone())
                    .collect();
                for key in attached {
                    self.delete(&mut scratch, &DeleteRangeRequest::single(key));
                }
                Response::LeaseRevoke(LeaseRevokeResponse {})
            }
            Command::Compact(_) => unreachable!("handled above"),
        };
        if scratch.changed {
            self.states.insert(scratch.revision, scratch.now);
            self.changes.insert(scratch.revision, scratch.changes);
        }
        Ok(response)
    }

    fn check_put(&self, before: &KeySpace, put: &PutRequest) -> Result<(), RequestError> {
        if (put.ignore_value || put.ignore_lease) && !before.contains_key(&put.key) {
            return Err(RequestError::KeyNotFound);
        }
        if !put.ignore_lease && put.lease != 0 && !self.leases.contains_key(&put.lease) {
            return Err(RequestError::LeaseNotFound { id: put.lease });
        }
        Ok(())
    }

    fn check_txn(&self, before: &KeySpace, txn: &TxnRequest) -> Result<(), RequestError> {
        let branch = if txn.compare.iter().all(|c| compare_holds(before, c)) {
            &txn.success
        } else {
            &txn.failure
        };
        for op in branch {
            match op {
                RequestOp::Put(put) => self.check_put(before, put)?,
                RequestOp::Range(range) if range.revision != 0 => {
                    let current = self.current_revision();
                    if range.revision > current {
                        return Err(RequestError::FutureRevision {
                            requested: range.revision,
                            current_revision: current,
                        });
                    }
                    if range.revision < self.compact_revision {
                        return Err(RequestError::Compacted {
                            requested: range.revision,
                            compact_revision: self.compact_revision,
                        });
                    }
                }
                RequestOp::Txn(inner) => self.check_txn(before, inner)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn put(&self, scratch: &mut Scratch, put: &PutRequest) -> PutResponse {
        let previous = scratch.now.get(&put.key).cloned();
        let kv = KeyValue {
            key: put.key.clone(),
            create_revision: previous
                .as_ref()
                .map_or(scratch.revision, |p| p.create_revision),
            mod_revision: scratch.revision,
            version: previous.as_ref().map_or(0, |p| p.version) + 1,
            value: match &previous {
                Some(previous) if put.ignore_value => previous.value.clone(),
                _ => put.value.clone(),
            },
            lease: match &previous {
                Some(previous) if put.ignore_lease => previous.lease,
                _ => put.lease,
            },
        };
        scratch.now.insert(put.key.clone(), kv);
        scratch.changed = true;
        scratch.changes += 1;
        PutResponse {
            prev_kv: if put.prev_kv { previous } else { None },
        }
    }

    fn delete(&self, scratch: &mut Scratch, delete: &DeleteRangeRequest) -> DeleteRangeResponse {
        let doomed: Vec<KeyValue> = scratch
            .now
            .values()
            .filter(|kv| in_range(&kv.key, &delete.key, &delete.range_end))
            .cloned()
            .collect();
        for kv in &doomed {
            scratch.now.remove(&kv.key);
            scratch.changed = true;
            scratch.changes += 1;
        }
        DeleteRangeResponse {
            deleted: doomed.len() as i64,
            prev_kvs: if delete.prev_kv { doomed } else { Vec::new() },
        }
    }

    fn txn(&self, scratch: &mut Scratch, txn: &TxnRequest) -> TxnResponse {
        let succeeded = txn
            .compare
            .iter()
            .all(|c| compare_holds(&scratch.before, c));
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let responses = branch
            .iter()
            .map(|op| match op {
                RequestOp::Range(range) => {
                    let header = if scratch.changed {
                        scratch.revision
                    } else {
                        scratch.revision - 1
                    };
                    let state = if range.revision > 0 {
                        self.state_at(range.revision)
                    } else {
                        &scratch.now
                    };
                    ResponseOp::Range(read(state, range, header))
                }
                RequestOp::Put(put) => ResponseOp::Put(self.put(scratch, put)),
                RequestOp::DeleteRange(delete) => {
                    ResponseOp::DeleteRange(self.delete(scratch, delete))
                }
                RequestOp::Txn(inner) => ResponseOp::Txn(self.txn(scratch, inner)),
            })
            .collect();
        TxnResponse {
            succeeded,
            responses,
        }
    }
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just("a"), Just("ab"), Just("b"), Just("ba"), Just("c")].prop_map(|k| k.into())
}

fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        2 => Just(""),
        2 => Just("\0"),
        1 => Just("b"),
        1 => Just("bb"),
        2 => Just("z"),
        1 => Just("a"),
    ]
    .prop_map(|k| k.into())
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(""), Just("x"), Just("y")].prop_map(|v| v.into())
}

fn put_request() -> impl Strategy<Value = PutRequest> {
    // Mostly plain puts; some keep the old value or lease, a few of those
    // wrongly also provide one.
    (key(), value(), 0..3i64, any::<bool>(), 0..16u8).prop_map(
        |(key, value, lease, prev_kv, flags)| PutRequest {
            key,
            value: if flags == 1 { Vec::new() } else { value },
            lease: if flags == 2 { 0 } else { lease },
            prev_kv,
            ignore_value: flags <= 1,
            ignore_lease: flags == 2 || flags == 3,
        },
    )
}

fn delete_request() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), range_end(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn range_request() -> impl Strategy<Value = RangeRequest> {
    let sort_order = prop_oneof![
        Just(SortOrder::None),
        Just(SortOrder::Ascend),
        Just(SortOrder::Descend)
    ];
    let sort_target = prop_oneof![
        Just(SortTarget::Key),
        Just(SortTarget::Version),
        Just(SortTarget::Create),
        Just(SortTarget::Mod),
        Just(SortTarget::Value)
    ];
    let filter = prop_oneof![3 => Just(0i64), 1 => 1..10i64];
    (
        (key(), range_end(), 0..4i64, sort_order, sort_target),
        (any::<bool>(), 0..6u8),
        (filter.clone(), filter.clone(), filter.clone(), filter),
    )
        .prop_map(
            |((key, range_end, limit, sort_order, sort_target), (keys_only, count), filters)| {
                RangeRequest {
                    key,
                    range_end,
                    limit,
                    revision: 0,
                    sort_order,
                    sort_target,
                    keys_only,
                    count_only: count == 0,
                    min_mod_revision: filters.0,
                    max_mod_revision: filters.1,
                    min_create_revision: filters.2,
                    max_create_revision: filters.3,
                }
            },
        )
}

fn compare() -> impl Strategy<Value = Compare> {
    let result = prop_oneof![
        Just(CompareResult::Equal),
        Just(CompareResult::Greater),
        Just(CompareResult::Less),
        Just(CompareResult::NotEqual)
    ];
    let target = prop_oneof![
        (0..4i64).prop_map(CompareTarget::Version),
        (0..10i64).prop_map(CompareTarget::CreateRevision),
        (0..10i64).prop_map(CompareTarget::ModRevision),
        value().prop_map(CompareTarget::Value),
        (0..2i64).prop_map(CompareTarget::Lease),
    ];
    let compare_end = prop_oneof![4 => Just(Vec::new()), 1 => range_end()];
    (key(), compare_end, result, target).prop_map(|(key, range_end, result, target)| Compare {
        key,
        range_end,
        result,
        target,
    })
}

fn txn_request() -> impl Strategy<Value = TxnRequest> {
    let range_at = (range_request(), 0..12i64).prop_map(|(range, revision)| RangeRequest {
        revision: if revision > 8 { 0 } else { revision },
        ..range
    });
    let leaf = prop_oneof![
        1 => range_at.prop_map(RequestOp::Range),
        2 => put_request().prop_map(RequestOp::Put),
        1 => delete_request().prop_map(RequestOp::DeleteRange),
    ];
    let op = leaf.prop_recursive(2, 12, 3, |inner| {
        (
            prop::collection::vec(compare(), 0..3),
            prop::collection::vec(inner.clone(), 0..3),
            prop::collection::vec(inner, 0..3),
        )
            .prop_map(|(compare, success, failure)| {
                RequestOp::Txn(TxnRequest {
                    compare,
                    success,
                    failure,
                })
            })
    });
    (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(op.clone(), 0..4),
        prop::collection::vec(op, 0..4),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        4 => put_request().prop_map(Command::Put),
        2 => delete_request().prop_map(Command::DeleteRange),
        3 => txn_request().prop_map(Command::Txn),
        1 => (0..12i64).prop_map(|revision| Command::Compact(CompactionRequest { revision, physical: false })),
        1 => (0..3i64, 1..10i64).prop_map(|(id, ttl_seconds)| Command::LeaseGrant(LeaseGrantRequest { id, ttl_seconds })),
        1 => (0..3i64).prop_map(|id| Command::LeaseRevoke(LeaseRevokeRequest { id })),
    ]
}

fn request_error(result: Result<RangeResponse, Error>) -> Result<RangeResponse, RequestError> {
    result.map_err(|error| match error {
        Error::Request(refusal) => refusal,
        other => panic!("range failed in the store: {other}"),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_store_behaves_like_the_model(
        commands in prop::collection::vec(command(), 1..30),
        reads in prop::collection::vec(range_request(), 4..8),
    ) {
        let mut harness = Harness::new();
        let mut model = Model::new();
        let reads: Vec<RangeRequest> = reads
            .into_iter()
            .chain([RangeRequest::all()])
            .collect();
        for command in &commands {
            let expected = model.apply(command);
            let applied = harness.apply(command.clone());
            prop_assert_eq!(&applied.result, &expected, "{:?}", command);
            prop_assert_eq!(applied.revision, model.current_revision());
            prop_assert_eq!(harness.store.compact_revision(), model.compact_revision);
            prop_assert_eq!(harness.store.revision_count().unwrap(), model.retained_revisions());
            let leases: BTreeMap<i64, i64> = harness
                .store
                .leases()
                .unwrap()
                .into_iter()
                .map(|lease| (lease.id, lease.ttl_seconds))
                .collect();
            prop_assert_eq!(&leases, &model.leases);
            for read in &reads {
                for revision in -1..=model.current_revision() + 1 {
                    let request = RangeRequest { revision, ..read.clone() };
                    prop_assert_eq!(
                        request_error(harness.range(&request)),
                        model.range(&request),
                        "{:?}", request
                    );
                }
            }
        }
        // The same log applied as one batch, and the store rebuilt from a
        // snapshot, are indistinguishable from the store applied entry by entry.
        let batched = Store::in_memory().unwrap();
        let entries = commands
            .iter()
            .enumerate()
            .map(|(offset, command)| (offset as u64 + 1, Some(command)));
        batched.apply_batch(entries, Durability::Deferred).unwrap();
        let restored = Store::in_memory().unwrap();
        restored.restore(&harness.store.snapshot().unwrap()).unwrap();
        let expected_hash = harness.store.hash().unwrap();
        prop_assert_eq!(batched.hash().unwrap(), expected_hash);
        prop_assert_eq!(restored.hash().unwrap(), expected_hash);
        prop_assert_eq!(restored.applied_index(), commands.len() as u64);
        for read in &reads {
            for revision in model.compact_revision..=model.current_revision() {
                let request = RangeRequest { revision, ..read.clone() };
                let expected = model.range(&request);
                prop_assert_eq!(request_error(restored.range(&request)), expected.clone());
                prop_assert_eq!(request_error(batched.range(&request)), expected);
            }
        }
    }
}
