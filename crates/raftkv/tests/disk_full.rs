//! A member whose log disk fills up, on real `raftkv serve` processes: the
//! member's WAL directory is a small tmpfs, and a filler file takes the
//! space its next log segment needs. The member must stay up, refuse writes
//! with etcd's "database space exceeded", list a NOSPACE alarm, keep serving
//! serializable reads, and once the filler is deleted resume by itself, clear
//! the alarm and lose no acknowledged write.
//!
//! Needs root (to mount); skipped otherwise. Every mount is undone by a guard,
//! whatever happens.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{hash_kv, range, Cluster};
use server::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use server::proto::etcdserverpb::{AlarmRequest, AlarmType};

/// The log preallocates 64 MiB segments: the first one fits beside the
/// filler, the next one does not until the filler is deleted.
const SEGMENT_BYTES: u64 = 64 << 20;
const TMPFS_BYTES: u64 = 160 << 20;
const FILLER_BYTES: u64 = 80 << 20;
/// Values big enough to fill a segment in a few dozen writes.
const VALUE_BYTES: usize = 1 << 20;
/// Writes past which the first segment is surely full.
const PUTS_TO_FILL_MAX: usize = (2 * SEGMENT_BYTES as usize) / VALUE_BYTES;
const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
/// One put that waits longer than this is the one whose write is held.
const PUT_TIMEOUT: Duration = Duration::from_secs(3);

/// A tmpfs mounted for the test's life; unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(path).expect("create the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}")])
            .arg("tmpfs")
            .arg(path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount tmpfs on {}", path.display());
        Tmpfs {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a member still holding files in it must not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn wal_dir(cluster: &Cluster, index: usize) -> PathBuf {
    cluster.data_dir(index).join("member").join("wal")
}

/// Fills the member's log disk: its WAL directory becomes a tmpfs whose
/// free space a filler file takes. Returns the mount and the filler's path.
fn fill_log_disk(cluster: &Cluster, index: usize) -> (Tmpfs, PathBuf) {
    let dir = wal_dir(cluster, index);
    let tmpfs = Tmpfs::mount(&dir, TMPFS_BYTES);
    let filler = dir.join("filler");
    let chunk = vec![0xa5u8; 1 << 20];
    let mut file = std::fs::File::create(&filler).expect("create the filler");
    for _ in 0..FILLER_BYTES / chunk.len() as u64 {
        std::io::Write::write_all(&mut file, &chunk).expect("write the filler");
    }
    (tmpfs, filler)
}

fn value_of(number: usize) -> String {
    let letter = char::from(b'a' + (number % 26) as u8);
    letter.to_string().repeat(VALUE_BYTES)
}

/// What a put came to.
enum PutOutcome {
    Acked,
    NoSpace,
    /// No answer in time: the write may be the one held.
    Unknown,
}

async fn try_put(endpoint: &str, key: &str, value: &str) -> PutOutcome {
    match tokio::time::timeout(PUT_TIMEOUT, common::put(endpoint, key, value)).await {
        Ok(Ok(_)) => PutOutcome::Acked,
        Ok(Err(status)) if status.message() == NO_SPACE => PutOutcome::NoSpace,
        Ok(Err(status)) => panic!("put {key} failed with another error: {status:?}"),
        Err(_) => PutOutcome::Unknown,
    }
}

async fn alarms(endpoint: &str) -> Vec<(u64, i32)> {
    let channel = common::channel(endpoint).await.expect("connect");
    let response = MaintenanceClient::new(channel)
        .alarm(AlarmRequest::default())
        .await
        .expect("alarm list")
        .into_inner();
    response
        .alarms
        .iter()
        .map(|alarm| (alarm.member_id, alarm.alarm))
        .collect()
}

async fn member_id(endpoint: &str) -> u64 {
    common::status(endpoint)
        .await
        .expect("status")
        .header
        .map_or(0, |header| header.member_id)
}

/// Waits up to `within` for `condition`, checked every 100 ms.
async fn eventually<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if condition().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// `etcdctl alarm list` as an operator runs it, when etcdctl is installed.
fn etcdctl_alarm_list(endpoint: &str) -> Option<String> {
    if !common::etcdctl_present() {
        return None;
    }
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "alarm", "list"])
        .output()
        .expect("run etcdctl");
    assert!(output.status.success(), "etcdctl alarm list: {output:?}");
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lone_member_with_a_full_log_disk_refuses_writes_stays_up_and_resumes_once_freed() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let mut cluster = Cluster::prepare(1, &[]);
    let (_tmpfs, filler) = fill_log_disk(&cluster, 0);
    cluster.start_member(0);
    cluster.wait_for_leader(None).await;
    let endpoint = cluster.endpoint(0);
    let id = member_id(&endpoint).await;

    let mut acked = Vec::new();
    let mut unknown = Vec::new();
    let mut refused = false;
    for number in 0..PUTS_TO_FILL_MAX {
        let key = format!("k{number:04}");
        match try_put(&endpoint, &key, &value_of(number)).await {
            PutOutcome::Acked => acked.push(number),
            PutOutcome::Unknown => unknown.push(number),
            PutOutcome::NoSpace => {
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "the log disk never filled up: {}", cluster.log(0));
    assert!(!acked.is_empty(), "writes succeeded before the disk filled");
    match try_put(&endpoint, "refused", "x").await {
        PutOutcome::NoSpace => {}
        _ => panic!("a write to a member whose disk is full is not refused at once"),
    }
    assert_eq!(
        alarms(&endpoint).await,
        vec![(id, AlarmType::Nospace as i32)]
    );
    if let Some(listed) = etcdctl_alarm_list(&endpoint) {
        assert!(listed.contains("alarm:NOSPACE"), "{listed}");
        assert!(listed.contains(&format!("memberID:{id}")), "{listed}");
    }
    let read = range(&endpoint, &format!("k{:04}", acked[0]), "", true)
        .await
        .expect("a serializable read while the disk is full");
    assert_eq!(read.kvs[0].value, value_of(acked[0]).into_bytes());
    assert!(
        cluster.wait_for_exit(0, Duration::ZERO).is_none(),
        "the member stopped: {}",
        cluster.log(0)
    );

    std::fs::remove_file(&filler).expect("delete the filler");
    let resumed = eventually(Duration::from_secs(20), || {
        let endpoint = endpoint.clone();
        async move {
            matches!(
                try_put(&endpoint, "after", "freed").await,
                PutOutcome::Acked
            )
        }
    })
    .await;
    assert!(resumed, "writes did not resume: {}", cluster.log(0));
    assert!(
        alarms(&endpoint).await.is_empty(),
        "the alarm did not clear"
    );
    let log = cluster.log(0);
    let wal = wal_dir(&cluster, 0);
    assert!(log.contains("disk is full"), "{log}");
    assert!(log.contains("has room again"), "{log}");
    assert!(log.contains(&wal.display().to_string()), "{log}");

    cluster.terminate(0);
    cluster.start_member(0);
    cluster.wait_for_leader(None).await;
    for number in acked {
        let key = format!("k{number:04}");
        let found = range(&endpoint, &key, "", false).await.expect("read");
        assert_eq!(
            found.kvs.first().map(|kv| kv.value.clone()),
            Some(value_of(number).into_bytes()),
            "acknowledged put {key} lost across the restart"
        );
    }
    let after = range(&endpoint, "after", "", false).await.expect("read");
    assert_eq!(after.kvs[0].value, b"freed");
    cluster.terminate(0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_keeps_writing_while_one_members_log_disk_is_full_and_it_catches_up_once_freed() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    const FULL: usize = 2;
    let mut cluster = Cluster::prepare(3, &[]);
    let (_tmpfs, filler) = fill_log_disk(&cluster, FULL);
    for index in 0..3 {
        cluster.start_member(index);
    }
    cluster.wait_for_leader(None).await;
    let healthy: Vec<String> = (0..3)
        .filter(|&index| index != FULL)
        .map(|index| cluster.endpoint(index))
        .collect();
    let full_endpoint = cluster.endpoint(FULL);
    let full_id = member_id(&full_endpoint).await;

    let mut number = 0;
    let filled = loop {
        if !alarms(&full_endpoint).await.is_empty() {
            break true;
        }
        if number >= 2 * PUTS_TO_FILL_MAX {
            break false;
        }
        common::put_until_acked(&healthy, &format!("k{number:04}"), &value_of(number)).await;
        number += 1;
    };
    assert!(filled, "the member's log disk never filled up");
    assert_eq!(
        alarms(&full_endpoint).await,
        vec![(full_id, AlarmType::Nospace as i32)]
    );
    for _ in 0..5 {
        common::put_until_acked(&healthy, &format!("k{number:04}"), &value_of(number)).await;
        number += 1;
    }
    assert!(matches!(
        try_put(&full_endpoint, "refused", "x").await,
        PutOutcome::NoSpace
    ));
    assert!(cluster.wait_for_exit(FULL, Duration::ZERO).is_none());

    std::fs::remove_file(&filler).expect("delete the filler");
    let revision = common::current_revision(&healthy).await;
    let caught_up = eventually(Duration::from_secs(60), || {
        let endpoint = full_endpoint.clone();
        async move {
            let Ok(read) = range(&endpoint, "\0", "", true).await else {
                return false;
            };
            read.header.map_or(0, |header| header.revision) >= revision
        }
    })
    .await;
    assert!(
        caught_up,
        "the member did not catch up: {}",
        cluster.log(FULL)
    );
    let hashes: Vec<u32> = {
        let mut hashes = Vec::new();
        for endpoint in cluster.endpoints() {
            let response = hash_kv(&endpoint, revision).await.expect("hash_kv");
            hashes.push(response.hash);
        }
        hashes
    };
    assert!(
        hashes.windows(2).all(|pair| pair[0] == pair[1]),
        "members disagree at revision {revision}: {hashes:?}"
    );
    assert!(
        alarms(&full_endpoint).await.is_empty(),
        "the alarm did not clear"
    );
    for index in 0..3 {
        cluster.terminate(index);
    }
}
