//! The workload's operations in etcd's terms, on the real `mvcc::Store`: a
//! Put is a `Put`, a CAS is a `Txn` (the key's value equals the expected one,
//! or the key is absent, then put), a Get is a single-key `Range`. Each
//! answer maps back to the linearizability checker's register model.
//!
//! etcd has no per-client sessions: a write sent twice is applied twice, so
//! clients never resend a write that may have been proposed; its outcome is
//! unknown instead.
//!
//! Owns: the bytes of keys and values, the requests and the mapping of
//! answers. Must never: know about members, the log or time.

use crate::linearizability::{KvInput, KvKey, KvOutput, KvValue};

/// Whether `input` changes the store (and so must be acknowledged durably).
pub fn is_write(input: &KvInput) -> bool {
    !matches!(input, KvInput::Get { .. })
}

/// The key's name in the store.
pub fn key_bytes(key: KvKey) -> Vec<u8> {
    format!("key-{key}").into_bytes()
}

fn value_bytes(value: KvValue) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}

/// An answer the workload's requests cannot produce: a simulator or store bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unexpected answer from the store: {0}")]
pub struct UnexpectedAnswer(String);

fn decode_value(bytes: &[u8]) -> Result<KvValue, UnexpectedAnswer> {
    let word: [u8; 8] = bytes
        .try_into()
        .map_err(|_| UnexpectedAnswer(format!("a value of {} bytes", bytes.len())))?;
    Ok(KvValue::from_be_bytes(word))
}

/// The command a write proposes; `None` for a read.
pub fn write_command(input: &KvInput) -> Option<mvcc::Command> {
    match *input {
        KvInput::Get { .. } => None,
        KvInput::Put { key, value } => Some(mvcc::Command::Put(mvcc::PutRequest::new(
            key_bytes(key),
            value_bytes(value),
        ))),
        KvInput::Cas { key, expected, new } => {
            // etcd's idiom: an absent key has version 0; a value compare on
            // an absent key always fails.
            let target = match expected {
                Some(value) => mvcc::CompareTarget::Value(value_bytes(value)),
                None => mvcc::CompareTarget::Version(0),
            };
            let compare = mvcc::Compare::new(key_bytes(key), mvcc::CompareResult::Equal, target);
            let put = mvcc::PutRequest::new(key_bytes(key), value_bytes(new));
            Some(mvcc::Command::Txn(mvcc::TxnRequest {
                compare: vec![compare],
                success: vec![mvcc::RequestOp::Put(put)],
                failure: Vec::new(),
            }))
        }
    }
}

/// What a client learns of its applied write: the checker's output, and the
/// revision of the change when it changed the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteAnswer {
    pub output: KvOutput,
    pub revision: Option<i64>,
}

/// The answer to a write from the store's outcome; `None` for an outcome that
/// answers nobody (an index applied before this start of the member).
pub fn write_answer(outcome: &mvcc::ApplyOutcome) -> Result<Option<WriteAnswer>, UnexpectedAnswer> {
    let applied = match outcome {
        mvcc::ApplyOutcome::Applied(applied) => applied,
        mvcc::ApplyOutcome::AlreadyApplied { .. } => return Ok(None),
        mvcc::ApplyOutcome::NoCommand { index } => {
            return Err(UnexpectedAnswer(format!(
                "the write at index {index} carried no command"
            )))
        }
    };
    match &applied.result {
        Ok(mvcc::Response::Put(_)) => Ok(Some(WriteAnswer {
            output: KvOutput::PutDone,
            revision: Some(applied.revision),
        })),
        Ok(mvcc::Response::Txn(txn)) => Ok(Some(WriteAnswer {
            output: KvOutput::CasDone {
                succeeded: txn.succeeded,
            },
            revision: txn.succeeded.then_some(applied.revision),
        })),
        other => Err(UnexpectedAnswer(format!(
            "index {}: {other:?}",
            applied.index
        ))),
    }
}

/// A Get: the key's value in the store now.
pub fn read(store: &mvcc::Store, key: KvKey) -> Result<KvOutput, UnexpectedAnswer> {
    let response = store
        .range(&mvcc::RangeRequest::single(key_bytes(key)))
        .map_err(|error| UnexpectedAnswer(error.to_string()))?;
    let value = match response.kvs.first() {
        Some(kv) => Some(decode_value(&kv.value)?),
        None => None,
    };
    Ok(KvOutput::Value(value))
}

/// Whether the store's history holds `key` = `value` written at `revision`.
pub fn holds_write(
    store: &mvcc::Store,
    key: KvKey,
    value: KvValue,
    revision: i64,
) -> Result<bool, UnexpectedAnswer> {
    let request = mvcc::RangeRequest {
        revision,
        ..mvcc::RangeRequest::single(key_bytes(key))
    };
    let response = store
        .range(&request)
        .map_err(|error| UnexpectedAnswer(error.to_string()))?;
    Ok(response
        .kvs
        .first()
        .is_some_and(|kv| kv.mod_revision == revision && kv.value == value_bytes(value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(store: &mvcc::Store, index: u64, input: &KvInput) -> Option<WriteAnswer> {
        let command = write_command(input).unwrap();
        let outcome = store.apply(index, &command).unwrap();
        write_answer(&outcome).unwrap()
    }

    #[test]
    fn put_cas_and_get_follow_the_register_model() {
        let store = mvcc::Store::in_memory().unwrap();
        let absent_cas = KvInput::Cas {
            key: 1,
            expected: None,
            new: 5,
        };
        assert_eq!(
            apply(&store, 1, &absent_cas).unwrap().output,
            KvOutput::CasDone { succeeded: true }
        );
        assert_eq!(
            apply(&store, 2, &absent_cas).unwrap(),
            WriteAnswer {
                output: KvOutput::CasDone { succeeded: false },
                revision: None
            }
        );
        let put = apply(&store, 3, &KvInput::Put { key: 1, value: 7 }).unwrap();
        assert_eq!(put.output, KvOutput::PutDone);
        let stale_cas = KvInput::Cas {
            key: 1,
            expected: Some(5),
            new: 9,
        };
        assert_eq!(
            apply(&store, 4, &stale_cas).unwrap().output,
            KvOutput::CasDone { succeeded: false }
        );
        assert_eq!(read(&store, 1).unwrap(), KvOutput::Value(Some(7)));
        assert_eq!(read(&store, 2).unwrap(), KvOutput::Value(None));
        let revision = put.revision.unwrap();
        assert!(holds_write(&store, 1, 7, revision).unwrap());
        assert!(!holds_write(&store, 1, 5, revision).unwrap());
        assert!(write_command(&KvInput::Get { key: 1 }).is_none());
    }
}
