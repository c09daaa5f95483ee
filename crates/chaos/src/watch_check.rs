//! The watch workload's check. First the reference, the fresh watch from
//! revision 1 taken after the heal: its revisions rise strictly, each of
//! its events is a put some writer asked for (once), each acknowledged put
//! is in it at the revision the put was acknowledged at, and each key's
//! last event is the key's value by the final Range. Then each watcher:
//! every event of the reference once, in revision order, nothing else.
//!
//! Owns: the verdict on one watch history. Must never: call a run valid
//! without a reference to compare the watchers with.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use crate::watch::{FinalValue, SeenEvent, Write};

/// How many revisions of each kind of fault the verdict lists.
const LISTED_MAX: usize = 8;

/// What is wrong with one sequence of events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SequenceFaults {
    /// Revisions received a second time.
    pub duplicates: Vec<i64>,
    /// Revisions received after a higher one.
    pub reordered: Vec<i64>,
    /// Revisions of the reference never received: gaps.
    pub missing: Vec<i64>,
    /// Revisions received that the reference does not have.
    pub unexpected: Vec<i64>,
    /// Revisions received with another key, value or type than the
    /// reference's.
    pub different: Vec<i64>,
}

impl SequenceFaults {
    pub fn is_empty(&self) -> bool {
        *self == SequenceFaults::default()
    }
}

/// What is wrong with the reference itself, against the writes and the
/// final Range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferenceFaults {
    /// The reference's own order: duplicates and reorders.
    pub order: SequenceFaults,
    /// Revisions whose event no writer asked for, or asked for once and
    /// appears more than once.
    pub unwritten: Vec<i64>,
    /// Acknowledged puts (`key=value`) missing, or at another revision
    /// than acknowledged.
    pub lost: Vec<String>,
    /// Keys whose last event differs from the final Range.
    pub final_mismatch: Vec<String>,
}

impl ReferenceFaults {
    pub fn is_empty(&self) -> bool {
        *self == ReferenceFaults::default()
    }
}

/// The verdict on a watch run.
#[derive(Clone, Debug, Default)]
pub struct WatchVerdict {
    /// Whether the final Range and the reference watch were had.
    pub read: bool,
    pub reference_events: usize,
    pub reference: ReferenceFaults,
    /// Each watcher's events received, reconnects and faults.
    pub watchers: Vec<(usize, usize, SequenceFaults)>,
}

impl WatchVerdict {
    pub fn is_valid(&self) -> bool {
        self.read
            && self.reference.is_empty()
            && self.watchers.iter().all(|(_, _, faults)| faults.is_empty())
    }
}

/// What is wrong with `seen` as a watcher's copy of `reference`.
pub fn check_sequence(seen: &[SeenEvent], reference: &[SeenEvent]) -> SequenceFaults {
    let by_revision: HashMap<i64, &SeenEvent> = reference
        .iter()
        .map(|event| (event.revision, event))
        .collect();
    let mut faults = order_faults(seen);
    let mut received = HashSet::new();
    for event in seen {
        if !received.insert(event.revision) {
            continue;
        }
        match by_revision.get(&event.revision) {
            None => faults.unexpected.push(event.revision),
            Some(&expected) if expected != event => faults.different.push(event.revision),
            Some(_) => {}
        }
    }
    faults.missing = reference
        .iter()
        .map(|event| event.revision)
        .filter(|revision| !received.contains(revision))
        .collect();
    faults
}

/// Duplicates and reorders in `events`, which must rise strictly.
fn order_faults(events: &[SeenEvent]) -> SequenceFaults {
    let mut faults = SequenceFaults::default();
    let mut received = HashSet::new();
    let mut highest = i64::MIN;
    for event in events {
        if !received.insert(event.revision) {
            faults.duplicates.push(event.revision);
        } else if event.revision < highest {
            faults.reordered.push(event.revision);
        }
        highest = highest.max(event.revision);
    }
    faults
}

/// What is wrong with `reference` against the `writes` asked for and the
/// `final_values` read.
pub fn check_reference(
    reference: &[SeenEvent],
    writes: &[Write],
    final_values: &[FinalValue],
) -> ReferenceFaults {
    let mut faults = ReferenceFaults {
        order: order_faults(reference),
        ..ReferenceFaults::default()
    };
    let asked: HashMap<(&str, String), &Write> = writes
        .iter()
        .map(|write| ((write.key.as_str(), write.value.to_string()), write))
        .collect();
    let mut found: HashMap<(&str, &str), i64> = HashMap::new();
    for event in reference {
        let key = (event.key.as_str(), event.value.as_str());
        let written = asked.contains_key(&(key.0, key.1.to_owned()));
        if event.deleted || !written || found.insert(key, event.revision).is_some() {
            faults.unwritten.push(event.revision);
        }
    }
    for write in writes {
        let Some((revision, _)) = write.acknowledged else {
            continue;
        };
        let value = write.value.to_string();
        if found.get(&(write.key.as_str(), value.as_str())) != Some(&revision) {
            faults.lost.push(format!("{}={}", write.key, write.value));
        }
    }
    let mut last: BTreeMap<&str, &SeenEvent> = BTreeMap::new();
    for event in reference {
        last.insert(&event.key, event);
    }
    let ranged: BTreeMap<&str, &FinalValue> = final_values
        .iter()
        .map(|value| (value.key.as_str(), value))
        .collect();
    let keys: HashSet<&str> = last.keys().chain(ranged.keys()).copied().collect();
    for key in keys {
        let matches = match (last.get(key), ranged.get(key)) {
            (Some(event), Some(value)) => {
                event.value == value.value && event.revision == value.mod_revision
            }
            _ => false,
        };
        if !matches {
            faults.final_mismatch.push(key.to_owned());
        }
    }
    faults.final_mismatch.sort();
    faults
}

fn list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, what: &str, items: &[T]) -> fmt::Result {
    if items.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = items.iter().take(LISTED_MAX).map(T::to_string).collect();
    write!(f, " {} {what} ({})", items.len(), shown.join(" "))
}

fn sequence(f: &mut fmt::Formatter<'_>, faults: &SequenceFaults) -> fmt::Result {
    list(f, "duplicated", &faults.duplicates)?;
    list(f, "out of order", &faults.reordered)?;
    list(f, "missing", &faults.missing)?;
    list(f, "not in the reference", &faults.unexpected)?;
    list(f, "different from the reference", &faults.different)
}

impl fmt::Display for WatchVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.read {
            return write!(
                f,
                "undecided: no final Range or fresh watch of the prefix was had"
            );
        }
        write!(
            f,
            "{}: reference of {} events",
            if self.is_valid() {
                "every watcher saw every event once, in order"
            } else {
                "watch WRONG"
            },
            self.reference_events
        )?;
        if !self.reference.is_empty() {
            write!(f, "\n  reference:")?;
            sequence(f, &self.reference.order)?;
            list(f, "not written by a writer", &self.reference.unwritten)?;
            list(f, "acknowledged puts lost", &self.reference.lost)?;
            list(
                f,
                "keys unlike the final Range",
                &self.reference.final_mismatch,
            )?;
        }
        for (index, (received, reconnects, faults)) in self.watchers.iter().enumerate() {
            write!(
                f,
                "\n  watcher {}: {received} events, {reconnects} reconnects",
                index + 1
            )?;
            sequence(f, faults)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(revision: i64) -> SeenEvent {
        SeenEvent {
            revision,
            key: format!("watch/k{}", revision % 3),
            value: (1_u64 << 32 | revision as u64).to_string(),
            deleted: false,
        }
    }

    fn events(revisions: &[i64]) -> Vec<SeenEvent> {
        revisions.iter().copied().map(event).collect()
    }

    #[test]
    fn a_faithful_copy_has_no_faults() {
        let reference = events(&[3, 4, 7, 9]);
        assert!(check_sequence(&reference, &reference).is_empty());
    }

    #[test]
    fn a_gap_is_missing_revisions() {
        let reference = events(&[3, 4, 7, 9]);
        let faults = check_sequence(&events(&[3, 9]), &reference);
        assert_eq!(faults.missing, vec![4, 7]);
        assert!(faults.duplicates.is_empty() && faults.reordered.is_empty());
    }

    #[test]
    fn an_event_seen_twice_is_a_duplicate() {
        let reference = events(&[3, 4, 7]);
        let faults = check_sequence(&events(&[3, 4, 4, 7]), &reference);
        assert_eq!(faults.duplicates, vec![4]);
        assert!(faults.missing.is_empty() && faults.reordered.is_empty());
    }

    #[test]
    fn an_event_after_a_later_one_is_reordered() {
        let reference = events(&[3, 4, 7]);
        let faults = check_sequence(&events(&[3, 7, 4]), &reference);
        assert_eq!(faults.reordered, vec![4]);
        assert!(faults.missing.is_empty() && faults.duplicates.is_empty());
    }

    #[test]
    fn an_event_unlike_the_reference_or_not_in_it_is_flagged() {
        let reference = events(&[3, 4]);
        let mut seen = events(&[3, 4, 5]);
        seen[1].value = "other".to_owned();
        let faults = check_sequence(&seen, &reference);
        assert_eq!(faults.different, vec![4]);
        assert_eq!(faults.unexpected, vec![5]);
    }

    fn write(revision: i64, acknowledged: bool) -> Write {
        let event = event(revision);
        Write {
            client_id: 1,
            key: event.key,
            value: event.value.parse().unwrap(),
            call_ns: 0,
            acknowledged: acknowledged.then_some((revision, 1)),
        }
    }

    fn final_values(reference: &[SeenEvent]) -> Vec<FinalValue> {
        let mut last = BTreeMap::new();
        for event in reference {
            last.insert(event.key.clone(), event.clone());
        }
        last.into_values()
            .map(|event| FinalValue {
                key: event.key,
                value: event.value,
                mod_revision: event.revision,
            })
            .collect()
    }

    #[test]
    fn a_reference_matching_the_writes_and_the_range_has_no_faults() {
        let reference = events(&[2, 3, 5]);
        let writes = [
            write(2, true),
            write(3, false),
            write(5, true),
            write(8, false),
        ];
        let faults = check_reference(&reference, &writes, &final_values(&reference));
        assert!(faults.is_empty(), "{faults:?}");
    }

    #[test]
    fn an_acknowledged_put_missing_from_the_reference_is_lost() {
        let reference = events(&[2, 5]);
        let writes = [write(2, true), write(3, true), write(5, true)];
        let faults = check_reference(&reference, &writes, &final_values(&reference));
        assert_eq!(faults.lost, vec![format!("watch/k0={}", 1_u64 << 32 | 3)]);
    }

    #[test]
    fn an_event_nobody_wrote_or_a_range_unlike_the_last_event_is_flagged() {
        let reference = events(&[2, 4]);
        let writes = [write(2, true)];
        let mut range = final_values(&reference);
        range[0].value = "stale".to_owned();
        let faults = check_reference(&reference, &writes, &range);
        assert_eq!(faults.unwritten, vec![4]);
        assert_eq!(faults.final_mismatch, vec![range[0].key.clone()]);
    }
}
