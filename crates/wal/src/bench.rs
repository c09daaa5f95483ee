//! The log's benchmark: `writers` threads append `entry_bytes`-byte entries
//! through a [`GroupCommitter`] for a fixed time, measuring entries per second,
//! fdatasyncs per second and append latency; and, on the same directory, the
//! disk's raw fdatasync rate (one small write + fdatasync in a loop: the work
//! the log does per entry with a single writer).
//!
//! A shared disk's speed drifts from one second to the next, so the log and
//! the raw loop are measured in alternating slices ([`ROUNDS`] of each) and
//! each rate is the total over its slices: drift touches both alike.
//!
//! The raw rate is measured twice: with the machine otherwise idle, and with
//! one core kept busy by a spinning thread. On virtual machines an fdatasync
//! often completes many times faster while a CPU is busy (an idle vCPU only
//! notices the completion at its next timer tick), and a log under load keeps
//! the CPUs busy. The report also gives a measure that needs no separate
//! floor: the share of the run spent writing and syncing (by whichever caller
//! led each sync).
//!
//! It writes only under the directory it is given, into fresh subdirectories
//! and files it removes afterwards. It is a measurement, never a test: nothing
//! here asserts a speed.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::error::WalError;
use crate::group_commit::{GroupCommitOptions, GroupCommitter};
use crate::wal::{Wal, WalOptions};

/// Bytes the raw fdatasync loop cycles through, preallocated like a segment.
const RAW_FILE_BYTES: u64 = 64 << 20;
/// Latencies are recorded in microseconds up to this bound (one minute).
const LATENCY_US_MAX: u64 = 60_000_000;
const BENCH_CLUSTER_ID: u64 = 0xbe7c;

/// What one run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    pub writers: usize,
    pub entry_bytes: usize,
    pub gather_wait_percent_of_sync_max: u32,
    pub elapsed: Duration,
    pub entries: u64,
    pub syncs: u64,
    pub entries_per_second: f64,
    pub syncs_per_second: f64,
    /// Share of the run spent encoding, writing and syncing batches.
    pub write_and_sync_share: f64,
    pub latency_us_p50: u64,
    pub latency_us_p99: u64,
    pub latency_us_p999: u64,
    /// The same disk's raw rate of (small write + fdatasync), CPUs otherwise idle.
    pub raw_fdatasyncs_per_second_idle: f64,
    /// The same, while another thread keeps one core busy.
    pub raw_fdatasyncs_per_second_busy: f64,
}

impl BenchReport {
    /// The log's fdatasync rate as a fraction of the idle raw floor: the same
    /// work (one small write + fdatasync per entry) as the log at one writer.
    pub fn syncs_vs_raw_idle(&self) -> f64 {
        self.syncs_per_second / self.raw_fdatasyncs_per_second_idle
    }

    /// How many entries one fdatasync carried on average.
    pub fn entries_per_sync(&self) -> f64 {
        self.entries as f64 / self.syncs.max(1) as f64
    }

    /// The header matching [`fmt::Display`]'s row.
    pub fn table_header() -> &'static str {
        "| writers | entry bytes | gather % | entries/s | fsyncs/s | entries/fsync | time writing+syncing | raw fdatasync/s idle | raw fdatasync/s busy | fsyncs/s vs raw idle | p50 µs | p99 µs | p99.9 µs |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "| {} | {} | {} | {:.0} | {:.0} | {:.1} | {:.0}% | {:.0} | {:.0} | {:.0}% | {} | {} | {} |",
            self.writers,
            self.entry_bytes,
            self.gather_wait_percent_of_sync_max,
            self.entries_per_second,
            self.syncs_per_second,
            self.entries_per_sync(),
            self.write_and_sync_share * 100.0,
            self.raw_fdatasyncs_per_second_idle,
            self.raw_fdatasyncs_per_second_busy,
            self.syncs_vs_raw_idle() * 100.0,
            self.latency_us_p50,
            self.latency_us_p99,
            self.latency_us_p999,
        )
    }
}

/// What to measure: one row of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchSpec {
    pub writers: usize,
    pub entry_bytes: usize,
    /// The log's measured time; the raw loops take half as long again.
    pub duration: Duration,
    /// See [`GroupCommitOptions::gather_wait_percent_of_sync_max`].
    pub gather_wait_percent_of_sync_max: u32,
}

/// Alternating slices of the log and of the raw loops.
pub const ROUNDS: u32 = 4;

/// Runs the benchmark in `dir` (created if needed): [`ROUNDS`] rounds of a raw
/// idle slice, a raw busy slice (a quarter of the log's slice each) and a log slice.
pub fn run(dir: &Path, spec: &BenchSpec) -> Result<BenchReport, WalError> {
    if spec.writers == 0 {
        return Err(WalError::InvalidOptions(
            "the benchmark needs at least one writer".into(),
        ));
    }
    fs::create_dir_all(dir)
        .map_err(|source| WalError::io("creating benchmark directory", dir, source))?;
    let wal_dir = dir.join(format!("wal-bench-{}-writers", spec.writers));
    remove_dir_if_present(&wal_dir)?;
    let measured = measure_interleaved(dir, &wal_dir, spec);
    remove_dir_if_present(&wal_dir)?;
    let (measured, raw_idle, raw_busy) = measured?;
    let seconds = measured.elapsed.as_secs_f64();
    Ok(BenchReport {
        writers: spec.writers,
        entry_bytes: spec.entry_bytes,
        gather_wait_percent_of_sync_max: spec.gather_wait_percent_of_sync_max,
        elapsed: measured.elapsed,
        entries: measured.entries,
        syncs: measured.syncs,
        entries_per_second: measured.entries as f64 / seconds,
        syncs_per_second: measured.syncs as f64 / seconds,
        write_and_sync_share: measured.write_and_sync_time.as_secs_f64() / seconds,
        latency_us_p50: measured.latency_us.value_at_quantile(0.50),
        latency_us_p99: measured.latency_us.value_at_quantile(0.99),
        latency_us_p999: measured.latency_us.value_at_quantile(0.999),
        raw_fdatasyncs_per_second_idle: raw_idle.per_second(),
        raw_fdatasyncs_per_second_busy: raw_busy.per_second(),
    })
}

fn measure_interleaved(
    dir: &Path,
    wal_dir: &Path,
    spec: &BenchSpec,
) -> Result<(Measured, RawCount, RawCount), WalError> {
    let log_slice = spec.duration / ROUNDS;
    let raw_slice = log_slice / 4;
    let raw_file = RawFile::create(dir)?;
    let wal = Wal::create(wal_dir, &WalOptions::new(BENCH_CLUSTER_ID), vec![1])?;
    let options = GroupCommitOptions {
        gather_wait_percent_of_sync_max: spec.gather_wait_percent_of_sync_max,
        ..GroupCommitOptions::new(1)
    };
    let committer = Arc::new(GroupCommitter::start(wal, options)?);
    let mut raw_idle = RawCount::default();
    let mut raw_busy = RawCount::default();
    let mut log_elapsed = Duration::ZERO;
    let mut latency_us = new_histogram();
    let mut failure = None;
    for _ in 0..ROUNDS {
        raw_idle.add(raw_file.measure(spec.entry_bytes, raw_slice, false)?);
        raw_busy.add(raw_file.measure(spec.entry_bytes, raw_slice, true)?);
        let slice = measure_log_slice(&committer, spec, log_slice);
        log_elapsed += slice.elapsed;
        latency_us
            .add(slice.latency_us)
            .expect("histograms share bounds");
        if let Some(error) = slice.failure {
            failure = Some(error);
            break;
        }
    }
    let stats = committer.stats();
    let committer = Arc::try_unwrap(committer)
        .map_err(|_| WalError::InvalidRequest("benchmark writers still hold the log".into()))?;
    committer.stop()?;
    raw_file.remove()?;
    if let Some(error) = failure {
        return Err(error);
    }
    let measured = Measured {
        elapsed: log_elapsed,
        entries: stats.entries_durable,
        syncs: stats.syncs,
        write_and_sync_time: stats.write_and_sync_time,
        latency_us,
    };
    Ok((measured, raw_idle, raw_busy))
}

struct Measured {
    elapsed: Duration,
    entries: u64,
    syncs: u64,
    write_and_sync_time: Duration,
    latency_us: Histogram<u64>,
}

struct LogSlice {
    elapsed: Duration,
    latency_us: Histogram<u64>,
    failure: Option<WalError>,
}

/// `spec.writers` threads append through `committer` for `duration`.
fn measure_log_slice(
    committer: &Arc<GroupCommitter>,
    spec: &BenchSpec,
    duration: Duration,
) -> LogSlice {
    let started = Instant::now();
    let deadline = started + duration;
    let entry_bytes = spec.entry_bytes;
    let threads: Vec<_> = (0..spec.writers)
        .map(|_| {
            let committer = Arc::clone(committer);
            std::thread::spawn(move || append_until(&committer, entry_bytes, deadline))
        })
        .collect();
    let mut latency_us = new_histogram();
    let mut failure = None;
    for thread in threads {
        match thread.join() {
            Ok(Ok(histogram)) => latency_us.add(histogram).expect("histograms share bounds"),
            Ok(Err(error)) => failure = Some(error),
            Err(_) => {
                failure = Some(WalError::InvalidRequest(
                    "a benchmark writer thread panicked".into(),
                ))
            }
        }
    }
    LogSlice {
        elapsed: started.elapsed(),
        latency_us,
        failure,
    }
}

fn append_until(
    committer: &GroupCommitter,
    entry_bytes: usize,
    deadline: Instant,
) -> Result<Histogram<u64>, WalError> {
    let mut latency_us = new_histogram();
    let payload = vec![0xa5u8; entry_bytes];
    while Instant::now() < deadline {
        let started = Instant::now();
        committer.append(payload.clone())?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        latency_us.saturating_record(micros.max(1));
    }
    Ok(latency_us)
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds")
}

/// Syncs done by the raw loop over some time.
#[derive(Clone, Copy, Debug, Default)]
struct RawCount {
    syncs: u64,
    elapsed: Duration,
}

impl RawCount {
    fn add(&mut self, other: RawCount) {
        self.syncs += other.syncs;
        self.elapsed += other.elapsed;
    }

    fn per_second(&self) -> f64 {
        self.syncs as f64 / self.elapsed.as_secs_f64()
    }
}

/// A preallocated file in the measured directory, for the raw loop.
struct RawFile {
    path: PathBuf,
    file: File,
}

impl RawFile {
    fn create(dir: &Path) -> Result<RawFile, WalError> {
        let path = dir.join("raw-fdatasync.bench");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|source| WalError::io("creating", &path, source))?;
        let zeros = vec![0u8; 1 << 20];
        for offset in (0..RAW_FILE_BYTES).step_by(zeros.len()) {
            file.write_all_at(&zeros, offset)
                .map_err(|source| WalError::io("preallocating", &path, source))?;
        }
        file.sync_all()
            .map_err(|source| WalError::io("syncing", &path, source))?;
        Ok(RawFile { path, file })
    }

    /// Writes `write_bytes` + fdatasync in a loop for `duration`, the way the
    /// log writes a one-entry batch: the physical floor. With
    /// `keep_one_core_busy`, a spinning thread runs alongside (see the module docs).
    fn measure(
        &self,
        write_bytes: usize,
        duration: Duration,
        keep_one_core_busy: bool,
    ) -> Result<RawCount, WalError> {
        let spinning = Arc::new(AtomicBool::new(keep_one_core_busy));
        let spinner = keep_one_core_busy.then(|| {
            let spinning = Arc::clone(&spinning);
            std::thread::spawn(move || {
                while spinning.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            })
        });
        let payload = vec![0x5au8; write_bytes.max(1)];
        let started = Instant::now();
        let mut syncs = 0u64;
        let mut offset = 0u64;
        let mut result = Ok(());
        while started.elapsed() < duration && result.is_ok() {
            result = self
                .file
                .write_all_at(&payload, offset)
                .and_then(|()| self.file.sync_data());
            syncs += 1;
            offset = (offset + payload.len() as u64) % (RAW_FILE_BYTES - payload.len() as u64);
        }
        let elapsed = started.elapsed();
        spinning.store(false, Ordering::Relaxed);
        if let Some(spinner) = spinner {
            let _ = spinner.join();
        }
        result.map_err(|source| WalError::io("writing and syncing", &self.path, source))?;
        Ok(RawCount { syncs, elapsed })
    }

    fn remove(self) -> Result<(), WalError> {
        drop(self.file);
        fs::remove_file(&self.path).map_err(|source| WalError::io("removing", &self.path, source))
    }
}

fn remove_dir_if_present(dir: &Path) -> Result<(), WalError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(WalError::io("removing benchmark directory", dir, source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the report is assembled from real counts (not a speed test).
    #[test]
    fn short_run_reports_consistent_counts() {
        let dir = tempfile::tempdir().unwrap();
        let spec = BenchSpec {
            writers: 4,
            entry_bytes: 64,
            duration: Duration::from_millis(200),
            gather_wait_percent_of_sync_max: 25,
        };
        let report = run(dir.path(), &spec).unwrap();
        assert!(report.entries > 0 && report.syncs > 0);
        assert!(report.syncs <= report.entries);
        assert!(report.write_and_sync_share > 0.0 && report.write_and_sync_share <= 1.0);
        assert!(report.latency_us_p50 <= report.latency_us_p99);
        assert!(report.latency_us_p99 <= report.latency_us_p999);
        assert!(report.raw_fdatasyncs_per_second_idle > 0.0);
        assert!(report.raw_fdatasyncs_per_second_busy > 0.0);
        let row = report.to_string();
        assert_eq!(
            row.matches('|').count(),
            BenchReport::table_header()
                .lines()
                .next()
                .unwrap()
                .matches('|')
                .count()
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the benchmark cleans up after itself"
        );
    }
}
