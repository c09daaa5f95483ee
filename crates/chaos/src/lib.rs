//! raftkv's real-process fault suite. The simulator proves the algorithm;
//! this proves the binary users run: `raftkv serve` members as real
//! processes, each on a host of its own (a network namespace with its own
//! address), under network partitions, SIGKILL and restart, SIGSTOP
//! pauses and lossy links, while clients record a history that the simulator's
//! linearizability checker judges.
//!
//! The parts: [`hosts`] makes and removes the namespaces, [`members`] runs
//! the processes in them, [`faults`] draws a seeded schedule and breaks
//! things, [`register`] is the client workload and its history, and [`run`]
//! ties them into one run with a report. The `chaos` binary is the command
//! line (`tests/chaos/run` builds and starts it).

pub mod faults;
pub mod hosts;
pub mod members;
pub mod register;
pub mod run;
