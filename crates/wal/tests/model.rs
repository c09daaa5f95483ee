//! Property test: random sequences of appends (with overwrites), hard states,
//! compactions, installed snapshots and reopens; after every step the log
//! equals `raft::MemStorage` fed the same operations. Segments are tiny so
//! rollover and segment deletion happen all the time. Takes about 10 s.

use std::path::Path;

use proptest::prelude::*;
use raft::{
    ConfState, Entry, EntryKind, HardState, LogIndex, MemStorage, Snapshot, SnapshotMeta, Storage,
    Term,
};
use wal::{Wal, WalOptions, MIN_SEGMENT_BYTES};

#[derive(Clone, Debug)]
enum Op {
    /// Append `count` entries of `term` starting `back` entries before the end
    /// (0 appends after the last entry), never before the commit index: like
    /// Raft, the test never truncates committed entries.
    Append {
        back: u64,
        count: u64,
        term: Term,
        data_bytes: usize,
    },
    HardState {
        term: Term,
        vote: u64,
        commit_permille: u64,
    },
    /// Compact at a point between the snapshot and the commit index.
    Compact {
        at_permille: u64,
    },
    /// Install a snapshot `ahead` entries past the commit index, with the
    /// log's own term there (if it has one) or a different one.
    InstallSnapshot {
        ahead: u64,
        same_term: bool,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u64..8, 1u64..40, 1u64..6, 0usize..300)
            .prop_map(|(back, count, term, data_bytes)| Op::Append { back, count, term, data_bytes }),
        2 => (1u64..6, 0u64..4, 0u64..=1000)
            .prop_map(|(term, vote, commit_permille)| Op::HardState { term, vote, commit_permille }),
        2 => (0u64..=1000).prop_map(|at_permille| Op::Compact { at_permille }),
        1 => (0u64..60, any::<bool>()).prop_map(|(ahead, same_term)| Op::InstallSnapshot { ahead, same_term }),
        2 => Just(Op::Reopen),
    ]
}

fn options() -> WalOptions {
    WalOptions {
        segment_bytes: MIN_SEGMENT_BYTES,
        snapshots_kept: 2,
        ..WalOptions::new(0x5eed)
    }
}

fn entry(index: LogIndex, term: Term, data_bytes: usize) -> Entry {
    Entry {
        term,
        index,
        kind: if index.is_multiple_of(7) {
            EntryKind::Noop
        } else {
            EntryKind::Normal
        },
        data: (0..data_bytes)
            .map(|offset| (index as usize * 31 + offset) as u8)
            .collect(),
    }
}

fn snapshot(index: LogIndex, term: Term) -> Snapshot {
    Snapshot {
        meta: SnapshotMeta {
            index,
            term,
            conf_state: ConfState {
                voters: vec![1, 2, index % 5 + 3],
                learners: Vec::new(),
            },
        },
        data: format!("image at {index}/{term}").into_bytes(),
    }
}

fn apply(op: &Op, wal: &mut Wal, model: &mut MemStorage) -> Result<(), TestCaseError> {
    let first = model.first_index().unwrap();
    let last = model.last_index().unwrap();
    let commit = model.hard_state().commit;
    match *op {
        Op::Append {
            back,
            count,
            term,
            data_bytes,
        } => {
            let start = (last + 1).saturating_sub(back).max(commit + 1);
            let entries: Vec<Entry> = (start..start + count)
                .map(|index| entry(index, term, data_bytes))
                .collect();
            model.append(&entries).unwrap();
            wal.persist(None, &entries).unwrap();
        }
        Op::HardState {
            term,
            vote,
            commit_permille,
        } => {
            // The commit index only grows, and never past the last entry.
            let hard_state = HardState {
                term,
                vote,
                commit: commit + (last - commit) * commit_permille / 1000,
            };
            model.set_hard_state(hard_state);
            wal.persist(Some(hard_state), &[]).unwrap();
        }
        Op::Compact { at_permille } => {
            let index = first - 1 + (commit + 1 - first) * at_permille / 1000;
            let term = model.term(index).unwrap();
            model.compact(snapshot(index, term)).unwrap();
            wal.compact(snapshot(index, term)).unwrap();
        }
        Op::InstallSnapshot { ahead, same_term } => {
            // Raft installs only snapshots beyond the commit index.
            let index = commit + 1 + ahead;
            let term = match model.term(index) {
                Ok(term) if same_term => term,
                Ok(term) => term + 1,
                Err(_) => 9,
            };
            model.apply_snapshot(snapshot(index, term));
            wal.apply_snapshot(snapshot(index, term)).unwrap();
        }
        Op::Reopen => {}
    }
    Ok(())
}

fn assert_same(wal: &Wal, model: &MemStorage) -> Result<(), TestCaseError> {
    let first = model.first_index().unwrap();
    let last = model.last_index().unwrap();
    prop_assert_eq!(wal.first_index().unwrap(), first);
    prop_assert_eq!(wal.last_index(), last);
    prop_assert_eq!(wal.initial_state().unwrap(), model.initial_state().unwrap());
    for index in first - 1..=last {
        prop_assert_eq!(
            wal.term(index).unwrap(),
            model.term(index).unwrap(),
            "term({})",
            index
        );
    }
    prop_assert_eq!(
        wal.entries(first, last + 1, u64::MAX).unwrap(),
        model.all_entries().to_vec()
    );
    prop_assert_eq!(wal.snapshot().unwrap(), model.snapshot().unwrap());
    Ok(())
}

fn run(dir: &Path, ops: &[Op]) -> Result<(), TestCaseError> {
    let voters = vec![1, 2, 3];
    let mut model = MemStorage::new_with_voters(voters.clone());
    let mut wal = Wal::create(dir, &options(), voters).unwrap();
    for op in ops {
        apply(op, &mut wal, &mut model)?;
        if matches!(op, Op::Reopen) {
            drop(wal);
            wal = Wal::open(dir, &options()).unwrap();
        }
        assert_same(&wal, &model)?;
    }
    drop(wal);
    let wal = Wal::open(dir, &options()).unwrap();
    assert_same(&wal, &model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_in_memory_model_across_reopens(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), &ops)?;
    }
}
