//! etcd's KV service: Range, Put, DeleteRange, Txn and Compact.
//!
//! Each call checks what etcd checks before the log (enum values, empty keys,
//! the transaction budget and duplicate keys, then the request size), then
//! either proposes the write and answers with what the state machine applied,
//! or serves the read from the local store: after the read barrier for a
//! linearizable read, straight away for a serializable one. A transaction with
//! only ranges is a read, as in etcd. This module must never change the store
//! except through [`Backend::propose`].
//! A put naming a lease is checked when applied, as in etcd: the state
//! machine refuses a lease that is not granted with "requested lease not
//! found" (in a transaction, only on the branch it takes).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::errors::{backend_error, propose, read_error, request_error};
use crate::api::header::header;
use crate::api::{convert, ApiLimits};
use crate::backend::Backend;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::kv_server::Kv;

/// The KV service over one backend.
#[derive(Debug)]
pub struct KvService<B> {
    backend: Arc<B>,
    limits: ApiLimits,
}

impl<B: Backend> KvService<B> {
    pub fn new(backend: Arc<B>, limits: ApiLimits) -> Self {
        Self { backend, limits }
    }

    fn header(&self, revision: i64) -> Option<pb::ResponseHeader> {
        header(&self.backend.status(), revision)
    }

    /// Waits for the read barrier unless the client accepts a serializable read.
    async fn read_barrier(&self, serializable: bool) -> Result<(), Status> {
        if serializable {
            return Ok(());
        }
        self.backend.read_barrier().await.map_err(backend_error)
    }

    /// Proposes a checked transaction; its answer, the revision after it and
    /// the revision before it (one less when it changed anything).
    async fn propose_txn(
        &self,
        txn: mvcc::TxnRequest,
    ) -> Result<(mvcc::TxnResponse, i64, i64), Status> {
        let applied = self
            .backend
            .propose(mvcc::Command::Txn(txn))
            .await
            .map_err(backend_error)?;
        let begin_revision = applied.revision - i64::from(!applied.events.is_empty());
        debug_assert!(begin_revision >= 1, "revisions start at 1: {applied:?}");
        match applied.result {
            Ok(mvcc::Response::Txn(response)) => Ok((response, applied.revision, begin_revision)),
            Ok(other) => Err(mismatched("txn", &other)),
            Err(refused) => Err(request_error(&refused).to_status()),
        }
    }
}

fn refused(error: mvcc::RequestError) -> Status {
    request_error(&error).to_status()
}

/// The state machine answered a command with the answer to another kind; a
/// bug in the backend, reported rather than hidden.
fn mismatched(expected: &str, response: &mvcc::Response) -> Status {
    Status::internal(format!(
        "raftkv: the backend answered a {expected} with {response:?}"
    ))
}

#[tonic::async_trait]
impl<B: Backend> Kv for KvService<B> {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let (range, serializable) = convert::range_request(request.into_inner())?;
        range.validate().map_err(refused)?;
        self.read_barrier(serializable).await?;
        let response = self.backend.store().range(&range).map_err(read_error)?;
        let header = self.header(response.revision);
        Ok(Response::new(convert::range_response(response, header)))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let request = request.into_inner();
        let size = self.limits.check_request_size(&request);
        let put = convert::put_request(request);
        put.validate().map_err(refused)?;
        size?;
        match propose(&*self.backend, mvcc::Command::Put(put)).await? {
            (mvcc::Response::Put(response), revision) => Ok(Response::new(convert::put_response(
                response,
                self.header(revision),
            ))),
            (other, _) => Err(mismatched("put", &other)),
        }
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let request = request.into_inner();
        let size = self.limits.check_request_size(&request);
        let delete = convert::delete_range_request(request);
        delete.validate().map_err(refused)?;
        size?;
        match propose(&*self.backend, mvcc::Command::DeleteRange(delete)).await? {
            (mvcc::Response::DeleteRange(response), revision) => Ok(Response::new(
                convert::delete_range_response(response, self.header(revision)),
            )),
            (other, _) => Err(mismatched("delete", &other)),
        }
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let request = request.into_inner();
        let size = self.limits.check_request_size(&request);
        let (txn, serializable) = convert::txn_request(request)?;
        txn.check_operation_limit(self.limits.txn_ops_max)
            .map_err(refused)?;
        txn.validate().map_err(refused)?;
        if txn.is_read_only() {
            self.read_barrier(serializable).await?;
            let store = self.backend.store();
            let revision_before = store.current_revision();
            let response = store.read_only_txn(&txn).map_err(read_error)?;
            let revision = read_revision(&response).unwrap_or(revision_before);
            debug_assert!(revision >= revision_before);
            return Ok(Response::new(convert::txn_response(
                response,
                self.header(revision),
                revision,
            )));
        }
        size?;
        let (response, revision, begin_revision) = self.propose_txn(txn).await?;
        Ok(Response::new(convert::txn_response(
            response,
            self.header(revision),
            begin_revision,
        )))
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let request = request.into_inner();
        self.limits.check_request_size(&request)?;
        let compaction = convert::compaction_request(request);
        match propose(&*self.backend, mvcc::Command::Compact(compaction)).await? {
            (mvcc::Response::Compact(_), revision) => Ok(Response::new(pb::CompactionResponse {
                header: self.header(revision),
            })),
            (other, _) => Err(mismatched("compaction", &other)),
        }
    }
}

/// The revision a read-only transaction's ranges were served at, if it had any.
fn read_revision(response: &mvcc::TxnResponse) -> Option<i64> {
    response.responses.iter().find_map(|op| match op {
        mvcc::ResponseOp::Range(range) => Some(range.revision),
        _ => None,
    })
}
