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
//!   finds itself in its peers' member list by its peer URLs and takes the
//!   fresh id `member add` gave it, the cluster id and the members, as etcd
//!   does; it keeps both ids in the data directory: its flags derive neither.
//!   A member no peer lists was not added, and must not start.
//!
//! When no peer answers within [`ASK_PEERS_TIMEOUT`] (the first start of a
//! cluster, peers not up yet), a member of a new cluster starts as it would
//! without asking; a joining member cannot learn its id and refuses to start.
//! Owns: these start-up questions and the stored ids. Must never: decide
//! anything once the node runs.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raft::NodeId;
use tokio::task::JoinSet;

use crate::config::{ClusterState, InitialMember, ServeConfig, Url};
use crate::node::disk::wal_dir;
use crate::proto::raftkvpb::peer_client::PeerClient;
use crate::proto::raftkvpb::{MembersRequest, MembersResponse, PeerMember};

/// How long a starting member waits for its peers' answers.
pub const ASK_PEERS_TIMEOUT: Duration = Duration::from_secs(2);

/// The file in the data directory holding the member's cluster id, in hex:
/// derived from the flags when it founded the cluster, taken from its peers
/// when it joined. Kept because the flags only describe the first start: a
/// member restarted on its data with another `--initial-cluster` (say, the
/// membership of today) stays in its cluster, as an etcd member does.
const CLUSTER_ID_FILE: &str = "cluster-id";

/// The file in the data directory holding the member's own id, in hex, kept
/// for the same reason.
const MEMBER_ID_FILE: &str = "member-id";

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
    #[error(
        "member with peer URLs {peer_urls} has not been added to the cluster: no member in the lists of the peers that answered ({peers}) has these peer URLs. \
         Run `etcdctl member add {name} --peer-urls={peer_urls}` first, then start it with an empty data directory and --initial-cluster-state existing"
    )]
    NotAdded {
        name: String,
        peer_urls: String,
        peers: String,
    },
    #[error(
        "member with peer URLs {peer_urls} cannot join: no peer of --initial-cluster ({asked}) answered within {ASK_PEERS_TIMEOUT:?}, \
         so it cannot learn the id `etcdctl member add` gave it; start it once the cluster's members are reachable"
    )]
    NoPeerAnswered { peer_urls: String, asked: String },
    #[error(
        "the peer at {peer} lists member {member:x} with the peer URL {url:?}, which is not a URL"
    )]
    UnreadablePeerUrl {
        peer: String,
        member: NodeId,
        url: String,
    },
    #[error("cannot {action} the id file {path}: {source}; check the --data-dir permissions and free space")]
    IdFileIo {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the id file {path} holds {text:?}, not a hexadecimal id; restore the data directory from a backup")]
    IdFileUnreadable { path: PathBuf, text: String },
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
/// no data, then refuses a bootstrapped member, or, joining, finds itself in
/// the cluster that added it, and keeps the ids it starts with in its data
/// directory; returns `config` with the ids stored there (a data directory
/// from before they were kept has none: its ids come from the flags).
pub async fn prepare(config: ServeConfig) -> Result<ServeConfig, StartupError> {
    let data_dir = config.data_dir().to_path_buf();
    let mut config = config;
    if !has_data(&data_dir) {
        let asked = peer_urls(&config);
        let answers = ask_peers(&asked, ASK_PEERS_TIMEOUT).await;
        if config.initial_cluster_state() == ClusterState::Existing {
            let joined = find_self(&config, &asked, &answers)?;
            save_id(&data_dir, MEMBER_ID_FILE, joined.member_id)?;
            save_id(&data_dir, CLUSTER_ID_FILE, joined.cluster_id)?;
            tracing::info!(
                member = format_args!("{:x}", joined.member_id),
                cluster = format_args!("{:x}", joined.cluster_id),
                "joined the cluster its peers run"
            );
            config = config.with_initial_cluster(joined.members);
        } else {
            refuse_if_bootstrapped(&config, &answers)?;
            save_id(&data_dir, MEMBER_ID_FILE, config.member_id())?;
            save_id(&data_dir, CLUSTER_ID_FILE, config.cluster_id())?;
        }
    }
    if let Some(member_id) = stored_id(&data_dir, MEMBER_ID_FILE)? {
        config = config.with_member_id(member_id);
    }
    Ok(match stored_id(&data_dir, CLUSTER_ID_FILE)? {
        Some(cluster_id) => config.with_cluster_id(cluster_id),
        None => config,
    })
}

/// What a joining member learned of the cluster that added it.
#[derive(Clone, Debug, PartialEq)]
pub struct Joined {
    pub member_id: NodeId,
    pub cluster_id: u64,
    /// The cluster's members as the peer listed them (learners other than
    /// this member left out: they are no voters to start from).
    pub members: Vec<InitialMember>,
}

/// Finds this member in its peers' lists by exactly its
/// `--initial-advertise-peer-urls`, as etcd matches a joining member, and
/// takes a listing that has no client URLs: the member added and not started
/// yet (a peer that has not applied the latest `member remove` and `member
/// add` may still list the member replaced). Refused when every listing has
/// client URLs (it started before, so this empty data directory was wiped),
/// and when no peer answered or none lists it.
pub fn find_self(
    config: &ServeConfig,
    asked: &[String],
    answers: &[PeerAnswer],
) -> Result<Joined, StartupError> {
    let own_urls = sorted_urls(
        config
            .initial_advertise_peer_urls()
            .iter()
            .map(Url::to_string),
    );
    let peer_urls_text = own_urls.join(",");
    if answers.is_empty() {
        return Err(StartupError::NoPeerAnswered {
            peer_urls: peer_urls_text,
            asked: asked.join(","),
        });
    }
    let listings: Vec<(&PeerAnswer, &PeerMember)> = answers
        .iter()
        .flat_map(|answer| {
            answer
                .members
                .members
                .iter()
                .filter(|member| sorted_urls(member.peer_urls.iter().cloned()) == own_urls)
                .map(move |member| (answer, member))
        })
        .collect();
    let not_started = listings
        .iter()
        .find(|(_, member)| member.client_urls.is_empty());
    let (answer, me) = match (not_started, listings.first()) {
        (Some(&listing), _) => listing,
        (None, Some(&(answer, started))) => {
            return Err(StartupError::AlreadyBootstrapped {
                member: started.id,
                name: config.name().to_owned(),
                peer_urls: peer_urls_text,
                peer: answer.peer_url.clone(),
                cluster: answer.members.cluster_id,
                data_dir: config.data_dir().to_path_buf(),
            })
        }
        (None, None) => {
            return Err(StartupError::NotAdded {
                name: config.name().to_owned(),
                peer_urls: peer_urls_text,
                peers: answers
                    .iter()
                    .map(|answer| answer.peer_url.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            })
        }
    };
    let members = answer
        .members
        .members
        .iter()
        .filter(|member| member.id == me.id || !member.is_learner)
        .map(|member| initial_member(config, &answer.peer_url, member, me.id))
        .collect::<Result<_, _>>()?;
    Ok(Joined {
        member_id: me.id,
        cluster_id: answer.members.cluster_id,
        members,
    })
}

fn sorted_urls(urls: impl Iterator<Item = String>) -> Vec<String> {
    let mut urls: Vec<String> = urls.collect();
    urls.sort();
    urls
}

/// `member` of a peer's list as a member to start from; this member keeps
/// its own name (a member not started yet is listed without one).
fn initial_member(
    config: &ServeConfig,
    peer: &str,
    member: &PeerMember,
    own_id: NodeId,
) -> Result<InitialMember, StartupError> {
    let peer_urls = member
        .peer_urls
        .iter()
        .map(|url| {
            Url::parse(url).map_err(|_| StartupError::UnreadablePeerUrl {
                peer: peer.to_owned(),
                member: member.id,
                url: url.clone(),
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(InitialMember {
        name: if member.id == own_id {
            config.name().to_owned()
        } else {
            member.name.clone()
        },
        peer_urls,
        id: member.id,
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

/// The id saved by [`save_id`] in `file`, if any.
fn stored_id(data_dir: &Path, file_name: &str) -> Result<Option<u64>, StartupError> {
    let path = data_dir.join(file_name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StartupError::IdFileIo {
                action: "read",
                path,
                source,
            })
        }
    };
    u64::from_str_radix(text.trim(), 16)
        .map(Some)
        .map_err(|_| StartupError::IdFileUnreadable { path, text })
}

/// Writes `id` durably to `file_name`: a synced temporary file renamed over the
/// old one, then the directory synced.
fn save_id(data_dir: &Path, file_name: &str, id: u64) -> Result<(), StartupError> {
    let path = data_dir.join(file_name);
    let temporary = data_dir.join(format!("{file_name}.tmp"));
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| StartupError::IdFileIo {
            action,
            path,
            source,
        }
    };
    std::fs::create_dir_all(data_dir).map_err(io("create", data_dir))?;
    {
        let mut file = std::fs::File::create(&temporary).map_err(io("create", &temporary))?;
        file.write_all(format!("{id:x}\n").as_bytes())
            .map_err(io("write", &temporary))?;
        file.sync_all().map_err(io("sync", &temporary))?;
    }
    std::fs::rename(&temporary, &path).map_err(io("rename", &path))?;
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io("sync", data_dir))?;
    Ok(())
}

#[cfg(test)]
mod tests;
