//! Real etcd 3.4 members on loopback, for the tests that hold raftkv up
//! against etcd: the same shape as [`Cluster`](super::Cluster) (fixed ports
//! per member, data in a temporary directory, laid out as `<dir>/<name>`),
//! and only the processes a test started are ever killed (on drop too).

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use super::{free_port, wait_for_child_exit, wait_until_serving, Members};

/// How long an etcd cluster may take to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `etcd` runs, under the rule of [`binary_present`](super::binary_present).
pub fn etcd_present() -> bool {
    super::binary_present("etcd", "--version", "etcd-server", super::under_ci())
}

#[derive(Debug)]
struct EtcdMember {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

/// A cluster of etcd processes.
#[derive(Debug)]
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    members: Vec<EtcdMember>,
    extra_args: Vec<String>,
}

impl EtcdCluster {
    /// Starts `size` members with `extra_args` added to every `etcd`, and
    /// waits until each one answers a status request.
    pub async fn start(size: usize, extra_args: &[&str]) -> EtcdCluster {
        let members = (1..=size)
            .map(|number| EtcdMember {
                name: format!("m{number}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let mut cluster = EtcdCluster {
            dir: tempfile::tempdir().expect("temporary directory"),
            members,
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
        };
        for index in 0..size {
            cluster.start_member(index);
        }
        for index in 0..size {
            if let Err(status) = wait_until_serving(&mut cluster, index, START_TIMEOUT).await {
                panic!("etcd {index} exited with {status}:\n{}", cluster.log(index));
            }
        }
        cluster
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn log_path(&self, index: usize) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.log", self.members[index].name))
    }
}

impl Members for EtcdCluster {
    fn size(&self) -> usize {
        self.members.len()
    }

    fn endpoint(&self, index: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[index].client_port)
    }

    fn data_dir(&self, index: usize) -> PathBuf {
        self.dir.path().join(&self.members[index].name)
    }

    /// Starts the member without waiting for it; a restarted member finds
    /// its data directory and ignores the initial-cluster flags.
    fn start_member(&mut self, index: usize) {
        assert!(self.members[index].child.is_none(), "etcd {index} runs");
        let initial_cluster = self.initial_cluster();
        let member = &self.members[index];
        let client_url = format!("http://127.0.0.1:{}", member.client_port);
        let peer_url = format!("http://127.0.0.1:{}", member.peer_port);
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(index))
            .expect("open etcd log");
        let child = Command::new("etcd")
            .arg(format!("--name={}", member.name))
            .arg(format!("--data-dir={}", self.data_dir(index).display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={initial_cluster}"))
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.members[index].child = Some(child);
    }

    fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_for_exit(&mut self, index: usize, within: Duration) -> Option<ExitStatus> {
        wait_for_child_exit(&mut self.members[index].child, within)
    }

    fn log(&self, index: usize) -> String {
        std::fs::read_to_string(self.log_path(index)).unwrap_or_default()
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill(index);
        }
    }
}
