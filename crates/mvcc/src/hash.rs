//! Checksums members compare to find divergence: [`Store::hash`] over the whole
//! store and etcd's HashKV over the history up to a revision. Must never write.

use redb::ReadableTable;

use crate::error::{Error, StoreError};
use crate::record::{KEY_INDEX, LEASES, LEASE_KEYS, META, REVISIONS};
use crate::store::{read_meta, Store};
use crate::types::HashKv;

impl Store {
    /// A checksum of the whole store: history, key index, revisions and
    /// leases (with their attached keys), but not
    /// the applied index (members at the same revision agree even if their logs
    /// hold different non-command entries).
    pub fn hash(&self) -> Result<u32, StoreError> {
        let txn = self.begin_read("starting a hash")?;
        let meta = read_meta(
            &txn.open_table(META)
                .map_err(StoreError::database("opening the meta table"))?,
        )?;
        let mut crc = crc32c::crc32c(&meta.current_revision.to_le_bytes());
        crc = crc32c::crc32c_append(crc, &meta.compact_revision.to_le_bytes());
        let revisions = txn
            .open_table(REVISIONS)
            .map_err(StoreError::database("opening the revisions table"))?;
        for entry in revisions
            .iter()
            .map_err(StoreError::database("hashing revisions"))?
        {
            let (key, value) = entry.map_err(StoreError::database("hashing revisions"))?;
            crc = hash_revision_entry(crc, key.value(), value.value());
        }
        let index = txn
            .open_table(KEY_INDEX)
            .map_err(StoreError::database("opening the key index"))?;
        for entry in index
            .iter()
            .map_err(StoreError::database("hashing the key index"))?
        {
            let (key, tombstone) = entry.map_err(StoreError::database("hashing the key index"))?;
            let (user_key, main, sub) = key.value();
            crc = crc32c::crc32c_append(crc, &(user_key.len() as u64).to_le_bytes());
            crc = crc32c::crc32c_append(crc, user_key);
            crc = crc32c::crc32c_append(crc, &main.to_le_bytes());
            crc = crc32c::crc32c_append(crc, &sub.to_le_bytes());
            crc = crc32c::crc32c_append(crc, &[u8::from(tombstone.value())]);
        }
        let leases = txn
            .open_table(LEASES)
            .map_err(StoreError::database("opening the lease table"))?;
        for entry in leases
            .iter()
            .map_err(StoreError::database("hashing leases"))?
        {
            let (id, ttl_seconds) = entry.map_err(StoreError::database("hashing leases"))?;
            crc = crc32c::crc32c_append(crc, &id.value().to_le_bytes());
            crc = crc32c::crc32c_append(crc, &ttl_seconds.value().to_le_bytes());
        }
        let lease_keys = txn
            .open_table(LEASE_KEYS)
            .map_err(StoreError::database("opening the lease key table"))?;
        for entry in lease_keys
            .iter()
            .map_err(StoreError::database("hashing lease keys"))?
        {
            let (lease_key, _) = entry.map_err(StoreError::database("hashing lease keys"))?;
            let (lease, user_key) = lease_key.value();
            crc = crc32c::crc32c_append(crc, &lease.to_le_bytes());
            crc = crc32c::crc32c_append(crc, &(user_key.len() as u64).to_le_bytes());
            crc = crc32c::crc32c_append(crc, user_key);
        }
        Ok(crc)
    }

    /// etcd's HashKV: a checksum of every revision at or below `revision`
    /// (0 = current) that compaction kept.
    pub fn hash_kv(&self, revision: i64) -> Result<HashKv, Error> {
        let txn = self.begin_read("starting a HashKV")?;
        let meta = read_meta(
            &txn.open_table(META)
                .map_err(StoreError::database("opening the meta table"))?,
        )?;
        let hash_revision = meta.read_revision(revision)?;
        let revisions = txn
            .open_table(REVISIONS)
            .map_err(StoreError::database("opening the revisions table"))?;
        let mut crc = 0;
        for entry in revisions
            .range(..=(hash_revision, i64::MAX))
            .map_err(StoreError::database("hashing revisions"))?
        {
            let (key, value) = entry.map_err(StoreError::database("hashing revisions"))?;
            crc = hash_revision_entry(crc, key.value(), value.value());
        }
        Ok(HashKv {
            hash: crc,
            hash_revision,
            compact_revision: meta.compact_revision,
        })
    }
}

fn hash_revision_entry(crc: u32, (main, sub): (i64, i64), record: &[u8]) -> u32 {
    let crc = crc32c::crc32c_append(crc, &main.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &sub.to_le_bytes());
    crc32c::crc32c_append(crc, record)
}
