//! A scripted-scenario harness over [`World`], with the verbs of the classic
//! Raft lab tests: find the one leader, agree on a command with `one`, cut
//! members off and back, crash and restart them. Every verb runs the world
//! with all safety checkers on and panics with the violation's story as soon
//! as one breaks, so a scenario only has to state what it expects.
//!
//! Owns: the scenario verbs and the Figure 8 scenarios. Must never: reach
//! around the world to poke a member's state directly.

use std::collections::BTreeMap;

use raft::{ConfChange, ConfState, LogIndex, NodeId, Role, Term};

use crate::config::{FaultSet, SimConfig};
use crate::rng::SimRng;
use crate::world::World;

/// Virtual microseconds per millisecond, for readable durations.
pub const MS: u64 = 1_000;

/// A cluster under a script, with its own seeded generator for the
/// script's random choices.
#[derive(Debug)]
pub struct Lab {
    pub world: World,
    connected: Vec<bool>,
    pub rng: SimRng,
    next_value: u64,
}

impl Lab {
    /// A reliable cluster of `node_count` members without clients or nemesis.
    pub fn new(node_count: usize, seed: u64) -> Self {
        Self::with_config(Self::config(node_count), seed)
    }

    /// The configuration [`Lab::new`] uses, to adjust before [`Lab::with_config`].
    pub fn config(node_count: usize) -> SimConfig {
        let mut config = SimConfig::new(node_count, FaultSet::none());
        config.workload.client_count = 0;
        config.snapshot_interval_entries = 0;
        config.trace_events_max = 64;
        config
    }

    pub fn with_config(config: SimConfig, seed: u64) -> Self {
        let process_count = config.node_count + config.spare_member_count;
        Self {
            world: World::new(config, seed),
            connected: vec![true; process_count],
            rng: SimRng::new(seed.rotate_left(32) ^ 0x5eed_5eed),
            next_value: 1,
        }
    }

    pub fn node_count(&self) -> usize {
        self.connected.len()
    }

    /// Panics with the story if the world found a violation.
    fn assert_safe(&self) {
        if let Some(violation) = self.world.violation() {
            panic!("{violation}");
        }
    }

    pub fn run_for(&mut self, duration_us: u64) {
        self.world.run_for(duration_us);
        self.assert_safe();
    }

    /// A value never proposed before in this scenario.
    pub fn fresh_value(&mut self) -> u64 {
        self.next_value += 1;
        self.next_value
    }

    pub fn is_connected(&self, node: NodeId) -> bool {
        self.connected[(node - 1) as usize]
    }

    pub fn disconnect(&mut self, node: NodeId) {
        self.connected[(node - 1) as usize] = false;
        self.world.disconnect(node);
    }

    pub fn connect(&mut self, node: NodeId) {
        self.connected[(node - 1) as usize] = true;
        self.world.reconnect(node);
        for other in self.world.node_ids() {
            if !self.is_connected(other) {
                self.world.disconnect(other);
            }
        }
    }

    pub fn crash(&mut self, node: NodeId) {
        self.world.crash(node);
        self.assert_safe();
    }

    pub fn restart(&mut self, node: NodeId) {
        self.world.restart(node);
        self.assert_safe();
    }

    /// Connected, running members that believe they lead, by term.
    fn leaders_by_term(&self) -> BTreeMap<Term, Vec<NodeId>> {
        let mut leaders: BTreeMap<Term, Vec<NodeId>> = BTreeMap::new();
        for node in self.world.node_ids() {
            if let (true, Some((Role::Leader, term))) =
                (self.is_connected(node), self.world.role(node))
            {
                leaders.entry(term).or_default().push(node);
            }
        }
        leaders
    }

    /// Waits for exactly one leader among connected members and returns it.
    pub fn check_one_leader(&mut self) -> NodeId {
        for _ in 0..10 {
            let pause = self.rng.between(450 * MS, 550 * MS);
            self.run_for(pause);
            let leaders = self.leaders_by_term();
            for (term, nodes) in &leaders {
                assert!(
                    nodes.len() <= 1,
                    "term {term} has {} leaders: {nodes:?}",
                    nodes.len()
                );
            }
            if let Some((_, nodes)) = leaders.iter().next_back() {
                return nodes[0];
            }
        }
        panic!("expected one leader among the connected members, got none");
    }

    /// Asserts no connected member believes it leads.
    pub fn check_no_leader(&self) {
        let leaders = self.leaders_by_term();
        assert!(
            leaders.is_empty(),
            "expected no leader among connected members, but {leaders:?} lead"
        );
    }

    /// The term all connected, running members agree on.
    pub fn check_terms(&self) -> Term {
        let terms: Vec<Term> = self
            .world
            .node_ids()
            .into_iter()
            .filter(|&node| self.is_connected(node) && self.world.is_up(node))
            .map(|node| self.world.term(node))
            .collect();
        assert!(
            terms.windows(2).all(|pair| pair[0] == pair[1]),
            "members disagree on the term: {terms:?}"
        );
        terms.first().copied().unwrap_or(0)
    }

    /// How many running members have applied `index`.
    pub fn n_committed(&self, index: LogIndex) -> usize {
        self.world.applied_count(index)
    }

    /// Proposes `value` at `node` if it is running; returns the entry payload.
    pub fn propose(&mut self, node: NodeId, value: u64) -> Vec<u8> {
        let data = self.world.propose(node, value);
        self.assert_safe();
        data
    }

    /// Gets `value` committed and applied by at least `expected` members:
    /// offers it to whoever leads, waits up to 2 s, and (with `retry`) offers
    /// it again, for up to 10 s. Returns its index.
    pub fn one(&mut self, value: u64, expected: usize, retry: bool) -> LogIndex {
        let deadline = self.world.now_us() + 10_000 * MS;
        let mut start = 0;
        while self.world.now_us() < deadline {
            let mut offered = None;
            for _ in 0..self.node_count() {
                start = start % self.node_count() as u64 + 1;
                if self.is_connected(start)
                    && matches!(self.world.role(start), Some((Role::Leader, _)))
                {
                    offered = Some(self.propose(start, value));
                    break;
                }
            }
            let Some(data) = offered else {
                self.run_for(50 * MS);
                continue;
            };
            let agreed = self.world.run_until(2_000 * MS, |world| {
                world
                    .committed_index_of(&data)
                    .is_some_and(|index| world.applied_count(index) >= expected)
            });
            self.assert_safe();
            if agreed {
                return self
                    .world
                    .committed_index_of(&data)
                    .unwrap_or_else(|| unreachable!());
            }
            assert!(
                retry,
                "one({value}) failed to reach agreement on {expected} members"
            );
        }
        panic!("one({value}) failed to reach agreement on {expected} members within 10 s");
    }

    /// Gets `change` committed: offers it to whoever leads until the running
    /// member that applied the most has applied it, for up to 10 s. Returns
    /// the configuration after it.
    pub fn conf_change(&mut self, change: ConfChange) -> ConfState {
        let leader = self.check_one_leader();
        let in_force = self
            .world
            .conf_state(leader)
            .unwrap_or_else(|| unreachable!("a leader runs"));
        let expected = in_force
            .apply(change)
            .unwrap_or_else(|error| panic!("{change:?} does not fit {in_force:?}: {error}"));
        let deadline = self.world.now_us() + 10_000 * MS;
        while self.world.now_us() < deadline {
            let leader = self.check_one_leader();
            self.world.propose_conf_change(leader, change);
            let applied = self
                .world
                .run_until(2_000 * MS, |world| world.applied_members() == expected);
            self.assert_safe();
            if applied {
                return expected;
            }
        }
        panic!("{change:?} was not applied within 10 s");
    }

    /// Runs until every running member has applied everything committed.
    pub fn settle(&mut self, within_us: u64) {
        let settled = self.world.run_until(within_us, |world| {
            let committed = world.checker().committed_index();
            world
                .node_ids()
                .into_iter()
                .all(|node| !world.is_up(node) || world.applied(node) >= committed)
        });
        self.assert_safe();
        assert!(
            settled,
            "members did not catch up within {} ms",
            within_us / MS
        );
    }
}

/// The Figure 8 scenario: propose at whoever leads, pause briefly (now and
/// then for longer), crash the leader, and keep at least three members up
/// by restarting crashed ones. Leaders come and go with entries from many
/// terms in their logs; only entries of the current term may be committed
/// by counting. Ends with everyone up and one more agreement.
pub fn figure_8(lab: &mut Lab, iterations: usize) {
    let nodes = lab.world.node_ids();
    let value = lab.fresh_value();
    lab.one(value, 1, true);
    let mut up = nodes.len();
    for _ in 0..iterations {
        let mut leader = None;
        for &node in &nodes {
            if matches!(lab.world.role(node), Some((Role::Leader, _))) {
                let value = lab.fresh_value();
                lab.propose(node, value);
                leader = Some(node);
            }
        }
        let pause = if lab.rng.chance(0.1) {
            lab.rng.between(0, 100 * MS)
        } else {
            lab.rng.between(0, 13 * MS)
        };
        lab.run_for(pause);
        if let Some(leader) = leader {
            lab.crash(leader);
            up -= 1;
        }
        if up < 3 {
            let node = nodes[lab.rng.index(nodes.len())];
            if !lab.world.is_up(node) {
                lab.restart(node);
                up += 1;
            }
        }
    }
    for &node in &nodes {
        lab.restart(node);
    }
    let value = lab.fresh_value();
    lab.one(value, nodes.len(), true);
}

/// Figure 8 over a lossy network, with partitions instead of crashes.
pub fn figure_8_unreliable(lab: &mut Lab, iterations: usize) {
    let nodes = lab.world.node_ids();
    lab.world.set_unreliable(0.1, 0.02, 30 * MS);
    let value = lab.fresh_value();
    lab.one(value, 1, true);
    let mut connected = nodes.len();
    for iteration in 0..iterations {
        if iteration == iterations * 2 / 10 {
            lab.world.set_unreliable(0.1, 0.02, 60 * MS);
        }
        let mut leader = None;
        for &node in &nodes {
            if lab.is_connected(node) && matches!(lab.world.role(node), Some((Role::Leader, _))) {
                let value = lab.fresh_value();
                lab.propose(node, value);
                leader = Some(node);
            }
        }
        let pause = if lab.rng.chance(0.1) {
            lab.rng.between(0, 100 * MS)
        } else {
            lab.rng.between(0, 13 * MS)
        };
        lab.run_for(pause);
        if let Some(leader) = leader.filter(|_| lab.rng.chance(0.5)) {
            lab.disconnect(leader);
            connected -= 1;
        }
        if connected < 3 {
            let node = nodes[lab.rng.index(nodes.len())];
            if !lab.is_connected(node) {
                lab.connect(node);
                connected += 1;
            }
        }
    }
    for &node in &nodes {
        lab.connect(node);
    }
    lab.world
        .set_unreliable(0.0, 0.0, lab.world.config().network.latency_us_max);
    let value = lab.fresh_value();
    lab.one(value, nodes.len(), true);
}
