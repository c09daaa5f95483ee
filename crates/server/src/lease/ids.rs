//! Lease ids the proposing member chooses when a client asks for any id.
//! Every replica must apply the same id, so it is fixed before the grant is
//! proposed. Like etcd's request id generator: the member id's low 16 bits
//! on top, below them a counter seeded from the wall clock in milliseconds
//! (so a restarted member does not reuse its earlier ids), kept to 63 bits so
//! ids are positive. Owns id choice only; a clash with an existing lease is
//! refused by the state machine with etcd's "lease already exists".

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const MEMBER_BITS_SHIFT: u32 = 48;
const COUNTER_MASK: u64 = (1 << MEMBER_BITS_SHIFT) - 1;
/// Milliseconds since the epoch keep their low 40 bits, shifted past 8
/// bits of counter, as etcd seeds its generator.
const CLOCK_BITS_MASK: u64 = (1 << 40) - 1;
const CLOCK_SHIFT: u32 = 8;

/// Positive, non-zero ids, unique per member across restarts.
#[derive(Debug)]
pub(crate) struct LeaseIds {
    prefix: u64,
    counter: AtomicU64,
}

impl LeaseIds {
    pub(crate) fn new(member_id: u64) -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64);
        Self::starting_at(member_id, millis)
    }

    fn starting_at(member_id: u64, millis: u64) -> Self {
        Self {
            prefix: (member_id & 0xffff) << MEMBER_BITS_SHIFT,
            counter: AtomicU64::new((millis & CLOCK_BITS_MASK) << CLOCK_SHIFT),
        }
    }

    pub(crate) fn next(&self) -> i64 {
        loop {
            let count = self.counter.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            let id = ((self.prefix | (count & COUNTER_MASK)) & (i64::MAX as u64)) as i64;
            if id != 0 {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_distinct_and_carry_the_member() {
        let ids = LeaseIds::starting_at(0x8e9e_05c5_2164_694d, 1_700_000_000_000);
        let first = ids.next();
        let second = ids.next();
        assert!(first > 0 && second > 0);
        assert_ne!(first, second);
        assert_eq!((first as u64) >> MEMBER_BITS_SHIFT, 0x694d & 0x7fff);
    }

    #[test]
    fn the_counter_wraps_without_yielding_zero() {
        let ids = LeaseIds {
            prefix: 0,
            counter: AtomicU64::new(COUNTER_MASK),
        };
        assert_ne!(ids.next(), 0);
    }
}
