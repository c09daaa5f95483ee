//! Sending: one bounded queue and one task per peer. The task keeps a client
//! stream open to the peer, takes everything queued (up to a batch limit) and
//! writes it as one `MessageBatch`; when the stream breaks it reconnects with
//! exponential backoff, dropping what queued up meanwhile. The set of peers
//! follows the applied member list: a new member gets a queue and a task, a
//! removed member's queue is dropped, which ends its task and its stream.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use raft::{Message, NodeId};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Endpoint;

use super::{SenderIdentity, PEER_MESSAGE_BYTES_MAX};
use crate::backend::Member;
use crate::node::Outbox;
use crate::proto::raftkvpb::{peer_client::PeerClient, MessageBatch};

/// Messages queued for one peer; more are dropped.
pub const PEER_QUEUE_MESSAGES_MAX: usize = 4096;
/// Messages in one batch at most.
const BATCH_MESSAGES_MAX: usize = 1024;
/// Entry payload bytes in one batch at most (one message may exceed it alone).
const BATCH_BYTES_MAX: u64 = 4 << 20;
/// Batches handed to the stream and not yet written.
const STREAM_BATCHES_IN_FLIGHT_MAX: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A stream to a peer that vanished without closing is noticed this fast.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(3);
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(50);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The outbound side of the transport; the node's [`Outbox`].
#[derive(Debug)]
pub struct Transport {
    queues: RwLock<HashMap<NodeId, PeerQueue>>,
    identity: Arc<SenderIdentity>,
    /// Where sender tasks run; peers are added from the node thread.
    runtime: tokio::runtime::Handle,
    dropped_messages: AtomicU64,
}

/// One peer's queue and the URL its task streams to.
#[derive(Debug)]
struct PeerQueue {
    url: String,
    sender: mpsc::Sender<Message>,
}

impl Transport {
    /// Starts one sender task per peer on the current tokio runtime. `peers`
    /// maps each other member to its peer URLs (the first is used); every
    /// stream introduces this member as `identity`.
    pub fn start(identity: SenderIdentity, peers: &[(NodeId, Vec<String>)]) -> Arc<Transport> {
        let transport = Transport {
            queues: RwLock::new(HashMap::new()),
            identity: Arc::new(identity),
            runtime: tokio::runtime::Handle::current(),
            dropped_messages: AtomicU64::new(0),
        };
        transport.route_to(peers);
        Arc::new(transport)
    }

    /// Sends to exactly `peers` from now on: starts a task for each new peer
    /// (or one whose URL changed) and drops the queues of the others.
    fn route_to(&self, peers: &[(NodeId, Vec<String>)]) {
        let mut queues = self.queues.write().unwrap_or_else(PoisonError::into_inner);
        queues.retain(|peer, queue| {
            let kept = peers
                .iter()
                .any(|(id, urls)| id == peer && urls.first() == Some(&queue.url));
            if !kept {
                tracing::info!(
                    peer = format_args!("{peer:x}"),
                    "stopped sending to a member no longer in the cluster"
                );
            }
            kept
        });
        for (peer, urls) in peers {
            if *peer == self.identity.member_id || queues.contains_key(peer) {
                continue;
            }
            let Some(url) = urls.first() else {
                tracing::error!(
                    peer = format_args!("{peer:x}"),
                    "member has no peer URL; it will get no messages"
                );
                continue;
            };
            let (sender, queue) = mpsc::channel(PEER_QUEUE_MESSAGES_MAX);
            self.runtime
                .spawn(run_peer(*peer, url.clone(), self.identity.clone(), queue));
            queues.insert(
                *peer,
                PeerQueue {
                    url: url.clone(),
                    sender,
                },
            );
        }
    }

    /// The peers this transport sends to, by id.
    pub fn peers(&self) -> Vec<NodeId> {
        let queues = self.queues.read().unwrap_or_else(PoisonError::into_inner);
        let mut peers: Vec<NodeId> = queues.keys().copied().collect();
        peers.sort_unstable();
        peers
    }
}

impl Outbox for Transport {
    fn set_members(&self, members: &[Member]) {
        let peers: Vec<(NodeId, Vec<String>)> = members
            .iter()
            .map(|member| (member.id, member.peer_urls.clone()))
            .collect();
        self.route_to(&peers);
    }

    fn send(&self, message: Message) {
        let to = message.to;
        let sent = self
            .queues
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&to)
            .is_some_and(|queue| queue.sender.try_send(message).is_ok());
        if !sent {
            let dropped = self.dropped_messages.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    peer = format_args!("{to:x}"),
                    dropped,
                    "dropping messages for a peer that is unreachable or slow"
                );
            }
        }
    }
}

/// Takes `first` and whatever else is queued, within the batch limits.
fn collect_batch(first: Message, queue: &mut mpsc::Receiver<Message>) -> MessageBatch {
    let mut bytes = message_bytes(&first);
    let mut messages = vec![crate::proto::raftkvpb::Message::from(&first)];
    while messages.len() < BATCH_MESSAGES_MAX && bytes < BATCH_BYTES_MAX {
        let Ok(message) = queue.try_recv() else { break };
        bytes += message_bytes(&message);
        messages.push((&message).into());
    }
    MessageBatch { messages }
}

fn message_bytes(message: &Message) -> u64 {
    match &message.body {
        raft::MessageBody::AppendEntries { entries, .. } => {
            entries.iter().map(raft::Entry::size_bytes).sum()
        }
        raft::MessageBody::InstallSnapshot { snapshot } => snapshot.data.len() as u64,
        _ => 64,
    }
}

async fn run_peer(
    peer: NodeId,
    url: String,
    identity: Arc<SenderIdentity>,
    mut queue: mpsc::Receiver<Message>,
) {
    let mut backoff = RECONNECT_BACKOFF_MIN;
    loop {
        match stream_to_peer(&url, &identity, &mut queue).await {
            StreamEnd::TransportDropped => return,
            StreamEnd::Failed { reason, connected } => {
                if connected {
                    backoff = RECONNECT_BACKOFF_MIN;
                }
                tracing::debug!(peer = format_args!("{peer:x}"), %url, %reason, "peer stream ended");
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
        // What queued while the peer was away is stale; Raft resends what matters.
        loop {
            match queue.try_recv() {
                Ok(_) => continue,
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
    }
}

enum StreamEnd {
    TransportDropped,
    /// The stream could not be opened or broke; `connected` if it was open.
    Failed {
        reason: String,
        connected: bool,
    },
}

fn failed(reason: String, connected: bool) -> StreamEnd {
    StreamEnd::Failed { reason, connected }
}

/// Opens a stream to the peer and writes batches until it breaks.
async fn stream_to_peer(
    url: &str,
    identity: &SenderIdentity,
    queue: &mut mpsc::Receiver<Message>,
) -> StreamEnd {
    let endpoint = match Endpoint::from_shared(url.to_owned()) {
        Ok(endpoint) => endpoint
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
            .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
            .keep_alive_while_idle(true),
        Err(error) => return failed(format!("bad peer URL: {error}"), false),
    };
    let channel = match endpoint.connect().await {
        Ok(channel) => channel,
        Err(error) => return failed(format!("connect: {error}"), false),
    };
    let mut client = PeerClient::new(channel)
        .max_encoding_message_size(PEER_MESSAGE_BYTES_MAX)
        .max_decoding_message_size(PEER_MESSAGE_BYTES_MAX);
    let (batches, batches_out) = mpsc::channel(STREAM_BATCHES_IN_FLIGHT_MAX);
    let mut request = tonic::Request::new(ReceiverStream::new(batches_out));
    match identity.to_metadata() {
        Ok(metadata) => *request.metadata_mut() = metadata,
        Err(error) => return failed(error, false),
    }
    let call = client.send_messages(request);
    tokio::pin!(call);
    loop {
        tokio::select! {
            result = &mut call => {
                let reason = match result {
                    Ok(_) => "peer closed the stream".to_owned(),
                    Err(status) => status.to_string(),
                };
                return failed(reason, true);
            }
            message = queue.recv() => {
                let Some(first) = message else { return StreamEnd::TransportDropped };
                let batch = collect_batch(first, queue);
                if batches.send(batch).await.is_err() {
                    return failed("stream closed while writing".to_owned(), true);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::{Entry, EntryKind, MessageBody};

    fn append(entry_bytes: usize) -> Message {
        Message {
            from: 1,
            to: 2,
            term: 1,
            body: MessageBody::AppendEntries {
                prev_log_index: 0,
                prev_log_term: 0,
                entries: vec![Entry {
                    term: 1,
                    index: 1,
                    kind: EntryKind::Normal,
                    data: vec![0; entry_bytes],
                }],
                leader_commit: 0,
            },
        }
    }

    #[test]
    fn a_batch_takes_what_is_queued_within_its_limits() {
        let (sender, mut queue) = mpsc::channel(PEER_QUEUE_MESSAGES_MAX);
        for _ in 0..BATCH_MESSAGES_MAX + 10 {
            sender.try_send(append(8)).unwrap();
        }
        let first = queue.try_recv().unwrap();
        assert_eq!(
            collect_batch(first, &mut queue).messages.len(),
            BATCH_MESSAGES_MAX
        );
        let first = queue.try_recv().unwrap();
        assert_eq!(collect_batch(first, &mut queue).messages.len(), 10);

        let big = BATCH_BYTES_MAX as usize / 2;
        for _ in 0..3 {
            sender.try_send(append(big)).unwrap();
        }
        let first = queue.try_recv().unwrap();
        let batch = collect_batch(first, &mut queue);
        assert_eq!(batch.messages.len(), 2, "stops once at the byte limit");
        assert!(
            queue.try_recv().is_ok(),
            "the third waits for the next batch"
        );
        let first = append(BATCH_BYTES_MAX as usize * 2);
        assert_eq!(
            collect_batch(first, &mut queue).messages.len(),
            1,
            "one oversized message still goes"
        );
    }

    fn member(id: NodeId, url: &str) -> Member {
        Member {
            id,
            name: String::new(),
            peer_urls: vec![url.to_string()],
            client_urls: Vec::new(),
            is_learner: false,
        }
    }

    #[tokio::test]
    async fn peers_follow_the_member_list() {
        let identity = SenderIdentity {
            cluster_id: 7,
            member_id: 1,
            client_urls: Vec::new(),
        };
        let transport = Transport::start(identity, &[(2, vec!["http://127.0.0.1:1".into()])]);
        assert_eq!(transport.peers(), vec![2]);
        transport.set_members(&[
            member(1, "http://127.0.0.1:2"),
            member(2, "http://127.0.0.1:1"),
            member(3, "http://127.0.0.1:3"),
        ]);
        assert_eq!(
            transport.peers(),
            vec![2, 3],
            "never itself; new members added"
        );
        transport.set_members(&[
            member(1, "http://127.0.0.1:2"),
            member(3, "http://127.0.0.1:4"),
        ]);
        assert_eq!(transport.peers(), vec![3], "a removed member is dropped");
        assert_eq!(
            transport.queues.read().unwrap()[&3].url,
            "http://127.0.0.1:4",
            "a member whose URL changed is streamed to anew"
        );
        transport.send(append(1));
        assert_eq!(
            transport.dropped_messages.load(Ordering::Relaxed),
            1,
            "a message for a removed member is dropped"
        );
    }
}
