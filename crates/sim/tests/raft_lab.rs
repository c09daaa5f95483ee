//! The classic Raft lab scenarios, scripted against the simulated cluster
//! with every safety checker running after every event. Each scenario runs
//! over eight seeds. The whole file takes under a second (debug build).

use raft::{ConfChange, ConfChangeKind, Role};
use sim::lab::{self, Lab, MS};
use sim::{run_seed, FaultSet, SimConfig};

/// Seeds each scenario runs with.
const SEEDS: std::ops::Range<u64> = 1..9;

#[test]
fn initial_election() {
    for seed in SEEDS {
        let mut lab = Lab::new(3, seed);
        lab.check_one_leader();
        let term = lab.check_terms();
        assert!(term >= 1, "a leader needs a term above 0");
        lab.run_for(2 * lab.world.config().election_timeout_us_max());
        assert_eq!(
            lab.check_terms(),
            term,
            "the term changed without a failure"
        );
        lab.check_one_leader();
    }
}

#[test]
fn reelection_after_leader_is_cut_off() {
    for seed in SEEDS {
        let mut lab = Lab::new(3, seed);
        let first = lab.check_one_leader();
        lab.disconnect(first);
        let second = lab.check_one_leader();
        assert_ne!(first, second);
        lab.connect(first);
        let leader = lab.check_one_leader();
        lab.disconnect(leader);
        lab.disconnect(leader % 3 + 1);
        lab.run_for(2_000 * MS);
        lab.check_no_leader();
        lab.connect(leader % 3 + 1);
        lab.check_one_leader();
        lab.connect(leader);
        lab.check_one_leader();
    }
}

#[test]
fn many_elections_under_churn() {
    for seed in SEEDS {
        let mut lab = Lab::new(7, seed);
        lab.check_one_leader();
        for _ in 0..10 {
            let mut victims = lab.world.node_ids();
            lab.rng.shuffle(&mut victims);
            for &node in &victims[..3] {
                lab.disconnect(node);
            }
            lab.check_one_leader();
            for &node in &victims[..3] {
                lab.connect(node);
            }
        }
        lab.check_one_leader();
    }
}

#[test]
fn basic_agreement() {
    for seed in SEEDS {
        let mut lab = Lab::new(3, seed);
        let mut previous = 0;
        for round in 1..=3 {
            let value = 100 * round;
            let index = lab.one(value, 3, false);
            assert!(
                index > previous,
                "index {index} did not advance past {previous}"
            );
            assert_eq!(lab.n_committed(index), 3);
            previous = index;
        }
        assert_eq!(
            lab.n_committed(previous + 1),
            0,
            "nothing past the last agreement"
        );
    }
}

#[test]
fn agreement_despite_follower_cut_off() {
    for seed in SEEDS {
        let mut lab = Lab::new(3, seed);
        lab.one(101, 3, false);
        let leader = lab.check_one_leader();
        lab.disconnect(leader % 3 + 1);
        for value in 102..=105 {
            lab.one(value, 2, false);
        }
        lab.connect(leader % 3 + 1);
        lab.one(106, 3, true);
        lab.one(107, 3, true);
    }
}

#[test]
fn no_agreement_without_majority() {
    for seed in SEEDS {
        let mut lab = Lab::new(5, seed);
        lab.one(10, 5, false);
        let leader = lab.check_one_leader();
        let followers: Vec<u64> = (1..=5).filter(|&node| node != leader).take(3).collect();
        for &node in &followers {
            lab.disconnect(node);
        }
        let data = lab.propose(leader, 20);
        lab.run_for(2 * lab.world.config().election_timeout_us_max());
        let index = lab.world.committed_index_of(&data);
        assert_eq!(index, None, "committed without a majority");
        for &node in &followers {
            lab.connect(node);
        }
        lab.one(1000, 5, true);
    }
}

#[test]
fn concurrent_proposals() {
    for seed in SEEDS {
        let mut lab = Lab::new(3, seed);
        let leader = lab.check_one_leader();
        let payloads: Vec<Vec<u8>> = (0..5)
            .map(|value| lab.propose(leader, 500 + value))
            .collect();
        let all_applied = lab.world.run_until(2_000 * MS, |world| {
            payloads.iter().all(|data| {
                world
                    .committed_index_of(data)
                    .is_some_and(|index| world.applied_count(index) == 3)
            })
        });
        assert!(
            all_applied,
            "concurrent proposals to a stable leader did not all commit"
        );
        let mut indexes: Vec<u64> = payloads
            .iter()
            .map(|data| {
                lab.world
                    .committed_index_of(data)
                    .expect("a proposal to a stable leader commits")
            })
            .collect();
        for &index in &indexes {
            assert_eq!(lab.n_committed(index), 3);
        }
        indexes.sort_unstable();
        indexes.dedup();
        assert_eq!(indexes.len(), 5, "each proposal gets its own index");
    }
}

#[test]
fn rejoin_of_partitioned_leader() {
    for seed in SEEDS {
        let mut lab = Lab::new(3, seed);
        lab.one(101, 3, true);
        let first = lab.check_one_leader();
        lab.disconnect(first);
        for value in [102, 103, 104] {
            lab.propose(first, value);
        }
        lab.one(103, 2, true);
        let second = lab.check_one_leader();
        lab.disconnect(second);
        lab.connect(first);
        lab.one(104, 2, true);
        lab.connect(second);
        lab.one(105, 3, true);
    }
}

#[test]
fn backup_over_many_uncommitted_entries() {
    for seed in SEEDS {
        let mut lab = Lab::new(5, seed);
        let value = lab.fresh_value();
        lab.one(value, 5, true);
        let first = lab.check_one_leader();
        let others: Vec<u64> = (1..=5).filter(|&node| node != first).collect();
        for &node in &others[1..] {
            lab.disconnect(node);
        }
        for _ in 0..50 {
            let value = lab.fresh_value();
            lab.propose(first, value);
        }
        lab.run_for(500 * MS);
        lab.disconnect(first);
        lab.disconnect(others[0]);
        for &node in &others[1..] {
            lab.connect(node);
        }
        for _ in 0..50 {
            let value = lab.fresh_value();
            lab.one(value, 3, true);
        }
        let second = lab.check_one_leader();
        let other = *others[1..].iter().find(|&&node| node != second).unwrap();
        lab.disconnect(other);
        for _ in 0..50 {
            let value = lab.fresh_value();
            lab.propose(second, value);
        }
        lab.run_for(500 * MS);
        for node in 1..=5 {
            lab.disconnect(node);
        }
        lab.connect(first);
        lab.connect(others[0]);
        lab.connect(other);
        let rejections_before = rejections(&lab);
        for _ in 0..50 {
            let value = lab.fresh_value();
            lab.one(value, 3, true);
        }
        for node in 1..=5 {
            lab.connect(node);
        }
        let value = lab.fresh_value();
        lab.one(value, 5, true);
        // Fast backtracking skips a whole conflicting term per rejection; the
        // logs here differ in at most two terms, so repairing the four
        // members that rejoin a leader costs a few rejections each, not one
        // per conflicting entry (there are 50 to 100 of those).
        let repair_rejections = rejections(&lab) - rejections_before;
        assert!(
            repair_rejections <= 4 * 4,
            "{repair_rejections} rejected appends to repair the logs"
        );
    }
}

fn rejections(lab: &Lab) -> u64 {
    let stats = lab.world.stats();
    stats
        .messages_by_kind
        .get("AppendRejected")
        .copied()
        .unwrap_or(0)
}

#[test]
fn message_counts_stay_bounded() {
    let mut lab = Lab::new(3, 1);
    let leader = lab.check_one_leader();
    let config = lab.world.config().clone();
    let heartbeat_us = u64::from(config.heartbeat_ticks) * config.tick_us;
    let sent_before = lab.world.stats().messages_sent;
    let kinds_before = lab.world.stats().messages_by_kind.clone();
    let bytes_before = lab.world.stats().message_bytes;
    let started_us = lab.world.now_us();
    let rounds = 10;
    for _ in 0..rounds {
        let value = lab.fresh_value();
        let data = lab.propose(leader, value);
        let agreed = lab.world.run_until(1_000 * MS, |world| {
            world
                .committed_index_of(&data)
                .is_some_and(|index| world.applied_count(index) == 3)
        });
        assert!(agreed, "a proposal to a stable leader did not commit");
    }
    let elapsed_us = lab.world.now_us() - started_us;
    let messages = lab.world.stats().messages_sent - sent_before;
    let bytes = lab.world.stats().message_bytes - bytes_before;
    // Per agreement and follower: an append and its acknowledgement, plus a
    // commit notice and its answer. Per heartbeat round and follower (counting
    // the rounds already under way at either end of the window): a heartbeat
    // and its answer, and at most one catch-up append and its answer when
    // the answer shows the follower behind. Anything beyond is waste.
    let followers = 2;
    let heartbeat_rounds = elapsed_us / heartbeat_us + 2;
    let ceiling = rounds * followers * 4 + heartbeat_rounds * followers * 4;
    let kinds: Vec<(&str, u64)> = lab
        .world
        .stats()
        .messages_by_kind
        .iter()
        .map(|(&kind, &count)| (kind, count - kinds_before.get(kind).copied().unwrap_or(0)))
        .collect();
    assert!(
        messages <= ceiling,
        "{messages} messages ({kinds:?}) for {rounds} agreements over {} ms; ceiling {ceiling}",
        elapsed_us / MS
    );
    let entry_bytes = 24 + 35;
    let bytes_ceiling = messages * 32 + rounds * followers * entry_bytes * 2;
    assert!(
        bytes <= bytes_ceiling,
        "{bytes} bytes for {rounds} agreements; ceiling {bytes_ceiling}"
    );
}

#[test]
fn persistence_1_crash_leaders_followers_and_everyone() {
    for seed in SEEDS {
        let mut lab = Lab::new(3, seed);
        lab.one(11, 3, true);
        for node in 1..=3 {
            lab.crash(node);
        }
        for node in 1..=3 {
            lab.restart(node);
        }
        lab.one(12, 3, true);
        let leader = lab.check_one_leader();
        lab.crash(leader);
        lab.restart(leader);
        lab.one(13, 3, true);
        let leader = lab.check_one_leader();
        lab.crash(leader);
        lab.one(14, 2, true);
        lab.restart(leader);
        let index = lab.one(15, 3, true);
        let follower = lab.check_one_leader() % 3 + 1;
        lab.crash(follower);
        lab.one(16, 2, true);
        lab.restart(follower);
        lab.one(17, 3, true);
        assert!(lab.n_committed(index) == 3);
    }
}

#[test]
fn persistence_2_repeated_minority_and_majority_crashes() {
    for seed in SEEDS {
        let mut lab = Lab::new(5, seed);
        for round in 0..5 {
            lab.one(10 + round, 5, true);
            let leader = lab.check_one_leader();
            let (a, b) = (leader % 5 + 1, (leader + 1) % 5 + 1);
            lab.crash(a);
            lab.crash(b);
            lab.one(20 + round, 3, true);
            let (c, d, e) = ((leader + 2) % 5 + 1, (leader + 3) % 5 + 1, leader);
            lab.crash(c);
            lab.crash(d);
            lab.crash(e);
            lab.restart(a);
            lab.restart(b);
            lab.run_for(lab.world.config().election_timeout_us_max());
            lab.restart(c);
            lab.one(30 + round, 3, true);
            lab.restart(d);
            lab.restart(e);
        }
        lab.one(1000, 5, true);
    }
}

#[test]
fn persistence_3_partitioned_leader_and_follower_crash() {
    for seed in SEEDS {
        let mut lab = Lab::new(3, seed);
        lab.one(101, 3, true);
        let leader = lab.check_one_leader();
        let (next, third) = (leader % 3 + 1, (leader + 1) % 3 + 1);
        lab.disconnect(third);
        lab.one(102, 2, true);
        lab.crash(leader);
        lab.crash(next);
        lab.connect(third);
        lab.restart(leader);
        lab.one(103, 2, true);
        lab.restart(next);
        lab.one(104, 3, true);
    }
}

#[test]
fn figure_8() {
    for seed in SEEDS {
        let mut config = Lab::config(5);
        config.message_bytes_max = 1;
        let mut lab = Lab::with_config(config, seed);
        lab::figure_8(&mut lab, 1000);
    }
}

#[test]
fn unreliable_agreement() {
    for seed in SEEDS {
        let mut lab = Lab::new(5, seed);
        lab.world.set_unreliable(0.1, 0.05, 30 * MS);
        for _ in 0..20 {
            for _ in 0..4 {
                let value = lab.fresh_value();
                if let Some(leader) = lab.world.leader() {
                    lab.propose(leader, value);
                }
            }
            let value = lab.fresh_value();
            lab.one(value, 1, true);
        }
        lab.world.set_unreliable(0.0, 0.0, 3 * MS);
        lab.one(100, 5, true);
    }
}

#[test]
fn figure_8_unreliable_network() {
    for seed in SEEDS {
        let mut config = Lab::config(5);
        config.message_bytes_max = 1;
        let mut lab = Lab::with_config(config, seed);
        lab::figure_8_unreliable(&mut lab, 1000);
    }
}

/// Clients write through leader changes while members crash and partitions
/// come and go; every acknowledged write must survive and the history must
/// be linearizable.
fn churn(faults: FaultSet) {
    for seed in SEEDS {
        let mut config = SimConfig::new(5, faults);
        config.workload.client_count = 6;
        config.fault_interval_us_min = 20 * MS;
        config.fault_interval_us_max = 200 * MS;
        config.fault_duration_us_min = 20 * MS;
        config.fault_duration_us_max = 400 * MS;
        let summary = run_seed(&config, seed).unwrap_or_else(|violation| panic!("{violation}"));
        assert!(
            summary.faults_injected >= 5 && summary.ops_completed >= 20,
            "too little churn: {summary:?}"
        );
    }
}

#[test]
fn reliable_churn() {
    churn("crash,partition".parse().unwrap());
}

#[test]
fn unreliable_churn() {
    churn(FaultSet::all());
}

fn snapshot_lab(seed: u64) -> Lab {
    let mut config = Lab::config(3);
    config.snapshot_interval_entries = 10;
    Lab::with_config(config, seed)
}

#[test]
fn snapshot_basic() {
    for seed in SEEDS {
        let mut lab = snapshot_lab(seed);
        for _ in 0..50 {
            let value = lab.fresh_value();
            lab.one(value, 3, true);
        }
        lab.settle(1_000 * MS);
        for node in 1..=3 {
            assert!(
                lab.world.snapshot_index(node) >= 40,
                "node {node} never compacted its log"
            );
        }
        for node in 1..=3 {
            lab.crash(node);
        }
        for node in 1..=3 {
            lab.restart(node);
        }
        let value = lab.fresh_value();
        lab.one(value, 3, true);
    }
}

#[test]
fn snapshot_install() {
    for seed in SEEDS {
        let mut lab = snapshot_lab(seed);
        lab.one(1, 3, true);
        let leader = lab.check_one_leader();
        let lagging = leader % 3 + 1;
        lab.disconnect(lagging);
        for _ in 0..40 {
            let value = lab.fresh_value();
            lab.one(value, 2, true);
        }
        let installed_before = lab.world.stats().snapshots_installed;
        lab.connect(lagging);
        let value = lab.fresh_value();
        lab.one(value, 3, true);
        lab.settle(1_000 * MS);
        assert!(
            lab.world.stats().snapshots_installed > installed_before,
            "the lagging follower caught up without a snapshot"
        );
    }
}

#[test]
fn snapshot_crash_during_install() {
    for seed in SEEDS {
        let mut lab = snapshot_lab(seed);
        lab.one(1, 3, true);
        let leader = lab.check_one_leader();
        let lagging = leader % 3 + 1;
        lab.disconnect(lagging);
        for _ in 0..40 {
            let value = lab.fresh_value();
            lab.one(value, 2, true);
        }
        lab.connect(lagging);
        let installing = lab
            .world
            .run_until(2_000 * MS, |world| world.is_installing_snapshot(lagging));
        assert!(
            installing,
            "the lagging follower never started installing a snapshot"
        );
        lab.crash(lagging);
        lab.run_for(50 * MS);
        lab.restart(lagging);
        let value = lab.fresh_value();
        lab.one(value, 3, true);
        lab.settle(1_000 * MS);
        assert_eq!(
            lab.world.role(lagging).map(|(role, _)| role),
            Some(Role::Follower)
        );
    }
}

#[test]
fn leadership_transfer_hands_over_and_keeps_agreeing() {
    for seed in SEEDS {
        let mut lab = Lab::new(5, seed);
        lab.one(1, 5, true);
        let leader = lab.check_one_leader();
        let target = leader % 5 + 1;
        lab.world.transfer_leader(leader, target);
        let handed_over = lab
            .world
            .run_until(lab.world.config().election_timeout_us_max(), |world| {
                matches!(world.role(target), Some((Role::Leader, _)))
            });
        assert!(
            handed_over,
            "seed {seed}: {target} did not take over from {leader}"
        );
        assert_eq!(lab.check_one_leader(), target);
        lab.one(2, 5, true);
    }
}

#[test]
fn paused_leader_resumes_as_a_follower() {
    for seed in SEEDS {
        let mut lab = Lab::new(5, seed);
        lab.one(1, 5, true);
        let old = lab.check_one_leader();
        let old_term = lab.world.term(old);
        lab.world.pause(old, 1_500 * MS);
        let replaced = lab.world.run_until(1_000 * MS, |world| {
            world
                .leaders()
                .iter()
                .any(|&(node, term)| node != old && term > old_term)
        });
        assert!(
            replaced,
            "seed {seed}: nobody replaced the paused leader {old}"
        );
        lab.one(2, 4, true);
        lab.run_for(1_000 * MS);
        lab.one(3, 5, true);
        assert_ne!(
            lab.world.role(old).map(|(role, _)| role),
            Some(Role::Leader)
        );
    }
}

// Membership changes (Raft dissertation ch. 4), one scenario per kind of
// change, each with spare processes the cluster can add.

fn membership_lab(node_count: usize, spare_member_count: usize, seed: u64) -> Lab {
    let mut config = Lab::config(node_count);
    config.spare_member_count = spare_member_count;
    config.snapshot_interval_entries = 4;
    Lab::with_config(config, seed)
}

fn change(kind: ConfChangeKind, node_id: u64) -> ConfChange {
    ConfChange { kind, node_id }
}

#[test]
fn a_learner_catches_up_without_counting_then_is_promoted() {
    for seed in SEEDS {
        let mut lab = membership_lab(3, 1, seed);
        for _ in 0..10 {
            let value = lab.fresh_value();
            lab.one(value, 3, true);
        }
        let conf = lab.conf_change(change(ConfChangeKind::AddLearner, 4));
        assert_eq!(conf.learners, vec![4]);
        let value = lab.fresh_value();
        lab.one(value, 4, true);
        let leader = lab.check_one_leader();
        let voters_cut: Vec<u64> = (1..=3).filter(|&node| node != leader).collect();
        for &node in &voters_cut {
            lab.disconnect(node);
        }
        let value = lab.fresh_value();
        let data = lab.propose(leader, value);
        lab.run_for(1_000 * MS);
        assert_eq!(
            lab.world.committed_index_of(&data),
            None,
            "the leader and a learner are no majority"
        );
        assert_ne!(lab.world.role(4).map(|(role, _)| role), Some(Role::Leader));
        for &node in &voters_cut {
            lab.connect(node);
        }
        let conf = lab.conf_change(change(ConfChangeKind::PromoteLearner, 4));
        assert_eq!(conf.voters, vec![1, 2, 3, 4]);
        let leader = lab.check_one_leader();
        let other = (1..=4).find(|&node| node != leader).unwrap_or(1);
        lab.disconnect(other);
        let value = lab.fresh_value();
        lab.one(value, 3, true);
        lab.connect(other);
    }
}

#[test]
fn a_voter_added_at_once_counts_toward_the_quorum() {
    for seed in SEEDS {
        let mut lab = membership_lab(3, 1, seed);
        let value = lab.fresh_value();
        lab.one(value, 3, true);
        let conf = lab.conf_change(change(ConfChangeKind::AddVoter, 4));
        assert_eq!(conf.voters, vec![1, 2, 3, 4]);
        let value = lab.fresh_value();
        lab.one(value, 4, true);
        let leader = lab.check_one_leader();
        let cut: Vec<u64> = (1..=4).filter(|&node| node != leader).take(2).collect();
        for &node in &cut {
            lab.disconnect(node);
        }
        let value = lab.fresh_value();
        let data = lab.propose(leader, value);
        lab.run_for(1_000 * MS);
        assert_eq!(
            lab.world.committed_index_of(&data),
            None,
            "two of four voters are no majority"
        );
        for &node in &cut {
            lab.connect(node);
        }
        lab.settle(5_000 * MS);
    }
}

#[test]
fn a_removed_follower_stops_counting_and_never_campaigns() {
    for seed in SEEDS {
        let mut lab = membership_lab(5, 0, seed);
        let leader = lab.check_one_leader();
        let removed = leader % 5 + 1;
        let conf = lab.conf_change(change(ConfChangeKind::RemoveMember, removed));
        assert_eq!(conf.voters.len(), 4);
        let term = lab.world.term(removed);
        lab.disconnect(removed);
        lab.run_for(3 * lab.world.config().election_timeout_us_max());
        assert_eq!(lab.world.term(removed), term, "it never campaigned");
        let value = lab.fresh_value();
        lab.one(value, 4, true);
        lab.connect(removed);
    }
}

#[test]
fn a_removed_leader_steps_down_once_its_removal_commits() {
    for seed in SEEDS {
        let mut lab = membership_lab(3, 0, seed);
        let value = lab.fresh_value();
        lab.one(value, 3, true);
        let old_leader = lab.check_one_leader();
        let conf = lab.conf_change(change(ConfChangeKind::RemoveMember, old_leader));
        assert!(!conf.voters.contains(&old_leader));
        let new_leader = lab.check_one_leader();
        assert_ne!(new_leader, old_leader);
        let value = lab.fresh_value();
        lab.one(value, 2, true);
        assert_ne!(
            lab.world.role(old_leader).map(|(role, _)| role),
            Some(Role::Leader)
        );
    }
}

#[test]
fn a_removed_member_is_re_added_as_a_learner_and_promoted() {
    for seed in SEEDS {
        let mut lab = membership_lab(3, 0, seed);
        let leader = lab.check_one_leader();
        let member = leader % 3 + 1;
        lab.conf_change(change(ConfChangeKind::RemoveMember, member));
        for _ in 0..6 {
            let value = lab.fresh_value();
            lab.one(value, 2, true);
        }
        lab.conf_change(change(ConfChangeKind::AddLearner, member));
        let conf = lab.conf_change(change(ConfChangeKind::PromoteLearner, member));
        assert_eq!(conf.voters, vec![1, 2, 3]);
        let value = lab.fresh_value();
        lab.one(value, 3, true);
    }
}

#[test]
fn a_second_change_waits_while_the_first_is_uncommitted() {
    for seed in SEEDS {
        let mut lab = membership_lab(3, 2, seed);
        let leader = lab.check_one_leader();
        for node in 1..=3 {
            if node != leader {
                lab.disconnect(node);
            }
        }
        lab.world
            .propose_conf_change(leader, change(ConfChangeKind::AddLearner, 4));
        lab.world
            .propose_conf_change(leader, change(ConfChangeKind::AddLearner, 5));
        lab.run_for(30 * MS);
        let in_force = lab.world.conf_state(leader);
        assert_eq!(in_force.map(|conf| conf.learners), Some(vec![4]));
        for node in 1..=3 {
            lab.connect(node);
        }
        let value = lab.fresh_value();
        lab.one(value, 3, true);
        assert!(
            !lab.world.applied_members().is_member(5),
            "the refused change never happened (the first one may have been truncated \
             by a new leader if the old one stepped down meanwhile)"
        );
    }
}

#[test]
fn a_removed_member_that_missed_its_removal_cannot_disrupt() {
    for seed in SEEDS {
        let mut config = Lab::config(3);
        config.pre_vote = false;
        config.check_quorum = false;
        let mut lab = Lab::with_config(config, seed);
        let leader = lab.check_one_leader();
        let removed = leader % 3 + 1;
        lab.disconnect(removed);
        lab.conf_change(change(ConfChangeKind::RemoveMember, removed));
        let term = lab.world.term(leader);
        lab.connect(removed);
        lab.run_for(3 * lab.world.config().election_timeout_us_max());
        assert!(
            lab.world.term(removed) > term,
            "it campaigned, believing it still votes"
        );
        assert_eq!(lab.check_one_leader(), leader);
        assert_eq!(lab.world.term(leader), term, "and was never heard");
    }
}
