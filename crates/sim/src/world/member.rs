//! One simulated member: the real core over a simulated disk, its state
//! machine, and the requests it is serving. Handles a `Ready` in the order
//! the persistence contract needs — `messages` at once, the write after a
//! seeded fsync latency, then `persisted_messages`, applying and reads —
//! and feeds no input to the core between `ready()` and `advance()`.
//!
//! Owns: the durability model (what a crash keeps, including torn writes),
//! crash and restart, and reporting each member's actions to the checkers.
//! Must never: let the core see a write as durable before its fsync ends
//! (unless the `persisted_messages_before_fsync` mutation asks for the bug).

use std::collections::{BTreeSet, VecDeque};

use raft::{
    ConfChange, ConfState, Config, Entry, EntryKind, LogIndex, MemStorage, Message, NodeId,
    RaftError, RawNode, ReadState, Ready, Role, Snapshot, SnapshotMeta, Storage, Term, NO_NODE,
};

use super::client::{ClientReply, ClientRequest};
use super::{simulator_fault, Event, World};
use crate::config::ReadMode;
use crate::invariants::DurableLogs;
use crate::kv::{ApplyOutcome, Command, KvInput, KvOutput, KvStore};
use crate::log_view::NodeLog;
use crate::trace::Happening;
use crate::violation::{Invariant, Violation};

/// Inputs a busy member holds until its fsync ends; beyond this many the
/// newest messages are dropped, like a full socket buffer.
const INBOX_INPUTS_MAX: usize = 4096;
/// Reads and writes a member may hold for clients at once.
const WAITING_REQUESTS_MAX: usize = 1024;

/// Something for the core that may have to wait while the member is busy.
#[derive(Debug)]
pub(super) enum Input {
    Tick,
    Message(Message),
    Client(ClientRequest),
    /// A raw proposal from a scripted test.
    Propose(Vec<u8>),
    /// Hand leadership to this member (ignored unless leading).
    TransferLeader(NodeId),
    /// Propose this configuration change (ignored unless leading and the
    /// leader accepts it).
    ConfChange(ConfChange),
}

/// A Get waiting for its read index to be confirmed and applied.
#[derive(Debug)]
struct WaitingRead {
    client_id: u64,
    request_id: u64,
    key: u8,
    context: Vec<u8>,
    index: Option<LogIndex>,
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) id: NodeId,
    /// The running core; `None` while crashed. Its storage holds exactly
    /// what is durable: writes reach it only when their fsync completes.
    raft: Option<RawNode<MemStorage>>,
    /// The durable storage while crashed.
    stored_while_down: Option<MemStorage>,
    /// Bumped on every crash, so events of a past life are ignored.
    pub(super) generation: u64,
    /// This member's tick period: the configured one, drifted.
    pub(super) tick_us: u64,
    /// A Ready whose write waits for its fsync.
    pending: Option<Ready>,
    /// The process is stopped (a long GC pause, SIGSTOP) until this virtual
    /// time: it neither ticks nor handles input, but keeps its state.
    pub(super) paused_until_us: Option<u64>,
    /// The pending write's fsync completed while the process was stopped; it
    /// learns of it when it resumes.
    fsync_deferred: bool,
    inbox: VecDeque<Input>,
    pub(super) store: KvStore,
    pub(super) applied: LogIndex,
    last_snapshot_index: LogIndex,
    pub(super) role: Role,
    pub(super) term: Term,
    pub(super) leader: NodeId,
    waiting_writes: BTreeSet<(u64, u64)>,
    waiting_reads: Vec<WaitingRead>,
    /// The member list as this member's server applied it: its snapshot's
    /// configuration, then every committed change it applied.
    pub(super) applied_conf: ConfState,
    /// Ids this member applied the removal of and has not seen re-added: it
    /// drops their vote requests, so a removed member that never learned of
    /// its removal cannot disturb the cluster by campaigning (etcd's transport
    /// refuses removed members outright; here an id may be re-added, and a
    /// member that lags behind the re-add must still hear it lead).
    pub(super) removed: BTreeSet<NodeId>,
    /// The cluster's founding voters, every one of them a member once.
    founding_voters: Vec<NodeId>,
}

impl Member {
    pub(super) fn new(id: NodeId, voters: Vec<NodeId>, tick_us: u64) -> Self {
        Self {
            id,
            raft: None,
            applied_conf: ConfState::with_voters(voters.clone()),
            removed: BTreeSet::new(),
            founding_voters: voters.clone(),
            stored_while_down: Some(MemStorage::new_with_voters(voters)),
            generation: 0,
            tick_us,
            pending: None,
            paused_until_us: None,
            fsync_deferred: false,
            inbox: VecDeque::new(),
            store: KvStore::default(),
            applied: 0,
            last_snapshot_index: 0,
            role: Role::Follower,
            term: 0,
            leader: NO_NODE,
            waiting_writes: BTreeSet::new(),
            waiting_reads: Vec::new(),
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.raft.is_some()
    }

    /// Whether a write of this member is waiting for its fsync (the member
    /// takes no input until it completes).
    pub(super) fn is_busy(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether inputs must wait in the inbox: during an fsync or a pause.
    fn holds_input(&self) -> bool {
        self.is_busy() || self.paused_until_us.is_some()
    }

    /// The index of a received snapshot whose write is still in flight.
    pub(super) fn pending_snapshot_index(&self) -> Option<LogIndex> {
        let ready = self.pending.as_ref()?;
        ready.snapshot.as_ref().map(|snapshot| snapshot.meta.index)
    }

    /// Takes `conf_state` as the applied member list: whoever was a member
    /// (of the old list, or a founding one) and is not in it now counts as
    /// removed; whoever is in it is not.
    fn adopt_applied_conf(&mut self, conf_state: ConfState) {
        let previous = self
            .applied_conf
            .voters
            .iter()
            .chain(&self.applied_conf.learners)
            .chain(&self.founding_voters);
        for &id in previous {
            if !conf_state.is_member(id) {
                self.removed.insert(id);
            }
        }
        self.removed.retain(|&id| !conf_state.is_member(id));
        self.applied_conf = conf_state;
    }

    /// The configuration in force in this member's core, if it runs.
    pub(super) fn conf_in_force(&self) -> Option<&ConfState> {
        self.raft.as_ref().map(RawNode::conf_state)
    }

    /// What survives a crash of this member right now.
    pub(super) fn durable_storage(&self) -> &MemStorage {
        match (&self.raft, &self.stored_while_down) {
            (Some(raft), _) => raft.storage(),
            (None, Some(storage)) => storage,
            (None, None) => unreachable!("a member always has storage, running or not"),
        }
    }
}

/// Every member's durable log, for the durable-majority check.
struct DurableView<'a>(&'a [Member]);

impl DurableLogs for DurableView<'_> {
    fn members(&self) -> Vec<NodeId> {
        self.0.iter().map(|member| member.id).collect()
    }

    fn durably_holds(&self, node: NodeId, index: LogIndex, term: Term) -> bool {
        let storage = self.0[(node - 1) as usize].durable_storage();
        let snapshot_index = storage.first_index().unwrap_or(1) - 1;
        index <= snapshot_index || storage.term(index).is_ok_and(|held| held == term)
    }
}

/// The size a message would have on the wire: a fixed header plus payloads.
pub(super) fn message_bytes(message: &Message) -> u64 {
    const HEADER_BYTES: u64 = 32;
    use raft::MessageBody::*;
    let payload = match &message.body {
        AppendEntries { entries, .. } => entries.iter().map(Entry::size_bytes).sum(),
        InstallSnapshot { snapshot } => snapshot.data.len() as u64,
        ForwardProposal { entries } => entries.iter().map(|data| data.len() as u64).sum(),
        ForwardReadIndex { context } | ReadIndexResponse { context, .. } => context.len() as u64,
        Heartbeat { read_context, .. } | HeartbeatResponse { read_context } => read_context
            .as_ref()
            .map_or(0, |context| context.len() as u64),
        _ => 0,
    };
    HEADER_BYTES + payload
}

/// The short name of a message kind, for traces.
pub(super) fn message_kind(message: &Message) -> &'static str {
    use raft::MessageBody::*;
    match &message.body {
        RequestVote { pre_vote: true, .. } => "PreVote",
        RequestVote { .. } => "RequestVote",
        RequestVoteResponse {
            pre_vote: true,
            granted: true,
        } => "PreVoteGranted",
        RequestVoteResponse { pre_vote: true, .. } => "PreVoteRejected",
        RequestVoteResponse { granted: true, .. } => "VoteGranted",
        RequestVoteResponse { .. } => "VoteRejected",
        AppendEntries { entries, .. } if entries.is_empty() => "AppendEntries(empty)",
        AppendEntries { .. } => "AppendEntries",
        AppendEntriesResponse(raft::AppendResponse::Accepted { .. }) => "AppendAccepted",
        AppendEntriesResponse(raft::AppendResponse::Rejected { .. }) => "AppendRejected",
        Heartbeat { .. } => "Heartbeat",
        HeartbeatResponse { .. } => "HeartbeatResponse",
        InstallSnapshot { .. } => "InstallSnapshot",
        TimeoutNow => "TimeoutNow",
        ForwardProposal { .. } => "ForwardProposal",
        ForwardReadIndex { .. } => "ForwardReadIndex",
        ReadIndexResponse { .. } => "ReadIndexResponse",
    }
}

/// The ReadIndex context of one attempt of a client's Get: each attempt is a
/// new read (as a server assigns a fresh id to every read it receives), unless
/// `reuse_across_attempts` makes retries repeat the first attempt's context.
fn read_context(request: &ClientRequest, reuse_across_attempts: bool) -> Vec<u8> {
    let attempt = if reuse_across_attempts {
        0
    } else {
        request.attempt
    };
    let mut context = request.client_id.to_le_bytes().to_vec();
    context.extend_from_slice(&request.request_id.to_le_bytes());
    context.extend_from_slice(&attempt.to_le_bytes());
    context
}

impl World {
    fn core_config(&mut self, node: NodeId, applied: LogIndex) -> Config {
        let mut config = Config::new(node);
        config.election_ticks = self.config.election_ticks;
        config.heartbeat_ticks = self.config.heartbeat_ticks;
        config.pre_vote = self.config.pre_vote;
        config.check_quorum = self.config.check_quorum;
        config.message_bytes_max = self.config.message_bytes_max;
        config.applied = applied;
        config.random_seed = self.rng.next_u64();
        #[cfg(feature = "mutations")]
        {
            config.mutation = self.config.core_mutation;
        }
        config
    }

    /// Boots `node` from its durable storage: the state machine is rebuilt
    /// from the snapshot, and the core re-delivers the committed entries after it.
    pub(super) fn start_member(&mut self, node: NodeId) {
        let index = (node - 1) as usize;
        let Some(storage) = self.members[index].stored_while_down.take() else {
            return;
        };
        let snapshot = storage.snapshot().unwrap_or_default();
        let store = match KvStore::decode_snapshot(&snapshot.data) {
            Ok(store) => store,
            Err(error) => {
                let detail = format!("node {node}'s durable snapshot does not decode: {error}");
                return self.fail(simulator_fault(node, self.now_us, detail));
            }
        };
        let hard_state = storage.hard_state();
        let last_index = storage.last_index().unwrap_or(0);
        let config = self.core_config(node, snapshot.meta.index);
        let raft = match RawNode::new(&config, storage) {
            Ok(raft) => raft,
            Err(error) => {
                return self.fail(core_failure(
                    node,
                    self.now_us,
                    format!("restart refused: {error}"),
                ))
            }
        };
        let member = &mut self.members[index];
        member.raft = Some(raft);
        member.adopt_applied_conf(snapshot.meta.conf_state.clone());
        member.store = store;
        member.applied = snapshot.meta.index;
        member.last_snapshot_index = snapshot.meta.index;
        member.role = Role::Follower;
        member.term = hard_state.term;
        member.leader = NO_NODE;
        let generation = member.generation;
        self.checker.observe_restart(node, hard_state.commit);
        self.record(
            node,
            Happening::Restarted {
                term: hard_state.term,
                commit: hard_state.commit,
                last_index,
            },
        );
        let offset = self.rng.between(1, self.member(node).tick_us);
        self.schedule(offset, Event::Tick { node, generation });
        self.drive(node);
    }

    /// Crashes `node`: the core and everything not yet durable are lost; a
    /// write in the middle of its fsync may be torn, keeping a prefix.
    pub(super) fn crash_member(&mut self, node: NodeId) {
        let torn_probability = self.config.disk.torn_write_probability;
        let index = (node - 1) as usize;
        let Some(raft) = self.members[index].raft.take() else {
            return;
        };
        let mut durable = raft.storage().clone();
        drop(raft);
        let mut torn_records_kept = None;
        if let Some(ready) = self.members[index].pending.take() {
            self.stats.crashes_during_fsync += 1;
            if self.rng.chance(torn_probability) {
                self.stats.torn_writes += 1;
                let records = usize::from(ready.snapshot.is_some())
                    + ready.entries.len()
                    + usize::from(ready.hard_state.is_some());
                let kept = self.rng.index(records.max(1));
                keep_torn_prefix(&mut durable, &ready, kept);
                torn_records_kept = Some(kept);
            }
        }
        let durable_last_index = durable.last_index().unwrap_or(0);
        let member = &mut self.members[index];
        debug_assert!(
            member.stored_while_down.is_none(),
            "a running member keeps no spare storage"
        );
        member.stored_while_down = Some(durable);
        member.generation += 1;
        member.paused_until_us = None;
        member.fsync_deferred = false;
        member.inbox.clear();
        member.waiting_writes.clear();
        member.waiting_reads.clear();
        member.role = Role::Follower;
        member.leader = NO_NODE;
        self.checker.observe_not_leader(node);
        self.stats.crashes += 1;
        self.record(
            node,
            Happening::Crashed {
                durable_last_index,
                torn_records_kept,
            },
        );
    }

    /// Stops `node`'s process for `duration_us`: it keeps its state but
    /// handles nothing until it resumes, then catches up on its inbox.
    pub(super) fn pause_member(&mut self, node: NodeId, duration_us: u64) {
        let until_us = self.now_us + duration_us;
        let member = self.member_mut(node);
        if !member.is_up() || member.paused_until_us.is_some() {
            return;
        }
        member.paused_until_us = Some(until_us);
        let generation = member.generation;
        self.stats.pauses += 1;
        self.record(
            node,
            Happening::Fault(format!("process paused for {} ms", duration_us / 1000)),
        );
        self.schedule(duration_us, Event::Resume { node, generation });
    }

    pub(super) fn on_resume(&mut self, node: NodeId, generation: u64) {
        let member = self.member_mut(node);
        if member.generation != generation || member.paused_until_us.is_none() {
            return;
        }
        member.paused_until_us = None;
        let deferred_write = std::mem::take(&mut member.fsync_deferred)
            .then(|| member.pending.take())
            .flatten();
        self.record(node, Happening::Fault(String::from("process resumes")));
        if let Some(ready) = deferred_write {
            self.acting_node = node;
            self.finish_ready(node, ready);
        }
        self.drive(node);
    }

    pub(super) fn on_tick(&mut self, node: NodeId, generation: u64) {
        let member = self.member(node);
        if member.generation != generation || !member.is_up() {
            return;
        }
        let tick_us = member.tick_us;
        self.schedule(tick_us, Event::Tick { node, generation });
        self.input(node, Input::Tick);
    }

    /// Hands `input` to `node`'s core now, or queues it while the member waits on its fsync.
    pub(super) fn input(&mut self, node: NodeId, input: Input) {
        let member = self.member_mut(node);
        if !member.is_up() {
            return;
        }
        if member.paused_until_us.is_some() && matches!(input, Input::Tick) {
            return;
        }
        if member.holds_input() {
            if member.inbox.len() >= INBOX_INPUTS_MAX && matches!(input, Input::Message(_)) {
                self.stats.messages_dropped += 1;
                return;
            }
            member.inbox.push_back(input);
            return;
        }
        self.feed(node, input);
        self.drive(node);
    }

    fn feed(&mut self, node: NodeId, input: Input) {
        self.acting_node = node;
        if let Input::Client(request) = input {
            return self.serve_request(node, request);
        }
        let Some(raft) = self.members[(node - 1) as usize].raft.as_mut() else {
            return;
        };
        let result = match input {
            Input::Tick => raft.tick(),
            Input::Message(message) => raft.step(message),
            Input::Propose(data) => match raft.propose(data) {
                Err(RaftError::NotLeader { .. } | RaftError::TransferInProgress { .. }) => Ok(()),
                other => other,
            },
            Input::TransferLeader(target) => match raft.transfer_leader(target) {
                Err(
                    RaftError::NotLeader { .. }
                    | RaftError::TransferInProgress { .. }
                    | RaftError::UnknownMember(_),
                ) => Ok(()),
                other => other,
            },
            Input::ConfChange(change) => match raft.propose_conf_change(change, Vec::new()) {
                Err(
                    RaftError::NotLeader { .. }
                    | RaftError::TransferInProgress { .. }
                    | RaftError::ConfChangePending { .. }
                    | RaftError::ConfChangeBeforeTermCommitted { .. }
                    | RaftError::InvalidConfChange(_),
                ) => Ok(()),
                other => other,
            },
            Input::Client(_) => Ok(()),
        };
        if let Err(error) = result {
            let detail = format!("node {node}'s core refused input: {error}");
            self.fail(core_failure(node, self.now_us, detail));
        }
    }

    /// Takes a client request at `node`: writes are proposed, Gets go through
    /// ReadIndex (or, with the unsafe read mode, are answered at once).
    fn serve_request(&mut self, node: NodeId, request: ClientRequest) {
        let read_mode = self.config.workload.read_mode;
        let reuse_context = self.config.workload.read_context_reused_on_retry;
        let member = &mut self.members[(node - 1) as usize];
        let result = match request.input {
            KvInput::Get { key } if read_mode == ReadMode::LocalUnsafe => {
                let output = KvOutput::Value(member.store.get(key));
                let request_id = request.request_id;
                let reply = ClientReply::Done {
                    request_id,
                    output,
                    served_by: node,
                };
                return self.reply(request.client_id, reply);
            }
            KvInput::Get { key } => {
                member.start_read(&request, key, read_context(&request, reuse_context))
            }
            input => member.start_write(&request, input),
        };
        let not_leader = |leader| ClientReply::NotLeader {
            request_id: request.request_id,
            leader,
        };
        match result {
            Ok(()) => {}
            Err(RaftError::NotLeader { leader }) => {
                self.reply(request.client_id, not_leader(leader))
            }
            Err(RaftError::TransferInProgress { .. }) => {
                self.reply(request.client_id, not_leader(None))
            }
            Err(error) => {
                let detail = format!("request refused: {error}");
                self.fail(core_failure(node, self.now_us, detail))
            }
        }
    }

    /// Feeds queued inputs and handles Ready batches until the member has to
    /// wait for an fsync or has nothing left to do.
    pub(super) fn drive(&mut self, node: NodeId) {
        let index = (node - 1) as usize;
        loop {
            if self.violation.is_some() || self.members[index].holds_input() {
                return;
            }
            if let Some(input) = self.members[index].inbox.pop_front() {
                self.feed(node, input);
                continue;
            }
            let Some(raft) = self.members[index].raft.as_mut() else {
                return;
            };
            if !raft.has_ready() {
                return;
            }
            self.acting_node = node;
            match raft.ready() {
                Ok(ready) => self.begin_ready(node, ready),
                Err(error) => {
                    let detail = format!("node {node}'s core could not produce a Ready: {error}");
                    return self.fail(core_failure(node, self.now_us, detail));
                }
            }
        }
    }

    /// The first half of handling a Ready: observe it, send what may go at
    /// once, and start the write (or finish at once when nothing is written).
    fn begin_ready(&mut self, node: NodeId, mut ready: Ready) {
        debug_assert!(
            self.member(node).is_up() && !self.member(node).is_busy(),
            "a Ready while busy or down"
        );
        debug_assert!(
            ready
                .entries
                .windows(2)
                .all(|pair| pair[1].index == pair[0].index + 1),
            "Ready entries are contiguous"
        );
        self.record(
            node,
            Happening::Ready {
                entries: ready.entries.len(),
                first_index: ready.entries.first().map_or(0, |entry| entry.index),
                commit: ready.hard_state.map(|hard_state| hard_state.commit),
                snapshot_index: ready.snapshot.as_ref().map(|snapshot| snapshot.meta.index),
                messages: ready.messages.len(),
                persisted_messages: ready.persisted_messages.len(),
                committed: ready.committed_entries.len(),
            },
        );
        self.observe_ready(node, &ready);
        for message in std::mem::take(&mut ready.messages) {
            self.send_message(message);
        }
        if self.config.mutations.persisted_messages_before_fsync {
            for message in std::mem::take(&mut ready.persisted_messages) {
                self.send_message(message);
            }
        }
        let writes =
            ready.snapshot.is_some() || !ready.entries.is_empty() || ready.hard_state.is_some();
        if !writes {
            return self.finish_ready(node, ready);
        }
        let latency = self
            .rng
            .between(self.config.disk.fsync_us_min, self.config.disk.fsync_us_max);
        let member = self.member_mut(node);
        let generation = member.generation;
        member.pending = Some(ready);
        self.stats.fsyncs += 1;
        self.schedule(latency, Event::FsyncDone { node, generation });
    }

    /// Reports a Ready's role, appends and commit to the safety checker.
    fn observe_ready(&mut self, node: NodeId, ready: &Ready) {
        let index = (node - 1) as usize;
        if let Some(hard_state) = ready.hard_state {
            self.members[index].term = hard_state.term;
        }
        let term = self.members[index].term;
        let was_leader = self.members[index].role == Role::Leader;
        if let Some(soft_state) = ready.soft_state {
            let member = &mut self.members[index];
            member.role = soft_state.role;
            member.leader = soft_state.leader;
            self.record(
                node,
                Happening::Role {
                    role: soft_state.role,
                    term,
                    leader: soft_state.leader,
                },
            );
        }
        let now_us = self.now_us;
        let member = &self.members[index];
        let pending_snapshot = ready.snapshot.as_ref().map(|snapshot| &snapshot.meta);
        let before = NodeLog {
            storage: member.durable_storage(),
            pending_snapshot,
            pending_entries: &[],
        };
        let after = NodeLog {
            pending_entries: &ready.entries,
            ..before
        };
        let mut result = self
            .checker
            .observe_append(node, term, &before, &ready.entries, now_us);
        if result.is_ok() && ready.soft_state.is_some() {
            if member.role == Role::Leader {
                result = self.checker.observe_leader(node, term, &after, now_us);
            } else {
                self.checker.observe_not_leader(node);
            }
        }
        if let (Ok(()), Some(hard_state)) = (&result, ready.hard_state) {
            let durable = DurableView(&self.members);
            // A leader that removed itself steps down in the Ready that
            // commits its removal: that commit is still its own.
            let leads = was_leader || member.role == Role::Leader;
            let leader_durable = leads.then_some(&durable as &dyn DurableLogs);
            result = self.checker.observe_commit(
                node,
                term,
                hard_state.commit,
                &after,
                leader_durable,
                now_us,
            );
        }
        let appends_conf_change = ready
            .entries
            .iter()
            .any(|entry| matches!(entry.kind, EntryKind::ConfChange(_)));
        if result.is_ok() && member.role == Role::Leader && appends_conf_change {
            let commit = self.checker.commit_of(node);
            result = self
                .checker
                .observe_leader_conf_change(node, commit, &after, now_us);
        }
        self.check(result);
    }

    pub(super) fn on_fsync_done(&mut self, node: NodeId, generation: u64) {
        let member = self.member_mut(node);
        if member.generation != generation {
            return;
        }
        if member.paused_until_us.is_some() {
            // A stopped process learns of its fsync when it runs again,
            // whether its pause ends as planned or the world heals it early.
            member.fsync_deferred = true;
            return;
        }
        let Some(ready) = member.pending.take() else {
            return;
        };
        self.acting_node = node;
        self.finish_ready(node, ready);
        self.drive(node);
    }

    /// The second half: make the write durable, send what it promised, apply,
    /// serve reads, and `advance`.
    fn finish_ready(&mut self, node: NodeId, ready: Ready) {
        debug_assert!(
            self.member(node).pending.is_none(),
            "finishing a Ready while another waits"
        );
        let applied_before = self.member(node).applied;
        let installs_snapshot = ready.snapshot.is_some();
        if let Err(violation) = self.persist(node, &ready) {
            return self.fail(violation);
        }
        for message in ready.persisted_messages {
            self.send_message(message);
        }
        if let Some(snapshot) = &ready.snapshot {
            self.restore_snapshot(node, snapshot);
        }
        for entry in &ready.committed_entries {
            self.apply_entry(node, entry);
        }
        let member = self.member_mut(node);
        for read_state in ready.read_states {
            member.note_read_state(read_state);
        }
        if let Some(Err(error)) = member.raft.as_mut().map(|raft| raft.advance()) {
            let detail = format!("node {node}'s core could not advance: {error}");
            return self.fail(core_failure(node, self.now_us, detail));
        }
        self.serve_reads(node);
        self.maybe_compact(node);
        debug_assert!(
            self.violation.is_some()
                || installs_snapshot
                || self.member(node).applied >= applied_before,
            "applied index went backwards without a snapshot"
        );
    }

    fn persist(&mut self, node: NodeId, ready: &Ready) -> Result<(), Violation> {
        let now_us = self.now_us;
        let member = self.member_mut(node);
        let Some(raft) = member.raft.as_mut() else {
            return Ok(());
        };
        let storage = raft.storage_mut();
        if let Some(snapshot) = &ready.snapshot {
            storage.apply_snapshot(snapshot.clone());
        }
        storage.append(&ready.entries).map_err(|error| {
            core_failure(
                node,
                now_us,
                format!("Ready entries do not fit the log: {error}"),
            )
        })?;
        if let Some(hard_state) = ready.hard_state {
            storage.set_hard_state(hard_state);
        }
        let durable_last_index = storage.last_index().unwrap_or(0);
        let wrote =
            ready.snapshot.is_some() || !ready.entries.is_empty() || ready.hard_state.is_some();
        if let Some(hard_state) = ready.hard_state {
            self.checker
                .observe_durable_commit(node, hard_state.commit, now_us)?;
        }
        if wrote {
            self.record(
                node,
                Happening::FsyncDone {
                    last_index: durable_last_index,
                },
            );
        }
        Ok(())
    }

    fn restore_snapshot(&mut self, node: NodeId, snapshot: &Snapshot) {
        match KvStore::decode_snapshot(&snapshot.data) {
            Ok(store) => {
                let member = self.member_mut(node);
                member.adopt_applied_conf(snapshot.meta.conf_state.clone());
                member.store = store;
                member.applied = snapshot.meta.index;
                member.last_snapshot_index = snapshot.meta.index;
                self.stats.snapshots_installed += 1;
            }
            Err(error) => {
                let detail = format!(
                    "snapshot at index {} does not decode: {error}",
                    snapshot.meta.index
                );
                self.fail(simulator_fault(node, self.now_us, detail));
            }
        }
    }

    fn apply_entry(&mut self, node: NodeId, entry: &Entry) {
        let expected = self.member(node).applied + 1;
        if entry.index != expected {
            let detail = format!(
                "handed index {} to apply, but the next to apply is {expected}",
                entry.index
            );
            return self.fail(core_failure(node, self.now_us, detail));
        }
        let term = self.member(node).term;
        let result = self.checker.observe_apply(node, term, entry, self.now_us);
        self.check(result);
        self.member_mut(node).applied = entry.index;
        self.record(
            node,
            Happening::Applied {
                index: entry.index,
                term: entry.term,
            },
        );
        if let EntryKind::ConfChange(change) = entry.kind {
            let member = self.member_mut(node);
            if let Ok(next) = member.applied_conf.apply(change) {
                member.adopt_applied_conf(next);
            }
            self.record(node, Happening::ConfApplied(change));
            return;
        }
        if entry.kind != EntryKind::Normal {
            return;
        }
        let command = match Command::decode(&entry.data) {
            Ok(command) => command,
            Err(error) => {
                let detail = format!("entry {} does not decode: {error}", entry.index);
                return self.fail(simulator_fault(node, self.now_us, detail));
            }
        };
        let member = self.member_mut(node);
        let outcome = member.store.apply(&command);
        let waited = member
            .waiting_writes
            .remove(&(command.client_id, command.request_id));
        if let (ApplyOutcome::Answered(output), true) = (outcome, waited) {
            self.reply(
                command.client_id,
                ClientReply::Done {
                    request_id: command.request_id,
                    output,
                    served_by: node,
                },
            );
        }
    }

    fn serve_reads(&mut self, node: NodeId) {
        let member = self.member_mut(node);
        let applied = member.applied;
        let mut ready_reads = Vec::new();
        member.waiting_reads.retain(|read| {
            let ready = read.index.is_some_and(|index| index <= applied);
            if ready {
                ready_reads.push((read.client_id, read.request_id, read.key));
            }
            !ready
        });
        for (client_id, request_id, key) in ready_reads {
            let output = KvOutput::Value(self.member(node).store.get(key));
            self.reply(
                client_id,
                ClientReply::Done {
                    request_id,
                    output,
                    served_by: node,
                },
            );
        }
    }

    /// Every `snapshot_interval_entries` applied entries, the member writes
    /// its state machine as a snapshot and compacts its log (an atomic,
    /// immediately durable snapshot file).
    fn maybe_compact(&mut self, node: NodeId) {
        let interval = self.config.snapshot_interval_entries;
        let now_us = self.now_us;
        let member = self.member_mut(node);
        if interval == 0 || member.applied < member.last_snapshot_index + interval {
            return;
        }
        let Some(raft) = member.raft.as_mut() else {
            return;
        };
        let applied = member.applied;
        let storage = raft.storage();
        let (Ok(term), Some(conf_state)) = (storage.term(applied), raft.conf_state_at(applied))
        else {
            let detail = format!(
                "applied index {applied} is not in the durable log, or its configuration is unknown"
            );
            return self.fail(simulator_fault(node, now_us, detail));
        };
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index: applied,
                term,
                conf_state: conf_state.clone(),
            },
            data: member.store.encode_snapshot(),
        };
        if let Err(error) = raft.storage_mut().compact(snapshot) {
            let detail = format!("compaction at {applied} refused: {error}");
            return self.fail(simulator_fault(node, now_us, detail));
        }
        member.last_snapshot_index = applied;
        self.record(node, Happening::Compacted { index: applied });
    }
}

impl Member {
    /// Asks the core for a read index for a client's Get and remembers the
    /// Get until the index is confirmed and applied.
    fn start_read(
        &mut self,
        request: &ClientRequest,
        key: u8,
        context: Vec<u8>,
    ) -> Result<(), RaftError> {
        let Some(raft) = self.raft.as_mut() else {
            return Ok(());
        };
        raft.read_index(context.clone())?;
        let identity = (request.client_id, request.request_id);
        self.waiting_reads
            .retain(|read| (read.client_id, read.request_id) != identity);
        if self.waiting_reads.len() < WAITING_REQUESTS_MAX {
            self.waiting_reads.push(WaitingRead {
                client_id: request.client_id,
                request_id: request.request_id,
                key,
                context,
                index: None,
            });
        }
        Ok(())
    }

    /// Proposes a client's write and remembers it until it is applied here.
    fn start_write(&mut self, request: &ClientRequest, input: KvInput) -> Result<(), RaftError> {
        let Some(raft) = self.raft.as_mut() else {
            return Ok(());
        };
        let command = Command {
            client_id: request.client_id,
            request_id: request.request_id,
            input,
        };
        raft.propose(command.encode())?;
        if self.waiting_writes.len() < WAITING_REQUESTS_MAX {
            self.waiting_writes
                .insert((request.client_id, request.request_id));
        }
        Ok(())
    }

    fn note_read_state(&mut self, read_state: ReadState) {
        if let Some(read) = self
            .waiting_reads
            .iter_mut()
            .find(|read| read.context == read_state.context)
        {
            read.index = Some(read_state.index);
        }
    }
}

/// Applies the first `kept` records of `ready`'s write (snapshot, then
/// entries) to `durable`: a write torn by a crash. `kept` is below the number
/// of records, so the hard state, written last, never survives a tear.
fn keep_torn_prefix(durable: &mut MemStorage, ready: &Ready, mut kept: usize) {
    if let Some(snapshot) = &ready.snapshot {
        if kept == 0 {
            return;
        }
        durable.apply_snapshot(snapshot.clone());
        kept -= 1;
    }
    let entries = &ready.entries[..kept.min(ready.entries.len())];
    let appended = durable.append(entries);
    debug_assert!(
        appended.is_ok(),
        "a torn prefix of a valid write is a valid write"
    );
}

fn core_failure(node: NodeId, time_us: u64, detail: String) -> Violation {
    Violation::new(Invariant::CoreFailure, vec![node], time_us, detail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FaultSet, SimConfig};
    use crate::trace::{Happening, TraceRecord};
    use raft::HardState;

    fn entry(index: LogIndex, term: Term) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![index as u8],
        }
    }

    #[test]
    fn a_torn_write_keeps_a_prefix_of_entries_and_never_the_hard_state() {
        let mut durable = MemStorage::default();
        durable.append(&[entry(1, 1)]).unwrap();
        let ready = Ready {
            entries: vec![entry(2, 2), entry(3, 2), entry(4, 2)],
            hard_state: Some(HardState {
                term: 2,
                vote: 1,
                commit: 3,
            }),
            ..Ready::default()
        };
        keep_torn_prefix(&mut durable, &ready, 2);
        assert_eq!(durable.last_index().unwrap(), 3);
        assert_eq!(durable.hard_state(), HardState::default());
        keep_torn_prefix(&mut durable, &ready, 0);
        assert_eq!(
            durable.last_index().unwrap(),
            3,
            "an empty prefix changes nothing"
        );
    }

    fn quiet_world(seed: u64, mutated: bool) -> World {
        let mut config = SimConfig::new(3, FaultSet::none());
        config.workload.client_count = 0;
        config.trace_events_max = 100_000;
        config.disk.fsync_us_min = 2_000;
        config.disk.fsync_us_max = 4_000;
        config.mutations.persisted_messages_before_fsync = mutated;
        let mut world = World::new(config, seed);
        assert!(world.run_until(2_000_000, |world| world.leader().is_some()));
        world
    }

    /// Has the leader of `world` propose `value` and runs until its write of
    /// the entry is in flight; returns the leader and the last index written.
    fn leader_mid_write(world: &mut World, value: u64) -> (NodeId, Option<LogIndex>) {
        let leader = world.leader().unwrap_or_else(|| unreachable!());
        world.propose(leader, value);
        let syncing = world.run_until(100_000, |world| {
            world
                .member(leader)
                .pending
                .as_ref()
                .is_some_and(|ready| !ready.entries.is_empty())
        });
        assert!(syncing, "the leader never started writing the proposal");
        let pending_last = world
            .member(leader)
            .pending
            .as_ref()
            .and_then(|ready| ready.entries.last())
            .map(|entry| entry.index);
        (leader, pending_last)
    }

    #[test]
    fn a_crash_mid_fsync_loses_the_write() {
        let mut world = quiet_world(5, false);
        let (leader, pending_last) = leader_mid_write(&mut world, 77);
        world.config.disk.torn_write_probability = 0.0;
        world.crash(leader);
        assert!(
            Some(world.durable_last_index(leader)) < pending_last,
            "an unsynced write survived the crash"
        );
    }

    #[test]
    fn a_write_finished_during_a_pause_completes_when_healing_resumes_early() {
        let mut world = quiet_world(5, false);
        let (leader, written_last) = leader_mid_write(&mut world, 78);
        let written_last = written_last.unwrap_or(0);
        world.pause(leader, 10_000_000);
        world.run_for(50_000);
        assert!(
            world.durable_last_index(leader) < written_last,
            "paused: the write waits"
        );
        let generation = world.member(leader).generation;
        world.on_resume(leader, generation);
        assert!(
            world.durable_last_index(leader) >= written_last,
            "resumed before the pause's planned end, the member learns its fsync is done"
        );
    }

    /// Whether every vote or append answer a member sent was preceded by the
    /// fsync of the Ready that produced it (when that Ready wrote anything).
    fn answers_wait_for_fsync(trace: &[TraceRecord]) -> bool {
        let mut awaiting_fsync = std::collections::BTreeMap::new();
        for record in trace {
            match &record.happening {
                Happening::Ready {
                    entries,
                    commit,
                    snapshot_index,
                    ..
                } => {
                    let writes = *entries > 0 || commit.is_some() || snapshot_index.is_some();
                    awaiting_fsync.insert(record.node, writes);
                }
                Happening::FsyncDone { .. } => {
                    awaiting_fsync.insert(record.node, false);
                }
                Happening::Sent { kind, .. }
                    if [
                        "AppendAccepted",
                        "AppendRejected",
                        "VoteGranted",
                        "VoteRejected",
                    ]
                    .contains(kind)
                        && awaiting_fsync.get(&record.node) == Some(&true) =>
                {
                    return false;
                }
                _ => {}
            }
        }
        true
    }

    #[test]
    fn vote_and_append_answers_leave_only_after_fsync() {
        for mutated in [false, true] {
            let mut world = quiet_world(9, mutated);
            let leader = world.leader().unwrap_or_else(|| unreachable!());
            for value in 0..5 {
                world.propose(leader, value);
                world.run_for(20_000);
            }
            let trace = world.trace.recent();
            assert_eq!(
                answers_wait_for_fsync(&trace),
                !mutated,
                "mutated: {mutated}"
            );
        }
    }
}
