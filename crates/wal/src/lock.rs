//! The data directory's lock: an exclusive advisory lock on `LOCK`, held for as
//! long as the log is open, so two processes never write one log. The kernel
//! drops it when the process dies, so a crash never leaves a stale lock.

use std::io;
use std::path::Path;

use crate::error::WalError;
use crate::fs::{FileSystem, LockGuard};

const LOCK_FILE_NAME: &str = "LOCK";

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _guard: LockGuard,
}

impl DirLock {
    pub(crate) fn acquire(fs: &dyn FileSystem, dir: &Path) -> Result<Self, WalError> {
        let path = dir.join(LOCK_FILE_NAME);
        match fs.lock_file(&path) {
            Ok(guard) => Ok(DirLock { _guard: guard }),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => Err(WalError::Locked {
                dir: dir.to_path_buf(),
            }),
            Err(source) => Err(WalError::io("locking", &path, source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::StdFileSystem;

    #[test]
    fn second_lock_on_the_same_directory_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(&StdFileSystem, dir.path()).unwrap();
        let error = DirLock::acquire(&StdFileSystem, dir.path()).unwrap_err();
        assert!(matches!(error, WalError::Locked { .. }), "{error}");
        assert!(error.to_string().contains("locked by another process"));
        drop(first);
        DirLock::acquire(&StdFileSystem, dir.path()).unwrap();
    }
}
