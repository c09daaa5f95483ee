//! The call and return events of one partition in time order, as a list
//! the search can lift operations out of and put back in.
//!
//! Owns: `EventList`. Must never: consult the model or decide which
//! operation to place; it only answers what real time allows next.

use super::history::Operation;

/// Marks the end of the event list.
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
}

/// Call and return events in time order as a doubly linked list, so that an
/// operation can be lifted out when linearized and put back, in last-out
/// first-in order, when the search backtracks.
#[derive(Debug)]
pub(super) struct EventList {
    events: Vec<Event>,
    /// `next[head]` is the first event; `head == events.len()`.
    next: Vec<usize>,
    prev: Vec<usize>,
    call_event: Vec<usize>,
    return_event: Vec<Option<usize>>,
}

impl EventList {
    pub fn new<I, O>(operations: &[&Operation<I, O>]) -> EventList {
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
        let mut next: Vec<usize> = (0..head).map(|slot| slot + 1).collect();
        if let Some(last) = next.last_mut() {
            *last = END;
        }
        next.push(if head == 0 { END } else { 0 });
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

    /// The event at `cursor`, which must not be `END`.
    pub fn event(&self, cursor: usize) -> Event {
        self.events[cursor]
    }

    /// The event after `cursor` that is still in the list, or `END`.
    pub fn next(&self, cursor: usize) -> usize {
        self.next[cursor]
    }

    /// Where `operation`'s call sits; the walk resumes there after
    /// backtracking over it.
    pub fn call_event(&self, operation: usize) -> usize {
        self.call_event[operation]
    }

    /// The first event still in the list, or `END`.
    pub fn first(&self) -> usize {
        self.next[self.head()]
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

    /// Takes `operation`'s events out of the list once it is placed.
    pub fn lift(&mut self, operation: usize) {
        self.unlink(self.call_event[operation]);
        if let Some(event) = self.return_event[operation] {
            self.unlink(event);
        }
    }

    /// Puts back the most recently lifted operation's events.
    pub fn unlift(&mut self, operation: usize) {
        if let Some(event) = self.return_event[operation] {
            self.relink(event);
        }
        self.relink(self.call_event[operation]);
    }

    /// Operations whose call comes before the first pending return: the
    /// only ones that may be linearized next.
    pub fn minimal_operations(&self) -> Vec<usize> {
        let mut operations = Vec::new();
        let mut cursor = self.first();
        while cursor != END && self.events[cursor].kind == EventKind::Call {
            operations.push(self.events[cursor].operation);
            cursor = self.next[cursor];
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

    fn walk(list: &EventList) -> Vec<(usize, EventKind)> {
        let mut seen = Vec::new();
        let mut cursor = list.first();
        while cursor != END {
            let event = list.event(cursor);
            seen.push((event.operation, event.kind));
            cursor = list.next(cursor);
        }
        seen
    }

    fn sample() -> Vec<Operation<(), ()>> {
        vec![
            operation(10, Some(20)),
            operation(20, Some(30)),
            operation(5, None),
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
            vec![(2, Call), (0, Call), (1, Call), (0, Return), (1, Return)]
        );
        assert_eq!(list.minimal_operations(), vec![2, 0, 1]);
    }

    #[test]
    fn lifting_and_putting_back_restores_the_list() {
        let operations = sample();
        let references: Vec<&Operation<(), ()>> = operations.iter().collect();
        let mut list = EventList::new(&references);
        let original = walk(&list);
        list.lift(0);
        assert_eq!(list.minimal_operations(), vec![2, 1]);
        list.lift(2);
        assert_eq!(list.minimal_operations(), vec![1]);
        list.lift(1);
        assert_eq!(list.first(), END);
        list.unlift(1);
        list.unlift(2);
        list.unlift(0);
        assert_eq!(walk(&list), original);
    }

    #[test]
    fn empty_list_has_no_events() {
        let list = EventList::new::<(), ()>(&[]);
        assert_eq!(list.first(), END);
        assert!(list.minimal_operations().is_empty());
    }
}
