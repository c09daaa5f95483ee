//! A history the size of a long simulator run: 8 clients, 500 operations
//! each, 5 keys, every client always busy so intervals overlap heavily.
//! Splitting by key and memoizing keep it to well under a second.

use super::planned::{corrupt_get, execute, returned_gets, Fate, PlannedInput, PlannedOperation};
use super::*;

const CLIENTS: u64 = 8;
const OPERATIONS_PER_CLIENT: usize = 500;
const KEYS: u64 = 5;
/// Values repeat across writes, which makes the search work harder than the
/// workload's unique values would.
const VALUE_LIMIT: u64 = 4;
const DURATION_TICKS_MAX: u64 = 60;
const PAUSE_TICKS_MAX: u64 = 5;

/// SplitMix64: a fixed, dependency-free stream, so the test is the same on
/// every run.
#[derive(Debug)]
struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    fn below(&mut self, bound: u64) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (mixed ^ (mixed >> 31)) % bound
    }
}

fn large_plan(seed: u64) -> Vec<PlannedOperation> {
    let mut random = SplitMix64 { state: seed };
    let mut plan = Vec::new();
    for client_id in 0..CLIENTS {
        let mut time = random.below(20);
        for _ in 0..OPERATIONS_PER_CLIENT {
            let key = random.below(KEYS) as KvKey;
            let value = random.below(VALUE_LIMIT);
            let input = match random.below(10) {
                0..=3 => PlannedInput::Get { key },
                4..=7 => PlannedInput::Put { key, value },
                _ => PlannedInput::CasOnCurrent { key, new: value },
            };
            let fate = match random.below(100) {
                0 => Fate::UnknownTookEffect,
                1 => Fate::UnknownNeverTookEffect,
                _ => Fate::Returned,
            };
            let duration = 2 + random.below(DURATION_TICKS_MAX);
            plan.push(PlannedOperation {
                client_id,
                input,
                call_time: time,
                effect_time: time + random.below(duration),
                return_time: time + duration,
                fate,
            });
            time += duration + random.below(PAUSE_TICKS_MAX);
        }
    }
    plan
}

#[test]
fn large_overlapping_history_is_decided() {
    let history = execute(&large_plan(1));
    assert_eq!(history.len(), CLIENTS as usize * OPERATIONS_PER_CLIENT);
    let verdict = check(&KvModel, &history, &Limits::default()).expect("well formed");
    assert_eq!(verdict, Verdict::Linearizable);
}

#[test]
fn large_overlapping_history_with_one_bad_read_is_caught() {
    let mut history = execute(&large_plan(2));
    let gets = returned_gets(&history);
    let corrupted = gets[gets.len() / 2];
    assert!(corrupt_get(&mut history, corrupted, VALUE_LIMIT + 1));
    let verdict = check(&KvModel, &history, &Limits::default()).expect("well formed");
    match verdict {
        Verdict::NotLinearizable(violation) => {
            assert!(
                violation.next_candidates.contains(&corrupted),
                "{violation}"
            );
        }
        other => panic!("expected a violation, got {other}"),
    }
}
