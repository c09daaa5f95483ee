//! etcd's Watch service: one bidirectional stream per call, carrying any
//! number of watchers. Each stream gets a task that passes the client's
//! create, cancel and progress requests to the member's watch hub, and turns
//! the hub's notices into etcd's `WatchResponse`s, split into fragments when
//! the watcher asked for them and a response outgrows
//! [`ApiLimits::request_bytes_max`] (as etcd splits at its
//! `--max-request-bytes`). It owns no watcher state: that is the hub's.
//!
//! The stream ends cleanly when the client ends its side, and when the
//! member shuts down (the hub closes every stream).

use std::sync::Arc;

use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::api::convert::key_value;
use crate::api::errors::backend_error;
use crate::api::header::header;
use crate::api::ApiLimits;
use crate::backend::{Backend, BackendError, RequestError};
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::watch_create_request::FilterType;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::proto::mvccpb;
use crate::watch::{CreateRequest, EventFilter, Notice, WatchStream, NO_WATCH_ID};

/// Responses a stream holds for a client that reads slowly; beyond this the
/// hub keeps notices pending (and slow watchers fall back to history).
const RESPONSES_QUEUED_MAX: usize = 16;

/// The Watch service over one backend.
#[derive(Debug)]
pub struct WatchService<B> {
    backend: Arc<B>,
    limits: ApiLimits,
}

impl<B: Backend> WatchService<B> {
    pub fn new(backend: Arc<B>, limits: ApiLimits) -> Self {
        Self { backend, limits }
    }
}

#[tonic::async_trait]
impl<B: Backend> Watch for WatchService<B> {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (stream, notices) = self
            .backend
            .watch_hub()
            .open_stream()
            .await
            .map_err(|_| backend_error(BackendError::Request(RequestError::Stopped)))?;
        let (responses, outbound) = mpsc::channel(RESPONSES_QUEUED_MAX);
        let session = Session {
            backend: Arc::clone(&self.backend),
            fragment_bytes_max: self.limits.request_bytes_max,
            stream,
            responses,
        };
        tokio::spawn(session.run(request.into_inner(), notices));
        Ok(Response::new(ReceiverStream::new(outbound)))
    }
}

/// One stream's task.
struct Session<B> {
    backend: Arc<B>,
    fragment_bytes_max: usize,
    stream: WatchStream,
    responses: mpsc::Sender<Result<pb::WatchResponse, Status>>,
}

impl<B: Backend> Session<B> {
    /// Runs until the client ends its side or goes away, or the hub stops.
    async fn run(
        self,
        mut inbound: Streaming<pb::WatchRequest>,
        mut notices: mpsc::Receiver<Notice>,
    ) {
        loop {
            tokio::select! {
                request = inbound.message() => match request {
                    Ok(Some(request)) => {
                        if self.handle(request).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(status) => {
                        let _ = self.responses.send(Err(status)).await;
                        return;
                    }
                },
                notice = notices.recv() => {
                    let Some(notice) = notice else { return };
                    for response in self.responses_for(notice) {
                        if self.responses.send(Ok(response)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }

    async fn handle(&self, request: pb::WatchRequest) -> Result<(), crate::watch::HubStopped> {
        use pb::watch_request::RequestUnion;
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                self.stream.create(create_request(create)).await
            }
            Some(RequestUnion::CancelRequest(cancel)) => self.stream.cancel(cancel.watch_id).await,
            Some(RequestUnion::ProgressRequest(_)) => self.stream.request_progress().await,
            // etcd ignores a request without a body.
            None => Ok(()),
        }
    }

    fn responses_for(&self, notice: Notice) -> Vec<pb::WatchResponse> {
        let status = self.backend.status();
        let (response, fragment) = watch_response(notice, |revision| header(&status, revision));
        if fragment {
            fragments(response, self.fragment_bytes_max)
        } else {
            vec![response]
        }
    }
}

/// A create request as the hub takes it; filter values outside etcd's enum
/// are ignored, as etcd ignores them.
pub fn create_request(request: pb::WatchCreateRequest) -> CreateRequest {
    let mut filter = EventFilter::default();
    for value in &request.filters {
        match FilterType::try_from(*value) {
            Ok(FilterType::Noput) => filter.no_put = true,
            Ok(FilterType::Nodelete) => filter.no_delete = true,
            Err(_) => {}
        }
    }
    CreateRequest {
        key: request.key,
        range_end: request.range_end,
        start_revision: request.start_revision,
        watch_id: request.watch_id,
        filter,
        prev_kv: request.prev_kv,
        progress_notify: request.progress_notify,
        fragment: request.fragment,
    }
}

/// etcd's response for a notice, and whether it may be fragmented.
pub fn watch_response(
    notice: Notice,
    header: impl Fn(i64) -> Option<pb::ResponseHeader>,
) -> (pb::WatchResponse, bool) {
    match notice {
        Notice::Created { watch_id, revision } => (
            pb::WatchResponse {
                header: header(revision),
                watch_id,
                created: true,
                ..pb::WatchResponse::default()
            },
            false,
        ),
        Notice::Refused { revision, reason } => (
            pb::WatchResponse {
                header: header(revision),
                watch_id: NO_WATCH_ID,
                created: true,
                canceled: true,
                cancel_reason: reason,
                ..pb::WatchResponse::default()
            },
            false,
        ),
        Notice::Events {
            watch_id,
            revision,
            events,
            fragment,
        } => (
            pb::WatchResponse {
                header: header(revision),
                watch_id,
                events: events.into_iter().map(event).collect(),
                ..pb::WatchResponse::default()
            },
            fragment,
        ),
        Notice::Progress { watch_id, revision } => (
            pb::WatchResponse {
                header: header(revision),
                watch_id,
                ..pb::WatchResponse::default()
            },
            false,
        ),
        Notice::Canceled {
            watch_id,
            revision,
            compact_revision,
            reason,
        } => (
            pb::WatchResponse {
                header: header(revision),
                watch_id,
                canceled: true,
                compact_revision,
                cancel_reason: reason,
                ..pb::WatchResponse::default()
            },
            false,
        ),
    }
}

fn event(event: mvcc::Event) -> mvccpb::Event {
    let kind = match event.kind {
        mvcc::EventKind::Put => mvccpb::event::EventType::Put,
        mvcc::EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind.into(),
        kv: Some(key_value(event.kv)),
        prev_kv: event.prev_kv.map(key_value),
    }
}

/// etcd's fragmenting: a response of `bytes_max` or more with two or more
/// events goes out as several, each as large as fits below `bytes_max` (but
/// never empty), all but the last marked `fragment`.
pub fn fragments(mut response: pb::WatchResponse, bytes_max: usize) -> Vec<pb::WatchResponse> {
    if response.encoded_len() < bytes_max || response.events.len() < 2 {
        return vec![response];
    }
    let events = std::mem::take(&mut response.events);
    response.fragment = true;
    let empty_bytes = response.encoded_len();
    let mut pieces = Vec::new();
    let mut current = response.clone();
    let mut current_bytes = empty_bytes;
    for event in events {
        let event_bytes =
            1 + prost::length_delimiter_len(event.encoded_len()) + event.encoded_len();
        if !current.events.is_empty() && current_bytes + event_bytes >= bytes_max {
            pieces.push(std::mem::replace(&mut current, response.clone()));
            current_bytes = empty_bytes;
        }
        current_bytes += event_bytes;
        current.events.push(event);
    }
    current.fragment = false;
    pieces.push(current);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value_bytes: usize) -> mvccpb::Event {
        mvccpb::Event {
            r#type: mvccpb::event::EventType::Put.into(),
            kv: Some(mvccpb::KeyValue {
                key: key.as_bytes().to_vec(),
                value: vec![b'v'; value_bytes],
                mod_revision: 5,
                ..mvccpb::KeyValue::default()
            }),
            prev_kv: None,
        }
    }

    fn response(events: Vec<mvccpb::Event>) -> pb::WatchResponse {
        pb::WatchResponse {
            header: Some(pb::ResponseHeader {
                revision: 5,
                ..pb::ResponseHeader::default()
            }),
            watch_id: 3,
            events,
            ..pb::WatchResponse::default()
        }
    }

    #[test]
    fn a_small_response_or_a_single_event_is_not_fragmented() {
        let small = response(vec![put("a", 10), put("b", 10)]);
        assert_eq!(fragments(small.clone(), 1000), [small]);
        let single = response(vec![put("a", 5000)]);
        assert_eq!(fragments(single.clone(), 1000), [single]);
    }

    #[test]
    fn a_large_response_splits_below_the_limit_and_reassembles() {
        let events: Vec<mvccpb::Event> = (0..20).map(|n| put(&format!("k{n}"), 300)).collect();
        let whole = response(events.clone());
        let bytes_max = 1000;
        let pieces = fragments(whole.clone(), bytes_max);
        assert!(pieces.len() > 1);
        for (position, piece) in pieces.iter().enumerate() {
            assert!(!piece.events.is_empty());
            assert!(
                piece.events.len() == 1 || piece.encoded_len() < bytes_max,
                "piece {position} is {} bytes",
                piece.encoded_len()
            );
            assert_eq!(piece.fragment, position + 1 < pieces.len());
            assert_eq!((piece.watch_id, &piece.header), (3, &whole.header));
        }
        let joined: Vec<mvccpb::Event> = pieces.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);
    }

    #[test]
    fn notices_map_to_etcds_responses() {
        let header = |revision| {
            Some(pb::ResponseHeader {
                revision,
                ..pb::ResponseHeader::default()
            })
        };
        let (refused, _) = watch_response(
            Notice::Refused {
                revision: 4,
                reason: "mvcc: watcher range is empty".to_owned(),
            },
            header,
        );
        assert_eq!(
            (refused.watch_id, refused.created, refused.canceled),
            (-1, true, true)
        );
        assert_eq!(refused.cancel_reason, "mvcc: watcher range is empty");
        let (compacted, fragment) = watch_response(
            Notice::Canceled {
                watch_id: 2,
                revision: 0,
                compact_revision: 9,
                reason: String::new(),
            },
            header,
        );
        assert!(!fragment && compacted.canceled && !compacted.created);
        assert_eq!((compacted.watch_id, compacted.compact_revision), (2, 9));
        let (events, fragment) = watch_response(
            Notice::Events {
                watch_id: 1,
                revision: 7,
                events: vec![mvcc::Event {
                    kind: mvcc::EventKind::Delete,
                    kv: mvcc::KeyValue {
                        key: b"k".to_vec(),
                        mod_revision: 7,
                        ..mvcc::KeyValue::default()
                    },
                    prev_kv: None,
                }],
                fragment: true,
            },
            header,
        );
        assert!(fragment);
        assert_eq!(events.header.unwrap().revision, 7);
        assert_eq!(
            events.events[0].r#type,
            mvccpb::event::EventType::Delete as i32
        );
    }

    #[test]
    fn filters_map_and_unknown_ones_are_ignored() {
        let request = pb::WatchCreateRequest {
            filters: vec![FilterType::Nodelete as i32, 7],
            ..pb::WatchCreateRequest::default()
        };
        let create = create_request(request);
        assert_eq!(
            create.filter,
            EventFilter {
                no_put: false,
                no_delete: true
            }
        );
    }
}
