//! Replaying the stored history as events, for watches that start in the past.
//!
//! Owns the translation of stored revisions back into [`Event`]s, in revision
//! order, with the previous value of each key where history still has it. It
//! must never track watchers or decide what a client is sent; the server does.

use redb::ReadableTable;

use crate::error::{Error, RequestError, StoreError};
use crate::record::{IndexKey, Record, Revision, KEY_INDEX, META, REVISIONS};
use crate::store::{read_meta, Store};
use crate::types::{Event, EventKind, KeyValue};
use crate::view::View;

impl Store {
    /// The changes with revision `start_revision` or later, oldest first, as
    /// [`Store::apply`] reported them. Stops after about `events_max` events,
    /// always finishing the revision in progress so that one write transaction
    /// is never split. Refuses a start below the compacted revision, whose
    /// history is gone.
    pub fn events_since(
        &self,
        start_revision: i64,
        events_max: usize,
    ) -> Result<Vec<Event>, Error> {
        let txn = self.begin_read("starting a history read")?;
        let meta = read_meta(
            &txn.open_table(META)
                .map_err(StoreError::database("opening the meta table"))?,
        )?;
        if start_revision < meta.compact_revision {
            return Err(RequestError::Compacted {
                requested: start_revision,
                compact_revision: meta.compact_revision,
            }
            .into());
        }
        let index = txn
            .open_table(KEY_INDEX)
            .map_err(StoreError::database("opening the key index"))?;
        let revisions = txn
            .open_table(REVISIONS)
            .map_err(StoreError::database("opening the revisions table"))?;
        let view = View {
            index: &index,
            revisions: &revisions,
        };
        let mut events = Vec::new();
        let entries = revisions
            .range((start_revision, i64::MIN)..)
            .map_err(StoreError::database("reading history"))?;
        for entry in entries {
            let (key, bytes) = entry.map_err(StoreError::database("reading history"))?;
            let (main, sub) = key.value();
            let full = events.len() >= events_max;
            if full
                && events
                    .last()
                    .is_none_or(|last: &Event| last.kv.mod_revision != main)
            {
                break;
            }
            let revision = Revision { main, sub };
            let record = Record::decode(bytes.value()).map_err(|source| StoreError::Record {
                location: format!("revision {main}.{sub}"),
                source,
            })?;
            let prev_kv = previous(&view, &record.key, revision)?;
            events.push(if record.tombstone {
                Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: record.key,
                        mod_revision: main,
                        ..KeyValue::default()
                    },
                    prev_kv,
                }
            } else {
                Event {
                    kind: EventKind::Put,
                    kv: record.into_key_value(main),
                    prev_kv,
                }
            });
        }
        debug_assert!(events
            .windows(2)
            .all(|pair| pair[0].kv.mod_revision <= pair[1].kv.mod_revision));
        Ok(events)
    }
}

/// The key's value just before `revision`, unless it was deleted, absent or
/// compacted away.
fn previous<I, R>(
    view: &View<'_, I, R>,
    key: &[u8],
    revision: Revision,
) -> Result<Option<KeyValue>, StoreError>
where
    I: ReadableTable<IndexKey, bool>,
    R: ReadableTable<(i64, i64), &'static [u8]>,
{
    let before = view
        .index
        .range((key, i64::MIN, i64::MIN)..(key, revision.main, revision.sub))
        .map_err(StoreError::database("reading the key index"))?
        .next_back()
        .transpose()
        .map_err(StoreError::database("reading the key index"))?;
    match before {
        Some((entry, tombstone)) if !tombstone.value() => {
            let (_, main, sub) = entry.value();
            view.load(Revision { main, sub }).map(Some)
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use crate::error::{Error, RequestError};
    use crate::test_support::Harness;
    use crate::types::{Command, CompactionRequest, EventKind, PutRequest, RequestOp, TxnRequest};

    #[test]
    fn history_replays_what_apply_reported() {
        let mut harness = Harness::new();
        let mut reported = Vec::new();
        reported.extend(harness.put("a", "1").events);
        reported.extend(harness.put("b", "1").events);
        reported.extend(harness.put("a", "2").events);
        reported.extend(harness.delete("a", "\0").events);
        reported.extend(harness.put("a", "3").events);
        assert_eq!(reported.len(), 6);
        assert_eq!(harness.store.events_since(1, 100).unwrap(), reported);
        let from_four = harness.store.events_since(4, 100).unwrap();
        assert_eq!(from_four, reported[2..]);
        assert_eq!(from_four[1].kind, EventKind::Delete);
        assert!(harness.store.events_since(99, 100).unwrap().is_empty());
    }

    #[test]
    fn a_batch_limit_never_splits_a_revision() {
        let mut harness = Harness::new();
        harness.put("a", "1");
        harness
            .txn(TxnRequest {
                success: vec![
                    RequestOp::Put(PutRequest::new("b", "1")),
                    RequestOp::Put(PutRequest::new("c", "1")),
                ],
                ..TxnRequest::default()
            })
            .unwrap();
        harness.put("d", "1");
        let first = harness.store.events_since(1, 2).unwrap();
        let revisions: Vec<i64> = first.iter().map(|event| event.kv.mod_revision).collect();
        assert_eq!(revisions, [2, 3, 3]);
        assert_eq!(harness.store.events_since(1, 1).unwrap().len(), 1);
        assert_eq!(harness.store.events_since(3, 1).unwrap().len(), 2);
    }

    #[test]
    fn history_below_the_compaction_is_refused() {
        let mut harness = Harness::new();
        harness.put("a", "1");
        harness.put("a", "2");
        harness.put("a", "3");
        harness.apply(Command::Compact(CompactionRequest {
            revision: 3,
            physical: true,
        }));
        assert!(matches!(
            harness.store.events_since(2, 10),
            Err(Error::Request(RequestError::Compacted { .. }))
        ));
        let kept = harness.store.events_since(3, 10).unwrap();
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].prev_kv.as_ref().unwrap().mod_revision, 3);
    }
}
