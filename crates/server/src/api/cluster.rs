//! etcd's Cluster service: MemberList from the backend's replicated member
//! list; MemberAdd, MemberPromote and MemberRemove checked against that list
//! with etcd's errors, then replicated as configuration changes through the
//! backend, answered once applied on this member with the new list.
//!
//! MemberUpdate answers `Unimplemented`: changing a member's peer URLs is
//! not a configuration change the core offers, and a refusal that is
//! permanent must not look retryable ("not capable" is `Unavailable`).
//! This module decides only whether a request is well formed and fits the
//! list it sees; the core decides whether the change is made.

use std::sync::Arc;

use raft::{ConfChange, ConfChangeKind, NodeId};
use tonic::{Request, Response, Status};

use crate::api::errors::backend_error;
use crate::api::header::header;
use crate::backend::{Backend, Member, MembershipChange};
use crate::config::Url;
use crate::etcd_error::EtcdError;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::cluster_server::Cluster;

/// What MemberUpdate is answered with.
pub const MEMBER_UPDATE_UNSUPPORTED: &str =
    "raftkv: changing a member's peer URLs is not supported; remove the member and add it anew";

/// The Cluster service over one backend.
#[derive(Debug)]
pub struct ClusterService<B> {
    backend: Arc<B>,
}

impl<B: Backend> ClusterService<B> {
    pub fn new(backend: Arc<B>) -> Self {
        Self { backend }
    }

    fn header(&self) -> Option<pb::ResponseHeader> {
        header(
            &self.backend.status(),
            self.backend.store().current_revision(),
        )
    }

    fn members(&self) -> Vec<pb::Member> {
        self.backend.members().into_iter().map(member).collect()
    }

    /// Replicates `change` and waits until it is applied here.
    async fn change(
        &self,
        kind: ConfChangeKind,
        node_id: NodeId,
        name: String,
        peer_urls: Vec<String>,
    ) -> Result<(), Status> {
        self.backend
            .change_membership(MembershipChange {
                change: ConfChange { kind, node_id },
                name,
                peer_urls,
            })
            .await
            .map_err(backend_error)
    }

    /// The member `id`, or etcd's "member not found".
    fn existing(&self, id: NodeId) -> Result<Member, Status> {
        self.backend
            .members()
            .into_iter()
            .find(|member| member.id == id)
            .ok_or_else(|| EtcdError::MemberNotFound.to_status())
    }
}

fn member(member: Member) -> pb::Member {
    pb::Member {
        id: member.id,
        name: member.name,
        peer_ur_ls: member.peer_urls,
        client_ur_ls: member.client_urls,
        is_learner: member.is_learner,
    }
}

/// Parses a MemberAdd's peer URLs as etcd does: at least one, each a valid URL.
fn parse_peer_urls(texts: &[String]) -> Result<Vec<Url>, Status> {
    if texts.is_empty() {
        return Err(EtcdError::MemberBadUrls.to_status());
    }
    texts
        .iter()
        .map(|text| Url::parse(text).map_err(|_| EtcdError::MemberBadUrls.to_status()))
        .collect()
}

#[tonic::async_trait]
impl<B: Backend> Cluster for ClusterService<B> {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let request = request.into_inner();
        let peer_urls = parse_peer_urls(&request.peer_ur_ls)?;
        let peer_texts: Vec<String> = peer_urls.iter().map(Url::to_string).collect();
        let members = self.backend.members();
        let taken = members
            .iter()
            .flat_map(|member| &member.peer_urls)
            .any(|url| peer_texts.contains(url));
        if taken {
            return Err(EtcdError::PeerUrlExist.to_status());
        }
        // A fresh id, as etcd's: a member replaced on the same peer URLs must
        // not come back under the id it voted with before its data was wiped.
        let member_ids: Vec<NodeId> = members.iter().map(|member| member.id).collect();
        let id = self.backend.new_member_id(&peer_urls, &member_ids);
        let kind = if request.is_learner {
            ConfChangeKind::AddLearner
        } else {
            ConfChangeKind::AddVoter
        };
        self.change(kind, id, String::new(), peer_texts.clone())
            .await?;
        Ok(Response::new(pb::MemberAddResponse {
            header: self.header(),
            member: Some(pb::Member {
                id,
                name: String::new(),
                peer_ur_ls: peer_texts,
                client_ur_ls: Vec::new(),
                is_learner: request.is_learner,
            }),
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let id = request.into_inner().id;
        self.existing(id)?;
        self.change(ConfChangeKind::RemoveMember, id, String::new(), Vec::new())
            .await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_update(
        &self,
        _: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(Status::unimplemented(MEMBER_UPDATE_UNSUPPORTED))
    }

    async fn member_list(
        &self,
        _: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        Ok(Response::new(pb::MemberListResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let id = request.into_inner().id;
        if !self.existing(id)?.is_learner {
            return Err(EtcdError::MemberNotLearner.to_status());
        }
        self.change(
            ConfChangeKind::PromoteLearner,
            id,
            String::new(),
            Vec::new(),
        )
        .await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: self.header(),
            members: self.members(),
        }))
    }
}
