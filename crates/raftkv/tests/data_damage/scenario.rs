//! One damage case run on real members, the same way for either server:
//! acknowledged writes, a SIGKILL, the damage, a restart, and what the
//! damaged member did, with every acknowledged write read back through every
//! member still running.

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::common::{self, Members};

/// Acknowledged writes before the damage.
pub const KEYS: usize = 20;
/// How long a restarted member may take to serve or give up.
const RESTART_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a read through one member may keep failing (an election, a
/// member catching up) before the key counts as unreadable there.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longer than etcd's store commit interval (100 ms by default), so its
/// store file holds the writes before the kill.
const STORE_COMMIT_WAIT: Duration = Duration::from_millis(500);
/// The damaged member: the first, whether it leads or follows.
pub const VICTIM: usize = 0;

pub fn key(number: usize) -> String {
    format!("k{number:04}")
}

/// Long and distinctive, so the tests can find the value's bytes in a
/// store file.
pub fn value(number: usize) -> String {
    format!("acknowledged-value-{number:04}-of-the-damage-test")
}

/// What the damaged member did after its restart.
#[derive(Debug)]
pub enum Outcome {
    /// It exited without serving.
    Refused(ExitStatus),
    /// It served; it was still running after every read.
    Served,
    /// It served, then exited during the reads.
    ServedThenExited(ExitStatus),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Refused(status) => write!(f, "refused ({status})"),
            Outcome::Served => write!(f, "served"),
            Outcome::ServedThenExited(status) => write!(f, "served, then exited ({status})"),
        }
    }
}

/// The outcome, the damaged member's log, and every acknowledged key that
/// some running member did not return with its value (`key via endpoint`).
#[derive(Debug)]
pub struct Observation {
    pub outcome: Outcome,
    pub log: String,
    pub missing: Vec<String>,
}

impl Observation {
    /// The damaged member refused to start and the others lost nothing.
    pub fn refused(&self) -> bool {
        matches!(self.outcome, Outcome::Refused(status) if !status.success())
            && self.missing.is_empty()
    }

    /// The damaged member serves every acknowledged write, as do the others.
    pub fn served_everything(&self) -> bool {
        matches!(self.outcome, Outcome::Served) && self.missing.is_empty()
    }

    pub fn panicked(&self) -> bool {
        self.log.contains("panicked") || self.log.contains("panic:")
    }

    /// Whether the member's log holds every one of `phrases`.
    pub fn says(&self, phrases: &[&str]) -> bool {
        phrases.iter().all(|phrase| self.log.contains(phrase))
    }

    /// The outcome, the missing keys and the log lines that say why a
    /// member stopped (raftkv's errors and panics, etcd's critical and
    /// error lines and Go panics), for a reader of the test's output.
    pub fn summary(&self) -> String {
        const MARKERS: [&str; 7] = [
            "ERROR",
            "panicked",
            "assertion",
            " C | ",
            " E | ",
            "panic:",
            "fatal error",
        ];
        let reasons: Vec<&str> = self
            .log
            .lines()
            .filter(|line| MARKERS.iter().any(|marker| line.contains(marker)))
            .collect();
        format!(
            "{}; {} missing {:?}\n  {}",
            self.outcome,
            self.missing.len(),
            self.missing.first(),
            reasons.join("\n  ")
        )
    }
}

/// Writes [`KEYS`] acknowledged keys, SIGKILLs [`VICTIM`], runs `damage` on
/// its data directory, restarts it and observes. The members must serve.
pub async fn damage_and_restart(
    members: &mut impl Members,
    damage: impl FnOnce(&Path),
) -> Observation {
    let endpoints = members.endpoints();
    for number in 0..KEYS {
        common::put_until_acked(&endpoints, &key(number), &value(number)).await;
    }
    // Reading them back through the victim also makes it commit what it
    // applied to its store, so the store file holds the writes too.
    let unread = missing_keys(&members.endpoint(VICTIM)).await;
    assert!(unread.is_empty(), "before the damage: {unread:?}");
    tokio::time::sleep(STORE_COMMIT_WAIT).await;
    members.kill(VICTIM);
    let log_before = members.log(VICTIM);
    damage(&members.data_dir(VICTIM));
    members.start_member(VICTIM);
    let started = common::wait_until_serving(members, VICTIM, RESTART_TIMEOUT).await;
    let readers: Vec<usize> = (0..members.size())
        .filter(|&index| index != VICTIM || started.is_ok())
        .collect();
    let mut missing = Vec::new();
    for index in readers {
        missing.extend(missing_keys(&members.endpoint(index)).await);
    }
    let outcome = match started {
        Err(status) => Outcome::Refused(status),
        Ok(()) => match members.wait_for_exit(VICTIM, Duration::ZERO) {
            Some(status) => Outcome::ServedThenExited(status),
            None => Outcome::Served,
        },
    };
    let log = members.log(VICTIM);
    Observation {
        outcome,
        log: log.get(log_before.len()..).unwrap_or(&log).to_owned(),
        missing,
    }
}

/// Follows a refusal's advice: runs `repair` on the stopped victim's data
/// directory and restarts it; the acknowledged keys it then does not serve.
pub async fn repair_and_restart(
    members: &mut impl Members,
    repair: impl FnOnce(&Path),
) -> Vec<String> {
    repair(&members.data_dir(VICTIM));
    members.start_member(VICTIM);
    if let Err(status) = common::wait_until_serving(members, VICTIM, RESTART_TIMEOUT).await {
        panic!(
            "the repaired member exited with {status}:\n{}",
            members.log(VICTIM)
        );
    }
    missing_keys(&members.endpoint(VICTIM)).await
}

/// The acknowledged keys a linearizable read through `endpoint` does not
/// return with their values.
async fn missing_keys(endpoint: &str) -> Vec<String> {
    let mut missing = Vec::new();
    for number in 0..KEYS {
        let deadline = Instant::now() + READ_TIMEOUT;
        let read = loop {
            match common::range(endpoint, &key(number), "", false).await {
                Ok(response) => {
                    break response
                        .kvs
                        .first()
                        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => break Some(format!("<unreadable: {}>", error.message())),
            }
        };
        if read.as_deref() != Some(value(number).as_str()) {
            missing.push(format!("{} via {endpoint}: {read:?}", key(number)));
        }
    }
    missing
}
