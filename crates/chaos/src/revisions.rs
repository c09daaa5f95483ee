//! The header revisions clients saw, and the check that none went
//! backwards: a member's store only moves forward, so a client that asks
//! the same member again must never see an older revision than before
//! (a restarted member that lost applied writes, or a read served from a
//! stale copy, shows up here).
//!
//! Owns: the record of one answer's revision and the check. Must never:
//! compare revisions from different members (followers lag the leader, so
//! a client that fails over may legitimately see an older one).

use std::collections::HashMap;

/// One answer's header revision, as a client received it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RevisionSeen {
    pub client_id: u64,
    /// The member (index) that answered.
    pub member: usize,
    pub revision: i64,
    /// When the client received it, on the history's clock.
    pub returned_ns: u64,
}

/// A client that saw a member's revision go backwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regression {
    pub client_id: u64,
    pub member: usize,
    /// The highest revision the client had seen from the member before.
    pub before: i64,
    /// The lower one it saw next, at `returned_ns`.
    pub after: i64,
    pub returned_ns: u64,
}

/// Every answer whose revision is below one the same client saw earlier
/// from the same member. Answers are ordered by the time they were received.
pub fn regressions(seen: &[RevisionSeen]) -> Vec<Regression> {
    let mut ordered: Vec<&RevisionSeen> = seen.iter().collect();
    ordered.sort_by_key(|answer| answer.returned_ns);
    let mut highest: HashMap<(u64, usize), i64> = HashMap::new();
    let mut found = Vec::new();
    for answer in ordered {
        let before = highest
            .entry((answer.client_id, answer.member))
            .or_insert(answer.revision);
        if answer.revision < *before {
            found.push(Regression {
                client_id: answer.client_id,
                member: answer.member,
                before: *before,
                after: answer.revision,
                returned_ns: answer.returned_ns,
            });
        } else {
            *before = answer.revision;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(client_id: u64, member: usize, revision: i64, returned_ns: u64) -> RevisionSeen {
        RevisionSeen {
            client_id,
            member,
            revision,
            returned_ns,
        }
    }

    #[test]
    fn a_member_answering_an_older_revision_is_a_regression() {
        let history = [
            seen(1, 0, 5, 10),
            seen(1, 0, 9, 20),
            seen(1, 0, 9, 30),
            seen(1, 0, 7, 40),
        ];
        assert_eq!(
            regressions(&history),
            vec![Regression {
                client_id: 1,
                member: 0,
                before: 9,
                after: 7,
                returned_ns: 40,
            }]
        );
    }

    #[test]
    fn answers_are_taken_in_the_order_received_not_the_order_listed() {
        let history = [seen(1, 0, 7, 40), seen(1, 0, 9, 20)];
        assert_eq!(regressions(&history).len(), 1);
    }

    #[test]
    fn a_lower_revision_from_another_member_or_to_another_client_is_fine() {
        let history = [
            seen(1, 0, 9, 10),
            // Failed over to a lagging follower.
            seen(1, 1, 6, 20),
            // Another client, which never saw 9.
            seen(2, 0, 8, 30),
            seen(1, 0, 9, 40),
        ];
        assert!(regressions(&history).is_empty());
    }
}
