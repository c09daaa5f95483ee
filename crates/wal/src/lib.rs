//! The durable Raft log of one member: segmented, append-only files with
//! group commit, atomic snapshots, and recovery that cuts a torn last write
//! but refuses to start on anything that could be lost or damaged data that
//! may have been acknowledged.
//!
//! Every write batch is framed in 512-byte sectors, each with its own
//! checksum and the batch's write number, so recovery can tell the two apart
//! from what it reads: a crash leaves each sector of the unsynced write whole
//! or all zeros, while corruption leaves a sector that fails its checksum.
//! Only a batch with some sectors unwritten and none damaged, and nothing
//! later after it, is cut: its sync cannot have returned. A flipped byte, even
//! in the last record, refuses the open with the file and offset. A lost write
//! of the very last batch is indistinguishable from a torn one and is cut;
//! replication covers it. The failure model is spelled out in `sector`, the
//! rules in `segment`.
//!
//! It owns the bytes on disk and their format. It never interprets commands
//! and knows nothing of the network.
//!
//! - [`Wal`] is the log: the node driver appends a Ready's entries and hard
//!   state and syncs once ([`Wal::persist`]), installs snapshots, compacts, and
//!   hands the `Wal` to the core as its [`raft::Storage`].
//! - [`GroupCommitter`] shares one `Wal` among many threads: their appends
//!   become one write and one fdatasync per batch.
//! - [`fs`] is the file system the log writes through: the real one by
//!   default, the simulator's disks through `Wal::*_on`.
//! - [`bench`](mod@bench) measures the group-committed log against the disk's raw
//!   fdatasync rate.

pub mod bench;
mod error;
pub mod fs;
mod fs_util;
mod group_commit;
mod lock;
mod log_store;
mod log_view;
mod record;
mod recovery;
mod sector;
mod segment;
mod snapshot_file;
mod wal;
mod writer;

pub use error::{WalError, REJOIN_ADVICE};
pub use group_commit::{GroupCommitOptions, GroupCommitStats, GroupCommitter};
pub use wal::{
    Wal, WalOptions, WalStats, DEFAULT_SEGMENT_BYTES, MAX_SEGMENT_BYTES, MIN_SEGMENT_BYTES,
};
