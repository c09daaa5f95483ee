//! One run of the fault suite: hosts made, members started, a workload's
//! clients recording a history while the schedule breaks things,
//! everything healed, recovery timed, the members' data compared, the
//! history judged.
//!
//! Owns: the order of a run. Must never: run unbounded (the clients, the
//! schedule and every wait stop by themselves), or call a run valid that
//! its checker could not decide.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use server::proto::etcdserverpb::kv_client::KvClient;
use server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use server::proto::etcdserverpb::{PutRequest, RangeRequest, StatusRequest};

use crate::connection::HistoryClock;
use crate::convergence::hash_members;
use crate::faults::{self, Change, FaultError, FaultKinds, Pacing, Planned, Schedule};
use crate::firewall::Firewalls;
use crate::hosts::{Hosts, HostsError};
use crate::judge::Judged;
use crate::members::{MemberError, Members};
use crate::report::{Injected, Report};
use crate::revisions::regressions;
use crate::server_kind::ServerKind;
use crate::timeline::{self, FaultBand};
use crate::workload::{self, Setup, Workload, CALL_TIMEOUT};

/// How long a status or probe call may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long the first leader may take to appear.
const FIRST_LEADER_MAX: Duration = Duration::from_secs(30);
/// The stated bound: once every fault is healed, the cluster takes a write
/// and answers a linearizable read on every member within this.
pub const RECOVERY_MAX: Duration = Duration::from_secs(15);

/// What a run does.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The binary the members run: `raftkv`, or etcd's.
    pub binary: PathBuf,
    pub server: ServerKind,
    pub nodes: usize,
    /// How long the clients run (faults stop a little before).
    pub time: Duration,
    pub faults: FaultKinds,
    pub pacing: Pacing,
    pub workload: Workload,
    pub seed: u64,
    pub clients: u64,
    /// Reads without the read barrier: a negative control, which a
    /// register run with partitions must find not linearizable.
    pub serializable_reads: bool,
    /// Set adds without the compare: a negative control, which a set run
    /// must find losing elements.
    pub blind_appends: bool,
    /// Host names' prefix and subnet; `None` picks unused ones.
    pub names: Option<(String, [u8; 3])>,
    /// Where the members' data and logs and the history go; `None` uses a
    /// temporary directory removed at the end.
    pub keep: Option<PathBuf>,
    /// Where the SVG timeline goes; `None` puts it in `keep` as
    /// `timeline.svg` when the run is kept, and draws none otherwise.
    pub timeline: Option<PathBuf>,
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

/// Carries out one run.
pub async fn run(options: &RunOptions) -> Result<Report, RunError> {
    let (prefix, subnet) = match &options.names {
        Some(names) => names.clone(),
        None => crate::hosts::free_names()?,
    };
    let spares = options.faults.spare_hosts();
    let hosts = Hosts::create(&prefix, subnet, options.nodes + spares)?;
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
    let mut members = Members::new(&options.binary, dir, &hosts, &[])
        .running(options.server)
        .with_spare_hosts(spares);
    for index in members.cluster() {
        members.start(&hosts, index)?;
    }
    if wait_for_leader(&members, FIRST_LEADER_MAX).await.is_none() {
        return Err(RunError::NoFirstLeader);
    }

    let clock = HistoryClock::start();
    // Every host's endpoint, spares too: as members join and leave, the
    // clients fail over to whichever answer.
    let setup = Setup {
        workload: options.workload,
        endpoints: members.client_urls().to_vec(),
        clients: options.clients,
        seed: options.seed,
        time: options.time,
        serializable_reads: options.serializable_reads,
        blind_appends: options.blind_appends,
    };
    let running = workload::start(&setup, clock);

    let mut crashed_members = Vec::new();
    let mut injected = Vec::new();
    let mut replacements = Vec::new();
    let mut membership_changes = Vec::new();
    let mut firewalls = Firewalls::default();
    let mut schedule = Schedule::new(options.seed, options.faults, options.pacing);
    let faults_end = options.time.saturating_sub(options.pacing.fault_max);
    let mut last_heal = clock_duration(&clock);
    while clock_duration(&clock) + options.pacing.quiet_max < faults_end {
        tokio::time::sleep(schedule.quiet()).await;
        note_exits(&mut members, &mut crashed_members);
        let leader = wait_for_leader(&members, PROBE_TIMEOUT).await;
        let step = schedule.next(leader, &members.cluster(), &members.spares());
        if step.is_empty() {
            break;
        }
        let step_start = tokio::time::Instant::now();
        let mut started_ms = vec![0.0; step.len()];
        for (at, index, healing) in step_events(&step) {
            tokio::time::sleep_until(step_start + at).await;
            note_exits(&mut members, &mut crashed_members);
            let fault = &step[index].fault;
            let change = if healing {
                faults::heal(fault, &hosts, &mut members, &mut firewalls).await?
            } else {
                started_ms[index] = clock.now_ns() as f64 / 1e6;
                faults::apply(fault, &hosts, &mut members, &mut firewalls).await?
            };
            match change {
                Some(Change::Replaced(replacement)) => replacements.push(replacement),
                Some(Change::Membership(change)) => membership_changes.push(change),
                None => {}
            }
            if healing {
                last_heal = clock_duration(&clock);
                injected.push(Injected {
                    fault: fault.clone(),
                    started_ms: started_ms[index],
                    healed_ms: last_heal.as_secs_f64() * 1e3,
                    recovered_after_ms: None,
                });
            }
        }
    }
    injected.sort_by(|a, b| a.started_ms.total_cmp(&b.started_ms));

    // Timed from the last heal while the clients still run, as a user
    // would see it.
    // The checks ask the members in the cluster now: a removed member no
    // longer converges, an added one must.
    let cluster_urls: Vec<String> = members
        .cluster()
        .into_iter()
        .map(|index| members.client_url(index).to_owned())
        .collect();
    let final_recovery = time_recovery(&cluster_urls, last_heal, &clock).await;
    let finished = running.finish(clock).await;
    let named_urls: Vec<(String, String)> = members
        .cluster()
        .into_iter()
        .map(|index| {
            (
                members.name(index).to_owned(),
                members.client_url(index).to_owned(),
            )
        })
        .collect();
    let hashes = hash_members(&named_urls, RECOVERY_MAX).await;
    note_exits(&mut members, &mut crashed_members);
    let crashed_members = crashed_members
        .into_iter()
        .map(|(index, status)| (members.name(index).to_owned(), status))
        .collect();
    // The members and hosts go before the check, which wants the CPU.
    drop(members);
    drop(hosts);

    let judged = finished.judge().map_err(RunError::MalformedHistory)?;
    for fault in &mut injected {
        fault.recovered_after_ms =
            first_write_after(&judged.writes_acknowledged_ns, fault.healed_ms);
    }
    let history_file = match &options.keep {
        Some(dir) => Some(write_history(dir, &judged.history_text)?),
        None => None,
    };
    let timeline_file = match timeline_path(options) {
        Some(path) => Some(write_timeline(path, options, &judged, &injected)?),
        None => None,
    };
    Ok(Report {
        nodes: options.nodes,
        seed: options.seed,
        workload: options.workload,
        counts: judged.counts,
        faults: injected,
        crashed_members,
        replacements,
        membership_changes,
        final_recovery,
        hashes,
        revision_regressions: regressions(&judged.revisions),
        verdicts: judged.verdicts,
        client_errors: judged.client_errors,
        history_file,
        timeline_file,
    })
}

/// A step's applies and heals in the order they happen: when (from the
/// step's start), which fault, and whether it is the heal.
fn step_events(step: &[Planned]) -> Vec<(Duration, usize, bool)> {
    let mut events: Vec<(Duration, usize, bool)> = step
        .iter()
        .enumerate()
        .flat_map(|(index, planned)| {
            [
                (planned.starts_after, index, false),
                (planned.ends_after(), index, true),
            ]
        })
        .collect();
    // Stable: a fault's apply stays before its heal at the same instant.
    events.sort_by_key(|&(at, _, _)| at);
    events
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
/// and answered a linearizable read through every member (at `endpoints`);
/// `None` past `RECOVERY_MAX`.
async fn time_recovery(
    endpoints: &[String],
    healed: Duration,
    clock: &HistoryClock,
) -> Option<Duration> {
    let deadline = healed + RECOVERY_MAX;
    let mut wrote = false;
    let mut read_by = vec![false; endpoints.len()];
    while clock_duration(clock) < deadline {
        for (endpoint, read) in endpoints.iter().zip(&mut read_by) {
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
fn first_write_after(acknowledged_ns: &[u64], healed_ms: f64) -> Option<f64> {
    acknowledged_ns
        .iter()
        .map(|&returned| returned as f64 / 1e6 - healed_ms)
        .filter(|&after| after >= 0.0)
        .min_by(f64::total_cmp)
}

/// Writes the workload's record to `dir/history.txt`.
fn write_history(dir: &Path, text: &str) -> Result<PathBuf, RunError> {
    let path = dir.join("history.txt");
    std::fs::File::create(&path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|source| RunError::Io {
            what: format!("cannot write {}", path.display()),
            source,
        })?;
    Ok(path)
}

fn timeline_path(options: &RunOptions) -> Option<PathBuf> {
    options
        .timeline
        .clone()
        .or_else(|| Some(options.keep.as_ref()?.join("timeline.svg")))
}

/// Draws the run's timeline into `path`.
fn write_timeline(
    path: PathBuf,
    options: &RunOptions,
    judged: &Judged,
    injected: &[Injected],
) -> Result<PathBuf, RunError> {
    let title = format!(
        "{} workload, {} members, seed {}: {} operations, {} faults",
        options.workload,
        options.nodes,
        options.seed,
        judged.points.len(),
        injected.len()
    );
    let bands: Vec<FaultBand> = injected.iter().map(FaultBand::of).collect();
    let svg = timeline::render(&title, &judged.points, &bands);
    std::fs::write(&path, svg).map_err(|source| RunError::Io {
        what: format!("cannot write {}", path.display()),
        source,
    })?;
    Ok(path)
}
