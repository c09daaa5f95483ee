//! One process life's view of a simulated disk: the file system the real log
//! writes through ([`wal::fs::FileSystem`]) and the storage the real store
//! keeps its database in ([`mvcc::StorageBackend`]).
//!
//! Owns: handing each call to the disk's state under its lock, and refusing
//! every call once the process that mounted the disk has crashed. Must never:
//! keep bytes of its own (no caching: the disk decides what survives).

use std::io;
use std::path::{Path, PathBuf};

use wal::fs::{FileHandle, FileSystem, LockGuard};

use super::state::FileId;
use super::SimDisk;

/// The disk as one life of the member's process sees it (from
/// [`SimDisk::mount`]); after a crash every call fails.
#[derive(Clone, Debug)]
pub struct SimFileSystem {
    disk: SimDisk,
    generation: u64,
}

impl SimFileSystem {
    pub(super) fn new(disk: SimDisk, generation: u64) -> Self {
        SimFileSystem { disk, generation }
    }

    /// Runs `operation` on the disk's state, unless this process has crashed.
    fn with_state<T>(
        &self,
        operation: impl FnOnce(&mut super::state::DiskState) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.disk.lock();
        state.check_alive(self.generation)?;
        operation(&mut state)
    }

    fn open_handle(&self, path: &Path, create: bool, truncate: bool) -> io::Result<SimFile> {
        let id = self.with_state(|state| state.open_file(path, create, truncate))?;
        Ok(SimFile {
            disk: self.disk.clone(),
            generation: self.generation,
            id,
            path: path.to_path_buf(),
        })
    }

    /// A redb storage backend over the file at `path`, created empty when
    /// absent. The creation is durable only once `path`'s directory is synced
    /// (see [`FileSystem::sync_dir`]), as on a real disk.
    pub fn storage_backend(&self, path: &Path) -> io::Result<SimStorageBackend> {
        Ok(SimStorageBackend {
            file: self.open_handle(path, true, false)?,
        })
    }
}

impl FileSystem for SimFileSystem {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.with_state(|state| state.create_dir_all(dir))
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.with_state(|state| Ok(state.is_dir(path)))
            .unwrap_or(false)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.with_state(|state| state.list_dir(dir))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.with_state(|state| state.sync_dir(dir))
    }

    fn lock_file(&self, path: &Path) -> io::Result<LockGuard> {
        let lock_id = self.with_state(|state| state.lock(path))?;
        Ok(Box::new(SimLock {
            disk: self.disk.clone(),
            generation: self.generation,
            path: path.to_path_buf(),
            lock_id,
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(self.open_handle(path, false, false)?))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        Ok(Box::new(self.open_handle(path, true, true)?))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.with_state(|state| state.read_file(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.with_state(|state| state.rename(from, to))
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.with_state(|state| state.remove_file(path))
    }

    fn allows_background_threads(&self) -> bool {
        false
    }
}

/// An open file of a simulated disk.
#[derive(Debug)]
pub struct SimFile {
    disk: SimDisk,
    generation: u64,
    id: FileId,
    /// The name it was opened by, for [`SimDisk::fill_up`].
    path: PathBuf,
}

impl SimFile {
    fn with_state<T>(
        &self,
        operation: impl FnOnce(&mut super::state::DiskState, FileId) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.disk.lock();
        state.check_alive(self.generation)?;
        operation(&mut state, self.id)
    }
}

impl Drop for SimFile {
    fn drop(&mut self) {
        let mut state = self.disk.lock();
        if state.check_alive(self.generation).is_ok() {
            state.close_file(self.id);
        }
    }
}

impl FileHandle for SimFile {
    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.with_state(|state, id| {
            state.check_space(&self.path)?;
            state.write(id, offset, bytes)
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.with_state(|state, id| state.sync_file(id))
    }

    fn sync_all(&self) -> io::Result<()> {
        self.with_state(|state, id| state.sync_file(id))
    }
}

/// A redb storage backend on a simulated disk: `sync_data` is a sync like
/// any other, durable once the simulator completes it.
#[derive(Debug)]
pub struct SimStorageBackend {
    file: SimFile,
}

impl mvcc::StorageBackend for SimStorageBackend {
    fn len(&self) -> io::Result<u64> {
        self.file
            .with_state(|state, id| Ok(state.file(id)?.current.len() as u64))
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.file
            .with_state(|state, id| state.read_at(id, offset, len))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.with_state(|state, id| state.set_len(id, len))
    }

    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        self.file.with_state(|state, id| state.sync_file(id))
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file
            .with_state(|state, id| state.write(id, offset, data))
    }
}

/// Holds a lock of a simulated file until dropped or the process crashes.
#[derive(Debug)]
struct SimLock {
    disk: SimDisk,
    generation: u64,
    path: PathBuf,
    lock_id: u64,
}

impl Drop for SimLock {
    fn drop(&mut self) {
        let mut state = self.disk.lock();
        if state.check_alive(self.generation).is_ok() {
            state.unlock(&self.path, self.lock_id);
        }
    }
}
