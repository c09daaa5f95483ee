//! The `etcd-client` crate, a Rust application's view of etcd's v3 API,
//! against real `raftkv serve` processes: every scenario runs on one member
//! and on three (where the client talks to a follower, so each request is
//! forwarded), plus writes and reads spread over all three members. The
//! members run with small `--max-request-bytes` and `--max-txn-ops` so the
//! limits are cheap to hit. Each test takes 1–4 s.

mod common;

use std::time::{Duration, Instant};

use common::Cluster;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, Error, EventType, GetOptions,
    GetResponse, LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions, SortOrder, SortTarget, Txn,
    TxnOp, TxnOpResponse, WatchFilterType, WatchOptions, WatchResponse, WatchStream,
};
use tonic::Code;

const REQUEST_BYTES_MAX: usize = 10_000;
const TXN_OPS_MAX: usize = 3;

/// The most a whole test may take, cluster start included.
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a member may take to catch up with a revision it was told of.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running cluster with a leader, and the member a scenario talks to: a
/// follower when there is one, so every request crosses the cluster.
struct Setup {
    cluster: Cluster,
    leader: usize,
    client: Client,
}

async fn start(size: usize) -> Setup {
    let cluster = Cluster::start(
        size,
        &[
            &format!("--max-request-bytes={REQUEST_BYTES_MAX}"),
            &format!("--max-txn-ops={TXN_OPS_MAX}"),
        ],
    );
    let leader = cluster.wait_for_leader(None).await;
    let talk_to = (leader + 1) % size;
    let client = common::etcd_client(&cluster.endpoint(talk_to)).await;
    // The member answers a linearizable read: it knows the leader.
    common::current_revision(&[cluster.endpoint(talk_to)]).await;
    Setup {
        cluster,
        leader,
        client,
    }
}

/// The gRPC status of a failed call; panics when the call succeeded or
/// failed without one.
fn status_of<T: std::fmt::Debug>(result: Result<T, Error>) -> tonic::Status {
    match result {
        Err(Error::GRpcStatus(status)) => status,
        other => panic!("expected a gRPC error status, got {other:?}"),
    }
}

fn assert_etcd_error<T: std::fmt::Debug>(result: Result<T, Error>, code: Code, message: &str) {
    let status = status_of(result);
    assert_eq!(
        (status.code(), status.message()),
        (code, message),
        "{status:?}"
    );
}

fn keys(response: &GetResponse) -> Vec<&str> {
    response
        .kvs()
        .iter()
        .map(|kv| kv.key_str().expect("UTF-8 key"))
        .collect()
}

fn values(response: &GetResponse) -> Vec<&str> {
    response
        .kvs()
        .iter()
        .map(|kv| kv.value_str().expect("UTF-8 value"))
        .collect()
}

fn revision_of(header: Option<&etcd_client::ResponseHeader>) -> i64 {
    header.expect("a response header").revision()
}

/// Runs a scenario on a fresh one-member and a fresh three-member cluster.
macro_rules! on_one_and_three_members {
    ($($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_one_member() {
                    super::run(1, super::$scenario).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_three_members() {
                    super::run(3, super::$scenario).await;
                }
            }
        )+
    };
}

async fn run<F, Fut>(size: usize, scenario: F)
where
    F: FnOnce(Setup) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let within = tokio::time::timeout(TEST_TIMEOUT, async {
        let setup = start(size).await;
        scenario(setup).await;
    })
    .await;
    assert!(within.is_ok(), "the test took longer than {TEST_TIMEOUT:?}");
}

on_one_and_three_members!(
    put_get_and_delete_with_options,
    txn_compares_and_nested_ops,
    compaction_and_revision_errors,
    request_errors,
    members_status_and_hash_kv,
    watch_events_cancel_and_compaction,
    leases,
);

async fn put_get_and_delete_with_options(mut setup: Setup) {
    let kv = &mut setup.client;
    let first = kv.put("a", "1", None).await.expect("put a");
    let base = revision_of(first.header());
    for (key, value) in [("b", "2"), ("c", "3"), ("foo/1", "x"), ("foo/2", "y")] {
        kv.put(key, value, None).await.expect("put");
    }
    let replaced = kv
        .put("a", "11", Some(PutOptions::new().with_prev_key()))
        .await
        .expect("put a with prev_kv");
    assert_eq!(revision_of(replaced.header()), base + 5);
    let previous = replaced.prev_key().expect("the previous a");
    assert_eq!(
        (
            previous.value(),
            previous.version(),
            previous.mod_revision()
        ),
        (&b"1"[..], 1, base)
    );

    let a = kv.get("a", None).await.expect("get a");
    let a_kv = &a.kvs()[0];
    assert_eq!(values(&a), ["11"]);
    assert_eq!(
        (a_kv.version(), a_kv.create_revision(), a_kv.mod_revision()),
        (2, base, base + 5)
    );
    let old = kv
        .get("a", Some(GetOptions::new().with_revision(base)))
        .await
        .expect("get a at its first revision");
    assert_eq!(values(&old), ["1"]);

    let prefix = kv
        .get("foo/", Some(GetOptions::new().with_prefix()))
        .await
        .expect("get prefix");
    assert_eq!(keys(&prefix), ["foo/1", "foo/2"]);
    let limited = kv
        .get("foo/", Some(GetOptions::new().with_prefix().with_limit(1)))
        .await
        .expect("get prefix with limit");
    assert_eq!(
        (keys(&limited), limited.more(), limited.count()),
        (vec!["foo/1"], true, 2)
    );
    let by_value = kv
        .get(
            "",
            Some(
                GetOptions::new()
                    .with_all_keys()
                    .with_sort(SortTarget::Value, SortOrder::Descend),
            ),
        )
        .await
        .expect("get sorted by value");
    assert_eq!(keys(&by_value), ["foo/2", "foo/1", "c", "b", "a"]);
    let by_mod = kv
        .get(
            "b",
            Some(
                GetOptions::new()
                    .with_from_key()
                    .with_sort(SortTarget::Mod, SortOrder::Descend),
            ),
        )
        .await
        .expect("get from b sorted by mod revision");
    assert_eq!(keys(&by_mod), ["foo/2", "foo/1", "c", "b"]);
    let keys_only = kv
        .get("", Some(GetOptions::new().with_all_keys().with_keys_only()))
        .await
        .expect("get keys only");
    assert_eq!(keys(&keys_only), ["a", "b", "c", "foo/1", "foo/2"]);
    assert!(keys_only.kvs().iter().all(|kv| kv.value().is_empty()));
    let count_only = kv
        .get(
            "",
            Some(GetOptions::new().with_all_keys().with_count_only()),
        )
        .await
        .expect("get count only");
    assert_eq!((count_only.kvs().len(), count_only.count()), (0, 5));

    let deleted = kv
        .delete("b", Some(DeleteOptions::new().with_prev_key()))
        .await
        .expect("delete b");
    assert_eq!(deleted.deleted(), 1);
    assert_eq!(deleted.prev_kvs()[0].value(), b"2");
    let by_prefix = kv
        .delete("foo/", Some(DeleteOptions::new().with_prefix()))
        .await
        .expect("delete prefix");
    assert_eq!(
        (by_prefix.deleted(), by_prefix.prev_kvs().len()),
        (2, 0),
        "no prev_kvs unless asked for"
    );
    let nothing = kv.delete("missing", None).await.expect("delete missing");
    assert_eq!(nothing.deleted(), 0);
    assert_eq!(
        revision_of(nothing.header()),
        base + 7,
        "deleting nothing makes no revision"
    );
    let left = kv
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("get all");
    assert_eq!(keys(&left), ["a", "c"]);
}

async fn txn_compares_and_nested_ops(mut setup: Setup) {
    let kv = &mut setup.client;
    let a = kv.put("a", "1", None).await.expect("put a");
    let a_revision = revision_of(a.header());
    kv.put("b", "2", None).await.expect("put b");
    kv.put("b", "22", None).await.expect("put b again");
    let (b_create, b_mod) = (a_revision + 1, a_revision + 2);

    let compares = [
        (Compare::value("a", CompareOp::Equal, "1"), true),
        (Compare::value("a", CompareOp::NotEqual, "1"), false),
        (Compare::value("a", CompareOp::Greater, "0"), true),
        (Compare::value("a", CompareOp::Less, "0"), false),
        (Compare::version("b", CompareOp::Equal, 2), true),
        (Compare::version("b", CompareOp::Greater, 2), false),
        (Compare::version("b", CompareOp::Less, 3), true),
        (
            Compare::create_revision("b", CompareOp::Equal, b_create),
            true,
        ),
        (
            Compare::create_revision("b", CompareOp::Less, b_create),
            false,
        ),
        (Compare::mod_revision("b", CompareOp::Equal, b_mod), true),
        (
            Compare::mod_revision("b", CompareOp::Greater, b_create),
            true,
        ),
        (
            Compare::mod_revision("b", CompareOp::NotEqual, b_mod),
            false,
        ),
        (Compare::version("missing", CompareOp::Equal, 0), true),
        (
            Compare::create_revision("missing", CompareOp::Greater, 0),
            false,
        ),
    ];
    for (compare, expected) in compares {
        let description = format!("{compare:?}");
        let response = kv
            .txn(Txn::new().when([compare]).and_then([TxnOp::get("a", None)]))
            .await
            .expect("txn with one compare");
        assert_eq!(response.succeeded(), expected, "{description}");
        assert_eq!(
            response.op_responses().len(),
            usize::from(expected),
            "{description}: the branch taken ran"
        );
    }

    // A nested txn may use only what its parent's operation count leaves of
    // `--max-txn-ops`, as in etcd: three outer operations leave none.
    let nested_delete = || {
        Txn::new()
            .when([Compare::value("a", CompareOp::Equal, "nope")])
            .and_then([TxnOp::put("never", "1", None)])
            .or_else([TxnOp::delete(
                "a",
                Some(DeleteOptions::new().with_prev_key()),
            )])
    };
    assert_etcd_error(
        kv.txn(Txn::new().and_then([
            TxnOp::put("c", "3", None),
            TxnOp::get("a", None),
            TxnOp::txn(nested_delete()),
        ]))
        .await,
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    // Nested compares see the store as the outer txn found it.
    let outer = Txn::new()
        .when([
            Compare::value("a", CompareOp::Equal, "1"),
            Compare::version("b", CompareOp::Equal, 2),
        ])
        .and_then([TxnOp::put("c", "3", None), TxnOp::txn(nested_delete())])
        .or_else([TxnOp::put("failed", "1", None)]);
    let response = kv.txn(outer).await.expect("nested txn");
    assert!(response.succeeded());
    assert_eq!(revision_of(response.header()), b_mod + 1);
    let responses = response.op_responses();
    assert_eq!(responses.len(), 2);
    assert!(matches!(&responses[0], TxnOpResponse::Put(_)));
    let TxnOpResponse::Txn(inner) = &responses[1] else {
        panic!("expected a txn response, got {:?}", responses[1]);
    };
    assert!(!inner.succeeded());
    match inner.op_responses().as_slice() {
        [TxnOpResponse::Delete(delete)] => {
            assert_eq!(delete.deleted(), 1);
            assert_eq!(delete.prev_kvs()[0].value(), b"1");
        }
        other => panic!("expected one delete, got {other:?}"),
    }

    let all = kv
        .get("", Some(GetOptions::new().with_all_keys()))
        .await
        .expect("get all");
    assert_eq!(keys(&all), ["b", "c"]);
    let failed = kv
        .txn(
            Txn::new()
                .when([Compare::value("a", CompareOp::Equal, "1")])
                .or_else([TxnOp::put("failed", "1", None)]),
        )
        .await
        .expect("txn taking the failure branch");
    assert!(!failed.succeeded());
    assert_eq!(revision_of(failed.header()), b_mod + 2);
}

async fn compaction_and_revision_errors(mut setup: Setup) {
    let kv = &mut setup.client;
    let first = kv.put("k", "1", None).await.expect("put k");
    let base = revision_of(first.header());
    for value in ["2", "3", "4"] {
        kv.put("k", value, None).await.expect("put k");
    }
    kv.compact(base + 1, None).await.expect("compact");
    assert_etcd_error(
        kv.get("k", Some(GetOptions::new().with_revision(base)))
            .await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    let kept = kv
        .get("k", Some(GetOptions::new().with_revision(base + 1)))
        .await
        .expect("get at the compacted revision");
    assert_eq!(values(&kept), ["2"]);
    assert_etcd_error(
        kv.compact(base + 1, None).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    assert_etcd_error(
        kv.compact(base + 99, None).await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
    assert_etcd_error(
        kv.get("k", Some(GetOptions::new().with_revision(base + 99)))
            .await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );
    kv.compact(base + 2, Some(CompactionOptions::new().with_physical()))
        .await
        .expect("physical compaction");
    let now = kv.get("k", None).await.expect("get k");
    assert_eq!(values(&now), ["4"]);
}

async fn request_errors(mut setup: Setup) {
    let kv = &mut setup.client;
    let empty_key = "etcdserver: key is not provided";
    assert_etcd_error(
        kv.put("", "v", None).await,
        Code::InvalidArgument,
        empty_key,
    );
    assert_etcd_error(kv.get("", None).await, Code::InvalidArgument, empty_key);
    assert_etcd_error(kv.delete("", None).await, Code::InvalidArgument, empty_key);
    assert_etcd_error(
        kv.put("large", vec![b'x'; REQUEST_BYTES_MAX + 2_000], None)
            .await,
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
    // Beyond gRPC's allowance over the limit the message is not even decoded.
    let refused = status_of(
        kv.put("huge", vec![b'x'; REQUEST_BYTES_MAX + 600 * 1024], None)
            .await,
    );
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .starts_with("grpc: received message larger than max"),
        "{refused:?}"
    );
    let too_many: Vec<TxnOp> = (0..=TXN_OPS_MAX)
        .map(|number| TxnOp::put(format!("op{number}"), "v", None))
        .collect();
    assert_etcd_error(
        kv.txn(Txn::new().and_then(too_many)).await,
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    let at_most: Vec<TxnOp> = (0..TXN_OPS_MAX)
        .map(|number| TxnOp::put(format!("op{number}"), "v", None))
        .collect();
    kv.txn(Txn::new().and_then(at_most))
        .await
        .expect("a txn at the operation limit");
    kv.put("fits", vec![b'x'; REQUEST_BYTES_MAX / 2], None)
        .await
        .expect("a put well under the size limit");
    let stored = kv
        .get("", Some(GetOptions::new().with_all_keys().with_keys_only()))
        .await
        .expect("get all keys");
    assert_eq!(keys(&stored), ["fits", "op0", "op1", "op2"]);
}

/// Waits until member `index` has applied `revision` (a serializable read
/// there reports it).
async fn wait_for_revision(cluster: &Cluster, index: usize, revision: i64) {
    let deadline = Instant::now() + CATCH_UP_TIMEOUT;
    let mut client = common::etcd_client(&cluster.endpoint(index)).await;
    loop {
        let seen = client
            .get("\0", Some(GetOptions::new().with_serializable()))
            .await
            .ok()
            .map(|response| revision_of(response.header()));
        if seen.is_some_and(|seen| seen >= revision) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "member {index} did not reach revision {revision} within {CATCH_UP_TIMEOUT:?} \
             (last seen {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn members_status_and_hash_kv(mut setup: Setup) {
    let cluster = &setup.cluster;
    let size = cluster.size();
    let listed = setup.client.member_list().await.expect("member list");
    let mut names: Vec<&str> = listed.members().iter().map(|m| m.name()).collect();
    names.sort_unstable();
    let expected_names: Vec<String> = (1..=size).map(|number| format!("m{number}")).collect();
    assert_eq!(names, expected_names);
    assert!(
        listed.members().iter().all(|m| !m.peer_urls().is_empty()),
        "{listed:?}"
    );
    assert!(listed.members().iter().all(|m| !m.is_learner()));
    let mut ids: Vec<u64> = listed.members().iter().map(|m| m.id()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), size, "member ids are distinct: {ids:?}");

    let mut last = None;
    for number in 0..5 {
        let put = setup
            .client
            .put(format!("h{number}"), "v", None)
            .await
            .expect("put");
        last = Some(revision_of(put.header()));
    }
    let revision = last.expect("five puts");
    let mut hashes = Vec::new();
    for index in 0..size {
        wait_for_revision(cluster, index, revision).await;
        let mut member = common::etcd_client(&cluster.endpoint(index)).await;
        let status = member.status().await.expect("status");
        let member_id = status.header().expect("status header").member_id();
        assert!(ids.contains(&member_id), "{status:?}");
        assert_eq!(
            status.leader() == member_id,
            index == setup.leader,
            "member {index} knows whether it leads: {status:?}"
        );
        assert!(ids.contains(&status.leader()), "{status:?}");
        assert!(
            status.raft_term() >= 1 && status.raft_index() >= 1,
            "{status:?}"
        );
        assert!(!status.version().is_empty(), "{status:?}");
        let hash = member.hash_kv(revision).await.expect("hash_kv");
        hashes.push(hash.hash());
        let earlier = member.hash_kv(revision - 1).await.expect("hash_kv");
        assert_ne!(
            earlier.hash(),
            hash.hash(),
            "the hash covers the write at revision {revision}"
        );
    }
    assert!(
        hashes.windows(2).all(|pair| pair[0] == pair[1]),
        "the members' stores differ at revision {revision}: {hashes:?}"
    );
}

/// Writes through each follower; linearizable reads through every member see
/// them at once, serializable reads once the member has caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_followers_and_reads_on_every_member() {
    run(3, |setup| async move {
        let cluster = &setup.cluster;
        let followers: Vec<usize> = (0..3).filter(|&index| index != setup.leader).collect();
        let mut clients = Vec::new();
        for index in 0..3 {
            clients.push(common::etcd_client(&cluster.endpoint(index)).await);
        }
        for &writer in &followers {
            let key = format!("via-m{}", writer + 1);
            let put = clients[writer]
                .put(key.as_str(), "written", None)
                .await
                .unwrap_or_else(|error| panic!("put through follower {writer}: {error}"));
            let revision = revision_of(put.header());
            for (reader, client) in clients.iter_mut().enumerate() {
                let got = client
                    .get(key.as_str(), None)
                    .await
                    .unwrap_or_else(|error| panic!("linearizable get on {reader}: {error}"));
                assert_eq!(values(&got), ["written"], "linearizable read on {reader}");
                assert!(revision_of(got.header()) >= revision);
                wait_for_revision(cluster, reader, revision).await;
                let local = client
                    .get(key.as_str(), Some(GetOptions::new().with_serializable()))
                    .await
                    .unwrap_or_else(|error| panic!("serializable get on {reader}: {error}"));
                assert_eq!(values(&local), ["written"], "serializable read on {reader}");
            }
        }
        let deleted = clients[followers[0]]
            .delete("via-", Some(DeleteOptions::new().with_prefix()))
            .await
            .expect("delete through a follower");
        assert_eq!(deleted.deleted(), 2);
        let gone = clients[followers[1]]
            .get("via-", Some(GetOptions::new().with_prefix()))
            .await
            .expect("linearizable get through the other follower");
        assert!(gone.kvs().is_empty(), "{gone:?}");
    })
    .await;
}

/// Like etcd, every member lists every started member's client URLs (ours
/// learn them when the other members' peer streams introduce themselves, so
/// a member that has not heard from another yet may list it without them:
/// the test waits, within a bound, for the list to fill in).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_list_names_every_members_client_urls() {
    run(3, |mut setup| async move {
        let mut endpoints = setup.cluster.endpoints();
        endpoints.sort_unstable();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let listed = setup.client.member_list().await.expect("member list");
            let mut client_urls: Vec<String> = listed
                .members()
                .iter()
                .flat_map(|m| m.client_urls().to_vec())
                .collect();
            client_urls.sort_unstable();
            if client_urls == endpoints {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "after 10 s the member list still names {client_urls:?}, not {endpoints:?}: {listed:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
    .await;
}

/// The next response on a watch stream, within [`common::CALL_TIMEOUT`].
async fn next_response(stream: &mut WatchStream) -> WatchResponse {
    tokio::time::timeout(common::CALL_TIMEOUT, stream.message())
        .await
        .expect("a watch response in time")
        .expect("the watch stream works")
        .expect("the watch stream stays open")
}

/// (watch id, event type, key, value, previous value) of each event in
/// `responses`.
fn watched(responses: &[WatchResponse]) -> Vec<(i64, EventType, String, String, Option<String>)> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    responses
        .iter()
        .flat_map(|response| {
            response.events().iter().map(|event| {
                let kv = event.kv().expect("an event names its key");
                (
                    response.watch_id(),
                    event.event_type(),
                    text(kv.key()),
                    text(kv.value()),
                    event.prev_kv().map(|prev| text(prev.value())),
                )
            })
        })
        .collect()
}

async fn watch_events_cancel_and_compaction(mut setup: Setup) {
    let client = &mut setup.client;
    let first = client.put("w/a", "0", None).await.expect("put w/a");
    let base = revision_of(first.header());
    let mut stream = client
        .watch(
            "w/",
            Some(WatchOptions::new().with_prefix().with_prev_key()),
        )
        .await
        .expect("watch w/");
    let created = next_response(&mut stream).await;
    assert!(created.created() && !created.canceled(), "{created:?}");
    assert_eq!(revision_of(created.header()), base);
    let prefix_id = created.watch_id();
    stream
        .watch(
            "w/a",
            Some(
                WatchOptions::new()
                    .with_start_revision(base)
                    .with_watch_id(7)
                    .with_filters([WatchFilterType::NoDelete]),
            ),
        )
        .await
        .expect("watch w/a");
    let created = next_response(&mut stream).await;
    assert_eq!((created.created(), created.watch_id()), (true, 7));

    client.put("w/a", "1", None).await.expect("put");
    client.put("x", "outside", None).await.expect("put");
    client.delete("w/a", None).await.expect("delete");
    client.put("w/b", "2", None).await.expect("put");
    let mut responses = Vec::new();
    while watched(&responses).len() < 5 {
        responses.push(next_response(&mut stream).await);
    }
    let seen = watched(&responses);
    let of = |id| -> Vec<_> { seen.iter().filter(|event| event.0 == id).cloned().collect() };
    let put = |id, key: &str, value: &str, prev: Option<&str>| {
        (
            id,
            EventType::Put,
            key.to_owned(),
            value.to_owned(),
            prev.map(str::to_owned),
        )
    };
    // Watcher 7 replays w/a from `base`, without deletes or previous values.
    assert_eq!(of(7), [put(7, "w/a", "0", None), put(7, "w/a", "1", None)]);
    let deleted = (
        prefix_id,
        EventType::Delete,
        "w/a".to_owned(),
        String::new(),
        Some("1".to_owned()),
    );
    assert_eq!(
        of(prefix_id),
        [
            put(prefix_id, "w/a", "1", Some("0")),
            deleted,
            put(prefix_id, "w/b", "2", None)
        ]
    );

    stream.cancel(prefix_id).await.expect("cancel");
    let canceled = next_response(&mut stream).await;
    assert_eq!(
        (canceled.canceled(), canceled.watch_id()),
        (true, prefix_id)
    );
    client.put("w/a", "3", None).await.expect("put");
    let after = next_response(&mut stream).await;
    assert_eq!(watched(&[after]), [put(7, "w/a", "3", None)]);
    stream.request_progress().await.expect("progress request");
    let progress = next_response(&mut stream).await;
    assert!(
        progress.events().is_empty() && !progress.created(),
        "{progress:?}"
    );
    assert_eq!(progress.watch_id(), -1);
    assert_eq!(revision_of(progress.header()), base + 5);

    // Larger than --max-request-bytes in all: a fragmenting watcher gets it.
    let value = "v".repeat(REQUEST_BYTES_MAX / 10);
    let bulk_start = base + 6;
    for number in 0..20 {
        client
            .put(format!("bulk/{number:02}"), value.clone(), None)
            .await
            .expect("put");
    }
    let mut bulk = client
        .watch(
            "bulk/",
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(bulk_start)
                    .with_fragment(),
            ),
        )
        .await
        .expect("watch bulk/");
    let mut responses = vec![next_response(&mut bulk).await];
    while watched(&responses).len() < 20 {
        responses.push(next_response(&mut bulk).await);
    }
    let keys: Vec<String> = watched(&responses)
        .into_iter()
        .map(|(_, _, key, ..)| key)
        .collect();
    let expected: Vec<String> = (0..20).map(|number| format!("bulk/{number:02}")).collect();
    assert_eq!(keys, expected);

    client.compact(bulk_start, None).await.expect("compact");
    let mut late = client
        .watch("w/a", Some(WatchOptions::new().with_start_revision(base)))
        .await
        .expect("watch a compacted revision");
    let created = next_response(&mut late).await;
    assert!(created.created());
    let canceled = next_response(&mut late).await;
    assert!(canceled.canceled(), "{canceled:?}");
    assert_eq!(canceled.compact_revision(), bulk_start);
}

/// Grant, attach, keep alive, inspect, list and revoke, as a Rust
/// application drives leases; on three members through a follower, so
/// KeepAlive and TimeToLive are forwarded to the leader.
async fn leases(mut setup: Setup) {
    let client = &mut setup.client;
    let granted = client.lease_grant(30, None).await.expect("grant");
    let id = granted.id();
    assert!(id > 0 && granted.error().is_empty(), "{granted:?}");
    assert_eq!(granted.ttl(), 30);
    let chosen = client
        .lease_grant(40, Some(LeaseGrantOptions::new().with_id(0x1234)))
        .await
        .expect("grant with an id");
    assert_eq!((chosen.id(), chosen.ttl()), (0x1234, 40));
    assert_etcd_error(
        client
            .lease_grant(40, Some(LeaseGrantOptions::new().with_id(0x1234)))
            .await,
        Code::FailedPrecondition,
        "etcdserver: lease already exists",
    );
    client
        .put("leased", "v", Some(PutOptions::new().with_lease(id)))
        .await
        .expect("put with a lease");
    let got = client.get("leased", None).await.expect("get");
    assert_eq!(got.kvs()[0].lease(), id);
    assert_etcd_error(
        client
            .put("orphan", "v", Some(PutOptions::new().with_lease(0x999)))
            .await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );

    let (mut keeper, mut answers) = client.lease_keep_alive(id).await.expect("keepalive");
    for _ in 0..2 {
        keeper.keep_alive().await.expect("send a keepalive");
        let answer = answers
            .message()
            .await
            .expect("a keepalive answer")
            .expect("the stream stays open");
        assert_eq!((answer.id(), answer.ttl()), (id, 30));
    }
    let lived = client
        .lease_time_to_live(id, Some(LeaseTimeToLiveOptions::new().with_keys()))
        .await
        .expect("time to live");
    assert_eq!((lived.id(), lived.granted_ttl()), (id, 30));
    assert!((25..=30).contains(&lived.ttl()), "{lived:?}");
    assert_eq!(lived.keys(), [b"leased".to_vec()]);
    let listed = client.leases().await.expect("list leases");
    let mut ids: Vec<i64> = listed.leases().iter().map(|lease| lease.id()).collect();
    ids.sort_unstable();
    let mut expected = vec![id, 0x1234];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    let mut watch = client.watch("leased", None).await.expect("watch");
    assert!(next_response(&mut watch).await.created());
    client.lease_revoke(id).await.expect("revoke");
    assert!(client
        .get("leased", None)
        .await
        .expect("get")
        .kvs()
        .is_empty());
    // The revoke's delete reaches watchers like any other.
    let deleted = next_response(&mut watch).await;
    let events: Vec<(EventType, &[u8])> = deleted
        .events()
        .iter()
        .map(|event| (event.event_type(), event.kv().expect("a key").key()))
        .collect();
    assert_eq!(events, [(EventType::Delete, &b"leased"[..])]);
    let gone = client
        .lease_time_to_live(id, None)
        .await
        .expect("time to live of a revoked lease");
    assert_eq!(gone.ttl(), -1);
    keeper.keep_alive().await.expect("send a keepalive");
    let answer = answers.message().await.expect("a keepalive answer");
    assert_eq!(answer.map(|answer| answer.ttl()), Some(0));
    assert_etcd_error(
        client.lease_revoke(id).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    assert_etcd_error(
        client.lease_grant(9_000_000_001, None).await,
        Code::OutOfRange,
        "etcdserver: too large lease TTL",
    );
}
