//! etcd's Lease service: LeaseGrant, LeaseRevoke, LeaseKeepAlive,
//! LeaseTimeToLive and LeaseLeases.
//!
//! Grants and revokes go through the log like any write: a grant that asks
//! for any id (0) gets one chosen here before it is proposed, and a TTL below
//! the lessor's minimum is raised to it, as etcd does. KeepAlive and
//! TimeToLive need the leader's deadlines and go through the [`Lessor`],
//! which forwards them from a follower. Answers follow etcd 3.4: a keepalive
//! of a missing or expired lease answers TTL 0 rather than an error, and
//! TimeToLive of a missing lease answers TTL -1. LeaseLeases lists the
//! leases of the local store by id (etcd orders them by expiry on its leader
//! and arbitrarily elsewhere). This module must never change the store
//! except through [`Backend::propose`].
//!
//! [`Backend::propose`]: crate::backend::KvBackend::propose

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::api::errors::{propose, request_error, store_error};
use crate::api::header::{current_header, header};
use crate::backend::Backend;
use crate::lease::Lessor;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::lease_server::Lease;
use crate::to_leader::is_forwarded;

/// Keepalive answers queued for a slow client at most; the stream waits
/// for room before renewing again.
const KEEPALIVE_ANSWERS_QUEUED_MAX: usize = 16;

/// The Lease service over one backend and its member's lessor.
#[derive(Debug)]
pub struct LeaseService<B> {
    backend: Arc<B>,
    lessor: Arc<Lessor>,
}

impl<B: Backend> LeaseService<B> {
    pub fn new(backend: Arc<B>, lessor: Arc<Lessor>) -> Self {
        Self { backend, lessor }
    }

    fn current_header(&self) -> Option<pb::ResponseHeader> {
        current_header(&*self.backend)
    }
}

fn mismatched(expected: &str, response: &mvcc::Response) -> Status {
    Status::internal(format!(
        "raftkv: the backend answered a {expected} with {response:?}"
    ))
}

#[tonic::async_trait]
impl<B: Backend> Lease for LeaseService<B> {
    type LeaseKeepAliveStream = BoxStream<pb::LeaseKeepAliveResponse>;

    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let request = request.into_inner();
        let grant = mvcc::LeaseGrantRequest {
            id: match request.id {
                0 => self.lessor.next_id(),
                id => id,
            },
            ttl_seconds: request.ttl.max(self.lessor.options().ttl_seconds_min),
        };
        let command = mvcc::Command::LeaseGrant(grant);
        command
            .validate()
            .map_err(|refused| request_error(&refused).to_status())?;
        match propose(&*self.backend, command).await? {
            (mvcc::Response::LeaseGrant(granted), revision) => {
                Ok(Response::new(pb::LeaseGrantResponse {
                    header: header(&self.backend.status(), revision),
                    id: granted.id,
                    ttl: granted.ttl_seconds,
                    error: String::new(),
                }))
            }
            (other, _) => Err(mismatched("lease grant", &other)),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let id = request.into_inner().id;
        let command = mvcc::Command::LeaseRevoke(mvcc::LeaseRevokeRequest { id });
        match propose(&*self.backend, command).await? {
            (mvcc::Response::LeaseRevoke(_), revision) => {
                Ok(Response::new(pb::LeaseRevokeResponse {
                    header: header(&self.backend.status(), revision),
                }))
            }
            (other, _) => Err(mismatched("lease revoke", &other)),
        }
    }

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let forwarded = is_forwarded(&request);
        let mut requests = request.into_inner();
        let (answers, answers_out) = mpsc::channel(KEEPALIVE_ANSWERS_QUEUED_MAX);
        let backend = Arc::clone(&self.backend);
        let lessor = Arc::clone(&self.lessor);
        tokio::spawn(async move {
            loop {
                let id = match requests.message().await {
                    Ok(Some(request)) => request.id,
                    Ok(None) => return,
                    Err(status) => {
                        tracing::debug!(%status, "keepalive stream from the client failed");
                        return;
                    }
                };
                let answer = lessor
                    .keep_alive(&*backend, id, forwarded)
                    .await
                    .map(|ttl| pb::LeaseKeepAliveResponse {
                        header: current_header(&*backend),
                        id,
                        ttl,
                    });
                let failed = answer.is_err();
                if answers.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(answers_out))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let forwarded = is_forwarded(&request);
        let request = request.into_inner();
        let found = self
            .lessor
            .time_to_live(&*self.backend, request.id, request.keys, forwarded)
            .await?;
        let response = match found {
            Some(lease) => pb::LeaseTimeToLiveResponse {
                header: self.current_header(),
                id: request.id,
                ttl: lease.remaining_seconds,
                granted_ttl: lease.granted_ttl_seconds,
                keys: lease.keys,
            },
            None => pb::LeaseTimeToLiveResponse {
                header: self.current_header(),
                id: request.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            },
        };
        Ok(Response::new(response))
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let leases = self
            .backend
            .store()
            .leases()
            .map_err(|error| store_error(&error))?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: self.current_header(),
            leases: leases
                .into_iter()
                .map(|lease| pb::LeaseStatus { id: lease.id })
                .collect(),
        }))
    }
}
