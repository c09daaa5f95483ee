//! The member's data directory, laid out like etcd's: `member/wal` holds the
//! Raft log and its snapshots, `member/snap/db` the state machine. Opens both
//! and brings the state machine up to the log's snapshot when a crash left it
//! behind. It never runs the core.

use std::path::{Path, PathBuf};

use raft::{NodeId, Storage};
use wal::{Wal, WalOptions};

use super::NodeError;

pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("wal")
}

pub fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("snap").join("db")
}

/// Opens (or, for a new member, creates) the log and the state machine.
pub(crate) fn open(
    data_dir: &Path,
    cluster_id: u64,
    voters: Vec<NodeId>,
) -> Result<(Wal, mvcc::Store), NodeError> {
    let wal = Wal::open_or_create(&wal_dir(data_dir), &WalOptions::new(cluster_id), voters)?;
    let db_path = store_path(data_dir);
    if let Some(parent) = db_path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| NodeError::CreateDir {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let store = mvcc::Store::open(&db_path)?;
    catch_up_store(&wal, &store)?;
    Ok((wal, store))
}

/// The log keeps entries only after its snapshot; a state machine older than
/// that snapshot (its last writes were lost in a crash, or it was removed) is
/// restored from the snapshot so the log can replay the rest.
fn catch_up_store(wal: &Wal, store: &mvcc::Store) -> Result<(), NodeError> {
    let snapshot_index = wal.snapshot_meta().index;
    if store.applied_index() >= snapshot_index {
        return Ok(());
    }
    let snapshot = wal
        .snapshot()
        .map_err(|error| NodeError::Storage(error.to_string()))?;
    tracing::warn!(
        store_applied_index = store.applied_index(),
        snapshot_index,
        "state machine is behind the log's snapshot; restoring it from the snapshot"
    );
    store.restore(&snapshot.data)?;
    store.flush()?;
    debug_assert_eq!(store.applied_index(), snapshot_index);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::{ConfState, Entry, EntryKind, Snapshot, SnapshotMeta};

    #[test]
    fn store_behind_the_log_snapshot_is_restored_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, store) = open(dir.path(), 7, vec![1]).unwrap();
        let source = mvcc::Store::in_memory().unwrap();
        let put = mvcc::Command::Put(mvcc::PutRequest::new("k", "v"));
        source.apply(1, &put).unwrap();
        let entry = Entry {
            term: 1,
            index: 1,
            kind: EntryKind::Normal,
            data: Vec::new(),
        };
        wal.persist(None, &[entry]).unwrap();
        wal.compact(Snapshot {
            meta: SnapshotMeta {
                index: 1,
                term: 1,
                conf_state: ConfState::with_voters(vec![1]),
            },
            data: source.snapshot().unwrap(),
        })
        .unwrap();
        assert_eq!(store.applied_index(), 0);
        drop((wal, store));
        let (_wal, store) = open(dir.path(), 7, vec![1]).unwrap();
        assert_eq!(store.applied_index(), 1);
        let found = store.range(&mvcc::RangeRequest::single("k")).unwrap();
        assert_eq!(found.kvs[0].value, b"v");
    }
}
