//! The errors of the state machine, split by whose fault they are.
//!
//! [`RequestError`] is the client's: the request is invalid or asks for a
//! revision that is gone or not there yet. Its messages are etcd's, so the server
//! can pass them through unchanged, and [`RequestError::status`] tells which gRPC
//! status class etcd uses. [`StoreError`] is the store's: the database or a
//! snapshot failed; it names what failed and where. This module must never decide
//! gRPC codes itself beyond that class.

use std::path::PathBuf;

use crate::codec::DecodeError;

/// The status class etcd answers a [`RequestError`] with; the server maps it to
/// a gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    InvalidArgument,
    OutOfRange,
    NotFound,
    FailedPrecondition,
}

/// A request the store refuses; it changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps { ops_max: usize },
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey { key: Vec<u8> },
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted {
        requested: i64,
        compact_revision: i64,
    },
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRevision {
        requested: i64,
        current_revision: i64,
    },
    /// A put, grant or revoke named a lease that is not granted (or 0 for a grant).
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound { id: i64 },
    #[error("etcdserver: lease already exists")]
    LeaseExists { id: i64 },
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge { ttl_seconds: i64 },
}

impl RequestError {
    /// The status class etcd uses for this error.
    pub fn status(&self) -> StatusClass {
        match self {
            Self::Compacted { .. }
            | Self::FutureRevision { .. }
            | Self::LeaseTtlTooLarge { .. } => StatusClass::OutOfRange,
            Self::LeaseNotFound { .. } => StatusClass::NotFound,
            Self::LeaseExists { .. } => StatusClass::FailedPrecondition,
            _ => StatusClass::InvalidArgument,
        }
    }
}

/// A failure of the store itself; the operation did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state machine database {path}: {source}; check the path and its permissions, or move a damaged file away and restore from a snapshot")]
    Open {
        path: PathBuf,
        source: Box<redb::DatabaseError>,
    },
    /// The file is there but its contents are not a sound database. The
    /// database only ever holds what the Raft log and its snapshot hold too,
    /// so moving it away is the repair.
    #[error("the state machine database {path} is damaged: {reason}; move it away and restart the member, which rebuilds it from its Raft log and snapshot")]
    Damaged { path: PathBuf, reason: String },
    #[error("state machine database failed while {context}: {source}")]
    Database {
        context: &'static str,
        source: Box<redb::Error>,
    },
    #[error("state machine database {path}: cannot read its size: {source}")]
    Size {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state machine database is corrupt: {what} at {location}; restore this member from a snapshot")]
    Corrupt { what: String, location: String },
    #[error(
        "state machine database has format version {found}, this build reads version {supported}"
    )]
    UnsupportedFormat { found: u64, supported: u64 },
    #[error("log index {index} applied out of order: the next index to apply is {expected}; the caller must apply committed entries in index order without gaps")]
    IndexGap { index: u64, expected: u64 },
    #[error("snapshot is invalid at byte offset {offset}: {reason}")]
    Snapshot { offset: u64, reason: String },
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}; the snapshot is corrupt, fetch it again")]
    SnapshotChecksum { stored: u32, computed: u32 },
    #[error("snapshot stream failed at byte offset {offset}: {source}")]
    SnapshotIo { offset: u64, source: std::io::Error },
    #[error("stored record is undecodable at {location}: {source}")]
    Record {
        location: String,
        source: DecodeError,
    },
}

impl StoreError {
    /// Wraps a redb error with what the store was doing.
    pub(crate) fn database<E: Into<redb::Error>>(context: &'static str) -> impl FnOnce(E) -> Self {
        move |source| Self::Database {
            context,
            source: Box::new(source.into()),
        }
    }
}

/// Either kind of failure, for operations that can hit both (reads).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The caller asked to run a transaction with writes outside the log.
    #[error("a transaction with puts, deletes or nested transactions changes state and must be applied through the log")]
    WritesOutsideTheLog,
}
