//! The compact, versioned binary encoding of [`Command`] for the Raft log.
//!
//! Layout: one format-version byte, then the command as tagged fields: byte
//! strings as a varint length and the bytes, integers as zigzag varints, flags as
//! one byte of bits, lists as a varint count. Decoding never panics and never
//! trusts a length: every failure is a [`DecodeError`] naming the byte offset, and
//! transaction nesting is bounded by [`TXN_NESTING_DEPTH_MAX`] so garbage cannot
//! exhaust the stack. This module owns the bytes only; it must never validate
//! etcd's request rules (see `validate`).

use crate::types::{
    Command, CompactionRequest, Compare, CompareResult, CompareTarget, DeleteRangeRequest,
    LeaseGrantRequest, LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, SortOrder,
    SortTarget, TxnRequest,
};

/// The format version written in the first byte of every encoded command.
pub const COMMAND_FORMAT_VERSION: u8 = 1;

/// Deepest transaction nesting that decodes. etcd bounds nesting through its
/// operation budget (128 by default), so real requests stay far below this.
pub const TXN_NESTING_DEPTH_MAX: usize = 256;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("encoding is empty: expected a format version byte")]
    Empty,
    #[error("unsupported format version {found} (this build reads version {supported}); upgrade this member")]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("truncated at byte offset {offset}: {needed} more bytes needed")]
    Truncated { offset: usize, needed: u64 },
    #[error("varint longer than 10 bytes at byte offset {offset}")]
    VarintOverflow { offset: usize },
    #[error("invalid {field} {value:#04x} at byte offset {offset}")]
    InvalidTag {
        field: &'static str,
        value: u8,
        offset: usize,
    },
    #[error("transactions nested deeper than {depth_max} at byte offset {offset}")]
    NestingTooDeep { depth_max: usize, offset: usize },
    #[error("{count} unexpected trailing bytes at byte offset {offset}")]
    TrailingBytes { count: usize, offset: usize },
}

impl Command {
    /// Encodes the command for the Raft log.
    pub fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.u8(COMMAND_FORMAT_VERSION);
        match self {
            Command::Put(put) => {
                writer.u8(1);
                write_put(&mut writer, put);
            }
            Command::DeleteRange(delete) => {
                writer.u8(2);
                write_delete(&mut writer, delete);
            }
            Command::Txn(txn) => {
                writer.u8(3);
                write_txn(&mut writer, txn);
            }
            Command::Compact(compact) => {
                writer.u8(4);
                writer.i64(compact.revision);
                writer.u8(u8::from(compact.physical));
            }
            Command::LeaseGrant(grant) => {
                writer.u8(5);
                writer.i64(grant.id);
                writer.i64(grant.ttl_seconds);
            }
            Command::LeaseRevoke(revoke) => {
                writer.u8(6);
                writer.i64(revoke.id);
            }
        }
        writer.bytes
    }

    /// Decodes a command written by [`Command::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8().map_err(|_| DecodeError::Empty)?;
        if version != COMMAND_FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: version,
                supported: COMMAND_FORMAT_VERSION,
            });
        }
        let tag_offset = reader.offset;
        let command = match reader.u8()? {
            1 => Command::Put(read_put(&mut reader)?),
            2 => Command::DeleteRange(read_delete(&mut reader)?),
            3 => Command::Txn(read_txn(&mut reader, 0)?),
            4 => {
                let revision = reader.i64()?;
                let physical = reader.flags("compaction flags", 1)? & 1 != 0;
                Command::Compact(CompactionRequest { revision, physical })
            }
            5 => Command::LeaseGrant(LeaseGrantRequest {
                id: reader.i64()?,
                ttl_seconds: reader.i64()?,
            }),
            6 => Command::LeaseRevoke(LeaseRevokeRequest { id: reader.i64()? }),
            value => {
                return Err(DecodeError::InvalidTag {
                    field: "command tag",
                    value,
                    offset: tag_offset,
                })
            }
        };
        reader.finish()?;
        Ok(command)
    }
}

fn write_put(writer: &mut Writer, put: &PutRequest) {
    writer.byte_string(&put.key);
    writer.byte_string(&put.value);
    writer.i64(put.lease);
    writer.u8(flag_bits(&[
        put.prev_kv,
        put.ignore_value,
        put.ignore_lease,
    ]));
}

fn read_put(reader: &mut Reader) -> Result<PutRequest, DecodeError> {
    let key = reader.byte_string()?;
    let value = reader.byte_string()?;
    let lease = reader.i64()?;
    let flags = reader.flags("put flags", 3)?;
    Ok(PutRequest {
        key,
        value,
        lease,
        prev_kv: flags & 1 != 0,
        ignore_value: flags & 2 != 0,
        ignore_lease: flags & 4 != 0,
    })
}

fn write_delete(writer: &mut Writer, delete: &DeleteRangeRequest) {
    writer.byte_string(&delete.key);
    writer.byte_string(&delete.range_end);
    writer.u8(u8::from(delete.prev_kv));
}

fn read_delete(reader: &mut Reader) -> Result<DeleteRangeRequest, DecodeError> {
    Ok(DeleteRangeRequest {
        key: reader.byte_string()?,
        range_end: reader.byte_string()?,
        prev_kv: reader.flags("delete flags", 1)? & 1 != 0,
    })
}

fn write_range(writer: &mut Writer, range: &RangeRequest) {
    writer.byte_string(&range.key);
    writer.byte_string(&range.range_end);
    writer.i64(range.limit);
    writer.i64(range.revision);
    writer.u8(match range.sort_order {
        SortOrder::None => 0,
        SortOrder::Ascend => 1,
        SortOrder::Descend => 2,
    });
    writer.u8(match range.sort_target {
        SortTarget::Key => 0,
        SortTarget::Version => 1,
        SortTarget::Create => 2,
        SortTarget::Mod => 3,
        SortTarget::Value => 4,
    });
    writer.u8(flag_bits(&[range.keys_only, range.count_only]));
    writer.i64(range.min_mod_revision);
    writer.i64(range.max_mod_revision);
    writer.i64(range.min_create_revision);
    writer.i64(range.max_create_revision);
}

fn read_range(reader: &mut Reader) -> Result<RangeRequest, DecodeError> {
    let key = reader.byte_string()?;
    let range_end = reader.byte_string()?;
    let limit = reader.i64()?;
    let revision = reader.i64()?;
    let offset = reader.offset;
    let sort_order = match reader.u8()? {
        0 => SortOrder::None,
        1 => SortOrder::Ascend,
        2 => SortOrder::Descend,
        value => return Err(invalid("sort order", value, offset)),
    };
    let offset = reader.offset;
    let sort_target = match reader.u8()? {
        0 => SortTarget::Key,
        1 => SortTarget::Version,
        2 => SortTarget::Create,
        3 => SortTarget::Mod,
        4 => SortTarget::Value,
        value => return Err(invalid("sort target", value, offset)),
    };
    let flags = reader.flags("range flags", 2)?;
    Ok(RangeRequest {
        key,
        range_end,
        limit,
        revision,
        sort_order,
        sort_target,
        keys_only: flags & 1 != 0,
        count_only: flags & 2 != 0,
        min_mod_revision: reader.i64()?,
        max_mod_revision: reader.i64()?,
        min_create_revision: reader.i64()?,
        max_create_revision: reader.i64()?,
    })
}

fn write_txn(writer: &mut Writer, txn: &TxnRequest) {
    writer.count(txn.compare.len());
    for compare in &txn.compare {
        write_compare(writer, compare);
    }
    for branch in [&txn.success, &txn.failure] {
        writer.count(branch.len());
        for op in branch {
            write_op(writer, op);
        }
    }
}

fn read_txn(reader: &mut Reader, depth: usize) -> Result<TxnRequest, DecodeError> {
    if depth >= TXN_NESTING_DEPTH_MAX {
        return Err(DecodeError::NestingTooDeep {
            depth_max: TXN_NESTING_DEPTH_MAX,
            offset: reader.offset,
        });
    }
    let compare_count = reader.count()?;
    let mut compare = Vec::with_capacity(compare_count);
    for _ in 0..compare_count {
        compare.push(read_compare(reader)?);
    }
    let success = read_ops(reader, depth)?;
    let failure = read_ops(reader, depth)?;
    Ok(TxnRequest {
        compare,
        success,
        failure,
    })
}

fn read_ops(reader: &mut Reader, depth: usize) -> Result<Vec<RequestOp>, DecodeError> {
    let op_count = reader.count()?;
    let mut ops = Vec::with_capacity(op_count);
    for _ in 0..op_count {
        let offset = reader.offset;
        let op = match reader.u8()? {
            1 => RequestOp::Range(read_range(reader)?),
            2 => RequestOp::Put(read_put(reader)?),
            3 => RequestOp::DeleteRange(read_delete(reader)?),
            4 => RequestOp::Txn(read_txn(reader, depth + 1)?),
            value => return Err(invalid("operation tag", value, offset)),
        };
        ops.push(op);
    }
    Ok(ops)
}

fn write_op(writer: &mut Writer, op: &RequestOp) {
    match op {
        RequestOp::Range(range) => {
            writer.u8(1);
            write_range(writer, range);
        }
        RequestOp::Put(put) => {
            writer.u8(2);
            write_put(writer, put);
        }
        RequestOp::DeleteRange(delete) => {
            writer.u8(3);
            write_delete(writer, delete);
        }
        RequestOp::Txn(txn) => {
            writer.u8(4);
            write_txn(writer, txn);
        }
    }
}

fn write_compare(writer: &mut Writer, compare: &Compare) {
    writer.byte_string(&compare.key);
    writer.byte_string(&compare.range_end);
    writer.u8(match compare.result {
        CompareResult::Equal => 0,
        CompareResult::Greater => 1,
        CompareResult::Less => 2,
        CompareResult::NotEqual => 3,
    });
    match &compare.target {
        CompareTarget::Version(version) => {
            writer.u8(0);
            writer.i64(*version);
        }
        CompareTarget::CreateRevision(revision) => {
            writer.u8(1);
            writer.i64(*revision);
        }
        CompareTarget::ModRevision(revision) => {
            writer.u8(2);
            writer.i64(*revision);
        }
        CompareTarget::Value(value) => {
            writer.u8(3);
            writer.byte_string(value);
        }
        CompareTarget::Lease(lease) => {
            writer.u8(4);
            writer.i64(*lease);
        }
    }
}

fn read_compare(reader: &mut Reader) -> Result<Compare, DecodeError> {
    let key = reader.byte_string()?;
    let range_end = reader.byte_string()?;
    let offset = reader.offset;
    let result = match reader.u8()? {
        0 => CompareResult::Equal,
        1 => CompareResult::Greater,
        2 => CompareResult::Less,
        3 => CompareResult::NotEqual,
        value => return Err(invalid("compare result", value, offset)),
    };
    let offset = reader.offset;
    let target = match reader.u8()? {
        0 => CompareTarget::Version(reader.i64()?),
        1 => CompareTarget::CreateRevision(reader.i64()?),
        2 => CompareTarget::ModRevision(reader.i64()?),
        3 => CompareTarget::Value(reader.byte_string()?),
        4 => CompareTarget::Lease(reader.i64()?),
        value => return Err(invalid("compare target", value, offset)),
    };
    Ok(Compare {
        key,
        range_end,
        result,
        target,
    })
}

fn invalid(field: &'static str, value: u8, offset: usize) -> DecodeError {
    DecodeError::InvalidTag {
        field,
        value,
        offset,
    }
}

fn flag_bits(flags: &[bool]) -> u8 {
    debug_assert!(flags.len() <= 8);
    flags.iter().enumerate().fold(0, |bits, (position, &set)| {
        bits | (u8::from(set) << position)
    })
}

/// Appends primitive values; shared with the storage record format.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub(crate) bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub(crate) fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    pub(crate) fn i64(&mut self, value: i64) {
        self.varint(((value << 1) ^ (value >> 63)) as u64);
    }

    pub(crate) fn count(&mut self, count: usize) {
        self.varint(count as u64);
    }

    pub(crate) fn byte_string(&mut self, bytes: &[u8]) {
        self.count(bytes.len());
        self.bytes.extend_from_slice(bytes);
    }
}

/// Reads primitive values with bounds checks; shared with the storage record
/// format.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pub(crate) offset: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, offset: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let value = *self.bytes.get(self.offset).ok_or(DecodeError::Truncated {
            offset: self.offset,
            needed: 1,
        })?;
        self.offset += 1;
        Ok(value)
    }

    /// A flags byte in which only the lowest `bits_used` bits may be set.
    pub(crate) fn flags(&mut self, field: &'static str, bits_used: u32) -> Result<u8, DecodeError> {
        let offset = self.offset;
        let value = self.u8()?;
        if u32::from(value) >> bits_used != 0 {
            return Err(invalid(field, value, offset));
        }
        Ok(value)
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.offset;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.u8()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow { offset: start })
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        let zigzag = self.varint()?;
        Ok(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
    }

    /// A list length. Every element takes at least one byte, so a count beyond
    /// the remaining bytes is truncation, caught before anything is allocated.
    pub(crate) fn count(&mut self) -> Result<usize, DecodeError> {
        let count = self.varint()?;
        let remaining = self.remaining();
        if count > remaining as u64 {
            return Err(DecodeError::Truncated {
                offset: self.offset,
                needed: count - remaining as u64,
            });
        }
        Ok(count as usize)
    }

    pub(crate) fn byte_string(&mut self) -> Result<Vec<u8>, DecodeError> {
        let length = self.count()?;
        let bytes = self.bytes[self.offset..self.offset + length].to_vec();
        self.offset += length;
        Ok(bytes)
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes {
                count,
                offset: self.offset,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_txn() -> Command {
        Command::Txn(TxnRequest {
            compare: vec![
                Compare::new("a", CompareResult::Greater, CompareTarget::ModRevision(-3)),
                Compare {
                    key: b"b".to_vec(),
                    range_end: b"\0".to_vec(),
                    result: CompareResult::NotEqual,
                    target: CompareTarget::Value(b"v".to_vec()),
                },
            ],
            success: vec![
                RequestOp::Put(PutRequest {
                    prev_kv: true,
                    ignore_lease: true,
                    ..PutRequest::new("k", "v")
                }),
                RequestOp::Range(RangeRequest {
                    limit: 5,
                    sort_order: SortOrder::Descend,
                    sort_target: SortTarget::Value,
                    count_only: true,
                    max_create_revision: i64::MAX,
                    min_mod_revision: i64::MIN,
                    ..RangeRequest::all()
                }),
                RequestOp::Txn(TxnRequest {
                    failure: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                        prev_kv: true,
                        ..DeleteRangeRequest::between("x", "y")
                    })],
                    ..TxnRequest::default()
                }),
            ],
            failure: vec![],
        })
    }

    #[test]
    fn every_command_kind_roundtrips() {
        let commands = [
            Command::Put(PutRequest {
                lease: 7,
                ignore_value: true,
                ..PutRequest::new(vec![0, 255], vec![])
            }),
            Command::DeleteRange(DeleteRangeRequest::between("a", "\0")),
            sample_txn(),
            Command::Compact(CompactionRequest {
                revision: 42,
                physical: true,
            }),
            Command::LeaseGrant(LeaseGrantRequest {
                id: i64::MAX,
                ttl_seconds: -3,
            }),
            Command::LeaseRevoke(LeaseRevokeRequest { id: i64::MIN }),
        ];
        for command in commands {
            assert_eq!(Command::decode(&command.encode()), Ok(command));
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample_txn().encode();
        for length in 0..bytes.len() {
            assert!(
                Command::decode(&bytes[..length]).is_err(),
                "prefix of {length} bytes decoded"
            );
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = Command::Compact(CompactionRequest::default()).encode();
        bytes.push(0);
        assert_eq!(
            Command::decode(&bytes),
            Err(DecodeError::TrailingBytes {
                count: 1,
                offset: bytes.len() - 1
            })
        );
    }

    #[test]
    fn unknown_version_and_tags_are_named() {
        assert_eq!(Command::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(
            Command::decode(&[9, 1]),
            Err(DecodeError::UnsupportedVersion {
                found: 9,
                supported: 1
            })
        );
        assert_eq!(
            Command::decode(&[1, 77]),
            Err(invalid("command tag", 77, 1))
        );
        // A put with an undefined flag bit.
        assert_eq!(
            Command::decode(&[1, 1, 0, 0, 0, 0b1000]),
            Err(invalid("put flags", 0b1000, 5))
        );
    }

    #[test]
    fn huge_counts_fail_without_allocating() {
        let mut writer = Writer::default();
        writer.u8(COMMAND_FORMAT_VERSION);
        writer.u8(3);
        writer.varint(u64::MAX >> 1);
        assert!(matches!(
            Command::decode(&writer.bytes),
            Err(DecodeError::Truncated { offset: 11, .. })
        ));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut txn = TxnRequest::default();
        for _ in 0..TXN_NESTING_DEPTH_MAX {
            txn = TxnRequest {
                success: vec![RequestOp::Txn(txn)],
                ..TxnRequest::default()
            };
        }
        let error = Command::decode(&Command::Txn(txn).encode());
        assert!(
            matches!(error, Err(DecodeError::NestingTooDeep { depth_max, .. }) if depth_max == TXN_NESTING_DEPTH_MAX),
            "{error:?}"
        );
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Command::decode(&bytes);
        }

        #[test]
        fn garbage_after_valid_header_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..256), tag in 1u8..=6) {
            let mut bytes = vec![COMMAND_FORMAT_VERSION, tag];
            bytes.extend(tail);
            let _ = Command::decode(&bytes);
        }

        #[test]
        fn integers_roundtrip(value in any::<i64>()) {
            let mut writer = Writer::default();
            writer.i64(value);
            let mut reader = Reader::new(&writer.bytes);
            prop_assert_eq!(reader.i64(), Ok(value));
            prop_assert_eq!(reader.finish(), Ok(()));
        }
    }
}
