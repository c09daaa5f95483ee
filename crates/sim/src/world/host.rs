//! What a simulated member runs the product's node loop ([`node::Node`])
//! over: the real log (`wal::Wal`) and the real `mvcc::Store` as the state
//! machine ([`StoreMachine`]), both on the member's simulated disk, and one
//! queue per member ([`Effects`])
//! where the node's outbox, its answers to clients and its observer put what
//! they get. The world drains that queue after every call into the node and
//! routes each item: messages through the network, answers to clients,
//! observations to the checkers and the trace.
//!
//! Owns: the adapters between the node's traits and the simulator. Must
//! never: decide anything the node decides, or act on what it queues before
//! the node's call returns.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use raft::{Entry, LogIndex, Message, Ready, SnapshotMeta, SoftState};

use super::kv_backend::{BarrierResult, CallId, ProposeResult, Slot};
use crate::log_view::bytes_fingerprint;

/// The node loop as the simulator runs it.
pub(super) type SimNode = node::Node<SimHost>;

#[derive(Debug)]
pub(super) struct SimHost;

impl node::Host for SimHost {
    type Log = wal::Wal;
    type StateMachine = StoreMachine;
    type Outbox = SimOutbox;
    type CommandReply = WriteReply;
    type ReadReply = ReadReply;
    type MembershipReply = Unheeded;
    type Observer = SimObserver;
}

/// The shared queue of one member's node.
pub(super) type SharedEffects = Rc<RefCell<Effects>>;

/// What a node call produced, in the order it happened per kind.
#[derive(Debug, Default)]
pub(super) struct Effects {
    pub(super) observations: Vec<Observation>,
    pub(super) messages: Vec<Message>,
    pub(super) answers: Vec<Answer>,
}

impl Effects {
    pub(super) fn is_empty(&self) -> bool {
        self.observations.is_empty() && self.messages.is_empty() && self.answers.is_empty()
    }
}

/// What the checkers and the trace learn of a node's work.
#[derive(Debug)]
pub(super) enum Observation {
    Ready(ReadySummary),
    Applying {
        entry: Entry,
        /// The fingerprint of the command inside the entry, by which
        /// scenarios find the entry of a command they proposed.
        command: Option<u64>,
    },
}

/// A Ready as it was taken from the core, before the node handled it.
#[derive(Debug)]
pub(super) struct ReadySummary {
    pub(super) soft_state: Option<SoftState>,
    pub(super) hard_state: Option<raft::HardState>,
    pub(super) snapshot: Option<SnapshotMeta>,
    pub(super) entries: usize,
    pub(super) first_index: LogIndex,
    pub(super) messages: usize,
    pub(super) persisted_messages: usize,
    pub(super) committed: usize,
}

/// A node answered a client's call: the world polls the call again.
#[derive(Debug)]
pub(super) struct Answer {
    pub(super) call: CallId,
}

#[derive(Debug)]
pub(super) struct SimOutbox(pub(super) SharedEffects);

impl node::Outbox for SimOutbox {
    fn send(&self, message: Message) {
        self.0.borrow_mut().messages.push(message);
    }

    /// The simulated network reaches every process by id; whom a member
    /// may talk to is the network's and the node's business, not routing's.
    fn set_members(&self, _: &[node::Member]) {}
}

#[derive(Debug)]
pub(super) struct SimObserver(pub(super) SharedEffects);

impl node::Observer for SimObserver {
    fn ready(&mut self, ready: &Ready) {
        let summary = ReadySummary {
            soft_state: ready.soft_state,
            hard_state: ready.hard_state,
            snapshot: ready
                .snapshot
                .as_ref()
                .map(|snapshot| snapshot.meta.clone()),
            entries: ready.entries.len(),
            first_index: ready.entries.first().map_or(0, |entry| entry.index),
            messages: ready.messages.len(),
            persisted_messages: ready.persisted_messages.len(),
            committed: ready.committed_entries.len() + ready.committed_entries_after_persist.len(),
        };
        self.0
            .borrow_mut()
            .observations
            .push(Observation::Ready(summary));
    }

    fn applying(&mut self, entry: &Entry, command: Option<&[u8]>) {
        self.0
            .borrow_mut()
            .observations
            .push(Observation::Applying {
                entry: entry.clone(),
                command: command.map(bytes_fingerprint),
            });
    }
}

/// Answers a proposed write to the client call that made it; a scripted
/// proposal has none.
#[derive(Debug)]
pub(super) struct WriteReply {
    pub(super) call: Option<(CallId, Slot<ProposeResult>)>,
    pub(super) effects: SharedEffects,
}

impl node::Reply<ProposeResult> for WriteReply {
    fn send(self, result: ProposeResult) {
        if let Some((call, slot)) = self.call {
            slot.fill(result);
            self.effects.borrow_mut().answers.push(Answer { call });
        }
    }

    fn is_closed(&self) -> bool {
        false
    }
}

/// Releases the read barrier of a client call.
#[derive(Debug)]
pub(super) struct ReadReply {
    pub(super) call: CallId,
    pub(super) slot: Slot<BarrierResult>,
    pub(super) effects: SharedEffects,
}

impl node::Reply<BarrierResult> for ReadReply {
    fn send(self, result: BarrierResult) {
        self.slot.fill(result);
        self.effects
            .borrow_mut()
            .answers
            .push(Answer { call: self.call });
    }

    fn is_closed(&self) -> bool {
        false
    }
}

/// An answer nobody waits for: configuration changes are judged by the
/// configuration members apply, not by the answer to whoever asked.
#[derive(Debug)]
pub(super) struct Unheeded;

impl node::Reply<Result<(), node::RequestError>> for Unheeded {
    fn send(self, _: Result<(), node::RequestError>) {}

    fn is_closed(&self) -> bool {
        false
    }
}

/// Why a member's state machine failed: the store, or a committed entry the
/// simulator's own clients cannot have written.
#[derive(Debug, thiserror::Error)]
pub(super) enum MachineError {
    #[error(transparent)]
    Store(#[from] mvcc::StoreError),
    #[error("entry {index} holds no readable command: {error}")]
    Unreadable {
        index: LogIndex,
        error: mvcc::DecodeError,
    },
}

/// The real `mvcc::Store`, on the member's simulated disk, as the node's
/// state machine: applies through the same path as the server's
/// ([`mvcc::Store::apply_committed`], durability deferred), snapshots
/// written at once.
#[derive(Debug)]
pub(super) struct StoreMachine {
    /// Shared with the client calls the member serves, which read it.
    pub(super) store: Arc<mvcc::Store>,
    finished_snapshot: Option<(LogIndex, Vec<u8>)>,
}

impl StoreMachine {
    pub(super) fn new(store: mvcc::Store) -> Self {
        Self {
            store: Arc::new(store),
            finished_snapshot: None,
        }
    }
}

impl node::StateMachine for StoreMachine {
    type Answer = mvcc::ApplyOutcome;
    type Error = MachineError;

    fn applied_index(&self) -> LogIndex {
        self.store.applied_index()
    }

    fn apply(
        &mut self,
        entries: &[node::Committed<'_>],
    ) -> Result<Vec<mvcc::ApplyOutcome>, MachineError> {
        let batch = self.store.apply_committed(
            entries.iter().map(|entry| (entry.index, entry.command)),
            mvcc::Durability::Deferred,
        )?;
        if let Some((index, error)) = batch.unreadable.into_iter().next() {
            return Err(MachineError::Unreadable { index, error });
        }
        Ok(batch.outcomes)
    }

    fn flush(&mut self) -> Result<(), MachineError> {
        Ok(self.store.flush()?)
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), MachineError> {
        self.store.restore(data)?;
        Ok(self.store.flush()?)
    }

    /// Written at once: the simulator has no threads, and the node only
    /// asks whether it is finished later.
    fn start_snapshot(&mut self) -> Result<(), MachineError> {
        let mut data = Vec::new();
        let info = self.store.write_snapshot(&mut data)?;
        self.finished_snapshot = Some((info.applied_index, data));
        Ok(())
    }

    fn finished_snapshot(&mut self) -> Result<Option<(LogIndex, Vec<u8>)>, MachineError> {
        Ok(self.finished_snapshot.take())
    }

    /// A Put is answered as if it were applied next: at the revision one
    /// past the store's. The rest depend on the state.
    #[cfg(feature = "mutations")]
    fn answer_unapplied(&self, command: &[u8]) -> Option<mvcc::ApplyOutcome> {
        let mvcc::Command::Put(_) = mvcc::Command::decode(command).ok()? else {
            return None;
        };
        Some(mvcc::ApplyOutcome::Applied(mvcc::Applied {
            index: self.store.applied_index() + 1,
            revision: self.store.current_revision() + 1,
            result: Ok(mvcc::Response::Put(mvcc::PutResponse { prev_kv: None })),
            events: Vec::new(),
        }))
    }

    /// The list is rebuilt on restart from the log's snapshot and the change
    /// entries after it, which the node replays (the store skips the ones it
    /// holds): nothing to save.
    fn save_members(&mut self, _: &node::MemberList) -> Result<(), MachineError> {
        Ok(())
    }
}
