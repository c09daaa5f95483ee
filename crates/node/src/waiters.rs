//! The clients waiting on the node: proposals waiting for their entry to be
//! applied, and read barriers waiting for a confirmed read index to be
//! applied. Owns their deadlines (in ticks) and decides when a wait has become
//! hopeless. It never talks to the core or the disk; the node feeds it what
//! happened. Its maps are ordered, so waiters are answered in the same order
//! on every run of the same inputs (the simulator replays runs bit for bit).

use std::collections::BTreeMap;

use raft::LogIndex;

use crate::host::{Reply, RequestError};

/// Who waits for a proposal: a command's client wants the state machine's
/// answer, a configuration change's only that it was applied.
enum Waiting<C, M> {
    Command(C),
    Membership(M),
}

struct ProposalWaiter<C, M> {
    reply: Waiting<C, M>,
    deadline_tick: u64,
    /// Where the entry sits in this member's log, once it has been seen there.
    index: Option<LogIndex>,
    /// The core accepted it (appended, or forwarded to the leader).
    proposed: bool,
}

/// Proposals of this member (this boot) that are not answered yet, by
/// request number. `C` answers commands, `M` configuration changes.
pub(crate) struct Proposals<C, M> {
    waiting: BTreeMap<u64, ProposalWaiter<C, M>>,
    /// Request number of each waiter whose entry is in the log, by log index.
    by_index: BTreeMap<LogIndex, u64>,
}

impl<C, M> std::fmt::Debug for Proposals<C, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proposals")
            .field("waiting", &self.waiting.len())
            .field("in_log", &self.by_index.len())
            .finish()
    }
}

impl<C, M> Default for Proposals<C, M> {
    fn default() -> Self {
        Self {
            waiting: BTreeMap::new(),
            by_index: BTreeMap::new(),
        }
    }
}

impl<C, M> Proposals<C, M>
where
    M: Reply<Result<(), RequestError>>,
{
    pub(crate) fn insert(&mut self, request: u64, reply: C, deadline_tick: u64) {
        self.insert_waiter(request, Waiting::Command(reply), deadline_tick);
    }

    pub(crate) fn insert_membership(&mut self, request: u64, reply: M, deadline_tick: u64) {
        self.insert_waiter(request, Waiting::Membership(reply), deadline_tick);
    }

    fn insert_waiter(&mut self, request: u64, reply: Waiting<C, M>, deadline_tick: u64) {
        let previous = self.waiting.insert(
            request,
            ProposalWaiter {
                reply,
                deadline_tick,
                index: None,
                proposed: false,
            },
        );
        debug_assert!(previous.is_none(), "request number {request} reused");
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    pub(crate) fn contains(&self, request: u64) -> bool {
        self.waiting.contains_key(&request)
    }

    /// The core accepted `request` for replication.
    pub(crate) fn mark_proposed(&mut self, request: u64) {
        if let Some(waiter) = self.waiting.get_mut(&request) {
            waiter.proposed = true;
        }
    }

    /// The leader changed: proposals handed to the core that never reached
    /// this member's log were forwarded to a leader that may be gone with them.
    pub(crate) fn fail_unlogged<A>(&mut self)
    where
        C: Reply<Result<A, RequestError>>,
    {
        let lost: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, waiter)| waiter.proposed && waiter.index.is_none())
            .map(|(&request, _)| request)
            .collect();
        for request in lost {
            self.fail(request, RequestError::LeaderChanged);
        }
    }

    /// The log is about to hold `appended` (our request number, if any, for each
    /// index from `first_index` on), replacing every entry from `first_index`.
    /// A waiter whose entry is replaced by another can never be applied.
    pub(crate) fn on_append<A>(&mut self, first_index: LogIndex, appended: &[Option<u64>])
    where
        C: Reply<Result<A, RequestError>>,
    {
        let replaced: Vec<(LogIndex, u64)> = self
            .by_index
            .range(first_index..)
            .map(|(&index, &request)| (index, request))
            .collect();
        for (index, request) in replaced {
            self.by_index.remove(&index);
            let offset = (index - first_index) as usize;
            let still_there = appended.get(offset) == Some(&Some(request));
            if !still_there {
                self.fail(request, RequestError::LeaderChanged);
            }
        }
        for (offset, request) in appended.iter().enumerate() {
            let Some(request) = request else { continue };
            if let Some(waiter) = self.waiting.get_mut(request) {
                let index = first_index + offset as u64;
                waiter.index = Some(index);
                self.by_index.insert(index, *request);
            }
        }
    }

    fn take(&mut self, request: u64) -> Option<Waiting<C, M>> {
        let waiter = self.waiting.remove(&request)?;
        if let Some(index) = waiter.index {
            self.by_index.remove(&index);
        }
        Some(waiter.reply)
    }

    /// Answers the command waiting for `request` with the state machine's
    /// answer, if it still waits.
    pub(crate) fn answer<A>(&mut self, request: u64, answer: A)
    where
        C: Reply<Result<A, RequestError>>,
    {
        match self.take(request) {
            Some(Waiting::Command(reply)) => reply.send(Ok(answer)),
            Some(Waiting::Membership(reply)) => reply.send(Err(RequestError::Storage(format!(
                "request {request} was a configuration change but its entry holds a command"
            )))),
            None => {}
        }
    }

    /// The configuration change of `request` was applied on this member.
    pub(crate) fn answer_membership<A>(&mut self, request: u64)
    where
        C: Reply<Result<A, RequestError>>,
    {
        match self.take(request) {
            Some(Waiting::Membership(reply)) => reply.send(Ok(())),
            Some(Waiting::Command(reply)) => reply.send(Err(RequestError::Storage(format!(
                "request {request} was a command but its entry is a configuration change"
            )))),
            None => {}
        }
    }

    /// Answers the waiter for `request`, if it still waits, with `error`.
    pub(crate) fn fail<A>(&mut self, request: u64, error: RequestError)
    where
        C: Reply<Result<A, RequestError>>,
    {
        match self.take(request) {
            Some(Waiting::Command(reply)) => reply.send(Err(error)),
            Some(Waiting::Membership(reply)) => reply.send(Err(error)),
            None => {}
        }
    }

    /// A snapshot replaced the log through `index`: entries there were applied
    /// inside the snapshot, so their outcome is unknown to this member.
    pub(crate) fn fail_through<A>(&mut self, index: LogIndex)
    where
        C: Reply<Result<A, RequestError>>,
    {
        let covered: Vec<u64> = self
            .by_index
            .range(..=index)
            .map(|(_, &request)| request)
            .collect();
        for request in covered {
            self.fail(request, RequestError::Timeout);
        }
    }

    /// Answers every waiter past its deadline with a timeout, and forgets
    /// those whose client has gone.
    pub(crate) fn expire<A>(&mut self, now_tick: u64)
    where
        C: Reply<Result<A, RequestError>>,
    {
        let expired: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, waiter)| {
                let closed = match &waiter.reply {
                    Waiting::Command(reply) => reply.is_closed(),
                    Waiting::Membership(reply) => reply.is_closed(),
                };
                waiter.deadline_tick <= now_tick || closed
            })
            .map(|(&request, _)| request)
            .collect();
        for request in expired {
            self.fail(request, RequestError::Timeout);
        }
    }

    pub(crate) fn fail_all<A>(&mut self, error: &RequestError)
    where
        C: Reply<Result<A, RequestError>>,
    {
        let all: Vec<u64> = self.waiting.keys().copied().collect();
        for request in all {
            self.fail(request, error.clone());
        }
        debug_assert!(self.by_index.is_empty());
    }
}

struct BarrierWaiter<R> {
    reply: R,
    deadline_tick: u64,
}

/// A read index request in flight, and when it was sent.
struct IssuedRead<R> {
    waiters: Vec<BarrierWaiter<R>>,
    issued_tick: u64,
}

/// Read barriers: queued (not yet asked of the core), issued (one read index
/// context for all that were queued together), and confirmed (waiting for the
/// state machine to reach the read index).
pub(crate) struct Reads<R> {
    queued: Vec<BarrierWaiter<R>>,
    issued: BTreeMap<Vec<u8>, IssuedRead<R>>,
    confirmed: Vec<(LogIndex, Vec<BarrierWaiter<R>>)>,
}

impl<R> std::fmt::Debug for Reads<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reads")
            .field("queued", &self.queued.len())
            .field("issued", &self.issued.len())
            .field("confirmed", &self.confirmed.len())
            .finish()
    }
}

impl<R> Default for Reads<R> {
    fn default() -> Self {
        Self {
            queued: Vec::new(),
            issued: BTreeMap::new(),
            confirmed: Vec::new(),
        }
    }
}

impl<R: Reply<Result<(), RequestError>>> Reads<R> {
    pub(crate) fn queue(&mut self, reply: R, deadline_tick: u64) {
        self.queued.push(BarrierWaiter {
            reply,
            deadline_tick,
        });
    }

    pub(crate) fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queued.len()
            + self
                .issued
                .values()
                .map(|read| read.waiters.len())
                .sum::<usize>()
            + self.confirmed.iter().map(|(_, w)| w.len()).sum::<usize>()
    }

    /// Every barrier queued so far waits on the read index asked with `context`.
    pub(crate) fn issue(&mut self, context: Vec<u8>, tick: u64) {
        debug_assert!(!self.queued.is_empty());
        let waiters = std::mem::take(&mut self.queued);
        self.issued.insert(
            context,
            IssuedRead {
                waiters,
                issued_tick: tick,
            },
        );
    }

    /// The [`crate::Mutation::ReadJoinsEarlierReadIndex`] bug: the queued
    /// barriers join the read index request issued last, if one is in
    /// flight; returns whether they did.
    #[cfg(feature = "mutations")]
    pub(crate) fn join_latest_issued(&mut self) -> bool {
        let Some(latest) = self.issued.values_mut().max_by_key(|read| read.issued_tick) else {
            return false;
        };
        latest.waiters.append(&mut self.queued);
        true
    }

    /// The core confirmed the read asked with `context` at `index`.
    pub(crate) fn confirm(&mut self, context: &[u8], index: LogIndex) {
        if let Some(read) = self.issued.remove(context) {
            self.confirmed.push((index, read.waiters));
        }
    }

    /// Answers every barrier whose read index is applied.
    pub(crate) fn release(&mut self, applied: LogIndex) {
        self.confirmed.retain_mut(|(index, waiters)| {
            if *index > applied {
                return true;
            }
            for waiter in waiters.drain(..) {
                waiter.reply.send(Ok(()));
            }
            false
        });
    }

    /// Reads asked before `tick_limit` and never confirmed are asked again
    /// (their request or its answer may have been lost).
    pub(crate) fn requeue_issued_before(&mut self, tick_limit: u64) {
        let stale: Vec<Vec<u8>> = self
            .issued
            .iter()
            .filter(|(_, read)| read.issued_tick < tick_limit)
            .map(|(context, _)| context.clone())
            .collect();
        for context in stale {
            if let Some(read) = self.issued.remove(&context) {
                self.queued.extend(read.waiters);
            }
        }
    }

    pub(crate) fn expire(&mut self, now_tick: u64) {
        let expire = |waiters: &mut Vec<BarrierWaiter<R>>| {
            let (expired, kept): (Vec<_>, Vec<_>) = waiters
                .drain(..)
                .partition(|waiter| waiter.deadline_tick <= now_tick || waiter.reply.is_closed());
            *waiters = kept;
            for waiter in expired {
                waiter.reply.send(Err(RequestError::Timeout));
            }
        };
        expire(&mut self.queued);
        for read in self.issued.values_mut() {
            expire(&mut read.waiters);
        }
        self.issued.retain(|_, read| !read.waiters.is_empty());
        for (_, waiters) in &mut self.confirmed {
            expire(waiters);
        }
        self.confirmed.retain(|(_, waiters)| !waiters.is_empty());
    }

    pub(crate) fn fail_all(&mut self, error: &RequestError) {
        let issued = std::mem::take(&mut self.issued)
            .into_values()
            .flat_map(|read| read.waiters);
        let confirmed = self.confirmed.drain(..).flat_map(|(_, waiters)| waiters);
        for waiter in self.queued.drain(..).chain(issued).chain(confirmed) {
            waiter.reply.send(Err(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Slot;

    type Answer = Result<u64, RequestError>;
    type TestProposals = Proposals<Slot<Answer>, Slot<Result<(), RequestError>>>;

    const LATER: u64 = 600;

    #[test]
    fn replaced_entry_fails_with_leader_changed_and_kept_one_waits() {
        let mut proposals = TestProposals::default();
        let (kept, lost) = (Slot::default(), Slot::default());
        proposals.insert(1, kept.clone(), LATER);
        proposals.insert(2, lost.clone(), LATER);
        proposals.on_append(5, &[Some(1), Some(2)]);
        proposals.on_append(6, &[None]);
        assert!(matches!(
            lost.take(),
            Some(Err(RequestError::LeaderChanged))
        ));
        assert!(kept.take().is_none(), "entry 5 is still ours");
        proposals.answer(1, 5_u64);
        assert!(matches!(kept.take(), Some(Ok(5))));
        assert_eq!(proposals.len(), 0);
    }

    #[test]
    fn leader_change_fails_forwarded_proposals_not_in_the_log() {
        let mut proposals = TestProposals::default();
        let (forwarded, logged, queued) = (Slot::default(), Slot::default(), Slot::default());
        proposals.insert(1, forwarded.clone(), LATER);
        proposals.insert(2, logged.clone(), LATER);
        proposals.insert(3, queued.clone(), LATER);
        proposals.mark_proposed(1);
        proposals.mark_proposed(2);
        proposals.on_append(4, &[Some(2)]);
        proposals.fail_unlogged();
        assert!(matches!(
            forwarded.take(),
            Some(Err(RequestError::LeaderChanged))
        ));
        assert!(logged.take().is_none(), "its entry may still commit");
        assert!(queued.take().is_none(), "never left this member");
    }

    #[test]
    fn reappended_same_request_keeps_waiting() {
        let mut proposals = TestProposals::default();
        let slot = Slot::default();
        proposals.insert(9, slot.clone(), LATER);
        proposals.on_append(3, &[Some(9)]);
        proposals.on_append(3, &[Some(9), None]);
        assert!(slot.take().is_none());
        assert!(proposals.contains(9));
    }

    #[test]
    fn deadlines_and_snapshots_answer_timeout() {
        let mut proposals = TestProposals::default();
        let (late, covered, waiting) = (Slot::default(), Slot::default(), Slot::default());
        proposals.insert(1, late.clone(), 10);
        proposals.insert(2, covered.clone(), LATER);
        proposals.insert(3, waiting.clone(), LATER);
        proposals.on_append(10, &[Some(2), Some(3)]);
        proposals.expire(9);
        assert!(late.take().is_none(), "not due before tick 10");
        proposals.expire(10);
        assert!(matches!(late.take(), Some(Err(RequestError::Timeout))));
        proposals.fail_through(10);
        assert!(matches!(covered.take(), Some(Err(RequestError::Timeout))));
        assert!(waiting.take().is_none());
        proposals.fail_all(&RequestError::Stopped);
        assert!(matches!(waiting.take(), Some(Err(RequestError::Stopped))));
    }

    #[test]
    fn a_closed_client_is_forgotten_at_the_next_expiry() {
        let mut proposals = TestProposals::default();
        let gone = Slot::default();
        proposals.insert(1, gone.clone(), LATER);
        gone.close();
        proposals.expire(0);
        assert_eq!(proposals.len(), 0);
    }

    #[test]
    fn barrier_is_released_only_once_its_index_is_applied() {
        let mut reads = Reads::default();
        let slot: Slot<Result<(), RequestError>> = Slot::default();
        reads.queue(slot.clone(), LATER);
        reads.issue(b"ctx".to_vec(), 1);
        reads.confirm(b"other", 4);
        reads.confirm(b"ctx", 7);
        reads.release(6);
        assert!(slot.take().is_none());
        reads.release(7);
        assert!(matches!(slot.take(), Some(Ok(()))));
        assert_eq!(reads.len(), 0);
    }

    #[test]
    fn stale_issued_reads_are_queued_again() {
        let mut reads = Reads::default();
        reads.queue(Slot::<Result<(), RequestError>>::default(), LATER);
        reads.issue(b"a".to_vec(), 3);
        reads.requeue_issued_before(3);
        assert!(!reads.has_queued());
        reads.requeue_issued_before(4);
        assert!(reads.has_queued());
        reads.confirm(b"a", 1);
        assert_eq!(reads.len(), 1, "a requeued read waits for a new context");
    }
}
