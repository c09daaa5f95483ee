//! mvcc crate (under construction).
