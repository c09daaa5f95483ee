//! `etcdctl watch` against etcd and against us. etcdctl watches until it is
//! killed (or the server cancels the watch), so each run starts it in the
//! background, makes the writes, waits until its output shows the last
//! write's event (bounded), stops it by its own child handle, and compares
//! everything it printed. Response boundaries (visible in JSON output)
//! depend on whether a write lands before or after a watch catches up, so
//! JSON runs read history only.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{etcdctl, Outcome, Pair, Table};

/// How long a watch may take to print what a test waits for.
const WATCH_OUTPUT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to wait for a probe write to show before writing it again.
const PROBE_WAIT: Duration = Duration::from_millis(500);
/// Probe writes at most before a watch without a start revision counts as
/// never established.
const PROBES_MAX: usize = 40;

/// `etcdctl watch` running in the background.
struct Watching {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Watching {
    fn start(endpoint: &str, args: &[&str]) -> Watching {
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .arg("--dial-timeout=5s")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("etcdctl runs");
        let mut pipe = child.stdout.take().expect("etcdctl's stdout");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let collected = Arc::clone(&stdout);
        let reader = std::thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(read @ 1..) = pipe.read(&mut buffer) {
                collected.lock().unwrap().extend_from_slice(&buffer[..read]);
            }
        });
        Watching {
            child,
            stdout,
            reader,
        }
    }

    fn output(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    /// Waits until the output contains `text` or `timeout` passes.
    fn wait_for(&self, text: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.output().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits (bounded) for etcdctl to end by itself, kills it otherwise, and
    /// returns what it did.
    fn finish(mut self, timeout: Duration) -> Outcome {
        let deadline = Instant::now() + timeout;
        let mut status = None;
        while Instant::now() < deadline {
            status = self.child.try_wait().expect("etcdctl's status");
            if status.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let success = match status {
            Some(status) => status.success(),
            None => {
                // Only the child this test started, by its handle.
                let _ = self.child.kill();
                let _ = self.child.wait();
                false
            }
        };
        self.reader
            .join()
            .expect("the output reader ends with etcdctl");
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = pipe.read_to_string(&mut stderr);
        }
        let stdout = String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned();
        Outcome {
            success,
            stdout,
            stderr,
        }
    }
}

/// Runs `writes` (etcdctl commands) on `endpoint`, each of which must work.
fn write_all(endpoint: &str, writes: &[&[&str]]) {
    for write in writes {
        let outcome = etcdctl(endpoint, write, None);
        assert!(outcome.success, "etcdctl {write:?}: {outcome:?}");
    }
}

impl Pair {
    /// Runs `etcdctl <args>` in the background on both, makes `writes`
    /// while it watches, stops it once its output shows `until`, and
    /// compares the two.
    fn watch_during(&self, args: &[&str], writes: &[&[&str]], until: &str) -> Outcome {
        let mut outcomes = [&self.etcd.endpoint, &self.ours.endpoint].map(|endpoint| {
            let watching = Watching::start(endpoint, args);
            write_all(endpoint, writes);
            let shown = watching.wait_for(until, WATCH_OUTPUT_TIMEOUT);
            let outcome = watching.finish(Duration::ZERO);
            assert!(
                shown,
                "etcdctl {args:?} on {endpoint} never showed {until:?}: {outcome:?}"
            );
            outcome
        });
        let [etcd, ours] = &mut outcomes;
        self.compare(args, etcd, ours, Table::None)
    }

    /// Like [`Pair::watch_during`] for a watch without a start revision,
    /// which sees only writes made after it is established: `probe` (a put
    /// of a watched key) is written until the watch shows it, then the
    /// writes follow. The comparison starts after the last probe.
    fn watch_from_now(&self, args: &[&str], probe: &[&str], writes: &[&[&str]], until: &str) {
        let probe_shown = format!("PUT\n{}\n{}\n", probe[1], probe[2]);
        let mut outcomes = [&self.etcd.endpoint, &self.ours.endpoint].map(|endpoint| {
            let watching = Watching::start(endpoint, args);
            let established = (0..PROBES_MAX).any(|_| {
                write_all(endpoint, &[probe]);
                watching.wait_for(&probe_shown, PROBE_WAIT)
            });
            write_all(endpoint, writes);
            let shown = watching.wait_for(until, WATCH_OUTPUT_TIMEOUT);
            let mut outcome = watching.finish(Duration::ZERO);
            assert!(
                established && shown,
                "etcdctl {args:?} on {endpoint}: established {established}, showed {until:?} {shown}: {outcome:?}"
            );
            let after_probes = outcome.stdout.rfind(&probe_shown).unwrap() + probe_shown.len();
            outcome.stdout = outcome.stdout[after_probes..].to_owned();
            outcome
        });
        let [etcd, ours] = &mut outcomes;
        self.compare(args, etcd, ours, Table::None);
    }

    /// A watch the server ends by itself (a compacted start revision).
    fn watch_canceled(&self, args: &[&str]) -> Outcome {
        let mut outcomes = [&self.etcd.endpoint, &self.ours.endpoint]
            .map(|endpoint| Watching::start(endpoint, args).finish(WATCH_OUTPUT_TIMEOUT));
        let [etcd, ours] = &mut outcomes;
        self.compare(args, etcd, ours, Table::None)
    }
}

/// `--rev` from history into live writes, with `--prefix`, `--prev-kv`,
/// JSON output (revisions included), and a compacted start revision.
pub(super) fn watch_history_and_live(pair: &Pair) {
    pair.ok(&["put", "k", "1"]); // revision 2
    pair.ok(&["put", "p/a", "1"]); // 3
    pair.ok(&["put", "k", "2"]); // 4
    pair.ok(&["del", "k"]); // 5
    pair.ok(&["put", "p/b", "1"]); // 6
    let seen = pair.watch_during(
        &["watch", "k", "--rev=2"],
        &[&["put", "k", "3"], &["put", "q", "x"], &["put", "k", "end"]],
        "k\nend\n",
    );
    assert_eq!(
        seen.stdout,
        "PUT\nk\n1\nPUT\nk\n2\nDELETE\nk\n\nPUT\nk\n3\nPUT\nk\nend\n"
    );
    pair.watch_during(
        &["watch", "--prefix", "p/", "--rev=3", "--prev-kv"],
        &[
            &["put", "p/a", "2"],
            &["del", "p/b"],
            &["put", "p/z", "end"],
        ],
        "p/z\nend\n",
    );
    // JSON shows how events split into responses, which for writes made
    // while a watch catches up depends on timing: history only here.
    pair.watch_during(
        &["watch", "", "--prefix", "--rev=1", "-w", "json"],
        &[],
        // The key "p/z" in base64, last in history.
        "cC96",
    );
    // A watch from a revision still ahead starts there.
    pair.watch_during(
        &["watch", "k", "--rev=15"],
        &[&["put", "k", "a"], &["put", "k", "b"], &["put", "k", "end"]],
        "k\nend\n",
    );
    pair.ok(&["compaction", "6"]);
    let canceled = pair.watch_canceled(&["watch", "k", "--rev=5"]);
    assert!(
        !canceled.success
            && canceled.stderr.contains(
                "watch was canceled (etcdserver: mvcc: required revision has been compacted)"
            ),
        "{canceled:?}"
    );
    pair.watch_during(
        &[
            "watch",
            "--prefix",
            "p/",
            "--rev=6",
            "--prev-kv",
            "-w",
            "json",
        ],
        &[],
        "cC96",
    );
}

/// Watches that start at the current revision: only later writes show.
pub(super) fn watch_without_start_revision(pair: &Pair) {
    pair.ok(&["put", "k", "before"]);
    pair.watch_from_now(
        &["watch", "k"],
        &["put", "k", "probe"],
        &[
            &["put", "k", "1"],
            &["put", "other", "x"],
            &["del", "k"],
            &["put", "k", "end"],
        ],
        "k\nend\n",
    );
    pair.watch_from_now(
        &["watch", "--prefix", "dir/"],
        &["put", "dir/probe", "probe"],
        &[
            &["put", "dir/a", "1"],
            &["put", "dir", "outside"],
            &["put", "dir/b", "2"],
            &["del", "--prefix", "dir/"],
            &["put", "dir/z", "end"],
        ],
        "dir/z\nend\n",
    );
}
