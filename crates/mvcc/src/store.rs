//! [`Store`]: the state machine persisted in one redb database.
//!
//! Owns the redb transactions: every apply writes its effects and the applied
//! Raft index in one write transaction, so after a restart an entry is either
//! wholly there (and re-applying it is a reported no-op) or wholly absent (and
//! the log replays it). Reads serve from committed state through redb's
//! snapshot-isolated read transactions, so they never see half a command.
//!
//! A redb commit costs far more than applying one small command, so deferred
//! applies gather in one open write transaction (as etcd's backend gathers
//! them in its batch transaction) until a reader needs them, up to
//! [`OPEN_APPLY_ENTRIES_MAX`] entries have gathered, or [`Store::flush`]. Every
//! read first commits what gathered, so a read never misses an applied entry. This
//! module must never interpret commands (see `engine`) nor know about Raft roles
//! or the network.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use redb::backends::InMemoryBackend;
use redb::{
    Database, ReadTransaction, ReadableTable, ReadableTableMetadata, StorageBackend,
    WriteTransaction,
};

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

/// Deferred applies gathered in the open write transaction before it is
/// committed even though no reader asked for them.
pub const OPEN_APPLY_ENTRIES_MAX: usize = 4096;

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
    /// Any other [`StorageBackend`]: memory, or a simulated disk.
    Backend,
}

/// The counters as last applied, plus commit and durability bookkeeping.
#[derive(Debug)]
pub(crate) struct Cached {
    /// As applied, including what waits in `open_apply`.
    pub(crate) meta: Meta,
    /// As last committed: what a failure in the open transaction falls back to.
    pub(crate) committed_meta: Meta,
    pub(crate) durable_applied_index: u64,
    pub(crate) deferred_commits: u32,
    /// Moves whenever the set of leases may have changed (see
    /// [`Store::lease_generation`]).
    pub(crate) lease_generation: u64,
    open_apply: Option<OpenApply>,
}

/// Deferred applies not committed yet.
struct OpenApply {
    txn: WriteTransaction,
    entries: usize,
}

impl std::fmt::Debug for OpenApply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenApply")
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

/// etcd's v3 data model over one redb database.
///
/// All methods take `&self`: reads run concurrently with each other and with
/// one writer; writers are serialized.
pub struct Store {
    pub(crate) db: Database,
    location: Location,
    pub(crate) cached: Mutex<Cached>,
    /// Set while `cached.open_apply` holds entries, so readers skip the lock
    /// when there is nothing to commit.
    open_apply_pending: AtomicBool,
    #[cfg(feature = "mutations")]
    mutation: Option<Mutation>,
}

/// A deliberate bug, switched on by [`Store::set_mutation`] in test builds so
/// the simulator can prove its checkers catch it.
#[cfg(feature = "mutations")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// A client's Range reads the last committed database state, missing
    /// the applies gathered in the open write transaction.
    ReadMissesGatheredApplies,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location)
            .field("cached", &self.cached)
            .finish_non_exhaustive()
    }
}

impl Drop for Store {
    /// Ends the gathered apply transaction before the database closes:
    /// closing starts a write transaction of its own, which would wait
    /// forever for the open one. The gathered applies are dropped, as a crash
    /// would drop them, and the Raft log replays them on the next start.
    fn drop(&mut self) {
        let cached = self
            .cached
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        drop(cached.open_apply.take());
    }
}

/// Opens (or creates) the redb file at `path`. A damaged file is reported
/// as [`StoreError::Damaged`], naming it: redb reports some damage as
/// corruption and asserts against other damage (a file cut shorter than its
/// header records trips an assertion), so a panic inside the open is caught
/// and reported the same way. Nothing of the half-opened database outlives
/// the panic: it is dropped during the unwind.
fn open_file(path: &Path) -> Result<Database, StoreError> {
    let damaged = |reason: String| StoreError::Damaged {
        path: path.to_path_buf(),
        reason,
    };
    match std::panic::catch_unwind(|| Database::create(path)) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason)))) => {
            Err(damaged(reason))
        }
        Ok(Err(source)) => Err(StoreError::Open {
            path: path.to_path_buf(),
            source: Box::new(source),
        }),
        Err(panic) => Err(damaged(format!(
            "the database library gave up reading it ({})",
            panic_message(panic.as_ref())
        ))),
    }
}

/// The text a panic was raised with, when it was raised with text.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

impl Store {
    /// Opens the database at `path`, creating it when absent.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = open_file(&path)?;
        Self::init(db, Location::File(path))
    }

    /// A store that lives in memory only (for tests).
    pub fn in_memory() -> Result<Self, StoreError> {
        Self::open_backend(InMemoryBackend::new(), "<memory>")
    }

    /// Opens the database kept in `backend`, creating it when empty, and
    /// repairing it when a crash interrupted a commit. Immediate commits call
    /// the backend's `sync_data` before they return; deferred ones only write.
    /// This is how the simulator runs the store on a simulated disk.
    pub fn with_backend(backend: impl StorageBackend) -> Result<Self, StoreError> {
        Self::open_backend(backend, "<storage backend>")
    }

    fn open_backend(backend: impl StorageBackend, name: &str) -> Result<Self, StoreError> {
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|source| StoreError::Open {
                path: PathBuf::from(name),
                source: Box::new(source),
            })?;
        Self::init(db, Location::Backend)
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
                committed_meta: meta,
                durable_applied_index: meta.applied_index,
                deferred_commits: 0,
                lease_generation: 0,
                open_apply: None,
            }),
            open_apply_pending: AtomicBool::new(false),
            #[cfg(feature = "mutations")]
            mutation: None,
        })
    }

    #[cfg(feature = "mutations")]
    pub fn set_mutation(&mut self, mutation: Option<Mutation>) {
        self.mutation = mutation;
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
        let (txn, entries_before) = match cached.open_apply.take() {
            Some(open) => (open.txn, open.entries),
            None => (
                self.db
                    .begin_write()
                    .map_err(StoreError::database("starting an apply transaction"))?,
                0,
            ),
        };
        let entries: Vec<(u64, Option<&Command>)> = entries.into_iter().collect();
        if let Err(gap) = check_contiguous(&entries, cached.meta.applied_index) {
            cached.open_apply = (entries_before > 0).then_some(OpenApply {
                txn,
                entries: entries_before,
            });
            return Err(gap);
        }
        let mut meta = cached.meta;
        let mut outcomes = Vec::with_capacity(entries.len());
        let applied = apply_entries(&txn, &mut meta, entries, &mut outcomes);
        if let Err(error) = applied {
            // Dropping the transaction aborts it, with what it gathered before.
            drop(txn);
            cached.meta = cached.committed_meta;
            self.open_apply_pending.store(false, Ordering::Release);
            return Err(error);
        }
        if meta == cached.meta && entries_before == 0 {
            txn.abort().map_err(StoreError::database(
                "ending an apply transaction that changed nothing",
            ))?;
            return Ok(outcomes);
        }
        cached.meta = meta;
        if outcomes.iter().any(changed_leases) {
            cached.lease_generation += 1;
        }
        let entries = entries_before + outcomes.len();
        if durability == Durability::Immediate || entries >= OPEN_APPLY_ENTRIES_MAX {
            self.commit(&mut cached, txn, durability)?;
        } else {
            cached.open_apply = Some(OpenApply { txn, entries });
            self.open_apply_pending.store(true, Ordering::Release);
        }
        Ok(outcomes)
    }

    /// Starts a read of everything applied so far: what gathered in the open
    /// apply transaction is committed first. Every read goes through here.
    pub(crate) fn begin_read(&self, what: &'static str) -> Result<ReadTransaction, StoreError> {
        self.commit_open_apply()?;
        self.db.begin_read().map_err(StoreError::database(what))
    }

    /// The read a client's Range runs in: [`Store::begin_read`], unless the
    /// [`Mutation::ReadMissesGatheredApplies`] bug is on.
    fn begin_client_read(&self) -> Result<ReadTransaction, StoreError> {
        #[cfg(feature = "mutations")]
        if self.mutation == Some(Mutation::ReadMissesGatheredApplies) {
            return self
                .db
                .begin_read()
                .map_err(StoreError::database("starting a read"));
        }
        self.begin_read("starting a read")
    }

    /// Commits the open apply transaction, if any, so reads that start next
    /// see every applied entry.
    fn commit_open_apply(&self) -> Result<(), StoreError> {
        if !self.open_apply_pending.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut cached = self.lock();
        self.commit_open_apply_locked(&mut cached)
    }

    pub(crate) fn commit_open_apply_locked(&self, cached: &mut Cached) -> Result<(), StoreError> {
        match cached.open_apply.take() {
            Some(open) => self.commit(cached, open.txn, Durability::Deferred),
            None => Ok(()),
        }
    }

    /// Commits `txn` with everything applied so far; deferred commits become
    /// durable anyway every [`DEFERRED_COMMITS_MAX`].
    fn commit(
        &self,
        cached: &mut Cached,
        mut txn: WriteTransaction,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let meta = cached.meta;
        let immediate = durability == Durability::Immediate
            || cached.deferred_commits + 1 >= DEFERRED_COMMITS_MAX;
        txn.set_durability(if immediate {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        });
        let committed = txn.commit();
        // Cleared only once the commit is visible: a reader that finds the
        // flag clear skips the lock and reads committed state, so clearing it
        // before the commit ends would let that reader miss applies whose
        // writers have already been answered.
        self.open_apply_pending.store(false, Ordering::Release);
        if let Err(error) = committed {
            cached.meta = cached.committed_meta;
            return Err(StoreError::database("committing applied entries")(error));
        }
        cached.committed_meta = meta;
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
        if let Some(open) = cached.open_apply.take() {
            return self.commit(&mut cached, open.txn, Durability::Immediate);
        }
        if cached.durable_applied_index == cached.meta.applied_index && cached.deferred_commits == 0
        {
            return Ok(());
        }
        let txn = self
            .db
            .begin_write()
            .map_err(StoreError::database("starting a flush"))?;
        self.commit(&mut cached, txn, Durability::Immediate)
    }

    /// Reads committed state, as etcd's Range (the serializable/linearizable
    /// choice is the server's).
    pub fn range(&self, request: &RangeRequest) -> Result<RangeResponse, Error> {
        request.validate()?;
        let txn = self.begin_client_read()?;
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
        let read = self.begin_read("starting a read")?;
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

    /// The size of the database in bytes (allocated pages for a store that
    /// is not a file).
    pub fn db_size_bytes(&self) -> Result<u64, StoreError> {
        match &self.location {
            Location::File(path) => std::fs::metadata(path)
                .map(|metadata| metadata.len())
                .map_err(|source| StoreError::Size {
                    path: path.clone(),
                    source,
                }),
            Location::Backend => {
                let mut writer = self.lock();
                self.commit_open_apply_locked(&mut writer)?;
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
        let txn = self.begin_read("starting a read")?;
        let revisions = txn
            .open_table(REVISIONS)
            .map_err(StoreError::database("opening the revisions table"))?;
        revisions
            .len()
            .map_err(StoreError::database("counting revisions"))
    }
}

/// Refuses a batch that would leave a gap after `applied_index`, before any
/// of it is applied.
fn check_contiguous(
    entries: &[(u64, Option<&Command>)],
    applied_index: u64,
) -> Result<(), StoreError> {
    let mut expected = applied_index + 1;
    for &(index, _) in entries {
        if index >= expected {
            if index != expected {
                return Err(StoreError::IndexGap { index, expected });
            }
            expected += 1;
        }
    }
    Ok(())
}

/// Applies `entries` in `txn`, advancing `meta`, and writes the new meta.
fn apply_entries(
    txn: &WriteTransaction,
    meta: &mut Meta,
    entries: Vec<(u64, Option<&Command>)>,
    outcomes: &mut Vec<ApplyOutcome>,
) -> Result<(), StoreError> {
    let before = *meta;
    {
        let mut tables = open_write_tables(txn)?;
        for (index, command) in entries {
            outcomes.push(apply_entry(&mut tables, meta, index, command)?);
        }
    }
    if *meta != before {
        let mut meta_table = txn
            .open_table(META)
            .map_err(StoreError::database("opening the meta table"))?;
        write_meta(&mut meta_table, meta)?;
    }
    Ok(())
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
