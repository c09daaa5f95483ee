//! The set workload's check: the set read at the end must hold every
//! element whose add was acknowledged, no element that no client tried to
//! add or whose every write was refused, and no element twice. An add of
//! unknown outcome may have landed or not.
//!
//! Owns: the verdict on one set history. Must never: count a run valid
//! without a final read to compare against.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::set::{Add, AddOutcome, SetRead};

/// How many elements of each kind of fault the verdict lists.
const LISTED_MAX: usize = 10;

/// What the final set says about the adds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetVerdict {
    /// Whether a final read was had at all.
    pub read: bool,
    pub acknowledged: usize,
    pub unknown_present: usize,
    pub unknown_absent: usize,
    /// Acknowledged, and not in the set.
    pub lost: Vec<u64>,
    /// In the set, though no client tried to add them.
    pub never_added: Vec<u64>,
    /// In the set, though every write that carried them was refused.
    pub refused_yet_present: Vec<u64>,
    /// In the set more than once.
    pub duplicated: Vec<u64>,
    /// Words in the set that are no element's number.
    pub malformed: Vec<String>,
}

impl SetVerdict {
    pub fn is_valid(&self) -> bool {
        self.read
            && self.lost.is_empty()
            && self.never_added.is_empty()
            && self.refused_yet_present.is_empty()
            && self.duplicated.is_empty()
            && self.malformed.is_empty()
    }
}

/// Judges `adds` against the set as finally `read` (`None`: no read was had).
pub fn check_set(adds: &[Add], read: Option<&SetRead>) -> SetVerdict {
    let mut verdict = SetVerdict {
        acknowledged: adds
            .iter()
            .filter(|add| add.outcome == AddOutcome::Added)
            .count(),
        ..SetVerdict::default()
    };
    let Some(read) = read else {
        return verdict;
    };
    verdict.read = true;
    let mut held: BTreeMap<u64, usize> = BTreeMap::new();
    for &element in &read.elements {
        *held.entry(element).or_default() += 1;
    }
    let outcomes: HashMap<u64, AddOutcome> =
        adds.iter().map(|add| (add.element, add.outcome)).collect();
    for add in adds {
        let present = held.contains_key(&add.element);
        match (add.outcome, present) {
            (AddOutcome::Added, false) => verdict.lost.push(add.element),
            (AddOutcome::NotAdded, true) => verdict.refused_yet_present.push(add.element),
            (AddOutcome::Unknown, true) => verdict.unknown_present += 1,
            (AddOutcome::Unknown, false) => verdict.unknown_absent += 1,
            (AddOutcome::Added, true) | (AddOutcome::NotAdded, false) => {}
        }
    }
    for (&element, &times) in &held {
        if times > 1 {
            verdict.duplicated.push(element);
        }
        if !outcomes.contains_key(&element) {
            verdict.never_added.push(element);
        }
    }
    verdict.lost.sort_unstable();
    verdict.refused_yet_present.sort_unstable();
    verdict.malformed = read.malformed.clone();
    verdict
}

fn list(f: &mut fmt::Formatter<'_>, what: &str, elements: &[u64]) -> fmt::Result {
    if elements.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = elements
        .iter()
        .take(LISTED_MAX)
        .map(|element| format!("{}.{}", element >> 32, element & u64::from(u32::MAX)))
        .collect();
    write!(
        f,
        "\n  {} {what} (client.n): {}",
        elements.len(),
        shown.join(" ")
    )
}

impl fmt::Display for SetVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.read {
            return write!(f, "undecided: no member answered the final read of the set");
        }
        write!(
            f,
            "{}: {} acknowledged adds, unknown adds {} present and {} absent",
            if self.is_valid() {
                "every acknowledged element present, none extra or twice"
            } else {
                "set WRONG"
            },
            self.acknowledged,
            self.unknown_present,
            self.unknown_absent
        )?;
        list(f, "acknowledged elements lost", &self.lost)?;
        list(f, "elements no client added", &self.never_added)?;
        list(
            f,
            "elements present though every write of them was refused",
            &self.refused_yet_present,
        )?;
        list(f, "elements present twice or more", &self.duplicated)?;
        if !self.malformed.is_empty() {
            write!(f, "\n  words no client wrote: {:?}", self.malformed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(element: u64, outcome: AddOutcome) -> Add {
        Add {
            client_id: element >> 32,
            element,
            call_ns: element,
            return_ns: (outcome != AddOutcome::Unknown).then_some(element + 1),
            outcome,
        }
    }

    fn read(elements: &[u64]) -> SetRead {
        SetRead {
            elements: elements.to_vec(),
            malformed: Vec::new(),
        }
    }

    #[test]
    fn unknown_adds_may_be_present_or_absent() {
        let adds = [
            add(1, AddOutcome::Added),
            add(2, AddOutcome::Unknown),
            add(3, AddOutcome::Unknown),
            add(4, AddOutcome::NotAdded),
        ];
        let verdict = check_set(&adds, Some(&read(&[1, 2])));
        assert!(verdict.is_valid(), "{verdict}");
        assert_eq!((verdict.unknown_present, verdict.unknown_absent), (1, 1));
    }

    #[test]
    fn an_acknowledged_element_missing_is_lost() {
        let adds = [add(1, AddOutcome::Added), add(2, AddOutcome::Added)];
        let verdict = check_set(&adds, Some(&read(&[2])));
        assert_eq!(verdict.lost, vec![1]);
        assert!(!verdict.is_valid());
        assert!(verdict.to_string().contains("lost"));
    }

    #[test]
    fn an_element_nobody_added_or_whose_writes_were_refused_is_flagged() {
        let adds = [add(1, AddOutcome::Added), add(2, AddOutcome::NotAdded)];
        let verdict = check_set(&adds, Some(&read(&[1, 2, 9])));
        assert_eq!(verdict.never_added, vec![9]);
        assert_eq!(verdict.refused_yet_present, vec![2]);
        assert!(!verdict.is_valid());
    }

    #[test]
    fn an_element_held_twice_is_a_duplicate() {
        let adds = [add(1, AddOutcome::Added), add(2, AddOutcome::Unknown)];
        let verdict = check_set(&adds, Some(&read(&[1, 2, 1])));
        assert_eq!(verdict.duplicated, vec![1]);
        assert!(!verdict.is_valid());
    }

    #[test]
    fn garbage_in_the_set_or_no_final_read_is_not_valid() {
        let adds = [add(1, AddOutcome::Added)];
        let garbled = SetRead {
            elements: vec![1],
            malformed: vec!["x".to_owned()],
        };
        assert!(!check_set(&adds, Some(&garbled)).is_valid());
        let unread = check_set(&adds, None);
        assert!(!unread.is_valid());
        assert!(unread.to_string().contains("undecided"));
    }
}
