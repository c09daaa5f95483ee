//! The deterministic cluster simulator: virtual time, seeded faults and
//! checkers that hold the Raft core to its safety properties.
//!
//! A run is decided by its seed alone: the members run the real core
//! ([`raft::RawNode`]) over simulated disks with fsync latency and crash
//! loss, a simulated network delays, drops, duplicates, reorders and
//! partitions their messages, clients issue Put/Get/CAS through leader
//! changes, and after every event the safety checkers compare what each
//! member did against the others. A failing seed replays bit for bit and
//! reports a [`Violation`] with the story of the events that led to it.
//!
//! Entry points: [`run_seed`] and [`run_seeds`] (what `raftkv sim` calls),
//! and [`World`] for scripted scenarios.

pub mod config;
pub mod invariants;
pub mod kv;
pub mod lab;
pub mod liveness;
pub mod linearizability;
pub mod log_view;
pub mod rng;
pub mod runner;
pub mod trace;
pub mod violation;
pub mod world;

pub use config::{FaultSet, ReadMode, SimConfig, SimMutations};
pub use runner::{run_seed, run_seeds, BatchSummary, SeedOutcome, Summary};
pub use violation::{Invariant, Violation};
pub use world::{PartitionKind, World};
