//! The meaning of writes over the redb tables: etcd's MVCC rules for put,
//! delete, transactions and compaction, and the replicated half of leases
//! (grant, revoke, attaching keys).
//!
//! [`apply_command`] runs one command inside a write transaction and updates the
//! counters; reads within it go through [`View`]. A command is checked
//! completely (stateless rules, then the state-dependent ones along the
//! transaction path) before its first write, so a refused command leaves no
//! trace even when it shares a redb transaction with others. This module must never open, commit or choose the durability of a
//! redb transaction; `store` does.

use std::collections::BTreeSet;

use redb::{ReadableTable, Table};

use crate::error::{RequestError, StoreError};
use crate::keys::KeyRange;
use crate::lease::attached_keys;
use crate::meta::Meta;
use crate::record::{IndexKey, LeaseKey, Record, Revision};
use crate::types::{
    Command, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, Event, EventKind,
    KeyValue, LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, RequestOp, Response, ResponseOp, TxnRequest, TxnResponse,
};
use crate::view::View;

/// Why a command did not run: refused (it changes nothing and the index is
/// still consumed) or failed in the store (the batch is abandoned).
#[derive(Debug)]
enum Failure {
    Refused(RequestError),
    Store(StoreError),
}

impl From<RequestError> for Failure {
    fn from(refusal: RequestError) -> Self {
        Self::Refused(refusal)
    }
}

impl From<StoreError> for Failure {
    fn from(failure: StoreError) -> Self {
        Self::Store(failure)
    }
}

type IndexTable<'txn> = Table<'txn, IndexKey, bool>;
type RevisionTable<'txn> = Table<'txn, (i64, i64), &'static [u8]>;

/// The tables of one redb write transaction.
pub(crate) struct WriteTables<'txn> {
    pub(crate) index: IndexTable<'txn>,
    pub(crate) revisions: RevisionTable<'txn>,
    pub(crate) leases: Table<'txn, i64, i64>,
    pub(crate) lease_keys: Table<'txn, LeaseKey, ()>,
}

impl WriteTables<'_> {
    fn view(&self) -> View<'_, IndexTable<'_>, RevisionTable<'_>> {
        View {
            index: &self.index,
            revisions: &self.revisions,
        }
    }

    pub(crate) fn insert(&mut self, revision: Revision, record: &Record) -> Result<(), StoreError> {
        let encoded = record.encode();
        let displaced = self
            .revisions
            .insert((revision.main, revision.sub), encoded.as_slice())
            .map_err(StoreError::database("writing a revision"))?;
        debug_assert!(displaced.is_none(), "revision {revision:?} written twice");
        drop(displaced);
        self.index
            .insert(
                (record.key.as_slice(), revision.main, revision.sub),
                record.tombstone,
            )
            .map_err(StoreError::database("writing the key index"))?;
        Ok(())
    }

    fn lease_exists(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .leases
            .get(id)
            .map_err(StoreError::database("reading the lease table"))?
            .is_some())
    }

    /// Moves `key` from the lease it was attached to onto `to` (0: none).
    fn reattach(&mut self, key: &[u8], from: i64, to: i64) -> Result<(), StoreError> {
        if from == to {
            return Ok(());
        }
        if from != 0 {
            self.lease_keys
                .remove((from, key))
                .map_err(StoreError::database("detaching a key from its lease"))?;
        }
        if to != 0 {
            self.lease_keys
                .insert((to, key), ())
                .map_err(StoreError::database("attaching a key to its lease"))?;
        }
        Ok(())
    }
}

/// What applying one command produced: the client's answer (or why the
/// command was refused) and the changes made, in order.
pub(crate) type CommandResult = (Result<Response, RequestError>, Vec<Event>);

/// Applies `command` to `tables` and advances `meta` (not `applied_index`).
pub(crate) fn apply_command(
    tables: &mut WriteTables<'_>,
    meta: &mut Meta,
    command: &Command,
) -> Result<CommandResult, StoreError> {
    let revision_before = meta.current_revision;
    let mut writer = Writer {
        tables,
        meta_before: *meta,
        write_revision: meta.current_revision + 1,
        next_sub: 0,
        events: Vec::new(),
    };
    let response = match writer.run(command) {
        Ok(response) => response,
        Err(Failure::Refused(refusal)) => {
            debug_assert!(writer.events.is_empty(), "a refused command wrote");
            return Ok((Err(refusal), Vec::new()));
        }
        Err(Failure::Store(failure)) => return Err(failure),
    };
    if writer.changed() {
        meta.current_revision = writer.write_revision;
    }
    if let Command::Compact(compaction) = command {
        meta.compact_revision = compaction.revision;
    }
    let events = writer.events;
    debug_assert!(meta.current_revision - revision_before <= 1);
    debug_assert_eq!(events.is_empty(), meta.current_revision == revision_before);
    Ok((Ok(response), events))
}

/// Which branch each transaction on the taken path runs, decided on the state
/// before the transaction writes anything (as etcd does).
#[derive(Debug)]
struct TxnPath {
    succeeded: bool,
    nested: Vec<TxnPath>,
}

struct Writer<'a, 'txn> {
    tables: &'a mut WriteTables<'txn>,
    meta_before: Meta,
    /// All changes of this command share this main revision.
    write_revision: i64,
    next_sub: i64,
    events: Vec<Event>,
}

impl Writer<'_, '_> {
    fn changed(&self) -> bool {
        self.next_sub > 0
    }

    fn next_revision(&mut self) -> Revision {
        let revision = Revision {
            main: self.write_revision,
            sub: self.next_sub,
        };
        self.next_sub += 1;
        revision
    }

    fn run(&mut self, command: &Command) -> Result<Response, Failure> {
        command.validate()?;
        match command {
            Command::Put(put) => {
                self.check_put(put)?;
                Ok(Response::Put(self.put(put)?))
            }
            Command::DeleteRange(delete) => Ok(Response::DeleteRange(self.delete(delete)?)),
            Command::Txn(txn) => {
                let path = self.plan(txn)?;
                Ok(Response::Txn(self.txn(txn, &path)?))
            }
            Command::Compact(compaction) => {
                self.check_compaction(compaction.revision)?;
                compact(
                    self.tables,
                    self.meta_before.compact_revision,
                    compaction.revision,
                )?;
                Ok(Response::Compact(CompactionResponse {}))
            }
            Command::LeaseGrant(grant) => Ok(Response::LeaseGrant(self.lease_grant(grant)?)),
            Command::LeaseRevoke(revoke) => {
                Ok(Response::LeaseRevoke(self.lease_revoke(revoke.id)?))
            }
        }
    }

    fn check_put(&self, put: &PutRequest) -> Result<(), Failure> {
        if (put.ignore_value || put.ignore_lease) && self.tables.view().latest(&put.key)?.is_none()
        {
            return Err(RequestError::KeyNotFound.into());
        }
        if !put.ignore_lease && put.lease != 0 && !self.tables.lease_exists(put.lease)? {
            return Err(RequestError::LeaseNotFound { id: put.lease }.into());
        }
        Ok(())
    }

    /// Records a lease; it changes no key, so the revision stays (as etcd).
    fn lease_grant(&mut self, grant: &LeaseGrantRequest) -> Result<LeaseGrantResponse, Failure> {
        if self.tables.lease_exists(grant.id)? {
            return Err(RequestError::LeaseExists { id: grant.id }.into());
        }
        self.tables
            .leases
            .insert(grant.id, grant.ttl_seconds)
            .map_err(StoreError::database("writing the lease table"))?;
        Ok(LeaseGrantResponse {
            id: grant.id,
            ttl_seconds: grant.ttl_seconds,
        })
    }

    /// Deletes every key attached to the lease, in key order and all in one
    /// revision (none when no key is attached), then the lease itself.
    fn lease_revoke(&mut self, id: i64) -> Result<LeaseRevokeResponse, Failure> {
        if !self.tables.lease_exists(id)? {
            return Err(RequestError::LeaseNotFound { id }.into());
        }
        for key in attached_keys(&self.tables.lease_keys, id)? {
            let deleted = self.delete(&DeleteRangeRequest::single(key))?;
            debug_assert_eq!(deleted.deleted, 1, "an attached key was not live");
        }
        debug_assert!(attached_keys(&self.tables.lease_keys, id)?.is_empty());
        self.tables
            .leases
            .remove(id)
            .map_err(StoreError::database("removing from the lease table"))?;
        Ok(LeaseRevokeResponse {})
    }

    fn check_compaction(&self, revision: i64) -> Result<(), RequestError> {
        let meta = &self.meta_before;
        if revision <= meta.compact_revision {
            return Err(RequestError::Compacted {
                requested: revision,
                compact_revision: meta.compact_revision,
            });
        }
        if revision > meta.current_revision {
            return Err(RequestError::FutureRevision {
                requested: revision,
                current_revision: meta.current_revision,
            });
        }
        Ok(())
    }

    /// Evaluates the compares along the taken path and checks every operation
    /// on it that can be refused, before anything is written.
    fn plan(&self, txn: &TxnRequest) -> Result<TxnPath, Failure> {
        let at = self.meta_before.current_revision;
        let view = self.tables.view();
        let mut succeeded = true;
        for compare in &txn.compare {
            if !view.compare_holds(compare, at)? {
                succeeded = false;
                break;
            }
        }
        let branch = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let mut nested = Vec::new();
        for op in branch {
            match op {
                RequestOp::Put(put) => self.check_put(put)?,
                RequestOp::Range(range) if range.revision != 0 => {
                    self.meta_before.check_txn_range_revision(range.revision)?
                }
                RequestOp::Range(_) | RequestOp::DeleteRange(_) => {}
                RequestOp::Txn(inner) => nested.push(self.plan(inner)?),
            }
        }
        Ok(TxnPath { succeeded, nested })
    }

    fn txn(&mut self, txn: &TxnRequest, path: &TxnPath) -> Result<TxnResponse, StoreError> {
        let branch = if path.succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let mut nested_paths = path.nested.iter();
        let mut responses = Vec::with_capacity(branch.len());
        for op in branch {
            let response = match op {
                RequestOp::Range(range) => ResponseOp::Range(self.range(range)?),
                RequestOp::Put(put) => ResponseOp::Put(self.put(put)?),
                RequestOp::DeleteRange(delete) => ResponseOp::DeleteRange(self.delete(delete)?),
                RequestOp::Txn(inner) => {
                    let inner_path = nested_paths.next().ok_or_else(|| StoreError::Corrupt {
                        what: "transaction plan lost a nested transaction".to_string(),
                        location: "txn apply".to_string(),
                    })?;
                    ResponseOp::Txn(self.txn(inner, inner_path)?)
                }
            };
            responses.push(response);
        }
        debug_assert!(nested_paths.next().is_none());
        Ok(TxnResponse {
            succeeded: path.succeeded,
            responses,
        })
    }

    /// A range inside a transaction sees the transaction's earlier writes.
    fn range(&self, range: &RangeRequest) -> Result<RangeResponse, StoreError> {
        let read_revision = if self.changed() {
            self.write_revision
        } else {
            self.meta_before.current_revision
        };
        let at = if range.revision > 0 {
            range.revision
        } else {
            read_revision
        };
        self.tables.view().range(range, at, read_revision)
    }

    fn put(&mut self, put: &PutRequest) -> Result<PutResponse, StoreError> {
        // With an ignore flag the key existed before the transaction (checked in
        // `plan`); if an open-ended delete earlier in the same transaction
        // removed it, the request's own (empty) value and lease are used, where
        // etcd would crash the member.
        let previous = self.tables.view().latest(&put.key)?;
        let revision = self.next_revision();
        let kv = KeyValue {
            key: put.key.clone(),
            create_revision: previous
                .as_ref()
                .map_or(revision.main, |prev| prev.create_revision),
            mod_revision: revision.main,
            version: previous.as_ref().map_or(1, |prev| prev.version + 1),
            value: match (&previous, put.ignore_value) {
                (Some(prev), true) => prev.value.clone(),
                _ => put.value.clone(),
            },
            lease: match (&previous, put.ignore_lease) {
                (Some(prev), true) => prev.lease,
                _ => put.lease,
            },
        };
        self.tables.insert(revision, &Record::put(&kv))?;
        let lease_before = previous.as_ref().map_or(0, |prev| prev.lease);
        self.tables.reattach(&kv.key, lease_before, kv.lease)?;
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: previous.clone(),
        });
        Ok(PutResponse {
            prev_kv: previous.filter(|_| put.prev_kv),
        })
    }

    fn delete(&mut self, delete: &DeleteRangeRequest) -> Result<DeleteRangeResponse, StoreError> {
        let range = KeyRange::new(&delete.key, &delete.range_end);
        let live = self.tables.view().live(&range, i64::MAX)?;
        for kv in &live {
            let revision = self.next_revision();
            self.tables.insert(revision, &Record::tombstone(&kv.key))?;
            self.tables.reattach(&kv.key, kv.lease, 0)?;
            self.events.push(Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: kv.key.clone(),
                    mod_revision: revision.main,
                    ..KeyValue::default()
                },
                prev_kv: Some(kv.clone()),
            });
        }
        Ok(DeleteRangeResponse {
            deleted: live.len() as i64,
            prev_kvs: if delete.prev_kv { live } else { Vec::new() },
        })
    }
}

/// Removes every revision at or below `revision` that a read at `revision` or
/// later cannot see: all but the newest of each key, and that one too when it
/// is a tombstone. The previous compaction left each key at most one live
/// revision at or below it, so only keys written since then can hold anything
/// to remove; only they are visited, which keeps a compaction proportional to
/// the writes since the last one rather than to the whole store.
fn compact(
    tables: &mut WriteTables<'_>,
    previous_compaction: i64,
    revision: i64,
) -> Result<(), StoreError> {
    debug_assert!(previous_compaction < revision);
    let mut touched_keys = BTreeSet::new();
    let window = (previous_compaction.saturating_add(1), i64::MIN)..=(revision, i64::MAX);
    for entry in tables
        .revisions
        .range(window)
        .map_err(StoreError::database("reading revisions for compaction"))?
    {
        let (key, bytes) =
            entry.map_err(StoreError::database("reading revisions for compaction"))?;
        let (main, sub) = key.value();
        let record = Record::decode(bytes.value()).map_err(|source| StoreError::Record {
            location: format!("revision {main}.{sub}"),
            source,
        })?;
        touched_keys.insert(record.key);
    }
    let mut doomed: Vec<(Vec<u8>, Revision)> = Vec::new();
    for key in touched_keys {
        let mut group: Vec<(Revision, bool)> = Vec::new();
        for entry in tables
            .index
            .range((key.as_slice(), i64::MIN, i64::MIN)..=(key.as_slice(), revision, i64::MAX))
            .map_err(StoreError::database("reading the key index for compaction"))?
        {
            let (entry_key, tombstone) =
                entry.map_err(StoreError::database("reading the key index for compaction"))?;
            let (_, main, sub) = entry_key.value();
            group.push((Revision { main, sub }, tombstone.value()));
        }
        let Some(&(_, newest_is_tombstone)) = group.last() else {
            continue;
        };
        let removable = group.len() - usize::from(!newest_is_tombstone);
        doomed.extend(
            group[..removable]
                .iter()
                .map(|(rev, _)| (key.clone(), *rev)),
        );
    }
    for (key, rev) in doomed {
        tables
            .index
            .remove((key.as_slice(), rev.main, rev.sub))
            .map_err(StoreError::database("compacting the key index"))?;
        tables
            .revisions
            .remove((rev.main, rev.sub))
            .map_err(StoreError::database("compacting revisions"))?;
    }
    Ok(())
}

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;
