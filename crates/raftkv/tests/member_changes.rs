//! Configuration changes on three `raftkv serve` processes: a learner added
//! through a follower (which passes the change on to the leader, as etcd's
//! followers do) is in that follower's list as soon as it answers, and
//! appears in every member's list (and in a restarted member's), etcd's
//! errors for clashing or impossible changes (re-adding a member's peer URLs
//! answers "Peer URLs already exists": `member add` gives a fresh id, as etcd
//! 3.4 does, so only the URLs clash), and a removed voter leaves a
//! cluster that still takes writes. The added member never starts, as with
//! etcd before its process is launched. Takes 3–10 s.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use server::proto::etcdserverpb::cluster_client::ClusterClient;
use server::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
};
use tonic::Code;

async fn client(endpoint: &str) -> ClusterClient<tonic::transport::Channel> {
    ClusterClient::new(common::channel(endpoint).await.expect("connect"))
}

async fn try_member_list(endpoint: &str) -> Result<Vec<Member>, tonic::Status> {
    let channel = common::channel(endpoint).await?;
    let mut members = ClusterClient::new(channel)
        .member_list(MemberListRequest {})
        .await?
        .into_inner()
        .members;
    members.sort_by_key(|member| member.id);
    Ok(members)
}

async fn member_list(endpoint: &str) -> Vec<Member> {
    try_member_list(endpoint).await.expect("member list")
}

/// (id, is_learner) of every member, by id.
fn shape(members: &[Member]) -> Vec<(u64, bool)> {
    let mut shape: Vec<(u64, bool)> = members.iter().map(|m| (m.id, m.is_learner)).collect();
    shape.sort_unstable();
    shape
}

/// Waits until `endpoint` (which may be starting) lists exactly the members
/// in `expected`.
async fn wait_for_list(endpoint: &str, expected: &[(u64, bool)]) -> Vec<Member> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = try_member_list(endpoint).await;
        if let Ok(members) = &listed {
            if shape(members) == expected {
                return members.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{endpoint} lists {:?}, expected {expected:?}",
            listed.map(|members| shape(&members))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `key`'s value in the member's own store; `None` also while it starts.
async fn local_value(endpoint: &str, key: &str) -> Option<Vec<u8>> {
    let response = common::range(endpoint, key, "", true).await.ok()?;
    response.kvs.first().map(|kv| kv.value.clone())
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, tonic::Status>, code: Code, message: &str) {
    let status = result.expect_err("the change must be refused");
    assert_eq!((status.code(), status.message()), (code, message));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn learner_added_promote_refused_and_voter_removed_on_every_member() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(None).await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let original = member_list(&cluster.endpoint(leader)).await;
    assert_eq!(original.len(), 3);

    let learner_url = "http://127.0.0.1:1".to_string();
    let add = MemberAddRequest {
        peer_ur_ls: vec![learner_url.clone()],
        is_learner: true,
    };
    let added = client(&cluster.endpoint(follower))
        .await
        .member_add(add.clone())
        .await
        .expect("member add on a follower")
        .into_inner();
    let learner = added.member.expect("the added member");
    assert!(learner.is_learner);
    assert_eq!(learner.peer_ur_ls, [learner_url]);
    assert_eq!(added.members.len(), 4, "the answer lists the new member");
    let follower_list = member_list(&cluster.endpoint(follower)).await;
    assert!(
        follower_list.iter().any(|member| member.id == learner.id),
        "the follower answered before its own list had the learner: {follower_list:?}"
    );

    let mut expected = shape(&original);
    expected.push((learner.id, true));
    expected.sort_unstable();
    for index in 0..3 {
        let members = wait_for_list(&cluster.endpoint(index), &expected).await;
        let listed = members.iter().find(|m| m.id == learner.id).unwrap();
        assert_eq!(listed.peer_ur_ls, learner.peer_ur_ls);
        assert_eq!(listed.name, "", "a member that never started has no name");
    }

    // The list survives a restart.
    assert!(cluster.terminate(follower).success());
    cluster.start_member(follower);
    wait_for_list(&cluster.endpoint(follower), &expected).await;

    let leader_endpoint = cluster.endpoint(leader);
    let leader_client = || client(&leader_endpoint);
    assert_refused(
        leader_client().await.member_add(add).await,
        Code::FailedPrecondition,
        "etcdserver: Peer URLs already exists",
    );
    assert_refused(
        leader_client()
            .await
            .member_add(MemberAddRequest {
                peer_ur_ls: vec!["http://127.0.0.1:1".into(), "http://127.0.0.1:2".into()],
                is_learner: false,
            })
            .await,
        Code::FailedPrecondition,
        "etcdserver: Peer URLs already exists",
    );
    assert_refused(
        leader_client()
            .await
            .member_promote(MemberPromoteRequest { id: original[0].id })
            .await,
        Code::FailedPrecondition,
        "etcdserver: can only promote a learner member",
    );
    assert_refused(
        leader_client()
            .await
            .member_remove(MemberRemoveRequest { id: 0x5eed })
            .await,
        Code::NotFound,
        "etcdserver: member not found",
    );

    let removed = leader_client()
        .await
        .member_remove(MemberRemoveRequest { id: learner.id })
        .await
        .expect("remove the learner")
        .into_inner();
    assert_eq!(shape(&removed.members), shape(&original));

    let voter_id = member_list(&cluster.endpoint(other))
        .await
        .into_iter()
        .find(|m| m.client_ur_ls.contains(&cluster.endpoint(other)))
        .expect("the member lists itself")
        .id;
    leader_client()
        .await
        .member_remove(MemberRemoveRequest { id: voter_id })
        .await
        .expect("remove a voter");
    let remaining: Vec<(u64, bool)> = shape(&original)
        .into_iter()
        .filter(|(id, _)| *id != voter_id)
        .collect();
    for index in [leader, follower] {
        wait_for_list(&cluster.endpoint(index), &remaining).await;
    }
    let endpoints = [cluster.endpoint(leader), cluster.endpoint(follower)];
    common::put_until_acked(&endpoints, "after-removal", "v").await;
    assert_eq!(
        common::get(&cluster.endpoint(follower), "after-removal")
            .await
            .as_deref(),
        Some("v")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_joins_as_learner_is_promoted_and_an_original_member_leaves() {
    let mut cluster = Cluster::start(3, &[]);
    let leader = cluster.wait_for_leader(None).await;
    for number in 0..20 {
        common::put_until_acked(&cluster.endpoints(), &format!("before/{number:02}"), "v").await;
    }
    let (joiner, peer_url) = cluster.add_joining_member();
    let leader_endpoint = cluster.endpoint(leader);
    let added = client(&leader_endpoint)
        .await
        .member_add(MemberAddRequest {
            peer_ur_ls: vec![peer_url],
            is_learner: true,
        })
        .await
        .expect("member add")
        .into_inner()
        .member
        .expect("the added member");
    cluster.start_member(joiner);

    // The learner catches up from the leader's log.
    let deadline = Instant::now() + Duration::from_secs(30);
    while local_value(&cluster.endpoint(joiner), "before/19")
        .await
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "the learner never received the data; log:\n{}",
            cluster.log(joiner)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let promoted = client(&leader_endpoint)
        .await
        .member_promote(MemberPromoteRequest { id: added.id })
        .await
        .expect("promote the caught-up learner")
        .into_inner();
    assert!(promoted
        .members
        .iter()
        .any(|m| m.id == added.id && !m.is_learner));

    let leaving = (leader + 1) % 3;
    let leaving_id = member_list(&cluster.endpoint(leaving))
        .await
        .into_iter()
        .find(|m| m.client_ur_ls.contains(&cluster.endpoint(leaving)))
        .expect("the member lists itself")
        .id;
    let remaining = client(&leader_endpoint)
        .await
        .member_remove(MemberRemoveRequest { id: leaving_id })
        .await
        .expect("remove an original member")
        .into_inner()
        .members;
    cluster.kill(leaving);
    let expected = shape(&remaining);
    assert_eq!(expected.len(), 3);
    assert!(expected.iter().all(|(_, learner)| !learner));
    let staying: Vec<usize> = (0..4).filter(|&index| index != leaving).collect();
    for &index in &staying {
        wait_for_list(&cluster.endpoint(index), &expected).await;
    }
    let endpoints: Vec<String> = staying.iter().map(|&i| cluster.endpoint(i)).collect();
    common::put_until_acked(&endpoints, "after/joined", "v").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while local_value(&cluster.endpoint(joiner), "after/joined")
        .await
        .is_none()
    {
        assert!(Instant::now() < deadline, "the new voter misses a write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// etcd reads `--initial-cluster` only on a member's first start; a member
/// restarted on its data with another list (here one naming a member that
/// was never added) stays in its cluster and keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_restarted_with_another_initial_cluster_stays_in_its_cluster() {
    let mut cluster = Cluster::start(3, &[]);
    let endpoints = cluster.endpoints();
    common::put_until_acked(&endpoints, "before", "1").await;
    assert!(cluster.terminate(0).success());
    cluster.add_joining_member();
    cluster.start_member(0);
    let restarted = [cluster.endpoint(0)];
    common::put_until_acked(&restarted, "after", "2").await;
    for key in ["before", "after"] {
        let value = common::range(&restarted[0], key, "", false)
            .await
            .expect("a linearizable read through the restarted member")
            .kvs
            .first()
            .map(|kv| kv.value.clone());
        assert!(value.is_some(), "{key} is missing on the restarted member");
    }
}
