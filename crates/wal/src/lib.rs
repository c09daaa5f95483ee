//! The durable Raft log of one member: segmented, checksummed, append-only
//! files with group commit, atomic snapshots, and recovery that cuts a torn
//! last write but refuses to start on anything that could be lost or damaged
//! acknowledged data.
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
