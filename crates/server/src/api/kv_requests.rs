//! The KV service's requests in the store's terms, over any [`KvBackend`]:
//! the one place that decides whether a read waits for the read barrier,
//! which store call serves it, and which revision its answer's header
//! reports. The gRPC service ([`super::kv::KvService`]) decodes, validates
//! and encodes around it; the deterministic simulator's clients call it over
//! their simulated members, so every seed runs this path as the server does.
//!
//! Owns: the barrier, the store call and the header revision. Must never:
//! decode or encode the wire format, validate requests (the callers check
//! them in etcd's order), or change the store except through
//! [`KvBackend::propose`].

use crate::backend::{BackendError, KvBackend};

/// Why a KV request failed, in the store's and the backend's terms; the gRPC
/// service maps it to etcd's error.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The backend could not see the write or the barrier through.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The state machine refused the write when it applied it.
    #[error(transparent)]
    Refused(mvcc::RequestError),
    /// The local read failed.
    #[error(transparent)]
    Read(mvcc::Error),
    /// The state machine answered a command with the answer to another
    /// kind: a bug in the backend, reported rather than hidden.
    #[error("the backend answered a {expected} with {response:?}")]
    Mismatched {
        expected: &'static str,
        response: Box<mvcc::Response>,
    },
}

/// An answer and the revision its header reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answered<T> {
    pub response: T,
    pub header_revision: i64,
}

/// A transaction's answer: its header's revision, and the revision its
/// operations' answers count from (the store's before the transaction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnAnswered {
    pub response: mvcc::TxnResponse,
    pub header_revision: i64,
    pub begin_revision: i64,
}

/// Deliberate bugs of the KV path (test builds with the `mutations`
/// feature), each switched on through [`KvBackend::kv_mutation`].
#[cfg(feature = "mutations")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// A linearizable Range reads at the store's revision taken before the
    /// read barrier: a member behind the leader answers with what it held
    /// before the barrier made it catch up (the stale-read bug's shape).
    RangeAtRevisionBeforeBarrier,
}

/// A Range: after the read barrier unless the client accepts a serializable
/// read, then from the local store at the request's revision (the newest
/// when it names none); the header reports the revision read at.
pub async fn range<B: KvBackend>(
    backend: &B,
    request: mvcc::RangeRequest,
    serializable: bool,
) -> Result<Answered<mvcc::RangeResponse>, KvError> {
    #[cfg(feature = "mutations")]
    let request = pinned_before_barrier(backend, request, serializable);
    read_barrier(backend, serializable).await?;
    let response = backend.store().range(&request).map_err(KvError::Read)?;
    Ok(Answered {
        header_revision: response.revision,
        response,
    })
}

/// A Put through the log; the header reports the revision after it.
pub async fn put<B: KvBackend>(
    backend: &B,
    request: mvcc::PutRequest,
) -> Result<Answered<mvcc::PutResponse>, KvError> {
    match propose(backend, mvcc::Command::Put(request)).await? {
        (mvcc::Response::Put(response), header_revision) => Ok(Answered {
            response,
            header_revision,
        }),
        (other, _) => Err(mismatched("put", other)),
    }
}

/// A DeleteRange through the log; the header reports the revision after it.
pub async fn delete_range<B: KvBackend>(
    backend: &B,
    request: mvcc::DeleteRangeRequest,
) -> Result<Answered<mvcc::DeleteRangeResponse>, KvError> {
    match propose(backend, mvcc::Command::DeleteRange(request)).await? {
        (mvcc::Response::DeleteRange(response), header_revision) => Ok(Answered {
            response,
            header_revision,
        }),
        (other, _) => Err(mismatched("delete", other)),
    }
}

/// A Compact through the log; the header reports the revision after it.
pub async fn compact<B: KvBackend>(
    backend: &B,
    request: mvcc::CompactionRequest,
) -> Result<Answered<()>, KvError> {
    match propose(backend, mvcc::Command::Compact(request)).await? {
        (mvcc::Response::Compact(_), header_revision) => Ok(Answered {
            response: (),
            header_revision,
        }),
        (other, _) => Err(mismatched("compaction", other)),
    }
}

/// A Txn. One with only ranges is a read, as in etcd: served from the local
/// store after the read barrier (unless serializable), its header at the
/// revision its ranges read. Any other goes through the log; its header
/// reports the revision after it.
pub async fn txn<B: KvBackend>(
    backend: &B,
    request: mvcc::TxnRequest,
    serializable: bool,
) -> Result<TxnAnswered, KvError> {
    if request.is_read_only() {
        read_barrier(backend, serializable).await?;
        let store = backend.store();
        let revision_before = store.current_revision();
        let response = store.read_only_txn(&request).map_err(KvError::Read)?;
        let revision = read_revision(&response).unwrap_or(revision_before);
        debug_assert!(revision >= revision_before);
        return Ok(TxnAnswered {
            response,
            header_revision: revision,
            begin_revision: revision,
        });
    }
    let applied = backend.propose(mvcc::Command::Txn(request)).await?;
    let begin_revision = applied.revision - i64::from(!applied.events.is_empty());
    debug_assert!(begin_revision >= 1, "revisions start at 1: {applied:?}");
    match applied.result {
        Ok(mvcc::Response::Txn(response)) => Ok(TxnAnswered {
            response,
            header_revision: applied.revision,
            begin_revision,
        }),
        Ok(other) => Err(mismatched("txn", other)),
        Err(refused) => Err(KvError::Refused(refused)),
    }
}

/// Waits for the read barrier unless the client accepts a serializable read.
async fn read_barrier<B: KvBackend>(backend: &B, serializable: bool) -> Result<(), KvError> {
    if serializable {
        return Ok(());
    }
    Ok(backend.read_barrier().await?)
}

/// Replicates a write: the state machine's answer and the revision after it.
async fn propose<B: KvBackend>(
    backend: &B,
    command: mvcc::Command,
) -> Result<(mvcc::Response, i64), KvError> {
    let applied = backend.propose(command).await?;
    let response = applied.result.map_err(KvError::Refused)?;
    Ok((response, applied.revision))
}

fn mismatched(expected: &'static str, response: mvcc::Response) -> KvError {
    KvError::Mismatched {
        expected,
        response: Box::new(response),
    }
}

/// The revision a read-only transaction's ranges were served at, if it had any.
fn read_revision(response: &mvcc::TxnResponse) -> Option<i64> {
    response.responses.iter().find_map(|op| match op {
        mvcc::ResponseOp::Range(range) => Some(range.revision),
        _ => None,
    })
}

/// With [`Mutation::RangeAtRevisionBeforeBarrier`] on, a linearizable
/// Range at the newest revision is pinned to the revision the store holds
/// before the barrier.
#[cfg(feature = "mutations")]
fn pinned_before_barrier<B: KvBackend>(
    backend: &B,
    request: mvcc::RangeRequest,
    serializable: bool,
) -> mvcc::RangeRequest {
    let pinned = !serializable
        && request.revision <= 0
        && backend.kv_mutation() == Some(Mutation::RangeAtRevisionBeforeBarrier);
    if !pinned {
        return request;
    }
    mvcc::RangeRequest {
        revision: backend.store().current_revision(),
        ..request
    }
}
