//! The durable log as the core reads it: the snapshot's position and voters,
//! an in-memory copy of every entry after the snapshot, and the hard state.
//!
//! Entries are kept in memory (rather than an index of file positions) because
//! the core reads them on every step (replication to each follower, applying
//! committed entries) through `&self`, and the log after the last snapshot is
//! bounded by the compaction the server drives. Reads never touch the disk, so
//! they can neither fail nor block behind a sync.
//!
//! This view only ever reflects durable state: the writer applies a change here
//! after the fsync that made it durable. It never does I/O.

use std::collections::VecDeque;

use raft::{Entry, HardState, LogIndex, SnapshotMeta, StorageError, Term};

#[derive(Clone, Debug, Default)]
pub(crate) struct LogView {
    pub(crate) snapshot_meta: SnapshotMeta,
    /// Entries after `snapshot_meta.index`, contiguous.
    pub(crate) entries: VecDeque<Entry>,
    pub(crate) hard_state: HardState,
}

impl LogView {
    pub(crate) fn snapshot_index(&self) -> LogIndex {
        self.snapshot_meta.index
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        self.snapshot_index() + self.entries.len() as u64
    }

    /// Appends entries that start at most one past the end and after the
    /// snapshot, replacing any suffix from the first one's index on.
    pub(crate) fn append(&mut self, entries: Vec<Entry>) {
        let Some(first) = entries.first() else {
            return;
        };
        debug_assert!(first.index > self.snapshot_index());
        debug_assert!(first.index <= self.last_index() + 1);
        let keep = (first.index - self.snapshot_index() - 1) as usize;
        self.entries.truncate(keep);
        self.entries.extend(entries);
        debug_assert!(self.is_contiguous());
    }

    /// Moves the start of the log to a snapshot: entries after it are kept
    /// when `entries_kept`, otherwise the log restarts empty after it.
    pub(crate) fn apply_snapshot(&mut self, meta: SnapshotMeta, entries_kept: bool) {
        debug_assert!(meta.index >= self.snapshot_index() || !entries_kept);
        if entries_kept {
            let drop =
                (meta.index.saturating_sub(self.snapshot_index()) as usize).min(self.entries.len());
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.snapshot_meta = meta;
        debug_assert!(self.is_contiguous());
    }

    /// The entry at `index`, if it follows the snapshot and is in the log.
    pub(crate) fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let position = index.checked_sub(self.snapshot_index() + 1)?;
        self.entries.get(usize::try_from(position).ok()?)
    }

    pub(crate) fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        let snapshot_index = self.snapshot_index();
        if index == snapshot_index {
            return Ok(self.snapshot_meta.term);
        }
        if index < snapshot_index {
            return Err(StorageError::Compacted {
                requested: index,
                snapshot_index,
            });
        }
        match self.entries.get((index - snapshot_index - 1) as usize) {
            Some(entry) => Ok(entry.term),
            None => Err(StorageError::Unavailable {
                requested: index,
                last_index: self.last_index(),
            }),
        }
    }

    /// Entries in `[low, high)`, at least one, stopping once `max_bytes` is exceeded.
    pub(crate) fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        let snapshot_index = self.snapshot_index();
        if low <= snapshot_index {
            return Err(StorageError::Compacted {
                requested: low,
                snapshot_index,
            });
        }
        if high > self.last_index() + 1 {
            return Err(StorageError::Unavailable {
                requested: high - 1,
                last_index: self.last_index(),
            });
        }
        let start = (low - snapshot_index - 1) as usize;
        let end = (high.max(low) - snapshot_index - 1) as usize;
        let mut total_bytes = 0u64;
        let mut selected = Vec::new();
        for entry in self.entries.range(start..end) {
            total_bytes += entry.size_bytes();
            if !selected.is_empty() && total_bytes > max_bytes {
                break;
            }
            selected.push(entry.clone());
        }
        Ok(selected)
    }

    fn is_contiguous(&self) -> bool {
        self.entries
            .iter()
            .enumerate()
            .all(|(position, entry)| entry.index == self.snapshot_index() + 1 + position as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::{EntryKind, MemStorage, Snapshot, Storage};

    fn entry(index: LogIndex, term: Term) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![index as u8; 40],
        }
    }

    #[test]
    fn reads_match_mem_storage() {
        let mut view = LogView::default();
        let mut model = MemStorage::default();
        let batches = [
            vec![entry(1, 1), entry(2, 1), entry(3, 1)],
            vec![entry(2, 2), entry(3, 2), entry(4, 2)],
        ];
        for batch in batches {
            view.append(batch.clone());
            model.append(&batch).unwrap();
        }
        let meta = SnapshotMeta {
            index: 2,
            term: 2,
            ..SnapshotMeta::default()
        };
        view.apply_snapshot(meta.clone(), true);
        model
            .compact(Snapshot {
                meta,
                data: Vec::new(),
            })
            .unwrap();
        for index in 0..6 {
            assert_eq!(view.term(index), model.term(index), "term({index})");
            let modelled = model
                .entries(index, index + 1, u64::MAX)
                .ok()
                .and_then(|entries| entries.into_iter().next());
            assert_eq!(view.entry(index), modelled.as_ref(), "entry({index})");
        }
        for (low, high, max_bytes) in [
            (1, 3, u64::MAX),
            (3, 5, u64::MAX),
            (3, 5, 0),
            (3, 6, u64::MAX),
            (3, 3, 0),
        ] {
            assert_eq!(
                view.entries(low, high, max_bytes),
                model.entries(low, high, max_bytes),
                "entries({low}, {high}, {max_bytes})"
            );
        }
    }
}
