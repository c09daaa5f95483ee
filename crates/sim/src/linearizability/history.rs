//! The record of one client operation as its client observed it, and the
//! checks that a history is well formed before the search trusts it.
//!
//! Owns: `Operation`, `Outcome`, `HistoryError`. Must never: interpret inputs
//! or outputs (that is the model's job) or search for a linearization.

/// One operation a client issued, as seen from the client's side.
///
/// Times are the simulator's virtual-time stamps, or for real clients the
/// nanoseconds of one monotonic clock since the history began; only their
/// order matters, so any unit works as long as one history uses one clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<Input, Output> {
    /// Which client issued the operation; used only to explain violations.
    pub client_id: u64,
    /// What the client asked for.
    pub input: Input,
    /// When the client sent the request.
    pub call_time: u64,
    /// Whether and when the client saw an answer.
    pub outcome: Outcome<Output>,
}

/// What the client learned about an operation it issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<Output> {
    /// The client saw `output` at `return_time`, which is after the call.
    /// The operation took effect exactly once, somewhere in between.
    Returned { output: Output, return_time: u64 },
    /// The client timed out or crashed before seeing an answer. The
    /// operation may have taken effect at any point after its call, with no
    /// upper bound, or never.
    Unknown,
}

impl<Input, Output> Operation<Input, Output> {
    /// The time the client saw the answer, or `None` when it never did.
    pub fn return_time(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Returned { return_time, .. } => Some(return_time),
            Outcome::Unknown => None,
        }
    }

    /// Whether the client saw an answer, which obliges the operation to have
    /// taken effect.
    pub fn is_returned(&self) -> bool {
        matches!(self.outcome, Outcome::Returned { .. })
    }
}

/// A history the checker refuses to judge because it cannot have come from a
/// real execution, or because an output does not belong to its input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// An operation returned at or before the moment it was called.
    #[error(
        "history operation #{operation_index} (client {client_id}) returned at \
         {return_time}, not after its call at {call_time}; record the return time \
         from the same clock, strictly after the call"
    )]
    ReturnNotAfterCall {
        operation_index: usize,
        client_id: u64,
        call_time: u64,
        return_time: u64,
    },
    /// The model says this output can never answer this input (for example
    /// a Get answered with a CAS result).
    #[error(
        "history operation #{operation_index} (client {client_id}) has an output \
         that cannot answer its input: {reason}; fix how the workload records \
         responses"
    )]
    OutputDoesNotFitInput {
        operation_index: usize,
        client_id: u64,
        reason: String,
    },
}
