//! Throughput of the state machine: applying puts one durable commit at a
//! time, applying them in deferred batches, and point reads over a store with
//! history. Run with `cargo bench -p mvcc`; takes about ten seconds.

use std::time::{Duration, Instant};

use mvcc::{Command, Durability, PutRequest, RangeRequest, Store};

const VALUE_BYTES: usize = 256;
const KEY_COUNT: u64 = 2_000;

fn put(key_number: u64) -> Command {
    let key = format!("bench/key/{:08}", key_number % KEY_COUNT);
    Command::Put(PutRequest::new(key, vec![b'v'; VALUE_BYTES]))
}

fn report(name: &str, operations: u64, elapsed: Duration) {
    let per_second = operations as f64 / elapsed.as_secs_f64();
    let micros_each = elapsed.as_micros() as f64 / operations as f64;
    println!("{name:<40} {operations:>7} ops  {per_second:>10.0} ops/s  {micros_each:>8.1} us/op");
}

fn apply_immediate(store: &Store, first_index: u64, count: u64) {
    let start = Instant::now();
    for index in first_index..first_index + count {
        store.apply(index, &put(index)).expect("apply");
    }
    report("apply, one durable commit each", count, start.elapsed());
}

fn apply_deferred(store: &Store, first_index: u64, count: u64, batch_size: u64) {
    let start = Instant::now();
    let mut index = first_index;
    while index < first_index + count {
        let commands: Vec<(u64, Command)> =
            (index..index + batch_size).map(|i| (i, put(i))).collect();
        store
            .apply_batch(
                commands.iter().map(|(i, command)| (*i, Some(command))),
                Durability::Deferred,
            )
            .expect("apply batch");
        index += batch_size;
    }
    store.flush().expect("flush");
    let name = format!("apply_batch deferred, {batch_size} per batch");
    report(&name, count, start.elapsed());
}

fn point_reads(store: &Store, count: u64) {
    let start = Instant::now();
    for number in 0..count {
        let key = format!("bench/key/{:08}", number % KEY_COUNT);
        let response = store.range(&RangeRequest::single(key)).expect("range");
        assert_eq!(response.kvs.len(), 1);
    }
    report(
        "range of one key (history of ~10 each)",
        count,
        start.elapsed(),
    );
}

fn main() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(dir.path().join("bench.redb")).expect("open");
    apply_immediate(&store, 1, 200);
    apply_deferred(&store, 201, 20_000, 100);
    point_reads(&store, 20_000);
    let size_bytes = store.db_size_bytes().expect("size");
    println!("database size after the run: {} KiB", size_bytes / 1024);
}
