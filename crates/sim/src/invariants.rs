//! The Raft safety properties, checked incrementally as the world reports
//! what each member does: Election Safety, Log Matching, Leader Append-Only,
//! Leader Completeness, State Machine Safety, commit monotonicity, commit only
//! with a durable majority of the configuration in force, one configuration
//! change at a time, and no acknowledged write lost.
//!
//! Owns: the run-wide memory these checks need (leaders per term, entry
//! fingerprints per (index, term), the committed prefix). Must never: drive
//! the world or trust a member's own claim of correctness; every check
//! compares what one member did against what the others did.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use raft::{Entry, EntryKind, LogIndex, NodeId, Term};

use crate::conf_view::{ConfCache, ConfView};
use crate::etcd;
use crate::linearizability::{KvKey, KvValue};
use crate::log_view::{fingerprint, LogView};
use crate::violation::{Invariant, Violation};

/// Access to every member's durable log, for the durable-majority check.
pub trait DurableLogs {
    /// Every process of the run, member of the configuration or not.
    fn members(&self) -> Vec<NodeId>;
    /// Whether `node`'s durable state holds entry `index` with `term`, either
    /// as a log entry or covered by its snapshot.
    fn durably_holds(&self, node: NodeId, index: LogIndex, term: Term) -> bool;
}

/// The first sighting of an entry at (index, term): its digest and the term
/// of the entry before it, which by Log Matching every log must agree on.
#[derive(Clone, Copy, Debug)]
struct EntrySighting {
    fingerprint: u64,
    previous_term: Option<Term>,
    node: NodeId,
}

/// A committed entry as the run first learned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct CommittedEntry {
    term: Term,
    fingerprint: u64,
    node: NodeId,
    /// The lowest current term of any member seen holding it committed: it
    /// was committed in this term or earlier, so every leader of a later
    /// term must hold it (a leader of this term or an older one, elected
    /// late, need not).
    committed_by_term: Term,
}

/// What a leader's log looked like at the last observation, to check it only grows.
#[derive(Clone, Copy, Debug)]
struct LeaderWatch {
    term: Term,
    last_index: LogIndex,
}

type Checked = Result<(), Violation>;

/// The run-wide safety checker. Each `observe_*` call is one thing a member
/// did; a returned violation names the invariant and the members involved.
#[derive(Debug, Default)]
pub struct SafetyChecker {
    leaders_by_term: BTreeMap<Term, NodeId>,
    sightings: HashMap<(LogIndex, Term), EntrySighting>,
    committed: BTreeMap<LogIndex, CommittedEntry>,
    commit_in_memory: BTreeMap<NodeId, LogIndex>,
    commit_durable: BTreeMap<NodeId, LogIndex>,
    leaders: BTreeMap<NodeId, LeaderWatch>,
    acknowledged_writes: BTreeMap<u64, AcknowledgedWrite>,
    serializable_reads: BTreeSet<SerializableRead>,
    confs: ConfCache,
    conf_changes_committed: u64,
}

impl SafetyChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Distinct (term, leader) pairs seen: the number of elections won.
    pub fn elections(&self) -> usize {
        self.leaders_by_term.len()
    }

    /// Configuration changes known committed.
    pub fn conf_changes_committed(&self) -> u64 {
        self.conf_changes_committed
    }

    /// The highest index known committed anywhere.
    pub fn committed_index(&self) -> LogIndex {
        self.committed.keys().next_back().copied().unwrap_or(0)
    }

    /// The fingerprint of the entry committed at `index`, if known.
    pub fn committed_fingerprint(&self, index: LogIndex) -> Option<u64> {
        self.committed.get(&index).map(|entry| entry.fingerprint)
    }

    /// `node` is leader of `term` with `log`: Election Safety (no other leader
    /// in this term, ever) and Leader Completeness (it holds every entry
    /// committed in an earlier term). Call once when a member is first seen
    /// leading a term.
    pub fn observe_leader(
        &mut self,
        node: NodeId,
        term: Term,
        log: &dyn LogView,
        time_us: u64,
    ) -> Checked {
        if let Some(&other) = self.leaders_by_term.get(&term) {
            if other != node {
                return Err(Violation::new(
                    Invariant::ElectionSafety,
                    vec![other, node],
                    time_us,
                    format!("nodes {other} and {node} were both leader in term {term}"),
                ));
            }
        }
        self.leaders_by_term.insert(term, node);
        for (&index, committed) in &self.committed {
            if index <= log.snapshot_index() || committed.committed_by_term >= term {
                continue;
            }
            let held = log
                .entry(index)
                .map(|entry| (entry.term, fingerprint(entry)));
            if held != Some((committed.term, committed.fingerprint)) {
                return Err(Violation::new(
                    Invariant::LeaderCompleteness,
                    vec![node, committed.node],
                    time_us,
                    format!(
                        "node {node} leads term {term} but lacks the entry (term {}) committed \
                         at index {index} by term {}; its log has {:?} there",
                        committed.term,
                        committed.committed_by_term,
                        held.map(|(term, _)| term)
                    ),
                ));
            }
        }
        self.leaders.insert(
            node,
            LeaderWatch {
                term,
                last_index: log.last_index(),
            },
        );
        Ok(())
    }

    /// `node` is no longer leader (stepped down, crashed).
    pub fn observe_not_leader(&mut self, node: NodeId) {
        self.leaders.remove(&node);
    }

    /// `node` is about to add `entries` to its log, which is `log_before`
    /// beforehand: Log Matching (an (index, term) seen anywhere must carry the
    /// same entry after the same previous term) and Leader Append-Only.
    pub fn observe_append(
        &mut self,
        node: NodeId,
        current_term: Term,
        log_before: &dyn LogView,
        entries: &[Entry],
        time_us: u64,
    ) -> Checked {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        debug_assert!(
            entries
                .windows(2)
                .all(|pair| pair[1].index == pair[0].index + 1),
            "an append is a contiguous run of entries"
        );
        if let Some(watch) = self.leaders.get_mut(&node) {
            if watch.term == current_term && first.index <= watch.last_index {
                return Err(Violation::new(
                    Invariant::LeaderAppendOnly,
                    vec![node],
                    time_us,
                    format!(
                        "leader {node} of term {current_term} rewrites its log from index {} \
                         while its log reached {}",
                        first.index, watch.last_index
                    ),
                ));
            }
            if watch.term == current_term {
                watch.last_index = entries.last().map_or(watch.last_index, |last| last.index);
            }
        }
        for (position, entry) in entries.iter().enumerate() {
            let previous_term = if position > 0 {
                Some(entries[position - 1].term)
            } else {
                log_before.term(entry.index - 1)
            };
            self.observe_entry(node, entry, previous_term, time_us)?;
        }
        Ok(())
    }

    fn observe_entry(
        &mut self,
        node: NodeId,
        entry: &Entry,
        previous_term: Option<Term>,
        time_us: u64,
    ) -> Checked {
        let digest = fingerprint(entry);
        let sighting = self
            .sightings
            .entry((entry.index, entry.term))
            .or_insert(EntrySighting {
                fingerprint: digest,
                previous_term,
                node,
            });
        let index = entry.index;
        let term = entry.term;
        if sighting.fingerprint != digest {
            return Err(Violation::new(
                Invariant::LogMatching,
                vec![sighting.node, node],
                time_us,
                format!("two different entries at index {index} with term {term}"),
            ));
        }
        match (sighting.previous_term, previous_term) {
            (Some(first_seen), Some(now)) if first_seen != now => Err(Violation::new(
                Invariant::LogMatching,
                vec![sighting.node, node],
                time_us,
                format!(
                    "entry at index {index} term {term} follows term {first_seen} on node {} \
                     but term {now} on node {node}: the logs agree on an entry but not on its prefix",
                    sighting.node
                ),
            )),
            (None, Some(now)) => {
                sighting.previous_term = Some(now);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `node`, in `current_term`, now considers `commit` committed, with
    /// `log` its log: commit never moves back, the newly committed entries
    /// agree with what anyone else committed, and (for a leader) a majority
    /// durably holds `commit`.
    pub fn observe_commit(
        &mut self,
        node: NodeId,
        current_term: Term,
        commit: LogIndex,
        log: &dyn LogView,
        leader_durable: Option<&dyn DurableLogs>,
        time_us: u64,
    ) -> Checked {
        let before = self.commit_in_memory.get(&node).copied().unwrap_or(0);
        if commit < before {
            return Err(Violation::new(
                Invariant::CommitRegressed,
                vec![node],
                time_us,
                format!("node {node}'s commit index fell from {before} to {commit}"),
            ));
        }
        self.commit_in_memory.insert(node, commit);
        for index in (before + 1).max(log.snapshot_index() + 1)..=commit {
            let Some(entry) = log.entry(index) else {
                return Err(Violation::new(
                    Invariant::CommitWithoutMajority,
                    vec![node],
                    time_us,
                    format!("node {node} commits index {index}, which its own log does not hold"),
                ));
            };
            self.record_committed(node, current_term, entry, time_us)?;
        }
        if let Some(durable) = leader_durable {
            if commit > before && commit > log.snapshot_index() {
                let term = log.term(commit).unwrap_or(0);
                let at_commit = self.confs.conf_at(node, log, commit);
                let at_end = ConfCache::conf_at_end(&at_commit, log, commit);
                check_durable_majority(
                    node,
                    commit,
                    term,
                    [&at_commit, &at_end],
                    durable,
                    time_us,
                )?;
            }
        }
        Ok(())
    }

    /// Leader `node`, whose commit index is `commit`, just appended a
    /// configuration change to `log`: no other change may be uncommitted
    /// (two pending single-server changes can leave majorities that do not
    /// overlap). Call when a leader's Ready carries a configuration entry.
    pub fn observe_leader_conf_change(
        &mut self,
        node: NodeId,
        commit: LogIndex,
        log: &dyn LogView,
        time_us: u64,
    ) -> Checked {
        let uncommitted: Vec<LogIndex> = (commit.max(log.snapshot_index()) + 1..=log.last_index())
            .filter(|&index| {
                log.entry(index)
                    .is_some_and(|entry| matches!(entry.kind, EntryKind::ConfChange(_)))
            })
            .collect();
        if uncommitted.len() <= 1 {
            return Ok(());
        }
        Err(Violation::new(
            Invariant::ConfChangeOneAtATime,
            vec![node],
            time_us,
            format!(
                "leader {node} holds configuration changes at indexes {uncommitted:?}, all \
                 beyond its commit index {commit}"
            ),
        ))
    }

    /// The commit index `node` last reported.
    pub fn commit_of(&self, node: NodeId) -> LogIndex {
        self.commit_in_memory.get(&node).copied().unwrap_or(0)
    }

    /// `node`'s durable hard state now says `commit`: it must never fall.
    pub fn observe_durable_commit(
        &mut self,
        node: NodeId,
        commit: LogIndex,
        time_us: u64,
    ) -> Checked {
        let before = self.commit_durable.get(&node).copied().unwrap_or(0);
        if commit < before {
            return Err(Violation::new(
                Invariant::CommitRegressed,
                vec![node],
                time_us,
                format!("node {node}'s durable commit index fell from {before} to {commit}"),
            ));
        }
        self.commit_durable.insert(node, commit);
        Ok(())
    }

    /// `node` restarted from durable state: its in-memory commit starts over
    /// from what it persisted.
    pub fn observe_restart(&mut self, node: NodeId, durable_commit: LogIndex) {
        self.commit_in_memory.insert(node, durable_commit);
        self.leaders.remove(&node);
    }

    /// `node`, in `current_term`, applied `entry`: State Machine Safety
    /// (everyone applies the same command at one index).
    pub fn observe_apply(
        &mut self,
        node: NodeId,
        current_term: Term,
        entry: &Entry,
        time_us: u64,
    ) -> Checked {
        self.record_committed(node, current_term, entry, time_us)
    }

    fn record_committed(
        &mut self,
        node: NodeId,
        current_term: Term,
        entry: &Entry,
        time_us: u64,
    ) -> Checked {
        let seen = CommittedEntry {
            term: entry.term,
            fingerprint: fingerprint(entry),
            node,
            committed_by_term: current_term,
        };
        if !self.committed.contains_key(&entry.index)
            && matches!(entry.kind, EntryKind::ConfChange(_))
        {
            self.conf_changes_committed += 1;
        }
        let recorded = self.committed.entry(entry.index).or_insert(seen);
        recorded.committed_by_term = recorded.committed_by_term.min(current_term);
        let first = *recorded;
        if (first.term, first.fingerprint) != (seen.term, seen.fingerprint) {
            return Err(Violation::new(
                Invariant::StateMachineSafety,
                vec![first.node, node],
                time_us,
                format!(
                    "index {} holds a term-{} entry on node {} but a different term-{} entry \
                     on node {node}; both were committed or applied",
                    entry.index, first.term, first.node, entry.term
                ),
            ));
        }
        Ok(())
    }

    /// A client saw its write of `key` = `value` (its deletion for `None`)
    /// acknowledged, made at `revision` of the store that answered.
    pub fn observe_acknowledged_write(
        &mut self,
        client_id: u64,
        key: KvKey,
        value: Option<KvValue>,
        revision: i64,
    ) {
        let write = AcknowledgedWrite {
            key,
            value,
            revision,
        };
        let newest = self.acknowledged_writes.entry(client_id).or_insert(write);
        if write.revision > newest.revision {
            *newest = write;
        }
    }

    /// A client's serializable read of `key` answered `value` (`None`:
    /// absent) at `revision` of the store that served it.
    pub fn observe_serializable_read(&mut self, key: KvKey, value: Option<KvValue>, revision: i64) {
        self.serializable_reads.insert(SerializableRead {
            key,
            value,
            revision,
        });
    }

    /// At the end of a run, once `node` has caught up: its state machine must
    /// hold every client's newest acknowledged write in its history, at the
    /// revision the client was told, and every serializable read's value at
    /// the revision the read named (a serializable read may be stale, but
    /// only by serving a state the history went through).
    pub fn check_acknowledged_writes(
        &self,
        node: NodeId,
        store: &mvcc::Store,
        time_us: u64,
    ) -> Checked {
        for (&client_id, write) in &self.acknowledged_writes {
            let held = etcd::holds_write(store, write.key, write.value, write.revision);
            if held != Ok(true) {
                return Err(Violation::new(
                    Invariant::AcknowledgedWriteLost,
                    vec![node],
                    time_us,
                    format!(
                        "client {client_id}'s write of key {} = {:?} was acknowledged at revision \
                         {}, but node {node}'s state machine does not hold it there ({held:?})",
                        write.key, write.value, write.revision
                    ),
                ));
            }
        }
        for read in &self.serializable_reads {
            let held = etcd::value_at(store, read.key, read.revision);
            if held != Ok(read.value) {
                return Err(Violation::new(
                    Invariant::SerializableReadOffHistory,
                    vec![node],
                    time_us,
                    format!(
                        "a serializable read of key {} answered {:?} at revision {}, but node \
                         {node}'s state machine holds {held:?} there",
                        read.key, read.value, read.revision
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A serializable read a client saw answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SerializableRead {
    key: KvKey,
    value: Option<KvValue>,
    revision: i64,
}

/// A write a client saw acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct AcknowledgedWrite {
    key: KvKey,
    /// `None` for a delete.
    value: Option<KvValue>,
    revision: i64,
}

/// A whole-log cross-check, independent of the incremental one: for every
/// pair of logs, wherever both hold an entry with the same index and term,
/// the entries and every entry before them (that both still hold) agree.
pub fn check_logs_match(logs: &[(NodeId, &dyn LogView)], time_us: u64) -> Checked {
    for (position, &(left_node, left)) in logs.iter().enumerate() {
        for &(right_node, right) in &logs[position + 1..] {
            let first = left.snapshot_index().max(right.snapshot_index()) + 1;
            let last = left.last_index().min(right.last_index());
            let Some(highest_match) = (first..=last)
                .rev()
                .find(|&index| left.term(index).is_some() && left.term(index) == right.term(index))
            else {
                continue;
            };
            for index in first..=highest_match {
                let (left_entry, right_entry) = (left.entry(index), right.entry(index));
                if left_entry.map(fingerprint) != right_entry.map(fingerprint)
                    || left_entry.map(|entry| entry.term) != right_entry.map(|entry| entry.term)
                {
                    return Err(Violation::new(
                        Invariant::LogMatching,
                        vec![left_node, right_node],
                        time_us,
                        format!(
                            "nodes {left_node} and {right_node} agree on index {highest_match} \
                             (term {:?}) but differ at index {index}",
                            left.term(highest_match)
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Once every member has applied the same index, their state machines must
/// be identical: the same history, by the store's own checksum.
pub fn check_stores_converged(stores: &[(NodeId, &mvcc::Store)], time_us: u64) -> Checked {
    let mut first_at: BTreeMap<LogIndex, (NodeId, u32)> = BTreeMap::new();
    for &(node, store) in stores {
        let applied = store.applied_index();
        let hash = store.hash().map_err(|error| {
            Violation::new(
                Invariant::SimulatorFault,
                vec![node],
                time_us,
                format!("node {node}'s store cannot be hashed: {error}"),
            )
        })?;
        let (first_node, first_hash) = *first_at.entry(applied).or_insert((node, hash));
        if hash != first_hash {
            return Err(Violation::new(
                Invariant::StateMachineSafety,
                vec![first_node, node],
                time_us,
                format!(
                    "nodes {first_node} and {node} both applied through index {applied} but hold \
                     different state machines"
                ),
            ));
        }
    }
    Ok(())
}

/// A leader commits by the configuration in force in its log when it
/// commits: the one through the committed index, or the one after the single
/// change it may hold beyond that index. A majority of the voters of either
/// must hold the entry durably.
fn check_durable_majority(
    leader: NodeId,
    commit: LogIndex,
    term: Term,
    confs: [&ConfView; 2],
    durable: &dyn DurableLogs,
    time_us: u64,
) -> Checked {
    let holders: Vec<NodeId> = durable
        .members()
        .into_iter()
        .filter(|&member| durable.durably_holds(member, commit, term))
        .collect();
    if confs.iter().any(|conf| conf.has_majority(&holders)) {
        return Ok(());
    }
    let voters: Vec<Vec<NodeId>> = confs
        .iter()
        .map(|conf| conf.voters.iter().copied().collect())
        .collect();
    Err(Violation::new(
        Invariant::CommitWithoutMajority,
        vec![leader],
        time_us,
        format!(
            "leader {leader} commits index {commit} (term {term}) but only {holders:?} hold it \
             durably, no majority of the voters {:?} in force",
            voters
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::EntryKind;

    /// A log as a plain list of entries starting at index 1.
    struct VecLog(Vec<Entry>);

    impl LogView for VecLog {
        fn entry(&self, index: LogIndex) -> Option<&Entry> {
            index
                .checked_sub(1)
                .and_then(|position| self.0.get(position as usize))
        }
        fn snapshot_index(&self) -> LogIndex {
            0
        }
        fn snapshot_term(&self) -> Term {
            0
        }
        fn snapshot_conf_state(&self) -> raft::ConfState {
            raft::ConfState::with_voters(vec![1, 2, 3])
        }
        fn last_index(&self) -> LogIndex {
            self.0.len() as u64
        }
    }

    struct Durable(BTreeMap<NodeId, VecLog>);

    impl DurableLogs for Durable {
        fn members(&self) -> Vec<NodeId> {
            self.0.keys().copied().collect()
        }
        fn durably_holds(&self, node: NodeId, index: LogIndex, term: Term) -> bool {
            self.0[&node].term(index) == Some(term)
        }
    }

    fn entry(index: LogIndex, term: Term, payload: u8) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::Normal,
            data: vec![payload],
        }
    }

    fn log(terms: &[Term]) -> VecLog {
        VecLog(
            terms
                .iter()
                .enumerate()
                .map(|(position, &term)| entry(position as u64 + 1, term, 0))
                .collect(),
        )
    }

    #[test]
    fn election_safety_catches_two_leaders_in_one_term() {
        let mut checker = SafetyChecker::new();
        checker.observe_leader(1, 3, &log(&[]), 10).unwrap();
        checker.observe_leader(1, 3, &log(&[]), 11).unwrap();
        checker.observe_leader(2, 4, &log(&[]), 12).unwrap();
        let violation = checker.observe_leader(2, 3, &log(&[]), 20).unwrap_err();
        assert_eq!(violation.invariant, Invariant::ElectionSafety);
        assert_eq!(violation.nodes, vec![1, 2]);
        assert_eq!(violation.time_us, 20);
    }

    #[test]
    fn log_matching_catches_same_index_and_term_with_different_entries() {
        let mut checker = SafetyChecker::new();
        checker
            .observe_append(1, 1, &log(&[]), &[entry(1, 1, 7)], 0)
            .unwrap();
        checker
            .observe_append(2, 1, &log(&[]), &[entry(1, 1, 7)], 0)
            .unwrap();
        let violation = checker
            .observe_append(3, 1, &log(&[]), &[entry(1, 1, 8)], 5)
            .unwrap_err();
        assert_eq!(violation.invariant, Invariant::LogMatching);
    }

    #[test]
    fn log_matching_catches_same_entry_after_a_different_prefix() {
        let mut checker = SafetyChecker::new();
        checker
            .observe_append(1, 2, &log(&[1]), &[entry(2, 2, 9)], 0)
            .unwrap();
        let violation = checker
            .observe_append(2, 2, &log(&[2]), &[entry(2, 2, 9)], 1)
            .unwrap_err();
        assert_eq!(violation.invariant, Invariant::LogMatching);
        assert_eq!(violation.nodes, vec![1, 2]);
    }

    #[test]
    fn leader_append_only_catches_a_leader_rewriting_its_log() {
        let mut checker = SafetyChecker::new();
        checker.observe_leader(1, 2, &log(&[1, 1, 2]), 0).unwrap();
        checker
            .observe_append(1, 2, &log(&[1, 1, 2]), &[entry(4, 2, 0)], 1)
            .unwrap();
        let violation = checker
            .observe_append(1, 2, &log(&[1, 1, 2, 2]), &[entry(3, 2, 5)], 2)
            .unwrap_err();
        assert_eq!(violation.invariant, Invariant::LeaderAppendOnly);
        checker.observe_not_leader(1);
        checker
            .observe_append(1, 3, &log(&[1, 1, 2, 2]), &[entry(3, 3, 5)], 3)
            .unwrap();
    }

    #[test]
    fn leader_completeness_catches_a_leader_missing_a_committed_entry() {
        let mut checker = SafetyChecker::new();
        checker
            .observe_commit(1, 1, 2, &log(&[1, 1]), None, 0)
            .unwrap();
        checker.observe_leader(2, 2, &log(&[1, 1, 1]), 1).unwrap();
        let violation = checker.observe_leader(3, 3, &log(&[1]), 2).unwrap_err();
        assert_eq!(violation.invariant, Invariant::LeaderCompleteness);
        assert_eq!(violation.nodes[0], 3);
    }

    #[test]
    fn a_leader_of_an_older_term_elected_late_need_not_hold_later_commits() {
        let mut checker = SafetyChecker::new();
        checker
            .observe_commit(1, 6, 2, &log(&[1, 4]), None, 0)
            .unwrap();
        checker.observe_leader(3, 5, &log(&[1]), 1).unwrap();
        let violation = checker.observe_leader(4, 7, &log(&[1]), 2).unwrap_err();
        assert_eq!(violation.invariant, Invariant::LeaderCompleteness);
    }

    #[test]
    fn state_machine_safety_catches_different_commands_at_one_index() {
        let mut checker = SafetyChecker::new();
        checker.observe_apply(1, 1, &entry(1, 1, 1), 0).unwrap();
        checker.observe_apply(2, 1, &entry(1, 1, 1), 0).unwrap();
        let violation = checker.observe_apply(3, 2, &entry(1, 2, 3), 4).unwrap_err();
        assert_eq!(violation.invariant, Invariant::StateMachineSafety);
        assert_eq!(violation.nodes, vec![1, 3]);
    }

    #[test]
    fn commit_regression_is_caught_in_memory_and_on_disk() {
        let mut checker = SafetyChecker::new();
        checker
            .observe_commit(1, 1, 2, &log(&[1, 1]), None, 0)
            .unwrap();
        let violation = checker
            .observe_commit(1, 1, 1, &log(&[1, 1]), None, 1)
            .unwrap_err();
        assert_eq!(violation.invariant, Invariant::CommitRegressed);
        checker.observe_durable_commit(1, 2, 2).unwrap();
        let violation = checker.observe_durable_commit(1, 1, 3).unwrap_err();
        assert_eq!(violation.invariant, Invariant::CommitRegressed);
        checker.observe_restart(1, 2);
        checker
            .observe_commit(1, 1, 2, &log(&[1, 1]), None, 4)
            .unwrap();
    }

    #[test]
    fn commit_without_durable_majority_is_caught() {
        let durable = Durable(BTreeMap::from([
            (1, log(&[1, 1])),
            (2, log(&[1])),
            (3, log(&[1])),
        ]));
        let mut checker = SafetyChecker::new();
        checker
            .observe_commit(1, 1, 1, &log(&[1, 1]), Some(&durable), 0)
            .unwrap();
        let violation = checker
            .observe_commit(1, 1, 2, &log(&[1, 1]), Some(&durable), 1)
            .unwrap_err();
        assert_eq!(violation.invariant, Invariant::CommitWithoutMajority);
        let majority = Durable(BTreeMap::from([
            (1, log(&[1, 1])),
            (2, log(&[1, 1])),
            (3, log(&[1])),
        ]));
        let mut checker = SafetyChecker::new();
        checker
            .observe_commit(1, 1, 2, &log(&[1, 1]), Some(&majority), 1)
            .unwrap();
    }

    fn conf_entry(
        index: LogIndex,
        term: Term,
        kind: raft::ConfChangeKind,
        node_id: NodeId,
    ) -> Entry {
        Entry {
            term,
            index,
            kind: EntryKind::ConfChange(raft::ConfChange { kind, node_id }),
            data: Vec::new(),
        }
    }

    #[test]
    fn commit_counts_the_voters_of_the_configuration_in_force() {
        use raft::ConfChangeKind::{AddVoter, RemoveMember};
        // Voters {1, 2, 3}; index 2 removes 3: from then on 1 and 2 are a majority.
        let removing = VecLog(vec![entry(1, 1, 0), conf_entry(2, 1, RemoveMember, 3)]);
        let durable = Durable(BTreeMap::from([
            (1, VecLog(removing.0.clone())),
            (2, VecLog(removing.0.clone())),
            (3, log(&[1])),
        ]));
        SafetyChecker::new()
            .observe_commit(1, 1, 2, &removing, Some(&durable), 0)
            .unwrap();
        // Index 2 adds voter 4, index 3 voter 5: only 1 and 5 hold index 2, a
        // majority of neither {1, 2, 3, 4} (in force there) nor {1, ..., 5}.
        let growing = VecLog(vec![
            entry(1, 1, 0),
            conf_entry(2, 1, AddVoter, 4),
            conf_entry(3, 1, AddVoter, 5),
        ]);
        let durable = Durable(BTreeMap::from([
            (1, VecLog(growing.0.clone())),
            (2, log(&[1])),
            (3, log(&[1])),
            (4, log(&[1])),
            (5, VecLog(growing.0.clone())),
        ]));
        let violation = SafetyChecker::new()
            .observe_commit(1, 1, 2, &growing, Some(&durable), 0)
            .unwrap_err();
        assert_eq!(violation.invariant, Invariant::CommitWithoutMajority);
    }

    #[test]
    fn learners_do_not_make_a_commit_majority() {
        use raft::ConfChangeKind::AddLearner;
        let with_learners = VecLog(vec![
            conf_entry(1, 1, AddLearner, 4),
            conf_entry(2, 1, AddLearner, 5),
            entry(3, 1, 0),
        ]);
        let durable = Durable(BTreeMap::from([
            (1, VecLog(with_learners.0.clone())),
            (2, log(&[1, 1])),
            (3, log(&[1, 1])),
            (4, VecLog(with_learners.0.clone())),
            (5, VecLog(with_learners.0.clone())),
        ]));
        let mut checker = SafetyChecker::new();
        checker
            .observe_commit(1, 1, 2, &with_learners, Some(&durable), 0)
            .unwrap();
        let violation = checker
            .observe_commit(1, 1, 3, &with_learners, Some(&durable), 1)
            .unwrap_err();
        assert_eq!(violation.invariant, Invariant::CommitWithoutMajority);
    }

    #[test]
    fn two_uncommitted_configuration_changes_are_caught() {
        use raft::ConfChangeKind::AddLearner;
        let mut checker = SafetyChecker::new();
        let one = VecLog(vec![entry(1, 1, 0), conf_entry(2, 1, AddLearner, 4)]);
        checker.observe_leader_conf_change(1, 1, &one, 0).unwrap();
        let two = VecLog(vec![
            entry(1, 1, 0),
            conf_entry(2, 1, AddLearner, 4),
            conf_entry(3, 1, AddLearner, 5),
        ]);
        checker.observe_leader_conf_change(1, 2, &two, 1).unwrap();
        let violation = checker
            .observe_leader_conf_change(1, 1, &two, 2)
            .unwrap_err();
        assert_eq!(violation.invariant, Invariant::ConfChangeOneAtATime);
    }

    #[test]
    fn whole_log_cross_check_catches_a_divergent_prefix() {
        let agreeing = [log(&[1, 1, 2]), log(&[1, 1, 2, 3])];
        let views: Vec<(NodeId, &dyn LogView)> = vec![(1, &agreeing[0]), (2, &agreeing[1])];
        check_logs_match(&views, 0).unwrap();
        let mut divergent = log(&[1, 1, 2]);
        divergent.0[1].data = vec![9];
        let views: Vec<(NodeId, &dyn LogView)> = vec![(1, &agreeing[0]), (3, &divergent)];
        let violation = check_logs_match(&views, 5).unwrap_err();
        assert_eq!(violation.invariant, Invariant::LogMatching);
        assert_eq!(violation.nodes, vec![1, 3]);
        let diverged_after = log(&[1, 1, 3]);
        let views: Vec<(NodeId, &dyn LogView)> = vec![(1, &agreeing[0]), (4, &diverged_after)];
        check_logs_match(&views, 0).unwrap();
    }

    fn store_with_puts(values: &[u64]) -> mvcc::Store {
        let store = mvcc::Store::in_memory().unwrap();
        for (position, &value) in values.iter().enumerate() {
            let command = mvcc::Command::Put(etcd::put_request(0, value));
            store.apply(position as u64 + 1, &command).unwrap();
        }
        store
    }

    #[test]
    fn stores_that_applied_the_same_index_must_be_equal() {
        let left = store_with_puts(&[1, 2]);
        let same = store_with_puts(&[1, 2]);
        let other = store_with_puts(&[1, 3]);
        let behind = store_with_puts(&[1]);
        check_stores_converged(&[(1, &left), (2, &same), (3, &behind)], 0).unwrap();
        let violation =
            check_stores_converged(&[(1, &left), (3, &behind), (2, &other)], 7).unwrap_err();
        assert_eq!(violation.invariant, Invariant::StateMachineSafety);
        assert_eq!(violation.nodes, vec![1, 2]);
    }

    #[test]
    fn acknowledged_write_missing_from_a_store_is_caught() {
        let mut checker = SafetyChecker::new();
        let store = store_with_puts(&[1]);
        // The first put is at revision 2 (an empty store is at revision 1).
        checker.observe_acknowledged_write(1, 0, Some(1), 2);
        checker.check_acknowledged_writes(2, &store, 0).unwrap();
        checker.observe_acknowledged_write(1, 0, Some(2), 3);
        let violation = checker.check_acknowledged_writes(2, &store, 9).unwrap_err();
        assert_eq!(violation.invariant, Invariant::AcknowledgedWriteLost);
        let mut overwritten = SafetyChecker::new();
        overwritten.observe_acknowledged_write(1, 0, Some(9), 2);
        assert!(overwritten.check_acknowledged_writes(2, &store, 0).is_err());
        let mut read = SafetyChecker::new();
        read.observe_serializable_read(0, Some(1), 2);
        read.observe_serializable_read(0, None, 1);
        read.check_acknowledged_writes(2, &store, 0).unwrap();
        read.observe_serializable_read(0, Some(2), 2);
        let violation = read.check_acknowledged_writes(2, &store, 9).unwrap_err();
        assert_eq!(violation.invariant, Invariant::SerializableReadOffHistory);
        let mut deleted = SafetyChecker::new();
        deleted.observe_acknowledged_write(1, 0, None, 2);
        let violation = deleted.check_acknowledged_writes(2, &store, 9).unwrap_err();
        assert_eq!(violation.invariant, Invariant::AcknowledgedWriteLost);
    }
}
