//! The bytes and names on one simulated disk, each kept twice: as the running
//! process sees them (current) and as a crash would leave them (durable), with
//! the changes between the two kept in order so that completing a sync replays
//! only what was written since the last one.
//!
//! Owns: files, directories, pending syncs, locks and injected faults. Must
//! never: draw randomness (only `crash` does, with the generator it is handed)
//! or let a handle of a crashed process change anything.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::io;
use std::path::{Component, Path, PathBuf};

use super::{DiskFault, DiskStats};

pub(super) type FileId = u64;

/// Where the disk keeps its directory tree; every path must be under it.
pub(super) const ROOT: &str = "/";

/// One change to a file's bytes.
#[derive(Clone, Debug)]
pub(super) enum FileChange {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

impl FileChange {
    pub(super) fn apply(&self, content: &mut Vec<u8>) {
        match self {
            FileChange::Write { offset, bytes } => {
                let start = *offset as usize;
                let end = start + bytes.len();
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[start..end].copy_from_slice(bytes);
            }
            FileChange::SetLen(len) => content.resize(*len as usize, 0),
        }
    }
}

/// A file's two contents and the changes that lead from one to the other.
#[derive(Default)]
pub(super) struct FileState {
    pub(super) durable: Vec<u8>,
    pub(super) current: Vec<u8>,
    /// Changes since `durable`, oldest first, with their disk-wide sequence numbers.
    pub(super) unsynced: VecDeque<(u64, FileChange)>,
    /// Handles of the running process; an unlinked file lives until they close.
    pub(super) open_handles: usize,
}

impl std::fmt::Debug for FileState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileState")
            .field("durable_bytes", &self.durable.len())
            .field("current_bytes", &self.current.len())
            .field("unsynced_changes", &self.unsynced.len())
            .field("open_handles", &self.open_handles)
            .finish()
    }
}

impl FileState {
    fn change(&mut self, sequence: u64, change: FileChange) {
        change.apply(&mut self.current);
        self.unsynced.push_back((sequence, change));
    }

    /// Forgets every unsynced change: the current content becomes the durable
    /// one again, copying only the ranges those changes touched.
    pub(super) fn roll_back_to_durable(&mut self) {
        let durable_len = self.durable.len();
        self.current.resize(durable_len, 0);
        for (_, change) in self.unsynced.drain(..) {
            let (start, end) = match change {
                FileChange::Write { offset, bytes } => {
                    (offset as usize, offset as usize + bytes.len())
                }
                FileChange::SetLen(len) => (len as usize, durable_len),
            };
            let (start, end) = (start.min(durable_len), end.min(durable_len));
            self.current[start..end].copy_from_slice(&self.durable[start..end]);
        }
    }

    /// Makes every change made before `sequence` durable.
    fn make_durable_before(&mut self, sequence: u64) {
        while self.unsynced.front().is_some_and(|(at, _)| *at < sequence) {
            if let Some((_, change)) = self.unsynced.pop_front() {
                change.apply(&mut self.durable);
            }
        }
    }
}

/// What a directory entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Node {
    File(FileId),
    Dir,
}

/// One change to a directory's entries.
#[derive(Clone, Debug)]
pub(super) enum DirChange {
    Insert { name: String, node: Node },
    Remove { name: String },
    Rename { from: String, to: String },
}

impl DirChange {
    pub(super) fn apply(&self, entries: &mut BTreeMap<String, Node>) {
        match self {
            DirChange::Insert { name, node } => {
                entries.insert(name.clone(), *node);
            }
            DirChange::Remove { name } => {
                entries.remove(name);
            }
            DirChange::Rename { from, to } => {
                if let Some(node) = entries.remove(from) {
                    entries.insert(to.clone(), node);
                }
            }
        }
    }
}

/// A directory's two sets of entries and the changes between them.
#[derive(Debug, Default)]
pub(super) struct Directory {
    pub(super) current: BTreeMap<String, Node>,
    pub(super) durable: BTreeMap<String, Node>,
    pub(super) unsynced: VecDeque<(u64, DirChange)>,
}

impl Directory {
    fn change(&mut self, sequence: u64, change: DirChange) {
        change.apply(&mut self.current);
        self.unsynced.push_back((sequence, change));
    }

    fn make_durable_before(&mut self, sequence: u64) {
        while self.unsynced.front().is_some_and(|(at, _)| *at < sequence) {
            if let Some((_, change)) = self.unsynced.pop_front() {
                change.apply(&mut self.durable);
            }
        }
    }
}

/// What a sync, once completed, makes durable.
#[derive(Clone, Debug)]
pub(super) enum SyncTarget {
    File(FileId),
    Dir(PathBuf),
}

/// A sync the process asked for that has not completed yet: it covers the
/// target's changes made before `sequence`.
#[derive(Clone, Debug)]
pub(super) struct PendingSync {
    /// 1 for the disk's first sync, 2 for the next, ...
    pub(super) ordinal: u64,
    pub(super) sequence: u64,
    pub(super) target: SyncTarget,
}

/// Which kind of operation an injected fault waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Operation {
    Write,
    Sync,
}

#[derive(Debug)]
pub(super) struct DiskState {
    /// Bumped by every crash; handles of an earlier generation are dead.
    pub(super) generation: u64,
    next_sequence: u64,
    next_file_id: FileId,
    pub(super) files: BTreeMap<FileId, FileState>,
    /// Every directory that exists now, by path.
    pub(super) dirs: BTreeMap<PathBuf, Directory>,
    /// In the order the process asked for them.
    pub(super) pending_syncs: VecDeque<PendingSync>,
    locks: BTreeMap<PathBuf, u64>,
    next_lock_id: u64,
    pub(super) armed_fault: Option<DiskFault>,
    /// Files opened under this directory get no more space (see `fill_up`).
    pub(super) full_under: Option<PathBuf>,
    pub(super) stats: DiskStats,
}

impl DiskState {
    pub(super) fn new() -> Self {
        DiskState {
            generation: 0,
            next_sequence: 0,
            next_file_id: 0,
            files: BTreeMap::new(),
            dirs: BTreeMap::from([(PathBuf::from(ROOT), Directory::default())]),
            pending_syncs: VecDeque::new(),
            locks: BTreeMap::new(),
            next_lock_id: 0,
            armed_fault: None,
            full_under: None,
            stats: DiskStats::default(),
        }
    }

    fn next_sequence(&mut self) -> u64 {
        self.next_sequence += 1;
        self.next_sequence
    }

    pub(super) fn check_alive(&self, generation: u64) -> io::Result<()> {
        if generation == self.generation {
            Ok(())
        } else {
            Err(io::Error::other(
                "the process that opened this simulated disk has crashed",
            ))
        }
    }

    /// Fails the operation if an injected fault waits for it.
    fn check_fault(&mut self, operation: Operation) -> io::Result<()> {
        let Some(fault) = self.armed_fault else {
            return Ok(());
        };
        if fault.operation() != operation {
            return Ok(());
        }
        self.armed_fault = None;
        self.stats.faults_injected += 1;
        Err(fault.error())
    }

    /// Fails a write to the file opened as `path` while its directory is full.
    pub(super) fn check_space(&mut self, path: &Path) -> io::Result<()> {
        match &self.full_under {
            Some(dir) if path.starts_with(dir) => {
                self.stats.faults_injected += 1;
                Err(DiskFault::WriteNoSpace.error())
            }
            _ => Ok(()),
        }
    }

    fn directory(&self, dir: &Path) -> io::Result<&Directory> {
        self.dirs
            .get(dir)
            .ok_or_else(|| not_found("directory", dir))
    }

    fn directory_mut(&mut self, dir: &Path) -> io::Result<&mut Directory> {
        self.dirs
            .get_mut(dir)
            .ok_or_else(|| not_found("directory", dir))
    }

    fn file_mut(&mut self, id: FileId) -> io::Result<&mut FileState> {
        self.files
            .get_mut(&id)
            .ok_or_else(|| io::Error::other(format!("simulated file {id} no longer exists")))
    }

    pub(super) fn file(&self, id: FileId) -> io::Result<&FileState> {
        self.files
            .get(&id)
            .ok_or_else(|| io::Error::other(format!("simulated file {id} no longer exists")))
    }

    /// What `path` names now.
    fn lookup(&self, path: &Path) -> io::Result<Node> {
        if path == Path::new(ROOT) {
            return Ok(Node::Dir);
        }
        let (parent, name) = split(path)?;
        self.directory(&parent)?
            .current
            .get(&name)
            .copied()
            .ok_or_else(|| not_found("file", path))
    }

    pub(super) fn is_dir(&self, path: &Path) -> bool {
        self.dirs.contains_key(path)
    }

    pub(super) fn create_dir_all(&mut self, dir: &Path) -> io::Result<()> {
        check_absolute(dir)?;
        let mut path = PathBuf::from(ROOT);
        for component in dir.components().skip(1) {
            path.push(component);
            if self.dirs.contains_key(&path) {
                continue;
            }
            let (parent, name) = split(&path)?;
            if self.directory(&parent)?.current.contains_key(&name) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", path.display()),
                ));
            }
            let sequence = self.next_sequence();
            self.directory_mut(&parent)?.change(
                sequence,
                DirChange::Insert {
                    name,
                    node: Node::Dir,
                },
            );
            self.dirs.insert(path.clone(), Directory::default());
        }
        Ok(())
    }

    pub(super) fn list_dir(&self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(self.directory(dir)?.current.keys().cloned().collect())
    }

    pub(super) fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        self.directory(dir)?;
        self.check_fault(Operation::Sync)?;
        self.request_sync(SyncTarget::Dir(dir.to_path_buf()));
        Ok(())
    }

    /// Opens the file at `path`, creating it (empty) when absent, or emptying
    /// it when `truncate`.
    pub(super) fn open_file(
        &mut self,
        path: &Path,
        create: bool,
        truncate: bool,
    ) -> io::Result<FileId> {
        let id = match self.lookup(path) {
            Ok(Node::File(id)) => id,
            Ok(Node::Dir) => {
                return Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("{} is a directory", path.display()),
                ))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound && create => {
                self.create_file(path)?
            }
            Err(error) => return Err(error),
        };
        if truncate && !self.file(id)?.current.is_empty() {
            self.set_len(id, 0)?;
        }
        self.file_mut(id)?.open_handles += 1;
        Ok(id)
    }

    fn create_file(&mut self, path: &Path) -> io::Result<FileId> {
        let (parent, name) = split(path)?;
        self.directory(&parent)?;
        let id = self.next_file_id;
        self.next_file_id += 1;
        self.files.insert(id, FileState::default());
        let sequence = self.next_sequence();
        self.directory_mut(&parent)?.change(
            sequence,
            DirChange::Insert {
                name,
                node: Node::File(id),
            },
        );
        Ok(id)
    }

    pub(super) fn close_file(&mut self, id: FileId) {
        if let Some(file) = self.files.get_mut(&id) {
            file.open_handles = file.open_handles.saturating_sub(1);
        }
        self.collect_garbage();
    }

    pub(super) fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.lookup(path)? {
            Node::File(id) => Ok(self.file(id)?.current.clone()),
            Node::Dir => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            )),
        }
    }

    pub(super) fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_parent, from_name) = split(from)?;
        let (to_parent, to_name) = split(to)?;
        if from_parent != to_parent {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "renaming {} to {}: the simulated disk renames only within one directory",
                    from.display(),
                    to.display()
                ),
            ));
        }
        if self.lookup(from)? == Node::Dir || self.lookup(to).ok() == Some(Node::Dir) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the simulated disk renames files only",
            ));
        }
        let sequence = self.next_sequence();
        self.directory_mut(&from_parent)?.change(
            sequence,
            DirChange::Rename {
                from: from_name,
                to: to_name,
            },
        );
        self.collect_garbage();
        Ok(())
    }

    pub(super) fn remove_file(&mut self, path: &Path) -> io::Result<()> {
        if self.lookup(path)? == Node::Dir {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                format!("{} is a directory", path.display()),
            ));
        }
        let (parent, name) = split(path)?;
        let sequence = self.next_sequence();
        self.directory_mut(&parent)?
            .change(sequence, DirChange::Remove { name });
        self.collect_garbage();
        Ok(())
    }

    pub(super) fn write(&mut self, id: FileId, offset: u64, bytes: &[u8]) -> io::Result<()> {
        self.file(id)?;
        self.check_fault(Operation::Write)?;
        let sequence = self.next_sequence();
        self.file_mut(id)?.change(
            sequence,
            FileChange::Write {
                offset,
                bytes: bytes.to_vec(),
            },
        );
        self.stats.writes += 1;
        self.stats.bytes_written += bytes.len() as u64;
        Ok(())
    }

    pub(super) fn set_len(&mut self, id: FileId, len: u64) -> io::Result<()> {
        self.file(id)?;
        self.check_fault(Operation::Write)?;
        let sequence = self.next_sequence();
        self.file_mut(id)?.change(sequence, FileChange::SetLen(len));
        Ok(())
    }

    pub(super) fn sync_file(&mut self, id: FileId) -> io::Result<()> {
        self.file(id)?;
        self.check_fault(Operation::Sync)?;
        self.request_sync(SyncTarget::File(id));
        Ok(())
    }

    fn request_sync(&mut self, target: SyncTarget) {
        let sequence = self.next_sequence();
        self.stats.syncs_requested += 1;
        self.pending_syncs.push_back(PendingSync {
            ordinal: self.stats.syncs_requested,
            sequence,
            target,
        });
    }

    pub(super) fn read_at(&self, id: FileId, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let content = &self.file(id)?.current;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start.checked_add(len) {
            Some(end) if end <= content.len() => Ok(content[start..end].to_vec()),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "reading {len} bytes at {offset} of a {}-byte simulated file",
                    content.len()
                ),
            )),
        }
    }

    pub(super) fn lock(&mut self, path: &Path) -> io::Result<u64> {
        if self.locks.contains_key(path) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let id = self.open_file(path, true, false)?;
        self.close_file(id);
        self.next_lock_id += 1;
        self.locks.insert(path.to_path_buf(), self.next_lock_id);
        Ok(self.next_lock_id)
    }

    pub(super) fn unlock(&mut self, path: &Path, lock_id: u64) {
        if self.locks.get(path) == Some(&lock_id) {
            self.locks.remove(path);
        }
    }

    /// Completes the pending syncs whose ordinal is at most `ordinal_max`,
    /// oldest first. Returns how many there were.
    pub(super) fn complete_syncs_through(&mut self, ordinal_max: u64) -> usize {
        let mut completed = 0;
        while self
            .pending_syncs
            .front()
            .is_some_and(|sync| sync.ordinal <= ordinal_max)
        {
            if let Some(sync) = self.pending_syncs.pop_front() {
                self.complete(&sync);
                completed += 1;
            }
        }
        self.collect_garbage();
        completed
    }

    pub(super) fn complete(&mut self, sync: &PendingSync) {
        match &sync.target {
            SyncTarget::File(id) => {
                if let Some(file) = self.files.get_mut(id) {
                    file.make_durable_before(sync.sequence);
                }
            }
            SyncTarget::Dir(path) => {
                if let Some(dir) = self.dirs.get_mut(path) {
                    dir.make_durable_before(sync.sequence);
                }
            }
        }
        self.stats.syncs_completed += 1;
    }

    /// Ends the current process: locks are released and its handles die.
    pub(super) fn end_process(&mut self) {
        self.locks.clear();
        self.generation += 1;
        for file in self.files.values_mut() {
            file.open_handles = 0;
        }
    }

    /// Drops files no name (current or durable) refers to and no handle holds.
    pub(super) fn collect_garbage(&mut self) {
        let named: BTreeSet<FileId> = self
            .dirs
            .values()
            .flat_map(|dir| dir.current.values().chain(dir.durable.values()))
            .filter_map(|node| match node {
                Node::File(id) => Some(*id),
                Node::Dir => None,
            })
            .collect();
        self.files
            .retain(|id, file| named.contains(id) || file.open_handles > 0);
    }

    /// A durable name of file `id`, for reports.
    pub(super) fn durable_path_of(&self, id: FileId) -> Option<PathBuf> {
        self.dirs.iter().find_map(|(dir, entries)| {
            entries
                .durable
                .iter()
                .find(|(_, node)| **node == Node::File(id))
                .map(|(name, _)| dir.join(name))
        })
    }
}

fn not_found(what: &str, path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no simulated {what} {}", path.display()),
    )
}

fn check_absolute(path: &Path) -> io::Result<()> {
    let mut components = path.components();
    if components.next() != Some(Component::RootDir)
        || !components.all(|component| matches!(component, Component::Normal(_)))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "simulated paths must be absolute, without '.' or '..': {}",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// The directory holding `path`, and its name in it.
fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    check_absolute(path)?;
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file in a directory", path.display()),
        )
    };
    let parent = path.parent().ok_or_else(invalid)?;
    let name = path
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(invalid)?;
    Ok((parent.to_path_buf(), name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SimRng;

    fn random_change(rng: &mut SimRng) -> FileChange {
        if rng.chance(0.2) {
            FileChange::SetLen(rng.between(0, 96))
        } else {
            let offset = rng.between(0, 80);
            let bytes = (0..rng.between(1, 24)).map(|_| rng.between(1, 255) as u8);
            FileChange::Write {
                offset,
                bytes: bytes.collect(),
            }
        }
    }

    #[test]
    fn rolling_back_touches_only_changed_ranges_and_restores_the_durable_content() {
        for seed in 0..200 {
            let mut rng = SimRng::new(seed);
            let mut file = FileState::default();
            let changes = rng.between(1, 30);
            for sequence in 1..=changes {
                file.change(sequence, random_change(&mut rng));
            }
            file.make_durable_before(rng.between(1, changes + 1));
            let expected = file.durable.clone();
            file.roll_back_to_durable();
            assert_eq!(file.current, expected, "seed {seed}");
            assert!(file.unsynced.is_empty());
        }
    }
}
