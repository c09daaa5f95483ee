//! [`GroupCommitter`]: many threads appending to one [`Wal`]. Callers queue
//! their payloads and wait; one background thread takes everything queued,
//! appends it and syncs once, then wakes every caller whose entry is now
//! durable. Under load a sync covers as many entries as arrived during the
//! previous one, so the fsync rate stays at the disk's limit while the entry
//! rate grows with the number of callers.
//!
//! Only the callers whose entries a sync covered are woken (each parks on its
//! own thread handle), so a sync does not stampede every waiting caller onto
//! the lock the writer thread needs next.
//!
//! It never reorders entries: indexes are assigned in submission order and
//! written in that order. It never reports an index durable before the
//! fdatasync covering it has returned.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use raft::{Entry, EntryKind, LogIndex, Term};

use crate::error::WalError;
use crate::wal::Wal;

/// Limits of a [`GroupCommitter`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// The term written into every entry.
    pub term: Term,
    /// At most this many entries go into one write and sync.
    pub batch_entries_max: usize,
    /// Callers block in `submit` while this many entries wait to be written.
    pub queue_entries_max: usize,
}

impl GroupCommitOptions {
    pub fn new(term: Term) -> Self {
        GroupCommitOptions {
            term,
            batch_entries_max: 16_384,
            queue_entries_max: 65_536,
        }
    }
}

/// Work done by a [`GroupCommitter`] so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    pub entries_durable: u64,
    /// Write-and-fdatasync rounds; each covers one batch.
    pub syncs: u64,
    /// Time the writer thread spent encoding, writing and syncing batches: the
    /// rest of its time it waited for work. Close to the elapsed time means
    /// the disk was kept syncing back to back.
    pub write_and_sync_time: Duration,
}

#[derive(Debug)]
struct State {
    /// Payloads not yet taken by the writer thread; the front one has index `queue_first_index`.
    queue: VecDeque<Vec<u8>>,
    queue_first_index: LogIndex,
    /// Callers waiting for an index to be durable, in index order.
    waiters: VecDeque<(LogIndex, Thread)>,
    failure: Option<String>,
    stopping: bool,
    stats: GroupCommitStats,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Written only by the writer thread while it holds `state`, so a caller
    /// that checks it under the lock and then registers cannot miss a wakeup;
    /// woken callers read it without the lock.
    durable_index: AtomicU64,
    failed: AtomicBool,
    work_queued: Condvar,
    queue_drained: Condvar,
}

impl Shared {
    /// A poisoned mutex means a thread panicked while holding it; the state is
    /// still consistent (every update is a single assignment), so keep going.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn failure(&self) -> WalError {
        let cause = self.lock().failure.clone();
        WalError::Poisoned {
            cause: cause.unwrap_or_else(|| "the group committer failed".into()),
        }
    }
}

/// Shares one [`Wal`] among many appending threads. See the module documentation.
#[derive(Debug)]
pub struct GroupCommitter {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<Wal>>,
    queue_entries_max: usize,
}

impl GroupCommitter {
    /// Takes over `wal` and starts the writer thread. New entries follow the
    /// log's last index.
    pub fn start(wal: Wal, options: GroupCommitOptions) -> Result<Self, WalError> {
        if options.batch_entries_max == 0 || options.queue_entries_max == 0 {
            return Err(WalError::InvalidOptions(
                "batch_entries_max and queue_entries_max must be at least 1".into(),
            ));
        }
        let last_index = wal.last_index();
        let dir = wal.dir().to_path_buf();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queue_first_index: last_index + 1,
                waiters: VecDeque::new(),
                failure: None,
                stopping: false,
                stats: GroupCommitStats::default(),
            }),
            durable_index: AtomicU64::new(last_index),
            failed: AtomicBool::new(false),
            work_queued: Condvar::new(),
            queue_drained: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("wal-group-commit".into())
            .spawn(move || write_loop(wal, &thread_shared, options))
            .map_err(|source| WalError::io("starting the group commit thread of", &dir, source))?;
        Ok(GroupCommitter {
            shared,
            writer: Some(writer),
            queue_entries_max: options.queue_entries_max,
        })
    }

    /// Queues `data` as the next entry and returns its index, without waiting
    /// for it to be durable. Blocks while the queue is full.
    pub fn submit(&self, data: Vec<u8>) -> Result<LogIndex, WalError> {
        self.enqueue(data, false)
    }

    /// Appends `data` as one entry and returns its index once it is durable.
    pub fn append(&self, data: Vec<u8>) -> Result<LogIndex, WalError> {
        let index = self.enqueue(data, true)?;
        self.park_until_durable(index)?;
        Ok(index)
    }

    /// Queues `data`; with `register_waiter`, also registers this thread to be
    /// woken when it is durable (one lock acquisition for both).
    fn enqueue(&self, data: Vec<u8>, register_waiter: bool) -> Result<LogIndex, WalError> {
        let mut state = self.shared.lock();
        loop {
            if let Some(cause) = &state.failure {
                return Err(WalError::Poisoned {
                    cause: cause.clone(),
                });
            }
            if state.stopping {
                return Err(WalError::InvalidRequest(
                    "the group committer is stopping".into(),
                ));
            }
            if state.queue.len() < self.queue_entries_max {
                break;
            }
            state = self
                .shared
                .queue_drained
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let index = state.queue_first_index + state.queue.len() as u64;
        state.queue.push_back(data);
        if register_waiter {
            debug_assert!(state
                .waiters
                .back()
                .is_none_or(|(waiting_for, _)| *waiting_for < index));
            state.waiters.push_back((index, std::thread::current()));
        }
        drop(state);
        self.shared.work_queued.notify_one();
        Ok(index)
    }

    /// Blocks until `index` is durable; returns the durable index (≥ `index`).
    pub fn wait_durable(&self, index: LogIndex) -> Result<LogIndex, WalError> {
        {
            let mut state = self.shared.lock();
            let durable_index = self.shared.durable_index.load(Ordering::Acquire);
            if durable_index >= index {
                return Ok(durable_index);
            }
            if let Some(cause) = &state.failure {
                return Err(WalError::Poisoned {
                    cause: cause.clone(),
                });
            }
            let position = state
                .waiters
                .partition_point(|(waiting_for, _)| *waiting_for <= index);
            state
                .waiters
                .insert(position, (index, std::thread::current()));
        }
        self.park_until_durable(index)
    }

    /// Parks until the writer thread has made `index` durable (it unparks the
    /// waiters it covered) or has failed. Requires a registered waiter.
    fn park_until_durable(&self, index: LogIndex) -> Result<LogIndex, WalError> {
        loop {
            let durable_index = self.shared.durable_index.load(Ordering::Acquire);
            if durable_index >= index {
                return Ok(durable_index);
            }
            if self.shared.failed.load(Ordering::Acquire) {
                return Err(self.shared.failure());
            }
            // An unpark that came before this park makes it return at once,
            // so no wakeup is lost between registering and parking.
            std::thread::park();
        }
    }

    pub fn durable_index(&self) -> LogIndex {
        self.shared.durable_index.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> GroupCommitStats {
        self.shared.lock().stats
    }

    /// Writes what is queued, stops the writer thread and hands the log back.
    pub fn stop(mut self) -> Result<Wal, WalError> {
        let wal = self.stop_writer();
        let failure = self.shared.lock().failure.clone();
        match (wal, failure) {
            (Some(wal), None) => Ok(wal),
            (_, Some(cause)) => Err(WalError::Poisoned { cause }),
            (None, None) => Err(WalError::Poisoned {
                cause: "the group commit thread panicked".into(),
            }),
        }
    }

    fn stop_writer(&mut self) -> Option<Wal> {
        self.shared.lock().stopping = true;
        self.shared.work_queued.notify_all();
        self.shared.queue_drained.notify_all();
        self.writer.take().and_then(|handle| handle.join().ok())
    }
}

impl Drop for GroupCommitter {
    fn drop(&mut self) {
        self.stop_writer();
    }
}

/// The writer thread: take a batch, append it, sync once, publish the durable index.
fn write_loop(mut wal: Wal, shared: &Shared, options: GroupCommitOptions) -> Wal {
    loop {
        let Some((first_index, payloads)) = take_batch(shared, options.batch_entries_max) else {
            return wal;
        };
        let entries: Vec<Entry> = payloads
            .into_iter()
            .enumerate()
            .map(|(offset, data)| Entry {
                term: options.term,
                index: first_index + offset as u64,
                kind: EntryKind::Normal,
                data,
            })
            .collect();
        let count = entries.len() as u64;
        let started = Instant::now();
        let result = wal.append_owned(entries).and_then(|()| wal.sync());
        let write_and_sync_time = started.elapsed();
        let mut state = shared.lock();
        let to_wake: Vec<Thread> = match result {
            Ok(durable_index) => {
                debug_assert_eq!(durable_index, first_index + count - 1);
                shared.durable_index.store(durable_index, Ordering::Release);
                state.stats.entries_durable += count;
                state.stats.syncs += 1;
                state.stats.write_and_sync_time += write_and_sync_time;
                let covered = state
                    .waiters
                    .partition_point(|(waiting_for, _)| *waiting_for <= durable_index);
                state
                    .waiters
                    .drain(..covered)
                    .map(|(_, thread)| thread)
                    .collect()
            }
            Err(error) => {
                state.failure = Some(error.to_string());
                shared.failed.store(true, Ordering::Release);
                state.waiters.drain(..).map(|(_, thread)| thread).collect()
            }
        };
        let failed = state.failure.is_some();
        drop(state);
        for thread in to_wake {
            thread.unpark();
        }
        if failed {
            shared.queue_drained.notify_all();
            return wal;
        }
    }
}

/// Waits for queued payloads and takes up to `batch_entries_max` of them;
/// `None` once stopping with nothing left.
fn take_batch(shared: &Shared, batch_entries_max: usize) -> Option<(LogIndex, Vec<Vec<u8>>)> {
    let mut state = shared.lock();
    while state.queue.is_empty() && !state.stopping {
        state = shared
            .work_queued
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    if state.queue.is_empty() {
        return None;
    }
    let count = state.queue.len().min(batch_entries_max);
    let first_index = state.queue_first_index;
    let payloads: Vec<Vec<u8>> = state.queue.drain(..count).collect();
    state.queue_first_index += count as u64;
    drop(state);
    shared.queue_drained.notify_all();
    Some((first_index, payloads))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{WalOptions, MIN_SEGMENT_BYTES};
    use raft::Storage;

    fn open_wal(dir: &std::path::Path) -> Wal {
        let options = WalOptions {
            segment_bytes: MIN_SEGMENT_BYTES * 4,
            ..WalOptions::new(7)
        };
        Wal::open_or_create(dir, &options, vec![1]).unwrap()
    }

    #[test]
    fn concurrent_appends_share_syncs_and_all_become_durable() {
        const WRITERS: usize = 16;
        const APPENDS_PER_WRITER: usize = 40;
        let dir = tempfile::tempdir().unwrap();
        let committer = Arc::new(
            GroupCommitter::start(open_wal(dir.path()), GroupCommitOptions::new(3)).unwrap(),
        );
        let threads: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let committer = Arc::clone(&committer);
                std::thread::spawn(move || {
                    (0..APPENDS_PER_WRITER)
                        .map(|append| {
                            let index = committer
                                .append(format!("{writer}/{append}").into_bytes())
                                .unwrap();
                            assert!(committer.durable_index() >= index);
                            index
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut indexes: Vec<LogIndex> = threads
            .into_iter()
            .flat_map(|thread| thread.join().unwrap())
            .collect();
        indexes.sort_unstable();
        let total = (WRITERS * APPENDS_PER_WRITER) as u64;
        assert_eq!(
            indexes,
            (1..=total).collect::<Vec<_>>(),
            "every append got its own index"
        );
        let stats = committer.stats();
        assert_eq!(stats.entries_durable, total);
        // Writers wait for durability before appending again, so a sync can
        // carry at most one entry per writer; with 16 writers blocked on each
        // fdatasync most syncs carry several. One sync per entry would be 640.
        assert!(
            stats.syncs < total / 2,
            "{} syncs for {total} entries",
            stats.syncs
        );
        let wal = Arc::try_unwrap(committer).unwrap().stop().unwrap();
        assert_eq!(wal.last_index(), total);
        drop(wal);
        let wal = open_wal(dir.path());
        let entries = wal.entries(1, total + 1, u64::MAX).unwrap();
        assert!(entries.iter().all(|entry| entry.term == 3));
        assert_eq!(entries.len() as u64, total);
    }

    #[test]
    fn queued_entries_are_written_before_stop_returns() {
        let dir = tempfile::tempdir().unwrap();
        let committer =
            GroupCommitter::start(open_wal(dir.path()), GroupCommitOptions::new(1)).unwrap();
        let mut last = 0;
        for payload in 0..100u8 {
            last = committer.submit(vec![payload]).unwrap();
        }
        assert_eq!(last, 100);
        let wal = committer.stop().unwrap();
        assert_eq!(wal.last_index(), 100);
    }

    #[test]
    fn zero_limits_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = GroupCommitOptions {
            batch_entries_max: 0,
            ..GroupCommitOptions::new(1)
        };
        assert!(matches!(
            GroupCommitter::start(open_wal(dir.path()), options),
            Err(WalError::InvalidOptions(_))
        ));
    }
}
