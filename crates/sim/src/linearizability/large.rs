//! Histories the size of a long simulator run: 8 clients, 500 operations
//! each, 5 keys, every client always busy so intervals overlap heavily.
//! Splitting by key and memoizing keep each test to about a second or less.

use super::planned::{corrupt_get, execute, returned_gets, Fate, PlannedInput, PlannedOperation};
use super::*;

const CLIENTS: u64 = 8;
const OPERATIONS_PER_CLIENT: usize = 500;
const KEYS: u64 = 5;
/// In the repeating-values plans values are drawn below this, which makes
/// the search work harder than the workload's unique values would.
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

/// How a plan picks the values it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Values {
    /// Few distinct values, so a read matches many writes.
    Repeating,
    /// Every write its own value, as the simulator's workload does.
    Unique,
}

/// A plan where, of every hundred operations, `unknown_percent` end with an
/// unknown outcome after taking effect and as many without taking effect.
fn large_plan(seed: u64, values: Values, unknown_percent: u64) -> Vec<PlannedOperation> {
    let mut random = SplitMix64 { state: seed };
    let mut plan = Vec::new();
    for client_id in 0..CLIENTS {
        let mut time = random.below(20);
        for _ in 0..OPERATIONS_PER_CLIENT {
            let key = random.below(KEYS) as KvKey;
            let value = match values {
                Values::Repeating => random.below(VALUE_LIMIT),
                Values::Unique => VALUE_LIMIT + plan.len() as u64,
            };
            let input = match random.below(10) {
                0..=3 => PlannedInput::Get { key },
                4..=7 => PlannedInput::Put { key, value },
                _ => PlannedInput::CasOnCurrent { key, new: value },
            };
            let roll = random.below(100);
            let fate = if roll < unknown_percent {
                Fate::UnknownTookEffect
            } else if roll < 2 * unknown_percent {
                Fate::UnknownNeverTookEffect
            } else {
                Fate::Returned
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

/// Corrupts a returned read in the middle of `history` to a value no plan
/// writes, checks, and insists the violation names that read.
fn assert_bad_read_is_caught(mut history: Vec<KvOperation>) {
    let gets = returned_gets(&history);
    let corrupted = gets[gets.len() / 2];
    assert!(corrupt_get(&mut history, corrupted, VALUE_NEVER_WRITTEN));
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

/// Above every value a plan writes: repeating values stay below
/// `VALUE_LIMIT`, unique ones below `VALUE_LIMIT` plus the operation count.
const VALUE_NEVER_WRITTEN: KvValue = VALUE_LIMIT + 1_000_000;

#[test]
fn large_overlapping_history_is_decided() {
    let history = execute(&large_plan(1, Values::Repeating, 1));
    assert_eq!(history.len(), CLIENTS as usize * OPERATIONS_PER_CLIENT);
    let verdict = check(&KvModel, &history, &Limits::default()).expect("well formed");
    assert_eq!(verdict, Verdict::Linearizable);
}

#[test]
fn large_overlapping_history_with_one_bad_read_is_caught() {
    assert_bad_read_is_caught(execute(&large_plan(2, Values::Repeating, 1)));
}

/// A fifth of the operations end with an unknown outcome, half of them
/// never taking effect: unknown outcomes may be placed anywhere after their
/// call, so this is where an unpruned search runs out of its bound.
#[test]
fn crash_heavy_history_is_decided_both_ways() {
    let history = execute(&large_plan(3, Values::Unique, 10));
    let verdict = check(&KvModel, &history, &Limits::default()).expect("well formed");
    assert_eq!(verdict, Verdict::Linearizable);
    assert_bad_read_is_caught(history);
}
