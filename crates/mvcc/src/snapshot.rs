//! Whole-store snapshots for Raft: writing one from committed state and
//! replacing the store with one, atomically.
//!
//! Layout (integers little-endian): the magic `RKVSNAP\0`; format version
//! (u32); applied index (u64); current and compact revision (i64 each); record
//! count (u64); then per stored revision its main and sub revision (i64 each),
//! a length (u32) and the stored record; then the lease count (u64) and per
//! lease its id and granted TTL (i64 each); last, a CRC-32C of every byte
//! before it. The key index and the keys attached to each lease are rebuilt
//! from the records. Restoring checks everything and
//! writes within one redb transaction, committed only after the checksum
//! matched, so a corrupt or truncated snapshot leaves the store untouched and
//! is reported with the byte offset where it went wrong. This module must never
//! decide when to snapshot; the server does.

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};

use redb::{ReadableTable, ReadableTableMetadata};

use crate::engine::WriteTables;
use crate::error::StoreError;
use crate::meta::Meta;
use crate::record::{Record, Revision, KEY_INDEX, LEASES, LEASE_KEYS, META, REVISIONS};
use crate::store::{open_write_tables, read_meta, write_meta, Store};

const SNAPSHOT_MAGIC: [u8; 8] = *b"RKVSNAP\0";
const SNAPSHOT_FORMAT_VERSION: u32 = 2;

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub applied_index: u64,
    pub current_revision: i64,
    pub compact_revision: i64,
    pub revision_count: u64,
    pub lease_count: u64,
    /// Length of the snapshot including its checksum.
    pub size_bytes: u64,
}

impl Store {
    /// The whole state machine as one checksummed byte string. Use
    /// [`Store::write_snapshot`] to also learn which applied index it covers.
    pub fn snapshot(&self) -> Result<Vec<u8>, StoreError> {
        let mut bytes = Vec::new();
        self.write_snapshot(&mut bytes)?;
        Ok(bytes)
    }

    /// Streams a snapshot of committed state to `sink`.
    pub fn write_snapshot(&self, sink: impl Write) -> Result<SnapshotInfo, StoreError> {
        let txn = self.begin_read("starting a snapshot")?;
        let meta = read_meta(
            &txn.open_table(META)
                .map_err(StoreError::database("opening the meta table"))?,
        )?;
        let revisions = txn
            .open_table(REVISIONS)
            .map_err(StoreError::database("opening the revisions table"))?;
        let revision_count = revisions
            .len()
            .map_err(StoreError::database("counting revisions"))?;
        let mut writer = ChecksumWriter::new(sink);
        writer.write(&SNAPSHOT_MAGIC)?;
        writer.write(&SNAPSHOT_FORMAT_VERSION.to_le_bytes())?;
        writer.write(&meta.applied_index.to_le_bytes())?;
        writer.write(&meta.current_revision.to_le_bytes())?;
        writer.write(&meta.compact_revision.to_le_bytes())?;
        writer.write(&revision_count.to_le_bytes())?;
        let mut written = 0u64;
        for entry in revisions
            .iter()
            .map_err(StoreError::database("reading revisions for a snapshot"))?
        {
            let (key, record) =
                entry.map_err(StoreError::database("reading revisions for a snapshot"))?;
            let (main, sub) = key.value();
            let record = record.value();
            let length = u32::try_from(record.len()).map_err(|_| StoreError::Corrupt {
                what: format!(
                    "a record of {} bytes, beyond the 4 GiB a snapshot can hold",
                    record.len()
                ),
                location: format!("revision {main}.{sub}"),
            })?;
            writer.write(&main.to_le_bytes())?;
            writer.write(&sub.to_le_bytes())?;
            writer.write(&length.to_le_bytes())?;
            writer.write(record)?;
            written += 1;
        }
        debug_assert_eq!(written, revision_count);
        let lease_count = write_leases(&mut writer, &txn)?;
        let checksum = writer.crc;
        writer.write(&checksum.to_le_bytes())?;
        writer.flush()?;
        Ok(SnapshotInfo {
            applied_index: meta.applied_index,
            current_revision: meta.current_revision,
            compact_revision: meta.compact_revision,
            revision_count,
            lease_count,
            size_bytes: writer.offset,
        })
    }

    /// Replaces the whole store with the snapshot in `bytes`.
    pub fn restore(&self, bytes: &[u8]) -> Result<SnapshotInfo, StoreError> {
        self.restore_from(bytes)
    }

    /// Replaces the whole store with the snapshot read from `source`; on any
    /// error the store is unchanged.
    pub fn restore_from(&self, source: impl Read) -> Result<SnapshotInfo, StoreError> {
        let mut cached = self.lock();
        self.commit_open_apply_locked(&mut cached)?;
        let mut reader = ChecksumReader::new(source);
        let (meta, revision_count) = read_header(&mut reader)?;
        let txn = self
            .db
            .begin_write()
            .map_err(StoreError::database("starting a restore"))?;
        txn.delete_table(REVISIONS)
            .map_err(StoreError::database("clearing revisions for a restore"))?;
        txn.delete_table(KEY_INDEX)
            .map_err(StoreError::database("clearing the key index for a restore"))?;
        txn.delete_table(LEASES)
            .map_err(StoreError::database("clearing the leases for a restore"))?;
        txn.delete_table(LEASE_KEYS).map_err(StoreError::database(
            "clearing the lease keys for a restore",
        ))?;
        let lease_count;
        {
            let mut tables = open_write_tables(&txn)?;
            let mut previous: Option<Revision> = None;
            let mut attached = AttachedKeys::default();
            for _ in 0..revision_count {
                let offset = reader.offset;
                let (revision, record) = read_record(&mut reader)?;
                let in_order = previous.is_none_or(|previous| previous < revision);
                if !in_order || revision.main > meta.current_revision || revision.sub < 0 {
                    return Err(StoreError::Snapshot {
                        offset,
                        reason: format!(
                            "revision {}.{} is out of order or beyond current revision {}",
                            revision.main, revision.sub, meta.current_revision
                        ),
                    });
                }
                tables.insert(revision, &record)?;
                attached.record(&record);
                previous = Some(revision);
            }
            lease_count = read_leases(&mut reader, &mut tables, attached)?;
            let computed = reader.crc;
            let stored = reader.u32("the checksum")?;
            if stored != computed {
                return Err(StoreError::SnapshotChecksum { stored, computed });
            }
            reader.expect_end()?;
            let mut meta_table = txn
                .open_table(META)
                .map_err(StoreError::database("opening the meta table"))?;
            write_meta(&mut meta_table, &meta)?;
        }
        txn.commit()
            .map_err(StoreError::database("committing a restore"))?;
        cached.meta = meta;
        cached.committed_meta = meta;
        cached.durable_applied_index = meta.applied_index;
        cached.deferred_commits = 0;
        cached.lease_generation += 1;
        Ok(SnapshotInfo {
            applied_index: meta.applied_index,
            current_revision: meta.current_revision,
            compact_revision: meta.compact_revision,
            revision_count,
            lease_count,
            size_bytes: reader.offset,
        })
    }
}

fn read_header(reader: &mut ChecksumReader<impl Read>) -> Result<(Meta, u64), StoreError> {
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic, "the magic")?;
    if magic != SNAPSHOT_MAGIC {
        return Err(StoreError::Snapshot {
            offset: 0,
            reason: "not a raftkv state machine snapshot (wrong magic bytes)".to_string(),
        });
    }
    let version_offset = reader.offset;
    let version = reader.u32("the format version")?;
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(StoreError::Snapshot {
            offset: version_offset,
            reason: format!(
                "format version {version}, this build reads version {SNAPSHOT_FORMAT_VERSION}"
            ),
        });
    }
    let counters_offset = reader.offset;
    let meta = Meta {
        applied_index: reader.u64("the applied index")?,
        current_revision: reader.i64("the current revision")?,
        compact_revision: reader.i64("the compact revision")?,
    };
    if meta.current_revision < 1
        || meta.compact_revision < 0
        || meta.compact_revision > meta.current_revision
    {
        return Err(StoreError::Snapshot {
            offset: counters_offset,
            reason: format!(
                "impossible revisions: current {}, compacted {}",
                meta.current_revision, meta.compact_revision
            ),
        });
    }
    let revision_count = reader.u64("the record count")?;
    Ok((meta, revision_count))
}

/// Writes the lease section; returns how many leases it holds.
fn write_leases(
    writer: &mut ChecksumWriter<impl Write>,
    txn: &redb::ReadTransaction,
) -> Result<u64, StoreError> {
    let leases = txn
        .open_table(LEASES)
        .map_err(StoreError::database("opening the lease table"))?;
    let lease_count = leases
        .len()
        .map_err(StoreError::database("counting leases"))?;
    writer.write(&lease_count.to_le_bytes())?;
    for entry in leases
        .iter()
        .map_err(StoreError::database("reading leases for a snapshot"))?
    {
        let (id, ttl_seconds) =
            entry.map_err(StoreError::database("reading leases for a snapshot"))?;
        writer.write(&id.value().to_le_bytes())?;
        writer.write(&ttl_seconds.value().to_le_bytes())?;
    }
    Ok(lease_count)
}

/// The lease each live key is attached to, as the records replay in
/// revision order; only keys with a lease are held.
#[derive(Default)]
struct AttachedKeys {
    lease_of: HashMap<Vec<u8>, i64>,
}

impl AttachedKeys {
    fn record(&mut self, record: &Record) {
        if record.tombstone || record.lease == 0 {
            self.lease_of.remove(&record.key);
        } else {
            self.lease_of.insert(record.key.clone(), record.lease);
        }
    }
}

/// Restores the lease section and re-attaches the live keys; a key attached
/// to a lease the snapshot lacks makes the snapshot invalid.
fn read_leases(
    reader: &mut ChecksumReader<impl Read>,
    tables: &mut WriteTables<'_>,
    attached: AttachedKeys,
) -> Result<u64, StoreError> {
    let count_offset = reader.offset;
    let lease_count = reader.u64("the lease count")?;
    let mut previous: Option<i64> = None;
    for _ in 0..lease_count {
        let offset = reader.offset;
        let id = reader.i64("a lease id")?;
        let ttl_seconds = reader.i64("a lease TTL")?;
        if id == 0 || previous.is_some_and(|previous| previous >= id) {
            return Err(StoreError::Snapshot {
                offset,
                reason: format!("lease {id} is zero or out of order"),
            });
        }
        tables
            .leases
            .insert(id, ttl_seconds)
            .map_err(StoreError::database("restoring a lease"))?;
        previous = Some(id);
    }
    for (key, lease) in attached.lease_of {
        let granted = tables
            .leases
            .get(lease)
            .map_err(StoreError::database("reading the lease table"))?
            .is_some();
        if !granted {
            return Err(StoreError::Snapshot {
                offset: count_offset,
                reason: format!(
                    "a live key is attached to lease {lease}, which the snapshot does not hold"
                ),
            });
        }
        tables
            .lease_keys
            .insert((lease, key.as_slice()), ())
            .map_err(StoreError::database("restoring the keys of a lease"))?;
    }
    Ok(lease_count)
}

fn read_record(reader: &mut ChecksumReader<impl Read>) -> Result<(Revision, Record), StoreError> {
    let main = reader.i64("a main revision")?;
    let sub = reader.i64("a sub revision")?;
    let length = reader.u32("a record length")?;
    let record_offset = reader.offset;
    let bytes = reader.bytes(u64::from(length), "a record")?;
    let record = Record::decode(&bytes).map_err(|error| StoreError::Snapshot {
        offset: record_offset,
        reason: format!("record of revision {main}.{sub} is undecodable: {error}"),
    })?;
    Ok((Revision { main, sub }, record))
}

struct ChecksumWriter<W> {
    inner: W,
    crc: u32,
    offset: u64,
}

impl<W: Write> ChecksumWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            crc: 0,
            offset: 0,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner
            .write_all(bytes)
            .map_err(|source| StoreError::SnapshotIo {
                offset: self.offset,
                source,
            })?;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.inner.flush().map_err(|source| StoreError::SnapshotIo {
            offset: self.offset,
            source,
        })
    }
}

struct ChecksumReader<R> {
    inner: R,
    crc: u32,
    offset: u64,
}

impl<R: Read> ChecksumReader<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            crc: 0,
            offset: 0,
        }
    }

    fn truncated(&self, what: &str) -> StoreError {
        StoreError::Snapshot {
            offset: self.offset,
            reason: format!("truncated while reading {what}"),
        }
    }

    fn read_exact(&mut self, buffer: &mut [u8], what: &str) -> Result<(), StoreError> {
        match self.inner.read_exact(buffer) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::UnexpectedEof => {
                return Err(self.truncated(what))
            }
            Err(source) => {
                return Err(StoreError::SnapshotIo {
                    offset: self.offset,
                    source,
                })
            }
        }
        self.crc = crc32c::crc32c_append(self.crc, buffer);
        self.offset += buffer.len() as u64;
        Ok(())
    }

    fn u32(&mut self, what: &str) -> Result<u32, StoreError> {
        let mut buffer = [0u8; 4];
        self.read_exact(&mut buffer, what)?;
        Ok(u32::from_le_bytes(buffer))
    }

    fn u64(&mut self, what: &str) -> Result<u64, StoreError> {
        let mut buffer = [0u8; 8];
        self.read_exact(&mut buffer, what)?;
        Ok(u64::from_le_bytes(buffer))
    }

    fn i64(&mut self, what: &str) -> Result<i64, StoreError> {
        let mut buffer = [0u8; 8];
        self.read_exact(&mut buffer, what)?;
        Ok(i64::from_le_bytes(buffer))
    }

    /// Reads `length` bytes without trusting `length` for the allocation.
    fn bytes(&mut self, length: u64, what: &str) -> Result<Vec<u8>, StoreError> {
        let mut buffer = Vec::new();
        (&mut self.inner)
            .take(length)
            .read_to_end(&mut buffer)
            .map_err(|source| StoreError::SnapshotIo {
                offset: self.offset,
                source,
            })?;
        if (buffer.len() as u64) < length {
            return Err(self.truncated(what));
        }
        self.crc = crc32c::crc32c_append(self.crc, &buffer);
        self.offset += length;
        Ok(buffer)
    }

    fn expect_end(&mut self) -> Result<(), StoreError> {
        let mut probe = [0u8; 1];
        let read = self
            .inner
            .read(&mut probe)
            .map_err(|source| StoreError::SnapshotIo {
                offset: self.offset,
                source,
            })?;
        if read != 0 {
            return Err(StoreError::Snapshot {
                offset: self.offset,
                reason: "unexpected bytes after the checksum".to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
