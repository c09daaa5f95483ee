//! ReadIndex bookkeeping on the leader: each linearizable read records the
//! commit index at arrival and waits until a heartbeat round shows a majority
//! still follows this leader. A quorum for a later read also confirms every
//! earlier one, since they were all registered before that round began.

use std::collections::{BTreeSet, VecDeque};

use crate::types::{ConfState, LogIndex, NodeId};

/// The most reads that may wait for confirmation at once; more are refused so
/// a stalled leader cannot grow without bound.
pub(crate) const PENDING_READS_MAX: usize = 4096;

#[derive(Clone, Debug)]
pub(crate) struct ReadRequest {
    pub(crate) context: Vec<u8>,
    /// The member that asked (the leader itself or a follower that forwarded it).
    pub(crate) requester: NodeId,
    /// The commit index when the read arrived: the read is served at or after it.
    pub(crate) index: LogIndex,
    acknowledged_by: BTreeSet<NodeId>,
}

#[derive(Debug, Default)]
pub(crate) struct ReadOnly {
    pending: VecDeque<ReadRequest>,
}

impl ReadOnly {
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// The newest read still waiting: periodic heartbeats carry it, so a
    /// confirmation round that was lost is retried and, once a quorum answers,
    /// confirms every read before it too.
    pub(crate) fn last_pending_context(&self) -> Option<Vec<u8>> {
        self.pending.back().map(|read| read.context.clone())
    }

    pub(crate) fn clear(&mut self) {
        self.pending.clear();
    }

    /// Registers a read; returns false when one with this context already waits.
    pub(crate) fn add(
        &mut self,
        context: Vec<u8>,
        requester: NodeId,
        index: LogIndex,
        leader: NodeId,
    ) -> bool {
        debug_assert!(self.pending.len() < PENDING_READS_MAX);
        if self.pending.iter().any(|read| read.context == context) {
            return false;
        }
        self.pending.push_back(ReadRequest {
            context,
            requester,
            index,
            acknowledged_by: BTreeSet::from([leader]),
        });
        true
    }

    /// Records that `from` answered the heartbeat sent for `context`. When that
    /// read is acknowledged by a majority of `conf_state`'s voters (the
    /// configuration in force now, which may have changed since the read
    /// arrived), it and every read before it are confirmed and returned,
    /// oldest first.
    pub(crate) fn acknowledge(
        &mut self,
        context: &[u8],
        from: NodeId,
        conf_state: &ConfState,
    ) -> Vec<ReadRequest> {
        let Some(position) = self.pending.iter().position(|read| read.context == context) else {
            return Vec::new();
        };
        let read = &mut self.pending[position];
        read.acknowledged_by.insert(from);
        let voters_acknowledged = read
            .acknowledged_by
            .iter()
            .filter(|&&member| conf_state.is_voter(member))
            .count();
        if voters_acknowledged < conf_state.quorum() {
            return Vec::new();
        }
        self.pending.drain(..=position).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_for_a_later_read_confirms_earlier_ones() {
        let mut reads = ReadOnly::default();
        assert!(reads.add(b"a".to_vec(), 1, 5, 1));
        assert!(reads.add(b"b".to_vec(), 2, 6, 1));
        assert!(!reads.add(b"b".to_vec(), 2, 6, 1), "duplicate context");
        let conf_state = ConfState::with_voters(vec![1, 2, 3, 4, 5]);
        assert!(reads.acknowledge(b"b", 2, &conf_state).is_empty());
        let confirmed = reads.acknowledge(b"b", 3, &conf_state);
        let contexts: Vec<_> = confirmed.iter().map(|read| read.context.clone()).collect();
        assert_eq!(contexts, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(reads.len(), 0);
    }

    #[test]
    fn repeated_acknowledgement_from_one_member_is_not_a_quorum() {
        let mut reads = ReadOnly::default();
        reads.add(b"a".to_vec(), 1, 5, 1);
        let conf_state = ConfState::with_voters(vec![1, 2, 3]);
        assert!(reads.acknowledge(b"a", 1, &conf_state).is_empty());
        assert!(reads.acknowledge(b"unknown", 2, &conf_state).is_empty());
        assert_eq!(reads.acknowledge(b"a", 2, &conf_state).len(), 1);
    }

    #[test]
    fn learners_and_removed_members_do_not_confirm_reads() {
        let mut reads = ReadOnly::default();
        reads.add(b"a".to_vec(), 1, 5, 1);
        let conf_state = ConfState {
            voters: vec![2, 3, 4],
            learners: vec![5],
        };
        assert!(
            reads.acknowledge(b"a", 5, &conf_state).is_empty(),
            "learner"
        );
        assert!(
            reads.acknowledge(b"a", 2, &conf_state).is_empty(),
            "the leader 1 is being removed and does not count itself"
        );
        assert_eq!(reads.acknowledge(b"a", 3, &conf_state).len(), 1);
    }
}
