//! What a run found, and how it is told: operations by outcome, the faults
//! with their recovery times, the after-heal checks and the workload's
//! verdict.
//!
//! Owns: the report and what makes a run valid. Must never: decide a
//! verdict itself (the checks do) or hide a check that failed.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::connection::CallErrors;
use crate::convergence::HashCheck;
use crate::faults::Fault;
use crate::judge::Verdicts;
use crate::membership::MembershipChange;
use crate::replacement::Replacement;
use crate::revisions::Regression;
use crate::run::RECOVERY_MAX;
use crate::workload::{Counts, Workload};

/// How many revision regressions the report lists; the rest are counted.
const REGRESSIONS_LISTED_MAX: usize = 5;

/// A fault as it happened, in milliseconds of the history's clock.
#[derive(Clone, Debug)]
pub struct Injected {
    pub fault: Fault,
    pub started_ms: f64,
    pub healed_ms: f64,
    /// From the heal to the first write acknowledged after it.
    pub recovered_after_ms: Option<f64>,
}

/// What a run found.
#[derive(Debug)]
pub struct Report {
    pub nodes: usize,
    pub seed: u64,
    pub workload: Workload,
    pub counts: Counts,
    pub faults: Vec<Injected>,
    /// Members that exited by themselves: name and exit status.
    pub crashed_members: Vec<(String, String)>,
    /// Each wiped member: whether it refused to rejoin, and its replacement.
    pub replacements: Vec<Replacement>,
    /// Each membership fault's learner added and promoted, and member
    /// removed.
    pub membership_changes: Vec<MembershipChange>,
    /// From the final heal to a write acknowledged and a linearizable read
    /// answered by every member; `None` if that took over `RECOVERY_MAX`.
    pub final_recovery: Option<Duration>,
    /// Every member's HashKV at one revision, once the clients stopped.
    pub hashes: HashCheck,
    /// Answers whose header revision was below one the same client had
    /// seen from the same member.
    pub revision_regressions: Vec<Regression>,
    pub verdicts: Verdicts,
    pub client_errors: Vec<CallErrors>,
    pub history_file: Option<PathBuf>,
    pub timeline_file: Option<PathBuf>,
}

impl Report {
    /// Whether the run is valid: the workload's check passed, the cluster
    /// recovered in time, the members hold the same data, no client saw a
    /// member's revision go backwards, no member died of a fault, and
    /// every wiped member refused to rejoin and was replaced under a fresh id.
    pub fn is_valid(&self) -> bool {
        self.verdicts.is_valid()
            && self.final_recovery.is_some()
            && self.hashes.agrees()
            && self.revision_regressions.is_empty()
            && self.crashed_members.is_empty()
            && self
                .replacements
                .iter()
                .all(|replacement| replacement.refusal.refused() && replacement.has_fresh_id())
    }
}

/// The median (the lower middle one of an even count) and the largest of
/// the times from each heal to the first write after it; `None` when no
/// heal was followed by a write.
fn median_and_max(faults: &[Injected]) -> Option<(f64, f64)> {
    let mut times: Vec<f64> = faults
        .iter()
        .filter_map(|fault| fault.recovered_after_ms)
        .collect();
    times.sort_by(f64::total_cmp);
    Some((
        *times.get((times.len().checked_sub(1)?) / 2)?,
        *times.last()?,
    ))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} workload, {} members, seed {}",
            self.workload, self.nodes, self.seed
        )?;
        writeln!(
            f,
            "operations: {} ok, {} failed (certainly without effect), {} unknown",
            self.counts.ok, self.counts.failed, self.counts.unknown
        )?;
        writeln!(f, "faults: {}", self.faults.len())?;
        for fault in &self.faults {
            let recovered = fault
                .recovered_after_ms
                .map_or("no write acknowledged after".to_owned(), |ms| {
                    format!("first write acknowledged {ms:.0} ms after heal")
                });
            writeln!(
                f,
                "  {:>9.0} ms .. {:>9.0} ms  {}  ({recovered})",
                fault.started_ms, fault.healed_ms, fault.fault
            )?;
        }
        if let Some((median, max)) = median_and_max(&self.faults) {
            writeln!(
                f,
                "first write after a heal: median {median:.0} ms, max {max:.0} ms ({} of {} heals followed by one)",
                self.faults
                    .iter()
                    .filter(|fault| fault.recovered_after_ms.is_some())
                    .count(),
                self.faults.len()
            )?;
        }
        match self.final_recovery {
            Some(took) => writeln!(f, "recovery after the last heal: {} ms", took.as_millis())?,
            None => writeln!(
                f,
                "recovery after the last heal: NOT within {RECOVERY_MAX:?}"
            )?,
        }
        for replacement in &self.replacements {
            writeln!(f, "{replacement}")?;
        }
        for change in &self.membership_changes {
            writeln!(f, "membership: {change}")?;
        }
        for (name, status) in &self.crashed_members {
            writeln!(f, "member {name} exited by itself: {status}")?;
        }
        for errors in &self.client_errors {
            if errors.total > 0 {
                writeln!(
                    f,
                    "{}: {} calls unanswered, {} failovers, first {:?}",
                    errors.caller, errors.total, errors.failovers, errors.first
                )?;
            }
        }
        writeln!(f, "{}", self.hashes)?;
        if self.revision_regressions.is_empty() {
            writeln!(f, "header revisions: never went backwards on a member")?;
        } else {
            writeln!(
                f,
                "header revisions: WENT BACKWARDS {} times",
                self.revision_regressions.len()
            )?;
            for regression in self
                .revision_regressions
                .iter()
                .take(REGRESSIONS_LISTED_MAX)
            {
                writeln!(
                    f,
                    "  client {} saw m{} answer revision {} after {} ({:.3} ms)",
                    regression.client_id,
                    regression.member + 1,
                    regression.after,
                    regression.before,
                    regression.returned_ns as f64 / 1e6
                )?;
            }
        }
        if let Some(path) = &self.history_file {
            writeln!(f, "history: {}", path.display())?;
        }
        if let Some(path) = &self.timeline_file {
            writeln!(f, "timeline: {}", path.display())?;
        }
        writeln!(f, "verdict: {}", self.verdicts)?;
        write!(
            f,
            "run: {}",
            if self.is_valid() { "valid" } else { "INVALID" }
        )
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;
    use std::process::ExitStatus;

    use sim::linearizability::Verdict;

    use super::*;
    use crate::convergence::MemberHash;
    use crate::replacement::Refusal;

    /// A report of a run where every check passed and `m1` was wiped,
    /// restarted as `exit` and logging `logged`, then replaced under the
    /// id `added_id` (it had 0x11).
    fn report_after_a_wipe(exit: Option<ExitStatus>, logged: &str, added_id: u64) -> Report {
        Report {
            nodes: 3,
            seed: 1,
            workload: Workload::Register,
            counts: Counts::default(),
            faults: Vec::new(),
            crashed_members: Vec::new(),
            replacements: vec![Replacement {
                member: "m1".to_owned(),
                refusal: Refusal::judge(exit, logged),
                removed_id: 0x11,
                added_id,
            }],
            membership_changes: Vec::new(),
            final_recovery: Some(Duration::from_millis(10)),
            hashes: HashCheck {
                revision: Some(2),
                hashes: vec![MemberHash {
                    member: "m1".to_owned(),
                    hash: Ok(7),
                }],
            },
            revision_regressions: Vec::new(),
            verdicts: Verdicts::Register {
                verdict: Verdict::Linearizable,
                story: None,
            },
            client_errors: Vec::new(),
            history_file: None,
            timeline_file: None,
        }
    }

    fn healed(recovered_after_ms: Option<f64>) -> Injected {
        Injected {
            fault: Fault::Kill { member: 0 },
            started_ms: 0.0,
            healed_ms: 1.0,
            recovered_after_ms,
        }
    }

    #[test]
    fn the_median_is_the_lower_middle_and_heals_without_a_write_are_left_out() {
        let faults = [
            healed(Some(40.0)),
            healed(None),
            healed(Some(10.0)),
            healed(Some(300.0)),
            healed(Some(20.0)),
        ];
        assert_eq!(median_and_max(&faults), Some((20.0, 300.0)));
        assert_eq!(median_and_max(&faults[..3]), Some((10.0, 40.0)));
        assert_eq!(median_and_max(&[healed(None)]), None);
        assert_eq!(median_and_max(&[]), None);
    }

    #[test]
    fn a_wiped_member_that_rejoined_makes_the_run_invalid() {
        let refused = report_after_a_wipe(
            Some(ExitStatus::from_raw(1 << 8)),
            "error=member 11 has already been bootstrapped: ...",
            0x22,
        );
        assert!(refused.is_valid(), "{refused}");
        let rejoined = report_after_a_wipe(None, "member started", 0x22);
        assert!(!rejoined.is_valid());
        assert!(
            rejoined.to_string().contains("m1 wiped: DID NOT REFUSE"),
            "{rejoined}"
        );
    }

    #[test]
    fn a_replacement_under_the_old_id_makes_the_run_invalid() {
        let same_id = report_after_a_wipe(
            Some(ExitStatus::from_raw(1 << 8)),
            "error=member 11 has already been bootstrapped: ...",
            0x11,
        );
        assert!(!same_id.is_valid());
        assert!(
            same_id.to_string().contains("added 11 (THE OLD ID AGAIN)"),
            "{same_id}"
        );
    }
}
