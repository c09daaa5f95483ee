//! The core's only source of randomness: SplitMix64 seeded from the config, so
//! election timeouts are random across members yet identical across replays.

#[derive(Clone, Debug)]
pub(crate) struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^ (mixed >> 31)
    }

    /// A value in `[low, high)`; `high` must exceed `low`.
    pub(crate) fn in_range(&mut self, low: u32, high: u32) -> u32 {
        debug_assert!(high > low, "empty range [{low}, {high})");
        low + (self.next_u64() % u64::from(high - low)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_values_stay_in_range() {
        let mut first = SeededRng::new(7);
        let mut second = SeededRng::new(7);
        for _ in 0..1000 {
            let value = first.in_range(10, 20);
            assert_eq!(value, second.in_range(10, 20));
            assert!((10..20).contains(&value));
        }
    }

    #[test]
    fn different_seeds_differ() {
        let mut first = SeededRng::new(1);
        let mut second = SeededRng::new(2);
        let differ = (0..16).any(|_| first.next_u64() != second.next_u64());
        assert!(differ);
    }
}
