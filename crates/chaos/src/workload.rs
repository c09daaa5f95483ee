//! The workloads a run may drive, behind one face for the run driver:
//! start the clients, and finish them once the faults have healed
//! (awaiting them and taking whatever final reads the workload's check
//! needs); [`crate::judge`] judges what they recorded.
//!
//! Owns: which workloads exist, how each is started and finished, and how
//! every workload's operations are counted. Must never: inject faults or
//! start members (the run driver does).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sim::linearizability::KvOperation;
use sim::rng::SimRng;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use crate::connection::{Connection, HistoryClock};
use crate::register::{run_client, RegisterClient, Rounds};
use crate::set::{read_final as read_final_set, run_set_client, Add, Appends, SetRead};
use crate::watch::{
    read_final as read_final_prefix, run_watcher, run_writer, FinalValue, SeenEvent, Stop,
    WatcherRecord, Write,
};

/// How long a client waits for an answer before its outcome is unknown.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const REGISTER_KEY_PREFIX: &str = "register/";
/// Fresh keys every round, each client at most about 50 calls a second:
/// under faults many calls end with unknown outcomes, and each one open at
/// a time multiplies what the checker must search for its key.
const KEYS_PER_ROUND: u8 = 5;
const ROUND_MIN: Duration = Duration::from_secs(2);
const THINK: Duration = Duration::from_millis(20);
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
                let values = read_final_prefix(&mut final_reader, &clock, FINAL_READ_MAX).await;
                let last = values.as_ref().map(|values| {
                    values
                        .iter()
                        .map(|value| value.mod_revision)
                        .max()
                        .unwrap_or(0)
                });
                // Told the last revision, the watchers stop once they have
                // seen it, so the sender stays until they are done; without
                // one, they stop as the sender goes.
                let sender_kept = last.map(|last| {
                    let _ = last_revision.send(Some(last));
                    last_revision
                });
                let reference = match (values, last) {
                    (Some(values), Some(last)) => reference_watch(endpoints, last)
                        .await
                        .map(|events| (values, events)),
                    _ => None,
                };
                let mut records = Vec::new();
                for watcher in watchers {
                    records.push(watcher.await.expect("a watcher task does not panic"));
                }
                drop(sender_kept);
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
