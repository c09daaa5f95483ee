//! The write side of the segment files: encodes records into one in-memory
//! batch, frames it in sectors (see `sector`), writes it with one `pwrite` and
//! makes it durable with one `fdatasync`, and rolls over to a new segment when
//! the active one is full. Framing pads every batch to whole sectors: that
//! costs bytes, never an extra write or sync.
//!
//! Invariants it keeps:
//! - every segment but the last is fully durable and ends in zeros (a segment is
//!   synced before the next one is started);
//! - a new segment starts with a copy of the latest snapshot marker and hard
//!   state, so deleting older segments never loses them;
//! - a new segment file appears under its final name only complete (zero-filled
//!   to its full size, header written, synced), via a temp file and a rename.
//!
//! Zero-filling 64 MiB takes a noticeable fraction of a second, so the next
//! segment is prepared on a background thread while the active one fills
//! (in the foreground, at the same points, on a file system that allows no
//! threads: the simulator's).
//!
//! It never updates the in-memory view of the log: its caller does that after
//! `sync` returns.
//!
//! A batch that fails for want of space is rewound ([`SegmentWriter::rewind`])
//! to where the last durable batch ended, so the caller can encode the same
//! records again and rewrite the batch from its start: the same bytes at the
//! same offsets under the same write number. A crash between the two attempts
//! (or during the second) leaves sectors that are either that batch's bytes
//! or zeros, which recovery cuts as a torn last write; sectors of two
//! different batches under one write number can never meet.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use raft::{Entry, HardState, LogIndex};

use crate::error::WalError;
use crate::fs::{FileHandle, FileSystem};
use crate::fs_util;
use crate::record::{self, SnapshotMarker};
use crate::sector::{self, SECTOR_BYTES};
use crate::segment::{self, SegmentHeader, FIRST_BATCH_OFFSET};

/// The write number of a segment's first batch (its head records).
const FIRST_WRITE_NUMBER: u32 = 1;
/// Zero-fill writes are issued in chunks of this size.
const ZERO_FILL_CHUNK_BYTES: usize = 1 << 20;

/// The latest marker and hard state the writer has encoded: what a new segment's head repeats.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HeadState {
    pub(crate) marker: SnapshotMarker,
    pub(crate) hard_state: HardState,
}

/// A segment that is full, durable and never written again.
#[derive(Clone, Debug)]
pub(crate) struct SealedSegment {
    pub(crate) path: PathBuf,
    /// The highest entry index any record in it holds (0 if none): once the
    /// snapshot reaches it, the segment holds nothing the log still needs.
    pub(crate) max_entry_index: LogIndex,
}

/// Where the writer resumes after recovery.
#[derive(Debug)]
pub(crate) struct ResumePoint {
    pub(crate) sequence: u64,
    pub(crate) path: PathBuf,
    pub(crate) end_offset: u64,
    pub(crate) next_write_number: u32,
    pub(crate) max_entry_index: LogIndex,
    pub(crate) sealed: VecDeque<SealedSegment>,
    pub(crate) head: HeadState,
    pub(crate) last_index: LogIndex,
}

#[derive(Debug)]
struct ActiveSegment {
    sequence: u64,
    path: PathBuf,
    file: Box<dyn FileHandle>,
    /// Bytes of the segment already written (header and batches): a sector boundary.
    written_offset: u64,
    /// The write number of the next batch written to this segment.
    next_write_number: u32,
    max_entry_index: LogIndex,
}

/// What every segment of one log shares.
#[derive(Clone, Debug)]
pub(crate) struct SegmentConfig {
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) dir: PathBuf,
    pub(crate) cluster_id: u64,
    pub(crate) segment_bytes: u64,
}

/// Where the last durable batch ended: what a batch that failed for want of
/// space is rewound to.
#[derive(Clone, Debug)]
struct DurablePoint {
    sequence: u64,
    path: PathBuf,
    written_offset: u64,
    next_write_number: u32,
    max_entry_index: LogIndex,
    /// How many sealed segments there were (a failed batch may have sealed more).
    sealed_segments: usize,
    head: HeadState,
    last_index_encoded: LogIndex,
}

#[derive(Debug)]
pub(crate) struct SegmentWriter {
    config: SegmentConfig,
    active: ActiveSegment,
    sealed: VecDeque<SealedSegment>,
    durable: DurablePoint,
    /// Encoded records not yet written; framed, they go at `active.written_offset`.
    pending: Vec<u8>,
    /// The sectors of the batch being written (kept to reuse its allocation).
    framed: Vec<u8>,
    head: HeadState,
    last_index_encoded: LogIndex,
    preparer: SegmentPreparer,
    disk_budget: DiskBudget,
}

impl SegmentWriter {
    /// Starts the log's first segment (sequence 0) in an empty directory.
    pub(crate) fn create_first(config: SegmentConfig, head: HeadState) -> Result<Self, WalError> {
        let mut preparer = SegmentPreparer::new(&config);
        let header = SegmentHeader {
            cluster_id: config.cluster_id,
            sequence: 0,
            first_index: head.marker.index + 1,
            segment_bytes: config.segment_bytes,
            previous_end_offset: 0,
        };
        let active = start_segment(&config, &mut preparer, &header, &head)?;
        preparer.start(1);
        let last_index = head.marker.index;
        Ok(Self::assemble(
            config,
            active,
            VecDeque::new(),
            head,
            last_index,
            preparer,
        ))
    }

    /// Continues an existing log after recovery.
    pub(crate) fn resume(config: SegmentConfig, resume: ResumePoint) -> Result<Self, WalError> {
        let file = config
            .fs
            .open(&resume.path)
            .map_err(|source| WalError::io("opening segment", &resume.path, source))?;
        let active = ActiveSegment {
            sequence: resume.sequence,
            path: resume.path,
            file,
            written_offset: resume.end_offset,
            next_write_number: resume.next_write_number,
            max_entry_index: resume.max_entry_index,
        };
        let mut preparer = SegmentPreparer::new(&config);
        preparer.start(resume.sequence + 1);
        Ok(Self::assemble(
            config,
            active,
            resume.sealed,
            resume.head,
            resume.last_index,
            preparer,
        ))
    }

    fn assemble(
        config: SegmentConfig,
        active: ActiveSegment,
        sealed: VecDeque<SealedSegment>,
        head: HeadState,
        last_index_encoded: LogIndex,
        preparer: SegmentPreparer,
    ) -> Self {
        let durable = DurablePoint {
            sequence: active.sequence,
            path: active.path.clone(),
            written_offset: active.written_offset,
            next_write_number: active.next_write_number,
            max_entry_index: active.max_entry_index,
            sealed_segments: sealed.len(),
            head,
            last_index_encoded,
        };
        SegmentWriter {
            config,
            active,
            sealed,
            durable,
            pending: Vec::new(),
            framed: Vec::new(),
            head,
            last_index_encoded,
            preparer,
            disk_budget: DiskBudget::default(),
        }
    }

    pub(crate) fn segment_bytes(&self) -> u64 {
        self.config.segment_bytes
    }

    /// Bytes of records one batch in a fresh segment can hold after its
    /// header and head records.
    pub(crate) fn segment_capacity_bytes(segment_bytes: u64) -> u64 {
        let head_sectors = sector::batch_sectors(head_records_bytes()) as u64;
        let sectors = segment_bytes.saturating_sub(FIRST_BATCH_OFFSET) / SECTOR_BYTES as u64;
        sector::batch_capacity_bytes(sectors.saturating_sub(head_sectors))
    }

    /// Bytes of records the batch being encoded can still take in the active segment.
    fn space_left_bytes(&self) -> u64 {
        let sectors_left =
            (self.config.segment_bytes - self.active.written_offset) / SECTOR_BYTES as u64;
        sector::batch_capacity_bytes(sectors_left).saturating_sub(self.pending.len() as u64)
    }

    fn ensure_space(&mut self, record_bytes: usize) -> Result<(), WalError> {
        if self.space_left_bytes() < record_bytes as u64 {
            self.roll_over()?;
        }
        debug_assert!(self.space_left_bytes() >= record_bytes as u64);
        Ok(())
    }

    /// Encodes contiguous entries (the caller checked each fits in a segment),
    /// splitting them into as many records as segment boundaries require.
    pub(crate) fn encode_entries(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        let mut rest = entries;
        while let Some(first) = rest.first() {
            self.ensure_space(record::single_entry_record_bytes(first))?;
            let space_left = self.space_left_bytes() as usize;
            let mut payload_bytes = record::entries_payload_bytes(&[]);
            let mut count = 0;
            for entry in rest {
                let next_payload_bytes = payload_bytes + record::entry_payload_bytes(entry);
                if record::framed_bytes(next_payload_bytes) > space_left {
                    break;
                }
                payload_bytes = next_payload_bytes;
                count += 1;
            }
            debug_assert!(count >= 1);
            let (chunk, remaining) = rest.split_at(count);
            record::encode_entries(&mut self.pending, chunk);
            let last = chunk.last().expect("chunk is not empty").index;
            self.active.max_entry_index = self.active.max_entry_index.max(last);
            self.last_index_encoded = last;
            rest = remaining;
        }
        Ok(())
    }

    pub(crate) fn encode_hard_state(&mut self, hard_state: HardState) -> Result<(), WalError> {
        self.ensure_space(record::hard_state_record_bytes())?;
        record::encode_hard_state(&mut self.pending, &hard_state);
        self.head.hard_state = hard_state;
        Ok(())
    }

    pub(crate) fn encode_snapshot_marker(
        &mut self,
        marker: SnapshotMarker,
    ) -> Result<(), WalError> {
        self.ensure_space(record::snapshot_marker_record_bytes())?;
        record::encode_snapshot_marker(&mut self.pending, &marker);
        self.head.marker = marker;
        debug_assert!(!marker.entries_kept || marker.index <= self.last_index_encoded);
        if !marker.entries_kept {
            self.last_index_encoded = marker.index;
        }
        Ok(())
    }

    /// Writes the batch with one write and makes it durable with one fdatasync.
    /// Returns whether there was anything to write.
    pub(crate) fn write_and_sync(&mut self) -> Result<bool, WalError> {
        if self.pending.is_empty() {
            return Ok(false);
        }
        self.write_pending()?;
        self.active
            .file
            .sync_data()
            .map_err(|source| WalError::io("syncing segment", &self.active.path, source))?;
        self.mark_durable();
        Ok(true)
    }

    fn mark_durable(&mut self) {
        self.durable = DurablePoint {
            sequence: self.active.sequence,
            path: self.active.path.clone(),
            written_offset: self.active.written_offset,
            next_write_number: self.active.next_write_number,
            max_entry_index: self.active.max_entry_index,
            sealed_segments: self.sealed.len(),
            head: self.head,
            last_index_encoded: self.last_index_encoded,
        };
    }

    /// Forgets the batch being encoded or written and goes back to where the
    /// last durable batch ended, reopening that batch's segment if the failed
    /// one had rolled over. Segments the failed batch started stay on disk
    /// (complete, or absent under their final name): the rewritten batch
    /// starts them again identically, and recovery after a crash reads them
    /// as a log whose last batch never finished.
    pub(crate) fn rewind(&mut self) -> Result<(), WalError> {
        self.pending.clear();
        let point = self.durable.clone();
        if self.active.sequence != point.sequence {
            self.remove_segments_after(point.sequence, self.active.sequence)?;
            let file = self
                .config
                .fs
                .open(&point.path)
                .map_err(|source| WalError::io("reopening segment", &point.path, source))?;
            self.active = ActiveSegment {
                sequence: point.sequence,
                path: point.path,
                file,
                written_offset: 0,
                next_write_number: 0,
                max_entry_index: 0,
            };
            self.sealed.truncate(point.sealed_segments);
        }
        self.active.written_offset = point.written_offset;
        self.active.next_write_number = point.next_write_number;
        self.active.max_entry_index = point.max_entry_index;
        self.head = point.head;
        self.last_index_encoded = point.last_index_encoded;
        Ok(())
    }

    /// Frames the pending records as the next batch and writes it (one write).
    fn write_pending(&mut self) -> Result<(), WalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.framed.clear();
        sector::frame_batch(
            &self.pending,
            self.active.next_write_number,
            &mut self.framed,
        );
        debug_assert!(
            self.active.written_offset + self.framed.len() as u64 <= self.config.segment_bytes
        );
        write_all_at_within_budget(
            self.active.file.as_ref(),
            &self.framed,
            self.active.written_offset,
            &self.disk_budget,
        )
        .map_err(|source| WalError::io("writing segment", &self.active.path, source))?;
        self.active.written_offset += self.framed.len() as u64;
        self.active.next_write_number += 1;
        self.pending.clear();
        Ok(())
    }

    /// Test hook: batch writes from now on, or the zero-filling of segments
    /// prepared from now on, fail like a full disk once `budget` runs out.
    #[cfg(test)]
    pub(crate) fn limit_disk(&mut self, budget: DiskBudget, while_preallocating: bool) {
        if while_preallocating {
            self.preparer.disk_budget = budget;
        } else {
            self.disk_budget = budget;
        }
    }

    /// Seals the active segment (durably) and starts the next one.
    fn roll_over(&mut self) -> Result<(), WalError> {
        self.write_pending()?;
        self.active
            .file
            .sync_data()
            .map_err(|source| WalError::io("syncing segment", &self.active.path, source))?;
        let sequence = self.active.sequence + 1;
        let header = SegmentHeader {
            cluster_id: self.config.cluster_id,
            sequence,
            first_index: self.last_index_encoded + 1,
            segment_bytes: self.config.segment_bytes,
            previous_end_offset: self.active.written_offset,
        };
        let head = HeadState {
            marker: SnapshotMarker {
                entries_kept: true,
                ..self.head.marker
            },
            ..self.head
        };
        let next = start_segment(&self.config, &mut self.preparer, &header, &head)?;
        self.preparer.start(sequence + 1);
        let previous = std::mem::replace(&mut self.active, next);
        tracing::debug!(sealed = %previous.path.display(), started = %self.active.path.display(), "log segment rolled over");
        self.sealed.push_back(SealedSegment {
            path: previous.path,
            max_entry_index: previous.max_entry_index,
        });
        Ok(())
    }

    /// Deletes the segments a rewound batch started (`after + 1 ..= through`),
    /// so a crash before the batch is rewritten finds the log ending where
    /// its last durable batch did, not in segments whose start no longer
    /// matches what comes before them.
    fn remove_segments_after(&mut self, after: u64, through: u64) -> Result<(), WalError> {
        for sequence in after + 1..=through {
            let path = segment::segment_path(&self.config.dir, sequence);
            match self.config.fs.remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(WalError::io("removing a rewound segment", &path, source))
                }
            }
        }
        fs_util::sync_dir(self.config.fs.as_ref(), &self.config.dir)
    }

    /// Deletes the oldest sealed segments whose entries are all at or before
    /// `snapshot_index`. The marker for that snapshot must already be durable.
    pub(crate) fn remove_segments_through(
        &mut self,
        snapshot_index: LogIndex,
    ) -> Result<usize, WalError> {
        let mut removed = 0;
        while let Some(oldest) = self.sealed.front() {
            if oldest.max_entry_index > snapshot_index {
                break;
            }
            self.config.fs.remove_file(&oldest.path).map_err(|source| {
                WalError::io("removing compacted segment", &oldest.path, source)
            })?;
            // One directory sync per removal keeps the surviving segments a
            // contiguous run even if the unlinks were reordered by a crash.
            fs_util::sync_dir(self.config.fs.as_ref(), &self.config.dir)?;
            self.sealed.pop_front();
            self.durable.sealed_segments = self.durable.sealed_segments.saturating_sub(1);
            removed += 1;
        }
        Ok(removed)
    }
}

fn head_records_bytes() -> usize {
    record::snapshot_marker_record_bytes() + record::hard_state_record_bytes()
}

/// Turns a zero-filled file into segment `header.sequence`: header sector and
/// head records (the segment's first batch, write number 1) written and
/// synced, then renamed into place and the directory synced.
fn start_segment(
    config: &SegmentConfig,
    preparer: &mut SegmentPreparer,
    header: &SegmentHeader,
    head: &HeadState,
) -> Result<ActiveSegment, WalError> {
    let (temp_path, file) = preparer.take(header.sequence)?;
    let mut bytes = header.encode().to_vec();
    bytes.resize(FIRST_BATCH_OFFSET as usize, 0);
    let mut head_records = Vec::new();
    record::encode_snapshot_marker(&mut head_records, &head.marker);
    record::encode_hard_state(&mut head_records, &head.hard_state);
    debug_assert_eq!(head_records.len(), head_records_bytes());
    sector::frame_batch(&head_records, FIRST_WRITE_NUMBER, &mut bytes);
    file.write_all_at(&bytes, 0)
        .map_err(|source| WalError::io("writing segment header", &temp_path, source))?;
    file.sync_data()
        .map_err(|source| WalError::io("syncing new segment", &temp_path, source))?;
    let path = segment::segment_path(&config.dir, header.sequence);
    config
        .fs
        .rename(&temp_path, &path)
        .map_err(|source| WalError::io("renaming new segment into place", &path, source))?;
    fs_util::sync_dir(config.fs.as_ref(), &config.dir)?;
    Ok(ActiveSegment {
        sequence: header.sequence,
        path,
        file,
        written_offset: bytes.len() as u64,
        next_write_number: FIRST_WRITE_NUMBER + 1,
        max_entry_index: 0,
    })
}

/// A zero-filled file ready to become a segment, or why it could not be made.
type Prepared = Result<Box<dyn FileHandle>, WalError>;

/// The preparation of one segment's file.
#[derive(Debug)]
enum Preparation {
    Background(JoinHandle<Prepared>),
    Done(Prepared),
}

/// Prepares the next segment's zero-filled file, on a background thread when
/// the file system allows one.
#[derive(Debug)]
struct SegmentPreparer {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    segment_bytes: u64,
    in_flight: Option<(u64, Preparation)>,
    disk_budget: DiskBudget,
}

impl SegmentPreparer {
    fn new(config: &SegmentConfig) -> Self {
        SegmentPreparer {
            fs: Arc::clone(&config.fs),
            dir: config.dir.clone(),
            segment_bytes: config.segment_bytes,
            in_flight: None,
            disk_budget: DiskBudget::default(),
        }
    }

    fn temp_path(&self, sequence: u64) -> PathBuf {
        fs_util::temp_path(&segment::segment_path(&self.dir, sequence))
    }

    /// Begins preparing segment `sequence`: in the background, or now.
    fn start(&mut self, sequence: u64) {
        debug_assert!(self.in_flight.is_none());
        let path = self.temp_path(sequence);
        if !self.fs.allows_background_threads() {
            let prepared = zero_filled_file(
                self.fs.as_ref(),
                &path,
                self.segment_bytes,
                &self.disk_budget,
            );
            self.in_flight = Some((sequence, Preparation::Done(prepared)));
            return;
        }
        let fs = Arc::clone(&self.fs);
        let segment_bytes = self.segment_bytes;
        let disk_budget = self.disk_budget.clone();
        let spawned = std::thread::Builder::new()
            .name("wal-segment-prepare".into())
            .spawn(move || zero_filled_file(fs.as_ref(), &path, segment_bytes, &disk_budget));
        // If no thread can be spawned, `take` prepares the file in the foreground.
        if let Ok(handle) = spawned {
            self.in_flight = Some((sequence, Preparation::Background(handle)));
        }
    }

    /// The zero-filled file for `sequence`, waiting for (or doing) the preparation.
    fn take(&mut self, sequence: u64) -> Result<(PathBuf, Box<dyn FileHandle>), WalError> {
        let path = self.temp_path(sequence);
        let prepared = match self.in_flight.take() {
            Some((prepared_sequence, preparation)) if prepared_sequence == sequence => {
                finish(preparation, &path)
            }
            Some((other_sequence, preparation)) => {
                // Prepared for a batch that was rewound: finish it, so no
                // thread still writes the file, and start over.
                let other_path = self.temp_path(other_sequence);
                drop(finish(preparation, &other_path));
                let _ = self.fs.remove_file(&other_path);
                zero_filled_file(
                    self.fs.as_ref(),
                    &path,
                    self.segment_bytes,
                    &self.disk_budget,
                )
            }
            None => zero_filled_file(
                self.fs.as_ref(),
                &path,
                self.segment_bytes,
                &self.disk_budget,
            ),
        };
        prepared.map(|file| (path, file))
    }
}

impl Drop for SegmentPreparer {
    fn drop(&mut self) {
        if let Some((sequence, preparation)) = self.in_flight.take() {
            let path = self.temp_path(sequence);
            drop(finish(preparation, &path));
            let _ = self.fs.remove_file(&path);
        }
    }
}

/// Waits for a preparation to end.
fn finish(preparation: Preparation, path: &Path) -> Prepared {
    match preparation {
        Preparation::Done(prepared) => prepared,
        Preparation::Background(handle) => handle.join().unwrap_or_else(|_| {
            Err(WalError::io(
                "preparing segment",
                path,
                io::Error::other("the preparing thread panicked"),
            ))
        }),
    }
}

/// Creates `path` filled with `bytes` zeros and synced, so later writes into it
/// never allocate blocks (no ENOSPC, no metadata for fdatasync to flush).
fn zero_filled_file(
    fs: &dyn FileSystem,
    path: &Path,
    bytes: u64,
    disk_budget: &DiskBudget,
) -> Prepared {
    let result = write_zeros(fs, path, bytes, disk_budget);
    if result.is_err() {
        let _ = fs.remove_file(path);
    }
    result
}

fn write_zeros(fs: &dyn FileSystem, path: &Path, bytes: u64, disk_budget: &DiskBudget) -> Prepared {
    let file = fs
        .create(path)
        .map_err(|source| WalError::io("creating segment", path, source))?;
    let zeros = vec![0u8; ZERO_FILL_CHUNK_BYTES];
    let mut offset = 0u64;
    while offset < bytes {
        let chunk = (bytes - offset).min(ZERO_FILL_CHUNK_BYTES as u64) as usize;
        write_all_at_within_budget(file.as_ref(), &zeros[..chunk], offset, disk_budget)
            .map_err(|source| WalError::io("preallocating segment", path, source))?;
        offset += chunk as u64;
    }
    file.sync_all()
        .map_err(|source| WalError::io("syncing preallocated segment", path, source))?;
    Ok(file)
}

/// How many more bytes the disk accepts. Unlimited in real use (the real disk
/// reports ENOSPC itself); tests set a limit to fill the disk at an exact point.
#[derive(Clone, Debug, Default)]
pub(crate) struct DiskBudget {
    bytes_left: Option<Arc<AtomicU64>>,
}

impl DiskBudget {
    #[cfg(test)]
    pub(crate) fn limited(bytes: u64) -> Self {
        DiskBudget {
            bytes_left: Some(Arc::new(AtomicU64::new(bytes))),
        }
    }

    /// Grants up to `wanted` bytes, in whole sectors: a full disk refuses
    /// whole blocks, it never leaves a sector half written.
    fn take(&self, wanted: usize) -> usize {
        let Some(bytes_left) = &self.bytes_left else {
            return wanted;
        };
        let mut granted = 0;
        let _ = bytes_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            granted = left.min(wanted as u64) / SECTOR_BYTES as u64 * SECTOR_BYTES as u64;
            Some(left - granted)
        });
        granted as usize
    }
}

/// `write_all_at`, cut short with "no space left" when the budget runs out,
/// as a full disk cuts a write short.
fn write_all_at_within_budget(
    file: &dyn FileHandle,
    bytes: &[u8],
    offset: u64,
    disk_budget: &DiskBudget,
) -> io::Result<()> {
    let granted = disk_budget.take(bytes.len());
    file.write_all_at(&bytes[..granted], offset)?;
    if granted < bytes.len() {
        return Err(io::Error::from(io::ErrorKind::StorageFull));
    }
    Ok(())
}
