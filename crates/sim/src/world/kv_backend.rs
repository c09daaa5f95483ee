//! Client calls served through the server's KV path: each call runs
//! [`crate::etcd::call`] (and so [`server::api::kv_requests`], the code the
//! gRPC KV service runs) over a [`MemberBackend`], the simulated member as a
//! [`KvBackend`]. What decides "barrier or not, which store call, which
//! revision" is thus the product's, on every seed.
//!
//! A call is a future polled with a no-op waker, never by a runtime: the
//! world polls it when the member takes the request, and again each time
//! the member's node answers it. The backend's `propose` and `read_barrier`
//! queue a request for the node and wait on a [`Slot`] that the node's reply
//! fills (see `host::WriteReply`, `host::ReadReply`); after a poll the world
//! hands the queued requests to the node. No threads, no clock: a call moves
//! only when the world polls it, in the world's event order.
//!
//! The simulator implements only [`KvBackend`], the part of the server's
//! backend the KV path needs; the watch hub and the member list are the
//! other services', which the simulator does not run.
//!
//! Owns: the calls in flight, their backends and the mapping of their
//! results to client replies. Must never: decide what the KV path decides,
//! or let a call outlive its member's process (a crash drops its calls).

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use raft::{NodeId, NO_NODE};
use server::api::kv_requests::KvError;
use server::backend::{BackendError, KvBackend, RequestError};

use super::client::{ClientReply, ClientRequest};
use super::host::{ReadReply, WriteReply};
use super::{simulator_fault, World};
use crate::etcd::{self, CallError};

/// Names a call in flight, so the node's reply finds it.
pub(super) type CallId = u64;
/// The node's answer to a proposal.
pub(super) type ProposeResult = Result<mvcc::ApplyOutcome, node::RequestError>;
/// The node's answer to a read barrier.
pub(super) type BarrierResult = Result<(), node::RequestError>;

/// Where the node's answer waits until its call is polled.
#[derive(Debug)]
pub(super) struct Slot<T>(Arc<Mutex<Option<T>>>);

impl<T> Slot<T> {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(None)))
    }

    pub(super) fn fill(&self, answer: T) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(answer);
    }

    fn take(&self) -> Option<T> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

impl<T> Clone for Slot<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

/// Resolves once the node filled the slot.
struct Filled<T>(Slot<T>);

impl<T> Future for Filled<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<T> {
        self.0.take().map_or(Poll::Pending, Poll::Ready)
    }
}

/// What a call asks of its member's node.
#[derive(Debug)]
enum NodeRequest {
    Propose {
        command: Vec<u8>,
        slot: Slot<ProposeResult>,
    },
    ReadBarrier {
        slot: Slot<BarrierResult>,
    },
}

/// One life of a simulated member as the KV path sees it: its store, and
/// a queue of what the path asks of its node.
#[derive(Debug)]
pub(super) struct MemberBackend {
    store: Arc<mvcc::Store>,
    requests: Mutex<Vec<NodeRequest>>,
    #[cfg(feature = "mutations")]
    mutation: Option<server::api::kv_requests::Mutation>,
}

impl MemberBackend {
    fn ask(&self, request: NodeRequest) {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }

    fn take_requests(&self) -> Vec<NodeRequest> {
        std::mem::take(&mut *self.requests.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl KvBackend for MemberBackend {
    async fn propose(&self, command: mvcc::Command) -> Result<mvcc::Applied, BackendError> {
        let slot = Slot::new();
        self.ask(NodeRequest::Propose {
            command: command.encode(),
            slot: slot.clone(),
        });
        match Filled(slot).await? {
            mvcc::ApplyOutcome::Applied(applied) => Ok(applied),
            other => Err(BackendError::Request(RequestError::Storage(format!(
                "the proposal's entry was not applied as a command: {other:?}"
            )))),
        }
    }

    async fn read_barrier(&self) -> Result<(), BackendError> {
        let slot = Slot::new();
        self.ask(NodeRequest::ReadBarrier { slot: slot.clone() });
        Ok(Filled(slot).await?)
    }

    fn store(&self) -> &mvcc::Store {
        &self.store
    }

    #[cfg(feature = "mutations")]
    fn kv_mutation(&self) -> Option<server::api::kv_requests::Mutation> {
        self.mutation
    }
}

type CallFuture = Pin<Box<dyn Future<Output = Result<etcd::Answer, CallError>> + Send>>;

/// A client's request a member is serving.
struct Call {
    node: NodeId,
    client_id: u64,
    request_id: u64,
    backend: Arc<MemberBackend>,
    future: CallFuture,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("node", &self.node)
            .field("client_id", &self.client_id)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

/// The calls in flight, in the order they were made.
#[derive(Debug, Default)]
pub(super) struct Calls {
    in_flight: BTreeMap<CallId, Call>,
    next_id: CallId,
}

impl World {
    /// Takes a client request at `node`: starts its call through the KV path
    /// and hands the node what the call asks. Runs while the node takes
    /// input.
    pub(super) fn start_call(&mut self, node: NodeId, request: ClientRequest) {
        let Some(running) = self.member(node).running() else {
            return;
        };
        let backend = Arc::new(MemberBackend {
            store: Arc::clone(&running.state_machine().store),
            requests: Mutex::new(Vec::new()),
            #[cfg(feature = "mutations")]
            mutation: self.config.kv_mutation,
        });
        let (input, serializable) = (request.input, request.serializable);
        let served = Arc::clone(&backend);
        let future: CallFuture =
            Box::pin(async move { etcd::call(&*served, input, serializable).await });
        let id = self.calls.next_id;
        self.calls.next_id += 1;
        let call = Call {
            node,
            client_id: request.client_id,
            request_id: request.request_id,
            backend,
            future,
        };
        self.calls.in_flight.insert(id, call);
        if let Some(requests) = self.poll_call(id) {
            self.hand_to_node(node, id, requests);
        }
    }

    /// Polls the call `id` again: the node answered what it waits for.
    pub(super) fn resume_call(&mut self, node: NodeId, id: CallId) {
        let Some(requests) = self.poll_call(id) else {
            return;
        };
        if !requests.is_empty() {
            // Each KV request asks the node once, before anything else; a
            // second ask would have to wait for the node's next input.
            let detail = format!("call {id} asked node {node} again after its answer");
            self.fail(simulator_fault(node, self.now_us, detail));
        }
    }

    /// Forgets the calls `node` was serving: its process is gone.
    pub(super) fn drop_calls_at(&mut self, node: NodeId) {
        self.calls.in_flight.retain(|_, call| call.node != node);
    }

    /// Polls a call once. When it finished, answers its client and returns
    /// `None`; otherwise returns what it asked of the node meanwhile.
    fn poll_call(&mut self, id: CallId) -> Option<Vec<NodeRequest>> {
        let call = self.calls.in_flight.get_mut(&id)?;
        let polled = call
            .future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()));
        let Poll::Ready(result) = polled else {
            return Some(call.backend.take_requests());
        };
        let call = self.calls.in_flight.remove(&id)?;
        self.answer_call(&call, result);
        None
    }

    fn hand_to_node(&mut self, node: NodeId, id: CallId, requests: Vec<NodeRequest>) {
        let effects = self.member(node).effects();
        let Some(running) = self.member_mut(node).running_mut() else {
            return;
        };
        for request in requests {
            match request {
                NodeRequest::Propose { command, slot } => {
                    let reply = WriteReply {
                        call: Some((id, slot)),
                        effects: effects.clone(),
                    };
                    running.propose(&command, reply);
                }
                NodeRequest::ReadBarrier { slot } => running.read(ReadReply {
                    call: id,
                    slot,
                    effects: effects.clone(),
                }),
            }
        }
    }

    /// Answers the client of a finished call as the gRPC service's error
    /// codes would tell it: "no leader" sends it elsewhere, "leader changed"
    /// too (its write may have been applied), other failures leave it to its
    /// timer; a failed read of the store or an answer the workload cannot
    /// get is a bug.
    fn answer_call(&mut self, call: &Call, result: Result<etcd::Answer, CallError>) {
        let (node, request_id) = (call.node, call.request_id);
        let reply = match result {
            Ok(answer) => ClientReply::Done {
                request_id,
                output: answer.output,
                revision: answer.revision,
                served_by: node,
            },
            Err(CallError::Kv(KvError::Backend(BackendError::Request(failure)))) => match failure {
                RequestError::NoLeader => ClientReply::NotLeader {
                    request_id,
                    leader: None,
                    maybe_applied: false,
                },
                // Refused before it reached the log: never applied.
                RequestError::NoSpace => ClientReply::NotLeader {
                    request_id,
                    leader: None,
                    maybe_applied: false,
                },
                RequestError::LeaderChanged => {
                    let leader = self.member(node).leader;
                    ClientReply::NotLeader {
                        request_id,
                        leader: (leader != NO_NODE).then_some(leader),
                        maybe_applied: true,
                    }
                }
                _ => return,
            },
            Err(error) => {
                let detail = format!("node {node} answered a client wrongly: {error}");
                return self.fail(simulator_fault(node, self.now_us, detail));
            }
        };
        self.reply(call.client_id, reply);
    }
}
