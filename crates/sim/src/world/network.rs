//! The simulated network between members: seeded latency (and so
//! reordering), drops, duplicates, partitions of several shapes that the
//! nemesis opens and heals, and slow members whose inbound messages take
//! 100 ms to 2 s, so answers to old requests arrive after newer ones; and,
//! now and then, a message delivered long ago arrives once more (a replay).
//! Client links share the latency and drop model but are never partitioned.
//!
//! Owns: which directed links are cut or slow, and the fate of each message. Must
//! never: look inside messages beyond sizing them for the statistics.

use std::collections::VecDeque;

use raft::{Message, NodeId};

use super::member::{message_bytes, message_kind};
use super::{Event, World};
use crate::config::NetworkConfig;
use crate::trace::{Happening, MessageFate};

/// The shapes of partition the nemesis creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartitionKind {
    /// A random minority cut off from the rest.
    RandomHalves,
    /// The current leader (or a random member) cut off from everyone.
    LeaderIsolated,
    /// Two sides that cannot talk, and one member that talks to both.
    Bridge,
    /// Random directed links cut: a hears b, b does not hear a.
    OneWay,
}

impl PartitionKind {
    pub const ALL: [PartitionKind; 4] = [
        PartitionKind::RandomHalves,
        PartitionKind::LeaderIsolated,
        PartitionKind::Bridge,
        PartitionKind::OneWay,
    ];
}

/// The extra latency of the links into a slow member, drawn per link:
/// long enough to outlive heartbeat rounds and elections.
pub(super) const SLOW_DELAY_US_MIN: u64 = 100_000;
pub(super) const SLOW_DELAY_US_MAX: u64 = 2_000_000;

/// Delivered messages kept for a later replay, the oldest dropped first.
const REPLAYABLE_MESSAGES_MAX: usize = 16;

/// The chance that a delivered message is kept for a later replay: a
/// sample, so the kept ones span seconds of the run, not its last instant.
const REPLAYABLE_SAMPLE_PROBABILITY: f64 = 0.05;

#[derive(Debug)]
pub(super) struct Network {
    size: usize,
    /// `cut[from * size + to]`: messages from `from` to `to` are lost.
    cut: Vec<bool>,
    /// `delay_us[from * size + to]`: extra latency of messages from `from`
    /// to `to`, [`SLOW_DELAY_US_MIN`] to [`SLOW_DELAY_US_MAX`] on the links
    /// into a slow member (its inbound queues are backed up), else 0.
    delay_us: Vec<u64>,
    /// Bumped on every change of slow members, so stale ends do nothing.
    pub(super) slow_epoch: u64,
    pub(super) config: NetworkConfig,
    /// Bumped on every change of partition, so stale heal events do nothing.
    pub(super) epoch: u64,
    pub(super) partitioned: bool,
    /// A sample of the messages delivered so far, which the network may
    /// deliver again much later: a stale copy stuck in a queue somewhere.
    replayable: VecDeque<Message>,
}

impl Network {
    pub(super) fn new(size: usize, config: NetworkConfig) -> Self {
        Self {
            size,
            cut: vec![false; size * size],
            delay_us: vec![0; size * size],
            slow_epoch: 0,
            config,
            epoch: 0,
            partitioned: false,
            replayable: VecDeque::new(),
        }
    }

    fn slot(&self, from: NodeId, to: NodeId) -> usize {
        debug_assert!(
            from >= 1 && to >= 1 && from as usize <= self.size && to as usize <= self.size
        );
        (from as usize - 1) * self.size + (to as usize - 1)
    }

    pub(super) fn is_cut(&self, from: NodeId, to: NodeId) -> bool {
        self.cut[self.slot(from, to)]
    }

    pub(super) fn cut_link(&mut self, from: NodeId, to: NodeId) {
        let slot = self.slot(from, to);
        self.cut[slot] = true;
        self.partitioned = true;
    }

    /// Cuts every link between a member of `left` and a member of `right`, both ways.
    pub(super) fn separate(&mut self, left: &[NodeId], right: &[NodeId]) {
        for &a in left {
            for &b in right {
                self.cut_link(a, b);
                self.cut_link(b, a);
            }
        }
    }

    pub(super) fn heal(&mut self) {
        self.cut.iter_mut().for_each(|cut| *cut = false);
        self.partitioned = false;
        self.epoch += 1;
    }

    /// The extra latency of messages from `from` to `to`.
    pub(super) fn delay_us(&self, from: NodeId, to: NodeId) -> u64 {
        self.delay_us[self.slot(from, to)]
    }

    /// Delays messages from `from` to `to` by `delay_us` each.
    pub(super) fn slow_link(&mut self, from: NodeId, to: NodeId, delay_us: u64) {
        let slot = self.slot(from, to);
        self.delay_us[slot] = delay_us;
    }

    /// Every link takes its usual latency again; messages already in flight
    /// keep their delay.
    pub(super) fn speed_up(&mut self) {
        self.delay_us.iter_mut().for_each(|delay| *delay = 0);
        self.slow_epoch += 1;
    }

    pub(super) fn any_slow(&self) -> bool {
        self.delay_us.iter().any(|&delay| delay > 0)
    }

    pub(super) fn restore_links_of(&mut self, node: NodeId) {
        for other in 1..=self.size as u64 {
            let (out, back) = (self.slot(node, other), self.slot(other, node));
            self.cut[out] = false;
            self.cut[back] = false;
        }
        self.partitioned = self.cut.iter().any(|&cut| cut);
    }
}

impl World {
    /// Sends a member-to-member message through the network's faults.
    pub(super) fn send_message(&mut self, message: Message) {
        debug_assert_ne!(message.from, message.to, "a member never messages itself");
        self.observe_sent(&message);
        self.stats.messages_sent += 1;
        self.stats.message_bytes += message_bytes(&message);
        let (from, to, kind, term) = (
            message.from,
            message.to,
            message_kind(&message),
            message.term,
        );
        *self.stats.messages_by_kind.entry(kind).or_insert(0) += 1;
        let fate = if to == 0 || to as usize > self.members.len() {
            MessageFate::Dropped
        } else if self.network.is_cut(from, to) {
            MessageFate::Cut
        } else if self.rng.chance(self.network.config.drop_probability) {
            MessageFate::Dropped
        } else if self.rng.chance(self.network.config.duplicate_probability)
            && !matches!(message.body, raft::MessageBody::ForwardProposal { .. })
        {
            // A forwarded proposal is never duplicated: the peer transport
            // is a stream, and a second copy would be a second write, which
            // etcd does not deduplicate either.
            MessageFate::Duplicated
        } else {
            MessageFate::InFlight
        };
        self.record(
            from,
            Happening::Sent {
                to,
                kind,
                term,
                fate,
            },
        );
        match fate {
            MessageFate::Dropped | MessageFate::Cut => self.stats.messages_dropped += 1,
            MessageFate::Duplicated => {
                self.stats.messages_duplicated += 1;
                let delay = self.member_link_latency_us(from, to);
                self.schedule(
                    delay,
                    Event::Deliver {
                        message: message.clone(),
                    },
                );
                let delay = self.member_link_latency_us(from, to);
                self.schedule(delay, Event::Deliver { message });
            }
            MessageFate::InFlight => {
                let delay = self.member_link_latency_us(from, to);
                self.schedule(delay, Event::Deliver { message });
            }
        }
    }

    /// The latency of one message between members: messages to a slow
    /// member take much longer, and so overtake each other.
    fn member_link_latency_us(&mut self, from: NodeId, to: NodeId) -> u64 {
        let delay = self.network.delay_us(from, to);
        if delay > 0 {
            self.stats.messages_delayed += 1;
        }
        self.link_latency_us() + delay
    }

    pub(super) fn link_latency_us(&mut self) -> u64 {
        self.rng.between(
            self.network.config.latency_us_min,
            self.network.config.latency_us_max,
        )
    }

    /// A message arrives, unless the link was cut while it was in flight or
    /// the receiver is down.
    pub(super) fn on_deliver(&mut self, message: Message) {
        let (from, to) = (message.from, message.to);
        if self.network.is_cut(from, to) || !self.member(to).is_up() {
            self.stats.messages_dropped += 1;
            return;
        }
        self.record(
            to,
            Happening::Delivered {
                from,
                kind: message_kind(&message),
                term: message.term,
            },
        );
        if self.network.config.duplicate_probability > 0.0
            && !matches!(message.body, raft::MessageBody::ForwardProposal { .. })
            && self.rng.chance(REPLAYABLE_SAMPLE_PROBABILITY)
        {
            if self.network.replayable.len() == REPLAYABLE_MESSAGES_MAX {
                self.network.replayable.pop_front();
            }
            self.network.replayable.push_back(message.clone());
        }
        self.input(to, super::member::Input::Message(message));
    }

    /// Loses every message `node` sent that is still on its way: a burst of
    /// loss on its links, which leaves them working for what it sends next.
    pub(super) fn lose_messages_in_flight_from(&mut self, node: NodeId) {
        let before = self.queue.len();
        self.queue.retain(|scheduled| {
            !matches!(&scheduled.event, Event::Deliver { message } if message.from == node)
        });
        let lost = (before - self.queue.len()) as u64;
        self.stats.messages_dropped += lost;
        self.record(
            0,
            Happening::Fault(format!("{lost} messages from {node} in flight lost")),
        );
    }

    /// Delivers a message delivered long ago once more, as a network that
    /// duplicates may: the copy arrives after everything sent since. A
    /// forwarded proposal is never kept (see [`World::send_message`]).
    pub(super) fn replay_old_message(&mut self) {
        if self.network.replayable.is_empty() {
            return;
        }
        let index = self.rng.index(self.network.replayable.len());
        let Some(message) = self.network.replayable.remove(index) else {
            return;
        };
        self.stats.messages_replayed += 1;
        self.record(
            0,
            Happening::Fault(format!(
                "replay an old {} from {} to {} (term {})",
                message_kind(&message),
                message.from,
                message.to,
                message.term
            )),
        );
        let delay = self.member_link_latency_us(message.from, message.to);
        self.schedule(delay, Event::Deliver { message });
    }

    /// Makes `node` slow: messages from each other member reach it 100 ms
    /// to 2 s late (drawn per link), until [`World::speed_up`].
    pub fn slow_down(&mut self, node: NodeId) {
        self.slow_links_into(node, |world| {
            world.rng.between(SLOW_DELAY_US_MIN, SLOW_DELAY_US_MAX)
        });
    }

    /// Makes `node`'s inbound queue back up: messages from every other
    /// member reach it `delay_us` late, so they arrive in the order they
    /// were sent, until [`World::speed_up`].
    pub fn back_up_inbound(&mut self, node: NodeId, delay_us: u64) {
        self.slow_links_into(node, |_| delay_us);
    }

    fn slow_links_into(&mut self, node: NodeId, mut delay_of_link: impl FnMut(&mut Self) -> u64) {
        let mut delays = Vec::new();
        for from in self.node_ids().into_iter().filter(|&from| from != node) {
            let delay_us = delay_of_link(self);
            self.network.slow_link(from, node, delay_us);
            delays.push((from, delay_us / 1000));
        }
        self.network.slow_epoch += 1;
        self.stats.slowdowns += 1;
        self.record(
            0,
            Happening::Fault(format!(
                "messages to {node} delayed, (from, ms): {delays:?}"
            )),
        );
    }

    /// Ends every slowdown; messages already in flight keep their delay.
    pub fn speed_up(&mut self) {
        if self.network.any_slow() {
            self.network.speed_up();
            self.record(0, Happening::Fault(String::from("delays end")));
        }
    }

    /// Opens a partition of `kind`, healing any earlier one first.
    pub fn partition(&mut self, kind: PartitionKind) -> String {
        self.network.heal();
        let mut nodes = self.node_ids();
        self.rng.shuffle(&mut nodes);
        let size = nodes.len();
        let description = match kind {
            PartitionKind::RandomHalves => {
                let minority = self.rng.between(1, (size as u64 / 2).max(1)) as usize;
                let (left, right) = nodes.split_at(minority.min(size));
                self.network.separate(left, right);
                format!("partition {left:?} | {right:?}")
            }
            PartitionKind::LeaderIsolated => {
                let isolated = self.leader().unwrap_or(nodes[0]);
                let rest: Vec<NodeId> = nodes
                    .iter()
                    .copied()
                    .filter(|&node| node != isolated)
                    .collect();
                self.network.separate(&[isolated], &rest);
                format!("isolate leader {isolated} from {rest:?}")
            }
            PartitionKind::Bridge => {
                let bridge = nodes[0];
                let (left, right) = nodes[1..].split_at((size - 1) / 2);
                self.network.separate(left, right);
                format!("bridge {bridge} between {left:?} and {right:?}")
            }
            PartitionKind::OneWay => {
                let mut cuts = Vec::new();
                for _ in 0..size {
                    let from = nodes[self.rng.index(size)];
                    let to = nodes[self.rng.index(size)];
                    if from != to {
                        self.network.cut_link(from, to);
                        cuts.push((from, to));
                    }
                }
                format!("one-way cuts (from, to) {cuts:?}")
            }
        };
        self.stats.partitions += 1;
        self.record(0, Happening::Fault(description.clone()));
        description
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{FaultSet, SimConfig};

    fn world(nodes: usize, seed: u64) -> World {
        let mut config = SimConfig::new(nodes, FaultSet::none());
        config.workload.client_count = 0;
        World::new(config, seed)
    }

    /// The members `node` can send to (itself excluded).
    fn reachable(world: &World, node: NodeId) -> Vec<NodeId> {
        world
            .node_ids()
            .into_iter()
            .filter(|&other| other != node && !world.network.is_cut(node, other))
            .collect()
    }

    #[test]
    fn random_halves_cut_a_minority_off_both_ways() {
        for seed in 0..20 {
            let mut world = world(5, seed);
            world.partition(PartitionKind::RandomHalves);
            let isolated: Vec<NodeId> = world
                .node_ids()
                .into_iter()
                .filter(|&node| reachable(&world, node).len() < 2)
                .collect();
            assert!(
                !isolated.is_empty() && isolated.len() <= 2,
                "seed {seed}: {isolated:?}"
            );
            for from in world.node_ids() {
                for to in world.node_ids() {
                    assert_eq!(
                        world.network.is_cut(from, to),
                        world.network.is_cut(to, from)
                    );
                }
            }
        }
    }

    #[test]
    fn bridge_member_talks_to_both_sides_that_cannot_talk() {
        let mut world = world(5, 4);
        world.partition(PartitionKind::Bridge);
        let bridges: Vec<NodeId> = world
            .node_ids()
            .into_iter()
            .filter(|&node| reachable(&world, node).len() == 4)
            .collect();
        assert_eq!(bridges.len(), 1, "exactly one member reaches everyone");
        let others: Vec<NodeId> = world
            .node_ids()
            .into_iter()
            .filter(|node| !bridges.contains(node))
            .collect();
        assert!(others
            .iter()
            .all(|&node| reachable(&world, node).len() == 2));
    }

    #[test]
    fn isolated_leader_hears_no_one_and_heal_restores_everything() {
        let mut world = world(3, 2);
        assert!(world.run_until(2_000_000, |world| world.leader().is_some()));
        let leader = world.leader().unwrap_or_else(|| unreachable!());
        world.partition(PartitionKind::LeaderIsolated);
        assert!(reachable(&world, leader).is_empty());
        assert!(world
            .node_ids()
            .into_iter()
            .all(|node| node == leader || world.network.is_cut(node, leader)));
        world.network.heal();
        assert!(world
            .node_ids()
            .into_iter()
            .all(|node| reachable(&world, node).len() == 2));
    }

    /// When a message from `from` to `to` sent now would be delivered.
    fn delivery_time_us(world: &mut World, from: NodeId, to: NodeId) -> u64 {
        world.queue.clear();
        world.send_message(Message {
            from,
            to,
            term: 1,
            body: raft::MessageBody::TimeoutNow,
        });
        world.queue.pop().map_or(0, |scheduled| scheduled.time_us)
    }

    #[test]
    fn messages_to_a_slow_member_arrive_late_until_it_speeds_up() {
        let mut world = world(3, 5);
        world.slow_down(2);
        for _ in 0..20 {
            let late = delivery_time_us(&mut world, 1, 2);
            assert!((SLOW_DELAY_US_MIN..=SLOW_DELAY_US_MAX + 20_000).contains(&late));
            assert!(
                delivery_time_us(&mut world, 2, 1) < SLOW_DELAY_US_MIN,
                "outbound is not slowed"
            );
        }
        world.speed_up();
        assert!(delivery_time_us(&mut world, 1, 2) < SLOW_DELAY_US_MIN);
    }

    fn timeout_now(from: NodeId, to: NodeId) -> Message {
        Message {
            from,
            to,
            term: 1,
            body: raft::MessageBody::TimeoutNow,
        }
    }

    /// The senders of the messages on their way, in queue order.
    fn senders_in_flight(world: &World) -> Vec<NodeId> {
        let mut senders: Vec<NodeId> = world
            .queue
            .iter()
            .filter_map(|scheduled| match &scheduled.event {
                Event::Deliver { message } => Some(message.from),
                _ => None,
            })
            .collect();
        senders.sort_unstable();
        senders
    }

    #[test]
    fn a_burst_loss_takes_only_the_messages_in_flight_from_its_member() {
        let mut world = world(3, 6);
        world.queue.clear();
        world.send_message(timeout_now(1, 2));
        world.send_message(timeout_now(1, 3));
        world.send_message(timeout_now(2, 1));
        world.lose_messages_in_flight_from(1);
        assert_eq!(senders_in_flight(&world), vec![2]);
        world.send_message(timeout_now(1, 3));
        assert_eq!(
            senders_in_flight(&world),
            vec![1, 2],
            "the links still work"
        );
    }

    #[test]
    fn a_kept_message_is_replayed_once() {
        let mut world = world(3, 7);
        world.queue.clear();
        world.network.replayable.push_back(timeout_now(3, 1));
        world.replay_old_message();
        assert_eq!(senders_in_flight(&world), vec![3]);
        assert!(world.network.replayable.is_empty());
        world.replay_old_message();
        assert_eq!(senders_in_flight(&world), vec![3], "nothing left to replay");
    }

    #[test]
    fn one_way_cuts_include_an_asymmetric_link() {
        let asymmetric = (0..20).any(|seed| {
            let mut world = world(5, seed);
            world.partition(PartitionKind::OneWay);
            let ids = world.node_ids();
            ids.iter().any(|&a| {
                ids.iter()
                    .any(|&b| world.network.is_cut(a, b) && !world.network.is_cut(b, a))
            })
        });
        assert!(asymmetric);
    }
}
