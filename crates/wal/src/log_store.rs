//! The log as the node loop writes it: [`raft::LogStore`] over [`Wal`].

use raft::{Entry, HardState, LogStore, Snapshot, SnapshotMeta};

use crate::{Wal, WalError};

impl LogStore for Wal {
    type Error = WalError;

    fn hard_state(&self) -> HardState {
        Wal::hard_state(self)
    }

    fn snapshot_meta(&self) -> &SnapshotMeta {
        Wal::snapshot_meta(self)
    }

    fn persist(
        &mut self,
        hard_state: Option<HardState>,
        entries: &[Entry],
    ) -> Result<(), WalError> {
        Wal::persist(self, hard_state, entries).map(drop)
    }

    fn set_hard_state_unsynced(&mut self, hard_state: HardState) -> Result<(), WalError> {
        Wal::set_hard_state(self, hard_state)
    }

    fn sync(&mut self) -> Result<(), WalError> {
        Wal::sync(self).map(drop)
    }

    fn is_disk_full(error: &WalError) -> bool {
        matches!(error, WalError::DiskFull { .. })
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), WalError> {
        Wal::apply_snapshot(self, snapshot)
    }

    fn compact(&mut self, snapshot: Snapshot) -> Result<(), WalError> {
        Wal::compact(self, snapshot)
    }
}
