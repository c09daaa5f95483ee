//! `chaos`: one run of the real-process fault suite, from the command line.
//! `tests/chaos/run` builds raftkv and this binary and starts it. Exits 0
//! when the run is valid, 1 when it is not, 2 when it could not be carried
//! out, 130 when interrupted (after removing its hosts and processes).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chaos::faults::{FaultKinds, Pacing};
use chaos::run::{run, RunOptions};
use chaos::server_kind::ServerKind;
use chaos::workload::Workload;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    about = "Run raftkv (or etcd) members on hosts of their own under faults and check the clients' history"
)]
struct Arguments {
    /// Members, each in its own network namespace.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Seconds the clients run.
    #[arg(long, default_value_t = 60)]
    time: u64,
    /// Faults to inject: a comma list of partition, kill, pause, loss, wipe,
    /// membership, or all. Partitions, kills, pauses and loss sometimes
    /// overlap, two at a time.
    #[arg(long, default_value = "all")]
    faults: FaultKinds,
    /// The workload: `register` (linearizable reads, puts and CAS on a few
    /// keys), `set` (compare-and-set adds to one set in one key) or `watch`
    /// (puts under a prefix, watched by reconnecting watchers).
    #[arg(long, default_value = "register")]
    workload: Workload,
    /// Seeds the fault schedule and the clients.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Concurrent clients, spread over the members.
    #[arg(long, default_value_t = 10)]
    clients: u64,
    /// Serializable reads (no read barrier): a negative control that a run
    /// with partitions must call invalid.
    #[arg(long)]
    serializable_reads: bool,
    /// Set adds by blind puts, without the mod-revision compare: a negative
    /// control that a set run must call invalid (lost elements).
    #[arg(long)]
    blind_appends: bool,
    /// The raftkv binary (default: `raftkv` beside this binary).
    #[arg(long)]
    raftkv: Option<PathBuf>,
    /// Run etcd members from this binary (etcd 3.4 or later, such as
    /// Debian's `/usr/bin/etcd`) instead of raftkv, under the same flags,
    /// schedule and checks; `--raftkv` is then ignored.
    #[arg(long)]
    etcd: Option<PathBuf>,
    /// Keep the members' data, logs and the history in this directory
    /// (with the run drawn in `timeline.svg`).
    #[arg(long)]
    keep: Option<PathBuf>,
    /// Draw the run's timeline (faults, every operation's latency and
    /// outcome, the operations the checker blames) as SVG into this file.
    #[arg(long)]
    timeline: Option<PathBuf>,
}

fn main() -> ExitCode {
    let arguments = Arguments::parse();
    if !(1..=chaos::hosts::HOSTS_MAX).contains(&arguments.nodes) {
        eprintln!(
            "chaos: --nodes {} is outside 1..={}",
            arguments.nodes,
            chaos::hosts::HOSTS_MAX
        );
        return ExitCode::from(2);
    }
    if arguments.serializable_reads && arguments.workload != Workload::Register {
        eprintln!("chaos: --serializable-reads is a control of the register workload");
        return ExitCode::from(2);
    }
    if arguments.blind_appends && arguments.workload != Workload::Set {
        eprintln!("chaos: --blind-appends is a control of the set workload");
        return ExitCode::from(2);
    }
    if let Some(missing) = chaos::hosts::missing_requirements() {
        eprintln!("chaos: cannot make test hosts: {missing}");
        return ExitCode::from(2);
    }
    let (server, binary) = match &arguments.etcd {
        Some(etcd) => (ServerKind::Etcd, Some(etcd.clone())),
        None => (
            ServerKind::Raftkv,
            arguments.raftkv.clone().or_else(raftkv_beside_this_binary),
        ),
    };
    let binary = match binary {
        Some(binary) if binary.exists() => binary,
        other => {
            eprintln!("chaos: no {server} binary at {other:?}; pass --{server}");
            return ExitCode::from(2);
        }
    };
    let options = RunOptions {
        binary,
        server,
        nodes: arguments.nodes,
        time: Duration::from_secs(arguments.time),
        faults: arguments.faults,
        pacing: Pacing {
            fault_min: Duration::from_millis(1_500),
            fault_max: Duration::from_secs(6),
            quiet_min: Duration::from_millis(500),
            quiet_max: Duration::from_secs(3),
        },
        workload: arguments.workload,
        seed: arguments.seed,
        clients: arguments.clients,
        serializable_reads: arguments.serializable_reads,
        blind_appends: arguments.blind_appends,
        names: None,
        keep: arguments.keep,
        timeline: arguments.timeline,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chaos: cannot start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    eprintln!("chaos: cannot watch for SIGTERM: {error}");
                    return ExitCode::from(2);
                }
            };
        // Dropping the run's future on a signal drops its hosts and members,
        // which kill the processes and remove the namespaces.
        tokio::select! {
            outcome = run(&options) => match outcome {
                Ok(report) => {
                    println!("{report}");
                    if report.is_valid() { ExitCode::SUCCESS } else { ExitCode::from(1) }
                }
                Err(error) => {
                    eprintln!("chaos: {error}");
                    ExitCode::from(2)
                }
            },
            _ = tokio::signal::ctrl_c() => {
                eprintln!("chaos: interrupted; hosts and members removed");
                ExitCode::from(130)
            }
            _ = terminate.recv() => {
                eprintln!("chaos: terminated; hosts and members removed");
                ExitCode::from(143)
            }
        }
    })
}

fn raftkv_beside_this_binary() -> Option<PathBuf> {
    Some(std::env::current_exe().ok()?.parent()?.join("raftkv"))
}
