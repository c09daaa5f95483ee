//! `raftkv playground`: a whole local cluster in one command. It starts one
//! `raftkv serve` child process per member (this same binary), names them
//! infra1, infra2, ... on etcd's Procfile ports, prefixes their logs with the
//! member name, prints the etcdctl endpoints, and supervises: a stop signal
//! is forwarded to every member, and a member that dies on its own stops the
//! rest and makes the playground fail. It owns only the child processes it
//! started; it never holds cluster logic and never signals anything else.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// etcd's first client and peer ports; Procfile members sit 10000 apart after
/// the first (2379, 22379, 32379, ...).
const ETCD_CLIENT_PORT: u16 = 2379;
const ETCD_PEER_PORT: u16 = 2380;
const PROCFILE_PORT_STEP: u16 = 10_000;

/// Token that makes the playground's cluster and member ids its own.
const CLUSTER_TOKEN: &str = "raftkv-playground";

/// How often the supervisor looks at its children while no signal arrives.
const SUPERVISE_POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long members get after SIGTERM (leader handover, drain, flush) before
/// they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Start a local cluster of `raftkv serve` processes (etcd's Procfile layout).
#[derive(Debug, clap::Args)]
pub struct PlaygroundArgs {
    /// Members to start: 1, 3 or 5.
    #[arg(long, default_value_t = 3, value_parser = parse_members)]
    members: usize,
    /// Directory that holds every member's data directory (NAME.etcd).
    #[arg(
        long = "data-dir",
        visible_alias = "base-dir",
        value_name = "PATH",
        default_value = "raftkv-playground"
    )]
    data_dir: PathBuf,
    /// First client port; members get PORT, PORT+1, ... [default: etcd's
    /// 2379, 22379, 32379, 42379, 52379].
    #[arg(long = "client-port-base", value_name = "PORT")]
    client_port_base: Option<u16>,
    /// First peer port; members get PORT, PORT+1, ... [default: etcd's 2380,
    /// 22380, 32380, 42380, 52380].
    #[arg(long = "peer-port-base", value_name = "PORT")]
    peer_port_base: Option<u16>,
}

fn parse_members(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(members @ (1 | 3 | 5)) => Ok(members),
        _ => Err(format!("{text:?}: a playground has 1, 3 or 5 members")),
    }
}

/// Why the playground could not start its members.
#[derive(Debug, thiserror::Error)]
pub enum PlaygroundError {
    #[error("--{flag} {base} leaves no room for {members} members below port 65536; choose a lower base")]
    PortOutOfRange {
        flag: &'static str,
        base: u16,
        members: usize,
    },
    #[error("port {port} would be used twice; give --client-port-base and --peer-port-base ranges that do not overlap")]
    PortTwice { port: u16 },
    #[error("cannot create the playground directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot find the raftkv binary to start members with: {source}")]
    CurrentExe { source: std::io::Error },
    #[error("cannot start member {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot watch for Ctrl-C and SIGTERM: {source}")]
    Signals { source: std::io::Error },
}

/// Where one member listens and keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MemberPlan {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
}

impl MemberPlan {
    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
}

/// The port of member `index`: `base + index` when a base is given, else
/// etcd's Procfile layout starting at `etcd_port`.
fn member_port(
    flag: &'static str,
    base: Option<u16>,
    etcd_port: u16,
    index: usize,
    members: usize,
) -> Result<u16, PlaygroundError> {
    let offset = u16::try_from(index).ok();
    let port = match base {
        Some(base) => offset.and_then(|offset| base.checked_add(offset)),
        None if index == 0 => Some(etcd_port),
        None => offset
            .and_then(|offset| offset.checked_add(1))
            .and_then(|steps| steps.checked_mul(PROCFILE_PORT_STEP))
            .and_then(|shift| etcd_port.checked_add(shift)),
    };
    port.ok_or(PlaygroundError::PortOutOfRange {
        flag,
        base: base.unwrap_or(etcd_port),
        members,
    })
}

/// Every member's name, ports and data directory; refuses overlapping ports.
fn plan_members(args: &PlaygroundArgs) -> Result<Vec<MemberPlan>, PlaygroundError> {
    let mut plans = Vec::with_capacity(args.members);
    for index in 0..args.members {
        let name = format!("infra{}", index + 1);
        let client_port = member_port(
            "client-port-base",
            args.client_port_base,
            ETCD_CLIENT_PORT,
            index,
            args.members,
        )?;
        let peer_port = member_port(
            "peer-port-base",
            args.peer_port_base,
            ETCD_PEER_PORT,
            index,
            args.members,
        )?;
        let data_dir = args.data_dir.join(format!("{name}.etcd"));
        plans.push(MemberPlan {
            name,
            client_port,
            peer_port,
            data_dir,
        });
    }
    let mut ports: Vec<u16> = plans
        .iter()
        .flat_map(|plan| [plan.client_port, plan.peer_port])
        .collect();
    ports.sort_unstable();
    if let Some(pair) = ports.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(PlaygroundError::PortTwice { port: pair[0] });
    }
    debug_assert_eq!(plans.len(), args.members);
    Ok(plans)
}

/// A running member: its child process and the thread copying its log.
#[derive(Debug)]
struct Member {
    plan: MemberPlan,
    child: Child,
    log_forwarder: Option<JoinHandle<()>>,
    exit: Option<MemberExit>,
}

/// How a member ended: its exit status, or why it could not be read.
#[derive(Debug)]
enum MemberExit {
    Status(ExitStatus),
    Unknown(std::io::Error),
}

impl MemberExit {
    fn success(&self) -> bool {
        matches!(self, MemberExit::Status(status) if status.success())
    }
}

impl std::fmt::Display for MemberExit {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MemberExit::Status(status) => write!(formatter, "{status}"),
            MemberExit::Unknown(error) => write!(formatter, "exit status unknown: {error}"),
        }
    }
}

impl Member {
    /// Records the exit status if the member has exited; true when it has.
    fn poll_exit(&mut self) -> bool {
        if self.exit.is_none() {
            // An error means the child cannot be waited for: it is gone.
            self.exit = match self.child.try_wait() {
                Ok(status) => status.map(MemberExit::Status),
                Err(error) => Some(MemberExit::Unknown(error)),
            };
        }
        self.exit.is_some()
    }
}

fn spawn_member(
    exe: &Path,
    plan: &MemberPlan,
    initial_cluster: &str,
) -> Result<Member, PlaygroundError> {
    let mut child = Command::new(exe)
        .arg("serve")
        .args(["--name", &plan.name])
        .arg("--data-dir")
        .arg(&plan.data_dir)
        .args(["--listen-client-urls", &plan.client_url()])
        .args(["--advertise-client-urls", &plan.client_url()])
        .args(["--listen-peer-urls", &plan.peer_url()])
        .args(["--initial-advertise-peer-urls", &plan.peer_url()])
        .args(["--initial-cluster", initial_cluster])
        .args(["--initial-cluster-token", CLUSTER_TOKEN])
        .args(["--initial-cluster-state", "new"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        // A group of its own: a terminal's Ctrl-C reaches only the
        // playground, which forwards it, so no member stops unannounced.
        .process_group(0)
        .spawn()
        .map_err(|source| PlaygroundError::Spawn {
            name: plan.name.clone(),
            source,
        })?;
    let log_forwarder = child
        .stderr
        .take()
        .map(|stderr| forward_log(plan.name.clone(), stderr));
    Ok(Member {
        plan: plan.clone(),
        child,
        log_forwarder,
        exit: None,
    })
}

/// Copies a member's log lines to our stderr, each prefixed with its name.
fn forward_log(name: String, stderr: std::process::ChildStderr) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            let _ = writeln!(std::io::stderr(), "{name:>6} | {line}");
        }
    })
}

/// A stop request: Ctrl-C (SIGINT) or SIGTERM.
#[derive(Clone, Copy, Debug)]
struct StopSignal(&'static str);

/// Watches for SIGINT and SIGTERM on a thread of its own; the handlers are
/// installed before this returns, so no signal is lost during startup.
fn watch_signals() -> Result<Receiver<StopSignal>, PlaygroundError> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| PlaygroundError::Signals { source })?;
    let (mut interrupt, mut terminate) = {
        let _context = runtime.enter();
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        (
            interrupt.map_err(|source| PlaygroundError::Signals { source })?,
            terminate.map_err(|source| PlaygroundError::Signals { source })?,
        )
    };
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        runtime.block_on(async move {
            loop {
                let received = tokio::select! {
                    _ = interrupt.recv() => StopSignal("Ctrl-C"),
                    _ = terminate.recv() => StopSignal("SIGTERM"),
                };
                if sender.send(received).is_err() {
                    break;
                }
            }
        });
    });
    Ok(receiver)
}

/// Asks a member to stop cleanly, as a terminal's Ctrl-C or an init system would.
fn send_sigterm(member: &Member) {
    let pid = i32::try_from(member.child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    let sent = pid.is_some_and(|pid| {
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).is_ok()
    });
    if !sent {
        eprintln!(
            "raftkv playground: could not send SIGTERM to {}",
            member.plan.name
        );
    }
}

/// Why supervision ended.
#[derive(Debug)]
enum Ending {
    Signal(StopSignal),
    /// The member at this index exited by itself.
    MemberExited(usize),
}

/// Waits until a stop signal arrives or some member exits on its own.
fn supervise(members: &mut [Member], signals: &Receiver<StopSignal>) -> Ending {
    loop {
        if let Some(index) = members.iter_mut().position(Member::poll_exit) {
            return Ending::MemberExited(index);
        }
        match signals.recv_timeout(SUPERVISE_POLL_INTERVAL) {
            Ok(signal) => return Ending::Signal(signal),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Ending::Signal(StopSignal("a lost signal watcher"));
            }
        }
    }
}

/// SIGTERMs every running member and waits for all of them; a second signal
/// or `STOP_TIMEOUT` kills the rest. True when every member stopped cleanly.
fn stop_members(members: &mut [Member], signals: &Receiver<StopSignal>) -> bool {
    for member in members.iter_mut() {
        if !member.poll_exit() {
            send_sigterm(member);
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut killed = false;
    while !members.iter_mut().all(Member::poll_exit) {
        let hurry = match signals.recv_timeout(SUPERVISE_POLL_INTERVAL) {
            Ok(StopSignal(signal)) => {
                eprintln!("raftkv playground: {signal} again; killing the members");
                true
            }
            Err(RecvTimeoutError::Timeout) => Instant::now() > deadline,
            Err(RecvTimeoutError::Disconnected) => Instant::now() > deadline,
        };
        if hurry && !killed {
            killed = true;
            for member in members.iter_mut().filter(|member| member.exit.is_none()) {
                eprintln!("raftkv playground: killing {}", member.plan.name);
                let _ = member.child.kill();
            }
        }
    }
    for member in members.iter_mut() {
        if let Some(forwarder) = member.log_forwarder.take() {
            let _ = forwarder.join();
        }
    }
    !killed
        && members
            .iter()
            .all(|member| member.exit.as_ref().is_some_and(MemberExit::success))
}

/// What the user needs: where each member is, and the etcdctl line to use.
fn announce(members: &[Member], data_dir: &Path) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "raftkv playground: {} members, data in {}",
        members.len(),
        data_dir.display()
    );
    for member in members {
        let plan = &member.plan;
        let _ = writeln!(
            out,
            "  {} pid {}: client {}, peer {}, data {}",
            plan.name,
            member.child.id(),
            plan.client_url(),
            plan.peer_url(),
            plan.data_dir.display()
        );
    }
    let endpoints: Vec<String> = members
        .iter()
        .map(|member| format!("127.0.0.1:{}", member.plan.client_port))
        .collect();
    let _ = writeln!(
        out,
        "etcdctl --endpoints={} endpoint status",
        endpoints.join(",")
    );
    let _ = writeln!(out, "Ctrl-C stops every member.");
    let _ = out.flush();
}

/// Starts every member; on a failure, stops those already started.
fn start_members(
    plans: &[MemberPlan],
    signals: &Receiver<StopSignal>,
) -> Result<Vec<Member>, PlaygroundError> {
    let exe = std::env::current_exe().map_err(|source| PlaygroundError::CurrentExe { source })?;
    let initial_cluster = plans
        .iter()
        .map(|plan| format!("{}={}", plan.name, plan.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    let mut members = Vec::with_capacity(plans.len());
    for plan in plans {
        match spawn_member(&exe, plan, &initial_cluster) {
            Ok(member) => members.push(member),
            Err(error) => {
                stop_members(&mut members, signals);
                return Err(error);
            }
        }
    }
    Ok(members)
}

pub fn run(args: PlaygroundArgs) -> ExitCode {
    let started = plan_members(&args).and_then(|plans| {
        std::fs::create_dir_all(&args.data_dir).map_err(|source| PlaygroundError::DataDir {
            path: args.data_dir.clone(),
            source,
        })?;
        let signals = watch_signals()?;
        let members = start_members(&plans, &signals)?;
        Ok((members, signals))
    });
    let (mut members, signals) = match started {
        Ok(started) => started,
        Err(error) => {
            eprintln!("raftkv playground: {error}");
            return ExitCode::FAILURE;
        }
    };
    announce(&members, &args.data_dir);
    let ending = supervise(&mut members, &signals);
    match &ending {
        Ending::Signal(StopSignal(signal)) => {
            eprintln!("raftkv playground: {signal}; stopping every member");
        }
        Ending::MemberExited(index) => {
            let member = &members[*index];
            let exit = member.exit.as_ref().map(ToString::to_string);
            eprintln!(
                "raftkv playground: {} exited unexpectedly ({}); stopping the others",
                member.plan.name,
                exit.unwrap_or_default()
            );
        }
    }
    let stopped_cleanly = stop_members(&mut members, &signals);
    match ending {
        Ending::Signal(_) if stopped_cleanly => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(members: usize, client: Option<u16>, peer: Option<u16>) -> PlaygroundArgs {
        PlaygroundArgs {
            members,
            data_dir: PathBuf::from("pg"),
            client_port_base: client,
            peer_port_base: peer,
        }
    }

    #[test]
    fn default_ports_follow_etcds_procfile() {
        let plans = plan_members(&args(5, None, None)).expect("plan");
        let client: Vec<u16> = plans.iter().map(|plan| plan.client_port).collect();
        let peer: Vec<u16> = plans.iter().map(|plan| plan.peer_port).collect();
        assert_eq!(client, [2379, 22379, 32379, 42379, 52379]);
        assert_eq!(peer, [2380, 22380, 32380, 42380, 52380]);
        assert_eq!(plans[2].name, "infra3");
        assert_eq!(plans[2].data_dir, Path::new("pg").join("infra3.etcd"));
    }

    #[test]
    fn port_bases_give_consecutive_ports() {
        let plans = plan_members(&args(3, Some(41000), Some(42000))).expect("plan");
        let client: Vec<u16> = plans.iter().map(|plan| plan.client_port).collect();
        assert_eq!(client, [41000, 41001, 41002]);
        assert_eq!(plans[1].peer_url(), "http://127.0.0.1:42001");
    }

    #[test]
    fn overlapping_ports_are_refused() {
        let error = plan_members(&args(3, Some(2380), None)).expect_err("2380 twice");
        assert!(
            matches!(error, PlaygroundError::PortTwice { port: 2380 }),
            "{error}"
        );
    }

    #[test]
    fn ports_past_65535_are_refused() {
        let error = plan_members(&args(5, Some(65533), Some(1000))).expect_err("past 65535");
        assert!(
            error.to_string().contains("--client-port-base 65533"),
            "{error}"
        );
    }

    #[test]
    fn only_one_three_or_five_members() {
        assert_eq!(parse_members("3"), Ok(3));
        assert!(parse_members("2").is_err());
        assert!(parse_members("seven").is_err());
    }
}
