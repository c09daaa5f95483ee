//! The hub's bookkeeping, owned by the hub thread alone: the open streams,
//! their watchers, and what each has been served. Live batches go to synced
//! watchers; unsynced ones catch up from the store's history a step per
//! tick, and turn synced where history meets the live batches. Nothing here
//! blocks on a client: a full stream leaves notices pending.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mvcc::Event;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::range::KeyRange;
use super::watcher::{CatchUp, Watcher};
use super::{CreateRequest, Notice, StreamId};

/// Stream-wide notices (refused creates, cancels, progress) a stream may hold
/// while its client reads nothing; a client that sends more requests than
/// that without reading loses the stream.
pub const CONTROL_NOTICES_PER_STREAM_MAX: usize = 1024;

/// etcd's answer to a create whose watch id the stream already uses.
const DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
/// etcd's answer to a create with a negative start revision.
const NEGATIVE_START: &str = "etcdserver: mvcc: required revision has been compacted";
/// The watch id a client sends to have one chosen (etcd's `AutoWatchID`),
/// and the id of answers that name no watcher (`InvalidWatchID`).
pub const AUTO_WATCH_ID: i64 = 0;
pub const NO_WATCH_ID: i64 = -1;

#[derive(Debug)]
struct Stream {
    sender: mpsc::Sender<Notice>,
    /// Stream-wide notices waiting for room, in order; sent before any
    /// watcher's pending notices.
    control: VecDeque<Notice>,
    watchers: BTreeMap<i64, Watcher>,
    next_auto_id: i64,
}

impl Stream {
    fn send_control(&mut self, notice: Notice) {
        if !self.control.is_empty() {
            self.control.push_back(notice);
            return;
        }
        // A closed stream is removed at the next tick.
        if let Err(TrySendError::Full(notice)) = self.sender.try_send(notice) {
            self.control.push_back(notice);
        }
    }

    fn flush(&mut self) {
        while let Some(notice) = self.control.pop_front() {
            if let Err(TrySendError::Full(notice)) = self.sender.try_send(notice) {
                self.control.push_front(notice);
                return;
            }
        }
        for watcher in self.watchers.values_mut() {
            watcher.flush(&self.sender);
        }
    }

    fn auto_id(&mut self) -> i64 {
        while self.watchers.contains_key(&self.next_auto_id) {
            self.next_auto_id += 1;
        }
        let id = self.next_auto_id;
        self.next_auto_id += 1;
        id
    }
}

/// Every stream and watcher of one member.
#[derive(Debug)]
pub(crate) struct HubState {
    store: Arc<mvcc::Store>,
    streams: HashMap<StreamId, Stream>,
    /// Watchers alive, read by the feed to skip work when there are none.
    watcher_count: Arc<AtomicUsize>,
    progress_interval: Duration,
    next_progress: Instant,
    /// The store's revision at the previous tick.
    revision_at_last_tick: i64,
}

impl HubState {
    pub fn new(
        store: Arc<mvcc::Store>,
        watcher_count: Arc<AtomicUsize>,
        progress_interval: Duration,
        now: Instant,
    ) -> Self {
        let revision_at_last_tick = store.current_revision();
        Self {
            store,
            streams: HashMap::new(),
            watcher_count,
            progress_interval,
            next_progress: now + progress_interval,
            revision_at_last_tick,
        }
    }

    pub fn open(&mut self, stream: StreamId, sender: mpsc::Sender<Notice>) {
        let opened = Stream {
            sender,
            control: VecDeque::new(),
            watchers: BTreeMap::new(),
            next_auto_id: 0,
        };
        let replaced = self.streams.insert(stream, opened);
        debug_assert!(replaced.is_none(), "stream ids are never reused");
    }

    /// A create request, answered as etcd answers it: `Created` and then the
    /// watcher's events, or a refusal naming no watcher.
    pub fn create(&mut self, stream_id: StreamId, request: CreateRequest) {
        let current = self.store.current_revision();
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let refuse = |stream: &mut Stream, reason: &str| {
            stream.send_control(Notice::Refused {
                revision: current,
                reason: reason.to_owned(),
            });
        };
        if request.start_revision < 0 {
            return refuse(stream, NEGATIVE_START);
        }
        let range = match KeyRange::new(request.key, request.range_end) {
            Ok(range) => range,
            Err(empty) => return refuse(stream, &empty.to_string()),
        };
        let id = if request.watch_id == AUTO_WATCH_ID {
            stream.auto_id()
        } else if stream.watchers.contains_key(&request.watch_id) {
            return refuse(stream, DUPLICATE_ID);
        } else {
            request.watch_id
        };
        let next_revision = if request.start_revision == 0 {
            current + 1
        } else {
            request.start_revision
        };
        let mut watcher = Watcher::new(id, range, next_revision, next_revision > current);
        watcher.filter = request.filter;
        watcher.prev_kv = request.prev_kv;
        watcher.fragment = request.fragment;
        watcher.progress_notify = request.progress_notify;
        watcher.deliver(
            Notice::Created {
                watch_id: id,
                revision: current,
            },
            &stream.sender,
        );
        stream.watchers.insert(id, watcher);
        self.watcher_count.fetch_add(1, Ordering::AcqRel);
        self.catch_up(stream_id, id);
    }

    /// Cancels a watcher the stream owns; an unknown id gets no answer, as
    /// in etcd.
    pub fn cancel(&mut self, stream_id: StreamId, watch_id: i64) {
        let current = self.store.current_revision();
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let Some(mut watcher) = stream.watchers.remove(&watch_id) else {
            return;
        };
        self.watcher_count.fetch_sub(1, Ordering::AcqRel);
        if let Some(created) = watcher.take_created() {
            stream.send_control(created);
        }
        stream.send_control(Notice::Canceled {
            watch_id,
            revision: current,
            compact_revision: 0,
            reason: String::new(),
        });
    }

    /// A stream-wide progress request: the revision every watcher of the
    /// stream has been handed in full (the store's when it has none).
    pub fn progress(&mut self, stream_id: StreamId) {
        let current = self.store.current_revision();
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let revision = stream
            .watchers
            .values()
            .map(Watcher::delivered_through)
            .min()
            .unwrap_or(current)
            .min(current);
        stream.send_control(Notice::Progress {
            watch_id: NO_WATCH_ID,
            revision,
        });
    }

    /// The events of one applied batch, in revision order.
    pub fn publish(&mut self, events: &[Event]) {
        debug_assert!(events
            .windows(2)
            .all(|pair| pair[0].kv.mod_revision <= pair[1].kv.mod_revision));
        for stream in self.streams.values_mut() {
            for watcher in stream.watchers.values_mut() {
                watcher.offer_live(events, &stream.sender);
            }
        }
    }

    /// The periodic work: drop streams whose client is gone, flush what is
    /// pending, notice revisions that never reached the hub, let unsynced
    /// watchers catch up, and send due progress notifications.
    /// `batches_idle` says that no published batch is waiting for the hub.
    pub fn tick(&mut self, now: Instant, batches_idle: bool) {
        self.drop_closed_streams();
        for stream in self.streams.values_mut() {
            stream.flush();
        }
        let current = self.store.current_revision();
        if batches_idle {
            self.resync_missed(self.revision_at_last_tick);
        }
        self.revision_at_last_tick = current;
        let waiting: Vec<(StreamId, i64)> = self
            .streams
            .iter()
            .flat_map(|(stream_id, stream)| {
                stream
                    .watchers
                    .values()
                    .filter(|watcher| !watcher.synced)
                    .map(move |watcher| (*stream_id, watcher.id))
            })
            .collect();
        for (stream_id, watch_id) in waiting {
            self.catch_up(stream_id, watch_id);
        }
        if now >= self.next_progress {
            self.next_progress = now + self.progress_interval;
            self.notify_progress(current);
        }
    }

    /// A synced watcher still short of a revision the store had a whole tick
    /// ago, with no batch waiting, missed that revision's batch (the feed
    /// skipped it while no watcher existed, its queue was full, or a
    /// snapshot replaced the store): it reads history instead.
    fn resync_missed(&mut self, revision_a_tick_ago: i64) {
        for stream in self.streams.values_mut() {
            for watcher in stream.watchers.values_mut() {
                if watcher.synced && watcher.next_revision <= revision_a_tick_ago {
                    watcher.synced = false;
                }
            }
        }
    }

    fn catch_up(&mut self, stream_id: StreamId, watch_id: i64) {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        let Some(watcher) = stream.watchers.get_mut(&watch_id) else {
            return;
        };
        if watcher.synced || watcher.has_pending() || stream.sender.capacity() == 0 {
            return;
        }
        let (compact_revision, reason) = match watcher.catch_up(&self.store, &stream.sender) {
            CatchUp::Read => return,
            CatchUp::Compacted { compact_revision } => (compact_revision, String::new()),
            CatchUp::Failed(reason) => {
                tracing::warn!(watch_id, %reason, "canceling a watcher whose history cannot be read");
                (0, reason)
            }
        };
        stream.watchers.remove(&watch_id);
        self.watcher_count.fetch_sub(1, Ordering::AcqRel);
        // etcd's compaction cancel carries no header revision.
        stream.send_control(Notice::Canceled {
            watch_id,
            revision: 0,
            compact_revision,
            reason,
        });
    }

    /// etcd's periodic progress notification: to each watcher that asked
    /// for it, is synced, and got no events since the last one.
    fn notify_progress(&mut self, current: i64) {
        for stream in self.streams.values_mut() {
            for watcher in stream.watchers.values_mut() {
                let due = watcher.progress_notify
                    && watcher.quiet
                    && watcher.synced
                    && !watcher.has_pending();
                if due {
                    let notice = Notice::Progress {
                        watch_id: watcher.id,
                        revision: watcher.delivered_through().min(current),
                    };
                    watcher.deliver(notice, &stream.sender);
                }
                watcher.quiet = true;
            }
        }
    }

    fn drop_closed_streams(&mut self) {
        let watcher_count = &self.watcher_count;
        self.streams.retain(|_, stream| {
            let keep = !stream.sender.is_closed()
                && stream.control.len() <= CONTROL_NOTICES_PER_STREAM_MAX;
            if !keep {
                watcher_count.fetch_sub(stream.watchers.len(), Ordering::AcqRel);
            }
            keep
        });
    }

    #[cfg(test)]
    pub fn watcher(&self, stream: StreamId, watch_id: i64) -> Option<&Watcher> {
        self.streams.get(&stream)?.watchers.get(&watch_id)
    }
}
