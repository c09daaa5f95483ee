//! The node: one OS thread runs the `node` crate's loop over the log
//! ([`wal`]), the state machine ([`mvcc`]) and the transport; a cheap,
//! cloneable [`NodeHandle`] is the [`Backend`] the etcd services call.
//! A second thread, the watch hub ([`crate::watch`]), serves watchers from
//! the events the node thread applies; the node stops it last.
//!
//! Everything reaches the thread through bounded queues: client requests
//! (bounded by [`CLIENT_REQUESTS_IN_FLIGHT_MAX`] permits, so a burst waits
//! instead of growing memory), peer messages (dropped when
//! [`PEER_INBOX_MESSAGES_MAX`] are queued; Raft resends), and a stop signal.
//! The loop itself (waiters, read barriers, apply order, member list,
//! snapshots) is the `node` crate's, the same code the simulator runs; this
//! module only gives it threads, queues, real time and its storage.

pub(crate) mod disk;
mod machine;
mod members_file;
mod thread;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, TrySendError};
use node::{MemberContext, MemberList, RequestError};
use raft::{Message, NodeId, RawNode};
use tokio::sync::{oneshot, Semaphore};

use crate::backend::{Backend, BackendError, KvBackend, Member, MembershipChange, NodeStatus};
use crate::config::ServeConfig;
use crate::watch;
use machine::StoreMachine;
use thread::{Inputs, NodeThread};

pub use node::Outbox;

pub use disk::{store_path, wal_dir};

/// Client requests (proposals and read barriers) queued or waiting at once;
/// more callers wait for a permit.
pub const CLIENT_REQUESTS_IN_FLIGHT_MAX: usize = 16_384;
/// Peer messages queued for the node thread; more are dropped.
pub const PEER_INBOX_MESSAGES_MAX: usize = 8192;
/// etcd's request timeout is 5 s plus two election timeouts.
const REQUEST_TIMEOUT_BASE: Duration = Duration::from_secs(5);

/// Why the node could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("Raft log: {0}")]
    Wal(#[from] wal::WalError),
    #[error("state machine: {0}")]
    Store(#[from] mvcc::StoreError),
    #[error("consensus core: {0}")]
    Raft(#[from] raft::RaftError),
    #[error(transparent)]
    Loop(#[from] node::NodeError),
    #[error("storage: {0}")]
    Storage(String),
    #[error(
        "cannot create directory {path}: {source}; check the --data-dir path and its permissions"
    )]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the node thread: {0}")]
    Thread(std::io::Error),
    #[error("cannot start the watch hub thread: {0}")]
    WatchThread(std::io::Error),
    #[error("the node thread panicked; see the log above")]
    Panicked,
}

/// Where the node thread puts messages for peers.
pub type SharedOutbox = Arc<dyn Outbox + Send + Sync>;

/// What a node needs to start.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    pub data_dir: PathBuf,
    pub cluster_id: u64,
    /// `--initial-cluster-token`, from which members derive their ids.
    pub cluster_token: String,
    pub raft: raft::Config,
    /// The voters of a new cluster (ignored when the log already exists).
    pub initial_voters: Vec<NodeId>,
    /// The members named by `--initial-cluster`: the member list of a new
    /// cluster, until configuration changes replace it.
    pub members: Vec<Member>,
    pub tick_interval: Duration,
    pub request_timeout: Duration,
    pub snapshot_entries: u64,
}

impl NodeOptions {
    pub fn from_config(config: &ServeConfig) -> Self {
        let urls = |urls: &[crate::config::Url]| urls.iter().map(|u| u.to_string()).collect();
        // A joining member is not in the configuration until the change that
        // adds it reaches its log: it starts from the members already there
        // and never campaigns before then.
        let joining = config.initial_cluster_state() == crate::config::ClusterState::Existing;
        let founders: Vec<&crate::config::InitialMember> = config
            .initial_cluster()
            .iter()
            .filter(|member| !joining || member.id != config.member_id())
            .collect();
        let members = founders
            .iter()
            .map(|member| Member {
                id: member.id,
                name: member.name.clone(),
                peer_urls: urls(&member.peer_urls),
                client_urls: if member.id == config.member_id() {
                    urls(config.advertise_client_urls())
                } else {
                    Vec::new()
                },
                is_learner: false,
            })
            .collect();
        let mut raft = config.raft_config();
        raft.random_seed = config.member_id() ^ boot_id();
        Self {
            data_dir: config.data_dir().to_path_buf(),
            cluster_id: config.cluster_id(),
            cluster_token: config.initial_cluster_token().to_string(),
            initial_voters: founders.iter().map(|member| member.id).collect(),
            members,
            tick_interval: config.tick_interval(),
            request_timeout: REQUEST_TIMEOUT_BASE
                + 2 * Duration::from_millis(config.election_timeout_ms()),
            snapshot_entries: config.snapshot_entries(),
            raft,
        }
    }
}

/// A request from a client task to the node thread.
#[derive(Debug)]
pub(crate) enum ClientRequest {
    Propose {
        command: Vec<u8>,
        reply: oneshot::Sender<Result<mvcc::ApplyOutcome, RequestError>>,
    },
    ReadBarrier {
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
    ChangeMembership {
        change: raft::ConfChange,
        /// The encoded [`MemberContext`].
        context: Vec<u8>,
        reply: oneshot::Sender<Result<(), RequestError>>,
    },
}

#[derive(Debug)]
pub(crate) enum Control {
    Stop,
}

/// What the node thread last published about itself.
#[derive(Debug)]
pub(crate) struct SharedStatus {
    status: Mutex<NodeStatus>,
}

impl SharedStatus {
    fn lock(&self) -> std::sync::MutexGuard<'_, NodeStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Updates what changes as the node runs; the identities stay.
    pub(crate) fn publish(&self, progress: StatusProgress) {
        let mut status = self.lock();
        status.leader = progress.leader;
        status.raft_term = progress.term;
        status.raft_index = progress.last_index;
        status.raft_applied_index = progress.applied;
        status.snapshot_index = progress.snapshot_index;
        status.disk_full = progress.disk_full;
    }
}

/// The part of [`NodeStatus`] the node thread publishes after each turn.
#[derive(Debug)]
pub(crate) struct StatusProgress {
    pub(crate) leader: Option<NodeId>,
    pub(crate) term: u64,
    pub(crate) last_index: u64,
    pub(crate) applied: u64,
    pub(crate) snapshot_index: u64,
    pub(crate) disk_full: Option<String>,
}

#[derive(Debug)]
struct Shared {
    requests: Sender<ClientRequest>,
    peer_inbox: Sender<Message>,
    control: Sender<Control>,
    permits: Semaphore,
    request_timeout: Duration,
    cluster_token: String,
    store: Arc<mvcc::Store>,
    status: Arc<SharedStatus>,
    watch_hub: watch::Hub,
    /// The members as last applied; other members' client URLs fill in as
    /// their peer streams introduce them.
    members: Arc<RwLock<Vec<Member>>>,
}

/// The node as the services and the transport see it. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct NodeHandle {
    shared: Arc<Shared>,
}

/// A running node: its handle and its thread.
#[derive(Debug)]
pub struct Node {
    handle: NodeHandle,
    thread: JoinHandle<Result<(), NodeError>>,
    watch_thread: watch::HubThread,
}

/// `members` with the client URLs that `configured` gives them (this
/// member's own, from its flags).
fn with_client_urls(members: &[Member], configured: &[Member]) -> Vec<Member> {
    members
        .iter()
        .map(|member| Member {
            client_urls: configured
                .iter()
                .find(|known| known.id == member.id)
                .map(|known| known.client_urls.clone())
                .unwrap_or_default(),
            ..member.clone()
        })
        .collect()
}

/// A per-process id that differs between boots of the same member.
fn boot_id() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(48)
}

/// The clock in nanoseconds, mixed into a new member's id as etcd mixes in
/// the time, so that re-adding the same peer URLs gives another id.
fn clock_salt() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64)
}

impl Node {
    /// Opens the data directory (creating a new member's log when there is
    /// none), restarts the core from it and starts the node thread.
    pub fn start(options: NodeOptions, outbox: SharedOutbox) -> Result<Node, NodeError> {
        let (wal, store) = disk::open(
            &options.data_dir,
            options.cluster_id,
            options.initial_voters.clone(),
        )?;
        let mut raft_config = options.raft.clone();
        raft_config.applied = store.applied_index();
        let member_id = raft_config.id;
        let election_ticks = raft_config.election_ticks;
        let node = RawNode::new(&raft_config, wal)?;
        let store = Arc::new(store);
        let member_list = members_file::load(&options.data_dir)
            .map_err(|error| NodeError::Storage(error.to_string()))?
            .unwrap_or_else(|| MemberList::initial(options.members.clone()));
        let published_members = Arc::new(RwLock::new(with_client_urls(
            &member_list.members,
            &options.members,
        )));
        let (watch_hub, watch_feed, watch_thread) =
            watch::start(Arc::clone(&store), watch::HubOptions::default())
                .map_err(NodeError::WatchThread)?;
        let (requests_tx, requests) = crossbeam_channel::bounded(CLIENT_REQUESTS_IN_FLIGHT_MAX);
        let (peer_tx, peer_messages) = crossbeam_channel::bounded(PEER_INBOX_MESSAGES_MAX);
        let (control_tx, control) = crossbeam_channel::bounded(1);
        let status = Arc::new(SharedStatus {
            status: Mutex::new(NodeStatus {
                cluster_id: options.cluster_id,
                member_id,
                leader: None,
                raft_term: 0,
                raft_index: 0,
                raft_applied_index: store.applied_index(),
                snapshot_index: 0,
                disk_full: None,
            }),
        });
        let machine = StoreMachine::new(
            Arc::clone(&store),
            watch_feed,
            options.data_dir.clone(),
            Arc::clone(&published_members),
        );
        let request_timeout_ticks = options
            .request_timeout
            .as_nanos()
            .div_ceil(options.tick_interval.as_nanos().max(1))
            as u64;
        let node_options = node::NodeOptions {
            boot_id: boot_id(),
            election_ticks,
            request_timeout_ticks,
            snapshot_entries: options.snapshot_entries,
            configured_members: options.members.clone(),
        };
        let core = node::Node::new(node, machine, outbox, member_list, node_options, ());
        let inputs = Inputs {
            requests,
            peer_messages,
            control,
            status: Arc::clone(&status),
            tick_interval: options.tick_interval,
        };
        let node_thread = NodeThread::new(core, inputs);
        let thread = std::thread::Builder::new()
            .name(format!("raft-{member_id:x}"))
            .spawn(move || node_thread.run().map_err(NodeError::from))
            .map_err(NodeError::Thread)?;
        let shared = Shared {
            requests: requests_tx,
            peer_inbox: peer_tx,
            control: control_tx,
            permits: Semaphore::new(CLIENT_REQUESTS_IN_FLIGHT_MAX),
            request_timeout: options.request_timeout,
            cluster_token: options.cluster_token.clone(),
            store,
            status,
            watch_hub,
            members: published_members,
        };
        Ok(Node {
            handle: NodeHandle {
                shared: Arc::new(shared),
            },
            thread,
            watch_thread,
        })
    }

    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Whether the node thread has ended (stopped or failed).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Asks the thread to finish its current turn, flush the state machine and
    /// end; waits for it, then ends every watch stream. Blocks: call from a
    /// blocking context.
    pub fn stop(self) -> Result<(), NodeError> {
        let _ = self.handle.shared.control.try_send(Control::Stop);
        let stopped = self.thread.join().map_err(|_| NodeError::Panicked);
        self.watch_thread.stop();
        stopped?
    }
}

impl NodeHandle {
    /// Hands a message from a peer to the node thread; `false` when it was
    /// dropped because the inbox is full or the node stopped.
    pub fn deliver(&self, message: Message) -> bool {
        self.shared.peer_inbox.try_send(message).is_ok()
    }

    pub fn member_id(&self) -> NodeId {
        self.shared.status.lock().member_id
    }

    /// Records the client URLs a configured member advertises; ids outside
    /// the configuration are ignored.
    pub fn learn_client_urls(&self, member: NodeId, client_urls: Vec<String>) {
        let mut members = self
            .shared
            .members
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(known) = members.iter_mut().find(|known| known.id == member) {
            known.client_urls = client_urls;
        }
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, RequestError>>) -> ClientRequest,
    ) -> Result<T, BackendError> {
        let timeout = self.shared.request_timeout;
        let permit = tokio::time::timeout(timeout, self.shared.permits.acquire())
            .await
            .map_err(|_| BackendError::Request(RequestError::Timeout))?
            .map_err(|_| BackendError::Request(RequestError::Stopped))?;
        let (reply, answer) = oneshot::channel();
        match self.shared.requests.try_send(make(reply)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(BackendError::Request(RequestError::Timeout)),
            Err(TrySendError::Disconnected(_)) => {
                return Err(BackendError::Request(RequestError::Stopped))
            }
        }
        let result = answer
            .await
            .map_err(|_| BackendError::Request(RequestError::Stopped))?;
        drop(permit);
        Ok(result?)
    }
}

impl KvBackend for NodeHandle {
    async fn propose(&self, command: mvcc::Command) -> Result<mvcc::Applied, BackendError> {
        let command = command.encode();
        let outcome = self
            .request(|reply| ClientRequest::Propose { command, reply })
            .await?;
        match outcome {
            mvcc::ApplyOutcome::Applied(applied) => Ok(applied),
            other => Err(BackendError::Request(RequestError::Storage(format!(
                "the proposal's entry was not applied as a command: {other:?}"
            )))),
        }
    }

    async fn read_barrier(&self) -> Result<(), BackendError> {
        self.request(|reply| ClientRequest::ReadBarrier { reply })
            .await
    }

    fn store(&self) -> &mvcc::Store {
        &self.shared.store
    }
}

impl Backend for NodeHandle {
    fn watch_hub(&self) -> &watch::Hub {
        &self.shared.watch_hub
    }

    fn status(&self) -> NodeStatus {
        self.shared.status.lock().clone()
    }

    fn members(&self) -> Vec<Member> {
        self.shared
            .members
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn new_member_id(&self, peer_urls: &[crate::config::Url], taken: &[NodeId]) -> NodeId {
        crate::config::fresh_member_id(peer_urls, &self.shared.cluster_token, clock_salt(), taken)
    }

    async fn change_membership(&self, change: MembershipChange) -> Result<(), BackendError> {
        let context = MemberContext {
            name: change.name,
            peer_urls: change.peer_urls,
        }
        .encode();
        let change = change.change;
        self.request(|reply| ClientRequest::ChangeMembership {
            change,
            context,
            reply,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lone member never sends anything.
    #[derive(Debug)]
    struct NoPeers;

    impl Outbox for NoPeers {
        fn send(&self, message: Message) {
            panic!("a one-member cluster sent {message:?}");
        }

        fn set_members(&self, _: &[Member]) {}
    }

    fn options(dir: &std::path::Path, snapshot_entries: u64) -> NodeOptions {
        let mut raft = raft::Config::new(1);
        raft.election_ticks = 5;
        NodeOptions {
            data_dir: dir.to_path_buf(),
            cluster_id: 0xc1,
            cluster_token: "test".to_string(),
            raft,
            initial_voters: vec![1],
            members: Vec::new(),
            tick_interval: Duration::from_millis(10),
            request_timeout: Duration::from_secs(10),
            snapshot_entries,
        }
    }

    fn put(key: &str) -> mvcc::Command {
        mvcc::Command::Put(mvcc::PutRequest::new(key, "v"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_proposals_apply_once_each_and_survive_restart() {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(options(dir.path(), 50), Arc::new(NoPeers)).unwrap();
        let handle = node.handle();
        let mut tasks = Vec::new();
        for number in 0..200 {
            let handle = handle.clone();
            tasks.push(tokio::spawn(async move {
                handle.propose(put(&format!("k{number:03}"))).await
            }));
        }
        let mut revisions = Vec::new();
        for task in tasks {
            revisions.push(task.await.unwrap().unwrap().revision);
        }
        revisions.sort_unstable();
        revisions.dedup();
        assert_eq!(revisions.len(), 200, "each write got its own revision");
        handle.read_barrier().await.unwrap();
        let status = handle.status();
        assert_eq!(status.leader, Some(1));
        assert_eq!(status.raft_applied_index, handle.store().applied_index());
        tokio::task::spawn_blocking(move || node.stop())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(
            handle.propose(put("late")).await,
            Err(BackendError::Request(RequestError::Stopped))
        ));
        // The store stays open while any handle lives.
        drop(handle);

        let node = Node::start(options(dir.path(), 50), Arc::new(NoPeers)).unwrap();
        let handle = node.handle();
        handle.read_barrier().await.unwrap();
        let all = handle.store().range(&mvcc::RangeRequest::all()).unwrap();
        assert_eq!(all.kvs.len(), 200);
        // The snapshot is written on a background thread and the log is cut
        // only once 50 more entries follow it, so how many writes that takes
        // depends on the thread's speed: write until it happened.
        let mut written = 0;
        while handle.status().snapshot_index < 200 {
            assert!(
                written < 5000,
                "5000 writes and no snapshot at 200 or later"
            );
            handle
                .propose(put(&format!("s{written:04}")))
                .await
                .unwrap();
            written += 1;
        }
        let compacted_at = handle.status().snapshot_index;
        drop(handle);
        tokio::task::spawn_blocking(move || node.stop())
            .await
            .unwrap()
            .unwrap();
        let wal = wal::Wal::open(&wal_dir(dir.path()), &wal::WalOptions::new(0xc1)).unwrap();
        assert!(
            wal.snapshot_meta().index >= compacted_at,
            "the compaction the status reported survives restart (snapshot at {}, reported {compacted_at})",
            wal.snapshot_meta().index
        );
        assert_eq!(
            wal.snapshot_meta().conf_state.voters,
            vec![1],
            "the snapshot carries the configuration in force"
        );
    }
}
