//! Single-server membership changes (Raft dissertation §4.1–§4.3): when the
//! leader accepts a change, how its replication tracking follows the
//! configuration in force, and how a leader that removed itself steps down.
//! The configuration itself is derived from the log by `Membership`.

use crate::progress::Progress;
use crate::raft::{mutated, Raft};
use crate::storage::{Storage, StorageError};
use crate::types::{ConfChange, EntryKind, NodeId, Role, NO_NODE};
use crate::RaftError;

impl<S: Storage> Raft<S> {
    /// Appends a configuration change on the leader. One change at a time:
    /// two uncommitted single-server changes could leave two majorities that
    /// do not overlap; and not before the leader committed an entry of its
    /// term, since a change left uncommitted by an earlier leader may still
    /// be replaced (the single-server bug, fixed by the no-op).
    pub(crate) fn propose_conf_change(
        &mut self,
        change: ConfChange,
        context: Vec<u8>,
    ) -> Result<(), RaftError> {
        debug_assert!(
            !self.ready_outstanding,
            "propose_conf_change between ready() and advance()"
        );
        self.run_input(|raft| {
            if raft.role != Role::Leader {
                return Err(raft.not_leader());
            }
            if let Some(target) = raft.transfer_target {
                return Err(RaftError::TransferInProgress { target });
            }
            let pending_index = raft.membership.current_index();
            if pending_index > raft.log.committed && !mutated!(raft, ConfChangeWhilePending) {
                return Err(RaftError::ConfChangePending {
                    index: pending_index,
                });
            }
            if !raft.committed_in_current_term()? && !mutated!(raft, ConfChangeBeforeTermCommitted)
            {
                return Err(RaftError::ConfChangeBeforeTermCommitted { term: raft.term });
            }
            raft.conf_state().apply(change)?;
            raft.append_entries_of_kind(vec![context], EntryKind::ConfChange(change));
            Ok(())
        })
    }

    /// Makes the leader's progress tracking follow the configuration: every
    /// member of the configuration in force or of the committed one has an
    /// entry (a member being removed still receives the entry removing it,
    /// so it learns it must not campaign), and no one else.
    pub(super) fn reconcile_progress(&mut self) {
        let next_index = self.log.last_index() + 1;
        let committed = self.membership.at(self.log.committed);
        let current = self.membership.current();
        let tracked: Vec<NodeId> = current
            .voters
            .iter()
            .chain(&current.learners)
            .chain(committed.iter().flat_map(|conf| conf.voters.iter()))
            .chain(committed.iter().flat_map(|conf| conf.learners.iter()))
            .copied()
            .chain([self.id])
            .collect();
        self.progress.retain(|id, _| tracked.contains(id));
        self.snapshot_elapsed.retain(|id, _| tracked.contains(id));
        for id in tracked {
            self.progress.entry(id).or_insert_with(|| {
                let mut progress = Progress::new(next_index, self.inflight_messages_max);
                progress.recently_active = true;
                progress
            });
        }
        if self
            .transfer_target
            .is_some_and(|target| !self.is_voter(target))
        {
            self.transfer_target = None;
        }
    }

    /// What follows a commit on the leader: members whose removal committed
    /// are no longer tracked, and a leader that removed itself steps down,
    /// having managed the cluster until the removal committed (§4.2.2).
    pub(super) fn after_leader_commit(&mut self) -> Result<(), StorageError> {
        if self.role != Role::Leader {
            return Ok(());
        }
        self.reconcile_progress();
        let removal_committed = self.membership.current_index() <= self.log.committed;
        if !self.is_voter(self.id) && removal_committed {
            self.broadcast_append(true)?;
            self.become_follower(self.term, NO_NODE);
        }
        Ok(())
    }
}
