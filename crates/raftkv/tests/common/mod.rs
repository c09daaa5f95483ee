//! Real `raftkv serve` processes on loopback for the multi-process tests:
//! free ports picked per test, data in a temporary directory, and only the
//! processes a test started are ever killed (on drop too).

#![allow(dead_code)]

pub mod etcd;

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use server::proto::etcdserverpb::kv_client::KvClient;
use server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use server::proto::etcdserverpb::{
    HashKvRequest, HashKvResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    StatusRequest, StatusResponse,
};
use tonic::transport::Channel;

/// How long one client call may take before the test treats it as failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    /// Started with `--initial-cluster-state existing`.
    joining: bool,
    child: Option<Child>,
}

/// A cluster of `raftkv serve` processes.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    members: Vec<Member>,
    extra_args: Vec<String>,
}

/// Ports for members, drawn below the kernel's ephemeral range (32768 and
/// up): a port the kernel handed out and took back could go to a client's
/// outgoing connection before the member binds it, and the member would
/// fail to start. Each test process starts at its own place (by pid) and
/// skips any port it cannot bind now.
const MEMBER_PORTS: std::ops::Range<u16> = 20_000..32_000;

fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(MEMBER_PORTS.end - MEMBER_PORTS.start);
    let start = std::process::id().wrapping_mul(7_919);
    loop {
        let offset = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = MEMBER_PORTS.start + u16::try_from(offset).expect("below the span");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Cluster {
    /// Starts `size` members with `extra_args` added to every `raftkv serve`.
    pub fn start(size: usize, extra_args: &[&str]) -> Cluster {
        let mut cluster = Cluster::prepare(size, extra_args);
        for index in 0..size {
            cluster.start_member(index);
        }
        cluster
    }

    /// A cluster of `size` members, none started yet: a test may prepare
    /// their data directories first, then start each with `start_member`.
    pub fn prepare(size: usize, extra_args: &[&str]) -> Cluster {
        let members = (1..=size)
            .map(|number| Member {
                name: format!("m{number}"),
                client_port: free_port(),
                peer_port: free_port(),
                joining: false,
                child: None,
            })
            .collect();
        Cluster {
            dir: tempfile::tempdir().expect("temporary directory"),
            members,
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
        }
    }

    /// Adds a member that joins the running cluster when started (after a
    /// `member add` of its peer URL); returns its index and peer URL.
    pub fn add_joining_member(&mut self) -> (usize, String) {
        let number = self.members.len() + 1;
        let member = Member {
            name: format!("m{number}"),
            client_port: free_port(),
            peer_port: free_port(),
            joining: true,
            child: None,
        };
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        self.members.push(member);
        (self.members.len() - 1, peer_url)
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The member's `--data-dir`.
    pub fn data_dir(&self, index: usize) -> PathBuf {
        self.dir.path().join(&self.members[index].name)
    }

    pub fn peer_url(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[index].peer_port)
    }

    /// Starts the member with `--initial-cluster-state existing` from now on,
    /// as a replacement added by `member add` is started.
    pub fn set_joining(&mut self, index: usize) {
        self.members[index].joining = true;
    }

    /// Waits (up to `within`) for the member to exit by itself; its exit
    /// status, or `None` while it still runs (it is then left running).
    pub fn wait_for_exit(&mut self, index: usize, within: Duration) -> Option<ExitStatus> {
        wait_for_child_exit(&mut self.members[index].child, within)
    }

    pub fn log_path(&self, index: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[index].name))
    }

    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.log_path(index)).unwrap_or_default()
    }

    pub fn start_member(&mut self, index: usize) {
        assert!(self.members[index].child.is_none(), "member {index} runs");
        let initial_cluster = self.initial_cluster();
        let member = &self.members[index];
        let client_url = format!("http://127.0.0.1:{}", member.client_port);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(index))
            .expect("open member log");
        let child = Command::new(env!("CARGO_BIN_EXE_raftkv"))
            .arg("serve")
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(self.data_dir(index))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &initial_cluster])
            .args(&self.extra_args)
            .args(if member.joining {
                &["--initial-cluster-state", "existing"][..]
            } else {
                &[]
            })
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start raftkv serve");
        self.members[index].child = Some(child);
    }

    /// SIGKILL: the member dies mid-work, as in a crash.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits (bounded) for the exit status.
    pub fn terminate(&mut self, index: usize) -> ExitStatus {
        let mut child = self.members[index].child.take().expect("member runs");
        send_sigterm(child.id());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().expect("wait for member") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "member {index} did not exit within 15 s of SIGTERM; log:\n{}",
                    self.log(index)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every member's client endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        Members::endpoints(self)
    }

    pub fn endpoint(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[index].client_port)
    }

    /// Waits until some member reports itself leader; returns its index.
    pub async fn wait_for_leader(&self, except: Option<usize>) -> usize {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for index in 0..self.size() {
                if Some(index) == except || self.members[index].child.is_none() {
                    continue;
                }
                if let Ok(status) = status(&self.endpoint(index)).await {
                    let member_id = status.header.map_or(0, |h| h.member_id);
                    if status.leader != 0 && status.leader == member_id {
                        return index;
                    }
                }
            }
            assert!(Instant::now() < deadline, "no leader within 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// What the tests that compare raftkv with etcd need of a cluster of real
/// member processes, whichever server they run.
pub trait Members {
    fn size(&self) -> usize;
    /// The member's client URL.
    fn endpoint(&self, index: usize) -> String;
    /// The member's `--data-dir`.
    fn data_dir(&self, index: usize) -> PathBuf;
    /// Starts the member (again) without waiting for it.
    fn start_member(&mut self, index: usize);
    /// SIGKILL: the member dies mid-work, as in a crash.
    fn kill(&mut self, index: usize);
    /// Waits (up to `within`) for the member to exit by itself; its exit
    /// status, or `None` while it still runs.
    fn wait_for_exit(&mut self, index: usize, within: Duration) -> Option<ExitStatus>;
    /// Everything the member wrote to stdout and stderr.
    fn log(&self, index: usize) -> String;

    fn endpoints(&self) -> Vec<String> {
        (0..self.size()).map(|index| self.endpoint(index)).collect()
    }
}

impl Members for Cluster {
    fn size(&self) -> usize {
        Cluster::size(self)
    }

    fn endpoint(&self, index: usize) -> String {
        Cluster::endpoint(self, index)
    }

    fn data_dir(&self, index: usize) -> PathBuf {
        Cluster::data_dir(self, index)
    }

    fn start_member(&mut self, index: usize) {
        Cluster::start_member(self, index);
    }

    fn kill(&mut self, index: usize) {
        Cluster::kill(self, index);
    }

    fn wait_for_exit(&mut self, index: usize, within: Duration) -> Option<ExitStatus> {
        Cluster::wait_for_exit(self, index, within)
    }

    fn log(&self, index: usize) -> String {
        Cluster::log(self, index)
    }
}

/// Waits (up to `within`) for a started child to exit; its status (and the
/// child is forgotten), or `None` while it still runs.
fn wait_for_child_exit(child: &mut Option<Child>, within: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        let running = child.as_mut().expect("process started");
        if let Some(status) = running.try_wait().expect("wait for process") {
            *child = None;
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (up to `within`) until the member answers a status request (`Ok`)
/// or exits (`Err` with its exit status); panics, with its log, when it does
/// neither.
pub async fn wait_until_serving(
    members: &mut impl Members,
    index: usize,
    within: Duration,
) -> Result<(), ExitStatus> {
    let deadline = Instant::now() + within;
    let endpoint = members.endpoint(index);
    loop {
        if let Some(status) = members.wait_for_exit(index, Duration::ZERO) {
            return Err(status);
        }
        if status(&endpoint).await.is_ok() {
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "member {index} neither served nor exited within {within:?}:\n{}",
            members.log(index)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends SIGTERM to a process this test started.
fn send_sigterm(pid: u32) {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .expect("a child's pid is a valid pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        .unwrap_or_else(|error| panic!("SIGTERM to {pid:?} failed: {error}"));
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill(index);
        }
    }
}

/// An etcd-client connected to `endpoint`; panics when it cannot connect.
pub async fn etcd_client(endpoint: &str) -> etcd_client::Client {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(CALL_TIMEOUT);
    etcd_client::Client::connect([endpoint], Some(options))
        .await
        .unwrap_or_else(|error| panic!("etcd-client connects to {endpoint}: {error}"))
}

pub async fn channel(endpoint: &str) -> Result<Channel, tonic::Status> {
    tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .map_err(|e| tonic::Status::internal(e.to_string()))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(CALL_TIMEOUT)
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))
}

pub async fn put(endpoint: &str, key: &str, value: &str) -> Result<PutResponse, tonic::Status> {
    let mut client = KvClient::new(channel(endpoint).await?);
    let request = PutRequest {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ..PutRequest::default()
    };
    Ok(client.put(request).await?.into_inner())
}

/// A range read; `serializable` reads the member's own state without the barrier.
pub async fn range(
    endpoint: &str,
    key: &str,
    range_end: &str,
    serializable: bool,
) -> Result<RangeResponse, tonic::Status> {
    let mut client = KvClient::new(channel(endpoint).await?);
    let request = RangeRequest {
        key: key.as_bytes().to_vec(),
        range_end: range_end.as_bytes().to_vec(),
        serializable,
        ..RangeRequest::default()
    };
    Ok(client.range(request).await?.into_inner())
}

pub async fn get(endpoint: &str, key: &str) -> Option<String> {
    let response = range(endpoint, key, "", false)
        .await
        .expect("linearizable get");
    response
        .kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

pub async fn status(endpoint: &str) -> Result<StatusResponse, tonic::Status> {
    let mut client = MaintenanceClient::new(channel(endpoint).await?);
    Ok(client.status(StatusRequest {}).await?.into_inner())
}

pub async fn hash_kv(endpoint: &str, revision: i64) -> Result<HashKvResponse, tonic::Status> {
    let mut client = MaintenanceClient::new(channel(endpoint).await?);
    Ok(client
        .hash_kv(HashKvRequest { revision })
        .await?
        .into_inner())
}

/// Puts until some member acknowledges, trying each endpoint in turn (an
/// election may be under way); panics after 30 s. Writing the same value
/// again is harmless, so an unknown outcome is simply retried.
pub async fn put_until_acked(endpoints: &[String], key: &str, value: &str) -> PutResponse {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_error = None;
    for endpoint in endpoints.iter().cycle() {
        if Instant::now() > deadline {
            break;
        }
        match put(endpoint, key, value).await {
            Ok(response) => return response,
            Err(status) => last_error = Some(status),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no member acknowledged {key} within 30 s: {last_error:?}");
}

/// A linearizable read of the store's revision through any member that answers.
pub async fn current_revision(endpoints: &[String]) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    for endpoint in endpoints.iter().cycle() {
        if let Ok(response) = range(endpoint, "\0", "", false).await {
            return response.header.map_or(0, |header| header.revision);
        }
        assert!(
            Instant::now() < deadline,
            "no linearizable read within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!("cycle over a non-empty list never ends")
}

/// Whether `etcdctl` runs, under the rule of [`binary_present`].
pub fn etcdctl_present() -> bool {
    binary_present("etcdctl", "version", "etcd-client", under_ci())
}

/// Whether the tests run under CI (`CI=true`).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value == "true")
}

/// Whether `binary version_arg` runs. Missing locally: a message and `false`,
/// so the test passes having checked nothing (and says so). Missing under CI:
/// a panic, so CI can never skip a test that needs the binary silently. The
/// message names the Debian `package` that installs it.
pub fn binary_present(binary: &str, version_arg: &str, package: &str, under_ci: bool) -> bool {
    let runs = Command::new(binary)
        .arg(version_arg)
        .output()
        .is_ok_and(|output| output.status.success());
    if runs {
        return true;
    }
    assert!(
        !under_ci,
        "{binary} is not on PATH under CI=true: install it with \
         `apt-get install -y {package}`; tests that need it must not be skipped in CI"
    );
    // Straight to stderr, past the harness's capture, so a local run shows
    // that nothing was checked.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {binary} is not on PATH; install it with \
         `apt-get install -y {package}` to run this test"
    );
    false
}
