//! The faults: which kinds a run may inject, a seeded schedule of them, and
//! how each is done to the real hosts and processes.
//!
//! - A partition is a set of cut links between members, made by each
//!   member's own firewall (iptables in its namespace drops packets from
//!   and to the peers it is cut from; the clients' bridge stays reachable).
//!   Shapes: random halves, the leader alone, a ring (from 4 members), a
//!   bridge member between two halves (from 3), and one-way cuts; each is
//!   drawn only for cluster sizes where it cuts a link.
//! - A kill is SIGKILL, then a restart on the same data.
//! - A pause is SIGSTOP for longer than an election timeout, then SIGCONT.
//! - A lossy member drops a random share (10% to 40%) of the packets from
//!   and to its peers, by its firewall's random match (this kernel has no
//!   netem to add latency).
//! - A wipe kills a member, empties its data directory and restarts it: it
//!   must refuse; it is then replaced through the Cluster API
//!   ([`crate::replacement`]).
//! - A membership change adds a learner on a spare host, promotes it once
//!   it has caught up and removes a member, perhaps the leader or the one
//!   just promoted ([`crate::membership`]): the cluster keeps its size.
//!
//! A schedule step is one fault or, now and then, two that overlap (a
//! partition while another member is paused, say), each healed on its own
//! time. Only partitions, kills, pauses and loss overlap, each pair of two
//! kinds and with distinct victims; wipes and membership changes run alone,
//! as their Cluster API calls need a quorum to answer.
//!
//! Owns: drawing faults and applying and healing them. Must never: leave a
//! fault in place once healed; draw from anything but the run's seed and
//! what the run tells it (the leader, the cluster's members).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sim::rng::SimRng;

use crate::firewall::{Firewalls, NetworkFault};
use crate::hosts::Hosts;
use crate::hosts::HostsError;
use crate::members::{MemberError, Members};
use crate::membership::{self, MembershipChange};
use crate::replacement::{self, Replacement};

/// The chance that a step overlaps a second fault with its first, when the
/// first is of a kind that overlaps and another such kind is enabled.
const OVERLAP_CHANCE: f64 = 0.35;

/// The partition shapes and the fewest members each cuts a link among.
pub const PARTITION_SHAPES: [(&str, usize); 5] = [
    ("random halves", 2),
    ("one member alone", 2),
    ("ring", 4),
    ("bridge", 3),
    ("one-way", 2),
];

/// The kinds of fault a run may inject.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultKinds {
    pub partitions: bool,
    pub kills: bool,
    pub pauses: bool,
    pub loss: bool,
    pub wipes: bool,
    pub membership: bool,
}

/// `all`, or a comma list of `partition`, `kill`, `pause`, `loss`, `wipe`,
/// `membership`.
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
                        membership: true,
                    }
                }
                "partition" | "partitions" => kinds.partitions = true,
                "kill" | "kills" => kinds.kills = true,
                "pause" | "pauses" => kinds.pauses = true,
                "loss" => kinds.loss = true,
                "wipe" | "wipes" => kinds.wipes = true,
                "membership" => kinds.membership = true,
                other => {
                    return Err(format!(
                        "unknown fault {other:?}; the faults are partition, kill, pause, loss, wipe, membership, all"
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
            (self.membership, Kind::Membership),
        ]
        .into_iter()
        .filter_map(|(on, kind)| on.then_some(kind))
        .collect()
    }

    /// How many spare hosts a run needs beside its members: one for the
    /// membership fault's learner.
    pub fn spare_hosts(self) -> usize {
        usize::from(self.membership)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Partition,
    Kill,
    Pause,
    Loss,
    Wipe,
    Membership,
}

impl Kind {
    /// Whether a fault of this kind may overlap another.
    fn overlaps(self) -> bool {
        matches!(
            self,
            Kind::Partition | Kind::Kill | Kind::Pause | Kind::Loss
        )
    }

    /// Whether a cluster of `members` members, with `spares` spare hosts,
    /// can take a fault of this kind.
    fn fits(self, members: usize, spares: usize) -> bool {
        match self {
            Kind::Partition => members >= 2,
            Kind::Kill | Kind::Pause | Kind::Loss => members >= 1,
            Kind::Wipe => members >= 2,
            Kind::Membership => members >= 1 && spares >= 1,
        }
    }
}

/// One fault, as drawn. Members are host numbers (0 is `m1`).
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
    /// A learner added on spare host `learner`, then promoted, then
    /// `removed` removed (it may be `learner`).
    Membership {
        learner: usize,
        removed: usize,
    },
}

impl Fault {
    /// The member a kill, pause, loss or wipe is done to.
    fn victim(&self) -> Option<usize> {
        match self {
            Fault::Kill { member }
            | Fault::Pause { member }
            | Fault::Loss { member, .. }
            | Fault::Wipe { member } => Some(*member),
            Fault::Partition { .. } | Fault::Membership { .. } => None,
        }
    }
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
            Fault::Membership { learner, removed } => write!(
                f,
                "add m{} as a learner, promote it, remove m{}",
                learner + 1,
                removed + 1
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

/// One fault of a step: when it starts, from the step's start, and how
/// long it lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub fault: Fault,
    pub starts_after: Duration,
    pub lasts: Duration,
}

impl Planned {
    /// When it is healed, from the step's start.
    pub fn ends_after(&self) -> Duration {
        self.starts_after + self.lasts
    }
}

/// Draws the faults of one run from its seed.
#[derive(Debug)]
pub struct Schedule {
    rng: SimRng,
    kinds: Vec<Kind>,
    pacing: Pacing,
}

impl Schedule {
    pub fn new(seed: u64, kinds: FaultKinds, pacing: Pacing) -> Schedule {
        Schedule {
            rng: SimRng::new(seed),
            kinds: kinds.enabled(),
            pacing,
        }
    }

    /// The quiet time before the next step.
    pub fn quiet(&mut self) -> Duration {
        self.duration(self.pacing.quiet_min, self.pacing.quiet_max)
    }

    /// The next step: one fault, or two that overlap, none ending later
    /// than `fault_max` after the step starts; empty when no enabled kind
    /// fits. `leader` is the member believed to lead, if known, `cluster`
    /// the members now in the cluster (host numbers) and `spares` the hosts
    /// outside it.
    pub fn next(
        &mut self,
        leader: Option<usize>,
        cluster: &[usize],
        spares: &[usize],
    ) -> Vec<Planned> {
        let fitting: Vec<Kind> = self
            .kinds
            .iter()
            .copied()
            .filter(|kind| kind.fits(cluster.len(), spares.len()))
            .collect();
        if fitting.is_empty() {
            return Vec::new();
        }
        let kind = fitting[self.rng.index(fitting.len())];
        let fault = self.fault(kind, leader, cluster, spares);
        let first = Planned {
            fault,
            starts_after: Duration::ZERO,
            lasts: self.duration(self.pacing.fault_min, self.pacing.fault_max),
        };
        let second_kinds: Vec<Kind> = fitting
            .iter()
            .copied()
            .filter(|other| kind.overlaps() && other.overlaps() && *other != kind)
            .collect();
        let others: Vec<usize> = cluster
            .iter()
            .copied()
            .filter(|&member| Some(member) != first.fault.victim())
            .collect();
        if second_kinds.is_empty() || others.is_empty() || !self.rng.chance(OVERLAP_CHANCE) {
            return vec![first];
        }
        let second_kind = second_kinds[self.rng.index(second_kinds.len())];
        let fault = match second_kind {
            // The cut spans the whole cluster; its victim is another member.
            Kind::Partition => {
                let victim = self.victim(leader, &others);
                self.partition(victim, cluster)
            }
            _ => self.fault(second_kind, leader, &others, spares),
        };
        let lasts = self.duration(self.pacing.fault_min, self.pacing.fault_max);
        let latest_start = (first.lasts / 2).min(self.pacing.fault_max.saturating_sub(lasts));
        let second = Planned {
            fault,
            starts_after: self.duration(Duration::ZERO, latest_start),
            lasts,
        };
        vec![first, second]
    }

    /// A fault of `kind` on a victim among `candidates` (the leader half
    /// the time when it is one of them).
    fn fault(
        &mut self,
        kind: Kind,
        leader: Option<usize>,
        candidates: &[usize],
        spares: &[usize],
    ) -> Fault {
        match kind {
            Kind::Partition => {
                let victim = self.victim(leader, candidates);
                self.partition(victim, candidates)
            }
            Kind::Kill => Fault::Kill {
                member: self.victim(leader, candidates),
            },
            Kind::Pause => Fault::Pause {
                member: self.victim(leader, candidates),
            },
            Kind::Loss => Fault::Loss {
                member: self.victim(leader, candidates),
                percent: self.rng.between(10, 40),
            },
            Kind::Wipe => Fault::Wipe {
                member: self.victim(leader, candidates),
            },
            Kind::Membership => {
                let learner = spares[self.rng.index(spares.len())];
                let mut voters_then = candidates.to_vec();
                voters_then.push(learner);
                Fault::Membership {
                    learner,
                    removed: self.victim(leader, &voters_then),
                }
            }
        }
    }

    /// The leader half the time when it is a candidate, else a random one.
    fn victim(&mut self, leader: Option<usize>, candidates: &[usize]) -> usize {
        match leader {
            Some(leader) if candidates.contains(&leader) && self.rng.chance(0.5) => leader,
            _ => candidates[self.rng.index(candidates.len())],
        }
    }

    fn duration(&mut self, min: Duration, max: Duration) -> Duration {
        let millis = self.rng.between(
            min.as_millis() as u64,
            max.as_millis().max(min.as_millis()) as u64,
        );
        Duration::from_millis(millis)
    }

    /// A partition of `cluster` (at least two members) in one of the
    /// shapes that cut a link among that many.
    fn partition(&mut self, victim: usize, cluster: &[usize]) -> Fault {
        let n = cluster.len();
        let mut order = cluster.to_vec();
        self.rng.shuffle(&mut order);
        let shapes: Vec<&'static str> = PARTITION_SHAPES
            .iter()
            .filter(|(_, fewest)| n >= *fewest)
            .map(|(shape, _)| *shape)
            .collect();
        let shape = shapes[self.rng.index(shapes.len())];
        let cut = match shape {
            "random halves" => {
                let size = 1 + self.rng.index(n - 1);
                let side: BTreeSet<usize> = order[..size].iter().copied().collect();
                both_ways(cluster, |a, b| side.contains(&a) != side.contains(&b))
            }
            "one member alone" => both_ways(cluster, |a, b| (a == victim) != (b == victim)),
            "ring" => {
                // Each member hears only its two neighbours on a ring: at
                // 4 members each still sees a majority, and at 5 no two see
                // the same one.
                let position = |member: usize| order.iter().position(|&m| m == member).unwrap_or(0);
                let ring = |a: usize, b: usize| {
                    let distance = position(a).abs_diff(position(b));
                    distance > 1 && distance < n - 1
                };
                both_ways(cluster, ring)
            }
            "bridge" => {
                // Two halves that only `victim` hears both of.
                let others: Vec<usize> = order.iter().copied().filter(|&m| m != victim).collect();
                let left: BTreeSet<usize> = others[..others.len() / 2].iter().copied().collect();
                both_ways(cluster, |a, b| {
                    a != victim && b != victim && left.contains(&a) != left.contains(&b)
                })
            }
            _ => {
                // `victim` can send but hears no one.
                cluster
                    .iter()
                    .filter(|&&other| other != victim)
                    .map(|&other| (other, victim))
                    .collect()
            }
        };
        Fault::Partition { shape, cut }
    }
}

/// Every ordered pair of distinct members of `cluster` that `separated`
/// says are cut.
fn both_ways(
    cluster: &[usize],
    separated: impl Fn(usize, usize) -> bool,
) -> BTreeSet<(usize, usize)> {
    cluster
        .iter()
        .flat_map(|&a| cluster.iter().map(move |&b| (a, b)))
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
    #[error("{what} failed: {detail}")]
    Membership { what: String, detail: String },
}

/// What a fault changed in the cluster, for the report.
#[derive(Clone, Debug)]
pub enum Change {
    /// A wiped member and its replacement.
    Replaced(Replacement),
    /// A learner added and promoted, and a member removed.
    Membership(MembershipChange),
}

/// The firewalls' part of `fault`, if it is a network fault.
fn network_part(fault: &Fault) -> Option<NetworkFault> {
    match fault {
        Fault::Partition { cut, .. } => Some(NetworkFault::Cut(cut.clone())),
        Fault::Loss { member, percent } => Some(NetworkFault::Loss {
            member: *member,
            percent: *percent,
        }),
        _ => None,
    }
}

/// Applies `fault`; a wipe's replacement is its change.
pub async fn apply(
    fault: &Fault,
    hosts: &Hosts,
    members: &mut Members,
    firewalls: &mut Firewalls,
) -> Result<Option<Change>, FaultError> {
    if let Some(network) = network_part(fault) {
        firewalls.add(network, hosts)?;
        return Ok(None);
    }
    match fault {
        Fault::Kill { member } => members.kill(*member),
        Fault::Pause { member } => members.pause(*member),
        Fault::Wipe { member } => {
            return replacement::wipe_and_replace(hosts, members, *member)
                .await
                .map(|replaced| Some(Change::Replaced(replaced)))
        }
        Fault::Membership { learner, .. } => {
            membership::add_learner(hosts, members, *learner).await?
        }
        Fault::Partition { .. } | Fault::Loss { .. } => {}
    }
    Ok(None)
}

/// Undoes `fault`: reconnects, restarts or resumes (a wiped member was
/// replaced and started when the fault was applied); a membership change's
/// learner is promoted and a member removed, which is its change.
pub async fn heal(
    fault: &Fault,
    hosts: &Hosts,
    members: &mut Members,
    firewalls: &mut Firewalls,
) -> Result<Option<Change>, FaultError> {
    if let Some(network) = network_part(fault) {
        firewalls.remove(&network, hosts)?;
        return Ok(None);
    }
    match fault {
        Fault::Kill { member } => {
            if !members.is_running(*member) {
                members.start(hosts, *member)?;
            }
        }
        Fault::Pause { member } => members.resume(*member),
        Fault::Membership { learner, removed } => {
            return membership::promote_and_remove(members, *learner, *removed)
                .await
                .map(|changed| Some(Change::Membership(changed)))
        }
        Fault::Wipe { .. } | Fault::Partition { .. } | Fault::Loss { .. } => {}
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::HOSTS_MAX;

    fn pacing() -> Pacing {
        Pacing {
            fault_min: Duration::from_secs(1),
            fault_max: Duration::from_secs(3),
            quiet_min: Duration::from_secs(1),
            quiet_max: Duration::from_secs(2),
        }
    }

    fn members(n: usize) -> Vec<usize> {
        (0..n).collect()
    }

    /// `draws` steps of a schedule of `kinds` over a cluster of `n`
    /// members (with one spare host after them), led by m3 when there is
    /// one.
    fn steps(seed: u64, kinds: &str, n: usize, draws: usize) -> Vec<Vec<Planned>> {
        let mut schedule = Schedule::new(seed, kinds.parse().unwrap(), pacing());
        let leader = (n > 2).then_some(2);
        (0..draws)
            .map(|_| schedule.next(leader, &members(n), &[n]))
            .collect()
    }

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        assert_eq!(steps(7, "all", 5, 20), steps(7, "all", 5, 20));
        assert_ne!(steps(7, "all", 5, 20), steps(8, "all", 5, 20));
    }

    #[test]
    fn some_steps_overlap_two_faults_of_distinct_kinds_and_victims() {
        let drawn = steps(1, "partition,kill,pause,loss", 5, 200);
        let overlapping: Vec<&Vec<Planned>> = drawn.iter().filter(|step| step.len() == 2).collect();
        assert!(
            (20..180).contains(&overlapping.len()),
            "{} of 200 steps overlap",
            overlapping.len()
        );
        for step in overlapping {
            let (first, second) = (&step[0], &step[1]);
            assert_ne!(
                std::mem::discriminant(&first.fault),
                std::mem::discriminant(&second.fault),
                "{step:?}"
            );
            assert!(
                first.fault.victim().is_none() || first.fault.victim() != second.fault.victim(),
                "{step:?}"
            );
            assert!(
                second.starts_after < first.ends_after(),
                "the second starts while the first holds: {step:?}"
            );
        }
    }

    #[test]
    fn every_fault_of_a_step_is_healed_within_the_longest_fault() {
        for step in steps(2, "all", 5, 300) {
            assert!(!step.is_empty());
            for planned in &step {
                assert!(planned.lasts >= pacing().fault_min, "{planned:?}");
                assert!(planned.ends_after() <= pacing().fault_max, "{planned:?}");
            }
        }
    }

    #[test]
    fn wipes_and_membership_changes_never_overlap() {
        for step in steps(3, "all", 3, 300) {
            if step.iter().any(|planned| {
                matches!(planned.fault, Fault::Wipe { .. } | Fault::Membership { .. })
            }) {
                assert_eq!(step.len(), 1, "{step:?}");
            }
        }
    }

    #[test]
    fn a_membership_change_adds_the_spare_and_removes_a_voter_or_it() {
        let drawn = steps(4, "membership", 3, 200);
        let mut removed = BTreeSet::new();
        for step in &drawn {
            let [Planned {
                fault:
                    Fault::Membership {
                        learner,
                        removed: gone,
                    },
                ..
            }] = step.as_slice()
            else {
                panic!("only membership changes are enabled: {step:?}");
            };
            assert_eq!(*learner, 3, "the spare host is the learner");
            removed.insert(*gone);
        }
        assert_eq!(
            removed,
            (0..4).collect(),
            "each voter and the learner may go"
        );
        let mut without_spare = Schedule::new(4, "membership".parse().unwrap(), pacing());
        assert!(without_spare.next(None, &members(3), &[]).is_empty());
    }

    #[test]
    fn every_partition_drawn_cuts_a_link_for_every_cluster_size() {
        for n in 1..=HOSTS_MAX {
            // Fewer draws for the large sizes, whose cuts take long to list.
            let draws = if n <= 8 { 100 } else { 5 };
            for step in steps(n as u64, "partition", n, draws) {
                if n == 1 {
                    assert!(step.is_empty(), "nothing to cut among one member: {step:?}");
                    continue;
                }
                let [Planned {
                    fault: Fault::Partition { shape, cut },
                    ..
                }] = step.as_slice()
                else {
                    panic!("only partitions are enabled: {step:?}");
                };
                assert!(!cut.is_empty(), "a {shape} partition of {n} cuts nothing");
                assert!(cut.iter().all(|&(a, b)| a != b && a < n && b < n));
            }
        }
    }

    #[test]
    fn each_size_draws_exactly_the_shapes_that_cut_among_it() {
        for n in 2..=6 {
            let drawn: BTreeSet<&str> = steps(9, "partition", n, 300)
                .iter()
                .map(|step| match &step[0].fault {
                    Fault::Partition { shape, .. } => *shape,
                    other => panic!("only partitions are enabled: {other:?}"),
                })
                .collect();
            let expected: BTreeSet<&str> = PARTITION_SHAPES
                .iter()
                .filter(|(_, fewest)| n >= *fewest)
                .map(|(shape, _)| *shape)
                .collect();
            assert_eq!(drawn, expected, "shapes drawn among {n}");
        }
    }

    #[test]
    fn a_ring_leaves_each_member_its_two_neighbours() {
        for n in [4, 5] {
            let cut = steps(11, "partition", n, 1_000)
                .into_iter()
                .find_map(|step| match step.into_iter().next()?.fault {
                    Fault::Partition { shape: "ring", cut } => Some(cut),
                    _ => None,
                })
                .expect("a ring within 1,000 draws");
            for member in 0..n {
                let heard = (0..n)
                    .filter(|&other| other != member && !cut.contains(&(other, member)))
                    .count();
                assert_eq!(heard, 2, "m{} hears two neighbours: {cut:?}", member + 1);
            }
        }
    }

    #[test]
    fn a_lossy_member_drops_between_ten_and_forty_percent() {
        for step in steps(5, "loss", 3, 100) {
            let [Planned {
                fault: Fault::Loss { member, percent },
                ..
            }] = step.as_slice()
            else {
                panic!("only loss is enabled: {step:?}");
            };
            assert!(*member < 3 && (10..=40).contains(percent));
        }
    }

    #[test]
    fn fault_names_parse_and_unknown_ones_are_refused() {
        let kinds: FaultKinds = "partition,kill".parse().unwrap();
        assert!(kinds.partitions && kinds.kills && !kinds.pauses && !kinds.loss && !kinds.wipes);
        let wipes: FaultKinds = "wipe".parse().unwrap();
        assert!(wipes.wipes && !wipes.kills);
        let membership: FaultKinds = "membership".parse().unwrap();
        assert!(membership.membership && !membership.wipes);
        assert_eq!(membership.spare_hosts(), 1);
        let all: FaultKinds = "all".parse().unwrap();
        assert!(
            all.partitions && all.kills && all.pauses && all.loss && all.wipes && all.membership
        );
        assert_eq!(kinds.spare_hosts(), 0);
        assert!("partition,flood"
            .parse::<FaultKinds>()
            .unwrap_err()
            .contains("flood"));
    }
}
