//! The deterministic cluster simulator: virtual time, seeded faults and
//! checkers that hold the Raft core to its safety properties.
//!
//! A run is decided by its seed alone: the members run the product's node
//! loop ([`node::Node`], over the real core) with the real log
//! (`wal::Wal`) and the real `mvcc::Store` as their state machine, both on
//! a simulated disk ([`disk::SimDisk`]) whose syncs complete after a seeded
//! fsync latency, and which loses unsynced data and tears writes when the
//! member crashes (the log is then recovered from it as a restarted server
//! recovers it); a simulated
//! network delays, drops, duplicates, reorders and partitions their
//! messages; clients speak etcd's semantics through leader changes (Put,
//! DeleteRange, a linearizable or serializable Range, a compare-and-swap
//! Txn, no sessions: see [`etcd`]), served by the server's own KV path; and
//! after every event the safety checkers
//! compare what each member did against the others. A failing seed replays bit for bit and
//! reports a [`Violation`] with the story of the events that led to it.
//!
//! Entry points: [`run_seed`] and [`run_seeds`] (what `raftkv sim` calls),
//! [`World`] for scripted scenarios and [`lab::Lab`] for the classic Raft
//! lab verbs on top of it. [`disk::SimDisk`] is the simulated disk the real
//! `wal` and `mvcc` run on.
//!
//! # What one run is
//!
//! 1. Fault phase ([`SimConfig::fault_phase_us`], 6 s by default): members
//!    tick every 10 ms of virtual time; clients issue Put/Get/Delete/CAS; the
//!    nemesis opens partitions (random halves, isolated leader, bridge,
//!    one-way cuts) and crashes members (favouring the leader and members in
//!    the middle of an fsync, sometimes tearing that write), and heals each
//!    after a seeded while (a member that has just voted is now and then
//!    crashed and back within a round trip); it pauses processes (a stopped
//!    member keeps its state and resumes with a stale view), fills a
//!    member's log disk for a while (its log writes fail with ENOSPC; the
//!    node must hold its write, promise nothing and resume once space is
//!    freed) and now and then
//!    asks the leader to hand over leadership; it asks the leader for membership changes
//!    (add a learner and promote it, add a voter, remove a voter or the
//!    leader itself, re-add a removed member) among the founding members
//!    and two spare processes, so the cluster's size changes during the run;
//!    the network drops, duplicates and reorders; each member's clock
//!    drifts by up to 5%.
//! 2. Healing: every fault is undone; a stable leader must appear within 10
//!    election timeouts, and every pending operation must complete and every
//!    member of the configuration in force catch up within
//!    [`SimConfig::heal_completion_us_max`]; once the heal has had an
//!    election timeout to settle and a stable leader leads, no member may
//!    raise its term (with PreVote, an election nobody needed), and the run
//!    watches two election timeouts of this calm before it ends.
//! 3. Final checks: every client's newest acknowledged write is in the
//!    store's history of every member of the configuration, at the revision
//!    it was acknowledged with (a delete: the key absent from that revision
//!    on), and every serializable read's value at the revision it was served
//!    at; members that applied the same index hold the same store (by its
//!    checksum); and the client history of linearizable operations is
//!    linearizable (a write whose answer never came has an unknown outcome).
//!
//! # Clients through the server's KV path
//!
//! What happens between a gRPC request and the node (whether a read waits
//! for the read barrier, the revision it reads at, the header's revision,
//! serializable against linearizable, how a Txn or a DeleteRange is served)
//! is decided in one place, `server::api::kv_requests`, generic over the
//! server's `KvBackend` trait: the KV service calls it, and so do the
//! simulated members for their clients, over a backend whose `propose` and
//! `read_barrier` hand the request to the member's node and resolve when the
//! node answers (a shared slot the node's reply fills). Each call is a
//! future the world polls with a no-op waker, when the member takes the
//! request and each time its node answers: no runtime, no threads, no clock,
//! so a seed still decides everything. The server's backend trait is split
//! so the simulator implements only what the KV path needs (the watch hub,
//! the member list and membership changes stay the server's `Backend`), and
//! the simulator depends on the server crate rather than on a copy of the
//! path: the wire decoding and encoding around it (protobuf to the store's
//! types) stays untested here and is covered by the server's API tests.
//!
//! Safety invariants ([`invariants`]) are checked after every event, and the
//! election rules ([`elections`]) on every message a member sends and every
//! member taking office.
//!
//! # Running, replaying, and proving the checkers
//!
//! - Many seeds: `run_seeds(&config, 1..2001, threads, |outcome| ...)`, after
//!   [`SimConfig::validate`]; [`parse_seed_range`] and `FaultSet::from_str`
//!   read the CLI's `--seeds` and `--faults`. Set [`SimConfig::vary_per_seed`]
//!   to let each seed also draw the core's switches and environment knobs.
//! - One failing seed, with a long story:
//!   `cargo run --release -p sim --example replay_seed -- SEED NODES FAULTS EVENTS`.
//! - Settings the defaults hide: `cargo run --release -p sim --example config_matrix`.
//! - Deliberate bugs: `tests/mutations.rs` has the unsafe read mode (run by
//!   `cargo test`), the switches of the node loop, the store and the
//!   server's KV path, and a one-line-per-switch table
//!   of the core's (`cargo test --release -p sim --features mutations --test mutations`).
//!
//! # Speed
//!
//! The real store is most of a run's cost: redb creates, reopens (repairing
//! after a crash) and closes a database with a 4 GiB region's allocator
//! state, and every apply batch and read commits a transaction. Measured on
//! the project's 2-core machine while other builds shared it (load average
//! 7 to 10), `raftkv sim --seeds 1..2001 --nodes 5 --faults all --quiet`:
//! with the simulator's former in-memory key-value store, 13 s of CPU (32 s
//! of wall time) plain and 13 s (30 s) with `--vary`; with the real store,
//! 92 s of CPU plus 21 s of system time (231 s of wall time) plain and 158 s
//! (239 s) with `--vary`, whose frequent snapshots restore and flush the
//! store. Running the real log on the simulated disk instead of the
//! simulator's in-memory log, measured the same way (load average 10 to
//! 18): 124 s of CPU plus 18 s of system time (347 s of wall time) before,
//! 149 s plus 25 s (563 s, under the heavier load) after; the log's
//! segments are the smallest it allows, so a new one's zero fill is cheap.
//! `cargo run --release -p sim --example sim_speed -- 100 5 1` takes
//! about 35 to 45 ms of CPU per seed. A member still running when a run
//! ends is crashed rather than closed cleanly, which saves a quarter of
//! that.

pub mod conf_view;
pub mod config;
pub mod disk;
pub mod elections;
pub mod etcd;
pub mod invariants;
pub mod lab;
pub mod linearizability;
pub mod liveness;
pub mod log_view;
pub mod rng;
pub mod runner;
pub mod trace;
pub mod violation;
pub mod world;

pub use config::{parse_seed_range, FaultSet, ReadMode, SimConfig, SimConfigError};
pub use runner::{run_seed, run_seeds, run_seeds_until, BatchSummary, SeedOutcome, Summary};
pub use violation::{Invariant, Violation};
pub use world::{PartitionKind, World};
