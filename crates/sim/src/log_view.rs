//! Read-only views of a member's log for the checkers: the durable log in a
//! [`MemStorage`], overlaid with a write still waiting for its fsync (the
//! member's in-memory log), without copying either.
//!
//! Owns: [`LogView`], [`NodeLog`], entry fingerprints. Must never: modify a log.

use std::hash::{DefaultHasher, Hash, Hasher};

use raft::{ConfState, Entry, LogIndex, MemStorage, SnapshotMeta, Storage, Term};

/// A short, deterministic digest of an entry's kind and payload, so checkers
/// can remember entries without keeping their bytes.
pub fn fingerprint(entry: &Entry) -> u64 {
    let mut hasher = DefaultHasher::new();
    entry.kind.hash(&mut hasher);
    entry.data.hash(&mut hasher);
    hasher.finish()
}

/// A short, deterministic digest of a command's bytes.
pub fn bytes_fingerprint(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// What the checkers need to read from one log.
pub trait LogView {
    /// The entry at `index`, or `None` when it is compacted or past the end.
    fn entry(&self, index: LogIndex) -> Option<&Entry>;
    /// The last index the snapshot covers (0 when there is none).
    fn snapshot_index(&self) -> LogIndex;
    fn snapshot_term(&self) -> Term;
    /// The configuration the snapshot records (the founding one before any).
    fn snapshot_conf_state(&self) -> ConfState;
    fn last_index(&self) -> LogIndex;

    /// The term at `index`, including the snapshot's own index.
    fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_index() {
            return Some(self.snapshot_term());
        }
        self.entry(index).map(|entry| entry.term)
    }
}

/// A member's log: its durable storage, optionally overlaid with a snapshot
/// and entries of a write whose fsync has not completed.
#[derive(Clone, Copy, Debug)]
pub struct NodeLog<'a> {
    pub storage: &'a MemStorage,
    pub pending_snapshot: Option<&'a SnapshotMeta>,
    pub pending_entries: &'a [Entry],
}

impl<'a> NodeLog<'a> {
    pub fn durable(storage: &'a MemStorage) -> Self {
        Self {
            storage,
            pending_snapshot: None,
            pending_entries: &[],
        }
    }

    fn stored_entry(&self, index: LogIndex) -> Option<&'a Entry> {
        let stored = self.storage.all_entries();
        let first = self.storage.first_index().ok()?;
        if index < first {
            return None;
        }
        stored.get((index - first) as usize)
    }

    /// Whether the stored entries after a pending snapshot survive it (the
    /// storage keeps them when it holds the snapshot's index and term).
    fn stored_suffix_survives(&self, meta: &SnapshotMeta) -> bool {
        self.storage
            .term(meta.index)
            .is_ok_and(|term| term == meta.term)
    }
}

impl LogView for NodeLog<'_> {
    fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if let Some(first) = self.pending_entries.first() {
            if index >= first.index {
                return self.pending_entries.get((index - first.index) as usize);
            }
        }
        if let Some(meta) = self.pending_snapshot {
            if index <= meta.index || !self.stored_suffix_survives(meta) {
                return None;
            }
        }
        self.stored_entry(index)
    }

    fn snapshot_index(&self) -> LogIndex {
        match self.pending_snapshot {
            Some(meta) => meta.index,
            None => self.storage.first_index().map_or(1, |first| first) - 1,
        }
    }

    fn snapshot_term(&self) -> Term {
        match self.pending_snapshot {
            Some(meta) => meta.term,
            None => self.storage.term(self.snapshot_index()).unwrap_or(0),
        }
    }

    fn snapshot_conf_state(&self) -> ConfState {
        match self.pending_snapshot {
            Some(meta) => meta.conf_state.clone(),
            None => self
                .storage
                .initial_state()
                .map(|initial| initial.conf_state)
                .unwrap_or_default(),
        }
    }

    fn last_index(&self) -> LogIndex {
        if let Some(last) = self.pending_entries.last() {
            return last.index;
        }
        let stored_last = self.storage.last_index().unwrap_or(0);
        match self.pending_snapshot {
            Some(meta) if self.stored_suffix_survives(meta) => stored_last.max(meta.index),
            Some(meta) => meta.index,
            None => stored_last,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::{EntryKind, Snapshot};

    fn entry(index: LogIndex, term: Term) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![index as u8],
        }
    }

    #[test]
    fn pending_entries_replace_the_stored_suffix() {
        let mut storage = MemStorage::default();
        storage
            .append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        let pending = [entry(2, 2)];
        let view = NodeLog {
            storage: &storage,
            pending_snapshot: None,
            pending_entries: &pending,
        };
        assert_eq!(view.last_index(), 2);
        assert_eq!(view.term(1), Some(1));
        assert_eq!(view.term(2), Some(2));
        assert_eq!(view.term(3), None);
    }

    #[test]
    fn snapshot_hides_what_it_covers() {
        let mut storage = MemStorage::default();
        storage
            .append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        let mut snapshot = Snapshot::default();
        snapshot.meta.index = 2;
        snapshot.meta.term = 1;
        storage.compact(snapshot).unwrap();
        let view = NodeLog::durable(&storage);
        assert_eq!(view.snapshot_index(), 2);
        assert_eq!(view.term(2), Some(1));
        assert!(view.entry(2).is_none());
        assert_eq!(view.entry(3).map(|entry| entry.term), Some(1));
        let meta = SnapshotMeta {
            index: 5,
            term: 4,
            ..SnapshotMeta::default()
        };
        let installing = NodeLog {
            storage: &storage,
            pending_snapshot: Some(&meta),
            pending_entries: &[],
        };
        assert_eq!(installing.last_index(), 5);
        assert!(installing.entry(3).is_none());
    }
}
