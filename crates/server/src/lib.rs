//! server crate (under construction).
