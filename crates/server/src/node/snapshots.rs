//! When to snapshot the state machine and when to cut the log behind a
//! snapshot. A snapshot is written on a background thread from one read
//! transaction, so the node thread keeps ticking and replicating meanwhile;
//! the log is cut only once `catch_up_entries` more entries are applied, so a
//! follower slightly behind still catches up from the log. This module never
//! touches the log itself; the driver compacts with what it hands out.

use std::sync::Arc;

use crossbeam_channel::{Receiver, TryRecvError};
use raft::LogIndex;

use super::NodeError;

/// Entries kept in the log behind a snapshot (etcd keeps 5000).
const CATCH_UP_ENTRIES_MAX: u64 = 5000;

type SnapshotResult = Result<(LogIndex, Vec<u8>), mvcc::StoreError>;

#[derive(Debug)]
pub(crate) struct SnapshotSchedule {
    entries_between: u64,
    catch_up_entries: u64,
    /// Index of the newest snapshot taken, started or installed.
    last_index: LogIndex,
    in_flight: Option<Receiver<SnapshotResult>>,
    /// A snapshot waiting for enough entries after it before the log is cut.
    awaiting_compaction: Option<(LogIndex, Vec<u8>)>,
}

impl SnapshotSchedule {
    /// `snapshot_entries` applied entries between snapshots; the newest
    /// snapshot (or applied state) is at `last_index`.
    pub(crate) fn new(snapshot_entries: u64, last_index: LogIndex) -> Self {
        Self {
            entries_between: snapshot_entries.max(1),
            catch_up_entries: CATCH_UP_ENTRIES_MAX.min(snapshot_entries),
            last_index,
            in_flight: None,
            awaiting_compaction: None,
        }
    }

    /// Starts a background snapshot of `store` once `entries_between` entries
    /// were applied since the last one and none is being written.
    pub(crate) fn start_if_due(
        &mut self,
        store: &Arc<mvcc::Store>,
        applied: LogIndex,
    ) -> Result<(), NodeError> {
        if self.in_flight.is_some() || applied < self.last_index + self.entries_between {
            return Ok(());
        }
        let (done, finished) = crossbeam_channel::bounded(1);
        let store = Arc::clone(store);
        std::thread::Builder::new()
            .name("snapshot".to_owned())
            .spawn(move || {
                let mut data = Vec::new();
                let result = store
                    .write_snapshot(&mut data)
                    .map(|info| (info.applied_index, data));
                let _ = done.send(result);
            })
            .map_err(NodeError::Thread)?;
        self.in_flight = Some(finished);
        self.last_index = applied;
        Ok(())
    }

    /// Collects a finished background snapshot; it then waits for compaction.
    /// Returns its index, if one finished.
    pub(crate) fn collect_finished(&mut self) -> Result<Option<LogIndex>, NodeError> {
        let Some(finished) = &self.in_flight else {
            return Ok(None);
        };
        let result = match finished.try_recv() {
            Ok(result) => result,
            Err(TryRecvError::Empty) => return Ok(None),
            Err(TryRecvError::Disconnected) => {
                self.in_flight = None;
                return Err(NodeError::Storage(
                    "the snapshot thread ended without a result".to_owned(),
                ));
            }
        };
        self.in_flight = None;
        let (index, data) = result?;
        self.last_index = self.last_index.max(index);
        if self
            .awaiting_compaction
            .as_ref()
            .is_none_or(|(awaiting, _)| *awaiting < index)
        {
            self.awaiting_compaction = Some((index, data));
        }
        Ok(Some(index))
    }

    /// The snapshot to cut the log behind, once `applied` is far enough past it.
    pub(crate) fn take_compaction_due(&mut self, applied: LogIndex) -> Option<(LogIndex, Vec<u8>)> {
        let due = self
            .awaiting_compaction
            .as_ref()
            .is_some_and(|(index, _)| applied >= index + self.catch_up_entries);
        if due {
            self.awaiting_compaction.take()
        } else {
            None
        }
    }

    /// The leader's snapshot at `index` replaced the state machine and the log:
    /// older local snapshots are useless now.
    pub(crate) fn on_installed(&mut self, index: LogIndex) {
        self.last_index = self.last_index.max(index);
        if self
            .awaiting_compaction
            .as_ref()
            .is_some_and(|(awaiting, _)| *awaiting <= index)
        {
            self.awaiting_compaction = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_at(index: u64) -> Arc<mvcc::Store> {
        let store = mvcc::Store::in_memory().unwrap();
        let put = mvcc::Command::Put(mvcc::PutRequest::new("k", "v"));
        for index in 1..=index {
            store.apply(index, &put).unwrap();
        }
        Arc::new(store)
    }

    fn wait_finished(schedule: &mut SnapshotSchedule) -> LogIndex {
        for _ in 0..500 {
            if let Some(index) = schedule.collect_finished().unwrap() {
                return index;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("the snapshot thread did not finish in 5 s");
    }

    #[test]
    fn snapshots_every_n_entries_and_compacts_after_the_catch_up_tail() {
        let mut schedule = SnapshotSchedule::new(10, 0);
        let store = store_at(9);
        schedule.start_if_due(&store, 9).unwrap();
        assert!(schedule.in_flight.is_none(), "9 < 10 entries: not due");
        let store = store_at(12);
        schedule.start_if_due(&store, 12).unwrap();
        assert_eq!(wait_finished(&mut schedule), 12);
        assert!(
            schedule.take_compaction_due(21).is_none(),
            "tail of 10 kept"
        );
        let (index, data) = schedule.take_compaction_due(22).expect("due at 12 + 10");
        assert_eq!(index, 12);
        let restored = mvcc::Store::in_memory().unwrap();
        assert_eq!(restored.restore(&data).unwrap().applied_index, 12);
        schedule.start_if_due(&store, 21).unwrap();
        assert!(schedule.in_flight.is_none(), "next one is due at 22");
    }

    #[test]
    fn an_installed_snapshot_supersedes_a_local_one() {
        let mut schedule = SnapshotSchedule::new(5, 0);
        let store = store_at(6);
        schedule.start_if_due(&store, 6).unwrap();
        wait_finished(&mut schedule);
        schedule.on_installed(40);
        assert!(schedule.take_compaction_due(u64::MAX).is_none());
        schedule.start_if_due(&store, 44).unwrap();
        assert!(schedule.in_flight.is_none(), "next one is due at 45");
    }
}
