//! The call and return events of one partition in time order, as lists the
//! search can lift operations out of and put back in.
//!
//! Owns: `EventList`. Must never: consult the model or decide which
//! operation to place; it only answers what real time allows next.
//!
//! Operations with an unknown outcome have a call and no return, and stay
//! candidates from their call to the end of the search. They live in a
//! chain of their own so that the walk over returned operations, done after
//! every placement, never steps over them.

use super::history::Operation;

/// Marks the end of a chain.
pub(super) const END: usize = usize::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum EventKind {
    // Declared first so that at equal times calls sort before returns: two
    // operations that touch at one instant count as concurrent, the reading
    // that never reports a violation the clock cannot prove.
    Call,
    Return,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Event {
    pub operation: usize,
    pub kind: EventKind,
    pub time: u64,
}

/// A doubly linked list over some of the event indices, in index order,
/// from which events are unlinked and relinked in last-out first-in order.
#[derive(Debug)]
struct Chain {
    /// Indexed by event; the slot at `head` is the sentinel before the first.
    next: Vec<usize>,
    prev: Vec<usize>,
    head: usize,
}

impl Chain {
    fn new(event_count: usize, members: &[usize]) -> Chain {
        debug_assert!(members.windows(2).all(|pair| pair[0] < pair[1]));
        let head = event_count;
        let mut next = vec![END; event_count + 1];
        let mut prev = vec![END; event_count + 1];
        let mut before = head;
        for &member in members {
            next[before] = member;
            prev[member] = before;
            before = member;
        }
        Chain { next, prev, head }
    }

    fn first(&self) -> usize {
        self.next[self.head]
    }

    fn unlink(&mut self, event: usize) {
        let (before, after) = (self.prev[event], self.next[event]);
        debug_assert_eq!(self.next[before], event, "event {event} is not linked");
        self.next[before] = after;
        if after != END {
            self.prev[after] = before;
        }
    }

    fn relink(&mut self, event: usize) {
        let (before, after) = (self.prev[event], self.next[event]);
        debug_assert_eq!(
            self.next[before], after,
            "event {event} relinked out of last-out first-in order"
        );
        self.next[before] = event;
        if after != END {
            self.prev[after] = event;
        }
    }
}

/// All events in time order, threaded into two chains: the calls and
/// returns of returned operations, and the calls of unknown-outcome ones.
#[derive(Debug)]
pub(super) struct EventList {
    events: Vec<Event>,
    returned: Chain,
    unknown: Chain,
    call_event: Vec<usize>,
    return_event: Vec<Option<usize>>,
}

impl EventList {
    pub fn new<I, O>(operations: &[&Operation<I, O>]) -> EventList {
        let mut events: Vec<Event> = Vec::with_capacity(operations.len() * 2);
        for (operation, recorded) in operations.iter().enumerate() {
            events.push(Event {
                operation,
                kind: EventKind::Call,
                time: recorded.call_time,
            });
            if let Some(return_time) = recorded.return_time() {
                debug_assert!(return_time > recorded.call_time);
                events.push(Event {
                    operation,
                    kind: EventKind::Return,
                    time: return_time,
                });
            }
        }
        events.sort_unstable_by_key(|event| (event.time, event.kind, event.operation));
        let mut call_event = vec![END; operations.len()];
        let mut return_event = vec![None; operations.len()];
        let mut returned_members = Vec::new();
        let mut unknown_members = Vec::new();
        for (position, event) in events.iter().enumerate() {
            match event.kind {
                EventKind::Call => call_event[event.operation] = position,
                EventKind::Return => return_event[event.operation] = Some(position),
            }
            if operations[event.operation].is_returned() {
                returned_members.push(position);
            } else {
                unknown_members.push(position);
            }
        }
        debug_assert!(call_event.iter().all(|&event| event != END));
        EventList {
            returned: Chain::new(events.len(), &returned_members),
            unknown: Chain::new(events.len(), &unknown_members),
            events,
            call_event,
            return_event,
        }
    }

    /// The event at `cursor`, which must not be `END`.
    pub fn event(&self, cursor: usize) -> Event {
        self.events[cursor]
    }

    /// The first event of a returned operation still in the list, or `END`.
    pub fn first_returned(&self) -> usize {
        self.returned.first()
    }

    /// The next event of a returned operation after `cursor`, or `END`.
    pub fn next_returned(&self, cursor: usize) -> usize {
        self.returned.next[cursor]
    }

    /// The first call of an unknown-outcome operation still in the list.
    pub fn first_unknown(&self) -> usize {
        self.unknown.first()
    }

    /// The next call of an unknown-outcome operation after `cursor`.
    pub fn next_unknown(&self, cursor: usize) -> usize {
        self.unknown.next[cursor]
    }

    /// Where `operation`'s call sits; the walk resumes there after
    /// backtracking over it.
    pub fn call_event(&self, operation: usize) -> usize {
        self.call_event[operation]
    }

    /// The time of the first pending return: an operation may come next
    /// only if it was called at or before it. `None` when no returned
    /// operation is pending.
    pub fn horizon(&self) -> Option<u64> {
        let mut cursor = self.returned.first();
        while cursor != END {
            let event = self.events[cursor];
            if event.kind == EventKind::Return {
                return Some(event.time);
            }
            cursor = self.returned.next[cursor];
        }
        None
    }

    /// Takes `operation`'s events out of the list once it is placed.
    pub fn lift(&mut self, operation: usize) {
        match self.return_event[operation] {
            Some(return_event) => {
                self.returned.unlink(self.call_event[operation]);
                self.returned.unlink(return_event);
            }
            None => self.unknown.unlink(self.call_event[operation]),
        }
    }

    /// Puts back the most recently lifted operation's events.
    pub fn unlift(&mut self, operation: usize) {
        match self.return_event[operation] {
            Some(return_event) => {
                self.returned.relink(return_event);
                self.returned.relink(self.call_event[operation]);
            }
            None => self.unknown.relink(self.call_event[operation]),
        }
    }

    /// Operations called at or before the first pending return: the only
    /// ones that may be linearized next. Returned ones first, each kind in
    /// call order.
    pub fn minimal_operations(&self) -> Vec<usize> {
        let Some(horizon) = self.horizon() else {
            return Vec::new();
        };
        let mut operations = Vec::new();
        let mut cursor = self.returned.first();
        while cursor != END && self.events[cursor].kind == EventKind::Call {
            operations.push(self.events[cursor].operation);
            cursor = self.returned.next[cursor];
        }
        let mut cursor = self.unknown.first();
        while cursor != END && self.events[cursor].time <= horizon {
            operations.push(self.events[cursor].operation);
            cursor = self.unknown.next[cursor];
        }
        operations
    }
}

#[cfg(test)]
mod tests {
    use super::super::history::Outcome;
    use super::*;

    fn operation(call_time: u64, return_time: Option<u64>) -> Operation<(), ()> {
        Operation {
            client_id: 0,
            input: (),
            call_time,
            outcome: match return_time {
                Some(return_time) => Outcome::Returned {
                    output: (),
                    return_time,
                },
                None => Outcome::Unknown,
            },
        }
    }

    /// The returned chain, then the unknown one.
    fn walk(list: &EventList) -> Vec<(usize, EventKind)> {
        let mut seen = Vec::new();
        let mut cursor = list.first_returned();
        while cursor != END {
            let event = list.event(cursor);
            seen.push((event.operation, event.kind));
            cursor = list.next_returned(cursor);
        }
        let mut cursor = list.first_unknown();
        while cursor != END {
            let event = list.event(cursor);
            seen.push((event.operation, event.kind));
            cursor = list.next_unknown(cursor);
        }
        seen
    }

    fn sample() -> Vec<Operation<(), ()>> {
        vec![
            operation(10, Some(20)),
            operation(20, Some(30)),
            operation(5, None),
            operation(25, None),
        ]
    }

    #[test]
    fn events_are_in_time_order_with_calls_before_returns_at_a_tie() {
        let operations = sample();
        let references: Vec<&Operation<(), ()>> = operations.iter().collect();
        let list = EventList::new(&references);
        use EventKind::{Call, Return};
        assert_eq!(
            walk(&list),
            vec![
                (0, Call),
                (1, Call),
                (0, Return),
                (1, Return),
                (2, Call),
                (3, Call)
            ]
        );
        assert_eq!(list.horizon(), Some(20));
        // The unknown call at 25 is after the first pending return.
        assert_eq!(list.minimal_operations(), vec![0, 1, 2]);
    }

    #[test]
    fn lifting_and_putting_back_restores_the_list() {
        let operations = sample();
        let references: Vec<&Operation<(), ()>> = operations.iter().collect();
        let mut list = EventList::new(&references);
        let original = walk(&list);
        list.lift(0);
        assert_eq!(list.horizon(), Some(30));
        assert_eq!(list.minimal_operations(), vec![1, 2, 3]);
        list.lift(2);
        assert_eq!(list.minimal_operations(), vec![1, 3]);
        list.lift(1);
        assert_eq!(list.first_returned(), END);
        assert_eq!(list.horizon(), None);
        list.unlift(1);
        list.unlift(2);
        list.unlift(0);
        assert_eq!(walk(&list), original);
    }

    #[test]
    fn empty_list_has_no_events() {
        let list = EventList::new::<(), ()>(&[]);
        assert_eq!(list.first_returned(), END);
        assert_eq!(list.first_unknown(), END);
        assert!(list.minimal_operations().is_empty());
    }
}
