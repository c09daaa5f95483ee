//! The knobs of one member, validated once at start so the core never has to
//! guard against nonsense values later.

use crate::types::{LogIndex, NodeId, NO_NODE};

/// Configuration of one Raft member. Times are in ticks: the embedder decides
/// how long a tick is (the server uses the heartbeat interval as one tick).
#[derive(Clone, Debug)]
pub struct Config {
    pub id: NodeId,
    /// The minimum election timeout. A follower that hears nothing from a leader
    /// for a timeout drawn from `[election_ticks, election_ticks_max)` campaigns.
    pub election_ticks: u32,
    /// The exclusive upper bound of the randomized election timeout; zero means
    /// twice `election_ticks`.
    pub election_ticks_max: u32,
    /// How often a leader sends heartbeats.
    pub heartbeat_ticks: u32,
    /// Run a PreVote round before raising the term, so a member that was cut
    /// off cannot disrupt the cluster when it comes back.
    pub pre_vote: bool,
    /// A leader that has not heard from a majority within an election timeout
    /// steps down, and followers ignore votes while they hear from a leader.
    pub check_quorum: bool,
    /// Forward proposals and reads made on a follower to the leader instead of
    /// rejecting them.
    pub forward_to_leader: bool,
    /// The most entry bytes in one `AppendEntries` (at least one entry is always sent).
    pub message_bytes_max: u64,
    /// The most `AppendEntries` in flight to one follower in the replicate state.
    pub inflight_messages_max: usize,
    /// The highest index the state machine has already applied (on restart), so
    /// the core does not hand those entries out again.
    pub applied: LogIndex,
    /// Seed of the generator that randomizes election timeouts.
    pub random_seed: u64,
    /// A deliberate bug to switch on, for checker tests only.
    #[cfg(feature = "mutations")]
    pub mutation: Option<crate::Mutation>,
}

impl Config {
    /// A configuration with the defaults a production cluster would use.
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            election_ticks: 10,
            election_ticks_max: 0,
            heartbeat_ticks: 1,
            pre_vote: true,
            check_quorum: true,
            forward_to_leader: true,
            message_bytes_max: 1024 * 1024,
            inflight_messages_max: 256,
            applied: 0,
            random_seed: id,
            #[cfg(feature = "mutations")]
            mutation: None,
        }
    }

    /// The exclusive upper bound of the randomized election timeout.
    pub fn election_ticks_upper(&self) -> u32 {
        if self.election_ticks_max == 0 {
            self.election_ticks * 2
        } else {
            self.election_ticks_max
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == NO_NODE {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_ticks == 0 {
            return Err(ConfigError::ZeroHeartbeat);
        }
        if self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::ElectionNotAboveHeartbeat {
                election_ticks: self.election_ticks,
                heartbeat_ticks: self.heartbeat_ticks,
            });
        }
        if self.election_ticks_upper() <= self.election_ticks {
            return Err(ConfigError::EmptyElectionRange {
                election_ticks: self.election_ticks,
                election_ticks_max: self.election_ticks_upper(),
            });
        }
        if self.inflight_messages_max == 0 {
            return Err(ConfigError::ZeroInflight);
        }
        Ok(())
    }
}

/// A configuration the core refuses to run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("node id 0 is reserved for \"no node\"; ids start at 1")]
    ZeroId,
    #[error("heartbeat_ticks must be at least 1")]
    ZeroHeartbeat,
    #[error("election_ticks ({election_ticks}) must be greater than heartbeat_ticks ({heartbeat_ticks})")]
    ElectionNotAboveHeartbeat {
        election_ticks: u32,
        heartbeat_ticks: u32,
    },
    #[error("election timeout range [{election_ticks}, {election_ticks_max}) is empty")]
    EmptyElectionRange {
        election_ticks: u32,
        election_ticks_max: u32,
    },
    #[error("inflight_messages_max must be at least 1")]
    ZeroInflight,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::new(1).validate(), Ok(()));
    }

    #[test]
    fn rejects_zero_id_and_inverted_timeouts() {
        assert_eq!(Config::new(0).validate(), Err(ConfigError::ZeroId));
        let mut config = Config::new(1);
        config.election_ticks = 1;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::ElectionNotAboveHeartbeat { .. })
        ));
        let mut config = Config::new(1);
        config.election_ticks_max = 10;
        assert!(matches!(
            config.validate(),
            Err(ConfigError::EmptyElectionRange { .. })
        ));
    }
}
