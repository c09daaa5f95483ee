//! Three `raftkv serve` processes on loopback: writes through every member
//! with the leader SIGKILLed while clients write; a member restarted after a
//! long absence catching up by snapshot (with a watcher on it that must see
//! every write once, in order); a stopping leader handing over.
//! Each test takes 3–15 s.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Cluster;

const WRITER_TASKS: usize = 8;

/// Waits until every running member's store is at `revision` or later.
async fn wait_for_revision(cluster: &Cluster, members: &[usize], revision: i64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for &index in members {
        loop {
            let reached = common::range(&cluster.endpoint(index), "\0", "", true)
                .await
                .ok()
                .and_then(|response| response.header)
                .is_some_and(|header| header.revision >= revision);
            if reached {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "member {index} did not reach revision {revision}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Every key under `prefix` that member `index` holds, read from its own store.
async fn keys_on(cluster: &Cluster, index: usize, prefix: &str) -> BTreeSet<String> {
    let end = format!(
        "{}{}",
        &prefix[..prefix.len() - 1],
        (prefix.as_bytes()[prefix.len() - 1] + 1) as char
    );
    let response = common::range(&cluster.endpoint(index), prefix, &end, true)
        .await
        .expect("serializable range");
    response
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

/// The members agree: same HashKV at one revision, and every key in `acked`.
async fn check_agreement(cluster: &Cluster, acked: &BTreeSet<String>) {
    let revision = common::current_revision(&cluster.endpoints()).await;
    let all: Vec<usize> = (0..cluster.size()).collect();
    wait_for_revision(cluster, &all, revision).await;
    let mut hashes = Vec::new();
    for index in 0..cluster.size() {
        let hash = common::hash_kv(&cluster.endpoint(index), revision)
            .await
            .expect("HashKV");
        hashes.push(hash.hash);
        let keys = keys_on(cluster, index, "w").await;
        let missing: Vec<_> = acked.difference(&keys).collect();
        assert!(
            missing.is_empty(),
            "member {index} lacks acknowledged writes {missing:?}"
        );
    }
    assert!(
        hashes.windows(2).all(|pair| pair[0] == pair[1]),
        "HashKV at revision {revision} differs: {hashes:?}"
    );
}

/// Waits (bounded) until the writers have `count` acknowledged writes; the
/// panic says the cluster stopped taking writes (`when`).
async fn wait_for_acked(acked: &Mutex<BTreeSet<String>>, count: usize, when: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have = acked.lock().unwrap().len();
        if have >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "writes stopped {when}: only {have} of {count} acknowledged within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_through_every_member_survive_leader_kill() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(None).await;
    let mut acked = BTreeSet::new();
    for index in 0..3 {
        let key = format!("w-direct-{index}");
        let endpoints = [cluster.endpoint(index)];
        common::put_until_acked(&endpoints, &key, "v").await;
        acked.insert(key);
    }
    for index in 0..3 {
        assert_eq!(
            common::get(&cluster.endpoint(index), "w-direct-0")
                .await
                .as_deref(),
            Some("v")
        );
    }

    let acked = Arc::new(Mutex::new(acked));
    let stop = Arc::new(AtomicBool::new(false));
    let endpoints = cluster.endpoints();
    let mut writers = Vec::new();
    for task in 0..WRITER_TASKS {
        let (acked, stop, endpoints) = (acked.clone(), stop.clone(), endpoints.clone());
        writers.push(tokio::spawn(async move {
            let mut target = task % endpoints.len();
            let mut sequence = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w-{task}-{sequence}");
                match common::put(&endpoints[target], &key, "v").await {
                    Ok(_) => {
                        acked.lock().unwrap().insert(key);
                        sequence += 1;
                    }
                    Err(_) => {
                        // Unknown outcome: never reuse the key, try another member.
                        sequence += 1;
                        target = (target + 1) % endpoints.len();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    wait_for_acked(&acked, WRITER_TASKS, "before any fault").await;
    let leader = cluster.wait_for_leader(None).await;
    let acked_before_kill = acked.lock().unwrap().len();
    cluster.kill(leader);
    cluster.wait_for_leader(Some(leader)).await;
    wait_for_acked(
        &acked,
        acked_before_kill + WRITER_TASKS,
        "after the leader died",
    )
    .await;
    cluster.start_member(leader);
    // The writers go on while the killed member rejoins and catches up.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer task");
    }
    let acked = acked.lock().unwrap().clone();
    check_agreement(&cluster, &acked).await;
}

/// Watches every `w-` key on `endpoint` from revision 2 until each of
/// `keys` has shown; returns the revisions of the events seen.
async fn watch_keys(endpoint: String, keys: BTreeSet<String>) -> Vec<i64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let options = etcd_client::WatchOptions::new()
        .with_prefix()
        .with_start_revision(2);
    let mut stream = loop {
        let connected = etcd_client::Client::connect([&endpoint], None).await;
        if let Ok(mut client) = connected {
            if let Ok(stream) = client.watch("w-", Some(options.clone())).await {
                break stream;
            }
        }
        assert!(Instant::now() < deadline, "no watch on {endpoint}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut revisions = Vec::new();
    let mut seen = BTreeSet::new();
    while !keys.is_subset(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        let response = tokio::time::timeout(left, stream.message())
            .await
            .unwrap_or_else(|_| panic!("saw {} of {} keys in time", seen.len(), keys.len()))
            .expect("the watch stream works")
            .expect("the watch stream stays open");
        for event in response.events() {
            let kv = event.kv().expect("an event names its key");
            revisions.push(kv.mod_revision());
            seen.insert(kv.key_str().expect("UTF-8 key").to_owned());
        }
    }
    revisions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_back_after_long_absence_catches_up_by_snapshot() {
    let mut cluster = Cluster::start(3, &["--snapshot-count", "50"]);
    let leader = cluster.wait_for_leader(None).await;
    let absent = (leader + 1) % 3;
    let mut acked = BTreeSet::new();
    common::put_until_acked(&cluster.endpoints(), "w-first", "v").await;
    acked.insert("w-first".to_owned());
    cluster.kill(absent);
    let present: Vec<String> = (0..3)
        .filter(|&index| index != absent)
        .map(|index| cluster.endpoint(index))
        .collect();
    for sequence in 0..300 {
        let key = format!("w-{sequence:04}");
        common::put_until_acked(&present, &key, "v").await;
        acked.insert(key);
    }
    let compacted = (0..3).filter(|&index| index != absent).all(|index| {
        cluster
            .log(index)
            .contains("compacted the log behind a snapshot")
    });
    assert!(compacted, "the members that stayed compacted their logs");
    cluster.start_member(absent);
    // Watching from the start on the returning member: it attaches before or
    // after the snapshot replaces the store, and must see the same either way.
    let watching = tokio::spawn(watch_keys(cluster.endpoint(absent), acked.clone()));
    check_agreement(&cluster, &acked).await;
    let revisions = watching.await.expect("the watching task");
    let contiguous: Vec<i64> = (2..2 + revisions.len() as i64).collect();
    assert_eq!(revisions, contiguous, "every revision once, in order");
    assert!(
        cluster
            .log(absent)
            .contains("installing a snapshot from the leader"),
        "the returning member caught up by snapshot:\n{}",
        cluster.log(absent)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stopping_leader_hands_over_and_exits_cleanly() {
    let mut cluster = Cluster::start(3, &[]);
    common::put_until_acked(&cluster.endpoints(), "w-before", "v").await;
    // An election between finding the leader and stopping it (a loaded
    // machine) means a follower was stopped: start it again and retry.
    let mut leader = None;
    for _attempt in 0..3 {
        let candidate = cluster.wait_for_leader(None).await;
        let status = cluster.terminate(candidate);
        let log = cluster.log(candidate);
        assert!(status.success(), "SIGTERM exit: {status}\n{log}");
        if log.contains("handing leadership over before stopping") {
            leader = Some(candidate);
            break;
        }
        cluster.start_member(candidate);
    }
    let leader = leader.expect("a stopping leader handed over within 3 attempts");
    let successor = cluster.wait_for_leader(Some(leader)).await;
    assert_ne!(successor, leader);
    let remaining: Vec<String> = (0..3)
        .filter(|&index| index != leader)
        .map(|index| cluster.endpoint(index))
        .collect();
    common::put_until_acked(&remaining, "w-after", "v").await;
    for endpoint in &remaining {
        assert_eq!(
            common::get(endpoint, "w-before").await.as_deref(),
            Some("v")
        );
    }
}
