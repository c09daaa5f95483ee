//! Reads over the redb tables with etcd's semantics: which revision of each key
//! is visible at a revision, ranges with their limit, sort and filters,
//! compares, and read-only transactions. Works on committed tables and on the
//! tables inside a write transaction alike. Must never write.

use std::cmp::Ordering;

use redb::ReadableTable;

use crate::error::{Error, StoreError};
use crate::keys::KeyRange;
use crate::meta::Meta;
use crate::record::{IndexKey, Record, Revision};
use crate::types::{
    Compare, CompareResult, CompareTarget, KeyValue, RangeRequest, RangeResponse, RequestOp,
    ResponseOp, SortOrder, SortTarget, TxnRequest, TxnResponse,
};

/// Read access to the history, wherever the tables come from.
pub(crate) struct View<'t, I, R> {
    pub(crate) index: &'t I,
    pub(crate) revisions: &'t R,
}

impl<I, R> View<'_, I, R>
where
    I: ReadableTable<IndexKey, bool>,
    R: ReadableTable<(i64, i64), &'static [u8]>,
{
    /// Calls `visit` with each key in `range` that is live at `at`, in key order,
    /// with the revision that holds its value there.
    fn scan_live(
        &self,
        range: &KeyRange,
        at: i64,
        mut visit: impl FnMut(&[u8], Revision),
    ) -> Result<(), StoreError> {
        let Some(start) = range.start() else {
            return Ok(());
        };
        if let KeyRange::Single(key) = range {
            if let Some((revision, false)) = self.newest_at(key, at)? {
                visit(key, revision);
            }
            return Ok(());
        }
        let lower = (start, i64::MIN, i64::MIN);
        let entries = match range.end_exclusive() {
            Some(end) => self.index.range(lower..(end, i64::MIN, i64::MIN)),
            None => self.index.range(lower..),
        }
        .map_err(StoreError::database("reading the key index"))?;
        let mut current_key: Option<Vec<u8>> = None;
        let mut newest_visible: Option<(Revision, bool)> = None;
        let mut flush = |key: &Option<Vec<u8>>, newest: Option<(Revision, bool)>| {
            if let (Some(key), Some((revision, false))) = (key, newest) {
                visit(key, revision);
            }
        };
        for entry in entries {
            let (entry_key, tombstone) =
                entry.map_err(StoreError::database("reading the key index"))?;
            let (key, main, sub) = entry_key.value();
            if current_key.as_deref() != Some(key) {
                flush(&current_key, newest_visible.take());
                current_key = Some(key.to_vec());
            }
            if main <= at {
                newest_visible = Some((Revision { main, sub }, tombstone.value()));
            }
        }
        flush(&current_key, newest_visible);
        Ok(())
    }

    /// The key's newest revision at or below `at` and whether it is a
    /// tombstone; one seek, however long the key's history.
    fn newest_at(&self, key: &[u8], at: i64) -> Result<Option<(Revision, bool)>, StoreError> {
        let newest = self
            .index
            .range((key, i64::MIN, i64::MIN)..=(key, at, i64::MAX))
            .map_err(StoreError::database("reading the key index"))?
            .next_back()
            .transpose()
            .map_err(StoreError::database("reading the key index"))?;
        Ok(newest.map(|(entry, tombstone)| {
            let (entry_key, main, sub) = entry.value();
            debug_assert!(entry_key == key && main <= at);
            (Revision { main, sub }, tombstone.value())
        }))
    }

    pub(crate) fn load(&self, revision: Revision) -> Result<KeyValue, StoreError> {
        let location = || format!("revision {}.{}", revision.main, revision.sub);
        let bytes = self
            .revisions
            .get((revision.main, revision.sub))
            .map_err(StoreError::database("reading a revision"))?
            .ok_or_else(|| StoreError::Corrupt {
                what: "the key index names a revision that is missing".to_string(),
                location: location(),
            })?;
        let record = Record::decode(bytes.value()).map_err(|source| StoreError::Record {
            location: location(),
            source,
        })?;
        if record.tombstone {
            return Err(StoreError::Corrupt {
                what: "the key index calls a tombstone live".to_string(),
                location: location(),
            });
        }
        Ok(record.into_key_value(revision.main))
    }

    /// Every key in `range` live at `at`, in key order.
    pub(crate) fn live(&self, range: &KeyRange, at: i64) -> Result<Vec<KeyValue>, StoreError> {
        let mut revisions = Vec::new();
        self.scan_live(range, at, |_, revision| revisions.push(revision))?;
        revisions.into_iter().map(|rev| self.load(rev)).collect()
    }

    /// The key's newest value, unless it is deleted or absent.
    pub(crate) fn latest(&self, key: &[u8]) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.live(&KeyRange::Single(key.to_vec()), i64::MAX)?.pop())
    }

    /// etcd's range semantics at revision `at` (already checked against the
    /// compacted and current revisions); `header_revision` is reported back.
    pub(crate) fn range(
        &self,
        request: &RangeRequest,
        at: i64,
        header_revision: i64,
    ) -> Result<RangeResponse, StoreError> {
        let filtered = request.min_mod_revision != 0
            || request.max_mod_revision != 0
            || request.min_create_revision != 0
            || request.max_create_revision != 0;
        // Like etcd: without sorting or filters, fetch one key past the limit to
        // learn `more`; otherwise fetch everything and cut afterwards.
        let fetch_max = (request.limit > 0 && request.sort_order == SortOrder::None && !filtered)
            .then(|| {
                usize::try_from(request.limit)
                    .unwrap_or(usize::MAX)
                    .saturating_add(1)
            });
        let mut count = 0i64;
        let mut revisions = Vec::new();
        let range = KeyRange::new(&request.key, &request.range_end);
        self.scan_live(&range, at, |_, revision| {
            count += 1;
            if !request.count_only && fetch_max.is_none_or(|max| revisions.len() < max) {
                revisions.push(revision);
            }
        })?;
        let mut kvs = revisions
            .into_iter()
            .map(|revision| self.load(revision))
            .collect::<Result<Vec<_>, _>>()?;
        kvs.retain(|kv| passes_filters(request, kv));
        sort_kvs(&mut kvs, request.sort_order, request.sort_target);
        let limit = usize::try_from(request.limit).unwrap_or(0);
        let more = limit > 0 && kvs.len() > limit;
        if more {
            kvs.truncate(limit);
        }
        if request.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        debug_assert!(request.count_only <= kvs.is_empty());
        Ok(RangeResponse {
            revision: header_revision,
            kvs,
            more,
            count,
        })
    }

    /// Runs a transaction whose branches hold only ranges, at the current
    /// revision of `meta`, without the log (etcd's serializable transaction).
    pub(crate) fn read_only_txn(
        &self,
        txn: &TxnRequest,
        meta: &Meta,
    ) -> Result<TxnResponse, Error> {
        if !txn.is_read_only() {
            return Err(Error::WritesOutsideTheLog);
        }
        txn.validate()?;
        let at = meta.current_revision;
        let mut succeeded = true;
        for compare in &txn.compare {
            if !self.compare_holds(compare, at)? {
                succeeded = false;
                break;
            }
        }
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let ranges: Vec<&RangeRequest> = branch
            .iter()
            .filter_map(|op| match op {
                RequestOp::Range(range) => Some(range),
                _ => None,
            })
            .collect();
        debug_assert_eq!(ranges.len(), branch.len());
        for range in &ranges {
            if range.revision != 0 {
                meta.check_txn_range_revision(range.revision)?;
            }
        }
        let responses = ranges
            .into_iter()
            .map(|range| {
                let range_at = if range.revision > 0 {
                    range.revision
                } else {
                    at
                };
                self.range(range, range_at, at).map(ResponseOp::Range)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TxnResponse {
            succeeded,
            responses,
        })
    }

    /// etcd's compare: over every key in the range at `at`; a missing key
    /// compares as zeros, except that a value compare on no key fails.
    pub(crate) fn compare_holds(&self, compare: &Compare, at: i64) -> Result<bool, StoreError> {
        let kvs = self.live(&KeyRange::new(&compare.key, &compare.range_end), at)?;
        if kvs.is_empty() {
            if matches!(compare.target, CompareTarget::Value(_)) {
                return Ok(false);
            }
            return Ok(compare_kv(compare, &KeyValue::default()));
        }
        Ok(kvs.iter().all(|kv| compare_kv(compare, kv)))
    }
}

fn passes_filters(request: &RangeRequest, kv: &KeyValue) -> bool {
    let above = |bound: i64, value: i64| bound == 0 || value >= bound;
    let below = |bound: i64, value: i64| bound == 0 || value <= bound;
    above(request.min_mod_revision, kv.mod_revision)
        && below(request.max_mod_revision, kv.mod_revision)
        && above(request.min_create_revision, kv.create_revision)
        && below(request.max_create_revision, kv.create_revision)
}

/// Sorts key-ordered `kvs` as etcd does: a target other than the key sorts
/// ascending when no order is given. Ties keep key order (etcd leaves them
/// unspecified; a stable rule keeps members and tests deterministic).
fn sort_kvs(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    let order = match (order, target) {
        (SortOrder::None, SortTarget::Key) | (SortOrder::Ascend, SortTarget::Key) => return,
        (SortOrder::None, _) => SortOrder::Ascend,
        (order, _) => order,
    };
    let by_target = |a: &KeyValue, b: &KeyValue| -> Ordering {
        match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    };
    match order {
        SortOrder::Descend => kvs.sort_by(|a, b| by_target(b, a)),
        _ => kvs.sort_by(by_target),
    }
}

fn compare_kv(compare: &Compare, kv: &KeyValue) -> bool {
    let ordering = match &compare.target {
        CompareTarget::Version(version) => kv.version.cmp(version),
        CompareTarget::CreateRevision(revision) => kv.create_revision.cmp(revision),
        CompareTarget::ModRevision(revision) => kv.mod_revision.cmp(revision),
        CompareTarget::Value(value) => kv.value.as_slice().cmp(value.as_slice()),
        CompareTarget::Lease(lease) => kv.lease.cmp(lease),
    };
    match compare.result {
        CompareResult::Equal => ordering == Ordering::Equal,
        CompareResult::NotEqual => ordering != Ordering::Equal,
        CompareResult::Greater => ordering == Ordering::Greater,
        CompareResult::Less => ordering == Ordering::Less,
    }
}
