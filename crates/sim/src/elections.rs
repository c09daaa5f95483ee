//! The election rules, checked from the messages members send and the
//! leaders they report: one granted vote per voter per term, across
//! restarts; a leader holds the votes of a majority of its voters; and a
//! term exists only once someone campaigned in it, so a pre-vote (which
//! promises nothing) never moves a term.
//!
//! Owns: the run-wide record of granted votes and campaigned terms. Must
//! never: trust a member's own account of its votes; it counts only the
//! grants that left the members, which a restart cannot take back.

use std::collections::{BTreeMap, BTreeSet};

use raft::{Message, MessageBody, NodeId, Term};

use crate::violation::{Invariant, Violation};

type Checked = Result<(), Violation>;

/// The run-wide election checker. Feed it every member-to-member message as
/// it leaves its sender, and every member taking office.
#[derive(Debug, Default)]
pub struct ElectionChecker {
    /// The candidate each voter granted its vote to, by (voter, term).
    vote_by_voter: BTreeMap<(NodeId, Term), NodeId>,
    /// The voters that granted each candidate a vote, by (candidate, term).
    grants_by_candidate: BTreeMap<(NodeId, Term), BTreeSet<NodeId>>,
    /// Terms in which some member campaigned (sent a real vote request) or
    /// took office as the sole voter.
    campaigned_terms: BTreeSet<Term>,
}

impl ElectionChecker {
    pub fn new() -> Self {
        Self::default()
    }

    /// `message` leaves its sender.
    pub fn observe_sent(&mut self, message: &Message, time_us: u64) -> Checked {
        let term = message.term;
        match &message.body {
            MessageBody::RequestVote { pre_vote: true, .. }
            | MessageBody::RequestVoteResponse {
                pre_vote: true,
                granted: true,
            } => return Ok(()),
            MessageBody::RequestVote {
                pre_vote: false, ..
            } => {
                self.campaigned_terms.insert(term);
            }
            MessageBody::RequestVoteResponse {
                pre_vote: false,
                granted: true,
            } => self.observe_vote(message.from, message.to, term, time_us)?,
            _ => {}
        }
        self.check_term_campaigned(message, time_us)
    }

    /// `voter` granted `candidate` its vote in `term`: it may grant no other
    /// candidate in that term, even after a restart.
    fn observe_vote(
        &mut self,
        voter: NodeId,
        candidate: NodeId,
        term: Term,
        time_us: u64,
    ) -> Checked {
        let first = *self.vote_by_voter.entry((voter, term)).or_insert(candidate);
        if first != candidate {
            return Err(Violation::new(
                Invariant::DoubleVote,
                vec![voter, first, candidate],
                time_us,
                format!(
                    "node {voter} granted its term-{term} vote to node {first} and then to \
                     node {candidate}"
                ),
            ));
        }
        self.grants_by_candidate
            .entry((candidate, term))
            .or_default()
            .insert(voter);
        Ok(())
    }

    /// `leader` took office in `term`, counting the votes of `voters` (the
    /// configuration in force in its log): a majority of them, itself
    /// included, must have granted it their votes in that term. A sole
    /// voter wins alone, without asking anyone.
    pub fn observe_leader(
        &mut self,
        leader: NodeId,
        term: Term,
        voters: &[NodeId],
        time_us: u64,
    ) -> Checked {
        if voters == [leader] {
            self.campaigned_terms.insert(term);
            return Ok(());
        }
        let grants = self.grants_by_candidate.get(&(leader, term));
        let granted: Vec<NodeId> = voters
            .iter()
            .copied()
            .filter(|&voter| {
                voter == leader || grants.is_some_and(|grants| grants.contains(&voter))
            })
            .collect();
        if granted.len() * 2 > voters.len() {
            return Ok(());
        }
        Err(Violation::new(
            Invariant::LeaderWithoutMajority,
            vec![leader],
            time_us,
            format!(
                "node {leader} acts as leader of term {term} with the votes of {granted:?} \
                 only, no majority of its voters {voters:?}"
            ),
        ))
    }

    /// Every message but a pre-vote request or grant carries its sender's
    /// term, which only a campaign can have opened.
    fn check_term_campaigned(&self, message: &Message, time_us: u64) -> Checked {
        let term = message.term;
        if term == 0 || self.campaigned_terms.contains(&term) {
            return Ok(());
        }
        Err(Violation::new(
            Invariant::TermWithoutCampaign,
            vec![message.from],
            time_us,
            format!(
                "node {} sends at term {term}, in which nobody campaigned: its term was raised \
                 without an election",
                message.from
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(from: NodeId, to: NodeId, term: Term, body: MessageBody) -> Message {
        Message {
            from,
            to,
            term,
            body,
        }
    }

    fn vote_request(from: NodeId, to: NodeId, term: Term, pre_vote: bool) -> Message {
        let body = MessageBody::RequestVote {
            pre_vote,
            last_log_index: 0,
            last_log_term: 0,
            leadership_transfer: false,
        };
        message(from, to, term, body)
    }

    fn vote_reply(from: NodeId, to: NodeId, term: Term, pre_vote: bool) -> Message {
        let body = MessageBody::RequestVoteResponse {
            pre_vote,
            granted: true,
        };
        message(from, to, term, body)
    }

    const VOTERS: [NodeId; 3] = [1, 2, 3];

    #[test]
    fn a_second_vote_in_a_term_is_caught_but_a_repeated_one_is_not() {
        let mut checker = ElectionChecker::new();
        for sent in [
            vote_request(1, 2, 4, false),
            vote_request(3, 2, 4, false),
            vote_reply(2, 1, 4, false),
            vote_reply(2, 1, 4, false),
            vote_request(3, 2, 5, false),
            vote_reply(2, 3, 5, false),
        ] {
            checker.observe_sent(&sent, 0).unwrap();
        }
        let violation = checker
            .observe_sent(&vote_reply(2, 3, 4, false), 9)
            .unwrap_err();
        assert_eq!(violation.invariant, Invariant::DoubleVote);
        assert_eq!(violation.nodes, vec![2, 1, 3]);
    }

    #[test]
    fn a_leader_needs_the_votes_of_a_majority() {
        let mut checker = ElectionChecker::new();
        checker
            .observe_sent(&vote_request(1, 2, 2, false), 0)
            .unwrap();
        checker.observe_sent(&vote_reply(2, 1, 2, true), 0).unwrap();
        let violation = checker.observe_leader(1, 2, &VOTERS, 1).unwrap_err();
        assert_eq!(violation.invariant, Invariant::LeaderWithoutMajority);

        checker
            .observe_sent(&vote_reply(3, 1, 2, false), 2)
            .unwrap();
        checker.observe_leader(1, 2, &VOTERS, 3).unwrap();
        let violation = checker
            .observe_leader(1, 2, &[1, 2, 3, 4, 5], 4)
            .unwrap_err();
        assert_eq!(violation.invariant, Invariant::LeaderWithoutMajority);
    }

    #[test]
    fn a_sole_voter_leads_without_votes_and_opens_its_term() {
        let mut checker = ElectionChecker::new();
        checker.observe_leader(1, 1, &[1], 0).unwrap();
        let append = message(
            1,
            4,
            1,
            MessageBody::HeartbeatResponse { read_context: None },
        );
        checker.observe_sent(&append, 1).unwrap();
    }

    #[test]
    fn a_term_only_a_pre_vote_named_is_caught() {
        let mut checker = ElectionChecker::new();
        checker
            .observe_sent(&vote_request(1, 2, 3, true), 0)
            .unwrap();
        checker.observe_sent(&vote_reply(2, 1, 3, true), 0).unwrap();
        let reply = message(
            2,
            3,
            3,
            MessageBody::HeartbeatResponse { read_context: None },
        );
        let violation = checker.observe_sent(&reply, 1).unwrap_err();
        assert_eq!(violation.invariant, Invariant::TermWithoutCampaign);
        checker
            .observe_sent(&vote_request(1, 2, 3, false), 2)
            .unwrap();
        checker.observe_sent(&reply, 3).unwrap();
    }
}
