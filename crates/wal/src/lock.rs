//! The data directory's lock: an exclusive advisory lock on `LOCK`, held for as
//! long as the log is open, so two processes never write one log. The kernel
//! drops it when the process dies, so a crash never leaves a stale lock.

use std::fs::{File, OpenOptions};
use std::path::Path;

use crate::error::WalError;

const LOCK_FILE_NAME: &str = "LOCK";

/// Holds the lock until dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _file: File,
}

impl DirLock {
    pub(crate) fn acquire(dir: &Path) -> Result<Self, WalError> {
        let path = dir.join(LOCK_FILE_NAME);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| WalError::io("opening lock file", &path, source))?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(fs4::TryLockError::WouldBlock) => Err(WalError::Locked {
                dir: dir.to_path_buf(),
            }),
            Err(fs4::TryLockError::Error(source)) => Err(WalError::io("locking", &path, source)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_on_the_same_directory_is_refused_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let error = DirLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(error, WalError::Locked { .. }), "{error}");
        assert!(error.to_string().contains("locked by another process"));
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
