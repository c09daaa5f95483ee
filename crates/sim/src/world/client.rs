//! Clients: each issues one Put, Get, Delete or CAS at a time to the member it
//! believes leads, follows "not leader" hints, tries elsewhere after a
//! timeout, and records every operation for the linearizability checker.
//! Some Gets are serializable reads, which may be stale: they stay out of
//! the linearizable history, and the final checks hold the value each
//! answered against the store's history at the revision it named. (Under
//! [`ReadMode::LocalUnsafe`] every Get is serializable and recorded, a
//! deliberate bug the checker must catch.)
//! As with etcd, there are no sessions: a write that may have been proposed
//! is never sent again (it would be applied twice). Its operation keeps an
//! unknown outcome (it may still take effect later) and the client asks for
//! the same change as a new operation. Reads are simply sent again.
//!
//! Owns: the workload, request ids, retries, and the history. Must never:
//! peek at the cluster's state to decide anything (clients know only the
//! answers they receive).

use std::collections::BTreeMap;

use raft::NodeId;

use super::member::Input;
use super::{Event, Phase, World};
use crate::config::ReadMode;
use crate::etcd::is_write;
use crate::linearizability::{KvInput, KvOutput, KvValue as Value, Operation, Outcome};
use crate::trace::Happening;

/// A client's request as a member receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    pub client_id: u64,
    pub request_id: u64,
    /// Which send of this request it is (1 for the first).
    pub attempt: u32,
    pub input: KvInput,
    /// A Get the client accepts as a serializable read.
    pub serializable: bool,
}

/// A member's answer to a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientReply {
    Done {
        request_id: u64,
        output: KvOutput,
        /// The store's revision of the change, for a write that changed it.
        revision: Option<i64>,
        /// The member that answered, for the story of a violation.
        served_by: NodeId,
    },
    NotLeader {
        request_id: u64,
        leader: Option<NodeId>,
        /// Whether the request may have been proposed all the same (the
        /// leader changed after it was handed to the core).
        maybe_applied: bool,
    },
}

/// The operation a client is waiting on.
#[derive(Debug)]
pub(super) struct InFlight {
    request_id: u64,
    input: KvInput,
    serializable: bool,
    /// Identifies the current send, so a timer of an earlier send is ignored.
    attempt: u32,
    timeouts: u32,
    /// Its place in the linearizable history; none for a serializable read
    /// the history does not hold.
    pub(super) history_index: Option<usize>,
}

#[derive(Debug)]
pub(super) struct Client {
    id: u64,
    leader_guess: NodeId,
    next_request_id: u64,
    pub(super) in_flight: Option<InFlight>,
    /// The last value this client saw per key, to make CAS likely to succeed.
    known_values: BTreeMap<u8, Option<Value>>,
}

impl Client {
    pub(super) fn new(id: u64, leader_guess: NodeId) -> Self {
        Self {
            id,
            leader_guess,
            next_request_id: 1,
            in_flight: None,
            known_values: BTreeMap::new(),
        }
    }
}

impl World {
    /// The operations still waiting, as (client, request, input, timeouts,
    /// member last asked), for liveness reports.
    pub(super) fn pending_descriptions(&self) -> Vec<String> {
        self.clients
            .iter()
            .filter_map(|client| {
                let flight = client.in_flight.as_ref()?;
                Some(format!(
                    "client {} request #{} {:?} ({} timeouts, last sent to node {})",
                    client.id,
                    flight.request_id,
                    flight.input,
                    flight.timeouts,
                    client.leader_guess
                ))
            })
            .collect()
    }

    fn client_index(client_id: u64) -> Option<usize> {
        client_id.checked_sub(1).map(|index| index as usize)
    }

    /// Sends `reply` to the client `client_id` over a client link.
    pub(super) fn reply(&mut self, client_id: u64, reply: ClientReply) {
        let Some(client) =
            Self::client_index(client_id).filter(|&index| index < self.clients.len())
        else {
            return;
        };
        if self.rng.chance(self.network.config.drop_probability) {
            return;
        }
        let delay = self.link_latency_us();
        self.schedule(delay, Event::ToClient { client, reply });
    }

    /// The next operation, and whether it is a serializable read.
    fn next_input(&mut self, client: usize) -> (KvInput, bool) {
        let key = self
            .rng
            .index(usize::from(self.config.workload.key_count.max(1))) as u8;
        let state = &mut self.clients[client];
        let value = (state.id << 32) | state.next_request_id;
        let local_reads = self.config.workload.read_mode == ReadMode::LocalUnsafe;
        // Every eighth call that would put deletes, and another eighth reads
        // serializably: chosen by the request id rather than by a draw, so
        // the linearizable reads and the rest of the seed's draws are the
        // ones the mix had before Deletes and serializable reads joined it.
        let put_slot = state.next_request_id % 8;
        match self.rng.index(10) {
            0..=3 if put_slot == 0 => (KvInput::Delete { key }, false),
            0..=3 if put_slot == 4 => (KvInput::Get { key }, true),
            0..=3 => (KvInput::Put { key, value }, false),
            4..=6 => (KvInput::Get { key }, local_reads),
            _ => {
                let known = self.clients[client]
                    .known_values
                    .get(&key)
                    .copied()
                    .flatten();
                let expected = if self.rng.chance(0.2) { None } else { known };
                let cas = KvInput::Cas {
                    key,
                    expected,
                    new: value,
                };
                (cas, false)
            }
        }
    }

    pub(super) fn on_client_start(&mut self, client: usize) {
        if self.phase != Phase::Faults || self.clients[client].in_flight.is_some() {
            return;
        }
        let (input, serializable) = self.next_input(client);
        let state = &mut self.clients[client];
        let request_id = state.next_request_id;
        state.next_request_id += 1;
        let client_id = state.id;
        let linearizable = !serializable || self.config.workload.read_mode == ReadMode::LocalUnsafe;
        let history_index = linearizable.then(|| self.open_call(client_id, input));
        self.stats.serializable_reads += u64::from(!linearizable);
        self.clients[client].in_flight = Some(InFlight {
            request_id,
            input,
            serializable,
            attempt: 0,
            timeouts: 0,
            history_index,
        });
        self.record(
            0,
            Happening::ClientCall {
                client: client_id,
                request: request_id,
                input,
            },
        );
        self.send_request(client, 0);
    }

    /// (Re)sends the in-flight request to the guessed leader after `delay_us`.
    fn send_request(&mut self, client: usize, delay_us: u64) {
        let drop_probability = self.network.config.drop_probability;
        let timeout_us = self.config.workload.request_timeout_us;
        let state = &mut self.clients[client];
        let Some(flight) = state.in_flight.as_mut() else {
            return;
        };
        flight.attempt += 1;
        let request = ClientRequest {
            client_id: state.id,
            request_id: flight.request_id,
            attempt: flight.attempt,
            input: flight.input,
            serializable: flight.serializable,
        };
        let (node, attempt, request_id) = (state.leader_guess, flight.attempt, flight.request_id);
        if !self.rng.chance(drop_probability) {
            let delay = delay_us + self.link_latency_us();
            self.schedule(delay, Event::ToMember { node, request });
        }
        self.schedule(
            delay_us + timeout_us,
            Event::ClientTimer {
                client,
                request_id,
                attempt,
            },
        );
    }

    pub(super) fn on_client_request(&mut self, node: NodeId, request: ClientRequest) {
        self.input(node, Input::Client(request));
    }

    pub(super) fn on_client_reply(&mut self, client: usize, reply: ClientReply) {
        let Some(flight) = self.clients[client].in_flight.as_ref() else {
            return;
        };
        match reply {
            ClientReply::Done {
                request_id,
                output,
                revision,
                served_by,
            } if request_id == flight.request_id => {
                self.complete(client, output, revision, served_by);
            }
            ClientReply::NotLeader {
                request_id,
                leader,
                maybe_applied,
            } if request_id == flight.request_id => {
                let reissue = maybe_applied && is_write(&flight.input);
                let node_count = self.members.len() as u64;
                let state = &mut self.clients[client];
                state.leader_guess = leader.unwrap_or(state.leader_guess % node_count + 1);
                let backoff = self.config.workload.redirect_backoff_us;
                if reissue {
                    self.reissue_write(client, backoff);
                } else {
                    self.send_request(client, backoff);
                }
            }
            _ => {}
        }
    }

    /// Records a call of `input` by `client_id` made now, its outcome unknown
    /// until an answer completes it; returns its place in the history.
    fn open_call(&mut self, client_id: u64, input: KvInput) -> usize {
        self.history.push(Operation {
            client_id,
            input,
            call_time: self.now_us,
            outcome: Outcome::Unknown,
        });
        self.history.len() - 1
    }

    /// Gives up on the in-flight write, whose outcome stays unknown, and
    /// asks for the same change as a new operation after `delay_us`.
    fn reissue_write(&mut self, client: usize, delay_us: u64) {
        let state = &mut self.clients[client];
        let client_id = state.id;
        let request_id = state.next_request_id;
        let Some(flight) = state.in_flight.as_mut() else {
            return;
        };
        state.next_request_id += 1;
        flight.request_id = request_id;
        flight.attempt = 0;
        let input = flight.input;
        let history_index = self.open_call(client_id, input);
        if let Some(flight) = self.clients[client].in_flight.as_mut() {
            flight.history_index = Some(history_index);
        }
        self.stats.writes_reissued += 1;
        self.record(
            0,
            Happening::ClientCall {
                client: client_id,
                request: request_id,
                input,
            },
        );
        self.send_request(client, delay_us);
    }

    fn complete(
        &mut self,
        client: usize,
        output: KvOutput,
        revision: Option<i64>,
        served_by: NodeId,
    ) {
        let Some(flight) = self.clients[client].in_flight.take() else {
            return;
        };
        let client_id = self.clients[client].id;
        if let Some(index) = flight.history_index {
            let operation = &mut self.history[index];
            debug_assert!(
                self.now_us > operation.call_time,
                "a reply needs at least one link latency"
            );
            operation.outcome = Outcome::Returned {
                output,
                return_time: self.now_us,
            };
        }
        let known = &mut self.clients[client].known_values;
        match (flight.input, output) {
            (KvInput::Put { key, value }, _) => {
                known.insert(key, Some(value));
            }
            (KvInput::Get { key }, KvOutput::Value(value)) => {
                known.insert(key, value);
            }
            (KvInput::Delete { key }, _) => {
                known.insert(key, None);
            }
            (KvInput::Cas { key, new, .. }, KvOutput::CasDone { succeeded: true }) => {
                known.insert(key, Some(new));
            }
            (KvInput::Cas { key, .. }, _) => {
                known.remove(&key);
            }
            _ => {}
        }
        let written = match flight.input {
            KvInput::Put { key, value } => Some((key, Some(value))),
            KvInput::Cas { key, new, .. } => Some((key, Some(new))),
            KvInput::Delete { key } => Some((key, None)),
            KvInput::Get { .. } => None,
        };
        if let (Some((key, value)), Some(revision)) = (written, revision) {
            self.checker
                .observe_acknowledged_write(client_id, key, value, revision);
        }
        if let (true, KvInput::Get { key }, KvOutput::Value(value), Some(revision)) =
            (flight.serializable, flight.input, output, revision)
        {
            self.checker.observe_serializable_read(key, value, revision);
        }
        self.stats.ops_completed += 1;
        self.record(
            0,
            Happening::ClientReturn {
                client: client_id,
                request: flight.request_id,
                output,
                served_by,
            },
        );
        let think = self
            .rng
            .between(1, self.config.workload.think_us_max.max(1));
        self.schedule(think, Event::ClientStart { client });
    }

    pub(super) fn on_client_timer(&mut self, client: usize, request_id: u64, attempt: u32) {
        let attempts_max = self.config.workload.attempts_max;
        let in_fault_phase = self.phase == Phase::Faults;
        let node_count = self.members.len() as u64;
        let state = &mut self.clients[client];
        let client_id = state.id;
        let Some(flight) = state.in_flight.as_mut() else {
            return;
        };
        if flight.request_id != request_id || flight.attempt != attempt {
            return;
        }
        flight.timeouts += 1;
        let timeouts = flight.timeouts;
        let write = is_write(&flight.input);
        state.leader_guess = state.leader_guess % node_count + 1;
        self.record(
            0,
            Happening::ClientTimeout {
                client: client_id,
                request: request_id,
                attempt: timeouts,
            },
        );
        if in_fault_phase && timeouts >= attempts_max {
            self.clients[client].in_flight = None;
            self.stats.ops_abandoned += 1;
            self.record(
                0,
                Happening::ClientAbandoned {
                    client: client_id,
                    request: request_id,
                },
            );
            self.schedule(1, Event::ClientStart { client });
            return;
        }
        if write {
            self.reissue_write(client, 0);
        } else {
            self.send_request(client, 0);
        }
    }
}
