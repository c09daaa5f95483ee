//! The sequential specification of the simulator's key-value workload:
//! Put, Get, Delete and compare-and-swap on a small key space holding u64
//! values.
//!
//! Owns: `KvModel` and its input and output types. Must never: know about
//! the wire format; the workload maps these to etcd requests and back.
//! Keys and values are integers so that states are cheap to clone and hash;
//! a workload that writes each value once makes stale reads easy to spot.

use super::history::Operation;
use super::model::Model;

/// A key of the workload's small key space.
pub type KvKey = u8;
/// A value; unique per write in the simulator's workload.
pub type KvValue = u64;

/// A key-value store, partitioned by key: each key is an independent
/// register whose state is its value, `None` while absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvModel;

/// A client request to the key-value store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Set `key` to `value`.
    Put { key: KvKey, value: KvValue },
    /// Read `key`.
    Get { key: KvKey },
    /// Remove `key`; it is absent afterwards.
    Delete { key: KvKey },
    /// Set `key` to `new` only if it currently holds `expected`, where
    /// `None` means the key is absent.
    Cas {
        key: KvKey,
        expected: Option<KvValue>,
        new: KvValue,
    },
}

/// The store's answer to a `KvInput` of the same name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The put was applied.
    PutDone,
    /// The value a Get read, `None` when the key was absent.
    Value(Option<KvValue>),
    /// Whether the compare matched and the new value was written.
    CasDone { succeeded: bool },
    /// Whether the key was present, and so removed.
    Deleted { existed: bool },
}

/// One operation of a key-value history.
pub type KvOperation = Operation<KvInput, KvOutput>;

impl KvInput {
    /// The key the request touches.
    pub fn key(&self) -> KvKey {
        match *self {
            KvInput::Put { key, .. }
            | KvInput::Get { key }
            | KvInput::Delete { key }
            | KvInput::Cas { key, .. } => key,
        }
    }
}

impl Model for KvModel {
    type State = Option<KvValue>;
    type Input = KvInput;
    type Output = KvOutput;
    type Key = KvKey;

    fn init(&self) -> Option<KvValue> {
        None
    }

    fn step(
        &self,
        state: &Option<KvValue>,
        input: &KvInput,
        output: &KvOutput,
    ) -> Option<Option<KvValue>> {
        match (*input, *output) {
            (KvInput::Put { value, .. }, KvOutput::PutDone) => Some(Some(value)),
            (KvInput::Get { .. }, KvOutput::Value(value)) => (value == *state).then_some(*state),
            (KvInput::Delete { .. }, KvOutput::Deleted { existed }) => {
                (existed == state.is_some()).then_some(None)
            }
            (KvInput::Cas { expected, new, .. }, KvOutput::CasDone { succeeded }) => {
                let matches = expected == *state;
                (matches == succeeded).then_some(if succeeded { Some(new) } else { *state })
            }
            _ => None,
        }
    }

    fn step_unobserved(&self, state: &Option<KvValue>, input: &KvInput) -> Vec<Option<KvValue>> {
        match *input {
            KvInput::Put { value, .. } => vec![Some(value)],
            KvInput::Get { .. } => vec![*state],
            KvInput::Delete { .. } => vec![None],
            KvInput::Cas { expected, new, .. } => {
                vec![if expected == *state {
                    Some(new)
                } else {
                    *state
                }]
            }
        }
    }

    fn key(&self, input: &KvInput) -> KvKey {
        input.key()
    }

    fn output_mismatch(&self, input: &KvInput, output: &KvOutput) -> Option<String> {
        let fits = matches!(
            (input, output),
            (KvInput::Put { .. }, KvOutput::PutDone)
                | (KvInput::Get { .. }, KvOutput::Value(_))
                | (KvInput::Delete { .. }, KvOutput::Deleted { .. })
                | (KvInput::Cas { .. }, KvOutput::CasDone { .. })
        );
        (!fits).then(|| format!("{input:?} cannot be answered by {output:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_accepts_only_the_current_value() {
        let get = KvInput::Get { key: 1 };
        let answer = KvOutput::Value;
        assert_eq!(
            KvModel.step(&Some(3), &get, &answer(Some(3))),
            Some(Some(3))
        );
        assert_eq!(KvModel.step(&Some(3), &get, &answer(Some(4))), None);
        assert_eq!(KvModel.step(&None, &get, &answer(None)), Some(None));
        assert_eq!(KvModel.step(&None, &get, &answer(Some(3))), None);
    }

    #[test]
    fn cas_succeeds_exactly_when_expected_matches() {
        let cas = KvInput::Cas {
            key: 1,
            expected: Some(3),
            new: 4,
        };
        let answer = |succeeded| KvOutput::CasDone { succeeded };
        assert_eq!(KvModel.step(&Some(3), &cas, &answer(true)), Some(Some(4)));
        assert_eq!(KvModel.step(&Some(3), &cas, &answer(false)), None);
        assert_eq!(KvModel.step(&Some(5), &cas, &answer(false)), Some(Some(5)));
        assert_eq!(KvModel.step(&Some(5), &cas, &answer(true)), None);
        let create = KvInput::Cas {
            key: 1,
            expected: None,
            new: 7,
        };
        assert_eq!(KvModel.step(&None, &create, &answer(true)), Some(Some(7)));
        assert_eq!(KvModel.step(&Some(7), &create, &answer(true)), None);
    }

    #[test]
    fn delete_leaves_the_key_absent_and_reports_whether_it_was_there() {
        let delete = KvInput::Delete { key: 1 };
        let answer = |existed| KvOutput::Deleted { existed };
        assert_eq!(KvModel.step(&Some(3), &delete, &answer(true)), Some(None));
        assert_eq!(KvModel.step(&Some(3), &delete, &answer(false)), None);
        assert_eq!(KvModel.step(&None, &delete, &answer(false)), Some(None));
        assert_eq!(KvModel.step(&None, &delete, &answer(true)), None);
        assert_eq!(KvModel.step_unobserved(&Some(3), &delete), vec![None]);
    }

    #[test]
    fn unobserved_steps_follow_the_same_rules() {
        let cas = KvInput::Cas {
            key: 1,
            expected: None,
            new: 2,
        };
        assert_eq!(KvModel.step_unobserved(&None, &cas), vec![Some(2)]);
        assert_eq!(KvModel.step_unobserved(&Some(9), &cas), vec![Some(9)]);
        let put = KvInput::Put { key: 1, value: 5 };
        assert_eq!(KvModel.step_unobserved(&Some(9), &put), vec![Some(5)]);
    }

    #[test]
    fn output_of_another_kind_is_a_mismatch() {
        let get = KvInput::Get { key: 1 };
        assert!(KvModel
            .output_mismatch(&get, &KvOutput::CasDone { succeeded: true })
            .is_some());
        assert!(KvModel
            .output_mismatch(&get, &KvOutput::Value(None))
            .is_none());
    }
}
