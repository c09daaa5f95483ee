//! When to snapshot the state machine and when to cut the log behind a
//! snapshot. The state machine takes a snapshot when asked and may finish it
//! later (the server writes it on a background thread, so the node keeps
//! ticking and replicating meanwhile); the log is cut only once
//! `catch_up_entries` more entries are applied, so a follower slightly behind
//! still catches up from the log. This module never touches the log itself;
//! the node compacts with what it hands out.

use raft::LogIndex;

use crate::host::StateMachine;

/// Entries kept in the log behind a snapshot (etcd keeps 5000).
const CATCH_UP_ENTRIES_MAX: u64 = 5000;

#[derive(Debug)]
pub(crate) struct SnapshotSchedule {
    entries_between: u64,
    catch_up_entries: u64,
    /// Index of the newest snapshot taken, started or installed.
    last_index: LogIndex,
    in_flight: bool,
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
            in_flight: false,
            awaiting_compaction: None,
        }
    }

    /// Starts a snapshot of `state_machine` once `entries_between` entries
    /// were applied since the last one and none is being taken.
    pub(crate) fn start_if_due<S: StateMachine>(
        &mut self,
        state_machine: &mut S,
        applied: LogIndex,
    ) -> Result<(), S::Error> {
        if self.in_flight || applied < self.last_index + self.entries_between {
            return Ok(());
        }
        state_machine.start_snapshot()?;
        self.in_flight = true;
        self.last_index = applied;
        Ok(())
    }

    /// Collects a finished snapshot; it then waits for compaction. Returns
    /// its index, if one finished.
    pub(crate) fn collect_finished<S: StateMachine>(
        &mut self,
        state_machine: &mut S,
    ) -> Result<Option<LogIndex>, S::Error> {
        if !self.in_flight {
            return Ok(None);
        }
        let Some((index, data)) = state_machine.finished_snapshot()? else {
            return Ok(None);
        };
        self.in_flight = false;
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
    use crate::test_support::Applied;

    #[test]
    fn snapshots_every_n_entries_and_compacts_after_the_catch_up_tail() {
        let mut schedule = SnapshotSchedule::new(10, 0);
        let mut machine = Applied::at(9);
        schedule.start_if_due(&mut machine, 9).unwrap();
        assert!(!schedule.in_flight, "9 < 10 entries: not due");
        let mut machine = Applied::at(12);
        schedule.start_if_due(&mut machine, 12).unwrap();
        assert_eq!(schedule.collect_finished(&mut machine).unwrap(), Some(12));
        assert!(
            schedule.take_compaction_due(21).is_none(),
            "tail of 10 kept"
        );
        let (index, data) = schedule.take_compaction_due(22).expect("due at 12 + 10");
        assert_eq!(index, 12);
        assert_eq!(data, 12_u64.to_le_bytes());
        schedule.start_if_due(&mut machine, 21).unwrap();
        assert!(!schedule.in_flight, "next one is due at 22");
    }

    #[test]
    fn an_installed_snapshot_supersedes_a_local_one() {
        let mut schedule = SnapshotSchedule::new(5, 0);
        let mut machine = Applied::at(6);
        schedule.start_if_due(&mut machine, 6).unwrap();
        schedule.collect_finished(&mut machine).unwrap();
        schedule.on_installed(40);
        assert!(schedule.take_compaction_due(u64::MAX).is_none());
        schedule.start_if_due(&mut machine, 44).unwrap();
        assert!(!schedule.in_flight, "next one is due at 45");
    }
}
