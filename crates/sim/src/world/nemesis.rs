//! The nemesis: during the fault phase it opens partitions and crashes
//! members at seeded moments, and heals each after a seeded while; at the
//! end of the phase it heals everything and then holds the cluster to its
//! liveness promises.
//!
//! Crashes favour the leader and members in the middle of an fsync, where
//! the durability model has the most to lose; now and then a member that
//! has just granted a vote is crashed and restarted within a round trip,
//! while the election it voted in still runs, and now and then the leader
//! is restarted at once, so its followers campaign while all members run.
//! With membership changes on, it also asks the leader to change the
//! configuration, one member at a time. With an unreliable network, a
//! message delivered long ago is now and then delivered once more.
//!
//! Some faults are staged over several events (a [`Plot`], watched after
//! every event): the leader is cut off the moment it commits an entry its
//! followers do not yet know committed, so its successor starts with a
//! commit index that lags; and a leader is cut off with a configuration
//! change only it holds while its successor is at once asked for another,
//! so the two changes' majorities need not overlap. A leader whose inbound
//! queue is backed up is asked to hand leadership over, so it serves reads
//! for a while after its successor took over.
//!
//! Owns: when and which faults happen, healing, the liveness deadlines.
//! Must never: inject a fault outside the fault phase, nor crash a majority
//! of the voters at once (a cluster without a majority cannot be judged
//! for liveness, and safety is exercised as well with a minority down).

use raft::{ConfChange, ConfChangeKind, ConfState, Message, MessageBody, NodeId, Role, Term};

use super::member::Input;
use super::network::PartitionKind;
use super::{Event, Phase, World};
use crate::invariants;
use crate::liveness::{self, Calm, CalmObservation, Deadlines, HealedProgress};
use crate::log_view::LogView;
use crate::trace::{describe_conf_change, Happening};

/// The chance that a member is crashed right after it grants a vote.
const FRESH_VOTER_CRASH_PROBABILITY: f64 = 0.25;

/// The chance that a crash strikes the leader and restarts it at once.
const LEADER_RESTART_PROBABILITY: f64 = 0.3;

/// The longest the nemesis waits for a staged fault's next moment before
/// it gives the plot up, in election timeouts.
const PLOT_PATIENCE_ELECTION_TIMEOUTS: u64 = 10;

/// How long the partition of a split configuration change lasts, in
/// election timeouts: time for the cut-off leader to step down and win an
/// election on its side.
const SPLIT_PARTITION_ELECTION_TIMEOUTS: u64 = 5;

/// A fault staged over several events.
#[derive(Clone, Copy, Debug)]
pub(super) enum Plot {
    /// Hands leadership over with a commit index that lags: the moment
    /// `leader`'s commit index passes every other member's, the messages
    /// telling them are lost and leadership goes to a caught-up follower
    /// (or, without transfers, the leader is cut off); then
    /// [`Plot::SuccessorLosesFirstAppends`].
    HandOverOnCommit {
        leader: NodeId,
        term: Term,
        give_up_us: u64,
    },
    /// The first appends of the leader after `old_leader` (of `term`) are
    /// lost, so the entry of its term commits a round trip or more later,
    /// while the reads it takes meanwhile are confirmed at once.
    SuccessorLosesFirstAppends {
        old_leader: NodeId,
        term: Term,
        give_up_us: u64,
    },
    /// `old_leader`, cut off, holds a change adding `newcomer` that no one
    /// else holds. Once another member leads, the old leader's side becomes
    /// the old leader, the newcomer and one voter that took no entry from
    /// the successor, and the successor is asked at once to remove the old
    /// leader. With four voters, the two changes' majorities (old leader,
    /// newcomer and that voter; the successor and the one left) do not
    /// overlap: only the rule that a leader changes the configuration after
    /// it committed an entry of its term keeps the two sides from both
    /// committing.
    SplitConfiguration {
        old_leader: NodeId,
        term: Term,
        newcomer: NodeId,
        give_up_us: u64,
    },
}

/// Election timeouts of calm (see [`Calm`]) a run lasts at least: time for
/// a leader to step down needlessly (CheckQuorum decides once per election
/// timeout) and for a member to campaign.
const CALM_OBSERVED_ELECTION_TIMEOUTS: u64 = 2;

impl World {
    pub(super) fn schedule_nemesis(&mut self) {
        let delay = self.rng.between(
            self.config.fault_interval_us_min,
            self.config.fault_interval_us_max,
        );
        self.schedule(delay, Event::Nemesis);
    }

    fn fault_duration_us(&mut self) -> u64 {
        self.rng.between(
            self.config.fault_duration_us_min,
            self.config.fault_duration_us_max,
        )
    }

    pub(super) fn on_nemesis(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let faults = self.config.faults;
        let crash_allowed = self.crash_allowed();
        let partition_allowed =
            faults.partitions && !self.network.partitioned && self.plot.is_none();
        if faults.membership && self.rng.chance(0.15) {
            if !(partition_allowed && self.rng.chance(0.5) && self.split_configuration()) {
                self.change_membership();
            }
        } else if partition_allowed && self.rng.chance(0.25) {
            self.hand_over_on_commit();
        } else if faults.unreliable_network && self.rng.chance(0.1) {
            self.replay_old_message();
        } else if faults.transfers
            && faults.delays
            && !self.network.any_slow()
            && self.rng.chance(0.1)
        {
            self.hand_over_from_backed_up_leader();
        } else if faults.transfers && self.rng.chance(0.15) {
            self.transfer_leadership();
        } else if faults.pauses && self.rng.chance(0.2) {
            self.inject_pause();
        } else if faults.disk_full && self.rng.chance(0.15) {
            self.inject_disk_full();
        } else if faults.delays && !self.network.any_slow() && self.rng.chance(0.2) {
            self.inject_slowdown();
        } else {
            match (partition_allowed, crash_allowed) {
                (true, true) if self.rng.chance(0.5) => self.inject_partition(),
                (true, _) => self.inject_partition(),
                (_, true) => match self.leader() {
                    Some(leader) if self.rng.chance(LEADER_RESTART_PROBABILITY) => {
                        self.restart_at_once(leader)
                    }
                    _ => self.inject_crash(),
                },
                _ => {}
            }
        }
        self.schedule_nemesis();
    }

    /// Whether crashes are on and one more voter may go down, leaving a
    /// majority of the voters running.
    fn crash_allowed(&self) -> bool {
        let voters = self.cluster_conf().voters;
        let voters_down = voters.iter().filter(|&&node| !self.is_up(node)).count();
        self.config.faults.crashes && (voters_down + 1) * 2 < voters.len()
    }

    /// Now and then crashes a member that has just granted its vote, right
    /// after the grant left, and restarts it within a network round trip:
    /// back while the election still runs, it must remember that vote when
    /// another candidate of the same term asks.
    pub(super) fn maybe_crash_fresh_voter(&mut self, message: &Message) {
        let MessageBody::RequestVoteResponse {
            pre_vote: false,
            granted: true,
        } = message.body
        else {
            return;
        };
        if self.phase != Phase::Faults
            || !self.config.faults.crashes
            || !self.rng.chance(FRESH_VOTER_CRASH_PROBABILITY)
        {
            return;
        }
        let node = message.from;
        let generation = self.member(node).generation;
        self.schedule(0, Event::CrashFreshVoter { node, generation });
    }

    /// The crash `maybe_crash_fresh_voter` planned, unless the voter has
    /// restarted since, the phase ended, or too many voters are down.
    pub(super) fn on_crash_fresh_voter(&mut self, node: NodeId, generation: u64) {
        if self.phase != Phase::Faults
            || self.member(node).generation != generation
            || !self.is_up(node)
            || !self.crash_allowed()
        {
            return;
        }
        self.record(
            0,
            Happening::Fault(format!("crash {node}, which just voted")),
        );
        self.crash_member(node);
        self.stats.faults_injected += 1;
        let downtime = self.link_latency_us();
        self.schedule(downtime, Event::Restart { node });
    }

    /// Crashes the leader and restarts it within a network round trip: back
    /// before its followers' election timers fire, it knows no leader and
    /// grants the first pre-vote it is asked for, so the campaign that
    /// follows hears from every member, some of them late.
    fn restart_at_once(&mut self, leader: NodeId) {
        self.record(0, Happening::Fault(format!("restart leader {leader}")));
        self.crash_member(leader);
        self.stats.faults_injected += 1;
        let downtime = self.link_latency_us();
        self.schedule(downtime, Event::Restart { node: leader });
    }

    /// Cuts every link between `side` and the other members, healing any
    /// earlier partition first, for `duration_us`.
    fn cut_off(&mut self, side: &[NodeId], duration_us: u64) {
        self.network.heal();
        let rest: Vec<NodeId> = self
            .node_ids()
            .into_iter()
            .filter(|node| !side.contains(node))
            .collect();
        self.network.separate(side, &rest);
        self.stats.partitions += 1;
        self.stats.faults_injected += 1;
        self.record(
            0,
            Happening::Fault(format!("partition {side:?} | {rest:?}")),
        );
        let epoch = self.network.epoch;
        self.schedule(duration_us, Event::HealPartition { epoch });
    }

    fn plot_give_up_us(&self) -> u64 {
        self.now_us + PLOT_PATIENCE_ELECTION_TIMEOUTS * self.config.election_timeout_us_max()
    }

    /// Stages [`Plot::HandOverOnCommit`] for the leader, if any.
    fn hand_over_on_commit(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        self.plot = Some(Plot::HandOverOnCommit {
            leader,
            term: self.term(leader),
            give_up_us: self.plot_give_up_us(),
        });
    }

    /// Stages [`Plot::SplitConfiguration`] when the leader's configuration
    /// has four voters (or asks it to remove a voter when it has five) and a
    /// never-member spare is there to add. Returns whether it asked the
    /// leader for anything.
    fn split_configuration(&mut self) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        let Some(conf) = self.member(leader).conf_in_force().cloned() else {
            return false;
        };
        if !conf.learners.is_empty() {
            return false;
        }
        if conf.voters.len() == 5 {
            let others: Vec<NodeId> = conf
                .voters
                .iter()
                .copied()
                .filter(|&voter| voter != leader)
                .collect();
            let victim = others[self.rng.index(others.len())];
            return self.ask_conf_change(leader, ConfChangeKind::RemoveMember, victim);
        }
        let newcomers: Vec<NodeId> = self
            .node_ids()
            .into_iter()
            .filter(|node| !self.ever_members.contains(node) && self.is_up(*node))
            .collect();
        if conf.voters.len() != 4 || newcomers.is_empty() {
            return false;
        }
        let newcomer = newcomers[self.rng.index(newcomers.len())];
        let duration = self.plot_give_up_us() - self.now_us;
        self.cut_off(&[leader], duration);
        self.ask_conf_change(leader, ConfChangeKind::AddVoter, newcomer);
        self.plot = Some(Plot::SplitConfiguration {
            old_leader: leader,
            term: self.term(leader),
            newcomer,
            give_up_us: self.plot_give_up_us(),
        });
        true
    }

    fn ask_conf_change(&mut self, leader: NodeId, kind: ConfChangeKind, node_id: NodeId) -> bool {
        let change = ConfChange { kind, node_id };
        self.stats.conf_changes_asked += 1;
        self.record(
            0,
            Happening::Fault(format!(
                "ask leader {leader} to {}",
                describe_conf_change(change)
            )),
        );
        self.input(leader, Input::ConfChange(change));
        true
    }

    /// Moves the staged fault on when its moment has come (called after
    /// every event while a plot is under way).
    pub(super) fn advance_plot(&mut self) {
        let Some(plot) = self.plot else {
            return;
        };
        let give_up_us = match plot {
            Plot::HandOverOnCommit { give_up_us, .. }
            | Plot::SuccessorLosesFirstAppends { give_up_us, .. }
            | Plot::SplitConfiguration { give_up_us, .. } => give_up_us,
        };
        if self.phase != Phase::Faults || self.now_us > give_up_us {
            self.plot = None;
            return;
        }
        match plot {
            Plot::HandOverOnCommit { leader, term, .. } => {
                self.hand_over_if_committed(leader, term)
            }
            Plot::SuccessorLosesFirstAppends {
                old_leader, term, ..
            } => {
                if let Some(successor) = self.successor(old_leader, term) {
                    self.plot = None;
                    self.lose_messages_in_flight_from(successor);
                }
            }
            Plot::SplitConfiguration {
                old_leader,
                term,
                newcomer,
                ..
            } => {
                if let Some(successor) = self.successor(old_leader, term) {
                    self.plot = None;
                    self.split_from(old_leader, newcomer, successor);
                }
            }
        }
    }

    /// The leader of a term above `term`, other than `old_leader`.
    fn successor(&self, old_leader: NodeId, term: Term) -> Option<NodeId> {
        self.leader()
            .filter(|&node| node != old_leader && self.term(node) > term)
    }

    /// [`Plot::HandOverOnCommit`]'s moment: `leader`'s commit index just
    /// passed every other member's.
    fn hand_over_if_committed(&mut self, leader: NodeId, term: Term) {
        if self.role(leader) != Some((Role::Leader, term)) {
            self.plot = None;
            return;
        }
        let commit = self.checker.commit_of(leader);
        let others_commit = self
            .node_ids()
            .into_iter()
            .filter(|&node| node != leader)
            .map(|node| self.checker.commit_of(node))
            .max()
            .unwrap_or(0);
        if commit <= others_commit {
            return;
        }
        self.record(
            0,
            Happening::Fault(format!(
                "leader {leader} commits index {commit}, the others know {others_commit}"
            )),
        );
        self.plot = Some(Plot::SuccessorLosesFirstAppends {
            old_leader: leader,
            term,
            give_up_us: self.plot_give_up_us(),
        });
        self.lose_messages_in_flight_from(leader);
        let caught_up: Vec<NodeId> = self
            .cluster_conf()
            .voters
            .into_iter()
            .filter(|&node| {
                node != leader && self.is_up(node) && self.durable_last_index(node) >= commit
            })
            .collect();
        if self.config.faults.transfers && !caught_up.is_empty() {
            let target = caught_up[self.rng.index(caught_up.len())];
            self.stats.transfers += 1;
            self.record(
                0,
                Happening::Fault(format!("ask leader {leader} to transfer to {target}")),
            );
            self.input(leader, Input::TransferLeader(target));
        } else {
            let duration = self.fault_duration_us();
            self.cut_off(&[leader], duration);
        }
    }

    /// [`Plot::SplitConfiguration`]'s second moment: `successor` leads.
    fn split_from(&mut self, old_leader: NodeId, newcomer: NodeId, successor: NodeId) {
        let Some(conf) = self.member(successor).conf_in_force().cloned() else {
            return;
        };
        let bystanders: Vec<NodeId> = conf
            .voters
            .iter()
            .copied()
            .filter(|&voter| voter != old_leader && voter != successor)
            .collect();
        if bystanders.is_empty() {
            return;
        }
        let turncoat = bystanders[self.rng.index(bystanders.len())];
        let duration = SPLIT_PARTITION_ELECTION_TIMEOUTS * self.config.election_timeout_us_max();
        self.cut_off(&[old_leader, turncoat, newcomer], duration);
        self.ask_conf_change(successor, ConfChangeKind::RemoveMember, old_leader);
    }

    fn inject_partition(&mut self) {
        let kind = PartitionKind::ALL[self.rng.index(PartitionKind::ALL.len())];
        self.partition(kind);
        self.stats.faults_injected += 1;
        let epoch = self.network.epoch;
        let duration = self.fault_duration_us();
        self.schedule(duration, Event::HealPartition { epoch });
    }

    /// Asks the leader, if any, to hand leadership to a random other voter.
    fn transfer_leadership(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let others: Vec<NodeId> = self
            .cluster_conf()
            .voters
            .into_iter()
            .filter(|&node| node != leader)
            .collect();
        if others.is_empty() {
            return;
        }
        let target = others[self.rng.index(others.len())];
        self.stats.transfers += 1;
        self.record(
            0,
            Happening::Fault(format!("ask leader {leader} to transfer to {target}")),
        );
        self.input(leader, Input::TransferLeader(target));
    }

    /// Asks the leader, if any, for one configuration change, chosen from the
    /// configuration in force there: promote or drop a learner when there is
    /// one; else add a learner (a spare id, or a removed member, which keeps
    /// its disk), add a spare as a voter at once, or remove a voter (now and
    /// then the leader itself) while at least three remain. Now and then a
    /// second change follows at once, which the leader must refuse while the
    /// first is uncommitted. The leader may refuse the first too (a change is
    /// pending, its term has nothing committed yet).
    fn change_membership(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let Some(mut conf) = self.member(leader).conf_in_force().cloned() else {
            return;
        };
        let requests = if self.rng.chance(0.3) { 2 } else { 1 };
        for _ in 0..requests {
            let Some(change) = self.choose_conf_change(leader, &conf) else {
                return;
            };
            self.stats.conf_changes_asked += 1;
            self.record(
                0,
                Happening::Fault(format!(
                    "ask leader {leader} to {}",
                    describe_conf_change(change)
                )),
            );
            self.input(leader, Input::ConfChange(change));
            if let Ok(next) = conf.apply(change) {
                conf = next;
            }
        }
    }

    fn choose_conf_change(&mut self, leader: NodeId, conf: &ConfState) -> Option<ConfChange> {
        let change = |kind, node_id| Some(ConfChange { kind, node_id });
        if !conf.learners.is_empty() {
            let learner = conf.learners[self.rng.index(conf.learners.len())];
            let kind = if self.rng.chance(0.8) {
                ConfChangeKind::PromoteLearner
            } else {
                ConfChangeKind::RemoveMember
            };
            return change(kind, learner);
        }
        let outsiders: Vec<NodeId> = self
            .node_ids()
            .into_iter()
            .filter(|&node| !conf.is_member(node))
            .collect();
        let removable = conf.voters.len() >= 3;
        if !outsiders.is_empty() && (!removable || self.rng.chance(0.5)) {
            let outsider = outsiders[self.rng.index(outsiders.len())];
            let never_member = !self.ever_members.contains(&outsider);
            let kind = if never_member && self.rng.chance(0.3) {
                ConfChangeKind::AddVoter
            } else {
                ConfChangeKind::AddLearner
            };
            return change(kind, outsider);
        }
        if !removable {
            return None;
        }
        let victim = if self.rng.chance(0.25) {
            leader
        } else {
            conf.voters[self.rng.index(conf.voters.len())]
        };
        change(ConfChangeKind::RemoveMember, victim)
    }

    /// Slows the leader (half the time) or a random member down for a while:
    /// what it receives arrives 100 ms to 2 s late. A slow leader is often
    /// also asked to hand leadership over: it then learns of its successor
    /// only late, while the answers to its old heartbeats are still on their
    /// way to it and its clients still take it for the leader.
    fn inject_slowdown(&mut self) {
        let nodes = self.node_ids();
        let leader = self.leader();
        let victim = match leader {
            Some(leader) if self.rng.chance(0.5) => leader,
            _ => nodes[self.rng.index(nodes.len())],
        };
        self.slow_down(victim);
        if leader == Some(victim) && self.rng.chance(0.5) {
            self.transfer_leadership();
        }
        self.stats.faults_injected += 1;
        let epoch = self.network.slow_epoch;
        let duration = self.fault_duration_us();
        self.schedule(duration, Event::EndSlowdown { epoch });
    }

    /// Backs the leader's inbound queue up and asks it to hand leadership
    /// over. Every message to it arrives the same while late, shorter than an
    /// election timeout (so the transfer, which waits to hear the target is
    /// caught up, completes) and longer than a few client round trips. For
    /// that while the old leader still takes itself for the leader and its
    /// clients' reads reach it, while the answers to the heartbeats it sent
    /// before its successor took over arrive after those reads and before
    /// any news of the new term: only a read confirmed by a round it started
    /// itself stays linearizable.
    fn hand_over_from_backed_up_leader(&mut self) {
        let Some(leader) = self.leader() else {
            return;
        };
        let election_timeout_us = u64::from(self.config.election_ticks) * self.config.tick_us;
        let delay_us = self
            .rng
            .between(election_timeout_us / 2, election_timeout_us - 1);
        self.back_up_inbound(leader, delay_us);
        self.transfer_leadership();
        self.stats.faults_injected += 1;
        let epoch = self.network.slow_epoch;
        let duration = self.fault_duration_us();
        self.schedule(duration, Event::EndSlowdown { epoch });
    }

    pub(super) fn on_end_slowdown(&mut self, epoch: u64) {
        if self.network.slow_epoch == epoch {
            self.speed_up();
        }
    }

    /// Pauses the leader (half the time) or a random running member.
    fn inject_pause(&mut self) {
        let up: Vec<NodeId> = self
            .node_ids()
            .into_iter()
            .filter(|&node| self.is_up(node))
            .collect();
        if up.is_empty() {
            return;
        }
        let victim = match self.leader() {
            Some(leader) if self.rng.chance(0.5) => leader,
            _ => up[self.rng.index(up.len())],
        };
        let duration = self.fault_duration_us();
        self.pause_member(victim, duration);
        self.stats.faults_injected += 1;
    }

    /// Fills a member's log disk (the leader's, half the time) for a while:
    /// its log writes fail for want of space until the space is freed.
    fn inject_disk_full(&mut self) {
        let up: Vec<NodeId> = self
            .node_ids()
            .into_iter()
            .filter(|&node| self.is_up(node) && !self.member(node).disk_is_full())
            .collect();
        if up.is_empty() {
            return;
        }
        let victim = match self.leader() {
            Some(leader) if up.contains(&leader) && self.rng.chance(0.5) => leader,
            _ => up[self.rng.index(up.len())],
        };
        let duration = self.fault_duration_us();
        self.fill_disk(victim);
        self.stats.faults_injected += 1;
        self.schedule(duration, Event::FreeDiskSpace { node: victim });
    }

    fn inject_crash(&mut self) {
        let up: Vec<NodeId> = self
            .node_ids()
            .into_iter()
            .filter(|&node| self.is_up(node))
            .collect();
        let syncing: Vec<NodeId> = up
            .iter()
            .copied()
            .filter(|&node| self.member(node).is_busy())
            .collect();
        let victim = match self.leader() {
            _ if !syncing.is_empty() && self.rng.chance(0.5) => {
                syncing[self.rng.index(syncing.len())]
            }
            Some(leader) if self.rng.chance(0.5) => leader,
            _ => up[self.rng.index(up.len())],
        };
        self.crash_member(victim);
        self.stats.faults_injected += 1;
        let downtime = self.fault_duration_us();
        self.schedule(downtime, Event::Restart { node: victim });
    }

    pub(super) fn on_heal_partition(&mut self, epoch: u64) {
        if self.network.epoch == epoch && self.network.partitioned {
            self.network.heal();
            self.record(0, Happening::Healed);
        }
    }

    /// Ends the fault phase: links heal, messages stop getting lost, crashed
    /// members restart, and clients finish what they started.
    ///
    /// What the faults left behind settles by the later of one election
    /// timeout from now (a member whose timer was about to fire may still
    /// campaign) and the arrival of the last message already on its way: a
    /// message delayed or replayed before the heal still arrives after it,
    /// and may rightly start an election (a late TimeoutNow does).
    pub(super) fn end_fault_phase(&mut self) {
        let settles_at_us = self
            .queue
            .iter()
            .filter(|scheduled| matches!(scheduled.event, Event::Deliver { .. }))
            .map(|scheduled| scheduled.time_us)
            .fold(
                self.now_us + self.config.election_timeout_us_max(),
                u64::max,
            );
        self.network.heal();
        self.speed_up();
        for node in self.node_ids() {
            self.free_disk_space(node);
        }
        self.network.config.drop_probability = 0.0;
        self.network.config.duplicate_probability = 0.0;
        for node in self.node_ids() {
            let generation = self.member(node).generation;
            self.on_resume(node, generation);
        }
        self.phase = Phase::Healing {
            since_us: self.now_us,
            settles_at_us,
            leader_seen: false,
        };
        self.record(0, Happening::Healed);
        for node in self.node_ids() {
            self.restart(node);
        }
    }

    /// The configuration the cluster runs by: the leader's, or without a
    /// leader the one applied by the member that applied the most.
    pub fn cluster_conf(&self) -> ConfState {
        match self
            .leader()
            .and_then(|leader| self.member(leader).conf_in_force())
        {
            Some(conf) => conf.clone(),
            None => self.applied_members(),
        }
    }

    /// The members of [`World::cluster_conf`], voters and learners: the ones
    /// that must catch up. Removed members and unused spares need not.
    pub fn cluster_members(&self) -> Vec<NodeId> {
        let conf = self.cluster_conf();
        let mut members: Vec<NodeId> = conf.voters.iter().chain(&conf.learners).copied().collect();
        members.sort_unstable();
        members
    }

    /// A leader that a majority of the voters in its configuration follow in its term.
    pub fn stable_leader(&self) -> Option<NodeId> {
        let leader = self.leader()?;
        let term = self.term(leader);
        let voters = self.member(leader).conf_in_force()?.voters.clone();
        let followers = voters
            .iter()
            .map(|&voter| self.member(voter))
            .filter(|member| member.is_up() && member.term == term && member.leader == leader)
            .count();
        (followers * 2 > voters.len()).then_some(leader)
    }

    /// Whether every member of the cluster runs and has applied everything
    /// known committed.
    pub fn converged(&self) -> bool {
        let committed = self.checker.committed_index();
        self.cluster_members().into_iter().all(|node| {
            let member = self.member(node);
            member.is_up() && member.applied >= committed
        })
    }

    /// After healing: a leader is stable, no operation waits, all caught up.
    pub fn is_quiescent(&self) -> bool {
        matches!(
            self.phase,
            Phase::Healing {
                leader_seen: true,
                ..
            }
        ) && self.pending_operations() == 0
            && self.converged()
            && self.calm.is_some_and(|calm| {
                self.now_us
                    >= calm.since_us
                        + CALM_OBSERVED_ELECTION_TIMEOUTS * self.config.election_timeout_us_max()
            })
    }

    /// Holds a healed cluster to its liveness promises (see [`crate::liveness`]).
    pub(super) fn check_liveness(&mut self) {
        let Phase::Healing {
            since_us,
            settles_at_us,
            leader_seen,
        } = self.phase
        else {
            return;
        };
        let committed_index = self.checker.committed_index();
        let cluster_members = self.cluster_members();
        let highest_term = cluster_members
            .iter()
            .map(|&node| self.member(node))
            .filter(|member| member.is_up())
            .map(|member| (member.term, member.id))
            .max()
            .unwrap_or((0, 0));
        let stable_leader = self.stable_leader();
        let progress = HealedProgress {
            now_us: self.now_us,
            elapsed_since_heal_us: self.now_us - since_us,
            leader_seen,
            stable_leader,
            pending_operations: self.pending_descriptions(),
            lagging_members: cluster_members
                .iter()
                .map(|&node| self.member(node))
                .filter(|member| !member.is_up() || member.applied < committed_index)
                .map(|member| (member.id, member.applied))
                .collect(),
            committed_index,
            members: cluster_members,
        };
        let deadlines = Deadlines {
            leader_us: self.config.heal_leader_election_timeouts
                * self.config.election_timeout_us_max(),
            completion_us: self.config.heal_completion_us_max,
        };
        match liveness::check(&progress, deadlines) {
            Ok(leader_seen) => {
                self.phase = Phase::Healing {
                    since_us,
                    settles_at_us,
                    leader_seen,
                };
                self.check_calm(settles_at_us, stable_leader.is_some(), highest_term);
            }
            Err(violation) => self.fail(violation),
        }
    }

    /// Holds the healed cluster to its calm (see [`Calm`]). Without PreVote
    /// the calm is only watched, not judged: a member cut off until the heal
    /// comes back with a raised term and forces elections, which is Raft's
    /// known behaviour (the reason PreVote exists), not a bug.
    fn check_calm(
        &mut self,
        settles_at_us: u64,
        stable_leader: bool,
        highest_term: (Term, NodeId),
    ) {
        let observed = CalmObservation {
            now_us: self.now_us,
            settled: self.now_us >= settles_at_us,
            stable_leader,
            highest_term,
            conf_changes_committed: self.checker.conf_changes_committed(),
        };
        let checked = match self.calm {
            Some(calm) if self.config.pre_vote => calm.check(&observed),
            Some(calm) => Ok(Some(calm)),
            None => Ok(Calm::begin(&observed)),
        };
        match checked {
            Ok(calm) => self.calm = calm,
            Err(violation) => self.fail(violation),
        }
    }

    /// Final checks once quiescent: the state machine of every member of the
    /// cluster reflects every acknowledged write, members that applied the
    /// same index hold the same state, and the durable logs agree pairwise as
    /// a whole (removed members' and spares' included).
    pub fn check_final_state(&mut self) {
        let now_us = self.now_us;
        let acknowledged_result = self.cluster_members().into_iter().try_for_each(|node| {
            let member = self.member(node);
            match member.store() {
                Some(store) => self
                    .checker
                    .check_acknowledged_writes(member.id, store, now_us),
                None => Ok(()),
            }
        });
        let stores: Vec<(NodeId, &mvcc::Store)> = self
            .members
            .iter()
            .filter_map(|member| Some((member.id, member.store()?)))
            .collect();
        let stores_result = invariants::check_stores_converged(&stores, now_us);
        let views: Vec<(NodeId, &dyn LogView)> = self
            .members
            .iter()
            .filter_map(|member| Some((member.id, member.log()? as &dyn LogView)))
            .collect();
        let logs_result = invariants::check_logs_match(&views, now_us);
        self.check(acknowledged_result);
        self.check(stores_result);
        self.check(logs_result);
    }
}
