//! `raftkv playground` as a user runs it: three members on free ports, a
//! write through one member read through another, SIGTERM to the playground
//! and every member gone; and a member that dies on its own failing the
//! playground and stopping the rest. Each test takes 2–5 s.

mod common;

use rustix::process::Signal;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Attempts at finding a run of consecutive free ports before giving up.
const PORT_RUN_ATTEMPTS_MAX: usize = 100;

/// How long the playground may take to exit after it is told to stop.
const EXIT_TIMEOUT: Duration = Duration::from_secs(60);

/// Binds `count` consecutive loopback ports; the caller drops the listeners
/// right before the playground binds the same ports.
fn consecutive_free_ports(count: u16) -> Vec<TcpListener> {
    for _attempt in 0..PORT_RUN_ATTEMPTS_MAX {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let base = first.local_addr().expect("local address").port();
        let mut run = vec![first];
        for offset in 1..count {
            let Some(port) = base.checked_add(offset) else {
                break;
            };
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(listener) => run.push(listener),
                Err(_) => break,
            }
        }
        if run.len() == usize::from(count) {
            return run;
        }
    }
    panic!("no {count} consecutive free ports in {PORT_RUN_ATTEMPTS_MAX} attempts");
}

fn first_port(run: &[TcpListener]) -> u16 {
    run[0].local_addr().expect("local address").port()
}

/// A running `raftkv playground` and what it announced on stdout.
struct Playground {
    child: Child,
    endpoints: Vec<String>,
    member_pids: Vec<u32>,
    log_path: std::path::PathBuf,
}

impl Playground {
    fn start(members: u16, dir: &Path) -> Playground {
        let client_ports = consecutive_free_ports(members);
        let peer_ports = consecutive_free_ports(members);
        let (client_base, peer_base) = (first_port(&client_ports), first_port(&peer_ports));
        drop((client_ports, peer_ports));
        let log_path = dir.join("playground.log");
        let log = std::fs::File::create(&log_path).expect("create the playground log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg("playground")
            .args(["--members", &members.to_string()])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--client-port-base", &client_base.to_string()])
            .args(["--peer-port-base", &peer_base.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start raftkv playground");
        let stdout = child.stdout.take().expect("piped stdout");
        let (endpoints, member_pids) = read_announcement(stdout, usize::from(members));
        Playground {
            child,
            endpoints,
            member_pids,
            log_path,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits (bounded) for the playground to exit.
    fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the playground") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the playground did not exit within {EXIT_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Playground {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            send_signal(Signal::TERM, self.child.id());
            let _ = self.wait_for_exit();
        }
        for &pid in &self.member_pids {
            if process_exists(pid) {
                send_signal(Signal::KILL, pid);
            }
        }
    }
}

/// Reads the playground's announcement: one line per member with its pid,
/// then the etcdctl line with every endpoint.
fn read_announcement(stdout: ChildStdout, members: usize) -> (Vec<String>, Vec<u32>) {
    let mut pids = Vec::new();
    let mut seen = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the playground's stdout");
        seen.push(line.clone());
        if let Some(rest) = line.trim_start().strip_prefix("infra") {
            let pid = rest
                .split_once(" pid ")
                .and_then(|(_, tail)| tail.split(':').next())
                .and_then(|pid| pid.parse().ok())
                .unwrap_or_else(|| panic!("no pid in {line:?}"));
            pids.push(pid);
        }
        if let Some(rest) = line.strip_prefix("etcdctl --endpoints=") {
            let list = rest.split_whitespace().next().unwrap_or_default();
            let endpoints: Vec<String> = list
                .split(',')
                .map(|endpoint| format!("http://{endpoint}"))
                .collect();
            assert_eq!(endpoints.len(), members, "{seen:?}");
            assert_eq!(pids.len(), members, "{seen:?}");
            return (endpoints, pids);
        }
    }
    panic!("the playground exited before announcing its endpoints: {seen:?}");
}

fn send_signal(signal: Signal, pid: u32) {
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a child's pid is a valid pid");
    rustix::process::kill_process(target, signal)
        .unwrap_or_else(|error| panic!("{signal:?} to {pid} failed: {error}"));
}

/// True while `pid` exists and is not a zombie waiting for its parent.
fn process_exists(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(") ")
            .next()
            .is_some_and(|rest| !rest.starts_with('Z'))
    })
}

/// A linearizable get through `endpoint`, retried (bounded) while an
/// election makes the member refuse.
async fn get_until_answered(endpoint: &str, key: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match common::range(endpoint, key, "", false).await {
            Ok(response) => {
                return response
                    .kvs
                    .first()
                    .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
            }
            Err(status) => assert!(
                Instant::now() < deadline,
                "no answer from {endpoint} within 30 s: {status}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_one_member_read_through_another_then_sigterm_stops_all() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut playground = Playground::start(3, dir.path());
    assert!(
        playground
            .member_pids
            .iter()
            .all(|&pid| process_exists(pid)),
        "every member runs"
    );
    common::put_until_acked(&playground.endpoints[..1], "k", "v").await;
    let read = get_until_answered(&playground.endpoints[1], "k").await;
    assert_eq!(read.as_deref(), Some("v"), "read through infra2");

    send_signal(Signal::TERM, playground.child.id());
    let status = playground.wait_for_exit();
    let log = playground.log();
    assert!(status.success(), "playground exit: {status}\n{log}");
    assert!(
        log.contains("infra3 | "),
        "member logs carry their name:\n{log}"
    );
    for &pid in &playground.member_pids {
        assert!(!process_exists(pid), "member pid {pid} still runs\n{log}");
    }
    for name in ["infra1", "infra2", "infra3"] {
        assert!(
            dir.path()
                .join("data")
                .join(format!("{name}.etcd"))
                .is_dir(),
            "{name}'s data directory"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_dying_fails_the_playground_and_stops_the_rest() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut playground = Playground::start(3, dir.path());
    common::put_until_acked(&playground.endpoints, "k", "v").await;
    send_signal(Signal::KILL, playground.member_pids[1]);
    let status = playground.wait_for_exit();
    let log = playground.log();
    assert!(
        !status.success(),
        "a dead member must fail the playground\n{log}"
    );
    assert!(
        log.contains("infra2 exited unexpectedly"),
        "the playground names the member:\n{log}"
    );
    for &pid in &playground.member_pids {
        assert!(!process_exists(pid), "member pid {pid} still runs\n{log}");
    }
}
