//! The hub's rules, driven directly (the state, without its thread) where a
//! test needs control over ticks and channels, and through the thread where
//! it needs real concurrency.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mvcc::{ApplyOutcome, Command, CompactionRequest, DeleteRangeRequest, Event, PutRequest};
use tokio::sync::mpsc;

use super::hub::{self, HubOptions, STREAM_NOTICES_QUEUED_MAX};
use super::state::HubState;
use super::{CreateRequest, EventFilter, Notice, PENDING_EVENTS_PER_WATCHER_MAX};

/// A store that applies commands at consecutive log indices.
struct Writer {
    store: Arc<mvcc::Store>,
    index: u64,
}

impl Writer {
    fn new() -> Self {
        Self {
            store: Arc::new(mvcc::Store::in_memory().unwrap()),
            index: 0,
        }
    }

    fn apply(&mut self, command: Command) -> ApplyOutcome {
        self.index += 1;
        self.store.apply(self.index, &command).unwrap()
    }

    fn put(&mut self, key: &str, value: &str) -> Vec<Event> {
        events_of(&self.apply(Command::Put(PutRequest::new(key, value))))
    }

    fn delete(&mut self, key: &str) -> Vec<Event> {
        events_of(&self.apply(Command::DeleteRange(DeleteRangeRequest::single(key))))
    }

    fn compact(&mut self, revision: i64) {
        self.apply(Command::Compact(CompactionRequest {
            revision,
            physical: true,
        }));
    }
}

fn events_of(outcome: &ApplyOutcome) -> Vec<Event> {
    match outcome {
        ApplyOutcome::Applied(applied) => applied.events.clone(),
        other => panic!("not applied: {other:?}"),
    }
}

const STREAM: u64 = 1;

/// A hub state with one open stream.
fn hub_with_stream(
    writer: &Writer,
    capacity: usize,
) -> (HubState, mpsc::Receiver<Notice>, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let mut state = HubState::new(
        Arc::clone(&writer.store),
        Arc::clone(&count),
        Duration::from_secs(600),
        Instant::now(),
    );
    let (sender, notices) = mpsc::channel(capacity);
    state.open(STREAM, sender);
    (state, notices, count)
}

fn watch(key: &str, range_end: &[u8], start_revision: i64) -> CreateRequest {
    CreateRequest {
        key: key.as_bytes().to_vec(),
        range_end: range_end.to_vec(),
        start_revision,
        ..CreateRequest::default()
    }
}

fn drain(notices: &mut mpsc::Receiver<Notice>) -> Vec<Notice> {
    let mut taken = Vec::new();
    while let Ok(notice) = notices.try_recv() {
        taken.push(notice);
    }
    taken
}

/// (watch id, revision, key) of every event, in the order delivered.
fn delivered(notices: &[Notice]) -> Vec<(i64, i64, String)> {
    notices
        .iter()
        .flat_map(|notice| match notice {
            Notice::Events {
                watch_id, events, ..
            } => events
                .iter()
                .map(|event| {
                    (
                        *watch_id,
                        event.kv.mod_revision,
                        String::from_utf8_lossy(&event.kv.key).into_owned(),
                    )
                })
                .collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn live_events_reach_the_watchers_whose_range_and_filters_match() {
    let mut writer = Writer::new();
    let (mut state, mut notices, _) = hub_with_stream(&writer, 64);
    state.create(STREAM, watch("foo", b"", 0));
    state.create(STREAM, watch("foo", b"fop", 0));
    state.create(STREAM, watch("b", b"\0", 0));
    state.create(
        STREAM,
        CreateRequest {
            filter: EventFilter {
                no_put: true,
                no_delete: false,
            },
            ..watch("", b"\0", 0)
        },
    );
    let created = drain(&mut notices);
    let ids: Vec<i64> = created
        .iter()
        .map(|notice| match notice {
            Notice::Created { watch_id, revision } => {
                assert_eq!(*revision, 1);
                *watch_id
            }
            other => panic!("expected a creation, got {other:?}"),
        })
        .collect();
    assert_eq!(ids, [0, 1, 2, 3], "automatic ids count from 0 per stream");
    for (key, value) in [("foo", "1"), ("foo/x", "2"), ("a", "3"), ("fo", "4")] {
        let events = writer.put(key, value);
        state.publish(&events);
    }
    let events = writer.delete("foo");
    state.publish(&events);
    let got = delivered(&drain(&mut notices));
    let expected = [
        (0, 2, "foo"),
        (1, 2, "foo"),
        (2, 2, "foo"),
        (1, 3, "foo/x"),
        (2, 3, "foo/x"),
        (2, 5, "fo"),
        (0, 6, "foo"),
        (1, 6, "foo"),
        (2, 6, "foo"),
        (3, 6, "foo"),
    ];
    let expected: Vec<(i64, i64, String)> = expected
        .iter()
        .map(|(id, revision, key)| (*id, *revision, (*key).to_owned()))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn prev_kv_is_sent_only_to_watchers_that_asked() {
    let mut writer = Writer::new();
    writer.put("k", "old");
    let (mut state, mut notices, _) = hub_with_stream(&writer, 64);
    state.create(STREAM, watch("k", b"", 0));
    state.create(
        STREAM,
        CreateRequest {
            prev_kv: true,
            ..watch("k", b"", 0)
        },
    );
    let events = writer.put("k", "new");
    state.publish(&events);
    let prev: Vec<Option<Vec<u8>>> = drain(&mut notices)
        .into_iter()
        .filter_map(|notice| match notice {
            Notice::Events { events, .. } => {
                Some(events[0].prev_kv.as_ref().map(|kv| kv.value.clone()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(prev, [None, Some(b"old".to_vec())]);
}

#[test]
fn a_past_start_revision_is_read_from_history_then_served_live() {
    let mut writer = Writer::new();
    for number in 0..5 {
        writer.put("k", &number.to_string());
    }
    let (mut state, mut notices, _) = hub_with_stream(&writer, 64);
    state.create(STREAM, watch("k", b"", 3));
    let events = writer.put("k", "live");
    state.publish(&events);
    let got: Vec<i64> = delivered(&drain(&mut notices))
        .into_iter()
        .map(|(_, revision, _)| revision)
        .collect();
    assert_eq!(got, [3, 4, 5, 6, 7]);
}

#[test]
fn a_batch_the_hub_never_saw_is_read_from_history_at_the_next_ticks() {
    let mut writer = Writer::new();
    let (mut state, mut notices, _) = hub_with_stream(&writer, 64);
    state.create(STREAM, watch("k", b"", 0));
    writer.put("k", "lost");
    state.tick(Instant::now(), true);
    state.tick(Instant::now(), true);
    let events = writer.put("k", "seen");
    state.publish(&events);
    state.tick(Instant::now(), true);
    let got: Vec<i64> = delivered(&drain(&mut notices))
        .into_iter()
        .map(|(_, revision, _)| revision)
        .collect();
    assert_eq!(got, [2, 3], "the unpublished revision 2 came from history");
}

#[test]
fn a_gap_between_batches_sends_the_watcher_to_history_without_duplicates() {
    let mut writer = Writer::new();
    let (mut state, mut notices, _) = hub_with_stream(&writer, 64);
    state.create(STREAM, watch("k", b"", 0));
    let first = writer.put("k", "1");
    writer.put("k", "dropped");
    let third = writer.put("k", "3");
    state.publish(&first);
    state.publish(&third);
    state.tick(Instant::now(), false);
    // A stale batch arriving late is ignored.
    state.publish(&first);
    let got: Vec<i64> = delivered(&drain(&mut notices))
        .into_iter()
        .map(|(_, revision, _)| revision)
        .collect();
    assert_eq!(got, [2, 3, 4]);
}

#[test]
fn a_slow_watcher_buffers_up_to_its_bound_then_catches_up_from_history() {
    let mut writer = Writer::new();
    let (mut state, mut notices, _) = hub_with_stream(&writer, STREAM_NOTICES_QUEUED_MAX);
    state.create(STREAM, watch("k", b"", 0));
    let writes = STREAM_NOTICES_QUEUED_MAX + PENDING_EVENTS_PER_WATCHER_MAX + 10;
    for number in 0..writes {
        let events = writer.put("k", &number.to_string());
        state.publish(&events);
    }
    let watcher = state.watcher(STREAM, 0).unwrap();
    assert!(
        !watcher.synced,
        "beyond its bound the watcher left the live path"
    );
    assert!(!watcher.has_pending(), "its buffered events were dropped");
    let mut got = Vec::new();
    for _ in 0..writes {
        got.extend(delivered(&drain(&mut notices)));
        state.tick(Instant::now(), true);
        if got.len() == writes {
            break;
        }
    }
    got.extend(delivered(&drain(&mut notices)));
    let revisions: Vec<i64> = got.iter().map(|(_, revision, _)| *revision).collect();
    let expected: Vec<i64> = (2..2 + writes as i64).collect();
    assert_eq!(revisions, expected, "every revision once, in order");
    assert!(state.watcher(STREAM, 0).unwrap().synced);
}

#[test]
fn a_compacted_start_revision_cancels_the_watcher_with_the_compact_revision() {
    let mut writer = Writer::new();
    for number in 0..5 {
        writer.put("k", &number.to_string());
    }
    writer.compact(4);
    let (mut state, mut notices, count) = hub_with_stream(&writer, 64);
    state.create(STREAM, watch("k", b"", 3));
    state.create(STREAM, watch("k", b"", 4));
    let got = drain(&mut notices);
    assert_eq!(
        got[..2],
        [
            Notice::Created {
                watch_id: 0,
                revision: 6
            },
            Notice::Canceled {
                watch_id: 0,
                revision: 0,
                compact_revision: 4,
                reason: String::new()
            },
        ]
    );
    assert!(matches!(got[2], Notice::Created { watch_id: 1, .. }));
    assert_eq!(
        delivered(&got[3..]),
        [
            (1, 4, "k".to_owned()),
            (1, 5, "k".to_owned()),
            (1, 6, "k".to_owned())
        ],
        "the compact revision itself is still watchable"
    );
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn bad_creates_are_refused_as_etcd_refuses_them() {
    let writer = Writer::new();
    let (mut state, mut notices, count) = hub_with_stream(&writer, 64);
    state.create(STREAM, watch("k", b"", -1));
    state.create(STREAM, watch("b", b"a", 0));
    state.create(
        STREAM,
        CreateRequest {
            watch_id: 7,
            ..watch("k", b"", 0)
        },
    );
    state.create(
        STREAM,
        CreateRequest {
            watch_id: 7,
            ..watch("j", b"", 0)
        },
    );
    let reasons: Vec<String> = drain(&mut notices)
        .into_iter()
        .filter_map(|notice| match notice {
            Notice::Refused { reason, .. } => Some(reason),
            Notice::Created { watch_id, .. } => {
                assert_eq!(watch_id, 7, "the client's id is kept");
                None
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        reasons,
        [
            "etcdserver: mvcc: required revision has been compacted",
            "mvcc: watcher range is empty",
            "mvcc: duplicate watch ID provided on the WatchStream",
        ]
    );
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn a_canceled_watcher_gets_no_more_events() {
    let mut writer = Writer::new();
    let (mut state, mut notices, count) = hub_with_stream(&writer, 64);
    state.create(STREAM, watch("k", b"", 0));
    state.cancel(STREAM, 0);
    state.cancel(STREAM, 42);
    let events = writer.put("k", "v");
    state.publish(&events);
    let got = drain(&mut notices);
    assert_eq!(got.len(), 2, "creation and one cancel: {got:?}");
    assert!(matches!(
        got[1],
        Notice::Canceled {
            watch_id: 0,
            compact_revision: 0,
            ..
        }
    ));
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn progress_names_what_every_watcher_of_the_stream_was_handed() {
    let mut writer = Writer::new();
    let (mut state, mut notices, _) = hub_with_stream(&writer, 64);
    state.progress(STREAM);
    state.create(STREAM, watch("k", b"", 0));
    writer.put("k", "unpublished");
    state.progress(STREAM);
    let events = writer.put("k", "published");
    state.publish(&events);
    state.progress(STREAM);
    state.tick(Instant::now(), true);
    state.progress(STREAM);
    let progress: Vec<(i64, i64)> = drain(&mut notices)
        .into_iter()
        .filter_map(|notice| match notice {
            Notice::Progress { watch_id, revision } => Some((watch_id, revision)),
            _ => None,
        })
        .collect();
    // Revision 2 was handed over only once the watcher read it from history.
    assert_eq!(progress, [(-1, 1), (-1, 1), (-1, 1), (-1, 3)]);
}

#[test]
fn periodic_progress_goes_to_quiet_synced_watchers_that_asked() {
    let mut writer = Writer::new();
    let count = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let interval = Duration::from_secs(1);
    let mut state = HubState::new(Arc::clone(&writer.store), count, interval, start);
    let (sender, mut notices) = mpsc::channel(64);
    state.open(STREAM, sender);
    let asking = CreateRequest {
        progress_notify: true,
        ..watch("a", b"", 0)
    };
    state.create(STREAM, asking.clone());
    state.create(STREAM, watch("b", b"", 0));
    state.create(
        STREAM,
        CreateRequest {
            key: b"c".to_vec(),
            ..asking
        },
    );
    drain(&mut notices);
    let events = writer.put("c", "busy");
    state.publish(&events);
    drain(&mut notices);
    state.tick(start + interval, true);
    let progress: Vec<Notice> = drain(&mut notices);
    assert_eq!(
        progress,
        [Notice::Progress {
            watch_id: 0,
            revision: 2
        }],
        "only the quiet watcher that asked"
    );
    state.tick(start + interval * 2, true);
    assert_eq!(drain(&mut notices).len(), 2, "both asked and are quiet now");
}

#[test]
fn a_closed_stream_is_dropped_with_its_watchers() {
    let writer = Writer::new();
    let (mut state, notices, count) = hub_with_stream(&writer, 64);
    state.create(STREAM, watch("k", b"", 0));
    drop(notices);
    state.tick(Instant::now(), true);
    assert!(state.watcher(STREAM, 0).is_none());
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// A writer applies and publishes while a watcher starting in the past
/// catches up; it must see every revision once, in order, across the
/// handover from history to live batches. Some batches are not published
/// at all, as when the feed's queue is full.
#[test]
fn catch_up_hands_over_to_live_without_gap_or_duplicate_under_concurrent_writes() {
    const WRITES: i64 = 3000;
    let mut writer = Writer::new();
    let (hub, feed, thread) = hub::start(Arc::clone(&writer.store), HubOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for number in 0..200 {
        writer.put("key", &number.to_string());
    }
    let (stream, mut notices) = runtime.block_on(hub.open_stream()).unwrap();
    let writing = std::thread::spawn(move || {
        for number in 0..WRITES {
            let outcome = writer.apply(Command::Put(PutRequest::new("key", number.to_string())));
            if number % 97 != 0 {
                feed.publish(&[outcome]);
            }
        }
    });
    runtime
        .block_on(stream.create(watch("key", b"", 2)))
        .unwrap();
    let last = 1 + 200 + WRITES;
    let mut revisions = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    runtime.block_on(async {
        while revisions.last() != Some(&last) {
            assert!(Instant::now() < deadline, "stuck at {:?}", revisions.last());
            let notice = tokio::time::timeout(Duration::from_secs(10), notices.recv())
                .await
                .expect("notices keep coming")
                .expect("the hub runs");
            if let Notice::Events { events, .. } = notice {
                revisions.extend(events.iter().map(|event| event.kv.mod_revision));
            }
        }
    });
    writing.join().unwrap();
    let expected: Vec<i64> = (2..=last).collect();
    assert_eq!(revisions, expected);
    thread.stop();
    assert!(
        runtime.block_on(notices.recv()).is_none(),
        "a stopped hub ends its streams"
    );
}

#[test]
fn a_stream_that_asks_far_more_than_it_reads_is_dropped() {
    let writer = Writer::new();
    let (mut state, notices, count) = hub_with_stream(&writer, 1);
    state.create(STREAM, watch("k", b"", 0));
    for _ in 0..super::CONTROL_NOTICES_PER_STREAM_MAX {
        state.progress(STREAM);
    }
    state.tick(Instant::now(), true);
    assert!(
        state.watcher(STREAM, 0).is_some(),
        "up to the bound it waits"
    );
    state.progress(STREAM);
    state.progress(STREAM);
    state.tick(Instant::now(), true);
    assert!(state.watcher(STREAM, 0).is_none());
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);
    drop(notices);
}
