//! Measures the log on a directory: `cargo run --release -p wal --example bench -- DIR [SECONDS] [ENTRY_BYTES] [WRITERS...]`
//! (defaults: 10 seconds, 256-byte entries, 1 16 256 writers). Prints a Markdown table.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: bench DIR [SECONDS] [ENTRY_BYTES] [WRITERS...]");
        return ExitCode::FAILURE;
    };
    let parse =
        |value: Option<String>, default: u64| value.map_or(Ok(default), |text| text.parse::<u64>());
    let (Ok(seconds), Ok(entry_bytes)) = (parse(args.next(), 10), parse(args.next(), 256)) else {
        eprintln!("SECONDS and ENTRY_BYTES must be whole numbers");
        return ExitCode::FAILURE;
    };
    let writers: Result<Vec<usize>, _> = args.map(|text| text.parse::<usize>()).collect();
    let Ok(mut writers) = writers else {
        eprintln!("WRITERS must be whole numbers");
        return ExitCode::FAILURE;
    };
    if writers.is_empty() {
        writers = vec![1, 16, 256];
    }
    println!("{}", wal::bench::BenchReport::table_header());
    for count in writers {
        match wal::bench::run(
            &dir,
            count,
            entry_bytes as usize,
            Duration::from_secs(seconds),
        ) {
            Ok(report) => println!("{report}"),
            Err(error) => {
                eprintln!("benchmark with {count} writers failed: {error}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
