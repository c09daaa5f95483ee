//! The state machine the node thread applies to: mvcc's store, with each
//! applied batch's events handed to the watch hub, snapshots written on a
//! background thread, and the member list kept in its file and republished
//! to the services.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use node::{Committed, MemberList, StateMachine};
use raft::LogIndex;

use super::members_file::{self, MembersFileError};
use crate::backend::Member;
use crate::watch;

/// Applying one batch slower than this is logged, as etcd's "apply took too long".
const SLOW_APPLY_WARN: Duration = Duration::from_millis(100);

type SnapshotResult = Result<(LogIndex, Vec<u8>), mvcc::StoreError>;

/// Why the state machine failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MachineError {
    #[error(transparent)]
    Store(#[from] mvcc::StoreError),
    #[error(transparent)]
    Members(#[from] MembersFileError),
    #[error("cannot start the snapshot thread: {0}")]
    SnapshotThread(std::io::Error),
    #[error("the snapshot thread ended without a result")]
    SnapshotLost,
}

pub(crate) struct StoreMachine {
    store: Arc<mvcc::Store>,
    watch_feed: watch::Feed,
    /// Where the member list file lives.
    data_dir: PathBuf,
    /// What the services read: the member list plus the client URLs members
    /// advertise, republished whenever the list changes.
    published_members: Arc<RwLock<Vec<Member>>>,
    snapshot_in_flight: Option<Receiver<SnapshotResult>>,
}

impl std::fmt::Debug for StoreMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreMachine")
            .field("applied_index", &self.store.applied_index())
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl StoreMachine {
    pub(crate) fn new(
        store: Arc<mvcc::Store>,
        watch_feed: watch::Feed,
        data_dir: PathBuf,
        published_members: Arc<RwLock<Vec<Member>>>,
    ) -> Self {
        Self {
            store,
            watch_feed,
            data_dir,
            published_members,
            snapshot_in_flight: None,
        }
    }
}

impl StateMachine for StoreMachine {
    type Answer = mvcc::ApplyOutcome;
    type Error = MachineError;

    fn applied_index(&self) -> LogIndex {
        self.store.applied_index()
    }

    fn apply(
        &mut self,
        entries: &[Committed<'_>],
    ) -> Result<Vec<mvcc::ApplyOutcome>, MachineError> {
        let started = Instant::now();
        let batch = self.store.apply_committed(
            entries.iter().map(|entry| (entry.index, entry.command)),
            mvcc::Durability::Deferred,
        )?;
        // Every member skips unreadable bytes alike, so the replicas stay equal.
        for (index, error) in &batch.unreadable {
            tracing::error!(index, %error, "skipping a log entry that holds no readable command");
        }
        let outcomes = batch.outcomes;
        // Watchers get what the batch changed; this never blocks.
        self.watch_feed.publish(&outcomes);
        let took = started.elapsed();
        if took > SLOW_APPLY_WARN {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                expected_ms = SLOW_APPLY_WARN.as_millis() as u64,
                entries = entries.len(),
                "apply request took too long"
            );
        }
        Ok(outcomes)
    }

    fn flush(&mut self) -> Result<(), MachineError> {
        Ok(self.store.flush()?)
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), MachineError> {
        self.store.restore(data)?;
        Ok(self.store.flush()?)
    }

    /// Writes the snapshot on a background thread from one read transaction.
    fn start_snapshot(&mut self) -> Result<(), MachineError> {
        let (done, finished) = crossbeam_channel::bounded(1);
        let store = Arc::clone(&self.store);
        std::thread::Builder::new()
            .name("snapshot".to_owned())
            .spawn(move || {
                let mut data = Vec::new();
                let result = store
                    .write_snapshot(&mut data)
                    .map(|info| (info.applied_index, data));
                let _ = done.send(result);
            })
            .map_err(MachineError::SnapshotThread)?;
        self.snapshot_in_flight = Some(finished);
        Ok(())
    }

    fn finished_snapshot(&mut self) -> Result<Option<(LogIndex, Vec<u8>)>, MachineError> {
        let Some(finished) = &self.snapshot_in_flight else {
            return Ok(None);
        };
        let result = match finished.try_recv() {
            Ok(result) => result,
            Err(TryRecvError::Empty) => return Ok(None),
            Err(TryRecvError::Disconnected) => {
                self.snapshot_in_flight = None;
                return Err(MachineError::SnapshotLost);
            }
        };
        self.snapshot_in_flight = None;
        Ok(Some(result?))
    }

    /// Saves the list and republishes it, keeping the client URLs members
    /// advertised.
    fn save_members(&mut self, list: &MemberList) -> Result<(), MachineError> {
        members_file::save(&self.data_dir, list)?;
        let mut published = self
            .published_members
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let members = list
            .members
            .iter()
            .map(|member| {
                let client_urls = published
                    .iter()
                    .find(|known| known.id == member.id)
                    .map(|known| known.client_urls.clone())
                    .unwrap_or_default();
                Member {
                    client_urls,
                    ..member.clone()
                }
            })
            .collect();
        *published = members;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine_at(index: u64) -> StoreMachine {
        let store = mvcc::Store::in_memory().unwrap();
        let put = mvcc::Command::Put(mvcc::PutRequest::new("k", "v"));
        for index in 1..=index {
            store.apply(index, &put).unwrap();
        }
        let store = Arc::new(store);
        let (_hub, feed, _thread) =
            watch::start(Arc::clone(&store), watch::HubOptions::default()).unwrap();
        StoreMachine::new(
            store,
            feed,
            std::env::temp_dir(),
            Arc::new(RwLock::new(Vec::new())),
        )
    }

    #[test]
    fn a_snapshot_written_in_the_background_restores_to_its_index() {
        let mut machine = machine_at(12);
        machine.start_snapshot().unwrap();
        let mut finished = None;
        for _ in 0..500 {
            finished = machine.finished_snapshot().unwrap();
            if finished.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (index, data) = finished.expect("the snapshot thread finished within 5 s");
        assert_eq!(index, 12);
        let restored = mvcc::Store::in_memory().unwrap();
        assert_eq!(restored.restore(&data).unwrap().applied_index, 12);
        assert!(
            machine.finished_snapshot().unwrap().is_none(),
            "reported once"
        );
    }
}
