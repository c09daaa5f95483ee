//! The raftkv command line.

fn main() {}
