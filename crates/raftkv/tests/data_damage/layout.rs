//! Where each server keeps what the tests damage, and how to find one record
//! in its log files: raftkv's sectors (see the `wal` crate's `sector` and
//! `record` modules) and etcd 3.4's length-prefixed `walpb.Record` frames.
//! Both lay a member's data directory out the same way: `member/wal` holds
//! the log, `member/snap/db` the key-value store.

use std::fs;
use std::path::{Path, PathBuf};

/// The server whose files are damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    Raftkv,
    Etcd,
}

/// raftkv: the unit each checksum covers, and the stream bytes it carries.
pub const RAFTKV_SECTOR_BYTES: u64 = 512;
const RAFTKV_SECTOR_DATA_BYTES: usize = 504;
const RAFTKV_WRITE_NUMBER_OFFSET: usize = 508;
/// raftkv: the segment header fills the first sector; batches follow.
const RAFTKV_FIRST_BATCH_OFFSET: usize = 512;
const RAFTKV_RECORD_HEADER_BYTES: usize = 16;
const RAFTKV_RECORD_ALIGN_BYTES: usize = 8;

/// etcd: the frame length's top bit says its low three bits of the top
/// byte count padding bytes after the record.
const ETCD_FRAME_PADDED: u64 = 1 << 63;
const ETCD_FRAME_LENGTH_MASK: u64 = (1 << 56) - 1;

/// The kind of a log record, as each server numbers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    Entries,
    HardState,
}

impl RecordKind {
    fn code(self, server: Server) -> u64 {
        match (server, self) {
            (Server::Raftkv, RecordKind::Entries) => 1,
            (Server::Raftkv, RecordKind::HardState) => 2,
            (Server::Etcd, RecordKind::Entries) => 2,
            (Server::Etcd, RecordKind::HardState) => 3,
        }
    }
}

/// One log record: its kind's code and the file offsets of its payload
/// bytes, in order (raftkv's payload may span sectors).
#[derive(Debug)]
pub struct LogRecord {
    kind: u64,
    pub payload: Vec<u64>,
}

impl Server {
    pub fn wal_dir(self, data_dir: &Path) -> PathBuf {
        data_dir.join("member").join("wal")
    }

    /// Where the snapshot files live.
    pub fn snap_dir(self, data_dir: &Path) -> PathBuf {
        match self {
            Server::Raftkv => self.wal_dir(data_dir),
            Server::Etcd => data_dir.join("member").join("snap"),
        }
    }

    pub fn db_path(self, data_dir: &Path) -> PathBuf {
        data_dir.join("member").join("snap").join("db")
    }

    /// The records of `kind` in the segment, in log order.
    pub fn records(self, segment: &Path, kind: RecordKind) -> Vec<LogRecord> {
        let bytes = fs::read(segment)
            .unwrap_or_else(|error| panic!("reading {}: {error}", segment.display()));
        let all = match self {
            Server::Raftkv => raftkv_records(&bytes),
            Server::Etcd => etcd_records(&bytes),
        };
        let code = kind.code(self);
        all.into_iter()
            .filter(|record| record.kind == code)
            .collect()
    }

    /// The file offset of the first byte of a hard state record's term.
    pub fn term_offset(self, hard_state: &LogRecord) -> u64 {
        match self {
            // Payload: term, vote, commit (u64 each, little endian).
            Server::Raftkv => hard_state.payload[0],
            // Payload: raftpb.HardState, field 1 (term) first: its tag, then the varint.
            Server::Etcd => hard_state.payload[1],
        }
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

/// Walks raftkv's batches (runs of sectors with one write number) and the
/// records in each batch's stream, up to the first unwritten sector.
fn raftkv_records(bytes: &[u8]) -> Vec<LogRecord> {
    let sector = RAFTKV_SECTOR_BYTES as usize;
    let mut records = Vec::new();
    let mut batch_start = RAFTKV_FIRST_BATCH_OFFSET;
    while batch_start + sector <= bytes.len()
        && bytes[batch_start..batch_start + sector]
            .iter()
            .any(|&b| b != 0)
    {
        let write_number = u32_at(bytes, batch_start + RAFTKV_WRITE_NUMBER_OFFSET);
        let mut sectors = Vec::new();
        let mut at = batch_start;
        while at + sector <= bytes.len()
            && u32_at(bytes, at + RAFTKV_WRITE_NUMBER_OFFSET) == write_number
        {
            sectors.push(at);
            at += sector;
        }
        let stream: Vec<u8> = sectors
            .iter()
            .flat_map(|&start| &bytes[start..start + RAFTKV_SECTOR_DATA_BYTES])
            .copied()
            .collect();
        let file_offset = |position: usize| {
            (sectors[position / RAFTKV_SECTOR_DATA_BYTES] + position % RAFTKV_SECTOR_DATA_BYTES)
                as u64
        };
        let mut position = 0;
        while position + RAFTKV_RECORD_HEADER_BYTES <= stream.len()
            && stream[position..position + 8] != [0; 8]
        {
            let length = u32_at(&stream, position + 4) as usize;
            let payload_start = position + RAFTKV_RECORD_HEADER_BYTES;
            records.push(LogRecord {
                kind: u64::from(stream[position + 12]),
                payload: (payload_start..payload_start + length)
                    .map(file_offset)
                    .collect(),
            });
            position = (payload_start + length).next_multiple_of(RAFTKV_RECORD_ALIGN_BYTES);
        }
        batch_start = at;
    }
    records
}

/// Reads a protobuf varint at `*at`, advancing past it.
fn varint(bytes: &[u8], at: &mut usize) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = bytes[*at];
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            break;
        }
    }
    value
}

/// Walks etcd's frames (a u64 length, a `walpb.Record {type = 1, crc = 2,
/// data = 3}`, padding) up to the first zero length (preallocated space).
fn etcd_records(bytes: &[u8]) -> Vec<LogRecord> {
    let mut records = Vec::new();
    let mut frame = 0;
    while frame + 8 <= bytes.len() {
        let length_field = u64::from_le_bytes(bytes[frame..frame + 8].try_into().expect("8"));
        if length_field == 0 {
            break;
        }
        let (length, padding) = if length_field & ETCD_FRAME_PADDED != 0 {
            (
                length_field & ETCD_FRAME_LENGTH_MASK,
                (length_field >> 56) & 0x7,
            )
        } else {
            (length_field, 0)
        };
        let body_start = frame + 8;
        let body_end = body_start + length as usize;
        let (mut kind, mut payload) = (0, Vec::new());
        let mut at = body_start;
        while at < body_end {
            let tag = varint(bytes, &mut at);
            match (tag >> 3, tag & 0x7) {
                (1, 0) => kind = varint(bytes, &mut at),
                (_, 0) => {
                    varint(bytes, &mut at);
                }
                (field, 2) => {
                    let data_length = varint(bytes, &mut at) as usize;
                    if field == 3 {
                        payload = (at as u64..(at + data_length) as u64).collect();
                    }
                    at += data_length;
                }
                (_, wire) => panic!("walpb.Record has no wire type {wire} (frame at {frame})"),
            }
        }
        records.push(LogRecord { kind, payload });
        frame = body_end + padding as usize;
    }
    records
}
