//! The log as the consensus core's storage: a one-member cluster driven the way
//! the server's node driver drives it (persist each Ready with one sync, then
//! apply and advance), restarted from the same directory, must come back with
//! its term, vote, commit and every committed entry. Takes well under a second.

use std::path::Path;

use raft::{Config, EntryKind, RawNode, Role, Storage};
use wal::{Wal, WalOptions, MIN_SEGMENT_BYTES};

const READY_ROUNDS_MAX: usize = 100;

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: MIN_SEGMENT_BYTES,
        ..WalOptions::new(0x1)
    }
}

fn start(dir: &Path) -> RawNode<Wal> {
    let wal = Wal::open_or_create(dir, &options(), vec![1]).unwrap();
    RawNode::new(&Config::new(1), wal).unwrap()
}

/// Handles Readys until there are none; returns the commands applied.
fn drive(node: &mut RawNode<Wal>) -> Vec<Vec<u8>> {
    let mut applied = Vec::new();
    for _ in 0..READY_ROUNDS_MAX {
        if !node.has_ready() {
            return applied;
        }
        let mut ready = node.ready().unwrap();
        if let Some(snapshot) = ready.snapshot.take() {
            node.storage_mut().apply_snapshot(snapshot).unwrap();
        }
        node.storage_mut()
            .persist(ready.hard_state, &ready.entries)
            .unwrap();
        assert!(
            ready.messages.is_empty() && ready.persisted_messages.is_empty(),
            "a one-member cluster sends nothing"
        );
        applied.extend(
            ready
                .committed_entries
                .into_iter()
                .chain(ready.committed_entries_after_persist)
                .filter(|entry| entry.kind == EntryKind::Normal)
                .map(|entry| entry.data),
        );
        node.advance().unwrap();
    }
    panic!("still ready after {READY_ROUNDS_MAX} rounds");
}

#[test]
fn a_member_restarts_from_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = start(dir.path());
    node.campaign().unwrap();
    drive(&mut node);
    assert_eq!(node.status().soft_state.role, Role::Leader);
    let commands: Vec<Vec<u8>> = (0..50).map(|n| format!("put k{n}").into_bytes()).collect();
    for command in &commands[..20] {
        node.propose(command.clone()).unwrap();
    }
    let mut applied = drive(&mut node);
    node.propose_batch(commands[20..].to_vec()).unwrap();
    applied.extend(drive(&mut node));
    assert_eq!(applied, commands);
    let hard_state = node.storage().hard_state();
    let last_index = node.storage().last_index();
    assert!(hard_state.term >= 1 && hard_state.vote == 1);
    assert_eq!(
        hard_state.commit, last_index,
        "a one-member cluster commits what it persists"
    );
    drop(node);

    let mut node = start(dir.path());
    assert_eq!(node.storage().hard_state(), hard_state);
    let entries = node.storage().entries(1, last_index + 1, u64::MAX).unwrap();
    let recovered: Vec<Vec<u8>> = entries
        .into_iter()
        .filter(|entry| entry.kind == EntryKind::Normal)
        .map(|entry| entry.data)
        .collect();
    assert_eq!(recovered, commands);
    node.campaign().unwrap();
    drive(&mut node);
    assert_eq!(node.status().soft_state.role, Role::Leader);
    assert!(
        node.storage().hard_state().term > hard_state.term,
        "a new term after the restart"
    );
}
