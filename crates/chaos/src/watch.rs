//! The watch workload: writers put unique values to a few keys under one
//! prefix while watchers watch the prefix, each reconnecting (to the next
//! member) from the revision after the last event it saw whenever its
//! stream breaks, is refused or goes quiet. At the end a linearizable Range
//! of the prefix gives each key's last value and the last revision, and a
//! fresh watch from revision 1 gives the prefix's whole history (the suite
//! never compacts), which [`crate::watch_check`] compares with the writes
//! and with what each watcher saw.
//!
//! Owns: the writers' and watchers' loops, and the final reads. Must never:
//! judge what was seen, or watch without a bound (every watcher stops once
//! it has seen the last revision, or when its time is up).

use std::time::{Duration, Instant};

use server::proto::etcdserverpb::watch_client::WatchClient;
use server::proto::etcdserverpb::watch_request::RequestUnion;
use server::proto::etcdserverpb::{PutRequest, RangeRequest, WatchCreateRequest, WatchRequest};
use server::proto::mvccpb::event::EventType;
use sim::rng::SimRng;
use tokio::sync::watch as signal;
use tokio_stream::StreamExt as _;

use crate::connection::{CallError, CallErrors, Connection, HistoryClock, CALL_ERRORS_KEPT_MAX};

pub const WATCH_PREFIX: &str = "watch/";
/// The keys writers put to, under the prefix.
const KEYS: usize = 8;
/// A bound on each writer's loop besides the run's deadline.
const WRITES_PER_CLIENT_MAX: usize = 50_000;
/// A stream with no message for this long is given up and reopened on the
/// next member: a paused or cut-off member sends nothing, and says nothing.
const QUIET_MAX: Duration = Duration::from_secs(3);
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// One put of a writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub client_id: u64,
    pub key: String,
    /// Unique in the run: `client_id << 32 | n` for the writer's `n`th put.
    pub value: u64,
    pub call_ns: u64,
    /// The revision the put was acknowledged at and when; `None`: unknown.
    pub acknowledged: Option<(i64, u64)>,
}

/// One event as a watcher received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenEvent {
    pub revision: i64,
    pub key: String,
    pub value: String,
    /// A delete (no writer deletes; kept so one would be noticed).
    pub deleted: bool,
}

/// What one watcher saw, in the order received.
#[derive(Clone, Debug, Default)]
pub struct WatcherRecord {
    pub events: Vec<SeenEvent>,
    /// Streams opened after the first.
    pub reconnects: usize,
    pub errors: CallErrors,
}

/// The prefix's end: keys below it and at or above the prefix are under it.
fn prefix_end() -> Vec<u8> {
    let mut end = WATCH_PREFIX.as_bytes().to_vec();
    *end.last_mut().expect("a prefix is not empty") += 1;
    end
}

/// One writer's puts until `run` has passed since `clock` started, to keys
/// the `rng` picks, `think` apart.
pub async fn run_writer(
    mut connection: Connection,
    mut rng: SimRng,
    clock: HistoryClock,
    run: Duration,
    think: Duration,
) -> (Vec<Write>, Connection) {
    let run_ns = u64::try_from(run.as_nanos()).expect("a run shorter than 584 years");
    let mut writes = Vec::new();
    while writes.len() < WRITES_PER_CLIENT_MAX && clock.now_ns() < run_ns {
        let key = format!("{WATCH_PREFIX}k{}", rng.index(KEYS));
        let value = (connection.client_id() << 32) | (writes.len() as u64 + 1);
        let request = PutRequest {
            key: key.clone().into_bytes(),
            value: value.to_string().into_bytes(),
            ..PutRequest::default()
        };
        let call_ns = clock.now_ns();
        let acknowledged = match connection.put(&clock, request).await {
            Ok(response) => response
                .header
                .map(|header| (header.revision, clock.now_ns())),
            Err(error) => {
                connection.note_error(&format!("put {key}={value}"), &error);
                None
            }
        };
        writes.push(Write {
            client_id: connection.client_id(),
            key,
            value,
            call_ns,
            acknowledged,
        });
        tokio::time::sleep(think).await;
    }
    (writes, connection)
}

/// When a watcher stops: once the run driver has sent the last revision
/// and the watcher has seen it, or `catch_up` after the last revision was
/// sent, or at `give_up_at`, or when the driver is gone.
#[derive(Debug)]
pub struct Stop {
    pub last_revision: signal::Receiver<Option<i64>>,
    pub catch_up: Duration,
    pub give_up_at: Instant,
}

impl Stop {
    /// Whether a watcher that next wants `next_revision` is done, noting
    /// when it first learnt the last revision in `caught_up_by`.
    fn done(&self, next_revision: i64, caught_up_by: &mut Option<Instant>) -> bool {
        let now = Instant::now();
        if now >= self.give_up_at || self.last_revision.has_changed().is_err() {
            return true;
        }
        let Some(last) = *self.last_revision.borrow() else {
            return false;
        };
        let deadline = *caught_up_by.get_or_insert(now + self.catch_up);
        next_revision > last || now >= deadline
    }
}

/// One watcher of the prefix from `start_revision`, first through member
/// `first` of `endpoints`, reconnecting through the next member whenever a
/// stream fails, until `stop` says so.
pub async fn run_watcher(
    endpoints: Vec<String>,
    first: usize,
    start_revision: i64,
    mut stop: Stop,
) -> WatcherRecord {
    let mut record = WatcherRecord {
        errors: CallErrors::of(format!("watcher from m{}", first + 1)),
        ..WatcherRecord::default()
    };
    let mut next_revision = start_revision;
    let mut member = first;
    let mut caught_up_by = None;
    let mut opened = 0_usize;
    while !stop.done(next_revision, &mut caught_up_by) {
        if opened > 0 {
            record.reconnects += 1;
            member = (member + 1) % endpoints.len();
            tokio::time::sleep(RECONNECT_PAUSE).await;
        }
        opened += 1;
        let stream = open(&endpoints[member], next_revision).await;
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(error) => {
                note(&mut record.errors, &endpoints[member], &error);
                continue;
            }
        };
        loop {
            if stop.done(next_revision, &mut caught_up_by) {
                return record;
            }
            let message = tokio::select! {
                message = tokio::time::timeout(QUIET_MAX, stream.message()) => message,
                _ = stop.last_revision.changed() => continue,
            };
            match message {
                Ok(Ok(Some(response))) if response.canceled => {
                    let refused = tonic::Status::cancelled(response.cancel_reason);
                    note(
                        &mut record.errors,
                        &endpoints[member],
                        &CallError::Status(refused),
                    );
                    break;
                }
                Ok(Ok(Some(response))) => {
                    for event in response.events {
                        let Some(kv) = event.kv else { continue };
                        next_revision = next_revision.max(kv.mod_revision + 1);
                        record.events.push(SeenEvent {
                            revision: kv.mod_revision,
                            key: String::from_utf8_lossy(&kv.key).into_owned(),
                            value: String::from_utf8_lossy(&kv.value).into_owned(),
                            deleted: event.r#type == EventType::Delete as i32,
                        });
                    }
                }
                Ok(Ok(None)) => break,
                Ok(Err(status)) => {
                    note(
                        &mut record.errors,
                        &endpoints[member],
                        &CallError::Status(status),
                    );
                    break;
                }
                Err(_quiet) => break,
            }
        }
    }
    record
}

fn note(errors: &mut CallErrors, endpoint: &str, error: &CallError) {
    errors.total += 1;
    if errors.first.len() < CALL_ERRORS_KEPT_MAX {
        errors
            .first
            .push(format!("watch through {endpoint}: {error}"));
    }
}

/// A watch stream of the prefix from `start_revision`; the request side
/// stays open (and idle) as long as the stream is read.
async fn open(
    endpoint: &str,
    start_revision: i64,
) -> Result<tonic::Streaming<server::proto::etcdserverpb::WatchResponse>, CallError> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
        .map_err(|error| CallError::Status(tonic::Status::invalid_argument(error.to_string())))?
        .connect_timeout(QUIET_MAX)
        .connect_lazy();
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: WATCH_PREFIX.as_bytes().to_vec(),
            range_end: prefix_end(),
            start_revision,
            ..WatchCreateRequest::default()
        })),
    };
    let requests = tokio_stream::iter([create]).chain(tokio_stream::pending());
    match tokio::time::timeout(QUIET_MAX, WatchClient::new(channel).watch(requests)).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(CallError::Status(status)),
        Err(_elapsed) => Err(CallError::TimedOut(QUIET_MAX)),
    }
}

/// One key's last value under the prefix, by the final Range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalValue {
    pub key: String,
    pub value: String,
    pub mod_revision: i64,
}

/// Every key under the prefix by a linearizable Range, through each member
/// in turn until one answers; `None` if none did within `within`.
pub async fn read_final(
    connection: &mut Connection,
    clock: &HistoryClock,
    within: Duration,
) -> Option<Vec<FinalValue>> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let request = RangeRequest {
            key: WATCH_PREFIX.as_bytes().to_vec(),
            range_end: prefix_end(),
            ..RangeRequest::default()
        };
        match connection.range(clock, request).await {
            Ok(response) => {
                return Some(
                    response
                        .kvs
                        .into_iter()
                        .map(|kv| FinalValue {
                            key: String::from_utf8_lossy(&kv.key).into_owned(),
                            value: String::from_utf8_lossy(&kv.value).into_owned(),
                            mod_revision: kv.mod_revision,
                        })
                        .collect(),
                )
            }
            Err(error) => {
                // An unavailable member was left for the next already.
                connection.note_error("final range of the prefix", &error);
                tokio::time::sleep(RECONNECT_PAUSE).await;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_end_bounds_exactly_the_keys_under_the_prefix() {
        let end = prefix_end();
        assert!(b"watch/k7".as_slice() < end.as_slice());
        assert!(b"watch0".as_slice() >= end.as_slice());
        assert!(b"watci".as_slice() > end.as_slice());
    }
}
