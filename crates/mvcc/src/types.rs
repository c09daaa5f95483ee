//! The state machine's request and response types, mirroring etcd's v3 KV API.
//!
//! These are plain Rust values: the server crate maps its protobuf messages onto
//! them and back. Revisions, versions, leases and limits are `i64` because etcd's
//! wire types are, so odd values (zero, negative) keep etcd's meaning instead of
//! being lost in a conversion. This module owns no behaviour beyond small
//! constructors; it must never depend on protobuf or gRPC.

/// One key at one revision, as etcd's `mvccpb.KeyValue`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    pub key: Vec<u8>,
    /// Revision of the put that created this incarnation of the key.
    pub create_revision: i64,
    /// Revision of the last write to the key.
    pub mod_revision: i64,
    /// Number of puts since the key was (re)created; a delete resets it to 0.
    pub version: i64,
    pub value: Vec<u8>,
    /// Lease id attached to the key (0 = none); revoking the lease deletes it.
    pub lease: i64,
}

/// Order of the keys in a range response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    None,
    Ascend,
    Descend,
}

/// Field that a range response is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortTarget {
    #[default]
    Key,
    Version,
    Create,
    Mod,
    Value,
}

/// A read of one key or a key range, as etcd's `RangeRequest`.
///
/// `range_end` follows etcd: empty means the single key `key`; `"\0"` means every
/// key greater than or equal to `key`; otherwise the half-open range
/// `[key, range_end)`. The `serializable` flag is the server's business and is not
/// carried here.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    /// Maximum number of keys returned; 0 or negative means no limit.
    pub limit: i64,
    /// Revision to read at; 0 or negative means the current revision.
    pub revision: i64,
    pub sort_order: SortOrder,
    pub sort_target: SortTarget,
    pub keys_only: bool,
    pub count_only: bool,
    /// Filters on the returned keys; 0 disables a bound. They apply after the
    /// count is taken, as in etcd.
    pub min_mod_revision: i64,
    pub max_mod_revision: i64,
    pub min_create_revision: i64,
    pub max_create_revision: i64,
}

impl RangeRequest {
    /// A read of the single key `key` at the current revision.
    pub fn single(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            ..Self::default()
        }
    }

    /// A read of the keys in `[key, range_end)` (with etcd's `range_end` rules).
    pub fn between(key: impl Into<Vec<u8>>, range_end: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            range_end: range_end.into(),
            ..Self::default()
        }
    }

    /// A read of every key.
    pub fn all() -> Self {
        Self::between(vec![0], vec![0])
    }
}

/// The answer to a [`RangeRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeResponse {
    /// The store's revision when the read was served (etcd's header revision).
    pub revision: i64,
    pub kvs: Vec<KeyValue>,
    /// True when `limit` cut the result short.
    pub more: bool,
    /// Number of keys in the range at the read revision, before limit and filters.
    pub count: i64,
}

/// A write of one key, as etcd's `PutRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutRequest {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub lease: i64,
    /// Return the key-value pair as it was before the put.
    pub prev_kv: bool,
    /// Keep the current value; the key must exist and `value` must be empty.
    pub ignore_value: bool,
    /// Keep the current lease; the key must exist and `lease` must be 0.
    pub ignore_lease: bool,
}

impl PutRequest {
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
            ..Self::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutResponse {
    /// The previous pair, when requested and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// A delete of one key or a key range, as etcd's `DeleteRangeRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteRangeRequest {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub prev_kv: bool,
}

impl DeleteRangeRequest {
    pub fn single(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            ..Self::default()
        }
    }

    pub fn between(key: impl Into<Vec<u8>>, range_end: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            range_end: range_end.into(),
            prev_kv: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeleteRangeResponse {
    pub deleted: i64,
    /// The deleted pairs, when requested.
    pub prev_kvs: Vec<KeyValue>,
}

/// How a compare relates the key's field (left) to the given target (right).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompareResult {
    #[default]
    Equal,
    Greater,
    Less,
    NotEqual,
}

/// The field a compare looks at, with the value it is compared against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompareTarget {
    Version(i64),
    CreateRevision(i64),
    ModRevision(i64),
    Value(Vec<u8>),
    Lease(i64),
}

impl Default for CompareTarget {
    fn default() -> Self {
        Self::Version(0)
    }
}

/// One guard of a transaction, as etcd's `Compare`. With a `range_end`, the
/// compare holds when it holds for every key in the range.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Compare {
    pub key: Vec<u8>,
    pub range_end: Vec<u8>,
    pub result: CompareResult,
    pub target: CompareTarget,
}

impl Compare {
    pub fn new(key: impl Into<Vec<u8>>, result: CompareResult, target: CompareTarget) -> Self {
        Self {
            key: key.into(),
            range_end: Vec::new(),
            result,
            target,
        }
    }
}

/// One operation in a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOp {
    Range(RangeRequest),
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
}

/// A conditional multi-operation write, as etcd's `TxnRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnRequest {
    pub compare: Vec<Compare>,
    /// Run when every compare holds.
    pub success: Vec<RequestOp>,
    /// Run otherwise.
    pub failure: Vec<RequestOp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseOp {
    Range(RangeResponse),
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnResponse {
    /// Whether the success branch ran.
    pub succeeded: bool,
    /// One response per operation of the branch that ran.
    pub responses: Vec<ResponseOp>,
}

/// Removal of superseded history, as etcd's `CompactionRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionRequest {
    pub revision: i64,
    /// Compaction here is always physical when applied; the flag is carried so
    /// the server can answer etcd's clients faithfully.
    pub physical: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CompactionResponse {}

/// The longest TTL a lease may be granted, as etcd's `MaxLeaseTTL`.
pub const LEASE_TTL_SECONDS_MAX: i64 = 9_000_000_000;

/// A new lease, as etcd's `LeaseGrantRequest` once the proposing member has
/// chosen the id (etcd picks one when the client asks for 0; every replica
/// must apply the same id, so the choice is made before proposing) and raised
/// the TTL to its minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseGrantRequest {
    /// Non-zero; 0 is etcd's "no lease".
    pub id: i64,
    pub ttl_seconds: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseGrantResponse {
    pub id: i64,
    pub ttl_seconds: i64,
}

/// The end of a lease and of every key attached to it, as etcd's
/// `LeaseRevokeRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseRevokeRequest {
    pub id: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseRevokeResponse {}

/// A granted lease as the state machine keeps it. The remaining time is not
/// replicated (as in etcd 3.4): the leader tracks it in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub id: i64,
    pub ttl_seconds: i64,
}

/// A lease with the live keys attached to it, in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseWithKeys {
    pub lease: Lease,
    pub keys: Vec<Vec<u8>>,
}

/// A write that goes through the Raft log and is applied in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Put(PutRequest),
    DeleteRange(DeleteRangeRequest),
    Txn(TxnRequest),
    Compact(CompactionRequest),
    LeaseGrant(LeaseGrantRequest),
    LeaseRevoke(LeaseRevokeRequest),
}

/// The answer to an applied [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compact(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// One change made by an applied command, in the order made; the raw material
/// for watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// For a put, the new pair; for a delete, the key and the deleting revision
    /// (as etcd's tombstone events).
    pub kv: KeyValue,
    /// The pair before the change, if the key was live.
    pub prev_kv: Option<KeyValue>,
}

/// The result of etcd's `HashKV`: a checksum of the key-value history up to
/// `hash_revision`, which members at the same revision and compact revision
/// must agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashKv {
    pub hash: u32,
    pub hash_revision: i64,
    pub compact_revision: i64,
}
