//! The membership fault: while the clients work, a learner is added on a
//! spare host through the Cluster API and started with
//! `--initial-cluster-state existing`; when the fault heals it is promoted
//! (asked again while the members say it has not caught up, as etcd's
//! clients must) and a member is removed, perhaps the leader or the one
//! just promoted. The cluster keeps its size, so a run never drops below
//! the voters it started with, and the removed member's host becomes the
//! next spare.
//!
//! Owns: the order of the changes and their record. Must never: count a
//! member in the cluster before it was added or after it was removed (the
//! after-heal checks ask exactly the members in the cluster).

use std::fmt;

use crate::cluster_api::{
    add_member, member_id_with_peer_url, promote_member, remove_member_with_peer_url,
};
use crate::faults::FaultError;
use crate::hosts::Hosts;
use crate::members::Members;

/// The changes one membership fault made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MembershipChange {
    pub learner: String,
    pub learner_id: u64,
    /// How often the members answered that the learner had not caught up
    /// before they promoted it.
    pub not_ready_answers: u32,
    pub removed: String,
    pub removed_id: u64,
}

impl fmt::Display for MembershipChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} added as learner {:x}, promoted (after {} \"not in sync\" answers); {} removed ({:x})",
            self.learner, self.learner_id, self.not_ready_answers, self.removed, self.removed_id
        )
    }
}

/// Adds spare host `learner`'s member to the cluster as a learner and
/// starts it, empty, to join.
pub async fn add_learner(
    hosts: &Hosts,
    members: &mut Members,
    learner: usize,
) -> Result<(), FaultError> {
    let voters = members.client_urls_of_cluster_but(learner);
    add_member(&voters, members.peer_url(learner), true).await?;
    members.join(learner)?;
    members.start(hosts, learner)?;
    Ok(())
}

/// Promotes `learner` once it has caught up, then removes `removed` and
/// stops it, its host a spare from then on.
pub async fn promote_and_remove(
    members: &mut Members,
    learner: usize,
    removed: usize,
) -> Result<MembershipChange, FaultError> {
    let voters = members.client_urls_of_cluster_but(learner);
    let learner_id = member_id_with_peer_url(&voters, members.peer_url(learner)).await?;
    let not_ready_answers = promote_member(&voters, learner_id).await?;
    // Asked last of all, `removed` itself: only the leader takes the
    // change, and it may be the leader.
    let mut asked = members.client_urls_of_cluster_but(removed);
    asked.push(members.client_url(removed).to_owned());
    let removed_id = remove_member_with_peer_url(&asked, members.peer_url(removed)).await?;
    members.leave(removed)?;
    Ok(MembershipChange {
        learner: members.name(learner).to_owned(),
        learner_id,
        not_ready_answers,
        removed: members.name(removed).to_owned(),
        removed_id,
    })
}
