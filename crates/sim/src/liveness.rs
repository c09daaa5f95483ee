//! The liveness promises a healed cluster must keep: a stable leader within
//! a bounded number of election timeouts, every pending client operation
//! answered (and every member caught up) within a bounded time, and, once
//! calm, no election at all: with PreVote, a healthy network with a stable
//! leader gives no member a reason to raise its term.
//!
//! Owns: the verdict on one observation of a healed cluster. Must never:
//! observe the cluster itself (the world hands it a [`HealedProgress`]) or
//! judge a cluster that still suffers faults.

use raft::{LogIndex, NodeId, Term};

use crate::violation::{Invariant, Violation};

/// How long after healing each promise may take, in virtual microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadlines {
    pub leader_us: u64,
    pub completion_us: u64,
}

/// One observation of the cluster after healing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HealedProgress {
    pub now_us: u64,
    pub elapsed_since_heal_us: u64,
    /// A stable leader was already seen at an earlier observation.
    pub leader_seen: bool,
    /// The leader a majority follows right now, if any.
    pub stable_leader: Option<NodeId>,
    /// Readable descriptions of the operations still waiting for an answer.
    pub pending_operations: Vec<String>,
    /// Members that have not applied `committed_index`, with what they applied.
    pub lagging_members: Vec<(NodeId, LogIndex)>,
    pub committed_index: LogIndex,
    pub members: Vec<NodeId>,
}

/// Judges one observation. `Ok(leader_seen)` says whether a stable leader
/// has now been seen; an `Err` names the promise that was broken.
pub fn check(progress: &HealedProgress, deadlines: Deadlines) -> Result<bool, Violation> {
    let elapsed = progress.elapsed_since_heal_us;
    let leader_seen = progress.leader_seen || progress.stable_leader.is_some();
    if !leader_seen && elapsed > deadlines.leader_us {
        return Err(Violation::new(
            Invariant::NoLeaderAfterHeal,
            progress.members.clone(),
            progress.now_us,
            format!(
                "no stable leader {} ms after all faults healed (deadline {} ms)",
                elapsed / 1000,
                deadlines.leader_us / 1000
            ),
        ));
    }
    let settled = leader_seen
        && progress.pending_operations.is_empty()
        && progress.lagging_members.is_empty();
    if !settled && elapsed > deadlines.completion_us {
        return Err(Violation::new(
            Invariant::OperationStuckAfterHeal,
            progress
                .lagging_members
                .iter()
                .map(|&(node, _)| node)
                .collect(),
            progress.now_us,
            format!(
                "{} ms after healing: client operations still pending: {:?}; members behind \
                 the commit index {} (id, applied): {:?}",
                elapsed / 1000,
                progress.pending_operations,
                progress.committed_index,
                progress.lagging_members
            ),
        ));
    }
    Ok(leader_seen)
}

/// The healthy stretch after healing. What the faults left behind settles
/// first: for one election timeout after the heal a leader that missed its
/// quorum during a partition may still step down, and a member whose timer
/// was about to fire may still campaign (without CheckQuorum it wins its
/// pre-vote), so the elections that follow are needed; so may a message
/// delayed before the heal that arrives after it (a late TimeoutNow). The calm begins
/// with the first stable leader seen once that has passed, and ends when a
/// configuration change commits (a leader that removed itself makes way for
/// a new one); the next stable leader begins a new one. During a calm no
/// member of the cluster may go above the highest term held when it began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calm {
    pub since_us: u64,
    pub highest_term: Term,
    pub conf_changes_committed: u64,
}

/// One observation of the healed cluster, for its calm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CalmObservation {
    pub now_us: u64,
    /// What the faults left behind has had its election timeout to settle.
    pub settled: bool,
    /// A leader that a majority follows is in office.
    pub stable_leader: bool,
    /// The highest term of a running member of the cluster, and who holds it.
    pub highest_term: (Term, NodeId),
    pub conf_changes_committed: u64,
}

impl Calm {
    /// The calm that begins with this observation, if the cluster has
    /// settled and a stable leader leads.
    pub fn begin(observed: &CalmObservation) -> Option<Self> {
        (observed.settled && observed.stable_leader).then_some(Self {
            since_us: observed.now_us,
            highest_term: observed.highest_term.0,
            conf_changes_committed: observed.conf_changes_committed,
        })
    }

    /// Judges one observation: the calm as it goes on (none once a
    /// configuration change ends it), or the needless election that broke it.
    pub fn check(self, observed: &CalmObservation) -> Result<Option<Calm>, Violation> {
        let (term, holder) = observed.highest_term;
        if observed.conf_changes_committed != self.conf_changes_committed {
            return Ok(Self::begin(observed));
        }
        if term > self.highest_term {
            return Err(Violation::new(
                Invariant::NeedlessElection,
                vec![holder],
                observed.now_us,
                format!(
                    "node {holder} reached term {term} in a healthy cluster: the calm began {} ms \
                     earlier at term {} with a stable leader, with no fault or configuration \
                     change since",
                    (observed.now_us - self.since_us) / 1000,
                    self.highest_term
                ),
            ));
        }
        Ok(Some(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        leader_us: 2_000_000,
        completion_us: 10_000_000,
    };

    fn healthy(elapsed_since_heal_us: u64) -> HealedProgress {
        HealedProgress {
            now_us: 5_000_000 + elapsed_since_heal_us,
            elapsed_since_heal_us,
            stable_leader: Some(1),
            members: vec![1, 2, 3],
            ..HealedProgress::default()
        }
    }

    #[test]
    fn a_settled_cluster_keeps_its_promises_forever() {
        assert_eq!(check(&healthy(50_000_000), DEADLINES), Ok(true));
    }

    #[test]
    fn no_leader_past_the_deadline_is_caught() {
        let mut progress = healthy(1_000_000);
        progress.stable_leader = None;
        assert_eq!(
            check(&progress, DEADLINES),
            Ok(false),
            "still within the deadline"
        );
        progress.elapsed_since_heal_us = 2_000_001;
        let violation = check(&progress, DEADLINES).unwrap_err();
        assert_eq!(violation.invariant, Invariant::NoLeaderAfterHeal);
        progress.leader_seen = true;
        assert_eq!(
            check(&progress, DEADLINES),
            Ok(true),
            "a leader seen earlier counts"
        );
    }

    #[test]
    fn an_operation_pending_past_the_deadline_is_caught() {
        let mut progress = healthy(9_000_000);
        progress.pending_operations = vec![String::from("client 1 request #3")];
        assert_eq!(check(&progress, DEADLINES), Ok(true));
        progress.elapsed_since_heal_us = 10_000_001;
        let violation = check(&progress, DEADLINES).unwrap_err();
        assert_eq!(violation.invariant, Invariant::OperationStuckAfterHeal);
        assert!(violation.detail.contains("client 1 request #3"));
    }

    fn calm_observation(now_us: u64, term: Term, conf_changes_committed: u64) -> CalmObservation {
        CalmObservation {
            now_us,
            settled: true,
            stable_leader: true,
            highest_term: (term, 2),
            conf_changes_committed,
        }
    }

    #[test]
    fn a_calm_begins_once_settled_with_a_stable_leader() {
        let mut unsettled = calm_observation(1_000_000, 3, 0);
        unsettled.settled = false;
        assert_eq!(Calm::begin(&unsettled), None);
        let mut leaderless = calm_observation(1_000_000, 3, 0);
        leaderless.stable_leader = false;
        assert_eq!(Calm::begin(&leaderless), None);
        assert!(Calm::begin(&calm_observation(1_000_000, 3, 0)).is_some());
    }

    #[test]
    fn a_term_raised_during_the_calm_is_a_needless_election() {
        let calm = Calm::begin(&calm_observation(1_000_000, 3, 0)).unwrap();
        let mut leaderless = calm_observation(1_300_000, 3, 0);
        leaderless.stable_leader = false;
        let calm = calm.check(&leaderless).unwrap().unwrap();
        let violation = calm.check(&calm_observation(1_400_000, 4, 0)).unwrap_err();
        assert_eq!(violation.invariant, Invariant::NeedlessElection);
        assert_eq!(violation.nodes, vec![2]);
    }

    #[test]
    fn a_committed_configuration_change_ends_the_calm() {
        let calm = Calm::begin(&calm_observation(1_000_000, 3, 0)).unwrap();
        let mut leader_removed = calm_observation(1_500_000, 3, 1);
        leader_removed.stable_leader = false;
        assert_eq!(calm.check(&leader_removed), Ok(None));
        let next = calm
            .check(&calm_observation(1_500_000, 3, 1))
            .unwrap()
            .unwrap();
        assert_eq!(next.since_us, 1_500_000);
    }

    #[test]
    fn a_member_that_never_catches_up_is_caught() {
        let mut progress = healthy(10_000_001);
        progress.committed_index = 40;
        progress.lagging_members = vec![(3, 12)];
        let violation = check(&progress, DEADLINES).unwrap_err();
        assert_eq!(violation.invariant, Invariant::OperationStuckAfterHeal);
        assert_eq!(violation.nodes, vec![3]);
    }
}
