//! Helpers for the crate's tests: a store that numbers log entries itself.

use crate::error::{Error, RequestError};
use crate::store::{Applied, ApplyOutcome, Store};
use crate::types::{
    Command, DeleteRangeRequest, KeyValue, PutRequest, RangeRequest, RangeResponse, Response,
    TxnRequest, TxnResponse,
};

/// A store plus the next log index to apply.
#[derive(Debug)]
pub(crate) struct Harness {
    pub(crate) store: Store,
    pub(crate) next_index: u64,
}

impl Harness {
    pub(crate) fn new() -> Self {
        Self::with_store(Store::in_memory().expect("in-memory store opens"))
    }

    pub(crate) fn with_store(store: Store) -> Self {
        let next_index = store.applied_index() + 1;
        Self { store, next_index }
    }

    /// Applies `command` at the next index and returns what it did.
    pub(crate) fn apply(&mut self, command: Command) -> Applied {
        let index = self.next_index;
        self.next_index += 1;
        match self.store.apply(index, &command).expect("apply succeeds") {
            ApplyOutcome::Applied(applied) => applied,
            other => panic!("index {index} was not applied: {other:?}"),
        }
    }

    pub(crate) fn result(&mut self, command: Command) -> Result<Response, RequestError> {
        self.apply(command).result
    }

    pub(crate) fn put(&mut self, key: &str, value: &str) -> Applied {
        self.apply(Command::Put(PutRequest::new(key, value)))
    }

    pub(crate) fn delete(&mut self, key: &str, range_end: &str) -> Applied {
        self.apply(Command::DeleteRange(DeleteRangeRequest::between(
            key, range_end,
        )))
    }

    pub(crate) fn txn(&mut self, txn: TxnRequest) -> Result<TxnResponse, RequestError> {
        match self.result(Command::Txn(txn))? {
            Response::Txn(response) => Ok(response),
            other => panic!("a txn answered {other:?}"),
        }
    }

    pub(crate) fn range(&self, request: &RangeRequest) -> Result<RangeResponse, Error> {
        self.store.range(request)
    }

    pub(crate) fn get(&self, key: &str) -> Option<KeyValue> {
        self.get_at(key, 0)
    }

    pub(crate) fn get_at(&self, key: &str, revision: i64) -> Option<KeyValue> {
        let request = RangeRequest {
            revision,
            ..RangeRequest::single(key)
        };
        let mut response = self.range(&request).expect("range succeeds");
        assert!(response.kvs.len() <= 1);
        response.kvs.pop()
    }

    /// The keys of a range response, as strings.
    pub(crate) fn keys(response: &RangeResponse) -> Vec<String> {
        response
            .kvs
            .iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    }
}
