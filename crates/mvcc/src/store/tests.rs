//! Persistence, ordering and checksum behaviour of the store.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::*;
use crate::test_support::Harness;
use crate::types::{CompactionRequest, DeleteRangeRequest, PutRequest};

fn put(key: &str, value: &str) -> Command {
    Command::Put(PutRequest::new(key, value))
}

fn workload() -> Vec<Command> {
    vec![
        put("a", "1"),
        put("b", "1"),
        put("a", "2"),
        Command::DeleteRange(DeleteRangeRequest::single("b")),
        put("c", "1"),
        Command::Compact(CompactionRequest {
            revision: 4,
            physical: true,
        }),
        put("a", "3"),
        put("d", "1"),
    ]
}

fn all_keys(store: &Store) -> RangeResponse {
    store.range(&RangeRequest::all()).unwrap()
}

#[test]
fn a_restart_keeps_data_and_applied_index_and_does_not_apply_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let commands = workload();
    let before = {
        let store = Store::open(&path).unwrap();
        for (offset, command) in commands.iter().enumerate() {
            store.apply(offset as u64 + 1, command).unwrap();
        }
        (all_keys(&store), store.hash().unwrap())
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.applied_index(), commands.len() as u64);
    assert_eq!(store.durable_applied_index(), commands.len() as u64);
    assert_eq!(store.current_revision(), 8);
    assert_eq!(store.compact_revision(), 4);
    assert_eq!((all_keys(&store), store.hash().unwrap()), before);
    // The log replays from an older index after a restart: each is a no-op.
    for (offset, command) in commands.iter().enumerate() {
        let index = offset as u64 + 1;
        assert_eq!(
            store.apply(index, command).unwrap(),
            ApplyOutcome::AlreadyApplied {
                index,
                applied_index: commands.len() as u64
            }
        );
    }
    assert_eq!((all_keys(&store), store.hash().unwrap()), before);
    let next = store
        .apply(commands.len() as u64 + 1, &put("a", "4"))
        .unwrap();
    assert!(matches!(
        next,
        ApplyOutcome::Applied(Applied { revision: 9, .. })
    ));
}

#[test]
fn a_deferred_batch_becomes_durable_at_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let commands = workload();
    {
        let store = Store::open(&path).unwrap();
        let entries = commands
            .iter()
            .enumerate()
            .map(|(offset, command)| (offset as u64 + 1, Some(command)));
        let outcomes = store.apply_batch(entries, Durability::Deferred).unwrap();
        assert_eq!(outcomes.len(), commands.len());
        assert_eq!(store.applied_index(), commands.len() as u64);
        assert_eq!(store.durable_applied_index(), 0);
        store.flush().unwrap();
        assert_eq!(store.durable_applied_index(), commands.len() as u64);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.applied_index(), commands.len() as u64);
    assert_eq!(store.get_value("a"), Some(b"3".to_vec()));
}

#[test]
fn deferred_commits_are_forced_durable_after_a_bound() {
    let store = Store::in_memory().unwrap();
    let command = put("a", "1");
    // Each read commits what gathered: one deferred commit per apply.
    for index in 1..u64::from(DEFERRED_COMMITS_MAX) {
        store
            .apply_batch([(index, Some(&command))], Durability::Deferred)
            .unwrap();
        assert_eq!(store.get_value("a"), Some(b"1".to_vec()));
    }
    assert_eq!(store.durable_applied_index(), 0);
    let last = u64::from(DEFERRED_COMMITS_MAX);
    store
        .apply_batch([(last, Some(&command))], Durability::Deferred)
        .unwrap();
    store.get_value("a");
    assert_eq!(store.durable_applied_index(), last);
}

#[test]
fn deferred_applies_gather_in_one_transaction_until_the_bound() {
    let store = Store::in_memory().unwrap();
    let command = put("a", "1");
    let bound = OPEN_APPLY_ENTRIES_MAX as u64;
    for index in 1..bound {
        store
            .apply_batch([(index, Some(&command))], Durability::Deferred)
            .unwrap();
    }
    assert_eq!(store.applied_index(), bound - 1);
    {
        let cached = store.lock();
        assert_eq!(
            cached.committed_meta.applied_index, 0,
            "nothing committed yet"
        );
        assert_eq!(
            cached.open_apply.as_ref().map(|open| open.entries),
            Some(OPEN_APPLY_ENTRIES_MAX - 1)
        );
    }
    store
        .apply_batch([(bound, Some(&command))], Durability::Deferred)
        .unwrap();
    let cached = store.lock();
    assert!(cached.open_apply.is_none(), "the bound commits");
    assert_eq!(cached.committed_meta.applied_index, bound);
}

#[test]
fn every_read_sees_gathered_applies() {
    let store = Store::in_memory().unwrap();
    let apply = |index: u64, command: &Command| {
        store
            .apply_batch([(index, Some(command))], Durability::Deferred)
            .unwrap()
    };
    apply(1, &put("a", "1"));
    assert_eq!(store.get_value("a"), Some(b"1".to_vec()), "range");
    apply(2, &put("a", "2"));
    let read_only = TxnRequest {
        compare: Vec::new(),
        success: vec![crate::types::RequestOp::Range(RangeRequest::single("a"))],
        failure: Vec::new(),
    };
    let answer = store.read_only_txn(&read_only).unwrap();
    assert!(
        matches!(&answer.responses[0], crate::types::ResponseOp::Range(range) if range.kvs[0].value == b"2"),
        "read-only txn"
    );
    apply(3, &put("b", "1"));
    let events = store.events_since(4, 100).unwrap();
    assert_eq!(events.len(), 1, "history");
    apply(4, &put("b", "2"));
    assert_eq!(store.revision_count().unwrap(), 4, "revision count");
    let hash_before = store.hash().unwrap();
    apply(5, &put("c", "1"));
    assert_ne!(store.hash().unwrap(), hash_before, "hash");
    apply(6, &put("c", "2"));
    let copy = Store::in_memory().unwrap();
    copy.restore(&store.snapshot().unwrap()).unwrap();
    assert_eq!(copy.applied_index(), 6, "snapshot");
}

#[test]
fn a_gap_leaves_gathered_applies_in_place() {
    let store = Store::in_memory().unwrap();
    store
        .apply_batch([(1, Some(&put("a", "1")))], Durability::Deferred)
        .unwrap();
    let gap = store.apply_batch(
        [(2, Some(&put("a", "2"))), (4, Some(&put("a", "4")))],
        Durability::Deferred,
    );
    assert!(matches!(
        gap,
        Err(StoreError::IndexGap {
            index: 4,
            expected: 3
        })
    ));
    assert_eq!(store.applied_index(), 1);
    assert_eq!(store.get_value("a"), Some(b"1".to_vec()));
}

#[test]
fn a_batch_equals_the_same_entries_one_by_one() {
    let commands = workload();
    let one_by_one = Harness::new();
    for (offset, command) in commands.iter().enumerate() {
        one_by_one.store.apply(offset as u64 + 1, command).unwrap();
    }
    let batched = Store::in_memory().unwrap();
    let entries = commands
        .iter()
        .enumerate()
        .map(|(offset, command)| (offset as u64 + 1, Some(command)));
    batched.apply_batch(entries, Durability::Immediate).unwrap();
    assert_eq!(batched.hash().unwrap(), one_by_one.store.hash().unwrap());
    assert_eq!(all_keys(&batched), all_keys(&one_by_one.store));
}

#[test]
fn a_gap_in_the_indices_is_refused_and_applies_nothing() {
    let store = Store::in_memory().unwrap();
    let command = put("a", "1");
    let gap = store.apply(2, &command).unwrap_err();
    assert!(
        matches!(
            gap,
            StoreError::IndexGap {
                index: 2,
                expected: 1
            }
        ),
        "{gap}"
    );
    let batch = [
        (1, Some(&command)),
        (2, Some(&command)),
        (4, Some(&command)),
    ];
    assert!(matches!(
        store.apply_batch(batch, Durability::Immediate),
        Err(StoreError::IndexGap {
            index: 4,
            expected: 3
        })
    ));
    assert_eq!(store.applied_index(), 0);
    assert_eq!(store.current_revision(), 1);
    assert_eq!(all_keys(&store).count, 0);
}

#[test]
fn entries_without_a_command_only_move_the_applied_index() {
    let store = Store::in_memory().unwrap();
    let command = put("a", "1");
    let outcomes = store
        .apply_batch(
            [(1, None), (2, Some(&command)), (3, None)],
            Durability::Immediate,
        )
        .unwrap();
    assert_eq!(outcomes[0], ApplyOutcome::NoCommand { index: 1 });
    assert!(matches!(
        outcomes[1],
        ApplyOutcome::Applied(Applied {
            index: 2,
            revision: 2,
            ..
        })
    ));
    assert_eq!(store.applied_index(), 3);
    assert_eq!(store.current_revision(), 2);
}

#[test]
fn members_with_the_same_history_agree_on_hashes() {
    let commands = workload();
    let full = Store::in_memory().unwrap();
    let other = Store::in_memory().unwrap();
    for (offset, command) in commands.iter().enumerate() {
        full.apply(offset as u64 + 1, command).unwrap();
        other.apply(offset as u64 + 1, command).unwrap();
    }
    assert_eq!(full.hash().unwrap(), other.hash().unwrap());
    assert_eq!(full.hash_kv(0).unwrap(), other.hash_kv(0).unwrap());
    other
        .apply(commands.len() as u64 + 1, &put("a", "x"))
        .unwrap();
    assert_ne!(full.hash().unwrap(), other.hash().unwrap());
    assert_ne!(
        full.hash_kv(0).unwrap().hash,
        other.hash_kv(0).unwrap().hash
    );
    // HashKV at the shorter member's revision ignores the newer write.
    assert_eq!(
        other.hash_kv(full.current_revision()).unwrap(),
        full.hash_kv(0).unwrap()
    );
}

#[test]
fn hash_kv_at_a_past_revision_matches_a_member_that_stopped_there() {
    let commands = [put("a", "1"), put("b", "2"), put("a", "3"), put("c", "4")];
    let ahead = Store::in_memory().unwrap();
    let behind = Store::in_memory().unwrap();
    for (offset, command) in commands.iter().enumerate() {
        ahead.apply(offset as u64 + 1, command).unwrap();
        if offset < 2 {
            behind.apply(offset as u64 + 1, command).unwrap();
        }
    }
    let behind_hash = behind.hash_kv(0).unwrap();
    assert_eq!(behind_hash.hash_revision, 3);
    assert_eq!(ahead.hash_kv(3).unwrap(), behind_hash);
}

#[test]
fn hash_kv_refuses_compacted_and_future_revisions() {
    let store = Store::in_memory().unwrap();
    for (offset, command) in workload().iter().enumerate() {
        store.apply(offset as u64 + 1, command).unwrap();
    }
    assert!(matches!(
        store.hash_kv(3),
        Err(Error::Request(RequestError::Compacted { .. }))
    ));
    assert!(matches!(
        store.hash_kv(99),
        Err(Error::Request(RequestError::FutureRevision { .. }))
    ));
    let at_compaction = store.hash_kv(4).unwrap();
    assert_eq!(
        (at_compaction.hash_revision, at_compaction.compact_revision),
        (4, 4)
    );
}

#[test]
fn db_size_is_reported_for_files_and_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let file_store = Store::open(&path).unwrap();
    assert_eq!(
        file_store.db_size_bytes().unwrap(),
        std::fs::metadata(&path).unwrap().len()
    );
    let memory = Store::in_memory().unwrap();
    let empty_size = memory.db_size_bytes().unwrap();
    assert!(empty_size > 0);
    let big_value = "x".repeat(1 << 20);
    memory.apply(1, &put("big", &big_value)).unwrap();
    assert!(memory.db_size_bytes().unwrap() >= empty_size + (1 << 20));
}

#[test]
fn a_file_that_is_not_a_database_is_an_open_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.redb");
    std::fs::write(&path, vec![0xAB; 8192]).unwrap();
    let error = Store::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::Open { .. }), "{error}");
    assert!(error.to_string().contains("garbage.redb"), "{error}");
}

#[test]
fn a_database_cut_short_is_refused_as_damaged_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        let store = Store::open(&path).unwrap();
        store.apply(1, &put("key", &"v".repeat(1 << 16))).unwrap();
        store.flush().unwrap();
    }
    let length = std::fs::metadata(&path).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(length / 2)
        .unwrap();
    let error = Store::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::Damaged { .. }), "{error}");
    assert!(error.to_string().contains("state.redb"), "{error}");
}

#[test]
fn an_unknown_format_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    drop(Store::open(&path).unwrap());
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(META_FORMAT_VERSION, 99)
            .unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::UnsupportedFormat {
            found: 99,
            supported: STORE_FORMAT_VERSION
        })
    ));
}

impl Store {
    fn get_value(&self, key: &str) -> Option<Vec<u8>> {
        self.range(&RangeRequest::single(key))
            .unwrap()
            .kvs
            .pop()
            .map(|kv| kv.value)
    }
}

#[test]
fn a_crash_after_deferred_commits_recovers_a_prefix_that_the_log_completes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let crashed_path = dir.path().join("crashed.redb");
    let commands = workload();
    let split = 3;
    let store = Store::open(&path).unwrap();
    for (offset, command) in commands[..split].iter().enumerate() {
        store.apply(offset as u64 + 1, command).unwrap();
    }
    for (offset, command) in commands.iter().enumerate().skip(split) {
        store
            .apply_batch([(offset as u64 + 1, Some(command))], Durability::Deferred)
            .unwrap();
    }
    assert_eq!(store.durable_applied_index(), split as u64);
    // The file as a crash would leave it: durable commits plus whatever pages
    // of the deferred ones already reached it.
    std::fs::copy(&path, &crashed_path).unwrap();
    let recovered = Store::open(&crashed_path).unwrap();
    let recovered_index = recovered.applied_index();
    assert!(
        (split as u64..=commands.len() as u64).contains(&recovered_index),
        "recovered to index {recovered_index}"
    );
    // Replaying the whole log finishes the job without applying anything twice.
    let entries = commands
        .iter()
        .enumerate()
        .map(|(offset, command)| (offset as u64 + 1, Some(command)));
    let outcomes = recovered
        .apply_batch(entries, Durability::Immediate)
        .unwrap();
    let skipped = outcomes
        .iter()
        .filter(|outcome| matches!(outcome, ApplyOutcome::AlreadyApplied { .. }))
        .count();
    assert_eq!(skipped as u64, recovered_index);
    assert_eq!(recovered.hash().unwrap(), store.hash().unwrap());
    assert_eq!(all_keys(&recovered), all_keys(&store));
}

#[test]
fn readers_on_other_threads_see_whole_commits_only() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Store>();
    let store = std::sync::Arc::new(Store::in_memory().unwrap());
    let reader = {
        let store = std::sync::Arc::clone(&store);
        std::thread::spawn(move || {
            let mut count_before = 0;
            for _ in 0..200 {
                let response = store.range(&RangeRequest::all()).unwrap();
                // Each put adds one key and one revision: a read mixing two
                // commits would break this.
                assert_eq!(response.count, response.revision - 1);
                assert!(response.count >= count_before, "reads went back in time");
                count_before = response.count;
            }
        })
    };
    for index in 1..=50 {
        store.apply(index, &put(&format!("k{index}"), "v")).unwrap();
    }
    reader.join().unwrap();
    assert_eq!(all_keys(&store).count, 50);
}

#[test]
fn defragment_gives_back_the_space_compaction_freed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    let mut store = Store::open(&path).unwrap();
    let value = "v".repeat(64 << 10);
    let mut index = 0;
    let mut next = |store: &Store, command: &Command| {
        index += 1;
        store.apply(index, command).unwrap();
    };
    for key in 0..64 {
        next(&store, &put(&format!("key{key:02}"), &value));
    }
    next(
        &store,
        &Command::DeleteRange(DeleteRangeRequest::between("key", "\0")),
    );
    let revision = store.current_revision();
    next(
        &store,
        &Command::Compact(CompactionRequest {
            revision,
            physical: true,
        }),
    );
    let hash_before = store.hash().unwrap();
    let size_before = store.db_size_bytes().unwrap();
    assert!(size_before > 64 * (64 << 10), "{size_before} bytes");
    store.defragment().unwrap();
    let size_after = store.db_size_bytes().unwrap();
    assert!(
        size_after * 4 < size_before,
        "{size_before} -> {size_after} bytes"
    );
    assert_eq!(store.hash().unwrap(), hash_before);
    drop(store);
    assert_eq!(Store::open(&path).unwrap().hash().unwrap(), hash_before);
}

/// A write is answered once `apply_batch` returns; a read that starts after
/// that answer must see it, even while another reader is committing the
/// gathered applies. Two readers race each other to commit; each checks that
/// it sees at least what was acknowledged before it started.
#[test]
fn a_read_never_misses_an_apply_acknowledged_before_it_started() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    const WRITES: u64 = 20_000;
    let store = Arc::new(Store::in_memory().unwrap());
    let acknowledged = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let store = Arc::clone(&store);
            let acknowledged = Arc::clone(&acknowledged);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut stale = Vec::new();
                while !done.load(Ordering::Acquire) && stale.len() < 10 {
                    let before = acknowledged.load(Ordering::Acquire);
                    let response = store.range(&RangeRequest::single("k")).unwrap();
                    let seen = response.kvs.first().map_or(0, |kv| {
                        String::from_utf8_lossy(&kv.value).parse::<u64>().unwrap()
                    });
                    if seen < before {
                        stale.push((before, seen));
                    }
                }
                stale
            })
        })
        .collect();
    for index in 1..=WRITES {
        let command = put("k", &index.to_string());
        store
            .apply_batch([(index, Some(&command))], Durability::Deferred)
            .unwrap();
        acknowledged.store(index, Ordering::Release);
    }
    done.store(true, Ordering::Release);
    for reader in readers {
        let stale = reader.join().unwrap();
        assert!(
            stale.is_empty(),
            "reads missed acknowledged applies (acknowledged, seen): {stale:?}"
        );
    }
}

/// Dropping a store with applies still gathered (no flush, as when the node
/// thread fails) closes it instead of waiting forever on its own transaction.
#[test]
fn dropping_a_store_with_gathered_applies_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let store = Store::open(&path).unwrap();
    store.apply(1, &put("a", "1")).unwrap();
    store
        .apply_batch([(2, Some(&put("b", "1")))], Durability::Deferred)
        .unwrap();
    drop(store);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(
        reopened.applied_index(),
        1,
        "the gathered apply was dropped"
    );
}

/// A storage backend whose bytes outlive the store (so a second store can
/// open them) and that counts `sync_data` calls.
#[derive(Debug, Clone, Default)]
struct CountingBackend {
    bytes: Arc<Mutex<Vec<u8>>>,
    syncs: Arc<AtomicU64>,
}

impl CountingBackend {
    fn bytes(&self) -> MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap()
    }

    fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }
}

impl StorageBackend for CountingBackend {
    fn len(&self) -> Result<u64, std::io::Error> {
        Ok(self.bytes().len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, std::io::Error> {
        let offset = offset as usize;
        Ok(self.bytes()[offset..offset + len].to_vec())
    }

    fn set_len(&self, len: u64) -> Result<(), std::io::Error> {
        self.bytes().resize(len as usize, 0);
        Ok(())
    }

    fn sync_data(&self, _eventual: bool) -> Result<(), std::io::Error> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), std::io::Error> {
        let offset = offset as usize;
        self.bytes()[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }
}

#[test]
fn a_store_on_a_backend_syncs_only_immediate_commits_and_reopens_from_its_bytes() {
    let backend = CountingBackend::default();
    let store = Store::with_backend(backend.clone()).unwrap();
    let syncs = backend.syncs();
    store.apply(1, &put("a", "1")).unwrap();
    assert!(backend.syncs() > syncs, "an immediate apply syncs");
    let syncs = backend.syncs();
    store
        .apply_batch([(2, Some(&put("b", "1")))], Durability::Deferred)
        .unwrap();
    assert_eq!(
        all_keys(&store).count,
        2,
        "a read commits the gathered apply"
    );
    assert_eq!(backend.syncs(), syncs, "a deferred commit does not sync");
    store.flush().unwrap();
    assert!(backend.syncs() > syncs, "a flush syncs");
    drop(store);
    let reopened = Store::with_backend(backend).unwrap();
    assert_eq!(reopened.applied_index(), 2);
    assert_eq!(all_keys(&reopened).count, 2);
}
