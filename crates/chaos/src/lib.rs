//! raftkv's real-process fault suite. The simulator proves the algorithm;
//! this proves the binary users run: `raftkv serve` members as real
//! processes, each on a host of its own (a network namespace with its own
//! address), under network partitions, SIGKILL and restart, SIGSTOP
//! pauses, lossy links, wiped data directories and membership changes
//! (a learner added, promoted, a member removed), one fault at a time or
//! two overlapping, while clients record a history that is checked (the
//! register workload by the simulator's linearizability checker).
//!
//! The parts: [`hosts`] makes and removes the namespaces, [`members`] runs
//! the processes in them, [`faults`] draws a seeded schedule and breaks
//! things ([`firewall`] keeps the network faults in force, [`replacement`]
//! replaces a wiped member, [`membership`] adds, promotes and removes
//! members, both through [`cluster_api`]), [`connection`] is a client's way to the members, [`workload`]
//! starts and finishes the workloads and [`judge`] judges them ([`register`], [`set`] and
//! [`watch`], the last two checked by [`set_check`] and [`watch_check`]),
//! [`convergence`] and [`revisions`] are the checks every workload gets
//! after the faults heal, and [`run`] ties them into one run with a
//! [`report`] and, for a kept run, a [`timeline`] drawn from each
//! workload's [`operation_points`]. [`server_kind`] lets the same run
//! compare etcd itself. The `chaos` binary is the command line
//! (`tests/chaos/run` builds and starts it).

pub mod cluster_api;
pub mod connection;
pub mod convergence;
pub mod faults;
pub mod firewall;
pub mod hosts;
pub mod judge;
pub mod members;
pub mod membership;
pub mod operation_points;
pub mod register;
pub mod replacement;
pub mod report;
pub mod revisions;
pub mod run;
pub mod server_kind;
pub mod set;
pub mod set_check;
pub mod timeline;
pub mod watch;
pub mod watch_check;
pub mod workload;
