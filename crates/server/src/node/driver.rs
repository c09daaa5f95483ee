//! The loop of the node thread: it owns the core (`RawNode<Wal>`) and is the
//! only writer of the state machine. Each turn it waits for input, drains
//! everything queued (so a thousand proposals become one append and one
//! fsync), ticks when a heartbeat interval has passed, and handles at most one
//! `Ready` in the order the persistence contract demands. It never blocks on
//! the network: messages go to bounded per-peer queues.

use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select};
use raft::{Entry, EntryKind, LogIndex, Message, NodeId, RaftError, RawNode, Ready, Snapshot};
use raft::{SnapshotMeta, Storage, NO_NODE};
use wal::Wal;

use super::envelope::{self, ProposalId};
use super::members::{MemberContext, MemberList};
use super::snapshots::SnapshotSchedule;
use super::waiters::{BarrierWaiter, Proposals, Reads};
use super::{ClientRequest, Control, NodeError, Outbox, SharedStatus};
use crate::backend::{BackendError, Member};

/// Inputs taken from the queues in one turn at most, so ticks are never starved.
pub(crate) const INPUTS_PER_TURN_MAX: usize = 8192;
/// Committed entries applied in one state machine transaction at most.
const APPLY_BATCH_ENTRIES_MAX: usize = 4096;
/// A log sync slower than this is logged, as etcd warns of slow fdatasync.
const SLOW_SYNC_WARN: Duration = Duration::from_secs(1);
/// Applying one batch slower than this is logged, as etcd's "apply took too long".
const SLOW_APPLY_WARN: Duration = Duration::from_millis(100);

/// What the driver needs besides the core and the store.
#[derive(Debug)]
pub(crate) struct DriverParts {
    pub requests: Receiver<ClientRequest>,
    pub peer_messages: Receiver<Message>,
    pub control: Receiver<Control>,
    pub outbox: Arc<dyn Outbox>,
    pub status: Arc<SharedStatus>,
    pub proposal_base: ProposalId,
    pub tick_interval: Duration,
    pub election_ticks: u32,
    pub request_timeout: Duration,
    pub snapshot_entries: u64,
    /// Where applied events go for watchers.
    pub watch_feed: crate::watch::Feed,
    /// Where the member list file lives.
    pub data_dir: PathBuf,
    /// The replicated member list as applied so far; only the driver changes it.
    pub member_list: MemberList,
    /// What the services read: the member list plus the client URLs members
    /// advertise, republished whenever the list changes.
    pub published_members: Arc<RwLock<Vec<Member>>>,
    /// The members named by `--initial-cluster`, to describe members a
    /// snapshot's configuration names by id alone.
    pub configured_members: Vec<Member>,
}

pub(crate) struct Driver {
    node: RawNode<Wal>,
    store: Arc<mvcc::Store>,
    parts: DriverParts,
    proposals: Proposals,
    reads: Reads,
    /// Proposals made while no leader was known: (request number, envelope).
    awaiting_leader: Vec<(u64, Vec<u8>)>,
    next_request: u64,
    next_read_context: u64,
    leader: NodeId,
    ticks: u64,
    next_tick: Instant,
    schedule: SnapshotSchedule,
    /// A stop was asked for; a leader first hands leadership over.
    stop_requested: bool,
    /// The tick after which a stop proceeds even if the handover has not happened.
    stop_deadline_tick: u64,
    stopping: bool,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("leader", &self.leader)
            .field("ticks", &self.ticks)
            .finish_non_exhaustive()
    }
}

impl Driver {
    pub(crate) fn new(node: RawNode<Wal>, store: Arc<mvcc::Store>, parts: DriverParts) -> Self {
        let snapshot_index = node.storage().snapshot_meta().index;
        let schedule = SnapshotSchedule::new(
            parts.snapshot_entries,
            snapshot_index.max(store.applied_index()),
        );
        Self {
            next_tick: Instant::now() + parts.tick_interval,
            node,
            store,
            parts,
            proposals: Proposals::default(),
            reads: Reads::default(),
            awaiting_leader: Vec::new(),
            next_request: 1,
            next_read_context: 1,
            leader: NO_NODE,
            ticks: 0,
            schedule,
            stop_requested: false,
            stop_deadline_tick: 0,
            stopping: false,
        }
    }

    /// Runs until asked to stop or until the log or the store fails.
    pub(crate) fn run(mut self) -> Result<(), NodeError> {
        self.parts
            .outbox
            .set_members(&self.parts.member_list.members);
        let result = self.run_turns();
        let error = match &result {
            Ok(()) => BackendError::Stopped,
            Err(error) => BackendError::Storage(error.to_string()),
        };
        // A commit index buffered without a sync goes to disk before the
        // state machine, so a restart finds the log's commit at least as new.
        let synced = self.node.storage_mut().sync();
        let flushed = self.store.flush();
        self.proposals.fail_all(|| clone_error(&error));
        self.reads.fail_all(|| clone_error(&error));
        self.awaiting_leader.clear();
        result?;
        synced?;
        flushed?;
        Ok(())
    }

    fn run_turns(&mut self) -> Result<(), NodeError> {
        if self.node.conf_state().voters == [self.node.status().id] {
            // A lone voter need not wait an election timeout to lead.
            self.node.campaign()?;
        }
        while !self.stopping {
            self.wait_and_drain()?;
            self.tick_if_due()?;
            if self.node.has_ready() {
                let ready = self.node.ready()?;
                let handled = self.handle_ready(ready);
                let advanced = self.node.advance();
                handled?;
                advanced?;
            }
            self.reads.release(self.store.applied_index());
            self.maybe_snapshot()?;
            self.publish_status();
            let handed_over = self.leader != self.parts.proposal_base.member_id;
            if self.stop_requested && (handed_over || self.ticks >= self.stop_deadline_tick) {
                self.stopping = true;
            }
        }
        Ok(())
    }

    /// A leader that stops first hands leadership to its most up-to-date
    /// follower (as etcd does), so the cluster need not wait out an election
    /// timeout; it stops anyway after one election timeout.
    fn begin_stop(&mut self) {
        if self.stop_requested {
            return;
        }
        self.stop_requested = true;
        self.stop_deadline_tick = self.ticks + u64::from(self.parts.election_ticks);
        let status = self.node.status();
        // Unless a handover starts below, stop at the end of this turn.
        self.stopping = true;
        if self.leader != status.id {
            return;
        }
        let target = status
            .progress
            .iter()
            .filter(|progress| progress.id != status.id)
            .max_by_key(|progress| progress.match_index)
            .map(|progress| progress.id);
        let Some(target) = target else { return };
        match self.node.transfer_leader(target) {
            Ok(()) => {
                self.stopping = false;
                tracing::info!(
                    target = format_args!("{target:x}"),
                    "handing leadership over before stopping"
                );
            }
            Err(error) => tracing::warn!(%error, "could not hand leadership over before stopping"),
        }
    }

    /// Blocks until an input arrives or the next tick is due (not at all when
    /// the core has work), then takes everything queued and feeds the core.
    fn wait_and_drain(&mut self) -> Result<(), NodeError> {
        if !self.node.has_ready() {
            // With work at hand, waiting (even for zero time) only spins.
            let timeout = self.next_tick.saturating_duration_since(Instant::now());
            let mut select = Select::new();
            select.recv(&self.parts.requests);
            select.recv(&self.parts.peer_messages);
            select.recv(&self.parts.control);
            // Either an input is ready or the tick is due; both lead to the drain.
            let _ = select.ready_timeout(timeout);
        }
        let mut new_proposals = Vec::new();
        let mut taken = 0;
        while taken < INPUTS_PER_TURN_MAX {
            let mut progressed = false;
            if let Ok(request) = self.parts.requests.try_recv() {
                self.accept_request(request, &mut new_proposals);
                progressed = true;
            }
            if let Ok(message) = self.parts.peer_messages.try_recv() {
                self.step(message)?;
                progressed = true;
            }
            match self.parts.control.try_recv() {
                Ok(Control::Stop) | Err(crossbeam_channel::TryRecvError::Disconnected) => {
                    self.begin_stop();
                }
                Err(crossbeam_channel::TryRecvError::Empty) => {}
            }
            if !progressed {
                break;
            }
            taken += 1;
        }
        self.propose(new_proposals);
        self.issue_reads();
        Ok(())
    }

    fn accept_request(&mut self, request: ClientRequest, proposals: &mut Vec<(u64, Vec<u8>)>) {
        let deadline = Instant::now() + self.parts.request_timeout;
        match request {
            ClientRequest::Propose { command, reply } => {
                let number = self.next_request;
                self.next_request += 1;
                let id = ProposalId {
                    request: number,
                    ..self.parts.proposal_base
                };
                self.proposals.insert(number, reply, deadline);
                proposals.push((number, envelope::encode(id, &command)));
            }
            ClientRequest::ReadBarrier { reply } => {
                self.reads.queue(BarrierWaiter { reply, deadline });
            }
            ClientRequest::ChangeMembership {
                change,
                context,
                reply,
            } => {
                let number = self.next_request;
                self.next_request += 1;
                let id = ProposalId {
                    request: number,
                    ..self.parts.proposal_base
                };
                self.proposals.insert_membership(number, reply, deadline);
                match self
                    .node
                    .propose_conf_change(change, envelope::encode(id, &context))
                {
                    Ok(()) => self.proposals.mark_proposed(number),
                    Err(error) => {
                        tracing::info!(%error, ?change, "configuration change refused by the core");
                        self.proposals
                            .finish(number, Err(BackendError::Reconfiguration(error)));
                    }
                }
            }
        }
    }

    /// Hands the core a peer message. A message the core refuses is dropped;
    /// a storage failure stops the node.
    fn step(&mut self, message: Message) -> Result<(), NodeError> {
        let from = message.from;
        let conf_state = self.node.conf_state();
        let joined = conf_state.is_member(self.parts.proposal_base.member_id);
        if joined && !conf_state.is_member(from) {
            // A removed member may still be running; its votes and appends
            // must not disturb the cluster it left. A member not yet in any
            // configuration (joining) takes messages from anyone.
            tracing::debug!(
                from = format_args!("{from:x}"),
                "ignored a message from a member outside the configuration"
            );
            return Ok(());
        }
        match self.node.step(message) {
            Ok(()) => Ok(()),
            Err(error @ RaftError::Storage(_)) => Err(error.into()),
            Err(error) => {
                tracing::debug!(from = format_args!("{from:x}"), %error, "dropped a peer message");
                Ok(())
            }
        }
    }

    /// Proposes everything new plus what waited for a leader, as one batch.
    fn propose(&mut self, new_proposals: Vec<(u64, Vec<u8>)>) {
        let mut batch = std::mem::take(&mut self.awaiting_leader);
        batch.extend(new_proposals);
        batch.retain(|(request, _)| self.proposals.contains(*request));
        if batch.is_empty() {
            return;
        }
        if self.leader == NO_NODE {
            self.awaiting_leader = batch;
            return;
        }
        let (requests, envelopes): (Vec<u64>, Vec<Vec<u8>>) = batch.into_iter().unzip();
        match self.node.propose_batch(envelopes) {
            Ok(()) => {
                for request in requests {
                    self.proposals.mark_proposed(request);
                }
            }
            Err(error) => self.refuse(&requests, &error),
        }
    }

    fn refuse(&mut self, requests: &[u64], error: &RaftError) {
        let backend_error = match error {
            RaftError::NotLeader { leader: None } => BackendError::NoLeader,
            _ => BackendError::LeaderChanged,
        };
        tracing::debug!(%error, proposals = requests.len(), "proposals refused by the core");
        for &request in requests {
            self.proposals
                .finish(request, Err(clone_error(&backend_error)));
        }
    }

    /// Asks one read index for every barrier queued since the last one.
    fn issue_reads(&mut self) {
        if !self.reads.has_queued() || self.leader == NO_NODE {
            return;
        }
        let mut context = self.parts.proposal_base.boot_id.to_le_bytes().to_vec();
        context.extend_from_slice(&self.next_read_context.to_le_bytes());
        self.next_read_context += 1;
        match self.node.read_index(context.clone()) {
            Ok(()) => self.reads.issue(context, self.ticks),
            Err(error) => tracing::debug!(%error, "read index deferred"),
        }
    }

    fn tick_if_due(&mut self) -> Result<(), NodeError> {
        let now = Instant::now();
        if now < self.next_tick {
            return Ok(());
        }
        self.node.tick()?;
        self.ticks += 1;
        self.next_tick += self.parts.tick_interval;
        if self.next_tick < now {
            // The thread was held up (a slow sync); do not fire a burst of ticks.
            self.next_tick = now + self.parts.tick_interval;
        }
        self.proposals.expire(now);
        self.reads.expire(now);
        let resend_ticks = u64::from(self.parts.election_ticks);
        self.reads
            .requeue_issued_before(self.ticks.saturating_sub(resend_ticks));
        Ok(())
    }

    /// One Ready, in the contract's order: send, apply what is already durable
    /// here, persist with one sync, send what needed the sync, apply the rest,
    /// serve reads.
    fn handle_ready(&mut self, mut ready: Ready) -> Result<(), NodeError> {
        if let Some(soft_state) = ready.soft_state {
            let term = ready
                .hard_state
                .map_or(self.node.storage().hard_state().term, |hard| hard.term);
            self.on_leader(soft_state.leader, term);
        }
        self.send(std::mem::take(&mut ready.messages));
        if let Some(snapshot) = ready.snapshot.take() {
            self.install_snapshot(snapshot)?;
        }
        self.track_appended(&ready.entries);
        // Committed entries already durable here are applied before this
        // Ready's sync, so their clients are answered without waiting for
        // the next batch's fdatasync; the rest only after it.
        let not_yet_durable = split_off_not_durable(
            &mut ready.committed_entries,
            self.node.storage().last_index(),
        );
        for chunk in ready.committed_entries.chunks(APPLY_BATCH_ENTRIES_MAX) {
            self.apply(chunk)?;
        }
        let started = Instant::now();
        if needs_sync(&ready, self.node.storage().hard_state()) {
            self.node
                .storage_mut()
                .persist(ready.hard_state, &ready.entries)?;
        } else if let Some(hard_state) = ready.hard_state {
            // Only the commit index moved: written with the next sync.
            self.node.storage_mut().set_hard_state(hard_state)?;
        }
        let took = started.elapsed();
        if took > SLOW_SYNC_WARN {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                expected_ms = SLOW_SYNC_WARN.as_millis() as u64,
                entries = ready.entries.len(),
                "slow fdatasync"
            );
        }
        self.send(std::mem::take(&mut ready.persisted_messages));
        for chunk in not_yet_durable.chunks(APPLY_BATCH_ENTRIES_MAX) {
            self.apply(chunk)?;
        }
        for read_state in &ready.read_states {
            self.reads.confirm(&read_state.context, read_state.index);
        }
        Ok(())
    }

    fn on_leader(&mut self, leader: NodeId, term: u64) {
        if leader == self.leader {
            return;
        }
        tracing::info!(
            member = format_args!("{:x}", self.parts.proposal_base.member_id),
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
            self.parts.outbox.send(message);
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
        if index > self.store.applied_index() {
            self.store.restore(&snapshot.data)?;
            self.store.flush()?;
        }
        self.parts.member_list.restore(
            index,
            &snapshot.meta.conf_state,
            &self.parts.configured_members,
        );
        self.save_members()?;
        self.node.storage_mut().apply_snapshot(snapshot)?;
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
        let base = self.parts.proposal_base;
        (id.member_id == base.member_id && id.boot_id == base.boot_id).then_some(id.request)
    }

    fn apply(&mut self, entries: &[Entry]) -> Result<(), NodeError> {
        let started = Instant::now();
        // The list reaches the disk before the store records these entries
        // as applied, so a restart never finds the store ahead of the list.
        if self.apply_membership(entries) {
            self.save_members()?;
        }
        let mut commands = Vec::with_capacity(entries.len());
        for entry in entries {
            commands.push((entry.index, decode_command(entry), self.own_request(entry)));
        }
        let outcomes = self.store.apply_batch(
            commands
                .iter()
                .map(|(index, command, _)| (*index, command.as_ref())),
            mvcc::Durability::Deferred,
        )?;
        debug_assert_eq!(outcomes.len(), commands.len());
        debug_assert!(entries
            .windows(2)
            .all(|pair| pair[1].index == pair[0].index + 1));
        debug_assert!(entries
            .last()
            .is_none_or(|last| self.store.applied_index() >= last.index));
        // Watchers get what the batch changed; this never blocks.
        self.parts.watch_feed.publish(&outcomes);
        for (((index, _, request), outcome), entry) in commands.iter().zip(outcomes).zip(entries) {
            let Some(request) = request else { continue };
            if let EntryKind::ConfChange(_) = entry.kind {
                self.proposals.finish_membership(*request);
                continue;
            }
            let result = match outcome {
                mvcc::ApplyOutcome::Applied(applied) => Ok(applied),
                other => Err(BackendError::Storage(format!(
                    "entry {index} was not applied as a command: {other:?}"
                ))),
            };
            self.proposals.finish(*request, result);
        }
        let took = started.elapsed();
        if took > SLOW_APPLY_WARN {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                expected_ms = SLOW_APPLY_WARN.as_millis() as u64,
                entries = entries.len(),
                "apply request took too long"
            );
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
            if self.parts.member_list.apply(entry.index, change, &context) {
                tracing::info!(index = entry.index, ?change, name = %context.name, "applied a configuration change");
                moved = true;
            }
        }
        moved
    }

    /// Saves the member list and republishes it, keeping the client URLs
    /// members advertised.
    fn save_members(&mut self) -> Result<(), NodeError> {
        self.parts
            .member_list
            .save(&self.parts.data_dir)
            .map_err(|error| NodeError::Storage(error.to_string()))?;
        let mut published = self
            .parts
            .published_members
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let members = self
            .parts
            .member_list
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
        self.parts
            .outbox
            .set_members(&self.parts.member_list.members);
        Ok(())
    }

    /// Every `snapshot_entries` applied entries: snapshot the state machine
    /// (in the background); cut the log behind an older snapshot once enough
    /// entries follow it.
    fn maybe_snapshot(&mut self) -> Result<(), NodeError> {
        let applied = self.store.applied_index();
        if let Some((index, data)) = self.schedule.take_compaction_due(applied) {
            self.compact(index, data)?;
        }
        if let Some(index) = self.schedule.collect_finished()? {
            tracing::info!(index, applied, "took a snapshot");
        }
        self.schedule.start_if_due(&self.store, applied)
    }

    fn compact(&mut self, index: LogIndex, data: Vec<u8>) -> Result<(), NodeError> {
        if index <= self.node.storage().snapshot_meta().index {
            return Ok(());
        }
        // The log must keep every entry the state machine could still lose.
        self.store.flush()?;
        let term = self
            .node
            .storage()
            .term(index)
            .map_err(|error| NodeError::Storage(error.to_string()))?;
        let Some(conf_state) = self.node.conf_state_at(index).cloned() else {
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
        self.node.storage_mut().compact(snapshot)?;
        tracing::info!(index, term, "compacted the log behind a snapshot");
        Ok(())
    }

    fn publish_status(&self) {
        let wal = self.node.storage();
        self.parts.status.publish(
            (self.leader != NO_NODE).then_some(self.leader),
            wal.hard_state().term,
            wal.last_index(),
            self.store.applied_index(),
        );
    }
}

/// Leaves in `committed` the entries the local log already holds durably
/// (through `durable_last_index`) and returns the rest, which a follower may
/// learn are committed in the same Ready that appends them: those must wait
/// for the sync, or a crash could leave the state machine ahead of the log.
fn split_off_not_durable(committed: &mut Vec<Entry>, durable_last_index: LogIndex) -> Vec<Entry> {
    let durable_count = committed.partition_point(|entry| entry.index <= durable_last_index);
    committed.split_off(durable_count)
}

/// Whether a Ready must be made durable before its messages leave and its
/// entries are applied. A hard state that moves only the commit index needs
/// no fdatasync of its own, as in etcd: a leader learns the commit index anew
/// after a crash, and the state machine skips entries it already applied. It
/// reaches the disk with the next sync. New entries, a new term or vote, and
/// messages that promise durable state always need one.
fn needs_sync(ready: &Ready, durable: raft::HardState) -> bool {
    if !ready.entries.is_empty() || !ready.persisted_messages.is_empty() {
        return true;
    }
    ready
        .hard_state
        .is_some_and(|hard| hard.term != durable.term || hard.vote != durable.vote)
}

/// The command in an entry; `None` for no-ops and for bytes no member can
/// read (every member skips them alike, so the replicas stay equal).
fn decode_command(entry: &Entry) -> Option<mvcc::Command> {
    if entry.kind != EntryKind::Normal {
        return None;
    }
    let decoded = envelope::decode(&entry.data)
        .map_err(|error| error.to_string())
        .and_then(|(_, bytes)| mvcc::Command::decode(bytes).map_err(|error| error.to_string()));
    match decoded {
        Ok(command) => Some(command),
        Err(error) => {
            tracing::error!(index = entry.index, %error, "skipping a log entry that holds no readable command");
            None
        }
    }
}

fn clone_error(error: &BackendError) -> BackendError {
    match error {
        BackendError::NoLeader => BackendError::NoLeader,
        BackendError::LeaderChanged => BackendError::LeaderChanged,
        BackendError::Timeout => BackendError::Timeout,
        BackendError::Stopped => BackendError::Stopped,
        BackendError::Store(error) => BackendError::Storage(error.to_string()),
        BackendError::Storage(text) => BackendError::Storage(text.clone()),
        BackendError::Reconfiguration(refusal) => BackendError::Reconfiguration(refusal.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::HardState;

    const DURABLE: HardState = HardState {
        term: 3,
        vote: 2,
        commit: 10,
    };

    fn with_hard_state(hard_state: HardState) -> Ready {
        Ready {
            hard_state: Some(hard_state),
            ..Ready::default()
        }
    }

    fn entries(indexes: std::ops::RangeInclusive<LogIndex>) -> Vec<Entry> {
        indexes
            .map(|index| Entry {
                term: 3,
                index,
                kind: EntryKind::Normal,
                data: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn only_locally_durable_committed_entries_are_applied_before_the_sync() {
        let mut committed = entries(4..=9);
        let later = split_off_not_durable(&mut committed, 6);
        assert_eq!(committed, entries(4..=6));
        assert_eq!(later, entries(7..=9));
        let mut all_durable = entries(4..=9);
        assert!(split_off_not_durable(&mut all_durable, 9).is_empty());
        assert_eq!(all_durable, entries(4..=9));
        let mut none_durable = entries(4..=9);
        assert_eq!(split_off_not_durable(&mut none_durable, 3), entries(4..=9));
        assert!(none_durable.is_empty());
    }

    #[test]
    fn commit_only_change_needs_no_sync() {
        let ready = with_hard_state(HardState {
            commit: 11,
            ..DURABLE
        });
        assert!(!needs_sync(&ready, DURABLE));
        assert!(!needs_sync(&Ready::default(), DURABLE));
    }

    #[test]
    fn term_vote_entries_and_promises_need_a_sync() {
        let new_term = HardState {
            term: 4,
            vote: 0,
            ..DURABLE
        };
        assert!(needs_sync(&with_hard_state(new_term), DURABLE));
        let new_vote = HardState { vote: 1, ..DURABLE };
        assert!(needs_sync(&with_hard_state(new_vote), DURABLE));
        let entries = Ready {
            entries: vec![Entry {
                term: 3,
                index: 11,
                kind: EntryKind::Normal,
                data: Vec::new(),
            }],
            ..Ready::default()
        };
        assert!(needs_sync(&entries, DURABLE));
        let promise = Ready {
            persisted_messages: vec![Message {
                from: 1,
                to: 2,
                term: 3,
                body: raft::MessageBody::HeartbeatResponse { read_context: None },
            }],
            ..Ready::default()
        };
        assert!(needs_sync(&promise, DURABLE));
    }
}
