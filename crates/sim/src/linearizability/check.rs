//! The entry point: validate a history, split it by key and search each
//! part on its own.
//!
//! Owns: `check`, `Limits` and the policy for combining per-key results.
//! Must never: implement the search itself or know a particular model.

use std::collections::BTreeMap;

use super::history::{HistoryError, Operation, Outcome};
use super::model::Model;
use super::search::{search, SearchOutcome};
use super::verdict::{explain, Verdict, Violation};

/// The default for `Limits::states_explored_per_key_max`. Each explored
/// state costs about a bit per operation of its key plus the model state,
/// so a million stays within a few hundred MiB for keys of a few thousand
/// operations.
pub const STATES_EXPLORED_PER_KEY_MAX_DEFAULT: u64 = 1_000_000;

/// Bounds that keep a check from running forever on a pathological history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Distinct (set of linearized operations, model state) configurations
    /// the search may explore for one key before it gives up with
    /// `Verdict::Unknown`.
    pub states_explored_per_key_max: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            states_explored_per_key_max: STATES_EXPLORED_PER_KEY_MAX_DEFAULT,
        }
    }
}

/// Decides whether `history` is linearizable with respect to `model`.
///
/// Keys are checked one by one in key order. A violation on any key makes
/// the history `NotLinearizable` even if another key hit the bound; a key
/// that hit the bound makes an otherwise clean history `Unknown`.
///
/// # Errors
///
/// `HistoryError` when an operation returns at or before its call, or its
/// output cannot answer its input; such a history cannot be judged.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    limits: &Limits,
) -> Result<Verdict, HistoryError> {
    validate(model, history)?;
    let mut first_undecided: Option<String> = None;
    for (key, indices) in partition(model, history) {
        let operations: Vec<&Operation<M::Input, M::Output>> =
            indices.iter().map(|&index| &history[index]).collect();
        match search(model, &operations, limits.states_explored_per_key_max) {
            SearchOutcome::Linearizable => {}
            SearchOutcome::NotLinearizable(counterexample) => {
                let to_history = |local: &Vec<usize>| -> Vec<usize> {
                    local.iter().map(|&position| indices[position]).collect()
                };
                let longest_prefix = to_history(&counterexample.longest_prefix);
                let next_candidates = to_history(&counterexample.next_candidates);
                let explanation = explain(
                    &key,
                    history,
                    &longest_prefix,
                    &counterexample.state_after_prefix,
                    &next_candidates,
                );
                return Ok(Verdict::NotLinearizable(Violation {
                    key: format!("{key:?}"),
                    longest_prefix,
                    next_candidates,
                    explanation,
                }));
            }
            SearchOutcome::LimitReached { states_explored } => {
                first_undecided.get_or_insert_with(|| {
                    format!(
                        "key {key:?} ({} operations): gave up after exploring \
                         {states_explored} states (Limits::states_explored_per_key_max); \
                         shorten the history or raise the bound",
                        indices.len()
                    )
                });
            }
        }
    }
    Ok(match first_undecided {
        Some(reason) => Verdict::Unknown { reason },
        None => Verdict::Linearizable,
    })
}

fn validate<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> Result<(), HistoryError> {
    for (operation_index, operation) in history.iter().enumerate() {
        let Outcome::Returned {
            output,
            return_time,
        } = &operation.outcome
        else {
            continue;
        };
        if *return_time <= operation.call_time {
            return Err(HistoryError::ReturnNotAfterCall {
                operation_index,
                client_id: operation.client_id,
                call_time: operation.call_time,
                return_time: *return_time,
            });
        }
        if let Some(reason) = model.output_mismatch(&operation.input, output) {
            return Err(HistoryError::OutputDoesNotFitInput {
                operation_index,
                client_id: operation.client_id,
                reason,
            });
        }
    }
    Ok(())
}

/// Groups history indices by key, keys in order so results are reproducible.
fn partition<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
) -> BTreeMap<M::Key, Vec<usize>> {
    let mut parts: BTreeMap<M::Key, Vec<usize>> = BTreeMap::new();
    for (index, operation) in history.iter().enumerate() {
        parts
            .entry(model.key(&operation.input))
            .or_default()
            .push(index);
    }
    debug_assert_eq!(parts.values().map(Vec::len).sum::<usize>(), history.len());
    parts
}
