//! The wipe fault: a member is killed, its data directory wiped and the
//! member restarted as it was. Having forgotten its votes and its log, it
//! must refuse to rejoin as the same member (etcd's "has already been
//! bootstrapped"); the run records the refusal, then replaces the member the
//! documented way: `member remove`, `member add` with the same peer URL, and
//! a start with an empty data directory and `--initial-cluster-state
//! existing`.
//!
//! Owns: the wipe, the refusal's record and the replacement. Must never:
//! wait without a bound, or call a member that kept running "refused".

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

use crate::cluster_api::{add_member, remove_member_with_peer_url};
use crate::faults::FaultError;
use crate::hosts::Hosts;
use crate::members::Members;

/// How long a wiped member may take to refuse and exit.
const REFUSAL_MAX: Duration = Duration::from_secs(15);
/// What the refusal says, as etcd says it.
const REFUSAL_TEXT: &str = "has already been bootstrapped";

/// How the wiped member's restart ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Its exit status, `None` if it kept running (it was then killed).
    pub status: Option<String>,
    /// The line of its log that says it refused, if one does.
    pub message: Option<String>,
    exited_with_failure: bool,
}

impl Refusal {
    /// Judges the restart from its exit status and what it logged.
    pub fn judge(status: Option<ExitStatus>, log_since_start: &str) -> Refusal {
        Refusal {
            status: status.map(|status| status.to_string()),
            message: log_since_start
                .lines()
                .find_map(refusal_sentence)
                .map(str::to_owned),
            exited_with_failure: status.is_some_and(|status| !status.success()),
        }
    }

    /// Whether the member refused: it exited with a failure and said why.
    pub fn refused(&self) -> bool {
        self.exited_with_failure && self.message.is_some()
    }
}

/// "member <id> has already been bootstrapped", when `line` says it.
fn refusal_sentence(line: &str) -> Option<&str> {
    let end = line.find(REFUSAL_TEXT)? + REFUSAL_TEXT.len();
    let start = line[..end].rfind("member ")?;
    Some(&line[start..end])
}

/// One wiped member and its replacement.
#[derive(Clone, Debug)]
pub struct Replacement {
    pub member: String,
    pub refusal: Refusal,
    /// The id `member remove` removed and the id `member add` gave the
    /// replacement: they must differ, as under its old id the replacement
    /// could vote twice in the term it forgot.
    pub removed_id: u64,
    pub added_id: u64,
}

impl Replacement {
    /// Whether the replacement got an id other than the one removed.
    pub fn has_fresh_id(&self) -> bool {
        self.added_id != self.removed_id
    }
}

impl fmt::Display for Replacement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.refusal.refused() {
            "refused to rejoin"
        } else {
            "DID NOT REFUSE to rejoin"
        };
        let id = if self.has_fresh_id() {
            "a fresh id"
        } else {
            "THE OLD ID AGAIN"
        };
        write!(
            f,
            "{} wiped: {how} (exit: {}; said: {}); removed {:x}, added {:x} ({id}), started existing",
            self.member,
            self.refusal.status.as_deref().unwrap_or("still running"),
            self.refusal.message.as_deref().unwrap_or("nothing"),
            self.removed_id,
            self.added_id
        )
    }
}

/// Kills member `index`, wipes its data, restarts it, records how that
/// ended, then replaces it and starts the replacement.
pub async fn wipe_and_replace(
    hosts: &Hosts,
    members: &mut Members,
    index: usize,
) -> Result<Replacement, FaultError> {
    members.kill(index);
    members.wipe(index)?;
    let log_path = members.log_path(index);
    let logged_before = std::fs::metadata(&log_path).map_or(0, |meta| meta.len());
    members.start(hosts, index)?;
    let status = members.wait_for_exit(index, REFUSAL_MAX).await;
    if status.is_none() {
        members.kill(index);
    }
    let log = std::fs::read(&log_path).unwrap_or_default();
    let since_start = log.get(logged_before as usize..).unwrap_or_default();
    let refusal = Refusal::judge(status, &String::from_utf8_lossy(since_start));

    let peer_url = members.peer_url(index).to_owned();
    let others = members.client_urls_of_cluster_but(index);
    let removed_id = remove_member_with_peer_url(&others, &peer_url).await?;
    let added_id = add_member(&others, &peer_url, false).await?;
    // A member that did not refuse wrote data; the replacement starts empty.
    members.wipe(index)?;
    members.set_joining(index);
    members.start(hosts, index)?;
    Ok(Replacement {
        member: members.name(index).to_owned(),
        refusal,
        removed_id,
        added_id,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt as _;

    use super::*;

    const SAID: &str =
        "ERROR raftkv::serve: failed error=member 3 has already been bootstrapped: ...";

    #[test]
    fn a_failed_exit_that_says_why_is_a_refusal() {
        let refusal = Refusal::judge(
            Some(ExitStatus::from_raw(1 << 8)),
            &format!("starting\n{SAID}\n"),
        );
        assert!(refusal.refused());
        assert_eq!(
            refusal.message.as_deref(),
            Some("member 3 has already been bootstrapped")
        );
    }

    #[test]
    fn running_exiting_cleanly_or_failing_for_another_reason_is_not() {
        let kept_running = Refusal::judge(None, SAID);
        let exited_cleanly = Refusal::judge(Some(ExitStatus::from_raw(0)), SAID);
        let failed_otherwise = Refusal::judge(Some(ExitStatus::from_raw(1 << 8)), "cannot listen");
        for refusal in [kept_running, exited_cleanly, failed_otherwise] {
            assert!(!refusal.refused(), "{refusal:?}");
        }
    }
}
