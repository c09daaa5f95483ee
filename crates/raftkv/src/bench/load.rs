//! The put load: `clients` tasks, each with one put in flight at a time, over
//! a few shared HTTP/2 connections, until a request count or a duration is
//! reached. It owns the clients and the latency histogram; it never starts or
//! stops a server.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use server::proto::etcdserverpb::kv_client::KvClient;
use server::proto::etcdserverpb::PutRequest;
use tonic::transport::Channel;

use super::cluster::connect;
use super::BenchError;

/// One put slower than this counts as failed.
const PUT_TIMEOUT: Duration = Duration::from_secs(10);
/// The histogram's range: 1 µs to 60 s, three significant digits.
const LATENCY_US_MAX: u64 = 60_000_000;
/// Failures recorded in detail; the rest are only counted.
const FIRST_ERRORS_MAX: usize = 3;

/// When a run ends.
#[derive(Clone, Copy, Debug)]
pub enum Stop {
    /// After this many puts in all (started, across clients).
    Requests(u64),
    /// When this much time has passed since the start.
    Duration(Duration),
}

/// What to send.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub clients: usize,
    pub connections_max: usize,
    pub stop: Stop,
    pub value_bytes: usize,
    pub keys: u64,
}

/// What a run measured.
#[derive(Debug)]
pub struct LoadResult {
    /// Latency of every successful put, in microseconds.
    pub latency_us: Histogram<u64>,
    pub succeeded: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub first_errors: Vec<String>,
}

impl LoadResult {
    /// Nothing measured yet.
    fn empty() -> LoadResult {
        LoadResult {
            latency_us: new_histogram(),
            succeeded: 0,
            failed: 0,
            elapsed: Duration::ZERO,
            first_errors: Vec::new(),
        }
    }
}

/// The key of a client's `sequence`-th put: spread over the key space by a
/// fixed mix, so runs are repeatable and keys are overwritten across clients.
fn key_for(client: u64, sequence: u64, keys: u64) -> Vec<u8> {
    debug_assert!(keys > 0);
    let mut mixed = (client << 40) ^ sequence;
    mixed = mixed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    mixed ^= mixed >> 31;
    format!("bench/{:012}", mixed % keys).into_bytes()
}

/// A value of `bytes` printable bytes that does not compress to nothing.
fn value_of(bytes: usize) -> Vec<u8> {
    (0..bytes)
        .map(|i| b'a' + ((i * 7 + i / 26) % 26) as u8)
        .collect()
}

/// Connects, sends one put per connection to warm up, then runs the load.
pub async fn run(endpoint: &str, spec: &LoadSpec) -> Result<LoadResult, BenchError> {
    debug_assert!(spec.clients > 0 && spec.connections_max > 0);
    let connections = spec.clients.min(spec.connections_max);
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections {
        let channel = connect(endpoint)
            .await
            .map_err(|error| BenchError::Connect {
                endpoint: endpoint.to_owned(),
                reason: error.to_string(),
            })?;
        let mut client = KvClient::new(channel.clone());
        put_once(&mut client, key_for(u64::MAX, 0, spec.keys), value_of(8))
            .await
            .map_err(|reason| BenchError::Connect {
                endpoint: endpoint.to_owned(),
                reason,
            })?;
        channels.push(channel);
    }
    let started = Instant::now();
    let issued = Arc::new(AtomicU64::new(0));
    let value = value_of(spec.value_bytes);
    let mut tasks = tokio::task::JoinSet::new();
    for client in 0..spec.clients {
        let channel = channels[client % connections].clone();
        tasks.spawn(client_loop(
            client as u64,
            channel,
            spec.clone(),
            value.clone(),
            started,
            Arc::clone(&issued),
        ));
    }
    let mut result = LoadResult::empty();
    while let Some(joined) = tasks.join_next().await {
        let client = joined.map_err(|error| BenchError::Client(error.to_string()))?;
        result
            .latency_us
            .add(&client.latency_us)
            .map_err(|error| BenchError::Client(error.to_string()))?;
        result.succeeded += client.succeeded;
        result.failed += client.failed;
        for error in client.first_errors {
            if result.first_errors.len() < FIRST_ERRORS_MAX {
                result.first_errors.push(error);
            }
        }
    }
    result.elapsed = started.elapsed();
    debug_assert_eq!(result.latency_us.len(), result.succeeded);
    Ok(result)
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("constant histogram bounds are valid")
}

async fn client_loop(
    client: u64,
    channel: Channel,
    spec: LoadSpec,
    value: Vec<u8>,
    started: Instant,
    issued: Arc<AtomicU64>,
) -> LoadResult {
    let mut kv = KvClient::new(channel);
    let mut result = LoadResult::empty();
    let mut sequence = 0;
    loop {
        let go_on = match spec.stop {
            Stop::Requests(total) => issued.fetch_add(1, Ordering::Relaxed) < total,
            Stop::Duration(duration) => started.elapsed() < duration,
        };
        if !go_on {
            break;
        }
        let key = key_for(client, sequence, spec.keys);
        sequence += 1;
        let sent = Instant::now();
        match put_once(&mut kv, key, value.clone()).await {
            Ok(()) => {
                let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                result.latency_us.saturating_record(micros.max(1));
                result.succeeded += 1;
            }
            Err(error) => {
                result.failed += 1;
                if result.first_errors.len() < FIRST_ERRORS_MAX {
                    result.first_errors.push(error);
                }
            }
        }
    }
    result
}

async fn put_once(
    client: &mut KvClient<Channel>,
    key: Vec<u8>,
    value: Vec<u8>,
) -> Result<(), String> {
    let request = PutRequest {
        key,
        value,
        ..PutRequest::default()
    };
    match tokio::time::timeout(PUT_TIMEOUT, client.put(request)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
        Err(_) => Err(format!("no answer within {PUT_TIMEOUT:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_in_the_key_space_and_spread() {
        let keys: std::collections::HashSet<Vec<u8>> = (0..1000)
            .map(|sequence| key_for(3, sequence, 100))
            .collect();
        assert!(keys.len() > 90, "only {} distinct keys", keys.len());
        assert!(keys.iter().all(|key| key.starts_with(b"bench/0000000000")));
    }

    #[test]
    fn clients_write_different_keys() {
        assert_ne!(key_for(1, 0, 1 << 40), key_for(2, 0, 1 << 40));
    }

    #[test]
    fn value_has_the_asked_size() {
        assert_eq!(value_of(256).len(), 256);
        assert!(value_of(256).iter().all(u8::is_ascii_lowercase));
    }
}
