//! etcd's request validation: the checks that need no stored state.
//!
//! The server runs these before proposing, so a bad request is refused without
//! touching the log; the store runs them again when applying, so a command that
//! slipped through still changes nothing. Owns empty-key, provided-value/lease,
//! duplicate-key and operation-budget rules. Must never read the store: checks
//! that depend on state (key exists, revision compacted, lease granted) live
//! in `engine`.

use crate::error::RequestError;
use crate::keys::KeyRange;
use crate::types::{
    Command, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest, LEASE_TTL_SECONDS_MAX,
};

impl Command {
    /// Checks the command against etcd's stateless rules (everything but the
    /// operation budget, which is the server's setting).
    pub fn validate(&self) -> Result<(), RequestError> {
        match self {
            Command::Put(put) => put.validate(),
            Command::DeleteRange(delete) => delete.validate(),
            Command::Txn(txn) => txn.validate(),
            Command::Compact(_) | Command::LeaseRevoke(_) => Ok(()),
            Command::LeaseGrant(grant) => grant.validate(),
        }
    }
}

impl LeaseGrantRequest {
    /// etcd's grant rules: 0 is no lease, and the TTL has a ceiling.
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.id == 0 {
            return Err(RequestError::LeaseNotFound { id: 0 });
        }
        if self.ttl_seconds > LEASE_TTL_SECONDS_MAX {
            return Err(RequestError::LeaseTtlTooLarge {
                ttl_seconds: self.ttl_seconds,
            });
        }
        Ok(())
    }
}

impl RangeRequest {
    pub fn validate(&self) -> Result<(), RequestError> {
        non_empty(&self.key)
    }
}

impl PutRequest {
    pub fn validate(&self) -> Result<(), RequestError> {
        non_empty(&self.key)?;
        if self.ignore_value && !self.value.is_empty() {
            return Err(RequestError::ValueProvided);
        }
        if self.ignore_lease && self.lease != 0 {
            return Err(RequestError::LeaseProvided);
        }
        Ok(())
    }
}

impl DeleteRangeRequest {
    pub fn validate(&self) -> Result<(), RequestError> {
        non_empty(&self.key)
    }
}

impl TxnRequest {
    /// The size etcd checks against `--max-txn-ops` at this level: the longest
    /// of the compare list and the two branches.
    pub fn operation_count(&self) -> usize {
        self.compare
            .len()
            .max(self.success.len())
            .max(self.failure.len())
    }

    /// etcd's operation budget: this level may use `ops_max`, and each nested
    /// transaction may use what is left after its parent's count.
    pub fn check_operation_limit(&self, ops_max: usize) -> Result<(), RequestError> {
        let count = self.operation_count();
        if count > ops_max {
            return Err(RequestError::TooManyOps { ops_max });
        }
        self.success
            .iter()
            .chain(&self.failure)
            .try_for_each(|op| match op {
                RequestOp::Txn(nested) => nested.check_operation_limit(ops_max - count),
                _ => Ok(()),
            })
    }

    /// Whether both branches hold only ranges (etcd's read-only transaction),
    /// so the transaction can be served without the log.
    pub fn is_read_only(&self) -> bool {
        self.success
            .iter()
            .chain(&self.failure)
            .all(|op| matches!(op, RequestOp::Range(_)))
    }

    /// Empty keys anywhere, then etcd's duplicate-key rule for each branch.
    pub fn validate(&self) -> Result<(), RequestError> {
        self.validate_keys()?;
        check_overlaps(&self.success)?;
        check_overlaps(&self.failure)?;
        Ok(())
    }

    fn validate_keys(&self) -> Result<(), RequestError> {
        for compare in &self.compare {
            non_empty(&compare.key)?;
        }
        for op in self.success.iter().chain(&self.failure) {
            match op {
                RequestOp::Range(range) => range.validate()?,
                RequestOp::Put(put) => put.validate()?,
                RequestOp::DeleteRange(delete) => delete.validate()?,
                RequestOp::Txn(nested) => nested.validate_keys()?,
            }
        }
        Ok(())
    }
}

fn non_empty(key: &[u8]) -> Result<(), RequestError> {
    if key.is_empty() {
        return Err(RequestError::EmptyKey);
    }
    Ok(())
}

/// The keys put and the ranges deleted by one branch, nested branches included.
#[derive(Debug, Default)]
struct BranchWrites {
    puts: Vec<Vec<u8>>,
    deletes: Vec<KeyRange>,
}

impl BranchWrites {
    fn deleted(&self, key: &[u8]) -> bool {
        self.deletes.iter().any(|range| range.contains(key))
    }

    fn put(&self, key: &[u8]) -> bool {
        self.puts.iter().any(|put| put == key)
    }
}

/// etcd's rule: within one branch, no key may be put twice, and no key may be
/// both put and deleted, counting nested transactions; the success and failure
/// branches of a nested transaction exclude each other, so they may put the
/// same key. Overlapping deletes are allowed.
///
/// etcd checks deletes as literal intervals, so a delete whose `range_end` is
/// `"\0"` (every key from `key` on) conflicts with no put; it is matched here
/// so that transactions etcd accepts are accepted. The store applies such a
/// put and delete in order, like etcd.
fn check_overlaps(ops: &[RequestOp]) -> Result<BranchWrites, RequestError> {
    let mut writes = BranchWrites::default();
    for op in ops {
        if let RequestOp::DeleteRange(delete) = op {
            if delete.range_end != [0] {
                writes
                    .deletes
                    .push(KeyRange::new(&delete.key, &delete.range_end));
            }
        }
    }
    let duplicate = |key: &[u8]| RequestError::DuplicateKey { key: key.to_vec() };
    for op in ops {
        let RequestOp::Txn(nested) = op else { continue };
        let success = check_overlaps(&nested.success)?;
        let failure = check_overlaps(&nested.failure)?;
        for key in &success.puts {
            if writes.put(key) || writes.deleted(key) {
                return Err(duplicate(key));
            }
        }
        let mut puts_added = success.puts.clone();
        for key in &failure.puts {
            let put_outside_success = writes.put(key) && !success.put(key);
            if put_outside_success || writes.deleted(key) {
                return Err(duplicate(key));
            }
            puts_added.push(key.clone());
        }
        writes.puts.extend(puts_added);
        writes.deletes.extend(success.deletes);
        writes.deletes.extend(failure.deletes);
    }
    for op in ops {
        let RequestOp::Put(put) = op else { continue };
        if writes.put(&put.key) || writes.deleted(&put.key) {
            return Err(duplicate(&put.key));
        }
        writes.puts.push(put.key.clone());
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Compare, CompareResult, CompareTarget};

    fn put(key: &str) -> RequestOp {
        RequestOp::Put(PutRequest::new(key, "v"))
    }

    fn delete(key: &str, range_end: &str) -> RequestOp {
        RequestOp::DeleteRange(DeleteRangeRequest::between(key, range_end))
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    fn is_duplicate(request: &TxnRequest) -> bool {
        matches!(request.validate(), Err(RequestError::DuplicateKey { .. }))
    }

    #[test]
    fn empty_keys_are_refused_everywhere() {
        assert_eq!(
            Command::Put(PutRequest::new("", "v")).validate(),
            Err(RequestError::EmptyKey)
        );
        assert_eq!(
            DeleteRangeRequest::single("").validate(),
            Err(RequestError::EmptyKey)
        );
        assert_eq!(
            RangeRequest::single("").validate(),
            Err(RequestError::EmptyKey)
        );
        let compare_without_key = TxnRequest {
            compare: vec![Compare::new(
                "",
                CompareResult::Equal,
                CompareTarget::Version(0),
            )],
            ..TxnRequest::default()
        };
        assert_eq!(compare_without_key.validate(), Err(RequestError::EmptyKey));
        let nested = txn(vec![RequestOp::Txn(txn(vec![], vec![put("")]))], vec![]);
        assert_eq!(nested.validate(), Err(RequestError::EmptyKey));
    }

    #[test]
    fn ignore_flags_refuse_provided_fields() {
        let value_given = PutRequest {
            ignore_value: true,
            ..PutRequest::new("k", "v")
        };
        assert_eq!(value_given.validate(), Err(RequestError::ValueProvided));
        let lease_given = PutRequest {
            ignore_lease: true,
            lease: 3,
            ..PutRequest::new("k", "")
        };
        assert_eq!(lease_given.validate(), Err(RequestError::LeaseProvided));
    }

    #[test]
    fn grants_need_an_id_and_a_ttl_within_etcds_ceiling() {
        let grant = |id, ttl_seconds| Command::LeaseGrant(LeaseGrantRequest { id, ttl_seconds });
        assert_eq!(
            grant(0, 5).validate(),
            Err(RequestError::LeaseNotFound { id: 0 })
        );
        assert_eq!(
            grant(7, LEASE_TTL_SECONDS_MAX + 1).validate(),
            Err(RequestError::LeaseTtlTooLarge {
                ttl_seconds: LEASE_TTL_SECONDS_MAX + 1
            })
        );
        assert_eq!(grant(7, LEASE_TTL_SECONDS_MAX).validate(), Ok(()));
        assert_eq!(grant(-7, 1).validate(), Ok(()));
    }

    #[test]
    fn two_puts_of_one_key_are_duplicates() {
        assert!(is_duplicate(&txn(vec![put("a"), put("a")], vec![])));
        assert!(is_duplicate(&txn(vec![], vec![put("a"), put("a")])));
        assert!(!is_duplicate(&txn(
            vec![put("a"), put("b")],
            vec![put("a")]
        )));
    }

    #[test]
    fn put_inside_a_deleted_range_is_a_duplicate() {
        assert!(is_duplicate(&txn(vec![delete("a", "c"), put("b")], vec![])));
        assert!(is_duplicate(&txn(vec![put("a"), delete("a", "")], vec![])));
        // etcd's interval check reads "\0" literally: no conflict.
        assert!(!is_duplicate(&txn(
            vec![put("zz"), delete("b", "\0")],
            vec![]
        )));
        assert!(!is_duplicate(&txn(
            vec![delete("a", "c"), put("c")],
            vec![]
        )));
        assert!(!is_duplicate(&txn(
            vec![delete("a", "c"), delete("b", "d")],
            vec![]
        )));
    }

    #[test]
    fn nested_branches_count_against_their_parent() {
        let nested_put = RequestOp::Txn(txn(vec![put("a")], vec![]));
        assert!(is_duplicate(&txn(
            vec![put("a"), nested_put.clone()],
            vec![]
        )));
        let nested_delete = RequestOp::Txn(txn(vec![], vec![delete("a", "b")]));
        assert!(is_duplicate(&txn(vec![put("a"), nested_delete], vec![])));
        let parent_delete = txn(vec![delete("a", "b"), nested_put], vec![]);
        assert!(is_duplicate(&parent_delete));
    }

    #[test]
    fn exclusive_nested_branches_may_put_the_same_key() {
        let both_branches = RequestOp::Txn(txn(vec![put("a")], vec![put("a")]));
        assert!(!is_duplicate(&txn(vec![both_branches], vec![])));
        let two_nested = vec![
            RequestOp::Txn(txn(vec![put("a")], vec![])),
            RequestOp::Txn(txn(vec![], vec![put("a")])),
        ];
        assert!(is_duplicate(&txn(two_nested, vec![])));
    }

    #[test]
    fn operation_budget_shrinks_with_nesting() {
        let flat = txn(vec![put("a"), put("b"), put("c")], vec![]);
        assert_eq!(flat.operation_count(), 3);
        assert_eq!(flat.check_operation_limit(3), Ok(()));
        assert_eq!(
            flat.check_operation_limit(2),
            Err(RequestError::TooManyOps { ops_max: 2 })
        );
        let nested = txn(vec![RequestOp::Txn(flat), put("x")], vec![]);
        assert_eq!(nested.operation_count(), 2);
        assert_eq!(nested.check_operation_limit(5), Ok(()));
        assert_eq!(
            nested.check_operation_limit(4),
            Err(RequestError::TooManyOps { ops_max: 2 })
        );
    }
}
