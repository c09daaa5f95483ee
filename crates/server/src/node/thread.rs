//! The node thread: it runs the node loop ([`node::Node`]) over the WAL, the
//! store and the transport. Each turn it waits for input, drains everything
//! queued (so a thousand proposals become one append and one fsync), ticks
//! when a heartbeat interval has passed, and handles at most one `Ready`. It
//! never blocks on the network: messages go to bounded per-peer queues.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};
use node::{Node, NodeError, Reply, RequestError};
use raft::Message;
use tokio::sync::oneshot;

use super::machine::StoreMachine;
use super::{ClientRequest, Control, SharedStatus, StatusProgress};

/// Inputs taken from the queues in one turn at most, so ticks are never starved.
const INPUTS_PER_TURN_MAX: usize = 8192;
/// A Ready whose first half (the applies already durable, then the log's
/// write and fdatasync) took longer than this is logged, as etcd warns of a
/// slow fdatasync.
const SLOW_WRITE_WARN: Duration = Duration::from_secs(1);

/// A waiting client's answer channel, as the node answers it.
#[derive(Debug)]
pub(crate) struct OneShot<T>(pub(crate) oneshot::Sender<T>);

impl<T> Reply<T> for OneShot<T> {
    fn send(self, answer: T) {
        // The client may have gone away; nothing to do then.
        let _ = self.0.send(answer);
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// What the server runs the node over.
#[derive(Debug)]
pub(crate) struct ServerHost;

impl node::Host for ServerHost {
    type Log = wal::Wal;
    type StateMachine = StoreMachine;
    type Outbox = Arc<dyn node::Outbox + Send + Sync>;
    type CommandReply = OneShot<Result<mvcc::ApplyOutcome, RequestError>>;
    type ReadReply = OneShot<Result<(), RequestError>>;
    type MembershipReply = OneShot<Result<(), RequestError>>;
    type Observer = ();
}

/// The queues the node thread reads and what it publishes.
#[derive(Debug)]
pub(crate) struct Inputs {
    pub requests: Receiver<ClientRequest>,
    pub peer_messages: Receiver<Message>,
    pub control: Receiver<Control>,
    pub status: Arc<SharedStatus>,
    pub tick_interval: Duration,
}

pub(crate) struct NodeThread {
    node: Node<ServerHost>,
    inputs: Inputs,
    next_tick: Instant,
}

impl NodeThread {
    pub(crate) fn new(node: Node<ServerHost>, inputs: Inputs) -> Self {
        Self {
            next_tick: Instant::now() + inputs.tick_interval,
            node,
            inputs,
        }
    }

    /// Runs until asked to stop or until the log or the store fails.
    pub(crate) fn run(mut self) -> Result<(), NodeError> {
        let result = self.node.start().and_then(|()| self.run_turns());
        let error = match &result {
            Ok(()) => RequestError::Stopped,
            Err(error) => RequestError::Storage(error.to_string()),
        };
        let shut_down = self.node.shut_down(error);
        result?;
        shut_down
    }

    fn run_turns(&mut self) -> Result<(), NodeError> {
        while !self.node.is_stopped() {
            self.wait_and_drain()?;
            self.tick_if_due()?;
            let started = Instant::now();
            if let Some(persisted) = self.node.persist_ready()? {
                let took = started.elapsed();
                if took > SLOW_WRITE_WARN {
                    tracing::warn!(
                        took_ms = took.as_millis() as u64,
                        expected_ms = SLOW_WRITE_WARN.as_millis() as u64,
                        "slow fdatasync"
                    );
                }
                self.node.complete_ready(persisted)?;
            }
            self.node.end_turn()?;
            self.publish_status();
        }
        Ok(())
    }

    /// Blocks until an input arrives or the next tick is due (not at all when
    /// the core has work), then takes everything queued and feeds the node.
    fn wait_and_drain(&mut self) -> Result<(), NodeError> {
        if !self.node.has_ready() {
            // With work at hand, waiting (even for zero time) only spins.
            let timeout = self.next_tick.saturating_duration_since(Instant::now());
            let mut select = Select::new();
            select.recv(&self.inputs.requests);
            select.recv(&self.inputs.peer_messages);
            select.recv(&self.inputs.control);
            // Either an input is ready or the tick is due; both lead to the drain.
            let _ = select.ready_timeout(timeout);
        }
        for _ in 0..INPUTS_PER_TURN_MAX {
            let mut progressed = false;
            if let Ok(request) = self.inputs.requests.try_recv() {
                self.accept(request)?;
                progressed = true;
            }
            if let Ok(message) = self.inputs.peer_messages.try_recv() {
                self.node.step(message)?;
                progressed = true;
            }
            match self.inputs.control.try_recv() {
                Ok(Control::Stop) | Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.node.request_stop();
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {}
            }
            if !progressed {
                break;
            }
        }
        self.node.submit()
    }

    fn accept(&mut self, request: ClientRequest) -> Result<(), NodeError> {
        match request {
            ClientRequest::Propose { command, reply } => {
                self.node.propose(&command, OneShot(reply));
            }
            ClientRequest::ReadBarrier { reply } => self.node.read(OneShot(reply)),
            ClientRequest::ChangeMembership {
                change,
                context,
                reply,
            } => {
                return self
                    .node
                    .change_membership(change, &context, OneShot(reply));
            }
        }
        Ok(())
    }

    fn tick_if_due(&mut self) -> Result<(), NodeError> {
        let now = Instant::now();
        if now < self.next_tick {
            return Ok(());
        }
        self.node.tick()?;
        self.next_tick += self.inputs.tick_interval;
        if self.next_tick < now {
            // The thread was held up (a slow sync); do not fire a burst of ticks.
            self.next_tick = now + self.inputs.tick_interval;
        }
        Ok(())
    }

    fn publish_status(&self) {
        let log = self.node.log();
        self.inputs.status.publish(StatusProgress {
            leader: self.node.leader(),
            term: log.hard_state().term,
            last_index: log.last_index(),
            applied: node::StateMachine::applied_index(self.node.state_machine()),
            snapshot_index: log.snapshot_meta().index,
            disk_full: self.node.disk_full().map(str::to_owned),
        });
    }
}
