//! The nemesis: during the fault phase it opens partitions and crashes
//! members at seeded moments, and heals each after a seeded while; at the
//! end of the phase it heals everything and then holds the cluster to its
//! liveness promises.
//!
//! Owns: when and which faults happen, healing, the liveness deadlines.
//! Must never: inject a fault outside the fault phase, nor keep a majority
//! of members down at once (a cluster without a majority cannot be judged
//! for liveness, and safety is exercised as well with a minority down).

use raft::{LogIndex, NodeId};

use super::network::PartitionKind;
use super::{Event, Phase, World};
use crate::trace::Happening;
use crate::violation::{Invariant, Violation};

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
        let down = self
            .node_ids()
            .into_iter()
            .filter(|&node| !self.is_up(node))
            .count();
        let crash_allowed = faults.crashes && (down + 1) * 2 < self.members.len();
        let partition_allowed = faults.partitions && !self.network.partitioned;
        match (partition_allowed, crash_allowed) {
            (true, true) if self.rng.chance(0.5) => self.inject_partition(),
            (true, _) => self.inject_partition(),
            (_, true) => self.inject_crash(),
            _ => {}
        }
        self.schedule_nemesis();
    }

    fn inject_partition(&mut self) {
        let kind = PartitionKind::ALL[self.rng.index(PartitionKind::ALL.len())];
        self.partition(kind);
        self.stats.faults_injected += 1;
        let epoch = self.network.epoch;
        let duration = self.fault_duration_us();
        self.schedule(duration, Event::HealPartition { epoch });
    }

    fn inject_crash(&mut self) {
        let up: Vec<NodeId> = self
            .node_ids()
            .into_iter()
            .filter(|&node| self.is_up(node))
            .collect();
        let victim = match self.leader() {
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
    pub(super) fn end_fault_phase(&mut self) {
        self.network.heal();
        self.network.config.drop_probability = 0.0;
        self.network.config.duplicate_probability = 0.0;
        self.phase = Phase::Healing {
            since_us: self.now_us,
            leader_seen: false,
        };
        self.record(0, Happening::Healed);
        for node in self.node_ids() {
            self.restart(node);
        }
    }

    /// A leader that a majority of members follow in its term.
    pub fn stable_leader(&self) -> Option<NodeId> {
        let leader = self.leader()?;
        let term = self.term(leader);
        let followers = self
            .members
            .iter()
            .filter(|member| member.is_up() && member.term == term && member.leader == leader)
            .count();
        (followers * 2 > self.members.len()).then_some(leader)
    }

    /// Whether every running member has applied everything known committed.
    pub fn converged(&self) -> bool {
        let committed = self.checker.committed_index();
        self.members
            .iter()
            .all(|member| member.is_up() && member.applied >= committed)
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
    }

    pub(super) fn check_liveness(&mut self) {
        let Phase::Healing {
            since_us,
            leader_seen,
        } = self.phase
        else {
            return;
        };
        let elapsed = self.now_us - since_us;
        if !leader_seen {
            if self.stable_leader().is_some() {
                self.phase = Phase::Healing {
                    since_us,
                    leader_seen: true,
                };
            } else if elapsed
                > self.config.heal_leader_election_timeouts * self.config.election_timeout_us_max()
            {
                let detail = format!(
                    "no stable leader {} ms after all faults healed (roles: {:?})",
                    elapsed / 1000,
                    self.node_ids()
                        .iter()
                        .map(|&node| (node, self.role(node)))
                        .collect::<Vec<_>>()
                );
                self.fail(Violation::new(
                    Invariant::NoLeaderAfterHeal,
                    self.node_ids(),
                    self.now_us,
                    detail,
                ));
                return;
            }
        }
        if elapsed > self.config.heal_completion_us_max && !self.is_quiescent() {
            let pending = self.pending_descriptions();
            let lagging: Vec<(NodeId, LogIndex)> = self
                .members
                .iter()
                .filter(|member| member.applied < self.checker.committed_index())
                .map(|member| (member.id, member.applied))
                .collect();
            let detail = format!(
                "{} ms after healing: client operations still pending: {pending:?}; members \
                 behind the commit index {} (id, applied): {lagging:?}",
                elapsed / 1000,
                self.checker.committed_index()
            );
            let nodes = lagging.iter().map(|&(node, _)| node).collect();
            self.fail(Violation::new(
                Invariant::OperationStuckAfterHeal,
                nodes,
                self.now_us,
                detail,
            ));
        }
    }

    /// Final checks once quiescent: every member's state machine reflects
    /// every acknowledged write.
    pub fn check_final_state(&mut self) {
        for index in 0..self.members.len() {
            let member = &self.members[index];
            let result =
                self.checker
                    .check_acknowledged_writes(member.id, &member.store, self.now_us);
            self.check(result);
        }
    }
}
