//! Test support: turns a plan of operations, each with the instant it takes
//! effect, into a history whose outputs come from running the plan
//! sequentially. Such a history is linearizable by construction, which
//! gives the property tests and the large-history test their ground truth.

use std::collections::BTreeMap;

use super::*;

/// What an operation asks for; a CAS may expect whatever the key holds when
/// it takes effect, so that generated CAS operations sometimes succeed.
#[derive(Clone, Copy, Debug)]
pub(super) enum PlannedInput {
    Put {
        key: KvKey,
        value: KvValue,
    },
    Get {
        key: KvKey,
    },
    Cas {
        key: KvKey,
        expected: Option<KvValue>,
        new: KvValue,
    },
    CasOnCurrent {
        key: KvKey,
        new: KvValue,
    },
}

/// What the client learns, and whether an unanswered operation took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fate {
    Returned,
    UnknownTookEffect,
    UnknownNeverTookEffect,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct PlannedOperation {
    pub client_id: u64,
    pub input: PlannedInput,
    pub call_time: u64,
    /// The linearization point; `call_time <= effect_time < return_time`.
    pub effect_time: u64,
    pub return_time: u64,
    pub fate: Fate,
}

/// Runs `plan` in effect-time order (ties in plan order) against a map of
/// key to value and records what each client would have seen.
pub(super) fn execute(plan: &[PlannedOperation]) -> Vec<KvOperation> {
    let mut order: Vec<usize> = (0..plan.len()).collect();
    order.sort_by_key(|&index| (plan[index].effect_time, index));
    let mut store: BTreeMap<KvKey, KvValue> = BTreeMap::new();
    let mut history: Vec<Option<KvOperation>> = vec![None; plan.len()];
    for index in order {
        let planned = plan[index];
        assert!(planned.call_time <= planned.effect_time);
        assert!(planned.effect_time < planned.return_time);
        let input = match planned.input {
            PlannedInput::Put { key, value } => KvInput::Put { key, value },
            PlannedInput::Get { key } => KvInput::Get { key },
            PlannedInput::Cas { key, expected, new } => KvInput::Cas { key, expected, new },
            PlannedInput::CasOnCurrent { key, new } => KvInput::Cas {
                key,
                expected: store.get(&key).copied(),
                new,
            },
        };
        let output = apply(
            &mut store,
            input,
            planned.fate != Fate::UnknownNeverTookEffect,
        );
        let outcome = match planned.fate {
            Fate::Returned => Outcome::Returned {
                output,
                return_time: planned.return_time,
            },
            Fate::UnknownTookEffect | Fate::UnknownNeverTookEffect => Outcome::Unknown,
        };
        history[index] = Some(Operation {
            client_id: planned.client_id,
            input,
            call_time: planned.call_time,
            outcome,
        });
    }
    history.into_iter().flatten().collect()
}

/// The key-value store's behaviour, written independently of `KvModel` so
/// the tests do not grade the model against itself.
fn apply(store: &mut BTreeMap<KvKey, KvValue>, input: KvInput, takes_effect: bool) -> KvOutput {
    let current = |store: &BTreeMap<KvKey, KvValue>, key| store.get(&key).copied();
    match input {
        KvInput::Put { key, value } => {
            if takes_effect {
                store.insert(key, value);
            }
            KvOutput::PutDone
        }
        KvInput::Get { key } => KvOutput::Value(current(store, key)),
        KvInput::Delete { key } => {
            let existed = current(store, key).is_some();
            if takes_effect {
                store.remove(&key);
            }
            KvOutput::Deleted { existed }
        }
        KvInput::Cas { key, expected, new } => {
            let succeeded = current(store, key) == expected;
            if succeeded && takes_effect {
                store.insert(key, new);
            }
            KvOutput::CasDone { succeeded }
        }
    }
}

/// Replaces the output of the returned Get at `history[index]` with a value
/// no operation writes. Returns false when that operation is not one.
pub(super) fn corrupt_get(
    history: &mut [KvOperation],
    index: usize,
    never_written: KvValue,
) -> bool {
    let operation = &mut history[index];
    match (&operation.input, &mut operation.outcome) {
        (KvInput::Get { .. }, Outcome::Returned { output, .. }) => {
            *output = KvOutput::Value(Some(never_written));
            true
        }
        _ => false,
    }
}

/// Indices of the Gets whose answer the client saw.
pub(super) fn returned_gets(history: &[KvOperation]) -> Vec<usize> {
    (0..history.len())
        .filter(|&index| {
            matches!(history[index].input, KvInput::Get { .. }) && history[index].is_returned()
        })
        .collect()
}
