//! [`GroupCommitter`]: many threads appending to one [`Wal`]. Callers queue
//! their payloads; whichever waiting caller finds no sync in progress becomes
//! the leader: it takes everything queued, appends it, syncs once, and wakes
//! the callers whose entries that sync covered (plus one still waiting, to lead
//! the next sync). Under load a sync covers everything that arrived during the
//! previous one, so the fsync rate stays at the disk's limit while the entry
//! rate grows with the number of callers; with one caller, that caller syncs
//! its own entry with no hand-off to another thread.
//!
//! Each caller parks on its own thread handle and is woken only when its entry
//! is durable (or it is to lead), so a sync never stampedes every waiting
//! caller onto the lock.
//!
//! Callers that wait for their entry before appending the next would otherwise
//! split into two cohorts that alternate (one queues while the other's sync is
//! in flight), so a sync could never carry more than half of them. When the
//! previous sync released many callers
//! ([`GroupCommitOptions::gather_callers_min`]), the next leader therefore first
//! gathers: it waits until they have queued again, for at most a set share of
//! that sync's duration ([`GroupCommitOptions::gather_wait_percent_of_sync_max`]),
//! as databases' commit delay does. Few callers never wait.
//!
//! It never reorders entries: indexes are assigned in submission order and
//! written in that order. It never reports an index durable before the
//! fdatasync covering it has returned.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::Thread;
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
    /// How long a leader may wait for the callers the previous sync released
    /// to queue again, as a percentage of that sync's write-and-sync time.
    /// Zero turns gathering off.
    pub gather_wait_percent_of_sync_max: u32,
    /// A gathering leader stops waiting when no entry arrives for this long:
    /// the released callers are not coming back soon (busy CPUs, or done).
    pub gather_arrival_gap_max: Duration,
    /// A leader gathers only when the previous sync released at least this
    /// many callers: the wait delays every entry of the batch, and pays only
    /// when the batch would otherwise be many entries smaller. With a few
    /// callers on busy CPUs it cost more syncs per second than it saved.
    pub gather_callers_min: usize,
}

impl GroupCommitOptions {
    pub fn new(term: Term) -> Self {
        GroupCommitOptions {
            term,
            batch_entries_max: 16_384,
            queue_entries_max: 65_536,
            gather_wait_percent_of_sync_max: 25,
            gather_arrival_gap_max: Duration::from_micros(100),
            gather_callers_min: 64,
        }
    }
}

/// Work done by a [`GroupCommitter`] so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    pub entries_durable: u64,
    /// Write-and-fdatasync rounds; each covers one batch.
    pub syncs: u64,
    /// Time spent encoding, writing and syncing batches. Close to the elapsed
    /// time means the disk was kept syncing back to back.
    pub write_and_sync_time: Duration,
}

#[derive(Debug)]
struct State {
    /// Payloads not yet taken by a leader; the front one has index `queue_first_index`.
    queue: VecDeque<Vec<u8>>,
    queue_first_index: LogIndex,
    /// The log while no leader is syncing it; the leader takes it out.
    wal: Option<Wal>,
    /// Callers waiting for an index to be durable, in index order.
    waiters: VecDeque<(LogIndex, Thread)>,
    /// Callers the last sync released (its leader included), which the next
    /// leader waits for; and how many entries were queued since then.
    callers_released: usize,
    entries_queued_since_release: usize,
    /// A leader is waiting on `entry_queued` for released callers.
    gathering: bool,
    last_write_and_sync_time: Duration,
    failure: Option<String>,
    stopping: bool,
    stats: GroupCommitStats,
}

/// Shares one [`Wal`] among many appending threads. See the module documentation.
#[derive(Debug)]
pub struct GroupCommitter {
    state: Mutex<State>,
    /// Written only by a leader while it holds `state`, so a caller that checks
    /// it under the lock and then registers cannot miss its wakeup; parked
    /// callers read it without the lock.
    durable_index: AtomicU64,
    /// Signalled when a leader takes entries from the queue or hands the log back.
    queue_drained: Condvar,
    /// Signalled when an entry is queued while a leader gathers.
    entry_queued: Condvar,
    options: GroupCommitOptions,
}

impl GroupCommitter {
    /// Takes over `wal`. New entries follow the log's last index.
    pub fn start(wal: Wal, options: GroupCommitOptions) -> Result<Self, WalError> {
        if options.batch_entries_max == 0 || options.queue_entries_max == 0 {
            return Err(WalError::InvalidOptions(
                "batch_entries_max and queue_entries_max must be at least 1".into(),
            ));
        }
        let last_index = wal.last_index();
        Ok(GroupCommitter {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                queue_first_index: last_index + 1,
                wal: Some(wal),
                waiters: VecDeque::new(),
                callers_released: 0,
                entries_queued_since_release: 0,
                gathering: false,
                last_write_and_sync_time: Duration::ZERO,
                failure: None,
                stopping: false,
                stats: GroupCommitStats::default(),
            }),
            durable_index: AtomicU64::new(last_index),
            queue_drained: Condvar::new(),
            entry_queued: Condvar::new(),
            options,
        })
    }

    /// A poisoned mutex means a thread panicked while holding it; every update
    /// of the state is a single step, so it is still consistent.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `data` as the next entry and returns its index without waiting.
    /// It is written by the next sync some caller leads ([`GroupCommitter::wait_durable`],
    /// [`GroupCommitter::append`]) or by [`GroupCommitter::stop`]. Blocks while the queue is full.
    pub fn submit(&self, data: Vec<u8>) -> Result<LogIndex, WalError> {
        let mut state = self.lock();
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
            if state.queue.len() < self.options.queue_entries_max {
                break;
            }
            state = self
                .queue_drained
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        let index = state.queue_first_index + state.queue.len() as u64;
        state.queue.push_back(data);
        state.entries_queued_since_release += 1;
        if state.gathering {
            self.entry_queued.notify_one();
        }
        Ok(index)
    }

    /// Appends `data` as one entry and returns its index once it is durable.
    pub fn append(&self, data: Vec<u8>) -> Result<LogIndex, WalError> {
        let index = self.submit(data)?;
        self.wait_durable(index)?;
        Ok(index)
    }

    /// Blocks until `index` (already submitted) is durable, leading syncs
    /// while nobody else does; returns the durable index (≥ `index`).
    pub fn wait_durable(&self, index: LogIndex) -> Result<LogIndex, WalError> {
        let mut registered = false;
        let mut state = self.lock();
        loop {
            let durable_index = self.durable_index.load(Ordering::Acquire);
            if durable_index >= index {
                return Ok(durable_index);
            }
            if let Some(cause) = &state.failure {
                return Err(WalError::Poisoned {
                    cause: cause.clone(),
                });
            }
            if index >= state.queue_first_index + state.queue.len() as u64 {
                return Err(WalError::InvalidRequest(format!(
                    "index {index} was never submitted (the next index is {})",
                    state.queue_first_index + state.queue.len() as u64
                )));
            }
            if state.wal.is_some() && !state.queue.is_empty() {
                state = self.lead_one_sync(state);
                continue;
            }
            if !registered {
                let position = state
                    .waiters
                    .partition_point(|(waiting_for, _)| *waiting_for <= index);
                state
                    .waiters
                    .insert(position, (index, std::thread::current()));
                registered = true;
            }
            drop(state);
            // An unpark that came before this park makes it return at once, so
            // no wakeup is lost between registering and parking.
            std::thread::park();
            state = self.lock();
        }
    }

    /// Takes the log, gathers, takes a batch, appends and syncs it without the
    /// lock, then publishes the durable index and wakes the callers it covered,
    /// plus the first one still waiting when entries remain queued, to lead next.
    fn lead_one_sync<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let mut wal = state
            .wal
            .take()
            .expect("the caller checked the log is free");
        let mut state = self.gather_released_callers(state);
        let count = state.queue.len().min(self.options.batch_entries_max);
        let first_index = state.queue_first_index;
        let entries: Vec<Entry> = state
            .queue
            .drain(..count)
            .enumerate()
            .map(|(offset, data)| Entry {
                term: self.options.term,
                index: first_index + offset as u64,
                kind: EntryKind::Normal,
                data,
            })
            .collect();
        state.queue_first_index += count as u64;
        drop(state);
        self.queue_drained.notify_all();
        let started = Instant::now();
        let result = wal.append_owned(entries).and_then(|()| wal.sync());
        let write_and_sync_time = started.elapsed();
        let mut state = self.lock();
        state.wal = Some(wal);
        let mut to_wake: Vec<Thread> = match result {
            Ok(durable_index) => {
                debug_assert_eq!(durable_index, first_index + count as u64 - 1);
                self.durable_index.store(durable_index, Ordering::Release);
                state.stats.entries_durable += count as u64;
                state.stats.syncs += 1;
                state.stats.write_and_sync_time += write_and_sync_time;
                state.last_write_and_sync_time = write_and_sync_time;
                let covered = state
                    .waiters
                    .partition_point(|(waiting_for, _)| *waiting_for <= durable_index);
                state.callers_released = covered + 1;
                state.entries_queued_since_release = 0;
                state
                    .waiters
                    .drain(..covered)
                    .map(|(_, thread)| thread)
                    .collect()
            }
            Err(error) => {
                state.failure = Some(error.to_string());
                state.waiters.drain(..).map(|(_, thread)| thread).collect()
            }
        };
        if !state.queue.is_empty() {
            to_wake.extend(state.waiters.front().map(|(_, thread)| thread.clone()));
        }
        drop(state);
        self.queue_drained.notify_all();
        for thread in to_wake {
            thread.unpark();
        }
        self.lock()
    }

    /// Waits, holding the log so nobody else leads meanwhile, until the callers
    /// the previous sync released have queued again, the batch is full, or the
    /// gather time (a share of the previous sync's time) is over.
    fn gather_released_callers<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
    ) -> MutexGuard<'a, State> {
        let wait_max =
            state.last_write_and_sync_time * self.options.gather_wait_percent_of_sync_max / 100;
        if state.callers_released < self.options.gather_callers_min {
            return state;
        }
        let deadline = Instant::now() + wait_max;
        state.gathering = true;
        while state.entries_queued_since_release < state.callers_released
            && state.queue.len() < self.options.batch_entries_max
            && !state.stopping
        {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let queued_before = state.entries_queued_since_release;
            state = self
                .entry_queued
                .wait_timeout(
                    state,
                    (deadline - now).min(self.options.gather_arrival_gap_max),
                )
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
            if state.entries_queued_since_release == queued_before {
                break;
            }
        }
        state.gathering = false;
        state
    }

    pub fn durable_index(&self) -> LogIndex {
        self.durable_index.load(Ordering::Acquire)
    }

    pub fn stats(&self) -> GroupCommitStats {
        self.lock().stats
    }

    /// Refuses new entries, writes what is queued, and hands the log back.
    pub fn stop(self) -> Result<Wal, WalError> {
        let mut state = self.lock();
        state.stopping = true;
        loop {
            if let Some(cause) = &state.failure {
                return Err(WalError::Poisoned {
                    cause: cause.clone(),
                });
            }
            match (state.wal.is_some(), state.queue.is_empty()) {
                (true, true) => break,
                (true, false) => state = self.lead_one_sync(state),
                (false, _) => {
                    state = self
                        .queue_drained
                        .wait(state)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
            }
        }
        let wal = state.wal.take().expect("checked above");
        Ok(wal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{WalOptions, MIN_SEGMENT_BYTES};
    use raft::Storage;
    use std::sync::Arc;

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

    /// Options that make a leader gather for a long time, and a committer whose
    /// last sync released `released` callers and took ten seconds.
    fn committer_after_a_slow_sync(
        dir: &std::path::Path,
        released: usize,
        gap: Duration,
        gather_callers_min: usize,
    ) -> GroupCommitter {
        let options = GroupCommitOptions {
            gather_wait_percent_of_sync_max: 100,
            gather_arrival_gap_max: gap,
            gather_callers_min,
            ..GroupCommitOptions::new(1)
        };
        let committer = GroupCommitter::start(open_wal(dir), options).unwrap();
        let mut state = committer.lock();
        state.last_write_and_sync_time = Duration::from_secs(10);
        state.callers_released = released;
        drop(state);
        committer
    }

    #[test]
    fn the_next_leader_waits_for_the_released_callers() {
        let dir = tempfile::tempdir().unwrap();
        let committer = Arc::new(committer_after_a_slow_sync(
            dir.path(),
            2,
            Duration::from_secs(10),
            2,
        ));
        let first = committer.submit(b"first".to_vec()).unwrap();
        let leader = {
            let committer = Arc::clone(&committer);
            std::thread::spawn(move || committer.wait_durable(first).unwrap())
        };
        let gave_up_at = Instant::now() + Duration::from_secs(10);
        while !committer.lock().gathering {
            assert!(
                Instant::now() < gave_up_at,
                "the leader synced without waiting for the released caller"
            );
            std::thread::yield_now();
        }
        let second = committer.submit(b"second".to_vec()).unwrap();
        assert_eq!(leader.join().unwrap(), second, "one sync covered both");
        assert_eq!(committer.stats().syncs, 1);
        assert_eq!(committer.stats().entries_durable, 2);
    }

    #[test]
    fn too_few_released_callers_are_not_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let committer = committer_after_a_slow_sync(dir.path(), 3, Duration::from_secs(10), 4);
        let started = Instant::now();
        assert_eq!(committer.append(b"alone".to_vec()).unwrap(), 1);
        assert!(!committer.lock().gathering);
        // Three released callers are below the minimum of four: the leader
        // syncs at once instead of waiting up to ten seconds for two more.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn gathering_stops_when_nobody_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let committer = committer_after_a_slow_sync(dir.path(), 5, Duration::from_millis(1), 2);
        let started = Instant::now();
        assert_eq!(committer.append(b"alone".to_vec()).unwrap(), 1);
        // The sync would wait ten seconds for the four callers that never
        // come; the arrival gap ends it long before.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
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
