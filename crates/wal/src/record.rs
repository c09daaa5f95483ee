//! Record framing: how one log record is laid out in a segment, and the payload
//! codecs for the three record kinds. Pure byte manipulation: this module never
//! touches files and never decides whether a bad record is a torn tail or
//! corruption (that is `segment`'s job).
//!
//! A record is a 16-byte header, the payload, and zero padding to an 8-byte
//! boundary:
//!
//! ```text
//! 0..4    crc32c over bytes 4..16 of the header and the payload
//! 4..8    payload length in bytes (u32, little endian)
//! 8..12   reserved, zero
//! 12      kind (1 entries, 2 hard state, 3 snapshot marker; 0 is never valid,
//!         so preallocated zeros never parse as a record)
//! 13..16  reserved, zero
//! ```
//!
//! Records live in the byte stream the sectors carry (see `sector`): a record
//! may span sectors, and the stream of one write batch ends with zero bytes.

use raft::{ConfChange, ConfChangeKind, Entry, EntryKind, HardState, LogIndex, NodeId, Term};

pub(crate) const RECORD_HEADER_BYTES: usize = 16;
pub(crate) const RECORD_ALIGN_BYTES: usize = 8;

/// Fixed bytes of an entries payload before the first entry: first index and count.
const ENTRIES_PAYLOAD_HEADER_BYTES: usize = 12;
/// Fixed bytes per entry inside an entries payload: term, kind, data length.
const ENTRY_FIXED_BYTES: usize = 13;
const HARD_STATE_PAYLOAD_BYTES: usize = 24;
const SNAPSHOT_MARKER_PAYLOAD_BYTES: usize = 17;

const KIND_ENTRIES: u8 = 1;
const KIND_HARD_STATE: u8 = 2;
const KIND_SNAPSHOT_MARKER: u8 = 3;

const ENTRY_KIND_NORMAL: u8 = 1;
const ENTRY_KIND_NOOP: u8 = 2;
/// Configuration change kinds: the entry's data starts with the member id
/// (u64, little endian), followed by the change's context.
const ENTRY_KIND_ADD_VOTER: u8 = 3;
const ENTRY_KIND_ADD_LEARNER: u8 = 4;
const ENTRY_KIND_PROMOTE_LEARNER: u8 = 5;
const ENTRY_KIND_REMOVE_MEMBER: u8 = 6;
/// Bytes of the member id a configuration change entry carries before its data.
const CONF_CHANGE_MEMBER_BYTES: usize = 8;

/// The log was compacted (or replaced) up to a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SnapshotMarker {
    pub(crate) index: LogIndex,
    pub(crate) term: Term,
    /// True when the entries after `index` were kept (a local compaction, or an
    /// installed snapshot that matched the log); false when the snapshot
    /// replaced the whole log. Recorded rather than recomputed on replay,
    /// because the entry at `index` may live in a segment already deleted.
    pub(crate) entries_kept: bool,
}

/// A decoded record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Record {
    /// Contiguous entries; replaces every entry from the first one's index on.
    Entries(Vec<Entry>),
    HardState(HardState),
    SnapshotMarker(SnapshotMarker),
}

/// Why the bytes at an offset are not a valid record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameDefect {
    /// Not enough room left in the segment for a header.
    NoRoomForHeader,
    /// The header is all zeros: preallocated space, the normal end of data.
    Zeros,
    UnknownKind(u8),
    ReservedBytesSet,
    LengthBeyondSegment(u32),
    ChecksumMismatch,
}

impl std::fmt::Display for FrameDefect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameDefect::NoRoomForHeader => write!(f, "bytes too short for a record header"),
            FrameDefect::Zeros => write!(f, "zeroed record header"),
            FrameDefect::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
            FrameDefect::ReservedBytesSet => write!(f, "reserved header bytes are not zero"),
            FrameDefect::LengthBeyondSegment(length) => {
                write!(f, "record length {length} runs past the end of the segment")
            }
            FrameDefect::ChecksumMismatch => write!(f, "record checksum mismatch"),
        }
    }
}

/// A record whose frame is intact; its payload is not decoded yet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame<'a> {
    pub(crate) kind: u8,
    pub(crate) payload: &'a [u8],
    /// Offset just past this record and its padding.
    pub(crate) next_offset: usize,
}

/// Bytes a record with `payload_bytes` of payload takes on disk, padding included.
pub(crate) fn framed_bytes(payload_bytes: usize) -> usize {
    (RECORD_HEADER_BYTES + payload_bytes).next_multiple_of(RECORD_ALIGN_BYTES)
}

/// Payload bytes of an entries record holding `entries`.
pub(crate) fn entries_payload_bytes(entries: &[Entry]) -> usize {
    ENTRIES_PAYLOAD_HEADER_BYTES + entries.iter().map(entry_payload_bytes).sum::<usize>()
}

/// Payload bytes one entry adds to an entries record.
pub(crate) fn entry_payload_bytes(entry: &Entry) -> usize {
    let member_bytes = match entry.kind {
        EntryKind::ConfChange(_) => CONF_CHANGE_MEMBER_BYTES,
        EntryKind::Normal | EntryKind::Noop => 0,
    };
    ENTRY_FIXED_BYTES + member_bytes + entry.data.len()
}

/// The kind byte of an entry, and the member id a configuration change carries.
fn encode_entry_kind(kind: EntryKind) -> (u8, Option<NodeId>) {
    match kind {
        EntryKind::Normal => (ENTRY_KIND_NORMAL, None),
        EntryKind::Noop => (ENTRY_KIND_NOOP, None),
        EntryKind::ConfChange(change) => {
            let byte = match change.kind {
                ConfChangeKind::AddVoter => ENTRY_KIND_ADD_VOTER,
                ConfChangeKind::AddLearner => ENTRY_KIND_ADD_LEARNER,
                ConfChangeKind::PromoteLearner => ENTRY_KIND_PROMOTE_LEARNER,
                ConfChangeKind::RemoveMember => ENTRY_KIND_REMOVE_MEMBER,
            };
            (byte, Some(change.node_id))
        }
    }
}

/// Reads an entry's kind from its kind byte and stored data, returning the
/// kind and the entry's own data (after a configuration change's member id).
fn decode_entry_kind(
    position: usize,
    kind_byte: u8,
    stored: &[u8],
) -> Result<(EntryKind, &[u8]), String> {
    let change_kind = match kind_byte {
        ENTRY_KIND_NORMAL => return Ok((EntryKind::Normal, stored)),
        ENTRY_KIND_NOOP => return Ok((EntryKind::Noop, stored)),
        ENTRY_KIND_ADD_VOTER => ConfChangeKind::AddVoter,
        ENTRY_KIND_ADD_LEARNER => ConfChangeKind::AddLearner,
        ENTRY_KIND_PROMOTE_LEARNER => ConfChangeKind::PromoteLearner,
        ENTRY_KIND_REMOVE_MEMBER => ConfChangeKind::RemoveMember,
        other => return Err(format!("entry {position} has unknown kind {other}")),
    };
    if stored.len() < CONF_CHANGE_MEMBER_BYTES {
        return Err(format!(
            "configuration change entry {position} has {} data bytes, too few for its member id",
            stored.len()
        ));
    }
    let change = ConfChange {
        kind: change_kind,
        node_id: u64_at(stored, 0),
    };
    Ok((
        EntryKind::ConfChange(change),
        &stored[CONF_CHANGE_MEMBER_BYTES..],
    ))
}

/// Bytes of a record holding only `entry`: the smallest space it can ever take.
pub(crate) fn single_entry_record_bytes(entry: &Entry) -> usize {
    framed_bytes(ENTRIES_PAYLOAD_HEADER_BYTES + entry_payload_bytes(entry))
}

pub(crate) fn hard_state_record_bytes() -> usize {
    framed_bytes(HARD_STATE_PAYLOAD_BYTES)
}

pub(crate) fn snapshot_marker_record_bytes() -> usize {
    framed_bytes(SNAPSHOT_MARKER_PAYLOAD_BYTES)
}

/// Appends a framed entries record to `out`. `entries` must be non-empty and contiguous.
pub(crate) fn encode_entries(out: &mut Vec<u8>, entries: &[Entry]) {
    debug_assert!(!entries.is_empty());
    debug_assert!(entries.windows(2).all(|w| w[1].index == w[0].index + 1));
    let count = u32::try_from(entries.len()).expect("entries per record fit in u32");
    encode_frame(out, KIND_ENTRIES, |payload| {
        payload.extend_from_slice(&entries[0].index.to_le_bytes());
        payload.extend_from_slice(&count.to_le_bytes());
        for entry in entries {
            let (kind_byte, member) = encode_entry_kind(entry.kind);
            let stored_bytes = entry_payload_bytes(entry) - ENTRY_FIXED_BYTES;
            let data_bytes = u32::try_from(stored_bytes).expect("entry data fits in u32");
            payload.extend_from_slice(&entry.term.to_le_bytes());
            payload.push(kind_byte);
            payload.extend_from_slice(&data_bytes.to_le_bytes());
            if let Some(member) = member {
                payload.extend_from_slice(&member.to_le_bytes());
            }
            payload.extend_from_slice(&entry.data);
        }
    });
}

pub(crate) fn encode_hard_state(out: &mut Vec<u8>, hard_state: &HardState) {
    encode_frame(out, KIND_HARD_STATE, |payload| {
        payload.extend_from_slice(&hard_state.term.to_le_bytes());
        payload.extend_from_slice(&hard_state.vote.to_le_bytes());
        payload.extend_from_slice(&hard_state.commit.to_le_bytes());
    });
}

pub(crate) fn encode_snapshot_marker(out: &mut Vec<u8>, marker: &SnapshotMarker) {
    encode_frame(out, KIND_SNAPSHOT_MARKER, |payload| {
        payload.extend_from_slice(&marker.index.to_le_bytes());
        payload.extend_from_slice(&marker.term.to_le_bytes());
        payload.push(u8::from(marker.entries_kept));
    });
}

/// Writes header, payload (via `write_payload`) and padding; fills in length and checksum last.
fn encode_frame(out: &mut Vec<u8>, kind: u8, write_payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.resize(start + RECORD_HEADER_BYTES, 0);
    write_payload(out);
    let payload_bytes = out.len() - start - RECORD_HEADER_BYTES;
    let length = u32::try_from(payload_bytes).expect("record payload fits in u32");
    out[start + 4..start + 8].copy_from_slice(&length.to_le_bytes());
    out[start + 12] = kind;
    let crc = crc32c::crc32c(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    out.resize(start + framed_bytes(payload_bytes), 0);
    debug_assert_eq!((out.len() - start) % RECORD_ALIGN_BYTES, 0);
}

/// Reads the frame at `offset` of a segment image, checking everything but the payload's meaning.
pub(crate) fn read_frame(segment: &[u8], offset: usize) -> Result<Frame<'_>, FrameDefect> {
    debug_assert_eq!(offset % RECORD_ALIGN_BYTES, 0);
    let Some(header) = segment.get(offset..offset + RECORD_HEADER_BYTES) else {
        return Err(FrameDefect::NoRoomForHeader);
    };
    if header.iter().all(|&byte| byte == 0) {
        return Err(FrameDefect::Zeros);
    }
    let kind = header[12];
    if !matches!(kind, KIND_ENTRIES | KIND_HARD_STATE | KIND_SNAPSHOT_MARKER) {
        return Err(FrameDefect::UnknownKind(kind));
    }
    if header[8..12] != [0, 0, 0, 0] || header[13..16] != [0, 0, 0] {
        return Err(FrameDefect::ReservedBytesSet);
    }
    let length = u32_at(header, 4);
    let payload_start = offset + RECORD_HEADER_BYTES;
    let payload_end = payload_start + length as usize;
    if payload_end > segment.len() {
        return Err(FrameDefect::LengthBeyondSegment(length));
    }
    let stored_crc = u32_at(header, 0);
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&header[4..]),
        &segment[payload_start..payload_end],
    );
    if crc != stored_crc {
        return Err(FrameDefect::ChecksumMismatch);
    }
    Ok(Frame {
        kind,
        payload: &segment[payload_start..payload_end],
        next_offset: (offset + framed_bytes(length as usize)).min(segment.len()),
    })
}

/// Decodes the payload of an intact frame. An error here means the writer and
/// reader disagree on the format (the checksum matched), so it is corruption.
pub(crate) fn decode_payload(frame: &Frame<'_>) -> Result<Record, String> {
    let payload = frame.payload;
    match frame.kind {
        KIND_ENTRIES => decode_entries(payload).map(Record::Entries),
        KIND_HARD_STATE => {
            expect_length(payload, HARD_STATE_PAYLOAD_BYTES, "hard state")?;
            Ok(Record::HardState(HardState {
                term: u64_at(payload, 0),
                vote: u64_at(payload, 8),
                commit: u64_at(payload, 16),
            }))
        }
        KIND_SNAPSHOT_MARKER => {
            expect_length(payload, SNAPSHOT_MARKER_PAYLOAD_BYTES, "snapshot marker")?;
            let entries_kept = match payload[16] {
                0 => false,
                1 => true,
                other => return Err(format!("snapshot marker flag {other} is neither 0 nor 1")),
            };
            Ok(Record::SnapshotMarker(SnapshotMarker {
                index: u64_at(payload, 0),
                term: u64_at(payload, 8),
                entries_kept,
            }))
        }
        other => Err(format!("unknown record kind {other}")),
    }
}

fn decode_entries(payload: &[u8]) -> Result<Vec<Entry>, String> {
    if payload.len() < ENTRIES_PAYLOAD_HEADER_BYTES {
        return Err(format!(
            "entries record of {} bytes has no header",
            payload.len()
        ));
    }
    let first_index = u64_at(payload, 0);
    let count = u32_at(payload, 8) as usize;
    if first_index == 0 {
        return Err("entries record starts at index 0".into());
    }
    let mut entries = Vec::with_capacity(count.min(payload.len() / ENTRY_FIXED_BYTES));
    let mut offset = ENTRIES_PAYLOAD_HEADER_BYTES;
    for position in 0..count {
        let Some(fixed) = payload.get(offset..offset + ENTRY_FIXED_BYTES) else {
            return Err(format!("entry {position} of {count} is cut short"));
        };
        let kind_byte = fixed[8];
        let data_bytes = u32_at(fixed, 9) as usize;
        let data_start = offset + ENTRY_FIXED_BYTES;
        let Some(stored) = payload.get(data_start..data_start + data_bytes) else {
            return Err(format!("entry {position} data runs past the record"));
        };
        let (kind, data) = decode_entry_kind(position, kind_byte, stored)?;
        entries.push(Entry {
            term: u64_at(fixed, 0),
            index: first_index + position as u64,
            kind,
            data: data.to_vec(),
        });
        offset = data_start + data_bytes;
    }
    if offset != payload.len() || entries.is_empty() {
        return Err(format!(
            "entries record holds {count} entries but {} bytes of payload",
            payload.len()
        ));
    }
    Ok(entries)
}

fn expect_length(payload: &[u8], expected: usize, what: &str) -> Result<(), String> {
    if payload.len() == expected {
        Ok(())
    } else {
        Err(format!(
            "{what} record has {} bytes, expected {expected}",
            payload.len()
        ))
    }
}

pub(crate) fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

pub(crate) fn u64_at(bytes: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(bytes[offset..offset + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(bytes: &[u8]) -> Vec<Record> {
        let mut offset = 0;
        let mut records = Vec::new();
        while offset < bytes.len() {
            let frame = read_frame(bytes, offset).expect("valid frame");
            records.push(decode_payload(&frame).expect("valid payload"));
            offset = frame.next_offset;
        }
        records
    }

    fn arb_entries() -> impl Strategy<Value = Vec<Entry>> {
        (
            1u64..1_000_000,
            prop::collection::vec(
                (
                    0u64..100,
                    arb_entry_kind(),
                    prop::collection::vec(any::<u8>(), 0..64),
                ),
                1..20,
            ),
        )
            .prop_map(|(first, specs)| {
                specs
                    .into_iter()
                    .enumerate()
                    .map(|(offset, (term, kind, data))| Entry {
                        term,
                        index: first + offset as u64,
                        kind,
                        data,
                    })
                    .collect()
            })
    }

    fn arb_entry_kind() -> impl Strategy<Value = EntryKind> {
        let change_kind = prop_oneof![
            Just(ConfChangeKind::AddVoter),
            Just(ConfChangeKind::AddLearner),
            Just(ConfChangeKind::PromoteLearner),
            Just(ConfChangeKind::RemoveMember),
        ];
        prop_oneof![
            Just(EntryKind::Normal),
            Just(EntryKind::Noop),
            (change_kind, any::<u64>())
                .prop_map(|(kind, node_id)| EntryKind::ConfChange(ConfChange { kind, node_id })),
        ]
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        prop_oneof![
            arb_entries().prop_map(Record::Entries),
            (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(term, vote, commit)| {
                Record::HardState(HardState { term, vote, commit })
            }),
            (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(index, term, entries_kept)| {
                Record::SnapshotMarker(SnapshotMarker {
                    index,
                    term,
                    entries_kept,
                })
            }),
        ]
    }

    fn encode(out: &mut Vec<u8>, record: &Record) {
        match record {
            Record::Entries(entries) => encode_entries(out, entries),
            Record::HardState(hard_state) => encode_hard_state(out, hard_state),
            Record::SnapshotMarker(marker) => encode_snapshot_marker(out, marker),
        }
    }

    proptest! {
        #[test]
        fn records_round_trip(records in prop::collection::vec(arb_record(), 1..10)) {
            let mut bytes = Vec::new();
            for record in &records {
                let before = bytes.len();
                encode(&mut bytes, record);
                let expected_bytes = match record {
                    Record::Entries(entries) => framed_bytes(entries_payload_bytes(entries)),
                    Record::HardState(_) => hard_state_record_bytes(),
                    Record::SnapshotMarker(_) => snapshot_marker_record_bytes(),
                };
                prop_assert_eq!(bytes.len() - before, expected_bytes);
            }
            prop_assert_eq!(decode_all(&bytes), records);
        }

        #[test]
        fn any_single_bit_flip_is_detected(record in arb_record(), bit in any::<prop::sample::Index>()) {
            let mut bytes = Vec::new();
            encode(&mut bytes, &record);
            let checked_bytes = RECORD_HEADER_BYTES + read_frame(&bytes, 0).unwrap().payload.len();
            let position = bit.index(checked_bytes * 8);
            bytes[position / 8] ^= 1 << (position % 8);
            prop_assert!(read_frame(&bytes, 0).is_err());
        }
    }

    /// Encodes one entry record with `kind_byte` and `stored` bytes after the
    /// fixed entry fields, checksummed as the writer would.
    fn entry_record_with(kind_byte: u8, stored: &[u8]) -> Vec<u8> {
        let entry = Entry {
            term: 1,
            index: 1,
            kind: EntryKind::Normal,
            data: stored.to_vec(),
        };
        let mut bytes = Vec::new();
        encode_entries(&mut bytes, &[entry]);
        let kind_offset = RECORD_HEADER_BYTES + ENTRIES_PAYLOAD_HEADER_BYTES + 8;
        bytes[kind_offset] = kind_byte;
        let payload_end = RECORD_HEADER_BYTES + u32_at(&bytes, 4) as usize;
        let crc = crc32c::crc32c(&bytes[4..payload_end]);
        bytes[0..4].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    #[test]
    fn unknown_entry_kind_is_an_error() {
        let bytes = entry_record_with(9, b"data");
        let frame = read_frame(&bytes, 0).unwrap();
        let error = decode_payload(&frame).unwrap_err();
        assert!(error.contains("unknown kind 9"), "{error}");
    }

    #[test]
    fn conf_change_without_member_id_is_an_error() {
        let bytes = entry_record_with(ENTRY_KIND_REMOVE_MEMBER, b"short");
        let frame = read_frame(&bytes, 0).unwrap();
        let error = decode_payload(&frame).unwrap_err();
        assert!(error.contains("too few for its member id"), "{error}");
    }

    #[test]
    fn zeros_are_never_a_record() {
        assert_eq!(read_frame(&[0u8; 64], 0).unwrap_err(), FrameDefect::Zeros);
        assert_eq!(
            read_frame(&[0u8; 8], 0).unwrap_err(),
            FrameDefect::NoRoomForHeader
        );
    }

    #[test]
    fn length_past_the_segment_is_a_defect_not_a_panic() {
        let mut bytes = Vec::new();
        encode_hard_state(&mut bytes, &HardState::default());
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_frame(&bytes, 0),
            Err(FrameDefect::LengthBeyondSegment(_))
        ));
    }
}
