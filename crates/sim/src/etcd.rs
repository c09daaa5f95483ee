//! The workload's operations in etcd's terms, served through the server's
//! KV path ([`server::api::kv_requests`], the code the gRPC service runs) on
//! any [`KvBackend`]: a Put is a `Put`, a Delete a single-key `DeleteRange`,
//! a CAS a `Txn` (the key's value equals the expected one, or the key is
//! absent, then put), a Get a single-key `Range`, linearizable unless the
//! caller accepts a serializable read. Each answer maps back to the
//! linearizability checker's register model.
//!
//! etcd has no per-client sessions: a write sent twice is applied twice, so
//! clients never resend a write that may have been proposed; its outcome is
//! unknown instead.
//!
//! Owns: the bytes of keys and values, the requests and the mapping of
//! answers. Must never: know about members, the log or time.

use server::api::kv_requests::{self, KvError};
use server::backend::KvBackend;

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

/// Why a call got no answer for the register model.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The KV path failed: the backend, or the store.
    #[error(transparent)]
    Kv(#[from] KvError),
    #[error(transparent)]
    Unexpected(#[from] UnexpectedAnswer),
}

/// What a client learns of its call: the checker's output, and a revision:
/// the one a read was served at, or the change's when a write changed the
/// store (none for a write that changed nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub output: KvOutput,
    pub revision: Option<i64>,
}

/// A Put of `value` at `key`.
pub fn put_request(key: KvKey, value: KvValue) -> mvcc::PutRequest {
    mvcc::PutRequest::new(key_bytes(key), value_bytes(value))
}

/// A CAS as etcd clients write it. An absent key has version 0; a value
/// compare on an absent key always fails.
fn cas_request(key: KvKey, expected: Option<KvValue>, new: KvValue) -> mvcc::TxnRequest {
    let target = match expected {
        Some(value) => mvcc::CompareTarget::Value(value_bytes(value)),
        None => mvcc::CompareTarget::Version(0),
    };
    let compare = mvcc::Compare::new(key_bytes(key), mvcc::CompareResult::Equal, target);
    mvcc::TxnRequest {
        compare: vec![compare],
        success: vec![mvcc::RequestOp::Put(put_request(key, new))],
        failure: Vec::new(),
    }
}

/// Serves `input` through the KV path over `backend`; a Get is a
/// serializable read when `serializable`, linearizable otherwise.
pub async fn call<B: KvBackend>(
    backend: &B,
    input: KvInput,
    serializable: bool,
) -> Result<Answer, CallError> {
    match input {
        KvInput::Get { key } => {
            let request = mvcc::RangeRequest::single(key_bytes(key));
            let answered = kv_requests::range(backend, request, serializable).await?;
            let value = match answered.response.kvs.first() {
                Some(kv) => Some(decode_value(&kv.value)?),
                None => None,
            };
            Ok(Answer {
                output: KvOutput::Value(value),
                revision: Some(answered.header_revision),
            })
        }
        KvInput::Put { key, value } => {
            let answered = kv_requests::put(backend, put_request(key, value)).await?;
            Ok(Answer {
                output: KvOutput::PutDone,
                revision: Some(answered.header_revision),
            })
        }
        KvInput::Delete { key } => {
            let request = mvcc::DeleteRangeRequest::single(key_bytes(key));
            let answered = kv_requests::delete_range(backend, request).await?;
            let existed = match answered.response.deleted {
                0 => false,
                1 => true,
                deleted => {
                    let detail = format!("a single-key delete removed {deleted} keys");
                    return Err(UnexpectedAnswer(detail).into());
                }
            };
            Ok(Answer {
                output: KvOutput::Deleted { existed },
                revision: existed.then_some(answered.header_revision),
            })
        }
        KvInput::Cas { key, expected, new } => {
            let request = cas_request(key, expected, new);
            let answered = kv_requests::txn(backend, request, false).await?;
            let succeeded = answered.response.succeeded;
            Ok(Answer {
                output: KvOutput::CasDone { succeeded },
                revision: succeeded.then_some(answered.header_revision),
            })
        }
    }
}

/// The key's entry in the store's history at `revision`.
fn kv_at(
    store: &mvcc::Store,
    key: KvKey,
    revision: i64,
) -> Result<Option<mvcc::KeyValue>, UnexpectedAnswer> {
    let request = mvcc::RangeRequest {
        revision,
        ..mvcc::RangeRequest::single(key_bytes(key))
    };
    store
        .range(&request)
        .map(|response| response.kvs.into_iter().next())
        .map_err(|error| UnexpectedAnswer(error.to_string()))
}

/// The value `key` held at `revision` of the store's history.
pub fn value_at(
    store: &mvcc::Store,
    key: KvKey,
    revision: i64,
) -> Result<Option<KvValue>, UnexpectedAnswer> {
    kv_at(store, key, revision)?
        .map(|kv| decode_value(&kv.value))
        .transpose()
}

/// Whether the store's history holds the change of `key` made at
/// `revision`: to `Some(value)`, or its deletion for `None`.
pub fn holds_write(
    store: &mvcc::Store,
    key: KvKey,
    value: Option<KvValue>,
    revision: i64,
) -> Result<bool, UnexpectedAnswer> {
    match value {
        Some(value) => Ok(kv_at(store, key, revision)?
            .is_some_and(|kv| kv.mod_revision == revision && kv.value == value_bytes(value))),
        None => Ok(revision > 1
            && kv_at(store, key, revision)?.is_none()
            && kv_at(store, key, revision - 1)?.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::task::{Context, Poll, Waker};

    use server::backend::BackendError;

    use super::*;

    /// Applies each write at once at the next index; the barrier is passed
    /// at once: a single member that always leads.
    struct Immediate {
        store: mvcc::Store,
        last_index: AtomicU64,
    }

    impl KvBackend for Immediate {
        async fn propose(&self, command: mvcc::Command) -> Result<mvcc::Applied, BackendError> {
            let index = self.last_index.fetch_add(1, Ordering::SeqCst) + 1;
            match self.store.apply(index, &command)? {
                mvcc::ApplyOutcome::Applied(applied) => Ok(applied),
                other => panic!("a fresh index was not applied: {other:?}"),
            }
        }

        async fn read_barrier(&self) -> Result<(), BackendError> {
            Ok(())
        }

        fn store(&self) -> &mvcc::Store {
            &self.store
        }
    }

    fn serve(backend: &Immediate, input: KvInput) -> Answer {
        let mut future = std::pin::pin!(call(backend, input, false));
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(answer) => answer.unwrap(),
            Poll::Pending => panic!("an immediate backend answers at once"),
        }
    }

    #[test]
    fn put_delete_cas_and_get_follow_the_register_model() {
        let backend = Immediate {
            store: mvcc::Store::in_memory().unwrap(),
            last_index: AtomicU64::new(0),
        };
        let absent_cas = KvInput::Cas {
            key: 1,
            expected: None,
            new: 5,
        };
        assert_eq!(
            serve(&backend, absent_cas).output,
            KvOutput::CasDone { succeeded: true }
        );
        assert_eq!(
            serve(&backend, absent_cas),
            Answer {
                output: KvOutput::CasDone { succeeded: false },
                revision: None
            }
        );
        let put = serve(&backend, KvInput::Put { key: 1, value: 7 });
        assert_eq!(put.output, KvOutput::PutDone);
        let stale_cas = KvInput::Cas {
            key: 1,
            expected: Some(5),
            new: 9,
        };
        assert_eq!(
            serve(&backend, stale_cas).output,
            KvOutput::CasDone { succeeded: false }
        );
        assert_eq!(
            serve(&backend, KvInput::Get { key: 1 }).output,
            KvOutput::Value(Some(7))
        );
        assert_eq!(
            serve(&backend, KvInput::Get { key: 2 }).output,
            KvOutput::Value(None)
        );
        let read = serve(&backend, KvInput::Get { key: 1 });
        assert_eq!(read.revision, put.revision);
        let store = &backend.store;
        let revision = put.revision.unwrap();
        assert!(holds_write(store, 1, Some(7), revision).unwrap());
        assert!(!holds_write(store, 1, Some(5), revision).unwrap());

        let delete = serve(&backend, KvInput::Delete { key: 1 });
        assert_eq!(delete.output, KvOutput::Deleted { existed: true });
        let deleted_at = delete.revision.unwrap();
        assert!(holds_write(store, 1, None, deleted_at).unwrap());
        assert!(!holds_write(store, 1, None, revision).unwrap());
        assert_eq!(value_at(store, 1, revision).unwrap(), Some(7));
        assert_eq!(value_at(store, 1, deleted_at).unwrap(), None);
        assert_eq!(
            serve(&backend, KvInput::Get { key: 1 }).output,
            KvOutput::Value(None)
        );
        assert_eq!(
            serve(&backend, KvInput::Delete { key: 1 }),
            Answer {
                output: KvOutput::Deleted { existed: false },
                revision: None
            }
        );
    }
}
