//! The stored form of one key revision and the redb table layout.
//!
//! `revisions` maps `(main, sub)` revision to an encoded [`Record`]; it is the
//! history, in revision order, that snapshots and HashKV walk. `key_index` maps
//! `(key, main, sub)` to "is a tombstone", so the revisions of one key sit
//! together and a range read walks keys in order. `leases` maps a lease id to
//! its granted TTL in seconds; `lease_keys` holds `(lease, key)` for every live
//! key attached to a lease, so a revoke finds its keys in key order without a
//! scan. `meta` holds the counters. This
//! module owns the bytes of a record; it must never decide what a write means.

use redb::TableDefinition;

use crate::codec::{DecodeError, Reader, Writer};
use crate::types::KeyValue;

/// The key type of the `key_index` table: user key, main and sub revision.
pub(crate) type IndexKey = (&'static [u8], i64, i64);

pub(crate) const REVISIONS: TableDefinition<(i64, i64), &[u8]> = TableDefinition::new("revisions");
pub(crate) const KEY_INDEX: TableDefinition<IndexKey, bool> = TableDefinition::new("key_index");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const LEASES: TableDefinition<i64, i64> = TableDefinition::new("leases");
/// The key type of the `lease_keys` table: lease id and user key.
pub(crate) type LeaseKey = (i64, &'static [u8]);
pub(crate) const LEASE_KEYS: TableDefinition<LeaseKey, ()> = TableDefinition::new("lease_keys");

pub(crate) const META_FORMAT_VERSION: &str = "format_version";
pub(crate) const META_APPLIED_INDEX: &str = "applied_index";
pub(crate) const META_CURRENT_REVISION: &str = "current_revision";
pub(crate) const META_COMPACT_REVISION: &str = "compact_revision";

/// The on-disk layout version this build writes and reads.
pub(crate) const STORE_FORMAT_VERSION: u64 = 2;
/// The layout before leases: the same tables without the two lease tables,
/// which opening creates empty, so such a store is upgraded in place.
pub(crate) const STORE_FORMAT_VERSION_WITHOUT_LEASES: u64 = 1;

/// A revision: `main` is the cluster revision of the write transaction, `sub`
/// orders the changes within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Revision {
    pub(crate) main: i64,
    pub(crate) sub: i64,
}

/// One key revision: a put (with its value) or a tombstone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) create_revision: i64,
    pub(crate) version: i64,
    pub(crate) lease: i64,
    pub(crate) tombstone: bool,
}

impl Record {
    pub(crate) fn put(kv: &KeyValue) -> Self {
        Self {
            key: kv.key.clone(),
            value: kv.value.clone(),
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
            tombstone: false,
        }
    }

    pub(crate) fn tombstone(key: &[u8]) -> Self {
        Self {
            key: key.to_vec(),
            value: Vec::new(),
            create_revision: 0,
            version: 0,
            lease: 0,
            tombstone: true,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::default();
        writer.u8(u8::from(self.tombstone));
        writer.byte_string(&self.key);
        writer.byte_string(&self.value);
        writer.i64(self.create_revision);
        writer.i64(self.version);
        writer.i64(self.lease);
        writer.bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let tombstone = reader.flags("record flags", 1)? != 0;
        let record = Self {
            tombstone,
            key: reader.byte_string()?,
            value: reader.byte_string()?,
            create_revision: reader.i64()?,
            version: reader.i64()?,
            lease: reader.i64()?,
        };
        reader.finish()?;
        Ok(record)
    }

    pub(crate) fn into_key_value(self, mod_revision: i64) -> KeyValue {
        debug_assert!(!self.tombstone, "a tombstone is not a live key-value");
        KeyValue {
            key: self.key,
            create_revision: self.create_revision,
            mod_revision,
            version: self.version,
            value: self.value,
            lease: self.lease,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_roundtrip_and_reject_damage() {
        let record = Record::put(&KeyValue {
            key: b"key".to_vec(),
            create_revision: 4,
            mod_revision: 9,
            version: 3,
            value: b"value".to_vec(),
            lease: -1,
        });
        let bytes = record.encode();
        assert_eq!(Record::decode(&bytes), Ok(record));
        assert_eq!(
            Record::decode(&Record::tombstone(b"k").encode()),
            Ok(Record::tombstone(b"k"))
        );
        assert!(Record::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut bad_flags = bytes.clone();
        bad_flags[0] = 7;
        assert!(Record::decode(&bad_flags).is_err());
    }
}
