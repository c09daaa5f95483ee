//! One simulated member: the product's node loop ([`node::Node`]) over the
//! real log (`wal::Wal`) and the real `mvcc::Store`, both on the member's
//! simulated disk ([`SimDisk`]), fed by the world. The disk defers every
//! sync; the world completes them after a seeded fsync latency. A crash
//! crashes the disk (what was not synced lost, the last writes perhaps
//! torn) and reopens the log from it, as the next life of the process
//! will find it; a restart starts the node on that log and reopens the
//! store, restored from the log's snapshot if a crash left it behind.
//! Handles a `Ready` in two halves around the fsync —
//! [`node::Node::persist_ready`] when the Ready is taken,
//! [`node::Node::complete_ready`] once the disk's syncs completed — and
//! holds every input in the inbox while a write is in flight or the process
//! is paused, so the core gets no input between `ready()` and `advance()`.
//!
//! The log shows a write to its readers as soon as it is issued (its sync
//! returns at once on the simulated disk), so the member tracks what the
//! last completed fsync made durable ([`LogMark`]) and where the write in
//! flight begins ([`UnsyncedWrite`]), for the checkers.
//!
//! Owns: crash and restart, pauses, fsync timing, handing client requests
//! to the KV path ([`super::kv_backend`]), and reporting each member's actions to the checkers and the
//! trace. Must never: decide what the node loop decides (when to apply,
//! answer, read or snapshot), or let a write count as durable before its
//! fsync completes.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use raft::{
    ConfChange, ConfChangeKind, ConfState, Config, Entry, EntryKind, HardState, LogIndex, Message,
    NodeId, RaftError, RawNode, Role, Storage, Term, NO_NODE,
};
use wal::{Wal, WalOptions};

use super::client::ClientRequest;
use super::host::{
    Effects, Observation, ReadySummary, SharedEffects, SimNode, SimObserver, SimOutbox,
    StoreMachine, Unheeded, WriteReply,
};
use super::{simulator_fault, Event, World};
use crate::disk::{CrashOptions, SimDisk};
use crate::invariants::DurableLogs;
use crate::log_view::LogView;
use crate::rng::SimRng;
use crate::trace::Happening;
use crate::violation::{Invariant, Violation};

/// Inputs a busy member holds until its fsync ends; beyond this many the
/// newest messages are dropped, like a full socket buffer.
const INBOX_INPUTS_MAX: usize = 4096;
/// The node's snapshot interval when the configuration asks for none: more
/// entries than any run applies.
const SNAPSHOT_ENTRIES_NEVER: u64 = u64::MAX / 4;
/// Where a member keeps its log and its state machine's database, as the
/// server does.
const WAL_DIR: &str = "/member/wal";
const STORE_DIR: &str = "/member/snap";
const STORE_PATH: &str = "/member/snap/db";
/// How long a process whose disk failed stays down before it is restarted.
const DISK_FAILURE_RESTART_US: u64 = 200_000;
/// Written into the log's files; every simulated member is of one cluster.
const CLUSTER_ID: u64 = 0x51;

/// The log's layout: the smallest segments the log allows, so that runs roll
/// segments over and drop them on compaction (and a new segment's zero fill
/// stays cheap).
fn wal_options() -> WalOptions {
    WalOptions {
        segment_bytes: wal::MIN_SEGMENT_BYTES,
        ..WalOptions::new(CLUSTER_ID)
    }
}

/// A new member's disk: a new log of the founding `voters`, and an empty
/// database file, durable; the store creates its database in it on the
/// member's first start. Returns the disk and the log opened on it.
fn new_disk(voters: Vec<NodeId>) -> (SimDisk, Option<Wal>) {
    use wal::fs::FileSystem;
    let disk = SimDisk::new();
    let fs = disk.mount();
    let log = Wal::create_on(
        Arc::new(fs.clone()),
        Path::new(WAL_DIR),
        &wal_options(),
        voters,
    );
    debug_assert!(log.is_ok(), "a new simulated disk takes a log: {log:?}");
    let created = fs
        .create_dir_all(Path::new(STORE_DIR))
        .and_then(|()| fs.storage_backend(Path::new(STORE_PATH)).map(drop))
        .and_then(|()| {
            ["/", "/member", STORE_DIR]
                .iter()
                .try_for_each(|dir| fs.sync_dir(Path::new(dir)))
        });
    debug_assert!(
        created.is_ok(),
        "a new simulated disk takes a file: {created:?}"
    );
    disk.complete_syncs();
    (disk, log.ok())
}

/// Opens the log on `disk` after a crash: recovery keeps what was durable
/// and cuts a torn, never acknowledged tail; anything else is an error.
/// Opening is part of starting the process, so its syncs complete before
/// the process goes on.
fn reopen_log(disk: &SimDisk) -> Result<Wal, wal::WalError> {
    let log = Wal::open_on(Arc::new(disk.mount()), Path::new(WAL_DIR), &wal_options());
    disk.complete_syncs();
    log
}

/// Opens the store on `disk` as a new life of the process finds it.
fn open_store(disk: &SimDisk) -> Result<mvcc::Store, String> {
    let backend = disk
        .mount()
        .storage_backend(Path::new(STORE_PATH))
        .map_err(|error| error.to_string())?;
    let store = mvcc::Store::with_backend(backend).map_err(|error| error.to_string())?;
    // Opening a database commits; that is durable before the process goes on.
    disk.complete_syncs();
    Ok(store)
}

/// Something for the node that may have to wait while the member is busy.
#[derive(Debug)]
pub(super) enum Input {
    Tick,
    Message(Message),
    Client(ClientRequest),
    /// A raw proposal from a scripted test.
    Propose(Vec<u8>),
    /// Hand leadership to this member (ignored unless leading).
    TransferLeader(NodeId),
    /// Propose this configuration change (refused by the node unless
    /// leading and the leader accepts it).
    ConfChange(ConfChange),
}

/// Where a member's log stands after a write: what the log showed when the
/// write was issued, durable once the disk's syncs for it complete.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct LogMark {
    last_index: LogIndex,
    hard_state: HardState,
    snapshot_index: LogIndex,
}

impl LogMark {
    fn of(log: &Wal) -> Self {
        Self {
            last_index: log.last_index(),
            hard_state: log.hard_state(),
            snapshot_index: log.snapshot_meta().index,
        }
    }
}

/// A write of the log whose fsync has not completed. The log already shows
/// it; a crash now keeps the durable log, perhaps with part of this write.
#[derive(Clone, Copy, Debug)]
pub(super) struct UnsyncedWrite {
    /// Where the log stands once the write is durable.
    mark: LogMark,
    /// The first index of the entries it writes: from here on the log shows
    /// this write's entries, while the durable log may hold others.
    entries_from: Option<LogIndex>,
    /// The index of a snapshot received from the leader that it installs.
    snapshot_index: Option<LogIndex>,
}

/// What observing a Ready's write needs, kept until the write is issued.
#[derive(Debug)]
struct StalledWrite {
    ready: ReadySummary,
    term: Term,
    was_leader: bool,
}

#[derive(Debug)]
pub(super) struct Member {
    pub(super) id: NodeId,
    /// The running node; `None` while crashed.
    node: Option<SimNode>,
    /// Where the running node's outbox, replies and observer queue their
    /// output; new on every start, so nothing of a past life leaks.
    effects: SharedEffects,
    /// While crashed: the log recovered from the disk, as the next life of
    /// the process opens it (the disk does not change while it is down).
    log_while_down: Option<Wal>,
    /// What the last completed fsync made durable; its snapshot index also
    /// moves with a local compaction, which covers only durable entries.
    durable: LogMark,
    /// The write whose fsync the member waits for, if any.
    unsynced: Option<UnsyncedWrite>,
    /// The disk the log and the state machine's database live on; it
    /// outlives crashes.
    disk: SimDisk,
    /// Bumped on every crash, so events of a past life are ignored.
    pub(super) generation: u64,
    /// This member's tick period: the configured one, drifted.
    pub(super) tick_us: u64,
    /// A Ready whose write waits for its fsync.
    persisted: Option<node::PersistedReady>,
    /// A Ready taken whose write is not issued yet: the node is handling it,
    /// or holds it while its disk is full; what the write shows is observed
    /// once it is issued.
    stalled_write: Option<StalledWrite>,
    /// The process is stopped (a long GC pause, SIGSTOP) until this virtual
    /// time: it neither ticks nor handles input, but keeps its state.
    pub(super) paused_until_us: Option<u64>,
    /// The pending write's fsync completed while the process was stopped; it
    /// learns of it when it resumes.
    fsync_deferred: bool,
    inbox: VecDeque<Input>,
    /// The last index the node applied, as observed.
    pub(super) applied: LogIndex,
    pub(super) role: Role,
    pub(super) term: Term,
    pub(super) leader: NodeId,
    /// The member list the node applied (its snapshot's configuration, then
    /// every committed change), kept while crashed.
    pub(super) applied_conf: ConfState,
    /// The ids the node's member list holds as removed, kept while crashed
    /// as the server keeps them in its saved member list: a restart from a
    /// snapshot that covers a removal still ignores the removed member's
    /// vote requests.
    removed_members: Vec<NodeId>,
}

impl Member {
    /// A new member, down, with a new, empty log on a new disk.
    pub(super) fn new(id: NodeId, voters: Vec<NodeId>, tick_us: u64) -> Self {
        let (disk, log) = new_disk(voters.clone());
        Self {
            id,
            node: None,
            effects: SharedEffects::default(),
            applied_conf: ConfState::with_voters(voters),
            removed_members: Vec::new(),
            log_while_down: log,
            durable: LogMark::default(),
            unsynced: None,
            disk,
            generation: 0,
            tick_us,
            persisted: None,
            stalled_write: None,
            paused_until_us: None,
            fsync_deferred: false,
            inbox: VecDeque::new(),
            applied: 0,
            role: Role::Follower,
            term: 0,
            leader: NO_NODE,
        }
    }

    pub(super) fn disk_is_full(&self) -> bool {
        self.disk.is_full()
    }

    pub(super) fn is_up(&self) -> bool {
        self.node.is_some()
    }

    /// Whether a write of this member is waiting for its fsync (the member
    /// takes no input until it completes).
    pub(super) fn is_busy(&self) -> bool {
        self.persisted.is_some()
    }

    /// Whether inputs must wait in the inbox: during an fsync or a pause.
    fn holds_input(&self) -> bool {
        self.is_busy() || self.paused_until_us.is_some()
    }

    /// The index of a received snapshot whose write is still in flight.
    pub(super) fn pending_snapshot_index(&self) -> Option<LogIndex> {
        self.unsynced?.snapshot_index
    }

    /// The last index of the write in flight, if it appends entries.
    #[cfg(test)]
    fn pending_last_index(&self) -> Option<LogIndex> {
        let write = self.unsynced?;
        write.entries_from.map(|_| write.mark.last_index)
    }

    /// The configuration in force in this member's core, if it runs.
    pub(super) fn conf_in_force(&self) -> Option<&ConfState> {
        self.node.as_ref().map(|node| node.raft().conf_state())
    }

    /// The running node, `None` while crashed.
    pub(super) fn running(&self) -> Option<&SimNode> {
        self.node.as_ref()
    }

    pub(super) fn running_mut(&mut self) -> Option<&mut SimNode> {
        self.node.as_mut()
    }

    /// The queue the running node's replies go to.
    pub(super) fn effects(&self) -> SharedEffects {
        Rc::clone(&self.effects)
    }

    /// The running member's state machine.
    pub(super) fn store(&self) -> Option<&mvcc::Store> {
        self.node.as_ref().map(|node| &*node.state_machine().store)
    }

    /// The member's log: the running node's, with a write in flight shown,
    /// or the one recovered after a crash. `None` only when a crashed
    /// member's log did not reopen (the run stops at that violation).
    pub(super) fn log(&self) -> Option<&Wal> {
        match &self.node {
            Some(running) => Some(running.log()),
            None => self.log_while_down.as_ref(),
        }
    }

    /// The last index of the durable log: as of the last completed fsync, or
    /// as recovered after a crash.
    pub(super) fn durable_last_index(&self) -> LogIndex {
        match (&self.node, &self.log_while_down) {
            (None, Some(log)) => log.last_index(),
            _ => self.durable.last_index,
        }
    }

    /// The index the durable log's snapshot covers.
    pub(super) fn durable_snapshot_index(&self) -> LogIndex {
        match (&self.node, &self.log_while_down) {
            (None, Some(log)) => log.snapshot_meta().index,
            _ => self.durable.snapshot_index,
        }
    }

    /// Whether the durable log holds `index` with `term`, as a log entry or
    /// covered by its snapshot. The log shows the write in flight: entries
    /// it adds are not durable yet, and those it replaces (which the durable
    /// log may still hold) count as not held: they are about to go.
    fn durably_holds(&self, index: LogIndex, term: Term) -> bool {
        let Some(log) = self.log() else {
            return false;
        };
        if index <= self.durable_snapshot_index() {
            return true;
        }
        if self.node.is_some() {
            let written_from = self
                .unsynced
                .and_then(|write| write.entries_from)
                .unwrap_or(LogIndex::MAX);
            if index >= written_from || index > self.durable.last_index {
                return false;
            }
        }
        log.entry(index).is_some_and(|entry| entry.term == term)
    }
}

impl Drop for Member {
    /// A member still running when the run ends goes as if it crashed: its
    /// store would otherwise close its database cleanly, a durable commit of
    /// redb's allocator state that costs more than the rest of a short run.
    fn drop(&mut self) {
        if self.node.is_some() {
            self.disk
                .crash(&mut SimRng::new(0), &CrashOptions::DURABLE_ONLY);
        }
    }
}

/// The member list as a configuration: voters and learners, sorted.
fn conf_of(list: &node::MemberList) -> ConfState {
    let mut conf = ConfState::default();
    for member in &list.members {
        if member.is_learner {
            conf.learners.push(member.id);
        } else {
            conf.voters.push(member.id);
        }
    }
    conf.voters.sort_unstable();
    conf.learners.sort_unstable();
    conf
}

/// How a process describes itself to the cluster; the network reaches it by id.
fn described(id: NodeId) -> node::Member {
    node::Member {
        id,
        name: format!("node{id}"),
        peer_urls: Vec::new(),
        client_urls: Vec::new(),
        is_learner: false,
    }
}

/// Every member's durable log, for the durable-majority check.
struct DurableView<'a>(&'a [Member]);

impl DurableLogs for DurableView<'_> {
    fn members(&self) -> Vec<NodeId> {
        self.0.iter().map(|member| member.id).collect()
    }

    fn durably_holds(&self, node: NodeId, index: LogIndex, term: Term) -> bool {
        self.0[(node - 1) as usize].durably_holds(index, term)
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

    fn node_options(&self, node: NodeId) -> node::NodeOptions {
        let interval = self.config.snapshot_interval_entries;
        node::NodeOptions {
            // Differs on every boot of this member, as the generation does.
            boot_id: self.member(node).generation + 1,
            election_ticks: self.config.election_ticks,
            // A client stops waiting after this long; the member need not wait longer.
            request_timeout_ticks: self
                .config
                .workload
                .request_timeout_us
                .div_ceil(self.config.tick_us),
            snapshot_entries: if interval == 0 {
                SNAPSHOT_ENTRIES_NEVER
            } else {
                interval
            },
            configured_members: self.node_ids().into_iter().map(described).collect(),
        }
    }

    /// Boots `node` from its durable log: the state machine and member list
    /// are rebuilt from the snapshot, and the core re-delivers the committed
    /// entries after it.
    pub(super) fn start_member(&mut self, node: NodeId) {
        let index = (node - 1) as usize;
        if self.members[index].is_up() {
            return;
        }
        let Some(log) = self.members[index].log_while_down.take() else {
            let detail = format!("node {node} has no log to start from");
            return self.fail(Violation::new(
                Invariant::LogRecovery,
                vec![node],
                self.now_us,
                detail,
            ));
        };
        let snapshot_meta = log.snapshot_meta().clone();
        let store = open_store(&self.members[index].disk).and_then(|store| {
            catch_up_store(&store, &log)?;
            Ok(store)
        });
        #[cfg(feature = "mutations")]
        let store = store.map(|mut store| {
            store.set_mutation(self.config.store_mutation);
            store
        });
        let machine = match store {
            Ok(store) => StoreMachine::new(store),
            Err(error) => {
                let detail = format!("node {node}'s store does not reopen: {error}");
                return self.fail(simulator_fault(node, self.now_us, detail));
            }
        };
        let durable = LogMark::of(&log);
        let hard_state = log.hard_state();
        let last_index = log.last_index();
        let config = self.core_config(node, snapshot_meta.index);
        let raft = match RawNode::new(&config, log) {
            Ok(raft) => raft,
            Err(error) => {
                return self.fail(core_failure(
                    node,
                    self.now_us,
                    format!("restart refused: {error}"),
                ))
            }
        };
        let options = self.node_options(node);
        let mut member_list = node::MemberList::initial(Vec::new());
        member_list.removed = self.members[index].removed_members.clone();
        member_list.restore(
            snapshot_meta.index,
            &snapshot_meta.conf_state,
            &options.configured_members,
        );
        let effects = Rc::new(RefCell::new(Effects::default()));
        #[cfg_attr(not(feature = "mutations"), allow(unused_mut))]
        let mut running = SimNode::new(
            raft,
            machine,
            SimOutbox(Rc::clone(&effects)),
            member_list,
            options,
            SimObserver(Rc::clone(&effects)),
        );
        #[cfg(feature = "mutations")]
        running.set_mutation(self.config.node_mutation);
        let member = &mut self.members[index];
        member.applied_conf = conf_of(running.members());
        member.node = Some(running);
        member.effects = effects;
        member.durable = durable;
        member.unsynced = None;
        member.applied = snapshot_meta.index;
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
        self.acting_node = node;
        let started = match self.members[index].node.as_mut() {
            Some(running) => running.start(),
            None => Ok(()),
        };
        self.settle(node);
        if let Err(error) = started {
            return self.node_stopped(node, &error);
        }
        self.drive(node);
    }

    /// Crashes `node`: the node and everything not yet durable are lost; the
    /// disk may keep part of the writes in flight (syncs that completed,
    /// torn writes). The log is recovered from the disk at once.
    pub(super) fn crash_member(&mut self, node: NodeId) {
        let torn_probability = self.config.disk.torn_write_probability;
        let index = (node - 1) as usize;
        let Some(running) = self.members[index].node.take() else {
            return;
        };
        if self.members[index].unsynced.is_some() {
            self.stats.crashes_during_fsync += 1;
        }
        // The disk first: the dying process's store must not get to close
        // its database cleanly, nor its log write anything more.
        let crash_options = CrashOptions {
            torn_write_probability: torn_probability,
            unsynced_dir_change_kept_probability: torn_probability,
        };
        let report = self.members[index]
            .disk
            .crash(&mut self.rng, &crash_options);
        // Its operator frees the space before the process runs again; the
        // disk keeps what the full-disk period left, half batches included.
        self.free_disk_space(node);
        self.drop_calls_at(node);
        drop(running);
        let torn_writes = report.torn_writes.len();
        self.stats.torn_writes += torn_writes as u64;
        let reopened = reopen_log(&self.members[index].disk);
        let member = &mut self.members[index];
        debug_assert!(
            member.log_while_down.is_none(),
            "a running member keeps no spare log"
        );
        let durable_last_index = reopened.as_ref().map_or(0, Wal::last_index);
        let recovered_commit = reopened.as_ref().map_or(0, |log| log.hard_state().commit);
        let recovery_failure = reopened.as_ref().err().map(ToString::to_string);
        member.log_while_down = reopened.ok();
        member.unsynced = None;
        member.persisted = None;
        member.stalled_write = None;
        member.generation += 1;
        member.paused_until_us = None;
        member.fsync_deferred = false;
        member.inbox.clear();
        member.role = Role::Follower;
        member.leader = NO_NODE;
        self.checker.observe_not_leader(node);
        self.stats.crashes += 1;
        self.record(
            node,
            Happening::Crashed {
                durable_last_index,
                torn_writes,
            },
        );
        let Some(error) = recovery_failure else {
            // What the last completed fsync made durable survived.
            let result = self
                .checker
                .observe_durable_commit(node, recovered_commit, self.now_us);
            return self.check(result);
        };
        let detail = format!("node {node}'s log does not reopen after a crash: {error}");
        self.fail(Violation::new(
            Invariant::LogRecovery,
            vec![node],
            self.now_us,
            detail,
        ));
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
            .then(|| member.persisted.take())
            .flatten();
        self.record(node, Happening::Fault(String::from("process resumes")));
        if let Some(persisted) = deferred_write {
            self.finish_ready(node, persisted);
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

    /// Queues `input` for `node` and lets it run, unless it waits on its
    /// fsync or is paused.
    pub(super) fn input(&mut self, node: NodeId, input: Input) {
        let member = self.member_mut(node);
        if !member.is_up() {
            return;
        }
        if member.paused_until_us.is_some() && matches!(input, Input::Tick) {
            return;
        }
        if member.holds_input()
            && member.inbox.len() >= INBOX_INPUTS_MAX
            && matches!(input, Input::Message(_))
        {
            self.stats.messages_dropped += 1;
            return;
        }
        member.inbox.push_back(input);
        self.drive(node);
    }

    /// Feeds the queued inputs as one batch and handles Ready batches until
    /// the member has to wait for an fsync or has nothing left to do.
    pub(super) fn drive(&mut self, node: NodeId) {
        let index = (node - 1) as usize;
        loop {
            let member = &self.members[index];
            if self.violation.is_some() || member.holds_input() || !member.is_up() {
                return;
            }
            if !member.inbox.is_empty() {
                while let Some(input) = self.members[index].inbox.pop_front() {
                    self.feed(node, input);
                }
                let submitted = match self.members[index].node.as_mut() {
                    Some(running) => running.submit(),
                    None => Ok(()),
                };
                self.settle(node);
                if let Err(error) = submitted {
                    return self.node_stopped(node, &error);
                }
                continue;
            }
            if !self.members[index]
                .node
                .as_ref()
                .is_some_and(SimNode::has_ready)
            {
                return;
            }
            self.begin_ready(node);
        }
    }

    fn feed(&mut self, node: NodeId, input: Input) {
        self.acting_node = node;
        if let Input::Client(request) = input {
            return self.start_call(node, request);
        }
        let index = (node - 1) as usize;
        let effects = Rc::clone(&self.members[index].effects);
        let Some(running) = self.members[index].node.as_mut() else {
            return;
        };
        let result = match input {
            Input::Tick => running.tick(),
            Input::Message(message) => running.step(message),
            Input::Propose(data) => {
                running.propose(
                    &data,
                    WriteReply {
                        call: None,
                        effects,
                    },
                );
                Ok(())
            }
            Input::TransferLeader(target) => match running.transfer_leader(target) {
                Ok(())
                | Err(
                    RaftError::NotLeader { .. }
                    | RaftError::TransferInProgress { .. }
                    | RaftError::UnknownMember(_),
                ) => Ok(()),
                Err(error) => {
                    let detail = format!("node {node}'s core refused a transfer: {error}");
                    return self.fail(core_failure(node, self.now_us, detail));
                }
            },
            Input::ConfChange(change) => {
                let context = node::MemberContext {
                    name: described(change.node_id).name,
                    peer_urls: Vec::new(),
                };
                running.change_membership(change, &context.encode(), Unheeded)
            }
            Input::Client(_) => unreachable!("client requests are served above"),
        };
        if let Err(error) = result {
            self.node_stopped(node, &error);
        }
    }

    /// The first half of handling a Ready: the node sends what may go at
    /// once, applies what is durable and issues its write; the fsync ends
    /// after a seeded latency (or at once when nothing is written).
    fn begin_ready(&mut self, node: NodeId) {
        debug_assert!(
            self.member(node).is_up() && !self.member(node).is_busy(),
            "a Ready while busy or down"
        );
        self.acting_node = node;
        let index = (node - 1) as usize;
        let Some(running) = self.members[index].node.as_mut() else {
            return;
        };
        let result = running.persist_ready();
        self.settle(node);
        let persisted = match result {
            Ok(Some(persisted)) => persisted,
            // The write waits for disk space: observed once a retry issues it.
            Ok(None) => return,
            Err(error) => {
                self.members[index].stalled_write = None;
                return self.node_stopped(node, &error);
            }
        };
        if let Some(issued) = self.members[index].stalled_write.take() {
            self.observe_write(node, &issued);
        }
        // The log's syncs, and the store's (a flush before compaction, a
        // restored snapshot), complete together after one latency.
        let writes = self.members[index].disk.pending_syncs() > 0;
        if !writes {
            return self.finish_ready(node, persisted);
        }
        let latency = self
            .rng
            .between(self.config.disk.fsync_us_min, self.config.disk.fsync_us_max);
        let member = self.member_mut(node);
        let generation = member.generation;
        member.persisted = Some(persisted);
        self.stats.fsyncs += 1;
        self.schedule(latency, Event::FsyncDone { node, generation });
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
        let Some(persisted) = member.persisted.take() else {
            return;
        };
        self.finish_ready(node, persisted);
        self.drive(node);
    }

    /// The second half: the write becomes durable, then the node sends what
    /// it promised, applies the rest, releases reads and ends its turn.
    fn finish_ready(&mut self, node: NodeId, persisted: node::PersistedReady) {
        debug_assert!(
            self.member(node).persisted.is_none(),
            "finishing a Ready while another waits"
        );
        self.acting_node = node;
        let now_us = self.now_us;
        let index = (node - 1) as usize;
        let synced = self.members[index].disk.complete_syncs() > 0;
        let member = &mut self.members[index];
        if let Some(write) = member.unsynced.take() {
            member.durable = write.mark;
        }
        if synced {
            let durable = self.members[index].durable;
            let result =
                self.checker
                    .observe_durable_commit(node, durable.hard_state.commit, now_us);
            self.check(result);
            self.record(
                node,
                Happening::FsyncDone {
                    last_index: durable.last_index,
                },
            );
        }
        let Some(running) = self.members[index].node.as_mut() else {
            return;
        };
        let completed = running.complete_ready(persisted);
        self.settle(node);
        if let Err(error) = completed {
            return self.node_stopped(node, &error);
        }
        let Some(running) = self.members[index].node.as_mut() else {
            return;
        };
        let snapshot_before = running.log().snapshot_meta().index;
        let ended = running.end_turn();
        let snapshot_after = running.log().snapshot_meta().index;
        self.settle(node);
        if let Err(error) = ended {
            return self.node_stopped(node, &error);
        }
        if snapshot_after > snapshot_before {
            // Its syncs complete with the next fsync, but it covers only
            // applied entries, durable already.
            self.members[index].durable.snapshot_index = snapshot_after;
            self.record(
                node,
                Happening::Compacted {
                    index: snapshot_after,
                },
            );
        }
    }

    /// Routes what the node's last call produced: observations to the
    /// checkers and the trace, messages to the network, answers to clients.
    fn settle(&mut self, node: NodeId) {
        let index = (node - 1) as usize;
        if self.members[index].effects.borrow().is_empty() {
            return;
        }
        // Swapped with the world's emptied buffers, so no call allocates anew.
        let mut effects = std::mem::take(&mut self.spare_effects);
        std::mem::swap(&mut effects, &mut *self.members[index].effects.borrow_mut());
        let mut members_moved = false;
        for observation in effects.observations.drain(..) {
            match observation {
                Observation::Ready(summary) => {
                    members_moved |= summary.snapshot.is_some();
                    self.observe_ready(node, summary);
                }
                Observation::Applying { entry, command } => {
                    members_moved |= matches!(entry.kind, EntryKind::ConfChange(_));
                    self.observe_applying(node, &entry, command);
                }
            }
        }
        if members_moved {
            let member = &mut self.members[index];
            if let Some(running) = &member.node {
                member.applied_conf = conf_of(running.members());
                member
                    .removed_members
                    .clone_from(&running.members().removed);
            }
        }
        for message in effects.messages.drain(..) {
            self.send_message(message);
        }
        for answer in effects.answers.drain(..) {
            self.resume_call(node, answer.call);
        }
        self.spare_effects = effects;
    }

    /// Reports a Ready's role, appends and commit to the safety checker and
    /// the trace: its write at once if the log shows it, or once a retry
    /// issues it if the disk had no room for it.
    fn observe_ready(&mut self, node: NodeId, ready: ReadySummary) {
        self.record(
            node,
            Happening::Ready {
                entries: ready.entries,
                first_index: ready.first_index,
                commit: ready.hard_state.map(|hard_state| hard_state.commit),
                snapshot_index: ready.snapshot.as_ref().map(|meta| meta.index),
                messages: ready.messages,
                persisted_messages: ready.persisted_messages,
                committed: ready.committed,
            },
        );
        let index = (node - 1) as usize;
        if let Some(snapshot) = &ready.snapshot {
            self.stats.snapshots_installed += 1;
            let member = &mut self.members[index];
            member.applied = member.applied.max(snapshot.index);
        }
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
        // What the write shows is observed once `begin_ready` knows the
        // write was issued (at once, or by a retry once the disk has room).
        self.members[index].stalled_write = Some(StalledWrite {
            ready,
            term,
            was_leader,
        });
    }

    /// Reports what a Ready's write shows in the log, once it is issued.
    fn observe_write(&mut self, node: NodeId, write: &StalledWrite) {
        let StalledWrite {
            ready,
            term,
            was_leader,
        } = write;
        let (term, was_leader) = (*term, *was_leader);
        let index = (node - 1) as usize;
        let now_us = self.now_us;
        let member = &mut self.members[index];
        let Some(log) = member.node.as_ref().map(SimNode::log) else {
            return;
        };
        // The log shows the Ready's write already: the appended entries, and
        // before them what the log held (a write replaces only from its first
        // entry on).
        let written = ready.first_index..ready.first_index + ready.entries as u64;
        let entries: Vec<Entry> = written
            .clone()
            .filter_map(|at| log.entry(at).cloned())
            .collect();
        member.unsynced = Some(UnsyncedWrite {
            mark: LogMark::of(log),
            entries_from: (ready.entries > 0).then_some(ready.first_index),
            snapshot_index: ready.snapshot.as_ref().map(|meta| meta.index),
        });
        let member = &self.members[index];
        let Some(log) = member.log() else {
            return;
        };
        let after: &dyn LogView = log;
        let mut result = self
            .checker
            .observe_append(node, term, after, &entries, now_us);
        if result.is_ok() && ready.soft_state.is_some() {
            if member.role == Role::Leader {
                result = self.checker.observe_leader(node, term, after, now_us);
                if let (Ok(()), Some(conf)) = (&result, member.conf_in_force()) {
                    result = self
                        .elections
                        .observe_leader(node, term, &conf.voters, now_us);
                }
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
                after,
                leader_durable,
                now_us,
            );
        }
        let appends_conf_change = entries
            .iter()
            .any(|entry| matches!(entry.kind, EntryKind::ConfChange(_)));
        if result.is_ok() && member.role == Role::Leader && appends_conf_change {
            let commit = self.checker.commit_of(node);
            result = self
                .checker
                .observe_leader_conf_change(node, commit, after, now_us);
        }
        self.check(result);
    }

    /// The node is applying `entry`: in order, the same entry everywhere.
    fn observe_applying(&mut self, node: NodeId, entry: &Entry, command: Option<u64>) {
        let expected = self.member(node).applied + 1;
        if entry.index != expected {
            let detail = format!(
                "handed index {} to apply, but the next to apply is {expected}",
                entry.index
            );
            return self.fail(core_failure(node, self.now_us, detail));
        }
        if !DurableView(&self.members).durably_holds(node, entry.index, entry.term) {
            let detail = format!(
                "applied index {} (term {}) before its own log held it durably",
                entry.index, entry.term
            );
            let violation = Violation::new(
                Invariant::AppliedBeforeDurable,
                vec![node],
                self.now_us,
                detail,
            );
            return self.fail(violation);
        }
        let term = self.member(node).term;
        let result = self.checker.observe_apply(node, term, entry, self.now_us);
        self.check(result);
        self.member_mut(node).applied = entry.index;
        if let Some(command) = command {
            self.applied_commands.entry(command).or_insert(entry.index);
        }
        self.record(
            node,
            Happening::Applied {
                index: entry.index,
                term: entry.term,
            },
        );
        if let EntryKind::ConfChange(change) = entry.kind {
            if matches!(
                change.kind,
                ConfChangeKind::AddVoter | ConfChangeKind::AddLearner
            ) {
                self.ever_members.insert(change.node_id);
            }
            self.record(node, Happening::ConfApplied(change));
        }
    }
}

/// A store a crash left behind the log's snapshot (its last applies were
/// not durable when the log was cut behind them) starts from that snapshot;
/// the log replays the rest.
fn catch_up_store(store: &mvcc::Store, log: &Wal) -> Result<(), String> {
    if store.applied_index() >= log.snapshot_meta().index {
        return Ok(());
    }
    let snapshot = log
        .snapshot()
        .map_err(|error| format!("reading the log's snapshot: {error}"))?;
    store
        .restore(&snapshot.data)
        .and_then(|_| store.flush())
        .map_err(|error| format!("restoring the log's snapshot: {error}"))
}

impl World {
    /// Fills `node`'s log disk: its log writes fail for want of space.
    pub(super) fn fill_disk(&mut self, node: NodeId) {
        self.member(node).disk.fill_up(Path::new(WAL_DIR));
        self.record(node, Happening::Fault(format!("log disk of {node} full")));
    }

    /// Frees the space of `node`'s log disk, if it was full.
    pub(super) fn free_disk_space(&mut self, node: NodeId) {
        if !self.member(node).disk_is_full() {
            return;
        }
        self.member(node).disk.free_space();
        self.record(
            node,
            Happening::Fault(format!("log disk of {node} has space again")),
        );
    }

    /// The node stopped with `error`. A log whose disk failed (an injected
    /// fault: an I/O error, or no space for a leader's snapshot, which the
    /// node does not wait out) stops the process, as it stops the server's
    /// node loop: the member goes down, with what its disk kept, and is
    /// restarted like a crashed process. Any other failure is a violation.
    fn node_stopped(&mut self, node: NodeId, error: &node::NodeError) {
        let disk_failed = self.member(node).disk.stats().faults_injected > 0
            && matches!(
                error,
                node::NodeError::Log(source) if source
                    .downcast_ref::<wal::WalError>()
                    .is_some_and(is_disk_failure)
            );
        if !disk_failed {
            return self.fail(node_failure(node, self.now_us, error));
        }
        self.record(node, Happening::Fault(format!("process exits: {error}")));
        self.crash_member(node);
        self.schedule(DISK_FAILURE_RESTART_US, Event::Restart { node });
    }
}

/// Whether the log failed because its disk did (rather than refusing a
/// request or finding damage).
fn is_disk_failure(error: &wal::WalError) -> bool {
    matches!(
        error,
        wal::WalError::DiskFull { .. } | wal::WalError::Io { .. } | wal::WalError::Poisoned { .. }
    )
}

fn core_failure(node: NodeId, time_us: u64, detail: String) -> Violation {
    Violation::new(Invariant::CoreFailure, vec![node], time_us, detail)
}

/// The node stopped: its state machine failing means the simulator's own
/// bytes are wrong; anything else is the core's or the node's failure.
fn node_failure(node: NodeId, time_us: u64, error: &node::NodeError) -> Violation {
    let detail = format!("node {node} failed: {error}");
    match error {
        node::NodeError::StateMachine(_) => simulator_fault(node, time_us, detail),
        _ => core_failure(node, time_us, detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FaultSet, SimConfig};
    use crate::disk::DiskFault;
    use crate::trace::{Happening, TraceRecord};

    fn quiet_world(seed: u64, early_persisted_messages: bool) -> World {
        let mut config = SimConfig::new(3, FaultSet::none());
        config.workload.client_count = 0;
        config.trace_events_max = 100_000;
        config.disk.fsync_us_min = 2_000;
        config.disk.fsync_us_max = 4_000;
        #[cfg(feature = "mutations")]
        {
            config.node_mutation =
                early_persisted_messages.then_some(node::Mutation::PersistedMessagesBeforeSync);
        }
        assert!(cfg!(feature = "mutations") || !early_persisted_messages);
        let mut world = World::new(config, seed);
        assert!(world.run_until(2_000_000, |world| world.leader().is_some()));
        world
    }

    /// Has the leader of `world` propose `value` and runs until its write of
    /// the entry is in flight; returns the leader and the last index written.
    fn leader_mid_write(world: &mut World, value: u64) -> (NodeId, LogIndex) {
        let leader = world.leader().unwrap_or_else(|| unreachable!());
        world.propose(leader, value);
        let syncing = world.run_until(100_000, |world| {
            world.member(leader).pending_last_index().is_some()
        });
        assert!(syncing, "the leader never started writing the proposal");
        let pending_last = world
            .member(leader)
            .pending_last_index()
            .unwrap_or_else(|| unreachable!());
        (leader, pending_last)
    }

    #[test]
    fn a_restart_from_a_snapshot_past_a_removal_still_ignores_the_removed_member() {
        let mut config = SimConfig::new(3, FaultSet::none());
        config.workload.client_count = 0;
        config.snapshot_interval_entries = 4;
        let mut world = World::new(config, 11);
        assert!(world.run_until(2_000_000, |world| world.leader().is_some()));
        let leader = world.leader().unwrap_or_else(|| unreachable!());
        let others: Vec<NodeId> = world
            .node_ids()
            .into_iter()
            .filter(|&node| node != leader)
            .collect();
        let (removed, survivor) = (others[0], others[1]);
        let removal = ConfChange {
            kind: ConfChangeKind::RemoveMember,
            node_id: removed,
        };
        world.run_for(100_000);
        world.propose_conf_change(leader, removal);
        for value in 0..12 {
            world.propose(leader, value);
            world.run_for(20_000);
        }
        let knows_removed = |world: &World| {
            world
                .member(survivor)
                .node
                .as_ref()
                .is_some_and(|running| running.members().was_removed(removed))
        };
        assert!(knows_removed(&world));
        assert!(
            world.snapshot_index(survivor) > 4,
            "the snapshot covers the removal"
        );
        world.crash(survivor);
        world.restart(survivor);
        assert!(
            knows_removed(&world),
            "restarted, the member forgot that {removed} was removed"
        );
    }

    #[test]
    fn a_crash_mid_fsync_loses_the_write() {
        let mut world = quiet_world(5, false);
        let (leader, pending_last) = leader_mid_write(&mut world, 77);
        world.config.disk.torn_write_probability = 0.0;
        world.crash(leader);
        assert!(
            world.durable_last_index(leader) < pending_last,
            "an unsynced write survived the crash"
        );
    }

    #[test]
    fn a_write_finished_during_a_pause_completes_when_healing_resumes_early() {
        let mut world = quiet_world(5, false);
        let (leader, written_last) = leader_mid_write(&mut world, 78);
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

    #[test]
    fn a_failed_log_write_stops_the_process_before_it_answers() {
        let mut world = quiet_world(7, false);
        world.config.disk.torn_write_probability = 0.0;
        let leader = world.leader().unwrap_or_else(|| unreachable!());
        let follower = world
            .node_ids()
            .into_iter()
            .find(|&node| node != leader)
            .unwrap_or_else(|| unreachable!());
        let crashes_before = world.stats.crashes;
        let durable_before = world.durable_last_index(follower);
        world.member(follower).disk.fail_next(DiskFault::SyncIo);
        let proposed_at_us = world.now_us;
        world.propose(leader, 91);
        let stopped = world.run_until(100_000, |world| !world.member(follower).is_up());
        assert!(stopped, "the follower's failed sync did not stop it");
        assert!(world.violation().is_none(), "{:?}", world.violation());
        assert_eq!(world.stats.crashes, crashes_before + 1);
        assert_eq!(
            world.durable_last_index(follower),
            durable_before,
            "a write whose sync failed is not durable"
        );
        let answered = world.trace.recent().iter().any(|record| {
            record.time_us >= proposed_at_us
                && record.node == follower
                && matches!(
                    record.happening,
                    Happening::Sent {
                        kind: "AppendAccepted",
                        ..
                    }
                )
        });
        assert!(
            !answered,
            "the follower acknowledged a write whose sync failed"
        );
        let written = world.durable_last_index(leader);
        let caught_up = world.run_until(2_000_000, |world| {
            world.member(follower).is_up() && world.durable_last_index(follower) >= written
        });
        assert!(caught_up, "restarted, the follower never caught up");
        assert!(world.violation().is_none(), "{:?}", world.violation());
    }

    fn follower_of(world: &World, leader: NodeId) -> NodeId {
        world
            .node_ids()
            .into_iter()
            .find(|&node| node != leader)
            .unwrap_or_else(|| unreachable!())
    }

    fn write_held(world: &World, node: NodeId) -> bool {
        world
            .member(node)
            .running()
            .is_some_and(|running| running.disk_full().is_some())
    }

    fn accepted_appends_since(world: &World, node: NodeId, since_us: u64) -> bool {
        world.trace.recent().iter().any(|record| {
            record.time_us >= since_us
                && record.node == node
                && matches!(
                    record.happening,
                    Happening::Sent {
                        kind: "AppendAccepted",
                        ..
                    }
                )
        })
    }

    #[test]
    fn a_full_log_disk_holds_the_write_promises_nothing_and_resumes_once_freed() {
        let mut world = quiet_world(7, false);
        let leader = world.leader().unwrap_or_else(|| unreachable!());
        let follower = follower_of(&world, leader);
        let crashes_before = world.stats.crashes;
        let durable_before = world.durable_last_index(follower);
        world.fill_disk(follower);
        let proposed_at_us = world.now_us;
        world.propose(leader, 91);
        assert!(
            world.run_until(100_000, |world| write_held(world, follower)),
            "the follower's write never found the disk full"
        );
        let written = world.durable_last_index(leader);
        world.run_until(world.now_us + 1_000_000, |_| false);
        assert!(world.violation().is_none(), "{:?}", world.violation());
        assert!(
            world.member(follower).is_up(),
            "a full disk stopped the member"
        );
        assert!(write_held(&world, follower), "the disk is still full");
        assert_eq!(world.stats.crashes, crashes_before);
        assert_eq!(world.durable_last_index(follower), durable_before);
        assert!(
            !accepted_appends_since(&world, follower, proposed_at_us),
            "the follower acknowledged entries its full disk did not hold"
        );
        assert!(
            world.checker.commit_of(leader) >= written,
            "the other two members commit without the full one"
        );
        world.free_disk_space(follower);
        let caught_up = world.run_until(world.now_us + 2_000_000, |world| {
            !write_held(world, follower) && world.durable_last_index(follower) >= written
        });
        assert!(caught_up, "the member did not resume once space was freed");
        assert!(world.violation().is_none(), "{:?}", world.violation());
        assert_eq!(world.stats.crashes, crashes_before, "it never restarted");
    }

    #[test]
    fn a_crash_while_a_write_waits_for_disk_space_recovers_the_log_and_catches_up() {
        let mut world = quiet_world(11, false);
        world.config.disk.torn_write_probability = 1.0;
        let leader = world.leader().unwrap_or_else(|| unreachable!());
        let follower = follower_of(&world, leader);
        world.fill_disk(follower);
        world.propose(leader, 92);
        assert!(world.run_until(100_000, |world| write_held(world, follower)));
        world.crash_member(follower);
        assert!(world.violation().is_none(), "{:?}", world.violation());
        world.start_member(follower);
        let written = world.durable_last_index(leader);
        let caught_up = world.run_until(world.now_us + 2_000_000, |world| {
            world.durable_last_index(follower) >= written
        });
        assert!(caught_up, "restarted, the follower never caught up");
        assert!(world.violation().is_none(), "{:?}", world.violation());
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
        let switches: &[bool] = if cfg!(feature = "mutations") {
            &[false, true]
        } else {
            &[false]
        };
        for &early in switches {
            let mut world = quiet_world(9, early);
            let leader = world.leader().unwrap_or_else(|| unreachable!());
            for value in 0..5 {
                world.propose(leader, value);
                world.run_for(20_000);
            }
            let trace = world.trace.recent();
            assert_eq!(
                answers_wait_for_fsync(&trace),
                !early,
                "persisted messages sent early: {early}"
            );
        }
    }
}
