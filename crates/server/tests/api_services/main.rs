//! etcd's service rules, one test each, called through the generated tonic
//! service traits on a [`LocalBackend`] (no network except where the test is
//! about the wire). Takes well under a second.

#[path = "../common/mod.rs"]
mod common;

mod cluster;
mod kv;
mod lease;
mod maintenance;
mod robustness;
mod wire_limits;

use std::future::Future;

use tonic::{Code, Status};

/// Runs a service call to completion on a single-threaded runtime.
fn run<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a test runtime starts")
        .block_on(future)
}

/// Asserts that `result` failed with exactly `code` and `message`.
#[track_caller]
fn assert_status<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, message: &str) {
    match result {
        Ok(value) => panic!("expected {code:?} {message:?}, got {value:?}"),
        Err(status) => assert_eq!(
            (status.code(), status.message()),
            (code, message),
            "{status:?}"
        ),
    }
}
