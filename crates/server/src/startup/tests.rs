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

#[test]
fn a_joining_member_takes_the_id_of_the_cluster_that_lists_it() {
    let me = 0x33;
    let other_cluster = answer(0xaa, &[(1, &[])]);
    let its_cluster = answer(0xbb, &[(1, &[]), (me, &[])]);
    assert_eq!(
        joined_cluster_id(me, &[other_cluster.clone(), its_cluster]),
        Some(0xbb)
    );
    assert_eq!(joined_cluster_id(me, &[other_cluster]), None);
}

#[test]
fn the_stored_cluster_id_survives_and_a_damaged_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(stored_cluster_id(dir.path()).unwrap(), None);
    save_cluster_id(dir.path(), 0xdead_beef).unwrap();
    assert_eq!(stored_cluster_id(dir.path()).unwrap(), Some(0xdead_beef));

    std::fs::write(dir.path().join(CLUSTER_ID_FILE), "not hex").unwrap();
    let message = stored_cluster_id(dir.path()).unwrap_err().to_string();
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
async fn with_no_peer_answering_a_member_starts_with_its_derived_cluster_id() {
    let dir = tempfile::tempdir().unwrap();
    let config = member_three(dir.path(), "existing");
    let prepared = prepare(config.clone()).await.unwrap();
    assert_eq!(prepared, config);
}
