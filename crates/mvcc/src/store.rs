//! [`Store`]: the state machine persisted in one redb database.
//!
//! Owns the redb transactions: every apply writes its effects and the applied
//! Raft index in one write transaction, so after a restart an entry is either
//! wholly there (and re-applying it is a reported no-op) or wholly absent (and
//! the log replays it). Reads serve from committed state through redb's
//! snapshot-isolated read transactions, so they never see half a command. This
//! module must never interpret commands (see `engine`) nor know about Raft roles
//! or the network.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use redb::backends::InMemoryBackend;
use redb::{Database, ReadableTable, ReadableTableMetadata, WriteTransaction};

use crate::engine::{apply_command, WriteTables};
use crate::error::{Error, RequestError, StoreError};
use crate::meta::Meta;
use crate::record::{
    KEY_INDEX, LEASES, LEASE_KEYS, META, META_APPLIED_INDEX, META_COMPACT_REVISION,
    META_CURRENT_REVISION, META_FORMAT_VERSION, REVISIONS, STORE_FORMAT_VERSION,
    STORE_FORMAT_VERSION_WITHOUT_LEASES,
};
use crate::types::{
    Command, Event, RangeRequest, RangeResponse, Response, TxnRequest, TxnResponse,
};
use crate::view::View;

/// Deferred commits allowed in a row before one is made durable anyway: redb
/// frees pages only at durable commits, so without this bound the file grows
/// without limit under a steady stream of deferred batches.
pub const DEFERRED_COMMITS_MAX: u32 = 64;

/// When an apply must be on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk when the call returns.
    Immediate,
    /// On disk at the next immediate commit or [`Store::flush`]; a crash before
    /// then loses it, and the Raft log replays it after restart.
    Deferred,
}

/// What applying one log entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The entry's command ran (or was refused, which also consumes the index).
    Applied(Applied),
    /// The entry carried no command (an empty or membership entry); only the
    /// applied index moved.
    NoCommand { index: u64 },
    /// The index was applied before; nothing changed.
    AlreadyApplied { index: u64, applied_index: u64 },
}

/// The result of one applied command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub index: u64,
    /// The store's revision after the command (etcd's header revision).
    pub revision: i64,
    /// The client's answer, or why the command changed nothing.
    pub result: Result<Response, RequestError>,
    /// The changes made, in order; empty when nothing changed.
    pub events: Vec<Event>,
}

/// Where the database lives.
#[derive(Debug)]
enum Location {
    File(PathBuf),
    Memory,
}

/// The counters as last committed, plus durability bookkeeping.
#[derive(Debug)]
pub(crate) struct Cached {
    pub(crate) meta: Meta,
    pub(crate) durable_applied_index: u64,
    pub(crate) deferred_commits: u32,
    /// Moves whenever the set of leases may have changed (see
    /// [`Store::lease_generation`]).
    pub(crate) lease_generation: u64,
}

/// etcd's v3 data model over one redb database.
///
/// All methods take `&self`: reads run concurrently with each other and with
/// one writer; writers are serialized.
pub struct Store {
    pub(crate) db: Database,
    location: Location,
    pub(crate) cached: Mutex<Cached>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .field("cached", &self.cached)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `path`, creating it when absent.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::create(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source: Box::new(source),
        })?;
        Self::init(db, Location::File(path))
    }

    /// A store that lives in memory only (for simulation and tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(InMemoryBackend::new())
            .map_err(|source| StoreError::Open {
                path: PathBuf::from("<memory>"),
                source: Box::new(source),
            })?;
        Self::init(db, Location::Memory)
    }

    fn init(db: Database, location: Location) -> Result<Self, StoreError> {
        let txn = db
            .begin_write()
            .map_err(StoreError::database("starting the first transaction"))?;
        let meta = {
            let mut meta_table = txn
                .open_table(META)
                .map_err(StoreError::database("opening the meta table"))?;
            txn.open_table(REVISIONS)
                .map_err(StoreError::database("opening the revisions table"))?;
            txn.open_table(KEY_INDEX)
                .map_err(StoreError::database("opening the key index"))?;
            txn.open_table(LEASES)
                .map_err(StoreError::database("opening the lease table"))?;
            txn.open_table(LEASE_KEYS)
                .map_err(StoreError::database("opening the lease key table"))?;
            let format = meta_table
                .get(META_FORMAT_VERSION)
                .map_err(StoreError::database("reading the format version"))?
                .map(|guard| guard.value());
            match format {
                None => {
                    meta_table
                        .insert(META_FORMAT_VERSION, STORE_FORMAT_VERSION)
                        .map_err(StoreError::database("writing the format version"))?;
                    write_meta(&mut meta_table, &Meta::EMPTY)?;
                    Meta::EMPTY
                }
                Some(STORE_FORMAT_VERSION) => read_meta(&meta_table)?,
                Some(STORE_FORMAT_VERSION_WITHOUT_LEASES) => {
                    meta_table
                        .insert(META_FORMAT_VERSION, STORE_FORMAT_VERSION)
                        .map_err(StoreError::database("upgrading the format version"))?;
                    read_meta(&meta_table)?
                }
                Some(found) => {
                    return Err(StoreError::UnsupportedFormat {
                        found,
                        supported: STORE_FORMAT_VERSION,
                    })
                }
            }
        };
        txn.commit()
            .map_err(StoreError::database("committing the first transaction"))?;
        Ok(Self {
            db,
            location,
            cached: Mutex::new(Cached {
                meta,
                durable_applied_index: meta.applied_index,
                deferred_commits: 0,
                lease_generation: 0,
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The last Raft index whose effects are in the store.
    pub fn applied_index(&self) -> u64 {
        self.lock().meta.applied_index
    }

    /// The last applied index known to be on disk; the Raft log must be kept
    /// from the entry after it, since a crash may lose what followed.
    pub fn durable_applied_index(&self) -> u64 {
        self.lock().durable_applied_index
    }

    /// The revision of the last write; 1 for an empty store.
    pub fn current_revision(&self) -> i64 {
        self.lock().meta.current_revision
    }

    /// The revision of the last compaction; 0 when never compacted.
    pub fn compact_revision(&self) -> i64 {
        self.lock().meta.compact_revision
    }

    /// Applies one committed entry and makes it durable before returning.
    pub fn apply(&self, index: u64, command: &Command) -> Result<ApplyOutcome, StoreError> {
        let mut outcomes = self.apply_batch([(index, Some(command))], Durability::Immediate)?;
        debug_assert_eq!(outcomes.len(), 1);
        outcomes.pop().ok_or_else(|| StoreError::Corrupt {
            what: "a batch of one entry produced no outcome".to_string(),
            location: format!("log index {index}"),
        })
    }

    /// Applies committed entries in index order within one redb transaction.
    /// `None` marks an entry without a command (it only advances the applied
    /// index). Indices at or below the applied index are skipped and reported;
    /// a gap is an error and applies nothing of the batch.
    pub fn apply_batch<'c>(
        &self,
        entries: impl IntoIterator<Item = (u64, Option<&'c Command>)>,
        durability: Durability,
    ) -> Result<Vec<ApplyOutcome>, StoreError> {
        let mut cached = self.lock();
        let txn = self
            .db
            .begin_write()
            .map_err(StoreError::database("starting an apply transaction"))?;
        let mut meta = cached.meta;
        let mut outcomes = Vec::new();
        {
            let mut tables = open_write_tables(&txn)?;
            for (index, command) in entries {
                outcomes.push(apply_entry(&mut tables, &mut meta, index, command)?);
            }
            if meta != cached.meta {
                let mut meta_table = txn
                    .open_table(META)
                    .map_err(StoreError::database("opening the meta table"))?;
                write_meta(&mut meta_table, &meta)?;
            }
        }
        if meta == cached.meta {
            txn.abort().map_err(StoreError::database(
                "ending an apply transaction that changed nothing",
            ))?;
            return Ok(outcomes);
        }
        self.commit(&mut cached, txn, durability, meta)?;
        if outcomes.iter().any(changed_leases) {
            cached.lease_generation += 1;
        }
        Ok(outcomes)
    }

    fn commit(
        &self,
        cached: &mut Cached,
        mut txn: WriteTransaction,
        durability: Durability,
        meta: Meta,
    ) -> Result<(), StoreError> {
        let immediate = durability == Durability::Immediate
            || cached.deferred_commits + 1 >= DEFERRED_COMMITS_MAX;
        txn.set_durability(if immediate {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        });
        txn.commit()
            .map_err(StoreError::database("committing applied entries"))?;
        cached.meta = meta;
        if immediate {
            cached.durable_applied_index = meta.applied_index;
            cached.deferred_commits = 0;
        } else {
            cached.deferred_commits += 1;
        }
        Ok(())
    }

    /// Makes every applied entry durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        let mut cached = self.lock();
        if cached.durable_applied_index == cached.meta.applied_index && cached.deferred_commits == 0
        {
            return Ok(());
        }
        let txn = self
            .db
            .begin_write()
            .map_err(StoreError::database("starting a flush"))?;
        let meta = cached.meta;
        self.commit(&mut cached, txn, Durability::Immediate, meta)
    }

    /// Reads committed state, as etcd's Range (the serializable/linearizable
    /// choice is the server's).
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, Error> {
        request.validate()?;
        let txn = self
            .db
            .begin_read()
            .map_err(StoreError::database("starting a read"))?;
        let meta = read_meta(
            &txn.open_table(META)
                .map_err(StoreError::database("opening the meta table"))?,
        )?;
        let at = meta.read_revision(request.revision)?;
        let index = txn
            .open_table(KEY_INDEX)
            .map_err(StoreError::database("opening the key index"))?;
        let revisions = txn
            .open_table(REVISIONS)
            .map_err(StoreError::database("opening the revisions table"))?;
        let view = View {
            index: &index,
            revisions: &revisions,
        };
        Ok(view.range(request, at, meta.current_revision)?)
    }

    /// Runs a read-only transaction (see [`TxnRequest::is_read_only`]) on
    /// committed state without the log, as etcd serves a serializable
    /// transaction. A transaction with writes is refused.
    pub fn read_only_txn(&self, txn: &TxnRequest) -> Result<TxnResponse, Error> {
        let read = self
            .db
            .begin_read()
            .map_err(StoreError::database("starting a read"))?;
        let meta = read_meta(
            &read
                .open_table(META)
                .map_err(StoreError::database("opening the meta table"))?,
        )?;
        let index = read
            .open_table(KEY_INDEX)
            .map_err(StoreError::database("opening the key index"))?;
        let revisions = read
            .open_table(REVISIONS)
            .map_err(StoreError::database("opening the revisions table"))?;
        let view = View {
            index: &index,
            revisions: &revisions,
        };
        view.read_only_txn(txn, &meta)
    }

    /// The size of the database in bytes (allocated pages for a memory store).
    pub fn db_size_bytes(&self) -> Result<u64, StoreError> {
        match &self.location {
            Location::File(path) => std::fs::metadata(path)
                .map(|metadata| metadata.len())
                .map_err(|source| StoreError::Size {
                    path: path.clone(),
                    source,
                }),
            Location::Memory => {
                let _writer = self.lock();
                let txn = self
                    .db
                    .begin_write()
                    .map_err(StoreError::database("starting a size query"))?;
                let stats = txn
                    .stats()
                    .map_err(StoreError::database("reading database statistics"))?;
                txn.abort()
                    .map_err(StoreError::database("ending a size query"))?;
                Ok(stats.allocated_pages() * stats.page_size() as u64)
            }
        }
    }

    /// Rewrites the database to hand back the space that compaction freed
    /// (etcd's Defragment). Takes `&mut self`: no read or write may run
    /// meanwhile, and it takes time proportional to the database size.
    pub fn defragment(&mut self) -> Result<(), StoreError> {
        self.flush()?;
        self.db
            .compact()
            .map_err(StoreError::database("defragmenting the database"))?;
        Ok(())
    }

    /// Number of stored revisions (history kept since the last compaction).
    pub fn revision_count(&self) -> Result<u64, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(StoreError::database("starting a read"))?;
        let revisions = txn
            .open_table(REVISIONS)
            .map_err(StoreError::database("opening the revisions table"))?;
        revisions
            .len()
            .map_err(StoreError::database("counting revisions"))
    }
}

fn apply_entry(
    tables: &mut WriteTables<'_>,
    meta: &mut Meta,
    index: u64,
    command: Option<&Command>,
) -> Result<ApplyOutcome, StoreError> {
    if index <= meta.applied_index {
        return Ok(ApplyOutcome::AlreadyApplied {
            index,
            applied_index: meta.applied_index,
        });
    }
    let expected = meta.applied_index + 1;
    if index != expected {
        return Err(StoreError::IndexGap { index, expected });
    }
    let outcome = match command {
        None => ApplyOutcome::NoCommand { index },
        Some(command) => {
            let (result, events) = apply_command(tables, meta, command)?;
            ApplyOutcome::Applied(Applied {
                index,
                revision: meta.current_revision,
                result,
                events,
            })
        }
    };
    meta.applied_index = index;
    Ok(outcome)
}

/// Whether an outcome granted or revoked a lease.
fn changed_leases(outcome: &ApplyOutcome) -> bool {
    matches!(
        outcome,
        ApplyOutcome::Applied(Applied {
            result: Ok(Response::LeaseGrant(_) | Response::LeaseRevoke(_)),
            ..
        })
    )
}

pub(crate) fn open_write_tables<'txn>(
    txn: &'txn WriteTransaction,
) -> Result<WriteTables<'txn>, StoreError> {
    Ok(WriteTables {
        index: txn
            .open_table(KEY_INDEX)
            .map_err(StoreError::database("opening the key index"))?,
        revisions: txn
            .open_table(REVISIONS)
            .map_err(StoreError::database("opening the revisions table"))?,
        leases: txn
            .open_table(LEASES)
            .map_err(StoreError::database("opening the lease table"))?,
        lease_keys: txn
            .open_table(LEASE_KEYS)
            .map_err(StoreError::database("opening the lease key table"))?,
    })
}

fn meta_value(
    table: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<u64, StoreError> {
    table
        .get(name)
        .map_err(StoreError::database("reading the meta table"))?
        .map(|guard| guard.value())
        .ok_or_else(|| StoreError::Corrupt {
            what: format!("meta entry {name:?} is missing"),
            location: "meta table".to_string(),
        })
}

fn revision_value(
    table: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<i64, StoreError> {
    let value = meta_value(table, name)?;
    i64::try_from(value).map_err(|_| StoreError::Corrupt {
        what: format!("meta entry {name:?} holds {value}, beyond any revision"),
        location: "meta table".to_string(),
    })
}

pub(crate) fn read_meta(table: &impl ReadableTable<&'static str, u64>) -> Result<Meta, StoreError> {
    Ok(Meta {
        applied_index: meta_value(table, META_APPLIED_INDEX)?,
        current_revision: revision_value(table, META_CURRENT_REVISION)?,
        compact_revision: revision_value(table, META_COMPACT_REVISION)?,
    })
}

pub(crate) fn write_meta(
    table: &mut redb::Table<'_, &'static str, u64>,
    meta: &Meta,
) -> Result<(), StoreError> {
    debug_assert!(meta.current_revision >= 1 && meta.compact_revision >= 0);
    debug_assert!(meta.compact_revision <= meta.current_revision);
    let entries = [
        (META_APPLIED_INDEX, meta.applied_index),
        (META_CURRENT_REVISION, meta.current_revision.unsigned_abs()),
        (META_COMPACT_REVISION, meta.compact_revision.unsigned_abs()),
    ];
    for (name, value) in entries {
        table
            .insert(name, value)
            .map_err(StoreError::database("writing the meta table"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
