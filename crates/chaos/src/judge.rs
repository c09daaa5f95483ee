//! Judging what a finished workload recorded: each workload's checker
//! run on its record, the operations counted by outcome, the acknowledged
//! writes' times (for the time to recover from each fault), the header
//! revisions and errors of every client gathered, and the record written
//! out as text for a kept run.
//!
//! Owns: turning a record into a [`Judged`]. Must never: call a run valid
//! its checker could not decide.

use std::fmt;
use std::fmt::Write as _;

use sim::linearizability::{
    check, KvInput, KvModel, KvOperation, KvOutput, Limits, Outcome, Verdict,
};

use crate::connection::{CallErrors, Connection};
use crate::operation_points::{register_points, set_points, watch_points};
use crate::register::{count_returned, describe_violation, value_seen};
use crate::revisions::RevisionSeen;
use crate::set::{Add, AddOutcome, SetRead};
use crate::set_check::{check_set, SetVerdict};
use crate::timeline::OperationPoint;
use crate::watch::{FinalValue, SeenEvent, WatcherRecord, Write};
use crate::watch_check::{check_reference, check_sequence, WatchVerdict};
use crate::workload::{Counts, Finished};

/// How far around a violation the report lists the key's operations.
const VIOLATION_WINDOW_NS: u64 = 10_000_000;

/// A workload's verdict.
#[derive(Debug)]
pub enum Verdicts {
    Register {
        verdict: Verdict,
        /// The violation, told with the operations around it.
        story: Option<String>,
    },
    Set(SetVerdict),
    Watch(WatchVerdict),
}

impl Verdicts {
    pub fn is_valid(&self) -> bool {
        match self {
            Verdicts::Register { verdict, .. } => matches!(verdict, Verdict::Linearizable),
            Verdicts::Set(verdict) => verdict.is_valid(),
            Verdicts::Watch(verdict) => verdict.is_valid(),
        }
    }
}

impl fmt::Display for Verdicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdicts::Register { verdict, story } => match verdict {
                Verdict::Linearizable => write!(f, "linearizable"),
                Verdict::NotLinearizable(_) => write!(
                    f,
                    "NOT linearizable\n{}",
                    story.as_deref().unwrap_or_default()
                ),
                Verdict::Unknown { reason } => write!(f, "undecided ({reason})"),
            },
            Verdicts::Set(verdict) => write!(f, "{verdict}"),
            Verdicts::Watch(verdict) => write!(f, "{verdict}"),
        }
    }
}

/// A workload judged.
#[derive(Debug)]
pub struct Judged {
    pub counts: Counts,
    /// When each acknowledged write returned, on the history's clock.
    pub writes_acknowledged_ns: Vec<u64>,
    pub revisions: Vec<RevisionSeen>,
    pub client_errors: Vec<CallErrors>,
    pub verdicts: Verdicts,
    /// The record, one line per operation, for a kept run.
    pub history_text: String,
    /// Every operation as the timeline draws it.
    pub points: Vec<OperationPoint>,
}

impl Finished {
    /// Judges what was recorded; an error for a history the checker
    /// cannot read.
    pub fn judge(self) -> Result<Judged, String> {
        match self {
            Finished::Register {
                history,
                connections,
            } => judge_register(history, connections),
            Finished::Set {
                adds,
                read,
                connections,
            } => Ok(judge_set(&adds, read.as_ref(), connections)),
            Finished::Watch {
                writes,
                reference,
                watchers,
                connections,
            } => Ok(judge_watch(
                &writes,
                reference.as_ref(),
                &watchers,
                connections,
            )),
        }
    }
}

fn judge_set(adds: &[Add], read: Option<&SetRead>, connections: Vec<Connection>) -> Judged {
    let count = |outcome| adds.iter().filter(|add| add.outcome == outcome).count();
    let (revisions, client_errors) = split_records(connections);
    let mut history_text = String::from("# client call_ns element -> outcome (return_ns)\n");
    for add in adds {
        // Writing to a String cannot fail.
        let _ = writeln!(
            history_text,
            "{} {} {} -> {:?} {:?}",
            add.client_id, add.call_ns, add.element, add.outcome, add.return_ns
        );
    }
    if let Some(read) = read {
        let _ = writeln!(history_text, "# final read: {:?}", read.elements);
    }
    let verdict = check_set(adds, read);
    Judged {
        counts: Counts {
            ok: count(AddOutcome::Added),
            failed: count(AddOutcome::NotAdded),
            unknown: count(AddOutcome::Unknown),
        },
        writes_acknowledged_ns: adds
            .iter()
            .filter(|add| add.outcome == AddOutcome::Added)
            .filter_map(|add| add.return_ns)
            .collect(),
        revisions,
        client_errors,
        points: set_points(adds, &verdict),
        verdicts: Verdicts::Set(verdict),
        history_text,
    }
}

fn judge_watch(
    writes: &[Write],
    reference: Option<&(Vec<FinalValue>, Vec<SeenEvent>)>,
    watchers: &[WatcherRecord],
    connections: Vec<Connection>,
) -> Judged {
    let (revisions, mut client_errors) = split_records(connections);
    client_errors.extend(watchers.iter().map(|watcher| watcher.errors.clone()));
    let verdict = match reference {
        Some((values, events)) => WatchVerdict {
            read: true,
            reference_events: events.len(),
            reference: check_reference(events, writes, values),
            watchers: watchers
                .iter()
                .map(|watcher| {
                    (
                        watcher.events.len(),
                        watcher.reconnects,
                        check_sequence(&watcher.events, events),
                    )
                })
                .collect(),
        },
        None => WatchVerdict::default(),
    };
    let mut history_text =
        String::from("# client call_ns key=value -> revision return_ns | unknown\n");
    for write in writes {
        let outcome = write
            .acknowledged
            .map_or("unknown".to_owned(), |(revision, at)| {
                format!("{revision} {at}")
            });
        // Writing to a String cannot fail.
        let _ = writeln!(
            history_text,
            "{} {} {}={} -> {outcome}",
            write.client_id, write.call_ns, write.key, write.value
        );
    }
    for (index, watcher) in watchers.iter().enumerate() {
        let revisions: Vec<i64> = watcher.events.iter().map(|event| event.revision).collect();
        let _ = writeln!(
            history_text,
            "# watcher {} saw revisions {revisions:?}",
            index + 1
        );
    }
    let acknowledged = writes
        .iter()
        .filter(|write| write.acknowledged.is_some())
        .count();
    Judged {
        counts: Counts {
            ok: acknowledged,
            failed: 0,
            unknown: writes.len() - acknowledged,
        },
        writes_acknowledged_ns: writes
            .iter()
            .filter_map(|write| write.acknowledged.map(|(_, at)| at))
            .collect(),
        revisions,
        client_errors,
        points: watch_points(writes, &verdict),
        verdicts: Verdicts::Watch(verdict),
        history_text,
    }
}

fn judge_register(
    history: Vec<KvOperation>,
    connections: Vec<Connection>,
) -> Result<Judged, String> {
    let verdict =
        check(&KvModel, &history, &Limits::default()).map_err(|error| error.to_string())?;
    let story = match &verdict {
        Verdict::NotLinearizable(violation) => {
            Some(describe_violation(&history, violation, VIOLATION_WINDOW_NS))
        }
        _ => None,
    };
    let unknown = history.len() - count_returned(&history, |_| true);
    let failed = count_returned(&history, |operation| {
        matches!(
            operation.outcome,
            Outcome::Returned {
                output: KvOutput::CasDone { succeeded: false },
                ..
            }
        )
    });
    let writes_acknowledged_ns = history
        .iter()
        .filter(|operation| !matches!(operation.input, KvInput::Get { .. }))
        .filter(|operation| value_seen(operation).is_some())
        .filter_map(KvOperation::return_time)
        .collect();
    let (revisions, client_errors) = split_records(connections);
    Ok(Judged {
        counts: Counts {
            ok: history.len() - unknown - failed,
            failed,
            unknown,
        },
        writes_acknowledged_ns,
        revisions,
        client_errors,
        points: register_points(&history, &verdict),
        verdicts: Verdicts::Register { verdict, story },
        history_text: register_history_text(&history),
    })
}

/// Every connection's header revisions in one list, and each one's errors.
fn split_records(connections: Vec<Connection>) -> (Vec<RevisionSeen>, Vec<CallErrors>) {
    let mut revisions = Vec::new();
    let mut errors = Vec::new();
    for connection in connections {
        let (seen, errors_of_client) = connection.into_record();
        revisions.extend(seen);
        errors.push(errors_of_client);
    }
    (revisions, errors)
}

/// One operation per line, in call order.
fn register_history_text(history: &[KvOperation]) -> String {
    let mut text = String::from("# client call_ns input -> outcome (return_ns)\n");
    let mut sorted: Vec<&KvOperation> = history.iter().collect();
    sorted.sort_by_key(|operation| operation.call_time);
    for operation in sorted {
        let outcome = match &operation.outcome {
            Outcome::Returned {
                output,
                return_time,
            } => format!("{output:?} {return_time}"),
            Outcome::Unknown => "unknown".to_owned(),
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "{} {} {:?} -> {outcome}",
            operation.client_id, operation.call_time, operation.input
        );
    }
    text
}
