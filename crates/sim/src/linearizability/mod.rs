//! Linearizability checking of client histories recorded by the simulator,
//! and histories recorded from real clients of real members.
//!
//! Owns: the `Model` abstraction, the history types, the search and the key-
//! value model of the simulator's workload. Must never: run the cluster,
//! read clocks or depend on how a history was recorded; it judges a finished
//! history and nothing else.
//!
//! # The algorithm
//!
//! A history is linearizable when its operations can be put in one sequence
//! that (a) the sequential `Model` accepts, output by output, and (b)
//! respects real time: an operation that returned before another was called
//! comes first. The search follows Wing & Gong: lay all call and return
//! events out in time order; repeatedly pick an operation whose call comes
//! before every pending return, apply it to the model, lift it out of the
//! event list and start again; when the walk meets a return event, the
//! operation it closes can no longer be placed, so undo the last choice and
//! try the next one.
//!
//! Two of Lowe's improvements keep that from exploding:
//!
//! - Memoization: the search remembers every (set of linearized operations,
//!   model state) pair it reached. Arriving at a known pair means everything
//!   from there was or is being explored, so that branch is cut.
//! - P-compositionality: a history is linearizable exactly when each key's
//!   sub-history is, so each key is searched on its own and the search space
//!   is the product of small ones rather than one huge one.
//!
//! Every search is bounded by `Limits::states_explored_per_key_max`; hitting
//! it yields `Verdict::Unknown`, never an endless run.
//!
//! # Unknown outcomes
//!
//! A client that timed out or crashed does not know whether its operation
//! took effect. Such an operation (`Outcome::Unknown`) has a call event but
//! no return event: it may be linearized anywhere after its call, with no
//! upper bound, using `Model::step_unobserved` since there is no output to
//! match; or it may be left out entirely, because the search succeeds as
//! soon as every operation with a seen answer is placed.
//!
//! That freedom multiplies the search space, so three rules prune it, each
//! resting on one fact: placing an unknown-outcome operation only takes
//! options away, since nothing is obliged to follow it.
//!
//! - An unknown step that would leave the state unchanged (an unanswered
//!   Get, a CAS whose compare fails) is never taken.
//! - A configuration is skipped when one reached before had the same
//!   returned operations placed, the same state and a subset of its
//!   unknown-outcome operations placed (see `memo`).
//! - Two unknown-outcome operations in a row are not taken when the second
//!   alone, placed instead of the first, reaches the same state (an unknown
//!   Put overwritten by another before anyone looked).
//!
//! Returned operations are tried before unknown-outcome ones, so the latter
//! are placed as late as possible and the configurations with fewer of them
//! are reached first, where they dominate the rest.
//!
//! What remains is cheap when each write carries its own value, as the
//! simulator's workload does: a history of 4,000 operations of which a
//! fifth have unknown outcomes checks in well under a second in the test
//! profile.
//! When values repeat, an unknown write can explain many reads, and a
//! failing history with a few percent unknown outcomes can exhaust the
//! bound and come back `Verdict::Unknown`.
//!
//! Operations whose call and return touch at the same instant count as
//! concurrent, so equal time stamps never produce a false violation.
//!
//! # Use
//!
//! ```
//! use sim::linearizability::{
//!     check, KvInput, KvModel, KvOutput, Limits, Operation, Outcome, Verdict,
//! };
//!
//! let history = vec![
//!     Operation {
//!         client_id: 1,
//!         input: KvInput::Put { key: 0, value: 7 },
//!         call_time: 0,
//!         outcome: Outcome::Returned { output: KvOutput::PutDone, return_time: 10 },
//!     },
//!     Operation {
//!         client_id: 2,
//!         input: KvInput::Get { key: 0 },
//!         call_time: 20,
//!         outcome: Outcome::Returned { output: KvOutput::Value(None), return_time: 30 },
//!     },
//! ];
//! // The read missed a write that completed before the read began.
//! match check(&KvModel, &history, &Limits::default())? {
//!     Verdict::NotLinearizable(violation) => assert_eq!(violation.next_candidates, vec![1]),
//!     other => panic!("expected a violation, got {other}"),
//! }
//! # Ok::<(), sim::linearizability::HistoryError>(())
//! ```

mod check;
mod events;
mod history;
mod kv;
mod memo;
mod model;
mod search;
mod verdict;

pub use check::{check, Limits, STATES_EXPLORED_PER_KEY_MAX_DEFAULT};
pub use history::{HistoryError, Operation, Outcome};
pub use kv::{KvInput, KvKey, KvModel, KvOperation, KvOutput, KvValue};
pub use model::Model;
pub use verdict::{Verdict, Violation, EXPLANATION_PREFIX_OPERATIONS_MAX};

#[cfg(test)]
mod large;
#[cfg(test)]
mod planned;
#[cfg(test)]
mod properties;
#[cfg(test)]
mod tests;
