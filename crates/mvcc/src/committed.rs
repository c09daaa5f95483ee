//! Applying committed log entries as they come out of the Raft log: each
//! entry's command bytes are decoded here and the batch applied in one call,
//! so every embedding of the store (the server, the simulator) applies the
//! log the same way.
//!
//! Owns: what an entry whose bytes are not a command does (it only moves the
//! applied index, on every member alike). Must never: know how entries are
//! framed in the log; callers hand over the command bytes.

use crate::codec::DecodeError;
use crate::error::StoreError;
use crate::store::{ApplyOutcome, Durability, Store};
use crate::types::Command;

/// What applying a batch of committed entries did.
#[derive(Debug)]
pub struct CommittedBatch {
    /// One per entry, in order.
    pub outcomes: Vec<ApplyOutcome>,
    /// Entries whose bytes were not a command, with why; each was applied as
    /// an entry without a command. The caller reports them.
    pub unreadable: Vec<(u64, DecodeError)>,
}

impl Store {
    /// Applies committed entries, given as their index and command bytes
    /// (`None` for an entry without a command), in index order; see
    /// [`Store::apply_batch`].
    pub fn apply_committed<'b>(
        &self,
        entries: impl IntoIterator<Item = (u64, Option<&'b [u8]>)>,
        durability: Durability,
    ) -> Result<CommittedBatch, StoreError> {
        let mut unreadable = Vec::new();
        let commands: Vec<(u64, Option<Command>)> = entries
            .into_iter()
            .map(|(index, bytes)| {
                let command = bytes.and_then(|bytes| match Command::decode(bytes) {
                    Ok(command) => Some(command),
                    Err(error) => {
                        unreadable.push((index, error));
                        None
                    }
                });
                (index, command)
            })
            .collect();
        let outcomes = self.apply_batch(
            commands
                .iter()
                .map(|(index, command)| (*index, command.as_ref())),
            durability,
        )?;
        Ok(CommittedBatch {
            outcomes,
            unreadable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::PutRequest;

    #[test]
    fn unreadable_bytes_only_move_the_applied_index() {
        let store = Store::in_memory().unwrap();
        let put = Command::Put(PutRequest::new("k", "v")).encode();
        let garbage = [0xff, 0x00];
        let batch = store
            .apply_committed(
                [(1, Some(&put[..])), (2, Some(&garbage[..])), (3, None)],
                Durability::Deferred,
            )
            .unwrap();
        assert!(matches!(batch.outcomes[0], ApplyOutcome::Applied(_)));
        assert_eq!(
            batch.outcomes[1..],
            [
                ApplyOutcome::NoCommand { index: 2 },
                ApplyOutcome::NoCommand { index: 3 }
            ]
        );
        assert_eq!(
            batch
                .unreadable
                .iter()
                .map(|(index, _)| *index)
                .collect::<Vec<_>>(),
            [2]
        );
        assert_eq!((store.applied_index(), store.current_revision()), (3, 2));
    }
}
