//! The counters persisted with the data: applied index, current and compacted
//! revision, and etcd's rules for which revisions a read may ask for. Must never
//! touch storage.

use crate::error::RequestError;

/// The counters persisted with the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) applied_index: u64,
    /// Revision of the last write transaction; 1 for an empty store, as etcd.
    pub(crate) current_revision: i64,
    /// Revision of the last compaction; 0 when never compacted.
    pub(crate) compact_revision: i64,
}

impl Meta {
    pub(crate) const EMPTY: Meta = Meta {
        applied_index: 0,
        current_revision: 1,
        compact_revision: 0,
    };

    /// The revision a standalone read serves, per etcd: 0 or negative is the
    /// current revision.
    pub(crate) fn read_revision(&self, requested: i64) -> Result<i64, RequestError> {
        if requested > self.current_revision {
            return Err(RequestError::FutureRevision {
                requested,
                current_revision: self.current_revision,
            });
        }
        let revision = if requested <= 0 {
            self.current_revision
        } else {
            requested
        };
        if revision < self.compact_revision {
            return Err(RequestError::Compacted {
                requested,
                compact_revision: self.compact_revision,
            });
        }
        Ok(revision)
    }

    /// etcd's check of a range inside a transaction: any non-zero revision
    /// outside `[compact, current]` is refused.
    pub(crate) fn check_txn_range_revision(&self, requested: i64) -> Result<(), RequestError> {
        if requested > self.current_revision {
            return Err(RequestError::FutureRevision {
                requested,
                current_revision: self.current_revision,
            });
        }
        if requested < self.compact_revision {
            return Err(RequestError::Compacted {
                requested,
                compact_revision: self.compact_revision,
            });
        }
        Ok(())
    }
}
