//! Opening an existing log: checks every segment (sequence, cluster, size,
//! continuity with the previous one), replays their records in order, cuts a
//! torn tail, and loads the snapshot the log refers to. It refuses to start,
//! with an error naming the file and offset, on anything that could mean lost
//! or damaged acknowledged data; it never silently drops such data.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use raft::{Entry, HardState, LogIndex, SnapshotMeta};

use crate::error::WalError;
use crate::fs::FileSystem;
use crate::fs_util;
use crate::log_view::LogView;
use crate::record::{Record, SnapshotMarker};
use crate::segment::{self, SegmentHeader, TornTail};
use crate::snapshot_file::SnapshotStore;
use crate::writer::{HeadState, ResumePoint, SealedSegment};

/// What opening the log recovered: the durable view and where writing resumes.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) view: LogView,
    pub(crate) resume: ResumePoint,
}

/// Sequence numbers of the segment files in `dir`, ascending.
pub(crate) fn segment_sequences(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<u64>, WalError> {
    let mut sequences: Vec<u64> = fs_util::list_names(fs, dir)?
        .iter()
        .filter_map(|name| segment::parse_segment_file_name(name))
        .collect();
    sequences.sort_unstable();
    Ok(sequences)
}

pub(crate) fn recover(
    fs: &dyn FileSystem,
    dir: &Path,
    cluster_id: u64,
    snapshots: &SnapshotStore,
) -> Result<Recovered, WalError> {
    fs_util::remove_temp_files(fs, dir)?;
    let sequences = segment_sequences(fs, dir)?;
    if sequences.is_empty() {
        return Err(WalError::NotInitialized {
            dir: dir.to_path_buf(),
        });
    }
    check_no_missing_segment(dir, &sequences)?;
    let mut replay: Option<Replay> = None;
    let mut sealed = VecDeque::new();
    let mut previous_end: Option<(PathBuf, u64)> = None;
    let mut last = None;
    for (position, &sequence) in sequences.iter().enumerate() {
        let path = segment::segment_path(dir, sequence);
        let is_last = position + 1 == sequences.len();
        let image = fs_util::read_whole(fs, &path)?;
        let header = check_header(&image, &path, cluster_id, sequence, previous_end.as_ref())?;
        let mut scanned = segment::scan_segment(&image, is_last, &path)?;
        drop(image);
        let replay = replay.get_or_insert_with(|| Replay::new(header.first_index, path.clone()));
        let max_entry_index = replay.apply_segment(std::mem::take(&mut scanned.records));
        previous_end = Some((path.clone(), scanned.end_offset));
        if is_last {
            last = Some((sequence, path, scanned, max_entry_index));
        } else {
            sealed.push_back(SealedSegment {
                path,
                max_entry_index,
            });
        }
    }
    let (sequence, path, scanned, max_entry_index) = last.expect("at least one segment");
    let replay = replay.expect("at least one segment");
    let (marker, hard_state, entries) = replay.finish()?;
    check_commit_within_log(
        &hard_state,
        &entries,
        marker.index,
        &path,
        scanned.end_offset,
    )?;
    let snapshot = snapshots.load(marker.index, marker.term)?;
    if let Some(torn) = scanned.torn_tail {
        cut_torn_tail(fs, &path, torn)?;
    }
    let view = LogView {
        snapshot_meta: SnapshotMeta {
            index: marker.index,
            term: marker.term,
            conf_state: snapshot.meta.conf_state,
        },
        entries,
        hard_state,
    };
    let resume = ResumePoint {
        sequence,
        path,
        end_offset: scanned.end_offset,
        next_write_number: scanned.next_write_number,
        max_entry_index,
        sealed,
        head: HeadState { marker, hard_state },
        last_index: view.last_index(),
    };
    Ok(Recovered { view, resume })
}

fn check_no_missing_segment(dir: &Path, sequences: &[u64]) -> Result<(), WalError> {
    for pair in sequences.windows(2) {
        if pair[1] != pair[0] + 1 {
            return Err(WalError::MissingSegment {
                dir: dir.to_path_buf(),
                missing: segment::segment_path(dir, pair[0] + 1),
                before: segment::segment_path(dir, pair[0]),
                after: segment::segment_path(dir, pair[1]),
            });
        }
    }
    Ok(())
}

/// Checks a segment's header against its name, the cluster, its file size and
/// where the previous segment's records end.
fn check_header(
    image: &[u8],
    path: &Path,
    cluster_id: u64,
    sequence: u64,
    previous_end: Option<&(PathBuf, u64)>,
) -> Result<SegmentHeader, WalError> {
    let header = SegmentHeader::decode(image, path)?;
    if header.cluster_id != cluster_id {
        return Err(WalError::ClusterMismatch {
            path: path.to_path_buf(),
            expected: cluster_id,
            found: header.cluster_id,
        });
    }
    if header.sequence != sequence {
        return Err(WalError::corrupt(
            path,
            24,
            format!(
                "header says segment {}, the file name says {sequence}",
                header.sequence
            ),
        ));
    }
    if header.segment_bytes != image.len() as u64 {
        return Err(WalError::corrupt(
            path,
            image.len() as u64,
            format!(
                "segment is {} bytes but was created with {} bytes: the file was truncated or extended",
                image.len(),
                header.segment_bytes
            ),
        ));
    }
    if let Some((previous_path, previous_end_offset)) = previous_end {
        if *previous_end_offset != header.previous_end_offset {
            return Err(WalError::corrupt(
                previous_path,
                *previous_end_offset,
                format!(
                    "records end at byte {previous_end_offset}, but the next segment {} records that this one was sealed at byte {}: records were lost",
                    path.display(),
                    header.previous_end_offset
                ),
            ));
        }
    }
    Ok(header)
}

fn check_commit_within_log(
    hard_state: &HardState,
    entries: &VecDeque<Entry>,
    snapshot_index: LogIndex,
    path: &Path,
    end_offset: u64,
) -> Result<(), WalError> {
    let last_index = snapshot_index + entries.len() as u64;
    if hard_state.commit > last_index {
        return Err(WalError::corrupt(
            path,
            end_offset,
            format!(
                "the hard state says entry {} is committed, but the log ends at entry {last_index}",
                hard_state.commit
            ),
        ));
    }
    Ok(())
}

/// Zeroes the sectors a torn last write left, so that every sector the next
/// write does not fill reads as unwritten again (the failure model relies on
/// no sector being written twice with data). A crash during this leaves a
/// subset of the same sectors: the same torn write, cut again on the next open.
fn cut_torn_tail(fs: &dyn FileSystem, path: &Path, torn: TornTail) -> Result<(), WalError> {
    tracing::warn!(
        path = %path.display(),
        offset = torn.offset,
        bytes = torn.end_offset - torn.offset,
        "cutting a torn last write at the tail of the log (some of its sectors never reached the disk, so its sync never returned and it was never acknowledged)"
    );
    let file = fs
        .open(path)
        .map_err(|source| WalError::io("opening segment", path, source))?;
    let zeros = vec![0u8; (torn.end_offset - torn.offset) as usize];
    file.write_all_at(&zeros, torn.offset)
        .map_err(|source| WalError::io("cutting torn tail of", path, source))?;
    file.sync_data()
        .map_err(|source| WalError::io("syncing", path, source))
}

/// Replays records in log order. Segments before the first one present may
/// have been deleted by compaction, so entries below `known_from` are unknown:
/// that is fine as long as the final snapshot covers them, and an error otherwise.
#[derive(Debug)]
struct Replay {
    /// Entries are contiguous from here; everything below is covered by a
    /// snapshot or unknown.
    known_from: LogIndex,
    entries: VecDeque<Entry>,
    marker: Option<SnapshotMarker>,
    hard_state: HardState,
    first_segment: PathBuf,
}

impl Replay {
    fn new(first_index: LogIndex, first_segment: PathBuf) -> Self {
        Replay {
            known_from: first_index,
            entries: VecDeque::new(),
            marker: None,
            hard_state: HardState::default(),
            first_segment,
        }
    }

    fn last_index(&self) -> LogIndex {
        self.known_from - 1 + self.entries.len() as u64
    }

    /// Replays a segment's records; returns the highest entry index they hold.
    fn apply_segment(&mut self, records: Vec<Record>) -> LogIndex {
        let mut max_entry_index = 0;
        for record in records {
            match record {
                Record::Entries(entries) => {
                    max_entry_index =
                        max_entry_index.max(entries.last().map_or(0, |entry| entry.index));
                    self.append(entries);
                }
                Record::HardState(hard_state) => self.hard_state = hard_state,
                Record::SnapshotMarker(marker) => self.apply_marker(marker),
            }
        }
        max_entry_index
    }

    /// An append replaces everything from its first index on. One that starts
    /// past the end leaves a hole of unknown entries below it.
    fn append(&mut self, entries: Vec<Entry>) {
        let first = entries[0].index;
        if first < self.known_from || first > self.last_index() + 1 {
            self.entries.clear();
            self.known_from = first;
        } else {
            self.entries.truncate((first - self.known_from) as usize);
        }
        self.entries.extend(entries);
    }

    fn apply_marker(&mut self, marker: SnapshotMarker) {
        if !marker.entries_kept {
            self.entries.clear();
            self.known_from = marker.index + 1;
        } else if marker.index + 1 >= self.known_from {
            let drop = ((marker.index + 1 - self.known_from) as usize).min(self.entries.len());
            self.entries.drain(..drop);
            self.known_from = marker.index + 1;
        }
        self.marker = Some(marker);
    }

    /// The recovered snapshot marker, hard state and entries after the snapshot.
    fn finish(mut self) -> Result<(SnapshotMarker, HardState, VecDeque<Entry>), WalError> {
        let Some(marker) = self.marker else {
            return Err(WalError::corrupt(
                &self.first_segment,
                segment::FIRST_BATCH_OFFSET,
                "no snapshot marker in any segment (every segment starts with one)",
            ));
        };
        // Entries at or before the snapshot are covered by it.
        self.apply_marker(SnapshotMarker {
            entries_kept: true,
            ..marker
        });
        if self.known_from > marker.index + 1 {
            return Err(WalError::MissingEntries {
                first_missing: marker.index + 1,
                last_missing: self.known_from - 1,
                snapshot_index: marker.index,
                first_segment: self.first_segment,
            });
        }
        debug_assert_eq!(self.known_from, marker.index + 1);
        Ok((marker, self.hard_state, self.entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::EntryKind;

    fn entries(first: LogIndex, last: LogIndex, term: u64) -> Vec<Entry> {
        (first..=last)
            .map(|index| Entry {
                term,
                index,
                kind: EntryKind::Normal,
                data: Vec::new(),
            })
            .collect()
    }

    fn marker(index: LogIndex, entries_kept: bool) -> SnapshotMarker {
        SnapshotMarker {
            index,
            term: 1,
            entries_kept,
        }
    }

    fn indexes(entries: &VecDeque<Entry>) -> Vec<(LogIndex, u64)> {
        entries
            .iter()
            .map(|entry| (entry.index, entry.term))
            .collect()
    }

    #[test]
    fn later_append_supersedes_earlier_suffix() {
        let mut replay = Replay::new(1, PathBuf::from("s0"));
        replay.apply_marker(marker(0, true));
        replay.append(entries(1, 5, 1));
        replay.append(entries(3, 4, 2));
        let (_, _, recovered) = replay.finish().unwrap();
        assert_eq!(indexes(&recovered), vec![(1, 1), (2, 1), (3, 2), (4, 2)]);
    }

    #[test]
    fn deleted_head_segments_are_fine_when_the_snapshot_covers_them() {
        // The first segment present started at index 101 with an old marker.
        let mut replay = Replay::new(101, PathBuf::from("s5"));
        replay.apply_marker(marker(40, true));
        replay.append(entries(101, 200, 1));
        replay.apply_marker(marker(150, true));
        let (marker, _, recovered) = replay.finish().unwrap();
        assert_eq!(marker.index, 150);
        assert_eq!(recovered.front().unwrap().index, 151);
        assert_eq!(recovered.len(), 50);
    }

    #[test]
    fn entries_missing_after_the_snapshot_are_an_error() {
        let mut replay = Replay::new(101, PathBuf::from("s5"));
        replay.apply_marker(marker(40, true));
        replay.append(entries(101, 200, 1));
        let error = replay.finish().unwrap_err();
        assert!(
            matches!(
                error,
                WalError::MissingEntries {
                    first_missing: 41,
                    last_missing: 100,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn installed_snapshot_replaces_the_log() {
        let mut replay = Replay::new(1, PathBuf::from("s0"));
        replay.apply_marker(marker(0, true));
        replay.append(entries(1, 10, 1));
        replay.apply_marker(marker(50, false));
        replay.append(entries(51, 52, 3));
        let (marker, _, recovered) = replay.finish().unwrap();
        assert_eq!(marker.index, 50);
        assert_eq!(indexes(&recovered), vec![(51, 3), (52, 3)]);
    }
}
