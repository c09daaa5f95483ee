//! Log replication (Raft §5.3, §5.4, §7): appending proposals, the
//! AppendEntries consistency check with fast backtracking, flow control per
//! follower, commitment by counting current-term replicas, and snapshots for
//! followers that fell behind compaction.

use crate::progress::ProgressState;
use crate::raft::{mutated, Raft, SNAPSHOT_RETRY_ELECTION_TIMEOUTS};
use crate::storage::{Storage, StorageError};
use crate::types::{
    AppendResponse, Entry, EntryKind, LogIndex, Message, MessageBody, NodeId, RejectHint, Role,
    Snapshot, Term,
};

impl<S: Storage> Raft<S> {
    pub(super) fn append_commands(&mut self, commands: Vec<Vec<u8>>) {
        self.append_entries_of_kind(commands, EntryKind::Normal);
    }

    /// Appends entries of this term to the leader's log; they go out with the
    /// next `Ready`, so many proposals become one append per follower.
    pub(super) fn append_entries_of_kind(&mut self, payloads: Vec<Vec<u8>>, kind: EntryKind) {
        debug_assert_eq!(self.role, Role::Leader);
        let first_index = self.log.last_index() + 1;
        let entries: Vec<Entry> = payloads
            .into_iter()
            .enumerate()
            .map(|(offset, data)| Entry {
                term: self.term,
                index: first_index + offset as u64,
                kind,
                data,
            })
            .collect();
        if entries.is_empty() {
            return;
        }
        self.append_to_log(&entries);
        self.append_broadcast_pending = true;
    }

    /// Sends what was appended since the last batch: all proposals made
    /// between two `Ready`s travel in one append per follower.
    pub(super) fn flush_appends(&mut self) -> Result<(), StorageError> {
        if std::mem::take(&mut self.append_broadcast_pending) && self.role == Role::Leader {
            self.broadcast_append(false)?;
        }
        Ok(())
    }

    pub(super) fn broadcast_append(&mut self, send_if_empty: bool) -> Result<(), StorageError> {
        for peer in self.replication_peers() {
            self.send_append(peer, send_if_empty)?;
        }
        Ok(())
    }

    pub(super) fn broadcast_heartbeat(&mut self, read_context: Option<Vec<u8>>) {
        for peer in self.replication_peers() {
            let committed = self.log.committed;
            let Some(progress) = self.progress.get_mut(&peer) else {
                continue;
            };
            let commit = progress.match_index.min(committed);
            progress.commit_sent = progress.commit_sent.max(commit);
            self.send(
                peer,
                MessageBody::Heartbeat {
                    commit,
                    read_context: read_context.clone(),
                },
            );
        }
    }

    /// Sends `to` the entries it lacks, or a snapshot when they are compacted.
    /// Does nothing while the follower's flow control says wait.
    pub(super) fn send_append(
        &mut self,
        to: NodeId,
        send_if_empty: bool,
    ) -> Result<(), StorageError> {
        let Some(progress) = self.progress.get(&to) else {
            return Ok(());
        };
        if progress.is_paused() {
            return Ok(());
        }
        let next_index = progress.next_index;
        let prev_log_index = next_index - 1;
        let last_index = self.log.last_index();
        let prev_log_term = self.log.term(prev_log_index);
        let entries = self
            .log
            .entries(next_index, last_index + 1, self.message_bytes_max);
        match (prev_log_term, entries) {
            (Ok(prev_log_term), Ok(entries)) => {
                if entries.is_empty() && !send_if_empty {
                    return Ok(());
                }
                let sent_through = entries.last().map_or(prev_log_index, |entry| entry.index);
                let entry_count = entries.len();
                self.send(
                    to,
                    MessageBody::AppendEntries {
                        prev_log_index,
                        prev_log_term,
                        entries,
                        leader_commit: self.log.committed,
                    },
                );
                if let Some(progress) = self.progress.get_mut(&to) {
                    progress.sent_append(sent_through, entry_count);
                    progress.commit_sent = progress
                        .commit_sent
                        .max(self.log.committed.min(sent_through));
                }
            }
            (Err(StorageError::Compacted { .. }), _) | (_, Err(StorageError::Compacted { .. })) => {
                return self.send_snapshot(to);
            }
            (Err(error), _) | (_, Err(error)) => return Err(error),
        }
        Ok(())
    }

    fn send_snapshot(&mut self, to: NodeId) -> Result<(), StorageError> {
        let snapshot = match self.log.storage.snapshot() {
            Ok(snapshot) => snapshot,
            Err(StorageError::SnapshotTemporarilyUnavailable) => return Ok(()),
            Err(error) => return Err(error),
        };
        debug_assert!(snapshot.meta.index > 0, "compacted log without a snapshot");
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.become_snapshot(snapshot.meta.index);
        }
        self.snapshot_elapsed.insert(to, 0);
        self.send(to, MessageBody::InstallSnapshot { snapshot });
        Ok(())
    }

    /// A snapshot unanswered for several election timeouts was probably lost:
    /// fall back to probing, which sends it again.
    pub(super) fn tick_snapshots(&mut self) {
        let limit = self.election_ticks * SNAPSHOT_RETRY_ELECTION_TIMEOUTS;
        let mut expired = Vec::new();
        for (&peer, elapsed) in self.snapshot_elapsed.iter_mut() {
            *elapsed += 1;
            if *elapsed >= limit {
                expired.push(peer);
            }
        }
        for peer in expired {
            self.snapshot_elapsed.remove(&peer);
            if let Some(progress) = self.progress.get_mut(&peer) {
                if progress.state == ProgressState::Snapshot {
                    progress.become_probe();
                }
            }
        }
    }

    /// The follower side of AppendEntries: the consistency check, then append,
    /// then commit what the leader says is committed, up to what we now hold.
    pub(super) fn handle_append(
        &mut self,
        from: NodeId,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: &[Entry],
        leader_commit: LogIndex,
    ) -> Result<(), StorageError> {
        if prev_log_index < self.log.committed {
            let match_index = self.log.committed;
            self.send(
                from,
                MessageBody::AppendEntriesResponse(AppendResponse::Accepted { match_index }),
            );
            return Ok(());
        }
        let consistent = self.log.matches_term(prev_log_index, prev_log_term)?
            || (mutated!(self, SkipConsistencyCheck) && prev_log_index <= self.log.last_index());
        if consistent {
            let last_new_index = prev_log_index + entries.len() as u64;
            let new_entries = self.log.new_entries_after(prev_log_index, entries)?;
            self.append_to_log(new_entries);
            let vouched_for = if mutated!(self, CommitToLastIndex) {
                self.log.last_index()
            } else {
                last_new_index
            };
            self.log.commit_to(leader_commit.min(vouched_for));
            self.send(
                from,
                MessageBody::AppendEntriesResponse(AppendResponse::Accepted {
                    match_index: last_new_index,
                }),
            );
            return Ok(());
        }
        let hint = self.reject_hint(prev_log_index)?;
        self.send(
            from,
            MessageBody::AppendEntriesResponse(AppendResponse::Rejected {
                rejected_index: prev_log_index,
                hint,
            }),
        );
        Ok(())
    }

    /// Where the leader should probe next: the end of our log if it is too
    /// short, else the first index of the term that conflicts. An index
    /// compacted here is committed, so probing resumes at our commit index.
    fn reject_hint(&self, rejected_index: LogIndex) -> Result<RejectHint, StorageError> {
        let last_index = self.log.last_index();
        if rejected_index > last_index {
            return Ok(RejectHint::LogTooShort { last_index });
        }
        Ok(match self.log.held_term(rejected_index)? {
            Some(conflict_term) => RejectHint::TermConflict {
                conflict_term,
                first_index: self.log.first_index_of_term_at(rejected_index)?,
            },
            None => RejectHint::LogTooShort {
                last_index: self.log.committed,
            },
        })
    }

    /// Installs a leader's snapshot unless our log already covers it.
    pub(super) fn handle_snapshot(
        &mut self,
        from: NodeId,
        snapshot: Snapshot,
    ) -> Result<(), StorageError> {
        let index = snapshot.meta.index;
        if index <= self.log.committed {
            let match_index = self.log.committed;
            self.send(
                from,
                MessageBody::AppendEntriesResponse(AppendResponse::Accepted { match_index }),
            );
            return Ok(());
        }
        if self.log.matches_term(index, snapshot.meta.term)? {
            self.log.commit_to(index);
        } else {
            self.membership
                .restore(index, snapshot.meta.conf_state.clone());
            self.log.restore(snapshot);
        }
        self.send(
            from,
            MessageBody::AppendEntriesResponse(AppendResponse::Accepted { match_index: index }),
        );
        Ok(())
    }

    pub(super) fn step_leader(&mut self, message: Message) -> Result<(), StorageError> {
        let from = message.from;
        match message.body {
            MessageBody::AppendEntriesResponse(response) => {
                return self.handle_append_response(from, response)
            }
            MessageBody::HeartbeatResponse { read_context } => {
                let last_index = self.log.last_index();
                let counts_as_active = !mutated!(self, CheckQuorumIgnoresHeartbeats);
                if let Some(progress) = self.progress.get_mut(&from) {
                    progress.recently_active |= counts_as_active;
                    progress.heard_heartbeat_response();
                    // Even an empty append is worth sending: in the replicate
                    // state it is how appends lost in flight are discovered.
                    if progress.match_index < last_index {
                        self.send_append(from, true)?;
                    }
                }
                let read_context = if mutated!(self, ReadConfirmedByEarlierHeartbeat) {
                    self.read_only.last_pending_context()
                } else {
                    read_context
                };
                if let Some(context) = read_context {
                    self.acknowledge_read(&context, from);
                }
            }
            MessageBody::ForwardProposal { entries } => {
                if self.transfer_target.is_none() {
                    self.append_commands(entries);
                }
            }
            MessageBody::ForwardReadIndex { context } => {
                return self.handle_read_request(from, context)
            }
            MessageBody::RequestVote { .. }
            | MessageBody::RequestVoteResponse { .. }
            | MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. }
            | MessageBody::TimeoutNow
            | MessageBody::ReadIndexResponse { .. } => {}
        }
        Ok(())
    }

    fn handle_append_response(
        &mut self,
        from: NodeId,
        response: AppendResponse,
    ) -> Result<(), StorageError> {
        let Some(progress) = self.progress.get_mut(&from) else {
            return Ok(());
        };
        progress.recently_active = true;
        match response {
            AppendResponse::Accepted { match_index } => {
                let advanced = progress.acknowledge(match_index);
                let newly_matched =
                    progress.state == ProgressState::Probe && progress.match_index == match_index;
                if !advanced && !newly_matched {
                    return Ok(());
                }
                match progress.state {
                    ProgressState::Probe => progress.become_replicate(),
                    ProgressState::Snapshot
                        if progress.match_index >= progress.pending_snapshot =>
                    {
                        progress.become_probe();
                        progress.become_replicate();
                        self.snapshot_elapsed.remove(&from);
                    }
                    ProgressState::Snapshot | ProgressState::Replicate => {}
                }
                if self.maybe_commit()? {
                    self.broadcast_append(true)?;
                    self.after_leader_commit()?;
                    if self.role != Role::Leader {
                        return Ok(());
                    }
                } else {
                    let commit_unsent = self
                        .progress
                        .get(&from)
                        .is_some_and(|progress| progress.commit_sent < self.log.committed);
                    self.send_append(from, commit_unsent)?;
                }
                self.continue_transfer(from);
            }
            AppendResponse::Rejected {
                rejected_index,
                hint,
            } => {
                let next_probe = self.next_probe_after_reject(hint, rejected_index)?;
                let Some(progress) = self.progress.get_mut(&from) else {
                    return Ok(());
                };
                if progress.reject(rejected_index, next_probe) {
                    self.send_append(from, true)?;
                }
            }
        }
        Ok(())
    }

    /// Fast backtracking: skip a whole term per round trip rather than one entry.
    fn next_probe_after_reject(
        &self,
        hint: RejectHint,
        rejected_index: LogIndex,
    ) -> Result<LogIndex, StorageError> {
        Ok(match hint {
            RejectHint::LogTooShort { last_index } => last_index + 1,
            RejectHint::TermConflict {
                conflict_term,
                first_index,
            } => match self.log.last_index_of_term(conflict_term, rejected_index)? {
                Some(last_of_term) => last_of_term + 1,
                None => first_index,
            },
        })
    }

    /// Commits the highest index a majority of the voters in force holds, if
    /// it is of the current term (Figure 8: an older term's entry is never
    /// committed by counting). Learners, and a leader that is removing itself,
    /// do not count. Returns whether the commit index moved.
    pub(super) fn maybe_commit(&mut self) -> Result<bool, StorageError> {
        let conf_state = self.membership.current();
        let mut matched: Vec<LogIndex> = self
            .progress
            .iter()
            .filter(|(id, _)| conf_state.is_voter(**id))
            .map(|(_, progress)| progress.match_index)
            .collect();
        matched.sort_unstable_by(|left, right| right.cmp(left));
        let Some(&quorum_index) = matched.get(self.quorum() - 1) else {
            return Ok(false);
        };
        let committed = if mutated!(self, CommitOldTermByCounting) {
            let moved = quorum_index > self.log.committed;
            self.log.commit_to(quorum_index.max(self.log.committed));
            moved
        } else {
            self.log.maybe_commit(quorum_index, self.term)?
        };
        if committed {
            self.release_reads_awaiting_commit()?;
        }
        Ok(committed)
    }
}
