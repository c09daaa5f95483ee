//! `raftkv bench`: measurements that compare us with the hardware floor and
//! with etcd in the same run.

mod cluster;
mod error;
mod failover;
mod load;
mod put;
mod report;

pub use error::BenchError;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Measure a part of raftkv against the hardware it runs on.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// The write-ahead log: entries/s, fsyncs/s and append latency at several
    /// writer counts, next to the raw fdatasync rate of the same directory.
    Wal(WalBenchArgs),
    /// Puts against etcd and raftkv clusters started here: puts/s, latency
    /// percentiles and server CPU per 1000 puts at several client counts,
    /// with raftkv/etcd ratios, as a markdown table.
    Put(put::PutBenchArgs),
    /// Leader failover against etcd: kill the leader of a fresh 3-member
    /// cluster and time until a survivor leads and takes a put.
    Failover(failover::FailoverBenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct WalBenchArgs {
    /// Directory to write in (on the disk to measure); emptied files are left behind.
    #[arg(long, default_value = "raftkv-bench-wal")]
    dir: PathBuf,
    /// Concurrent writers, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    writers: Vec<usize>,
    /// Bytes per entry.
    #[arg(long, default_value_t = 256)]
    entry_bytes: usize,
    /// Seconds the log runs per row (the raw fdatasync loops take half as long again).
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// How long a sync's leader may wait for the writers the previous sync
    /// released, in percent of that sync's time; one row per value.
    #[arg(long, value_delimiter = ',', default_value = "25")]
    gather_percent: Vec<u32>,
}

pub fn run(command: BenchCommand) -> ExitCode {
    match command {
        BenchCommand::Wal(args) => run_wal(args),
        BenchCommand::Put(args) => put::run(args),
        BenchCommand::Failover(args) => failover::run(args),
    }
}

fn run_wal(args: WalBenchArgs) -> ExitCode {
    println!("{}", wal::bench::BenchReport::table_header());
    for &writers in &args.writers {
        for &gather_wait_percent_of_sync_max in &args.gather_percent {
            let spec = wal::bench::BenchSpec {
                writers,
                entry_bytes: args.entry_bytes,
                duration: Duration::from_secs(args.seconds),
                gather_wait_percent_of_sync_max,
            };
            let dir = args.dir.join(format!("writers-{writers}"));
            match wal::bench::run(&dir, &spec) {
                Ok(report) => println!("{report}"),
                Err(error) => {
                    eprintln!("raftkv bench wal: {error}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}
