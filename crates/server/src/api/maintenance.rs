//! etcd's Maintenance service: Status, Hash, HashKV, Alarm and Defragment.
//!
//! The one alarm raftkv raises is NOSPACE for this member while its disk is
//! full (its log had no room for a write). Unlike etcd's quota alarm, which
//! an operator must disarm after compacting, it is raised and cleared by the
//! member itself: the condition is local and observed (the member retries
//! its write and knows the moment it succeeds), so nothing is left for an
//! operator to confirm. Deactivate therefore changes nothing, and clients
//! cannot activate an alarm. Alarms are this member's own: they are not
//! replicated through the log as etcd's are. Defragment has nothing to do because the
//! store reuses freed pages itself, so it succeeds at once. Snapshot and
//! MoveLeader are not served (`Unimplemented`): the backend exposes neither a
//! snapshot stream nor leadership transfer. This module reads the store and
//! the node's status only; it must never write.

use std::sync::Arc;

use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use crate::api::errors::{read_error, store_error};
use crate::api::header::{current_header, header};
use crate::backend::Backend;
use crate::etcd_error::EtcdError;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::maintenance_server::Maintenance;
use crate::proto::etcdserverpb::AlarmType;

/// The version Status reports: the etcd cluster version whose API raftkv
/// speaks (etcd reports its cluster version as `major.minor.0`), so clients
/// that gate features on it treat raftkv as etcd 3.4.
pub const ETCD_CLUSTER_VERSION: &str = "3.4.0";

/// The Maintenance service over one backend.
#[derive(Debug)]
pub struct MaintenanceService<B> {
    backend: Arc<B>,
}

impl<B: Backend> MaintenanceService<B> {
    pub fn new(backend: Arc<B>) -> Self {
        Self { backend }
    }

    fn current_header(&self) -> Option<pb::ResponseHeader> {
        current_header(&*self.backend)
    }

    /// The alarms in force of type `wanted` (every type for NONE, as etcd's
    /// GET): NOSPACE for this member while its disk is full.
    fn active_alarms(&self, wanted: i32) -> Vec<pb::AlarmMember> {
        let status = self.backend.status();
        let no_space = AlarmType::Nospace as i32;
        let wanted_here = wanted == AlarmType::None as i32 || wanted == no_space;
        if status.disk_full.is_none() || !wanted_here {
            return Vec::new();
        }
        vec![pb::AlarmMember {
            member_id: status.member_id,
            alarm: no_space,
        }]
    }
}

#[tonic::async_trait]
impl<B: Backend> Maintenance for MaintenanceService<B> {
    type SnapshotStream = BoxStream<pb::SnapshotResponse>;

    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        let request = request.into_inner();
        match AlarmAction::try_from(request.action) {
            Ok(AlarmAction::Get) => Ok(Response::new(pb::AlarmResponse {
                header: self.current_header(),
                alarms: self.active_alarms(request.alarm),
            })),
            Ok(AlarmAction::Deactivate) => Ok(Response::new(pb::AlarmResponse {
                header: self.current_header(),
                alarms: Vec::new(),
            })),
            Ok(AlarmAction::Activate) => Err(Status::unimplemented(
                "raftkv: alarms cannot be raised by clients; raftkv raises NOSPACE itself while its disk is full",
            )),
            Err(_) => Err(Status::invalid_argument(format!(
                "raftkv: unknown alarm action {}; use GET, ACTIVATE or DEACTIVATE",
                request.action
            ))),
        }
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let status = self.backend.status();
        let store = self.backend.store();
        let db_size =
            i64::try_from(store.db_size_bytes().map_err(|e| store_error(&e))?).unwrap_or(i64::MAX);
        let mut errors = Vec::new();
        if status.leader.is_none() {
            errors.push(EtcdError::NoLeader.message().to_owned());
        }
        if status.disk_full.is_some() {
            errors.push(EtcdError::NoSpace.message().to_owned());
        }
        Ok(Response::new(pb::StatusResponse {
            header: header(&status, store.current_revision()),
            version: ETCD_CLUSTER_VERSION.to_owned(),
            db_size,
            // redb reports no free-page count, so the whole file counts as in use.
            db_size_in_use: db_size,
            leader: status.leader.unwrap_or(0),
            raft_index: status.raft_index,
            raft_term: status.raft_term,
            raft_applied_index: status.raft_applied_index,
            errors,
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        _: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        Ok(Response::new(pb::DefragmentResponse {
            header: self.current_header(),
        }))
    }

    async fn hash(
        &self,
        _: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        let store = self.backend.store();
        let revision = store.current_revision();
        let hash = store.hash().map_err(|e| store_error(&e))?;
        Ok(Response::new(pb::HashResponse {
            header: header(&self.backend.status(), revision),
            hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let store = self.backend.store();
        let revision_before = store.current_revision();
        let hash_kv = store
            .hash_kv(request.into_inner().revision)
            .map_err(read_error)?;
        // The header names the store's revision, as etcd's does; a write that
        // landed during the hash is reflected when the hash covered it.
        let revision = revision_before.max(hash_kv.hash_revision);
        Ok(Response::new(pb::HashKvResponse {
            header: header(&self.backend.status(), revision),
            hash: hash_kv.hash,
            compact_revision: hash_kv.compact_revision,
        }))
    }

    async fn snapshot(
        &self,
        _: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(Status::unimplemented(
            "raftkv: snapshots are not served over the Maintenance service",
        ))
    }

    async fn move_leader(
        &self,
        _: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(Status::unimplemented(
            "raftkv: leadership transfer is not served over the Maintenance service",
        ))
    }
}
