//! What happened in a run, kept two ways: a ring buffer of the last events so
//! a violation can tell the story that led to it, and a running hash of every
//! event so two runs of one seed can be compared bit for bit.
//!
//! Owns: the event records, their rendering, the ring buffer and the hash.
//! Must never: influence the run (recording is write-only).

use std::collections::VecDeque;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};

use raft::{ConfChange, ConfChangeKind, LogIndex, NodeId, Role, Term};

use crate::linearizability::{KvInput, KvOutput};

/// One thing that happened, in the words a failing seed's story uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Happening {
    Sent {
        to: NodeId,
        kind: &'static str,
        term: Term,
        fate: MessageFate,
    },
    Delivered {
        from: NodeId,
        kind: &'static str,
        term: Term,
    },
    /// A Ready batch: entries to write, the commit it carries, messages out.
    Ready {
        entries: usize,
        first_index: LogIndex,
        commit: Option<LogIndex>,
        snapshot_index: Option<LogIndex>,
        messages: usize,
        persisted_messages: usize,
        committed: usize,
    },
    FsyncDone {
        last_index: LogIndex,
    },
    Role {
        role: Role,
        term: Term,
        leader: NodeId,
    },
    Applied {
        index: LogIndex,
        term: Term,
    },
    Compacted {
        index: LogIndex,
    },
    /// A committed configuration change reached the member's member list.
    ConfApplied(ConfChange),
    Crashed {
        durable_last_index: LogIndex,
        /// Writes of which the disk kept a torn prefix.
        torn_writes: usize,
    },
    Restarted {
        term: Term,
        commit: LogIndex,
        last_index: LogIndex,
    },
    Fault(String),
    Healed,
    ClientCall {
        client: u64,
        request: u64,
        input: KvInput,
    },
    ClientReturn {
        client: u64,
        request: u64,
        output: KvOutput,
        served_by: NodeId,
    },
    ClientTimeout {
        client: u64,
        request: u64,
        attempt: u32,
    },
    ClientAbandoned {
        client: u64,
        request: u64,
    },
}

/// What the network did with a message at send time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageFate {
    InFlight,
    Duplicated,
    Dropped,
    Cut,
}

impl fmt::Display for Happening {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Happening::Sent {
                to,
                kind,
                term,
                fate,
            } => {
                write!(formatter, "send {kind} (term {term}) to {to}: {fate:?}")
            }
            Happening::Delivered { from, kind, term } => {
                write!(formatter, "receive {kind} (term {term}) from {from}")
            }
            Happening::Ready {
                entries,
                first_index,
                commit,
                snapshot_index,
                messages,
                persisted_messages,
                committed,
            } => {
                write!(formatter, "ready: {entries} entries")?;
                if *entries > 0 {
                    write!(formatter, " from index {first_index}")?;
                }
                if let Some(commit) = commit {
                    write!(formatter, ", hard state commit {commit}")?;
                }
                if let Some(index) = snapshot_index {
                    write!(formatter, ", snapshot at {index}")?;
                }
                write!(
                    formatter,
                    ", {messages} messages, {persisted_messages} after fsync, {committed} to apply"
                )
            }
            Happening::FsyncDone { last_index } => {
                write!(formatter, "fsync done, durable through index {last_index}")
            }
            Happening::Role { role, term, leader } => {
                write!(
                    formatter,
                    "becomes {role:?} in term {term} (leader {leader})"
                )
            }
            Happening::Applied { index, term } => {
                write!(formatter, "applies index {index} (term {term})")
            }
            Happening::Compacted { index } => {
                write!(formatter, "snapshots and compacts through {index}")
            }
            Happening::ConfApplied(change) => {
                write!(formatter, "applies {}", describe_conf_change(*change))
            }
            Happening::Crashed {
                durable_last_index,
                torn_writes,
            } => {
                write!(formatter, "CRASH, durable log ends at {durable_last_index}")?;
                if *torn_writes > 0 {
                    write!(formatter, ", {torn_writes} torn writes kept in part")?;
                }
                Ok(())
            }
            Happening::Restarted {
                term,
                commit,
                last_index,
            } => write!(
                formatter,
                "RESTART with term {term}, commit {commit}, last index {last_index}"
            ),
            Happening::Fault(description) => write!(formatter, "FAULT {description}"),
            Happening::Healed => write!(formatter, "HEAL all faults"),
            Happening::ClientCall {
                client,
                request,
                input,
            } => {
                write!(formatter, "client {client} calls #{request} {input:?}")
            }
            Happening::ClientReturn {
                client,
                request,
                output,
                served_by,
            } => {
                write!(
                    formatter,
                    "client {client} gets #{request} {output:?} from node {served_by}"
                )
            }
            Happening::ClientTimeout {
                client,
                request,
                attempt,
            } => {
                write!(
                    formatter,
                    "client {client} times out on #{request} (attempt {attempt})"
                )
            }
            Happening::ClientAbandoned { client, request } => {
                write!(
                    formatter,
                    "client {client} gives up on #{request}: outcome unknown"
                )
            }
        }
    }
}

/// One event: when, where (`node` 0 means the world or a client), and what.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TraceRecord {
    pub time_us: u64,
    pub node: NodeId,
    pub happening: Happening,
}

impl fmt::Display for TraceRecord {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.time_us / 1000;
        let micros = self.time_us % 1000;
        if self.node == 0 {
            write!(
                formatter,
                "{millis:>6}.{micros:03} ms  world   {}",
                self.happening
            )
        } else {
            write!(
                formatter,
                "{millis:>6}.{micros:03} ms  node {:<2} {}",
                self.node, self.happening
            )
        }
    }
}

/// The last `capacity` records plus a hash over all of them.
#[derive(Debug)]
pub struct Trace {
    recent: VecDeque<TraceRecord>,
    capacity: usize,
    hasher: DefaultHasher,
    recorded: u64,
    /// When set, only records in this time window that move the story on
    /// (not routine heartbeats) are retained; all are still hashed.
    focus: Option<(u64, u64)>,
}

impl TraceRecord {
    /// Whether the record is routine traffic that tells nothing by itself:
    /// heartbeats and their answers, and Ready batches that only carry those.
    pub fn is_routine(&self) -> bool {
        match &self.happening {
            Happening::Sent { kind, .. } | Happening::Delivered { kind, .. } => {
                matches!(*kind, "Heartbeat" | "HeartbeatResponse")
            }
            Happening::Ready {
                entries,
                commit,
                snapshot_index,
                committed,
                ..
            } => *entries == 0 && commit.is_none() && snapshot_index.is_none() && *committed == 0,
            _ => false,
        }
    }
}

impl Trace {
    pub fn new(capacity: usize) -> Self {
        Self {
            recent: VecDeque::with_capacity(capacity),
            capacity,
            hasher: DefaultHasher::new(),
            recorded: 0,
            focus: None,
        }
    }

    /// Retains only the non-routine records between `from_us` and `to_us`,
    /// dropping what was retained before.
    pub fn focus_on(&mut self, from_us: u64, to_us: u64) {
        self.focus = Some((from_us, to_us));
        self.recent.clear();
    }

    pub fn record(&mut self, time_us: u64, node: NodeId, happening: Happening) {
        let record = TraceRecord {
            time_us,
            node,
            happening,
        };
        record.hash(&mut self.hasher);
        self.recorded += 1;
        if self.capacity == 0 {
            return;
        }
        if let Some((from_us, to_us)) = self.focus {
            if time_us < from_us || time_us > to_us || record.is_routine() {
                return;
            }
        }
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
        debug_assert!(self.recent.len() <= self.capacity);
    }

    /// The retained records, oldest first.
    pub fn recent(&self) -> Vec<TraceRecord> {
        self.recent.iter().cloned().collect()
    }

    /// A hash of every record so far: equal for two runs only if they did the
    /// same things at the same virtual times.
    pub fn digest(&self) -> u64 {
        self.hasher.finish()
    }

    pub fn recorded(&self) -> u64 {
        self.recorded
    }
}

/// A configuration change in words, for traces: "add learner 6".
pub fn describe_conf_change(change: ConfChange) -> String {
    let kind = match change.kind {
        ConfChangeKind::AddVoter => "add voter",
        ConfChangeKind::AddLearner => "add learner",
        ConfChangeKind::PromoteLearner => "promote learner",
        ConfChangeKind::RemoveMember => "remove member",
    };
    format!("{kind} {}", change.node_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_records_and_hash_covers_all() {
        let mut trace = Trace::new(2);
        let mut other = Trace::new(2);
        for time_us in 0..5 {
            trace.record(time_us, 1, Happening::Healed);
            other.record(time_us, 1, Happening::Healed);
        }
        let times: Vec<u64> = trace.recent().iter().map(|record| record.time_us).collect();
        assert_eq!(times, vec![3, 4]);
        assert_eq!(trace.recorded(), 5);
        assert_eq!(trace.digest(), other.digest());
        other.record(9, 2, Happening::Healed);
        assert_ne!(trace.digest(), other.digest());
    }

    #[test]
    fn focus_keeps_the_window_without_heartbeats_but_hashes_everything() {
        let mut focused = Trace::new(10);
        let mut plain = Trace::new(10);
        focused.focus_on(10, 20);
        let heartbeat = Happening::Sent {
            to: 2,
            kind: "Heartbeat",
            term: 1,
            fate: MessageFate::InFlight,
        };
        for trace in [&mut focused, &mut plain] {
            trace.record(5, 1, Happening::Healed);
            trace.record(12, 1, heartbeat.clone());
            trace.record(15, 1, Happening::Healed);
            trace.record(25, 1, Happening::Healed);
        }
        let kept: Vec<u64> = focused
            .recent()
            .iter()
            .map(|record| record.time_us)
            .collect();
        assert_eq!(kept, vec![15]);
        assert_eq!(focused.digest(), plain.digest());
    }
}
