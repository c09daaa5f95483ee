//! What a leader does beyond replication: linearizable reads through the
//! ReadIndex barrier (Raft dissertation §6.4) and handing leadership to another
//! member (§3.10).

use crate::raft::{mutated, Raft};
use crate::read_only::PENDING_READS_MAX;
use crate::storage::{Storage, StorageError};
use crate::types::{MessageBody, NodeId, ReadState, Role};
use crate::RaftError;

impl<S: Storage> Raft<S> {
    pub(crate) fn read_index(&mut self, context: Vec<u8>) -> Result<(), RaftError> {
        debug_assert!(
            !self.ready_outstanding,
            "read_index between ready() and advance()"
        );
        self.run_input(|raft| {
            if raft.role == Role::Leader {
                if raft.read_only.len() + raft.reads_awaiting_commit.len() >= PENDING_READS_MAX {
                    return Err(RaftError::TooManyPendingReads {
                        limit: PENDING_READS_MAX,
                    });
                }
                raft.handle_read_request(raft.id, context)?;
                return Ok(());
            }
            if raft.forward_to_leader && raft.leader != crate::types::NO_NODE {
                raft.send(raft.leader, MessageBody::ForwardReadIndex { context });
                return Ok(());
            }
            Err(raft.not_leader())
        })
    }

    /// Registers a read from `requester` (this leader or a follower). A leader
    /// that has not yet committed an entry of its own term does not know the
    /// true commit index, so the read waits for that first commit.
    pub(super) fn handle_read_request(
        &mut self,
        requester: NodeId,
        context: Vec<u8>,
    ) -> Result<(), StorageError> {
        if self.read_only.len() + self.reads_awaiting_commit.len() >= PENDING_READS_MAX {
            return Ok(());
        }
        if !self.committed_in_current_term()? && !mutated!(self, ReadBeforeTermCommitted) {
            self.reads_awaiting_commit.push((requester, context));
            return Ok(());
        }
        let index = self.log.committed;
        if self.conf_state().voters == [self.id] {
            self.answer_read(requester, context, index);
            return Ok(());
        }
        if self
            .read_only
            .add(context.clone(), requester, index, self.id)
        {
            self.broadcast_heartbeat(Some(context));
        }
        Ok(())
    }

    pub(super) fn committed_in_current_term(&self) -> Result<bool, StorageError> {
        self.log.matches_term(self.log.committed, self.term)
    }

    pub(super) fn release_reads_awaiting_commit(&mut self) -> Result<(), StorageError> {
        if !self.committed_in_current_term()? {
            return Ok(());
        }
        for (requester, context) in std::mem::take(&mut self.reads_awaiting_commit) {
            self.handle_read_request(requester, context)?;
        }
        Ok(())
    }

    /// A heartbeat answer for a read's round; a quorum confirms it and every
    /// read registered before it.
    pub(super) fn acknowledge_read(&mut self, context: &[u8], from: NodeId) {
        let conf_state = self.membership.current();
        for read in self.read_only.acknowledge(context, from, conf_state) {
            self.answer_read(read.requester, read.context, read.index);
        }
    }

    fn answer_read(&mut self, requester: NodeId, context: Vec<u8>, index: u64) {
        if requester == self.id {
            self.read_states.push(ReadState { index, context });
        } else {
            self.send(requester, MessageBody::ReadIndexResponse { context, index });
        }
    }

    /// Starts handing leadership to `target`: proposals stop, the target is
    /// brought up to date, then told to campaign at once. The transfer is
    /// abandoned if it has not finished within an election timeout.
    pub(crate) fn transfer_leader(&mut self, target: NodeId) -> Result<(), RaftError> {
        debug_assert!(
            !self.ready_outstanding,
            "transfer_leader between ready() and advance()"
        );
        self.run_input(|raft| {
            if raft.role != Role::Leader {
                return Err(raft.not_leader());
            }
            if !raft.is_voter(target) {
                return Err(RaftError::UnknownMember(target));
            }
            if target == raft.id || raft.transfer_target == Some(target) {
                return Ok(());
            }
            raft.transfer_target = Some(target);
            raft.election_elapsed = 0;
            if !raft.continue_transfer(target) {
                raft.send_append(target, true)?;
            }
            Ok(())
        })
    }

    /// Sends TimeoutNow once the transfer target holds the whole log.
    /// Returns whether it was sent.
    pub(super) fn continue_transfer(&mut self, peer: NodeId) -> bool {
        if self.transfer_target != Some(peer) {
            return false;
        }
        let caught_up = self
            .progress
            .get(&peer)
            .is_some_and(|progress| progress.match_index == self.log.last_index());
        if caught_up {
            self.send(peer, MessageBody::TimeoutNow);
        }
        caught_up
    }
}
