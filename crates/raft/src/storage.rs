//! How the core reads the durable log. The embedder owns the bytes on disk and
//! writes what `Ready` hands it; the core only reads through [`Storage`].
//! [`MemStorage`] is the in-memory implementation used by tests and the simulator.

use crate::types::{ConfState, Entry, HardState, LogIndex, Snapshot, SnapshotMeta, Term};

/// Why a storage read could not be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The requested index is at or before the snapshot: the entry was compacted away.
    #[error("log index {requested} is compacted; the log starts after index {snapshot_index}")]
    Compacted {
        requested: LogIndex,
        snapshot_index: LogIndex,
    },
    /// The requested index is past the end of the log.
    #[error("log index {requested} is beyond the last index {last_index}")]
    Unavailable {
        requested: LogIndex,
        last_index: LogIndex,
    },
    /// A snapshot is being produced and is not ready yet; the core retries later.
    #[error("snapshot temporarily unavailable")]
    SnapshotTemporarilyUnavailable,
    /// The storage failed (I/O error, corruption). The core cannot continue safely.
    #[error("storage failure: {0}")]
    Failed(String),
}

/// What a restarting member recovers from its storage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    pub hard_state: HardState,
    pub conf_state: ConfState,
}

/// The durable log a node loop writes through, beside the reads the core
/// makes ([`Storage`]). The embedder's loop calls these in the order a
/// [`crate::Ready`] demands; a write that returns `Ok` is durable unless the
/// method says otherwise.
pub trait LogStore: Storage {
    type Error: std::error::Error + Send + Sync + 'static;

    /// The durable hard state (with a buffered commit index, see
    /// [`LogStore::set_hard_state_unsynced`]).
    fn hard_state(&self) -> HardState;

    /// The index, term and configuration of the durable snapshot.
    fn snapshot_meta(&self) -> &SnapshotMeta;

    /// Appends `entries` (replacing any suffix from the first one's index on)
    /// and records `hard_state`, durable together with one sync. When it
    /// fails for want of space ([`LogStore::is_disk_full`]), what it was given
    /// stays recorded and [`LogStore::sync`] retries the write; until that
    /// succeeds, no other write may be made.
    fn persist(
        &mut self,
        hard_state: Option<HardState>,
        entries: &[Entry],
    ) -> Result<(), Self::Error>;

    /// Records a hard state that moved only the commit index; it becomes
    /// durable with the next sync, since a crash that loses it loses nothing
    /// a leader cannot tell again.
    fn set_hard_state_unsynced(&mut self, hard_state: HardState) -> Result<(), Self::Error>;

    /// Makes everything recorded durable; after a disk-full failure, retries
    /// the failed write.
    fn sync(&mut self) -> Result<(), Self::Error>;

    /// Whether `error` says the disk is full (ENOSPC, EDQUOT): a failure an
    /// embedder can wait out by retrying [`LogStore::sync`] once space is
    /// freed. Every other failure is final.
    fn is_disk_full(_error: &Self::Error) -> bool {
        false
    }

    /// Installs the leader's snapshot durably and moves the log past it.
    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), Self::Error>;

    /// Records a local snapshot and drops the entries it covers.
    fn compact(&mut self, snapshot: Snapshot) -> Result<(), Self::Error>;
}

/// Read access to the durable log: entries after the last snapshot, the
/// snapshot itself, and the state recovered at start.
///
/// Indexes: `first_index()` is the first entry still held (snapshot index + 1);
/// `last_index()` is the last durable entry (the snapshot index when the log is
/// empty). `term(snapshot index)` must answer the snapshot's term.
pub trait Storage {
    fn initial_state(&self) -> Result<InitialState, StorageError>;

    /// Entries in `[low, high)`, stopping early once `max_bytes` is exceeded
    /// (always at least one entry when the range is non-empty).
    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError>;

    fn term(&self, index: LogIndex) -> Result<Term, StorageError>;

    fn first_index(&self) -> Result<LogIndex, StorageError>;

    fn last_index(&self) -> Result<LogIndex, StorageError>;

    /// The most recent snapshot, to send to a follower that fell behind compaction.
    fn snapshot(&self) -> Result<Snapshot, StorageError>;
}

/// The log kept in memory: a snapshot followed by the entries after it.
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    hard_state: HardState,
    snapshot: Snapshot,
    /// Entries after `snapshot.meta.index`, contiguous.
    entries: Vec<Entry>,
}

impl MemStorage {
    /// An empty log for a member of a new cluster with the given voters.
    pub fn new_with_voters(voters: Vec<u64>) -> Self {
        let mut storage = Self::default();
        storage.snapshot.meta.conf_state.voters = voters;
        storage
    }

    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    pub fn set_hard_state(&mut self, hard_state: HardState) {
        self.hard_state = hard_state;
    }

    fn snapshot_index(&self) -> LogIndex {
        self.snapshot.meta.index
    }

    fn last(&self) -> LogIndex {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// Appends entries, replacing any existing suffix from `entries[0].index` on.
    /// Entries at or before the snapshot are skipped: they are already covered.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let last = self.last();
        if first.index > last + 1 {
            return Err(StorageError::Failed(format!(
                "append at index {} leaves a gap after last index {last}",
                first.index
            )));
        }
        let skip = self.snapshot_index().saturating_sub(first.index - 1) as usize;
        let entries = entries.get(skip..).unwrap_or(&[]);
        let Some(first) = entries.first() else {
            return Ok(());
        };
        let keep = (first.index - self.snapshot_index() - 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    /// Replaces the whole log with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) {
        let keep_from = snapshot.meta.index;
        let matches = self
            .term(keep_from)
            .is_ok_and(|term| term == snapshot.meta.term);
        if matches {
            let drop = (keep_from - self.snapshot_index()) as usize;
            self.entries.drain(..drop.min(self.entries.len()));
        } else {
            self.entries.clear();
        }
        if self.hard_state.commit < snapshot.meta.index {
            self.hard_state.commit = snapshot.meta.index;
        }
        self.snapshot = snapshot;
    }

    /// Records a snapshot the local state machine produced at `index` and drops
    /// the entries it covers.
    pub fn compact(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        let index = snapshot.meta.index;
        if index <= self.snapshot_index() {
            return Ok(());
        }
        if index > self.last() {
            return Err(StorageError::Unavailable {
                requested: index,
                last_index: self.last(),
            });
        }
        let drop = (index - self.snapshot_index()) as usize;
        self.entries.drain(..drop);
        self.snapshot = snapshot;
        Ok(())
    }

    /// All entries after the snapshot, for inspection by tests and checkers.
    pub fn all_entries(&self) -> &[Entry] {
        &self.entries
    }
}

impl Storage for MemStorage {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        Ok(InitialState {
            hard_state: self.hard_state,
            conf_state: self.snapshot.meta.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low <= self.snapshot_index() {
            return Err(StorageError::Compacted {
                requested: low,
                snapshot_index: self.snapshot_index(),
            });
        }
        if high > self.last() + 1 {
            return Err(StorageError::Unavailable {
                requested: high - 1,
                last_index: self.last(),
            });
        }
        let offset = self.snapshot_index() + 1;
        let slice = &self.entries[(low - offset) as usize..(high - offset) as usize];
        Ok(limit_size(slice, max_bytes))
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        if index == self.snapshot_index() {
            return Ok(self.snapshot.meta.term);
        }
        if index < self.snapshot_index() {
            return Err(StorageError::Compacted {
                requested: index,
                snapshot_index: self.snapshot_index(),
            });
        }
        if index > self.last() {
            return Err(StorageError::Unavailable {
                requested: index,
                last_index: self.last(),
            });
        }
        Ok(self.entries[(index - self.snapshot_index() - 1) as usize].term)
    }

    fn first_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.snapshot_index() + 1)
    }

    fn last_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.last())
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        Ok(self.snapshot.clone())
    }
}

/// The longest prefix of `entries` within `max_bytes`, but never empty when
/// `entries` is not: a single oversized entry must still make progress.
pub fn limit_size(entries: &[Entry], max_bytes: u64) -> Vec<Entry> {
    let mut total_bytes = 0u64;
    let mut count = 0;
    for entry in entries {
        total_bytes += entry.size_bytes();
        if count > 0 && total_bytes > max_bytes {
            break;
        }
        count += 1;
    }
    entries[..count].to_vec()
}

/// Memory is "durable" at once: what a test or a model needs from a log.
impl LogStore for MemStorage {
    type Error = StorageError;

    fn hard_state(&self) -> HardState {
        self.hard_state
    }

    fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.snapshot.meta
    }

    fn persist(
        &mut self,
        hard_state: Option<HardState>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        self.append(entries)?;
        if let Some(hard_state) = hard_state {
            self.hard_state = hard_state;
        }
        Ok(())
    }

    fn set_hard_state_unsynced(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.hard_state = hard_state;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        MemStorage::apply_snapshot(self, snapshot);
        Ok(())
    }

    fn compact(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        MemStorage::compact(self, snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryKind;

    fn entry(index: LogIndex, term: Term) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![0; 8],
        }
    }

    #[test]
    fn append_replaces_conflicting_suffix() {
        let mut storage = MemStorage::default();
        storage
            .append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        storage.append(&[entry(2, 2)]).unwrap();
        assert_eq!(storage.last_index().unwrap(), 2);
        assert_eq!(storage.term(2).unwrap(), 2);
    }

    #[test]
    fn append_with_gap_is_an_error() {
        let mut storage = MemStorage::default();
        assert!(storage.append(&[entry(3, 1)]).is_err());
    }

    #[test]
    fn compaction_keeps_snapshot_term_and_refuses_old_reads() {
        let mut storage = MemStorage::default();
        storage
            .append(&[entry(1, 1), entry(2, 2), entry(3, 2)])
            .unwrap();
        let mut snapshot = Snapshot::default();
        snapshot.meta.index = 2;
        snapshot.meta.term = 2;
        storage.compact(snapshot).unwrap();
        assert_eq!(storage.first_index().unwrap(), 3);
        assert_eq!(storage.term(2).unwrap(), 2);
        assert!(matches!(
            storage.entries(2, 4, u64::MAX),
            Err(StorageError::Compacted { .. })
        ));
        assert_eq!(storage.entries(3, 4, u64::MAX).unwrap().len(), 1);
    }

    #[test]
    fn size_limit_returns_at_least_one_entry() {
        let entries = vec![entry(1, 1), entry(2, 1)];
        assert_eq!(limit_size(&entries, 0).len(), 1);
        assert_eq!(limit_size(&entries, u64::MAX).len(), 2);
    }
}
