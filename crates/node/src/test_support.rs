//! Test doubles: a reply that keeps its answer for a test to look at, and
//! a state machine that records what it applied.

use std::sync::{Arc, Mutex, PoisonError};

use raft::LogIndex;

use crate::host::{Committed, Reply, StateMachine};
use crate::members::MemberList;

/// Holds the answer sent to it; clones share the slot.
#[derive(Debug)]
pub(crate) struct Slot<T> {
    answer: Arc<Mutex<(Option<T>, bool)>>,
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Self {
            answer: Arc::clone(&self.answer),
        }
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            answer: Arc::new(Mutex::new((None, false))),
        }
    }
}

impl<T> Slot<T> {
    pub(crate) fn take(&self) -> Option<T> {
        self.answer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .take()
    }

    /// The client goes away.
    pub(crate) fn close(&self) {
        self.answer.lock().unwrap_or_else(PoisonError::into_inner).1 = true;
    }
}

impl<T> Reply<T> for Slot<T> {
    fn send(self, answer: T) {
        self.answer.lock().unwrap_or_else(PoisonError::into_inner).0 = Some(answer);
    }

    fn is_closed(&self) -> bool {
        self.answer.lock().unwrap_or_else(PoisonError::into_inner).1
    }
}

/// Applied commands in order; each answer is the entry's index. A snapshot
/// finishes at the next look after it started, holding the applied index.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    pub(crate) applied_index: LogIndex,
    pub(crate) commands: Vec<(LogIndex, Vec<u8>)>,
    snapshot_started_at: Option<LogIndex>,
}

impl Applied {
    pub(crate) fn at(applied_index: LogIndex) -> Self {
        Self {
            applied_index,
            ..Self::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("test state machine failure")]
pub(crate) struct NeverFails;

impl StateMachine for Applied {
    type Answer = LogIndex;
    type Error = NeverFails;

    fn applied_index(&self) -> LogIndex {
        self.applied_index
    }

    fn apply(&mut self, entries: &[Committed<'_>]) -> Result<Vec<LogIndex>, NeverFails> {
        for entry in entries {
            assert_eq!(
                entry.index,
                self.applied_index + 1,
                "applied in order, once"
            );
            self.applied_index = entry.index;
            if let Some(command) = entry.command {
                self.commands.push((entry.index, command.to_vec()));
            }
        }
        Ok(entries.iter().map(|entry| entry.index).collect())
    }

    fn flush(&mut self) -> Result<(), NeverFails> {
        Ok(())
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), NeverFails> {
        let mut index = [0u8; 8];
        index.copy_from_slice(&data[..8]);
        self.applied_index = u64::from_le_bytes(index);
        Ok(())
    }

    fn start_snapshot(&mut self) -> Result<(), NeverFails> {
        self.snapshot_started_at = Some(self.applied_index);
        Ok(())
    }

    fn finished_snapshot(&mut self) -> Result<Option<(LogIndex, Vec<u8>)>, NeverFails> {
        Ok(self
            .snapshot_started_at
            .take()
            .map(|index| (index, index.to_le_bytes().to_vec())))
    }

    fn save_members(&mut self, _: &MemberList) -> Result<(), NeverFails> {
        Ok(())
    }
}
