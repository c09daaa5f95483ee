//! etcd's Cluster service: MemberList from the backend's view of the members.
//!
//! MemberAdd, MemberRemove, MemberUpdate and MemberPromote answer
//! `Unimplemented` rather than etcd's "not capable": the backend offers no
//! membership change, and "not capable" is `Unavailable`, which tells clients
//! the call may succeed if retried later, while this refusal is permanent.
//! This module must never change membership.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::header::header;
use crate::backend::{Backend, Member};
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::cluster_server::Cluster;

/// What a membership change is answered with.
pub const MEMBERSHIP_CHANGE_UNSUPPORTED: &str =
    "raftkv: membership changes are not supported; the members are fixed by --initial-cluster";

/// The Cluster service over one backend.
#[derive(Debug)]
pub struct ClusterService<B> {
    backend: Arc<B>,
}

impl<B: Backend> ClusterService<B> {
    pub fn new(backend: Arc<B>) -> Self {
        Self { backend }
    }
}

fn member(member: Member) -> pb::Member {
    pb::Member {
        id: member.id,
        name: member.name,
        peer_ur_ls: member.peer_urls,
        client_ur_ls: member.client_urls,
        is_learner: false,
    }
}

fn unsupported<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(MEMBERSHIP_CHANGE_UNSUPPORTED))
}

#[tonic::async_trait]
impl<B: Backend> Cluster for ClusterService<B> {
    async fn member_add(
        &self,
        _: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        unsupported()
    }

    async fn member_remove(
        &self,
        _: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        unsupported()
    }

    async fn member_update(
        &self,
        _: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        unsupported()
    }

    async fn member_list(
        &self,
        _: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let status = self.backend.status();
        Ok(Response::new(pb::MemberListResponse {
            header: header(&status, self.backend.store().current_revision()),
            members: self.backend.members().into_iter().map(member).collect(),
        }))
    }

    async fn member_promote(
        &self,
        _: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        unsupported()
    }
}
