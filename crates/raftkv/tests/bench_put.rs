//! `raftkv bench put` end to end against raftkv alone, for a handful of puts:
//! the report has its header and one row per client count, with every put
//! answered, rounds summed into one row. Takes a few seconds (two `raftkv
//! serve` processes, one after the other).

use std::process::Command;

#[test]
fn bench_put_reports_one_row_per_client_count() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_raftkv"))
        .args(["bench", "put", "--systems", "raftkv", "--clients", "1,3"])
        .args(["--requests", "20", "--rounds", "2", "--dir"])
        .arg(dir.path())
        .output()
        .expect("run raftkv bench put");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(
        lines[0].starts_with("| members | clients | system | puts/s |"),
        "{stdout}"
    );
    for (line, clients) in lines[2..].iter().zip(["1", "3"]) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert_eq!(cells[1..4], ["1", clients, "raftkv"], "{line}");
        let puts_per_second: f64 = cells[4].parse().expect("puts/s is a number");
        assert!(puts_per_second > 0.0, "{line}");
        assert_eq!(cells[9], "0", "no put may fail: {line}");
    }
    let leftovers = std::fs::read_dir(dir.path()).expect("read --dir").count();
    assert_eq!(leftovers, 0, "data directories are removed after the run");
}
