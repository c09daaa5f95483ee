//! Replays one seed and prints its summary, or its violation with a long
//! story of the events before it: the tool for reading a failing seed.
//!
//! Run: `cargo run --release -p sim --example replay_seed -- SEED [NODES] [FAULTS] [EVENTS]`
//! (defaults: 5 nodes, faults "all", the last 200 events). FAULTS is "all",
//! "none" or a comma list of network, partition, crash.

use sim::{run_seed, FaultSet, SimConfig};

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let Some(seed) = arguments.first().and_then(|seed| seed.parse::<u64>().ok()) else {
        eprintln!("usage: replay_seed SEED [NODES] [FAULTS] [EVENTS]");
        std::process::exit(2);
    };
    let nodes = arguments
        .get(1)
        .map_or(Ok(5), |nodes| nodes.parse::<usize>());
    let faults = arguments.get(2).map_or(Ok(FaultSet::all()), |faults| {
        faults
            .parse::<FaultSet>()
            .map_err(|error| error.to_string())
    });
    let events = arguments
        .get(3)
        .map_or(Ok(200), |events| events.parse::<usize>());
    let (Ok(nodes), Ok(faults), Ok(events)) = (nodes, faults, events) else {
        eprintln!("NODES and EVENTS are numbers; FAULTS is all, none or a comma list of network, partition, crash");
        std::process::exit(2);
    };
    let mut config = SimConfig::new(nodes, faults);
    config.trace_events_max = events;
    if let Err(error) = config.validate() {
        eprintln!("{error}");
        std::process::exit(2);
    }
    match run_seed(&config, seed) {
        Ok(summary) => println!("seed {seed} passed: {summary:#?}"),
        Err(violation) => {
            println!("{violation}");
            std::process::exit(1);
        }
    }
}
