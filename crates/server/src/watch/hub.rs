//! The hub thread and its handles: [`Feed`] for the node thread, [`Hub`] and
//! [`WatchStream`] for the Watch service, [`HubThread`] to stop it. Inputs
//! reach the thread through bounded queues; the feed never waits (it drops a
//! batch the queue has no room for, and the watchers read history instead),
//! and the service waits for a permit before it queues a request.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender, TryRecvError};
use mvcc::Event;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::state::HubState;
use super::{CreateRequest, Notice, StreamId};

/// Applied batches queued for the hub; the feed drops batches beyond this.
pub const BATCHES_QUEUED_MAX: usize = 1024;
/// Requests from Watch streams queued for the hub; more callers wait.
pub const REQUESTS_QUEUED_MAX: usize = 1024;
/// Notices a stream's channel holds before the hub keeps them pending.
pub const STREAM_NOTICES_QUEUED_MAX: usize = 64;
/// Inputs the hub takes in one turn at most, so ticks are never starved.
const INPUTS_PER_TURN_MAX: usize = 1024;
/// How often the hub flushes pending notices and lets unsynced watchers
/// catch up.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(10);
/// etcd's interval between progress notifications.
pub const PROGRESS_NOTIFY_INTERVAL: Duration = Duration::from_secs(600);

/// How a hub runs.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Between two progress notifications to watchers that asked for them.
    pub progress_notify_interval: Duration,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            progress_notify_interval: PROGRESS_NOTIFY_INTERVAL,
        }
    }
}

/// The hub is stopping or stopped (the member is shutting down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the member is shutting down")]
pub struct HubStopped;

#[derive(Debug)]
enum Request {
    Open {
        stream: StreamId,
        sender: mpsc::Sender<Notice>,
    },
    Create {
        stream: StreamId,
        request: CreateRequest,
    },
    Cancel {
        stream: StreamId,
        watch_id: i64,
    },
    Progress {
        stream: StreamId,
    },
}

/// The node thread's side: publishes what each applied batch changed.
#[derive(Debug, Clone)]
pub struct Feed {
    batches: Sender<Vec<Event>>,
    watchers: Arc<AtomicUsize>,
}

impl Feed {
    /// Publishes the events of applied entries, in order. Never blocks; does
    /// nothing while no watcher exists. A batch the queue has no room for is
    /// dropped: the watchers notice the gap and read it from history.
    pub fn publish(&self, outcomes: &[mvcc::ApplyOutcome]) {
        if self.watchers.load(Ordering::Acquire) == 0 {
            return;
        }
        let events: Vec<Event> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                mvcc::ApplyOutcome::Applied(applied) => Some(applied.events.iter()),
                _ => None,
            })
            .flatten()
            .cloned()
            .collect();
        if !events.is_empty() {
            let _ = self.batches.try_send(events);
        }
    }
}

/// The Watch service's side. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Hub {
    shared: Arc<HubShared>,
}

#[derive(Debug)]
struct HubShared {
    requests: Sender<(Request, OwnedSemaphorePermit)>,
    permits: Arc<Semaphore>,
    next_stream: AtomicU64,
}

impl Hub {
    /// Opens a stream: its handle, and the channel its notices arrive on.
    /// The channel ends when the hub stops.
    pub async fn open_stream(&self) -> Result<(WatchStream, mpsc::Receiver<Notice>), HubStopped> {
        let stream = self.shared.next_stream.fetch_add(1, Ordering::Relaxed);
        let (sender, notices) = mpsc::channel(STREAM_NOTICES_QUEUED_MAX);
        self.send(Request::Open { stream, sender }).await?;
        let handle = WatchStream {
            hub: self.clone(),
            id: stream,
        };
        Ok((handle, notices))
    }

    async fn send(&self, request: Request) -> Result<(), HubStopped> {
        let permit = Arc::clone(&self.shared.permits)
            .acquire_owned()
            .await
            .map_err(|_| HubStopped)?;
        // One permit per queue slot: the queue always has room.
        self.shared
            .requests
            .try_send((request, permit))
            .map_err(|_| HubStopped)
    }
}

/// One open Watch stream. Dropping its notice channel closes it.
#[derive(Debug)]
pub struct WatchStream {
    hub: Hub,
    id: StreamId,
}

impl WatchStream {
    pub async fn create(&self, request: CreateRequest) -> Result<(), HubStopped> {
        let stream = self.id;
        self.hub.send(Request::Create { stream, request }).await
    }

    pub async fn cancel(&self, watch_id: i64) -> Result<(), HubStopped> {
        let stream = self.id;
        self.hub.send(Request::Cancel { stream, watch_id }).await
    }

    pub async fn request_progress(&self) -> Result<(), HubStopped> {
        let stream = self.id;
        self.hub.send(Request::Progress { stream }).await
    }
}

/// The running hub thread; stopping it (or dropping this) ends every stream.
#[derive(Debug)]
pub struct HubThread {
    stop: Sender<()>,
    permits: Arc<Semaphore>,
    thread: Option<JoinHandle<()>>,
}

impl HubThread {
    /// Stops the thread and waits for it. Blocks briefly.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.permits.close();
        let _ = self.stop.try_send(());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the watch hub thread panicked");
            }
        }
    }
}

impl Drop for HubThread {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Starts a hub over `store`.
pub fn start(
    store: Arc<mvcc::Store>,
    options: HubOptions,
) -> std::io::Result<(Hub, Feed, HubThread)> {
    let watchers = Arc::new(AtomicUsize::new(0));
    let (batches_tx, batches) = crossbeam_channel::bounded(BATCHES_QUEUED_MAX);
    let (requests_tx, requests) = crossbeam_channel::bounded(REQUESTS_QUEUED_MAX);
    let (stop_tx, stop) = crossbeam_channel::bounded(1);
    let permits = Arc::new(Semaphore::new(REQUESTS_QUEUED_MAX));
    let state = HubState::new(
        store,
        Arc::clone(&watchers),
        options.progress_notify_interval,
        Instant::now(),
    );
    let thread = std::thread::Builder::new()
        .name("watch-hub".to_owned())
        .spawn(move || run(state, &batches, &requests, &stop))?;
    let hub = Hub {
        shared: Arc::new(HubShared {
            requests: requests_tx,
            permits: Arc::clone(&permits),
            next_stream: AtomicU64::new(1),
        }),
    };
    let feed = Feed {
        batches: batches_tx,
        watchers,
    };
    let owner = HubThread {
        stop: stop_tx,
        permits,
        thread: Some(thread),
    };
    Ok((hub, feed, owner))
}

/// The hub thread's loop: wait for input or the next tick, take what is
/// queued, tick when due. Ends on stop, dropping every stream's sender.
fn run(
    mut state: HubState,
    batches: &Receiver<Vec<Event>>,
    requests: &Receiver<(Request, OwnedSemaphorePermit)>,
    stop: &Receiver<()>,
) {
    let mut next_tick = Instant::now() + SYNC_INTERVAL;
    loop {
        let mut select = Select::new();
        select.recv(batches);
        select.recv(requests);
        select.recv(stop);
        let _ = select.ready_timeout(next_tick.saturating_duration_since(Instant::now()));
        if !matches!(stop.try_recv(), Err(TryRecvError::Empty)) {
            return;
        }
        for _ in 0..INPUTS_PER_TURN_MAX {
            let mut progressed = false;
            if let Ok(events) = batches.try_recv() {
                state.publish(&events);
                progressed = true;
            }
            if let Ok((request, _permit)) = requests.try_recv() {
                handle(&mut state, request);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            state.tick(now, batches.is_empty());
            next_tick = now + SYNC_INTERVAL;
        }
    }
}

fn handle(state: &mut HubState, request: Request) {
    match request {
        Request::Open { stream, sender } => state.open(stream, sender),
        Request::Create { stream, request } => state.create(stream, request),
        Request::Cancel { stream, watch_id } => state.cancel(stream, watch_id),
        Request::Progress { stream } => state.progress(stream),
    }
}
