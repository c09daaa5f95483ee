//! Each workload's record turned into the timeline's points: one per
//! client operation, with its outcome, and marked when the workload's
//! checker blames it. What "blamed" means follows what each checker
//! reports: for the register, the operations the linearizability checker
//! could not place after the longest valid order of the failing key (its
//! smallest failing window); for the set, the adds of elements lost,
//! present though refused, or present twice; for the watch, the writes
//! lost from the reference or at a revision some watcher got wrong.
//!
//! Owns: that mapping. Must never: leave an operation out, or blame one
//! the checker did not name.

use std::collections::HashSet;

use sim::linearizability::{KvOperation, KvOutput, Outcome, Verdict};

use crate::set::{Add, AddOutcome};
use crate::set_check::SetVerdict;
use crate::timeline::{OperationPoint, PointOutcome};
use crate::watch::Write;
use crate::watch_check::{SequenceFaults, WatchVerdict};

/// The register history's points; a refused compare-and-swap is failed.
pub fn register_points(history: &[KvOperation], verdict: &Verdict) -> Vec<OperationPoint> {
    let blamed: HashSet<usize> = match verdict {
        Verdict::NotLinearizable(violation) => violation.next_candidates.iter().copied().collect(),
        Verdict::Linearizable | Verdict::Unknown { .. } => HashSet::new(),
    };
    history
        .iter()
        .enumerate()
        .map(|(index, operation)| OperationPoint {
            call_ns: operation.call_time,
            return_ns: operation.return_time(),
            outcome: match operation.outcome {
                Outcome::Returned {
                    output: KvOutput::CasDone { succeeded: false },
                    ..
                } => PointOutcome::Failed,
                Outcome::Returned { .. } => PointOutcome::Ok,
                Outcome::Unknown => PointOutcome::Unknown,
            },
            invalid: blamed.contains(&index),
        })
        .collect()
}

/// The set workload's adds as points.
pub fn set_points(adds: &[Add], verdict: &SetVerdict) -> Vec<OperationPoint> {
    let blamed: HashSet<u64> = verdict
        .lost
        .iter()
        .chain(&verdict.refused_yet_present)
        .chain(&verdict.duplicated)
        .copied()
        .collect();
    adds.iter()
        .map(|add| OperationPoint {
            call_ns: add.call_ns,
            return_ns: add.return_ns,
            outcome: match add.outcome {
                AddOutcome::Added => PointOutcome::Ok,
                AddOutcome::NotAdded => PointOutcome::Failed,
                AddOutcome::Unknown => PointOutcome::Unknown,
            },
            invalid: blamed.contains(&add.element),
        })
        .collect()
}

/// The watch workload's writes as points (a put either is acknowledged
/// or has an unknown outcome; none is certainly refused).
pub fn watch_points(writes: &[Write], verdict: &WatchVerdict) -> Vec<OperationPoint> {
    let lost: HashSet<&str> = verdict.reference.lost.iter().map(String::as_str).collect();
    let mut wrong_revisions: HashSet<i64> = revisions_of(&verdict.reference.order)
        .chain(verdict.reference.unwritten.iter().copied())
        .collect();
    for (_, _, faults) in &verdict.watchers {
        wrong_revisions.extend(revisions_of(faults));
    }
    writes
        .iter()
        .map(|write| {
            let invalid = match write.acknowledged {
                Some((revision, _)) => {
                    wrong_revisions.contains(&revision)
                        || lost.contains(format!("{}={}", write.key, write.value).as_str())
                }
                None => false,
            };
            OperationPoint {
                call_ns: write.call_ns,
                return_ns: write.acknowledged.map(|(_, returned_ns)| returned_ns),
                outcome: if write.acknowledged.is_some() {
                    PointOutcome::Ok
                } else {
                    PointOutcome::Unknown
                },
                invalid,
            }
        })
        .collect()
}

fn revisions_of(faults: &SequenceFaults) -> impl Iterator<Item = i64> + '_ {
    faults
        .duplicates
        .iter()
        .chain(&faults.reordered)
        .chain(&faults.missing)
        .chain(&faults.unexpected)
        .chain(&faults.different)
        .copied()
}

#[cfg(test)]
mod tests {
    use sim::linearizability::{check, KvInput, KvModel, Limits};

    use super::*;
    use crate::set::SetRead;
    use crate::set_check::check_set;
    use crate::watch::{FinalValue, SeenEvent};
    use crate::watch_check::{check_reference, check_sequence};

    fn operation(
        client_id: u64,
        input: KvInput,
        call_time: u64,
        answer: Option<(KvOutput, u64)>,
    ) -> KvOperation {
        KvOperation {
            client_id,
            input,
            call_time,
            outcome: match answer {
                Some((output, return_time)) => Outcome::Returned {
                    output,
                    return_time,
                },
                None => Outcome::Unknown,
            },
        }
    }

    #[test]
    fn a_register_violation_blames_the_operations_the_checker_could_not_place() {
        // Key 1 is written 1 and then read as 2, which no one wrote;
        // key 2's refused CAS and unanswered put are fine.
        let history = vec![
            operation(
                1,
                KvInput::Put { key: 1, value: 1 },
                0,
                Some((KvOutput::PutDone, 10)),
            ),
            operation(
                2,
                KvInput::Get { key: 1 },
                20,
                Some((KvOutput::Value(Some(2)), 30)),
            ),
            operation(
                3,
                KvInput::Cas {
                    key: 2,
                    expected: Some(5),
                    new: 6,
                },
                0,
                Some((KvOutput::CasDone { succeeded: false }, 5)),
            ),
            operation(4, KvInput::Put { key: 2, value: 7 }, 40, None),
        ];
        let verdict = check(&KvModel, &history, &Limits::default()).expect("a well-formed history");
        assert!(matches!(verdict, Verdict::NotLinearizable(_)));
        let points = register_points(&history, &verdict);
        let blamed: Vec<bool> = points.iter().map(|point| point.invalid).collect();
        assert_eq!(blamed, [false, true, false, false]);
        let outcomes: Vec<PointOutcome> = points.iter().map(|point| point.outcome).collect();
        assert_eq!(
            outcomes,
            [
                PointOutcome::Ok,
                PointOutcome::Ok,
                PointOutcome::Failed,
                PointOutcome::Unknown
            ]
        );
        let linearizable =
            check(&KvModel, &history[2..], &Limits::default()).expect("a well-formed history");
        assert!(register_points(&history[2..], &linearizable)
            .iter()
            .all(|point| !point.invalid));
    }

    fn add(element: u64, outcome: AddOutcome) -> Add {
        Add {
            client_id: 1,
            element,
            call_ns: element * 1_000,
            return_ns: (outcome != AddOutcome::Unknown).then_some(element * 1_000 + 500),
            outcome,
        }
    }

    #[test]
    fn a_set_blames_the_adds_of_lost_and_refused_yet_present_elements() {
        let adds = [
            add(1, AddOutcome::Added),
            add(2, AddOutcome::Added),
            add(3, AddOutcome::NotAdded),
            add(4, AddOutcome::Unknown),
        ];
        // 2 was acknowledged and is missing; 3 was refused and is there.
        let read = SetRead::parse(b"1 3 4");
        let verdict = check_set(&adds, Some(&read));
        let blamed: Vec<bool> = set_points(&adds, &verdict)
            .iter()
            .map(|point| point.invalid)
            .collect();
        assert_eq!(blamed, [false, true, true, false]);
    }

    fn write(value: u64, acknowledged: Option<i64>) -> Write {
        Write {
            client_id: 1,
            key: "w/a".to_owned(),
            value,
            call_ns: value * 1_000,
            acknowledged: acknowledged.map(|revision| (revision, value * 1_000 + 500)),
        }
    }

    fn event(revision: i64, value: u64) -> SeenEvent {
        SeenEvent {
            revision,
            key: "w/a".to_owned(),
            value: value.to_string(),
            deleted: false,
        }
    }

    #[test]
    fn a_watch_blames_lost_writes_and_writes_a_watcher_missed() {
        let writes = [
            write(1, Some(2)),
            write(2, Some(3)),
            write(3, Some(4)),
            write(4, None),
        ];
        // The reference lost value 2; one watcher missed revision 4.
        let reference = [event(2, 1), event(4, 3)];
        let final_values = [FinalValue {
            key: "w/a".to_owned(),
            value: "3".to_owned(),
            mod_revision: 4,
        }];
        let verdict = WatchVerdict {
            read: true,
            reference_events: reference.len(),
            reference: check_reference(&reference, &writes, &final_values),
            watchers: vec![(1, 0, check_sequence(&reference[..1], &reference))],
        };
        let blamed: Vec<bool> = watch_points(&writes, &verdict)
            .iter()
            .map(|point| point.invalid)
            .collect();
        assert_eq!(blamed, [false, true, true, false]);
    }
}
