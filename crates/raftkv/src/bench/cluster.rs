//! The servers a put benchmark measures: real etcd or `raftkv serve`, started
//! as a 1- or n-member cluster of child processes on loopback ports picked
//! here, with data in a temporary directory. It owns those processes and
//! kills only them (on drop too); it never sends a request beyond the checks
//! that the cluster is up.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use server::proto::etcdserverpb::kv_client::KvClient;
use server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use server::proto::etcdserverpb::{PutRequest, StatusRequest};
use tonic::transport::{Channel, Endpoint};

use super::BenchError;

/// How long a new cluster gets to elect a leader and take a first put.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between readiness checks.
const STARTUP_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Pause between checks for a new leader after a kill: the resolution of a
/// measured failover.
const FAILOVER_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// One readiness call at most.
const PROBE_CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Which server a cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    Etcd,
    Raftkv,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Etcd => "etcd",
            System::Raftkv => "raftkv",
        }
    }
}

/// Where to find the server binaries.
#[derive(Clone, Debug)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub raftkv: PathBuf,
}

impl Binaries {
    /// etcd at `etcd`; raftkv at `raftkv`, or this very binary when not given.
    pub fn resolve(etcd: &Path, raftkv: Option<&Path>) -> Result<Binaries, BenchError> {
        let raftkv = match raftkv {
            Some(path) => path.to_path_buf(),
            None => std::env::current_exe().map_err(|source| BenchError::Spawn {
                binary: PathBuf::from("raftkv"),
                source,
            })?,
        };
        Ok(Binaries {
            etcd: etcd.to_path_buf(),
            raftkv,
        })
    }
}

#[derive(Debug)]
struct Member {
    client_port: u16,
    child: Child,
    /// False once this cluster killed it.
    alive: bool,
}

/// A running cluster; dropping it kills its processes.
#[derive(Debug)]
pub struct Cluster {
    members: Vec<Member>,
    leader_index: usize,
    _data: tempfile::TempDir,
}

fn free_port() -> Result<u16, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(BenchError::Port)?;
    Ok(listener.local_addr().map_err(BenchError::Port)?.port())
}

impl Cluster {
    /// Starts `size` members of `system` with data under `parent_dir`, and
    /// waits until a leader is known and takes a put.
    pub async fn start(
        system: System,
        size: usize,
        binaries: &Binaries,
        parent_dir: &Path,
    ) -> Result<Cluster, BenchError> {
        debug_assert!(size >= 1);
        std::fs::create_dir_all(parent_dir).map_err(|source| BenchError::DataDir {
            path: parent_dir.to_path_buf(),
            source,
        })?;
        let data = tempfile::Builder::new()
            .prefix(&format!("{}-{size}-", system.name()))
            .tempdir_in(parent_dir)
            .map_err(|source| BenchError::DataDir {
                path: parent_dir.to_path_buf(),
                source,
            })?;
        let mut ports = Vec::with_capacity(size);
        for _ in 0..size {
            ports.push((free_port()?, free_port()?));
        }
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(index, (_, peer))| format!("m{index}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let binary = match system {
            System::Etcd => &binaries.etcd,
            System::Raftkv => &binaries.raftkv,
        };
        let mut cluster = Cluster {
            members: Vec::with_capacity(size),
            leader_index: 0,
            _data: data,
        };
        for (index, &(client_port, peer_port)) in ports.iter().enumerate() {
            let member_dir = cluster._data.path().join(format!("m{index}"));
            let child = spawn_member(
                system,
                binary,
                &member_dir,
                index,
                (client_port, peer_port),
                &initial_cluster,
            )?;
            cluster.members.push(Member {
                client_port,
                child,
                alive: true,
            });
        }
        cluster.leader_index = cluster.wait_ready(system, STARTUP_POLL_INTERVAL).await?;
        Ok(cluster)
    }

    /// The client endpoint of the leader (where every put goes, so neither
    /// system pays for forwarding).
    pub fn leader_endpoint(&self) -> String {
        endpoint_url(self.members[self.leader_index].client_port)
    }

    /// The process ids of every member, for CPU accounting.
    pub fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .map(|member| member.child.id())
            .collect()
    }

    /// Kills the leader (SIGKILL, by its own child handle), then polls the
    /// others every [`FAILOVER_POLL_INTERVAL`] until one reports itself leader
    /// and takes a put. Returns the time from the kill to that put.
    pub async fn fail_over(&mut self, system: System) -> Result<Duration, BenchError> {
        let leader = &mut self.members[self.leader_index];
        let killed_at = Instant::now();
        leader.child.kill().map_err(|source| BenchError::Spawn {
            binary: PathBuf::from(system.name()),
            source,
        })?;
        let _ = leader.child.wait();
        leader.alive = false;
        self.leader_index = self.wait_ready(system, FAILOVER_POLL_INTERVAL).await?;
        Ok(killed_at.elapsed())
    }

    /// Polls until one live member reports itself leader and a put through
    /// it succeeds; returns that member's index.
    async fn wait_ready(
        &mut self,
        system: System,
        poll_interval: Duration,
    ) -> Result<usize, BenchError> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last_problem = String::from("no member answered yet");
        while Instant::now() < deadline {
            for member in self.members.iter_mut().filter(|member| member.alive) {
                if let Ok(Some(status)) = member.child.try_wait() {
                    return Err(BenchError::Exited {
                        system: system.name(),
                        status: status.to_string(),
                    });
                }
            }
            match self.find_leader().await {
                Ok(index) => {
                    match probe_put(&endpoint_url(self.members[index].client_port)).await {
                        Ok(()) => return Ok(index),
                        Err(problem) => last_problem = problem,
                    }
                }
                Err(problem) => last_problem = problem,
            }
            tokio::time::sleep(poll_interval).await;
        }
        Err(BenchError::NotReady {
            system: system.name(),
            waited: STARTUP_TIMEOUT,
            last_problem,
        })
    }

    async fn find_leader(&self) -> Result<usize, String> {
        let mut problem = "no member reports itself leader yet".to_owned();
        for (index, member) in self.members.iter().enumerate() {
            if !member.alive {
                continue;
            }
            match leads(member.client_port).await {
                Ok(true) => return Ok(index),
                Ok(false) => {}
                Err(failure) => problem = failure,
            }
        }
        Err(problem)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in self.members.iter_mut().filter(|member| member.alive) {
            // Only the children this cluster started, by their own handle.
            let _ = member.child.kill();
            let _ = member.child.wait();
        }
    }
}

/// Whether the member on `client_port` reports itself leader.
async fn leads(client_port: u16) -> Result<bool, String> {
    let channel = connect(&endpoint_url(client_port))
        .await
        .map_err(|error| error.to_string())?;
    let mut client = MaintenanceClient::new(channel);
    let status = tokio::time::timeout(PROBE_CALL_TIMEOUT, client.status(StatusRequest {}))
        .await
        .map_err(|_| "status call timed out".to_owned())?
        .map_err(|status| status.message().to_owned())?
        .into_inner();
    let own_id = status.header.map_or(0, |header| header.member_id);
    Ok(status.leader != 0 && status.leader == own_id)
}

fn endpoint_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// A channel with TCP_NODELAY, as etcd's own clients use.
pub async fn connect(url: &str) -> Result<Channel, tonic::transport::Error> {
    Endpoint::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .connect_timeout(PROBE_CALL_TIMEOUT)
        .connect()
        .await
}

async fn probe_put(url: &str) -> Result<(), String> {
    let channel = connect(url).await.map_err(|error| error.to_string())?;
    let mut client = KvClient::new(channel);
    let request = PutRequest {
        key: b"bench/probe".to_vec(),
        value: b"ready".to_vec(),
        ..PutRequest::default()
    };
    tokio::time::timeout(PROBE_CALL_TIMEOUT, client.put(request))
        .await
        .map_err(|_| "probe put timed out".to_owned())?
        .map(|_| ())
        .map_err(|status| status.message().to_owned())
}

fn spawn_member(
    system: System,
    binary: &Path,
    member_dir: &Path,
    index: usize,
    (client_port, peer_port): (u16, u16),
    initial_cluster: &str,
) -> Result<Child, BenchError> {
    std::fs::create_dir_all(member_dir).map_err(|source| BenchError::DataDir {
        path: member_dir.to_path_buf(),
        source,
    })?;
    let log_path = member_dir.join("server.log");
    let log = File::create(&log_path).map_err(|source| BenchError::DataDir {
        path: log_path.clone(),
        source,
    })?;
    let log_for_stderr = log.try_clone().map_err(|source| BenchError::DataDir {
        path: log_path,
        source,
    })?;
    let client_url = endpoint_url(client_port);
    let peer_url = endpoint_url(peer_port);
    let mut command = Command::new(binary);
    if system == System::Raftkv {
        command.arg("serve");
    }
    command
        .arg("--name")
        .arg(format!("m{index}"))
        .arg("--data-dir")
        .arg(member_dir.join("data"))
        .arg("--listen-client-urls")
        .arg(&client_url)
        .arg("--advertise-client-urls")
        .arg(&client_url)
        .arg("--listen-peer-urls")
        .arg(&peer_url)
        .arg("--initial-advertise-peer-urls")
        .arg(&peer_url)
        .arg("--initial-cluster")
        .arg(initial_cluster)
        .arg("--initial-cluster-state")
        .arg("new")
        .arg("--initial-cluster-token")
        .arg("raftkv-bench")
        .arg("--log-level")
        .arg("warn")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_for_stderr);
    command.spawn().map_err(|source| BenchError::Spawn {
        binary: binary.to_path_buf(),
        source,
    })
}

/// CPU seconds (user + system) a process has used so far, from
/// `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32, clock_ticks_per_second: u64) -> Result<f64, BenchError> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|source| BenchError::ProcStat {
        path: path.clone(),
        reason: source.to_string(),
    })?;
    let ticks = parse_cpu_ticks(&text).ok_or_else(|| BenchError::ProcStat {
        path,
        reason: "no utime and stime fields after the command name".to_owned(),
    })?;
    Ok(ticks as f64 / clock_ticks_per_second as f64)
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted from
/// its last closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name come state (field 3) .. so utime is the 12th from here.
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`); 100 when that
/// cannot be asked, which is what Linux uses on every common architecture.
pub fn clock_ticks_per_second() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        let stat = "4242 (raft kv) (x) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    37 5 0 0 20 0 6 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(42));
    }

    #[test]
    fn truncated_stat_is_none() {
        assert_eq!(parse_cpu_ticks("4242 (etcd) S 1 2 3"), None);
        assert_eq!(parse_cpu_ticks("no name here"), None);
    }

    #[test]
    fn missing_process_error_names_the_file() {
        let error = cpu_seconds(u32::MAX, 100).unwrap_err().to_string();
        assert!(error.contains("/proc/4294967295/stat"), "{error}");
    }
}
