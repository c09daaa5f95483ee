//! The Wing & Gong search with Lowe's memoization, over the operations of
//! one partition.
//!
//! Owns: the walk over the event list, the backtracking stack and the order
//! in which candidates are tried. Must never: partition histories, validate
//! them or format explanations; it takes well-formed operations and returns
//! indices.

use super::events::{EventKind, EventList, END};
use super::history::{Operation, Outcome};
use super::memo::{Admission, Memo, OperationSet};
use super::model::Model;

/// What the search concluded about one partition.
#[derive(Debug)]
pub(crate) enum SearchOutcome<State> {
    Linearizable,
    NotLinearizable(Counterexample<State>),
    LimitReached { states_explored: u64 },
}

/// The deepest point the search reached before it ran out of options.
#[derive(Debug)]
pub(crate) struct Counterexample<State> {
    /// Indices (into the searched slice) of the longest sequence of
    /// operations found that respects real time and the model.
    pub longest_prefix: Vec<usize>,
    /// The model state after that prefix.
    pub state_after_prefix: State,
    /// Indices of the operations that could have come next in real time;
    /// the model accepted none of them (or only into explored dead ends).
    /// Unknown-outcome operations that would not change the state are left
    /// out: they never explain a dead end.
    pub next_candidates: Vec<usize>,
}

/// Whether an operation's answer was seen, which decides its chain, its
/// set of placed operations and whether it must be placed at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OutcomeKind {
    Returned,
    Unknown,
}

/// Where the walk over candidates stands. Returned operations are tried
/// first so that unknown-outcome ones are placed as late as possible:
/// configurations with fewer of them placed are then reached first and
/// dominate the rest in the memo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Walk {
    /// At this event of the returned chain.
    Returned(usize),
    /// At this call of the unknown chain; calls after `horizon`, the time of
    /// the first pending return, cannot come next.
    Unknown { cursor: usize, horizon: u64 },
}

/// What became of an attempt to place an operation next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    Placed,
    /// No successor state is allowed, or each leads to a configuration the
    /// memo skips.
    NotPlaced,
    /// Placing it would explore one configuration more than the bound.
    LimitReached,
}

/// One placed operation on the backtracking stack.
#[derive(Debug)]
struct Frame<State> {
    operation: usize,
    state_before: State,
    /// Which of the operation's possible successor states was taken, so that
    /// backtracking can try the next one.
    alternative: usize,
}

/// Searches for a linearization of `operations`, all of one partition.
///
/// Explores at most `states_explored_max` distinct configurations before
/// giving up with `LimitReached`.
pub(crate) fn search<M: Model>(
    model: &M,
    operations: &[&Operation<M::Input, M::Output>],
    states_explored_max: u64,
) -> SearchOutcome<M::State> {
    Search::new(model, operations, states_explored_max).run()
}

struct Search<'a, M: Model> {
    model: &'a M,
    operations: &'a [&'a Operation<M::Input, M::Output>],
    events: EventList,
    /// Each operation's bit in `returned_placed` or `unknown_placed`,
    /// depending on its outcome.
    slot: Vec<usize>,
    returned_placed: OperationSet,
    unknown_placed: OperationSet,
    memo: Memo<M::State>,
    stack: Vec<Frame<M::State>>,
    state: M::State,
    returned_pending: usize,
    deepest: Option<Counterexample<M::State>>,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(
        model: &'a M,
        operations: &'a [&'a Operation<M::Input, M::Output>],
        states_explored_max: u64,
    ) -> Self {
        let mut returned_count = 0;
        let mut unknown_count = 0;
        let slot = operations
            .iter()
            .map(|operation| {
                let counter = if operation.is_returned() {
                    &mut returned_count
                } else {
                    &mut unknown_count
                };
                *counter += 1;
                *counter - 1
            })
            .collect();
        Search {
            model,
            operations,
            events: EventList::new(operations),
            slot,
            returned_placed: OperationSet::with_capacity(returned_count),
            unknown_placed: OperationSet::with_capacity(unknown_count),
            memo: Memo::new(states_explored_max),
            stack: Vec::new(),
            state: model.init(),
            returned_pending: returned_count,
            deepest: None,
        }
    }

    /// The main loop: walk the returned operations called before the first
    /// pending return, then the unknown-outcome ones called by then,
    /// trying to place each; after a placement start again. When both walks
    /// are over, nothing fits here: undo the last choice and resume the
    /// walk just after it.
    fn run(mut self) -> SearchOutcome<M::State> {
        let mut walk = Walk::Returned(self.events.first_returned());
        let mut alternative_first = 0;
        loop {
            debug_assert_eq!(
                self.stack.len(),
                self.returned_placed.len() + self.unknown_placed.len()
            );
            if self.returned_pending == 0 {
                // Every operation with a seen answer is placed; operations
                // with unknown outcomes still unplaced never took effect.
                return SearchOutcome::Linearizable;
            }
            let (operation, walk_on) = match walk {
                Walk::Returned(cursor) => {
                    // While a returned operation is pending its return is in
                    // the chain, and the walk reaches it before the end.
                    debug_assert!(cursor != END);
                    let event = self.events.event(cursor);
                    if event.kind == EventKind::Return {
                        walk = Walk::Unknown {
                            cursor: self.events.first_unknown(),
                            horizon: event.time,
                        };
                        continue;
                    }
                    let walk_on = Walk::Returned(self.events.next_returned(cursor));
                    (event.operation, walk_on)
                }
                Walk::Unknown { cursor, horizon } => {
                    if cursor == END || self.events.event(cursor).time > horizon {
                        let Some((operation, alternative)) = self.backtrack() else {
                            let counterexample = self
                                .deepest
                                .take()
                                .unwrap_or_else(|| self.snapshot_counterexample());
                            return SearchOutcome::NotLinearizable(counterexample);
                        };
                        walk = self.walk_resuming_at(operation);
                        alternative_first = alternative + 1;
                        continue;
                    }
                    let walk_on = Walk::Unknown {
                        cursor: self.events.next_unknown(cursor),
                        horizon,
                    };
                    (self.events.event(cursor).operation, walk_on)
                }
            };
            match self.try_place(operation, alternative_first) {
                Placement::Placed => walk = Walk::Returned(self.events.first_returned()),
                Placement::NotPlaced => walk = walk_on,
                Placement::LimitReached => {
                    return SearchOutcome::LimitReached {
                        states_explored: self.memo.visits_total(),
                    }
                }
            }
            alternative_first = 0;
        }
    }

    /// The walk positioned at `operation`'s call, as it was when the
    /// operation was placed.
    fn walk_resuming_at(&self, operation: usize) -> Walk {
        let cursor = self.events.call_event(operation);
        match self.kind_of(operation) {
            OutcomeKind::Returned => Walk::Returned(cursor),
            OutcomeKind::Unknown => {
                let horizon = self.events.horizon();
                debug_assert!(horizon.is_some(), "a returned operation is pending");
                Walk::Unknown {
                    cursor,
                    horizon: horizon.unwrap_or(u64::MAX),
                }
            }
        }
    }

    fn kind_of(&self, operation: usize) -> OutcomeKind {
        if self.operations[operation].is_returned() {
            OutcomeKind::Returned
        } else {
            OutcomeKind::Unknown
        }
    }

    fn placed_set(&mut self, operation: usize) -> &mut OperationSet {
        match self.kind_of(operation) {
            OutcomeKind::Returned => &mut self.returned_placed,
            OutcomeKind::Unknown => &mut self.unknown_placed,
        }
    }

    /// Places `operation` next if the model allows one of its successor
    /// states (from `alternative_first` on) that the memo admits.
    fn try_place(&mut self, operation: usize, alternative_first: usize) -> Placement {
        let recorded = self.operations[operation];
        match &recorded.outcome {
            // A returned operation has one successor at most: alternative 0.
            Outcome::Returned { output, .. } => {
                if alternative_first > 0 {
                    return Placement::NotPlaced;
                }
                match self.model.step(&self.state, &recorded.input, output) {
                    Some(successor) => self.enter(operation, 0, successor),
                    None => Placement::NotPlaced,
                }
            }
            Outcome::Unknown => {
                let reachable_one_step_earlier = self.reachable_one_step_earlier(operation);
                let successors = self.unobserved_successors(operation);
                for (alternative, successor) in
                    successors.into_iter().enumerate().skip(alternative_first)
                {
                    if reachable_one_step_earlier.contains(&successor) {
                        continue;
                    }
                    match self.enter(operation, alternative, successor) {
                        Placement::NotPlaced => {}
                        placed_or_limit => return placed_or_limit,
                    }
                }
                Placement::NotPlaced
            }
        }
    }

    /// Places `operation` with its `alternative`-th successor state if the
    /// memo admits the configuration that leads to.
    fn enter(&mut self, operation: usize, alternative: usize, successor: M::State) -> Placement {
        let slot = self.slot[operation];
        self.placed_set(operation).insert(slot);
        let admission = self
            .memo
            .admit(&self.returned_placed, &self.unknown_placed, &successor);
        match admission {
            Admission::New => {
                let state_before = std::mem::replace(&mut self.state, successor);
                self.stack.push(Frame {
                    operation,
                    state_before,
                    alternative,
                });
                self.events.lift(operation);
                if self.kind_of(operation) == OutcomeKind::Returned {
                    self.returned_pending -= 1;
                }
                Placement::Placed
            }
            Admission::Skip => {
                self.placed_set(operation).remove(slot);
                Placement::NotPlaced
            }
            Admission::LimitReached => {
                self.placed_set(operation).remove(slot);
                Placement::LimitReached
            }
        }
    }

    /// When the last placed operation had an unknown outcome and so does
    /// `operation`: the states `operation` reaches when placed instead of
    /// it. Those configurations are siblings the search tries anyway, with
    /// one unknown-outcome operation fewer, so reaching the same state
    /// through both is never needed (an unknown Put overwritten by another
    /// before anyone looked, say). Empty otherwise.
    fn reachable_one_step_earlier(&self, operation: usize) -> Vec<M::State> {
        let Some(last) = self.stack.last() else {
            return Vec::new();
        };
        if self.kind_of(last.operation) != OutcomeKind::Unknown
            || self.kind_of(operation) != OutcomeKind::Unknown
        {
            return Vec::new();
        }
        self.model
            .step_unobserved(&last.state_before, &self.operations[operation].input)
    }

    /// The states unknown-outcome `operation` may lead to from the current
    /// state, in a fixed order so that backtracking can resume by position.
    /// A step that leaves the state as it was is never worth taking:
    /// leaving the operation out (it never took effect) reaches the same
    /// state with fewer obligations.
    fn unobserved_successors(&self, operation: usize) -> Vec<M::State> {
        debug_assert!(!self.operations[operation].is_returned());
        self.model
            .step_unobserved(&self.state, &self.operations[operation].input)
            .into_iter()
            .filter(|successor| *successor != self.state)
            .collect()
    }

    /// Undoes the most recent placement, which is now fully explored,
    /// remembering the deepest point reached so far for the explanation.
    /// Returns the operation taken off and which alternative it had taken;
    /// `None` when nothing is left to undo: no linearization exists.
    fn backtrack(&mut self) -> Option<(usize, usize)> {
        let is_deepest = self
            .deepest
            .as_ref()
            .is_none_or(|deepest| self.stack.len() > deepest.longest_prefix.len());
        if is_deepest {
            self.deepest = Some(self.snapshot_counterexample());
        }
        let frame = self.stack.pop()?;
        self.events.unlift(frame.operation);
        let slot = self.slot[frame.operation];
        self.placed_set(frame.operation).remove(slot);
        if self.kind_of(frame.operation) == OutcomeKind::Returned {
            self.returned_pending += 1;
        }
        self.state = frame.state_before;
        Some((frame.operation, frame.alternative))
    }

    /// Whether `operation` belongs in an explanation of what could not come
    /// next: every returned operation does; an unknown-outcome one only if
    /// taking effect now would change the state, since otherwise leaving it
    /// out is always at least as good.
    fn may_matter_next(&self, operation: usize) -> bool {
        self.operations[operation].is_returned()
            || !self.unobserved_successors(operation).is_empty()
    }

    fn snapshot_counterexample(&self) -> Counterexample<M::State> {
        Counterexample {
            longest_prefix: self.stack.iter().map(|frame| frame.operation).collect(),
            state_after_prefix: self.state.clone(),
            next_candidates: self
                .events
                .minimal_operations()
                .into_iter()
                .filter(|&operation| self.may_matter_next(operation))
                .collect(),
        }
    }
}
