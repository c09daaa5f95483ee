//! What a member without data asks the other members before it starts, as
//! etcd 3.4 does:
//!
//! - A member whose data directory was wiped forgot its votes and its log;
//!   counted in a quorum as the same member, it can lose committed writes.
//!   When a peer lists this member with client URLs (which a member learns
//!   only once the listed member has started and connected to it, the
//!   counterpart of etcd's `isMemberBootstrapped`), the member refuses to
//!   start and names the way to replace it.
//! - A member joining a running cluster (`--initial-cluster-state existing`)
//!   takes the cluster id its peers answer with, and keeps it in the data
//!   directory: after members were replaced, its flags no longer derive it.
//!
//! When no peer answers within [`ASK_PEERS_TIMEOUT`] (the first start of a
//! cluster, peers not up yet), the member starts as it would without asking.
//! Owns: these start-up questions and the stored cluster id. Must never:
//! decide anything once the node runs.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raft::NodeId;
use tokio::task::JoinSet;

use crate::config::{ServeConfig, Url};
use crate::node::disk::wal_dir;
use crate::proto::raftkvpb::peer_client::PeerClient;
use crate::proto::raftkvpb::{MembersRequest, MembersResponse};

/// How long a starting member waits for its peers' answers.
pub const ASK_PEERS_TIMEOUT: Duration = Duration::from_secs(2);

/// The file in the data directory holding the cluster id a joining member
/// took from its peers, in hex.
const CLUSTER_ID_FILE: &str = "cluster-id";

/// Why a member must not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "member {member:x} has already been bootstrapped: the member at {peer} lists it as a started member of cluster {cluster:x}, \
         but its data directory {data_dir} holds no data, so it forgot its votes and its log and must not rejoin as the same member. \
         To replace it: `etcdctl member remove {member:x}`, then `etcdctl member add {name} --peer-urls={peer_urls}`, \
         then start it with an empty data directory and --initial-cluster-state existing"
    )]
    AlreadyBootstrapped {
        member: NodeId,
        name: String,
        peer_urls: String,
        peer: String,
        cluster: u64,
        data_dir: PathBuf,
    },
    #[error("cannot {action} the cluster id file {path}: {source}; check the --data-dir permissions and free space")]
    ClusterIdIo {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the cluster id file {path} holds {text:?}, not a hexadecimal cluster id; restore the data directory from a backup")]
    ClusterIdUnreadable { path: PathBuf, text: String },
}

/// One peer's answer: what it knows of its cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerAnswer {
    /// The peer URL that answered.
    pub peer_url: String,
    pub members: MembersResponse,
}

/// Whether the member's log exists: a member with a log restarts from it
/// and asks nobody.
pub fn has_data(data_dir: &Path) -> bool {
    std::fs::read_dir(wal_dir(data_dir)).is_ok_and(|mut entries| entries.next().is_some())
}

/// Asks the members of `config`'s `--initial-cluster` when this member has
/// no data, then refuses a bootstrapped member or adopts the cluster id of
/// the cluster it joins; otherwise (and for a member with data) returns
/// `config` with the cluster id stored in its data directory, if any.
pub async fn prepare(config: ServeConfig) -> Result<ServeConfig, StartupError> {
    let data_dir = config.data_dir().to_path_buf();
    if !has_data(&data_dir) {
        let answers = ask_peers(&peer_urls(&config), ASK_PEERS_TIMEOUT).await;
        refuse_if_bootstrapped(&config, &answers)?;
        if config.initial_cluster_state() == crate::config::ClusterState::Existing {
            if let Some(cluster_id) = joined_cluster_id(config.member_id(), &answers) {
                save_cluster_id(&data_dir, cluster_id)?;
            }
        }
    }
    Ok(match stored_cluster_id(&data_dir)? {
        Some(cluster_id) => config.with_cluster_id(cluster_id),
        None => config,
    })
}

/// Every peer URL of the other members in `--initial-cluster`.
fn peer_urls(config: &ServeConfig) -> Vec<String> {
    config
        .initial_cluster()
        .iter()
        .filter(|member| member.id != config.member_id())
        .flat_map(|member| member.peer_urls.iter().map(Url::to_string))
        .collect()
}

/// The answers of the peers at `urls` that answered within `within`.
pub async fn ask_peers(urls: &[String], within: Duration) -> Vec<PeerAnswer> {
    let mut asking = JoinSet::new();
    for url in urls {
        let url = url.clone();
        asking.spawn(async move {
            let endpoint = tonic::transport::Endpoint::from_shared(url.clone()).ok()?;
            let channel = endpoint.connect().await.ok()?;
            let members = PeerClient::new(channel)
                .members(MembersRequest {})
                .await
                .ok()?
                .into_inner();
            Some(PeerAnswer {
                peer_url: url,
                members,
            })
        });
    }
    let mut answers = Vec::new();
    let collect = async {
        while let Some(joined) = asking.join_next().await {
            if let Ok(Some(answer)) = joined {
                answers.push(answer);
            }
        }
    };
    if tokio::time::timeout(within, collect).await.is_err() {
        tracing::info!(
            answered = answers.len(),
            asked = urls.len(),
            "not every peer answered in time; going on with the answers received"
        );
    }
    answers
}

/// Refuses when a peer lists this member with client URLs: it started
/// before, so its empty data directory was wiped. (A member's id derives
/// from its peer URLs and the cluster token, so only its own cluster lists it.)
pub fn refuse_if_bootstrapped(
    config: &ServeConfig,
    answers: &[PeerAnswer],
) -> Result<(), StartupError> {
    let member_id = config.member_id();
    let Some(answer) = answers.iter().find(|answer| {
        answer
            .members
            .members
            .iter()
            .any(|member| member.id == member_id && !member.client_urls.is_empty())
    }) else {
        return Ok(());
    };
    Err(StartupError::AlreadyBootstrapped {
        member: member_id,
        name: config.name().to_owned(),
        peer_urls: config
            .initial_advertise_peer_urls()
            .iter()
            .map(Url::to_string)
            .collect::<Vec<_>>()
            .join(","),
        peer: answer.peer_url.clone(),
        cluster: answer.members.cluster_id,
        data_dir: config.data_dir().to_path_buf(),
    })
}

/// The cluster id of the first answer that lists `member_id` as a member:
/// the cluster that added it.
pub fn joined_cluster_id(member_id: NodeId, answers: &[PeerAnswer]) -> Option<u64> {
    answers
        .iter()
        .find(|answer| {
            answer
                .members
                .members
                .iter()
                .any(|member| member.id == member_id)
        })
        .map(|answer| answer.members.cluster_id)
}

/// The cluster id saved by [`save_cluster_id`], if any.
fn stored_cluster_id(data_dir: &Path) -> Result<Option<u64>, StartupError> {
    let path = data_dir.join(CLUSTER_ID_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StartupError::ClusterIdIo {
                action: "read",
                path,
                source,
            })
        }
    };
    u64::from_str_radix(text.trim(), 16)
        .map(Some)
        .map_err(|_| StartupError::ClusterIdUnreadable { path, text })
}

/// Writes the cluster id durably: a synced temporary file renamed over the
/// old one, then the directory synced.
fn save_cluster_id(data_dir: &Path, cluster_id: u64) -> Result<(), StartupError> {
    let path = data_dir.join(CLUSTER_ID_FILE);
    let temporary = data_dir.join(format!("{CLUSTER_ID_FILE}.tmp"));
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| StartupError::ClusterIdIo {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(data_dir).map_err(io("create", data_dir))?;
    {
        let mut file = std::fs::File::create(&temporary).map_err(io("create", &temporary))?;
        file.write_all(format!("{cluster_id:x}\n").as_bytes())
            .map_err(io("write", &temporary))?;
        file.sync_all().map_err(io("sync", &temporary))?;
    }
    std::fs::rename(&temporary, &path).map_err(io("rename", &path))?;
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io("sync", data_dir))?;
    tracing::info!(
        cluster = format_args!("{cluster_id:x}"),
        "joined the cluster its peers run"
    );
    Ok(())
}

#[cfg(test)]
mod tests;
