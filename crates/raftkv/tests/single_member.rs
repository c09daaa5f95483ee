//! One `raftkv serve` process: put and get through the etcd KV API, a clean
//! stop on SIGTERM (open watch streams end cleanly), and a restart that
//! keeps the data. Takes about 3 s.

mod common;

use common::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_stop_and_restart_keep_data() {
    let mut cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(None).await;
    let endpoint = cluster.endpoint(0);
    let first = common::put(&endpoint, "a", "1").await.expect("put a");
    common::put(&endpoint, "b", "2").await.expect("put b");
    assert_eq!(common::get(&endpoint, "a").await.as_deref(), Some("1"));
    let mut client = etcd_client::Client::connect([&endpoint], None)
        .await
        .expect("etcd-client connects");
    let mut watch = client.watch("a", None).await.expect("watch a");
    let created = watch.message().await.expect("a created response");
    assert!(created.is_some_and(|created| created.created()));
    let status = cluster.terminate(0);
    let ended = tokio::time::timeout(common::CALL_TIMEOUT, watch.message())
        .await
        .expect("the watch stream ends with the member");
    assert!(
        matches!(ended, Ok(None)),
        "the watch stream ends cleanly: {ended:?}"
    );
    assert!(
        status.success(),
        "SIGTERM exit: {status}\n{}",
        cluster.log(0)
    );
    assert!(cluster.log(0).contains("stopped"), "{}", cluster.log(0));
    assert!(
        !cluster.log(0).contains("did not finish in time"),
        "no connection had to be cut: {}",
        cluster.log(0)
    );

    cluster.start_member(0);
    cluster.wait_for_leader(None).await;
    assert_eq!(common::get(&endpoint, "a").await.as_deref(), Some("1"));
    assert_eq!(common::get(&endpoint, "b").await.as_deref(), Some("2"));
    let third = common::put(&endpoint, "c", "3").await.expect("put c");
    let revision = |response: &server::proto::etcdserverpb::PutResponse| {
        response.header.as_ref().map_or(0, |header| header.revision)
    };
    assert_eq!(
        revision(&third),
        revision(&first) + 2,
        "revisions continue after the restart"
    );
}
