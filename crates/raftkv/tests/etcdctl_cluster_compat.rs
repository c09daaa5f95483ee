//! etcdctl 3.4 against a real single-member etcd and against a three-member
//! raftkv cluster of real `raftkv serve` processes, command for command.
//!
//! Both sides get the same `--max-request-bytes` and `--max-txn-ops` and the
//! same commands; etcdctl talks to all three raftkv members at once (so
//! requests land on followers too) and to etcd's one member. Outcomes (exit
//! status, stdout, etcdctl's error lines) must match once these are masked:
//! - in every output: loopback addresses (`127.0.0.1:port`, with or without
//!   `http://`), cluster and member ids, leader ids, Raft term and index, db
//!   sizes, server versions, member names in JSON, hashes, timestamps,
//!   latencies;
//! - `endpoint status` tables: id, version, db size, is-leader, raft term,
//!   raft index, raft applied index (exactly one raftkv member must lead);
//! - `member list` tables: id, name, peer URLs, client URLs (the names are
//!   checked apart: they must be the cluster's own);
//! - `member list -w json`: the header's revision (raftkv adds it);
//! - `endpoint hashkv`: the hash (the raftkv members must agree with each
//!   other);
//! - commands over several endpoints print one line (or JSON array element)
//!   per endpoint: raftkv's three, masked, must each be etcd's one, and are
//!   compared as the set of distinct lines (or elements).
//!
//! Revisions are never masked: both stores start at revision 1 and see the
//! same writes. Needs `etcd` and `etcdctl` on PATH (`apt-get install -y
//! etcd-server etcd-client`); without them each test says so and passes,
//! except under CI (`CI=true`), where it fails. Each test takes about 3 s.
//!
//! Lease ids are chosen by each server, so lease commands run with each
//! side's own id and compare with the ids masked (see `Pair::same_leased`).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::etcd::{etcd_present, EtcdCluster};
use common::{Cluster, Members};
use regex::Regex;

const REQUEST_BYTES_MAX: usize = 10_000;
const TXN_OPS_MAX: usize = 3;

/// Whether `etcd` and `etcdctl` both run (see [`common::binary_present`]).
fn tools_present() -> bool {
    etcd_present() && common::etcdctl_present()
}

/// What etcdctl did: exit status, stdout, stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
}

/// `endpoints` is a comma-separated list of `host:port`: with `http://`,
/// etcdctl's per-endpoint commands send the URL as the HTTP/2 `:authority`.
fn etcdctl(endpoints: &str, args: &[&str], stdin: Option<&[u8]>) -> Outcome {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
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

/// How an output is compared: which columns of a comma-separated table line
/// differ legitimately, and whether it holds one line (or JSON array
/// element) per endpoint or member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    /// Free text and JSON, compared whole.
    None,
    /// One line per endpoint (`endpoint health`).
    PerEndpoint,
    /// A JSON array with one element per endpoint (`endpoint status -w json`).
    PerEndpointJson,
    /// `endpoint status`: endpoint, id, version, db size, is leader, is
    /// learner, raft term, raft index, raft applied index, errors.
    EndpointStatus,
    /// `member list`: id, status, name, peer urls, client urls, is learner.
    MemberList,
    /// `member list -w json`: our Cluster answers add the store's revision to
    /// the header, which etcd's leave out, and list only the answering
    /// member's client URLs, so client URLs are dropped on both sides.
    MemberListJson,
    /// `endpoint hashkv`: endpoint, hash.
    HashKv,
}

impl Table {
    fn masked_columns(self) -> &'static [usize] {
        match self {
            Table::None | Table::PerEndpoint | Table::PerEndpointJson | Table::MemberListJson => {
                &[]
            }
            Table::EndpointStatus => &[1, 2, 3, 4, 6, 7, 8],
            Table::MemberList => &[0, 2, 3, 4],
            Table::HashKv => &[1],
        }
    }

    fn per_endpoint_lines(self) -> bool {
        matches!(
            self,
            Table::PerEndpoint | Table::EndpointStatus | Table::MemberList | Table::HashKv
        )
    }

    fn per_endpoint_json(self) -> bool {
        matches!(self, Table::PerEndpointJson | Table::MemberListJson)
    }
}

fn masks() -> &'static [(Regex, &'static str)] {
    static MASKS: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    MASKS.get_or_init(|| {
        [
            (r"(http://)?127\.0\.0\.1:\d+", "<address>"),
            (r#""ts":"[^"]*""#, r#""ts":"<ts>""#),
            (r#""target":"[^"]*""#, r#""target":"<target>""#),
            (
                r#""(cluster_id|member_id|raft_term|ID|leader|raftIndex|raftTerm|raftAppliedIndex|dbSize|dbSizeInUse|hash)":\d+"#,
                r#""$1":"<n>""#,
            ),
            (r#""version":"[^"]*""#, r#""version":"<version>""#),
            (r#""name":"[^"]*""#, r#""name":"<name>""#),
            (r#""(ClusterID|MemberID|RaftTerm)" : \d+"#, r#""$1" : <n>"#),
            (r"took = [0-9.]+[a-zµ]*s", "took = <time>"),
        ]
        .into_iter()
        .map(|(pattern, replacement)| (Regex::new(pattern).expect("mask pattern"), replacement))
        .collect()
    })
}

fn mask(text: &str, table: Table) -> String {
    let mut text = text.to_owned();
    for (pattern, replacement) in masks() {
        text = pattern.replace_all(&text, *replacement).into_owned();
    }
    if table == Table::MemberListJson {
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

/// The outcome with volatile fields masked, and for per-endpoint outputs the
/// repeats collapsed: three members that each printed the same masked line
/// (or JSON element) read as that line once, as etcd's one member prints it.
fn masked(outcome: &Outcome, table: Table) -> Outcome {
    let mut stdout = mask(&outcome.stdout, table);
    let mut stderr = mask(&outcome.stderr, Table::None);
    if table.per_endpoint_lines() {
        stdout = collapse_repeated_lines(&stdout);
        stderr = collapse_repeated_lines(&stderr);
    }
    if table.per_endpoint_json() {
        stdout = collapse_repeated_elements(&stdout);
    }
    Outcome {
        success: outcome.success,
        stdout,
        stderr,
    }
}

/// Sorted distinct lines: per-endpoint commands print in completion order.
fn collapse_repeated_lines(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines.dedup();
    lines.join("\n")
}

/// Every JSON array (at any depth) with its repeated elements dropped; text
/// that is not JSON is returned as it is, so the comparison shows it whole.
fn collapse_repeated_elements(text: &str) -> String {
    fn collapse(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Array(elements) => {
                elements.iter_mut().for_each(collapse);
                let mut distinct: Vec<serde_json::Value> = Vec::new();
                for element in elements.drain(..) {
                    if !distinct.contains(&element) {
                        distinct.push(element);
                    }
                }
                *elements = distinct;
            }
            serde_json::Value::Object(fields) => fields.values_mut().for_each(collapse),
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut value) => {
            collapse(&mut value);
            value.to_string()
        }
        Err(_) => text.to_owned(),
    }
}

/// One lease's id on each side, as etcdctl prints it (hex).
struct LeaseIds {
    etcd: String,
    ours: String,
}

/// etcd and a three-member raftkv cluster, side by side.
struct Pair {
    _etcd: EtcdCluster,
    /// etcd's one member's `host:port`, for etcdctl.
    etcd: String,
    /// Kept so its members run as long as the pair does.
    _cluster: Cluster,
    /// All three members' `host:port`, comma-separated, for etcdctl.
    ours: String,
}

impl Pair {
    /// `None` (and a message) when the binaries are missing outside CI.
    async fn start() -> Option<Pair> {
        if !tools_present() {
            return None;
        }
        let cluster = Cluster::start(
            3,
            &[
                &format!("--max-request-bytes={REQUEST_BYTES_MAX}"),
                &format!("--max-txn-ops={TXN_OPS_MAX}"),
            ],
        );
        let etcd = EtcdCluster::start(
            1,
            &[
                &format!("--max-request-bytes={REQUEST_BYTES_MAX}"),
                &format!("--max-txn-ops={TXN_OPS_MAX}"),
            ],
        )
        .await;
        cluster.wait_for_leader(None).await;
        let ours = cluster
            .endpoints()
            .iter()
            .map(|endpoint| endpoint.trim_start_matches("http://").to_owned())
            .collect::<Vec<_>>()
            .join(",");
        // Every member answers a linearizable read: each knows the leader.
        for endpoint in cluster.endpoints() {
            common::current_revision(&[endpoint]).await;
        }
        Some(Pair {
            etcd: etcd.endpoint(0).trim_start_matches("http://").to_owned(),
            _etcd: etcd,
            _cluster: cluster,
            ours,
        })
    }

    /// Runs etcdctl against both; asserts the masked outcomes match and
    /// returns both raw outcomes (etcd's first).
    fn same_with(&self, args: &[&str], stdin: Option<&[u8]>, table: Table) -> (Outcome, Outcome) {
        let etcd = etcdctl(&self.etcd, args, stdin);
        let ours = etcdctl(&self.ours, args, stdin);
        assert_eq!(
            masked(&ours, table),
            masked(&etcd, table),
            "etcdctl {args:?} differs (left: raftkv, right: etcd)\n\
             raw raftkv: {ours:?}\nraw etcd: {etcd:?}"
        );
        (etcd, ours)
    }

    /// Like [`Pair::same_with`] for a command that must succeed; returns
    /// etcd's stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (etcd, _) = self.same_with(args, None, Table::None);
        assert!(etcd.success, "etcdctl {args:?} failed on both: {etcd:?}");
        etcd.stdout
    }

    /// Like [`Pair::same_with`] for a command that must fail with `message`.
    fn fails_with(&self, args: &[&str], stdin: Option<&[u8]>, message: &str) {
        let (etcd, _) = self.same_with(args, stdin, Table::None);
        assert!(
            !etcd.success && etcd.stderr.contains(&format!("Error: {message}")),
            "etcdctl {args:?} should fail with {message:?} on both: {etcd:?}"
        );
    }

    /// `etcdctl lease grant <ttl_seconds>` on both: each side's lease id.
    fn grant(&self, ttl_seconds: &str) -> LeaseIds {
        let granted_id = |endpoints: &str| -> String {
            let outcome = etcdctl(endpoints, &["lease", "grant", ttl_seconds], None);
            let id = outcome
                .stdout
                .strip_prefix("lease ")
                .and_then(|rest| rest.split_once(' '))
                .map(|(id, _)| id.to_owned());
            id.unwrap_or_else(|| panic!("etcdctl lease grant: {outcome:?}"))
        };
        LeaseIds {
            etcd: granted_id(&self.etcd),
            ours: granted_id(&self.ours),
        }
    }

    /// Like [`Pair::same_with`], with `{lease}` in `args` standing for each
    /// side's own id of one lease; the ids (each server picks its own) and
    /// the remaining TTL (it depends on when each was asked) are masked.
    /// Returns etcd's masked outcome.
    fn same_leased(&self, args: &[&str], ids: &LeaseIds) -> Outcome {
        let run = |endpoints: &str, id: &str| -> Outcome {
            let args: Vec<String> = args.iter().map(|arg| arg.replace("{lease}", id)).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let outcome = etcdctl(endpoints, &args, None);
            let decimal = i64::from_str_radix(id, 16).expect("a hex lease id");
            let remaining = Regex::new(r"remaining\(\d+s\)").expect("remaining pattern");
            let hide = |text: &str| -> String {
                let text = text
                    .replace(id, "<lease>")
                    .replace(&decimal.to_string(), "<lease>");
                remaining.replace_all(&text, "remaining(<n>s)").into_owned()
            };
            Outcome {
                success: outcome.success,
                stdout: hide(&outcome.stdout),
                stderr: hide(&outcome.stderr),
            }
        };
        let etcd = masked(&run(&self.etcd, &ids.etcd), Table::None);
        let ours = masked(&run(&self.ours, &ids.ours), Table::None);
        assert_eq!(
            ours, etcd,
            "etcdctl {args:?} differs (left: raftkv, right: etcd)"
        );
        etcd
    }

    fn txn(&self, flags: &[&str], script: &str) -> Outcome {
        let args: Vec<&str> = ["txn"].iter().chain(flags).copied().collect();
        self.same_with(&args, Some(script.as_bytes()), Table::None)
            .0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_value_commands_match_etcd() {
    let Some(pair) = Pair::start().await else {
        return;
    };
    for (key, value) in [("a", "1"), ("b", "2"), ("foo/1", "x"), ("foo/2", "y")] {
        assert_eq!(pair.ok(&["put", key, value]), "OK\n");
    }
    assert_eq!(pair.ok(&["put", "a", "11", "--prev-kv"]), "OK\na\n1\n");
    assert_eq!(pair.ok(&["get", "a"]), "a\n11\n");
    assert!(pair
        .ok(&["get", "a", "-w", "json"])
        .contains(r#""revision":6"#));
    assert_eq!(pair.ok(&["get", "a", "--rev", "2"]), "a\n1\n");
    assert_eq!(pair.ok(&["get", "--prefix", "foo"]), "foo/1\nx\nfoo/2\ny\n");
    pair.ok(&["get", "--prefix", "foo", "--limit", "1", "-w", "json"]);
    pair.ok(&[
        "get",
        "--from-key",
        "a",
        "--sort-by=VALUE",
        "--order=DESCEND",
    ]);
    pair.ok(&["get", "--from-key", "a", "--sort-by=MODIFY"]);
    pair.ok(&["get", "--prefix", "foo", "--keys-only"]);
    pair.ok(&["get", "--from-key", "a", "--limit", "2", "-w", "json"]);
    assert_eq!(pair.ok(&["get", "a", "--print-value-only"]), "11\n");
    pair.ok(&["get", "a", "-w", "fields"]);
    assert_eq!(pair.ok(&["del", "b"]), "1\n");
    assert_eq!(pair.ok(&["del", "b"]), "0\n");
    pair.ok(&["del", "--prefix", "foo", "--prev-kv", "-w", "json"]);

    let txn = pair.txn(
        &[],
        "value(\"a\") = \"11\"\nversion(\"a\") = \"2\"\nmod(\"a\") > \"5\"\n\n\
         put c 3\nget a\n\nput failed 1\n\n",
    );
    assert!(txn.stdout.starts_with("SUCCESS"), "{txn:?}");
    let json = pair.txn(
        &["-w", "json"],
        "create(\"a\") = \"99\"\n\nput never 1\n\ndel c\nget --prefix \"\"\n\n",
    );
    assert!(json.stdout.contains(r#""header""#), "{json:?}");
    pair.ok(&["get", "", "--prefix", "-w", "json"]);

    for value in ["1", "2", "3"] {
        pair.ok(&["put", "k", value]);
    }
    let revision = pair.ok(&["get", "k", "-w", "json"]);
    assert!(revision.contains(r#""mod_revision":13"#), "{revision}");
    assert_eq!(pair.ok(&["compaction", "12"]), "compacted revision 12\n");
    pair.fails_with(
        &["get", "k", "--rev", "11"],
        None,
        "etcdserver: mvcc: required revision has been compacted",
    );
    assert_eq!(pair.ok(&["get", "k", "--rev", "12"]), "k\n2\n");
    pair.fails_with(
        &["compaction", "99"],
        None,
        "etcdserver: mvcc: required revision is a future revision",
    );
    pair.fails_with(
        &["get", "k", "--rev", "99"],
        None,
        "etcdserver: mvcc: required revision is a future revision",
    );
    assert_eq!(
        pair.ok(&["compaction", "13", "--physical"]),
        "compacted revision 13\n"
    );

    pair.fails_with(&["put", "", "v"], None, "etcdserver: key is not provided");
    pair.fails_with(&["get", ""], None, "etcdserver: key is not provided");
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
    pair.fails_with(
        &["put", "large"],
        Some(&vec![b'x'; REQUEST_BYTES_MAX + 2_000]),
        "etcdserver: request is too large",
    );
    pair.ok(&["get", "", "--prefix", "-w", "json"]);

    // The comparison itself can fail: a key only etcd has makes `get` differ.
    let put = etcdctl(&pair.etcd, &["put", "only-in-etcd", "1"], None);
    assert!(put.success, "{put:?}");
    let compared = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pair.same_with(&["get", "only-in-etcd"], None, Table::None)
    }));
    assert!(compared.is_err(), "the comparison missed a difference");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_commands_match_etcd() {
    let Some(pair) = Pair::start().await else {
        return;
    };
    let lease = pair.grant("60");
    assert_eq!(
        pair.same_leased(&["lease", "timetolive", "{lease}"], &lease)
            .stdout,
        "lease <lease> granted with TTL(60s), remaining(<n>s)\n"
    );
    pair.same_leased(&["put", "k1", "v1", "--lease={lease}"], &lease);
    pair.ok(&["put", "plain", "v"]);
    pair.same_leased(&["get", "k1", "-w", "json"], &lease);
    assert_eq!(
        pair.same_leased(&["lease", "timetolive", "{lease}", "--keys"], &lease)
            .stdout,
        "lease <lease> granted with TTL(60s), remaining(<n>s), attached keys([k1])\n"
    );
    assert_eq!(
        pair.same_leased(&["lease", "list"], &lease).stdout,
        "found 1 leases\n<lease>\n"
    );
    // etcdctl picks one of the three members for each run: repeated runs
    // reach followers too, which pass the keepalive to the leader.
    for _ in 0..3 {
        assert_eq!(
            pair.same_leased(&["lease", "keep-alive", "--once", "{lease}"], &lease)
                .stdout,
            "lease <lease> keepalived with TTL(60)\n"
        );
    }
    assert_eq!(
        pair.same_leased(&["lease", "revoke", "{lease}"], &lease)
            .stdout,
        "lease <lease> revoked\n"
    );
    assert_eq!(pair.ok(&["get", "", "--prefix"]), "plain\nv\n");
    assert_eq!(
        pair.same_leased(&["lease", "timetolive", "{lease}"], &lease)
            .stdout,
        "lease <lease> already expired\n"
    );
    pair.same_leased(&["lease", "keep-alive", "--once", "{lease}"], &lease);
    let revoked_again = pair.same_leased(&["lease", "revoke", "{lease}"], &lease);
    assert!(
        revoked_again
            .stderr
            .contains("etcdserver: requested lease not found"),
        "{revoked_again:?}"
    );
    let (too_long, _) = pair.same_with(&["lease", "grant", "9000000001"], None, Table::None);
    assert!(
        too_long
            .stderr
            .contains("Error: failed to grant lease (etcdserver: too large lease TTL)"),
        "{too_long:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_commands_over_every_endpoint_match_etcd() {
    let Some(pair) = Pair::start().await else {
        return;
    };
    pair.ok(&["put", "a", "1"]);

    let (_, status) = pair.same_with(&["endpoint", "status"], None, Table::EndpointStatus);
    let leading: Vec<&str> = status
        .stdout
        .lines()
        .filter(|line| line.split(", ").nth(4) == Some("true"))
        .collect();
    assert_eq!(
        (status.stdout.lines().count(), leading.len()),
        (3, 1),
        "three members, one leader: {status:?}"
    );
    pair.same_with(
        &["endpoint", "status", "-w", "json"],
        None,
        Table::PerEndpointJson,
    );

    // etcdctl 3.4 reports health on stderr.
    let (_, health) = pair.same_with(&["endpoint", "health"], None, Table::PerEndpoint);
    assert_eq!(
        health.stderr.matches(" is healthy: ").count(),
        3,
        "{health:?}"
    );

    let (_, hashes) = pair.same_with(&["endpoint", "hashkv"], None, Table::HashKv);
    let values: Vec<&str> = hashes
        .stdout
        .lines()
        .filter_map(|line| line.rsplit(", ").next())
        .collect();
    assert_eq!(values.len(), 3, "{hashes:?}");
    assert!(
        values.windows(2).all(|pair| pair[0] == pair[1]),
        "the members' stores differ: {hashes:?}"
    );

    let (_, members) = pair.same_with(&["member", "list"], None, Table::MemberList);
    // Every member's client URLs are checked unmasked by the etcd-client
    // test `member_list_names_every_members_client_urls`.
    let mut names: Vec<&str> = members
        .stdout
        .lines()
        .filter_map(|line| line.split(", ").nth(2))
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["m1", "m2", "m3"], "{members:?}");
    pair.same_with(
        &["member", "list", "-w", "json"],
        None,
        Table::MemberListJson,
    );
    assert_eq!(pair.ok(&["alarm", "list"]), "");
}

/// etcdctl's `member add` answer with the new member's and the cluster's
/// ids masked, and without its `ETCD_INITIAL_CLUSTER` line, which lists the
/// other members (three of ours, etcd's one).
fn member_added(outcome: &Outcome) -> Outcome {
    static IDS: OnceLock<Regex> = OnceLock::new();
    let ids = IDS.get_or_init(|| {
        Regex::new(r"^Member +[0-9a-f]+ added to cluster +[0-9a-f]+$").expect("a valid pattern")
    });
    let mut masked = masked(outcome, Table::None);
    masked.stdout = masked
        .stdout
        .lines()
        .filter(|line| !line.starts_with("ETCD_INITIAL_CLUSTER="))
        .map(|line| ids.replace(line, "Member <id> added to cluster <id>"))
        .collect::<Vec<_>>()
        .join("\n");
    masked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_add_and_remove_through_any_member_match_etcd() {
    let Some(pair) = Pair::start().await else {
        return;
    };
    let add = |endpoint: &str, port: usize| {
        let url = format!("--peer-urls=http://127.0.0.1:{port}");
        etcdctl(
            endpoint,
            &["member", "add", "joining", "--learner", &url],
            None,
        )
    };
    let etcd = add(&pair.etcd, 1);
    assert!(etcd.success, "etcd: {etcd:?}");
    // Each raftkv member alone: two of the three are followers, which pass
    // the change on to the leader as etcd's followers do.
    for (index, endpoint) in pair.ours.split(',').enumerate() {
        let ours = add(endpoint, 1 + index);
        assert_eq!(
            member_added(&ours),
            member_added(&etcd),
            "etcdctl member add through {endpoint} differs (left: raftkv, right: etcd)\n\
             raw raftkv: {ours:?}\nraw etcd: {etcd:?}"
        );
        // etcdctl pads the id to 16 places with spaces.
        let id = ours
            .stdout
            .strip_prefix("Member ")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no member id in {ours:?}"));
        let removed = etcdctl(endpoint, &["member", "remove", &id], None);
        assert!(
            removed.success
                && removed
                    .stdout
                    .split_whitespace()
                    .take(3)
                    .eq(["Member", &id, "removed"]),
            "etcdctl member remove {id} through {endpoint}: {removed:?}"
        );
    }
}

#[test]
fn masking_hides_only_volatile_fields() {
    assert_eq!(
        mask(
            "127.0.0.1:5555, bdae9bbc11dd390d, 3.4.23, 20 kB, true, false, 2, 5, 5, ",
            Table::EndpointStatus
        ),
        "<address>, <masked>, <masked>, <masked>, <masked>, false, <masked>, <masked>, <masked>, "
    );
    assert_eq!(
        mask(
            "8e9e05c52164694d, started, m1, http://127.0.0.1:2380, http://127.0.0.1:2379, false",
            Table::MemberList
        ),
        "<masked>, started, <masked>, <masked>, <masked>, false"
    );
    assert_eq!(
        mask(
            r#"{"header":{"cluster_id":1,"member_id":2,"revision":7,"raft_term":3}}"#,
            Table::None
        ),
        r#"{"header":{"cluster_id":"<n>","member_id":"<n>","revision":7,"raft_term":"<n>"}}"#
    );
    assert_ne!(
        masked(
            &Outcome {
                success: true,
                stdout: "a\n1\n".to_owned(),
                stderr: String::new()
            },
            Table::None
        ),
        masked(
            &Outcome {
                success: true,
                stdout: "a\n2\n".to_owned(),
                stderr: String::new()
            },
            Table::None
        ),
        "values are never masked"
    );
    let status = |lines: &str| Outcome {
        success: true,
        stdout: lines.to_owned(),
        stderr: String::new(),
    };
    let etcd = status("127.0.0.1:1, 1, 3.4.23, 20 kB, true, false, 2, 5, 5, \n");
    let agreeing = status(
        "127.0.0.1:2, a, 0.1.0, 1 kB, false, false, 3, 9, 9, \n\
         127.0.0.1:3, b, 0.1.0, 1 kB, true, false, 3, 9, 9, \n\
         127.0.0.1:4, c, 0.1.0, 1 kB, false, false, 3, 9, 9, \n",
    );
    let one_learner = status(
        "127.0.0.1:2, a, 0.1.0, 1 kB, false, false, 3, 9, 9, \n\
         127.0.0.1:3, b, 0.1.0, 1 kB, true, false, 3, 9, 9, \n\
         127.0.0.1:4, c, 0.1.0, 1 kB, false, true, 3, 9, 9, \n",
    );
    assert_eq!(
        masked(&agreeing, Table::EndpointStatus),
        masked(&etcd, Table::EndpointStatus)
    );
    assert_ne!(
        masked(&one_learner, Table::EndpointStatus),
        masked(&etcd, Table::EndpointStatus),
        "one member unlike etcd's is a difference"
    );
    assert_eq!(
        collapse_repeated_lines("x is healthy\nx is healthy\nx is healthy\n"),
        "x is healthy"
    );
    assert_ne!(
        collapse_repeated_lines("a, 1\nb, 1\n"),
        collapse_repeated_lines("a, 1\n"),
        "distinct lines stay"
    );
    assert_eq!(
        collapse_repeated_elements("a\n[1,1]\n"),
        "a\n[1,1]\n",
        "masked text that is not JSON stays whole"
    );
    assert_eq!(
        collapse_repeated_elements(r#"[{"a":[1,1]},{"a":[1]},{"a":[2]}]"#),
        r#"[{"a":[1]},{"a":[2]}]"#
    );
    assert_eq!(
        mask(
            r#"{"header":{"cluster_id":1,"revision":7,"raft_term":3},"members":[{"ID":5,"name":"m1","peerURLs":["http://127.0.0.1:2380"],"clientURLs":["http://127.0.0.1:2379"]}]}"#,
            Table::MemberListJson
        ),
        r#"{"header":{"cluster_id":"<n>","raft_term":"<n>"},"members":[{"ID":"<n>","name":"<name>","peerURLs":["<address>"],"clientURLs":["<address>"]}]}"#
    );
}
