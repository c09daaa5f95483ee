//! The deterministic cluster simulator: virtual time, seeded faults and
//! checkers that hold the Raft core to its safety properties.

pub mod linearizability;
