//! The sequential specification a history is checked against.
//!
//! Owns: the `Model` trait. Must never: know about time, clients or the
//! search; a model only says which steps a single-threaded object can take.

use std::fmt::Debug;
use std::hash::Hash;

/// A sequential object: its states and which (input, output) steps it allows.
///
/// Every method must be a pure function of its arguments: the search calls
/// them again when it backtracks and relies on getting the same answer.
pub trait Model {
    /// The object's state. `Eq + Hash` because the search remembers every
    /// (set of linearized operations, state) pair it has already explored.
    /// Keep it small: it is cloned and hashed on every step.
    type State: Clone + Eq + Hash + Debug;
    /// What a client asks the object to do.
    type Input: Debug;
    /// What the object answers.
    type Output: Eq + Debug;
    /// Operations on different keys never constrain each other, so each key
    /// is checked on its own (P-compositionality). A model without such a
    /// split returns one key for everything.
    type Key: Ord + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The state after `input` answered with `output` from `state`, or `None`
    /// when that answer is impossible from that state.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: &Self::Output,
    ) -> Option<Self::State>;

    /// Every state `input` could leave behind from `state` when its output was
    /// never observed, assuming it took effect. The checker separately
    /// considers that it never took effect, so that case is not listed here.
    fn step_unobserved(&self, state: &Self::State, input: &Self::Input) -> Vec<Self::State>;

    /// The partition an input belongs to.
    fn key(&self, input: &Self::Input) -> Self::Key;

    /// Explains why `output` can never answer `input` in any state (for
    /// example an output of the wrong kind), or `None` when it can. Such a
    /// pair is a broken history, reported as an error rather than as a
    /// linearizability violation.
    fn output_mismatch(&self, input: &Self::Input, output: &Self::Output) -> Option<String>;
}
