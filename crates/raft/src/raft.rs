//! The Raft state machine: one member's term, vote, role, log and (on the
//! leader) the followers' progress. `step` first handles what every role does
//! with a message of another term, then hands the message to the handler of
//! the current role, so each rule of the paper lives in one obvious place:
//! elections in `election`, log replication in `replication`, linearizable
//! reads and leadership transfer in `leadership`, configuration changes in
//! `reconfiguration`.

mod election;
mod leadership;
mod reconfiguration;
mod replication;

use std::collections::BTreeMap;

use crate::config::Config;
use crate::log::RaftLog;
use crate::membership::Membership;
use crate::node::Ready;
use crate::progress::{Progress, ProgressView};
use crate::read_only::ReadOnly;
use crate::rng::SeededRng;
use crate::storage::{Storage, StorageError};
use crate::types::{
    ConfState, Entry, HardState, LogIndex, Message, MessageBody, NodeId, ReadState, Role,
    SoftState, Term, NO_NODE,
};
use crate::RaftError;

/// The most committed-entry bytes handed to the state machine in one `Ready`,
/// so one batch never holds the whole log in memory.
const APPLY_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// A snapshot not acknowledged within this many election timeouts is assumed
/// lost and sent again.
const SNAPSHOT_RETRY_ELECTION_TIMEOUTS: u32 = 3;

/// A member's state as reported to its embedder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub id: NodeId,
    pub hard_state: HardState,
    pub soft_state: SoftState,
    pub applied: LogIndex,
    pub first_index: LogIndex,
    pub last_index: LogIndex,
    /// The configuration in force (the newest in the log).
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
    /// Each member's replication progress, on the leader only.
    pub progress: Vec<ProgressView>,
    /// The member leadership is being handed to, if a transfer is under way.
    pub transfer_target: Option<NodeId>,
}

#[derive(Debug)]
pub(crate) struct Raft<S: Storage> {
    id: NodeId,
    term: Term,
    vote: NodeId,
    role: Role,
    leader: NodeId,
    log: RaftLog<S>,
    /// The configuration in force and the ones a truncation may revert to.
    membership: Membership,
    /// Per member (self included) of the configuration in force or the
    /// committed one, on the leader only: a member being removed still
    /// receives the entry that removes it.
    progress: BTreeMap<NodeId, Progress>,
    /// Votes received in the current (pre-)campaign.
    votes: BTreeMap<NodeId, bool>,

    election_ticks: u32,
    election_ticks_upper: u32,
    heartbeat_ticks: u32,
    pre_vote: bool,
    check_quorum: bool,
    forward_to_leader: bool,
    message_bytes_max: u64,
    inflight_messages_max: usize,
    rng: SeededRng,
    /// Ticks since the last valid leader contact (follower), the campaign
    /// started (candidate), or the last quorum check (leader).
    election_elapsed: u32,
    heartbeat_elapsed: u32,
    randomized_election_ticks: u32,

    transfer_target: Option<NodeId>,
    read_only: ReadOnly,
    /// Reads that arrived before this leader committed an entry of its term:
    /// until then its commit index may lag the true one, so they wait.
    reads_awaiting_commit: Vec<(NodeId, Vec<u8>)>,
    /// Ticks each follower's pending snapshot has been outstanding.
    snapshot_elapsed: BTreeMap<NodeId, u32>,

    /// Entries were appended on the leader and not yet sent to followers.
    append_broadcast_pending: bool,
    messages: Vec<Message>,
    persisted_messages: Vec<Message>,
    read_states: Vec<ReadState>,
    previous_soft_state: SoftState,
    previous_hard_state: HardState,
    ready_outstanding: bool,
    /// The leader seen for the latest term, to assert one leader per term.
    leader_seen: (Term, NodeId),
    /// The storage failure an input ran into. The input may have stopped
    /// halfway, so every later input is refused with it: the member must stop,
    /// and restarts from what its storage recovers.
    storage_failure: Option<StorageError>,

    #[cfg(feature = "mutations")]
    mutation: Option<crate::Mutation>,
}

/// True when the test-only mutation `$name` is switched on for this member.
/// Compiles to `false` without the `mutations` feature.
macro_rules! mutated {
    ($raft:expr, $name:ident) => {{
        #[cfg(feature = "mutations")]
        let on = $raft.mutation == Some(crate::Mutation::$name);
        #[cfg(not(feature = "mutations"))]
        let on = false;
        on
    }};
}
pub(crate) use mutated;

impl<S: Storage> Raft<S> {
    pub(crate) fn new(config: &Config, storage: S) -> Result<Self, RaftError> {
        config.validate()?;
        let initial = storage.initial_state()?;
        let log = RaftLog::new(storage, initial.hard_state.commit, config.applied)?;
        let membership = Self::recover_membership(&log, initial.conf_state)?;
        let hard_state = initial.hard_state;
        let soft_state = SoftState {
            leader: NO_NODE,
            role: Role::Follower,
        };
        let mut raft = Self {
            id: config.id,
            term: hard_state.term,
            vote: hard_state.vote,
            role: Role::Follower,
            leader: NO_NODE,
            log,
            membership,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_ticks: config.election_ticks,
            election_ticks_upper: config.election_ticks_upper(),
            heartbeat_ticks: config.heartbeat_ticks,
            pre_vote: config.pre_vote,
            check_quorum: config.check_quorum,
            forward_to_leader: config.forward_to_leader,
            message_bytes_max: config.message_bytes_max,
            inflight_messages_max: config.inflight_messages_max,
            rng: SeededRng::new(config.random_seed),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_ticks: config.election_ticks,
            transfer_target: None,
            read_only: ReadOnly::default(),
            reads_awaiting_commit: Vec::new(),
            snapshot_elapsed: BTreeMap::new(),
            append_broadcast_pending: false,
            messages: Vec::new(),
            persisted_messages: Vec::new(),
            read_states: Vec::new(),
            previous_soft_state: soft_state,
            previous_hard_state: hard_state,
            ready_outstanding: false,
            leader_seen: (hard_state.term, NO_NODE),
            storage_failure: None,
            #[cfg(feature = "mutations")]
            mutation: config.mutation,
        };
        if mutated!(raft, ForgetVoteOnRestart) {
            raft.vote = NO_NODE;
        }
        raft.become_follower(hard_state.term, NO_NODE);
        Ok(raft)
    }

    pub(crate) fn storage(&self) -> &S {
        &self.log.storage
    }

    pub(crate) fn storage_mut(&mut self) -> &mut S {
        &mut self.log.storage
    }

    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed,
        }
    }

    fn soft_state(&self) -> SoftState {
        SoftState {
            leader: self.leader,
            role: self.role,
        }
    }

    /// The configuration of the snapshot plus every change entry after it.
    fn recover_membership(
        log: &RaftLog<S>,
        snapshot_conf_state: ConfState,
    ) -> Result<Membership, RaftError> {
        let first_index = log.first_index();
        let mut membership = Membership::new(first_index - 1, snapshot_conf_state);
        let mut next_index = first_index;
        while next_index <= log.last_index() {
            let entries = log.entries(next_index, log.last_index() + 1, u64::MAX)?;
            let Some(last) = entries.last() else {
                break;
            };
            next_index = last.index + 1;
            membership.appended(&entries);
        }
        Ok(membership)
    }

    /// The configuration in force: the newest in the log.
    pub(crate) fn conf_state(&self) -> &ConfState {
        self.membership.current()
    }

    pub(crate) fn conf_state_at(&self, index: LogIndex) -> Option<&ConfState> {
        self.membership.at(index)
    }

    fn quorum(&self) -> usize {
        self.conf_state().quorum()
    }

    fn is_voter(&self, id: NodeId) -> bool {
        self.conf_state().is_voter(id)
    }

    /// The other voters, whose votes an election needs.
    fn voter_peers(&self) -> Vec<NodeId> {
        self.conf_state()
            .voters
            .iter()
            .copied()
            .filter(|&id| id != self.id)
            .collect()
    }

    /// The members the leader replicates to.
    fn replication_peers(&self) -> Vec<NodeId> {
        self.progress
            .keys()
            .copied()
            .filter(|&id| id != self.id)
            .collect()
    }

    /// Appends to the log and puts any configuration entries among them in
    /// force at once, reverting those of a truncated suffix (dissertation §4.1).
    fn append_to_log(&mut self, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        self.log.append(entries);
        self.membership.appended(entries);
        if self.role == Role::Leader {
            self.reconcile_progress();
        }
    }

    /// Queues a message. Replies that promise durable state wait for the
    /// persistence of the Ready they belong to; everything else leaves at once.
    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_at_term(to, self.term, body);
    }

    fn send_at_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        let needs_durability = match &body {
            MessageBody::RequestVoteResponse { pre_vote, .. } => !pre_vote,
            MessageBody::AppendEntriesResponse(_) => true,
            _ => false,
        };
        let message = Message {
            from: self.id,
            to,
            term,
            body,
        };
        if needs_durability && !mutated!(self, ReplyBeforePersist) {
            self.persisted_messages.push(message);
        } else {
            self.messages.push(message);
        }
    }

    fn reset_timers(&mut self) {
        self.election_elapsed = 0;
        self.heartbeat_elapsed = 0;
        self.randomized_election_ticks = self
            .rng
            .in_range(self.election_ticks, self.election_ticks_upper);
    }

    /// Moves to `term` (clearing the vote if the term is new) as a follower of `leader`.
    fn become_follower(&mut self, term: Term, leader: NodeId) {
        debug_assert!(term >= self.term, "term must never decrease");
        if term > self.term {
            self.term = term;
            self.vote = NO_NODE;
        }
        self.role = Role::Follower;
        self.set_leader(leader);
        self.reset_timers();
        self.abandon_leadership_state();
    }

    /// Drops the state only a leader keeps; pending reads are abandoned and
    /// their requesters retry.
    fn abandon_leadership_state(&mut self) {
        self.progress.clear();
        self.snapshot_elapsed.clear();
        self.transfer_target = None;
        self.read_only.clear();
        self.reads_awaiting_commit.clear();
    }

    fn set_leader(&mut self, leader: NodeId) {
        self.leader = leader;
        if leader == NO_NODE {
            return;
        }
        let (seen_term, seen_leader) = self.leader_seen;
        assert!(
            seen_term != self.term || seen_leader == NO_NODE || seen_leader == leader,
            "two leaders in term {}: {seen_leader:x} and {leader:x}",
            self.term
        );
        self.leader_seen = (self.term, leader);
    }

    /// Runs one input (a tick, a message, a proposal, `ready`, `advance`):
    /// refuses it once storage has failed, reads the durable log's bounds for
    /// it, and remembers a storage failure it ran into.
    fn run_input<T>(
        &mut self,
        input: impl FnOnce(&mut Self) -> Result<T, RaftError>,
    ) -> Result<T, RaftError> {
        if let Some(error) = &self.storage_failure {
            return Err(RaftError::Storage(error.clone()));
        }
        let result = match self.log.read_bounds() {
            Ok(()) => input(self),
            Err(error) => Err(error.into()),
        };
        if let Err(RaftError::Storage(error)) = &result {
            self.storage_failure = Some(error.clone());
        }
        result
    }

    pub(crate) fn tick(&mut self) -> Result<(), RaftError> {
        self.run_input(|raft| {
            raft.election_elapsed += 1;
            if raft.role == Role::Leader {
                raft.tick_leader();
            } else if raft.election_elapsed >= raft.randomized_election_ticks
                && raft.is_voter(raft.id)
            {
                raft.election_elapsed = 0;
                raft.campaign(raft.pre_vote, false)?;
            }
            raft.check_invariants();
            Ok(())
        })
    }

    pub(crate) fn step(&mut self, message: Message) -> Result<(), RaftError> {
        debug_assert!(
            !self.ready_outstanding,
            "step between ready() and advance()"
        );
        if message.to != self.id || message.from == NO_NODE {
            return Err(RaftError::MisroutedMessage {
                from: message.from,
                to: message.to,
                local: self.id,
            });
        }
        self.run_input(|raft| {
            if raft.step_term(&message) {
                match &message.body {
                    MessageBody::RequestVote { .. } => raft.handle_vote_request(message)?,
                    _ => match raft.role {
                        Role::Leader => raft.step_leader(message)?,
                        Role::Candidate | Role::PreCandidate => raft.step_candidate(message)?,
                        Role::Follower => raft.step_follower(message)?,
                    },
                }
            }
            raft.check_invariants();
            Ok(())
        })
    }

    /// What every role does with a message from another term. Returns whether
    /// the message should be handled further.
    fn step_term(&mut self, message: &Message) -> bool {
        if message.term > self.term {
            return self.step_higher_term(message);
        }
        if message.term < self.term {
            self.step_lower_term(message);
            return false;
        }
        true
    }

    fn step_higher_term(&mut self, message: &Message) -> bool {
        match &message.body {
            MessageBody::RequestVote {
                pre_vote,
                leadership_transfer,
                ..
            } => {
                if !leadership_transfer && self.in_leader_lease() {
                    return false;
                }
                if !pre_vote || mutated!(self, PreVoteBumpsTerm) {
                    self.become_follower(message.term, NO_NODE);
                }
                true
            }
            MessageBody::RequestVoteResponse {
                pre_vote: true,
                granted: true,
            } => true,
            MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.become_follower(message.term, message.from);
                true
            }
            _ => {
                self.become_follower(message.term, NO_NODE);
                true
            }
        }
    }

    /// A message from a stale term. A leader of an older term is always
    /// answered with our term (Figure 2: a request from a lower term is
    /// refused with the receiver's term), so it steps down. Left unanswered,
    /// a member whose term was raised (say, by the votes of a removed member
    /// that never learned of its removal) would neither hear from the leader
    /// nor let it know, and without PreVote and CheckQuorum nothing else would
    /// reconcile them: the cluster would stay split. A pre-candidate learns the
    /// newer term from the rejection of its pre-vote. Everything else is dropped.
    fn step_lower_term(&mut self, message: &Message) {
        match &message.body {
            MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.send(
                    message.from,
                    MessageBody::HeartbeatResponse { read_context: None },
                );
            }
            MessageBody::RequestVote { pre_vote: true, .. } => {
                self.send(
                    message.from,
                    MessageBody::RequestVoteResponse {
                        pre_vote: true,
                        granted: false,
                    },
                );
            }
            _ => {}
        }
    }

    /// Leader stickiness: while a follower hears from a live leader, it ignores
    /// vote requests, so a member that was cut off cannot depose that leader.
    fn in_leader_lease(&self) -> bool {
        self.check_quorum && self.leader != NO_NODE && self.election_elapsed < self.election_ticks
    }

    fn step_follower(&mut self, message: Message) -> Result<(), StorageError> {
        let from = message.from;
        match message.body {
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => {
                self.heard_from_leader(from);
                self.handle_append(from, prev_log_index, prev_log_term, &entries, leader_commit)?;
            }
            MessageBody::Heartbeat {
                commit,
                read_context,
            } => {
                self.heard_from_leader(from);
                self.log.commit_to(commit.min(self.log.last_index()));
                self.send(from, MessageBody::HeartbeatResponse { read_context });
            }
            MessageBody::InstallSnapshot { snapshot } => {
                self.heard_from_leader(from);
                self.handle_snapshot(from, snapshot)?;
            }
            MessageBody::TimeoutNow => {
                if self.is_voter(self.id) {
                    self.campaign(false, true)?;
                }
            }
            MessageBody::ForwardProposal { .. } | MessageBody::ForwardReadIndex { .. } => {
                if self.leader != NO_NODE && self.forward_to_leader {
                    self.send(self.leader, message.body);
                }
            }
            MessageBody::ReadIndexResponse { context, index } => {
                self.read_states.push(ReadState { index, context });
            }
            MessageBody::RequestVote { .. }
            | MessageBody::RequestVoteResponse { .. }
            | MessageBody::AppendEntriesResponse(_)
            | MessageBody::HeartbeatResponse { .. } => {}
        }
        Ok(())
    }

    fn heard_from_leader(&mut self, leader: NodeId) {
        self.election_elapsed = 0;
        self.set_leader(leader);
    }

    pub(crate) fn propose(&mut self, commands: Vec<Vec<u8>>) -> Result<(), RaftError> {
        debug_assert!(
            !self.ready_outstanding,
            "propose between ready() and advance()"
        );
        self.run_input(|raft| {
            if raft.role == Role::Leader {
                if let Some(target) = raft.transfer_target {
                    return Err(RaftError::TransferInProgress { target });
                }
                raft.append_commands(commands);
                return Ok(());
            }
            if raft.forward_to_leader && raft.leader != NO_NODE {
                raft.send(
                    raft.leader,
                    MessageBody::ForwardProposal { entries: commands },
                );
                return Ok(());
            }
            Err(raft.not_leader())
        })
    }

    fn not_leader(&self) -> RaftError {
        RaftError::NotLeader {
            leader: (self.leader != NO_NODE).then_some(self.leader),
        }
    }

    pub(crate) fn has_ready(&self) -> bool {
        self.soft_state() != self.previous_soft_state
            || self.hard_state() != self.previous_hard_state
            || self.log.has_pending_snapshot()
            || !self.log.unstable_entries().is_empty()
            || self.append_broadcast_pending
            || !self.messages.is_empty()
            || !self.persisted_messages.is_empty()
            || !self.read_states.is_empty()
            || self.log.has_entries_to_apply()
            || (mutated!(self, ApplyUncommitted) && self.log.applied < self.log.last_index())
    }

    pub(crate) fn ready(&mut self) -> Result<Ready, RaftError> {
        debug_assert!(!self.ready_outstanding, "ready() twice without advance()");
        self.run_input(|raft| raft.take_ready())
    }

    fn take_ready(&mut self) -> Result<Ready, RaftError> {
        self.flush_appends()?;
        let soft_state = self.soft_state();
        let hard_state = self.hard_state();
        let mut committed_entries = if mutated!(self, ApplyUncommitted) {
            self.log
                .take_entries_to_apply_through(self.log.last_index(), APPLY_BYTES_MAX)?
        } else {
            self.log.take_entries_to_apply(APPLY_BYTES_MAX)?
        };
        let durable_count =
            committed_entries.partition_point(|entry| self.log.is_durable(entry.index));
        let committed_entries_after_persist = committed_entries.split_off(durable_count);
        let entries = self.log.unstable_entries().to_vec();
        let persisted_messages = std::mem::take(&mut self.persisted_messages);
        let must_sync = !entries.is_empty()
            || !persisted_messages.is_empty()
            || hard_state.term != self.previous_hard_state.term
            || hard_state.vote != self.previous_hard_state.vote;
        let ready = Ready {
            soft_state: (soft_state != self.previous_soft_state).then_some(soft_state),
            hard_state: (hard_state != self.previous_hard_state).then_some(hard_state),
            snapshot: self.log.pending_snapshot().cloned(),
            entries,
            messages: std::mem::take(&mut self.messages),
            persisted_messages,
            committed_entries,
            committed_entries_after_persist,
            read_states: std::mem::take(&mut self.read_states),
            must_sync,
        };
        self.previous_soft_state = soft_state;
        self.previous_hard_state = hard_state;
        self.ready_outstanding = true;
        Ok(ready)
    }

    /// The bounds `run_input` reads at the start of `advance` already include
    /// what the last Ready persisted.
    pub(crate) fn advance(&mut self) -> Result<(), RaftError> {
        debug_assert!(self.ready_outstanding, "advance() without ready()");
        self.run_input(|raft| {
            raft.ready_outstanding = false;
            raft.log.mark_stable();
            raft.log.mark_applied();
            raft.membership.forget_before(raft.log.applied);
            if raft.role == Role::Leader {
                let last_index = raft.log.last_index();
                if let Some(own) = raft.progress.get_mut(&raft.id) {
                    own.acknowledge(last_index);
                }
                if raft.maybe_commit()? {
                    raft.after_leader_commit()?;
                }
            }
            raft.check_invariants();
            Ok(())
        })
    }

    pub(crate) fn status(&self) -> Status {
        Status {
            id: self.id,
            hard_state: self.hard_state(),
            soft_state: self.soft_state(),
            applied: self.log.applied,
            first_index: self.log.first_index(),
            last_index: self.log.last_index(),
            voters: self.conf_state().voters.clone(),
            learners: self.conf_state().learners.clone(),
            progress: self
                .progress
                .iter()
                .map(|(&id, progress)| progress.view(id))
                .collect(),
            transfer_target: self.transfer_target,
        }
    }

    /// The core's own invariants, checked after every input in debug builds.
    fn check_invariants(&self) {
        debug_assert!(
            self.log.committed <= self.log.last_index(),
            "commit {} beyond last index {}",
            self.log.committed,
            self.log.last_index()
        );
        debug_assert!(self.log.applied <= self.log.committed || mutated!(self, ApplyUncommitted));
        debug_assert!(
            self.term >= self.previous_hard_state.term,
            "term went backwards"
        );
        if self.role == Role::Leader {
            debug_assert_eq!(self.leader, self.id, "a leader knows itself as leader");
            debug_assert!(self.progress.contains_key(&self.id), "leader tracks itself");
            debug_assert_eq!(self.vote, self.id, "a leader voted for itself");
            debug_assert!(
                self.is_voter(self.id) || self.membership.current_index() > self.log.committed,
                "a leader outside its configuration steps down once its removal commits"
            );
            debug_assert!(
                self.conf_state()
                    .voters
                    .iter()
                    .chain(&self.conf_state().learners)
                    .all(|member| self.progress.contains_key(member)),
                "the leader tracks every member"
            );
        } else {
            debug_assert!(self.progress.is_empty(), "only a leader tracks progress");
        }
        debug_assert!(self.read_only.len() <= crate::read_only::PENDING_READS_MAX);
    }
}
