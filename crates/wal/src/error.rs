//! The typed errors of the log. Every variant names what failed and where (file,
//! byte offset, index) and, when the data on disk cannot be trusted, what the
//! operator must do. This module only describes failures; it never decides how
//! to recover from one.

use std::io;
use std::path::{Path, PathBuf};

use raft::LogIndex;

/// What an operator must do when this member's durable state is unusable.
pub const REJOIN_ADVICE: &str = "remove this member's data directory and rejoin it from its peers";

/// Why the log could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Another process (or another handle in this one) has the directory open.
    #[error("data directory {dir} is locked by another process: stop that process or choose another data directory")]
    Locked { dir: PathBuf },

    /// `open` found no log in the directory.
    #[error("data directory {dir} holds no log: create one first")]
    NotInitialized { dir: PathBuf },

    /// `create` found a log already there.
    #[error("data directory {dir} already holds a log: open it instead of creating a new one")]
    AlreadyInitialized { dir: PathBuf },

    /// The file system is full. Nothing acknowledged is lost; the failed
    /// write stays buffered and the next sync retries it.
    #[error("disk full while {operation} {path}: free space; the write is retried")]
    DiskFull {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Any other I/O failure.
    #[error("I/O error while {operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file's bytes are damaged or inconsistent before the tail of the log.
    #[error("corrupt log file {path} at byte {offset}: {problem}; {REJOIN_ADVICE}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        problem: String,
    },

    /// A segment in the middle of the sequence is missing.
    #[error("log segment {missing} is missing from {dir} (segments {before} and {after} are present); {REJOIN_ADVICE}")]
    MissingSegment {
        dir: PathBuf,
        missing: PathBuf,
        before: PathBuf,
        after: PathBuf,
    },

    /// Log entries that must be present are not, in any segment.
    #[error("log entries {first_missing}..={last_missing} are missing (the log should hold every entry after snapshot index {snapshot_index}); a segment before {first_segment} was lost; {REJOIN_ADVICE}")]
    MissingEntries {
        first_missing: LogIndex,
        last_missing: LogIndex,
        snapshot_index: LogIndex,
        first_segment: PathBuf,
    },

    /// A file written for a different cluster.
    #[error("{path} belongs to cluster {found:x}, but this member is in cluster {expected:x}; {REJOIN_ADVICE}")]
    ClusterMismatch {
        path: PathBuf,
        expected: u64,
        found: u64,
    },

    /// A file written by an unknown format version.
    #[error("{path} has format version {found}, this build reads version {supported}: run a build that understands it")]
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    /// The snapshot the log refers to is absent.
    #[error("snapshot {path} (index {index}, term {term}) is referenced by the log but missing; {REJOIN_ADVICE}")]
    MissingSnapshot {
        path: PathBuf,
        index: LogIndex,
        term: u64,
    },

    /// One entry cannot fit in a segment.
    #[error("entry {index} needs {record_bytes} bytes on disk, more than a segment holds ({segment_capacity_bytes} bytes): raise segment_bytes or split the command")]
    EntryTooLarge {
        index: LogIndex,
        record_bytes: u64,
        segment_capacity_bytes: u64,
    },

    /// The caller broke the log's contract (an append leaving a gap, entries not
    /// contiguous, a compaction beyond the end).
    #[error("invalid request: {0}")]
    InvalidRequest(String),

    /// The options cannot describe a working log.
    #[error("invalid options: {0}")]
    InvalidOptions(String),

    /// An earlier write or sync failed, so what is on disk after the last
    /// durable point is unknown. Reopen the log: recovery cuts the unacknowledged tail.
    #[error(
        "the log refuses writes after an earlier failure ({cause}): restart this member to recover"
    )]
    Poisoned { cause: String },
}

impl WalError {
    /// Wraps an I/O error, telling a full disk apart from other failures.
    pub(crate) fn io(operation: &'static str, path: &Path, source: io::Error) -> Self {
        let path = path.to_path_buf();
        if is_disk_full(&source) {
            WalError::DiskFull {
                operation,
                path,
                source,
            }
        } else {
            WalError::Io {
                operation,
                path,
                source,
            }
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, problem: impl Into<String>) -> Self {
        WalError::Corrupt {
            path: path.to_path_buf(),
            offset,
            problem: problem.into(),
        }
    }
}

/// ENOSPC and EDQUOT both mean "no room": the operator frees space either way.
fn is_disk_full(error: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(error.raw_os_error(), Some(ENOSPC | EDQUOT))
}

impl From<WalError> for raft::StorageError {
    fn from(error: WalError) -> Self {
        raft::StorageError::Failed(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_reported_as_disk_full() {
        let error = WalError::io("writing", Path::new("x"), io::Error::from_raw_os_error(28));
        assert!(matches!(error, WalError::DiskFull { .. }), "{error}");
        let error = WalError::io("writing", Path::new("x"), io::Error::from_raw_os_error(5));
        assert!(matches!(error, WalError::Io { .. }), "{error}");
    }

    #[test]
    fn corruption_message_names_file_offset_and_remedy() {
        let message = WalError::corrupt(Path::new("/d/0001.wal"), 4096, "bad checksum").to_string();
        assert!(message.contains("/d/0001.wal"), "{message}");
        assert!(message.contains("4096"), "{message}");
        assert!(message.contains(REJOIN_ADVICE), "{message}");
    }
}
