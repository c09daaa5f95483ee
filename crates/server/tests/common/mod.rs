//! Helpers shared by the server's integration tests. Each test binary uses
//! only some of them.

#![allow(dead_code)]

pub mod local_backend;
pub mod tools;
