//! A small in-memory cluster for the core's integration tests: every member
//! runs a real `RawNode` over `MemStorage`, Ready batches are handled in the
//! contract's order, and a test decides which messages are delivered.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use raft::{Config, Entry, EntryKind, MemStorage, Message, RawNode, ReadState, Snapshot, Storage};

pub struct Cluster {
    pub nodes: BTreeMap<u64, RawNode<MemStorage>>,
    /// Durable storage of every member, kept across crashes.
    crashed: BTreeMap<u64, MemStorage>,
    configs: BTreeMap<u64, Config>,
    pub in_flight: Vec<Message>,
    /// Directed links that drop every message.
    cut_links: BTreeSet<(u64, u64)>,
    /// Directed links whose messages are held back, to arrive late.
    held_links: BTreeSet<(u64, u64)>,
    /// Messages held back on their way, oldest first, until released.
    held: Vec<Message>,
    /// Commands each member applied, in order.
    pub applied: BTreeMap<u64, Vec<Entry>>,
    pub read_states: BTreeMap<u64, Vec<ReadState>>,
    /// Count of messages delivered, for cost assertions.
    pub delivered_messages: u64,
    /// Events worth printing (role changes, read states), drained by the caller.
    pub events: Vec<String>,
    pub trace_messages: bool,
    /// The voters the cluster was founded with: a member added later starts
    /// from them too, since the log describes changes relative to them.
    founding_voters: Vec<u64>,
    configure: Box<dyn Fn(&mut Config)>,
}

impl Cluster {
    /// A cluster of members `1..=size`; `configure` adjusts every member's
    /// configuration, including members added later.
    pub fn new(size: u64, configure: impl Fn(&mut Config) + 'static) -> Self {
        let voters: Vec<u64> = (1..=size).collect();
        let mut cluster = Self {
            nodes: BTreeMap::new(),
            crashed: BTreeMap::new(),
            configs: BTreeMap::new(),
            in_flight: Vec::new(),
            cut_links: BTreeSet::new(),
            held_links: BTreeSet::new(),
            held: Vec::new(),
            applied: BTreeMap::new(),
            read_states: BTreeMap::new(),
            delivered_messages: 0,
            events: Vec::new(),
            trace_messages: false,
            founding_voters: voters.clone(),
            configure: Box::new(configure),
        };
        for &id in &voters {
            cluster.add_node(id);
        }
        cluster
    }

    /// Starts a member with an empty log and the founding configuration; it
    /// takes part once the cluster's configuration includes it.
    pub fn add_node(&mut self, id: u64) {
        let mut config = Config::new(id);
        (self.configure)(&mut config);
        let storage = MemStorage::new_with_voters(self.founding_voters.clone());
        self.nodes
            .insert(id, RawNode::new(&config, storage).expect("valid config"));
        self.configs.insert(id, config);
        self.applied.insert(id, Vec::new());
    }

    pub fn node(&self, id: u64) -> &RawNode<MemStorage> {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut RawNode<MemStorage> {
        self.nodes.get_mut(&id).expect("member is running")
    }

    /// Replaces a member's log with entries of the given terms (index 1 on)
    /// and sets its term to the last of them; used to build the paper's figures.
    pub fn set_log(&mut self, id: u64, terms: &[u64], term: Option<u64>) {
        let config = self.configs[&id].clone();
        let voters = self.node(id).status().voters;
        let mut storage = MemStorage::new_with_voters(voters);
        let entries: Vec<Entry> = terms
            .iter()
            .enumerate()
            .map(|(offset, &term)| Entry {
                term,
                index: offset as u64 + 1,
                kind: EntryKind::Normal,
                data: format!("t{term}").into_bytes(),
            })
            .collect();
        storage.append(&entries).expect("contiguous entries");
        let mut hard_state = storage.hard_state();
        hard_state.term = term.unwrap_or_else(|| terms.last().copied().unwrap_or(0));
        storage.set_hard_state(hard_state);
        self.nodes
            .insert(id, RawNode::new(&config, storage).expect("valid config"));
    }

    /// Handles one member's Ready as an embedder must: persist, then send
    /// what needed persistence, apply, advance.
    pub fn process_ready(&mut self, id: u64) -> bool {
        let Some(node) = self.nodes.get_mut(&id) else {
            return false;
        };
        if !node.has_ready() {
            return false;
        }
        let ready = node.ready().unwrap();
        if let Some(soft_state) = ready.soft_state {
            self.events.push(format!(
                "{id} becomes {:?} (leader {})",
                soft_state.role, soft_state.leader
            ));
        }
        let storage = node.storage_mut();
        if let Some(snapshot) = ready.snapshot.clone() {
            storage.apply_snapshot(snapshot);
        }
        storage.append(&ready.entries).expect("append");
        if let Some(hard_state) = ready.hard_state {
            storage.set_hard_state(hard_state);
        }
        self.in_flight.extend(ready.messages);
        self.in_flight.extend(ready.persisted_messages);
        if let Some(snapshot) = &ready.snapshot {
            self.applied.insert(id, decode_snapshot(snapshot));
        }
        let applied = self.applied.entry(id).or_default();
        applied.extend(ready.committed_entries);
        applied.extend(ready.committed_entries_after_persist);
        for read_state in ready.read_states {
            self.events.push(format!(
                "{id} read-state {} at index {}",
                String::from_utf8_lossy(&read_state.context),
                read_state.index
            ));
            self.read_states.entry(id).or_default().push(read_state);
        }
        node.advance().unwrap();
        true
    }

    /// Delivers every queued message whose link is up; returns how many.
    pub fn deliver_all(&mut self) -> usize {
        let messages = std::mem::take(&mut self.in_flight);
        let mut delivered = 0;
        for message in messages {
            if self.cut_links.contains(&(message.from, message.to)) {
                continue;
            }
            if self.held_links.contains(&(message.from, message.to)) {
                self.held.push(message);
                continue;
            }
            delivered += usize::from(self.deliver(message));
        }
        self.delivered_messages += delivered as u64;
        delivered
    }

    fn deliver(&mut self, message: Message) -> bool {
        if self.trace_messages {
            self.events.push(describe(&message));
        }
        let Some(node) = self.nodes.get_mut(&message.to) else {
            return false;
        };
        node.step(message).expect("well-formed message");
        true
    }

    /// From now on, messages from `from` to `to` are held back on their way.
    pub fn hold(&mut self, from: u64, to: u64) {
        self.held_links.insert((from, to));
    }

    /// Messages from `from` to `to` flow again; those held stay held.
    pub fn unhold(&mut self, from: u64, to: u64) {
        self.held_links.remove(&(from, to));
    }

    /// The oldest `count` messages held on the link from `from` to `to`
    /// arrive now, late, in the order they were sent.
    pub fn release(&mut self, from: u64, to: u64, count: usize) {
        let mut released = Vec::new();
        self.held.retain(|message| {
            let take = released.len() < count && (message.from, message.to) == (from, to);
            if take {
                released.push(message.clone());
            }
            !take
        });
        for message in released {
            self.delivered_messages += u64::from(self.deliver(message));
        }
    }

    /// The newest message held on the link from `from` to `to` arrives now,
    /// before the older ones.
    pub fn release_newest(&mut self, from: u64, to: u64) {
        let newest = self
            .held
            .iter()
            .rposition(|message| (message.from, message.to) == (from, to));
        if let Some(position) = newest {
            let message = self.held.remove(position);
            self.delivered_messages += u64::from(self.deliver(message));
        }
    }

    /// A description of each message held back, oldest first.
    pub fn held_messages(&self) -> Vec<String> {
        self.held.iter().map(describe).collect()
    }

    /// One step of the world: every member handles its Ready, then every
    /// message then in flight is delivered. Returns whether anything happened.
    pub fn round(&mut self) -> bool {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        let mut busy = false;
        for id in ids {
            busy |= self.process_ready(id);
        }
        busy |= self.deliver_all() > 0;
        busy
    }

    /// Runs until no member has work and no message is in flight.
    pub fn stabilize(&mut self) {
        for _ in 0..10_000 {
            if !self.round() {
                return;
            }
        }
        panic!("cluster did not stabilize within 10000 rounds");
    }

    pub fn tick(&mut self, id: u64, ticks: u32) {
        for _ in 0..ticks {
            if let Some(node) = self.nodes.get_mut(&id) {
                node.tick().unwrap();
            }
        }
    }

    /// Ticks every member `ticks` times, handling work between ticks.
    pub fn tick_all(&mut self, ticks: u32) {
        for _ in 0..ticks {
            let ids: Vec<u64> = self.nodes.keys().copied().collect();
            for id in ids {
                self.tick(id, 1);
            }
            self.stabilize();
        }
    }

    pub fn isolate(&mut self, id: u64) {
        let others: Vec<u64> = self
            .configs
            .keys()
            .copied()
            .filter(|&other| other != id)
            .collect();
        for other in others {
            self.cut_links.insert((id, other));
            self.cut_links.insert((other, id));
        }
    }

    pub fn partition(&mut self, groups: &[Vec<u64>]) {
        for (position, group) in groups.iter().enumerate() {
            for other in groups.iter().skip(position + 1) {
                for &left in group {
                    for &right in other {
                        self.cut_links.insert((left, right));
                        self.cut_links.insert((right, left));
                    }
                }
            }
        }
    }

    /// Restores every link; messages still held back stay held until released.
    pub fn heal(&mut self) {
        self.cut_links.clear();
        self.held_links.clear();
    }

    /// Stops a member; its durable storage survives.
    pub fn crash(&mut self, id: u64) {
        if let Some(node) = self.nodes.remove(&id) {
            self.crashed.insert(id, node.storage().clone());
        }
        self.in_flight.retain(|message| message.to != id);
    }

    /// Restarts a crashed member from its durable storage; its state machine is
    /// rebuilt from scratch by replaying the log.
    pub fn restart(&mut self, id: u64) {
        let storage = self.crashed.remove(&id).expect("member was crashed");
        let snapshot = storage.snapshot().expect("memory snapshot");
        self.applied.insert(id, decode_snapshot(&snapshot));
        let mut config = self.configs[&id].clone();
        config.applied = snapshot.meta.index;
        self.nodes
            .insert(id, RawNode::new(&config, storage).expect("valid config"));
    }

    /// Restarts a crashed member from `storage` instead of what it had, as if
    /// its disk had been replaced.
    pub fn restart_with_storage(&mut self, id: u64, storage: MemStorage) {
        self.crashed.insert(id, storage);
        self.restart(id);
    }

    /// Compacts a member's log behind `index` with a snapshot of what it applied.
    pub fn compact(&mut self, id: u64, index: u64) {
        let applied = self.applied[&id].clone();
        let node = self.node_mut(id);
        let term = node.storage().term(index).expect("index in log");
        let conf_state = node
            .conf_state_at(index)
            .expect("configuration at an applied index")
            .clone();
        let data: Vec<u8> = applied
            .iter()
            .filter(|entry| entry.index <= index)
            .flat_map(encode_entry)
            .collect();
        let mut snapshot = Snapshot::default();
        snapshot.meta.index = index;
        snapshot.meta.term = term;
        snapshot.meta.conf_state = conf_state;
        snapshot.data = data;
        node.storage_mut().compact(snapshot).expect("compact");
    }

    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(_, node)| node.status().soft_state.role == raft::Role::Leader)
            .map(|(&id, _)| id)
    }

    /// The payloads of normal entries a member applied, as strings.
    pub fn applied_commands(&self, id: u64) -> Vec<String> {
        self.applied[&id]
            .iter()
            .filter(|entry| entry.kind == EntryKind::Normal)
            .map(|entry| String::from_utf8_lossy(&entry.data).into_owned())
            .collect()
    }
}

fn encode_entry(entry: &Entry) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&entry.index.to_le_bytes());
    bytes.extend_from_slice(&entry.term.to_le_bytes());
    bytes.push(u8::from(entry.kind == EntryKind::Normal));
    bytes.extend_from_slice(&(entry.data.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&entry.data);
    bytes
}

fn decode_snapshot(snapshot: &Snapshot) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut rest = snapshot.data.as_slice();
    while rest.len() >= 21 {
        let index = u64::from_le_bytes(rest[0..8].try_into().unwrap());
        let term = u64::from_le_bytes(rest[8..16].try_into().unwrap());
        let kind = if rest[16] == 1 {
            EntryKind::Normal
        } else {
            EntryKind::Noop
        };
        let length = u32::from_le_bytes(rest[17..21].try_into().unwrap()) as usize;
        let data = rest[21..21 + length].to_vec();
        entries.push(Entry {
            term,
            index,
            kind,
            data,
        });
        rest = &rest[21 + length..];
    }
    entries
}

/// One line per message, for verbose scenario output.
pub fn describe(message: &Message) -> String {
    use raft::MessageBody::*;
    let body = match &message.body {
        RequestVote {
            pre_vote,
            last_log_index,
            last_log_term,
            ..
        } => format!(
            "{} last={last_log_term}/{last_log_index}",
            if *pre_vote { "PreVote" } else { "RequestVote" }
        ),
        RequestVoteResponse { pre_vote, granted } => format!(
            "{}Response {}",
            if *pre_vote { "PreVote" } else { "RequestVote" },
            if *granted { "granted" } else { "rejected" }
        ),
        AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => format!(
            "AppendEntries prev={prev_log_term}/{prev_log_index} entries={} commit={leader_commit}",
            entries.len()
        ),
        AppendEntriesResponse(response) => format!("AppendEntriesResponse {response:?}"),
        Heartbeat { commit, .. } => format!("Heartbeat commit={commit}"),
        HeartbeatResponse { .. } => "HeartbeatResponse".to_string(),
        InstallSnapshot { snapshot } => format!(
            "InstallSnapshot {}/{}",
            snapshot.meta.term, snapshot.meta.index
        ),
        TimeoutNow => "TimeoutNow".to_string(),
        ForwardProposal { entries } => format!("ForwardProposal entries={}", entries.len()),
        ForwardReadIndex { .. } => "ForwardReadIndex".to_string(),
        ReadIndexResponse { index, .. } => format!("ReadIndexResponse index={index}"),
    };
    format!(
        "{}->{} term={} {body}",
        message.from, message.to, message.term
    )
}
