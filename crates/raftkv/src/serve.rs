//! `raftkv serve`: checks the flags, sets up logging and the runtime, and runs
//! a member until SIGTERM or Ctrl-C. Everything else is the `server` crate's.

use std::process::ExitCode;

use server::config::{LogLevel, ServeArgs};

/// Worker threads for the gRPC runtime; the node thread is separate.
const RUNTIME_WORKER_THREADS: usize = 4;

pub(crate) fn run(args: ServeArgs) -> ExitCode {
    let log_level = args.log_level;
    let config = match args.validate() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("raftkv serve: {error}");
            return ExitCode::from(2);
        }
    };
    init_tracing(log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_WORKER_THREADS)
        .thread_name("raftkv-io")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::serve::run(config, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "raftkv serve failed");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(level: LogLevel) {
    let filter = match level {
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Error | LogLevel::Panic | LogLevel::Fatal => tracing::Level::ERROR,
    };
    tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Resolves on the first SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; only Ctrl-C stops the member");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("received a stop signal");
}
