//! The real `etcdctl` (etcd 3.4) against real `raftkv serve` processes: one
//! member, then three with a write through one member read through another.
//! Endpoints are given both as `host:port` and as `http://host:port`: with
//! the scheme, etcdctl's per-endpoint commands (`endpoint status`, `endpoint
//! hashkv`, `defrag`, the `--cluster` forms) send the whole URL as the HTTP/2
//! authority, which the client listener must accept.
//! Needs `etcdctl` on PATH (Debian: `apt-get install etcd-client`); without it
//! each test says so and passes, except under CI (`CI=true`), where it fails.
//! Takes about 4 s.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Cluster;

/// How long one etcdctl command may keep failing (an election on a loaded
/// machine) before the test gives up.
const ETCDCTL_RETRY_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs etcdctl until it succeeds (bounded), returning its standard output.
fn etcdctl(endpoint: &str, args: &[&str]) -> String {
    let deadline = Instant::now() + ETCDCTL_RETRY_TIMEOUT;
    loop {
        let output = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(["--dial-timeout=5s", "--command-timeout=10s"])
            .args(args)
            .output()
            .expect("etcdctl runs; install it with `apt-get install etcd-client`");
        if output.status.success() {
            return String::from_utf8_lossy(&output.stdout).into_owned();
        }
        assert!(
            Instant::now() < deadline,
            "etcdctl {args:?} against {endpoint} kept failing for {ETCDCTL_RETRY_TIMEOUT:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_puts_and_gets_on_one_member() {
    if !common::etcdctl_present() {
        return;
    }
    let cluster = Cluster::start(1, &[]);
    cluster.wait_for_leader(None).await;
    let url = cluster.endpoint(0);
    let host_port = url.trim_start_matches("http://");
    assert_eq!(etcdctl(host_port, &["put", "a", "1"]), "OK\n");
    assert_eq!(etcdctl(&url, &["get", "a"]), "a\n1\n");
    for endpoint in [host_port, url.as_str()] {
        let status = etcdctl(endpoint, &["endpoint", "status"]);
        assert!(
            status.starts_with(&format!("{endpoint}, ")) && status.contains(", true, false, "),
            "endpoint and leader columns: {status}"
        );
        let defragmented = etcdctl(endpoint, &["defrag"]);
        assert!(defragmented.starts_with("Finished"), "{defragmented}");
    }
    let cluster_status = etcdctl(host_port, &["endpoint", "status", "--cluster"]);
    assert!(
        cluster_status.starts_with(&format!("{url}, ")),
        "--cluster dials the advertised http:// URL: {cluster_status}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_write_on_one_member_is_read_on_another() {
    if !common::etcdctl_present() {
        return;
    }
    let cluster = Cluster::start(3, &[]);
    cluster.wait_for_leader(None).await;
    assert_eq!(etcdctl(&cluster.endpoint(0), &["put", "k", "v"]), "OK\n");
    for index in 1..3 {
        let got = etcdctl(&cluster.endpoint(index), &["get", "k", "--consistency=l"]);
        assert_eq!(got, "k\nv\n", "member {index}");
    }
    let all = cluster.endpoints().join(",");
    let hashes = etcdctl(&all, &["endpoint", "hashkv"]);
    let values: Vec<&str> = hashes
        .lines()
        .filter_map(|line| line.rsplit(", ").next())
        .collect();
    assert_eq!(values.len(), 3, "{hashes}");
    assert!(values.windows(2).all(|pair| pair[0] == pair[1]), "{hashes}");
}

#[test]
fn a_missing_binary_skips_locally() {
    assert!(!common::binary_present(
        "raftkv-test-no-such-binary",
        "version",
        "none",
        false
    ));
}

#[test]
#[should_panic(expected = "not on PATH under CI=true")]
fn a_missing_binary_fails_under_ci() {
    common::binary_present("raftkv-test-no-such-binary", "version", "none", true);
}
