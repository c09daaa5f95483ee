//! What the checker concludes, in a form a simulator can print as a bug
//! report.
//!
//! Owns: `Verdict`, `Violation` and their rendering. Must never: search or
//! decide anything; it only describes what the search found.

use std::fmt::{self, Debug, Write as _};

use super::history::{Operation, Outcome};

/// How many operations of the longest linearizable prefix an explanation
/// shows, counting back from its end; the earlier ones rarely matter and a
/// prefix can hold thousands.
pub const EXPLANATION_PREFIX_OPERATIONS_MAX: usize = 10;

/// The checker's conclusion about a whole history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Some order of the operations respects real time and the model.
    Linearizable,
    /// No such order exists for at least one key.
    NotLinearizable(Violation),
    /// The search hit a bound before it could decide; `reason` names the key
    /// and the bound.
    Unknown { reason: String },
}

/// Evidence that one key's operations cannot be linearized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key whose operations admit no linearization, as the model's
    /// `Debug` renders it.
    pub key: String,
    /// Indices into the checked history of the longest sequence of that
    /// key's operations that respects real time and the model, in order.
    pub longest_prefix: Vec<usize>,
    /// Indices into the checked history of the operations that could have
    /// come right after that prefix in real time; none of them fits.
    /// Unknown-outcome operations that would not change the state there (an
    /// unanswered Get, say) are left out.
    pub next_candidates: Vec<usize>,
    /// A readable account of the above, with inputs, outputs and times.
    pub explanation: String,
}

impl fmt::Display for Verdict {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(formatter, "linearizable"),
            Verdict::NotLinearizable(violation) => write!(formatter, "{violation}"),
            Verdict::Unknown { reason } => write!(formatter, "undecided: {reason}"),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.explanation)
    }
}

/// Renders a violation found on `key`. `prefix` and `candidates` are
/// indices into `history`.
pub(crate) fn explain<Key: Debug, Input: Debug, Output: Debug, State: Debug>(
    key: &Key,
    history: &[Operation<Input, Output>],
    prefix: &[usize],
    state_after_prefix: &State,
    candidates: &[usize],
) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        text,
        "not linearizable: key {key:?} has no order of its operations that respects \
         real time and the model"
    );
    let shown_first = prefix
        .len()
        .saturating_sub(EXPLANATION_PREFIX_OPERATIONS_MAX);
    let _ = writeln!(
        text,
        "longest linearizable prefix: {} operations{}",
        prefix.len(),
        if shown_first > 0 {
            format!(", the last {EXPLANATION_PREFIX_OPERATIONS_MAX} shown")
        } else {
            String::new()
        }
    );
    for &index in &prefix[shown_first..] {
        let _ = writeln!(text, "  {}", describe(index, &history[index]));
    }
    let _ = writeln!(text, "state after the prefix: {state_after_prefix:?}");
    let _ = writeln!(
        text,
        "none of these can take effect next without leading to a dead end:"
    );
    for &index in candidates {
        let _ = writeln!(text, "  {}", describe(index, &history[index]));
    }
    text
}

fn describe<Input: Debug, Output: Debug>(
    index: usize,
    operation: &Operation<Input, Output>,
) -> String {
    match &operation.outcome {
        Outcome::Returned {
            output,
            return_time,
        } => format!(
            "#{index} client {}: {:?} -> {output:?}, called at {}, returned at {return_time}",
            operation.client_id, operation.input, operation.call_time
        ),
        Outcome::Unknown => format!(
            "#{index} client {}: {:?} -> outcome unknown, called at {}",
            operation.client_id, operation.input, operation.call_time
        ),
    }
}
