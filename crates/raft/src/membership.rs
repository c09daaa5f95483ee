//! The configuration in force on one member (Raft dissertation §4.1): the
//! newest configuration in its log, whether committed or not, plus the older
//! ones still needed to revert when a conflicting leader truncates a
//! configuration entry away. Derived from the log alone; owns no I/O and
//! never decides whether a change may be proposed (the leader does).

use crate::types::{ConfState, Entry, EntryKind, LogIndex};

#[derive(Clone, Debug)]
pub(crate) struct Membership {
    /// Configurations in log order, each with the index of the entry that
    /// made it; the first is the base (a snapshot's configuration or an
    /// applied one) and is never removed. Never empty.
    history: Vec<(LogIndex, ConfState)>,
}

impl Membership {
    /// Starts from `conf_state`, in force from `index` on (the snapshot index).
    pub(crate) fn new(index: LogIndex, mut conf_state: ConfState) -> Self {
        conf_state.voters.sort_unstable();
        conf_state.voters.dedup();
        conf_state.learners.sort_unstable();
        conf_state.learners.dedup();
        conf_state
            .learners
            .retain(|&learner| conf_state.voters.binary_search(&learner).is_err());
        Self {
            history: vec![(index, conf_state)],
        }
    }

    /// The newest configuration in the log: the one in force.
    pub(crate) fn current(&self) -> &ConfState {
        &self
            .history
            .last()
            .expect("membership history is never empty")
            .1
    }

    /// The index of the entry that made the configuration in force (the base
    /// index when no change entry follows it).
    pub(crate) fn current_index(&self) -> LogIndex {
        self.history
            .last()
            .expect("membership history is never empty")
            .0
    }

    /// The configuration in force once the log ends at `index`, if the history
    /// still reaches back that far.
    pub(crate) fn at(&self, index: LogIndex) -> Option<&ConfState> {
        self.history
            .iter()
            .rev()
            .find(|(made_at, _)| *made_at <= index)
            .map(|(_, conf_state)| conf_state)
    }

    /// Records the configuration entries among `entries`, which were just
    /// appended after dropping every entry from `entries[0].index` on. An
    /// entry whose change does not fit the configuration before it has no
    /// effect; every member sees the same log prefix, so all agree on that.
    pub(crate) fn appended(&mut self, entries: &[Entry]) {
        let Some(first) = entries.first() else {
            return;
        };
        self.truncate_from(first.index);
        for entry in entries {
            if let EntryKind::ConfChange(change) = entry.kind {
                if let Ok(next) = self.current().apply(change) {
                    self.history.push((entry.index, next));
                }
            }
        }
    }

    /// Reverts every configuration made by entries at `index` or later.
    fn truncate_from(&mut self, index: LogIndex) {
        while self.history.len() > 1 && self.current_index() >= index {
            self.history.pop();
        }
    }

    /// Replaces everything with a snapshot's configuration.
    pub(crate) fn restore(&mut self, index: LogIndex, conf_state: ConfState) {
        *self = Self::new(index, conf_state);
    }

    /// Forgets configurations older than the one in force at `applied`: the
    /// log is never truncated at or below the commit index, and the embedder
    /// only asks for the configuration at indexes it has yet to snapshot.
    pub(crate) fn forget_before(&mut self, applied: LogIndex) {
        let keep_from = self
            .history
            .iter()
            .rposition(|(made_at, _)| *made_at <= applied)
            .unwrap_or(0);
        self.history.drain(..keep_from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{ConfChange, ConfChangeKind};

    fn change(index: LogIndex, kind: ConfChangeKind, node_id: u64) -> Entry {
        Entry {
            term: 1,
            index,
            kind: EntryKind::ConfChange(ConfChange { kind, node_id }),
            data: Vec::new(),
        }
    }

    #[test]
    fn newest_entry_is_in_force_and_truncation_reverts_it() {
        let mut membership = Membership::new(0, ConfState::with_voters(vec![1, 2, 3]));
        membership.appended(&[change(1, ConfChangeKind::AddLearner, 4)]);
        membership.appended(&[change(2, ConfChangeKind::PromoteLearner, 4)]);
        assert_eq!(membership.current().voters, vec![1, 2, 3, 4]);
        assert_eq!(membership.at(1).unwrap().learners, vec![4]);
        let normal = Entry {
            term: 2,
            index: 2,
            kind: EntryKind::Normal,
            data: Vec::new(),
        };
        membership.appended(&[normal]);
        assert_eq!(membership.current().voters, vec![1, 2, 3]);
        assert_eq!(membership.current().learners, vec![4]);
        assert_eq!(membership.current_index(), 1);
    }

    #[test]
    fn a_change_that_does_not_fit_has_no_effect() {
        let mut membership = Membership::new(0, ConfState::with_voters(vec![1, 2, 3]));
        membership.appended(&[change(1, ConfChangeKind::PromoteLearner, 9)]);
        assert_eq!(membership.current_index(), 0);
        assert_eq!(membership.current().voters, vec![1, 2, 3]);
    }

    #[test]
    fn forgetting_keeps_the_configuration_in_force_at_applied() {
        let mut membership = Membership::new(0, ConfState::with_voters(vec![1, 2, 3]));
        membership.appended(&[
            change(1, ConfChangeKind::RemoveMember, 3),
            change(2, ConfChangeKind::AddVoter, 5),
        ]);
        membership.forget_before(1);
        assert!(membership.at(0).is_none());
        assert_eq!(membership.at(1).unwrap().voters, vec![1, 2]);
        assert_eq!(membership.current().voters, vec![1, 2, 5]);
    }
}
