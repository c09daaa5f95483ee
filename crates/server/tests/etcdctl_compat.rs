//! etcdctl 3.4 against real etcd and against our API, command for command.
//!
//! Each test starts a fresh single-member etcd (Debian's `etcd-server`) on
//! free loopback ports with a temporary data directory, and our services on
//! another port (see [`Target`]), both with the same
//! `--max-request-bytes` and `--max-txn-ops`. It then runs the same etcdctl
//! commands against both and requires the same exit status, stdout and error
//! lines once the fields that legitimately differ are masked: cluster and
//! member ids, Raft term and index, database size, server version, endpoint
//! addresses, timestamps and latencies. Revisions are not masked: both stores
//! start at revision 1 and see the same writes, so they must agree.
//!
//! Needs `etcd` and `etcdctl` on PATH (`apt-get install -y etcd-server
//! etcd-client`). Without them each test says so and passes, except under CI
//! (`CI=true`), where a missing binary fails the test so the comparison can
//! never be skipped silently. Every scenario runs twice, over the test
//! backend and over a real node. `etcdctl watch` runs in the background
//! while writes go on, and is stopped by its pid (see `watch`); each lease
//! scenario waits for a lease to expire. Takes about 35 seconds on 2 cores.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;
use regex::Regex;
use server::api::{routes, ApiLimits};
use server::config::ServeArgs;
use server::lease::{LeaseOptions, Lessor};
use tonic::codegen::tokio_stream::wrappers::TcpListenerStream;

use common::local_backend::LocalBackend;

/// The same limits for etcd and for us, small enough to test cheaply.
const REQUEST_BYTES_MAX: usize = 10_000;
const TXN_OPS_MAX: usize = 3;

/// How long etcd or our node may take to start answering.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long our node may take to stop.
const SERVER_STOP_TIMEOUT: Duration = Duration::from_secs(15);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A real etcd on loopback, stopped (by its own pid) when dropped.
struct Etcd {
    child: Child,
    endpoint: String,
    peer_url: String,
    data: tempfile::TempDir,
}

impl Etcd {
    fn start() -> Etcd {
        let data = tempfile::tempdir().expect("a temporary directory");
        let endpoint = format!("127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let log = std::fs::File::create(data.path().join("etcd.log")).expect("etcd log file");
        let child = Command::new("etcd")
            .arg("--name=default")
            .arg(format!("--data-dir={}", data.path().join("data").display()))
            .arg(format!("--listen-client-urls=http://{endpoint}"))
            .arg(format!("--advertise-client-urls=http://{endpoint}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            .arg(format!("--max-request-bytes={REQUEST_BYTES_MAX}"))
            .arg(format!("--max-txn-ops={TXN_OPS_MAX}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        let mut etcd = Etcd {
            child,
            endpoint,
            peer_url,
            data,
        };
        etcd.wait_until_serving();
        etcd
    }

    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("etcd's status") {
                panic!("etcd exited with {status}: {}", self.log());
            }
            let probe = etcdctl(&self.endpoint, &["get", "probe"], None);
            if probe.success {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "etcd did not serve within {SERVER_START_TIMEOUT:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        // Only the child this test started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What serves our side of a comparison.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The API over the single-process test backend.
    TestBackend,
    /// A real single-member raftkv node (`server::serve::run`) in a temporary
    /// data directory: Raft, the log and the durable store under the API.
    Node,
}

/// Our side, stopped when dropped (a node is asked to stop and awaited).
struct Ours {
    endpoint: String,
    /// Addresses in our answers and the placeholders they compare as.
    addresses: Vec<(String, &'static str)>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<Result<(), server::serve::ServeError>>>,
    runtime: tokio::runtime::Runtime,
    _data: Option<tempfile::TempDir>,
}

impl Ours {
    fn start(target: Target) -> Ours {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let mut ours = match target {
            Target::TestBackend => Self::start_test_backend(runtime),
            Target::Node => Self::start_node(runtime),
        };
        ours.wait_until_serving();
        ours
    }

    fn start_test_backend(runtime: tokio::runtime::Runtime) -> Ours {
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("a loopback listener");
        let endpoint = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
        let limits = ApiLimits {
            request_bytes_max: REQUEST_BYTES_MAX,
            txn_ops_max: TXN_OPS_MAX,
        };
        let backend: Arc<LocalBackend> = LocalBackend::in_memory();
        let lessor = runtime
            .block_on(async { Lessor::start(Arc::clone(&backend), LeaseOptions::default()) });
        runtime.spawn(
            tonic::transport::Server::builder()
                .add_routes(routes(backend, lessor, limits))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        Ours {
            addresses: vec![
                ("http://localhost:2380".to_owned(), "<peer-url>"),
                ("http://localhost:2379".to_owned(), "http://<endpoint>"),
                (endpoint.clone(), "<endpoint>"),
            ],
            endpoint,
            stop: None,
            served: None,
            runtime,
            _data: None,
        }
    }

    fn start_node(runtime: tokio::runtime::Runtime) -> Ours {
        let data = tempfile::tempdir().expect("a temporary directory");
        let endpoint = format!("127.0.0.1:{}", free_port());
        let peer_url = format!("http://127.0.0.1:{}", free_port());
        let config = ServeArgs::try_parse_from([
            "serve".to_owned(),
            "--name=default".to_owned(),
            format!("--data-dir={}", data.path().join("data").display()),
            format!("--listen-client-urls=http://{endpoint}"),
            format!("--advertise-client-urls=http://{endpoint}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--max-request-bytes={REQUEST_BYTES_MAX}"),
            format!("--max-txn-ops={TXN_OPS_MAX}"),
        ])
        .expect("serve flags parse")
        .validate()
        .expect("serve flags are valid");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = runtime.spawn(server::serve::run(config, async move {
            let _ = stopped.await;
        }));
        Ours {
            addresses: vec![(peer_url, "<peer-url>"), (endpoint.clone(), "<endpoint>")],
            endpoint,
            stop: Some(stop),
            served: Some(served),
            runtime,
            _data: Some(data),
        }
    }

    /// Waits for a linearizable read to succeed, which needs a leader.
    fn wait_until_serving(&mut self) {
        let deadline = Instant::now() + SERVER_START_TIMEOUT;
        loop {
            if let Some(served) = &self.served {
                assert!(!served.is_finished(), "our node stopped while starting");
            }
            if etcdctl(&self.endpoint, &["get", "probe"], None).success {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "our server did not serve within {SERVER_START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served.take() {
            let stopped = self
                .runtime
                .block_on(async { tokio::time::timeout(SERVER_STOP_TIMEOUT, served).await });
            if !std::thread::panicking() {
                match stopped {
                    Ok(Ok(Ok(()))) => {}
                    other => panic!("our node did not stop cleanly: {other:?}"),
                }
            }
        }
    }
}

/// What etcdctl did: exit status, stdout, and stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
}

fn etcdctl(endpoint: &str, args: &[&str], stdin: Option<&[u8]>) -> Outcome {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("--dial-timeout=5s")
        .arg("--command-timeout=10s")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs");
    let mut input = child.stdin.take().expect("etcdctl's stdin");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("etcdctl reads its stdin");
    }
    drop(input);
    let output = child.wait_with_output().expect("etcdctl finishes");
    Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Which columns of a comma-separated table line differ legitimately.
#[derive(Clone, Copy, Debug)]
enum Table {
    /// Free text and JSON only.
    None,
    /// `endpoint status`: endpoint, id, version, db size, is leader, is learner,
    /// raft term, raft index, raft applied index, errors.
    EndpointStatus,
    /// `member list`: id, status, name, peer urls, client urls, is learner.
    MemberList,
    /// `endpoint hashkv`: endpoint, hash (the stores hash differently).
    HashKv,
    /// `member list -w json`: our Cluster answers add the store's revision to
    /// the header, which etcd's leave out.
    MemberListJson,
}

impl Table {
    fn masked_columns(self) -> &'static [usize] {
        match self {
            Table::None | Table::MemberListJson => &[],
            Table::EndpointStatus => &[1, 2, 3, 6, 7, 8],
            Table::MemberList => &[0],
            Table::HashKv => &[1],
        }
    }
}

fn json_masks() -> &'static [(Regex, &'static str)] {
    static MASKS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    MASKS.get_or_init(|| {
        [
            (r#""ts":"[^"]*""#, r#""ts":"<ts>""#),
            (r#""target":"[^"]*""#, r#""target":"<target>""#),
            (
                r#""(cluster_id|member_id|raft_term|ID|leader|raftIndex|raftTerm|raftAppliedIndex|dbSize|dbSizeInUse|hash)":\d+"#,
                r#""$1":<n>"#,
            ),
            (r#""version":"[^"]*""#, r#""version":"<version>""#),
            (r#""(ClusterID|MemberID|RaftTerm)" : \d+"#, r#""$1" : <n>"#),
            (r"took = [0-9.]+[a-zµ]*s", "took = <time>"),
            // A lease's remaining TTL depends on when each server was asked.
            (r"remaining\(\d+s\)", "remaining(<n>s)"),
        ]
        .into_iter()
        .map(|(pattern, replacement)| (Regex::new(pattern).expect("mask pattern"), replacement))
        .collect()
    })
}

fn mask(text: &str, addresses: &[(&str, &str)], table: Table) -> String {
    let mut text = text.to_owned();
    for (address, placeholder) in addresses {
        text = text.replace(address, placeholder);
    }
    for (pattern, replacement) in json_masks() {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    if matches!(table, Table::MemberListJson) {
        let revision = Regex::new(r#""revision":\d+,"#).expect("revision pattern");
        text = revision.replace(&text, "").into_owned();
    }
    let columns = table.masked_columns();
    if columns.is_empty() {
        return text;
    }
    text.lines()
        .map(|line| {
            line.split(", ")
                .enumerate()
                .map(|(index, field)| {
                    if columns.contains(&index) {
                        "<masked>"
                    } else {
                        field
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A lease granted on both sides: each side's id as etcdctl prints it (hex).
struct LeasePair {
    etcd: String,
    ours: String,
}

/// Real etcd and ours, side by side.
struct Pair {
    etcd: Etcd,
    ours: Ours,
}

impl Pair {
    /// `None` (and a message) when the binaries are missing outside CI.
    fn start(target: Target) -> Option<Pair> {
        if !common::tools::present(&["etcd", "etcdctl"]) {
            return None;
        }
        Some(Pair {
            etcd: Etcd::start(),
            ours: Ours::start(target),
        })
    }

    /// Runs etcdctl against both and asserts the masked outcomes match;
    /// returns etcd's (masked) outcome.
    fn same(&self, args: &[&str]) -> Outcome {
        self.same_with(args, None, Table::None)
    }

    fn same_with(&self, args: &[&str], stdin: Option<&[u8]>, table: Table) -> Outcome {
        let etcd = etcdctl(&self.etcd.endpoint, args, stdin);
        let ours = etcdctl(&self.ours.endpoint, args, stdin);
        self.compare(args, &etcd, &ours, table)
    }

    /// Asserts that etcd's outcome and ours match once masked; returns
    /// etcd's (masked).
    fn compare(&self, args: &[&str], etcd: &Outcome, ours: &Outcome, table: Table) -> Outcome {
        let etcd_addresses = [
            (self.etcd.peer_url.as_str(), "<peer-url>"),
            (self.etcd.endpoint.as_str(), "<endpoint>"),
        ];
        let our_addresses: Vec<(&str, &str)> = self
            .ours
            .addresses
            .iter()
            .map(|(address, placeholder)| (address.as_str(), *placeholder))
            .collect();
        let etcd = masked(etcd, &etcd_addresses, table);
        let ours = masked(ours, &our_addresses, table);
        assert_eq!(
            ours, etcd,
            "etcdctl {args:?} differs (left: ours, right: etcd's)"
        );
        etcd
    }

    /// `etcdctl lease grant <ttl_seconds>` on both: each side's lease id.
    fn grant(&self, ttl_seconds: &str) -> LeasePair {
        let args = ["lease", "grant", ttl_seconds];
        let granted_id = |endpoint: &str| -> String {
            let outcome = etcdctl(endpoint, &args, None);
            let id = outcome
                .stdout
                .strip_prefix("lease ")
                .and_then(|rest| rest.split_once(' '))
                .map(|(id, _)| id.to_owned());
            id.unwrap_or_else(|| panic!("etcdctl lease grant: {outcome:?}"))
        };
        let lease = LeasePair {
            etcd: granted_id(&self.etcd.endpoint),
            ours: granted_id(&self.ours.endpoint),
        };
        // The grant's own output, compared through a read of the lease.
        let lived = self.leased(&["lease", "timetolive", "{lease}"], &lease);
        assert!(lived.success, "{lived:?}");
        lease
    }

    /// Like [`Pair::same`], with `{lease}` in `args` standing for each
    /// side's own id of `lease` (each server chooses its ids, so they are
    /// masked as `<lease>`, in hex and in decimal).
    fn leased(&self, args: &[&str], lease: &LeasePair) -> Outcome {
        let etcd = with_lease_masked(
            etcdctl(
                &self.etcd.endpoint,
                &as_strs(&with_lease(args, &lease.etcd)),
                None,
            ),
            &lease.etcd,
        );
        let ours = with_lease_masked(self.ours_leased(args, lease), &lease.ours);
        self.compare(args, &etcd, &ours, Table::None)
    }

    /// What etcdctl says on our side alone, with the lease id filled in.
    fn ours_leased(&self, args: &[&str], lease: &LeasePair) -> Outcome {
        etcdctl(
            &self.ours.endpoint,
            &as_strs(&with_lease(args, &lease.ours)),
            None,
        )
    }

    /// Like [`Pair::same`], and the command must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let outcome = self.same(args);
        assert!(
            outcome.success,
            "etcdctl {args:?} failed on both: {outcome:?}"
        );
        outcome.stdout
    }

    /// Like [`Pair::same`], and the command must fail with `message`.
    fn fails_with(&self, args: &[&str], stdin: Option<&[u8]>, message: &str) {
        let outcome = self.same_with(args, stdin, Table::None);
        assert!(
            !outcome.success,
            "etcdctl {args:?} succeeded on both: {outcome:?}"
        );
        assert!(
            outcome.stderr.contains(&format!("Error: {message}")),
            "etcdctl {args:?}: {outcome:?}"
        );
    }

    /// Feeds `script` to `etcdctl txn` (plus `flags`) on both.
    fn txn(&self, flags: &[&str], script: &str) -> Outcome {
        let args: Vec<&str> = ["txn"].iter().chain(flags).copied().collect();
        self.same_with(&args, Some(script.as_bytes()), Table::None)
    }
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `args` with `{lease}` replaced by `id`.
fn with_lease(args: &[&str], id: &str) -> Vec<String> {
    args.iter().map(|arg| arg.replace("{lease}", id)).collect()
}

/// The outcome with the lease `id` (hex, as etcdctl prints it, and decimal,
/// as JSON carries it) replaced by `<lease>`.
fn with_lease_masked(outcome: Outcome, id: &str) -> Outcome {
    let decimal = i64::from_str_radix(id, 16)
        .expect("a hex lease id")
        .to_string();
    let hide = |text: &str| text.replace(id, "<lease>").replace(&decimal, "<lease>");
    Outcome {
        success: outcome.success,
        stdout: hide(&outcome.stdout),
        stderr: hide(&outcome.stderr),
    }
}

/// The outcome with volatile fields masked; stderr keeps only etcdctl's
/// error and warning lines (its client logs carry the gRPC code).
fn masked(outcome: &Outcome, addresses: &[(&str, &str)], table: Table) -> Outcome {
    Outcome {
        success: outcome.success,
        stdout: mask(&outcome.stdout, addresses, table),
        stderr: mask(&outcome.stderr, addresses, Table::None),
    }
}

/// Runs a scenario against etcd and our API, once over the test backend and
/// once over a real single-member node.
macro_rules! compare_with_etcd {
    ($($scenario:ident),+ $(,)?) => {
        $(
            mod $scenario {
                use super::{Pair, Target};

                #[test]
                fn over_the_test_backend() {
                    if let Some(pair) = Pair::start(Target::TestBackend) {
                        super::$scenario(&pair);
                    }
                }

                #[test]
                fn over_a_raft_node() {
                    if let Some(pair) = Pair::start(Target::Node) {
                        super::$scenario(&pair);
                    }
                }
            }
        )+
    };
}

compare_with_etcd!(
    put_get_and_delete,
    txn,
    compaction,
    errors,
    cluster_and_maintenance,
    watch_history_and_live,
    watch_without_start_revision,
    leases,
);

#[path = "etcdctl_compat/watch.rs"]
mod watch;
use watch::{watch_history_and_live, watch_without_start_revision};

fn put_get_and_delete(pair: &Pair) {
    for (key, value) in [
        ("a", "1"),
        ("b", "2"),
        ("c", "3"),
        ("foo/1", "x"),
        ("foo/2", "y"),
    ] {
        assert_eq!(pair.ok(&["put", key, value]), "OK\n");
    }
    pair.ok(&["put", "a", "11"]); // revision 7
    assert_eq!(pair.ok(&["get", "a"]), "a\n11\n");
    assert!(pair
        .ok(&["get", "a", "-w", "json"])
        .contains(r#""revision":7"#));
    assert_eq!(pair.ok(&["get", "a", "c"]), "a\n11\nb\n2\n");
    assert_eq!(pair.ok(&["get", "--prefix", "foo"]), "foo/1\nx\nfoo/2\ny\n");
    pair.ok(&["get", "--from-key", "b"]);
    pair.ok(&["get", "", "--prefix"]);
    pair.ok(&["get", "", "--from-key", "-w", "json"]);
    pair.ok(&["get", "missing"]);
    pair.ok(&["get", "--prefix", "foo", "--limit", "1", "-w", "json"]);
    pair.ok(&["get", "--from-key", "a", "--limit", "2"]);
    assert_eq!(pair.ok(&["get", "a", "--rev", "2"]), "a\n1\n");
    pair.ok(&["get", "--prefix", "", "--rev", "4", "-w", "json"]);
    for target in ["KEY", "VERSION", "CREATE", "MODIFY", "VALUE"] {
        for order in ["ASCEND", "DESCEND"] {
            let sort_by = format!("--sort-by={target}");
            let order = format!("--order={order}");
            pair.ok(&["get", "--from-key", "a", &sort_by, &order]);
        }
        pair.ok(&["get", "--from-key", "a", &format!("--sort-by={target}")]);
    }
    pair.ok(&["get", "--from-key", "a", "--order=DESCEND"]);
    pair.ok(&["get", "--prefix", "foo", "--keys-only"]);
    pair.ok(&["get", "--from-key", "a", "--keys-only", "-w", "json"]);
    assert_eq!(pair.ok(&["get", "a", "--print-value-only"]), "11\n");
    pair.ok(&["get", "--prefix", "foo", "--print-value-only"]);
    pair.ok(&["get", "a", "--consistency=s"]);
    pair.ok(&["get", "a", "-w", "fields"]);
    assert_eq!(pair.ok(&["put", "a", "12", "--prev-kv"]), "OK\na\n11\n");
    pair.ok(&["put", "a", "13", "--prev-kv", "-w", "json"]);
    pair.ok(&["put", "a", "--ignore-value"]);
    pair.ok(&["put", "c", "33", "--ignore-lease"]);
    let fields = pair.ok(&["get", "a", "-w", "fields"]);
    assert!(
        fields.contains("\"Version\" : 5") && fields.contains("\"Value\" : \"13\""),
        "--ignore-value bumps the version and keeps the value: {fields}"
    );
    assert_eq!(pair.ok(&["del", "b"]), "1\n");
    assert_eq!(pair.ok(&["del", "b"]), "0\n");
    pair.ok(&["del", "a", "--prev-kv"]);
    pair.ok(&["del", "--prefix", "foo", "--prev-kv", "-w", "json"]);
    pair.ok(&["put", "d", "4"]);
    pair.ok(&["del", "c", "e"]);
    pair.ok(&["put", "x", "1"]);
    pair.ok(&["del", "--from-key", "w"]);
    pair.ok(&["get", "", "--prefix", "-w", "json"]);
    pair.ok(&["del", "", "--prefix", "--prev-kv", "-w", "json"]);
    pair.ok(&["get", "", "--prefix", "-w", "json"]);
}

fn txn(pair: &Pair) {
    pair.ok(&["put", "a", "1"]); // revision 2
    pair.ok(&["put", "b", "2"]); // 3
    pair.ok(&["put", "b", "22"]); // 4: b version 2, create 3, mod 4
    let compares = [
        r#"value("a") = "1""#,
        r#"value("a") != "1""#,
        r#"value("a") > "0""#,
        r#"value("a") < "0""#,
        r#"version("b") = "2""#,
        r#"version("b") != "2""#,
        r#"version("b") > "1""#,
        r#"version("b") < "2""#,
        r#"create("b") = "3""#,
        r#"create("b") > "3""#,
        r#"create("b") < "4""#,
        r#"create("b") != "2""#,
        r#"mod("b") = "4""#,
        r#"mod("b") < "4""#,
        r#"mod("b") > "3""#,
        r#"mod("b") != "4""#,
        r#"version("missing") = "0""#,
        r#"value("missing") = """#,
        r#"value("missing") != "x""#,
        r#"create("missing") = "0""#,
        r#"mod("missing") < "1""#,
    ];
    for compare in compares {
        let script = format!("{compare}\n\nget a\n\nget b\n\n");
        let outcome = pair.txn(&[], &script);
        assert!(outcome.success, "{compare}: {outcome:?}");
    }
    let interactive = "value(\"a\") = \"1\"\nmod(\"b\") > \"3\"\n\nput c 3\nget a b\ndel missing\n\nput failed 1\n\n";
    let outcome = pair.txn(&["-i"], interactive);
    assert!(outcome.stdout.contains("SUCCESS"), "{outcome:?}");
    let json = pair.txn(
        &["-w", "json"],
        "value(\"a\") = \"1\"\n\nget a c\ndel --prefix fo\nput z 1\n\nget a\n\n",
    );
    assert!(json.stdout.contains(r#""succeeded":true"#), "{json:?}");
    let failure = pair.txn(
        &["-w", "json"],
        "value(\"a\") = \"nope\"\n\nput s 1\n\nput f 1\ndel c\n\n",
    );
    assert!(!failure.stdout.contains("succeeded"), "{failure:?}");
    pair.txn(&[], "\n\nget --prefix \"\"\n\n\n");
    pair.ok(&["get", "", "--prefix", "-w", "json"]);
}

fn compaction(pair: &Pair) {
    for value in ["1", "2", "3", "4"] {
        pair.ok(&["put", "k", value]); // revisions 2..=5
    }
    assert_eq!(pair.ok(&["compaction", "3"]), "compacted revision 3\n");
    pair.fails_with(
        &["get", "k", "--rev", "2"],
        None,
        "etcdserver: mvcc: required revision has been compacted",
    );
    assert_eq!(pair.ok(&["get", "k", "--rev", "3"]), "k\n2\n");
    pair.fails_with(
        &["compaction", "3"],
        None,
        "etcdserver: mvcc: required revision has been compacted",
    );
    pair.fails_with(
        &["compaction", "99"],
        None,
        "etcdserver: mvcc: required revision is a future revision",
    );
    assert_eq!(
        pair.ok(&["compaction", "4", "--physical"]),
        "compacted revision 4\n"
    );
    pair.ok(&["get", "k", "-w", "json"]);
}

fn errors(pair: &Pair) {
    pair.ok(&["put", "a", "1"]);
    pair.fails_with(&["put", "", "v"], None, "etcdserver: key is not provided");
    pair.fails_with(&["get", ""], None, "etcdserver: key is not provided");
    pair.fails_with(&["del", ""], None, "etcdserver: key is not provided");
    pair.fails_with(
        &["get", "a", "--rev", "100"],
        None,
        "etcdserver: mvcc: required revision is a future revision",
    );
    pair.fails_with(
        &["put", "leased", "v", "--lease=1234abcd"],
        None,
        "etcdserver: requested lease not found",
    );
    pair.fails_with(
        &["put", "missing", "--ignore-value"],
        None,
        "etcdserver: key not found",
    );
    pair.fails_with(
        &["put", "missing", "v", "--ignore-lease"],
        None,
        "etcdserver: key not found",
    );
    pair.fails_with(
        &["txn"],
        Some(b"\nput a 1\nput b 2\nput c 3\nput d 4\n\n\n"),
        "etcdserver: too many operations in txn request",
    );
    pair.fails_with(
        &["txn"],
        Some(b"\nput a 1\nput a 2\n\n\n"),
        "etcdserver: duplicate key given in txn request",
    );
    let large = vec![b'x'; REQUEST_BYTES_MAX + 2_000];
    pair.fails_with(
        &["put", "large"],
        Some(&large),
        "etcdserver: request is too large",
    );
    // Beyond the gRPC allowance the message is not even decoded.
    let huge = vec![b'x'; REQUEST_BYTES_MAX + 600 * 1024];
    pair.fails_with(
        &["put", "huge"],
        Some(&huge),
        "rpc error: code = ResourceExhausted desc = grpc: received message larger than max",
    );
    // For the key "fits", the largest value etcd takes whatever its member id
    // (which sets the length of its request id), and two bytes more, which it
    // refuses whatever the id.
    let fits = vec![b'x'; REQUEST_BYTES_MAX - 26];
    pair.fails_with(
        &["put", "fits"],
        Some(&[fits.as_slice(), b"xx"].concat()),
        "etcdserver: request is too large",
    );
    let outcome = pair.same_with(&["put", "fits"], Some(&fits), Table::None);
    assert!(outcome.success, "{outcome:?}");
    pair.ok(&["get", "", "--prefix", "--keys-only"]);
}

fn cluster_and_maintenance(pair: &Pair) {
    pair.ok(&["put", "a", "1"]);
    let status = pair.same_with(&["endpoint", "status"], None, Table::EndpointStatus);
    assert!(
        status.stdout.contains(", true, false, "),
        "the member leads and is no learner: {status:?}"
    );
    pair.same_with(&["endpoint", "status", "-w", "json"], None, Table::None);
    // etcdctl 3.4 reports health on stderr.
    let health = pair.same(&["endpoint", "health"]);
    assert!(
        health.success && health.stderr.contains("<endpoint> is healthy"),
        "{health:?}"
    );
    let members = pair.same_with(&["member", "list"], None, Table::MemberList);
    assert!(
        members.stdout.contains(", started, default, "),
        "{members:?}"
    );
    pair.same_with(
        &["member", "list", "-w", "json"],
        None,
        Table::MemberListJson,
    );
    pair.same_with(&["endpoint", "hashkv"], None, Table::HashKv);
    assert_eq!(pair.ok(&["alarm", "list"]), "");
    pair.ok(&["defrag"]);
}

/// How long a lease of etcd's minimum TTL may take to expire and be revoked.
const LEASE_EXPIRY_WAIT_MAX: Duration = Duration::from_secs(15);

fn leases(pair: &Pair) {
    let lease = pair.grant("60");
    let granted = pair.ours_leased(&["lease", "timetolive", "{lease}"], &lease);
    assert!(
        granted.stdout.contains("granted with TTL(60s)"),
        "{granted:?}"
    );
    pair.leased(&["put", "k1", "v1", "--lease={lease}"], &lease);
    pair.ok(&["put", "plain", "v"]);
    pair.leased(&["get", "k1", "-w", "json"], &lease);
    let lived = pair.leased(&["lease", "timetolive", "{lease}", "--keys"], &lease);
    assert_eq!(
        lived.stdout,
        "lease <lease> granted with TTL(60s), remaining(<n>s), attached keys([k1])\n"
    );
    // etcd lists several keys in no fixed order; ours come in key order.
    pair.leased(&["put", "k2", "v2", "--lease={lease}"], &lease);
    let both = pair.ours_leased(&["lease", "timetolive", "{lease}", "--keys"], &lease);
    assert!(both.stdout.contains("attached keys([k1 k2])"), "{both:?}");
    let ours = pair.ours_leased(&["lease", "timetolive", "{lease}"], &lease);
    let remaining: i64 = ours
        .stdout
        .split("remaining(")
        .nth(1)
        .and_then(|rest| rest.split("s)").next())
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or_else(|| panic!("{ours:?}"));
    assert!((50..=60).contains(&remaining), "{ours:?}");
    assert_eq!(
        pair.leased(&["lease", "list"], &lease).stdout,
        "found 1 leases\n<lease>\n"
    );
    assert_eq!(
        pair.leased(&["lease", "keep-alive", "--once", "{lease}"], &lease)
            .stdout,
        "lease <lease> keepalived with TTL(60)\n"
    );
    pair.leased(&["lease", "timetolive", "{lease}", "-w", "json"], &lease);
    assert_eq!(
        pair.leased(&["lease", "revoke", "{lease}"], &lease).stdout,
        "lease <lease> revoked\n"
    );
    assert_eq!(pair.ok(&["get", "", "--prefix"]), "plain\nv\n");
    pair.leased(&["lease", "timetolive", "{lease}"], &lease);
    pair.leased(&["lease", "keep-alive", "--once", "{lease}"], &lease);
    let revoked_again = pair.leased(&["lease", "revoke", "{lease}"], &lease);
    assert!(
        revoked_again
            .stderr
            .contains("etcdserver: requested lease not found"),
        "{revoked_again:?}"
    );
    let too_long = pair.same(&["lease", "grant", "9000000001"]);
    assert!(
        !too_long.success
            && too_long
                .stderr
                .contains("Error: failed to grant lease (etcdserver: too large lease TTL)"),
        "{too_long:?}"
    );
    pair.leased(&["lease", "list"], &lease);

    // A lease asked for with 1 s gets etcd's minimum (2 s at the default
    // election timeout); its key goes when it expires.
    let short = pair.grant("1");
    pair.leased(&["put", "brief", "v", "--lease={lease}"], &short);
    let started = Instant::now();
    loop {
        let etcd = etcdctl(&pair.etcd.endpoint, &["get", "brief"], None);
        let ours = pair.ours_leased(&["get", "brief"], &short);
        if etcd.stdout.is_empty() && ours.stdout.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < LEASE_EXPIRY_WAIT_MAX,
            "the key outlived its lease: etcd {etcd:?}, ours {ours:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the key went before its lease could expire"
    );
    assert_eq!(
        pair.leased(&["lease", "timetolive", "{lease}"], &short)
            .stdout,
        "lease <lease> already expired\n"
    );
}

#[test]
fn masking_hides_only_volatile_fields() {
    let addresses = [("127.0.0.1:5555", "<endpoint>")];
    let json = r#"{"header":{"cluster_id":1,"member_id":2,"revision":7,"raft_term":3},"version":"3.4.23","dbSize":20480}"#;
    assert_eq!(
        mask(json, &addresses, Table::None),
        r#"{"header":{"cluster_id":<n>,"member_id":<n>,"revision":7,"raft_term":<n>},"version":"<version>","dbSize":<n>}"#
    );
    assert_eq!(
        mask(
            "127.0.0.1:5555, bdae9bbc11dd390d, 3.4.23, 20 kB, true, false, 2, 5, 5, ",
            &addresses,
            Table::EndpointStatus
        ),
        "<endpoint>, <masked>, <masked>, <masked>, true, false, <masked>, <masked>, <masked>, "
    );
    assert_eq!(
        mask(
            "127.0.0.1:5555 is healthy: successfully committed proposal: took = 1.243115ms",
            &addresses,
            Table::None
        ),
        "<endpoint> is healthy: successfully committed proposal: took = <time>"
    );
    assert_eq!(
        mask(
            r#"{"header":{"cluster_id":1,"member_id":2,"revision":7,"raft_term":3}}"#,
            &addresses,
            Table::MemberListJson
        ),
        r#"{"header":{"cluster_id":<n>,"member_id":<n>,"raft_term":<n>}}"#
    );
    assert_ne!(
        mask("a\n1\n", &addresses, Table::None),
        mask("a\n2\n", &addresses, Table::None),
        "values are never masked"
    );
}

/// The comparison itself can fail: a key only etcd has makes `get` differ.
#[test]
fn a_real_difference_fails_the_comparison() {
    let Some(pair) = Pair::start(Target::TestBackend) else {
        return;
    };
    let put = etcdctl(&pair.etcd.endpoint, &["put", "only-in-etcd", "1"], None);
    assert!(put.success, "{put:?}");
    let compared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pair.same(&["get", "only-in-etcd"])
    }));
    assert!(compared.is_err(), "the comparison missed a difference");
}
