//! The simulated world: virtual time, one event queue, the members running
//! the product's node loop over the real log (`wal::Wal`) and store on
//! simulated disks, the network between them, the clients and the nemesis.
//! The world decides when a disk's syncs complete (a seeded fsync latency
//! after a member's write) and when a member crashes. One seed decides every choice, so a run replays exactly.
//!
//! Owns: the clock, the queue, and dispatching events to the parts. Must
//! never: read real time, spawn threads or draw randomness outside its
//! [`SimRng`]; and it never lets a run go on past the first violation.

mod client;
mod control;
mod host;
mod kv_backend;
mod member;
mod nemesis;
mod network;

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use raft::{LogIndex, Message, NodeId, Role, Term};

use crate::config::SimConfig;
use crate::elections::ElectionChecker;
use crate::invariants::SafetyChecker;
use crate::linearizability::KvOperation;
use crate::liveness;
use crate::rng::SimRng;
use crate::trace::{Happening, Trace};
use crate::violation::{Invariant, Violation};

use client::Client;
pub use client::{ClientReply, ClientRequest};
use member::Member;
use network::Network;
pub use network::PartitionKind;

/// Counters a run reports in its summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub events: u64,
    pub messages_sent: u64,
    /// Messages sent, by kind (as traces name them).
    pub messages_by_kind: BTreeMap<&'static str, u64>,
    pub message_bytes: u64,
    pub messages_dropped: u64,
    pub messages_duplicated: u64,
    /// Messages delivered once more long after their first delivery.
    pub messages_replayed: u64,
    /// Messages to or from a slow member, delayed by 100 ms to 2 s.
    pub messages_delayed: u64,
    pub faults_injected: u64,
    pub crashes: u64,
    /// Crashes that struck a member in the middle of an fsync (its write
    /// lost, or kept in part).
    pub crashes_during_fsync: u64,
    /// Writes of which a crashed disk kept a torn prefix.
    pub torn_writes: u64,
    pub partitions: u64,
    /// Members made slow (their messages delayed) by the nemesis.
    pub slowdowns: u64,
    /// Leadership transfers the nemesis asked for.
    pub transfers: u64,
    /// Configuration changes the nemesis asked the leader for.
    pub conf_changes_asked: u64,
    /// Process pauses (the member stops, keeping its state, then resumes).
    pub pauses: u64,
    pub fsyncs: u64,
    pub snapshots_installed: u64,
    pub ops_completed: u64,
    pub ops_abandoned: u64,
    /// Writes whose outcome became unknown and that were asked for again as
    /// new operations (no sessions: a write is never sent twice).
    pub writes_reissued: u64,
    /// Serializable reads, checked against the stores' history rather than
    /// recorded in the linearizable one.
    pub serializable_reads: u64,
}

/// Something scheduled to happen at a virtual time.
#[derive(Debug)]
enum Event {
    Tick {
        node: NodeId,
        generation: u64,
    },
    Deliver {
        message: Message,
    },
    FsyncDone {
        node: NodeId,
        generation: u64,
    },
    Resume {
        node: NodeId,
        generation: u64,
    },
    ToMember {
        node: NodeId,
        request: ClientRequest,
    },
    ToClient {
        client: usize,
        reply: ClientReply,
    },
    ClientTimer {
        client: usize,
        request_id: u64,
        attempt: u32,
    },
    ClientStart {
        client: usize,
    },
    Nemesis,
    Restart {
        node: NodeId,
    },
    CrashFreshVoter {
        node: NodeId,
        generation: u64,
    },
    HealPartition {
        epoch: u64,
    },
    FreeDiskSpace {
        node: NodeId,
    },
    EndSlowdown {
        epoch: u64,
    },
    EndFaultPhase,
}

/// Queue entry ordered by (time, sequence): ties break by insertion order,
/// so the queue never depends on anything but the run's own history.
#[derive(Debug)]
struct Scheduled {
    time_us: u64,
    sequence: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.time_us, self.sequence) == (other.time_us, other.sequence)
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest event first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time_us, other.sequence).cmp(&(self.time_us, self.sequence))
    }
}

/// Which stage of a run the world is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Faults are injected and clients start new operations.
    Faults,
    /// Everything healed at `since_us`; clients finish what they started.
    /// What the faults left behind has settled by `settles_at_us` (see
    /// [`World::end_fault_phase`]).
    Healing {
        since_us: u64,
        settles_at_us: u64,
        leader_seen: bool,
    },
}

/// A cluster, its clients and its environment, advanced one event at a time.
#[derive(Debug)]
pub struct World {
    config: SimConfig,
    seed: u64,
    rng: SimRng,
    now_us: u64,
    sequence: u64,
    queue: BinaryHeap<Scheduled>,
    members: Vec<Member>,
    network: Network,
    clients: Vec<Client>,
    checker: SafetyChecker,
    elections: ElectionChecker,
    trace: Trace,
    history: Vec<KvOperation>,
    stats: Stats,
    phase: Phase,
    /// The healthy stretch after healing, once a stable leader was seen.
    calm: Option<liveness::Calm>,
    violation: Option<Violation>,
    next_lab_client_id: u64,
    /// The member whose node was called last, to name it if it panics.
    acting_node: NodeId,
    /// The first index at which any member applied each command, by the
    /// command's fingerprint, so scenarios find what they proposed.
    applied_commands: BTreeMap<u64, LogIndex>,
    /// Every id some member's applied member list has held: the founding
    /// members and everyone added since.
    ever_members: BTreeSet<NodeId>,
    /// Empty buffers for draining a member's effects (see `World::settle`).
    spare_effects: host::Effects,
    /// A fault the nemesis stages over several events, if one is under way.
    plot: Option<nemesis::Plot>,
    /// The client requests members are serving through the KV path.
    calls: kv_backend::Calls,
}

impl World {
    /// A fresh cluster whose members all start empty. Ticks, clients and the
    /// nemesis are scheduled, but nothing runs until [`World::step`].
    pub fn new(config: SimConfig, seed: u64) -> Self {
        assert!(
            config.node_count >= 1,
            "a cluster needs at least one member"
        );
        let mut rng = SimRng::new(seed);
        let voters: Vec<NodeId> = (1..=config.node_count as u64).collect();
        let pool_size = config.node_count + config.spare_member_count;
        let pool: Vec<NodeId> = (1..=pool_size as u64).collect();
        let drift_max = config.tick_drift_per_mille_max.min(500);
        let members = pool
            .iter()
            .map(|&id| {
                let drift = rng.between(0, 2 * drift_max);
                let tick_us = (config.tick_us * (1000 - drift_max + drift) / 1000).max(1);
                Member::new(id, voters.clone(), tick_us)
            })
            .collect();
        let network = Network::new(pool_size, config.network.clone());
        let clients = (0..config.workload.client_count)
            .map(|index| Client::new(index as u64 + 1, rng.between(1, config.node_count as u64)))
            .collect();
        let mut world = Self {
            trace: Trace::new(config.trace_events_max),
            config,
            seed,
            rng,
            now_us: 0,
            sequence: 0,
            queue: BinaryHeap::new(),
            members,
            network,
            clients,
            checker: SafetyChecker::new(),
            elections: ElectionChecker::new(),
            history: Vec::new(),
            stats: Stats::default(),
            phase: Phase::Faults,
            calm: None,
            violation: None,
            next_lab_client_id: 1 << 32,
            acting_node: 0,
            applied_commands: BTreeMap::new(),
            ever_members: voters.iter().copied().collect(),
            spare_effects: host::Effects::default(),
            plot: None,
            calls: kv_backend::Calls::default(),
        };
        for id in pool {
            world.start_member(id);
        }
        for client in 0..world.clients.len() {
            let delay = world.rng.between(0, world.config.workload.think_us_max);
            world.schedule(delay, Event::ClientStart { client });
        }
        if !world.config.faults.is_empty() {
            world.schedule_nemesis();
        }
        if world.config.workload.client_count > 0 || !world.config.faults.is_empty() {
            world.schedule(world.config.fault_phase_us, Event::EndFaultPhase);
        }
        world
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    pub fn checker(&self) -> &SafetyChecker {
        &self.checker
    }

    pub fn history(&self) -> &[KvOperation] {
        &self.history
    }

    /// From now on, retain only the story-telling events between `from_us`
    /// and `to_us` (see [`Trace::focus_on`]).
    pub fn focus_trace(&mut self, from_us: u64, to_us: u64) {
        self.trace.focus_on(from_us, to_us);
    }

    /// The retained events, oldest first.
    pub fn recent_events(&self) -> Vec<crate::trace::TraceRecord> {
        self.trace.recent()
    }

    /// The hash of every event so far (see [`Trace::digest`]).
    pub fn trace_digest(&self) -> u64 {
        self.trace.digest()
    }

    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    fn schedule(&mut self, delay_us: u64, event: Event) {
        self.sequence += 1;
        self.queue.push(Scheduled {
            time_us: self.now_us + delay_us,
            sequence: self.sequence,
            event,
        });
    }

    fn record(&mut self, node: NodeId, happening: Happening) {
        self.trace.record(self.now_us, node, happening);
    }

    /// Records the first violation, with the story that led to it; later
    /// ones are consequences and are ignored.
    fn fail(&mut self, mut violation: Violation) {
        if self.violation.is_some() {
            return;
        }
        violation.seed = Some(self.seed);
        violation.trace = self.trace.recent();
        self.violation = Some(violation);
    }

    fn check(&mut self, result: Result<(), Violation>) {
        if let Err(violation) = result {
            self.fail(violation);
        }
    }

    /// What the world does with every message as it leaves its sender,
    /// before the network decides its fate.
    fn observe_sent(&mut self, message: &Message) {
        self.check_election_rules(message);
        self.maybe_crash_fresh_voter(message);
    }

    /// Holds a message leaving its sender to the election rules.
    fn check_election_rules(&mut self, message: &Message) {
        let result = self.elections.observe_sent(message, self.now_us);
        self.check(result);
    }

    /// Runs one event. Returns false when the queue is empty or a violation
    /// has been found.
    pub fn step(&mut self) -> bool {
        if self.violation.is_some() {
            return false;
        }
        let Some(scheduled) = self.queue.pop() else {
            return false;
        };
        debug_assert!(scheduled.time_us >= self.now_us, "time went backwards");
        self.now_us = scheduled.time_us;
        self.stats.events += 1;
        self.dispatch(scheduled.event);
        if self.plot.is_some() {
            self.advance_plot();
        }
        if let Phase::Healing { .. } = self.phase {
            self.check_liveness();
        }
        self.violation.is_none()
    }

    fn dispatch(&mut self, event: Event) {
        match event {
            Event::Tick { node, generation } => self.on_tick(node, generation),
            Event::Deliver { message } => self.on_deliver(message),
            Event::FsyncDone { node, generation } => self.on_fsync_done(node, generation),
            Event::Resume { node, generation } => self.on_resume(node, generation),
            Event::ToMember { node, request } => self.on_client_request(node, request),
            Event::ToClient { client, reply } => self.on_client_reply(client, reply),
            Event::ClientTimer {
                client,
                request_id,
                attempt,
            } => self.on_client_timer(client, request_id, attempt),
            Event::ClientStart { client } => self.on_client_start(client),
            Event::Nemesis => self.on_nemesis(),
            Event::Restart { node } => self.restart(node),
            Event::CrashFreshVoter { node, generation } => {
                self.on_crash_fresh_voter(node, generation)
            }
            Event::HealPartition { epoch } => self.on_heal_partition(epoch),
            Event::FreeDiskSpace { node } => self.free_disk_space(node),
            Event::EndSlowdown { epoch } => self.on_end_slowdown(epoch),
            Event::EndFaultPhase => self.end_fault_phase(),
        }
    }

    /// Runs until `until_us` of virtual time, a violation, or an empty queue.
    pub fn run_for(&mut self, duration_us: u64) {
        let until_us = self.now_us + duration_us;
        while self
            .queue
            .peek()
            .is_some_and(|next| next.time_us <= until_us)
        {
            if !self.step() {
                return;
            }
        }
        if self.violation.is_none() {
            self.now_us = self.now_us.max(until_us);
        }
    }

    /// Runs until `done` holds (checked after every event), at most
    /// `duration_us` of virtual time. Returns whether `done` held.
    pub fn run_until(&mut self, duration_us: u64, mut done: impl FnMut(&World) -> bool) -> bool {
        let until_us = self.now_us + duration_us;
        loop {
            if done(self) {
                return true;
            }
            match self.queue.peek() {
                Some(next) if next.time_us <= until_us => {
                    if !self.step() {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }

    fn member(&self, node: NodeId) -> &Member {
        &self.members[(node - 1) as usize]
    }

    fn member_mut(&mut self, node: NodeId) -> &mut Member {
        &mut self.members[(node - 1) as usize]
    }

    pub fn node_ids(&self) -> Vec<NodeId> {
        (1..=self.members.len() as u64).collect()
    }

    /// Whether `node` is running (not crashed).
    pub fn is_up(&self, node: NodeId) -> bool {
        self.member(node).is_up()
    }

    /// The role and term `node` last reported, if it is up.
    pub fn role(&self, node: NodeId) -> Option<(Role, Term)> {
        let member = self.member(node);
        member.is_up().then_some((member.role, member.term))
    }

    /// The member list applied by the running member that applied the most:
    /// the newest committed configuration anyone acted on.
    pub fn applied_members(&self) -> raft::ConfState {
        self.members
            .iter()
            .filter(|member| member.is_up())
            .max_by_key(|member| (member.applied, std::cmp::Reverse(member.id)))
            .map_or_else(
                || self.members[0].applied_conf.clone(),
                |member| member.applied_conf.clone(),
            )
    }

    /// The member that leads the highest term among running members of the
    /// cluster, if any. A removed member (or a spare) may campaign on its own
    /// and raise its term without ever being heard: its term does not count.
    pub fn leader(&self) -> Option<NodeId> {
        let applied_members = self.applied_members();
        let highest_term = self
            .members
            .iter()
            .filter(|member| member.is_up() && applied_members.is_member(member.id))
            .map(|member| member.term)
            .max()?;
        self.members
            .iter()
            .find(|member| {
                member.is_up() && member.role == Role::Leader && member.term == highest_term
            })
            .map(|member| member.id)
    }

    /// Leaders among running members, by term: more than one in one term
    /// would already be an election-safety violation.
    pub fn leaders(&self) -> Vec<(NodeId, Term)> {
        self.members
            .iter()
            .filter(|member| member.is_up() && member.role == Role::Leader)
            .map(|member| (member.id, member.term))
            .collect()
    }

    /// The highest index `node`'s state machine has applied (0 when down).
    pub fn applied(&self, node: NodeId) -> LogIndex {
        let member = self.member(node);
        if member.is_up() {
            member.applied
        } else {
            0
        }
    }

    /// `node`'s current term, as last reported.
    pub fn term(&self, node: NodeId) -> Term {
        self.member(node).term
    }

    /// The number of running members whose state machines applied `index`.
    pub fn applied_count(&self, index: LogIndex) -> usize {
        self.members
            .iter()
            .filter(|member| member.is_up() && member.applied >= index)
            .count()
    }

    /// The last index of `node`'s durable log.
    pub fn durable_last_index(&self, node: NodeId) -> LogIndex {
        self.member(node).durable_last_index()
    }

    /// Operations still waiting for an answer.
    pub fn pending_operations(&self) -> usize {
        self.clients
            .iter()
            .filter(|client| client.in_flight.is_some())
            .count()
    }
}

/// An invariant violation helper for impossible simulator states.
fn simulator_fault(node: NodeId, time_us: u64, detail: String) -> Violation {
    Violation::new(Invariant::SimulatorFault, vec![node], time_us, detail)
}

impl World {
    /// The violation for a panic inside the run (usually the core's own
    /// assertion), with the events before it.
    pub fn panic_violation(&mut self, message: String) -> Violation {
        self.violation = None;
        self.fail(Violation::new(
            Invariant::CoreFailure,
            vec![self.acting_node],
            self.now_us,
            format!("panic: {message}"),
        ));
        self.violation.clone().unwrap_or_else(|| unreachable!())
    }

    /// The violation for a run that never settled after healing.
    pub fn liveness_timeout_violation(&mut self, detail: String) -> Violation {
        self.final_violation(Invariant::OperationStuckAfterHeal, detail)
    }

    /// A violation found after the run, for the whole cluster.
    pub fn final_violation(&mut self, invariant: Invariant, detail: String) -> Violation {
        self.fail(Violation::new(
            invariant,
            self.node_ids(),
            self.now_us,
            detail,
        ));
        self.violation.clone().unwrap_or_else(|| unreachable!())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FaultSet;

    #[test]
    fn queue_pops_by_time_then_by_insertion_order() {
        let mut config = SimConfig::new(1, FaultSet::none());
        config.workload.client_count = 0;
        let mut world = World::new(config, 1);
        world.queue.clear();
        world.schedule(5, Event::Nemesis);
        world.schedule(3, Event::Restart { node: 1 });
        world.schedule(5, Event::EndFaultPhase);
        world.schedule(3, Event::HealPartition { epoch: 9 });
        let order: Vec<(u64, String)> = std::iter::from_fn(|| world.queue.pop())
            .map(|scheduled| (scheduled.time_us, format!("{:?}", scheduled.event)))
            .collect();
        let names: Vec<&str> = order.iter().map(|(_, name)| name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "Restart { node: 1 }",
                "HealPartition { epoch: 9 }",
                "Nemesis",
                "EndFaultPhase"
            ]
        );
        assert!(order.windows(2).all(|pair| pair[0].0 <= pair[1].0));
    }

    #[test]
    fn the_healed_cluster_settles_only_once_the_messages_on_their_way_arrive() {
        let mut config = SimConfig::new(3, FaultSet::none());
        config.workload.client_count = 0;
        let election_timeout_us = config.election_timeout_us_max();
        let mut world = World::new(config, 5);
        let late_by_us = 3 * election_timeout_us;
        let late_handover = raft::Message {
            from: 1,
            to: 2,
            term: 1,
            body: raft::MessageBody::TimeoutNow,
        };
        world.schedule(
            late_by_us,
            Event::Deliver {
                message: late_handover,
            },
        );
        let healed_at_us = world.now_us();
        world.end_fault_phase();
        let Phase::Healing { settles_at_us, .. } = world.phase else {
            panic!("the fault phase has ended");
        };
        assert_eq!(settles_at_us, healed_at_us + late_by_us);
    }

    #[test]
    fn a_single_member_elects_itself_and_time_only_moves_forward() {
        let mut config = SimConfig::new(1, FaultSet::none());
        config.workload.client_count = 0;
        let mut world = World::new(config, 3);
        let mut last_us = 0;
        let elected = world.run_until(2_000_000, |world| {
            assert!(world.now_us() >= last_us);
            last_us = world.now_us();
            world.leader().is_some()
        });
        assert!(elected, "a one-member cluster must elect itself");
        assert!(world.violation().is_none());
    }
}
