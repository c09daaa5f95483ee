//! [`LeaseClock`]: the leader's in-memory deadlines of the granted leases.
//!
//! The state machine holds which leases exist and their granted TTL; how long
//! each has left is not replicated (as in etcd 3.4 without checkpoints), so
//! only the member that leads keeps deadlines. When it starts leading (a new
//! term), every lease gets its whole TTL plus an extension of one election
//! timeout, as etcd's promotion does, so no lease expires because its keeper
//! changed. A member that stops leading forgets every deadline. Pure: time is
//! passed in, and it never proposes anything itself (see `lease::Lessor`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A deadline beyond any TTL a lease can hold, for TTLs whose deadline the
/// platform's clock cannot represent.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// One lease as the leader tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tracked {
    ttl_seconds: i64,
    deadline: Instant,
    /// When a revoke for this expired lease was last proposed.
    revoke_proposed_at: Option<Instant>,
}

/// What renewing a lease did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Renewal {
    /// The lease lives `ttl_seconds` from now.
    Renewed { ttl_seconds: i64 },
    /// Its deadline passed; it is being revoked and can no longer be renewed.
    Expired,
    /// This member does not lead, so it keeps no deadlines.
    NotLeading,
}

/// The leader's deadlines; empty on a follower.
#[derive(Debug, Default)]
pub(crate) struct LeaseClock {
    /// The term this member leads in, while it leads.
    leading_term: Option<u64>,
    /// The store's lease generation the tracked set was read at.
    generation: Option<u64>,
    leases: HashMap<i64, Tracked>,
}

/// `now` plus `seconds` (negative counts as 0), or far ahead when the clock
/// cannot represent that.
fn deadline_after(now: Instant, seconds: i64, extra: Duration) -> Instant {
    let ttl = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
    now.checked_add(ttl + extra)
        .or_else(|| now.checked_add(FAR_FUTURE))
        .unwrap_or(now)
}

impl LeaseClock {
    /// Whether this member keeps deadlines (leads).
    pub(crate) fn is_leading(&self) -> bool {
        self.leading_term.is_some()
    }

    /// Whether `sync` must read the store's leases: this member's role or
    /// term changed, or the set of leases did.
    pub(crate) fn needs_leases(&self, leading_term: Option<u64>, generation: u64) -> bool {
        leading_term.is_some()
            && (self.leading_term != leading_term || self.generation != Some(generation))
    }

    /// Follows the member's role and the store's leases. `leases` (id, TTL)
    /// must be the store's set at `generation` or later, and is needed only
    /// when [`LeaseClock::needs_leases`] says so.
    pub(crate) fn sync(
        &mut self,
        now: Instant,
        leading_term: Option<u64>,
        generation: u64,
        leases: &[(i64, i64)],
        promotion_extension: Duration,
    ) {
        let Some(term) = leading_term else {
            self.leading_term = None;
            self.generation = None;
            self.leases.clear();
            return;
        };
        if self.leading_term != Some(term) {
            self.leases = leases
                .iter()
                .map(|&(id, ttl_seconds)| {
                    let deadline = deadline_after(now, ttl_seconds, promotion_extension);
                    (id, Tracked::new(ttl_seconds, deadline))
                })
                .collect();
        } else if self.generation != Some(generation) {
            let mut next = HashMap::with_capacity(leases.len());
            for &(id, ttl_seconds) in leases {
                let tracked = self.leases.get(&id).copied().unwrap_or_else(|| {
                    Tracked::new(
                        ttl_seconds,
                        deadline_after(now, ttl_seconds, Duration::ZERO),
                    )
                });
                next.insert(id, tracked);
            }
            self.leases = next;
        }
        self.leading_term = Some(term);
        self.generation = Some(generation);
    }

    /// Gives the lease its whole TTL again from `now` (etcd's Renew). A lease
    /// granted since the last sync is tracked from here on.
    pub(crate) fn renew(&mut self, now: Instant, id: i64, ttl_seconds: i64) -> Renewal {
        if !self.is_leading() {
            return Renewal::NotLeading;
        }
        let tracked = self.leases.entry(id).or_insert_with(|| {
            Tracked::new(
                ttl_seconds,
                deadline_after(now, ttl_seconds, Duration::ZERO),
            )
        });
        if tracked.deadline <= now {
            return Renewal::Expired;
        }
        tracked.ttl_seconds = ttl_seconds;
        tracked.deadline = deadline_after(now, ttl_seconds, Duration::ZERO);
        Renewal::Renewed { ttl_seconds }
    }

    /// Whole seconds the lease has left (negative once past its deadline, as
    /// etcd reports); `None` when this member does not lead or does not
    /// track the lease.
    pub(crate) fn remaining_seconds(&self, now: Instant, id: i64) -> Option<i64> {
        if !self.is_leading() {
            return None;
        }
        let deadline = self.leases.get(&id)?.deadline;
        let seconds = if deadline >= now {
            i64::try_from((deadline - now).as_secs()).unwrap_or(i64::MAX)
        } else {
            -i64::try_from((now - deadline).as_secs()).unwrap_or(i64::MAX)
        };
        Some(seconds)
    }

    /// Up to `count_max` leases past their deadline that need a revoke
    /// proposed: never proposed, or proposed longer than `retry_after` ago
    /// and still here. Marks them proposed at `now`; earliest deadline first.
    pub(crate) fn take_expired(
        &mut self,
        now: Instant,
        count_max: usize,
        retry_after: Duration,
    ) -> Vec<i64> {
        if !self.is_leading() {
            return Vec::new();
        }
        let mut due: Vec<(Instant, i64)> = self
            .leases
            .iter()
            .filter(|(_, tracked)| {
                tracked.deadline <= now
                    && tracked
                        .revoke_proposed_at
                        .is_none_or(|proposed| now.duration_since(proposed) >= retry_after)
            })
            .map(|(&id, tracked)| (tracked.deadline, id))
            .collect();
        due.sort_unstable();
        due.truncate(count_max);
        for (_, id) in &due {
            if let Some(tracked) = self.leases.get_mut(id) {
                tracked.revoke_proposed_at = Some(now);
            }
        }
        due.into_iter().map(|(_, id)| id).collect()
    }

    /// A proposed revoke failed (leadership moved, timeout): it may be
    /// proposed again at the next check.
    pub(crate) fn revoke_failed(&mut self, id: i64) {
        if let Some(tracked) = self.leases.get_mut(&id) {
            tracked.revoke_proposed_at = None;
        }
    }
}

impl Tracked {
    fn new(ttl_seconds: i64, deadline: Instant) -> Self {
        Self {
            ttl_seconds,
            deadline,
            revoke_proposed_at: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXTENSION: Duration = Duration::from_secs(1);
    const RETRY: Duration = Duration::from_secs(5);

    fn seconds(count: u64) -> Duration {
        Duration::from_secs(count)
    }

    fn leading(now: Instant, leases: &[(i64, i64)]) -> LeaseClock {
        let mut clock = LeaseClock::default();
        assert!(clock.needs_leases(Some(3), 0));
        clock.sync(now, Some(3), 0, leases, EXTENSION);
        assert!(!clock.needs_leases(Some(3), 0));
        clock
    }

    #[test]
    fn a_new_leader_gives_every_lease_its_ttl_plus_the_extension() {
        let start = Instant::now();
        let mut clock = leading(start, &[(1, 10), (2, 2)]);
        assert_eq!(clock.remaining_seconds(start, 1), Some(11));
        assert_eq!(clock.take_expired(start + seconds(2), 10, RETRY), []);
        assert_eq!(clock.take_expired(start + seconds(3), 10, RETRY), [2]);
        // Leading again in a later term starts every lease afresh.
        let later = start + seconds(9);
        clock.sync(later, Some(4), 0, &[(1, 10), (2, 2)], EXTENSION);
        assert_eq!(clock.remaining_seconds(later, 1), Some(11));
        assert_eq!(clock.remaining_seconds(later, 2), Some(3));
    }

    #[test]
    fn a_follower_keeps_no_deadlines() {
        let start = Instant::now();
        let mut clock = leading(start, &[(1, 1)]);
        clock.sync(start, None, 0, &[], EXTENSION);
        assert!(!clock.needs_leases(None, 1));
        assert_eq!(clock.renew(start, 1, 1), Renewal::NotLeading);
        assert_eq!(clock.remaining_seconds(start, 1), None);
        assert_eq!(clock.take_expired(start + seconds(60), 10, RETRY), []);
    }

    #[test]
    fn renewing_restarts_the_ttl_until_the_deadline_passes() {
        let start = Instant::now();
        let mut clock = leading(start, &[(1, 4)]);
        let renewed_at = start + seconds(4);
        assert_eq!(
            clock.renew(renewed_at, 1, 4),
            Renewal::Renewed { ttl_seconds: 4 }
        );
        assert_eq!(clock.remaining_seconds(renewed_at, 1), Some(4));
        assert_eq!(clock.take_expired(renewed_at + seconds(3), 10, RETRY), []);
        let expired_at = renewed_at + seconds(4);
        assert_eq!(
            clock.remaining_seconds(expired_at + seconds(2), 1),
            Some(-2)
        );
        assert_eq!(clock.renew(expired_at, 1, 4), Renewal::Expired);
    }

    #[test]
    fn new_leases_start_at_sync_and_vanished_ones_are_dropped() {
        let start = Instant::now();
        let mut clock = leading(start, &[(1, 5)]);
        let later = start + seconds(3);
        assert!(clock.needs_leases(Some(3), 1));
        clock.sync(later, Some(3), 1, &[(1, 5), (2, 5)], EXTENSION);
        assert_eq!(clock.remaining_seconds(later, 1), Some(3));
        assert_eq!(clock.remaining_seconds(later, 2), Some(5));
        clock.sync(later, Some(3), 2, &[(2, 5)], EXTENSION);
        assert_eq!(clock.remaining_seconds(later, 1), None);
        // A lease granted but not yet synced is tracked on its first renewal.
        assert_eq!(
            clock.renew(later, 7, 9),
            Renewal::Renewed { ttl_seconds: 9 }
        );
        assert_eq!(clock.remaining_seconds(later, 7), Some(9));
    }

    #[test]
    fn expired_leases_are_handed_out_once_in_bounded_batches() {
        let start = Instant::now();
        let leases: Vec<(i64, i64)> = (1..=5).map(|id| (id, id)).collect();
        let mut clock = leading(start, &leases);
        let late = start + seconds(20);
        assert_eq!(clock.take_expired(late, 2, RETRY), [1, 2]);
        assert_eq!(clock.take_expired(late, 2, RETRY), [3, 4]);
        assert_eq!(clock.take_expired(late, 2, RETRY), [5]);
        assert_eq!(clock.take_expired(late, 2, RETRY), []);
        clock.revoke_failed(4);
        assert_eq!(clock.take_expired(late, 2, RETRY), [4]);
        // A revoke that neither failed nor took effect is proposed again.
        assert_eq!(clock.take_expired(late + RETRY, 2, RETRY), [1, 2]);
    }

    #[test]
    fn huge_ttls_do_not_overflow_the_clock() {
        let start = Instant::now();
        let clock = leading(start, &[(1, mvcc::LEASE_TTL_SECONDS_MAX)]);
        assert!(clock.remaining_seconds(start, 1).unwrap() > 1_000_000_000);
    }
}
