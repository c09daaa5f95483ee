//! One test per Raft rule that the scenarios do not already show step by step:
//! the persistence contract, vote safety across restarts, the cost of log
//! repair, forwarding, the leader's handling of a higher term, and the rules
//! of membership changes.

mod harness;

use harness::Cluster;
use raft::{
    AppendResponse, ConfChange, ConfChangeKind, Config, Entry, EntryKind, MemStorage, Message,
    MessageBody, RaftError, RawNode, Role, Storage,
};

fn elect(cluster: &mut Cluster, id: u64) {
    cluster.node_mut(id).campaign().unwrap();
    cluster.stabilize();
    assert_eq!(cluster.leader(), Some(id));
}

fn vote_request(from: u64, to: u64, term: u64) -> Message {
    Message {
        from,
        to,
        term,
        body: MessageBody::RequestVote {
            pre_vote: false,
            last_log_index: 0,
            last_log_term: 0,
            leadership_transfer: false,
        },
    }
}

#[test]
fn vote_and_append_replies_wait_for_persistence() {
    let mut node =
        RawNode::new(&Config::new(1), MemStorage::new_with_voters(vec![1, 2, 3])).unwrap();
    node.step(vote_request(2, 1, 5)).unwrap();
    let ready = node.ready().unwrap();
    assert_eq!(
        ready.hard_state.map(|state| (state.term, state.vote)),
        Some((5, 2))
    );
    assert!(
        ready.messages.is_empty(),
        "a vote must not leave before it is durable"
    );
    assert!(matches!(
        ready.persisted_messages[0].body,
        MessageBody::RequestVoteResponse { granted: true, .. }
    ));
    node.advance().unwrap();
    node.step(Message {
        from: 2,
        to: 1,
        term: 5,
        body: MessageBody::AppendEntries {
            prev_log_index: 0,
            prev_log_term: 0,
            entries: vec![raft::Entry {
                term: 5,
                index: 1,
                kind: raft::EntryKind::Normal,
                data: b"x".to_vec(),
            }],
            leader_commit: 0,
        },
    })
    .unwrap();
    let ready = node.ready().unwrap();
    assert_eq!(ready.entries.len(), 1);
    assert!(
        ready.messages.is_empty(),
        "an append ack must not leave before the entries are durable"
    );
    assert!(matches!(
        ready.persisted_messages[0].body,
        MessageBody::AppendEntriesResponse(AppendResponse::Accepted { match_index: 1 })
    ));
}

#[test]
fn the_core_says_which_ready_must_be_synced() {
    let mut follower =
        RawNode::new(&Config::new(1), MemStorage::new_with_voters(vec![1, 2, 3])).unwrap();
    follower.step(vote_request(2, 1, 5)).unwrap();
    assert!(
        follower.ready().unwrap().must_sync,
        "a vote is promised only once durable"
    );
    follower.advance().unwrap();

    let mut lone = RawNode::new(&Config::new(1), MemStorage::new_with_voters(vec![1])).unwrap();
    lone.campaign().unwrap();
    let ready = lone.ready().unwrap();
    assert!(
        ready.must_sync,
        "a new term and the leader's no-op need a sync"
    );
    lone.storage_mut().append(&ready.entries).unwrap();
    lone.storage_mut().set_hard_state(ready.hard_state.unwrap());
    lone.advance().unwrap();
    let ready = lone.ready().unwrap();
    assert!(
        ready.hard_state.is_some_and(|state| state.commit == 1),
        "the leader's own write committed its no-op"
    );
    assert!(ready.entries.is_empty() && ready.persisted_messages.is_empty());
    assert!(
        !ready.must_sync,
        "a hard state that moves only the commit index needs no sync of its own"
    );
}

#[test]
fn a_restarted_member_remembers_its_vote() {
    let mut node =
        RawNode::new(&Config::new(1), MemStorage::new_with_voters(vec![1, 2, 3])).unwrap();
    node.step(vote_request(2, 1, 5)).unwrap();
    let ready = node.ready().unwrap();
    node.storage_mut().set_hard_state(ready.hard_state.unwrap());
    node.advance().unwrap();
    let storage = node.storage().clone();
    let mut restarted = RawNode::new(&Config::new(1), storage).unwrap();
    restarted.step(vote_request(3, 1, 5)).unwrap();
    let ready = restarted.ready().unwrap();
    assert!(matches!(
        ready.persisted_messages[0].body,
        MessageBody::RequestVoteResponse { granted: false, .. }
    ));
}

#[test]
fn a_candidate_with_a_stale_log_gets_no_vote() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.set_log(1, &[1, 1, 2], None);
    cluster.node_mut(1).step(vote_request(2, 1, 3)).unwrap();
    let ready = cluster.node_mut(1).ready().unwrap();
    assert!(matches!(
        ready.persisted_messages[0].body,
        MessageBody::RequestVoteResponse { granted: false, .. }
    ));
}

#[test]
fn a_leader_steps_down_on_a_higher_term() {
    let mut cluster = Cluster::new(3, |config| config.check_quorum = false);
    elect(&mut cluster, 1);
    cluster.node_mut(1).step(vote_request(2, 1, 9)).unwrap();
    let status = cluster.node(1).status();
    assert_eq!(status.soft_state.role, Role::Follower);
    assert_eq!(status.hard_state.term, 9);
}

#[test]
fn repairing_a_divergent_log_costs_round_trips_per_term_not_per_entry() {
    let mut cluster = Cluster::new(3, |_| {});
    let mut leader_terms = vec![1u64; 50];
    leader_terms.extend(vec![3u64; 50]);
    let mut divergent_terms = vec![1u64; 50];
    divergent_terms.extend(vec![2u64; 300]);
    cluster.set_log(1, &leader_terms, None);
    cluster.set_log(2, &leader_terms, None);
    cluster.set_log(3, &divergent_terms, None);
    cluster.node_mut(1).campaign().unwrap();
    cluster.trace_messages = true;
    cluster.stabilize();
    let rejections = cluster
        .events
        .iter()
        .filter(|event| event.starts_with("1->3") || event.starts_with("3->1"))
        .filter(|event| event.contains("Rejected"))
        .count();
    let leader_log = cluster.node(1).storage().entries(1, 102, u64::MAX).unwrap();
    let repaired_log = cluster.node(3).storage().entries(1, 102, u64::MAX).unwrap();
    assert_eq!(leader_log, repaired_log);
    assert_eq!(cluster.node(3).status().last_index, 101);
    assert!(
        rejections <= 2,
        "{rejections} rejections to skip 300 conflicting entries"
    );
}

#[test]
fn agreement_on_one_command_costs_a_bounded_number_of_messages() {
    let mut cluster = Cluster::new(5, |_| {});
    elect(&mut cluster, 1);
    let before = cluster.delivered_messages;
    cluster.node_mut(1).propose(b"x".to_vec()).unwrap();
    cluster.stabilize();
    let cost = cluster.delivered_messages - before;
    assert_eq!(cluster.applied_commands(5), vec!["x"]);
    assert!(
        cost <= 16,
        "one agreement among 5 members cost {cost} messages"
    );
}

#[test]
fn many_proposals_travel_in_one_append_per_follower() {
    let mut cluster = Cluster::new(3, |_| {});
    elect(&mut cluster, 1);
    for command in 0..100 {
        cluster
            .node_mut(1)
            .propose(format!("c{command}").into_bytes())
            .unwrap();
    }
    let ready = cluster.node_mut(1).ready().unwrap();
    let appends = ready
        .messages
        .iter()
        .filter(|message| matches!(&message.body, MessageBody::AppendEntries { entries, .. } if entries.len() == 100))
        .count();
    assert_eq!(appends, 2, "each follower gets the batch in one message");
    assert_eq!(
        ready.entries.len(),
        100,
        "and the leader persists it in one write"
    );
}

#[test]
fn a_follower_forwards_or_refuses_proposals() {
    let mut cluster = Cluster::new(3, |_| {});
    elect(&mut cluster, 1);
    cluster.node_mut(2).propose(b"forwarded".to_vec()).unwrap();
    cluster.stabilize();
    assert_eq!(cluster.applied_commands(1), vec!["forwarded"]);

    let mut refusing = Cluster::new(3, |config| config.forward_to_leader = false);
    elect(&mut refusing, 1);
    let error = refusing
        .node_mut(2)
        .propose(b"refused".to_vec())
        .unwrap_err();
    assert_eq!(error, RaftError::NotLeader { leader: Some(1) });
    assert_eq!(error.to_string(), "not leader, leader is 1");
}

#[test]
fn a_leader_counts_itself_only_after_its_own_write() {
    let mut cluster = Cluster::new(1, |_| {});
    cluster.node_mut(1).campaign().unwrap();
    let ready = cluster.node_mut(1).ready().unwrap();
    assert_eq!(ready.entries.len(), 1, "the no-op to persist");
    assert!(
        ready.committed_entries.is_empty(),
        "nothing commits before the write is durable"
    );
    cluster
        .node_mut(1)
        .storage_mut()
        .append(&ready.entries)
        .unwrap();
    cluster.node_mut(1).advance().unwrap();
    assert_eq!(cluster.node(1).status().hard_state.commit, 1);
}

#[test]
fn misrouted_messages_are_refused() {
    let mut node =
        RawNode::new(&Config::new(1), MemStorage::new_with_voters(vec![1, 2, 3])).unwrap();
    let error = node.step(vote_request(2, 7, 1)).unwrap_err();
    assert!(matches!(error, RaftError::MisroutedMessage { to: 7, .. }));
}

#[test]
fn an_append_lost_in_flight_is_repaired_by_the_next_heartbeat() {
    let mut cluster = Cluster::new(3, |_| {});
    elect(&mut cluster, 1);
    cluster.isolate(3);
    cluster.node_mut(1).propose(b"lost-once".to_vec()).unwrap();
    cluster.stabilize();
    cluster.heal();
    assert!(cluster.applied_commands(3).is_empty());
    cluster.tick(1, 1);
    cluster.stabilize();
    assert_eq!(cluster.applied_commands(3), vec!["lost-once"]);
}

// Membership changes (Raft dissertation ch. 4).

fn change(kind: ConfChangeKind, node_id: u64) -> ConfChange {
    ConfChange { kind, node_id }
}

/// A three-voter cluster led by 1, with member 4 started and added as a learner.
fn cluster_with_learner() -> Cluster {
    let mut cluster = Cluster::new(3, |_| {});
    elect(&mut cluster, 1);
    cluster.add_node(4);
    cluster
        .node_mut(1)
        .propose_conf_change(change(ConfChangeKind::AddLearner, 4), Vec::new())
        .unwrap();
    cluster.stabilize();
    cluster
}

fn append_of(entries: Vec<Entry>, prev: (u64, u64), term: u64) -> Message {
    Message {
        from: 2,
        to: 1,
        term,
        body: MessageBody::AppendEntries {
            prev_log_index: prev.0,
            prev_log_term: prev.1,
            entries,
            leader_commit: 0,
        },
    }
}

fn conf_entry(index: u64, term: u64, change: ConfChange) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::ConfChange(change),
        data: Vec::new(),
    }
}

fn normal_entry(index: u64, term: u64) -> Entry {
    Entry {
        term,
        index,
        kind: EntryKind::Normal,
        data: Vec::new(),
    }
}

#[test]
fn a_configuration_is_in_force_once_appended_and_reverts_when_truncated() {
    let mut node =
        RawNode::new(&Config::new(1), MemStorage::new_with_voters(vec![1, 2, 3])).unwrap();
    let add_learner = change(ConfChangeKind::AddLearner, 4);
    node.step(append_of(vec![conf_entry(1, 1, add_learner)], (0, 0), 1))
        .unwrap();
    assert_eq!(node.status().hard_state.commit, 0, "not committed");
    assert_eq!(node.conf_state().learners, vec![4], "but in force");
    let ready = node.ready().unwrap();
    node.storage_mut().append(&ready.entries).unwrap();
    node.advance().unwrap();
    node.step(append_of(vec![normal_entry(1, 2)], (0, 0), 2))
        .unwrap();
    assert!(
        node.conf_state().learners.is_empty(),
        "a conflicting leader's entry replaced the change: the old configuration is back"
    );
}

#[test]
fn a_restarted_member_recovers_the_configuration_from_its_log() {
    let mut storage = MemStorage::new_with_voters(vec![1, 2, 3]);
    storage
        .append(&[
            conf_entry(1, 1, change(ConfChangeKind::AddLearner, 4)),
            conf_entry(2, 1, change(ConfChangeKind::PromoteLearner, 4)),
            conf_entry(3, 1, change(ConfChangeKind::RemoveMember, 2)),
        ])
        .unwrap();
    let node = RawNode::new(&Config::new(1), storage).unwrap();
    assert_eq!(node.conf_state().voters, vec![1, 3, 4]);
    assert!(node.conf_state().learners.is_empty());
}

#[test]
fn a_second_change_waits_for_the_first_to_commit() {
    let mut cluster = Cluster::new(3, |_| {});
    elect(&mut cluster, 1);
    cluster.isolate(2);
    cluster.isolate(3);
    let leader = cluster.node_mut(1);
    leader
        .propose_conf_change(change(ConfChangeKind::AddLearner, 4), Vec::new())
        .unwrap();
    let error = leader
        .propose_conf_change(change(ConfChangeKind::AddLearner, 5), Vec::new())
        .unwrap_err();
    assert_eq!(error, RaftError::ConfChangePending { index: 2 });
    cluster.heal();
    cluster.tick_all(1);
    cluster
        .node_mut(1)
        .propose_conf_change(change(ConfChangeKind::AddLearner, 5), Vec::new())
        .unwrap();
}

#[test]
fn a_new_leader_changes_nothing_before_committing_an_entry_of_its_term() {
    let mut cluster = Cluster::new(3, |_| {});
    cluster.node_mut(1).campaign().unwrap();
    for _ in 0..6 {
        cluster.round();
        if cluster.leader() == Some(1) {
            break;
        }
    }
    assert_eq!(cluster.leader(), Some(1));
    assert_eq!(cluster.node(1).status().hard_state.commit, 0);
    let error = cluster
        .node_mut(1)
        .propose_conf_change(change(ConfChangeKind::AddLearner, 4), Vec::new())
        .unwrap_err();
    assert_eq!(error, RaftError::ConfChangeBeforeTermCommitted { term: 1 });
    cluster.stabilize();
    cluster
        .node_mut(1)
        .propose_conf_change(change(ConfChangeKind::AddLearner, 4), Vec::new())
        .unwrap();
}

#[test]
fn a_change_that_does_not_fit_is_refused_with_its_reason() {
    let mut cluster = Cluster::new(1, |_| {});
    elect(&mut cluster, 1);
    let leader = cluster.node_mut(1);
    let refusals = [
        (
            change(ConfChangeKind::AddVoter, 1),
            "already in the cluster",
        ),
        (change(ConfChangeKind::PromoteLearner, 2), "not a learner"),
        (
            change(ConfChangeKind::RemoveMember, 2),
            "not in the cluster",
        ),
        (change(ConfChangeKind::RemoveMember, 1), "last voter"),
        (change(ConfChangeKind::AddLearner, 0), "reserved"),
    ];
    for (refused, reason) in refusals {
        let error = leader.propose_conf_change(refused, Vec::new()).unwrap_err();
        assert!(matches!(error, RaftError::InvalidConfChange(_)), "{error}");
        assert!(error.to_string().contains(reason), "{error}");
    }
    let error = cluster
        .node_mut(1)
        .propose_conf_change(change(ConfChangeKind::AddLearner, 2), Vec::new());
    assert_eq!(error, Ok(()));
}

#[test]
fn a_follower_refuses_changes_and_names_the_leader() {
    let mut cluster = Cluster::new(3, |_| {});
    elect(&mut cluster, 1);
    let error = cluster
        .node_mut(2)
        .propose_conf_change(change(ConfChangeKind::AddLearner, 4), Vec::new())
        .unwrap_err();
    assert_eq!(error, RaftError::NotLeader { leader: Some(1) });
}

#[test]
fn a_learner_receives_the_log_but_never_campaigns() {
    let mut cluster = cluster_with_learner();
    cluster.node_mut(1).propose(b"x".to_vec()).unwrap();
    cluster.stabilize();
    assert_eq!(cluster.applied_commands(4), vec!["x"]);
    cluster.isolate(4);
    cluster.node_mut(4).campaign().unwrap();
    cluster.tick(4, 100);
    let status = cluster.node(4).status();
    assert_eq!(status.soft_state.role, Role::Follower);
    assert_eq!(status.hard_state.term, 1, "never raised its term");
    assert_eq!(status.learners, vec![4]);
}

#[test]
fn a_learner_does_not_count_toward_commit() {
    let mut cluster = cluster_with_learner();
    cluster.partition(&[vec![1, 4], vec![2, 3]]);
    cluster.node_mut(1).propose(b"x".to_vec()).unwrap();
    cluster.stabilize();
    assert_eq!(
        cluster.node(4).status().last_index,
        3,
        "the learner holds it"
    );
    assert_eq!(cluster.node(1).status().hard_state.commit, 2, "uncommitted");
}

#[test]
fn a_learners_vote_does_not_count() {
    let mut config = Config::new(1);
    config.pre_vote = false;
    let mut storage = MemStorage::new_with_voters(vec![1, 2, 3]);
    storage
        .append(&[conf_entry(1, 1, change(ConfChangeKind::AddLearner, 4))])
        .unwrap();
    let mut node = RawNode::new(&config, storage).unwrap();
    node.campaign().unwrap();
    let term = node.status().hard_state.term;
    let granted = |from| Message {
        from,
        to: 1,
        term,
        body: MessageBody::RequestVoteResponse {
            pre_vote: false,
            granted: true,
        },
    };
    node.step(granted(4)).unwrap();
    assert_eq!(node.status().soft_state.role, Role::Candidate);
    node.step(granted(2)).unwrap();
    assert_eq!(node.status().soft_state.role, Role::Leader);
}

#[test]
fn check_quorum_counts_voters_of_the_configuration_in_force() {
    let mut cluster = cluster_with_learner();
    cluster.partition(&[vec![1, 4], vec![2, 3]]);
    cluster.tick_all(25);
    assert_ne!(
        cluster.node(1).status().soft_state.role,
        Role::Leader,
        "hearing only from a learner is no quorum"
    );
}

#[test]
fn leadership_cannot_go_to_a_learner() {
    let mut cluster = cluster_with_learner();
    let error = cluster.node_mut(1).transfer_leader(4).unwrap_err();
    assert_eq!(error, RaftError::UnknownMember(4));
}

#[test]
fn read_index_needs_a_quorum_of_voters_not_learners() {
    let mut cluster = cluster_with_learner();
    cluster.partition(&[vec![1, 4], vec![2, 3]]);
    cluster.node_mut(1).read_index(b"r".to_vec()).unwrap();
    cluster.tick_all(3);
    assert!(cluster.read_states.get(&1).is_none_or(Vec::is_empty));
    cluster.heal();
    cluster.tick_all(2);
    assert_eq!(cluster.read_states[&1].len(), 1);
}

#[test]
fn progress_follows_the_configuration() {
    let mut cluster = cluster_with_learner();
    let tracked = |cluster: &Cluster| -> Vec<u64> {
        let status = cluster.node(1).status();
        status.progress.iter().map(|view| view.id).collect()
    };
    assert_eq!(tracked(&cluster), vec![1, 2, 3, 4]);
    cluster.isolate(2);
    cluster.isolate(3);
    cluster
        .node_mut(1)
        .propose_conf_change(change(ConfChangeKind::RemoveMember, 4), Vec::new())
        .unwrap();
    cluster.stabilize();
    assert_eq!(
        tracked(&cluster),
        vec![1, 2, 3, 4],
        "a member being removed is still sent the entry that removes it"
    );
    assert!(cluster.node(4).conf_state().learners.is_empty());
    cluster.heal();
    cluster.tick_all(1);
    assert_eq!(tracked(&cluster), vec![1, 2, 3]);
}

#[test]
fn a_removed_leader_steps_down_only_once_its_removal_commits() {
    let mut cluster = Cluster::new(3, |_| {});
    elect(&mut cluster, 1);
    cluster.isolate(3);
    cluster
        .node_mut(1)
        .propose_conf_change(change(ConfChangeKind::RemoveMember, 1), Vec::new())
        .unwrap();
    cluster.stabilize();
    assert_eq!(
        cluster.node(1).status().soft_state.role,
        Role::Leader,
        "1 and 2 hold the removal, but 1 does not count itself: 2 of {{2, 3}} are needed"
    );
    cluster.heal();
    cluster.tick_all(1);
    let status = cluster.node(1).status();
    assert_eq!(status.soft_state.role, Role::Follower);
    assert_eq!(status.hard_state.commit, 2);
    cluster.tick_all(40);
    let leader = cluster
        .leader()
        .expect("the remaining voters elect a leader");
    assert_ne!(leader, 1);
    assert_eq!(
        cluster.node(1).status().hard_state.term,
        1,
        "1 never campaigns"
    );
}

#[test]
fn a_snapshot_carries_and_installs_the_configuration() {
    let mut cluster = cluster_with_learner();
    cluster.isolate(3);
    cluster.node_mut(1).propose(b"x".to_vec()).unwrap();
    cluster.stabilize();
    cluster.compact(1, 3);
    cluster.heal();
    let mut fresh = MemStorage::new_with_voters(vec![1, 2, 3]);
    fresh.set_hard_state(cluster.node(3).storage().hard_state());
    cluster.crash(3);
    cluster.restart_with_storage(3, fresh);
    cluster.tick_all(2);
    assert_eq!(cluster.node(3).storage().first_index().unwrap(), 4);
    let conf_state = cluster.node(3).conf_state().clone();
    assert_eq!(conf_state.voters, vec![1, 2, 3]);
    assert_eq!(conf_state.learners, vec![4]);
    assert_eq!(cluster.node(3).status().learners, vec![4]);
}

#[test]
fn committed_changes_reach_the_embedder_with_their_context() {
    let mut cluster = Cluster::new(3, |_| {});
    elect(&mut cluster, 1);
    cluster
        .node_mut(1)
        .propose_conf_change(
            change(ConfChangeKind::AddLearner, 4),
            b"http://127.0.0.1:2380".to_vec(),
        )
        .unwrap();
    cluster.stabilize();
    let applied: Vec<(EntryKind, Vec<u8>)> = cluster.applied[&2]
        .iter()
        .filter(|entry| matches!(entry.kind, EntryKind::ConfChange(_)))
        .map(|entry| (entry.kind, entry.data.clone()))
        .collect();
    assert_eq!(
        applied,
        vec![(
            EntryKind::ConfChange(change(ConfChangeKind::AddLearner, 4)),
            b"http://127.0.0.1:2380".to_vec()
        )]
    );
}

#[test]
fn committed_entries_that_replace_a_held_suffix_apply_only_after_the_write() {
    let mut storage = MemStorage::new_with_voters(vec![1, 2, 3]);
    storage
        .append(&[normal_entry(1, 1), normal_entry(2, 1), normal_entry(3, 1)])
        .unwrap();
    storage.set_hard_state(raft::HardState {
        term: 1,
        vote: 0,
        commit: 0,
    });
    let mut follower = RawNode::new(&Config::new(1), storage).unwrap();
    follower
        .step(Message {
            from: 2,
            to: 1,
            term: 2,
            body: MessageBody::AppendEntries {
                prev_log_index: 1,
                prev_log_term: 1,
                entries: vec![normal_entry(2, 2), normal_entry(3, 2)],
                leader_commit: 3,
            },
        })
        .unwrap();
    let ready = follower.ready().unwrap();
    let indexes_and_terms = |entries: &[Entry]| {
        entries
            .iter()
            .map(|e| (e.index, e.term))
            .collect::<Vec<_>>()
    };
    assert_eq!(indexes_and_terms(&ready.entries), [(2, 2), (3, 2)]);
    assert_eq!(
        indexes_and_terms(&ready.committed_entries),
        [(1, 1)],
        "only the entry storage holds as the log has it may apply before the write"
    );
    assert_eq!(
        indexes_and_terms(&ready.committed_entries_after_persist),
        [(2, 2), (3, 2)],
        "storage still holds other entries at 2 and 3 until the write is durable"
    );
}
