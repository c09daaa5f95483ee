//! The bytes of one proposal in the Raft log: who proposed it (member and
//! boot), a request number unique within that boot, and the encoded
//! [`mvcc::Command`]. The proposing member finds its own entries by these
//! fields and answers the waiting client; every other member ignores them.
//! This module only frames; it never decides what an entry means.

/// Marks the framing version, so a later layout can be told apart.
const ENVELOPE_VERSION: u8 = 1;
/// Version byte, member id, boot id and request number.
const HEADER_BYTES: usize = 1 + 8 + 8 + 8;

/// Which proposal an entry is: unique across members and restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ProposalId {
    pub member_id: u64,
    /// Distinguishes boots of one member, so a request number reused after a
    /// restart never matches an entry proposed before it.
    pub boot_id: u64,
    pub request: u64,
}

/// Why an entry's bytes are not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EnvelopeError {
    #[error("log entry of {length} bytes is shorter than the {HEADER_BYTES}-byte proposal header")]
    Short { length: usize },
    #[error("log entry has proposal framing version {found}; this member reads version {ENVELOPE_VERSION}")]
    Version { found: u8 },
}

pub(crate) fn encode(id: ProposalId, command: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + command.len());
    bytes.push(ENVELOPE_VERSION);
    bytes.extend_from_slice(&id.member_id.to_le_bytes());
    bytes.extend_from_slice(&id.boot_id.to_le_bytes());
    bytes.extend_from_slice(&id.request.to_le_bytes());
    bytes.extend_from_slice(command);
    debug_assert_eq!(bytes.len(), HEADER_BYTES + command.len());
    bytes
}

/// Splits an entry into its proposal id and the encoded command.
pub(crate) fn decode(bytes: &[u8]) -> Result<(ProposalId, &[u8]), EnvelopeError> {
    if bytes.len() < HEADER_BYTES {
        return Err(EnvelopeError::Short {
            length: bytes.len(),
        });
    }
    if bytes[0] != ENVELOPE_VERSION {
        return Err(EnvelopeError::Version { found: bytes[0] });
    }
    let word = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    let id = ProposalId {
        member_id: word(1),
        boot_id: word(9),
        request: word(17),
    };
    Ok((id, &bytes[HEADER_BYTES..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_id_and_command() {
        let id = ProposalId {
            member_id: 0x8e9e_05c5_2164_694d,
            boot_id: 7,
            request: u64::MAX,
        };
        let bytes = encode(id, b"command");
        assert_eq!(decode(&bytes), Ok((id, &b"command"[..])));
        assert_eq!(decode(&encode(id, b"")), Ok((id, &b""[..])));
    }

    #[test]
    fn short_and_foreign_bytes_are_refused() {
        assert_eq!(decode(b"abc"), Err(EnvelopeError::Short { length: 3 }));
        let mut bytes = encode(
            ProposalId {
                member_id: 1,
                boot_id: 2,
                request: 3,
            },
            b"x",
        );
        bytes[0] = 9;
        assert_eq!(decode(&bytes), Err(EnvelopeError::Version { found: 9 }));
    }
}
