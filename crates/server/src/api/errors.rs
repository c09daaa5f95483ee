//! Which gRPC status answers which failure: the state machine's refusals and
//! the backend's failures become etcd's errors with etcd's exact codes and
//! messages; failures etcd has no error for become `Internal` with a message
//! naming what failed. Owns the mapping only; must never decide whether a
//! request fails.

use tonic::Status;

use crate::backend::{BackendError, RequestError};
use crate::etcd_error::EtcdError;

/// etcd's answer to a sort order or target outside the enums (sent by
/// [`crate::api::convert::ConvertError::InvalidSortOption`]).
pub const INVALID_SORT_OPTION: &str = "etcdserver: invalid sort option";

/// The etcd error for a request the state machine refuses.
pub fn request_error(error: &mvcc::RequestError) -> EtcdError {
    use mvcc::RequestError as Refused;
    match error {
        Refused::EmptyKey => EtcdError::EmptyKey,
        Refused::KeyNotFound => EtcdError::KeyNotFound,
        Refused::ValueProvided => EtcdError::ValueProvided,
        Refused::LeaseProvided => EtcdError::LeaseProvided,
        Refused::TooManyOps { .. } => EtcdError::TooManyOps,
        Refused::DuplicateKey { .. } => EtcdError::DuplicateKey,
        Refused::Compacted { .. } => EtcdError::Compacted,
        Refused::FutureRevision { .. } => EtcdError::FutureRev,
        Refused::LeaseNotFound { .. } => EtcdError::LeaseNotFound,
        Refused::LeaseExists { .. } => EtcdError::LeaseExist,
        Refused::LeaseTtlTooLarge { .. } => EtcdError::LeaseTtlTooLarge,
    }
}

/// The status for a backend that could not serve a write or a barrier.
pub fn backend_error(error: BackendError) -> Status {
    match error {
        BackendError::Request(RequestError::NoLeader) => EtcdError::NoLeader.to_status(),
        BackendError::Request(RequestError::LeaderChanged) => EtcdError::LeaderChanged.to_status(),
        BackendError::Request(RequestError::Timeout) => EtcdError::Timeout.to_status(),
        BackendError::Request(RequestError::Stopped) => EtcdError::Stopped.to_status(),
        BackendError::Request(RequestError::NoSpace) => EtcdError::NoSpace.to_status(),
        BackendError::Request(RequestError::Storage(message)) => {
            Status::internal(format!("raftkv: storage failure: {message}"))
        }
        BackendError::Request(RequestError::Reconfiguration(refusal)) => {
            reconfiguration_error(&refusal).to_status()
        }
        BackendError::Store(error) => store_error(&error),
    }
}

/// The etcd error for a configuration change the core refused. A change
/// while another is uncommitted (or before the new leader committed its
/// first entry) answers "not capable", which clients treat as retryable.
pub fn reconfiguration_error(refusal: &raft::RaftError) -> EtcdError {
    use raft::ConfChangeError as Misfit;
    use raft::RaftError as Refused;
    match refusal {
        Refused::NotLeader { leader: Some(_) } => EtcdError::NotLeader,
        Refused::NotLeader { leader: None } => EtcdError::NoLeader,
        Refused::InvalidConfChange(Misfit::AlreadyMember(_)) => EtcdError::MemberExist,
        Refused::InvalidConfChange(Misfit::NotLearner(_)) => EtcdError::MemberNotLearner,
        Refused::InvalidConfChange(Misfit::NotMember(_) | Misfit::ZeroId) => {
            EtcdError::MemberNotFound
        }
        Refused::InvalidConfChange(Misfit::LastVoter(_)) => EtcdError::MemberNotEnoughStarted,
        Refused::TransferInProgress { .. } => EtcdError::LeaderChanged,
        _ => EtcdError::NotCapable,
    }
}

/// Replicates a write: the state machine's answer and the revision after it,
/// or etcd's error when replication failed or the write was refused on apply.
pub async fn propose<B: crate::backend::Backend>(
    backend: &B,
    command: mvcc::Command,
) -> Result<(mvcc::Response, i64), Status> {
    let applied = backend.propose(command).await.map_err(backend_error)?;
    let response = applied
        .result
        .map_err(|refused| request_error(&refused).to_status())?;
    Ok((response, applied.revision))
}

/// The status for a failure of the local state machine itself.
pub fn store_error(error: &mvcc::StoreError) -> Status {
    Status::internal(format!("raftkv: {error}"))
}

/// The status for a failed local read (refused request or store failure).
pub fn read_error(error: mvcc::Error) -> Status {
    match error {
        mvcc::Error::Request(refused) => request_error(&refused).to_status(),
        mvcc::Error::Store(failure) => store_error(&failure),
        mvcc::Error::WritesOutsideTheLog => Status::internal(format!("raftkv: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn refusals_map_to_etcds_errors() {
        use mvcc::RequestError as Refused;
        let cases = [
            (Refused::EmptyKey, "etcdserver: key is not provided"),
            (Refused::KeyNotFound, "etcdserver: key not found"),
            (Refused::ValueProvided, "etcdserver: value is provided"),
            (Refused::LeaseProvided, "etcdserver: lease is provided"),
            (
                Refused::TooManyOps { ops_max: 1 },
                "etcdserver: too many operations in txn request",
            ),
            (
                Refused::DuplicateKey { key: b"k".to_vec() },
                "etcdserver: duplicate key given in txn request",
            ),
            (
                Refused::Compacted {
                    requested: 1,
                    compact_revision: 2,
                },
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                Refused::FutureRevision {
                    requested: 9,
                    current_revision: 2,
                },
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                Refused::LeaseNotFound { id: 7 },
                "etcdserver: requested lease not found",
            ),
            (
                Refused::LeaseExists { id: 7 },
                "etcdserver: lease already exists",
            ),
            (
                Refused::LeaseTtlTooLarge {
                    ttl_seconds: mvcc::LEASE_TTL_SECONDS_MAX + 1,
                },
                "etcdserver: too large lease TTL",
            ),
        ];
        for (refused, message) in cases {
            let error = request_error(&refused);
            assert_eq!(error.message(), message);
            // The state machine's own message is etcd's too: both must agree.
            assert_eq!(refused.to_string(), message);
            let class_code = match refused.status() {
                mvcc::StatusClass::InvalidArgument => Code::InvalidArgument,
                mvcc::StatusClass::OutOfRange => Code::OutOfRange,
                mvcc::StatusClass::NotFound => Code::NotFound,
                mvcc::StatusClass::FailedPrecondition => Code::FailedPrecondition,
            };
            assert_eq!(error.code(), class_code, "{refused:?}");
        }
    }

    #[test]
    fn core_refusals_of_a_configuration_change_map_to_etcds_errors() {
        use raft::{ConfChangeError, RaftError};
        let cases = [
            (
                RaftError::NotLeader { leader: Some(2) },
                EtcdError::NotLeader,
            ),
            (RaftError::NotLeader { leader: None }, EtcdError::NoLeader),
            (
                RaftError::ConfChangePending { index: 9 },
                EtcdError::NotCapable,
            ),
            (
                RaftError::ConfChangeBeforeTermCommitted { term: 4 },
                EtcdError::NotCapable,
            ),
            (
                RaftError::InvalidConfChange(ConfChangeError::AlreadyMember(3)),
                EtcdError::MemberExist,
            ),
            (
                RaftError::InvalidConfChange(ConfChangeError::NotLearner(3)),
                EtcdError::MemberNotLearner,
            ),
            (
                RaftError::InvalidConfChange(ConfChangeError::NotMember(3)),
                EtcdError::MemberNotFound,
            ),
            (
                RaftError::InvalidConfChange(ConfChangeError::LastVoter(3)),
                EtcdError::MemberNotEnoughStarted,
            ),
        ];
        for (refusal, expected) in cases {
            let status = backend_error(BackendError::Request(RequestError::Reconfiguration(
                refusal.clone(),
            )));
            assert_eq!(
                (status.code(), status.message()),
                (expected.code(), expected.message()),
                "{refusal}"
            );
        }
    }

    #[test]
    fn backend_failures_map_to_etcds_errors() {
        let cases = [
            (
                BackendError::Request(RequestError::NoLeader),
                Code::Unavailable,
                "etcdserver: no leader",
            ),
            (
                BackendError::Request(RequestError::LeaderChanged),
                Code::Unavailable,
                "etcdserver: leader changed",
            ),
            (
                BackendError::Request(RequestError::Timeout),
                Code::Unavailable,
                "etcdserver: request timed out",
            ),
            (
                BackendError::Request(RequestError::Stopped),
                Code::Unavailable,
                "etcdserver: server stopped",
            ),
        ];
        for (error, code, message) in cases {
            let status = backend_error(error);
            assert_eq!((status.code(), status.message()), (code, message));
        }
    }

    #[test]
    fn storage_failures_are_internal_and_say_what_failed() {
        let status = backend_error(BackendError::Request(RequestError::Storage(
            "disk full at wal/0001".into(),
        )));
        assert_eq!(status.code(), Code::Internal);
        assert!(
            status.message().contains("disk full at wal/0001"),
            "{status:?}"
        );
    }

    #[test]
    fn read_refusals_keep_etcds_codes() {
        let status = read_error(mvcc::Error::Request(mvcc::RequestError::FutureRevision {
            requested: 5,
            current_revision: 1,
        }));
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(
            status.message(),
            "etcdserver: mvcc: required revision is a future revision"
        );
    }
}
