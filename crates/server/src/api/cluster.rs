//! etcd's Cluster service: MemberList from the backend's replicated member
//! list; MemberAdd, MemberPromote and MemberRemove checked against that list
//! with etcd's errors, then replicated as configuration changes through the
//! backend, answered once applied on this member with the new list.
//!
//! Only the leader can propose a change, so a follower passes the request
//! on to it ([`crate::to_leader`]), as etcd does: `etcdctl member add`
//! works against any member. The follower answers once the change shows in
//! its own list, so a MemberList that follows on the same member sees it.
//!
//! MemberUpdate answers `Unimplemented`: changing a member's peer URLs is
//! not a configuration change the core offers, and a refusal that is
//! permanent must not look retryable ("not capable" is `Unavailable`).
//! This module decides only whether a request is well formed and fits the
//! list it sees; the core decides whether the change is made.

use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::{ConfChange, ConfChangeKind, NodeId, RaftError};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::api::errors::backend_error;
use crate::api::header::header;
use crate::backend::{Backend, BackendError, Member, MembershipChange, RequestError};
use crate::config::Url;
use crate::etcd_error::EtcdError;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::cluster_client::ClusterClient;
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::to_leader::{forwarded_request, is_forwarded, on_leader, LeaderChannels, Local};

/// How often a follower looks at its own list for a change the leader made.
const LOCAL_LIST_POLL: Duration = Duration::from_millis(10);

/// What MemberUpdate is answered with.
pub const MEMBER_UPDATE_UNSUPPORTED: &str =
    "raftkv: changing a member's peer URLs is not supported; remove the member and add it anew";

/// The Cluster service over one backend.
#[derive(Debug)]
pub struct ClusterService<B> {
    backend: Arc<B>,
    /// How long a follower keeps trying to have the leader make a change.
    request_timeout: Duration,
    leaders: LeaderChannels,
}

impl<B: Backend> ClusterService<B> {
    pub fn new(backend: Arc<B>, request_timeout: Duration) -> Self {
        Self {
            backend,
            request_timeout,
            leaders: LeaderChannels::default(),
        }
    }

    fn leader(&self, url: &str) -> Result<ClusterClient<Channel>, Status> {
        Ok(ClusterClient::new(self.leaders.channel(url)?))
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

    /// Replicates `change` and waits until it is applied here; `NotLeader`
    /// when only the leader can propose it.
    async fn change(
        &self,
        kind: ConfChangeKind,
        node_id: NodeId,
        peer_urls: Vec<String>,
    ) -> Result<Local<()>, Status> {
        let change = MembershipChange {
            change: ConfChange { kind, node_id },
            name: String::new(),
            peer_urls,
        };
        match self.backend.change_membership(change).await {
            Ok(()) => Ok(Local::Answered(())),
            Err(BackendError::Request(RequestError::Reconfiguration(RaftError::NotLeader {
                ..
            }))) => Ok(Local::NotLeader),
            Err(error) => Err(backend_error(error)),
        }
    }

    /// Has `here` make a change on this member when it leads, or else the
    /// leader through `there`. A change the leader made is answered once
    /// this member's own list `shows` it (or the request timeout passed),
    /// with that list under this member's header.
    async fn on_leader<T, Here, HereFuture, There, ThereFuture>(
        &self,
        forwarded: bool,
        here: Here,
        there: There,
        shows: impl Fn(&T, &[Member]) -> bool,
    ) -> Result<T, Status>
    where
        T: ChangeAnswer,
        Here: Fn() -> HereFuture,
        HereFuture: std::future::Future<Output = Result<Local<T>, Status>>,
        There: Fn(String) -> ThereFuture,
        ThereFuture: std::future::Future<Output = Result<T, Status>>,
    {
        let mut answer =
            on_leader(&*self.backend, forwarded, self.request_timeout, here, there).await?;
        let deadline = Instant::now() + self.request_timeout;
        while !shows(&answer, &self.backend.members()) && Instant::now() < deadline {
            tokio::time::sleep(LOCAL_LIST_POLL).await;
        }
        answer.set_answer_header(self.header(), self.members());
        Ok(answer)
    }

    /// Makes `change` (of a member already listed) here when this member
    /// leads, or else has the leader take `request` through `call`;
    /// answered as `response` makes it once this member's list `shows` it.
    async fn change_member<Req, T, Call, CallFuture>(
        &self,
        forwarded: bool,
        (kind, id): (ConfChangeKind, NodeId),
        request: Req,
        response: fn(Option<pb::ResponseHeader>, Vec<pb::Member>) -> T,
        call: Call,
        shows: impl Fn(&[Member]) -> bool,
    ) -> Result<Response<T>, Status>
    where
        Req: Copy,
        T: ChangeAnswer,
        Call: Fn(ClusterClient<Channel>, Request<Req>) -> CallFuture,
        CallFuture: std::future::Future<Output = Result<Response<T>, Status>>,
    {
        self.on_leader(
            forwarded,
            || async {
                let change = self.change(kind, id, Vec::new()).await?;
                Ok(self.answer(change, response))
            },
            |url| {
                let leader = self.leader(&url);
                let request = forwarded_request(request);
                let call = &call;
                async move { Ok(call(leader?, request).await?.into_inner()) }
            },
            |_, members| shows(members),
        )
        .await
        .map(Response::new)
    }

    /// Adds a member with `peer_urls` under a fresh id, when this member
    /// leads.
    async fn add_here(
        &self,
        peer_urls: &[Url],
        is_learner: bool,
    ) -> Result<Local<pb::MemberAddResponse>, Status> {
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
        let id = self.backend.new_member_id(peer_urls, &member_ids);
        let kind = if is_learner {
            ConfChangeKind::AddLearner
        } else {
            ConfChangeKind::AddVoter
        };
        let change = self.change(kind, id, peer_texts.clone()).await?;
        Ok(
            self.answer(change, |header, members| pb::MemberAddResponse {
                header,
                member: Some(pb::Member {
                    id,
                    name: String::new(),
                    peer_ur_ls: peer_texts,
                    client_ur_ls: Vec::new(),
                    is_learner,
                }),
                members,
            }),
        )
    }

    /// A change made here answered with this member's header and list.
    fn answer<T>(
        &self,
        change: Local<()>,
        response: impl FnOnce(Option<pb::ResponseHeader>, Vec<pb::Member>) -> T,
    ) -> Local<T> {
        match change {
            Local::Answered(()) => Local::Answered(response(self.header(), self.members())),
            Local::NotLeader => Local::NotLeader,
        }
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

/// The answers to membership changes: a header and the list after it.
trait ChangeAnswer {
    fn set_answer_header(&mut self, header: Option<pb::ResponseHeader>, members: Vec<pb::Member>);
}

macro_rules! change_answer {
    ($($response:ty),*) => {$(
        impl ChangeAnswer for $response {
            fn set_answer_header(
                &mut self,
                header: Option<pb::ResponseHeader>,
                members: Vec<pb::Member>,
            ) {
                self.header = header;
                self.members = members;
            }
        }
    )*};
}

change_answer!(
    pb::MemberAddResponse,
    pb::MemberRemoveResponse,
    pb::MemberPromoteResponse
);

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
        let forwarded = is_forwarded(&request);
        let request = request.into_inner();
        let peer_urls = parse_peer_urls(&request.peer_ur_ls)?;
        self.on_leader(
            forwarded,
            || self.add_here(&peer_urls, request.is_learner),
            |url| {
                let request = forwarded_request(request.clone());
                async move { Ok(self.leader(&url)?.member_add(request).await?.into_inner()) }
            },
            |answer, members| {
                let added = answer.member.as_ref().map(|member| member.id);
                members.iter().any(|member| Some(member.id) == added)
            },
        )
        .await
        .map(Response::new)
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let forwarded = is_forwarded(&request);
        let request = request.into_inner();
        self.existing(request.id)?;
        self.change_member(
            forwarded,
            (ConfChangeKind::RemoveMember, request.id),
            request,
            |header, members| pb::MemberRemoveResponse { header, members },
            |mut leader, request| async move { leader.member_remove(request).await },
            |members| members.iter().all(|member| member.id != request.id),
        )
        .await
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
        let forwarded = is_forwarded(&request);
        let request = request.into_inner();
        if !self.existing(request.id)?.is_learner {
            return Err(EtcdError::MemberNotLearner.to_status());
        }
        self.change_member(
            forwarded,
            (ConfChangeKind::PromoteLearner, request.id),
            request,
            |header, members| pb::MemberPromoteResponse { header, members },
            |mut leader, request| async move { leader.member_promote(request).await },
            |members| {
                members
                    .iter()
                    .any(|member| member.id == request.id && !member.is_learner)
            },
        )
        .await
    }
}
