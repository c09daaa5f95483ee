//! The file system the log writes through: exactly the operations the log
//! needs, as a trait, so the simulator can run the real log on a simulated
//! disk. [`StdFileSystem`] is the real one over `std::fs`, and the default.
//!
//! This module owns only the seam; it must never decide what is written where
//! or in which order (the log does), nor add buffering of its own.
//!
//! Dispatch is dynamic: one virtual call costs nothing next to an fdatasync.

use std::fmt::Debug;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Holds a directory's lock until dropped (see [`FileSystem::lock_file`]).
pub type LockGuard = Box<dyn Debug + Send + Sync>;

/// The directory and file operations the log uses. Paths are the ones the log
/// builds: its data directory joined with a file name.
pub trait FileSystem: Debug + Send + Sync {
    /// Creates `dir` and any missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;

    /// Whether `path` is an existing directory.
    fn is_dir(&self, path: &Path) -> bool;

    /// The names in `dir`, in any order, leaving out names that are not UTF-8
    /// (the log never creates one).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>>;

    /// Makes the creates, renames and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Takes an exclusive lock on the file at `path`, creating it if absent.
    /// A lock held elsewhere fails at once with [`io::ErrorKind::WouldBlock`].
    /// The lock is released when the guard is dropped or the process dies.
    fn lock_file(&self, path: &Path) -> io::Result<LockGuard>;

    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;

    /// Creates a file for reading and writing, emptying it if it exists.
    fn create(&self, path: &Path) -> io::Result<Box<dyn FileHandle>>;

    /// The whole content of the file at `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;

    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Removes the file at `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// Whether the log may prepare its next segment (zero-filling it) on a
    /// background thread. A deterministic simulated disk answers no: the
    /// same work then runs in the foreground, at the same points.
    fn allows_background_threads(&self) -> bool;
}

/// An open file of the log.
pub trait FileHandle: Debug + Send + Sync {
    /// Writes all of `bytes` at `offset`, extending the file if needed.
    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()>;

    /// Makes the file's content durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;

    /// Makes the file's content and metadata durable (fsync).
    fn sync_all(&self) -> io::Result<()>;
}

/// The real file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFileSystem;

impl FileSystem for StdFileSystem {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn lock_file(&self, path: &Path) -> io::Result<LockGuard> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(Box::new(file)),
            Err(fs4::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(fs4::TryLockError::Error(source)) => Err(source),
        }
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(StdFile(file)))
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn FileHandle>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile(file)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn allows_background_threads(&self) -> bool {
        true
    }
}

#[derive(Debug)]
struct StdFile(File);

impl FileHandle for StdFile {
    fn write_all_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(bytes, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}
