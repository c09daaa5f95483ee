use clap::Parser;

use super::*;
use crate::config::ServeArgs;
use crate::proto::raftkvpb::PeerMember;

const THREE_MEMBERS: &str = "m1=http://127.0.0.1:1,m2=http://127.0.0.1:2,m3=http://127.0.0.1:3";

/// Member m3 of the three above, with its data in `data_dir`.
fn member_three(data_dir: &Path, state: &str) -> ServeConfig {
    let data_dir = data_dir.to_str().expect("utf-8 temporary path");
    let flags = [
        "serve",
        "--name",
        "m3",
        "--data-dir",
        data_dir,
        "--initial-advertise-peer-urls",
        "http://127.0.0.1:3",
        "--initial-cluster",
        THREE_MEMBERS,
        "--initial-cluster-state",
        state,
    ];
    ServeArgs::try_parse_from(flags)
        .expect("flags parse")
        .validate()
        .expect("flags are valid")
}

/// The answer of a peer listing `members` as (id, client URLs).
fn answer(cluster_id: u64, members: &[(NodeId, &[&str])]) -> PeerAnswer {
    PeerAnswer {
        peer_url: "http://127.0.0.1:1".to_owned(),
        members: MembersResponse {
            cluster_id,
            member_id: 1,
            members: members
                .iter()
                .map(|(id, client_urls)| PeerMember {
                    id: *id,
                    name: String::new(),
                    peer_urls: Vec::new(),
                    client_urls: client_urls.iter().map(|url| (*url).to_owned()).collect(),
                    is_learner: false,
                })
                .collect(),
        },
    }
}

#[test]
fn a_member_a_peer_lists_as_started_is_refused_with_the_replacement_steps() {
    let dir = tempfile::tempdir().unwrap();
    let config = member_three(dir.path(), "new");
    let me = config.member_id();
    let answers = [answer(
        config.cluster_id(),
        &[(1, &["http://a:2379"]), (me, &["http://c:2379"])],
    )];
    let message = refuse_if_bootstrapped(&config, &answers)
        .unwrap_err()
        .to_string();
    for expected in [
        format!("member {me:x} has already been bootstrapped"),
        format!("`etcdctl member remove {me:x}`"),
        "`etcdctl member add m3 --peer-urls=http://127.0.0.1:3`".to_owned(),
        "--initial-cluster-state existing".to_owned(),
        "http://127.0.0.1:1".to_owned(),
    ] {
        assert!(message.contains(&expected), "{expected:?} in {message}");
    }
}

#[test]
fn a_member_never_started_or_unknown_to_every_peer_may_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = member_three(dir.path(), "new");
    let me = config.member_id();
    let listed_without_urls = answer(config.cluster_id(), &[(1, &["http://a:2379"]), (me, &[])]);
    let not_listed = answer(config.cluster_id(), &[(1, &["http://a:2379"])]);
    assert!(refuse_if_bootstrapped(&config, &[listed_without_urls, not_listed]).is_ok());
    assert!(refuse_if_bootstrapped(&config, &[]).is_ok());
}

/// The answer of the peer at m1 listing `members` as (id, peer URLs,
/// client URLs, learner).
fn answer_with_peer_urls(
    cluster_id: u64,
    members: &[(NodeId, &[&str], &[&str], bool)],
) -> PeerAnswer {
    let owned = |urls: &[&str]| urls.iter().map(|url| (*url).to_owned()).collect();
    PeerAnswer {
        peer_url: "http://127.0.0.1:1".to_owned(),
        members: MembersResponse {
            cluster_id,
            member_id: 1,
            members: members
                .iter()
                .map(|(id, peer_urls, client_urls, is_learner)| PeerMember {
                    id: *id,
                    name: format!("n{id}"),
                    peer_urls: owned(peer_urls),
                    client_urls: owned(client_urls),
                    is_learner: *is_learner,
                })
                .collect(),
        },
    }
}

const ASKED: [&str; 2] = ["http://127.0.0.1:1", "http://127.0.0.1:2"];

fn asked() -> Vec<String> {
    ASKED.iter().map(|url| (*url).to_owned()).collect()
}

#[test]
fn a_joining_member_takes_the_id_its_peer_urls_have_in_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let config = member_three(dir.path(), "existing");
    let fresh = 0x77;
    let other_cluster = answer_with_peer_urls(0xaa, &[(1, &["http://127.0.0.1:9"], &[], false)]);
    let its_cluster = answer_with_peer_urls(
        0xbb,
        &[
            (1, &["http://127.0.0.1:1"], &["http://a:2379"], false),
            (2, &["http://127.0.0.1:2"], &[], true),
            (fresh, &["http://127.0.0.1:3"], &[], false),
        ],
    );
    let joined = find_self(&config, &asked(), &[other_cluster, its_cluster]).unwrap();
    assert_eq!(joined.member_id, fresh);
    assert_ne!(joined.member_id, config.member_id(), "not the derived id");
    assert_eq!(joined.cluster_id, 0xbb);
    let members: Vec<(NodeId, String)> = joined
        .members
        .iter()
        .map(|member| (member.id, member.name.clone()))
        .collect();
    assert_eq!(members, [(1, "n1".to_owned()), (fresh, "m3".to_owned())]);

    let joined_config = config.with_member_id(fresh);
    assert_eq!(joined_config.member_id(), fresh);
    assert_eq!(joined_config.raft_config().id, fresh);
}

#[test]
fn a_joining_member_no_peer_lists_is_told_to_add_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = member_three(dir.path(), "existing");
    let not_listed = answer_with_peer_urls(0xbb, &[(1, &["http://127.0.0.1:1"], &[], false)]);
    let message = find_self(&config, &asked(), &[not_listed])
        .unwrap_err()
        .to_string();
    for expected in [
        "member with peer URLs http://127.0.0.1:3 has not been added to the cluster",
        "`etcdctl member add m3 --peer-urls=http://127.0.0.1:3` first",
        "http://127.0.0.1:1",
    ] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
    let message = find_self(&config, &asked(), &[]).unwrap_err().to_string();
    assert!(
        message.contains(
            "no peer of --initial-cluster (http://127.0.0.1:1,http://127.0.0.1:2) answered"
        ),
        "{message}"
    );
}

#[test]
fn a_joining_member_listed_as_started_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = member_three(dir.path(), "existing");
    let started = answer_with_peer_urls(
        0xbb,
        &[(0x55, &["http://127.0.0.1:3"], &["http://c:2379"], false)],
    );
    let message = find_self(&config, &asked(), &[started])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("member 55 has already been bootstrapped"),
        "{message}"
    );
}

#[test]
fn a_peer_still_listing_the_replaced_member_does_not_refuse_the_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let config = member_three(dir.path(), "existing");
    let stale = answer_with_peer_urls(
        0xbb,
        &[(0x55, &["http://127.0.0.1:3"], &["http://c:2379"], false)],
    );
    let current = answer_with_peer_urls(0xbb, &[(0x77, &["http://127.0.0.1:3"], &[], false)]);
    let joined = find_self(&config, &asked(), &[stale, current]).unwrap();
    assert_eq!(joined.member_id, 0x77);
}

#[test]
fn a_peer_url_that_is_not_a_url_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = member_three(dir.path(), "existing");
    let garbled = answer_with_peer_urls(
        0xbb,
        &[
            (1, &["not a url"], &[], false),
            (0x77, &["http://127.0.0.1:3"], &[], false),
        ],
    );
    let message = find_self(&config, &asked(), &[garbled])
        .unwrap_err()
        .to_string();
    assert!(message.contains("\"not a url\""), "{message}");
}

#[test]
fn a_stored_id_survives_and_a_damaged_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(stored_id(dir.path(), MEMBER_ID_FILE).unwrap(), None);
    save_id(dir.path(), MEMBER_ID_FILE, 0x1234).unwrap();
    save_id(dir.path(), CLUSTER_ID_FILE, 0xdead_beef).unwrap();
    assert_eq!(stored_id(dir.path(), MEMBER_ID_FILE).unwrap(), Some(0x1234));
    assert_eq!(
        stored_id(dir.path(), CLUSTER_ID_FILE).unwrap(),
        Some(0xdead_beef)
    );

    std::fs::write(dir.path().join(CLUSTER_ID_FILE), "not hex").unwrap();
    let message = stored_id(dir.path(), CLUSTER_ID_FILE)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains(CLUSTER_ID_FILE) && message.contains("not hex"),
        "{message}"
    );
}

#[test]
fn only_a_member_with_a_log_counts_as_having_data() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!has_data(dir.path()));
    std::fs::create_dir_all(wal_dir(dir.path())).unwrap();
    assert!(
        !has_data(dir.path()),
        "an empty log directory holds nothing"
    );
    std::fs::write(wal_dir(dir.path()).join("0000000000000001.wal"), b"x").unwrap();
    assert!(has_data(dir.path()));
}

#[tokio::test]
async fn with_no_peer_answering_a_new_member_starts_with_its_derived_ids_and_a_joining_one_refuses()
{
    let dir = tempfile::tempdir().unwrap();
    let config = member_three(dir.path(), "new");
    let prepared = prepare(config.clone()).await.unwrap();
    assert_eq!(prepared, config);

    let joining = member_three(dir.path(), "existing");
    let message = prepare(joining).await.unwrap_err().to_string();
    assert!(message.contains("cannot join: no peer"), "{message}");
}
