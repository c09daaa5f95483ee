//! Small file-system steps the log relies on for durability: syncing a
//! directory so a create, rename or unlink survives a crash, and writing a file
//! atomically. Every failure comes back as a `WalError` naming the path.

use std::path::{Path, PathBuf};

use crate::error::WalError;
use crate::fs::FileSystem;

/// Suffix of files being written; recovery deletes any it finds.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Makes the directory's entries (creates, renames, unlinks) durable.
pub(crate) fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<(), WalError> {
    fs.sync_dir(dir)
        .map_err(|source| WalError::io("syncing directory", dir, source))
}

/// Writes `bytes` to `path` so that after a crash the file is either absent or
/// complete: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(
    fs: &dyn FileSystem,
    path: &Path,
    bytes: &[u8],
) -> Result<(), WalError> {
    let temp = temp_path(path);
    let file = fs
        .create(&temp)
        .map_err(|source| WalError::io("creating", &temp, source))?;
    file.write_all_at(bytes, 0)
        .map_err(|source| WalError::io("writing", &temp, source))?;
    file.sync_all()
        .map_err(|source| WalError::io("syncing", &temp, source))?;
    drop(file);
    fs.rename(&temp, path)
        .map_err(|source| WalError::io("renaming into place", path, source))?;
    sync_dir(fs, parent(path))
}

pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TEMP_SUFFIX);
    PathBuf::from(name)
}

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Creates `dir` and any missing parents, each synced into the directory
/// holding it: a new directory's entry is durable only once its parent is
/// synced, and without that a crash could take the whole log with it.
pub(crate) fn create_dir_all_durably(fs: &dyn FileSystem, dir: &Path) -> Result<(), WalError> {
    let mut missing = Vec::new();
    let mut ancestor = Some(dir);
    while let Some(path) = ancestor.filter(|path| !path.as_os_str().is_empty() && !fs.is_dir(path))
    {
        missing.push(path);
        ancestor = path.parent();
    }
    fs.create_dir_all(dir)
        .map_err(|source| WalError::io("creating data directory", dir, source))?;
    for created in missing.iter().rev() {
        sync_dir(fs, parent(created))?;
    }
    Ok(())
}

pub(crate) fn read_whole(fs: &dyn FileSystem, path: &Path) -> Result<Vec<u8>, WalError> {
    fs.read(path)
        .map_err(|source| WalError::io("reading", path, source))
}

/// Names of the entries of `dir`, sorted, skipping any that are not valid UTF-8 (never ours).
pub(crate) fn list_names(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<String>, WalError> {
    let mut names = fs
        .list_dir(dir)
        .map_err(|source| WalError::io("listing", dir, source))?;
    names.sort();
    Ok(names)
}

/// Deletes temp files a crash left behind: they were never renamed into
/// place, so nothing refers to them.
pub(crate) fn remove_temp_files(fs: &dyn FileSystem, dir: &Path) -> Result<(), WalError> {
    let mut removed_any = false;
    for name in list_names(fs, dir)? {
        if name.ends_with(TEMP_SUFFIX) {
            let path = dir.join(&name);
            tracing::warn!(path = %path.display(), "removing a temp file left by an interrupted write");
            fs.remove_file(&path)
                .map_err(|source| WalError::io("removing", &path, source))?;
            removed_any = true;
        }
    }
    if removed_any {
        sync_dir(fs, dir)?;
    }
    Ok(())
}
