//! The set workload: every client adds unique elements to one set held in
//! one key, by reading the value and its mod revision and writing the value
//! with the element appended in a transaction that holds only if the key's
//! mod revision is still the one read. Concurrent adds that lose the race
//! are refused and tried again on a fresh read, so no add overwrites
//! another's. At the end a linearizable read takes the set, for
//! [`crate::set_check`] to judge.
//!
//! The negative control appends with a blind put (no compare): concurrent
//! adds then overwrite each other, and acknowledged elements go missing.
//!
//! Owns: the set's encoding (elements as decimal numbers separated by
//! spaces), each add's tries and its outcome. Must never: judge the set, or
//! try an element again once an attempt's outcome is unknown (the element
//! may be in the set already).

use std::time::{Duration, Instant};

use server::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use server::proto::etcdserverpb::request_op::Request;
use server::proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};

use crate::connection::{Connection, HistoryClock};

/// The one key that holds the set.
pub const SET_KEY: &[u8] = b"set/elements";
/// Tries of one element, each on a fresh read, before it is given up as
/// not added.
const TRIES_PER_ADD_MAX: usize = 8;
/// A bound on each client's loop besides the run's deadline.
const ADDS_PER_CLIENT_MAX: usize = 50_000;
const FINAL_READ_PAUSE: Duration = Duration::from_millis(200);

/// How adds write the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Appends {
    /// A transaction that holds only if the set is unchanged since read.
    Compared,
    /// A blind put of the value read plus the element: a negative control
    /// that loses concurrent adds.
    Blind,
}

/// What became of one add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddOutcome {
    /// A write with the element was acknowledged.
    Added,
    /// Every write sent was refused (or none could be sent): the element
    /// is certainly not in the set.
    NotAdded,
    /// A write went unanswered: the element may or may not be in the set.
    Unknown,
}

/// One client's attempt to add one element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Add {
    pub client_id: u64,
    /// Unique in the run: `client_id << 32 | n` for the client's `n`th add.
    pub element: u64,
    pub call_ns: u64,
    /// When the last answer came, `None` for an unknown outcome.
    pub return_ns: Option<u64>,
    pub outcome: AddOutcome,
}

/// The set as read at the end: the elements in the order held, and any
/// word that is not an element's number (which no client wrote).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SetRead {
    pub elements: Vec<u64>,
    pub malformed: Vec<String>,
}

impl SetRead {
    /// Reads the set's encoding.
    pub fn parse(value: &[u8]) -> SetRead {
        let mut read = SetRead::default();
        for word in String::from_utf8_lossy(value).split_whitespace() {
            match word.parse() {
                Ok(element) => read.elements.push(element),
                Err(_) => read.malformed.push(word.to_owned()),
            }
        }
        read
    }
}

/// One client's adds until `run` has passed since `clock` started, with
/// `think` between them. Returns its adds and its connection.
pub async fn run_set_client(
    mut connection: Connection,
    clock: HistoryClock,
    run: Duration,
    think: Duration,
    appends: Appends,
) -> (Vec<Add>, Connection) {
    let run_ns = u64::try_from(run.as_nanos()).expect("a run shorter than 584 years");
    let mut adds = Vec::new();
    while adds.len() < ADDS_PER_CLIENT_MAX && clock.now_ns() < run_ns {
        let element = (connection.client_id() << 32) | (adds.len() as u64 + 1);
        adds.push(add(&mut connection, &clock, element, appends).await);
        tokio::time::sleep(think).await;
    }
    (adds, connection)
}

async fn add(
    connection: &mut Connection,
    clock: &HistoryClock,
    element: u64,
    appends: Appends,
) -> Add {
    let call_ns = clock.now_ns();
    let mut outcome = AddOutcome::NotAdded;
    for _ in 0..TRIES_PER_ADD_MAX {
        let read = match connection.range(clock, read_request()).await {
            Ok(read) => read,
            Err(error) => {
                connection.note_error("read the set", &error);
                break;
            }
        };
        let (value, mod_revision) = read
            .kvs
            .first()
            .map_or((Vec::new(), 0), |kv| (kv.value.clone(), kv.mod_revision));
        let put = PutRequest {
            key: SET_KEY.to_vec(),
            value: appended_bytes(&value, element),
            ..PutRequest::default()
        };
        let written = match appends {
            Appends::Compared => connection
                .txn(clock, unchanged_since(mod_revision, put))
                .await
                .map(|response| response.succeeded),
            Appends::Blind => connection.put(clock, put).await.map(|_| true),
        };
        match written {
            Ok(true) => {
                outcome = AddOutcome::Added;
                break;
            }
            Ok(false) => {}
            Err(error) => {
                connection.note_error(&format!("add {element}"), &error);
                outcome = AddOutcome::Unknown;
                break;
            }
        }
    }
    Add {
        client_id: connection.client_id(),
        element,
        call_ns,
        return_ns: (outcome != AddOutcome::Unknown).then(|| clock.now_ns()),
        outcome,
    }
}

/// The set's value with `element` appended.
fn appended_bytes(value: &[u8], element: u64) -> Vec<u8> {
    let mut appended = value.to_vec();
    if !appended.is_empty() {
        appended.push(b' ');
    }
    appended.extend_from_slice(element.to_string().as_bytes());
    appended
}

/// A linearizable read of the set.
fn read_request() -> RangeRequest {
    RangeRequest {
        key: SET_KEY.to_vec(),
        ..RangeRequest::default()
    }
}

/// `put` if the set's mod revision is still `mod_revision` (0: absent).
fn unchanged_since(mod_revision: i64, put: PutRequest) -> TxnRequest {
    TxnRequest {
        compare: vec![Compare {
            result: CompareResult::Equal as i32,
            target: CompareTarget::Mod as i32,
            key: SET_KEY.to_vec(),
            target_union: Some(TargetUnion::ModRevision(mod_revision)),
            range_end: Vec::new(),
        }],
        success: vec![RequestOp {
            request: Some(Request::RequestPut(put)),
        }],
        failure: Vec::new(),
    }
}

/// The set by a linearizable read, through each member in turn until one
/// answers; `None` if none did within `within`.
pub async fn read_final(
    connection: &mut Connection,
    clock: &HistoryClock,
    within: Duration,
) -> Option<SetRead> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match connection.range(clock, read_request()).await {
            Ok(read) => {
                return Some(
                    read.kvs
                        .first()
                        .map(|kv| SetRead::parse(&kv.value))
                        .unwrap_or_default(),
                )
            }
            Err(error) => {
                // An unavailable member was left for the next already.
                connection.note_error("final read of the set", &error);
                tokio::time::sleep(FINAL_READ_PAUSE).await;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_appended_element_parses_back() {
        let once = appended_bytes(b"", 7);
        let twice = appended_bytes(&once, 1 << 32 | 3);
        assert_eq!(
            SetRead::parse(&twice),
            SetRead {
                elements: vec![7, 1 << 32 | 3],
                malformed: Vec::new()
            }
        );
    }

    #[test]
    fn a_word_that_is_no_element_is_kept_as_malformed() {
        let read = SetRead::parse(b"1 x2 3");
        assert_eq!(read.elements, vec![1, 3]);
        assert_eq!(read.malformed, vec!["x2".to_owned()]);
    }
}
