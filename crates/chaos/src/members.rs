//! `raftkv serve` members as real processes, one per host, with etcd's
//! standard ports on each host's own address. Crashes are SIGKILL, pauses
//! SIGSTOP and SIGCONT, all sent by pid to processes this suite started.
//!
//! Owns: the members' command lines, data directories and logs, and their
//! processes' lives. Must never: signal a process it did not start; leave
//! one running when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use rustix::process::{kill_process, Pid, Signal};

use crate::hosts::Hosts;
use crate::server_kind::ServerKind;

pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

/// Why a member could not be started.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error("cannot open member log {path}: {source}")]
    Log {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot wipe {path}: {source}")]
    Wipe {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start member {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct Process {
    child: Child,
    paused: bool,
}

/// The members of one cluster over `hosts`, data and logs under `dir`.
#[derive(Debug)]
pub struct Members {
    binary: PathBuf,
    server: ServerKind,
    dir: PathBuf,
    names: Vec<String>,
    client_urls: Vec<String>,
    peer_urls: Vec<String>,
    extra_args: Vec<String>,
    /// Members started with `--initial-cluster-state existing`: those
    /// replaced after a wipe or added by a membership change, which join the
    /// running cluster.
    joining: Vec<bool>,
    /// Which hosts' members belong to the cluster now; the others are
    /// spares, for a membership change to add.
    in_cluster: Vec<bool>,
    processes: Vec<Option<Process>>,
}

impl Members {
    /// Describes one member per host of `hosts`, none started yet.
    pub fn new(binary: &Path, dir: &Path, hosts: &Hosts, extra_args: &[String]) -> Members {
        let count = hosts.count();
        Members {
            binary: binary.to_owned(),
            server: ServerKind::Raftkv,
            dir: dir.to_owned(),
            names: (1..=count).map(|number| format!("m{number}")).collect(),
            client_urls: (0..count)
                .map(|index| format!("http://{}:{CLIENT_PORT}", hosts.address(index)))
                .collect(),
            peer_urls: (0..count)
                .map(|index| format!("http://{}:{PEER_PORT}", hosts.address(index)))
                .collect(),
            extra_args: extra_args.to_vec(),
            joining: vec![false; count],
            in_cluster: vec![true; count],
            processes: (0..count).map(|_| None).collect(),
        }
    }

    /// The members run `binary` as this kind of server (raftkv unless
    /// told).
    pub fn running(mut self, server: ServerKind) -> Members {
        self.server = server;
        self
    }

    /// Leaves the last `spares` hosts out of the initial cluster: spare
    /// hosts a membership change may add a member on.
    pub fn with_spare_hosts(mut self, spares: usize) -> Members {
        let count = self.count();
        for in_cluster in &mut self.in_cluster[count.saturating_sub(spares)..] {
            *in_cluster = false;
        }
        self
    }

    /// How many hosts there are, spares included.
    pub fn count(&self) -> usize {
        self.names.len()
    }

    /// The hosts whose members belong to the cluster now.
    pub fn cluster(&self) -> Vec<usize> {
        (0..self.count())
            .filter(|&index| self.in_cluster[index])
            .collect()
    }

    /// The hosts outside the cluster.
    pub fn spares(&self) -> Vec<usize> {
        (0..self.count())
            .filter(|&index| !self.in_cluster[index])
            .collect()
    }

    /// The client URLs of the cluster's members other than `index`: where
    /// to ask for a change to `index`.
    pub fn client_urls_of_cluster_but(&self, index: usize) -> Vec<String> {
        self.cluster()
            .into_iter()
            .filter(|&other| other != index)
            .map(|other| self.client_urls[other].clone())
            .collect()
    }

    /// Counts spare `index` in the cluster, added through the Cluster API:
    /// it is started with `--initial-cluster-state existing` and an empty
    /// data directory.
    pub fn join(&mut self, index: usize) -> Result<(), MemberError> {
        self.in_cluster[index] = true;
        self.joining[index] = true;
        self.wipe(index)
    }

    /// Stops member `index`, removed through the Cluster API, and empties
    /// its data directory: its host is a spare again.
    pub fn leave(&mut self, index: usize) -> Result<(), MemberError> {
        self.kill(index);
        self.in_cluster[index] = false;
        self.wipe(index)
    }

    /// Empties member `index`'s data directory; its next start
    /// bootstraps it anew.
    pub fn wipe(&mut self, index: usize) -> Result<(), MemberError> {
        let path = self.data_dir(index);
        std::fs::remove_dir_all(&path).or_else(|source| match source.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(MemberError::Wipe { path, source }),
        })
    }

    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    pub fn client_url(&self, index: usize) -> &str {
        &self.client_urls[index]
    }

    pub fn client_urls(&self) -> &[String] {
        &self.client_urls
    }

    pub fn peer_url(&self, index: usize) -> &str {
        &self.peer_urls[index]
    }

    /// The member's `--data-dir`.
    pub fn data_dir(&self, index: usize) -> PathBuf {
        self.dir.join(&self.names[index])
    }

    /// Starts member `index` with `--initial-cluster-state existing` from
    /// now on, as a member added to a running cluster is started.
    pub fn set_joining(&mut self, index: usize) {
        self.joining[index] = true;
    }

    pub fn log_path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("{}.log", self.names[index]))
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.processes[index].is_some()
    }

    pub fn is_paused(&self, index: usize) -> bool {
        self.processes[index]
            .as_ref()
            .is_some_and(|process| process.paused)
    }

    /// Starts member `index` in its host (a restart keeps its data).
    pub fn start(&mut self, hosts: &Hosts, index: usize) -> Result<(), MemberError> {
        assert!(!self.is_running(index), "member {index} runs already");
        // The membership of now, as an operator who keeps the service
        // definition current would pass it: a member restarted on its data
        // must ignore it, as etcd's does.
        let initial_cluster = self
            .cluster()
            .into_iter()
            .map(|member| format!("{}={}", self.names[member], self.peer_urls[member]))
            .collect::<Vec<_>>()
            .join(",");
        let log_path = self.log_path(index);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| MemberError::Log {
                path: log_path.clone(),
                source,
            })?;
        let log_for_stderr = log.try_clone().map_err(|source| MemberError::Log {
            path: log_path,
            source,
        })?;
        let name = &self.names[index];
        let child = hosts
            .command(index, &self.binary)
            .args(self.server.leading_args())
            .args(["--name", name])
            .arg("--data-dir")
            .arg(self.data_dir(index))
            .args(["--listen-client-urls", &self.client_urls[index]])
            .args(["--advertise-client-urls", &self.client_urls[index]])
            .args(["--listen-peer-urls", &self.peer_urls[index]])
            .args(["--initial-advertise-peer-urls", &self.peer_urls[index]])
            .args(["--initial-cluster", &initial_cluster])
            .args(if self.joining[index] {
                &["--initial-cluster-state", "existing"][..]
            } else {
                &[]
            })
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_for_stderr)
            .spawn()
            .map_err(|source| MemberError::Spawn {
                name: name.clone(),
                source,
            })?;
        self.processes[index] = Some(Process {
            child,
            paused: false,
        });
        Ok(())
    }

    /// SIGKILL: the member dies mid-work, as in a crash.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut process) = self.processes[index].take() {
            signal(&process.child, Signal::KILL);
            let _ = process.child.wait();
        }
    }

    /// SIGSTOP: the process stops where it is and keeps its state.
    pub fn pause(&mut self, index: usize) {
        if let Some(process) = &mut self.processes[index] {
            if !process.paused {
                signal(&process.child, Signal::STOP);
                process.paused = true;
            }
        }
    }

    /// SIGCONT for a paused member.
    pub fn resume(&mut self, index: usize) {
        if let Some(process) = &mut self.processes[index] {
            if process.paused {
                signal(&process.child, Signal::CONT);
                process.paused = false;
            }
        }
    }

    /// Waits up to `within` for member `index` to exit by itself; its exit
    /// status, or `None` if it still runs (or was not running).
    pub async fn wait_for_exit(
        &mut self,
        index: usize,
        within: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let process = self.processes[index].as_mut()?;
            if let Ok(Some(status)) = process.child.try_wait() {
                self.processes[index] = None;
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Members whose process exited by itself (not by our SIGKILL), with
    /// their exit status: a member must never die of a fault.
    pub fn exited(&mut self) -> Vec<(usize, String)> {
        let mut exited = Vec::new();
        for (index, slot) in self.processes.iter_mut().enumerate() {
            if let Some(process) = slot {
                if let Ok(Some(status)) = process.child.try_wait() {
                    exited.push((index, status.to_string()));
                    *slot = None;
                }
            }
        }
        exited
    }
}

/// Sends `signal` to a child this suite started; one that already exited
/// (and was not yet reaped) ignores it.
fn signal(child: &Child, signal: Signal) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(Pid::from_raw)
        .expect("a child's pid is a valid pid");
    let _ = kill_process(pid, signal);
}

impl Drop for Members {
    fn drop(&mut self) {
        for index in 0..self.processes.len() {
            self.kill(index);
        }
    }
}
