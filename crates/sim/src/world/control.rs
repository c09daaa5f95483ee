//! Scripted control of the world for scenario tests: crash and restart
//! members, cut and restore their links, make the network lossy, propose
//! commands directly, and look up what was committed.
//!
//! Owns: the verbs a scenario uses. Must never: bypass the node or the
//! checkers (every action goes through the same paths the nemesis uses).

use raft::{LogIndex, NodeId};

use super::member::Input;
use super::World;
use crate::log_view::bytes_fingerprint;
use crate::trace::Happening;

impl World {
    /// Restarts a crashed member from its durable state (no-op when up).
    pub fn restart(&mut self, node: NodeId) {
        if !self.is_up(node) {
            self.start_member(node);
        }
    }

    /// Crashes a member: it loses everything not yet durable.
    pub fn crash(&mut self, node: NodeId) {
        self.crash_member(node);
    }

    /// Cuts every link to and from `node`.
    pub fn disconnect(&mut self, node: NodeId) {
        let others: Vec<NodeId> = self
            .node_ids()
            .into_iter()
            .filter(|&other| other != node)
            .collect();
        self.network.separate(&[node], &others);
        self.record(0, Happening::Fault(format!("disconnect {node}")));
    }

    /// Restores every link to and from `node`.
    pub fn reconnect(&mut self, node: NodeId) {
        self.network.restore_links_of(node);
        self.record(0, Happening::Fault(format!("reconnect {node}")));
    }

    /// Makes every link lossy (or reliable again with zeros).
    pub fn set_unreliable(
        &mut self,
        drop_probability: f64,
        duplicate_probability: f64,
        latency_us_max: u64,
    ) {
        self.network.config.drop_probability = drop_probability;
        self.network.config.duplicate_probability = duplicate_probability;
        self.network.config.latency_us_max = latency_us_max.max(self.network.config.latency_us_min);
    }

    /// Proposes a Put of `value` at `node` (forwarded to the leader when
    /// `node` follows one), to a key of its own, so no two proposals are
    /// the same bytes. Returns the command, to find it once applied.
    pub fn propose(&mut self, node: NodeId, value: u64) -> Vec<u8> {
        self.next_lab_client_id += 1;
        let key = format!("lab-{}", self.next_lab_client_id);
        let data = mvcc::Command::Put(mvcc::PutRequest::new(key, value.to_be_bytes())).encode();
        self.input(node, Input::Propose(data.clone()));
        data
    }

    /// Stops `node`'s process for `duration_us` (it keeps its state and
    /// catches up on what it missed when it resumes).
    pub fn pause(&mut self, node: NodeId, duration_us: u64) {
        self.pause_member(node, duration_us);
    }

    /// Asks `node` to hand leadership to `target` (ignored unless `node` leads).
    pub fn transfer_leader(&mut self, node: NodeId, target: NodeId) {
        self.input(node, Input::TransferLeader(target));
    }

    /// Asks `node` for a configuration change (ignored unless `node` leads
    /// and accepts it, as a refused change is in the nemesis's runs).
    pub fn propose_conf_change(&mut self, node: NodeId, change: raft::ConfChange) {
        self.input(node, Input::ConfChange(change));
    }

    /// The configuration in force in `node`'s core (`None` while it is down).
    pub fn conf_state(&self, node: NodeId) -> Option<raft::ConfState> {
        self.member(node).conf_in_force().cloned()
    }

    /// The index at which the command `data` was committed, once a member
    /// applied it.
    pub fn committed_index_of(&self, data: &[u8]) -> Option<LogIndex> {
        self.applied_commands.get(&bytes_fingerprint(data)).copied()
    }

    /// The index `node`'s durable snapshot covers (0 before any compaction).
    pub fn snapshot_index(&self, node: NodeId) -> LogIndex {
        self.member(node).durable_snapshot_index()
    }

    /// Whether `node` is waiting on the fsync of a snapshot it received.
    pub fn is_installing_snapshot(&self, node: NodeId) -> bool {
        self.member(node).pending_snapshot_index().is_some()
    }
}
