//! The core's view of the log: what storage holds durably, plus the entries
//! and snapshot accepted in memory but not yet handed to storage, plus the
//! commit and apply points. Reads the durable part only through [`Storage`].
//!
//! A storage read that fails is returned to the caller, never replaced by a
//! default: a log that cannot be read must not look empty or shorter than it
//! is, or this member would grant votes and accept appends a longer log forbids.
//! The durable log's bounds are read once per input ([`RaftLog::read_bounds`]),
//! so the many places that need them cannot fail halfway through an input.

use crate::storage::{limit_size, Storage, StorageError};
use crate::types::{Entry, LogIndex, Snapshot, Term};

#[derive(Debug)]
pub(crate) struct RaftLog<S: Storage> {
    pub(crate) storage: S,
    /// `storage.first_index()` and `storage.last_index()` as of the current
    /// input: nothing else changes storage while the core handles one.
    stable_first_index: LogIndex,
    stable_last_index: LogIndex,
    /// A snapshot accepted from the leader and not yet persisted.
    pending_snapshot: Option<Snapshot>,
    /// Entries accepted but not yet persisted, starting at `unstable_offset`.
    unstable: Vec<Entry>,
    unstable_offset: LogIndex,
    pub(crate) committed: LogIndex,
    pub(crate) applied: LogIndex,
    /// Committed entries handed out for applying but not yet acknowledged.
    applying_through: LogIndex,
}

impl<S: Storage> RaftLog<S> {
    pub(crate) fn new(
        storage: S,
        committed: LogIndex,
        applied: LogIndex,
    ) -> Result<Self, StorageError> {
        let first_index = storage.first_index()?;
        let last_index = storage.last_index()?;
        let snapshot_index = first_index - 1;
        let committed = committed.max(snapshot_index).min(last_index);
        let applied = applied.max(snapshot_index).min(committed);
        Ok(Self {
            storage,
            stable_first_index: first_index,
            stable_last_index: last_index,
            pending_snapshot: None,
            unstable: Vec::new(),
            unstable_offset: last_index + 1,
            committed,
            applied,
            applying_through: applied,
        })
    }

    /// Reads the durable log's bounds from storage. Called at the start of
    /// every input, since the embedder persists and compacts between inputs.
    pub(crate) fn read_bounds(&mut self) -> Result<(), StorageError> {
        self.stable_first_index = self.storage.first_index()?;
        self.stable_last_index = self.storage.last_index()?;
        Ok(())
    }

    pub(crate) fn first_index(&self) -> LogIndex {
        match &self.pending_snapshot {
            Some(snapshot) => snapshot.meta.index + 1,
            None => self.stable_first_index,
        }
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        if let Some(last) = self.unstable.last() {
            return last.index;
        }
        match &self.pending_snapshot {
            Some(snapshot) => snapshot.meta.index,
            None => self.stable_last_index,
        }
    }

    pub(crate) fn last_term(&self) -> Result<Term, StorageError> {
        self.term(self.last_index())
    }

    /// The term at `index`, or why it cannot be known.
    pub(crate) fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        let snapshot_index = self.first_index() - 1;
        if index < snapshot_index {
            return Err(StorageError::Compacted {
                requested: index,
                snapshot_index,
            });
        }
        if index > self.last_index() {
            return Err(StorageError::Unavailable {
                requested: index,
                last_index: self.last_index(),
            });
        }
        if index >= self.unstable_offset && !self.unstable.is_empty() {
            return Ok(self.unstable[(index - self.unstable_offset) as usize].term);
        }
        if let Some(snapshot) = &self.pending_snapshot {
            debug_assert_eq!(index, snapshot.meta.index);
            return Ok(snapshot.meta.term);
        }
        self.storage.term(index)
    }

    /// The term at `index`, or `None` when the log does not hold it (compacted
    /// or past the end). A failed read is an error, not "not held".
    pub(crate) fn held_term(&self, index: LogIndex) -> Result<Option<Term>, StorageError> {
        match self.term(index) {
            Ok(term) => Ok(Some(term)),
            Err(StorageError::Compacted { .. } | StorageError::Unavailable { .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    pub(crate) fn matches_term(&self, index: LogIndex, term: Term) -> Result<bool, StorageError> {
        Ok(self.held_term(index)? == Some(term))
    }

    /// Raft's "at least as up to date" rule (§5.4.1): a later last term wins;
    /// with equal last terms, the longer log wins.
    pub(crate) fn is_up_to_date(
        &self,
        last_index: LogIndex,
        last_term: Term,
    ) -> Result<bool, StorageError> {
        let own_last_term = self.last_term()?;
        Ok(last_term > own_last_term
            || (last_term == own_last_term && last_index >= self.last_index()))
    }

    /// Entries in `[low, high)` limited to about `max_bytes`.
    pub(crate) fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if low >= high {
            return Ok(Vec::new());
        }
        if low < self.first_index() {
            return Err(StorageError::Compacted {
                requested: low,
                snapshot_index: self.first_index() - 1,
            });
        }
        debug_assert!(
            high <= self.last_index() + 1,
            "read past the end of the log"
        );
        let mut entries = Vec::new();
        let stable_high = high.min(self.unstable_offset);
        if low < stable_high {
            entries = self.storage.entries(low, stable_high, max_bytes)?;
            if (entries.len() as u64) < stable_high - low {
                return Ok(entries);
            }
        }
        let unstable_low = low.max(self.unstable_offset);
        if unstable_low < high {
            let start = (unstable_low - self.unstable_offset) as usize;
            let end = (high - self.unstable_offset) as usize;
            entries.extend_from_slice(&self.unstable[start..end]);
        }
        Ok(limit_size(&entries, max_bytes))
    }

    /// Appends entries that follow the log or replace a suffix of it.
    /// Never touches committed entries.
    pub(crate) fn append(&mut self, entries: &[Entry]) -> LogIndex {
        let Some(first) = entries.first() else {
            return self.last_index();
        };
        assert!(
            first.index > self.committed,
            "append at {} would overwrite committed entries through {}",
            first.index,
            self.committed
        );
        debug_assert!(first.index <= self.last_index() + 1, "append leaves a gap");
        if first.index == self.unstable_offset + self.unstable.len() as u64 {
            self.unstable.extend_from_slice(entries);
        } else if first.index <= self.unstable_offset {
            self.unstable_offset = first.index;
            self.unstable = entries.to_vec();
        } else {
            self.unstable
                .truncate((first.index - self.unstable_offset) as usize);
            self.unstable.extend_from_slice(entries);
        }
        self.last_index()
    }

    /// The follower side of AppendEntries after the consistency check passed at
    /// `prev_index`: the suffix of `entries` from the first one the log does
    /// not hold (a conflict or past the end), which must replace the log from
    /// its index on. Empty when the log already holds them all.
    pub(crate) fn new_entries_after<'e>(
        &self,
        prev_index: LogIndex,
        entries: &'e [Entry],
    ) -> Result<&'e [Entry], StorageError> {
        debug_assert!(entries
            .first()
            .is_none_or(|first| first.index == prev_index + 1));
        let mut conflict = None;
        for (position, entry) in entries.iter().enumerate() {
            if !self.matches_term(entry.index, entry.term)? {
                conflict = Some(position);
                break;
            }
        }
        let Some(position) = conflict else {
            return Ok(&[]);
        };
        let conflict_index = entries[position].index;
        assert!(
            conflict_index > self.committed,
            "entry {conflict_index} conflicts with the committed log (committed {})",
            self.committed
        );
        Ok(&entries[position..])
    }

    /// The first index of the term held at `index`, found by binary search since
    /// terms never decrease along the log. Stops at the first retained index.
    pub(crate) fn first_index_of_term_at(&self, index: LogIndex) -> Result<LogIndex, StorageError> {
        let Some(term) = self.held_term(index)? else {
            return Ok(index);
        };
        let mut low = self.first_index().min(index);
        let mut high = index;
        while low < high {
            let middle = low + (high - low) / 2;
            match self.held_term(middle)? {
                Some(found) if found >= term => high = middle,
                _ => low = middle + 1,
            }
        }
        Ok(low)
    }

    /// The last index whose term is `term`, if the log holds that term.
    pub(crate) fn last_index_of_term(
        &self,
        term: Term,
        at_most: LogIndex,
    ) -> Result<Option<LogIndex>, StorageError> {
        let mut low = self.first_index().saturating_sub(1);
        let mut high = at_most.min(self.last_index());
        if self.held_term(low)?.is_some_and(|found| found > term) {
            return Ok(None);
        }
        while low < high {
            let middle = high - (high - low) / 2;
            match self.held_term(middle)? {
                Some(found) if found <= term => low = middle,
                _ => high = middle - 1,
            }
        }
        Ok((self.held_term(low)? == Some(term)).then_some(low))
    }

    pub(crate) fn commit_to(&mut self, index: LogIndex) {
        if index > self.committed {
            assert!(
                index <= self.last_index(),
                "commit {index} is beyond the last index {}",
                self.last_index()
            );
            self.committed = index;
        }
    }

    /// Commits through `index` if it holds an entry of `term` — the leader's
    /// rule that only current-term entries are committed by counting (§5.4.2).
    pub(crate) fn maybe_commit(
        &mut self,
        index: LogIndex,
        term: Term,
    ) -> Result<bool, StorageError> {
        if index > self.committed && self.matches_term(index, term)? {
            self.commit_to(index);
            return Ok(true);
        }
        Ok(false)
    }

    /// Installs a snapshot in memory; storage receives it through the next Ready.
    pub(crate) fn restore(&mut self, snapshot: Snapshot) {
        self.committed = snapshot.meta.index;
        self.unstable.clear();
        self.unstable_offset = snapshot.meta.index + 1;
        self.pending_snapshot = Some(snapshot);
    }

    pub(crate) fn has_pending_snapshot(&self) -> bool {
        self.pending_snapshot.is_some()
    }

    pub(crate) fn pending_snapshot(&self) -> Option<&Snapshot> {
        self.pending_snapshot.as_ref()
    }

    pub(crate) fn unstable_entries(&self) -> &[Entry] {
        &self.unstable
    }

    /// Whether storage durably holds the entry at `index` as this log has it:
    /// below the entries not yet persisted, which may replace a conflicting
    /// suffix storage still holds, and within what storage has.
    pub(crate) fn is_durable(&self, index: LogIndex) -> bool {
        !self.has_pending_snapshot()
            && index < self.unstable_offset
            && index <= self.stable_last_index
    }

    /// Storage now durably holds everything handed out; forget the in-memory copy.
    pub(crate) fn mark_stable(&mut self) {
        if let Some(snapshot) = self.pending_snapshot.take() {
            self.applied = self.applied.max(snapshot.meta.index);
            self.applying_through = self.applying_through.max(snapshot.meta.index);
        }
        self.unstable_offset += self.unstable.len() as u64;
        self.unstable.clear();
    }

    pub(crate) fn has_entries_to_apply(&self) -> bool {
        self.committed > self.applying_through && !self.has_pending_snapshot()
    }

    /// Committed entries not yet handed out for applying, up to about `max_bytes`.
    pub(crate) fn take_entries_to_apply(
        &mut self,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.take_entries_to_apply_through(self.committed, max_bytes)
    }

    /// Entries through `through` not yet handed out for applying. Only the
    /// `ApplyUncommitted` mutation passes anything but the commit index.
    pub(crate) fn take_entries_to_apply_through(
        &mut self,
        through: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        if through <= self.applying_through || self.has_pending_snapshot() {
            return Ok(Vec::new());
        }
        let entries = self.entries(self.applying_through + 1, through + 1, max_bytes)?;
        if let Some(last) = entries.last() {
            self.applying_through = last.index;
        }
        Ok(entries)
    }

    /// The entries handed out for applying are applied.
    pub(crate) fn mark_applied(&mut self) {
        self.applied = self.applying_through;
    }
}
