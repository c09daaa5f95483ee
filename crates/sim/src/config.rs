//! Everything one simulated run is parameterized by, apart from its seed:
//! cluster size, timing, the network and disk models, which faults to
//! inject, the client workload, and the deliberate bugs of test builds.
//!
//! Owns: [`SimConfig`] and its parts, [`FaultSet`] parsing for the CLI.
//! Must never: hold state of a run.

use std::ops::Range;

use crate::rng::SimRng;
use std::str::FromStr;

/// How clients' Gets are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    /// Through the ReadIndex barrier: linearizable.
    ReadIndex,
    /// Serializable reads: from whichever member the client asks, at once,
    /// without any barrier. Not linearizable: a deliberate bug the checker
    /// must catch.
    LocalUnsafe,
}

/// Latency and unreliability of the links between members (and clients).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkConfig {
    pub latency_us_min: u64,
    pub latency_us_max: u64,
    pub drop_probability: f64,
    pub duplicate_probability: f64,
}

/// The disk model: how long an fsync takes and how a crash tears a write.
#[derive(Clone, Debug, PartialEq)]
pub struct DiskConfig {
    pub fsync_us_min: u64,
    pub fsync_us_max: u64,
    /// Chance that a crash keeps some sectors of a file's first unsynced
    /// write (the log's records, the store's pages), and a prefix of a
    /// directory's unsynced changes, instead of none of them.
    pub torn_write_probability: f64,
}

/// Which faults the nemesis injects during the fault phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultSet {
    /// Drops, duplicates and reordering on every link, and now and then a
    /// message delivered long ago delivered once more.
    pub unreliable_network: bool,
    /// Random halves, an isolated leader, a bridge, one-way cuts; and a
    /// handover staged the moment a leader commits an entry its followers
    /// do not yet know committed (its messages in flight lost, leadership
    /// handed to a caught-up follower or the leader cut off, the
    /// successor's first appends lost).
    pub partitions: bool,
    /// Member crashes (losing unsynced writes) and restarts, the leader's
    /// now and then at once.
    pub crashes: bool,
    /// Leadership handed to a random follower (not a fault, but a change of
    /// leader the cluster must survive like one).
    pub transfers: bool,
    /// A member's process stops for a while (a long GC pause) and resumes
    /// with its old view of the world.
    pub pauses: bool,
    /// The leader is asked for single-member configuration changes: add a
    /// learner and promote it, add a voter, remove a voter or itself, re-add
    /// a removed member, among the founding members and a few spare ids.
    /// With partitions on, also a split staged at four voters: the leader,
    /// cut off, is asked to add a voter, and its successor, at once, to
    /// remove it.
    pub membership: bool,
    /// A member (the leader, half the time) becomes slow: every message it
    /// sends or receives takes 100 ms to 2 s, so answers to old requests
    /// arrive after newer ones, and old appends after newer ones.
    pub delays: bool,
    /// A member's log disk fills up for a while: every log write fails with
    /// "no space left on device" until the space is freed, and the member
    /// must hold its writes, refuse new ones and resume by itself.
    pub disk_full: bool,
}

impl FaultSet {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn all() -> Self {
        Self {
            unreliable_network: true,
            partitions: true,
            crashes: true,
            transfers: true,
            pauses: true,
            membership: true,
            delays: true,
            disk_full: true,
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::none()
    }
}

/// A `--faults` value that names no known fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault {name:?} in {input:?}; use \"all\", \"none\" or a comma list of network, partition, crash, transfer, pause, membership, delay, disk-full")]
pub struct FaultSetParseError {
    pub name: String,
    pub input: String,
}

impl FromStr for FaultSet {
    type Err = FaultSetParseError;

    /// `all`, `none`, or a comma list of `network`, `partition`, `crash`,
    /// `transfer`, `pause`, `membership`, `delay`, `disk-full`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let mut faults = FaultSet::none();
        for name in input
            .split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
        {
            match name {
                "all" => faults = FaultSet::all(),
                "none" => {}
                "network" => faults.unreliable_network = true,
                "partition" | "partitions" => faults.partitions = true,
                "crash" | "crashes" => faults.crashes = true,
                "transfer" | "transfers" => faults.transfers = true,
                "pause" | "pauses" => faults.pauses = true,
                "membership" => faults.membership = true,
                "delay" | "delays" => faults.delays = true,
                "disk-full" | "diskfull" => faults.disk_full = true,
                other => {
                    return Err(FaultSetParseError {
                        name: other.to_string(),
                        input: input.to_string(),
                    })
                }
            }
        }
        Ok(faults)
    }
}

/// A `--seeds` value that is not a range of seeds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid seed range {input:?}: {reason}; write START..END (END excluded), START..=END or a single seed")]
pub struct SeedRangeParseError {
    pub input: String,
    pub reason: &'static str,
}

/// Parses `START..END`, `START..=END` or a single seed `N` into a half-open range.
pub fn parse_seed_range(input: &str) -> Result<Range<u64>, SeedRangeParseError> {
    let error = |reason| SeedRangeParseError {
        input: input.to_string(),
        reason,
    };
    let number = |text: &str| {
        text.trim()
            .parse::<u64>()
            .map_err(|_| error("a bound is not a whole number"))
    };
    let range = if let Some((start, end)) = input.split_once("..=") {
        let end = number(end)?
            .checked_add(1)
            .ok_or_else(|| error("the end is too large"))?;
        number(start)?..end
    } else if let Some((start, end)) = input.split_once("..") {
        number(start)?..number(end)?
    } else {
        let seed = number(input)?;
        seed..seed
            .checked_add(1)
            .ok_or_else(|| error("the seed is too large"))?
    };
    if range.is_empty() {
        return Err(error("the range holds no seed"));
    }
    Ok(range)
}

/// The client workload.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadConfig {
    pub client_count: usize,
    pub key_count: u8,
    /// How long a client waits for an answer before retrying elsewhere.
    pub request_timeout_us: u64,
    /// Attempts (first try plus retries) before a client gives up on an
    /// operation during the fault phase; its outcome is then unknown.
    pub attempts_max: u32,
    /// Pause between a client's operations, drawn from `[0, think_us_max]`.
    pub think_us_max: u64,
    /// Pause before retrying after a "not leader" answer.
    pub redirect_backoff_us: u64,
    pub read_mode: ReadMode,
}

/// The largest cluster the simulator runs (Raft clusters are small; the
/// checkers compare members pairwise).
pub const NODE_COUNT_MAX: usize = 15;

/// Spare ids a run with membership changes starts besides the founding members.
pub const SPARE_MEMBERS_WITH_MEMBERSHIP_CHANGES: usize = 2;

/// The most spare ids a run may start.
pub const SPARE_MEMBER_COUNT_MAX: usize = 4;

/// A configuration the simulator refuses to run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimConfigError {
    #[error(
        "a cluster needs 1 to {NODE_COUNT_MAX} members, not {node_count}; pass --nodes 3, 5 or 7"
    )]
    NodeCount { node_count: usize },
    #[error("{spare_member_count} spare members; at most {SPARE_MEMBER_COUNT_MAX} may be started")]
    SpareMembers { spare_member_count: usize },
    #[error("tick_us is 0; virtual time must advance by at least 1 us per tick")]
    ZeroTick,
    #[error("election_ticks ({election_ticks}) must exceed heartbeat_ticks ({heartbeat_ticks}), which must be at least 1")]
    Timeouts {
        election_ticks: u32,
        heartbeat_ticks: u32,
    },
    #[error("{name} range is [{min_us}, {max_us}] us; the minimum must not exceed the maximum (and the fault interval must be above 0)")]
    InvertedRange {
        name: &'static str,
        min_us: u64,
        max_us: u64,
    },
    #[error("{name} is {value}; a probability lies between 0 and 1")]
    Probability { name: &'static str, value: f64 },
    #[error("clients need at least one key to work on; set workload.key_count above 0")]
    NoKeys,
}

/// Everything about a run except its seed.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Founding members, with ids `1..=node_count`.
    pub node_count: usize,
    /// Processes started with the cluster but not members of it: ids the
    /// nemesis can add (as learners or voters) when membership changes are on.
    pub spare_member_count: usize,
    pub tick_us: u64,
    /// Each member's clock runs up to this many parts per thousand fast or
    /// slow (drawn per member and run), so timers drift apart as real ones do.
    pub tick_drift_per_mille_max: u64,
    pub election_ticks: u32,
    pub heartbeat_ticks: u32,
    pub pre_vote: bool,
    pub check_quorum: bool,
    pub message_bytes_max: u64,
    /// Each member snapshots its state machine and compacts its log every
    /// this many applied entries (0: never).
    pub snapshot_interval_entries: u64,
    pub network: NetworkConfig,
    pub disk: DiskConfig,
    pub faults: FaultSet,
    /// Virtual time during which faults are injected and clients run.
    pub fault_phase_us: u64,
    /// Gap between two fault decisions, drawn from `[min, max]`.
    pub fault_interval_us_min: u64,
    pub fault_interval_us_max: u64,
    /// How long a partition lasts, and a crashed member stays down.
    pub fault_duration_us_min: u64,
    pub fault_duration_us_max: u64,
    /// After healing: a leader must appear within this many election timeouts.
    pub heal_leader_election_timeouts: u64,
    /// After healing: every pending client operation must complete, and
    /// every member catch up, within this much virtual time.
    pub heal_completion_us_max: u64,
    pub workload: WorkloadConfig,
    /// A deliberate bug in the core (test builds with the `mutations` feature).
    #[cfg(feature = "mutations")]
    pub core_mutation: Option<raft::Mutation>,
    /// A deliberate bug in the node loop (test builds with the `mutations` feature).
    #[cfg(feature = "mutations")]
    pub node_mutation: Option<node::Mutation>,
    /// A deliberate bug in the store (test builds with the `mutations` feature).
    #[cfg(feature = "mutations")]
    pub store_mutation: Option<mvcc::Mutation>,
    /// A deliberate bug in the server's KV path (test builds with the
    /// `mutations` feature).
    #[cfg(feature = "mutations")]
    pub kv_mutation: Option<server::api::kv_requests::Mutation>,
    /// Events kept for a violation's story.
    pub trace_events_max: usize,
    /// Check the client history for linearizability at the end of the run.
    pub check_linearizability: bool,
    /// Let each seed also draw the core's switches and the environment's
    /// knobs (see [`SimConfig::varied_for_seed`]), so many seeds cover many
    /// settings, not one.
    pub vary_per_seed: bool,
}

impl SimConfig {
    /// A cluster of `node_count` members with the given faults and the
    /// defaults used by the multi-seed runs.
    pub fn new(node_count: usize, faults: FaultSet) -> Self {
        let unreliable = faults.unreliable_network;
        Self {
            node_count,
            spare_member_count: if faults.membership {
                SPARE_MEMBERS_WITH_MEMBERSHIP_CHANGES
            } else {
                0
            },
            tick_us: 10_000,
            tick_drift_per_mille_max: 50,
            election_ticks: 10,
            heartbeat_ticks: 2,
            pre_vote: true,
            check_quorum: true,
            message_bytes_max: 64 * 1024,
            snapshot_interval_entries: 32,
            network: NetworkConfig {
                latency_us_min: 500,
                latency_us_max: if unreliable { 15_000 } else { 3_000 },
                drop_probability: if unreliable { 0.05 } else { 0.0 },
                duplicate_probability: if unreliable { 0.02 } else { 0.0 },
            },
            disk: DiskConfig {
                fsync_us_min: 200,
                fsync_us_max: 5_000,
                torn_write_probability: 0.5,
            },
            faults,
            fault_phase_us: 6_000_000,
            fault_interval_us_min: 100_000,
            fault_interval_us_max: 600_000,
            fault_duration_us_min: 100_000,
            fault_duration_us_max: 1_200_000,
            heal_leader_election_timeouts: 10,
            heal_completion_us_max: 15_000_000,
            workload: WorkloadConfig {
                client_count: 5,
                key_count: 3,
                request_timeout_us: 300_000,
                attempts_max: 5,
                think_us_max: 30_000,
                redirect_backoff_us: 5_000,
                read_mode: ReadMode::ReadIndex,
            },
            #[cfg(feature = "mutations")]
            core_mutation: None,
            #[cfg(feature = "mutations")]
            node_mutation: None,
            #[cfg(feature = "mutations")]
            store_mutation: None,
            #[cfg(feature = "mutations")]
            kv_mutation: None,
            trace_events_max: 48,
            check_linearizability: true,
            vary_per_seed: false,
        }
    }

    /// This configuration with settings drawn from `seed`: PreVote and
    /// CheckQuorum on or off, one entry per append or many, how often members
    /// snapshot, disk and network speed and loss, client load, heartbeat and
    /// election timing. The draw uses its own generator, so the run itself
    /// still depends on the seed alone. Faults stay as configured.
    pub fn varied_for_seed(&self, seed: u64) -> SimConfig {
        const VARIATION_STREAM: u64 = 0x7661_7269_6564_2121;
        let mut rng = SimRng::new(seed ^ VARIATION_STREAM);
        let mut config = self.clone();
        config.pre_vote = rng.chance(0.75);
        config.check_quorum = rng.chance(0.75);
        if rng.chance(0.25) {
            config.message_bytes_max = 1;
        }
        config.snapshot_interval_entries = [0, 4, 16, 32, 128][rng.index(5)];
        if rng.chance(0.25) {
            config.heartbeat_ticks = 1;
            config.election_ticks = rng.between(4, 10) as u32;
        }
        // Raft's timing assumption: a round trip plus an fsync must fit well
        // within the shortest election timeout, or no election can finish.
        let budget_us = u64::from(config.election_ticks) * config.tick_us / 2;
        let fsync_ceiling_us = (budget_us / 2).clamp(config.disk.fsync_us_min, 40_000);
        config.disk.fsync_us_max = rng.between(config.disk.fsync_us_min, fsync_ceiling_us);
        let latency_ceiling_us = (budget_us / 4).clamp(config.network.latency_us_min, 20_000);
        config.network.latency_us_max =
            rng.between(config.network.latency_us_min, latency_ceiling_us);
        if config.faults.unreliable_network {
            config.network.drop_probability = rng.between(0, 20) as f64 / 100.0;
            config.network.duplicate_probability = rng.between(0, 5) as f64 / 100.0;
        }
        config.workload.client_count = rng.between(1, 10) as usize;
        config.workload.key_count = rng.between(1, 5) as u8;
        config.vary_per_seed = false;
        debug_assert_eq!(config.validate(), Ok(()), "a variation stays valid");
        config
    }

    /// Checks the settings a run relies on; the CLI calls this before running
    /// any seed so a bad flag is an error, not a panic mid-run.
    pub fn validate(&self) -> Result<(), SimConfigError> {
        if self.node_count == 0 || self.node_count > NODE_COUNT_MAX {
            return Err(SimConfigError::NodeCount {
                node_count: self.node_count,
            });
        }
        if self.spare_member_count > SPARE_MEMBER_COUNT_MAX {
            return Err(SimConfigError::SpareMembers {
                spare_member_count: self.spare_member_count,
            });
        }
        if self.tick_us == 0 {
            return Err(SimConfigError::ZeroTick);
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return Err(SimConfigError::Timeouts {
                election_ticks: self.election_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
            });
        }
        let ranges = [
            (
                "network latency",
                self.network.latency_us_min,
                self.network.latency_us_max,
            ),
            (
                "fsync latency",
                self.disk.fsync_us_min,
                self.disk.fsync_us_max,
            ),
            (
                "fault interval",
                self.fault_interval_us_min,
                self.fault_interval_us_max,
            ),
            (
                "fault duration",
                self.fault_duration_us_min,
                self.fault_duration_us_max,
            ),
        ];
        for (name, min_us, max_us) in ranges {
            if min_us > max_us {
                return Err(SimConfigError::InvertedRange {
                    name,
                    min_us,
                    max_us,
                });
            }
        }
        if self.fault_interval_us_max == 0 {
            return Err(SimConfigError::InvertedRange {
                name: "fault interval",
                min_us: self.fault_interval_us_min,
                max_us: 0,
            });
        }
        let probabilities = [
            ("drop probability", self.network.drop_probability),
            ("duplicate probability", self.network.duplicate_probability),
            ("torn write probability", self.disk.torn_write_probability),
        ];
        for (name, value) in probabilities {
            if !(0.0..=1.0).contains(&value) {
                return Err(SimConfigError::Probability { name, value });
            }
        }
        if self.workload.client_count > 0 && self.workload.key_count == 0 {
            return Err(SimConfigError::NoKeys);
        }
        Ok(())
    }

    /// The longest randomized election timeout, in virtual microseconds.
    pub fn election_timeout_us_max(&self) -> u64 {
        2 * u64::from(self.election_ticks) * self.tick_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variations_differ_by_seed_and_stay_valid() {
        let base = SimConfig::new(5, FaultSet::all());
        let drawn: Vec<(bool, bool, u64, u64, usize)> = (0..64)
            .map(|seed| {
                let config = base.varied_for_seed(seed);
                assert_eq!(config.validate(), Ok(()));
                assert_eq!(config.faults, base.faults);
                (
                    config.pre_vote,
                    config.check_quorum,
                    config.message_bytes_max,
                    config.snapshot_interval_entries,
                    config.workload.client_count,
                )
            })
            .collect();
        assert!(drawn.iter().any(|knobs| !knobs.0) && drawn.iter().any(|knobs| knobs.0));
        assert!(drawn.iter().any(|knobs| knobs.2 == 1));
        assert_eq!(
            base.varied_for_seed(7).snapshot_interval_entries,
            base.varied_for_seed(7).snapshot_interval_entries
        );
    }

    #[test]
    fn defaults_validate_and_nonsense_is_named() {
        for nodes in [1, 3, 5, 7] {
            assert_eq!(SimConfig::new(nodes, FaultSet::all()).validate(), Ok(()));
        }
        let error = SimConfig::new(0, FaultSet::all()).validate().unwrap_err();
        assert!(error.to_string().contains("--nodes"));
        let mut config = SimConfig::new(3, FaultSet::all());
        config.disk.fsync_us_min = 10;
        config.disk.fsync_us_max = 5;
        assert!(matches!(
            config.validate(),
            Err(SimConfigError::InvertedRange {
                name: "fsync latency",
                ..
            })
        ));
        let mut config = SimConfig::new(3, FaultSet::all());
        config.network.drop_probability = 1.5;
        assert!(matches!(
            config.validate(),
            Err(SimConfigError::Probability { .. })
        ));
        let mut config = SimConfig::new(3, FaultSet::all());
        config.election_ticks = 2;
        assert!(matches!(
            config.validate(),
            Err(SimConfigError::Timeouts { .. })
        ));
    }

    #[test]
    fn seed_ranges_parse_and_reject_nonsense() {
        assert_eq!(parse_seed_range("1..2000"), Ok(1..2000));
        assert_eq!(parse_seed_range("1..=5"), Ok(1..6));
        assert_eq!(parse_seed_range("42"), Ok(42..43));
        assert!(parse_seed_range("5..5").is_err());
        let error = parse_seed_range("a..9").unwrap_err();
        assert!(error.to_string().contains("START..END"));
        assert!(parse_seed_range("1..=18446744073709551615").is_err());
    }

    #[test]
    fn fault_sets_parse_from_cli_words() {
        assert_eq!("all".parse::<FaultSet>(), Ok(FaultSet::all()));
        assert_eq!("none".parse::<FaultSet>(), Ok(FaultSet::none()));
        let parsed: FaultSet = "network, crash".parse().unwrap();
        assert!(parsed.unreliable_network && parsed.crashes && !parsed.partitions);
        let error = "network,flood".parse::<FaultSet>().unwrap_err();
        assert_eq!(error.name, "flood");
        assert!(error
            .to_string()
            .contains("network, partition, crash, transfer, pause, membership, delay, disk-full"));
    }
}
