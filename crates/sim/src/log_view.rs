//! Read-only views of a member's log for the checkers: the real log
//! (`wal::Wal`) read in place, without copying entries.
//!
//! Owns: [`LogView`] and entry fingerprints. Must never: modify a log.

use std::hash::{DefaultHasher, Hash, Hasher};

use raft::{ConfState, Entry, LogIndex, Term};
use wal::Wal;

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

/// A member's log as the real log shows it: its snapshot and every entry
/// after it, the write in flight included.
impl LogView for Wal {
    fn entry(&self, index: LogIndex) -> Option<&Entry> {
        Wal::entry(self, index)
    }

    fn snapshot_index(&self) -> LogIndex {
        self.snapshot_meta().index
    }

    fn snapshot_term(&self) -> Term {
        self.snapshot_meta().term
    }

    fn snapshot_conf_state(&self) -> ConfState {
        self.snapshot_meta().conf_state.clone()
    }

    fn last_index(&self) -> LogIndex {
        Wal::last_index(self)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::disk::SimDisk;
    use raft::{EntryKind, Snapshot, SnapshotMeta};

    fn entry(index: LogIndex, term: Term) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![index as u8],
        }
    }

    fn log_on(disk: &SimDisk) -> Wal {
        let options = wal::WalOptions {
            segment_bytes: wal::MIN_SEGMENT_BYTES,
            ..wal::WalOptions::new(1)
        };
        Wal::create_on(Arc::new(disk.mount()), Path::new("/wal"), &options, vec![1]).unwrap()
    }

    #[test]
    fn a_rewrite_replaces_the_suffix() {
        let disk = SimDisk::new();
        let mut log = log_on(&disk);
        log.persist(None, &[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        log.persist(None, &[entry(2, 2)]).unwrap();
        let view: &dyn LogView = &log;
        assert_eq!(view.last_index(), 2);
        assert_eq!(view.term(1), Some(1));
        assert_eq!(view.term(2), Some(2));
        assert_eq!(view.term(3), None);
    }

    #[test]
    fn snapshot_hides_what_it_covers() {
        let disk = SimDisk::new();
        let mut log = log_on(&disk);
        log.persist(None, &[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        let meta = SnapshotMeta {
            index: 2,
            term: 1,
            conf_state: ConfState::with_voters(vec![1]),
        };
        log.compact(Snapshot {
            meta,
            data: Vec::new(),
        })
        .unwrap();
        let view: &dyn LogView = &log;
        assert_eq!(view.snapshot_index(), 2);
        assert_eq!(view.term(2), Some(1));
        assert!(view.entry(2).is_none());
        assert_eq!(view.entry(3).map(|entry| entry.term), Some(1));
        assert_eq!(view.snapshot_conf_state().voters, vec![1]);
    }
}
