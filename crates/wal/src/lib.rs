//! wal crate (under construction).
