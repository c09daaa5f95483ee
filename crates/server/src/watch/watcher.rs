//! One watcher: what it wants, how far it has been served, and the notices
//! it could not hand to its stream yet. It decides which events of a batch
//! or of history are its own and groups them into notices of whole
//! revisions; it never blocks: a full stream leaves notices pending, and a
//! watcher with more than [`PENDING_EVENTS_PER_WATCHER_MAX`] events pending
//! drops them and catches up from history later.

use std::collections::VecDeque;

use mvcc::Event;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::range::{EventFilter, KeyRange};
use super::Notice;

/// Events a watcher may hold while its stream is full; beyond this it falls
/// back to reading history, as etcd's slow ("victim") watchers do.
pub const PENDING_EVENTS_PER_WATCHER_MAX: usize = 4096;
/// Event bytes (keys and values) one notice aims at; a notice holds whole
/// revisions only, so one large revision may exceed it.
pub const NOTICE_EVENT_BYTES_TARGET: usize = 512 * 1024;
/// Events read from history in one catch-up step (a revision is never split,
/// so a step may read a few more).
pub const CATCH_UP_EVENTS_MAX: usize = 1000;

#[derive(Debug)]
pub(crate) struct Watcher {
    pub id: i64,
    pub range: KeyRange,
    pub filter: EventFilter,
    pub prev_kv: bool,
    pub fragment: bool,
    pub progress_notify: bool,
    /// The first revision this watcher has not been given (pending counts as
    /// given). Every event below it was delivered or filtered out.
    pub next_revision: i64,
    /// Served by live batches; otherwise it catches up from history.
    pub synced: bool,
    pending: VecDeque<Notice>,
    pending_events: usize,
    /// No events were delivered since the last progress notification.
    pub quiet: bool,
}

/// What a catch-up step found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CatchUp {
    /// Delivered what history held; the watcher may now be synced.
    Read,
    /// The watcher's next revision is compacted away.
    Compacted { compact_revision: i64 },
    /// History could not be read.
    Failed(String),
}

impl Watcher {
    pub fn new(id: i64, range: KeyRange, next_revision: i64, synced: bool) -> Self {
        Self {
            id,
            range,
            filter: EventFilter::default(),
            prev_kv: false,
            fragment: false,
            progress_notify: false,
            next_revision,
            synced,
            pending: VecDeque::new(),
            pending_events: 0,
            quiet: true,
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The last revision whose events this watcher has wholly been handed
    /// (pending notices not counted).
    pub fn delivered_through(&self) -> i64 {
        let first_pending = self.pending.iter().find_map(Notice::first_event_revision);
        first_pending.unwrap_or(self.next_revision) - 1
    }

    /// Serves a live batch (events in revision order, every revision whole)
    /// to a synced watcher. A batch that starts after the watcher's next
    /// revision means a revision was never published to the hub: the
    /// watcher goes back to history for it.
    pub fn offer_live(&mut self, events: &[Event], sender: &mpsc::Sender<Notice>) {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return;
        };
        if !self.synced {
            return;
        }
        if first.kv.mod_revision > self.next_revision {
            self.synced = false;
            return;
        }
        let through = last.kv.mod_revision;
        let notices = self.notices(events, through);
        self.next_revision = self.next_revision.max(through + 1);
        self.deliver_all(notices, sender);
    }

    /// One step of reading history from the next revision, up to the
    /// store's revision when the step starts. Call only with nothing pending.
    pub fn catch_up(&mut self, store: &mvcc::Store, sender: &mpsc::Sender<Notice>) -> CatchUp {
        debug_assert!(!self.synced && self.pending.is_empty());
        let current = store.current_revision();
        if self.next_revision > current {
            self.synced = true;
            return CatchUp::Read;
        }
        let events = match store.events_since(self.next_revision, CATCH_UP_EVENTS_MAX) {
            Ok(events) => events,
            Err(mvcc::Error::Request(mvcc::RequestError::Compacted {
                compact_revision, ..
            })) => return CatchUp::Compacted { compact_revision },
            Err(error) => return CatchUp::Failed(error.to_string()),
        };
        let last_read = events.last().map(|event| event.kv.mod_revision);
        let complete =
            events.len() < CATCH_UP_EVENTS_MAX || last_read.is_some_and(|last| last > current);
        let through = match last_read {
            Some(last) if !complete => last,
            _ => current,
        };
        let notices = self.notices(&events, through);
        self.next_revision = through + 1;
        self.synced = complete;
        self.deliver_all(notices, sender);
        CatchUp::Read
    }

    /// This watcher's events among `events`, from its next revision through
    /// `through`, as notices of whole revisions; the last notice's revision
    /// is `through`.
    fn notices(&self, events: &[Event], through: i64) -> Vec<Notice> {
        let mut notices = Vec::new();
        let mut group: Vec<Event> = Vec::new();
        let mut group_bytes = 0;
        for event in events {
            let revision = event.kv.mod_revision;
            if revision < self.next_revision || revision > through {
                continue;
            }
            if !self.range.contains(&event.kv.key) || !self.filter.passes(event) {
                continue;
            }
            let starts_revision = group
                .last()
                .is_some_and(|last| last.kv.mod_revision != revision);
            if starts_revision && group_bytes >= NOTICE_EVENT_BYTES_TARGET {
                let group_through = group.last().map_or(through, |last| last.kv.mod_revision);
                notices.push(self.events_notice(std::mem::take(&mut group), group_through));
                group_bytes = 0;
            }
            let mut event = event.clone();
            if !self.prev_kv {
                event.prev_kv = None;
            }
            group_bytes += event_bytes(&event);
            group.push(event);
        }
        if !group.is_empty() {
            notices.push(self.events_notice(group, through));
        }
        notices
    }

    fn events_notice(&self, events: Vec<Event>, revision: i64) -> Notice {
        Notice::Events {
            watch_id: self.id,
            revision,
            events,
            fragment: self.fragment,
        }
    }

    /// Hands notices over in order; stops when the watcher falls behind
    /// (the rest will be read from history).
    fn deliver_all(&mut self, notices: Vec<Notice>, sender: &mpsc::Sender<Notice>) {
        for notice in notices {
            if !self.deliver(notice, sender) {
                return;
            }
        }
    }

    /// Hands one notice to the stream, or keeps it pending behind earlier
    /// ones. False when the watcher had to fall behind.
    pub fn deliver(&mut self, notice: Notice, sender: &mpsc::Sender<Notice>) -> bool {
        if matches!(notice, Notice::Events { .. }) {
            self.quiet = false;
        }
        let notice = if self.pending.is_empty() {
            match sender.try_send(notice) {
                // A closed stream is removed at the next tick.
                Ok(()) | Err(TrySendError::Closed(_)) => return true,
                Err(TrySendError::Full(notice)) => notice,
            }
        } else {
            notice
        };
        self.pending_events += notice.event_count();
        self.pending.push_back(notice);
        if self.pending_events > PENDING_EVENTS_PER_WATCHER_MAX {
            self.fall_behind();
            return false;
        }
        true
    }

    /// Moves pending notices into the stream while it has room.
    pub fn flush(&mut self, sender: &mpsc::Sender<Notice>) {
        while let Some(notice) = self.pending.pop_front() {
            let count = notice.event_count();
            match sender.try_send(notice) {
                Ok(()) | Err(TrySendError::Closed(_)) => self.pending_events -= count,
                Err(TrySendError::Full(notice)) => {
                    self.pending.push_front(notice);
                    return;
                }
            }
        }
    }

    /// Drops the pending events (and progress notices, which would claim
    /// revisions not delivered) and rewinds to the first dropped revision.
    fn fall_behind(&mut self) {
        if let Some(first) = self.pending.iter().find_map(Notice::first_event_revision) {
            self.next_revision = first;
        }
        self.pending
            .retain(|notice| !matches!(notice, Notice::Events { .. } | Notice::Progress { .. }));
        self.pending_events = 0;
        self.synced = false;
    }

    /// The notices still pending that must outlive the watcher (its
    /// creation), for a cancel to send ahead of its own answer.
    pub fn take_created(&mut self) -> Option<Notice> {
        let position = self
            .pending
            .iter()
            .position(|notice| matches!(notice, Notice::Created { .. }))?;
        self.pending.remove(position)
    }
}

fn event_bytes(event: &Event) -> usize {
    let prev = event
        .prev_kv
        .as_ref()
        .map_or(0, |kv| kv.key.len() + kv.value.len());
    event.kv.key.len() + event.kv.value.len() + prev
}
