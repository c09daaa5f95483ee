//! Snapshot files: one file per snapshot, written atomically and checksummed,
//! named by index and term so the log's snapshot marker finds its file. Keeps
//! the newest few and deletes older ones. This module never interprets the
//! state-machine bytes.
//!
//! Layout:
//!
//! ```text
//! 0..8    magic "RKVSNAP\0"
//! 8..12   format version (u32), 12..16 reserved
//! 16..24  cluster id
//! 24..32  index, 32..40 term
//! 40..44  voter count n, then n voter ids (u64 each)
//! then    learner count m (u32), then m learner ids (u64 each; version 2 on,
//!         version 1 files have no learners)
//! then    data length (u64), data
//! last 4  crc32c of everything before it
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use raft::{ConfState, LogIndex, NodeId, Snapshot, SnapshotMeta, Term};

use crate::error::WalError;
use crate::fs::FileSystem;
use crate::fs_util;
use crate::record::{u32_at, u64_at};

const SNAPSHOT_MAGIC: [u8; 8] = *b"RKVSNAP\0";
const SNAPSHOT_FORMAT_VERSION: u32 = 2;
/// The format before learners: read, never written.
const SNAPSHOT_FORMAT_VERSION_WITHOUT_LEARNERS: u32 = 1;
const SNAPSHOT_SUFFIX: &str = ".snap";
const FIXED_HEADER_BYTES: usize = 44;
const CHECKSUM_BYTES: usize = 4;

/// The directory's snapshot files.
#[derive(Debug)]
pub(crate) struct SnapshotStore {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    cluster_id: u64,
    snapshots_kept: usize,
}

impl SnapshotStore {
    pub(crate) fn new(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        cluster_id: u64,
        snapshots_kept: usize,
    ) -> Self {
        debug_assert!(snapshots_kept >= 1);
        SnapshotStore {
            fs,
            dir: dir.to_path_buf(),
            cluster_id,
            snapshots_kept,
        }
    }

    pub(crate) fn path_of(&self, index: LogIndex, term: Term) -> PathBuf {
        self.dir
            .join(format!("{index:016x}-{term:016x}{SNAPSHOT_SUFFIX}"))
    }

    /// Writes a snapshot durably (it exists whole or not at all after a crash).
    pub(crate) fn write(&self, snapshot: &Snapshot) -> Result<(), WalError> {
        let path = self.path_of(snapshot.meta.index, snapshot.meta.term);
        fs_util::write_atomically(self.fs.as_ref(), &path, &encode(self.cluster_id, snapshot))
    }

    /// Reads and verifies the snapshot at `(index, term)`.
    pub(crate) fn load(&self, index: LogIndex, term: Term) -> Result<Snapshot, WalError> {
        let path = self.path_of(index, term);
        let bytes = match self.fs.read(&path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(WalError::MissingSnapshot { path, index, term })
            }
            Err(source) => return Err(WalError::io("reading", &path, source)),
        };
        let snapshot = decode(&bytes, self.cluster_id, &path)?;
        if snapshot.meta.index != index || snapshot.meta.term != term {
            return Err(WalError::corrupt(
                &path,
                24,
                format!(
                    "snapshot file holds index {} term {}, its name says index {index} term {term}",
                    snapshot.meta.index, snapshot.meta.term
                ),
            ));
        }
        Ok(snapshot)
    }

    /// Deletes all but the newest `snapshots_kept` snapshots, never the one at
    /// `current_index` (the one the log refers to), nor any newer than it (a
    /// snapshot written just before a crash, not yet referenced).
    pub(crate) fn prune(&self, current_index: LogIndex) -> Result<(), WalError> {
        let mut older: Vec<(LogIndex, PathBuf)> = self
            .list()?
            .into_iter()
            .filter(|(index, _)| *index < current_index)
            .collect();
        older.sort();
        let keep_older = self.snapshots_kept - 1;
        let remove_count = older.len().saturating_sub(keep_older);
        for (_, path) in older.iter().take(remove_count) {
            self.fs
                .remove_file(path)
                .map_err(|source| WalError::io("removing old snapshot", path, source))?;
        }
        if remove_count > 0 {
            fs_util::sync_dir(self.fs.as_ref(), &self.dir)?;
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<(LogIndex, PathBuf)>, WalError> {
        Ok(fs_util::list_names(self.fs.as_ref(), &self.dir)?
            .into_iter()
            .filter_map(|name| {
                let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
                let (index_hex, _term_hex) = stem.split_once('-')?;
                let index = u64::from_str_radix(index_hex, 16).ok()?;
                Some((index, self.dir.join(&name)))
            })
            .collect())
    }
}

fn encode(cluster_id: u64, snapshot: &Snapshot) -> Vec<u8> {
    let voters = &snapshot.meta.conf_state.voters;
    let learners = &snapshot.meta.conf_state.learners;
    let mut bytes = Vec::with_capacity(
        FIXED_HEADER_BYTES
            + voters.len() * 8
            + 4
            + learners.len() * 8
            + 8
            + snapshot.data.len()
            + CHECKSUM_BYTES,
    );
    bytes.extend_from_slice(&SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&cluster_id.to_le_bytes());
    bytes.extend_from_slice(&snapshot.meta.index.to_le_bytes());
    bytes.extend_from_slice(&snapshot.meta.term.to_le_bytes());
    let voter_count = u32::try_from(voters.len()).expect("voter count fits in u32");
    bytes.extend_from_slice(&voter_count.to_le_bytes());
    for voter in voters {
        bytes.extend_from_slice(&voter.to_le_bytes());
    }
    let learner_count = u32::try_from(learners.len()).expect("learner count fits in u32");
    bytes.extend_from_slice(&learner_count.to_le_bytes());
    for learner in learners {
        bytes.extend_from_slice(&learner.to_le_bytes());
    }
    bytes.extend_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&snapshot.data);
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes
}

fn decode(bytes: &[u8], cluster_id: u64, path: &Path) -> Result<Snapshot, WalError> {
    if bytes.len() < FIXED_HEADER_BYTES + 8 + CHECKSUM_BYTES || bytes[0..8] != SNAPSHOT_MAGIC {
        return Err(WalError::corrupt(
            path,
            0,
            "not a snapshot file (too short or bad magic bytes)",
        ));
    }
    let checksum_offset = bytes.len() - CHECKSUM_BYTES;
    if crc32c::crc32c(&bytes[..checksum_offset]) != u32_at(bytes, checksum_offset) {
        return Err(WalError::corrupt(
            path,
            checksum_offset as u64,
            "snapshot checksum does not match its contents",
        ));
    }
    let version = u32_at(bytes, 8);
    if version != SNAPSHOT_FORMAT_VERSION && version != SNAPSHOT_FORMAT_VERSION_WITHOUT_LEARNERS {
        return Err(WalError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: SNAPSHOT_FORMAT_VERSION,
        });
    }
    let found_cluster_id = u64_at(bytes, 16);
    if found_cluster_id != cluster_id {
        return Err(WalError::ClusterMismatch {
            path: path.to_path_buf(),
            expected: cluster_id,
            found: found_cluster_id,
        });
    }
    let voter_count = u32_at(bytes, 40) as usize;
    let voters_end = FIXED_HEADER_BYTES + voter_count * 8;
    if voters_end + 8 > checksum_offset {
        return Err(WalError::corrupt(
            path,
            40,
            format!("voter count {voter_count} runs past the file"),
        ));
    }
    let voters = (0..voter_count)
        .map(|position| u64_at(bytes, FIXED_HEADER_BYTES + position * 8))
        .collect();
    let (learners, members_end) = if version == SNAPSHOT_FORMAT_VERSION_WITHOUT_LEARNERS {
        (Vec::new(), voters_end)
    } else {
        decode_learners(bytes, voters_end, checksum_offset, path)?
    };
    let data_bytes = u64_at(bytes, members_end);
    if data_bytes != (checksum_offset - members_end - 8) as u64 {
        return Err(WalError::corrupt(
            path,
            members_end as u64,
            format!("data length {data_bytes} does not match the file size"),
        ));
    }
    Ok(Snapshot {
        meta: SnapshotMeta {
            index: u64_at(bytes, 24),
            term: u64_at(bytes, 32),
            conf_state: ConfState { voters, learners },
        },
        data: bytes[members_end + 8..checksum_offset].to_vec(),
    })
}

/// The learner list at `offset`, and where it ends.
fn decode_learners(
    bytes: &[u8],
    offset: usize,
    checksum_offset: usize,
    path: &Path,
) -> Result<(Vec<NodeId>, usize), WalError> {
    let learner_count = u32_at(bytes, offset) as usize;
    let learners_end = offset + 4 + learner_count * 8;
    if learners_end + 8 > checksum_offset {
        return Err(WalError::corrupt(
            path,
            offset as u64,
            format!("learner count {learner_count} runs past the file"),
        ));
    }
    let learners = (0..learner_count)
        .map(|position| u64_at(bytes, offset + 4 + position * 8))
        .collect();
    Ok((learners, learners_end))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::fs::StdFileSystem;

    fn snapshot(index: LogIndex, term: Term) -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index,
                term,
                conf_state: ConfState {
                    voters: vec![1, 2, 3],
                    learners: vec![4, 7],
                },
            },
            data: format!("state at {index}").into_bytes(),
        }
    }

    #[test]
    fn snapshot_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(Arc::new(StdFileSystem), dir.path(), 9, 2);
        store.write(&snapshot(10, 2)).unwrap();
        assert_eq!(store.load(10, 2).unwrap(), snapshot(10, 2));
        assert!(matches!(
            store.load(11, 2),
            Err(WalError::MissingSnapshot { .. })
        ));
    }

    #[test]
    fn version_1_file_without_learners_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(Arc::new(StdFileSystem), dir.path(), 9, 2);
        let mut expected = snapshot(10, 2);
        expected.meta.conf_state.learners.clear();
        let mut bytes = encode(9, &expected);
        bytes.truncate(bytes.len() - CHECKSUM_BYTES);
        let learner_count_offset = FIXED_HEADER_BYTES + 3 * 8;
        bytes.drain(learner_count_offset..learner_count_offset + 4);
        bytes[8..12].copy_from_slice(&SNAPSHOT_FORMAT_VERSION_WITHOUT_LEARNERS.to_le_bytes());
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        fs::write(store.path_of(10, 2), &bytes).unwrap();
        assert_eq!(store.load(10, 2).unwrap(), expected);
    }

    #[test]
    fn learner_count_past_the_end_is_caught_with_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(Arc::new(StdFileSystem), dir.path(), 9, 2);
        let mut bytes = encode(9, &snapshot(10, 2));
        bytes.truncate(bytes.len() - CHECKSUM_BYTES);
        let learner_count_offset = FIXED_HEADER_BYTES + 3 * 8;
        bytes[learner_count_offset..learner_count_offset + 4]
            .copy_from_slice(&1000u32.to_le_bytes());
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        let path = store.path_of(10, 2);
        fs::write(&path, &bytes).unwrap();
        let message = store.load(10, 2).unwrap_err().to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("learner count 1000"), "{message}");
    }

    #[test]
    fn flipped_byte_in_data_is_caught_with_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(Arc::new(StdFileSystem), dir.path(), 9, 2);
        store.write(&snapshot(10, 2)).unwrap();
        let path = store.path_of(10, 2);
        let mut bytes = fs::read(&path).unwrap();
        let middle = bytes.len() - 8;
        bytes[middle] ^= 0x10;
        fs::write(&path, &bytes).unwrap();
        let error = store.load(10, 2).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("checksum"), "{message}");
    }

    #[test]
    fn other_cluster_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        SnapshotStore::new(Arc::new(StdFileSystem), dir.path(), 9, 2)
            .write(&snapshot(10, 2))
            .unwrap();
        let error = SnapshotStore::new(Arc::new(StdFileSystem), dir.path(), 8, 2)
            .load(10, 2)
            .unwrap_err();
        assert!(
            matches!(
                error,
                WalError::ClusterMismatch {
                    expected: 8,
                    found: 9,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn prune_keeps_the_newest_and_the_current() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(Arc::new(StdFileSystem), dir.path(), 9, 2);
        for index in [5, 10, 15, 20] {
            store.write(&snapshot(index, 1)).unwrap();
        }
        store.prune(15).unwrap();
        let kept: Vec<LogIndex> = store
            .list()
            .unwrap()
            .into_iter()
            .map(|(index, _)| index)
            .collect();
        assert_eq!(kept, vec![10, 15, 20]);
    }
}
