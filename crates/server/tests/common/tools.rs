//! Whether the etcd binaries a test needs are installed, with one rule for
//! every test that needs them: run when present; when missing, say so and
//! skip locally, but fail under CI (`CI=true`) so CI never skips silently.

use std::io::Write;
use std::process::Command;

/// etcd answers `--version`, etcdctl 3.4 only `version`.
fn version_argument(binary: &str) -> &'static str {
    if binary == "etcdctl" {
        "version"
    } else {
        "--version"
    }
}

/// True when every binary runs; otherwise false after a message, or a panic
/// under CI.
pub fn present(binaries: &[&str]) -> bool {
    let missing: Vec<&str> = binaries
        .iter()
        .copied()
        .filter(|binary| {
            !Command::new(binary)
                .arg(version_argument(binary))
                .output()
                .is_ok_and(|output| output.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let under_ci = std::env::var("CI").is_ok_and(|value| value == "true");
    assert!(
        !under_ci,
        "{missing:?} not on PATH under CI=true: install them with \
         `apt-get install -y etcd-server etcd-client`; these tests must not be skipped in CI"
    );
    // Straight to stderr, past the test harness's capture, so a local run
    // shows that nothing was checked.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {missing:?} not on PATH; install them with \
         `apt-get install -y etcd-server etcd-client` to run this test"
    );
    false
}
