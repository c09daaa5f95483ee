//! `raftkv serve` configuration: etcd's flags with etcd's names and defaults
//! ([`ServeArgs`], for clap), checked once at start into a [`ServeConfig`] that
//! the rest of the server can trust. This module only parses and checks; it
//! never opens files or sockets.

mod member_id;
mod url;

use std::path::PathBuf;
use std::time::Duration;

use raft::NodeId;

pub use member_id::{derive_cluster_id, derive_member_id, fresh_member_id};
pub use url::{Scheme, Url, UrlError};

/// The member name when `--name` is not given.
pub const DEFAULT_NAME: &str = "default";
pub const DEFAULT_CLIENT_URL: &str = "http://localhost:2379";
pub const DEFAULT_PEER_URL: &str = "http://localhost:2380";
pub const DEFAULT_CLUSTER_TOKEN: &str = "etcd-cluster";
/// Committed entries between two snapshots when `--snapshot-count` is 0.
pub const DEFAULT_SNAPSHOT_ENTRIES: u64 = 100_000;
/// The backend quota when `--quota-backend-bytes` is 0: 2 GiB.
pub const DEFAULT_QUOTA_BACKEND_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// The longest election timeout accepted, as in etcd.
pub const ELECTION_TIMEOUT_MS_MAX: u64 = 50_000;
/// The election timeout must be at least this many heartbeat intervals, as in
/// etcd, so a few lost heartbeats do not trigger an election.
pub const ELECTION_TIMEOUT_HEARTBEATS_MIN: u64 = 5;

/// Whether this member bootstraps a new cluster or joins a running one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ClusterState {
    New,
    Existing,
}

/// The log levels etcd 3.4 accepts for `--log-level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
    Panic,
    Fatal,
}

/// The flags of `raftkv serve`, named and defaulted as etcd's. URL lists are
/// comma-separated, as in etcd. Turn them into a [`ServeConfig`] with
/// [`ServeArgs::validate`].
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "serve", about = "Run a raftkv member")]
pub struct ServeArgs {
    /// Human-readable name of this member; must appear in --initial-cluster.
    #[arg(long, default_value = DEFAULT_NAME)]
    pub name: String,

    /// Directory for the log, snapshots and data [default: NAME.etcd, NAME being --name].
    #[arg(long = "data-dir", value_name = "PATH")]
    pub data_dir: Option<PathBuf>,

    /// URLs to listen on for client traffic.
    #[arg(long = "listen-client-urls", value_name = "URLS", value_delimiter = ',', default_value = DEFAULT_CLIENT_URL)]
    pub listen_client_urls: Vec<String>,

    /// Client URLs of this member to tell the rest of the cluster and clients.
    #[arg(long = "advertise-client-urls", value_name = "URLS", value_delimiter = ',', default_value = DEFAULT_CLIENT_URL)]
    pub advertise_client_urls: Vec<String>,

    /// URLs to listen on for traffic from other members.
    #[arg(long = "listen-peer-urls", value_name = "URLS", value_delimiter = ',', default_value = DEFAULT_PEER_URL)]
    pub listen_peer_urls: Vec<String>,

    /// Peer URLs of this member to tell the rest of the cluster.
    #[arg(long = "initial-advertise-peer-urls", value_name = "URLS", value_delimiter = ',', default_value = DEFAULT_PEER_URL)]
    pub initial_advertise_peer_urls: Vec<String>,

    /// Every member at bootstrap, as name=url[,name=url...]; a name given twice
    /// has two peer URLs [default: NAME=URL for
    /// each URL of --initial-advertise-peer-urls, NAME being --name].
    #[arg(long = "initial-cluster", value_name = "NAME=URL,...")]
    pub initial_cluster: Option<String>,

    /// `new` to bootstrap a cluster, `existing` to join one.
    #[arg(long = "initial-cluster-state", value_name = "STATE", value_enum, default_value_t = ClusterState::New)]
    pub initial_cluster_state: ClusterState,

    /// Token unique to this cluster; it seeds the member and cluster ids, so two
    /// clusters bootstrapped from the same URLs still get different ids.
    #[arg(long = "initial-cluster-token", value_name = "TOKEN", default_value = DEFAULT_CLUSTER_TOKEN)]
    pub initial_cluster_token: String,

    /// Time between heartbeats, in milliseconds; also the length of one tick.
    #[arg(long = "heartbeat-interval", value_name = "MS", default_value_t = 100)]
    pub heartbeat_interval_ms: u64,

    /// Time without a leader before an election, in milliseconds.
    #[arg(long = "election-timeout", value_name = "MS", default_value_t = 1000)]
    pub election_timeout_ms: u64,

    /// Committed entries between two snapshots; 0 means the default.
    #[arg(long = "snapshot-count", value_name = "ENTRIES", default_value_t = DEFAULT_SNAPSHOT_ENTRIES)]
    pub snapshot_entries: u64,

    /// Largest client request accepted, in bytes.
    #[arg(
        long = "max-request-bytes",
        value_name = "BYTES",
        default_value_t = 1_572_864
    )]
    pub request_bytes_max: u64,

    /// Most operations in one transaction.
    #[arg(long = "max-txn-ops", value_name = "OPS", default_value_t = 128)]
    pub txn_ops_max: u64,

    /// Backend size that raises the NOSPACE alarm, in bytes; 0 means 2 GiB.
    #[arg(
        long = "quota-backend-bytes",
        value_name = "BYTES",
        default_value_t = 0
    )]
    pub quota_backend_bytes: u64,

    /// How much the member logs.
    #[arg(long = "log-level", value_name = "LEVEL", value_enum, default_value_t = LogLevel::Info)]
    pub log_level: LogLevel,
}

/// A flag value `raftkv serve` refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("--name is empty; give this member a name")]
    EmptyName,
    #[error("--initial-cluster-state existing needs the members already in the cluster in --initial-cluster (`{initial_cluster}` names only this member)")]
    JoinWithoutMembers { initial_cluster: String },
    #[error("--{flag} is empty; give at least one URL")]
    EmptyUrlList { flag: &'static str },
    #[error("--{flag}: {source}")]
    BadUrl {
        flag: &'static str,
        #[source]
        source: UrlError,
    },
    #[error("--initial-cluster entry `{entry}` is not name=url")]
    InitialClusterEntry { entry: String },
    #[error("--initial-cluster member `{name}`: {source}")]
    InitialClusterUrl {
        name: String,
        #[source]
        source: UrlError,
    },
    #[error("--initial-cluster gives peer URL {url} to both `{first}` and `{second}`; each URL belongs to one member")]
    DuplicatePeerUrl {
        url: String,
        first: String,
        second: String,
    },
    #[error("--name `{name}` is not in --initial-cluster `{initial_cluster}`; add `{name}=<peer url>` to it")]
    NameNotInInitialCluster {
        name: String,
        initial_cluster: String,
    },
    #[error("--initial-cluster gives `{name}` peer URLs [{in_cluster}] but --initial-advertise-peer-urls is [{advertised}]; make them the same")]
    AdvertisedPeerUrlsMismatch {
        name: String,
        in_cluster: String,
        advertised: String,
    },
    #[error("--heartbeat-interval must be > 0 ms")]
    ZeroHeartbeatInterval,
    #[error("--election-timeout must be > 0 ms")]
    ZeroElectionTimeout,
    #[error("--election-timeout ({election_timeout_ms} ms) must be at least {ELECTION_TIMEOUT_HEARTBEATS_MIN} times --heartbeat-interval ({heartbeat_interval_ms} ms)")]
    ElectionTimeoutTooShort {
        election_timeout_ms: u64,
        heartbeat_interval_ms: u64,
    },
    #[error("--election-timeout ({election_timeout_ms} ms) is too long; the most is {ELECTION_TIMEOUT_MS_MAX} ms")]
    ElectionTimeoutTooLong { election_timeout_ms: u64 },
}

/// One member of the cluster at bootstrap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_urls: Vec<Url>,
    pub id: NodeId,
}

/// A checked `raftkv serve` configuration. Built only by [`ServeArgs::validate`],
/// so its values are consistent: the member is in the initial cluster with its
/// advertised URLs, ids are derived, and the timeouts obey etcd's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeConfig {
    name: String,
    data_dir: PathBuf,
    listen_client_urls: Vec<Url>,
    advertise_client_urls: Vec<Url>,
    listen_peer_urls: Vec<Url>,
    initial_advertise_peer_urls: Vec<Url>,
    initial_cluster: Vec<InitialMember>,
    initial_cluster_state: ClusterState,
    initial_cluster_token: String,
    heartbeat_interval_ms: u64,
    election_timeout_ms: u64,
    snapshot_entries: u64,
    request_bytes_max: u64,
    txn_ops_max: u64,
    quota_backend_bytes: u64,
    log_level: LogLevel,
    member_id: NodeId,
    cluster_id: u64,
}

impl ServeArgs {
    /// Checks every flag and derives the ids; the first problem found is returned.
    pub fn validate(self) -> Result<ServeConfig, ConfigError> {
        if self.name.is_empty() {
            return Err(ConfigError::EmptyName);
        }
        let listen_client_urls = parse_url_list(
            "listen-client-urls",
            &self.listen_client_urls,
            Url::parse_bindable,
        )?;
        let advertise_client_urls = parse_url_list(
            "advertise-client-urls",
            &self.advertise_client_urls,
            Url::parse,
        )?;
        let listen_peer_urls = parse_url_list(
            "listen-peer-urls",
            &self.listen_peer_urls,
            Url::parse_bindable,
        )?;
        let initial_advertise_peer_urls = parse_url_list(
            "initial-advertise-peer-urls",
            &self.initial_advertise_peer_urls,
            Url::parse,
        )?;
        check_timeouts(self.heartbeat_interval_ms, self.election_timeout_ms)?;

        let initial_cluster_text = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| initial_cluster_from_name(&self.name, &initial_advertise_peer_urls));
        let initial_cluster =
            parse_initial_cluster(&initial_cluster_text, &self.initial_cluster_token)?;
        let member = check_member_in_cluster(
            &self.name,
            &initial_advertise_peer_urls,
            &initial_cluster,
            &initial_cluster_text,
        )?;
        let member_id = member.id;
        if self.initial_cluster_state == ClusterState::Existing && initial_cluster.len() < 2 {
            return Err(ConfigError::JoinWithoutMembers {
                initial_cluster: initial_cluster_text,
            });
        }
        // A member joining an existing cluster is listed in --initial-cluster
        // beside the members already there, who made the cluster's id
        // without it (exact when they are the members that bootstrapped it).
        let member_ids: Vec<NodeId> = initial_cluster
            .iter()
            .map(|member| member.id)
            .filter(|&id| self.initial_cluster_state == ClusterState::New || id != member_id)
            .collect();
        let cluster_id = derive_cluster_id(&member_ids);

        let data_dir = match self.data_dir {
            Some(path) if !path.as_os_str().is_empty() => path,
            _ => PathBuf::from(format!("{}.etcd", self.name)),
        };
        let config = ServeConfig {
            name: self.name,
            data_dir,
            listen_client_urls,
            advertise_client_urls,
            listen_peer_urls,
            initial_advertise_peer_urls,
            initial_cluster,
            initial_cluster_state: self.initial_cluster_state,
            initial_cluster_token: self.initial_cluster_token,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            election_timeout_ms: self.election_timeout_ms,
            snapshot_entries: non_zero_or(self.snapshot_entries, DEFAULT_SNAPSHOT_ENTRIES),
            request_bytes_max: self.request_bytes_max,
            txn_ops_max: self.txn_ops_max,
            quota_backend_bytes: non_zero_or(self.quota_backend_bytes, DEFAULT_QUOTA_BACKEND_BYTES),
            log_level: self.log_level,
            member_id,
            cluster_id,
        };
        debug_assert!(config
            .initial_cluster
            .iter()
            .any(|m| m.id == config.member_id));
        debug_assert!(config.election_ticks() >= ELECTION_TIMEOUT_HEARTBEATS_MIN as u32);
        Ok(config)
    }
}

fn non_zero_or(value: u64, default: u64) -> u64 {
    if value == 0 {
        default
    } else {
        value
    }
}

fn parse_url_list(
    flag: &'static str,
    texts: &[String],
    parse: fn(&str) -> Result<Url, UrlError>,
) -> Result<Vec<Url>, ConfigError> {
    let all_empty = texts.iter().all(|text| text.trim().is_empty());
    if all_empty {
        return Err(ConfigError::EmptyUrlList { flag });
    }
    texts
        .iter()
        .map(|text| parse(text.trim()).map_err(|source| ConfigError::BadUrl { flag, source }))
        .collect()
}

/// etcd's timing rules: both positive, the election timeout at least five
/// heartbeats and at most 50 s.
fn check_timeouts(heartbeat_interval_ms: u64, election_timeout_ms: u64) -> Result<(), ConfigError> {
    if heartbeat_interval_ms == 0 {
        return Err(ConfigError::ZeroHeartbeatInterval);
    }
    if election_timeout_ms == 0 {
        return Err(ConfigError::ZeroElectionTimeout);
    }
    if heartbeat_interval_ms.saturating_mul(ELECTION_TIMEOUT_HEARTBEATS_MIN) > election_timeout_ms {
        return Err(ConfigError::ElectionTimeoutTooShort {
            election_timeout_ms,
            heartbeat_interval_ms,
        });
    }
    if election_timeout_ms > ELECTION_TIMEOUT_MS_MAX {
        return Err(ConfigError::ElectionTimeoutTooLong {
            election_timeout_ms,
        });
    }
    Ok(())
}

/// The initial cluster of a lone member: its name with each advertised peer URL.
fn initial_cluster_from_name(name: &str, advertised: &[Url]) -> String {
    advertised
        .iter()
        .map(|url| format!("{name}={url}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `name=url,...` into members in order of first appearance; a name
/// given twice collects both URLs. Derives each member's id.
fn parse_initial_cluster(text: &str, token: &str) -> Result<Vec<InitialMember>, ConfigError> {
    let mut members: Vec<InitialMember> = Vec::new();
    let mut url_owners: Vec<(Url, String)> = Vec::new();
    for entry in text
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
    {
        let (name, url_text) = entry
            .split_once('=')
            .filter(|(name, url)| !name.is_empty() && !url.is_empty())
            .ok_or_else(|| ConfigError::InitialClusterEntry {
                entry: entry.to_owned(),
            })?;
        let url = Url::parse(url_text).map_err(|source| ConfigError::InitialClusterUrl {
            name: name.to_owned(),
            source,
        })?;
        if let Some((_, first)) = url_owners.iter().find(|(owned, _)| *owned == url) {
            return Err(ConfigError::DuplicatePeerUrl {
                url: url.to_string(),
                first: first.clone(),
                second: name.to_owned(),
            });
        }
        url_owners.push((url.clone(), name.to_owned()));
        match members.iter_mut().find(|member| member.name == name) {
            Some(member) => member.peer_urls.push(url),
            None => members.push(InitialMember {
                name: name.to_owned(),
                peer_urls: vec![url],
                id: raft::NO_NODE,
            }),
        }
    }
    for member in &mut members {
        member.id = derive_member_id(&member.peer_urls, token);
    }
    Ok(members)
}

fn check_member_in_cluster<'a>(
    name: &str,
    advertised: &[Url],
    cluster: &'a [InitialMember],
    cluster_text: &str,
) -> Result<&'a InitialMember, ConfigError> {
    let member = cluster
        .iter()
        .find(|member| member.name == name)
        .ok_or_else(|| ConfigError::NameNotInInitialCluster {
            name: name.to_owned(),
            initial_cluster: cluster_text.to_owned(),
        })?;
    let mut in_cluster = member.peer_urls.clone();
    let mut advertised_sorted = advertised.to_vec();
    in_cluster.sort();
    in_cluster.dedup();
    advertised_sorted.sort();
    advertised_sorted.dedup();
    if in_cluster != advertised_sorted {
        return Err(ConfigError::AdvertisedPeerUrlsMismatch {
            name: name.to_owned(),
            in_cluster: join_urls(&member.peer_urls),
            advertised: join_urls(advertised),
        });
    }
    Ok(member)
}

fn join_urls(urls: &[Url]) -> String {
    urls.iter()
        .map(Url::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl ServeConfig {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    pub fn listen_client_urls(&self) -> &[Url] {
        &self.listen_client_urls
    }

    pub fn advertise_client_urls(&self) -> &[Url] {
        &self.advertise_client_urls
    }

    pub fn listen_peer_urls(&self) -> &[Url] {
        &self.listen_peer_urls
    }

    pub fn initial_advertise_peer_urls(&self) -> &[Url] {
        &self.initial_advertise_peer_urls
    }

    /// Every member at bootstrap, in the order `--initial-cluster` names them.
    pub fn initial_cluster(&self) -> &[InitialMember] {
        &self.initial_cluster
    }

    pub fn initial_cluster_state(&self) -> ClusterState {
        self.initial_cluster_state
    }

    pub fn initial_cluster_token(&self) -> &str {
        &self.initial_cluster_token
    }

    /// One tick of the core: the heartbeat interval.
    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms)
    }

    pub fn heartbeat_interval_ms(&self) -> u64 {
        self.heartbeat_interval_ms
    }

    pub fn election_timeout_ms(&self) -> u64 {
        self.election_timeout_ms
    }

    /// The election timeout in ticks (whole heartbeat intervals, rounded down).
    pub fn election_ticks(&self) -> u32 {
        let ticks = self.election_timeout_ms / self.heartbeat_interval_ms;
        u32::try_from(ticks).expect("election timeout is at most 50 000 ticks")
    }

    /// Committed entries between two snapshots.
    pub fn snapshot_entries(&self) -> u64 {
        self.snapshot_entries
    }

    pub fn request_bytes_max(&self) -> u64 {
        self.request_bytes_max
    }

    pub fn txn_ops_max(&self) -> u64 {
        self.txn_ops_max
    }

    /// Backend size that raises the NOSPACE alarm (the default already applied).
    pub fn quota_backend_bytes(&self) -> u64 {
        self.quota_backend_bytes
    }

    pub fn log_level(&self) -> LogLevel {
        self.log_level
    }

    /// This member's id, derived from its peer URLs and the cluster token.
    pub fn member_id(&self) -> NodeId {
        self.member_id
    }

    /// The cluster's id: derived from the initial members' ids, unless the
    /// member joined a cluster whose id its peers told it
    /// ([`ServeConfig::with_cluster_id`]).
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// The same configuration in the cluster `cluster_id`: a member joining
    /// a running cluster takes the id that cluster already has, which its
    /// flags cannot derive once the founding members changed.
    pub fn with_cluster_id(self, cluster_id: u64) -> Self {
        Self { cluster_id, ..self }
    }

    /// The same configuration as member `member_id`: a member added to a
    /// running cluster gets a fresh id there, which its flags cannot derive.
    /// Its own entry in the initial cluster takes the id too.
    pub fn with_member_id(mut self, member_id: NodeId) -> Self {
        let derived = self.member_id;
        for member in &mut self.initial_cluster {
            if member.id == derived {
                member.id = member_id;
            }
        }
        Self { member_id, ..self }
    }

    /// The same configuration with the members a peer of the running cluster
    /// listed in place of `--initial-cluster`, whose ids the flags derive
    /// wrongly for every member added since the cluster started.
    pub fn with_initial_cluster(self, initial_cluster: Vec<InitialMember>) -> Self {
        Self {
            initial_cluster,
            ..self
        }
    }

    /// The core's configuration for this member: one tick per heartbeat
    /// interval, a heartbeat every tick, and the election timeout in ticks.
    /// Other knobs keep the core's defaults.
    pub fn raft_config(&self) -> raft::Config {
        let mut config = raft::Config::new(self.member_id);
        config.heartbeat_ticks = 1;
        config.election_ticks = self.election_ticks();
        config
    }
}

#[cfg(test)]
mod tests;
