//! The clients waiting on the node driver: proposals waiting for their entry
//! to be applied, and read barriers waiting for a confirmed read index to be
//! applied. Owns their deadlines and decides when a wait has become hopeless.
//! It never talks to the core or the disk; the driver feeds it what happened.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use raft::LogIndex;
use tokio::sync::oneshot;

use crate::backend::BackendError;

pub(crate) type ProposalReply = oneshot::Sender<Result<mvcc::Applied, BackendError>>;
/// The answer to a configuration change: it was applied on this member.
pub(crate) type MembershipReply = oneshot::Sender<Result<(), BackendError>>;
pub(crate) type BarrierReply = oneshot::Sender<Result<(), BackendError>>;

/// Who waits for a proposal: a command's client wants the state machine's
/// answer, a configuration change's only that it was applied.
#[derive(Debug)]
enum Reply {
    Command(ProposalReply),
    Membership(MembershipReply),
}

impl Reply {
    fn is_closed(&self) -> bool {
        match self {
            Reply::Command(reply) => reply.is_closed(),
            Reply::Membership(reply) => reply.is_closed(),
        }
    }
}

#[derive(Debug)]
struct ProposalWaiter {
    reply: Reply,
    deadline: Instant,
    /// Where the entry sits in this member's log, once it has been seen there.
    index: Option<LogIndex>,
    /// The core accepted it (appended, or forwarded to the leader).
    proposed: bool,
}

/// Proposals of this member (this boot) that are not answered yet, by request number.
#[derive(Debug, Default)]
pub(crate) struct Proposals {
    waiting: HashMap<u64, ProposalWaiter>,
    /// Request number of each waiter whose entry is in the log, by log index.
    by_index: BTreeMap<LogIndex, u64>,
}

impl Proposals {
    pub(crate) fn insert(&mut self, request: u64, reply: ProposalReply, deadline: Instant) {
        self.insert_waiter(request, Reply::Command(reply), deadline);
    }

    pub(crate) fn insert_membership(
        &mut self,
        request: u64,
        reply: MembershipReply,
        deadline: Instant,
    ) {
        self.insert_waiter(request, Reply::Membership(reply), deadline);
    }

    fn insert_waiter(&mut self, request: u64, reply: Reply, deadline: Instant) {
        let previous = self.waiting.insert(
            request,
            ProposalWaiter {
                reply,
                deadline,
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
    pub(crate) fn fail_unlogged(&mut self) {
        let lost: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, waiter)| waiter.proposed && waiter.index.is_none())
            .map(|(&request, _)| request)
            .collect();
        for request in lost {
            self.finish(request, Err(BackendError::LeaderChanged));
        }
    }

    /// The log is about to hold `appended` (our request number, if any, for each
    /// index from `first_index` on), replacing every entry from `first_index`.
    /// A waiter whose entry is replaced by another can never be applied.
    pub(crate) fn on_append(&mut self, first_index: LogIndex, appended: &[Option<u64>]) {
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
                self.finish(request, Err(BackendError::LeaderChanged));
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

    /// Answers the waiter for `request`, if it still waits.
    pub(crate) fn finish(&mut self, request: u64, result: Result<mvcc::Applied, BackendError>) {
        if let Some(waiter) = self.waiting.remove(&request) {
            if let Some(index) = waiter.index {
                self.by_index.remove(&index);
            }
            // The client may have gone away; nothing to do then.
            match waiter.reply {
                Reply::Command(reply) => {
                    let _ = reply.send(result);
                }
                Reply::Membership(reply) => {
                    let _ = reply.send(result.map(|_| ()));
                }
            }
        }
    }

    /// The configuration change of `request` was applied on this member.
    pub(crate) fn finish_membership(&mut self, request: u64) {
        let Some(waiter) = self.waiting.remove(&request) else {
            return;
        };
        if let Some(index) = waiter.index {
            self.by_index.remove(&index);
        }
        match waiter.reply {
            Reply::Membership(reply) => {
                let _ = reply.send(Ok(()));
            }
            Reply::Command(reply) => {
                let _ = reply.send(Err(BackendError::Storage(format!(
                    "request {request} was a command but its entry is a configuration change"
                ))));
            }
        }
    }

    /// A snapshot replaced the log through `index`: entries there were applied
    /// inside the snapshot, so their outcome is unknown to this member.
    pub(crate) fn fail_through(&mut self, index: LogIndex) {
        let covered: Vec<u64> = self
            .by_index
            .range(..=index)
            .map(|(_, &request)| request)
            .collect();
        for request in covered {
            self.finish(request, Err(BackendError::Timeout));
        }
    }

    /// Answers every waiter past its deadline with a timeout, and forgets
    /// those whose client has gone.
    pub(crate) fn expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .waiting
            .iter()
            .filter(|(_, waiter)| waiter.deadline <= now || waiter.reply.is_closed())
            .map(|(&request, _)| request)
            .collect();
        for request in expired {
            self.finish(request, Err(BackendError::Timeout));
        }
    }

    pub(crate) fn fail_all(&mut self, error: impl Fn() -> BackendError) {
        let all: Vec<u64> = self.waiting.keys().copied().collect();
        for request in all {
            self.finish(request, Err(error()));
        }
        debug_assert!(self.by_index.is_empty());
    }
}

#[derive(Debug)]
pub(crate) struct BarrierWaiter {
    pub(crate) reply: BarrierReply,
    pub(crate) deadline: Instant,
}

/// A read index request in flight, and when it was sent.
#[derive(Debug)]
struct IssuedRead {
    waiters: Vec<BarrierWaiter>,
    issued_tick: u64,
}

/// Read barriers: queued (not yet asked of the core), issued (one read index
/// context for all that were queued together), and confirmed (waiting for the
/// state machine to reach the read index).
#[derive(Debug, Default)]
pub(crate) struct Reads {
    queued: Vec<BarrierWaiter>,
    issued: HashMap<Vec<u8>, IssuedRead>,
    confirmed: Vec<(LogIndex, Vec<BarrierWaiter>)>,
}

impl Reads {
    pub(crate) fn queue(&mut self, waiter: BarrierWaiter) {
        self.queued.push(waiter);
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

    /// Every queued barrier now waits on `context`.
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

    /// The core confirmed `context` at `index`.
    pub(crate) fn confirm(&mut self, context: &[u8], index: LogIndex) {
        if let Some(read) = self.issued.remove(context) {
            self.confirmed.push((index, read.waiters));
        }
    }

    /// Answers every confirmed barrier whose index is applied.
    pub(crate) fn release(&mut self, applied: LogIndex) {
        self.confirmed.retain_mut(|(index, waiters)| {
            if *index > applied {
                return true;
            }
            for waiter in waiters.drain(..) {
                let _ = waiter.reply.send(Ok(()));
            }
            false
        });
    }

    /// Requests sent before `tick_limit` (or all, on a leader change) may have
    /// been lost: queue their waiters again for a fresh context.
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

    /// Answers every barrier past its deadline with a timeout.
    pub(crate) fn expire(&mut self, now: Instant) {
        let expire = |waiters: &mut Vec<BarrierWaiter>| {
            let (expired, kept): (Vec<_>, Vec<_>) = waiters
                .drain(..)
                .partition(|waiter| waiter.deadline <= now || waiter.reply.is_closed());
            *waiters = kept;
            for waiter in expired {
                let _ = waiter.reply.send(Err(BackendError::Timeout));
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

    pub(crate) fn fail_all(&mut self, error: impl Fn() -> BackendError) {
        let issued = self.issued.drain().flat_map(|(_, read)| read.waiters);
        let confirmed = self.confirmed.drain(..).flat_map(|(_, waiters)| waiters);
        for waiter in self.queued.drain(..).chain(issued).chain(confirmed) {
            let _ = waiter.reply.send(Err(error()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn applied(index: LogIndex) -> mvcc::Applied {
        mvcc::Applied {
            index,
            revision: 2,
            result: Ok(mvcc::Response::Compact(mvcc::CompactionResponse {})),
            events: Vec::new(),
        }
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(60)
    }

    #[test]
    fn replaced_entry_fails_with_leader_changed_and_kept_one_waits() {
        let mut proposals = Proposals::default();
        let (kept_tx, mut kept_rx) = oneshot::channel();
        let (lost_tx, mut lost_rx) = oneshot::channel();
        proposals.insert(1, kept_tx, later());
        proposals.insert(2, lost_tx, later());
        proposals.on_append(5, &[Some(1), Some(2)]);
        proposals.on_append(6, &[None]);
        assert!(matches!(
            lost_rx.try_recv(),
            Ok(Err(BackendError::LeaderChanged))
        ));
        assert!(kept_rx.try_recv().is_err(), "entry 5 is still ours");
        proposals.finish(1, Ok(applied(5)));
        assert_eq!(kept_rx.try_recv().unwrap().unwrap().index, 5);
        assert_eq!(proposals.len(), 0);
    }

    #[test]
    fn leader_change_fails_forwarded_proposals_not_in_the_log() {
        let mut proposals = Proposals::default();
        let (forwarded_tx, mut forwarded_rx) = oneshot::channel();
        let (logged_tx, mut logged_rx) = oneshot::channel();
        let (queued_tx, mut queued_rx) = oneshot::channel();
        proposals.insert(1, forwarded_tx, later());
        proposals.insert(2, logged_tx, later());
        proposals.insert(3, queued_tx, later());
        proposals.mark_proposed(1);
        proposals.mark_proposed(2);
        proposals.on_append(4, &[Some(2)]);
        proposals.fail_unlogged();
        assert!(matches!(
            forwarded_rx.try_recv(),
            Ok(Err(BackendError::LeaderChanged))
        ));
        assert!(logged_rx.try_recv().is_err(), "its entry may still commit");
        assert!(queued_rx.try_recv().is_err(), "never left this member");
    }

    #[test]
    fn reappended_same_request_keeps_waiting() {
        let mut proposals = Proposals::default();
        let (tx, mut rx) = oneshot::channel();
        proposals.insert(9, tx, later());
        proposals.on_append(3, &[Some(9)]);
        proposals.on_append(3, &[Some(9), None]);
        assert!(rx.try_recv().is_err());
        assert!(proposals.contains(9));
    }

    #[test]
    fn deadlines_and_snapshots_answer_timeout() {
        let mut proposals = Proposals::default();
        let (late_tx, mut late_rx) = oneshot::channel();
        let (covered_tx, mut covered_rx) = oneshot::channel();
        let (waiting_tx, mut waiting_rx) = oneshot::channel();
        proposals.insert(1, late_tx, Instant::now());
        proposals.insert(2, covered_tx, later());
        proposals.insert(3, waiting_tx, later());
        proposals.on_append(10, &[Some(2), Some(3)]);
        proposals.expire(Instant::now());
        assert!(matches!(late_rx.try_recv(), Ok(Err(BackendError::Timeout))));
        proposals.fail_through(10);
        assert!(matches!(
            covered_rx.try_recv(),
            Ok(Err(BackendError::Timeout))
        ));
        assert!(waiting_rx.try_recv().is_err());
        proposals.fail_all(|| BackendError::Stopped);
        assert!(matches!(
            waiting_rx.try_recv(),
            Ok(Err(BackendError::Stopped))
        ));
    }

    #[test]
    fn barrier_is_released_only_once_its_index_is_applied() {
        let mut reads = Reads::default();
        let (tx, mut rx) = oneshot::channel();
        reads.queue(BarrierWaiter {
            reply: tx,
            deadline: later(),
        });
        reads.issue(b"ctx".to_vec(), 1);
        reads.confirm(b"other", 4);
        reads.confirm(b"ctx", 7);
        reads.release(6);
        assert!(rx.try_recv().is_err());
        reads.release(7);
        assert!(matches!(rx.try_recv(), Ok(Ok(()))));
        assert_eq!(reads.len(), 0);
    }

    #[test]
    fn stale_issued_reads_are_queued_again() {
        let mut reads = Reads::default();
        let (tx, _rx) = oneshot::channel();
        reads.queue(BarrierWaiter {
            reply: tx,
            deadline: later(),
        });
        reads.issue(b"a".to_vec(), 3);
        reads.requeue_issued_before(3);
        assert!(!reads.has_queued());
        reads.requeue_issued_before(4);
        assert!(reads.has_queued());
        reads.confirm(b"a", 1);
        assert_eq!(reads.len(), 1, "a requeued read waits for a new context");
    }
}
