//! `raftkv bench put`: etcd and raftkv side by side in one run. For each
//! cluster size it starts one system, runs every client count against its
//! leader, stops it, then does the same for the other, so the two never
//! compete for the machine. It owns the order of runs and the CPU accounting;
//! the load and the processes belong to `load` and `cluster`.

use std::path::PathBuf;
use std::time::Duration;

use super::cluster::{self, Binaries, Cluster, System};
use super::load::{self, LoadSpec, Stop};
use super::report::{self, Row};
use super::BenchError;

#[derive(Debug, clap::Args)]
pub struct PutBenchArgs {
    /// Systems to measure, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "etcd,raftkv")]
    systems: Vec<System>,
    /// Cluster sizes, one cluster of each per system.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    members: Vec<usize>,
    /// Concurrent clients (each with one put in flight), one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,64,256")]
    clients: Vec<usize>,
    /// HTTP/2 connections the clients share at most.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds per run (ignored with --requests).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Puts per run instead of a duration.
    #[arg(long)]
    requests: Option<u64>,
    /// Times to repeat everything, the systems taking turns; each row sums
    /// its rounds, so a busy machine weighs on both systems alike.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// Distinct keys the puts spread over.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Parent of the temporary data directories (on the disk to measure).
    #[arg(long, default_value = "raftkv-bench-put")]
    dir: PathBuf,
    /// The etcd binary.
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd_bin: PathBuf,
    /// The raftkv binary (this one when not given).
    #[arg(long)]
    raftkv_bin: Option<PathBuf>,
}

/// Problems with the flags themselves.
fn check(args: &PutBenchArgs) -> Result<(), String> {
    if args.systems.is_empty() || args.members.is_empty() || args.clients.is_empty() {
        return Err("--systems, --members and --clients each need at least one value".into());
    }
    if args.members.contains(&0)
        || args.clients.contains(&0)
        || args.connections == 0
        || args.rounds == 0
    {
        return Err("--members, --clients, --connections and --rounds must be at least 1".into());
    }
    if args.keys == 0 || args.requests == Some(0) || (args.requests.is_none() && args.seconds == 0)
    {
        return Err("--keys, --requests and --seconds must be at least 1".into());
    }
    Ok(())
}

pub fn run(args: PutBenchArgs) -> std::process::ExitCode {
    if let Err(problem) = check(&args) {
        eprintln!("raftkv bench put: {problem}");
        return std::process::ExitCode::from(2);
    }
    match run_all(&args) {
        Ok(rows) => {
            println!("{}", report::table(&rows));
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("raftkv bench put: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_all(args: &PutBenchArgs) -> Result<Vec<Row>, BenchError> {
    let binaries = Binaries::resolve(&args.etcd_bin, args.raftkv_bin.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let stop = match args.requests {
        Some(requests) => Stop::Requests(requests),
        None => Stop::Duration(Duration::from_secs(args.seconds)),
    };
    let ticks_per_second = cluster::clock_ticks_per_second();
    let mut runs: Vec<Run> = Vec::new();
    for _round in 0..args.rounds {
        for &members in &args.members {
            for &system in &args.systems {
                runtime.block_on(async {
                    let cluster = Cluster::start(system, members, &binaries, &args.dir).await?;
                    for &clients in &args.clients {
                        let spec = LoadSpec {
                            clients,
                            connections_max: args.connections,
                            stop,
                            value_bytes: args.value_bytes,
                            keys: args.keys,
                        };
                        let (result, cpu_seconds) =
                            measure(&cluster, system, &spec, ticks_per_second).await?;
                        let row = Row::new(system, members, clients, &result, cpu_seconds);
                        eprintln!("{}", report::format_row(&row));
                        add_run(&mut runs, (system, members, clients), result, cpu_seconds)?;
                    }
                    Ok::<(), BenchError>(())
                })?;
            }
        }
    }
    Ok(runs
        .iter()
        .map(|run| {
            Row::new(
                run.key.0,
                run.key.1,
                run.key.2,
                &run.result,
                run.cpu_seconds,
            )
        })
        .collect())
}

/// Every round of one (system, members, clients), summed.
struct Run {
    key: (System, usize, usize),
    result: load::LoadResult,
    cpu_seconds: f64,
}

fn add_run(
    runs: &mut Vec<Run>,
    key: (System, usize, usize),
    result: load::LoadResult,
    cpu_seconds: f64,
) -> Result<(), BenchError> {
    let Some(run) = runs.iter_mut().find(|run| run.key == key) else {
        runs.push(Run {
            key,
            result,
            cpu_seconds,
        });
        return Ok(());
    };
    run.result
        .latency_us
        .add(&result.latency_us)
        .map_err(|error| BenchError::Client(error.to_string()))?;
    run.result.succeeded += result.succeeded;
    run.result.failed += result.failed;
    run.result.elapsed += result.elapsed;
    run.cpu_seconds += cpu_seconds;
    debug_assert_eq!(run.result.latency_us.len(), run.result.succeeded);
    Ok(())
}

/// One run: the load against the leader, and the CPU seconds every member
/// used meanwhile.
async fn measure(
    cluster: &Cluster,
    system: System,
    spec: &LoadSpec,
    ticks_per_second: u64,
) -> Result<(load::LoadResult, f64), BenchError> {
    let cpu_total = |pids: &[u32]| -> Result<f64, BenchError> {
        pids.iter()
            .map(|&pid| cluster::cpu_seconds(pid, ticks_per_second))
            .sum()
    };
    let pids = cluster.pids();
    let cpu_before = cpu_total(&pids)?;
    let result = load::run(&cluster.leader_endpoint(), spec).await?;
    let cpu_after = cpu_total(&pids)?;
    for error in &result.first_errors {
        eprintln!(
            "raftkv bench put: {} with {} clients: a put failed: {error}",
            system.name(),
            spec.clients
        );
    }
    Ok((result, cpu_after - cpu_before))
}
