//! Leases across three `raftkv serve` processes: a lease granted through one
//! follower is kept alive through another for longer than its TTL (so the
//! keepalives reach the leader), the leader is SIGKILLed, the new leader
//! keeps the lease for a whole TTL from its election, and then, with no
//! keepalives, the lease expires and its key is deleted on every member.
//! About 15 s.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use etcd_client::PutOptions;

/// Long enough that an election (about one election timeout, 1 s by
/// default) fits well inside it.
const TTL_SECONDS: i64 = 4;
const TTL: Duration = Duration::from_secs(TTL_SECONDS as u64);
/// A keepalive every second keeps a 4 s lease alive with room to spare.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// How long the lease is kept alive through a follower: more than its TTL.
const KEPT_ALIVE_FOR: Duration = Duration::from_secs(6);
/// How long after its deadline an unrenewed lease may take to be revoked.
const REVOKE_WAIT_MAX: Duration = Duration::from_secs(15);
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether `key` exists, by a linearizable read through the first of
/// `endpoints` that answers (an election may be under way); panics when
/// none answers within 10 s.
async fn key_exists(endpoints: &[String], key: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    for endpoint in endpoints.iter().cycle() {
        if let Ok(response) = common::range(endpoint, key, "", false).await {
            return response.count == 1;
        }
        assert!(Instant::now() < deadline, "no member answered a read");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!("cycle over a non-empty list never ends")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lease_outlives_its_leader_and_then_expires() {
    let within = tokio::time::timeout(TEST_TIMEOUT, scenario()).await;
    assert!(within.is_ok(), "the test took longer than {TEST_TIMEOUT:?}");
}

async fn scenario() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(None).await;
    let granting = (leader + 1) % 3;
    let keeping = (leader + 2) % 3;
    let mut granter = common::etcd_client(&cluster.endpoint(granting)).await;
    common::current_revision(&[cluster.endpoint(granting)]).await;
    let id = granter
        .lease_grant(TTL_SECONDS, None)
        .await
        .expect("grant through a follower")
        .id();
    granter
        .put("leased", "v", Some(PutOptions::new().with_lease(id)))
        .await
        .expect("put with the lease");

    let mut keeper_client = common::etcd_client(&cluster.endpoint(keeping)).await;
    let (mut keeper, mut answers) = keeper_client
        .lease_keep_alive(id)
        .await
        .expect("a keepalive stream through the other follower");
    let started = Instant::now();
    while started.elapsed() < KEPT_ALIVE_FOR {
        keeper.keep_alive().await.expect("send a keepalive");
        let answer = answers
            .message()
            .await
            .expect("a keepalive answer")
            .expect("the stream stays open");
        assert_eq!(answer.ttl(), TTL_SECONDS, "renewed through a follower");
        tokio::time::sleep(KEEPALIVE_INTERVAL).await;
    }
    keeper.keep_alive().await.expect("send a keepalive");
    assert_eq!(
        answers.message().await.expect("an answer").map(|a| a.ttl()),
        Some(TTL_SECONDS)
    );
    drop((keeper, answers));
    let lived = keeper_client
        .lease_time_to_live(id, None)
        .await
        .expect("time to live through a follower");
    assert_eq!(lived.granted_ttl(), TTL_SECONDS);
    assert!(
        (1..=TTL_SECONDS).contains(&lived.ttl()),
        "the leader's deadline: {lived:?}"
    );
    assert!(key_exists(&cluster.endpoints(), "leased").await);

    // The new leader is elected after the kill and gives the lease its whole
    // TTL from its election on, although the last keepalive reached the old
    // leader before: a read answered within a TTL of the kill must find it.
    let killed_at = Instant::now();
    cluster.kill(leader);
    let new_leader = cluster.wait_for_leader(Some(leader)).await;
    let survivors: Vec<String> = [new_leader, granting, keeping]
        .into_iter()
        .filter(|&index| index != leader)
        .map(|index| cluster.endpoint(index))
        .collect();
    let mut answered_in_time = 0;
    while killed_at.elapsed() < TTL {
        let exists = key_exists(&survivors, "leased").await;
        let answered_after = killed_at.elapsed();
        if answered_after < TTL {
            assert!(
                exists,
                "the lease expired {answered_after:?} after the old leader was killed"
            );
            answered_in_time += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        answered_in_time > 0,
        "no read was answered within a TTL of the kill"
    );
    // Kept alive by no one, it expires and takes its key along.
    while key_exists(&survivors, "leased").await {
        assert!(
            killed_at.elapsed() < TTL + REVOKE_WAIT_MAX,
            "the lease was never revoked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut client = common::etcd_client(&survivors[1]).await;
    let gone = client
        .lease_time_to_live(id, None)
        .await
        .expect("time to live after expiry");
    assert_eq!(gone.ttl(), -1);
    // Every survivor applies the revoke.
    for endpoint in &survivors {
        let applied_by = Instant::now() + Duration::from_secs(10);
        while common::range(endpoint, "leased", "", true)
            .await
            .expect("a serializable read")
            .count
            != 0
        {
            assert!(Instant::now() < applied_by, "{endpoint} kept the key");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
