//! What a crash leaves on a simulated disk: the durable state, plus what a
//! real disk may also have kept, drawn from the run's generator.
//!
//! The crash happens while some of the pending syncs are in flight: a prefix
//! of them (in the order they were asked for) has completed, the next one has
//! not, and nothing the process did after asking for that one ever happened.
//! Of what happened before it, beyond the durable state:
//! - a directory may keep a prefix of its unsynced creates, renames and
//!   removes (a file system journals them in order);
//! - a file's first unsynced write may have reached the disk in part: each
//!   512-byte sector it covers (aligned at a file offset multiple of 512) is
//!   kept whole or not at all, independently, so any subset of its sectors
//!   survives, in no particular order. This is the failure model the log's
//!   recovery relies on (see the wal crate's `sector` module): a disk persists
//!   a sector atomically but orders nothing within one write.
//!
//! Owns: that choice and its report. Must never: keep anything else that was
//! not made durable, or draw from anything but the generator handed in.

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::state::{DiskState, FileChange, Node, ROOT};
use super::{CrashOptions, CrashReport, TornWrite, SECTOR_BYTES};
use crate::rng::SimRng;

impl DiskState {
    pub(super) fn crash(&mut self, rng: &mut SimRng, options: &CrashOptions) -> CrashReport {
        let syncs_in_flight = self.pending_syncs.len();
        let syncs_completed = rng.between(0, syncs_in_flight as u64) as usize;
        for _ in 0..syncs_completed {
            if let Some(sync) = self.pending_syncs.pop_front() {
                self.complete(&sync);
            }
        }
        // Everything asked for after the sync the crash interrupted never happened.
        let cutoff = self
            .pending_syncs
            .front()
            .map_or(u64::MAX, |sync| sync.sequence);
        self.pending_syncs.clear();
        let dir_changes_kept = self.crash_directories(rng, options, cutoff);
        self.end_process();
        self.collect_garbage();
        let torn_writes = self.crash_files(rng, options, cutoff);
        self.stats.crashes += 1;
        self.stats.torn_writes += torn_writes.len() as u64;
        CrashReport {
            syncs_completed,
            syncs_lost: syncs_in_flight - syncs_completed,
            dir_changes_kept,
            torn_writes,
        }
    }

    /// Rolls every directory back to its durable entries, perhaps with a
    /// prefix of its unsynced changes, and drops directories no longer
    /// reachable. Returns how many unsynced changes were kept.
    fn crash_directories(
        &mut self,
        rng: &mut SimRng,
        options: &CrashOptions,
        cutoff: u64,
    ) -> usize {
        let mut kept_total = 0;
        for dir in self.dirs.values_mut() {
            let happened = dir
                .unsynced
                .iter()
                .take_while(|(sequence, _)| *sequence < cutoff)
                .count();
            if happened > 0 && rng.chance(options.unsynced_dir_change_kept_probability) {
                let kept = rng.between(1, happened as u64) as usize;
                for (_, change) in dir.unsynced.iter().take(kept) {
                    change.apply(&mut dir.durable);
                }
                kept_total += kept;
            }
            dir.unsynced.clear();
            dir.current = dir.durable.clone();
        }
        let reachable = self.reachable_dirs();
        self.dirs.retain(|path, _| reachable.contains(path));
        kept_total
    }

    fn reachable_dirs(&self) -> BTreeSet<PathBuf> {
        let mut reachable = BTreeSet::new();
        let mut to_visit = vec![PathBuf::from(ROOT)];
        while let Some(path) = to_visit.pop() {
            if let Some(dir) = self.dirs.get(&path) {
                for (name, node) in &dir.durable {
                    if *node == Node::Dir {
                        to_visit.push(path.join(name));
                    }
                }
                reachable.insert(path);
            }
        }
        reachable
    }

    /// Rolls every file back to its durable content, perhaps with some of the
    /// sectors of its first unsynced write.
    fn crash_files(
        &mut self,
        rng: &mut SimRng,
        options: &CrashOptions,
        cutoff: u64,
    ) -> Vec<TornWrite> {
        let mut torn = Vec::new();
        for (id, file) in &mut self.files {
            if let Some((sequence, FileChange::Write { offset, bytes })) = file.unsynced.front() {
                if *sequence < cutoff
                    && !bytes.is_empty()
                    && rng.chance(options.torn_write_probability)
                {
                    let sectors_kept = keep_some_sectors(rng, *offset, bytes, &mut file.durable);
                    if !sectors_kept.is_empty() {
                        torn.push((*id, *offset, sectors_kept, bytes.len()));
                    }
                }
            }
            file.roll_back_to_durable();
        }
        torn.into_iter()
            .map(|(id, offset, sectors_kept, bytes_written)| TornWrite {
                path: self
                    .durable_path_of(id)
                    .unwrap_or_else(|| PathBuf::from("<unnamed>")),
                offset,
                sectors_kept,
                bytes_written,
            })
            .collect()
    }
}

/// Applies each sector-aligned piece of the write of `bytes` at `offset` to
/// `content` with even odds; returns the file offsets of the pieces kept.
fn keep_some_sectors(
    rng: &mut SimRng,
    offset: u64,
    bytes: &[u8],
    content: &mut Vec<u8>,
) -> Vec<u64> {
    let end = offset + bytes.len() as u64;
    let mut kept = Vec::new();
    let mut piece_start = offset;
    while piece_start < end {
        let piece_end = ((piece_start / SECTOR_BYTES + 1) * SECTOR_BYTES).min(end);
        if rng.chance(0.5) {
            let from = (piece_start - offset) as usize;
            let to = (piece_end - offset) as usize;
            FileChange::Write {
                offset: piece_start,
                bytes: bytes[from..to].to_vec(),
            }
            .apply(content);
            kept.push(piece_start);
        }
        piece_start = piece_end;
    }
    kept
}
