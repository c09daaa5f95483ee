//! The watch hub: etcd's watchers, served from the events the state machine
//! applies. It owns the watchers and their delivery; it must never block the
//! node thread nor change the store.
//!
//! The node thread hands each applied batch's events to a [`Feed`] (one
//! cheap call that never blocks: with no watchers it does nothing, and a
//! full queue drops the batch). The hub thread serves the events to every
//! synced watcher whose range and filters they match, through each stream's
//! bounded channel. A watcher that starts in the past, that missed a batch,
//! or whose client reads too slowly (more than
//! [`PENDING_EVENTS_PER_WATCHER_MAX`] events waiting) is unsynced: it reads
//! history with [`mvcc::Store::events_since`] a step at a time until it
//! meets the live batches, as etcd's unsynced watchers do. Every watcher
//! tracks the first revision it has not been given, so it gets each event
//! once, in revision order, whichever path it comes by. A watcher whose
//! start revision is compacted is canceled with the compact revision.
//!
//! - [`range`]: key ranges with etcd's `range_end` rules, and filters.
//! - `watcher`: one watcher's matching, grouping and pending notices.
//! - `state`: the streams and watchers, driven by the hub thread.
//! - `hub`: the thread, the [`Hub`] the Watch service talks to, the [`Feed`].

mod hub;
pub mod range;
mod state;
mod watcher;

use mvcc::Event;

pub use hub::{start, Feed, Hub, HubOptions, HubStopped, HubThread, WatchStream};
pub use range::{EmptyRange, EventFilter, KeyRange};
pub use state::{AUTO_WATCH_ID, CONTROL_NOTICES_PER_STREAM_MAX, NO_WATCH_ID};
pub use watcher::{CATCH_UP_EVENTS_MAX, NOTICE_EVENT_BYTES_TARGET, PENDING_EVENTS_PER_WATCHER_MAX};

/// Identifies one Watch stream (one gRPC call) within a hub.
pub type StreamId = u64;

/// etcd's `WatchCreateRequest`, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CreateRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// The first revision wanted; 0 for "after the current one".
    pub start_revision: i64,
    /// The id the client chose, or [`AUTO_WATCH_ID`] for one chosen here.
    pub watch_id: i64,
    pub filter: EventFilter,
    pub prev_kv: bool,
    pub progress_notify: bool,
    /// The client accepts a large answer in fragments.
    pub fragment: bool,
}

/// What the hub tells a stream; the Watch service turns each into etcd's
/// `WatchResponse` (or several, when fragmenting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The watcher exists; `revision` is the store's at creation.
    Created { watch_id: i64, revision: i64 },
    /// A create request was refused; etcd answers such a request as created
    /// and canceled at once, under watch id -1.
    Refused { revision: i64, reason: String },
    /// Events of whole revisions in order; the watcher has been handed every
    /// event of its own through `revision`.
    Events {
        watch_id: i64,
        revision: i64,
        events: Vec<Event>,
        fragment: bool,
    },
    /// Every event through `revision` has been handed over; watch id -1
    /// speaks for every watcher of the stream.
    Progress { watch_id: i64, revision: i64 },
    /// The watcher is gone: canceled by its client, or its start revision
    /// was compacted (`compact_revision` is set), or its history could not be
    /// read (`reason` says why).
    Canceled {
        watch_id: i64,
        revision: i64,
        compact_revision: i64,
        reason: String,
    },
}

impl Notice {
    fn first_event_revision(&self) -> Option<i64> {
        match self {
            Notice::Events { events, .. } => events.first().map(|event| event.kv.mod_revision),
            _ => None,
        }
    }

    fn event_count(&self) -> usize {
        match self {
            Notice::Events { events, .. } => events.len(),
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests;
