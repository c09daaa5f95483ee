//! `raftkv sim`: runs seeded simulated clusters on all cores and reports what
//! the checkers found. A failing seed prints the command that replays it and
//! the story of its last events.

use std::fmt::Write as _;
use std::io::Write as _;
use std::ops::Range;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use sim::{run_seeds, FaultSet, SimConfig};

/// Run seeded simulations of a cluster under faults and check every step.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Seeds to run, as START..END (END exclusive) or a single seed.
    #[arg(long, default_value = "1..2001", value_parser = parse_seeds)]
    seeds: SeedRange,
    /// Members per cluster: 3, 5 or 7.
    #[arg(long, default_value_t = 5, value_parser = parse_nodes)]
    nodes: usize,
    /// Faults to inject: "all", "none" or a comma list of network, partition,
    /// crash, transfer, pause, membership, delay, disk-full.
    #[arg(long, default_value = "all")]
    faults: FaultSet,
    /// Let each seed also draw the core's switches (PreVote, CheckQuorum,
    /// message size, snapshot interval) and the disk, network and load.
    #[arg(long)]
    vary: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Events of the story printed for each failing seed.
    #[arg(long, default_value_t = 60)]
    trace_events: usize,
    /// Print no progress bar (for logs).
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Debug)]
struct SeedRange(Range<u64>);

fn parse_seeds(text: &str) -> Result<SeedRange, String> {
    let parse = |part: &str| {
        u64::from_str(part.trim()).map_err(|_| format!("{part:?} is not a seed (a whole number)"))
    };
    let range = match text.split_once("..") {
        Some((start, end)) => parse(start)?..parse(end)?,
        None => {
            let seed = parse(text)?;
            seed..seed + 1
        }
    };
    if range.is_empty() {
        return Err(format!(
            "seed range {text:?} is empty; write START..END with END > START"
        ));
    }
    Ok(SeedRange(range))
}

fn parse_nodes(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(nodes @ (3 | 5 | 7)) => Ok(nodes),
        _ => Err(format!(
            "{text:?}: a simulated cluster has 3, 5 or 7 members"
        )),
    }
}

pub fn run(args: SimArgs) -> ExitCode {
    let mut config = SimConfig::new(args.nodes, args.faults);
    config.trace_events_max = args.trace_events;
    config.vary_per_seed = args.vary;
    if let Err(error) = config.validate() {
        eprintln!("raftkv sim: {error}");
        return ExitCode::from(2);
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let seeds = args.seeds.0.clone();
    let progress = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(seeds.end - seeds.start)
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} seeds, {elapsed} elapsed, eta {eta} {msg}",
        )
        .expect("valid progress template"),
    );
    let started = Instant::now();
    let mut failed = 0u64;
    let batch = run_seeds(&config, seeds, threads, |outcome| {
        progress.inc(1);
        if outcome.result.is_err() {
            failed += 1;
            progress.set_message(format!("{failed} failed"));
        }
    });
    progress.finish_and_clear();
    let wall_seconds = started.elapsed().as_secs_f64();
    let mut report = format!("{batch}");
    let _ = writeln!(
        report,
        "{wall_seconds:.1} s wall, {:.0} events/s, {:.1} simulated s per wall s, {threads} threads",
        batch.events as f64 / wall_seconds.max(1e-9),
        batch.simulated_us as f64 / 1e6 / wall_seconds.max(1e-9)
    );
    for violation in &batch.failures {
        let seed = violation.seed.unwrap_or_default();
        let _ = write!(
            report,
            "\nreplay: raftkv sim --seeds {seed} --nodes {} --faults {}{} --trace-events 400\n{violation}",
            args.nodes,
            describe_faults(&args.faults),
            if args.vary { " --vary" } else { "" }
        );
    }
    // A closed pipe (`| head`) is the reader's choice, not an error to report.
    let _ = std::io::stdout().lock().write_all(report.as_bytes());
    if batch.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The `--faults` value that selects exactly `faults`.
fn describe_faults(faults: &FaultSet) -> String {
    let names: Vec<&str> = [
        (faults.unreliable_network, "network"),
        (faults.partitions, "partition"),
        (faults.crashes, "crash"),
        (faults.transfers, "transfer"),
        (faults.pauses, "pause"),
        (faults.membership, "membership"),
        (faults.delays, "delay"),
        (faults.disk_full, "disk-full"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if names.is_empty() {
        String::from("none")
    } else {
        names.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse_and_empty_ones_are_refused() {
        assert_eq!(parse_seeds("1..2000").unwrap().0, 1..2000);
        assert_eq!(parse_seeds("7").unwrap().0, 7..8);
        assert!(parse_seeds("5..5").unwrap_err().contains("empty"));
        assert!(parse_seeds("a..b").unwrap_err().contains("not a seed"));
    }

    #[test]
    fn only_odd_cluster_sizes_from_three_to_seven() {
        assert_eq!(parse_nodes("5"), Ok(5));
        assert!(parse_nodes("4").is_err());
    }

    #[test]
    fn described_faults_parse_back_to_the_same_set() {
        for text in [
            "all",
            "none",
            "network,crash",
            "partition,pause,transfer",
            "membership",
            "delay,transfer",
        ] {
            let faults: FaultSet = text.parse().unwrap();
            assert_eq!(
                describe_faults(&faults).parse::<FaultSet>().unwrap(),
                faults
            );
        }
    }
}
