//! A member of three restarted with a wiped data directory: it refuses to
//! start (exit status and message naming it and the way to replace it), as
//! etcd 3.4 does; then the documented replacement with etcdctl (`member
//! remove`, `member add`, start with an empty directory and
//! `--initial-cluster-state existing`) brings it back with every write,
//! under the fresh id `member add` gave it: under its old id it could vote
//! twice in the term it forgot.
//! Takes 5–15 s.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Cluster;

const KEYS: usize = 20;

/// Runs etcdctl against `endpoint`; its stdout, or its stderr as the error.
fn etcdctl(endpoint: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "--command-timeout=10s"])
        .args(args)
        .output()
        .map_err(|error| format!("cannot run etcdctl: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    }
}

/// Runs a membership command through the current leader, retrying (an
/// election may be under way) for up to 30 s.
async fn through_leader(cluster: &Cluster, args: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = cluster.wait_for_leader(None).await;
        match etcdctl(&cluster.endpoint(leader), args) {
            Ok(stdout) => return stdout,
            Err(error) if Instant::now() < deadline => {
                eprintln!("etcdctl {args:?} failed, retrying: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("etcdctl {args:?} failed for 30 s: {error}"),
        }
    }
}

/// `key`'s value in the member's own store; `None` also while it starts.
async fn local_value(endpoint: &str, key: &str) -> Option<String> {
    let response = common::range(endpoint, key, "", true).await.ok()?;
    response
        .kvs
        .first()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wiped_member_refuses_to_rejoin_and_is_replaced_the_documented_way() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(None).await;
    let endpoints = cluster.endpoints();
    for number in 0..KEYS {
        common::put_until_acked(&endpoints, &format!("k{number}"), &format!("v{number}")).await;
    }
    let victim = (leader + 1) % cluster.size();
    let victim_endpoint = cluster.endpoint(victim);
    // The victim has started and talked to its peers once it holds a write.
    let deadline = Instant::now() + Duration::from_secs(20);
    while local_value(&victim_endpoint, "k0").await.as_deref() != Some("v0") {
        assert!(Instant::now() < deadline, "the victim never got k0");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim_id = common::status(&victim_endpoint)
        .await
        .expect("victim status")
        .header
        .expect("header")
        .member_id;

    cluster.kill(victim);
    std::fs::remove_dir_all(cluster.data_dir(victim)).expect("wipe the data directory");
    cluster.start_member(victim);
    let status = cluster
        .wait_for_exit(victim, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("the wiped member kept running:\n{}", cluster.log(victim)));
    assert!(!status.success(), "the wiped member exited with {status}");
    let log = cluster.log(victim);
    for expected in [
        format!("member {victim_id:x} has already been bootstrapped"),
        format!("etcdctl member remove {victim_id:x}"),
        "--initial-cluster-state existing".to_owned(),
    ] {
        assert!(log.contains(&expected), "{expected:?} in the log:\n{log}");
    }
    assert!(!common::range(&endpoints[leader], "k0", "", false)
        .await
        .expect("the others still serve")
        .kvs
        .is_empty());

    if !common::etcdctl_present() {
        return;
    }
    let removed = through_leader(&cluster, &["member", "remove", &format!("{victim_id:x}")]).await;
    assert!(
        removed.contains(&format!("{victim_id:x} removed")),
        "{removed}"
    );
    let name = format!("m{}", victim + 1);
    let peer_urls = format!("--peer-urls={}", cluster.peer_url(victim));
    let added = through_leader(&cluster, &["member", "add", &name, &peer_urls]).await;
    assert!(added.contains("added to cluster"), "{added}");
    cluster.set_joining(victim);
    cluster.start_member(victim);

    let deadline = Instant::now() + Duration::from_secs(30);
    for number in 0..KEYS {
        let (key, value) = (format!("k{number}"), format!("v{number}"));
        while local_value(&victim_endpoint, &key).await.as_deref() != Some(value.as_str()) {
            assert!(
                Instant::now() < deadline,
                "the replacement never served {key}; its log:\n{}",
                cluster.log(victim)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    common::put_until_acked(std::slice::from_ref(&victim_endpoint), "after", "replaced").await;
    assert_eq!(
        common::get(&victim_endpoint, "after").await.as_deref(),
        Some("replaced")
    );
    let members = through_leader(&cluster, &["member", "list"]).await;
    assert_eq!(members.lines().count(), 3, "{members}");
    assert!(
        members.contains(&victim_endpoint),
        "the replacement published its URL: {members}"
    );

    let replacement_id = common::status(&victim_endpoint)
        .await
        .expect("replacement status")
        .header
        .expect("header")
        .member_id;
    assert_ne!(replacement_id, victim_id, "the replacement kept its old id");
    assert!(
        added.contains(&format!("{replacement_id:x}")),
        "the replacement took the id member add gave: {added}"
    );
    assert!(
        members.contains(&format!("{replacement_id:x}"))
            && !members.contains(&format!("{victim_id:x}")),
        "the list names the new id, not the old: {members}"
    );
}
