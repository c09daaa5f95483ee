//! [`RawNode`]: the synchronous API an embedder drives. Six verbs feed the
//! core (`tick`, `step`, `propose`, `propose_conf_change`, `read_index`,
//! `transfer_leader`); one batch comes out (`ready`), and `advance` says the
//! batch was handled.
//!
//! The loop an embedder writes, and the order the persistence contract needs:
//!
//! ```text
//! loop {
//!     feed ticks, messages and proposals into the node;
//!     if node.has_ready() {
//!         let ready = node.ready();
//!         send ready.messages                 (may go before the disk write)
//!         apply ready.committed_entries       (durable here already)
//!         persist ready.snapshot, ready.entries, ready.hard_state;
//!             fsync if ready.must_sync
//!         send ready.persisted_messages       (only after the fsync)
//!         apply ready.committed_entries_after_persist
//!         serve ready.read_states
//!         node.advance();
//!     }
//! }
//! ```
//!
//! `step`, `propose` and the other inputs must not be called between `ready()`
//! and `advance()`: the batch describes one consistent state.
//!
//! Every input, `ready` and `advance` included, reads the log through
//! [`Storage`] and returns [`RaftError::Storage`] when a read fails. That
//! error is final: the input may have stopped halfway, so the member refuses
//! everything after it, and its embedder stops it and reports the failure
//! (a restart recovers from what the storage holds).

use crate::config::Config;
use crate::raft::{Raft, Status};
use crate::storage::Storage;
use crate::types::{
    ConfChange, ConfState, Entry, HardState, LogIndex, Message, NodeId, ReadState, Snapshot,
    SoftState,
};
use crate::RaftError;

/// One batch of work for the embedder, to be handled in the order of its fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Set when the leader or role changed since the last batch.
    pub soft_state: Option<SoftState>,
    /// Set when term, vote or commit changed: persist before `persisted_messages`.
    pub hard_state: Option<HardState>,
    /// A snapshot received from the leader: persist it and restore the state
    /// machine from it before applying `committed_entries`.
    pub snapshot: Option<Snapshot>,
    /// Entries to append to the durable log, replacing any suffix from the first
    /// entry's index on.
    pub entries: Vec<Entry>,
    /// Messages that promise nothing about local durable state (a leader's
    /// appends and heartbeats): send them at once, even before the disk write.
    pub messages: Vec<Message>,
    /// Messages that promise durable state (votes, append acknowledgements):
    /// send them only after `hard_state`, `snapshot` and `entries` are durable.
    pub persisted_messages: Vec<Message>,
    /// Entries known committed, in index order, that this member's log
    /// already holds durably: they may be applied at once, even before this
    /// Ready's write.
    pub committed_entries: Vec<Entry>,
    /// Entries known committed that follow `committed_entries` but are not
    /// durable in this member's log yet: they are among `entries` (new, or
    /// replacing a conflicting suffix storage still holds). Apply them only
    /// once this Ready's write is durable, so that a restart never finds the
    /// state machine ahead of its own log.
    pub committed_entries_after_persist: Vec<Entry>,
    /// Linearizable reads that may be served once `index` is applied.
    pub read_states: Vec<ReadState>,
    /// Whether `entries` and `hard_state` must be made durable (fsynced)
    /// before `persisted_messages` leave: new entries, a new term or vote,
    /// or messages that promise durable state. A hard state that moves only
    /// the commit index needs no sync of its own, as in etcd: a leader tells
    /// the commit index again after a crash, and the state machine skips
    /// entries it already applied. It may be written and become durable with
    /// the next sync.
    pub must_sync: bool,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.soft_state.is_none()
            && self.hard_state.is_none()
            && self.snapshot.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.persisted_messages.is_empty()
            && self.committed_entries.is_empty()
            && self.committed_entries_after_persist.is_empty()
            && self.read_states.is_empty()
    }
}

/// A Raft member over storage `S`, driven synchronously by its embedder.
#[derive(Debug)]
pub struct RawNode<S: Storage> {
    raft: Raft<S>,
}

impl<S: Storage> RawNode<S> {
    /// Starts a member from whatever `storage` recovered: the configuration of
    /// its snapshot, then every change entry after it. A founding member's
    /// empty log starts from the cluster's initial voters; so must a member
    /// that joins later (or from any snapshot of the cluster), since the log
    /// it receives describes changes relative to that start.
    pub fn new(config: &Config, storage: S) -> Result<Self, RaftError> {
        Ok(Self {
            raft: Raft::new(config, storage)?,
        })
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) -> Result<(), RaftError> {
        self.raft.tick()
    }

    /// Starts an election now (used to bootstrap a cluster quickly).
    pub fn campaign(&mut self) -> Result<(), RaftError> {
        self.raft.campaign_now()
    }

    /// Hands the core a message from a peer.
    pub fn step(&mut self, message: Message) -> Result<(), RaftError> {
        self.raft.step(message)
    }

    /// Proposes a command. On the leader it is appended to the log; on a
    /// follower it is forwarded to the leader, or rejected when forwarding is off.
    /// Success means only that the proposal was accepted for replication: the
    /// embedder learns the outcome when the entry is applied.
    pub fn propose(&mut self, data: Vec<u8>) -> Result<(), RaftError> {
        self.raft.propose(vec![data])
    }

    /// Proposes several commands at once, as one append.
    pub fn propose_batch(&mut self, commands: Vec<Vec<u8>>) -> Result<(), RaftError> {
        self.raft.propose(commands)
    }

    /// Proposes a single-member configuration change on the leader. It takes
    /// effect on each member as soon as the entry is in its log, and appears
    /// in `committed_entries` once committed, with `context` as its data, so
    /// the embedder can update its member list. Refused while an earlier
    /// change is uncommitted, before the leader committed an entry of its
    /// term, and when the change does not fit the configuration in force.
    /// Not forwarded: a follower answers [`RaftError::NotLeader`].
    pub fn propose_conf_change(
        &mut self,
        change: ConfChange,
        context: Vec<u8>,
    ) -> Result<(), RaftError> {
        self.raft.propose_conf_change(change, context)
    }

    /// The configuration in force: the newest in the log, committed or not.
    pub fn conf_state(&self) -> &ConfState {
        self.raft.conf_state()
    }

    /// The configuration in force once the log ends at `index`, for a snapshot
    /// taken there; `None` for an index before the last applied one's.
    pub fn conf_state_at(&self, index: LogIndex) -> Option<&ConfState> {
        self.raft.conf_state_at(index)
    }

    /// Asks for a linearizable read point. A [`ReadState`] carrying `context`
    /// appears in a later `Ready` once leadership is confirmed.
    pub fn read_index(&mut self, context: Vec<u8>) -> Result<(), RaftError> {
        self.raft.read_index(context)
    }

    /// Asks the leader to hand leadership to `target`.
    pub fn transfer_leader(&mut self, target: NodeId) -> Result<(), RaftError> {
        self.raft.transfer_leader(target)
    }

    /// Whether `ready()` would return anything.
    pub fn has_ready(&self) -> bool {
        self.raft.has_ready()
    }

    /// Takes the next batch of work. Call `advance` once it is handled.
    pub fn ready(&mut self) -> Result<Ready, RaftError> {
        self.raft.ready()
    }

    /// Says the last `Ready` is handled: everything in it is durable, sent and
    /// applied.
    pub fn advance(&mut self) -> Result<(), RaftError> {
        self.raft.advance()
    }

    pub fn status(&self) -> Status {
        self.raft.status()
    }

    pub fn storage(&self) -> &S {
        self.raft.storage()
    }

    pub fn storage_mut(&mut self) -> &mut S {
        self.raft.storage_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{InitialState, MemStorage, Storage, StorageError};
    use crate::types::{EntryKind, LogIndex, MessageBody, Term};

    /// Which reads of [`FlakyStorage`] fail.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Failing {
        Nothing,
        Terms,
        Everything,
    }

    /// A log in memory whose reads can be made to fail, as a disk error would.
    #[derive(Debug)]
    struct FlakyStorage {
        log: MemStorage,
        failing: Failing,
    }

    impl FlakyStorage {
        fn check(&self, failing_from: Failing) -> Result<(), StorageError> {
            if self.failing != Failing::Nothing
                && (self.failing == Failing::Everything || self.failing == failing_from)
            {
                return Err(StorageError::Failed("injected read failure".into()));
            }
            Ok(())
        }
    }

    impl Storage for FlakyStorage {
        fn initial_state(&self) -> Result<InitialState, StorageError> {
            self.check(Failing::Everything)?;
            self.log.initial_state()
        }

        fn entries(
            &self,
            low: LogIndex,
            high: LogIndex,
            max_bytes: u64,
        ) -> Result<Vec<Entry>, StorageError> {
            self.check(Failing::Everything)?;
            self.log.entries(low, high, max_bytes)
        }

        fn term(&self, index: LogIndex) -> Result<Term, StorageError> {
            self.check(Failing::Terms)?;
            self.log.term(index)
        }

        fn first_index(&self) -> Result<LogIndex, StorageError> {
            self.check(Failing::Everything)?;
            self.log.first_index()
        }

        fn last_index(&self) -> Result<LogIndex, StorageError> {
            self.check(Failing::Everything)?;
            self.log.last_index()
        }

        fn snapshot(&self) -> Result<Snapshot, StorageError> {
            self.check(Failing::Everything)?;
            self.log.snapshot()
        }
    }

    /// Member 1 of three, whose durable log holds entries 1..=5 of term 2.
    fn member_with_log_of_term_2() -> RawNode<FlakyStorage> {
        let mut log = MemStorage::new_with_voters(vec![1, 2, 3]);
        let entries: Vec<Entry> = (1..=5)
            .map(|index| Entry {
                term: 2,
                index,
                kind: EntryKind::Normal,
                data: Vec::new(),
            })
            .collect();
        log.append(&entries).unwrap();
        log.set_hard_state(HardState {
            term: 2,
            vote: 1,
            commit: 3,
        });
        let storage = FlakyStorage {
            log,
            failing: Failing::Nothing,
        };
        RawNode::new(&Config::new(1), storage).unwrap()
    }

    /// A vote request at term 3 from a candidate whose log ends at
    /// (`last_log_index`, term 1): behind member 1's log, which ends at (5, 2).
    fn vote_request_from_behind(last_log_index: LogIndex) -> Message {
        Message {
            from: 2,
            to: 1,
            term: 3,
            body: MessageBody::RequestVote {
                pre_vote: false,
                last_log_index,
                last_log_term: 1,
                leadership_transfer: false,
            },
        }
    }

    fn is_storage_failure<T>(result: &Result<T, RaftError>) -> bool {
        matches!(result, Err(RaftError::Storage(StorageError::Failed(_))))
    }

    #[test]
    fn a_log_that_cannot_be_read_is_an_error_not_an_empty_log() {
        let mut node = member_with_log_of_term_2();
        node.storage_mut().failing = Failing::Everything;
        let result = node.step(vote_request_from_behind(0));
        assert!(is_storage_failure(&result), "{result:?}");
        // The input may have stopped halfway: nothing more comes out, even
        // once the storage answers again.
        node.storage_mut().failing = Failing::Nothing;
        assert!(is_storage_failure(&node.ready()));
        assert!(is_storage_failure(&node.tick()));
        assert!(is_storage_failure(&node.step(vote_request_from_behind(0))));
    }

    #[test]
    fn a_term_that_cannot_be_read_is_an_error_not_a_shorter_log() {
        let mut node = member_with_log_of_term_2();
        node.storage_mut().failing = Failing::Terms;
        let result = node.step(vote_request_from_behind(3));
        assert!(is_storage_failure(&result), "{result:?}");
    }

    #[test]
    fn a_readable_log_refuses_the_candidate_that_is_behind() {
        let mut node = member_with_log_of_term_2();
        node.step(vote_request_from_behind(3)).unwrap();
        let ready = node.ready().unwrap();
        assert!(matches!(
            ready.persisted_messages[..],
            [Message {
                body: MessageBody::RequestVoteResponse { granted: false, .. },
                ..
            }]
        ));
    }
}
