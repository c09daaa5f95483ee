//! The node loop's state and its steps. [`Node`] owns the core over the log
//! and is the only writer of the state machine. The embedder feeds it inputs
//! (client requests, peer messages, ticks), calls [`Node::submit`] once per
//! batch of inputs (so a thousand proposals become one append and one sync),
//! and handles each `Ready` in two steps around the log's sync:
//! [`Node::persist_ready`] sends what may leave at once, applies what is
//! already durable and writes; [`Node::complete_ready`], once that write is
//! durable, sends what needed it, applies the rest and releases reads. The
//! server calls the two back to back; the simulator lets virtual time pass
//! between them, as an fsync takes time.
//!
//! A log write that fails for want of space does not stop the node: it holds
//! that Ready (its promising messages unsent, its entries unapplied) and
//! retries the write with a doubling wait counted in ticks
//! ([`DISK_FULL_RETRY_TICKS_FIRST`] up to [`DISK_FULL_RETRY_TICKS_MAX`]).
//! Meanwhile the core takes no input at all (a Ready is out and not
//! advanced): peer messages are dropped as a lossy network would, new
//! writes are refused at once with [`RequestError::NoSpace`], and reads
//! wait. Once a retry succeeds, the Ready is completed as if the write had
//! only been slow.

use raft::{
    Entry, EntryKind, LogIndex, LogStore, Message, MessageBody, NodeId, RaftError, RawNode, Ready,
    Snapshot, SnapshotMeta, Storage, NO_NODE,
};

use crate::envelope::{self, ProposalId};
use crate::host::{Committed, Host, Member, Observer, Outbox, Reply, RequestError, StateMachine};
use crate::members::{MemberContext, MemberList};
use crate::snapshots::SnapshotSchedule;
use crate::waiters::{Proposals, Reads};

/// Committed entries applied in one state machine call at most.
const APPLY_BATCH_ENTRIES_MAX: usize = 4096;
/// Ticks before the first retry of a log write the disk had no room for
/// (one heartbeat interval, 100 ms by default): space freed by an operator
/// is noticed at once.
pub const DISK_FULL_RETRY_TICKS_FIRST: u64 = 1;
/// The longest wait between retries (about a second by default): a disk
/// that stays full costs a write attempt per second, no more.
pub const DISK_FULL_RETRY_TICKS_MAX: u64 = 10;

/// Why the node had to stop: its log or state machine failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("Raft log: {0}")]
    Log(Box<dyn std::error::Error + Send + Sync>),
    #[error("state machine: {0}")]
    StateMachine(Box<dyn std::error::Error + Send + Sync>),
    #[error("consensus core: {0}")]
    Raft(#[from] RaftError),
}

impl NodeError {
    fn log(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        NodeError::Log(Box::new(error))
    }

    fn state_machine(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        NodeError::StateMachine(Box::new(error))
    }
}

/// What a node needs besides its host's parts.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Differs between boots of the same member, so a request number reused
    /// after a restart never matches an entry proposed before it.
    pub boot_id: u64,
    pub election_ticks: u32,
    /// A client request not answered within this many ticks times out.
    pub request_timeout_ticks: u64,
    /// Applied entries between state machine snapshots.
    pub snapshot_entries: u64,
    /// The members named at start (`--initial-cluster`), to describe members
    /// a snapshot's configuration names by id alone.
    pub configured_members: Vec<Member>,
}

/// A deliberate bug, switched on by [`Node::set_mutation`] in test builds so
/// the simulator can prove its checkers catch it.
#[cfg(feature = "mutations")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Sends a Ready's `persisted_messages` (vote grants, append
    /// acknowledgements) before the write they promise is durable.
    PersistedMessagesBeforeSync,
    /// Releases a read barrier once its read index is confirmed, without
    /// waiting for the state machine to apply up to it.
    ReadBeforeApplied,
    /// Answers a write as soon as its entry is durable in this member's
    /// log, before it commits and is applied ("it is in the WAL"), with the
    /// answer the state machine guesses for it. (An answer once the entry
    /// commits but before it applies is no bug a linearizable read can see:
    /// its read index covers the entry, and it waits for the apply.)
    WriteAckedBeforeApplied,
    /// Lets a read that arrives while a read index request is in flight join
    /// that request, so it is released by an index asked before it arrived.
    ReadJoinsEarlierReadIndex,
    /// Applies the committed entries a Ready appends before its write is
    /// durable (the core's `committed_entries_after_persist`).
    ApplyBeforeDurable,
}

/// A `Ready` whose durable write was issued by [`Node::persist_ready`]; hand
/// it to [`Node::complete_ready`] once that write is durable.
#[must_use = "a Ready must be completed once its write is durable"]
#[derive(Debug)]
pub struct PersistedReady {
    ready: Ready,
}

/// A log write that failed for want of space, waiting to be retried.
#[derive(Debug)]
struct DiskFullStall {
    /// The Ready whose write failed; `None` when the write was the log's own
    /// (a sync before a compaction).
    ready: Option<Ready>,
    /// The failure as the log reported it: it names the file.
    error: String,
    retry_tick: u64,
    wait_ticks: u64,
    retries: u64,
}

/// The node loop of one member over the host's log, state machine and outbox.
pub struct Node<H: Host> {
    raft: RawNode<H::Log>,
    state_machine: H::StateMachine,
    outbox: H::Outbox,
    observer: H::Observer,
    options: NodeOptions,
    proposal_base: ProposalId,
    proposals: Proposals<H::CommandReply, H::MembershipReply>,
    reads: Reads<H::ReadReply>,
    /// Proposals taken since the last submit: (request number, envelope).
    gathered: Vec<(u64, Vec<u8>)>,
    /// Proposals made while no leader was known.
    awaiting_leader: Vec<(u64, Vec<u8>)>,
    next_request: u64,
    next_read_context: u64,
    leader: NodeId,
    ticks: u64,
    schedule: SnapshotSchedule,
    member_list: MemberList,
    /// A stop was asked for; a leader first hands leadership over.
    stop_requested: bool,
    /// The tick after which a stop proceeds even if the handover has not happened.
    stop_deadline_tick: u64,
    stopped: bool,
    /// The log's disk is full: the write held here waits for a retry.
    disk_full: Option<DiskFullStall>,
    #[cfg(feature = "mutations")]
    mutation: Option<Mutation>,
}

impl<H: Host> std::fmt::Debug for Node<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("member", &self.proposal_base.member_id)
            .field("leader", &self.leader)
            .field("ticks", &self.ticks)
            .field("proposals", &self.proposals)
            .field("reads", &self.reads)
            .finish_non_exhaustive()
    }
}

impl<H: Host> Node<H> {
    /// A node over a core restarted from `raft`'s log, with the state machine
    /// and member list as they were recovered, watched by `observer`. Call
    /// [`Node::start`] next.
    pub fn new(
        raft: RawNode<H::Log>,
        state_machine: H::StateMachine,
        outbox: H::Outbox,
        member_list: MemberList,
        options: NodeOptions,
        observer: H::Observer,
    ) -> Self {
        let snapshot_index = raft.storage().snapshot_meta().index;
        let schedule = SnapshotSchedule::new(
            options.snapshot_entries,
            snapshot_index.max(state_machine.applied_index()),
        );
        let proposal_base = ProposalId {
            member_id: raft.status().id,
            boot_id: options.boot_id,
            request: 0,
        };
        Self {
            raft,
            state_machine,
            outbox,
            observer,
            options,
            proposal_base,
            proposals: Proposals::default(),
            reads: Reads::default(),
            gathered: Vec::new(),
            awaiting_leader: Vec::new(),
            next_request: 1,
            next_read_context: 1,
            leader: NO_NODE,
            ticks: 0,
            schedule,
            member_list,
            stop_requested: false,
            stop_deadline_tick: 0,
            stopped: false,
            disk_full: None,
            #[cfg(feature = "mutations")]
            mutation: None,
        }
    }

    /// Switches on a deliberate bug (test builds only).
    #[cfg(feature = "mutations")]
    pub fn set_mutation(&mut self, mutation: Option<Mutation>) {
        self.mutation = mutation;
    }

    /// Tells the outbox whom to send to and, for a lone voter, campaigns at
    /// once: it need not wait an election timeout to lead.
    pub fn start(&mut self) -> Result<(), NodeError> {
        self.outbox.set_members(&self.member_list.members);
        if self.raft.conf_state().voters == [self.member_id()] {
            self.raft.campaign()?;
        }
        Ok(())
    }

    pub fn member_id(&self) -> NodeId {
        self.proposal_base.member_id
    }

    /// The leader this member knows of.
    pub fn leader(&self) -> Option<NodeId> {
        (self.leader != NO_NODE).then_some(self.leader)
    }

    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    pub fn log(&self) -> &H::Log {
        self.raft.storage()
    }

    /// The log, for an embedder whose writes finish outside the node's calls:
    /// the simulator completes a write issued by [`Node::persist_ready`]
    /// when its simulated fsync ends, before [`Node::complete_ready`]. It
    /// must never change what the core was told is in the log.
    pub fn log_mut(&mut self) -> &mut H::Log {
        self.raft.storage_mut()
    }

    pub fn state_machine(&self) -> &H::StateMachine {
        &self.state_machine
    }

    pub fn members(&self) -> &MemberList {
        &self.member_list
    }

    pub fn raft(&self) -> &RawNode<H::Log> {
        &self.raft
    }

    /// Whether a stop was asked for and has finished its handover.
    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// While a log write waits for disk space: why, as the log said (naming
    /// the file). Writes are refused and peers get no answers until it ends.
    pub fn disk_full(&self) -> Option<&str> {
        self.disk_full.as_ref().map(|stall| stall.error.as_str())
    }

    fn next_proposal_id(&mut self) -> (u64, ProposalId) {
        let number = self.next_request;
        self.next_request += 1;
        let id = ProposalId {
            request: number,
            ..self.proposal_base
        };
        (number, id)
    }

    fn deadline_tick(&self) -> u64 {
        self.ticks + self.options.request_timeout_ticks
    }

    /// Takes a client's command; `reply` gets the state machine's answer once
    /// the entry is applied here, or why it never will be.
    pub fn propose(&mut self, command: &[u8], reply: H::CommandReply) {
        if self.disk_full.is_some() {
            reply.send(Err(RequestError::NoSpace));
            return;
        }
        let (number, id) = self.next_proposal_id();
        self.proposals.insert(number, reply, self.deadline_tick());
        self.gathered.push((number, envelope::encode(id, command)));
    }

    /// Takes a linearizable read: `reply` is answered once a read index asked
    /// after this call is applied here, so a read started then sees every
    /// write acknowledged before this call.
    pub fn read(&mut self, reply: H::ReadReply) {
        self.reads.queue(reply, self.deadline_tick());
    }

    /// Takes a configuration change; `context` is the encoded
    /// [`MemberContext`]. `reply` is answered once it is applied here.
    pub fn change_membership(
        &mut self,
        change: raft::ConfChange,
        context: &[u8],
        reply: H::MembershipReply,
    ) -> Result<(), NodeError> {
        if self.disk_full.is_some() {
            reply.send(Err(RequestError::NoSpace));
            return Ok(());
        }
        let (number, id) = self.next_proposal_id();
        self.proposals
            .insert_membership(number, reply, self.deadline_tick());
        match self
            .raft
            .propose_conf_change(change, envelope::encode(id, context))
        {
            Ok(()) => self.proposals.mark_proposed(number),
            Err(error @ RaftError::Storage(_)) => {
                self.proposals
                    .fail(number, RequestError::Storage(error.to_string()));
                return Err(error.into());
            }
            Err(error) => {
                tracing::info!(%error, ?change, "configuration change refused by the core");
                self.proposals
                    .fail(number, RequestError::Reconfiguration(error));
            }
        }
        Ok(())
    }

    /// Asks the core to hand leadership to `target`; refused unless this
    /// member leads and knows `target`, and while its disk is full (the core
    /// takes no input then; its peers elect a leader without it).
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), RaftError> {
        if self.disk_full.is_some() {
            return Err(RaftError::NotLeader { leader: None });
        }
        self.raft.transfer_leader(target)
    }

    /// Hands a peer's message to the core. Vote requests from a member whose
    /// removal this member applied are ignored: a removed member may still
    /// be running and campaigning, and must not disturb the cluster it left.
    /// Every other message is heard, vote requests from ids this member
    /// does not know included: a member added by a change this member has
    /// not received yet may already lead, or need this member's vote to
    /// elect a leader that can tell it of the change.
    /// A message the core refuses is dropped; a failed read of the log
    /// stops the node.
    pub fn step(&mut self, message: Message) -> Result<(), NodeError> {
        let from = message.from;
        if self.disk_full.is_some() {
            tracing::trace!(
                from = format_args!("{from:x}"),
                "dropped a peer message while the log waits for disk space"
            );
            return Ok(());
        }
        let campaigns = matches!(message.body, MessageBody::RequestVote { .. });
        if campaigns && self.member_list.was_removed(from) {
            tracing::debug!(
                from = format_args!("{from:x}"),
                "ignored a vote request from a removed member"
            );
            return Ok(());
        }
        match self.raft.step(message) {
            Ok(()) => Ok(()),
            Err(error @ RaftError::Storage(_)) => Err(error.into()),
            Err(error) => {
                tracing::debug!(from = format_args!("{from:x}"), %error, "dropped a peer message");
                Ok(())
            }
        }
    }

    /// One heartbeat interval passed: ticks the core, times out waiters past
    /// their deadline, and asks again reads whose confirmation is overdue.
    pub fn tick(&mut self) -> Result<(), NodeError> {
        if self.disk_full.is_none() {
            self.raft.tick()?;
        }
        self.ticks += 1;
        self.proposals.expire(self.ticks);
        self.reads.expire(self.ticks);
        let resend_ticks = u64::from(self.options.election_ticks);
        self.reads
            .requeue_issued_before(self.ticks.saturating_sub(resend_ticks));
        Ok(())
    }

    /// Hands the core everything taken since the last call: all proposals as
    /// one batch, and one read index for all queued reads.
    pub fn submit(&mut self) -> Result<(), NodeError> {
        if self.disk_full.is_some() {
            self.refuse_gathered();
            return Ok(());
        }
        self.propose_gathered()?;
        self.issue_reads()
    }

    /// Proposals taken before the disk filled and not yet handed to the core.
    fn refuse_gathered(&mut self) {
        let mut refused = std::mem::take(&mut self.awaiting_leader);
        refused.append(&mut self.gathered);
        for (request, _) in refused {
            self.proposals.fail(request, RequestError::NoSpace);
        }
    }

    fn propose_gathered(&mut self) -> Result<(), NodeError> {
        let mut batch = std::mem::take(&mut self.awaiting_leader);
        batch.append(&mut self.gathered);
        batch.retain(|(request, _)| self.proposals.contains(*request));
        if batch.is_empty() {
            return Ok(());
        }
        if self.leader == NO_NODE {
            self.awaiting_leader = batch;
            return Ok(());
        }
        let (requests, envelopes): (Vec<u64>, Vec<Vec<u8>>) = batch.into_iter().unzip();
        match self.raft.propose_batch(envelopes) {
            Ok(()) => {
                for request in requests {
                    self.proposals.mark_proposed(request);
                }
            }
            Err(error) => {
                let refusal = match &error {
                    RaftError::NotLeader { leader: None } => RequestError::NoLeader,
                    RaftError::Storage(_) => RequestError::Storage(error.to_string()),
                    _ => RequestError::LeaderChanged,
                };
                tracing::debug!(%error, proposals = requests.len(), "proposals refused by the core");
                for request in requests {
                    self.proposals.fail(request, refusal.clone());
                }
                if let RaftError::Storage(_) = error {
                    return Err(error.into());
                }
            }
        }
        Ok(())
    }

    /// Asks one read index for every barrier queued since the last one. The
    /// context is new for every ask, so a confirmation always answers a
    /// question asked after the reads it releases arrived.
    fn issue_reads(&mut self) -> Result<(), NodeError> {
        if !self.reads.has_queued() || self.leader == NO_NODE {
            return Ok(());
        }
        #[cfg(feature = "mutations")]
        if self.mutation == Some(Mutation::ReadJoinsEarlierReadIndex)
            && self.reads.join_latest_issued()
        {
            return Ok(());
        }
        let mut context = self.proposal_base.boot_id.to_le_bytes().to_vec();
        context.extend_from_slice(&self.next_read_context.to_le_bytes());
        self.next_read_context += 1;
        match self.raft.read_index(context.clone()) {
            Ok(()) => self.reads.issue(context, self.ticks),
            Err(error @ RaftError::Storage(_)) => return Err(error.into()),
            Err(error) => tracing::debug!(%error, "read index deferred"),
        }
        Ok(())
    }

    /// Whether [`Node::persist_ready`] has work: a Ready from the core, or a
    /// retry due of a write the disk had no room for.
    pub fn has_ready(&self) -> bool {
        match &self.disk_full {
            Some(stall) => self.ticks >= stall.retry_tick,
            None => self.raft.has_ready(),
        }
    }

    /// The first half of handling a `Ready`, in the contract's order: sends
    /// the messages that promise nothing, installs a snapshot, applies the
    /// committed entries this log already holds durably, and writes the
    /// entries and hard state (syncing when the core says it must). `None`
    /// when the core has nothing to do.
    pub fn persist_ready(&mut self) -> Result<Option<PersistedReady>, NodeError> {
        if self.disk_full.is_some() {
            return self.retry_disk_full_write();
        }
        if !self.raft.has_ready() {
            return Ok(None);
        }
        let mut ready = self.raft.ready()?;
        self.observer.ready(&ready);
        if let Some(soft_state) = ready.soft_state {
            let term = ready
                .hard_state
                .map_or(self.raft.storage().hard_state().term, |hard| hard.term);
            self.on_leader(soft_state.leader, term);
        }
        self.send(std::mem::take(&mut ready.messages));
        #[cfg(feature = "mutations")]
        if self.mutation == Some(Mutation::PersistedMessagesBeforeSync) {
            self.send(std::mem::take(&mut ready.persisted_messages));
        }
        if let Some(snapshot) = ready.snapshot.take() {
            self.install_snapshot(snapshot)?;
        }
        self.track_appended(&ready.entries);
        // Committed entries already durable here are applied before this
        // Ready's sync, so their clients are answered without waiting for
        // the next batch's fdatasync; the core keeps the rest for after it.
        let committed = std::mem::take(&mut ready.committed_entries);
        self.apply(&committed)?;
        #[cfg(feature = "mutations")]
        if self.mutation == Some(Mutation::ApplyBeforeDurable) {
            let not_durable = std::mem::take(&mut ready.committed_entries_after_persist);
            self.apply(&not_durable)?;
        }
        let log = self.raft.storage_mut();
        let written = if ready.must_sync {
            log.persist(ready.hard_state, &ready.entries)
        } else if let Some(hard_state) = ready.hard_state {
            log.set_hard_state_unsynced(hard_state)
        } else {
            Ok(())
        };
        match written {
            Ok(()) => Ok(Some(PersistedReady { ready })),
            Err(error) if <H::Log as LogStore>::is_disk_full(&error) => {
                self.stall_on_disk_full(Some(ready), &error);
                Ok(None)
            }
            Err(error) => Err(NodeError::log(error)),
        }
    }

    /// The log had no room for a write: hold it (and the Ready it belongs
    /// to), refuse writes, and retry after [`DISK_FULL_RETRY_TICKS_FIRST`].
    fn stall_on_disk_full(&mut self, ready: Option<Ready>, error: &dyn std::error::Error) {
        tracing::error!(
            member = format_args!("{:x}", self.member_id()),
            %error,
            "the log's disk is full: writes are refused and the write is retried until space is freed"
        );
        self.disk_full = Some(DiskFullStall {
            ready,
            error: error.to_string(),
            retry_tick: self.ticks + DISK_FULL_RETRY_TICKS_FIRST,
            wait_ticks: DISK_FULL_RETRY_TICKS_FIRST,
            retries: 0,
        });
        self.refuse_gathered();
    }

    /// Retries the write held for want of space, when its wait is over. Once
    /// it succeeds, its Ready is handed back to be completed like any other.
    fn retry_disk_full_write(&mut self) -> Result<Option<PersistedReady>, NodeError> {
        let Some(stall) = &mut self.disk_full else {
            return Ok(None);
        };
        if self.ticks < stall.retry_tick {
            return Ok(None);
        }
        match self.raft.storage_mut().sync() {
            Ok(()) => {}
            Err(error) if <H::Log as LogStore>::is_disk_full(&error) => {
                stall.retries += 1;
                stall.wait_ticks = (stall.wait_ticks * 2).min(DISK_FULL_RETRY_TICKS_MAX);
                stall.retry_tick = self.ticks + stall.wait_ticks;
                tracing::debug!(%error, retries = stall.retries, wait_ticks = stall.wait_ticks, "the log's disk is still full");
                return Ok(None);
            }
            Err(error) => return Err(NodeError::log(error)),
        }
        let stall = self.disk_full.take().expect("checked above");
        tracing::warn!(
            member = format_args!("{:x}", self.member_id()),
            was = %stall.error,
            retries = stall.retries,
            "the log's disk has room again: the held write is durable and the member resumes"
        );
        Ok(stall.ready.map(|ready| PersistedReady { ready }))
    }

    /// The second half, once the write of [`Node::persist_ready`] is durable:
    /// sends the messages that promised it, applies the rest of the committed
    /// entries, confirms reads and tells the core the Ready is done.
    pub fn complete_ready(&mut self, persisted: PersistedReady) -> Result<(), NodeError> {
        let PersistedReady { mut ready } = persisted;
        self.send(std::mem::take(&mut ready.persisted_messages));
        #[cfg(feature = "mutations")]
        if self.mutation == Some(Mutation::WriteAckedBeforeApplied) {
            self.answer_before_apply(&ready.entries);
        }
        let committed = std::mem::take(&mut ready.committed_entries_after_persist);
        self.apply(&committed)?;
        for read_state in &ready.read_states {
            self.reads.confirm(&read_state.context, read_state.index);
        }
        self.raft.advance()?;
        self.release_reads();
        Ok(())
    }

    /// Answers every read barrier whose confirmed read index is applied.
    fn release_reads(&mut self) {
        let applied = self.state_machine.applied_index();
        #[cfg(feature = "mutations")]
        let applied = if self.mutation == Some(Mutation::ReadBeforeApplied) {
            LogIndex::MAX
        } else {
            applied
        };
        self.reads.release(applied);
    }

    /// The [`Mutation::WriteAckedBeforeApplied`] bug: answers this member's
    /// proposals among `appended`, now durable here, with the state
    /// machine's guess, before they commit.
    #[cfg(feature = "mutations")]
    fn answer_before_apply(&mut self, appended: &[Entry]) {
        for entry in appended {
            let (Some(id), view) = frame(entry) else {
                continue;
            };
            let Some(request) = self.request_of(id) else {
                continue;
            };
            if let Some(answer) = view
                .command
                .and_then(|command| self.state_machine.answer_unapplied(command))
            {
                self.proposals.answer(request, answer);
            }
        }
    }

    /// Handles one `Ready` whole: for an embedder whose log write returns
    /// only once it is durable.
    pub fn handle_ready(&mut self) -> Result<(), NodeError> {
        if let Some(persisted) = self.persist_ready()? {
            self.complete_ready(persisted)?;
        }
        Ok(())
    }

    /// Housekeeping after each turn: releases reads whose index is applied,
    /// snapshots and compacts when due, and finishes a stop once leadership
    /// was handed over.
    pub fn end_turn(&mut self) -> Result<(), NodeError> {
        self.release_reads();
        if self.disk_full.is_none() {
            self.maybe_snapshot()?;
        }
        let handed_over = self.leader != self.member_id();
        if self.stop_requested && (handed_over || self.ticks >= self.stop_deadline_tick) {
            self.stopped = true;
        }
        Ok(())
    }

    /// A leader that stops first hands leadership to its most up-to-date
    /// follower (as etcd does), so the cluster need not wait out an election
    /// timeout; it stops anyway after one election timeout. Others stop at
    /// the end of this turn.
    pub fn request_stop(&mut self) {
        if self.stop_requested {
            return;
        }
        self.stop_requested = true;
        self.stop_deadline_tick = self.ticks + u64::from(self.options.election_ticks);
        self.stopped = true;
        let status = self.raft.status();
        if self.leader != status.id || self.disk_full.is_some() {
            return;
        }
        let target = status
            .progress
            .iter()
            .filter(|progress| progress.id != status.id)
            .max_by_key(|progress| progress.match_index)
            .map(|progress| progress.id);
        let Some(target) = target else { return };
        match self.raft.transfer_leader(target) {
            Ok(()) => {
                self.stopped = false;
                tracing::info!(
                    target = format_args!("{target:x}"),
                    "handing leadership over before stopping"
                );
            }
            Err(error) => tracing::warn!(%error, "could not hand leadership over before stopping"),
        }
    }

    /// Ends the node: a commit index buffered without a sync goes to disk
    /// before the state machine is flushed, so a restart finds the log's
    /// commit at least as new; every waiter is answered with `error`.
    pub fn shut_down(&mut self, error: RequestError) -> Result<(), NodeError> {
        let synced = match self.raft.storage_mut().sync() {
            // A write still waiting for space was never promised to anyone.
            Err(error) if <H::Log as LogStore>::is_disk_full(&error) => {
                tracing::warn!(%error, "stopping with a log write that found no disk space");
                Ok(())
            }
            synced => synced.map_err(NodeError::log),
        };
        let flushed = self.state_machine.flush().map_err(NodeError::state_machine);
        self.proposals.fail_all(&error);
        self.reads.fail_all(&error);
        self.awaiting_leader.clear();
        self.gathered.clear();
        synced?;
        flushed
    }

    fn on_leader(&mut self, leader: NodeId, term: u64) {
        if leader == self.leader {
            return;
        }
        tracing::info!(
            member = format_args!("{:x}", self.member_id()),
            leader = format_args!("{leader:x}"),
            term,
            "leader changed"
        );
        self.leader = leader;
        self.proposals.fail_unlogged();
        // Read requests sent to the old leader may never be answered.
        self.reads.requeue_issued_before(u64::MAX);
    }

    fn send(&self, messages: Vec<Message>) {
        for message in messages {
            self.outbox.send(message);
        }
    }

    fn install_snapshot(&mut self, snapshot: Snapshot) -> Result<(), NodeError> {
        let index = snapshot.meta.index;
        tracing::info!(
            index,
            term = snapshot.meta.term,
            bytes = snapshot.data.len(),
            "installing a snapshot from the leader"
        );
        if index > self.state_machine.applied_index() {
            self.state_machine
                .restore(&snapshot.data)
                .map_err(NodeError::state_machine)?;
        }
        self.member_list.restore(
            index,
            &snapshot.meta.conf_state,
            &self.options.configured_members,
        );
        self.save_members()?;
        self.raft
            .storage_mut()
            .apply_snapshot(snapshot)
            .map_err(NodeError::log)?;
        self.proposals.fail_through(index);
        self.schedule.on_installed(index);
        Ok(())
    }

    /// Tells the waiters where their entries sit, and which were overwritten.
    fn track_appended(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else { return };
        let ours: Vec<Option<u64>> = entries.iter().map(|e| self.own_request(e)).collect();
        self.proposals.on_append(first.index, &ours);
    }

    fn own_request(&self, entry: &Entry) -> Option<u64> {
        let (id, _) = envelope::decode(&entry.data).ok()?;
        self.request_of(id)
    }

    /// The request number of a proposal this member made in this boot.
    fn request_of(&self, id: ProposalId) -> Option<u64> {
        let base = self.proposal_base;
        (id.member_id == base.member_id && id.boot_id == base.boot_id).then_some(id.request)
    }

    fn apply(&mut self, entries: &[Entry]) -> Result<(), NodeError> {
        for chunk in entries.chunks(APPLY_BATCH_ENTRIES_MAX) {
            self.apply_chunk(chunk)?;
        }
        Ok(())
    }

    fn apply_chunk(&mut self, entries: &[Entry]) -> Result<(), NodeError> {
        debug_assert!(entries
            .windows(2)
            .all(|pair| pair[1].index == pair[0].index + 1));
        // The list reaches the disk before the state machine records these
        // entries as applied, so a restart never finds it ahead of the list.
        if self.apply_membership(entries) {
            self.save_members()?;
        }
        let framed: Vec<(Option<ProposalId>, Committed<'_>)> = entries.iter().map(frame).collect();
        for (entry, (_, view)) in entries.iter().zip(&framed) {
            self.observer.applying(entry, view.command);
        }
        let committed: Vec<Committed<'_>> = framed.iter().map(|(_, view)| *view).collect();
        let answers = self
            .state_machine
            .apply(&committed)
            .map_err(NodeError::state_machine)?;
        debug_assert_eq!(answers.len(), entries.len());
        debug_assert!(entries
            .last()
            .is_none_or(|last| self.state_machine.applied_index() >= last.index));
        let requests: Vec<Option<u64>> = framed
            .iter()
            .map(|(id, _)| id.and_then(|id| self.request_of(id)))
            .collect();
        for ((entry, request), answer) in entries.iter().zip(requests).zip(answers) {
            let Some(request) = request else { continue };
            if let EntryKind::ConfChange(_) = entry.kind {
                self.proposals.answer_membership(request);
            } else {
                self.proposals.answer(request, answer);
            }
        }
        Ok(())
    }

    /// Applies the committed configuration changes among `entries` to the
    /// member list; returns whether it moved. A context no member can read
    /// still changes the list (the core changed the configuration
    /// regardless), with the member's name and URLs left empty.
    fn apply_membership(&mut self, entries: &[Entry]) -> bool {
        let mut moved = false;
        for entry in entries {
            let EntryKind::ConfChange(change) = entry.kind else {
                continue;
            };
            let context = envelope::decode(&entry.data)
                .map_err(|error| error.to_string())
                .and_then(|(_, bytes)| {
                    MemberContext::decode(bytes).map_err(|error| error.to_string())
                })
                .unwrap_or_else(|error| {
                    tracing::error!(index = entry.index, %error, "configuration change carries no readable member description");
                    MemberContext::default()
                });
            if self.member_list.apply(entry.index, change, &context) {
                tracing::info!(index = entry.index, ?change, name = %context.name, "applied a configuration change");
                moved = true;
            }
        }
        moved
    }

    fn save_members(&mut self) -> Result<(), NodeError> {
        self.state_machine
            .save_members(&self.member_list)
            .map_err(NodeError::state_machine)?;
        self.outbox.set_members(&self.member_list.members);
        Ok(())
    }

    /// Every `snapshot_entries` applied entries: snapshot the state machine;
    /// cut the log behind an older snapshot once enough entries follow it.
    fn maybe_snapshot(&mut self) -> Result<(), NodeError> {
        let applied = self.state_machine.applied_index();
        if let Some((index, data)) = self.schedule.take_compaction_due(applied) {
            self.compact(index, data)?;
        }
        if let Some(index) = self
            .schedule
            .collect_finished(&mut self.state_machine)
            .map_err(NodeError::state_machine)?
        {
            tracing::info!(index, applied, "took a snapshot");
        }
        self.schedule
            .start_if_due(&mut self.state_machine, applied)
            .map_err(NodeError::state_machine)
    }

    fn compact(&mut self, index: LogIndex, data: Vec<u8>) -> Result<(), NodeError> {
        if index <= self.raft.storage().snapshot_meta().index {
            return Ok(());
        }
        // The log must keep every entry the state machine could still lose.
        self.state_machine
            .flush()
            .map_err(NodeError::state_machine)?;
        let term = self.raft.storage().term(index).map_err(NodeError::log)?;
        let Some(conf_state) = self.raft.conf_state_at(index).cloned() else {
            tracing::debug!(
                index,
                "the configuration at the snapshot index is no longer known; the next snapshot compacts"
            );
            return Ok(());
        };
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf_state,
            },
            data,
        };
        match self.raft.storage_mut().compact(snapshot) {
            Ok(()) => {}
            // The compaction is optional (the next snapshot compacts), but a
            // write the log buffered before it may be what found no room:
            // it is retried like any other before the log is written again.
            Err(error) if <H::Log as LogStore>::is_disk_full(&error) => {
                self.stall_on_disk_full(None, &error);
                return Ok(());
            }
            Err(error) => return Err(NodeError::log(error)),
        }
        tracing::info!(index, term, "compacted the log behind a snapshot");
        Ok(())
    }
}

/// Who proposed an entry, and the entry as the state machine sees it: the
/// command inside its envelope. Bytes no member can read are skipped by every
/// member alike, so the replicas stay equal.
fn frame(entry: &Entry) -> (Option<ProposalId>, Committed<'_>) {
    let decoded = match envelope::decode(&entry.data) {
        Ok(decoded) => Some(decoded),
        Err(error) => {
            if entry.kind == EntryKind::Normal && !entry.data.is_empty() {
                tracing::error!(index = entry.index, %error, "skipping a log entry that holds no readable proposal");
            }
            None
        }
    };
    let command = match (entry.kind, decoded) {
        (EntryKind::Normal, Some((_, command))) => Some(command),
        _ => None,
    };
    let view = Committed {
        index: entry.index,
        command,
    };
    (decoded.map(|(id, _)| id), view)
}

#[cfg(test)]
mod tests;
