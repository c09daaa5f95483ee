//! Snapshot round trips and corruption detection.

use super::*;
use crate::test_support::Harness;
use crate::types::{Command, CompactionRequest, DeleteRangeRequest, RangeRequest, RangeResponse};

fn populated() -> Harness {
    let mut harness = Harness::new();
    harness.put("a", "1"); // 2
    harness.put("b", "1"); // 3
    harness.put("a", "2"); // 4
    harness.delete("b", ""); // 5
    harness.apply(Command::Compact(CompactionRequest {
        revision: 4,
        physical: true,
    }));
    harness.put("c", "1"); // 6
    harness.apply(Command::DeleteRange(DeleteRangeRequest::single("zz")));
    harness
}

fn reads_at_every_revision(store: &Store) -> Vec<RangeResponse> {
    (store.compact_revision()..=store.current_revision())
        .map(|revision| {
            store
                .range(&RangeRequest {
                    revision,
                    ..RangeRequest::all()
                })
                .unwrap()
        })
        .collect()
}

#[test]
fn a_restored_store_equals_the_original() {
    let source = populated();
    let bytes = source.store.snapshot().unwrap();
    let mut target = Harness::new();
    target.put("stale", "data");
    let info = target.store.restore(&bytes).unwrap();
    assert_eq!(
        info,
        SnapshotInfo {
            applied_index: 7,
            current_revision: 6,
            compact_revision: 4,
            revision_count: 4,
            lease_count: 0,
            size_bytes: bytes.len() as u64,
        }
    );
    assert_eq!(target.store.applied_index(), 7);
    assert_eq!(target.store.current_revision(), 6);
    assert_eq!(target.store.compact_revision(), 4);
    assert_eq!(target.store.hash().unwrap(), source.store.hash().unwrap());
    assert_eq!(
        reads_at_every_revision(&target.store),
        reads_at_every_revision(&source.store)
    );
    assert!(target.get("stale").is_none());
    // Both continue identically from the snapshot's index.
    let mut source = source;
    let mut target = Harness {
        next_index: 8,
        ..target
    };
    assert_eq!(source.put("a", "3"), target.put("a", "3"));
    assert_eq!(target.store.hash().unwrap(), source.store.hash().unwrap());
}

#[test]
fn a_streamed_snapshot_equals_the_byte_snapshot() {
    let source = populated();
    let mut streamed = Vec::new();
    let info = source.store.write_snapshot(&mut streamed).unwrap();
    assert_eq!(streamed, source.store.snapshot().unwrap());
    assert_eq!(info.size_bytes, streamed.len() as u64);
    let target = Store::in_memory().unwrap();
    target.restore_from(std::io::Cursor::new(streamed)).unwrap();
    assert_eq!(target.hash().unwrap(), source.store.hash().unwrap());
}

#[test]
fn a_restored_file_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let source = populated();
    let bytes = source.store.snapshot().unwrap();
    Store::open(&path).unwrap().restore(&bytes).unwrap();
    let reopened = Store::open(&path).unwrap();
    assert_eq!(reopened.applied_index(), 7);
    assert_eq!(reopened.hash().unwrap(), source.store.hash().unwrap());
}

/// Restoring `bytes` into a populated store must fail and leave it as it was.
fn assert_refused(target: &Harness, bytes: &[u8], what: &str) -> StoreError {
    let hash_before = target.store.hash().unwrap();
    let applied_before = target.store.applied_index();
    let error = match target.store.restore(bytes) {
        Err(error) => error,
        Ok(info) => panic!("{what}: restored {info:?}"),
    };
    assert_eq!(target.store.hash().unwrap(), hash_before, "{what}");
    assert_eq!(target.store.applied_index(), applied_before, "{what}");
    error
}

#[test]
fn every_flipped_bit_is_detected_and_changes_nothing() {
    let bytes = populated().store.snapshot().unwrap();
    let mut target = Harness::new();
    target.put("kept", "1");
    for position in 0..bytes.len() {
        for bit in [0, 3, 7] {
            let mut damaged = bytes.clone();
            damaged[position] ^= 1 << bit;
            assert_refused(&target, &damaged, &format!("bit {bit} of byte {position}"));
        }
    }
    assert!(target.get("kept").is_some());
}

#[test]
fn every_truncation_and_any_trailing_byte_is_detected() {
    let bytes = populated().store.snapshot().unwrap();
    let target = Harness::new();
    for length in 0..bytes.len() {
        let error = assert_refused(&target, &bytes[..length], &format!("{length} bytes"));
        assert!(
            matches!(error, StoreError::Snapshot { .. }),
            "{length}: {error}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    let error = assert_refused(&target, &longer, "a trailing byte");
    assert!(
        matches!(error, StoreError::Snapshot { offset, .. } if offset == bytes.len() as u64),
        "{error}"
    );
}

#[test]
fn a_bad_checksum_is_reported_as_such() {
    let mut bytes = populated().store.snapshot().unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    let error = assert_refused(&Harness::new(), &bytes, "damaged checksum");
    assert!(
        matches!(error, StoreError::SnapshotChecksum { .. }),
        "{error}"
    );
}

#[test]
fn garbage_is_refused_with_an_offset() {
    let target = Harness::new();
    let error = assert_refused(&target, b"definitely not a snapshot", "garbage");
    assert!(
        matches!(error, StoreError::Snapshot { offset: 0, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("byte offset 0"), "{error}");
}

#[test]
fn an_empty_store_roundtrips() {
    let empty = Store::in_memory().unwrap();
    let bytes = empty.snapshot().unwrap();
    let target = populated();
    target.store.restore(&bytes).unwrap();
    assert_eq!(target.store.hash().unwrap(), empty.hash().unwrap());
    assert_eq!(target.store.applied_index(), 0);
    assert_eq!(target.store.current_revision(), 1);
}
