//! [`Wal`]: the durable Raft log of one member — open or create it, append
//! entries and hard state, make them durable with one sync, install or take
//! snapshots, and read it back through [`raft::Storage`].
//!
//! Writes are buffered until [`Wal::sync`], which issues one write and one
//! fdatasync for everything buffered, however many entries that is. The view
//! the core reads changes only after that sync succeeds, so it never shows
//! anything that is not durable. After a write or sync failure other than a
//! full disk the log refuses further writes ([`WalError::Poisoned`]): what
//! reached the disk is unknown, and only recovery on the next open can tell.
//!
//! A full disk ([`WalError::DiskFull`]) is waited out instead: the failed
//! batch stays buffered, the writer goes back to the end of the last durable
//! batch, and the next [`Wal::sync`] rewrites the whole batch from its start
//! (see `writer`). Nothing of the failed batch is shown to readers until that
//! sync succeeds, and nothing durable is touched.
//!
//! Every file operation goes through a [`FileSystem`]: the real one
//! ([`StdFileSystem`]) unless the log is opened with `*_on`, as the simulator
//! does with its simulated disks.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft::{
    ConfState, Entry, HardState, InitialState, LogIndex, NodeId, Snapshot, SnapshotMeta, Storage,
    StorageError, Term,
};

use crate::error::WalError;
use crate::fs::{FileSystem, StdFileSystem};
use crate::fs_util;
use crate::lock::DirLock;
use crate::log_view::LogView;
use crate::record::{self, SnapshotMarker};
use crate::recovery;
use crate::snapshot_file::SnapshotStore;
use crate::writer::{HeadState, SegmentConfig, SegmentWriter};

/// Segment size unless configured otherwise.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
/// The smallest segment allowed (tests use small ones to exercise rollover).
pub const MIN_SEGMENT_BYTES: u64 = 16 << 10;
/// Recovery reads a segment back whole, so its size bounds recovery's memory.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 31;
/// A power of two, so alignment is a mask test.
const SEGMENT_BYTES_ALIGN: u64 = 4096;

/// How a log is laid out and kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Written into every file; files of another cluster are refused.
    pub cluster_id: u64,
    /// Size of each preallocated segment file, a multiple of 4096 between
    /// [`MIN_SEGMENT_BYTES`] and [`MAX_SEGMENT_BYTES`].
    pub segment_bytes: u64,
    /// How many snapshot files to keep (the newest; at least 1).
    pub snapshots_kept: usize,
}

impl WalOptions {
    pub fn new(cluster_id: u64) -> Self {
        WalOptions {
            cluster_id,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            snapshots_kept: 2,
        }
    }

    fn validate(&self) -> Result<(), WalError> {
        let segment_bytes = self.segment_bytes;
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&segment_bytes)
            || segment_bytes & (SEGMENT_BYTES_ALIGN - 1) != 0
        {
            return Err(WalError::InvalidOptions(format!(
                "segment_bytes {segment_bytes} must be a multiple of {SEGMENT_BYTES_ALIGN} between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}"
            )));
        }
        if self.snapshots_kept == 0 {
            return Err(WalError::InvalidOptions(
                "snapshots_kept must be at least 1".into(),
            ));
        }
        Ok(())
    }

    fn segment_config(&self, fs: &Arc<dyn FileSystem>, dir: &Path) -> SegmentConfig {
        SegmentConfig {
            fs: Arc::clone(fs),
            dir: dir.to_path_buf(),
            cluster_id: self.cluster_id,
            segment_bytes: self.segment_bytes,
        }
    }
}

/// Counters of the work the log has done since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Calls to [`Wal::sync`] that had something to write: one write and one fdatasync each.
    pub batches_synced: u64,
    /// Entries made durable.
    pub entries_synced: u64,
}

/// A change made durable by the next sync, applied to the view after it.
#[derive(Debug)]
enum PendingChange {
    Entries(Vec<Entry>),
    HardState(HardState),
}

/// The durable log of one member. See the module documentation.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    view: LogView,
    writer: SegmentWriter,
    snapshots: SnapshotStore,
    pending: Vec<PendingChange>,
    /// The last index once the pending changes are durable.
    pending_last_index: LogIndex,
    poisoned: Option<String>,
    /// A write failed for want of space: `pending` holds its changes, not yet
    /// encoded again; the next sync rewrites them.
    stalled: bool,
    stats: WalStats,
    /// Dropped last, after the writer has finished with the files.
    _lock: DirLock,
}

impl Wal {
    /// Creates a new, empty log for a member of a cluster whose voters are
    /// `voters`. Fails if `dir` already holds a log.
    pub fn create(dir: &Path, options: &WalOptions, voters: Vec<NodeId>) -> Result<Wal, WalError> {
        Self::create_on(Arc::new(StdFileSystem), dir, options, voters)
    }

    /// Opens an existing log, recovering it after a crash: a torn last write is
    /// cut off (it was never acknowledged); anything else wrong is an error.
    pub fn open(dir: &Path, options: &WalOptions) -> Result<Wal, WalError> {
        Self::open_on(Arc::new(StdFileSystem), dir, options)
    }

    /// Opens the log in `dir`, or creates it there if it holds none.
    pub fn open_or_create(
        dir: &Path,
        options: &WalOptions,
        voters: Vec<NodeId>,
    ) -> Result<Wal, WalError> {
        Self::open_or_create_on(Arc::new(StdFileSystem), dir, options, voters)
    }

    /// [`Wal::create`] on the file system `fs`.
    pub fn create_on(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        options: &WalOptions,
        voters: Vec<NodeId>,
    ) -> Result<Wal, WalError> {
        options.validate()?;
        fs_util::create_dir_all_durably(fs.as_ref(), dir)?;
        let lock = DirLock::acquire(fs.as_ref(), dir)?;
        if !recovery::segment_sequences(fs.as_ref(), dir)?.is_empty() {
            return Err(WalError::AlreadyInitialized {
                dir: dir.to_path_buf(),
            });
        }
        let snapshots = SnapshotStore::new(
            Arc::clone(&fs),
            dir,
            options.cluster_id,
            options.snapshots_kept,
        );
        let initial = Snapshot {
            meta: SnapshotMeta {
                index: 0,
                term: 0,
                conf_state: ConfState {
                    voters,
                    learners: Vec::new(),
                },
            },
            data: Vec::new(),
        };
        snapshots.write(&initial)?;
        let head = HeadState {
            marker: SnapshotMarker {
                index: 0,
                term: 0,
                entries_kept: true,
            },
            hard_state: HardState::default(),
        };
        let writer = SegmentWriter::create_first(options.segment_config(&fs, dir), head)?;
        let view = LogView {
            snapshot_meta: initial.meta,
            ..LogView::default()
        };
        Ok(Self::assemble(dir, view, writer, snapshots, lock))
    }

    /// [`Wal::open`] on the file system `fs`.
    pub fn open_on(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        options: &WalOptions,
    ) -> Result<Wal, WalError> {
        options.validate()?;
        if !fs.is_dir(dir) {
            return Err(WalError::NotInitialized {
                dir: dir.to_path_buf(),
            });
        }
        let lock = DirLock::acquire(fs.as_ref(), dir)?;
        let snapshots = SnapshotStore::new(
            Arc::clone(&fs),
            dir,
            options.cluster_id,
            options.snapshots_kept,
        );
        let recovered = recovery::recover(fs.as_ref(), dir, options.cluster_id, &snapshots)?;
        let writer = SegmentWriter::resume(options.segment_config(&fs, dir), recovered.resume)?;
        tracing::info!(
            dir = %dir.display(),
            first_index = recovered.view.snapshot_index() + 1,
            last_index = recovered.view.last_index(),
            "opened log"
        );
        Ok(Self::assemble(dir, recovered.view, writer, snapshots, lock))
    }

    /// [`Wal::open_or_create`] on the file system `fs`.
    pub fn open_or_create_on(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        options: &WalOptions,
        voters: Vec<NodeId>,
    ) -> Result<Wal, WalError> {
        if fs.is_dir(dir) && !recovery::segment_sequences(fs.as_ref(), dir)?.is_empty() {
            Self::open_on(fs, dir, options)
        } else {
            Self::create_on(fs, dir, options, voters)
        }
    }

    fn assemble(
        dir: &Path,
        view: LogView,
        writer: SegmentWriter,
        snapshots: SnapshotStore,
        lock: DirLock,
    ) -> Wal {
        Wal {
            dir: dir.to_path_buf(),
            pending_last_index: view.last_index(),
            view,
            writer,
            snapshots,
            pending: Vec::new(),
            poisoned: None,
            stalled: false,
            stats: WalStats::default(),
            _lock: lock,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The durable hard state.
    pub fn hard_state(&self) -> HardState {
        self.view.hard_state
    }

    /// The last durable index (the snapshot index when no entry follows it).
    pub fn last_index(&self) -> LogIndex {
        self.view.last_index()
    }

    /// The entry at `index` without copying it, or `None` when it is
    /// compacted or past the end: for readers that inspect many entries (the
    /// simulator's checkers), where [`raft::Storage::entries`] would clone
    /// each one.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.view.entry(index)
    }

    /// The durable snapshot's index, term and voters.
    pub fn snapshot_meta(&self) -> &SnapshotMeta {
        &self.view.snapshot_meta
    }

    pub fn stats(&self) -> WalStats {
        self.stats
    }

    fn check_writable(&self) -> Result<(), WalError> {
        match &self.poisoned {
            Some(cause) => Err(WalError::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Whether a write failed for want of space and waits for a [`Wal::sync`]
    /// to rewrite it.
    pub fn is_stalled(&self) -> bool {
        self.stalled
    }

    /// Handles a failure of the write path: a full disk rewinds the writer to
    /// the last durable batch and keeps the buffered changes for the next
    /// sync; anything else refuses every later write.
    fn on_write_error<T>(&mut self, result: Result<T, WalError>) -> Result<T, WalError> {
        let Err(WalError::DiskFull { .. }) = &result else {
            return self.poison_on_error(result);
        };
        if let Err(error) = self.writer.rewind() {
            return self.poison_on_error(Err(error));
        }
        self.stalled = !self.pending.is_empty();
        result
    }

    /// Records a failure of the write path; every later write is refused.
    fn poison_on_error<T>(&mut self, result: Result<T, WalError>) -> Result<T, WalError> {
        if let Err(error) = &result {
            tracing::error!(dir = %self.dir.display(), %error, "log write failed; refusing further writes until restart");
            self.poisoned = Some(error.to_string());
        }
        result
    }

    /// Buffers entries for the next [`Wal::sync`]. They replace every entry
    /// from the first one's index on; entries at or before the snapshot are
    /// skipped (already covered). The first index may be at most one past the
    /// last (buffered) index.
    pub fn append_entries(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        self.append_owned(entries.to_vec())
    }

    /// [`Wal::append_entries`] for entries the caller gives up, saving a copy.
    pub(crate) fn append_owned(&mut self, mut entries: Vec<Entry>) -> Result<(), WalError> {
        self.check_writable()?;
        self.finish_stalled_write()?;
        let snapshot_index = self.view.snapshot_index();
        self.validate_append(&entries)?;
        let skip = entries
            .iter()
            .take_while(|entry| entry.index <= snapshot_index)
            .count();
        entries.drain(..skip);
        let Some(last) = entries.last() else {
            return Ok(());
        };
        let last_index = last.index;
        let result = self.writer.encode_entries(&entries);
        self.pending_last_index = last_index;
        self.pending.push(PendingChange::Entries(entries));
        self.on_write_error(result)
    }

    /// A write stalled for want of space is rewritten before anything new is
    /// encoded after it, so the retried batch is the failed one, byte for byte.
    fn finish_stalled_write(&mut self) -> Result<(), WalError> {
        if self.stalled {
            self.sync()?;
        }
        Ok(())
    }

    fn validate_append(&self, entries: &[Entry]) -> Result<(), WalError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index == 0 || first.index > self.pending_last_index + 1 {
            return Err(WalError::InvalidRequest(format!(
                "append at index {} leaves a gap after last index {}",
                first.index, self.pending_last_index
            )));
        }
        if let Some(pair) = entries
            .windows(2)
            .find(|pair| pair[1].index != pair[0].index + 1)
        {
            return Err(WalError::InvalidRequest(format!(
                "appended entries are not contiguous: index {} follows {}",
                pair[1].index, pair[0].index
            )));
        }
        let capacity = SegmentWriter::segment_capacity_bytes(self.writer.segment_bytes());
        if let Some(entry) = entries
            .iter()
            .find(|entry| record::single_entry_record_bytes(entry) as u64 > capacity)
        {
            return Err(WalError::EntryTooLarge {
                index: entry.index,
                record_bytes: record::single_entry_record_bytes(entry) as u64,
                segment_capacity_bytes: capacity,
            });
        }
        Ok(())
    }

    /// Buffers a hard state for the next [`Wal::sync`].
    pub fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), WalError> {
        self.check_writable()?;
        self.finish_stalled_write()?;
        let result = self.writer.encode_hard_state(hard_state);
        self.pending.push(PendingChange::HardState(hard_state));
        self.on_write_error(result)
    }

    /// Makes everything buffered durable with one write and one fdatasync,
    /// then shows it to readers. Returns the last durable index. After a
    /// [`WalError::DiskFull`], call it again to retry: it rewrites the failed
    /// batch from its start.
    pub fn sync(&mut self) -> Result<LogIndex, WalError> {
        self.check_writable()?;
        if self.stalled {
            let result = self.encode_pending();
            self.on_write_error(result)?;
        }
        let result = self.writer.write_and_sync();
        let wrote = self.on_write_error(result)?;
        self.stalled = false;
        if wrote {
            self.stats.batches_synced += 1;
        }
        for change in self.pending.drain(..) {
            match change {
                PendingChange::Entries(entries) => {
                    self.stats.entries_synced += entries.len() as u64;
                    self.view.append(entries);
                }
                PendingChange::HardState(hard_state) => self.view.hard_state = hard_state,
            }
        }
        debug_assert_eq!(self.view.last_index(), self.pending_last_index);
        Ok(self.view.last_index())
    }

    /// Encodes the buffered changes again, in order, after a rewind.
    fn encode_pending(&mut self) -> Result<(), WalError> {
        for change in &self.pending {
            match change {
                PendingChange::Entries(entries) => self.writer.encode_entries(entries)?,
                PendingChange::HardState(hard_state) => {
                    self.writer.encode_hard_state(*hard_state)?;
                }
            }
        }
        Ok(())
    }

    /// What a node driver does with a Ready: its entries and hard state,
    /// durable with one fdatasync. Returns the last durable index.
    pub fn persist(
        &mut self,
        hard_state: Option<HardState>,
        entries: &[Entry],
    ) -> Result<LogIndex, WalError> {
        self.finish_stalled_write()?;
        if let Err(error) = self.append_entries(entries) {
            // Entries that found no room are held; the hard state joins them
            // behind, so the retried batch holds this whole call.
            if let (true, Some(hard_state)) = (self.stalled, hard_state) {
                self.pending.push(PendingChange::HardState(hard_state));
            }
            return Err(error);
        }
        if let Some(hard_state) = hard_state {
            self.set_hard_state(hard_state)?;
        }
        self.sync()
    }

    /// Installs a snapshot received from the leader: the snapshot file is
    /// written durably, then the log moves past it. Entries after it are kept
    /// if the log holds the snapshot's last entry with the same term, otherwise
    /// the log restarts empty after it. The commit index rises to the snapshot.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), WalError> {
        self.sync()?;
        let meta = &snapshot.meta;
        if meta.index < self.view.snapshot_index() {
            return Err(WalError::InvalidRequest(format!(
                "snapshot at index {} is older than the log's snapshot at {}",
                meta.index,
                self.view.snapshot_index()
            )));
        }
        let entries_kept = self.view.term(meta.index) == Ok(meta.term);
        if !entries_kept && meta.index < self.view.hard_state.commit {
            return Err(WalError::InvalidRequest(format!(
                "snapshot at index {} term {} conflicts with the log, which has entries committed up to {}",
                meta.index, meta.term, self.view.hard_state.commit
            )));
        }
        let mut hard_state = self.view.hard_state;
        hard_state.commit = hard_state.commit.max(meta.index);
        self.install(snapshot, entries_kept, Some(hard_state))
    }

    /// Records a snapshot the local state machine took at `snapshot.meta.index`
    /// and drops the entries (and whole segments) it covers. A snapshot at or
    /// before the current one is ignored.
    pub fn compact(&mut self, snapshot: Snapshot) -> Result<(), WalError> {
        self.sync()?;
        let meta = &snapshot.meta;
        if meta.index <= self.view.snapshot_index() {
            return Ok(());
        }
        match self.view.term(meta.index) {
            Ok(term) if term == meta.term => self.install(snapshot, true, None),
            Ok(term) => Err(WalError::InvalidRequest(format!(
                "snapshot at index {} has term {}, the log holds term {term} there",
                meta.index, meta.term
            ))),
            Err(_) => Err(WalError::InvalidRequest(format!(
                "cannot compact to index {}: the log ends at {}",
                meta.index,
                self.view.last_index()
            ))),
        }
    }

    /// Snapshot file, then marker (and hard state) durable, then the view, then cleanup.
    fn install(
        &mut self,
        snapshot: Snapshot,
        entries_kept: bool,
        hard_state: Option<HardState>,
    ) -> Result<(), WalError> {
        self.check_writable()?;
        let result = self.snapshots.write(&snapshot);
        self.on_write_error(result)?;
        let marker = SnapshotMarker {
            index: snapshot.meta.index,
            term: snapshot.meta.term,
            entries_kept,
        };
        let result = self
            .writer
            .encode_snapshot_marker(marker)
            .and_then(|()| match hard_state {
                Some(hard_state) => self.writer.encode_hard_state(hard_state),
                None => Ok(()),
            });
        self.on_write_error(result)?;
        let result = self.writer.write_and_sync();
        self.on_write_error(result)?;
        self.stats.batches_synced += 1;
        self.view.apply_snapshot(snapshot.meta, entries_kept);
        if let Some(hard_state) = hard_state {
            self.view.hard_state = hard_state;
        }
        self.pending_last_index = self.view.last_index();
        let snapshot_index = self.view.snapshot_index();
        let result = self
            .snapshots
            .prune(snapshot_index)
            .and_then(|()| self.writer.remove_segments_through(snapshot_index));
        let removed_segments = self.poison_on_error(result)?;
        tracing::debug!(
            snapshot_index,
            removed_segments,
            entries_kept,
            "log moved to a snapshot"
        );
        Ok(())
    }

    /// Test hook: the disk accepts `bytes` more bytes of log writes (or, with
    /// `while_preallocating`, of zero-filling new segments), then is full.
    #[cfg(test)]
    pub(crate) fn inject_disk_full_after(&mut self, bytes: u64, while_preallocating: bool) {
        self.writer.limit_disk(
            crate::writer::DiskBudget::limited(bytes),
            while_preallocating,
        );
    }
}

impl Storage for Wal {
    fn initial_state(&self) -> Result<InitialState, StorageError> {
        Ok(InitialState {
            hard_state: self.view.hard_state,
            conf_state: self.view.snapshot_meta.conf_state.clone(),
        })
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, StorageError> {
        self.view.entries(low, high, max_bytes)
    }

    fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
        self.view.term(index)
    }

    fn first_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.view.snapshot_index() + 1)
    }

    fn last_index(&self) -> Result<LogIndex, StorageError> {
        Ok(self.view.last_index())
    }

    fn snapshot(&self) -> Result<Snapshot, StorageError> {
        let meta = &self.view.snapshot_meta;
        Ok(self.snapshots.load(meta.index, meta.term)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::EntryKind;

    const SMALL_SEGMENT_BYTES: u64 = MIN_SEGMENT_BYTES;

    fn options() -> WalOptions {
        WalOptions {
            segment_bytes: SMALL_SEGMENT_BYTES,
            ..WalOptions::new(0xc1)
        }
    }

    fn entry(index: LogIndex, term: Term) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: format!("entry {index} of term {term}").into_bytes(),
        }
    }

    fn entries(first: LogIndex, last: LogIndex, term: Term) -> Vec<Entry> {
        (first..=last).map(|index| entry(index, term)).collect()
    }

    fn snapshot(index: LogIndex, term: Term) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf_state: ConfState {
                    voters: vec![1, 2, 3],
                    learners: Vec::new(),
                },
            },
            data: format!("state machine at {index}").into_bytes(),
        }
    }

    fn segment_count(dir: &Path) -> usize {
        recovery::segment_sequences(&StdFileSystem, dir)
            .unwrap()
            .len()
    }

    #[test]
    fn persisted_entries_and_hard_state_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), &options(), vec![1, 2, 3]).unwrap();
        let hard_state = HardState {
            term: 2,
            vote: 3,
            commit: 4,
        };
        assert_eq!(wal.persist(Some(hard_state), &entries(1, 5, 2)).unwrap(), 5);
        drop(wal);
        let wal = Wal::open(dir.path(), &options()).unwrap();
        let state = wal.initial_state().unwrap();
        assert_eq!(state.hard_state, hard_state);
        assert_eq!(state.conf_state.voters, vec![1, 2, 3]);
        assert_eq!(wal.entries(1, 6, u64::MAX).unwrap(), entries(1, 5, 2));
        assert_eq!(wal.term(0).unwrap(), 0);
    }

    #[test]
    fn many_appends_then_one_sync_is_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), &options(), vec![1]).unwrap();
        for index in 1..=100 {
            wal.append_entries(&[entry(index, 1)]).unwrap();
        }
        wal.set_hard_state(HardState {
            term: 1,
            vote: 1,
            commit: 0,
        })
        .unwrap();
        assert_eq!(wal.last_index(), 0, "nothing is visible before the sync");
        assert_eq!(wal.sync().unwrap(), 100);
        assert_eq!(wal.stats().batches_synced, 1);
        assert_eq!(wal.stats().entries_synced, 100);
        assert_eq!(wal.sync().unwrap(), 100, "an empty sync writes nothing");
        assert_eq!(wal.stats().batches_synced, 1);
    }

    #[test]
    fn conflicting_suffix_is_replaced_and_stays_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), &options(), vec![1]).unwrap();
        wal.persist(None, &entries(1, 10, 1)).unwrap();
        wal.persist(None, &entries(6, 7, 2)).unwrap();
        assert_eq!(wal.last_index(), 7);
        drop(wal);
        let wal = Wal::open(dir.path(), &options()).unwrap();
        assert_eq!(wal.last_index(), 7);
        assert_eq!(wal.term(5).unwrap(), 1);
        assert_eq!(wal.term(6).unwrap(), 2);
    }

    #[test]
    fn gap_and_oversized_entries_are_refused_without_poisoning() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), &options(), vec![1]).unwrap();
        let error = wal.append_entries(&entries(3, 4, 1)).unwrap_err();
        assert!(error.to_string().contains("gap"), "{error}");
        let huge = Entry {
            data: vec![0; SMALL_SEGMENT_BYTES as usize],
            ..entry(1, 1)
        };
        assert!(matches!(
            wal.append_entries(&[huge]),
            Err(WalError::EntryTooLarge { index: 1, .. })
        ));
        wal.persist(None, &entries(1, 2, 1)).unwrap();
    }

    #[test]
    fn compaction_drops_whole_segments_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), &options(), vec![1, 2, 3]).unwrap();
        for first in (1..=2000).step_by(50) {
            wal.persist(None, &entries(first, first + 49, 1)).unwrap();
        }
        let segments_before = segment_count(dir.path());
        assert!(
            segments_before > 4,
            "small segments should have rolled over, got {segments_before}"
        );
        wal.compact(snapshot(1500, 1)).unwrap();
        let segments_after = segment_count(dir.path());
        assert!(
            segments_after < segments_before,
            "{segments_after} < {segments_before}"
        );
        assert!(matches!(
            wal.entries(1500, 1501, u64::MAX),
            Err(StorageError::Compacted { .. })
        ));
        drop(wal);
        let wal = Wal::open(dir.path(), &options()).unwrap();
        assert_eq!(wal.first_index().unwrap(), 1501);
        assert_eq!(wal.last_index(), 2000);
        assert_eq!(wal.term(1500).unwrap(), 1);
        assert_eq!(wal.snapshot().unwrap(), snapshot(1500, 1));
        assert_eq!(
            wal.entries(1501, 2001, u64::MAX).unwrap(),
            entries(1501, 2000, 1)
        );
    }

    #[test]
    fn installed_snapshot_that_does_not_match_replaces_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), &options(), vec![1]).unwrap();
        wal.persist(
            Some(HardState {
                term: 1,
                vote: 1,
                commit: 3,
            }),
            &entries(1, 5, 1),
        )
        .unwrap();
        wal.apply_snapshot(snapshot(8, 3)).unwrap();
        assert_eq!(wal.last_index(), 8);
        assert_eq!(wal.hard_state().commit, 8);
        wal.persist(None, &entries(9, 9, 3)).unwrap();
        drop(wal);
        let wal = Wal::open(dir.path(), &options()).unwrap();
        assert_eq!(wal.first_index().unwrap(), 9);
        assert_eq!(wal.last_index(), 9);
        assert_eq!(wal.hard_state().commit, 8);
        assert_eq!(wal.snapshot().unwrap(), snapshot(8, 3));
    }

    #[test]
    fn disk_full_while_preallocating_a_segment_loses_nothing_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), &options(), vec![1]).unwrap();
        // Segments prepared from now on cannot be zero-filled.
        wal.inject_disk_full_after(4096, true);
        let mut acknowledged = 0;
        let error = loop {
            let first = acknowledged + 1;
            match wal.persist(None, &entries(first, first + 9, 1)) {
                Ok(last) => acknowledged = last,
                Err(error) => break error,
            }
            assert!(acknowledged < 10_000, "the disk never filled up");
        };
        assert!(matches!(error, WalError::DiskFull { .. }), "{error}");
        assert!(error.to_string().contains("preallocating"), "{error}");
        assert!(
            segment_count(dir.path()) >= 2,
            "the first rollover used the segment prepared before the limit"
        );
        drop(wal);
        let wal = Wal::open(dir.path(), &options()).unwrap();
        // The failed batch's first records went into the sealed segment and may
        // have survived; they were never acknowledged, and they are intact.
        let last = wal.last_index();
        assert!((acknowledged..=acknowledged + 10).contains(&last), "{last}");
        assert_eq!(
            wal.entries(1, last + 1, u64::MAX).unwrap(),
            entries(1, last, 1)
        );
    }

    #[test]
    fn snapshot_that_would_discard_committed_entries_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), &options(), vec![1]).unwrap();
        wal.persist(
            Some(HardState {
                term: 1,
                vote: 1,
                commit: 5,
            }),
            &entries(1, 5, 1),
        )
        .unwrap();
        let error = wal.apply_snapshot(snapshot(3, 2)).unwrap_err();
        assert!(matches!(error, WalError::InvalidRequest(_)), "{error}");
        wal.apply_snapshot(snapshot(3, 1)).unwrap();
        assert_eq!(
            wal.last_index(),
            5,
            "a matching snapshot keeps the entries after it"
        );
    }

    #[test]
    fn second_open_of_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _wal = Wal::create(dir.path(), &options(), vec![1]).unwrap();
        assert!(matches!(
            Wal::open(dir.path(), &options()),
            Err(WalError::Locked { .. })
        ));
    }

    #[test]
    fn open_of_an_empty_directory_and_double_create_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Wal::open(dir.path(), &options()),
            Err(WalError::NotInitialized { .. })
        ));
        drop(Wal::create(dir.path(), &options(), vec![1]).unwrap());
        assert!(matches!(
            Wal::create(dir.path(), &options(), vec![1]),
            Err(WalError::AlreadyInitialized { .. })
        ));
        Wal::open_or_create(dir.path(), &options(), vec![1]).unwrap();
    }

    #[test]
    fn disk_full_while_appending_stalls_the_batch_and_a_retry_writes_it_once_space_is_freed() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), &options(), vec![1]).unwrap();
        let hard_state = HardState {
            term: 1,
            vote: 1,
            commit: 20,
        };
        wal.persist(Some(hard_state), &entries(1, 20, 1)).unwrap();
        wal.inject_disk_full_after(100, false);
        let next = HardState {
            commit: 30,
            ..hard_state
        };
        let error = wal.persist(Some(next), &entries(21, 40, 1)).unwrap_err();
        assert!(matches!(error, WalError::DiskFull { .. }), "{error}");
        assert!(error.to_string().contains("free space"), "{error}");
        assert!(wal.is_stalled());
        assert_eq!(wal.last_index(), 20, "the failed batch is not visible");
        assert_eq!(wal.hard_state(), hard_state);
        let error = wal.sync().unwrap_err();
        assert!(
            matches!(error, WalError::DiskFull { .. }),
            "still full: {error}"
        );
        wal.inject_disk_full_after(u64::MAX, false);
        assert_eq!(wal.sync().unwrap(), 40);
        assert!(!wal.is_stalled());
        assert_eq!(wal.hard_state(), next);
        wal.persist(None, &entries(41, 41, 1)).unwrap();
        drop(wal);
        let wal = Wal::open(dir.path(), &options()).unwrap();
        assert_eq!(wal.hard_state(), next);
        assert_eq!(wal.entries(1, 42, u64::MAX).unwrap(), entries(1, 41, 1));
    }

    #[test]
    fn a_crash_while_a_write_is_stalled_recovers_the_acknowledged_log_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), &options(), vec![1]).unwrap();
        let hard_state = HardState {
            term: 1,
            vote: 1,
            commit: 20,
        };
        wal.persist(Some(hard_state), &entries(1, 20, 1)).unwrap();
        // Two sectors of the failed batch reach the file: a half batch.
        wal.inject_disk_full_after(1024, false);
        wal.persist(None, &entries(21, 200, 1)).unwrap_err();
        wal.sync().unwrap_err();
        drop(wal);
        let wal = Wal::open(dir.path(), &options()).unwrap();
        assert_eq!(wal.hard_state(), hard_state);
        assert_eq!(
            wal.last_index(),
            20,
            "the half batch is cut as a torn write"
        );
        assert_eq!(wal.entries(1, 21, u64::MAX).unwrap(), entries(1, 20, 1));
    }

    #[test]
    fn disk_full_while_preallocating_a_segment_is_retried_once_space_is_freed() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::create(dir.path(), &options(), vec![1]).unwrap();
        wal.inject_disk_full_after(4096, true);
        let hard_state = |commit| HardState {
            term: 1,
            vote: 1,
            commit,
        };
        let mut acknowledged = 0;
        let failed_last = loop {
            let first = acknowledged + 1;
            match wal.persist(Some(hard_state(first)), &entries(first, first + 9, 1)) {
                Ok(last) => acknowledged = last,
                Err(error) => {
                    assert!(matches!(error, WalError::DiskFull { .. }), "{error}");
                    break first + 9;
                }
            }
            assert!(acknowledged < 10_000, "the disk never filled up");
        };
        wal.inject_disk_full_after(u64::MAX, true);
        assert_eq!(wal.sync().unwrap(), failed_last);
        assert_eq!(
            wal.hard_state(),
            hard_state(acknowledged + 1),
            "the retry wrote the failed call's hard state with its entries"
        );
        wal.persist(None, &entries(failed_last + 1, failed_last + 1, 1))
            .unwrap();
        drop(wal);
        let wal = Wal::open(dir.path(), &options()).unwrap();
        assert_eq!(wal.last_index(), failed_last + 1);
        assert_eq!(
            wal.entries(1, failed_last + 2, u64::MAX).unwrap(),
            entries(1, failed_last + 1, 1)
        );
    }
}
