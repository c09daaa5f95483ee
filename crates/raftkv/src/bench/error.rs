//! Why a `raftkv bench` against real servers could not finish, with what to check.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot pick a free loopback port: {0}")]
    Port(std::io::Error),
    #[error("cannot create {path}: {source}; check --dir and its permissions")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start {binary}: {source}; pass its path with --etcd-bin / --raftkv-bin or leave the system out with --systems")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{system} exited while starting ({status}); its server.log in the data directory says why"
    )]
    Exited {
        system: &'static str,
        status: String,
    },
    #[error("{system} had no leader taking puts after {waited:?}: {last_problem}")]
    NotReady {
        system: &'static str,
        waited: Duration,
        last_problem: String,
    },
    #[error("cannot reach {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("a load client failed: {0}")]
    Client(String),
    #[error("cannot read {path}: {reason}")]
    ProcStat { path: String, reason: String },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}
