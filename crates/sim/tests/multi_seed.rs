//! Many seeds of the mixed-fault workload (partitions, crashes with torn
//! writes, a lossy network, clients through it all), plus the determinism
//! guarantee every seed relies on. Takes two to four seconds (debug build,
//! two threads).

use sim::{run_seed, run_seeds, FaultSet, SimConfig};

fn assert_all_pass(config: &SimConfig, seeds: std::ops::Range<u64>) -> sim::BatchSummary {
    let mut finished = 0;
    let batch = run_seeds(config, seeds.clone(), 2, |_| finished += 1);
    assert_eq!(
        finished,
        seeds.end - seeds.start,
        "the progress callback sees every seed"
    );
    if let Some(first) = batch.failures.first() {
        panic!(
            "{} of {} seeds failed; the first:\n{first}",
            batch.failures.len(),
            batch.seeds_run
        );
    }
    batch
}

#[test]
fn mixed_faults_across_200_seeds_of_five_members() {
    let config = SimConfig::new(5, FaultSet::all());
    let batch = assert_all_pass(&config, 1..201);
    assert!(
        batch.faults_injected >= 200 * 3,
        "too few faults: {batch:?}"
    );
    assert!(batch.elections >= 200 * 2, "too few elections: {batch:?}");
    assert!(
        batch.ops_checked >= 200 * 20,
        "too few operations: {batch:?}"
    );
}

#[test]
fn mixed_faults_on_three_and_seven_members() {
    for nodes in [3, 7] {
        let config = SimConfig::new(nodes, FaultSet::all());
        assert_all_pass(&config, 1000..1030);
    }
}

#[test]
fn mixed_faults_with_settings_drawn_per_seed() {
    let mut config = SimConfig::new(5, FaultSet::all());
    config.vary_per_seed = true;
    assert_all_pass(&config, 5000..5100);
}

#[test]
fn a_seed_replays_bit_for_bit() {
    let config = SimConfig::new(5, FaultSet::all());
    let first = run_seed(&config, 42).unwrap_or_else(|violation| panic!("{violation}"));
    let again = run_seed(&config, 42).unwrap_or_else(|violation| panic!("{violation}"));
    assert_eq!(
        first, again,
        "same seed, same run: summaries and event-trace hashes match"
    );
    let other = run_seed(&config, 43).unwrap_or_else(|violation| panic!("{violation}"));
    assert_ne!(
        first.trace_digest, other.trace_digest,
        "another seed, another run"
    );
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let config = SimConfig::new(3, FaultSet::all());
    let digests = |threads| {
        let mut digests = Vec::new();
        run_seeds(&config, 1..9, threads, |outcome| {
            let summary = outcome
                .result
                .as_ref()
                .unwrap_or_else(|violation| panic!("{violation}"));
            digests.push((outcome.seed, summary.trace_digest));
        });
        digests.sort_unstable();
        digests
    };
    assert_eq!(digests(1), digests(2));
}
