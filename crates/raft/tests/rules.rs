//! One test per Raft rule that the scenarios do not already show step by step:
//! the persistence contract, vote safety across restarts, the cost of log
//! repair, forwarding, and the leader's handling of a higher term.

mod harness;

use harness::Cluster;
use raft::{
    AppendResponse, Config, MemStorage, Message, MessageBody, RaftError, RawNode, Role, Storage,
};

fn elect(cluster: &mut Cluster, id: u64) {
    cluster.node_mut(id).campaign();
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
    let ready = node.ready();
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
    node.advance();
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
    let ready = node.ready();
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
fn a_restarted_member_remembers_its_vote() {
    let mut node =
        RawNode::new(&Config::new(1), MemStorage::new_with_voters(vec![1, 2, 3])).unwrap();
    node.step(vote_request(2, 1, 5)).unwrap();
    let ready = node.ready();
    node.storage_mut().set_hard_state(ready.hard_state.unwrap());
    node.advance();
    let storage = node.storage().clone();
    let mut restarted = RawNode::new(&Config::new(1), storage).unwrap();
    restarted.step(vote_request(3, 1, 5)).unwrap();
    let ready = restarted.ready();
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
    let ready = cluster.node_mut(1).ready();
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
    cluster.node_mut(1).campaign();
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
    let ready = cluster.node_mut(1).ready();
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
    cluster.node_mut(1).campaign();
    let ready = cluster.node_mut(1).ready();
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
    cluster.node_mut(1).advance();
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
