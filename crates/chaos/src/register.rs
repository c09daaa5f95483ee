//! Put/Get/CAS histories recorded by real clients against real members, in
//! the terms of the simulator's linearizability checker
//! (`sim::linearizability`), so the checker that judges simulated runs
//! judges the shipped product too.
//!
//! Owns: the mapping between the checker's `KvInput`/`KvOutput` and etcd's
//! KV API (register `n` is the etcd key `<prefix><n>`, a value is a decimal
//! u64), what counts as an unknown outcome, and rendering a violation with the operations around
//! it, and the register workload itself: what each client asks next.
//! Must never: judge a history (the checker does) or start members.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use server::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use server::proto::etcdserverpb::request_op::Request;
use server::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use sim::linearizability::{KvInput, KvKey, KvOperation, KvOutput, KvValue, Outcome, Violation};
use sim::rng::SimRng;

use crate::connection::{CallError, Connection, HistoryClock};

/// One register client, recording what it asked and what it saw.
#[derive(Debug)]
pub struct RegisterClient {
    connection: Connection,
    key_prefix: String,
    /// Reads skip the read barrier (etcd's serializable Range).
    serializable_reads: bool,
}

impl RegisterClient {
    /// A client over `connection`; register `n` is the etcd key
    /// `<key_prefix><n>`.
    pub fn new(connection: Connection, key_prefix: &str) -> RegisterClient {
        RegisterClient {
            connection,
            key_prefix: key_prefix.to_owned(),
            serializable_reads: false,
        }
    }

    /// Reads served from the member's own state, without the read barrier:
    /// not linearizable, so a negative control for the checker.
    pub fn with_serializable_reads(mut self, serializable: bool) -> RegisterClient {
        self.serializable_reads = serializable;
        self
    }

    /// Sends `input` and records it: the call time just before sending, the
    /// return time just after the answer, both from `clock`. An error or a
    /// timeout is an unknown outcome, since the member may have applied the
    /// request all the same.
    pub async fn record(&mut self, clock: &HistoryClock, input: KvInput) -> KvOperation {
        let call_time = clock.now_ns();
        let answer = self.call(clock, input).await;
        // A network round trip takes far longer than a nanosecond; the
        // `max` only keeps the checker's "return after call" rule without
        // trusting that.
        let return_time = clock.now_ns().max(call_time + 1);
        let outcome = match answer {
            Ok(output) => Outcome::Returned {
                output,
                return_time,
            },
            Err(error) => {
                self.connection.note_error(&format!("{input:?}"), &error);
                Outcome::Unknown
            }
        };
        KvOperation {
            client_id: self.connection.client_id(),
            input,
            call_time,
            outcome,
        }
    }

    pub fn client_id(&self) -> u64 {
        self.connection.client_id()
    }

    /// The connection, with what it recorded.
    pub fn into_connection(self) -> Connection {
        self.connection
    }

    async fn call(&mut self, clock: &HistoryClock, input: KvInput) -> Result<KvOutput, CallError> {
        match input {
            KvInput::Get { key } => self.get(clock, key).await,
            KvInput::Put { key, value } => {
                let request = self.put_request(key, value);
                self.connection.put(clock, request).await?;
                Ok(KvOutput::PutDone)
            }
            KvInput::Delete { key } => {
                let request = DeleteRangeRequest {
                    key: self.etcd_key(key).into_bytes(),
                    ..DeleteRangeRequest::default()
                };
                let response = self.connection.delete_range(clock, request).await?;
                Ok(KvOutput::Deleted {
                    existed: response.deleted > 0,
                })
            }
            KvInput::Cas { key, expected, new } => {
                let request = TxnRequest {
                    compare: vec![self.holds(key, expected)],
                    success: vec![RequestOp {
                        request: Some(Request::RequestPut(self.put_request(key, new))),
                    }],
                    failure: Vec::new(),
                };
                let response = self.connection.txn(clock, request).await?;
                Ok(KvOutput::CasDone {
                    succeeded: response.succeeded,
                })
            }
        }
    }

    /// A Range of one key, linearizable unless reads are serializable.
    async fn get(&mut self, clock: &HistoryClock, key: KvKey) -> Result<KvOutput, CallError> {
        let etcd_key = self.etcd_key(key);
        let request = RangeRequest {
            key: etcd_key.clone().into_bytes(),
            serializable: self.serializable_reads,
            ..RangeRequest::default()
        };
        let response = self.connection.range(clock, request).await?;
        assert!(
            response.kvs.len() <= 1,
            "a Range of the single key {etcd_key} returned {} key-values",
            response.kvs.len()
        );
        let value = response
            .kvs
            .first()
            .map(|kv| parse_value(&etcd_key, &kv.value));
        Ok(KvOutput::Value(value))
    }

    /// The compare of a CAS: the key holds `expected`, or is absent when
    /// `expected` is `None` (etcd: create revision 0).
    fn holds(&self, key: KvKey, expected: Option<KvValue>) -> Compare {
        let (target, target_union) = match expected {
            Some(value) => (
                CompareTarget::Value,
                TargetUnion::Value(value.to_string().into_bytes()),
            ),
            None => (CompareTarget::Create, TargetUnion::CreateRevision(0)),
        };
        Compare {
            result: CompareResult::Equal as i32,
            target: target as i32,
            key: self.etcd_key(key).into_bytes(),
            target_union: Some(target_union),
            range_end: Vec::new(),
        }
    }

    fn put_request(&self, key: KvKey, value: KvValue) -> PutRequest {
        PutRequest {
            key: self.etcd_key(key).into_bytes(),
            value: value.to_string().into_bytes(),
            ..PutRequest::default()
        }
    }

    fn etcd_key(&self, key: KvKey) -> String {
        format!("{}{key}", self.key_prefix)
    }
}

/// Every value a recording client writes is a decimal u64; anything else
/// under its keys is data no client wrote, which the member must never
/// return.
fn parse_value(etcd_key: &str, bytes: &[u8]) -> KvValue {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "a member returned {:?} for {etcd_key}, which no client wrote \
                 (every value written is a decimal u64)",
                String::from_utf8_lossy(bytes)
            )
        })
}

/// The checker's explanation of `violation`, then every operation on the
/// violating key whose call or return lies within `window_ns` of the
/// operations the checker could not place, in call order, with times in
/// milliseconds since the history began.
pub fn describe_violation(
    history: &[KvOperation],
    violation: &Violation,
    window_ns: u64,
) -> String {
    let mut text = violation.explanation.clone();
    let Some(&anchor) = violation
        .next_candidates
        .first()
        .or(violation.longest_prefix.last())
    else {
        return text;
    };
    let key = history[anchor].input.key();
    let stuck = violation
        .next_candidates
        .iter()
        .map(|&index| history[index].call_time);
    let from = stuck.clone().min().unwrap_or(history[anchor].call_time);
    let until = stuck.max().unwrap_or(history[anchor].call_time);
    let (from, until) = (
        from.saturating_sub(window_ns),
        until.saturating_add(window_ns),
    );
    let mut around: Vec<usize> = (0..history.len())
        .filter(|&index| history[index].input.key() == key)
        .filter(|&index| {
            let operation = &history[index];
            let end = operation.return_time().unwrap_or(operation.call_time);
            operation.call_time <= until && end >= from
        })
        .collect();
    around.sort_by_key(|&index| history[index].call_time);
    let milliseconds = |ns: u64| ns as f64 / 1e6;
    // Writing to a String cannot fail.
    for &index in &violation.next_candidates {
        if let Outcome::Returned {
            output: KvOutput::Value(Some(value)),
            ..
        } = history[index].outcome
        {
            let writer = history
                .iter()
                .position(|operation| writes(operation, value));
            let _ = writeln!(
                text,
                "#{index} read {value}, written by {}",
                writer.map_or("no operation".to_owned(), |writer| format!("#{writer}"))
            );
        }
    }
    let _ = writeln!(
        text,
        "operations on key {key} from {:.3} ms to {:.3} ms:",
        milliseconds(from),
        milliseconds(until)
    );
    for index in around {
        let operation = &history[index];
        let answer = match &operation.outcome {
            Outcome::Returned {
                output,
                return_time,
            } => format!("{output:?}, returned {:.3} ms", milliseconds(*return_time)),
            Outcome::Unknown => "outcome unknown".to_owned(),
        };
        let _ = writeln!(
            text,
            "  #{index} client {}: {:?} called {:.3} ms -> {answer}",
            operation.client_id,
            operation.input,
            milliseconds(operation.call_time)
        );
    }
    text
}

/// Whether `operation` asked to write `value` (values are unique per write).
fn writes(operation: &KvOperation, value: KvValue) -> bool {
    match operation.input {
        KvInput::Put { value: written, .. } | KvInput::Cas { new: written, .. } => written == value,
        KvInput::Get { .. } | KvInput::Delete { .. } => false,
    }
}

/// The shape of the register workload: how many keys each round uses, how
/// long a round lasts, and how long a client waits between calls. The
/// checker searches each key's operations as a whole, and a longer
/// sub-history (above all one with many unknown outcomes) costs more to
/// search; every round the clients move to fresh keys, so a key's history
/// stays short however long the run.
#[derive(Clone, Copy, Debug)]
pub struct Rounds {
    pub keys_per_round: u8,
    pub round: Duration,
    /// A client's pause after each call.
    pub think: Duration,
}

impl Rounds {
    /// The longest run the key space (256 registers) allows.
    pub fn run_max(&self) -> Duration {
        self.round * (255 / u32::from(self.keys_per_round))
    }

    /// `keys_per_round` keys a round, rounds of `round_min` or, for a run
    /// too long for the key space at that pace, as long as it needs.
    pub fn for_run(
        run: Duration,
        keys_per_round: u8,
        round_min: Duration,
        think: Duration,
    ) -> Rounds {
        let rounds_max = u32::from(255 / keys_per_round);
        Rounds {
            keys_per_round,
            round: round_min.max(run.div_f64(f64::from(rounds_max)) + Duration::from_millis(1)),
            think,
        }
    }
}

/// A bound on each client's loop besides the run's deadline.
pub const OPERATIONS_PER_CLIENT_MAX: usize = 100_000;

/// One client's loop until `run` has passed since `clock` started: about
/// half linearizable reads, a quarter puts, a quarter compare-and-swaps of
/// the value this client last saw. Returns its operations and its
/// connection, which holds the header revisions and errors it saw.
pub async fn run_client(
    mut client: RegisterClient,
    mut rng: SimRng,
    clock: HistoryClock,
    run: Duration,
    rounds: Rounds,
) -> (Vec<KvOperation>, Connection) {
    assert!(
        run <= rounds.run_max(),
        "a run longer than the key space allows"
    );
    let run_ns = u64::try_from(run.as_nanos()).expect("a run shorter than 584 years");
    let round_ns = u64::try_from(rounds.round.as_nanos()).expect("a short round");
    let mut operations = Vec::new();
    let mut last_seen: HashMap<KvKey, Option<KvValue>> = HashMap::new();
    while operations.len() < OPERATIONS_PER_CLIENT_MAX {
        let now_ns = clock.now_ns();
        if now_ns >= run_ns {
            break;
        }
        let round = u8::try_from(now_ns / round_ns).expect("run length checked against rounds");
        let key =
            round * rounds.keys_per_round + rng.index(usize::from(rounds.keys_per_round)) as u8;
        let value = (client.client_id() << 32) | (operations.len() as u64 + 1);
        let input = next_input(&mut rng, key, value, &last_seen);
        let operation = client.record(&clock, input).await;
        if let Some(value) = value_seen(&operation) {
            last_seen.insert(key, value);
        }
        operations.push(operation);
        if !rounds.think.is_zero() {
            tokio::time::sleep(rounds.think).await;
        }
    }
    (operations, client.into_connection())
}

/// About half reads, a quarter puts, a quarter compare-and-swaps. A write
/// writes `value`, which the caller makes `client_id << 32 | n` for the
/// client's `n`-th operation, so no two writes in a history write the same
/// value.
fn next_input(
    rng: &mut SimRng,
    key: KvKey,
    value: KvValue,
    last_seen: &HashMap<KvKey, Option<KvValue>>,
) -> KvInput {
    match rng.index(4) {
        0 | 1 => KvInput::Get { key },
        2 => KvInput::Put { key, value },
        _ => KvInput::Cas {
            key,
            expected: last_seen.get(&key).copied().flatten(),
            new: value,
        },
    }
}

/// What `operation` told its client the key holds now, if anything.
pub fn value_seen(operation: &KvOperation) -> Option<Option<KvValue>> {
    let Outcome::Returned { output, .. } = operation.outcome else {
        return None;
    };
    match (operation.input, output) {
        (KvInput::Get { .. }, KvOutput::Value(value)) => Some(value),
        (KvInput::Put { value, .. }, KvOutput::PutDone) => Some(Some(value)),
        (KvInput::Cas { new, .. }, KvOutput::CasDone { succeeded: true }) => Some(Some(new)),
        _ => None,
    }
}

/// How many returned operations satisfy `predicate`.
pub fn count_returned(history: &[KvOperation], predicate: impl Fn(&KvOperation) -> bool) -> usize {
    history
        .iter()
        .filter(|operation| operation.is_returned() && predicate(operation))
        .count()
}
