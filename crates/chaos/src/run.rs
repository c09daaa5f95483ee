//! One run of the fault suite: hosts made, members started, clients
//! recording a register history while the schedule breaks things,
//! everything healed, recovery timed, the history judged.
//!
//! Owns: the order of a run and its report. Must never: run unbounded (the
//! clients, the schedule and every wait stop by themselves), or call a run
//! valid that its checker could not decide.

use std::fmt;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use server::proto::etcdserverpb::kv_client::KvClient;
use server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use server::proto::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};
use sim::linearizability::{
    check, KvInput, KvModel, KvOperation, KvOutput, Limits, Outcome, Verdict,
};
use sim::rng::SimRng;

use crate::faults::{self, Fault, FaultError, FaultKinds, Pacing, Schedule};
use crate::hosts::{Hosts, HostsError};
use crate::members::{MemberError, Members};
use crate::register::{
    count_returned, describe_violation, run_client, value_seen, CallErrors, HistoryClock,
    RegisterClient, Rounds,
};

/// How long a client waits for an answer before its outcome is unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a status or probe call may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the first leader may take to appear.
const FIRST_LEADER_MAX: Duration = Duration::from_secs(30);
/// The stated bound: once every fault is healed, the cluster takes a write
/// and answers a linearizable read on every member within this.
pub const RECOVERY_MAX: Duration = Duration::from_secs(15);
const KEY_PREFIX: &str = "register/";
/// Fresh keys every round, each client at most about 50 calls a second:
/// under faults many calls end with unknown outcomes, and each one open at
/// a time multiplies what the checker must search for its key.
const KEYS_PER_ROUND: u8 = 5;
const ROUND_MIN: Duration = Duration::from_secs(2);
const THINK: Duration = Duration::from_millis(20);
/// How far around a violation the report lists the key's operations.
const VIOLATION_WINDOW_NS: u64 = 10_000_000;

/// What a run does.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The `raftkv` binary the members run.
    pub binary: PathBuf,
    pub nodes: usize,
    /// How long the clients run (faults stop a little before).
    pub time: Duration,
    pub faults: FaultKinds,
    pub pacing: Pacing,
    pub seed: u64,
    pub clients: u64,
    /// Reads without the read barrier: a negative control, which a run
    /// with partitions must find not linearizable.
    pub serializable_reads: bool,
    /// Host names' prefix and subnet; `None` picks unused ones.
    pub names: Option<(String, [u8; 3])>,
    /// Where the members' data and logs and the history go; `None` uses a
    /// temporary directory removed at the end.
    pub keep: Option<PathBuf>,
}

/// Why a run could not be carried out (as opposed to a verdict).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Hosts(#[from] HostsError),
    #[error(transparent)]
    Member(#[from] MemberError),
    #[error(transparent)]
    Fault(#[from] FaultError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("no leader within {FIRST_LEADER_MAX:?} of starting the members")]
    NoFirstLeader,
    #[error("the recorded history is malformed: {0}")]
    MalformedHistory(String),
}

/// A fault as it happened, in milliseconds of the history's clock.
#[derive(Clone, Debug)]
pub struct Injected {
    pub fault: Fault,
    pub started_ms: f64,
    pub healed_ms: f64,
    /// From the heal to the first write acknowledged after it.
    pub recovered_after_ms: Option<f64>,
}

/// What a run found.
#[derive(Debug)]
pub struct Report {
    pub nodes: usize,
    pub seed: u64,
    pub returned: usize,
    pub cas_refused: usize,
    pub unknown: usize,
    pub faults: Vec<Injected>,
    /// Members that exited by themselves: name and exit status.
    pub crashed_members: Vec<(String, String)>,
    /// From the final heal to a write acknowledged and a linearizable read
    /// answered by every member; `None` if that took over `RECOVERY_MAX`.
    pub final_recovery: Option<Duration>,
    pub verdict: Verdict,
    /// The violation, told with the operations around it.
    pub violation_story: Option<String>,
    pub client_errors: Vec<CallErrors>,
    pub history_file: Option<PathBuf>,
}

impl Report {
    /// Whether the run is valid: linearizable, recovered in time, and no
    /// member died of a fault.
    pub fn is_valid(&self) -> bool {
        matches!(self.verdict, Verdict::Linearizable)
            && self.final_recovery.is_some()
            && self.crashed_members.is_empty()
    }
}

/// Carries out one run.
pub async fn run(options: &RunOptions) -> Result<Report, RunError> {
    let (prefix, subnet) = match &options.names {
        Some(names) => names.clone(),
        None => crate::hosts::free_names()?,
    };
    let hosts = Hosts::create(&prefix, subnet, options.nodes)?;
    let temporary;
    let dir: &Path = match &options.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| RunError::Io {
                what: format!("cannot create {}", dir.display()),
                source,
            })?;
            dir
        }
        None => {
            temporary = tempfile::tempdir().map_err(|source| RunError::Io {
                what: "cannot create a temporary directory".to_owned(),
                source,
            })?;
            temporary.path()
        }
    };
    let mut members = Members::new(&options.binary, dir, &hosts, &[]);
    for index in 0..members.count() {
        members.start(&hosts, index)?;
    }
    if wait_for_leader(&members, FIRST_LEADER_MAX).await.is_none() {
        return Err(RunError::NoFirstLeader);
    }

    let rounds = Rounds::for_run(options.time, KEYS_PER_ROUND, ROUND_MIN, THINK);
    let clock = HistoryClock::start();
    let clients: Vec<_> = (1..=options.clients)
        .map(|client_id| {
            let member = (client_id - 1) as usize % members.count();
            let client = RegisterClient::new(
                client_id,
                members.client_url(member),
                KEY_PREFIX,
                CALL_TIMEOUT,
            )
            .with_serializable_reads(options.serializable_reads);
            let rng = SimRng::new(options.seed.wrapping_mul(1_000).wrapping_add(client_id));
            tokio::spawn(run_client(client, rng, clock, options.time, rounds))
        })
        .collect();

    let mut crashed_members = Vec::new();
    let mut injected = Vec::new();
    let mut schedule = Schedule::new(
        options.seed,
        options.faults,
        members.count(),
        options.pacing,
    );
    let faults_end = options.time.saturating_sub(options.pacing.fault_max);
    let mut last_heal = clock_duration(&clock);
    while clock_duration(&clock) + options.pacing.quiet_max < faults_end {
        tokio::time::sleep(schedule.quiet()).await;
        note_exits(&mut members, &mut crashed_members);
        let leader = wait_for_leader(&members, PROBE_TIMEOUT).await;
        let Some((fault, lasts)) = schedule.next(leader) else {
            break;
        };
        let started_ms = clock.now_ns() as f64 / 1e6;
        faults::apply(&fault, &hosts, &mut members)?;
        tokio::time::sleep(lasts).await;
        note_exits(&mut members, &mut crashed_members);
        faults::heal(&fault, &hosts, &mut members)?;
        last_heal = clock_duration(&clock);
        injected.push(Injected {
            fault,
            started_ms,
            healed_ms: last_heal.as_secs_f64() * 1e3,
            recovered_after_ms: None,
        });
    }

    // Timed from the last heal while the clients still run, as a user
    // would see it.
    let final_recovery = time_recovery(&members, last_heal, &clock).await;
    let mut history = Vec::new();
    let mut client_errors = Vec::new();
    for task in clients {
        let (operations, errors) = task.await.expect("a client task does not panic");
        history.extend(operations);
        client_errors.push(errors);
    }
    note_exits(&mut members, &mut crashed_members);
    let crashed_members = crashed_members
        .into_iter()
        .map(|(index, status)| (members.name(index).to_owned(), status))
        .collect();
    // The members and hosts go before the search, which wants the CPU.
    drop(members);
    drop(hosts);
    for fault in &mut injected {
        fault.recovered_after_ms = first_write_after(&history, fault.healed_ms);
    }

    let verdict = check(&KvModel, &history, &Limits::default())
        .map_err(|error| RunError::MalformedHistory(error.to_string()))?;
    let violation_story = match &verdict {
        Verdict::NotLinearizable(violation) => {
            Some(describe_violation(&history, violation, VIOLATION_WINDOW_NS))
        }
        _ => None,
    };
    let history_file = match &options.keep {
        Some(dir) => Some(write_history(dir, &history)?),
        None => None,
    };
    let unknown = history.len() - count_returned(&history, |_| true);
    let cas_refused = count_returned(&history, |operation| {
        matches!(
            operation.outcome,
            Outcome::Returned {
                output: KvOutput::CasDone { succeeded: false },
                ..
            }
        )
    });
    Ok(Report {
        nodes: options.nodes,
        seed: options.seed,
        returned: history.len() - unknown - cas_refused,
        cas_refused,
        unknown,
        faults: injected,
        crashed_members,
        final_recovery,
        verdict,
        violation_story,
        client_errors,
        history_file,
    })
}

fn clock_duration(clock: &HistoryClock) -> Duration {
    Duration::from_nanos(clock.now_ns())
}

/// Records members that exited by themselves: a fault must never kill a
/// member, so each fails the run.
fn note_exits(members: &mut Members, crashed: &mut Vec<(usize, String)>) {
    crashed.extend(members.exited());
}

/// The member that reports itself leader, asking each running, unpaused
/// member until `within` has passed.
async fn wait_for_leader(members: &Members, within: Duration) -> Option<usize> {
    let deadline = Instant::now() + within;
    loop {
        for index in 0..members.count() {
            if !members.is_running(index) || members.is_paused(index) {
                continue;
            }
            if is_leader(members.client_url(index)).await {
                return Some(index);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn is_leader(endpoint: &str) -> bool {
    let call = async {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .ok()?
            .connect()
            .await
            .ok()?;
        let status = MaintenanceClient::new(channel)
            .status(StatusRequest {})
            .await
            .ok()?
            .into_inner();
        let member_id = status.header.map_or(0, |header| header.member_id);
        Some(status.leader != 0 && status.leader == member_id)
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, call).await,
        Ok(Some(true))
    )
}

/// How long after `healed` the cluster took a write through some member
/// and answered a linearizable read through every member; `None` past
/// `RECOVERY_MAX`.
async fn time_recovery(
    members: &Members,
    healed: Duration,
    clock: &HistoryClock,
) -> Option<Duration> {
    let deadline = healed + RECOVERY_MAX;
    let mut wrote = false;
    let mut read_by = vec![false; members.count()];
    while clock_duration(clock) < deadline {
        for (endpoint, read) in members.client_urls().iter().zip(&mut read_by) {
            if !wrote {
                wrote = probe_put(endpoint).await;
            }
            if wrote && !*read {
                *read = probe_read(endpoint).await;
            }
        }
        if wrote && read_by.iter().all(|&read| read) {
            return Some(clock_duration(clock).saturating_sub(healed));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn kv_client(endpoint: &str) -> Option<KvClient<tonic::transport::Channel>> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .ok()?
        .connect()
        .await
        .ok()?;
    Some(KvClient::new(channel))
}

async fn probe_put(endpoint: &str) -> bool {
    let call = async {
        let request = PutRequest {
            key: b"chaos/recovered".to_vec(),
            value: b"yes".to_vec(),
            ..PutRequest::default()
        };
        kv_client(endpoint).await?.put(request).await.ok()
    };
    matches!(tokio::time::timeout(CALL_TIMEOUT, call).await, Ok(Some(_)))
}

async fn probe_read(endpoint: &str) -> bool {
    let call = async {
        let request = RangeRequest {
            key: b"chaos/recovered".to_vec(),
            ..RangeRequest::default()
        };
        kv_client(endpoint).await?.range(request).await.ok()
    };
    matches!(tokio::time::timeout(CALL_TIMEOUT, call).await, Ok(Some(response)) if response.get_ref().count == 1)
}

/// Milliseconds from `healed_ms` to the first write acknowledged after it.
fn first_write_after(history: &[KvOperation], healed_ms: f64) -> Option<f64> {
    history
        .iter()
        .filter(|operation| !matches!(operation.input, KvInput::Get { .. }))
        .filter(|operation| value_seen(operation).is_some())
        .filter_map(KvOperation::return_time)
        .map(|returned| returned as f64 / 1e6 - healed_ms)
        .filter(|&after| after >= 0.0)
        .min_by(f64::total_cmp)
}

/// Writes the history, one operation per line, to `dir/history.txt`.
fn write_history(dir: &Path, history: &[KvOperation]) -> Result<PathBuf, RunError> {
    let path = dir.join("history.txt");
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
        let _ = writeln!(
            text,
            "{} {} {:?} -> {outcome}",
            operation.client_id, operation.call_time, operation.input
        );
    }
    std::fs::File::create(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|source| RunError::Io {
            what: format!("cannot write {}", path.display()),
            source,
        })?;
    Ok(path)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} members, seed {}", self.nodes, self.seed)?;
        writeln!(
            f,
            "operations: {} ok, {} failed (CAS compare false), {} unknown",
            self.returned, self.cas_refused, self.unknown
        )?;
        writeln!(f, "faults: {}", self.faults.len())?;
        for fault in &self.faults {
            let recovered = fault
                .recovered_after_ms
                .map_or("no write acknowledged after".to_owned(), |ms| {
                    format!("first write acknowledged {ms:.0} ms after heal")
                });
            writeln!(
                f,
                "  {:>9.0} ms .. {:>9.0} ms  {}  ({recovered})",
                fault.started_ms, fault.healed_ms, fault.fault
            )?;
        }
        match self.final_recovery {
            Some(took) => writeln!(f, "recovery after the last heal: {} ms", took.as_millis())?,
            None => writeln!(
                f,
                "recovery after the last heal: NOT within {RECOVERY_MAX:?}"
            )?,
        }
        for (name, status) in &self.crashed_members {
            writeln!(f, "member {name} exited by itself: {status}")?;
        }
        for (index, errors) in self.client_errors.iter().enumerate() {
            if errors.total > 0 {
                writeln!(
                    f,
                    "client {}: {} calls unanswered, first {:?}",
                    index + 1,
                    errors.total,
                    errors.first
                )?;
            }
        }
        if let Some(path) = &self.history_file {
            writeln!(f, "history: {}", path.display())?;
        }
        match &self.verdict {
            Verdict::Linearizable => writeln!(f, "verdict: linearizable")?,
            Verdict::NotLinearizable(_) => writeln!(
                f,
                "verdict: NOT linearizable\n{}",
                self.violation_story.as_deref().unwrap_or_default()
            )?,
            Verdict::Unknown { reason } => writeln!(f, "verdict: undecided ({reason})")?,
        }
        write!(
            f,
            "run: {}",
            if self.is_valid() { "valid" } else { "INVALID" }
        )
    }
}
