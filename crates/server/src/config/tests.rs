use std::path::Path;

use clap::Parser;

use super::*;

fn parse(flags: &[&str]) -> Result<ServeConfig, ConfigError> {
    let args = std::iter::once("serve").chain(flags.iter().copied());
    ServeArgs::try_parse_from(args)
        .expect("flags parse")
        .validate()
}

fn urls(texts: &[&str]) -> Vec<Url> {
    texts.iter().map(|text| Url::parse(text).unwrap()).collect()
}

const THREE_MEMBERS: &str =
    "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380,n3=http://10.0.0.3:2380";

fn member_of_three(name: &str, peer_url: &str) -> ServeConfig {
    parse(&[
        "--name",
        name,
        "--initial-advertise-peer-urls",
        peer_url,
        "--initial-cluster",
        THREE_MEMBERS,
        "--initial-cluster-token",
        "prod-1",
    ])
    .unwrap()
}

#[test]
fn defaults_match_etcd() {
    let config = parse(&[]).unwrap();
    assert_eq!(config.name(), "default");
    assert_eq!(config.data_dir(), Path::new("default.etcd"));
    assert_eq!(
        config.listen_client_urls(),
        urls(&["http://localhost:2379"])
    );
    assert_eq!(
        config.advertise_client_urls(),
        urls(&["http://localhost:2379"])
    );
    assert_eq!(config.listen_peer_urls(), urls(&["http://localhost:2380"]));
    assert_eq!(
        config.initial_advertise_peer_urls(),
        urls(&["http://localhost:2380"])
    );
    assert_eq!(
        config.initial_cluster(),
        [InitialMember {
            name: "default".to_owned(),
            peer_urls: urls(&["http://localhost:2380"]),
            id: 0x8e9e_05c5_2164_694d,
        }]
    );
    assert_eq!(config.initial_cluster_state(), ClusterState::New);
    assert_eq!(config.initial_cluster_token(), "etcd-cluster");
    assert_eq!(config.heartbeat_interval_ms(), 100);
    assert_eq!(config.election_timeout_ms(), 1000);
    assert_eq!(config.tick_interval(), Duration::from_millis(100));
    assert_eq!(config.election_ticks(), 10);
    assert_eq!(config.snapshot_entries(), 100_000);
    assert_eq!(config.request_bytes_max(), 1_572_864);
    assert_eq!(config.txn_ops_max(), 128);
    assert_eq!(config.quota_backend_bytes(), 2 * 1024 * 1024 * 1024);
    assert_eq!(config.log_level(), LogLevel::Info);
    assert_eq!(config.member_id(), 0x8e9e_05c5_2164_694d);
    assert_eq!(config.cluster_id(), 0xcdf8_1819_4e3a_8c32);
}

#[test]
fn name_sets_the_data_dir_and_the_initial_cluster() {
    let config = parse(&["--name", "n1"]).unwrap();
    assert_eq!(config.data_dir(), Path::new("n1.etcd"));
    assert_eq!(config.initial_cluster().len(), 1);
    assert_eq!(config.initial_cluster()[0].name, "n1");
    assert_eq!(
        config.initial_cluster()[0].peer_urls,
        urls(&["http://localhost:2380"])
    );
}

#[test]
fn joining_needs_the_members_already_there() {
    let error = parse(&["--initial-cluster-state", "existing"]).unwrap_err();
    assert!(
        matches!(error, ConfigError::JoinWithoutMembers { .. }),
        "{error}"
    );
}

#[test]
fn a_joining_member_takes_the_cluster_id_of_the_others() {
    let cluster = "a=http://10.0.0.1:2380,b=http://10.0.0.2:2380,c=http://10.0.0.3:2380";
    let founder = parse(&[
        "--name",
        "a",
        "--initial-advertise-peer-urls",
        "http://10.0.0.1:2380",
        "--initial-cluster",
        cluster,
    ])
    .unwrap();
    let joiner = parse(&[
        "--name",
        "d",
        "--initial-advertise-peer-urls",
        "http://10.0.0.4:2380",
        "--initial-cluster",
        &format!("{cluster},d=http://10.0.0.4:2380"),
        "--initial-cluster-state",
        "existing",
    ])
    .unwrap();
    assert_eq!(joiner.cluster_id(), founder.cluster_id());
}

#[test]
fn explicit_values_override_defaults() {
    let config = parse(&[
        "--data-dir",
        "/var/lib/raftkv",
        "--listen-client-urls",
        "http://127.0.0.1:3379,http://[::1]:3379",
        "--advertise-client-urls",
        "http://db.example:3379",
        "--initial-cluster-state",
        "existing",
        "--initial-cluster",
        "default=http://localhost:2380,other=http://10.0.0.2:2380",
        "--heartbeat-interval",
        "50",
        "--election-timeout",
        "500",
        "--snapshot-count",
        "10",
        "--max-request-bytes",
        "1024",
        "--max-txn-ops",
        "4",
        "--quota-backend-bytes",
        "4096",
        "--log-level",
        "debug",
    ])
    .unwrap();
    assert_eq!(config.data_dir(), Path::new("/var/lib/raftkv"));
    assert_eq!(
        config.listen_client_urls(),
        urls(&["http://127.0.0.1:3379", "http://[::1]:3379"])
    );
    assert_eq!(
        config.advertise_client_urls(),
        urls(&["http://db.example:3379"])
    );
    assert_eq!(config.initial_cluster_state(), ClusterState::Existing);
    assert_eq!(config.election_ticks(), 10);
    assert_eq!(config.snapshot_entries(), 10);
    assert_eq!(config.request_bytes_max(), 1024);
    assert_eq!(config.txn_ops_max(), 4);
    assert_eq!(config.quota_backend_bytes(), 4096);
    assert_eq!(config.log_level(), LogLevel::Debug);
}

#[test]
fn zero_snapshot_count_means_the_default() {
    let config = parse(&["--snapshot-count", "0"]).unwrap();
    assert_eq!(config.snapshot_entries(), DEFAULT_SNAPSHOT_ENTRIES);
}

#[test]
fn every_member_derives_the_same_ids() {
    let n1 = member_of_three("n1", "http://10.0.0.1:2380");
    let n2 = member_of_three("n2", "http://10.0.0.2:2380");
    let n3 = member_of_three("n3", "http://10.0.0.3:2380");
    assert_eq!(n1.initial_cluster(), n2.initial_cluster());
    assert_eq!(n2.initial_cluster(), n3.initial_cluster());
    assert_eq!(n1.cluster_id(), n2.cluster_id());
    assert_eq!(n2.cluster_id(), n3.cluster_id());
    let ids: Vec<NodeId> = n1
        .initial_cluster()
        .iter()
        .map(|member| member.id)
        .collect();
    assert_eq!(ids, [n1.member_id(), n2.member_id(), n3.member_id()]);
    assert!(ids.iter().all(|&id| id != raft::NO_NODE));
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_ne!(ids[0], ids[2]);
}

#[test]
fn the_token_changes_every_id() {
    let prod = member_of_three("n1", "http://10.0.0.1:2380");
    let other = parse(&[
        "--name",
        "n1",
        "--initial-advertise-peer-urls",
        "http://10.0.0.1:2380",
        "--initial-cluster",
        THREE_MEMBERS,
        "--initial-cluster-token",
        "prod-2",
    ])
    .unwrap();
    assert_ne!(prod.member_id(), other.member_id());
    assert_ne!(prod.cluster_id(), other.cluster_id());
}

#[test]
fn a_name_given_twice_has_two_peer_urls() {
    let config = parse(&[
        "--name",
        "n1",
        "--initial-advertise-peer-urls",
        "http://10.0.0.9:2380,http://10.0.0.1:2380",
        "--initial-cluster",
        "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380,n1=http://10.0.0.9:2380",
    ])
    .unwrap();
    let n1 = &config.initial_cluster()[0];
    assert_eq!(
        n1.peer_urls,
        urls(&["http://10.0.0.1:2380", "http://10.0.0.9:2380"])
    );
    assert_eq!(config.initial_cluster().len(), 2);
    assert_eq!(
        n1.id,
        derive_member_id(
            &urls(&["http://10.0.0.9:2380", "http://10.0.0.1:2380"]),
            "etcd-cluster"
        )
    );
}

#[test]
fn raft_config_uses_one_tick_per_heartbeat() {
    let config = parse(&["--heartbeat-interval", "20", "--election-timeout", "300"]).unwrap();
    let raft_config = config.raft_config();
    assert_eq!(raft_config.id, config.member_id());
    assert_eq!(raft_config.heartbeat_ticks, 1);
    assert_eq!(raft_config.election_ticks, 15);
    assert_eq!(raft_config.validate(), Ok(()));
}

#[test]
fn rejects_an_empty_name() {
    assert_eq!(parse(&["--name", ""]), Err(ConfigError::EmptyName));
}

#[test]
fn rejects_an_empty_url_list() {
    assert_eq!(
        parse(&["--listen-peer-urls", ""]),
        Err(ConfigError::EmptyUrlList {
            flag: "listen-peer-urls"
        })
    );
}

#[test]
fn rejects_a_listen_url_that_cannot_be_bound() {
    assert_eq!(
        parse(&["--listen-client-urls", "http://db.example:2379"]),
        Err(ConfigError::BadUrl {
            flag: "listen-client-urls",
            source: UrlError::NotBindable {
                url: "http://db.example:2379".to_owned()
            }
        })
    );
}

#[test]
fn rejects_an_advertised_url_without_port() {
    assert_eq!(
        parse(&[
            "--advertise-client-urls",
            "http://localhost:2379,http://10.0.0.1"
        ]),
        Err(ConfigError::BadUrl {
            flag: "advertise-client-urls",
            source: UrlError::MissingPort {
                url: "http://10.0.0.1".to_owned()
            }
        })
    );
}

#[test]
fn rejects_an_initial_cluster_entry_without_equals() {
    assert_eq!(
        parse(&["--initial-cluster", "default=http://localhost:2380,n2"]),
        Err(ConfigError::InitialClusterEntry {
            entry: "n2".to_owned()
        })
    );
    assert_eq!(
        parse(&["--initial-cluster", "=http://localhost:2380"]),
        Err(ConfigError::InitialClusterEntry {
            entry: "=http://localhost:2380".to_owned()
        })
    );
}

#[test]
fn rejects_a_bad_initial_cluster_url() {
    assert_eq!(
        parse(&[
            "--initial-cluster",
            "default=http://localhost:2380,n2=ftp://h:1"
        ]),
        Err(ConfigError::InitialClusterUrl {
            name: "n2".to_owned(),
            source: UrlError::UnsupportedScheme {
                url: "ftp://h:1".to_owned(),
                scheme: "ftp".to_owned()
            }
        })
    );
}

#[test]
fn rejects_a_peer_url_shared_by_two_members() {
    assert_eq!(
        parse(&[
            "--initial-cluster",
            "default=http://localhost:2380,n2=http://localhost:2380/"
        ]),
        Err(ConfigError::DuplicatePeerUrl {
            url: "http://localhost:2380".to_owned(),
            first: "default".to_owned(),
            second: "n2".to_owned()
        })
    );
}

#[test]
fn rejects_a_name_missing_from_the_initial_cluster() {
    assert_eq!(
        parse(&["--name", "n4", "--initial-cluster", THREE_MEMBERS]),
        Err(ConfigError::NameNotInInitialCluster {
            name: "n4".to_owned(),
            initial_cluster: THREE_MEMBERS.to_owned()
        })
    );
}

#[test]
fn rejects_advertised_peer_urls_that_differ_from_the_cluster_entry() {
    assert_eq!(
        parse(&["--name", "n1", "--initial-cluster", THREE_MEMBERS]),
        Err(ConfigError::AdvertisedPeerUrlsMismatch {
            name: "n1".to_owned(),
            in_cluster: "http://10.0.0.1:2380".to_owned(),
            advertised: "http://localhost:2380".to_owned()
        })
    );
}

#[test]
fn rejects_zero_timeouts() {
    assert_eq!(
        parse(&["--heartbeat-interval", "0"]),
        Err(ConfigError::ZeroHeartbeatInterval)
    );
    assert_eq!(
        parse(&["--election-timeout", "0"]),
        Err(ConfigError::ZeroElectionTimeout)
    );
}

#[test]
fn election_timeout_must_be_at_least_five_heartbeats() {
    assert!(parse(&["--heartbeat-interval", "100", "--election-timeout", "500"]).is_ok());
    assert_eq!(
        parse(&["--heartbeat-interval", "100", "--election-timeout", "499"]),
        Err(ConfigError::ElectionTimeoutTooShort {
            election_timeout_ms: 499,
            heartbeat_interval_ms: 100
        })
    );
}

#[test]
fn election_timeout_must_be_at_most_fifty_seconds() {
    assert!(parse(&["--election-timeout", "50000"]).is_ok());
    assert_eq!(
        parse(&["--election-timeout", "50001"]),
        Err(ConfigError::ElectionTimeoutTooLong {
            election_timeout_ms: 50_001
        })
    );
}

#[test]
fn clap_rejects_values_of_the_wrong_kind() {
    for flags in [
        ["--initial-cluster-state", "bootstrap"],
        ["--log-level", "verbose"],
        ["--heartbeat-interval", "fast"],
        ["--max-txn-ops", "-1"],
    ] {
        let args = std::iter::once("serve").chain(flags);
        assert!(ServeArgs::try_parse_from(args).is_err(), "{flags:?}");
    }
}

#[test]
fn errors_name_the_flag() {
    let error = parse(&["--listen-peer-urls", "http://h"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "--listen-peer-urls: `http://h` has no port; write it as http://host:port"
    );
    let error = parse(&["--election-timeout", "100"]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "--election-timeout (100 ms) must be at least 5 times --heartbeat-interval (100 ms)"
    );
}

#[test]
fn flag_definitions_are_consistent() {
    use clap::CommandFactory;
    ServeArgs::command().debug_assert();
}

#[test]
fn help_shows_etcd_flag_names_and_defaults() {
    use clap::CommandFactory;
    let help = ServeArgs::command().render_long_help().to_string();
    for expected in [
        "--initial-cluster <NAME=URL,...>",
        "--heartbeat-interval <MS>",
        "[default: 1000]",
        "[default: etcd-cluster]",
        "[default: http://localhost:2380]",
        "[possible values: new, existing]",
    ] {
        assert!(
            help.contains(expected),
            "`{expected}` missing from:\n{help}"
        );
    }
}
