//! A member's Raft log on a simulated disk: the durable log in a
//! [`MemStorage`], and the one write the node has issued whose fsync has not
//! ended. The node writes through [`LogStore`]; the write reaches the durable
//! log only when the world finishes the fsync ([`SimLog::finish_write`]). A
//! crash keeps the durable log, and of the write in flight nothing or a torn
//! prefix ([`keep_torn_prefix`]).
//!
//! Owns: the durability model of the log. Must never: let a write be read
//! or survive a crash before its fsync ends. Reads see the durable log only:
//! the node reads nothing between issuing a write and completing its Ready.

use raft::{
    Entry, HardState, InitialState, LogIndex, LogStore, MemStorage, Snapshot, SnapshotMeta,
    Storage, StorageError, Term,
};

/// What one Ready wrote, waiting for its fsync.
#[derive(Clone, Debug, Default)]
pub(super) struct PendingWrite {
    pub(super) snapshot: Option<Snapshot>,
    pub(super) entries: Vec<Entry>,
    pub(super) hard_state: Option<HardState>,
}

impl PendingWrite {
    /// Records in the order the disk writes them: snapshot, entries, hard state.
    pub(super) fn records(&self) -> usize {
        usize::from(self.snapshot.is_some())
            + self.entries.len()
            + usize::from(self.hard_state.is_some())
    }
}

/// What a finished fsync made durable, for the checkers.
#[derive(Clone, Copy, Debug)]
pub(super) struct FinishedWrite {
    pub(super) commit: Option<LogIndex>,
    pub(super) last_index: LogIndex,
}

#[derive(Debug)]
pub(super) struct SimLog {
    durable: MemStorage,
    pending: Option<PendingWrite>,
}

impl SimLog {
    pub(super) fn new(durable: MemStorage) -> Self {
        Self {
            durable,
            pending: None,
        }
    }

    /// What survives a crash, apart from a torn prefix of the pending write.
    pub(super) fn durable(&self) -> &MemStorage {
        &self.durable
    }

    /// The write waiting for its fsync, if any.
    pub(super) fn pending(&self) -> Option<&PendingWrite> {
        self.pending.as_ref()
    }

    /// The fsync of the pending write ended: it joins the durable log.
    pub(super) fn finish_write(&mut self) -> Result<Option<FinishedWrite>, StorageError> {
        let Some(write) = self.pending.take() else {
            return Ok(None);
        };
        if let Some(snapshot) = write.snapshot {
            self.durable.apply_snapshot(snapshot);
        }
        self.durable.append(&write.entries)?;
        if let Some(hard_state) = write.hard_state {
            self.durable.set_hard_state(hard_state);
        }
        Ok(Some(FinishedWrite {
            commit: write.hard_state.map(|hard_state| hard_state.commit),
            last_index: self.durable.last_index()?,
        }))
    }

    fn pending_mut(&mut self) -> &mut PendingWrite {
        self.pending.get_or_insert_with(PendingWrite::default)
    }
}

impl Storage for SimLog {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        self.durable.initial_state()
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.durable.entries(low, high, max_bytes)
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        self.durable.term(index)
    }

    fn first_index(&self) -> Result<LogIndex, StorageError> {
        self.durable.first_index()
    }

    fn last_index(&self) -> Result<LogIndex, StorageError> {
        self.durable.last_index()
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        self.durable.snapshot()
    }
}

impl LogStore for SimLog {
    type Error = StorageError;

    fn hard_state(&self) -> HardState {
        LogStore::hard_state(&self.durable)
    }

    fn snapshot_meta(&self) -> &SnapshotMeta {
        self.durable.snapshot_meta()
    }

    fn persist(
        &mut self,
        hard_state: Option<HardState>,
        entries: &[Entry],
    ) -> Result<(), StorageError> {
        let pending = self.pending_mut();
        pending.entries.extend_from_slice(entries);
        if hard_state.is_some() {
            pending.hard_state = hard_state;
        }
        Ok(())
    }

    /// Held for the fsync like any write: the disk model has one kind of write.
    fn set_hard_state_unsynced(&mut self, hard_state: HardState) -> Result<(), StorageError> {
        self.pending_mut().hard_state = Some(hard_state);
        Ok(())
    }

    /// Only a stopping node syncs by itself, and simulated members never stop
    /// but by crashing: the world decides when an fsync ends.
    fn sync(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        self.pending_mut().snapshot = Some(snapshot);
        Ok(())
    }

    /// A local snapshot file is written atomically and is durable at once.
    fn compact(&mut self, snapshot: Snapshot) -> Result<(), StorageError> {
        self.durable.compact(snapshot)
    }
}

/// Applies the first `kept` records of `write` (snapshot, then entries) to
/// `durable`: a write torn by a crash. `kept` is below the number of
/// records, so the hard state, written last, never survives a tear.
pub(super) fn keep_torn_prefix(durable: &mut MemStorage, write: &PendingWrite, mut kept: usize) {
    if let Some(snapshot) = &write.snapshot {
        if kept == 0 {
            return;
        }
        durable.apply_snapshot(snapshot.clone());
        kept -= 1;
    }
    let entries = &write.entries[..kept.min(write.entries.len())];
    let appended = durable.append(entries);
    debug_assert!(
        appended.is_ok(),
        "a torn prefix of a valid write is a valid write"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::EntryKind;

    fn entry(index: LogIndex, term: Term) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![index as u8],
        }
    }

    #[test]
    fn a_torn_write_keeps_a_prefix_of_entries_and_never_the_hard_state() {
        let mut durable = MemStorage::default();
        durable.append(&[entry(1, 1)]).unwrap();
        let write = PendingWrite {
            entries: vec![entry(2, 2), entry(3, 2), entry(4, 2)],
            hard_state: Some(HardState {
                term: 2,
                vote: 1,
                commit: 3,
            }),
            ..PendingWrite::default()
        };
        keep_torn_prefix(&mut durable, &write, 2);
        assert_eq!(durable.last_index().unwrap(), 3);
        assert_eq!(LogStore::hard_state(&durable), HardState::default());
        keep_torn_prefix(&mut durable, &write, 0);
        assert_eq!(
            durable.last_index().unwrap(),
            3,
            "an empty prefix changes nothing"
        );
    }

    #[test]
    fn a_write_is_invisible_until_its_fsync_ends() {
        let mut log = SimLog::new(MemStorage::default());
        let hard_state = HardState {
            term: 1,
            vote: 1,
            commit: 1,
        };
        log.persist(Some(hard_state), &[entry(1, 1)]).unwrap();
        assert_eq!(log.last_index().unwrap(), 0);
        assert_eq!(LogStore::hard_state(&log), HardState::default());
        let finished = log.finish_write().unwrap().unwrap();
        assert_eq!((finished.commit, finished.last_index), (Some(1), 1));
        assert_eq!(LogStore::hard_state(&log), hard_state);
        assert!(log.pending().is_none());
        assert!(
            log.finish_write().unwrap().is_none(),
            "nothing left to finish"
        );
    }
}
