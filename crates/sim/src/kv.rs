//! The replicated key-value state machine every simulated member runs: the
//! commands clients send (Put, Get, CAS on a small key space), their byte
//! encoding inside log entries, applying committed entries with at-most-once
//! semantics per client request, and snapshots of the whole store.
//!
//! Owns: command encoding, the store, its sessions and snapshots. Must never:
//! know about Raft roles, the network or time.

use std::collections::BTreeMap;

pub use crate::linearizability::{KvInput, KvKey as Key, KvOutput, KvValue as Value};

/// Whether `input` changes the store (and so must be acknowledged durably).
pub fn is_write(input: &KvInput) -> bool {
    !matches!(input, KvInput::Get { .. })
}

/// A command as it travels in a log entry: the operation plus the identity
/// of the request, so a retried request is applied at most once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Command {
    pub client_id: u64,
    pub request_id: u64,
    pub input: KvInput,
}

/// A log entry or snapshot whose bytes are not a command or store image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{what} is {actual} bytes, expected {expected}; the bytes were not written by this simulator's encoder")]
    WrongLength {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    #[error("{what} has unknown tag {tag} at byte offset {offset}")]
    UnknownTag {
        what: &'static str,
        tag: u8,
        offset: usize,
    },
}

const TAG_PUT: u8 = 1;
const TAG_GET: u8 = 2;
const TAG_CAS: u8 = 3;
const COMMAND_BYTES: usize = 1 + 8 + 8 + 1 + 8 + 8 + 1;

impl Command {
    /// Layout: tag, client, request, key, two values, whether `expected` is set.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, key, first, second, flag) = match self.input {
            KvInput::Put { key, value } => (TAG_PUT, key, value, 0, 0),
            KvInput::Get { key } => (TAG_GET, key, 0, 0, 0),
            KvInput::Cas { key, expected, new } => (
                TAG_CAS,
                key,
                expected.unwrap_or(0),
                new,
                u8::from(expected.is_some()),
            ),
        };
        let mut bytes = Vec::with_capacity(COMMAND_BYTES);
        bytes.push(tag);
        bytes.extend_from_slice(&self.client_id.to_le_bytes());
        bytes.extend_from_slice(&self.request_id.to_le_bytes());
        bytes.push(key);
        bytes.extend_from_slice(&first.to_le_bytes());
        bytes.extend_from_slice(&second.to_le_bytes());
        bytes.push(flag);
        bytes
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != COMMAND_BYTES {
            return Err(DecodeError::WrongLength {
                what: "command",
                expected: COMMAND_BYTES,
                actual: bytes.len(),
            });
        }
        let word = |offset: usize| {
            let mut buffer = [0u8; 8];
            buffer.copy_from_slice(&bytes[offset..offset + 8]);
            u64::from_le_bytes(buffer)
        };
        let key = bytes[17];
        let (first, second) = (word(18), word(26));
        let input = match bytes[0] {
            TAG_PUT => KvInput::Put { key, value: first },
            TAG_GET => KvInput::Get { key },
            TAG_CAS => KvInput::Cas {
                key,
                expected: (bytes[34] == 1).then_some(first),
                new: second,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "command",
                    tag,
                    offset: 0,
                })
            }
        };
        Ok(Self {
            client_id: word(1),
            request_id: word(9),
            input,
        })
    }
}

/// The last request a client had applied, with its answer for retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Session {
    request_id: u64,
    output: KvOutput,
}

/// What applying one command did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// Executed now, or a retry of the latest request: here is its answer.
    Answered(KvOutput),
    /// An older request of this client, superseded by a newer one: ignored.
    Superseded,
}

/// The store: values plus one session per client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvStore {
    values: BTreeMap<Key, Value>,
    sessions: BTreeMap<u64, Session>,
}

impl KvStore {
    pub fn get(&self, key: Key) -> Option<Value> {
        self.values.get(&key).copied()
    }

    /// The newest request of `client_id` this store has applied.
    pub fn last_request(&self, client_id: u64) -> Option<u64> {
        self.sessions
            .get(&client_id)
            .map(|session| session.request_id)
    }

    /// Applies a command at most once per (client, request).
    pub fn apply(&mut self, command: &Command) -> ApplyOutcome {
        if let Some(session) = self.sessions.get(&command.client_id) {
            if command.request_id < session.request_id {
                return ApplyOutcome::Superseded;
            }
            if command.request_id == session.request_id {
                return ApplyOutcome::Answered(session.output);
            }
        }
        let output = self.execute(command.input);
        self.sessions.insert(
            command.client_id,
            Session {
                request_id: command.request_id,
                output,
            },
        );
        ApplyOutcome::Answered(output)
    }

    fn execute(&mut self, input: KvInput) -> KvOutput {
        match input {
            KvInput::Put { key, value } => {
                self.values.insert(key, value);
                KvOutput::PutDone
            }
            KvInput::Get { key } => KvOutput::Value(self.get(key)),
            KvInput::Cas { key, expected, new } => {
                let succeeded = self.get(key) == expected;
                if succeeded {
                    self.values.insert(key, new);
                }
                KvOutput::CasDone { succeeded }
            }
        }
    }

    /// The store's image: counts, then (key, value) pairs, then sessions.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(self.values.len() as u64).to_le_bytes());
        for (key, value) in &self.values {
            bytes.push(*key);
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes.extend_from_slice(&(self.sessions.len() as u64).to_le_bytes());
        for (client_id, session) in &self.sessions {
            bytes.extend_from_slice(&client_id.to_le_bytes());
            bytes.extend_from_slice(&session.request_id.to_le_bytes());
            let (tag, word) = match session.output {
                KvOutput::PutDone => (0u8, 0u64),
                KvOutput::Value(None) => (1, 0),
                KvOutput::Value(Some(value)) => (2, value),
                KvOutput::CasDone { succeeded } => (3, u64::from(succeeded)),
            };
            bytes.push(tag);
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes
    }

    /// Rebuilds a store from [`KvStore::encode_snapshot`]'s bytes; an empty
    /// image (the initial snapshot of a new cluster) is the empty store.
    pub fn decode_snapshot(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader { bytes, offset: 0 };
        let mut store = Self::default();
        if bytes.is_empty() {
            return Ok(store);
        }
        for _ in 0..reader.word()? {
            let key = reader.byte()?;
            store.values.insert(key, reader.word()?);
        }
        for _ in 0..reader.word()? {
            let client_id = reader.word()?;
            let request_id = reader.word()?;
            let tag_offset = reader.offset;
            let tag = reader.byte()?;
            let word = reader.word()?;
            let output = match tag {
                0 => KvOutput::PutDone,
                1 => KvOutput::Value(None),
                2 => KvOutput::Value(Some(word)),
                3 => KvOutput::CasDone {
                    succeeded: word == 1,
                },
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "snapshot session output",
                        tag,
                        offset: tag_offset,
                    })
                }
            };
            store
                .sessions
                .insert(client_id, Session { request_id, output });
        }
        if reader.offset != bytes.len() {
            return Err(DecodeError::WrongLength {
                what: "snapshot",
                expected: reader.offset,
                actual: bytes.len(),
            });
        }
        Ok(store)
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl Reader<'_> {
    fn take(&mut self, count: usize) -> Result<&[u8], DecodeError> {
        let end = self.offset + count;
        let slice = self
            .bytes
            .get(self.offset..end)
            .ok_or(DecodeError::WrongLength {
                what: "snapshot",
                expected: end,
                actual: self.bytes.len(),
            })?;
        self.offset = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn word(&mut self) -> Result<u64, DecodeError> {
        let mut buffer = [0u8; 8];
        buffer.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(buffer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(client_id: u64, request_id: u64, input: KvInput) -> Command {
        Command {
            client_id,
            request_id,
            input,
        }
    }

    #[test]
    fn commands_round_trip_through_bytes() {
        for input in [
            KvInput::Put { key: 3, value: 9 },
            KvInput::Get { key: 1 },
            KvInput::Cas {
                key: 2,
                expected: None,
                new: 5,
            },
            KvInput::Cas {
                key: 2,
                expected: Some(0),
                new: 5,
            },
        ] {
            let original = command(4, 17, input);
            assert_eq!(Command::decode(&original.encode()), Ok(original));
        }
        assert!(matches!(
            Command::decode(&[1, 2, 3]),
            Err(DecodeError::WrongLength { actual: 3, .. })
        ));
    }

    #[test]
    fn retries_are_applied_once_and_old_requests_are_ignored() {
        let mut store = KvStore::default();
        let put = command(1, 1, KvInput::Put { key: 0, value: 10 });
        assert_eq!(store.apply(&put), ApplyOutcome::Answered(KvOutput::PutDone));
        let cas = command(
            1,
            2,
            KvInput::Cas {
                key: 0,
                expected: Some(10),
                new: 11,
            },
        );
        let answer = ApplyOutcome::Answered(KvOutput::CasDone { succeeded: true });
        assert_eq!(store.apply(&cas), answer);
        assert_eq!(store.apply(&cas), answer, "a retry gets the cached answer");
        assert_eq!(store.get(0), Some(11));
        assert_eq!(store.apply(&put), ApplyOutcome::Superseded);
        assert_eq!(store.get(0), Some(11), "a superseded put must not run");
    }

    #[test]
    fn snapshot_round_trips_and_rejects_truncation() {
        let mut store = KvStore::default();
        store.apply(&command(1, 1, KvInput::Put { key: 0, value: 10 }));
        store.apply(&command(2, 1, KvInput::Get { key: 5 }));
        let image = store.encode_snapshot();
        assert_eq!(KvStore::decode_snapshot(&image), Ok(store));
        assert!(KvStore::decode_snapshot(&image[..image.len() - 1]).is_err());
        assert_eq!(KvStore::decode_snapshot(&[]), Ok(KvStore::default()));
    }
}
