//! Leases through the store: grant, attach, detach, revoke, and their
//! survival across a reopen and a snapshot restore.

use crate::error::RequestError;
use crate::store::Store;
use crate::test_support::Harness;
use crate::types::*;

fn grant(id: i64, ttl_seconds: i64) -> Command {
    Command::LeaseGrant(LeaseGrantRequest { id, ttl_seconds })
}

fn revoke(id: i64) -> Command {
    Command::LeaseRevoke(LeaseRevokeRequest { id })
}

fn put_with_lease(key: &str, value: &str, lease: i64) -> Command {
    Command::Put(PutRequest {
        lease,
        ..PutRequest::new(key, value)
    })
}

fn keys_of(store: &Store, id: i64) -> Vec<String> {
    let attached = store
        .lease_with_keys(id)
        .unwrap()
        .expect("lease is granted");
    attached
        .keys
        .iter()
        .map(|key| String::from_utf8_lossy(key).into_owned())
        .collect()
}

#[test]
fn a_grant_records_the_lease_without_a_new_revision() {
    let mut harness = Harness::new();
    let generation = harness.store.lease_generation();
    let applied = harness.apply(grant(7, 30));
    assert_eq!(
        applied.result,
        Ok(Response::LeaseGrant(LeaseGrantResponse {
            id: 7,
            ttl_seconds: 30
        }))
    );
    assert_eq!(applied.revision, 1);
    assert!(applied.events.is_empty());
    assert_ne!(harness.store.lease_generation(), generation);
    assert_eq!(
        harness.store.lease(7).unwrap(),
        Some(Lease {
            id: 7,
            ttl_seconds: 30
        })
    );
    assert_eq!(harness.store.lease(8).unwrap(), None);
    assert_eq!(
        harness.result(grant(7, 5)),
        Err(RequestError::LeaseExists { id: 7 })
    );
    assert_eq!(harness.store.lease(7).unwrap().unwrap().ttl_seconds, 30);
}

#[test]
fn bad_lease_requests_are_refused_and_change_nothing() {
    let mut harness = Harness::new();
    harness.apply(grant(1, 10));
    let hash = harness.store.hash().unwrap();
    let generation = harness.store.lease_generation();
    let refusals = [
        (grant(0, 10), RequestError::LeaseNotFound { id: 0 }),
        (
            grant(2, LEASE_TTL_SECONDS_MAX + 1),
            RequestError::LeaseTtlTooLarge {
                ttl_seconds: LEASE_TTL_SECONDS_MAX + 1,
            },
        ),
        (revoke(2), RequestError::LeaseNotFound { id: 2 }),
        (
            put_with_lease("k", "v", 2),
            RequestError::LeaseNotFound { id: 2 },
        ),
        (
            Command::Txn(TxnRequest {
                success: vec![
                    RequestOp::Put(PutRequest::new("a", "v")),
                    RequestOp::Put(PutRequest {
                        lease: 3,
                        ..PutRequest::new("b", "v")
                    }),
                ],
                ..TxnRequest::default()
            }),
            RequestError::LeaseNotFound { id: 3 },
        ),
    ];
    for (command, refusal) in refusals {
        let applied = harness.apply(command.clone());
        assert_eq!(applied.result, Err(refusal), "{command:?}");
        assert!(applied.events.is_empty());
    }
    assert_eq!(harness.store.hash().unwrap(), hash);
    assert_eq!(harness.store.lease_generation(), generation);
    assert_eq!(harness.store.current_revision(), 1);
}

#[test]
fn a_txn_checks_leases_only_on_the_branch_it_takes() {
    let mut harness = Harness::new();
    let untaken_branch_names_a_missing_lease = TxnRequest {
        success: vec![RequestOp::Put(PutRequest::new("a", "v"))],
        failure: vec![RequestOp::Put(PutRequest {
            lease: 9,
            ..PutRequest::new("a", "v")
        })],
        ..TxnRequest::default()
    };
    let response = harness.txn(untaken_branch_names_a_missing_lease).unwrap();
    assert!(response.succeeded);
}

#[test]
fn puts_attach_move_and_detach_keys() {
    let mut harness = Harness::new();
    harness.apply(grant(1, 10));
    harness.apply(grant(2, 10));
    harness.apply(put_with_lease("a", "1", 1));
    harness.apply(put_with_lease("b", "1", 1));
    harness.apply(put_with_lease("c", "1", 2));
    assert_eq!(keys_of(&harness.store, 1), ["a", "b"]);
    assert_eq!(harness.get("a").unwrap().lease, 1);
    // A re-put with another lease moves the key; without one, detaches it.
    harness.apply(put_with_lease("a", "2", 2));
    harness.apply(put_with_lease("b", "2", 0));
    assert!(keys_of(&harness.store, 1).is_empty());
    assert_eq!(keys_of(&harness.store, 2), ["a", "c"]);
    // `ignore_lease` keeps the key's lease.
    harness.apply(Command::Put(PutRequest {
        ignore_lease: true,
        ..PutRequest::new("c", "3")
    }));
    assert_eq!(harness.get("c").unwrap().lease, 2);
    assert_eq!(keys_of(&harness.store, 2), ["a", "c"]);
    // A delete detaches; a later put of the same key without a lease is free.
    harness.delete("c", "");
    harness.put("c", "4");
    assert_eq!(keys_of(&harness.store, 2), ["a"]);
    // Revoking lease 1 deletes nothing: b left it.
    let revision = harness.store.current_revision();
    let applied = harness.apply(revoke(1));
    assert_eq!(
        applied.result,
        Ok(Response::LeaseRevoke(LeaseRevokeResponse {}))
    );
    assert!(applied.events.is_empty());
    assert_eq!(applied.revision, revision);
    assert_eq!(harness.get("b").unwrap().value, b"2");
}

#[test]
fn a_revoke_deletes_every_attached_key_in_one_revision() {
    let mut harness = Harness::new();
    harness.apply(grant(5, 10));
    harness.apply(put_with_lease("x", "1", 5));
    harness.apply(put_with_lease("m", "1", 5));
    harness.put("other", "1");
    harness.apply(Command::Txn(TxnRequest {
        success: vec![RequestOp::Put(PutRequest {
            lease: 5,
            ..PutRequest::new("t", "1")
        })],
        ..TxnRequest::default()
    }));
    let before = harness.store.current_revision();
    let generation = harness.store.lease_generation();
    let applied = harness.apply(revoke(5));
    assert_eq!(applied.revision, before + 1);
    let deleted: Vec<(EventKind, String, i64, i64)> = applied
        .events
        .iter()
        .map(|event| {
            (
                event.kind,
                String::from_utf8_lossy(&event.kv.key).into_owned(),
                event.kv.mod_revision,
                event.prev_kv.as_ref().map_or(0, |prev| prev.lease),
            )
        })
        .collect();
    assert_eq!(
        deleted,
        [
            (EventKind::Delete, "m".to_owned(), before + 1, 5),
            (EventKind::Delete, "t".to_owned(), before + 1, 5),
            (EventKind::Delete, "x".to_owned(), before + 1, 5),
        ]
    );
    assert_eq!(harness.store.lease(5).unwrap(), None);
    assert_ne!(harness.store.lease_generation(), generation);
    let left = harness.range(&RangeRequest::all()).unwrap();
    assert_eq!(Harness::keys(&left), ["other"]);
    // History before the revoke still shows the keys with their lease.
    assert_eq!(harness.get_at("x", before).unwrap().lease, 5);
    assert_eq!(
        harness.result(revoke(5)),
        Err(RequestError::LeaseNotFound { id: 5 })
    );
}

#[test]
fn leases_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let hash = {
        let mut harness = Harness::with_store(Store::open(&path).unwrap());
        harness.apply(grant(3, 60));
        harness.apply(grant(-4, 2));
        harness.apply(put_with_lease("k", "v", 3));
        harness.store.hash().unwrap()
    };
    let mut harness = Harness::with_store(Store::open(&path).unwrap());
    assert_eq!(harness.store.hash().unwrap(), hash);
    assert_eq!(
        harness.store.leases().unwrap(),
        [
            Lease {
                id: -4,
                ttl_seconds: 2
            },
            Lease {
                id: 3,
                ttl_seconds: 60
            }
        ]
    );
    assert_eq!(keys_of(&harness.store, 3), ["k"]);
    let applied = harness.apply(revoke(3));
    assert_eq!(applied.events.len(), 1);
    assert!(harness.get("k").is_none());
}

#[test]
fn a_snapshot_carries_leases_and_attachments() {
    let mut source = Harness::new();
    source.apply(grant(1, 10));
    source.apply(grant(2, 20));
    source.apply(put_with_lease("a", "1", 1));
    source.apply(put_with_lease("a", "2", 2));
    source.apply(put_with_lease("b", "1", 1));
    source.delete("b", "");
    source.apply(put_with_lease("c", "1", 1));
    let bytes = source.store.snapshot().unwrap();
    let mut target = Harness::new();
    target.apply(grant(9, 9));
    let generation = target.store.lease_generation();
    let info = target.store.restore(&bytes).unwrap();
    assert_eq!(info.lease_count, 2);
    assert_ne!(target.store.lease_generation(), generation);
    assert_eq!(target.store.hash().unwrap(), source.store.hash().unwrap());
    assert_eq!(target.store.lease(9).unwrap(), None);
    assert_eq!(keys_of(&target.store, 1), ["c"]);
    assert_eq!(keys_of(&target.store, 2), ["a"]);
    // Both go on identically: a revoke deletes the same keys.
    let mut target = Harness {
        next_index: source.next_index,
        ..target
    };
    assert_eq!(source.apply(revoke(1)), target.apply(revoke(1)));
    assert_eq!(target.store.hash().unwrap(), source.store.hash().unwrap());
}

#[test]
fn a_snapshot_with_a_key_on_a_missing_lease_is_refused() {
    let mut source = Harness::new();
    source.apply(grant(1, 10));
    source.apply(put_with_lease("a", "1", 1));
    let mut bytes = source.store.snapshot().unwrap();
    // Drop the lease section's one entry: count 0, then the checksum anew.
    let body_end = bytes.len() - 4;
    let count_at = body_end - 8 - 16;
    bytes.truncate(count_at);
    bytes.extend_from_slice(&0u64.to_le_bytes());
    let checksum = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&checksum.to_le_bytes());
    let target = Store::in_memory().unwrap();
    let error = target.restore(&bytes).unwrap_err().to_string();
    assert!(error.contains("attached to lease 1"), "{error}");
    assert_eq!(target.applied_index(), 0);
}

#[test]
fn a_store_written_before_leases_opens_and_grants() {
    use crate::record::{
        LEASES, LEASE_KEYS, META, META_FORMAT_VERSION, STORE_FORMAT_VERSION,
        STORE_FORMAT_VERSION_WITHOUT_LEASES,
    };

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let mut harness = Harness::with_store(Store::open(&path).unwrap());
        harness.put("k", "v");
        // Make it look like the layout before leases.
        let txn = harness.store.db.begin_write().unwrap();
        txn.delete_table(LEASES).unwrap();
        txn.delete_table(LEASE_KEYS).unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(META_FORMAT_VERSION, STORE_FORMAT_VERSION_WITHOUT_LEASES)
            .unwrap();
        txn.commit().unwrap();
    }
    let mut harness = Harness::with_store(Store::open(&path).unwrap());
    let format = {
        let txn = harness.store.db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        meta.get(META_FORMAT_VERSION).unwrap().unwrap().value()
    };
    assert_eq!(format, STORE_FORMAT_VERSION);
    assert_eq!(harness.get("k").unwrap().value, b"v");
    assert!(harness.store.leases().unwrap().is_empty());
    harness.apply(grant(1, 5));
    harness.apply(put_with_lease("k", "w", 1));
    assert_eq!(keys_of(&harness.store, 1), ["k"]);
}
