//! Runs the mixed-fault workload across a matrix of core and environment
//! settings (PreVote and CheckQuorum off, one entry per append, constant
//! snapshots, a very lossy network, a slow disk, heavy client load, fast
//! heartbeats) to find bugs that the default settings hide.
//!
//! Run: `cargo run --release -p sim --example config_matrix -- [SEEDS] [NODES]`
//! (defaults: 300 seeds, 5 nodes). Prints one line per setting and the
//! first violations; exits non-zero if any seed failed.

use sim::{run_seeds, FaultSet, SimConfig};

/// A change to the default configuration.
type Adjust = fn(&mut SimConfig);

/// The settings, each a name and its change.
const VARIANTS: &[(&str, Adjust)] = &[
    ("defaults", |_| {}),
    ("no PreVote", |config| config.pre_vote = false),
    ("no CheckQuorum", |config| config.check_quorum = false),
    ("neither PreVote nor CheckQuorum", |config| {
        config.pre_vote = false;
        config.check_quorum = false;
    }),
    ("one entry per append", |config| {
        config.message_bytes_max = 1
    }),
    ("snapshot every 4 entries", |config| {
        config.snapshot_interval_entries = 4
    }),
    ("30% loss, 10% duplicates", |config| {
        config.network.drop_probability = 0.3;
        config.network.duplicate_probability = 0.1;
    }),
    ("fsync up to 80 ms", |config| {
        config.disk.fsync_us_max = 80_000
    }),
    ("20 busy clients", |config| {
        config.workload.client_count = 20;
        config.workload.think_us_max = 1_000;
    }),
    ("heartbeat every tick, election after 3", |config| {
        config.heartbeat_ticks = 1;
        config.election_ticks = 3;
    }),
];

fn main() {
    let mut arguments = std::env::args().skip(1).map(|argument| {
        argument
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("arguments are numbers: [SEEDS] [NODES], got {argument:?}"))
    });
    let seeds = arguments.next().unwrap_or(300);
    let nodes = arguments.next().unwrap_or(5) as usize;
    let mut failed = false;
    for (name, adjust) in VARIANTS {
        let mut config = SimConfig::new(nodes, FaultSet::all());
        adjust(&mut config);
        if let Err(error) = config.validate() {
            eprintln!("{name}: {error}");
            std::process::exit(2);
        }
        let batch = run_seeds(&config, 1..seeds + 1, 2, |_| {});
        println!(
            "{name:<40} {} of {} seeds passed, {} elections, {} snapshots installed, {} operations checked",
            batch.seeds_passed, batch.seeds_run, batch.elections, batch.snapshots_installed, batch.ops_checked
        );
        for violation in batch.failures.iter().take(3) {
            failed = true;
            let detail: String = violation.detail.chars().take(200).collect();
            println!(
                "    seed {:?}: {}: {detail}",
                violation.seed, violation.invariant
            );
        }
    }
    if failed {
        std::process::exit(1);
    }
}
