//! The node loop over an in-memory log and state machine: the order a Ready
//! is handled in, who gets answered when, and whose messages are heard.

use std::cell::RefCell;
use std::rc::Rc;

use raft::{Config, Entry, EntryKind, MemStorage, Message, MessageBody, RawNode};

use super::*;
use crate::host::{Member, Outbox};
use crate::test_support::{Applied, Slot};

/// Keeps what the node sent.
#[derive(Clone, Debug, Default)]
struct Sent(Rc<RefCell<Vec<Message>>>);

impl Outbox for Sent {
    fn send(&self, message: Message) {
        self.0.borrow_mut().push(message);
    }

    fn set_members(&self, _: &[Member]) {}
}

struct TestHost;

impl Host for TestHost {
    type Log = MemStorage;
    type StateMachine = Applied;
    type Outbox = Sent;
    type CommandReply = Slot<Result<LogIndex, RequestError>>;
    type ReadReply = Slot<Result<(), RequestError>>;
    type MembershipReply = Slot<Result<(), RequestError>>;
    type Observer = ();
}

fn node(id: u64, voters: Vec<u64>) -> (Node<TestHost>, Sent) {
    node_with_members(id, voters, MemberList::initial(Vec::new()))
}

fn node_with_members(id: u64, voters: Vec<u64>, members: MemberList) -> (Node<TestHost>, Sent) {
    let raft = RawNode::new(&Config::new(id), MemStorage::new_with_voters(voters)).unwrap();
    let sent = Sent::default();
    let options = NodeOptions {
        boot_id: 7,
        election_ticks: 10,
        request_timeout_ticks: 50,
        snapshot_entries: 1000,
        configured_members: Vec::new(),
    };
    let mut node = Node::new(raft, Applied::default(), sent.clone(), members, options, ());
    node.start().unwrap();
    (node, sent)
}

fn run_until_idle(node: &mut Node<TestHost>) {
    for _ in 0..100 {
        node.submit().unwrap();
        if !node.has_ready() {
            node.end_turn().unwrap();
            return;
        }
        node.handle_ready().unwrap();
        node.end_turn().unwrap();
    }
    panic!("the node did not settle in 100 Readys");
}

#[test]
fn a_lone_voter_answers_a_write_with_its_applied_index_then_a_later_read() {
    let (mut node, sent) = node(1, vec![1]);
    run_until_idle(&mut node);
    assert_eq!(node.leader(), Some(1));
    let write = Slot::default();
    node.propose(b"put", write.clone());
    run_until_idle(&mut node);
    let index = write.take().expect("answered").expect("applied");
    assert_eq!(
        node.state_machine().commands,
        vec![(index, b"put".to_vec())]
    );
    let read = Slot::default();
    node.read(read.clone());
    run_until_idle(&mut node);
    assert!(matches!(read.take(), Some(Ok(()))));
    assert!(sent.0.borrow().is_empty(), "a lone member sends nothing");
}

fn append(entries: Vec<Entry>, leader_commit: LogIndex) -> Message {
    Message {
        from: 2,
        to: 1,
        term: 1,
        body: MessageBody::AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries,
            leader_commit,
        },
    }
}

fn entry(index: LogIndex) -> Entry {
    Entry {
        term: 1,
        index,
        kind: EntryKind::Normal,
        data: Vec::new(),
    }
}

#[test]
fn entries_learned_committed_with_their_append_apply_only_after_the_write() {
    let (mut node, sent) = node(1, vec![1, 2, 3]);
    node.step(append(vec![entry(1), entry(2)], 2)).unwrap();
    let persisted = node.persist_ready().unwrap().expect("a Ready");
    assert_eq!(
        node.state_machine().applied_index(),
        0,
        "not durable here before the write ends: not applied"
    );
    assert!(
        sent.0.borrow().is_empty(),
        "the acknowledgement waits for the write"
    );
    node.complete_ready(persisted).unwrap();
    assert_eq!(node.state_machine().applied_index(), 2);
    assert!(matches!(
        sent.0.borrow().as_slice(),
        [Message {
            body: MessageBody::AppendEntriesResponse(_),
            ..
        }]
    ));
}

fn vote_request(from: NodeId, pre_vote: bool) -> Message {
    Message {
        from,
        to: 1,
        term: 5,
        body: MessageBody::RequestVote {
            pre_vote,
            last_log_index: 10,
            last_log_term: 4,
            leadership_transfer: false,
        },
    }
}

#[test]
fn vote_requests_from_a_removed_member_are_ignored() {
    let mut members = MemberList::initial(vec![]);
    members.removed = vec![9];
    let (mut node, sent) = node_with_members(1, vec![1, 2, 3], members);
    for pre_vote in [true, false] {
        node.step(vote_request(9, pre_vote)).unwrap();
    }
    assert!(
        !node.has_ready(),
        "a removed member's campaign changed nothing"
    );
    assert_eq!(node.raft().status().hard_state.term, 0);
    assert!(sent.0.borrow().is_empty());
}

/// A member that missed the change adding 9 may be the vote 9 needs to
/// become the leader that would tell it of the change.
#[test]
fn vote_requests_from_a_member_not_known_yet_are_answered() {
    let (mut node, sent) = node(1, vec![1, 2, 3]);
    node.step(vote_request(9, false)).unwrap();
    node.handle_ready().unwrap();
    assert_eq!(node.raft().status().hard_state.term, 5);
    assert!(matches!(
        sent.0.borrow().as_slice(),
        [Message {
            to: 9,
            body: MessageBody::RequestVoteResponse { granted: true, .. },
            ..
        }]
    ));
}

#[test]
fn a_leader_added_after_this_members_log_ends_is_heard() {
    let (mut node, sent) = node(1, vec![1, 2, 3]);
    let mut from_new_leader = append(vec![entry(1)], 1);
    from_new_leader.from = 9;
    node.step(from_new_leader).unwrap();
    node.handle_ready().unwrap();
    assert_eq!(node.leader(), Some(9));
    assert_eq!(node.state_machine().applied_index(), 1);
    assert_eq!(sent.0.borrow().len(), 1, "the append is acknowledged");
}

/// Storage still holds other entries at the indexes the leader's entries
/// replace, so they are not durable here until the write ends.
#[test]
fn an_entry_that_replaces_a_conflicting_one_applies_only_after_the_write() {
    let (mut node, _) = node(1, vec![1, 2, 3]);
    node.step(append(vec![entry(1), entry(2), entry(3)], 0))
        .unwrap();
    node.handle_ready().unwrap();
    let replacing = |index| Entry {
        term: 2,
        ..entry(index)
    };
    node.step(Message {
        from: 3,
        to: 1,
        term: 2,
        body: MessageBody::AppendEntries {
            prev_log_index: 1,
            prev_log_term: 1,
            entries: vec![replacing(2), replacing(3)],
            leader_commit: 3,
        },
    })
    .unwrap();
    let persisted = node.persist_ready().unwrap().expect("a Ready");
    assert_eq!(
        node.state_machine().applied_index(),
        1,
        "only the entry held durably as the leader has it applies before the write"
    );
    node.complete_ready(persisted).unwrap();
    assert_eq!(node.state_machine().applied_index(), 3);
}

/// How [`FailingLog`]'s writes fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DiskTrouble {
    Healthy,
    /// No room: a write is held, to be written by a later sync.
    Full,
    /// Broken: every write fails for good.
    Broken,
}

const DISK_FULL: &str = "no space left on device";

/// A log whose writes fail while its disk is full or broken. A write that
/// finds the disk full is held, as the WAL holds it, and a sync writes it
/// once there is room.
#[derive(Debug)]
struct FailingLog {
    log: MemStorage,
    trouble: std::rc::Rc<std::cell::Cell<DiskTrouble>>,
    held: Option<(Option<raft::HardState>, Vec<Entry>)>,
}

impl FailingLog {
    fn new(
        voters: Vec<u64>,
        trouble: DiskTrouble,
    ) -> (Self, std::rc::Rc<std::cell::Cell<DiskTrouble>>) {
        let trouble = std::rc::Rc::new(std::cell::Cell::new(trouble));
        let log = FailingLog {
            log: MemStorage::new_with_voters(voters),
            trouble: std::rc::Rc::clone(&trouble),
            held: None,
        };
        (log, trouble)
    }

    fn failure(&self) -> Option<raft::StorageError> {
        match self.trouble.get() {
            DiskTrouble::Healthy => None,
            DiskTrouble::Full => Some(raft::StorageError::Failed(DISK_FULL.into())),
            DiskTrouble::Broken => Some(raft::StorageError::Failed("input/output error".into())),
        }
    }
}

impl raft::Storage for FailingLog {
    fn initial_state(&self) -> Result<raft::InitialState, raft::StorageError> {
        self.log.initial_state()
    }

    fn entries(
        &self,
        low: LogIndex,
        high: LogIndex,
        bytes_max: u64,
    ) -> Result<Vec<Entry>, raft::StorageError> {
        self.log.entries(low, high, bytes_max)
    }

    fn term(&self, index: LogIndex) -> Result<raft::Term, raft::StorageError> {
        self.log.term(index)
    }

    fn first_index(&self) -> Result<LogIndex, raft::StorageError> {
        self.log.first_index()
    }

    fn last_index(&self) -> Result<LogIndex, raft::StorageError> {
        raft::Storage::last_index(&self.log)
    }

    fn snapshot(&self) -> Result<Snapshot, raft::StorageError> {
        self.log.snapshot()
    }
}

impl LogStore for FailingLog {
    type Error = raft::StorageError;

    fn hard_state(&self) -> raft::HardState {
        LogStore::hard_state(&self.log)
    }

    fn snapshot_meta(&self) -> &SnapshotMeta {
        LogStore::snapshot_meta(&self.log)
    }

    fn persist(
        &mut self,
        hard_state: Option<raft::HardState>,
        entries: &[Entry],
    ) -> Result<(), raft::StorageError> {
        assert!(self.held.is_none(), "a write while another waits for space");
        if let Some(error) = self.failure() {
            if self.trouble.get() == DiskTrouble::Full {
                self.held = Some((hard_state, entries.to_vec()));
            }
            return Err(error);
        }
        LogStore::persist(&mut self.log, hard_state, entries)
    }

    fn set_hard_state_unsynced(
        &mut self,
        hard_state: raft::HardState,
    ) -> Result<(), raft::StorageError> {
        self.log.set_hard_state_unsynced(hard_state)
    }

    fn sync(&mut self) -> Result<(), raft::StorageError> {
        if let Some(error) = self.failure() {
            return Err(error);
        }
        if let Some((hard_state, entries)) = self.held.take() {
            LogStore::persist(&mut self.log, hard_state, &entries)?;
        }
        LogStore::sync(&mut self.log)
    }

    fn is_disk_full(error: &raft::StorageError) -> bool {
        matches!(error, raft::StorageError::Failed(message) if message == DISK_FULL)
    }

    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Result<(), raft::StorageError> {
        LogStore::apply_snapshot(&mut self.log, snapshot)
    }

    fn compact(&mut self, snapshot: Snapshot) -> Result<(), raft::StorageError> {
        LogStore::compact(&mut self.log, snapshot)
    }
}

struct FailingHost;

impl Host for FailingHost {
    type Log = FailingLog;
    type Observer = ();
    type StateMachine = Applied;
    type Outbox = Sent;
    type CommandReply = Slot<Result<LogIndex, RequestError>>;
    type ReadReply = Slot<Result<(), RequestError>>;
    type MembershipReply = Slot<Result<(), RequestError>>;
}

fn failing_node(
    trouble: DiskTrouble,
) -> (
    Node<FailingHost>,
    Sent,
    std::rc::Rc<std::cell::Cell<DiskTrouble>>,
) {
    let (log, trouble) = FailingLog::new(vec![1, 2, 3], trouble);
    let raft = RawNode::new(&Config::new(1), log).unwrap();
    let sent = Sent::default();
    let options = NodeOptions {
        boot_id: 7,
        election_ticks: 10,
        request_timeout_ticks: 50,
        snapshot_entries: 1000,
        configured_members: Vec::new(),
    };
    let node: Node<FailingHost> = Node::new(
        raft,
        Applied::default(),
        sent.clone(),
        MemberList::initial(Vec::new()),
        options,
        (),
    );
    (node, sent, trouble)
}

#[test]
fn a_failed_write_is_an_error_and_promises_nothing() {
    let (mut node, sent, _) = failing_node(DiskTrouble::Broken);
    node.step(append(vec![entry(1)], 1)).unwrap();
    let failed = node.persist_ready();
    assert!(matches!(failed, Err(NodeError::Log(_))), "{failed:?}");
    assert!(
        sent.0.borrow().is_empty(),
        "no acknowledgement of entries that are not durable"
    );
    assert_eq!(node.state_machine().applied_index(), 0);
    assert_eq!(
        node.raft().status().applied,
        0,
        "the core was not told the Ready was handled"
    );
}

/// Ticks until the node's retry is due and handles what it has.
fn tick_and_handle(node: &mut Node<FailingHost>, ticks: u64) -> Option<PersistedReady> {
    for _ in 0..ticks {
        node.tick().unwrap();
        if node.has_ready() {
            return node.persist_ready().unwrap();
        }
    }
    None
}

#[test]
fn a_write_the_disk_has_no_room_for_is_held_promises_nothing_and_completes_once_space_is_freed() {
    let (mut node, sent, trouble) = failing_node(DiskTrouble::Full);
    node.step(vote_request(2, false)).unwrap();
    assert!(node.persist_ready().unwrap().is_none(), "the write is held");
    assert!(node
        .disk_full()
        .is_some_and(|error| error.contains(DISK_FULL)));
    assert!(
        sent.0.borrow().is_empty(),
        "the vote is not granted before it is durable: {:?}",
        sent.0.borrow()
    );
    assert_eq!(LogStore::hard_state(node.log()).term, 0);

    let write = Slot::default();
    node.propose(b"put", write.clone());
    assert!(
        matches!(write.take(), Some(Err(RequestError::NoSpace))),
        "a write is refused at once"
    );
    node.step(vote_request(3, false)).unwrap();
    node.submit().unwrap();
    assert!(
        tick_and_handle(&mut node, DISK_FULL_RETRY_TICKS_MAX * 3).is_none(),
        "retries fail while the disk is full"
    );
    assert!(
        sent.0.borrow().is_empty(),
        "nothing was heard or promised meanwhile"
    );

    trouble.set(DiskTrouble::Healthy);
    let persisted = tick_and_handle(&mut node, DISK_FULL_RETRY_TICKS_MAX)
        .expect("the retry succeeds within the longest wait");
    assert!(node.disk_full().is_none());
    assert_eq!(LogStore::hard_state(node.log()).term, 5);
    assert_eq!(LogStore::hard_state(node.log()).vote, 2);
    assert!(
        sent.0.borrow().is_empty(),
        "promises wait for complete_ready"
    );
    node.complete_ready(persisted).unwrap();
    let sent = sent.0.borrow();
    assert!(
        sent.iter().any(|message| message.to == 2
            && matches!(
                message.body,
                MessageBody::RequestVoteResponse { granted: true, .. }
            )),
        "the vote durable, the grant leaves: {sent:?}"
    );
}

#[test]
fn another_write_failure_still_stops_the_node() {
    let (mut node, _, trouble) = failing_node(DiskTrouble::Full);
    node.step(vote_request(2, false)).unwrap();
    assert!(node.persist_ready().unwrap().is_none());
    trouble.set(DiskTrouble::Broken);
    node.tick().unwrap();
    assert!(node.has_ready());
    let failed = node.persist_ready();
    assert!(matches!(failed, Err(NodeError::Log(_))), "{failed:?}");
}
