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
/// It ends with a returned read, so there is always one to corrupt.
fn blurred_history() -> impl Strategy<Value = Vec<KvOperation>> {
    let operation = (
        0..4u64,
        planned_input(),
        0..=STRETCH_TICKS_MAX,
        1..=STRETCH_TICKS_MAX,
        fate(),
    );
    let final_read = (
        0..4u64,
        0..3u8,
        0..=STRETCH_TICKS_MAX,
        1..=STRETCH_TICKS_MAX,
    )
        .prop_map(|(client_id, key, before, after)| {
            (
                client_id,
                PlannedInput::Get { key },
                before,
                after,
                Fate::Returned,
            )
        });
    (proptest::collection::vec(operation, 0..40), final_read).prop_map(|(mut operations, read)| {
        operations.push(read);
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

/// Every order brute force: is there a sequence of the operations of `key`
/// that respects real time and the model, containing every returned one
/// and any subset of the unknown-outcome ones? Exponential; small inputs
/// only.
fn linearizable_by_brute_force(history: &[KvOperation]) -> bool {
    fn extend(history: &[KvOperation], placed: &mut Vec<bool>, state: Option<KvValue>) -> bool {
        let all_returned_placed = history
            .iter()
            .zip(placed.iter())
            .all(|(operation, &placed)| placed || !operation.is_returned());
        if all_returned_placed {
            return true;
        }
        for index in 0..history.len() {
            if placed[index] || !may_come_next(history, placed, index) {
                continue;
            }
            let operation = &history[index];
            let successors: Vec<Option<KvValue>> = match &operation.outcome {
                Outcome::Returned { output, .. } => KvModel
                    .step(&state, &operation.input, output)
                    .into_iter()
                    .collect(),
                Outcome::Unknown => KvModel.step_unobserved(&state, &operation.input),
            };
            for successor in successors {
                placed[index] = true;
                let found = extend(history, placed, successor);
                placed[index] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    fn may_come_next(history: &[KvOperation], placed: &[bool], index: usize) -> bool {
        history.iter().zip(placed).all(|(other, &other_placed)| {
            other_placed
                || other
                    .return_time()
                    .is_none_or(|return_time| return_time >= history[index].call_time)
        })
    }
    let mut keys: Vec<KvKey> = history
        .iter()
        .map(|operation| operation.input.key())
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().all(|key| {
        let part: Vec<KvOperation> = history
            .iter()
            .filter(|operation| operation.input.key() == key)
            .cloned()
            .collect();
        extend(&part, &mut vec![false; part.len()], None)
    })
}

/// Any small history at all, about half of them linearizable: inputs,
/// outputs and intervals drawn independently, half the outcomes unknown so
/// that the rules for those are exercised hard, most operations on one key
/// so that they interact.
fn arbitrary_history() -> impl Strategy<Value = Vec<KvOperation>> {
    let value = 0..3u64;
    let key = || prop_oneof![3 => Just(0u8), 1 => Just(1u8)];
    let input = prop_oneof![
        (key(), value.clone()).prop_map(|(key, value)| KvInput::Put { key, value }),
        key().prop_map(|key| KvInput::Get { key }),
        key().prop_map(|key| KvInput::Delete { key }),
        (key(), proptest::option::of(value.clone()), value.clone())
            .prop_map(|(key, expected, new)| KvInput::Cas { key, expected, new }),
    ];
    let returned = prop_oneof![Just(true), Just(false)];
    let operation = (
        0..4u64,
        input,
        proptest::option::of(value),
        any::<bool>(),
        0..40u64,
        1..25u64,
        returned,
    )
        .prop_map(
            |(client_id, input, read, succeeded, call_time, duration, returned)| {
                let output = match input {
                    KvInput::Put { .. } => KvOutput::PutDone,
                    KvInput::Get { .. } => KvOutput::Value(read),
                    KvInput::Cas { .. } => KvOutput::CasDone { succeeded },
                    KvInput::Delete { .. } => KvOutput::Deleted { existed: succeeded },
                };
                let outcome = if returned {
                    Outcome::Returned {
                        output,
                        return_time: call_time + duration,
                    }
                } else {
                    Outcome::Unknown
                };
                Operation {
                    client_id,
                    input,
                    call_time,
                    outcome,
                }
            },
        );
    proptest::collection::vec(operation, 0..9)
}

proptest! {
    // Histories this small check in microseconds; many cases buy power
    // against rare interleavings of unknown outcomes.
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    /// The pruning rules (memo, dominance, no-op and overwritten unknown
    /// steps) must never change the answer.
    #[test]
    fn verdict_matches_brute_force(history in arbitrary_history()) {
        let verdict = check(&KvModel, &history, &Limits::default()).expect("well formed");
        let expected = linearizable_by_brute_force(&history);
        prop_assert_eq!(
            verdict == Verdict::Linearizable,
            expected,
            "checker said {}",
            verdict
        );
        let undecided = matches!(verdict, Verdict::Unknown { .. });
        prop_assert!(!undecided, "small histories never reach the bound");
    }
}
