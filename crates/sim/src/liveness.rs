//! The liveness promises a healed cluster must keep: a stable leader within
//! a bounded number of election timeouts, and every pending client operation
//! answered (and every member caught up) within a bounded time.
//!
//! Owns: the verdict on one observation of a healed cluster. Must never:
//! observe the cluster itself (the world hands it a [`HealedProgress`]) or
//! judge a cluster that still suffers faults.

use raft::{LogIndex, NodeId};

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
