//! The real `etcdctl` (etcd 3.4) against real `raftkv serve` processes: one
//! member, then three with a write through one member read through another.
//! Needs `etcdctl` on PATH (Debian: `apt-get install etcd-client`), so it is
//! ignored by default: `cargo test -p raftkv --test etcdctl_serve -- --ignored`.
//! Takes about 4 s.

mod common;

use std::process::Command;

use common::Cluster;

/// etcdctl is given `host:port` without the scheme: with `http://` its
/// per-endpoint commands (`endpoint status`, `endpoint hashkv`) send the URL
/// as the HTTP/2 `:authority`, which our HTTP/2 server refuses.
fn etcdctl(endpoint: &str, args: &[&str]) -> String {
    let endpoint = endpoint.replace("http://", "");
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(["--dial-timeout=5s", "--command-timeout=10s"])
        .args(args)
        .output()
        .expect("etcdctl runs; install it with `apt-get install etcd-client`");
    assert!(
        output.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcdctl on PATH (apt-get install etcd-client)"]
async fn etcdctl_puts_and_gets_on_one_member() {
    let cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(None).await;
    let endpoint = cluster.endpoint(0);
    assert_eq!(etcdctl(&endpoint, &["put", "a", "1"]), "OK\n");
    assert_eq!(etcdctl(&endpoint, &["get", "a"]), "a\n1\n");
    let status = etcdctl(&endpoint, &["endpoint", "status"]);
    assert!(
        status.contains(", true, false, "),
        "leader column: {status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs etcdctl on PATH (apt-get install etcd-client)"]
async fn etcdctl_write_on_one_member_is_read_on_another() {
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(None).await;
    assert_eq!(etcdctl(&cluster.endpoint(0), &["put", "k", "v"]), "OK\n");
    for index in 1..3 {
        let got = etcdctl(&cluster.endpoint(index), &["get", "k", "--consistency=l"]);
        assert_eq!(got, "k\nv\n", "member {index}");
    }
    let all = (0..3)
        .map(|index| cluster.endpoint(index))
        .collect::<Vec<_>>()
        .join(",");
    let hashes = etcdctl(&all, &["endpoint", "hashkv"]);
    let values: Vec<&str> = hashes
        .lines()
        .filter_map(|line| line.rsplit(", ").next())
        .collect();
    assert_eq!(values.len(), 3, "{hashes}");
    assert!(values.windows(2).all(|pair| pair[0] == pair[1]), "{hashes}");
}
