//! The workloads a run may drive, behind one face for the run driver:
//! start the clients, finish them once the faults have healed (awaiting
//! them and taking whatever final reads the workload's check needs), and
//! judge what they recorded.
//!
//! Owns: which workloads exist, how each is started, finished and judged,
//! and what every workload reports alike (operation counts, acknowledged
//! writes, header revisions, errors). Must never: inject faults or start
//! members (the run driver does), or call a run valid its check could not
//! decide.

use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sim::linearizability::Verdict;
use sim::linearizability::{check, KvInput, KvModel, KvOperation, KvOutput, Limits, Outcome};
use sim::rng::SimRng;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use crate::connection::{CallErrors, Connection, HistoryClock};
use crate::register::{
    count_returned, describe_violation, run_client, value_seen, RegisterClient, Rounds,
};
use crate::revisions::RevisionSeen;
use crate::set::{read_final as read_final_set, run_set_client, Add, AddOutcome, Appends, SetRead};
use crate::set_check::{check_set, SetVerdict};
use crate::watch::{
    read_final as read_final_prefix, run_watcher, run_writer, FinalValue, SeenEvent, Stop,
    WatcherRecord, Write,
};
use crate::watch_check::{check_reference, check_sequence, WatchVerdict};

/// How long a client waits for an answer before its outcome is unknown.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const REGISTER_KEY_PREFIX: &str = "register/";
/// Fresh keys every round, each client at most about 50 calls a second:
/// under faults many calls end with unknown outcomes, and each one open at
/// a time multiplies what the checker must search for its key.
const KEYS_PER_ROUND: u8 = 5;
const ROUND_MIN: Duration = Duration::from_secs(2);
const THINK: Duration = Duration::from_millis(20);
/// How far around a violation the report lists the key's operations.
const VIOLATION_WINDOW_NS: u64 = 10_000_000;
/// How long the final reads (the set, the prefix's Range) may take.
const FINAL_READ_MAX: Duration = Duration::from_secs(15);
/// How long a watcher may take to reach the last revision once it is known.
const CATCH_UP_MAX: Duration = Duration::from_secs(15);
/// A watcher gives up this long after the clients stop, whatever happens.
const WATCHERS_AFTER_RUN_MAX: Duration = Duration::from_secs(90);
/// The client number of the final reads' connection.
const FINAL_READER: u64 = 0;

/// Which workload a run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Linearizable reads, puts and compare-and-swaps on a few keys,
    /// checked for linearizability.
    Register,
    /// Unique elements added to one set in one key by compare-and-set
    /// transactions, checked against a final read.
    Set,
    /// Puts under a prefix, watched by reconnecting watchers, each checked
    /// against the prefix's whole history.
    Watch,
}

impl FromStr for Workload {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "register" => Ok(Workload::Register),
            "set" => Ok(Workload::Set),
            "watch" => Ok(Workload::Watch),
            other => Err(format!(
                "unknown workload {other:?}; the workloads are: register, set, watch"
            )),
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::Register => "register",
            Workload::Set => "set",
            Workload::Watch => "watch",
        })
    }
}

/// What the clients of any workload need to start.
#[derive(Clone, Debug)]
pub struct Setup {
    pub workload: Workload,
    /// Every member's client URL.
    pub endpoints: Vec<String>,
    pub clients: u64,
    pub seed: u64,
    /// How long the clients run.
    pub time: Duration,
    /// Register reads without the read barrier: a negative control.
    pub serializable_reads: bool,
    /// Set adds by blind puts, without the compare: a negative control.
    pub blind_appends: bool,
}

impl Setup {
    /// Client `client_id`'s connection, first to the member the clients
    /// are spread over by their number.
    fn connection(&self, client_id: u64) -> Connection {
        let first = (client_id - 1) as usize % self.endpoints.len();
        Connection::new(client_id, &self.endpoints, first, CALL_TIMEOUT)
    }

    /// The connection of the final reads, first to the first member.
    fn final_reader(&self) -> Connection {
        Connection::new(FINAL_READER, &self.endpoints, 0, CALL_TIMEOUT)
    }

    fn rng(&self, client_id: u64) -> SimRng {
        SimRng::new(self.seed.wrapping_mul(1_000).wrapping_add(client_id))
    }
}

/// Operations by outcome, as the report counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Answered, and did what was asked.
    pub ok: usize,
    /// Certainly without effect: a compare that did not hold, or a set add
    /// whose every write was refused or never sent.
    pub failed: usize,
    /// Unanswered: may or may not have taken effect.
    pub unknown: usize,
}

/// A workload whose clients are running.
#[derive(Debug)]
pub enum Running {
    Register(Vec<JoinHandle<(Vec<KvOperation>, Connection)>>),
    Set {
        clients: Vec<JoinHandle<(Vec<Add>, Connection)>>,
        final_reader: Connection,
    },
    Watch {
        writers: Vec<JoinHandle<(Vec<Write>, Connection)>>,
        watchers: Vec<JoinHandle<WatcherRecord>>,
        /// Tells the watchers the last revision to wait for.
        last_revision: signal::Sender<Option<i64>>,
        final_reader: Connection,
        endpoints: Vec<String>,
    },
}

/// Starts `setup`'s clients, which stop by themselves after `setup.time`.
pub fn start(setup: &Setup, clock: HistoryClock) -> Running {
    match setup.workload {
        Workload::Register => {
            let rounds = Rounds::for_run(setup.time, KEYS_PER_ROUND, ROUND_MIN, THINK);
            let clients = (1..=setup.clients)
                .map(|client_id| {
                    let client =
                        RegisterClient::new(setup.connection(client_id), REGISTER_KEY_PREFIX)
                            .with_serializable_reads(setup.serializable_reads);
                    tokio::spawn(run_client(
                        client,
                        setup.rng(client_id),
                        clock,
                        setup.time,
                        rounds,
                    ))
                })
                .collect();
            Running::Register(clients)
        }
        Workload::Set => {
            let appends = if setup.blind_appends {
                Appends::Blind
            } else {
                Appends::Compared
            };
            let clients = (1..=setup.clients)
                .map(|client_id| {
                    tokio::spawn(run_set_client(
                        setup.connection(client_id),
                        clock,
                        setup.time,
                        THINK,
                        appends,
                    ))
                })
                .collect();
            Running::Set {
                clients,
                final_reader: setup.final_reader(),
            }
        }
        Workload::Watch => {
            let writers = (1..=setup.clients)
                .map(|client_id| {
                    tokio::spawn(run_writer(
                        setup.connection(client_id),
                        setup.rng(client_id),
                        clock,
                        setup.time,
                        THINK,
                    ))
                })
                .collect();
            let (last_revision, told) = signal::channel(None);
            let give_up_at = Instant::now() + setup.time + WATCHERS_AFTER_RUN_MAX;
            let watchers = (0..setup.endpoints.len())
                .map(|first| {
                    let stop = Stop {
                        last_revision: told.clone(),
                        catch_up: CATCH_UP_MAX,
                        give_up_at,
                    };
                    tokio::spawn(run_watcher(setup.endpoints.clone(), first, 1, stop))
                })
                .collect();
            Running::Watch {
                writers,
                watchers,
                last_revision,
                final_reader: setup.final_reader(),
                endpoints: setup.endpoints.clone(),
            }
        }
    }
}

/// What a finished workload recorded.
#[derive(Debug)]
pub enum Finished {
    Register {
        history: Vec<KvOperation>,
        connections: Vec<Connection>,
    },
    Set {
        adds: Vec<Add>,
        /// `None` when no member answered the final read.
        read: Option<SetRead>,
        connections: Vec<Connection>,
    },
    Watch {
        writes: Vec<Write>,
        /// The final Range and the fresh watch from revision 1; `None`
        /// when either could not be had in full.
        reference: Option<(Vec<FinalValue>, Vec<SeenEvent>)>,
        watchers: Vec<WatcherRecord>,
        connections: Vec<Connection>,
    },
}

impl Running {
    /// Waits for the clients to stop and takes the workload's final reads,
    /// stamped by the run's `clock`.
    pub async fn finish(self, clock: HistoryClock) -> Finished {
        match self {
            Running::Register(clients) => {
                let mut history = Vec::new();
                let mut connections = Vec::new();
                for client in clients {
                    let (operations, connection) =
                        client.await.expect("a client task does not panic");
                    history.extend(operations);
                    connections.push(connection);
                }
                Finished::Register {
                    history,
                    connections,
                }
            }
            Running::Set {
                clients,
                mut final_reader,
            } => {
                let mut adds = Vec::new();
                let mut connections = Vec::new();
                for client in clients {
                    let (added, connection) = client.await.expect("a client task does not panic");
                    adds.extend(added);
                    connections.push(connection);
                }
                let read = read_final_set(&mut final_reader, &clock, FINAL_READ_MAX).await;
                connections.push(final_reader);
                Finished::Set {
                    adds,
                    read,
                    connections,
                }
            }
            Running::Watch {
                writers,
                watchers,
                last_revision,
                mut final_reader,
                endpoints,
            } => {
                let mut writes = Vec::new();
                let mut connections = Vec::new();
                for writer in writers {
                    let (written, connection) = writer.await.expect("a writer task does not panic");
                    writes.extend(written);
                    connections.push(connection);
                }
                let reference =
                    match read_final_prefix(&mut final_reader, &clock, FINAL_READ_MAX).await {
                        Some(values) => {
                            let last = values
                                .iter()
                                .map(|value| value.mod_revision)
                                .max()
                                .unwrap_or(0);
                            // Watchers that see no last revision stop when the
                            // sender goes, below.
                            let _ = last_revision.send(Some(last));
                            reference_watch(endpoints, last)
                                .await
                                .map(|events| (values, events))
                        }
                        None => None,
                    };
                drop(last_revision);
                let mut records = Vec::new();
                for watcher in watchers {
                    records.push(watcher.await.expect("a watcher task does not panic"));
                }
                connections.push(final_reader);
                Finished::Watch {
                    writes,
                    reference,
                    watchers: records,
                    connections,
                }
            }
        }
    }
}

/// The prefix's events from revision 1 to `last` by a fresh watch; `None`
/// if it could not reach `last` in time.
async fn reference_watch(endpoints: Vec<String>, last: i64) -> Option<Vec<SeenEvent>> {
    let (_keep_told, told) = signal::channel(Some(last));
    let stop = Stop {
        last_revision: told,
        catch_up: CATCH_UP_MAX,
        give_up_at: Instant::now() + CATCH_UP_MAX,
    };
    let record = run_watcher(endpoints, 0, 1, stop).await;
    let reached = record
        .events
        .iter()
        .map(|event| event.revision)
        .max()
        .unwrap_or(0)
        >= last;
    reached.then_some(record.events)
}

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
        verdicts: Verdicts::Set(check_set(adds, read)),
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
