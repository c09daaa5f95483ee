//! The faults: which kinds a run may inject, a seeded schedule of them, and
//! how each is done to the real hosts and processes.
//!
//! - A partition is a set of cut links between members, made by each
//!   member's own firewall (iptables in its namespace drops packets from
//!   and to the peers it is cut from; the clients' bridge stays reachable).
//!   Shapes: random halves, the leader alone, a ring of majorities, a
//!   bridge member between two halves, and one-way cuts.
//! - A kill is SIGKILL, then a restart on the same data.
//! - A pause is SIGSTOP for longer than an election timeout, then SIGCONT.
//! - A lossy member drops a random share (10% to 40%) of the packets from
//!   and to its peers, by its firewall's random match (this kernel has no
//!   netem to add latency).
//! - A wipe kills a member, empties its data directory and restarts it: it
//!   must refuse; it is then replaced through the Cluster API
//!   ([`crate::replacement`]).
//!
//! Owns: drawing faults and applying and healing them. Must never: leave a
//! fault in place once healed; draw from anything but the run's seed.

use std::collections::BTreeSet;
use std::fmt;
use std::io::Write as _;
use std::process::Stdio;
use std::str::FromStr;
use std::time::Duration;

use sim::rng::SimRng;

use crate::hosts::{Hosts, HostsError};
use crate::members::{MemberError, Members};
use crate::replacement::{self, Replacement};

/// The kinds of fault a run may inject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultKinds {
    pub partitions: bool,
    pub kills: bool,
    pub pauses: bool,
    pub loss: bool,
    pub wipes: bool,
}

/// `all`, or a comma list of `partition`, `kill`, `pause`, `loss`, `wipe`.
impl FromStr for FaultKinds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut kinds = FaultKinds::default();
        for name in text
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match name {
                "all" => {
                    kinds = FaultKinds {
                        partitions: true,
                        kills: true,
                        pauses: true,
                        loss: true,
                        wipes: true,
                    }
                }
                "partition" | "partitions" => kinds.partitions = true,
                "kill" | "kills" => kinds.kills = true,
                "pause" | "pauses" => kinds.pauses = true,
                "loss" => kinds.loss = true,
                "wipe" | "wipes" => kinds.wipes = true,
                other => {
                    return Err(format!(
                        "unknown fault {other:?}; the faults are partition, kill, pause, loss, wipe, all"
                    ))
                }
            }
        }
        Ok(kinds)
    }
}

impl FaultKinds {
    fn enabled(self) -> Vec<Kind> {
        [
            (self.partitions, Kind::Partition),
            (self.kills, Kind::Kill),
            (self.pauses, Kind::Pause),
            (self.loss, Kind::Loss),
            (self.wipes, Kind::Wipe),
        ]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
        .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Partition,
    Kill,
    Pause,
    Loss,
    Wipe,
}

/// One fault, as drawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Packets from `.0` to `.1` are dropped, for each pair.
    Partition {
        shape: &'static str,
        cut: BTreeSet<(usize, usize)>,
    },
    Kill {
        member: usize,
    },
    Pause {
        member: usize,
    },
    /// `member` drops `percent`% of the packets from and to its peers.
    Loss {
        member: usize,
        percent: u64,
    },
    /// `member` killed, its data wiped and restarted (it must refuse), then
    /// replaced.
    Wipe {
        member: usize,
    },
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Partition { shape, cut } => {
                write!(f, "partition ({shape}):")?;
                for (from, to) in cut {
                    if from < to && cut.contains(&(*to, *from)) {
                        write!(f, " m{}-m{}", from + 1, to + 1)?;
                    } else if !cut.contains(&(*to, *from)) {
                        write!(f, " m{}->m{}", from + 1, to + 1)?;
                    }
                }
                Ok(())
            }
            Fault::Kill { member } => write!(f, "SIGKILL m{} and restart", member + 1),
            Fault::Pause { member } => write!(f, "SIGSTOP m{} then SIGCONT", member + 1),
            Fault::Loss { member, percent } => {
                write!(f, "m{} drops {percent}% of its peer packets", member + 1)
            }
            Fault::Wipe { member } => write!(
                f,
                "SIGKILL m{}, wipe its data, restart, then replace it",
                member + 1
            ),
        }
    }
}

/// How long a fault lasts and the quiet between faults.
#[derive(Clone, Copy, Debug)]
pub struct Pacing {
    pub fault_min: Duration,
    pub fault_max: Duration,
    pub quiet_min: Duration,
    pub quiet_max: Duration,
}

/// Draws the faults of one run from its seed.
#[derive(Debug)]
pub struct Schedule {
    rng: SimRng,
    kinds: Vec<Kind>,
    members: usize,
    pacing: Pacing,
}

impl Schedule {
    pub fn new(seed: u64, kinds: FaultKinds, members: usize, pacing: Pacing) -> Schedule {
        Schedule {
            rng: SimRng::new(seed),
            kinds: kinds.enabled(),
            members,
            pacing,
        }
    }

    /// The quiet time before the next fault.
    pub fn quiet(&mut self) -> Duration {
        self.duration(self.pacing.quiet_min, self.pacing.quiet_max)
    }

    /// The next fault and how long it lasts; `None` when no kind is enabled.
    /// `leader` is the member believed to lead, if known.
    pub fn next(&mut self, leader: Option<usize>) -> Option<(Fault, Duration)> {
        if self.kinds.is_empty() {
            return None;
        }
        let kind = self.kinds[self.rng.index(self.kinds.len())];
        let victim = match leader {
            Some(leader) if self.rng.chance(0.5) => leader,
            _ => self.rng.index(self.members),
        };
        let fault = match kind {
            Kind::Partition => self.partition(victim),
            Kind::Kill => Fault::Kill { member: victim },
            Kind::Pause => Fault::Pause { member: victim },
            Kind::Loss => Fault::Loss {
                member: victim,
                percent: self.rng.between(10, 40),
            },
            Kind::Wipe => Fault::Wipe { member: victim },
        };
        let lasts = self.duration(self.pacing.fault_min, self.pacing.fault_max);
        Some((fault, lasts))
    }

    fn duration(&mut self, min: Duration, max: Duration) -> Duration {
        let millis = self.rng.between(
            min.as_millis() as u64,
            max.as_millis().max(min.as_millis()) as u64,
        );
        Duration::from_millis(millis)
    }

    fn partition(&mut self, victim: usize) -> Fault {
        let n = self.members;
        let mut order: Vec<usize> = (0..n).collect();
        self.rng.shuffle(&mut order);
        let (shape, cut) = match self.rng.index(5) {
            0 => {
                let size = 1 + self.rng.index(n.saturating_sub(1).max(1));
                let side: BTreeSet<usize> = order[..size.min(n)].iter().copied().collect();
                (
                    "random halves",
                    both_ways(n, |a, b| side.contains(&a) != side.contains(&b)),
                )
            }
            1 => (
                "one member alone",
                both_ways(n, |a, b| (a == victim) != (b == victim)),
            ),
            2 => {
                // Each member hears only its neighbours on a ring: every
                // member sees a majority only at 3 members, and no two see
                // the same one at 5.
                let position = |member: usize| order.iter().position(|&m| m == member).unwrap_or(0);
                let ring = |a: usize, b: usize| {
                    let distance = position(a).abs_diff(position(b));
                    distance > 1 && distance < n - 1
                };
                ("ring", both_ways(n, ring))
            }
            3 => {
                // Two halves that only `victim` hears both of.
                let others: Vec<usize> = order.iter().copied().filter(|&m| m != victim).collect();
                let left: BTreeSet<usize> = others[..others.len() / 2].iter().copied().collect();
                let cut = both_ways(n, |a, b| {
                    a != victim && b != victim && left.contains(&a) != left.contains(&b)
                });
                ("bridge", cut)
            }
            _ => {
                // `victim` can send but hears no one.
                let cut = (0..n)
                    .filter(|&other| other != victim)
                    .map(|other| (other, victim))
                    .collect();
                ("one-way", cut)
            }
        };
        Fault::Partition { shape, cut }
    }
}

/// Every ordered pair of distinct members that `separated` says are cut.
fn both_ways(n: usize, separated: impl Fn(usize, usize) -> bool) -> BTreeSet<(usize, usize)> {
    (0..n)
        .flat_map(|a| (0..n).map(move |b| (a, b)))
        .filter(|&(a, b)| a != b && separated(a, b))
        .collect()
}

/// Why a fault could not be applied or healed.
#[derive(Debug, thiserror::Error)]
pub enum FaultError {
    #[error(transparent)]
    Hosts(#[from] HostsError),
    #[error(transparent)]
    Member(#[from] MemberError),
    #[error("cannot set the firewall of {namespace}: {detail}")]
    Firewall { namespace: String, detail: String },
    #[error("cannot wipe {path}: {source}")]
    Wipe {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{what} failed: {detail}")]
    Membership { what: String, detail: String },
}

/// Applies `fault`; a wipe's replacement is its record.
pub async fn apply(
    fault: &Fault,
    hosts: &Hosts,
    members: &mut Members,
) -> Result<Option<Replacement>, FaultError> {
    match fault {
        Fault::Partition { cut, .. } => {
            for member in 0..hosts.count() {
                let mut rules = String::new();
                for &(from, to) in cut {
                    if to == member {
                        rules.push_str(&format!("-A INPUT -s {} -j DROP\n", hosts.address(from)));
                    }
                    if from == member {
                        rules.push_str(&format!("-A OUTPUT -d {} -j DROP\n", hosts.address(to)));
                    }
                }
                set_firewall(hosts, member, &rules)?;
            }
        }
        Fault::Kill { member } => members.kill(*member),
        Fault::Pause { member } => members.pause(*member),
        Fault::Loss { member, percent } => {
            let probability = *percent as f64 / 100.0;
            let mut rules = String::new();
            for peer in (0..hosts.count()).filter(|peer| peer != member) {
                let address = hosts.address(peer);
                rules.push_str(&format!(
                    "-A INPUT -s {address} -m statistic --mode random --probability {probability:.2} -j DROP\n\
                     -A OUTPUT -d {address} -m statistic --mode random --probability {probability:.2} -j DROP\n"
                ));
            }
            set_firewall(hosts, *member, &rules)?;
        }
        Fault::Wipe { member } => {
            return replacement::wipe_and_replace(hosts, members, *member)
                .await
                .map(Some)
        }
    }
    Ok(None)
}

/// Undoes `fault`: reconnects, restarts or resumes (a wiped member was
/// replaced and started when the fault was applied).
pub fn heal(fault: &Fault, hosts: &Hosts, members: &mut Members) -> Result<(), FaultError> {
    match fault {
        Fault::Partition { .. } => {
            for member in 0..hosts.count() {
                set_firewall(hosts, member, "")?;
            }
        }
        Fault::Kill { member } => {
            if !members.is_running(*member) {
                members.start(hosts, *member)?;
            }
        }
        Fault::Pause { member } => members.resume(*member),
        Fault::Loss { member, .. } => set_firewall(hosts, *member, "")?,
        Fault::Wipe { .. } => {}
    }
    Ok(())
}

/// Replaces host `member`'s filter table with `rules` (iptables-restore
/// syntax, one rule per line), in one call.
fn set_firewall(hosts: &Hosts, member: usize, rules: &str) -> Result<(), FaultError> {
    let namespace = hosts.namespace(member);
    let failed = |detail: String| FaultError::Firewall {
        namespace: namespace.clone(),
        detail,
    };
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &namespace, "iptables-restore"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| failed(error.to_string()))?;
    let mut stdin = child.stdin.take().expect("stdin was piped");
    stdin
        .write_all(format!("*filter\n{rules}COMMIT\n").as_bytes())
        .map_err(|error| failed(error.to_string()))?;
    drop(stdin);
    let output = child
        .wait_with_output()
        .map_err(|error| failed(error.to_string()))?;
    if !output.status.success() {
        return Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pacing() -> Pacing {
        Pacing {
            fault_min: Duration::from_secs(1),
            fault_max: Duration::from_secs(3),
            quiet_min: Duration::from_secs(1),
            quiet_max: Duration::from_secs(2),
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let all: FaultKinds = "all".parse().unwrap();
        let draw = |seed| {
            let mut schedule = Schedule::new(seed, all, 5, pacing());
            (0..20).map(|_| schedule.next(Some(2))).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn partitions_cut_only_links_between_distinct_members() {
        let mut schedule = Schedule::new(3, "partition".parse().unwrap(), 5, pacing());
        let mut shapes = BTreeSet::new();
        for _ in 0..200 {
            let Some((Fault::Partition { shape, cut }, _)) = schedule.next(None) else {
                panic!("only partitions are enabled");
            };
            assert!(!cut.is_empty(), "a {shape} partition cuts something");
            assert!(cut.iter().all(|&(a, b)| a != b && a < 5 && b < 5));
            shapes.insert(shape);
        }
        assert_eq!(shapes.len(), 5, "every shape is drawn: {shapes:?}");
    }

    #[test]
    fn a_ring_of_five_leaves_each_member_its_two_neighbours() {
        let mut schedule = Schedule::new(11, "partition".parse().unwrap(), 5, pacing());
        let cut = (0..1_000)
            .find_map(|_| match schedule.next(None) {
                Some((Fault::Partition { shape: "ring", cut }, _)) => Some(cut),
                _ => None,
            })
            .expect("a ring within 1,000 draws");
        for member in 0..5 {
            let heard = (0..5)
                .filter(|&other| other != member && !cut.contains(&(other, member)))
                .count();
            assert_eq!(heard, 2, "m{} hears two neighbours: {cut:?}", member + 1);
        }
    }

    #[test]
    fn a_lossy_member_drops_between_ten_and_forty_percent() {
        let mut schedule = Schedule::new(5, "loss".parse().unwrap(), 3, pacing());
        for _ in 0..100 {
            let Some((Fault::Loss { member, percent }, _)) = schedule.next(None) else {
                panic!("only loss is enabled");
            };
            assert!(member < 3 && (10..=40).contains(&percent));
        }
    }

    #[test]
    fn fault_names_parse_and_unknown_ones_are_refused() {
        let kinds: FaultKinds = "partition,kill".parse().unwrap();
        assert!(kinds.partitions && kinds.kills && !kinds.pauses && !kinds.loss && !kinds.wipes);
        let wipes: FaultKinds = "wipe".parse().unwrap();
        assert!(wipes.wipes && !wipes.kills);
        let all: FaultKinds = "all".parse().unwrap();
        assert!(all.partitions && all.kills && all.pauses && all.loss && all.wipes);
        assert!("partition,flood"
            .parse::<FaultKinds>()
            .unwrap_err()
            .contains("flood"));
    }
}
