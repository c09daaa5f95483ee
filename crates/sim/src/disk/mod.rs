//! Simulated disks: one [`SimDisk`] per simulated member holds that member's
//! files (its log and its state machine's database), and decides, from the
//! run's generator, what a crash keeps. The real `wal` runs on it through
//! [`SimFileSystem`], the real `mvcc::Store` through [`SimStorageBackend`]:
//! every simulated member's Raft log is a `wal::Wal` on its disk.
//!
//! The model, made deterministic:
//! - A file has durable content and current content; writes change the
//!   current content only.
//! - A sync (`sync_data`, `sync_all`, redb's `sync_data`) makes nothing
//!   durable at once: it records a pending sync of the content as of the call.
//!   The simulator models fsync latency in virtual time: it issues the I/O at
//!   time t, calls [`SimDisk::complete_syncs`] at t + latency, and may crash
//!   the member in between. Only a completed sync is durable.
//! - Creating, renaming and removing files (and creating directories) change
//!   a directory; the change is durable only once a sync of that directory
//!   completes. A log that forgets a directory fsync loses the file.
//! - [`SimDisk::crash`] leaves the durable state, with what a real disk may
//!   also keep (see `crash`): a prefix of the syncs in flight completed, a
//!   prefix of each directory's unsynced changes, a torn prefix of each
//!   file's first unsynced write.
//! - [`SimDisk::fail_next`] makes the next write or sync fail (ENOSPC, EIO).
//! - [`SimDisk::fill_up`] makes every write to a file under a directory fail
//!   with ENOSPC until [`SimDisk::free_space`]: a disk that stays full.
//!
//! Completing a sync replays only the changes written since the last one, so
//! its cost is the bytes written, not the file's size; only a crash copies
//! whole files.
//!
//! Owns: the bytes and names of one member's disk. Must never: read a clock,
//! spawn a thread, touch a real file, or draw randomness from anything but
//! the [`SimRng`] handed to [`SimDisk::crash`].

mod crash;
mod mount;
mod state;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

pub use mount::{SimFile, SimFileSystem, SimStorageBackend};

use crate::rng::SimRng;
use state::{DiskState, Operation};

/// One member's disk. Clones are handles to the same disk.
#[derive(Clone, Debug)]
pub struct SimDisk {
    state: Arc<Mutex<DiskState>>,
}

impl Default for SimDisk {
    fn default() -> Self {
        Self::new()
    }
}

impl SimDisk {
    /// An empty disk: only the root directory `/` exists.
    pub fn new() -> Self {
        SimDisk {
            state: Arc::new(Mutex::new(DiskState::new())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, DiskState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file system for one life of the member's process. It, and every
    /// file, backend and lock opened through it, fails every call after the
    /// next [`SimDisk::crash`].
    pub fn mount(&self) -> SimFileSystem {
        let generation = self.lock().generation;
        SimFileSystem::new(self.clone(), generation)
    }

    /// Syncs asked for that have not completed yet.
    pub fn pending_syncs(&self) -> usize {
        self.lock().pending_syncs.len()
    }

    /// Completes every pending sync, oldest first: what each covered is now
    /// durable. Returns how many completed.
    pub fn complete_syncs(&self) -> usize {
        self.lock().complete_syncs_through(u64::MAX)
    }

    /// Marks the syncs asked for so far, for [`SimDisk::complete_syncs_through`].
    pub fn sync_mark(&self) -> SyncMark {
        SyncMark(self.lock().stats.syncs_requested)
    }

    /// Completes the pending syncs asked for before `mark` was taken, oldest
    /// first, and leaves later ones in flight: for a process that issues new
    /// I/O while an earlier fsync has not ended. Returns how many completed.
    pub fn complete_syncs_through(&self, mark: SyncMark) -> usize {
        self.lock().complete_syncs_through(mark.0)
    }

    /// Crashes the process using the disk: every mount dies, its locks are
    /// released, and the disk keeps its durable state plus what `options`
    /// let a real disk keep (drawn from `rng`).
    pub fn crash(&self, rng: &mut SimRng, options: &CrashOptions) -> CrashReport {
        self.lock().crash(rng, options)
    }

    /// Makes the next operation of `fault`'s kind fail (one fault waits at a
    /// time; arming another replaces it). A failed write changes nothing, a
    /// failed sync makes nothing durable.
    pub fn fail_next(&self, fault: DiskFault) {
        self.lock().armed_fault = Some(fault);
    }

    /// Makes every write (or length change) of a file opened under `dir`
    /// fail with "no space left on device" until [`SimDisk::free_space`].
    /// Only those files: the state machine's database, which cannot yet wait
    /// out a full disk, lives elsewhere.
    pub fn fill_up(&self, dir: &Path) {
        self.lock().full_under = Some(dir.to_path_buf());
    }

    /// Ends [`SimDisk::fill_up`].
    pub fn free_space(&self) {
        self.lock().full_under = None;
    }

    pub fn is_full(&self) -> bool {
        self.lock().full_under.is_some()
    }

    pub fn stats(&self) -> DiskStats {
        self.lock().stats
    }
}

/// The point in a disk's sequence of syncs where [`SimDisk::sync_mark`] was
/// called.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SyncMark(u64);

/// What a crash may keep beyond the durable state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrashOptions {
    /// Chance that a file's first unsynced write survives in part: each of
    /// its sectors kept or not with even odds.
    pub torn_write_probability: f64,
    /// Chance that a directory keeps a prefix of its unsynced creates,
    /// renames and removals.
    pub unsynced_dir_change_kept_probability: f64,
}

impl CrashOptions {
    /// Only what was made durable survives.
    pub const DURABLE_ONLY: CrashOptions = CrashOptions {
        torn_write_probability: 0.0,
        unsynced_dir_change_kept_probability: 0.0,
    };
}

/// What one crash did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashReport {
    /// Syncs in flight that completed before the crash.
    pub syncs_completed: usize,
    /// Syncs in flight that did not.
    pub syncs_lost: usize,
    /// Unsynced directory changes that survived.
    pub dir_changes_kept: usize,
    pub torn_writes: Vec<TornWrite>,
}

/// The unit a disk persists atomically: a crash keeps each sector of an
/// unsynced write whole or not at all.
pub const SECTOR_BYTES: u64 = 512;

/// A write of which some sectors survived a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornWrite {
    pub path: PathBuf,
    pub offset: u64,
    /// File offsets of the kept pieces: each the part of the write inside one
    /// sector, so a multiple of [`SECTOR_BYTES`] except perhaps the first.
    pub sectors_kept: Vec<u64>,
    pub bytes_written: usize,
}

/// An I/O error to inject (see [`SimDisk::fail_next`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskFault {
    /// The next write (or length change) fails: no space left on device.
    WriteNoSpace,
    /// The next write (or length change) fails: input/output error.
    WriteIo,
    /// The next sync of a file or directory fails: input/output error.
    SyncIo,
}

impl DiskFault {
    fn operation(self) -> Operation {
        match self {
            DiskFault::WriteNoSpace | DiskFault::WriteIo => Operation::Write,
            DiskFault::SyncIo => Operation::Sync,
        }
    }

    fn error(self) -> io::Error {
        match self {
            DiskFault::WriteNoSpace => io::Error::new(
                io::ErrorKind::StorageFull,
                "simulated disk: no space left on device",
            ),
            DiskFault::WriteIo | DiskFault::SyncIo => {
                io::Error::other("simulated disk: input/output error")
            }
        }
    }
}

/// Counters of one disk's work since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    pub writes: u64,
    pub bytes_written: u64,
    pub syncs_requested: u64,
    pub syncs_completed: u64,
    pub crashes: u64,
    pub torn_writes: u64,
    pub faults_injected: u64,
}

#[cfg(test)]
mod tests;
