//! `raftkv bench failover`: how long a cluster takes writes again after its
//! leader dies, etcd and raftkv side by side. Each round starts a fresh
//! cluster of each system in turn, kills its leader with SIGKILL and times
//! until a surviving member reports itself leader and takes a put. It owns
//! the rounds and the summary; the processes belong to `cluster`.

use std::path::PathBuf;
use std::time::Duration;

use super::cluster::{Binaries, Cluster, System};
use super::BenchError;

#[derive(Debug, clap::Args)]
pub struct FailoverBenchArgs {
    /// Systems to measure; in each round they take turns in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "etcd,raftkv")]
    systems: Vec<System>,
    /// Members per cluster (at least 3, so a majority survives the kill).
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// Kills per system, each on a fresh cluster.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Parent of the temporary data directories.
    #[arg(long, default_value = "raftkv-bench-failover")]
    dir: PathBuf,
    /// The etcd binary.
    #[arg(long, default_value = "/usr/bin/etcd")]
    etcd_bin: PathBuf,
    /// The raftkv binary (this one when not given).
    #[arg(long)]
    raftkv_bin: Option<PathBuf>,
}

/// The failovers measured for one system.
#[derive(Debug)]
struct Failovers {
    system: System,
    durations: Vec<Duration>,
}

impl Failovers {
    fn sorted_ms(&self) -> Vec<f64> {
        let mut ms: Vec<f64> = self
            .durations
            .iter()
            .map(|duration| duration.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        ms
    }

    fn median_ms(&self) -> f64 {
        let ms = self.sorted_ms();
        let middle = ms.len() / 2;
        if ms.len().is_multiple_of(2) {
            (ms[middle - 1] + ms[middle]) / 2.0
        } else {
            ms[middle]
        }
    }

    fn max_ms(&self) -> f64 {
        self.sorted_ms().last().copied().unwrap_or(0.0)
    }
}

pub fn run(args: FailoverBenchArgs) -> std::process::ExitCode {
    if args.systems.is_empty() || args.rounds == 0 || args.members < 3 {
        eprintln!(
            "raftkv bench failover: --systems needs a value, --rounds at least 1 and --members at least 3"
        );
        return std::process::ExitCode::from(2);
    }
    match run_rounds(&args) {
        Ok(measured) => {
            println!("{}", table(&measured));
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("raftkv bench failover: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_rounds(args: &FailoverBenchArgs) -> Result<Vec<Failovers>, BenchError> {
    let binaries = Binaries::resolve(&args.etcd_bin, args.raftkv_bin.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Runtime)?;
    let mut measured: Vec<Failovers> = args
        .systems
        .iter()
        .map(|&system| Failovers {
            system,
            durations: Vec::with_capacity(args.rounds),
        })
        .collect();
    for round in 1..=args.rounds {
        for failovers in &mut measured {
            let system = failovers.system;
            let took = runtime.block_on(async {
                let mut cluster =
                    Cluster::start(system, args.members, &binaries, &args.dir).await?;
                cluster.fail_over(system).await
            })?;
            eprintln!(
                "round {round}: {} took writes again {:.0} ms after its leader was killed",
                system.name(),
                took.as_secs_f64() * 1000.0
            );
            failovers.durations.push(took);
        }
    }
    Ok(measured)
}

/// A markdown table: one row per system, then raftkv/etcd when both ran.
fn table(measured: &[Failovers]) -> String {
    let mut lines = vec![
        "| system | kills | min ms | median ms | max ms |".to_owned(),
        "| --- | ---: | ---: | ---: | ---: |".to_owned(),
    ];
    for failovers in measured {
        let ms = failovers.sorted_ms();
        lines.push(format!(
            "| {} | {} | {:.0} | {:.0} | {:.0} |",
            failovers.system.name(),
            ms.len(),
            ms.first().copied().unwrap_or(0.0),
            failovers.median_ms(),
            failovers.max_ms(),
        ));
    }
    let find = |system| measured.iter().find(|failovers| failovers.system == system);
    if let (Some(etcd), Some(raftkv)) = (find(System::Etcd), find(System::Raftkv)) {
        lines.push(format!(
            "| raftkv/etcd | | | {:.2}x | {:.2}x |",
            raftkv.median_ms() / etcd.median_ms(),
            raftkv.max_ms() / etcd.max_ms(),
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failovers(system: System, ms: &[u64]) -> Failovers {
        Failovers {
            system,
            durations: ms.iter().map(|&ms| Duration::from_millis(ms)).collect(),
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(failovers(System::Etcd, &[900, 100, 500]).median_ms(), 500.0);
        assert_eq!(
            failovers(System::Etcd, &[400, 100, 200, 300]).median_ms(),
            250.0
        );
    }

    #[test]
    fn table_has_a_row_per_system_and_the_ratio() {
        let text = table(&[
            failovers(System::Etcd, &[1000, 2000, 3000]),
            failovers(System::Raftkv, &[500, 1000, 1500]),
        ]);
        assert!(text.contains("| etcd | 3 | 1000 | 2000 | 3000 |"), "{text}");
        assert!(
            text.contains("| raftkv | 3 | 500 | 1000 | 1500 |"),
            "{text}"
        );
        assert!(
            text.contains("| raftkv/etcd | | | 0.50x | 0.50x |"),
            "{text}"
        );
    }
}
