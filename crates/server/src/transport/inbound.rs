//! Receiving: the `raftkvpb.Peer` service. Each member's stream delivers
//! batches; every message is decoded and handed to the node, or dropped when
//! the node's inbox is full. A stream from another cluster, or with bytes
//! that are not our messages, is refused with an error naming why. Also
//! answers a starting member's question about the cluster (`Members`).

use raft::Message;
use tonic::{Request, Response, Status, Streaming};

use super::{CLIENT_URLS_METADATA, CLUSTER_ID_METADATA, MEMBER_ID_METADATA};
use crate::backend::Backend;
use crate::node::NodeHandle;
use crate::proto::raftkvpb::{
    peer_server::Peer, MembersRequest, MembersResponse, MessageBatch, PeerMember,
    SendMessagesResponse,
};

/// The peer service of one member.
#[derive(Debug)]
pub struct PeerService {
    node: NodeHandle,
    cluster_id: u64,
}

impl PeerService {
    pub fn new(node: NodeHandle, cluster_id: u64) -> Self {
        Self { node, cluster_id }
    }

    fn check_cluster(&self, request: &Request<Streaming<MessageBatch>>) -> Result<(), Status> {
        let sender_cluster = request
            .metadata()
            .get(CLUSTER_ID_METADATA)
            .and_then(|value| value.to_str().ok())
            .and_then(|text| u64::from_str_radix(text, 16).ok());
        match sender_cluster {
            Some(id) if id == self.cluster_id => Ok(()),
            Some(id) => Err(Status::failed_precondition(format!(
                "peer belongs to cluster {id:x}, this member to cluster {:x}; check --initial-cluster and --initial-cluster-token",
                self.cluster_id
            ))),
            None => Err(Status::invalid_argument(format!(
                "peer stream lacks the `{CLUSTER_ID_METADATA}` metadata"
            ))),
        }
    }
}

impl PeerService {
    /// Records the client URLs the sender advertises, so `member list` on
    /// this member shows them (etcd members publish theirs through the log).
    fn learn_client_urls(&self, request: &Request<Streaming<MessageBatch>>) {
        let text = |key| {
            request
                .metadata()
                .get(key)
                .and_then(|value| value.to_str().ok())
        };
        let Some(member) = text(MEMBER_ID_METADATA).and_then(|id| u64::from_str_radix(id, 16).ok())
        else {
            return;
        };
        let urls: Vec<String> = text(CLIENT_URLS_METADATA)
            .unwrap_or_default()
            .split(',')
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        if !urls.is_empty() {
            self.node.learn_client_urls(member, urls);
        }
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn send_messages(
        &self,
        request: Request<Streaming<MessageBatch>>,
    ) -> Result<Response<SendMessagesResponse>, Status> {
        self.check_cluster(&request)?;
        self.learn_client_urls(&request);
        let local = self.node.member_id();
        let mut stream = request.into_inner();
        let mut batches_received = 0;
        while let Some(batch) = stream.message().await? {
            batches_received += 1;
            for message in batch.messages {
                let message = Message::try_from(message)
                    .map_err(|error| Status::invalid_argument(error.to_string()))?;
                if message.to != local {
                    return Err(Status::invalid_argument(format!(
                        "message for member {:x} arrived at member {local:x}",
                        message.to
                    )));
                }
                if !self.node.deliver(message) {
                    tracing::debug!("node inbox full; dropped a peer message");
                }
            }
        }
        Ok(Response::new(SendMessagesResponse { batches_received }))
    }

    async fn members(
        &self,
        _: Request<MembersRequest>,
    ) -> Result<Response<MembersResponse>, Status> {
        let members = self
            .node
            .members()
            .into_iter()
            .map(|member| PeerMember {
                id: member.id,
                name: member.name,
                peer_urls: member.peer_urls,
                client_urls: member.client_urls,
                is_learner: member.is_learner,
            })
            .collect();
        Ok(Response::new(MembersResponse {
            cluster_id: self.cluster_id,
            member_id: self.node.member_id(),
            members,
        }))
    }
}
