//! The memo of configurations the search has reached, which is what keeps
//! the search from exploring the same ground twice.
//!
//! Owns: `OperationSet`, `Memo` and the rule for when a configuration may
//! be skipped. Must never: walk events or consult the model.
//!
//! A configuration is (returned operations placed, unknown-outcome
//! operations placed, model state). One is skipped when a configuration
//! reached before has the same returned operations and state and a subset
//! of its unknown-outcome operations: the same one (Lowe's memoization), or
//! one that dominates it. Placing an unknown-outcome operation only removes
//! options (it is never required and has no return that others must
//! respect), so whatever completes the larger configuration completes the
//! smaller one, which the search explores in full.
//!
//! Why skipping is safe even against a configuration still being explored:
//! if the search ends without a linearization, every reached configuration
//! was expanded in full. Take a reached one with the shortest completion;
//! its next step along that completion was either reached (with a shorter
//! completion) or skipped for a reached one that completes at least as
//! soon; either contradicts the choice, so no reached configuration, the
//! empty start included, has a completion.

use std::collections::HashMap;
use std::hash::Hash;

/// A set of operations of one kind, one bit each.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct OperationSet {
    words: Vec<u64>,
}

impl OperationSet {
    pub fn with_capacity(members_max: usize) -> OperationSet {
        OperationSet {
            words: vec![0; members_max.div_ceil(64)],
        }
    }

    pub fn insert(&mut self, member: usize) {
        debug_assert!(!self.contains(member));
        self.words[member / 64] |= 1 << (member % 64);
    }

    pub fn remove(&mut self, member: usize) {
        debug_assert!(self.contains(member));
        self.words[member / 64] &= !(1 << (member % 64));
    }

    pub fn contains(&self, member: usize) -> bool {
        self.words[member / 64] & (1 << (member % 64)) != 0
    }

    pub fn len(&self) -> usize {
        self.words
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }

    pub fn is_subset(&self, other: &OperationSet) -> bool {
        debug_assert_eq!(self.words.len(), other.words.len());
        self.words
            .iter()
            .zip(&other.words)
            .all(|(mine, theirs)| mine & !theirs == 0)
    }
}

/// The memo's answer for a configuration the search is about to enter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Not seen and not dominated: recorded, go ahead.
    New,
    /// Reached before, or dominated by one reached before: skip it.
    Skip,
    /// Recording it would exceed the bound on configurations.
    LimitReached,
}

/// Configurations reached, grouped by (returned operations placed, state).
#[derive(Debug)]
pub(super) struct Memo<State> {
    /// Returned operations placed, then state, to the unknown-outcome sets
    /// reached with them. Nested so that a lookup clones nothing.
    groups: HashMap<OperationSet, HashMap<State, Vec<OperationSet>>>,
    visits_total: u64,
    visits_max: u64,
}

impl<State: Clone + Eq + Hash> Memo<State> {
    pub fn new(visits_max: u64) -> Memo<State> {
        Memo {
            groups: HashMap::new(),
            visits_total: 0,
            visits_max,
        }
    }

    /// How many configurations have been recorded.
    pub fn visits_total(&self) -> u64 {
        self.visits_total
    }

    /// Decides whether the search should enter this configuration, and
    /// records it when it should.
    pub fn admit(
        &mut self,
        returned_placed: &OperationSet,
        unknown_placed: &OperationSet,
        state: &State,
    ) -> Admission {
        let group = self
            .groups
            .get(returned_placed)
            .and_then(|by_state| by_state.get(state));
        let skip = group.is_some_and(|group| {
            group
                .iter()
                .any(|reached| reached.is_subset(unknown_placed))
        });
        if skip {
            return Admission::Skip;
        }
        if self.visits_total >= self.visits_max {
            return Admission::LimitReached;
        }
        let by_state = match self.groups.get_mut(returned_placed) {
            Some(by_state) => by_state,
            None => self.groups.entry(returned_placed.clone()).or_default(),
        };
        match by_state.get_mut(state) {
            Some(group) => group.push(unknown_placed.clone()),
            None => {
                by_state.insert(state.clone(), vec![unknown_placed.clone()]);
            }
        }
        self.visits_total += 1;
        Admission::New
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(members: &[usize]) -> OperationSet {
        let mut set = OperationSet::with_capacity(130);
        for &member in members {
            set.insert(member);
        }
        set
    }

    #[test]
    fn same_configuration_is_skipped_the_second_time() {
        let mut memo = Memo::new(10);
        assert_eq!(memo.admit(&set(&[1]), &set(&[]), &5), Admission::New);
        assert_eq!(memo.admit(&set(&[1]), &set(&[]), &5), Admission::Skip);
        assert_eq!(memo.admit(&set(&[1]), &set(&[]), &6), Admission::New);
        assert_eq!(memo.admit(&set(&[2]), &set(&[]), &5), Admission::New);
    }

    #[test]
    fn configurations_with_more_unknown_operations_placed_are_dominated() {
        let mut memo = Memo::new(10);
        assert_eq!(memo.admit(&set(&[1]), &set(&[3]), &5), Admission::New);
        assert_eq!(memo.admit(&set(&[1]), &set(&[3, 64]), &5), Admission::Skip);
        assert_eq!(memo.admit(&set(&[1]), &set(&[64]), &5), Admission::New);
        // A subset is not dominated, nor is a different returned set.
        assert_eq!(memo.admit(&set(&[1]), &set(&[]), &5), Admission::New);
        assert_eq!(
            memo.admit(&set(&[1, 2]), &set(&[3, 64]), &5),
            Admission::New
        );
    }

    #[test]
    fn bound_counts_recorded_configurations() {
        let mut memo = Memo::new(2);
        assert_eq!(memo.admit(&set(&[1]), &set(&[]), &1), Admission::New);
        assert_eq!(memo.admit(&set(&[1]), &set(&[]), &2), Admission::New);
        assert_eq!(memo.admit(&set(&[1]), &set(&[]), &2), Admission::Skip);
        assert_eq!(
            memo.admit(&set(&[1]), &set(&[]), &3),
            Admission::LimitReached
        );
    }

    #[test]
    fn subset_compares_every_word() {
        assert!(set(&[1, 70]).is_subset(&set(&[1, 70, 128])));
        assert!(!set(&[1, 128]).is_subset(&set(&[1, 70])));
        assert_eq!(set(&[0, 63, 64, 129]).len(), 4);
    }
}
