//! A single-process [`Backend`] for tests: writes are applied straight to an
//! in-memory store at the next log index, the read barrier returns at once,
//! and a test can make the next call fail as a replicated node would (no
//! leader, leader changed, timeout). It counts proposals and barriers so a
//! test can tell whether a request went through the log or waited for the
//! barrier. Applied events feed a watch hub of its own, as the node's do.
//! Test-only; it must never stand in for the replicated node.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use server::backend::{Backend, BackendError, KvBackend, Member, NodeStatus, RequestError};

pub const CLUSTER_ID: u64 = 0x5eed_c1a5_7e55_0001;
pub const MEMBER_ID: u64 = 0x8e9e_05c5_2164_694d;
pub const RAFT_TERM: u64 = 2;

/// Writes apply in index order under one lock; reads see the store directly.
#[derive(Debug)]
pub struct LocalBackend {
    store: Arc<mvcc::Store>,
    watch_hub: server::watch::Hub,
    watch_feed: server::watch::Feed,
    /// Stops the hub when the backend is dropped.
    _watch_thread: server::watch::HubThread,
    status: Mutex<NodeStatus>,
    members: Vec<Member>,
    /// Returned by the next `propose` or `read_barrier`, whichever comes first.
    next_failure: Mutex<Option<BackendError>>,
    proposals: AtomicUsize,
    barriers: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LocalBackend {
    /// A one-member cluster with an empty in-memory store, led by itself.
    pub fn in_memory() -> Arc<Self> {
        let store = Arc::new(mvcc::Store::in_memory().expect("an in-memory store opens"));
        let (watch_hub, watch_feed, watch_thread) =
            server::watch::start(Arc::clone(&store), server::watch::HubOptions::default())
                .expect("the watch hub starts");
        Arc::new(Self {
            store,
            watch_hub,
            watch_feed,
            _watch_thread: watch_thread,
            status: Mutex::new(NodeStatus {
                cluster_id: CLUSTER_ID,
                member_id: MEMBER_ID,
                leader: Some(MEMBER_ID),
                raft_term: RAFT_TERM,
                raft_index: 0,
                raft_applied_index: 0,
                snapshot_index: 0,
                disk_full: None,
            }),
            members: vec![Member {
                id: MEMBER_ID,
                name: "default".to_owned(),
                peer_urls: vec!["http://localhost:2380".to_owned()],
                client_urls: vec!["http://localhost:2379".to_owned()],
                is_learner: false,
            }],
            next_failure: Mutex::new(None),
            proposals: AtomicUsize::new(0),
            barriers: AtomicUsize::new(0),
        })
    }

    /// Makes the next `propose` or `read_barrier` fail with `error`.
    pub fn fail_next(&self, error: BackendError) {
        *lock(&self.next_failure) = Some(error);
    }

    /// Changes which leader the member reports (`None`: no leader).
    pub fn set_leader(&self, leader: Option<u64>) {
        lock(&self.status).leader = leader;
    }

    /// Number of commands proposed so far.
    pub fn proposals(&self) -> usize {
        self.proposals.load(Ordering::SeqCst)
    }

    /// Number of read barriers waited for so far.
    pub fn barriers(&self) -> usize {
        self.barriers.load(Ordering::SeqCst)
    }

    fn take_failure(&self) -> Result<(), BackendError> {
        match lock(&self.next_failure).take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    fn apply(&self, command: &mvcc::Command) -> Result<mvcc::Applied, BackendError> {
        let mut status = lock(&self.status);
        let index = status.raft_index + 1;
        let outcome = self.store.apply(index, command)?;
        self.watch_feed.publish(std::slice::from_ref(&outcome));
        status.raft_index = index;
        status.raft_applied_index = index;
        match outcome {
            mvcc::ApplyOutcome::Applied(applied) => Ok(applied),
            other => Err(BackendError::Request(RequestError::Storage(format!(
                "log index {index} carried a command but the store answered {other:?}"
            )))),
        }
    }
}

impl KvBackend for LocalBackend {
    async fn propose(&self, command: mvcc::Command) -> Result<mvcc::Applied, BackendError> {
        self.proposals.fetch_add(1, Ordering::SeqCst);
        self.take_failure()?;
        self.apply(&command)
    }

    async fn read_barrier(&self) -> Result<(), BackendError> {
        self.barriers.fetch_add(1, Ordering::SeqCst);
        self.take_failure()
    }

    fn store(&self) -> &mvcc::Store {
        &self.store
    }
}

impl Backend for LocalBackend {
    fn watch_hub(&self) -> &server::watch::Hub {
        &self.watch_hub
    }

    fn status(&self) -> NodeStatus {
        lock(&self.status).clone()
    }

    fn members(&self) -> Vec<Member> {
        self.members.clone()
    }

    fn new_member_id(
        &self,
        peer_urls: &[server::config::Url],
        taken: &[raft::NodeId],
    ) -> raft::NodeId {
        server::config::fresh_member_id(peer_urls, "etcd-cluster", 0, taken)
    }

    /// A single process has no peers to reconfigure: refused as a follower
    /// with no leader would refuse it.
    async fn change_membership(
        &self,
        _: server::backend::MembershipChange,
    ) -> Result<(), BackendError> {
        Err(BackendError::Request(RequestError::Reconfiguration(
            raft::RaftError::NotLeader { leader: None },
        )))
    }
}
