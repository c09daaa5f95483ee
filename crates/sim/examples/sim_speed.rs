//! Measures the simulator's speed: events and simulated seconds per wall
//! second, over a batch of seeds with every fault enabled.
//!
//! Run: `cargo run --release -p sim --example sim_speed -- [seeds] [nodes] [threads] [vary]`
//! (defaults: 200 seeds, 5 nodes, 1 thread; `vary` lets each seed draw its
//! settings, see `SimConfig::varied_for_seed`). Exits non-zero if a seed
//! fails, after printing its violation.

use std::time::Instant;

use sim::{run_seeds, FaultSet, SimConfig};

fn main() {
    let vary = std::env::args().any(|argument| argument == "vary");
    let mut arguments = std::env::args()
        .skip(1)
        .filter(|argument| argument != "vary")
        .map(|argument| {
            argument.parse::<u64>().unwrap_or_else(|_| {
                panic!("arguments are numbers: [seeds] [nodes] [threads], got {argument:?}")
            })
        });
    let seeds = arguments.next().unwrap_or(200);
    let nodes = arguments.next().unwrap_or(5) as usize;
    let threads = arguments.next().unwrap_or(1) as usize;
    let mut config = SimConfig::new(nodes, FaultSet::all());
    config.vary_per_seed = vary;
    if let Err(error) = config.validate() {
        eprintln!("{error}");
        std::process::exit(2);
    }
    let started = Instant::now();
    let batch = run_seeds(&config, 1..seeds + 1, threads, |_| {});
    let wall_seconds = started.elapsed().as_secs_f64();
    let simulated_seconds = batch.simulated_us as f64 / 1e6;
    println!(
        "seeds: {} run, {} passed, {} failed",
        batch.seeds_run,
        batch.seeds_passed,
        batch.failures.len()
    );
    println!("nodes: {nodes}, threads: {threads}, faults: all, settings varied per seed: {vary}");
    println!(
        "wall time: {wall_seconds:.2} s ({:.1} ms per seed)",
        wall_seconds * 1e3 / seeds as f64
    );
    println!(
        "events: {} ({:.0} per wall second)",
        batch.events,
        batch.events as f64 / wall_seconds
    );
    println!(
        "simulated time: {simulated_seconds:.1} s ({:.1} simulated seconds per wall second)",
        simulated_seconds / wall_seconds
    );
    println!(
        "elections: {}, faults injected: {}, operations checked: {}",
        batch.elections, batch.faults_injected, batch.ops_checked
    );
    println!(
        "crashes: {} ({} tore a write), partitions: {}, snapshots installed: {}",
        batch.crashes, batch.torn_writes, batch.partitions, batch.snapshots_installed
    );
    println!(
        "linearizability undecided (search bound hit): {}",
        batch.linearizability_undecided
    );
    if let Some(first) = batch.failures.first() {
        println!("\nfirst failure:\n{first}");
        for violation in &batch.failures {
            println!(
                "seed {:?}: {} at {} us",
                violation.seed, violation.invariant, violation.time_us
            );
        }
        std::process::exit(1);
    }
}
