//! Real members whose files are damaged while they are down, raftkv beside
//! etcd 3.4 in each test: keys are put (acknowledged) and read back, a member
//! is SIGKILLed, one of its files is damaged (a flipped byte in a log record,
//! in the hard state, in a snapshot or in the key-value store; a file cut
//! short), and it is restarted. raftkv must either refuse to start with its
//! own error (not a panic) naming the file (and, where its format can tell,
//! the offset) and what to do, or serve every acknowledged write; the other
//! members must serve them all either way. Where the member can follow the
//! advice alone (a damaged store: move it away), the test follows it and the
//! member must then serve every write. Each case runs on one member and on
//! three, for both servers; what etcd does is asserted where it was the same
//! on every run and printed always (docs/reliability.md tabulates both). etcd
//! must be on PATH (Debian: `apt-get install etcd-server`); without it the
//! etcd half says so and is skipped, except under CI (`CI=true`), where it
//! fails. Each test takes some seconds.

#[path = "../common/mod.rs"]
mod common;
mod edit;
mod layout;
mod scenario;

use std::path::Path;
use std::time::Duration;

use common::etcd::{etcd_present, EtcdCluster};
use common::{Cluster, Members};
use edit::{flip_byte, flip_every_copy, newest_file, replace_byte, truncate};
use layout::{RecordKind, Server, RAFTKV_SECTOR_BYTES};
use scenario::{damage_and_restart, key, value, Observation, Outcome, KEYS};

/// How long a member with a damaged log may take to give up.
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
/// Committed entries between snapshots, low enough that the writes leave one.
const SNAPSHOT_COUNT: &str = "5";

/// One damage case on both servers, one member and three.
struct Comparison {
    raftkv: Vec<Observation>,
    /// For each raftkv run that refused, the acknowledged keys the member
    /// did not serve once the refusal's advice was followed.
    raftkv_after_repair: Vec<Vec<String>>,
    /// Empty when etcd is not on PATH (outside CI).
    etcd: Vec<Observation>,
}

/// What a refusal names and says, and how its advice is followed (for the
/// cases where the member alone can follow it).
struct Refusal<'a> {
    file_suffix: &'a str,
    phrases: &'a [&'a str],
    repair: Option<fn(&Path)>,
}

/// Runs `damage` (given the server and the victim's data directory) on a
/// one-member and a three-member cluster of each server, one after another.
/// A raftkv member that refuses has `repair` (if any) run on its data
/// directory and is restarted.
async fn compare(
    extra_args: &[&str],
    damage: impl Fn(Server, &Path),
    repair: Option<fn(&Path)>,
) -> Comparison {
    let mut raftkv = Vec::new();
    let mut raftkv_after_repair = Vec::new();
    for size in [1, 3] {
        let mut cluster = Cluster::start(size, extra_args);
        cluster.wait_for_leader(None).await;
        let observation = damage_and_restart(&mut cluster, |dir| damage(Server::Raftkv, dir)).await;
        if let (true, Some(repair)) = (observation.refused(), repair) {
            raftkv_after_repair.push(scenario::repair_and_restart(&mut cluster, repair).await);
        }
        raftkv.push(observation);
    }
    let mut etcd = Vec::new();
    if etcd_present() {
        for size in [1, 3] {
            let mut cluster = EtcdCluster::start(size, extra_args).await;
            etcd.push(damage_and_restart(&mut cluster, |dir| damage(Server::Etcd, dir)).await);
        }
    }
    for (server, observations) in [("raftkv", &raftkv), ("etcd", &etcd)] {
        for observation in observations {
            eprintln!("{server}: {}", observation.summary());
        }
    }
    Comparison {
        raftkv,
        raftkv_after_repair,
        etcd,
    }
}

impl Comparison {
    /// raftkv's rule, on every run: it serves every acknowledged write, or
    /// it refuses with an error (never a panic) that names the damaged file
    /// and says `refusal`'s phrases, and following the advice loses nothing.
    fn assert_raftkv_refuses_or_serves_everything(&self, refusal: &Refusal) {
        for observation in &self.raftkv {
            if observation.served_everything() {
                assert!(!observation.panicked(), "{}", observation.summary());
                continue;
            }
            assert!(observation.refused(), "{}", observation.summary());
            assert_refusal(observation, refusal);
        }
        for missing in &self.raftkv_after_repair {
            assert!(missing.is_empty(), "after the advised repair: {missing:?}");
        }
    }

    /// raftkv refuses on every run (see the rule above).
    fn assert_raftkv_refuses(&self, refusal: &Refusal) {
        for observation in &self.raftkv {
            assert!(observation.refused(), "{}", observation.summary());
        }
        self.assert_raftkv_refuses_or_serves_everything(refusal);
    }

    /// etcd, as observed: `expected` holds for its one-member and its
    /// three-member run alike.
    fn assert_etcd(&self, what: &str, expected: impl Fn(&Observation) -> bool) {
        for observation in &self.etcd {
            assert!(
                expected(observation),
                "etcd: {what}: {}",
                observation.summary()
            );
        }
    }
}

/// The refusal is raftkv's own error (not a panic caught on its way out),
/// names the file and says each phrase.
fn assert_refusal(observation: &Observation, refusal: &Refusal) {
    let error = observation
        .log
        .lines()
        .find(|line| line.contains("raftkv serve failed"))
        .unwrap_or_else(|| panic!("no refusal in the log:\n{}", observation.log));
    assert!(!error.contains("panicked"), "{error}");
    assert!(
        error.contains(refusal.file_suffix),
        "names the *{} file: {error}",
        refusal.file_suffix
    );
    for phrase in refusal.phrases {
        assert!(error.contains(phrase), "says {phrase:?}: {error}");
    }
}

/// How raftkv refuses a damaged log: the file, the sector's offset, why it
/// cannot be cut as a torn write, and what to do.
const LOG_REFUSAL: Refusal = Refusal {
    file_suffix: ".wal",
    phrases: &[
        "at byte ",
        "fails its checksum",
        "may have been acknowledged",
        "rejoin it from its peers",
    ],
    repair: None,
};

/// How raftkv refuses a damaged store file; moving it away is the repair.
const STORE_REFUSAL: Refusal = Refusal {
    file_suffix: "member/snap/db",
    phrases: &["is damaged", "move it away and restart the member"],
    repair: Some(move_store_away),
};

fn move_store_away(data_dir: &Path) {
    let db = Server::Raftkv.db_path(data_dir);
    std::fs::rename(&db, db.with_extension("damaged")).expect("move the store away");
}

/// A byte in the middle of the payload of the middle entries record of the
/// newest log segment: not in the last write.
fn flip_middle_entries_record(server: Server, data_dir: &Path) {
    let segment = newest_file(&server.wal_dir(data_dir), ".wal");
    let records = server.records(&segment, RecordKind::Entries);
    assert!(
        records.len() >= 4,
        "{server:?} log has {} records",
        records.len()
    );
    let payload = &records[records.len() / 2].payload;
    flip_byte(&segment, payload[payload.len() / 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_middle_log_record() {
    let comparison = compare(&[], flip_middle_entries_record, LOG_REFUSAL.repair).await;
    comparison.assert_raftkv_refuses(&LOG_REFUSAL);
    comparison.assert_etcd("refuses: crc mismatch", |observation| {
        observation.refused() && observation.says(&["C | etcdmain: walpb: crc mismatch"])
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_hard_state_term() {
    let damage = |server: Server, data_dir: &Path| {
        let segment = newest_file(&server.wal_dir(data_dir), ".wal");
        let records = server.records(&segment, RecordKind::HardState);
        let last = records.last().expect("the log holds a hard state");
        flip_byte(&segment, server.term_offset(last));
    };
    let comparison = compare(&[], damage, LOG_REFUSAL.repair).await;
    comparison.assert_raftkv_refuses(&LOG_REFUSAL);
    comparison.assert_etcd("refuses: crc mismatch", |observation| {
        observation.refused() && observation.says(&["C | etcdmain: walpb: crc mismatch"])
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_newest_snapshot() {
    let damage = |server: Server, data_dir: &Path| {
        let snapshot = newest_file(&server.snap_dir(data_dir), ".snap");
        let length = std::fs::metadata(&snapshot).expect("snapshot size").len();
        flip_byte(&snapshot, length / 2);
    };
    let comparison = compare(&["--snapshot-count", SNAPSHOT_COUNT], damage, None).await;
    comparison.assert_raftkv_refuses(&Refusal {
        file_suffix: ".snap",
        phrases: &[
            "at byte ",
            "snapshot checksum does not match",
            "rejoin it from its peers",
        ],
        repair: None,
    });
    comparison.assert_etcd(
        "skips the snapshot (crc mismatch) and serves everything",
        |observation| {
            observation.served_everything()
                && observation.says(&["E | snap: corrupted snapshot file", "crc mismatch"])
        },
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_a_stored_value() {
    let damage = |server: Server, data_dir: &Path| {
        let copies = flip_every_copy(&server.db_path(data_dir), value(KEYS / 2).as_bytes());
        assert!(copies > 0, "{server:?} store holds the value");
    };
    let comparison = compare(
        &["--snapshot-count", SNAPSHOT_COUNT],
        damage,
        STORE_REFUSAL.repair,
    )
    .await;
    comparison.assert_raftkv_refuses_or_serves_everything(&STORE_REFUSAL);
    comparison.assert_etcd("serves the damaged value", |observation| {
        matches!(observation.outcome, Outcome::Served)
            && observation.missing.len() == 1
            && observation.missing[0].starts_with(&key(KEYS / 2))
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_cut_to_half_its_length() {
    let damage = |server: Server, data_dir: &Path| {
        let db = server.db_path(data_dir);
        let length = std::fs::metadata(&db).expect("store size").len();
        truncate(&db, length / 2);
    };
    let comparison = compare(
        &["--snapshot-count", SNAPSHOT_COUNT],
        damage,
        STORE_REFUSAL.repair,
    )
    .await;
    // What etcd does varies from run to run with where the cut falls (it
    // serves, or its memory-mapped read of the missing part kills it with
    // `fatal error: fault`), so only its output records it.
    comparison.assert_raftkv_refuses(&STORE_REFUSAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_segment_cut_in_the_middle_of_its_records() {
    let damage = |server: Server, data_dir: &Path| {
        let segment = newest_file(&server.wal_dir(data_dir), ".wal");
        let records = server.records(&segment, RecordKind::Entries);
        assert!(
            records.len() >= 4,
            "{server:?} log has {} records",
            records.len()
        );
        truncate(&segment, records[records.len() / 2].payload[0]);
    };
    let comparison = compare(&[], damage, None).await;
    comparison.assert_raftkv_refuses(&Refusal {
        file_suffix: ".wal",
        phrases: &["at byte ", "was truncated", "rejoin it from its peers"],
        repair: None,
    });
    // etcd cuts its log at the damage and starts; what follows varies from
    // run to run (it serves from its store, or its Raft panics when the
    // leader's commit index is past its log), so only its output records it.
}

/// The last payload byte of the last entries record in a raftkv log.
fn last_record_byte(wal_dir: &Path) -> (std::path::PathBuf, u64) {
    let segment = newest_file(wal_dir, ".wal");
    let records = Server::Raftkv.records(&segment, RecordKind::Entries);
    let last = *records
        .last()
        .and_then(|record| record.payload.last())
        .expect("the log holds entries");
    (segment, last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_last_record_is_refused_and_nothing_is_lost() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(None).await;
    let endpoint = cluster.endpoint(0);
    for number in 0..KEYS {
        common::put(&endpoint, &key(number), &value(number))
            .await
            .expect("put acknowledged");
    }
    cluster.kill(0);
    let wal_dir = Server::Raftkv.wal_dir(&cluster.data_dir(0));
    let (segment, offset) = last_record_byte(&wal_dir);
    let original = flip_byte(&segment, offset);

    cluster.start_member(0);
    let status = cluster.wait_for_exit(0, EXIT_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "a member with a damaged log kept running:\n{}",
            cluster.log(0)
        )
    });
    assert!(!status.success(), "exit status {status}");
    let log = cluster.log(0);
    let sector_offset = offset / RAFTKV_SECTOR_BYTES * RAFTKV_SECTOR_BYTES;
    assert!(
        log.contains(&segment.display().to_string())
            && log.contains(&format!("byte {sector_offset}")),
        "the error names {} and byte {sector_offset}:\n{log}",
        segment.display()
    );
    assert!(log.contains("may have been acknowledged"), "{log}");
    assert!(
        common::status(&endpoint).await.is_err(),
        "a member that refused its log serves nothing"
    );

    replace_byte(&segment, offset, |_| original);
    cluster.start_member(0);
    cluster.wait_for_leader(None).await;
    for number in 0..KEYS {
        assert_eq!(
            common::get(&endpoint, &key(number)).await,
            Some(value(number)),
            "acknowledged key {} survives the restart",
            key(number)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_also_refuses_a_flipped_byte_in_its_last_wal_record() {
    if !etcd_present() {
        return;
    }
    let mut etcd = EtcdCluster::start(1, &[]).await;
    let endpoint = etcd.endpoint(0);
    for number in 0..KEYS {
        common::put(&endpoint, &key(number), &value(number))
            .await
            .expect("put acknowledged by etcd");
    }
    etcd.kill(0);
    let segment = newest_file(&Server::Etcd.wal_dir(&etcd.data_dir(0)), ".wal");
    let records = Server::Etcd.records(&segment, RecordKind::Entries);
    let last = *records
        .last()
        .and_then(|record| record.payload.last())
        .expect("etcd's log holds entries");
    flip_byte(&segment, last);
    etcd.start_member(0);
    let status = etcd
        .wait_for_exit(0, EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("etcd with a damaged WAL kept running:\n{}", etcd.log(0)));
    assert!(!status.success(), "exit status {status}");
    let log = etcd.log(0);
    assert!(log.contains("crc mismatch"), "{log}");
}
