//! Linearizability checking of client histories (under construction).
