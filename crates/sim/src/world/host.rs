//! What a simulated member runs the product's node loop ([`node::Node`])
//! over: the log on a simulated disk ([`SimLog`]), the key-value store as the
//! state machine ([`KvMachine`]), and one queue per member ([`Effects`])
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

use raft::{Entry, LogIndex, Message, Ready, SnapshotMeta, SoftState};

use super::sim_log::SimLog;
use crate::kv::{ApplyOutcome, Command, DecodeError, Key, KvOutput, KvStore};
use crate::log_view::bytes_fingerprint;

/// The node loop as the simulator runs it.
pub(super) type SimNode = node::Node<SimHost>;

#[derive(Debug)]
pub(super) struct SimHost;

impl node::Host for SimHost {
    type Log = SimLog;
    type StateMachine = KvMachine;
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

/// A node's answer to a client.
#[derive(Debug)]
pub(super) enum Answer {
    Write {
        client_id: u64,
        request_id: u64,
        result: Result<Option<KvOutput>, node::RequestError>,
    },
    /// The read barrier of a Get: on `Ok`, the Get reads the store now.
    Read {
        client_id: u64,
        request_id: u64,
        key: Key,
        result: Result<(), node::RequestError>,
    },
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

/// Answers a proposed write to its client; a scripted proposal has none.
#[derive(Debug)]
pub(super) struct WriteReply {
    pub(super) client: Option<(u64, u64)>,
    pub(super) effects: SharedEffects,
}

impl node::Reply<Result<Option<KvOutput>, node::RequestError>> for WriteReply {
    fn send(self, result: Result<Option<KvOutput>, node::RequestError>) {
        if let Some((client_id, request_id)) = self.client {
            self.effects.borrow_mut().answers.push(Answer::Write {
                client_id,
                request_id,
                result,
            });
        }
    }

    fn is_closed(&self) -> bool {
        false
    }
}

#[derive(Debug)]
pub(super) struct ReadReply {
    pub(super) client_id: u64,
    pub(super) request_id: u64,
    pub(super) key: Key,
    pub(super) effects: SharedEffects,
}

impl node::Reply<Result<(), node::RequestError>> for ReadReply {
    fn send(self, result: Result<(), node::RequestError>) {
        self.effects.borrow_mut().answers.push(Answer::Read {
            client_id: self.client_id,
            request_id: self.request_id,
            key: self.key,
            result,
        });
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

/// The key-value store as the node's state machine. It lives in memory:
/// a restart rebuilds it from the log's snapshot, and the node replays the
/// entries after it. Its snapshots carry the index they were taken at.
#[derive(Debug, Default)]
pub(super) struct KvMachine {
    pub(super) store: KvStore,
    applied: LogIndex,
    finished_snapshot: Option<(LogIndex, Vec<u8>)>,
}

/// Bytes of a snapshot's applied index, ahead of the store's image.
const SNAPSHOT_INDEX_BYTES: usize = 8;

impl KvMachine {
    /// The machine a snapshot holds; empty bytes (a new cluster's initial
    /// snapshot) are the empty store at index 0.
    pub(super) fn from_snapshot(data: &[u8]) -> Result<Self, DecodeError> {
        if data.is_empty() {
            return Ok(Self::default());
        }
        if data.len() < SNAPSHOT_INDEX_BYTES {
            return Err(DecodeError::WrongLength {
                what: "snapshot index",
                expected: SNAPSHOT_INDEX_BYTES,
                actual: data.len(),
            });
        }
        let (index, image) = data.split_at(SNAPSHOT_INDEX_BYTES);
        let mut index_bytes = [0u8; SNAPSHOT_INDEX_BYTES];
        index_bytes.copy_from_slice(index);
        Ok(Self {
            store: KvStore::decode_snapshot(image)?,
            applied: u64::from_le_bytes(index_bytes),
            finished_snapshot: None,
        })
    }

    fn encode_snapshot(&self) -> Vec<u8> {
        let mut data = self.applied.to_le_bytes().to_vec();
        data.extend_from_slice(&self.store.encode_snapshot());
        data
    }
}

impl node::StateMachine for KvMachine {
    /// The client's answer: `None` for entries that answer nobody (no
    /// command, or an older request of a client superseded by a newer one).
    type Answer = Option<KvOutput>;
    type Error = DecodeError;

    fn applied_index(&self) -> LogIndex {
        self.applied
    }

    fn apply(
        &mut self,
        entries: &[node::Committed<'_>],
    ) -> Result<Vec<Option<KvOutput>>, DecodeError> {
        let mut answers = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.index <= self.applied {
                answers.push(None);
                continue;
            }
            self.applied = entry.index;
            let answer = match entry.command {
                Some(bytes) => match self.store.apply(&Command::decode(bytes)?) {
                    ApplyOutcome::Answered(output) => Some(output),
                    ApplyOutcome::Superseded => None,
                },
                None => None,
            };
            answers.push(answer);
        }
        Ok(answers)
    }

    fn flush(&mut self) -> Result<(), DecodeError> {
        Ok(())
    }

    fn restore(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        *self = Self::from_snapshot(data)?;
        Ok(())
    }

    /// Taken at once: the store is small and in memory.
    fn start_snapshot(&mut self) -> Result<(), DecodeError> {
        self.finished_snapshot = Some((self.applied, self.encode_snapshot()));
        Ok(())
    }

    fn finished_snapshot(&mut self) -> Result<Option<(LogIndex, Vec<u8>)>, DecodeError> {
        Ok(self.finished_snapshot.take())
    }

    /// A Put is always answered `PutDone`; the rest depend on the state.
    #[cfg(feature = "mutations")]
    fn answer_unapplied(&self, command: &[u8]) -> Option<Option<KvOutput>> {
        let command = Command::decode(command).ok()?;
        matches!(command.input, crate::kv::KvInput::Put { .. }).then_some(Some(KvOutput::PutDone))
    }

    /// The list is rebuilt with the store on restart, from the log's snapshot
    /// and the change entries after it: nothing to save.
    fn save_members(&mut self, _: &node::MemberList) -> Result<(), DecodeError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::KvInput;
    use node::StateMachine;

    #[test]
    fn a_snapshot_restores_the_store_at_its_index() {
        let mut machine = KvMachine::default();
        let put = Command {
            client_id: 1,
            request_id: 1,
            input: KvInput::Put { key: 2, value: 9 },
        }
        .encode();
        let committed = [
            node::Committed {
                index: 1,
                command: None,
            },
            node::Committed {
                index: 2,
                command: Some(&put),
            },
        ];
        let answers = machine.apply(&committed).unwrap();
        assert_eq!(answers, vec![None, Some(KvOutput::PutDone)]);
        assert_eq!(
            machine.apply(&committed[1..]).unwrap(),
            vec![None],
            "an index applied before is skipped"
        );
        machine.start_snapshot().unwrap();
        let (index, data) = machine.finished_snapshot().unwrap().unwrap();
        assert_eq!(index, 2);
        let restored = KvMachine::from_snapshot(&data).unwrap();
        assert_eq!(
            (restored.applied_index(), restored.store.get(2)),
            (2, Some(9))
        );
        assert!(KvMachine::from_snapshot(&data[..3]).is_err());
    }
}
