//! The Wing & Gong search with Lowe's memoization, over the operations of
//! one partition.
//!
//! Owns: the event list, the backtracking stack and the memo of explored
//! configurations. Must never: partition histories, validate them or format
//! explanations; it takes well-formed operations and returns indices.

use std::collections::HashSet;

use super::history::{Operation, Outcome};
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

/// Marks the end of the event list.
const END: usize = usize::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum EventKind {
    // Declared first so that at equal times calls sort before returns: two
    // operations that touch at one instant count as concurrent, the reading
    // that never reports a violation the clock cannot prove.
    Call,
    Return,
}

#[derive(Clone, Copy, Debug)]
struct Event {
    operation: usize,
    kind: EventKind,
}

/// Call and return events in time order as a doubly linked list, so that an
/// operation can be lifted out when linearized and put back, in last-out
/// first-in order, when the search backtracks.
#[derive(Debug)]
struct EventList {
    events: Vec<Event>,
    /// `next[head]` is the first event; `head == events.len()`.
    next: Vec<usize>,
    prev: Vec<usize>,
    call_event: Vec<usize>,
    return_event: Vec<Option<usize>>,
}

impl EventList {
    fn new<I, O>(operations: &[&Operation<I, O>]) -> EventList {
        let mut timed: Vec<(u64, EventKind, usize)> = Vec::with_capacity(operations.len() * 2);
        for (index, operation) in operations.iter().enumerate() {
            timed.push((operation.call_time, EventKind::Call, index));
            if let Some(return_time) = operation.return_time() {
                debug_assert!(return_time > operation.call_time);
                timed.push((return_time, EventKind::Return, index));
            }
        }
        timed.sort_unstable();
        let events: Vec<Event> = timed
            .iter()
            .map(|&(_, kind, operation)| Event { operation, kind })
            .collect();
        let head = events.len();
        let mut call_event = vec![END; operations.len()];
        let mut return_event = vec![None; operations.len()];
        for (position, event) in events.iter().enumerate() {
            match event.kind {
                EventKind::Call => call_event[event.operation] = position,
                EventKind::Return => return_event[event.operation] = Some(position),
            }
        }
        let next: Vec<usize> = (0..=head)
            .map(|slot| match slot {
                _ if slot == head => {
                    if head == 0 {
                        END
                    } else {
                        0
                    }
                }
                _ if slot + 1 == head => END,
                _ => slot + 1,
            })
            .collect();
        let prev: Vec<usize> = (0..=head)
            .map(|slot| if slot == 0 { head } else { slot - 1 })
            .collect();
        debug_assert!(call_event.iter().all(|&event| event != END));
        EventList {
            events,
            next,
            prev,
            call_event,
            return_event,
        }
    }

    fn head(&self) -> usize {
        self.events.len()
    }

    fn first(&self) -> usize {
        self.next[self.head()]
    }

    fn unlink(&mut self, event: usize) {
        let (before, after) = (self.prev[event], self.next[event]);
        self.next[before] = after;
        if after != END {
            self.prev[after] = before;
        }
    }

    fn relink(&mut self, event: usize) {
        let (before, after) = (self.prev[event], self.next[event]);
        self.next[before] = event;
        if after != END {
            self.prev[after] = event;
        }
    }

    fn lift(&mut self, operation: usize) {
        self.unlink(self.call_event[operation]);
        if let Some(event) = self.return_event[operation] {
            self.unlink(event);
        }
    }

    fn unlift(&mut self, operation: usize) {
        if let Some(event) = self.return_event[operation] {
            self.relink(event);
        }
        self.relink(self.call_event[operation]);
    }

    /// Operations whose call comes before the first pending return: the
    /// only ones that may be linearized next.
    fn minimal_operations(&self) -> Vec<usize> {
        let mut operations = Vec::new();
        let mut cursor = self.first();
        while cursor != END && self.events[cursor].kind == EventKind::Call {
            operations.push(self.events[cursor].operation);
            cursor = self.next[cursor];
        }
        operations
    }
}

/// The set of linearized operations, one bit each.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OperationSet {
    words: Vec<u64>,
}

impl OperationSet {
    fn with_capacity(operations: usize) -> OperationSet {
        OperationSet {
            words: vec![0; operations.div_ceil(64)],
        }
    }

    fn insert(&mut self, operation: usize) {
        debug_assert!(!self.contains(operation));
        self.words[operation / 64] |= 1 << (operation % 64);
    }

    fn remove(&mut self, operation: usize) {
        debug_assert!(self.contains(operation));
        self.words[operation / 64] &= !(1 << (operation % 64));
    }

    fn contains(&self, operation: usize) -> bool {
        self.words[operation / 64] & (1 << (operation % 64)) != 0
    }

    fn len(&self) -> usize {
        self.words
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }
}

/// What became of an attempt to place an operation next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    Placed,
    /// No successor state is allowed, or each leads to an explored
    /// configuration.
    NotPlaced,
    /// Placing it would explore one configuration more than the bound.
    LimitReached,
}

/// One linearized operation on the backtracking stack.
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
/// Explores at most `states_explored_max` distinct (linearized set, state)
/// configurations before giving up with `LimitReached`.
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
    states_explored_max: u64,
    events: EventList,
    linearized: OperationSet,
    explored: HashSet<(OperationSet, M::State)>,
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
        Search {
            model,
            operations,
            states_explored_max,
            events: EventList::new(operations),
            linearized: OperationSet::with_capacity(operations.len()),
            explored: HashSet::new(),
            stack: Vec::new(),
            state: model.init(),
            returned_pending: operations.iter().filter(|op| op.is_returned()).count(),
            deepest: None,
        }
    }

    /// The main loop: walk the event list; at a call, try to linearize that
    /// operation and restart from the head; at a return, the operation it
    /// closes can no longer be placed, so undo the last choice.
    fn run(mut self) -> SearchOutcome<M::State> {
        let mut cursor = self.events.first();
        let mut alternative_first = 0;
        loop {
            debug_assert_eq!(self.stack.len(), self.linearized.len());
            if self.returned_pending == 0 {
                // Every operation with a seen answer is placed; operations
                // with unknown outcomes still unplaced never took effect.
                return SearchOutcome::Linearizable;
            }
            // While a returned operation is pending its return event is in the
            // list, and the walk reaches it before the end.
            debug_assert!(cursor != END);
            let event = self.events.events[cursor];
            match event.kind {
                EventKind::Call => {
                    match self.try_linearize(event.operation, alternative_first) {
                        Placement::Placed => cursor = self.events.first(),
                        Placement::NotPlaced => cursor = self.events.next[cursor],
                        Placement::LimitReached => {
                            return SearchOutcome::LimitReached {
                                states_explored: self.states_explored_max,
                            }
                        }
                    }
                    alternative_first = 0;
                }
                EventKind::Return => match self.backtrack() {
                    Some((operation, alternative)) => {
                        cursor = self.events.call_event[operation];
                        alternative_first = alternative + 1;
                    }
                    None => {
                        let counterexample = self
                            .deepest
                            .take()
                            .unwrap_or_else(|| self.snapshot_counterexample());
                        return SearchOutcome::NotLinearizable(counterexample);
                    }
                },
            }
        }
    }

    /// Places `operation` next if the model allows one of its successor
    /// states (from `alternative_first` on) that leads to an unexplored
    /// configuration, unless that configuration would exceed the bound.
    fn try_linearize(&mut self, operation: usize, alternative_first: usize) -> Placement {
        let successors = self.successors(operation);
        for (alternative, successor) in successors.into_iter().enumerate().skip(alternative_first) {
            self.linearized.insert(operation);
            if self
                .explored
                .insert((self.linearized.clone(), successor.clone()))
            {
                if self.explored.len() as u64 > self.states_explored_max {
                    return Placement::LimitReached;
                }
                let state_before = std::mem::replace(&mut self.state, successor);
                self.stack.push(Frame {
                    operation,
                    state_before,
                    alternative,
                });
                self.events.lift(operation);
                if self.operations[operation].is_returned() {
                    self.returned_pending -= 1;
                }
                return Placement::Placed;
            }
            self.linearized.remove(operation);
        }
        Placement::NotPlaced
    }

    /// The states `operation` may lead to from the current state, in a
    /// fixed order so that backtracking can resume by position.
    fn successors(&self, operation: usize) -> Vec<M::State> {
        let operation = self.operations[operation];
        match &operation.outcome {
            Outcome::Returned { output, .. } => self
                .model
                .step(&self.state, &operation.input, output)
                .into_iter()
                .collect(),
            // An unobserved step that leaves the state as it was is never
            // worth taking: skipping the operation (it never took effect)
            // reaches the same state with fewer obligations.
            Outcome::Unknown => self
                .model
                .step_unobserved(&self.state, &operation.input)
                .into_iter()
                .filter(|successor| *successor != self.state)
                .collect(),
        }
    }

    /// Undoes the most recent placement, remembering the deepest point
    /// reached so far for the explanation. `None` when nothing is left to
    /// undo, which means no linearization exists.
    /// Returns the operation taken off and which alternative it had taken.
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
        self.linearized.remove(frame.operation);
        if self.operations[frame.operation].is_returned() {
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
        self.operations[operation].is_returned() || !self.successors(operation).is_empty()
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
