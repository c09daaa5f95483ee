//! etcd's KV service: Range, Put, DeleteRange, Txn and Compact.
//!
//! Each call checks what etcd checks before the log (enum values, empty keys,
//! the transaction budget and duplicate keys, then the request size), then
//! hands the request to [`kv_requests`], which either proposes the write and
//! answers with what the state machine applied, or serves the read from the
//! local store: after the read barrier for a linearizable read, straight away
//! for a serializable one. A transaction with only ranges is a read, as in
//! etcd. This module only decodes, checks and encodes; it must never change
//! the store except through [`kv_requests`].
//! A put naming a lease is checked when applied, as in etcd: the state
//! machine refuses a lease that is not granted with "requested lease not
//! found" (in a transaction, only on the branch it takes).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::errors::{backend_error, read_error, request_error};
use crate::api::header::header;
use crate::api::kv_requests::{self, KvError};
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
}

fn refused(error: mvcc::RequestError) -> Status {
    request_error(&error).to_status()
}

/// etcd's error for a request the KV path could not serve.
fn kv_status(error: KvError) -> Status {
    match error {
        KvError::Backend(error) => backend_error(error),
        KvError::Refused(error) => refused(error),
        KvError::Read(error) => read_error(error),
        KvError::Mismatched { .. } => Status::internal(format!("raftkv: {error}")),
    }
}

#[tonic::async_trait]
impl<B: Backend> Kv for KvService<B> {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let (range, serializable) = convert::range_request(request.into_inner())?;
        range.validate().map_err(refused)?;
        let answered = kv_requests::range(&*self.backend, range, serializable)
            .await
            .map_err(kv_status)?;
        let header = self.header(answered.header_revision);
        Ok(Response::new(convert::range_response(
            answered.response,
            header,
        )))
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
        let answered = kv_requests::put(&*self.backend, put)
            .await
            .map_err(kv_status)?;
        let header = self.header(answered.header_revision);
        Ok(Response::new(convert::put_response(
            answered.response,
            header,
        )))
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
        let answered = kv_requests::delete_range(&*self.backend, delete)
            .await
            .map_err(kv_status)?;
        let header = self.header(answered.header_revision);
        Ok(Response::new(convert::delete_range_response(
            answered.response,
            header,
        )))
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
        if !txn.is_read_only() {
            size?;
        }
        let answered = kv_requests::txn(&*self.backend, txn, serializable)
            .await
            .map_err(kv_status)?;
        Ok(Response::new(convert::txn_response(
            answered.response,
            self.header(answered.header_revision),
            answered.begin_revision,
        )))
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let request = request.into_inner();
        self.limits.check_request_size(&request)?;
        let compaction = convert::compaction_request(request);
        let answered = kv_requests::compact(&*self.backend, compaction)
            .await
            .map_err(kv_status)?;
        Ok(Response::new(pb::CompactionResponse {
            header: self.header(answered.header_revision),
        }))
    }
}
