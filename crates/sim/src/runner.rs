//! Running whole simulations: one seed to a [`Summary`] or a [`Violation`],
//! and many seeds across threads with a progress callback, for tests and
//! the `raftkv sim` command.
//!
//! Owns: the shape of a run (fault phase, healing, final checks,
//! linearizability) and aggregating many runs. Must never: use real time
//! to decide anything, or let one seed's failure stop the others.

use std::ops::{ControlFlow, Range};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::config::SimConfig;
use crate::linearizability::{self, KvModel, KvOperation, Limits, Verdict};
use crate::trace::TraceRecord;
use crate::violation::{Invariant, Violation};
use crate::world::World;

/// What one passing run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub seed: u64,
    pub node_count: usize,
    pub simulated_us: u64,
    pub events: u64,
    pub elections: u64,
    pub faults_injected: u64,
    pub crashes: u64,
    pub crashes_during_fsync: u64,
    pub torn_writes: u64,
    pub partitions: u64,
    pub transfers: u64,
    /// Configuration changes committed.
    pub conf_changes: u64,
    pub pauses: u64,
    pub messages_sent: u64,
    pub message_bytes: u64,
    pub messages_dropped: u64,
    pub snapshots_installed: u64,
    pub ops_completed: u64,
    pub ops_abandoned: u64,
    /// Serializable reads, left out of the linearizable history.
    pub serializable_reads: u64,
    /// Operations in the history given to the linearizability checker.
    pub ops_checked: u64,
    /// The checker hit its search bound: neither proven nor refuted.
    pub linearizability_undecided: bool,
    /// Hash of every event of the run: equal seeds give equal digests.
    pub trace_digest: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "seed {}: {} members, {:.1} s simulated, {} events, {} elections, {} faults \
             ({} crashes, {} torn writes, {} partitions, {} pauses), {} leadership transfers, {} \
             membership changes, {} messages ({} dropped), {} snapshots installed, {} operations \
             checked ({} completed, {} unknown){}",
            self.seed,
            self.node_count,
            self.simulated_us as f64 / 1e6,
            self.events,
            self.elections,
            self.faults_injected,
            self.crashes,
            self.torn_writes,
            self.partitions,
            self.pauses,
            self.transfers,
            self.conf_changes,
            self.messages_sent,
            self.messages_dropped,
            self.snapshots_installed,
            self.ops_checked,
            self.ops_completed,
            self.ops_abandoned,
            if self.linearizability_undecided {
                ", linearizability undecided (search bound hit)"
            } else {
                ""
            }
        )
    }
}

/// Runs one seed: faults and clients for the fault phase, then healing until
/// the cluster is quiescent, then the final checks and linearizability.
/// With [`SimConfig::vary_per_seed`], the seed first draws the settings.
pub fn run_seed(config: &SimConfig, seed: u64) -> Result<Summary, Violation> {
    let varied;
    let config = if config.vary_per_seed {
        varied = config.varied_for_seed(seed);
        &varied
    } else {
        config
    };
    let mut world = World::new(config.clone(), seed);
    let budget_us =
        config.fault_phase_us + config.heal_completion_us_max + config.election_timeout_us_max();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let quiescent = world.run_until(budget_us, World::is_quiescent);
        if quiescent {
            world.check_final_state();
        }
        quiescent
    }));
    match outcome {
        Err(panic) => return Err(world.panic_violation(panic_message(panic.as_ref()))),
        Ok(_) if world.violation().is_some() => {
            return Err(world.violation().cloned().unwrap_or_else(|| unreachable!()))
        }
        Ok(false) => {
            return Err(world.liveness_timeout_violation(format!(
                "the run did not settle within {} ms of virtual time",
                budget_us / 1000
            )))
        }
        Ok(true) => {}
    }
    let mut summary = summarize(&world);
    if config.check_linearizability {
        summary.ops_checked = world.history().len() as u64;
        match linearizability::check(&KvModel, world.history(), &Limits::default()) {
            Ok(Verdict::Linearizable) => {}
            Ok(Verdict::Unknown { .. }) => summary.linearizability_undecided = true,
            Ok(Verdict::NotLinearizable(evidence)) => {
                let detail = format!("key {}: {}", evidence.key, evidence.explanation);
                let mut violation = world.final_violation(Invariant::Linearizability, detail);
                let window = story_window(world.history(), &evidence.next_candidates);
                violation.trace = replay_story(config, seed, window);
                return Err(violation);
            }
            Err(error) => {
                return Err(world.final_violation(
                    Invariant::SimulatorFault,
                    format!("history rejected: {error}"),
                ));
            }
        }
    }
    Ok(summary)
}

/// Events kept for the story of a linearizability violation.
const STORY_EVENTS_MAX: usize = 400;

/// The time from the earliest call to the latest return of the operations
/// that could not be placed: where the stale or lost value came from.
fn story_window(history: &[KvOperation], operations: &[usize]) -> (u64, u64) {
    let chosen = operations.iter().filter_map(|&index| history.get(index));
    let from_us = chosen
        .clone()
        .map(|operation| operation.call_time)
        .min()
        .unwrap_or(0);
    let to_us = chosen
        .map(|operation| operation.return_time().unwrap_or(operation.call_time))
        .max()
        .unwrap_or(u64::MAX);
    (from_us, to_us)
}

/// Replays `seed` (runs are deterministic) and keeps the story-telling
/// events in `window`, so a history violation comes with what the members
/// did while the offending operations were in flight.
fn replay_story(config: &SimConfig, seed: u64, (from_us, to_us): (u64, u64)) -> Vec<TraceRecord> {
    let mut replay_config = config.clone();
    replay_config.trace_events_max = STORY_EVENTS_MAX;
    let mut world = World::new(replay_config, seed);
    world.focus_trace(from_us, to_us);
    let replayed = catch_unwind(AssertUnwindSafe(|| {
        world.run_until(to_us + 1, |world| world.now_us() > to_us);
    }));
    if replayed.is_err() {
        return Vec::new();
    }
    world.recent_events()
}

fn summarize(world: &World) -> Summary {
    let stats = world.stats();
    Summary {
        seed: world.seed(),
        node_count: world.config().node_count,
        simulated_us: world.now_us(),
        events: stats.events,
        elections: world.checker().elections() as u64,
        faults_injected: stats.faults_injected,
        crashes: stats.crashes,
        crashes_during_fsync: stats.crashes_during_fsync,
        torn_writes: stats.torn_writes,
        partitions: stats.partitions,
        transfers: stats.transfers,
        conf_changes: world.checker().conf_changes_committed(),
        pauses: stats.pauses,
        messages_sent: stats.messages_sent,
        message_bytes: stats.message_bytes,
        messages_dropped: stats.messages_dropped,
        snapshots_installed: stats.snapshots_installed,
        ops_completed: stats.ops_completed,
        ops_abandoned: stats.ops_abandoned,
        serializable_reads: stats.serializable_reads,
        ops_checked: 0,
        linearizability_undecided: false,
        trace_digest: world.trace_digest(),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        String::from("(panic without a message)")
    }
}

/// The result of one seed in a multi-seed run.
#[derive(Clone, Debug)]
pub struct SeedOutcome {
    pub seed: u64,
    pub result: Result<Summary, Violation>,
}

/// Totals over many seeds.
#[derive(Clone, Debug, Default)]
pub struct BatchSummary {
    pub seeds_run: u64,
    pub seeds_passed: u64,
    pub simulated_us: u64,
    pub events: u64,
    pub elections: u64,
    pub faults_injected: u64,
    pub crashes: u64,
    pub torn_writes: u64,
    pub partitions: u64,
    pub transfers: u64,
    pub conf_changes: u64,
    pub pauses: u64,
    pub snapshots_installed: u64,
    pub ops_checked: u64,
    pub linearizability_undecided: u64,
    /// Every violation found, in seed order.
    pub failures: Vec<Violation>,
}

impl BatchSummary {
    fn add(&mut self, outcome: &SeedOutcome) {
        self.seeds_run += 1;
        match &outcome.result {
            Ok(summary) => {
                self.seeds_passed += 1;
                self.simulated_us += summary.simulated_us;
                self.events += summary.events;
                self.elections += summary.elections;
                self.faults_injected += summary.faults_injected;
                self.crashes += summary.crashes;
                self.torn_writes += summary.torn_writes;
                self.partitions += summary.partitions;
                self.transfers += summary.transfers;
                self.conf_changes += summary.conf_changes;
                self.pauses += summary.pauses;
                self.snapshots_installed += summary.snapshots_installed;
                self.ops_checked += summary.ops_checked;
                self.linearizability_undecided += u64::from(summary.linearizability_undecided);
            }
            Err(violation) => self.failures.push(violation.clone()),
        }
    }
}

impl std::fmt::Display for BatchSummary {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            formatter,
            "{} seeds: {} passed, {} failed",
            self.seeds_run,
            self.seeds_passed,
            self.failures.len()
        )?;
        writeln!(
            formatter,
            "{:.1} s simulated, {} events, {} elections, {} faults ({} crashes, {} torn writes, \
             {} partitions, {} pauses), {} leadership transfers, {} membership changes, {} snapshots \
             installed, {} operations checked, {} histories undecided",
            self.simulated_us as f64 / 1e6,
            self.events,
            self.elections,
            self.faults_injected,
            self.crashes,
            self.torn_writes,
            self.partitions,
            self.pauses,
            self.transfers,
            self.conf_changes,
            self.snapshots_installed,
            self.ops_checked,
            self.linearizability_undecided
        )?;
        for violation in &self.failures {
            writeln!(
                formatter,
                "seed {}: {} at {} us on {:?}: {}",
                violation
                    .seed
                    .map_or_else(|| String::from("?"), |seed| seed.to_string()),
                violation.invariant,
                violation.time_us,
                violation.nodes,
                violation.detail
            )?;
        }
        Ok(())
    }
}

/// Runs every seed in `seeds` on `threads` worker threads (at least one),
/// calling `on_outcome` on the calling thread as each seed finishes (in
/// completion order), and returns the totals. Each seed's result depends on
/// the seed alone, never on the thread that ran it.
pub fn run_seeds(
    config: &SimConfig,
    seeds: Range<u64>,
    threads: usize,
    mut on_outcome: impl FnMut(&SeedOutcome),
) -> BatchSummary {
    run_seeds_until(config, seeds, threads, |outcome| {
        on_outcome(outcome);
        ControlFlow::Continue(())
    })
}

/// Like [`run_seeds`], but stops handing out seeds once `on_outcome` returns
/// `Break` (say, at the first failure); seeds already running finish and
/// are counted.
pub fn run_seeds_until(
    config: &SimConfig,
    seeds: Range<u64>,
    threads: usize,
    mut on_outcome: impl FnMut(&SeedOutcome) -> ControlFlow<()>,
) -> BatchSummary {
    let seeds: Vec<u64> = seeds.collect();
    let next = AtomicUsize::new(0);
    let stopped = AtomicBool::new(false);
    let (sender, receiver) = mpsc::channel::<SeedOutcome>();
    let mut batch = BatchSummary::default();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1).min(seeds.len().max(1)) {
            let sender = sender.clone();
            let (seeds, next, stopped) = (&seeds, &next, &stopped);
            scope.spawn(move || loop {
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let position = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(position) else {
                    return;
                };
                let result = run_seed(config, seed);
                if sender.send(SeedOutcome { seed, result }).is_err() {
                    return;
                }
            });
        }
        drop(sender);
        for outcome in receiver {
            batch.add(&outcome);
            if on_outcome(&outcome).is_break() {
                stopped.store(true, Ordering::Relaxed);
            }
        }
    });
    batch.failures.sort_by_key(|violation| violation.seed);
    debug_assert!(batch.seeds_run <= seeds.len() as u64);
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FaultSet;

    #[test]
    fn a_batch_can_stop_early() {
        let config = SimConfig::new(3, FaultSet::none());
        let batch = run_seeds_until(&config, 1..1000, 1, |_| ControlFlow::Break(()));
        // The worker may have started the second seed before the first
        // outcome was read; nothing after that.
        assert!(
            (1..=2).contains(&batch.seeds_run),
            "one thread must stop right after the first seed, ran {}",
            batch.seeds_run
        );
    }

    #[test]
    fn summaries_read_as_sentences() {
        let config = SimConfig::new(3, FaultSet::all());
        let batch = run_seeds(&config, 1..3, 1, |outcome| {
            let summary = outcome
                .result
                .as_ref()
                .unwrap_or_else(|violation| panic!("{violation}"));
            let line = summary.to_string();
            assert!(
                line.starts_with(&format!("seed {}: 3 members", outcome.seed)),
                "{line}"
            );
        });
        assert!(
            batch.to_string().starts_with("2 seeds: 2 passed, 0 failed"),
            "{batch}"
        );
    }

    #[test]
    fn a_fault_free_run_passes_and_does_work() {
        let config = SimConfig::new(3, FaultSet::none());
        let summary = run_seed(&config, 1).unwrap_or_else(|violation| panic!("{violation}"));
        assert!(summary.elections >= 1);
        assert!(summary.ops_completed > 10, "{summary:?}");
        assert!(summary.serializable_reads > 0, "{summary:?}");
        assert_eq!(
            summary.ops_checked + summary.serializable_reads,
            summary.ops_completed + summary.ops_abandoned
        );
    }
}
