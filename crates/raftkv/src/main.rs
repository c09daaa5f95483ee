//! The raftkv command line.

mod bench;
mod playground;
mod serve;
mod simulate;

use clap::Parser;

#[derive(Debug, clap::Parser)]
#[command(
    name = "raftkv",
    about = "A Raft-replicated key-value store that speaks etcd's v3 API"
)]
enum Command {
    Serve(server::config::ServeArgs),
    /// Start a local cluster of `raftkv serve` processes in one command.
    Playground(playground::PlaygroundArgs),
    /// Run seeded simulated clusters under faults and check every step.
    Sim(simulate::SimArgs),
    /// Measure parts of raftkv against the hardware floor.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> std::process::ExitCode {
    match Command::parse() {
        Command::Serve(args) => serve::run(args),
        Command::Playground(args) => playground::run(args),
        Command::Sim(args) => simulate::run(args),
        Command::Bench(command) => bench::run(command),
    }
}
