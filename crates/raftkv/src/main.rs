//! The raftkv command line.

mod serve;

use clap::Parser;

#[derive(Debug, clap::Parser)]
#[command(
    name = "raftkv",
    about = "A Raft-replicated key-value store that speaks etcd's v3 API"
)]
enum Command {
    Serve(server::config::ServeArgs),
}

fn main() -> std::process::ExitCode {
    match Command::parse() {
        Command::Serve(args) => serve::run(args),
    }
}
