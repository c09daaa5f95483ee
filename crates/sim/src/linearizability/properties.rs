//! Property tests: histories generated from a sequential run and then
//! blurred in time must pass; the same histories with one read corrupted
//! must fail.

use proptest::prelude::*;
use proptest::sample::Index;

use super::planned::{corrupt_get, execute, returned_gets, Fate, PlannedInput, PlannedOperation};
use super::*;

/// Values are drawn below this, so repeats are common and the search has to
/// tell equal values apart by time alone.
const VALUE_LIMIT: KvValue = 6;
/// A value no generated operation writes.
const VALUE_NEVER_WRITTEN: KvValue = 1_000;
/// Distance between consecutive linearization points.
const EFFECT_SPACING_TICKS: u64 = 10;
/// How far a call may precede, or a return follow, its linearization
/// point: several spacings, so intervals overlap heavily.
const STRETCH_TICKS_MAX: u64 = 45;

fn planned_input() -> impl Strategy<Value = PlannedInput> {
    let key = 0..3u8;
    let value = 0..VALUE_LIMIT;
    prop_oneof![
        (key.clone(), value.clone()).prop_map(|(key, value)| PlannedInput::Put { key, value }),
        key.clone().prop_map(|key| PlannedInput::Get { key }),
        (key.clone(), value.clone()).prop_map(|(key, new)| PlannedInput::CasOnCurrent { key, new }),
        (key, proptest::option::of(value.clone()), value)
            .prop_map(|(key, expected, new)| PlannedInput::Cas { key, expected, new }),
    ]
}

fn fate() -> impl Strategy<Value = Fate> {
    prop_oneof![
        8 => Just(Fate::Returned),
        1 => Just(Fate::UnknownTookEffect),
        1 => Just(Fate::UnknownNeverTookEffect),
    ]
}

/// A sequential run with linearization points `EFFECT_SPACING_TICKS` apart,
/// each operation's interval stretched around its point by random amounts.
fn blurred_history() -> impl Strategy<Value = Vec<KvOperation>> {
    let operation = (
        0..4u64,
        planned_input(),
        0..=STRETCH_TICKS_MAX,
        1..=STRETCH_TICKS_MAX,
        fate(),
    );
    proptest::collection::vec(operation, 1..40).prop_map(|operations| {
        let plan: Vec<PlannedOperation> = operations
            .into_iter()
            .enumerate()
            .map(|(position, (client_id, input, before, after, fate))| {
                let effect_time = STRETCH_TICKS_MAX + EFFECT_SPACING_TICKS * position as u64;
                PlannedOperation {
                    client_id,
                    input,
                    call_time: effect_time - before,
                    effect_time,
                    return_time: effect_time + after,
                    fate,
                }
            })
            .collect();
        execute(&plan)
    })
}

proptest! {
    #[test]
    fn blurred_sequential_runs_are_linearizable(history in blurred_history()) {
        let verdict = check(&KvModel, &history, &Limits::default()).expect("well formed");
        prop_assert_eq!(verdict, Verdict::Linearizable);
    }

    #[test]
    fn a_read_of_a_value_never_written_is_caught(
        mut history in blurred_history(),
        which in any::<Index>(),
    ) {
        let gets = returned_gets(&history);
        prop_assume!(!gets.is_empty());
        let corrupted = gets[which.index(gets.len())];
        prop_assert!(corrupt_get(&mut history, corrupted, VALUE_NEVER_WRITTEN));
        match check(&KvModel, &history, &Limits::default()).expect("well formed") {
            Verdict::NotLinearizable(violation) => {
                prop_assert!(!violation.longest_prefix.contains(&corrupted));
                prop_assert_eq!(
                    violation.key,
                    format!("{:?}", history[corrupted].input.key())
                );
            }
            other => prop_assert!(false, "expected a violation, got {:?}", other),
        }
    }
}
