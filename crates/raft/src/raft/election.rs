//! Leader election (Raft §5.2, §9.6): randomized timeouts, PreVote, the
//! up-to-date check, one vote per term, and the transitions between roles.

use crate::raft::{mutated, Raft};
use crate::storage::{Storage, StorageError};
use crate::types::{EntryKind, Message, MessageBody, Role, NO_NODE};
use crate::RaftError;

/// How a (pre-)campaign stands after counting the votes received so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tally {
    Won,
    Lost,
    Pending,
}

impl<S: Storage> Raft<S> {
    /// Starts an election at once, skipping the timeout (bootstrap, tests).
    pub(crate) fn campaign_now(&mut self) -> Result<(), RaftError> {
        self.run_input(|raft| {
            if raft.role != Role::Leader && raft.is_voter(raft.id) {
                raft.campaign(raft.pre_vote, false)?;
            }
            Ok(())
        })
    }

    /// Starts a pre-campaign or a real campaign. A pre-campaign asks whether
    /// peers would vote for us at `term + 1` without anyone changing term, so a
    /// member that cannot win never disrupts the cluster.
    pub(super) fn campaign(
        &mut self,
        pre_vote: bool,
        leadership_transfer: bool,
    ) -> Result<(), StorageError> {
        let campaign_term = if pre_vote {
            self.become_pre_candidate();
            self.term + 1
        } else {
            self.become_candidate();
            self.term
        };
        self.votes.insert(self.id, true);
        if self.tally() == Tally::Won {
            return self.campaign_won(pre_vote);
        }
        let last_log_index = self.log.last_index();
        let last_log_term = self.log.last_term()?;
        for peer in self.voter_peers() {
            self.send_at_term(
                peer,
                campaign_term,
                MessageBody::RequestVote {
                    pre_vote,
                    last_log_index,
                    last_log_term,
                    leadership_transfer,
                },
            );
        }
        Ok(())
    }

    fn campaign_won(&mut self, pre_vote: bool) -> Result<(), StorageError> {
        if pre_vote {
            self.campaign(false, false)
        } else {
            self.become_leader();
            Ok(())
        }
    }

    fn become_pre_candidate(&mut self) {
        debug_assert_ne!(self.role, Role::Leader, "a leader does not campaign");
        self.role = Role::PreCandidate;
        self.leader = NO_NODE;
        self.votes.clear();
        self.reset_timers();
        self.abandon_leadership_state();
    }

    fn become_candidate(&mut self) {
        debug_assert_ne!(self.role, Role::Leader, "a leader does not campaign");
        self.term += 1;
        self.vote = self.id;
        self.role = Role::Candidate;
        self.leader = NO_NODE;
        self.votes.clear();
        self.reset_timers();
        self.abandon_leadership_state();
    }

    /// Takes office: fresh progress for every member, and a no-op entry so
    /// that entries of earlier terms commit through it (§5.4.2); committing it
    /// also opens the way to configuration changes (dissertation §4.1).
    pub(super) fn become_leader(&mut self) {
        debug_assert_eq!(
            self.role,
            Role::Candidate,
            "only a candidate becomes leader"
        );
        self.role = Role::Leader;
        self.reset_timers();
        self.set_leader(self.id);
        self.progress.clear();
        self.reconcile_progress();
        for progress in self.progress.values_mut() {
            progress.recently_active = true;
        }
        self.append_entries_of_kind(vec![Vec::new()], EntryKind::Noop);
    }

    /// Counts only the votes of voters in the configuration in force: a
    /// learner or a removed member may answer, but never decides an election.
    fn tally(&self) -> Tally {
        let conf_state = self.conf_state();
        let (mut granted, mut rejected) = (0, 0);
        for (&voter, &vote) in &self.votes {
            if !conf_state.is_voter(voter) {
                continue;
            }
            if vote {
                granted += 1;
            } else {
                rejected += 1;
            }
        }
        if granted >= conf_state.quorum() {
            Tally::Won
        } else if rejected > conf_state.voters.len() - conf_state.quorum() {
            Tally::Lost
        } else {
            Tally::Pending
        }
    }

    /// Any role answers a vote request of its term (a higher term was already
    /// adopted by `step`). Grants need a free vote and an up-to-date log.
    /// A learner answers too, as in etcd: a candidate whose log already
    /// promoted it needs its vote, and a candidate that sees it as a learner
    /// does not count it (see `tally`), so a learner never decides an
    /// election in a configuration where it does not vote.
    pub(super) fn handle_vote_request(&mut self, message: Message) -> Result<(), StorageError> {
        let MessageBody::RequestVote {
            pre_vote,
            last_log_index,
            last_log_term,
            ..
        } = message.body
        else {
            unreachable!("handle_vote_request called with {:?}", message.body);
        };
        let vote_free = self.vote == message.from
            || (self.vote == NO_NODE && self.leader == NO_NODE)
            || (pre_vote && message.term > self.term)
            || mutated!(self, SecondVoteInTerm);
        let log_ok = self.log.is_up_to_date(last_log_index, last_log_term)?
            || mutated!(self, VoteWithoutLogCheck);
        let granted = vote_free && log_ok;
        if granted && !pre_vote {
            self.election_elapsed = 0;
            self.vote = message.from;
        }
        let reply_term = if granted { message.term } else { self.term };
        self.send_at_term(
            message.from,
            reply_term,
            MessageBody::RequestVoteResponse { pre_vote, granted },
        );
        Ok(())
    }

    pub(super) fn step_candidate(&mut self, message: Message) -> Result<(), StorageError> {
        match message.body {
            MessageBody::AppendEntries { .. }
            | MessageBody::Heartbeat { .. }
            | MessageBody::InstallSnapshot { .. } => {
                self.become_follower(message.term, message.from);
                return self.step_follower(message);
            }
            MessageBody::RequestVoteResponse { pre_vote, granted } => {
                let campaigning_pre_vote = self.role == Role::PreCandidate;
                let grant_miscounted =
                    pre_vote && granted && mutated!(self, PreVoteGrantCountsAsVote);
                if pre_vote != campaigning_pre_vote && !grant_miscounted {
                    return Ok(());
                }
                self.votes.entry(message.from).or_insert(granted);
                match self.tally() {
                    Tally::Won => return self.campaign_won(campaigning_pre_vote),
                    Tally::Lost => self.become_follower(self.term, NO_NODE),
                    Tally::Pending => {}
                }
            }
            MessageBody::RequestVote { .. }
            | MessageBody::AppendEntriesResponse(_)
            | MessageBody::HeartbeatResponse { .. }
            | MessageBody::TimeoutNow
            | MessageBody::ForwardProposal { .. }
            | MessageBody::ForwardReadIndex { .. }
            | MessageBody::ReadIndexResponse { .. } => {}
        }
        Ok(())
    }

    /// The leader's periodic duties: heartbeats, the CheckQuorum test, giving
    /// up a stalled leadership transfer, and resending lost snapshots.
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.tick_snapshots();
        if self.election_elapsed >= self.election_ticks {
            self.election_elapsed = 0;
            if self.check_quorum && !self.quorum_recently_active() {
                self.become_follower(self.term, NO_NODE);
                return;
            }
            self.transfer_target = None;
        }
        if self.heartbeat_elapsed >= self.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            let read_context = self.read_only.last_pending_context();
            self.broadcast_heartbeat(read_context);
        }
    }

    /// Whether a majority of the voters in force (counting the leader if it
    /// is one) was heard from since the last check; resets the marks for the
    /// next round.
    fn quorum_recently_active(&mut self) -> bool {
        let id = self.id;
        let conf_state = self.membership.current();
        let mut active = 0;
        for (&peer, progress) in self.progress.iter_mut() {
            if conf_state.is_voter(peer) && (peer == id || progress.recently_active) {
                active += 1;
            }
            progress.recently_active = peer == id;
        }
        active >= conf_state.quorum()
    }
}
