//! The values the core exchanges with its embedder: log entries, durable state,
//! snapshots and messages. Plain data with no behaviour beyond small helpers,
//! so storage and transport crates can encode them however they like.

/// Identifies a member of the cluster. Zero is never a valid id: it means "none".
pub type NodeId = u64;

/// A Raft term. Terms only grow; zero is the term before any election.
pub type Term = u64;

/// A position in the replicated log. The first real entry has index 1; index 0
/// is the empty log's sentinel with term 0.
pub type LogIndex = u64;

/// The id that stands for "no node" in votes and leader fields.
pub const NO_NODE: NodeId = 0;

/// What a log entry carries, so the state machine knows how to apply it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// An application command, opaque to the core.
    Normal,
    /// The empty entry a new leader appends to commit its term (Raft §5.4.2).
    Noop,
    /// A change of one member (Raft dissertation §4.1). It takes effect on each
    /// member as soon as the entry is in its log; `data` is an opaque context
    /// for the embedder (for example the new member's addresses).
    ConfChange(ConfChange),
}

/// A single-member configuration change, as etcd's MemberAdd,
/// MemberAddAsLearner, MemberPromote and MemberRemove.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConfChange {
    pub kind: ConfChangeKind,
    pub node_id: NodeId,
}

/// What a [`ConfChange`] does to its member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConfChangeKind {
    /// A new voting member.
    AddVoter,
    /// A new non-voting member that receives the log (dissertation §4.2.1).
    AddLearner,
    /// A learner becomes a voter.
    PromoteLearner,
    /// A voter or learner leaves the cluster.
    RemoveMember,
}

/// One slot of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Entry {
    pub term: Term,
    pub index: LogIndex,
    pub kind: EntryKind,
    pub data: Vec<u8>,
}

impl Entry {
    /// Bytes this entry counts against message and batch size limits: its payload
    /// plus a fixed allowance for the header fields.
    pub fn size_bytes(&self) -> u64 {
        const HEADER_BYTES: u64 = 24;
        HEADER_BYTES + self.data.len() as u64
    }
}

/// The state that must be on disk before any message that depends on it is sent:
/// the current term, the vote cast in it, and the highest index known committed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct HardState {
    pub term: Term,
    /// The candidate voted for in `term`, or [`NO_NODE`].
    pub vote: NodeId,
    pub commit: LogIndex,
}

/// The members of the cluster: voters decide elections and commitment;
/// learners only receive the log. Both lists are sorted and disjoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ConfState {
    pub voters: Vec<NodeId>,
    pub learners: Vec<NodeId>,
}

impl ConfState {
    /// A configuration of voters only, as a new cluster starts.
    pub fn with_voters(mut voters: Vec<NodeId>) -> Self {
        voters.sort_unstable();
        voters.dedup();
        Self {
            voters,
            learners: Vec::new(),
        }
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.binary_search(&id).is_ok()
    }

    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.binary_search(&id).is_ok()
    }

    pub fn is_member(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// The smallest number of voters that forms a majority.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The configuration after `change`, or why the change does not fit this
    /// configuration. Never leaves the cluster without a voter.
    pub fn apply(&self, change: ConfChange) -> Result<ConfState, ConfChangeError> {
        let id = change.node_id;
        if id == NO_NODE {
            return Err(ConfChangeError::ZeroId);
        }
        let mut next = self.clone();
        match change.kind {
            ConfChangeKind::AddVoter | ConfChangeKind::AddLearner if self.is_member(id) => {
                return Err(ConfChangeError::AlreadyMember(id));
            }
            ConfChangeKind::AddVoter => insert_sorted(&mut next.voters, id),
            ConfChangeKind::AddLearner => insert_sorted(&mut next.learners, id),
            ConfChangeKind::PromoteLearner => {
                if !self.is_learner(id) {
                    return Err(ConfChangeError::NotLearner(id));
                }
                next.learners.retain(|&learner| learner != id);
                insert_sorted(&mut next.voters, id);
            }
            ConfChangeKind::RemoveMember => {
                if !self.is_member(id) {
                    return Err(ConfChangeError::NotMember(id));
                }
                if self.voters == [id] {
                    return Err(ConfChangeError::LastVoter(id));
                }
                next.voters.retain(|&voter| voter != id);
                next.learners.retain(|&learner| learner != id);
            }
        }
        Ok(next)
    }
}

fn insert_sorted(ids: &mut Vec<NodeId>, id: NodeId) {
    if let Err(position) = ids.binary_search(&id) {
        ids.insert(position, id);
    }
}

/// Why a configuration change does not fit the configuration it would follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfChangeError {
    #[error("node id 0 is reserved for \"no node\"; ids start at 1")]
    ZeroId,
    #[error("member {0:x} is already in the cluster")]
    AlreadyMember(NodeId),
    #[error("member {0:x} is not a learner; only learners can be promoted")]
    NotLearner(NodeId),
    #[error("member {0:x} is not in the cluster")]
    NotMember(NodeId),
    #[error("member {0:x} is the last voter; a cluster needs at least one")]
    LastVoter(NodeId),
}

/// Where a snapshot sits in the log and which configuration was in force there.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SnapshotMeta {
    /// The last log index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
    pub conf_state: ConfState,
}

/// The state machine's image at `meta.index`; `data` is opaque to the core.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// A message between two members. Every message carries the sender's term, so
/// the receiver can step down (or ignore a stale sender) before looking at the body.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Message {
    pub from: NodeId,
    pub to: NodeId,
    pub term: Term,
    pub body: MessageBody,
}

/// The kinds of message the core sends and understands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MessageBody {
    /// A candidate (or pre-candidate) asks for a vote.
    RequestVote {
        /// A PreVote probe: asks "would you vote for me" without anyone changing term.
        pre_vote: bool,
        last_log_index: LogIndex,
        last_log_term: Term,
        /// Sent because the leader handed over leadership: voters skip the
        /// leader-stickiness check, since the leader itself asked for this election.
        leadership_transfer: bool,
    },
    RequestVoteResponse {
        pre_vote: bool,
        granted: bool,
    },
    /// The leader replicates entries following `(prev_log_index, prev_log_term)`.
    AppendEntries {
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
    },
    AppendEntriesResponse(AppendResponse),
    /// Keeps followers' election timers quiet and carries the commit index.
    /// `read_context` is set when the heartbeat round confirms a ReadIndex request.
    Heartbeat {
        commit: LogIndex,
        read_context: Option<Vec<u8>>,
    },
    HeartbeatResponse {
        read_context: Option<Vec<u8>>,
    },
    /// The leader sends its snapshot to a follower whose next entry is compacted away.
    InstallSnapshot {
        snapshot: Snapshot,
    },
    /// The leader tells the transfer target to start an election at once.
    TimeoutNow,
    /// A follower forwards client proposals to the leader it knows.
    ForwardProposal {
        entries: Vec<Vec<u8>>,
    },
    /// A follower forwards a linearizable read request to the leader.
    ForwardReadIndex {
        context: Vec<u8>,
    },
    /// The leader answers a forwarded read with the index the read must wait for.
    ReadIndexResponse {
        context: Vec<u8>,
        index: LogIndex,
    },
}

/// A follower's answer to `AppendEntries` or `InstallSnapshot`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AppendResponse {
    /// The follower's log now matches the leader's through `match_index`.
    Accepted { match_index: LogIndex },
    /// The consistency check failed at `rejected_index`; the hint lets the leader
    /// skip a whole term of mismatched entries per round trip.
    Rejected {
        rejected_index: LogIndex,
        hint: RejectHint,
    },
}

/// Where the leader should probe next after a rejected append (fast backtracking).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectHint {
    /// The follower's log ends at `last_index`, before the probed position.
    LogTooShort { last_index: LogIndex },
    /// The follower holds `conflict_term` at the probed index, and its first
    /// entry of that term is at `first_index`.
    TermConflict {
        conflict_term: Term,
        first_index: LogIndex,
    },
}

/// A linearizable read the application may serve once it has applied `index`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReadState {
    pub index: LogIndex,
    pub context: Vec<u8>,
}

/// A member's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

/// State that is useful to observe but need not be persisted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SoftState {
    /// The leader this member knows of in its current term, or [`NO_NODE`].
    pub leader: NodeId,
    pub role: Role,
}
