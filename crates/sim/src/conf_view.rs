//! The configuration a log describes, derived by the checkers on their own
//! from the snapshot's configuration and the change entries after it (the
//! rules of Raft dissertation §4.1), so no checker trusts the core's account
//! of who the voters are.
//!
//! Owns: [`ConfView`] and the per-member cache that keeps deriving it cheap.
//! Must never: modify a log, or call the core's configuration code.

use std::collections::{BTreeMap, BTreeSet};

use raft::{ConfChange, ConfChangeKind, ConfState, EntryKind, LogIndex, NodeId, Term};

use crate::log_view::LogView;

/// Voters and learners of one configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfView {
    pub voters: BTreeSet<NodeId>,
    pub learners: BTreeSet<NodeId>,
}

impl ConfView {
    pub fn from_conf_state(conf_state: &ConfState) -> Self {
        let voters: BTreeSet<NodeId> = conf_state.voters.iter().copied().collect();
        let learners = conf_state
            .learners
            .iter()
            .copied()
            .filter(|learner| !voters.contains(learner))
            .collect();
        Self { voters, learners }
    }

    fn is_member(&self, id: NodeId) -> bool {
        self.voters.contains(&id) || self.learners.contains(&id)
    }

    /// Applies `change`; a change that does not fit (adding a member twice,
    /// promoting a non-learner, removing a stranger or the last voter) has
    /// no effect, as on every member.
    pub fn apply(&mut self, change: ConfChange) {
        let id = change.node_id;
        match change.kind {
            ConfChangeKind::AddVoter if !self.is_member(id) => {
                self.voters.insert(id);
            }
            ConfChangeKind::AddLearner if !self.is_member(id) => {
                self.learners.insert(id);
            }
            ConfChangeKind::PromoteLearner if self.learners.remove(&id) => {
                self.voters.insert(id);
            }
            ConfChangeKind::RemoveMember
                if self.is_member(id) && !(self.voters.len() == 1 && self.voters.contains(&id)) =>
            {
                self.voters.remove(&id);
                self.learners.remove(&id);
            }
            _ => {}
        }
    }

    /// Whether `holders` include a majority of the voters.
    pub fn has_majority(&self, holders: &[NodeId]) -> bool {
        let held = holders
            .iter()
            .filter(|holder| self.voters.contains(holder))
            .count();
        held * 2 > self.voters.len()
    }
}

/// Applies the change entries of `log` in `(after, through]` to `conf`.
fn apply_entries(conf: &mut ConfView, log: &dyn LogView, after: LogIndex, through: LogIndex) {
    for index in after + 1..=through {
        if let Some(EntryKind::ConfChange(change)) = log.entry(index).map(|entry| entry.kind) {
            conf.apply(change);
        }
    }
}

/// The configuration each member's log described at some index, so the next
/// question about a later index of the same log only reads the entries since.
#[derive(Debug, Default)]
pub struct ConfCache {
    /// Per member: the index, the term of its entry, and the configuration
    /// through it. By Log Matching, a log holding that index and term holds
    /// the same entries before it.
    derived: BTreeMap<NodeId, (LogIndex, Term, ConfView)>,
}

impl ConfCache {
    /// The configuration `node`'s `log` describes through `index`.
    pub fn conf_at(&mut self, node: NodeId, log: &dyn LogView, index: LogIndex) -> ConfView {
        let snapshot_index = log.snapshot_index();
        let reusable = self
            .derived
            .get(&node)
            .filter(|(derived_index, derived_term, _)| {
                *derived_index >= snapshot_index
                    && *derived_index <= index
                    && log.term(*derived_index) == Some(*derived_term)
            })
            .map(|(derived_index, _, conf)| (*derived_index, conf.clone()));
        let (from, mut conf) = reusable.unwrap_or_else(|| {
            (
                snapshot_index,
                ConfView::from_conf_state(&log.snapshot_conf_state()),
            )
        });
        apply_entries(&mut conf, log, from, index);
        if let Some(term) = log.term(index) {
            self.derived.insert(node, (index, term, conf.clone()));
        }
        conf
    }

    /// The configuration in force at the end of `node`'s log, given the one
    /// through `index`.
    pub fn conf_at_end(conf_at_index: &ConfView, log: &dyn LogView, index: LogIndex) -> ConfView {
        let mut conf = conf_at_index.clone();
        apply_entries(&mut conf, log, index, log.last_index());
        conf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(kind: ConfChangeKind, node_id: NodeId) -> ConfChange {
        ConfChange { kind, node_id }
    }

    #[test]
    fn changes_that_do_not_fit_have_no_effect() {
        let mut conf = ConfView::from_conf_state(&ConfState::with_voters(vec![1]));
        conf.apply(change(ConfChangeKind::RemoveMember, 1));
        conf.apply(change(ConfChangeKind::PromoteLearner, 2));
        conf.apply(change(ConfChangeKind::AddVoter, 1));
        assert_eq!(
            conf,
            ConfView::from_conf_state(&ConfState::with_voters(vec![1]))
        );
        conf.apply(change(ConfChangeKind::AddLearner, 2));
        conf.apply(change(ConfChangeKind::PromoteLearner, 2));
        conf.apply(change(ConfChangeKind::RemoveMember, 1));
        assert_eq!(conf.voters, BTreeSet::from([2]));
        assert!(conf.learners.is_empty());
    }

    #[test]
    fn a_majority_counts_voters_only() {
        let conf = ConfView::from_conf_state(&ConfState {
            voters: vec![1, 2, 3, 4],
            learners: vec![5, 6],
        });
        assert!(!conf.has_majority(&[1, 2, 5, 6]));
        assert!(conf.has_majority(&[1, 2, 3]));
    }
}
