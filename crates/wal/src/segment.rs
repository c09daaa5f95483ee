//! Segment files: their names, their header, and reading one back. A segment is
//! a fixed-size, preallocated (zero-filled) file: a header, then records
//! appended one batch at a time. This module decides, for a segment image in
//! memory, where its valid records end and whether the bytes after that are a
//! torn last write (safe to cut) or damage to acknowledged data (refuse). It
//! never writes files.
//!
//! Header (56 bytes):
//!
//! ```text
//! 0..8    magic "RKVWAL\0\0"
//! 8..12   format version (u32)
//! 12..16  reserved, zero
//! 16..24  cluster id
//! 24..32  sequence number (also the file name)
//! 32..40  first index: the log's last index + 1 when the segment was started
//! 40..48  segment size in bytes
//! 48..56  end offset of the previous segment's records when it was sealed (0 for none)
//! 56..60  crc32c of bytes 0..56
//! 60..64  reserved, zero
//! ```

use std::path::{Path, PathBuf};

use raft::LogIndex;

use crate::error::WalError;
use crate::record::{self, FrameDefect, Record, RECORD_ALIGN_BYTES};

pub(crate) const SEGMENT_HEADER_BYTES: usize = 64;
pub(crate) const SEGMENT_FORMAT_VERSION: u32 = 1;
const SEGMENT_MAGIC: [u8; 8] = *b"RKVWAL\0\0";
const SEGMENT_SUFFIX: &str = ".wal";

/// What a segment's header says about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentHeader {
    pub(crate) cluster_id: u64,
    pub(crate) sequence: u64,
    pub(crate) first_index: LogIndex,
    pub(crate) segment_bytes: u64,
    pub(crate) previous_end_offset: u64,
}

impl SegmentHeader {
    pub(crate) fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut bytes = [0u8; SEGMENT_HEADER_BYTES];
        bytes[0..8].copy_from_slice(&SEGMENT_MAGIC);
        bytes[8..12].copy_from_slice(&SEGMENT_FORMAT_VERSION.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.cluster_id.to_le_bytes());
        bytes[24..32].copy_from_slice(&self.sequence.to_le_bytes());
        bytes[32..40].copy_from_slice(&self.first_index.to_le_bytes());
        bytes[40..48].copy_from_slice(&self.segment_bytes.to_le_bytes());
        bytes[48..56].copy_from_slice(&self.previous_end_offset.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[0..56]);
        bytes[56..60].copy_from_slice(&crc.to_le_bytes());
        bytes
    }

    /// Parses and checks a header; `path` only names the file in errors.
    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Result<Self, WalError> {
        let Some(bytes) = bytes.get(..SEGMENT_HEADER_BYTES) else {
            return Err(WalError::corrupt(
                path,
                bytes.len() as u64,
                format!(
                    "segment is {} bytes, shorter than its {SEGMENT_HEADER_BYTES}-byte header",
                    bytes.len()
                ),
            ));
        };
        if bytes[0..8] != SEGMENT_MAGIC {
            return Err(WalError::corrupt(
                path,
                0,
                "not a log segment (bad magic bytes)",
            ));
        }
        let stored_crc = record::u32_at(bytes, 56);
        if crc32c::crc32c(&bytes[0..56]) != stored_crc {
            return Err(WalError::corrupt(
                path,
                56,
                "segment header checksum mismatch",
            ));
        }
        let version = record::u32_at(bytes, 8);
        if version != SEGMENT_FORMAT_VERSION {
            return Err(WalError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: SEGMENT_FORMAT_VERSION,
            });
        }
        Ok(SegmentHeader {
            cluster_id: record::u64_at(bytes, 16),
            sequence: record::u64_at(bytes, 24),
            first_index: record::u64_at(bytes, 32),
            segment_bytes: record::u64_at(bytes, 40),
            previous_end_offset: record::u64_at(bytes, 48),
        })
    }
}

/// The file name of segment `sequence`: fixed-width hex, so names sort by sequence.
pub(crate) fn segment_file_name(sequence: u64) -> String {
    format!("{sequence:016x}{SEGMENT_SUFFIX}")
}

pub(crate) fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(segment_file_name(sequence))
}

/// The sequence number a segment file name stands for, if it is one.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(SEGMENT_SUFFIX)?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Bytes after the last valid record of the last segment, left by a write that
/// never completed. Recovery zeroes them before accepting new writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TornTail {
    pub(crate) offset: u64,
    /// One past the last non-zero byte of the damaged region.
    pub(crate) end_offset: u64,
}

/// A segment read back: its records, where the next write goes, and any torn tail.
#[derive(Clone, Debug)]
pub(crate) struct ScannedSegment {
    pub(crate) records: Vec<Record>,
    pub(crate) end_offset: u64,
    pub(crate) torn_tail: Option<TornTail>,
}

/// Reads every record of a segment image (header included in `image`).
///
/// The records end where a frame is not valid. What follows decides the verdict:
/// - only zeros: the normal end of the data (preallocated space);
/// - in the last segment, bytes that are not a record and records that all
///   belong to the batch the damage is in (their batch start is at or before
///   the damage): a torn last write, which was never acknowledged;
/// - anything else, in particular a record of a later batch, or any non-zero
///   byte in a sealed segment: corruption of acknowledged data.
pub(crate) fn scan_segment(
    image: &[u8],
    is_last: bool,
    path: &Path,
) -> Result<ScannedSegment, WalError> {
    let mut records = Vec::new();
    let mut offset = SEGMENT_HEADER_BYTES;
    let mut last_batch_start = 0u32;
    let defect = loop {
        match record::read_frame(image, offset) {
            Ok(frame) => {
                let record = record::decode_payload(&frame)
                    .map_err(|problem| WalError::corrupt(path, offset as u64, problem))?;
                records.push(record);
                last_batch_start = frame.batch_start;
                offset = frame.next_offset;
            }
            Err(defect) => break defect,
        }
    };
    let end_offset = offset as u64;
    let Some(last_non_zero) = image[offset..].iter().rposition(|&byte| byte != 0) else {
        return Ok(ScannedSegment {
            records,
            end_offset,
            torn_tail: None,
        });
    };
    let damage_end_offset = (offset + last_non_zero + 1) as u64;
    if !is_last {
        return Err(WalError::corrupt(
            path,
            end_offset,
            format!(
                "{defect} inside a sealed segment (its data should end here, followed by zeros)"
            ),
        ));
    }
    check_damage_is_confined_to_last_batch(image, offset, last_batch_start, defect, path)?;
    Ok(ScannedSegment {
        records,
        end_offset,
        torn_tail: Some(TornTail {
            offset: end_offset,
            end_offset: damage_end_offset,
        }),
    })
}

/// Looks for intact records after the damage at `damage_offset`. Any that
/// belongs to a batch that started after the damage proves the damaged bytes
/// were acknowledged before that batch was written: corruption.
fn check_damage_is_confined_to_last_batch(
    image: &[u8],
    damage_offset: usize,
    last_batch_start_before_damage: u32,
    defect: FrameDefect,
    path: &Path,
) -> Result<(), WalError> {
    let mut batch_starts_after_damage = Vec::new();
    let mut probe = damage_offset + RECORD_ALIGN_BYTES;
    while probe + record::RECORD_HEADER_BYTES <= image.len() {
        match record::read_frame(image, probe) {
            // A real record's batch starts at or before the record itself.
            Ok(frame)
                if frame.batch_start as usize <= probe
                    && record::decode_payload(&frame).is_ok() =>
            {
                batch_starts_after_damage.push((probe, frame.batch_start));
                probe = frame.next_offset;
            }
            _ => probe += RECORD_ALIGN_BYTES,
        }
    }
    let Some(&(first_probe, first_batch_start)) = batch_starts_after_damage.first() else {
        return Ok(());
    };
    let one_batch = batch_starts_after_damage
        .iter()
        .all(|&(_, batch_start)| batch_start == first_batch_start);
    let batch_contains_damage = (first_batch_start as usize) <= damage_offset
        && first_batch_start >= last_batch_start_before_damage;
    if one_batch && batch_contains_damage {
        return Ok(());
    }
    Err(WalError::corrupt(
        path,
        damage_offset as u64,
        format!(
            "{defect}, yet an intact record written later follows at byte {first_probe} (a torn write would leave nothing valid after it)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode_hard_state, SnapshotMarker};
    use raft::HardState;

    const IMAGE_BYTES: usize = 4096;

    fn hard_state(term: u64) -> HardState {
        HardState {
            term,
            vote: 1,
            commit: 0,
        }
    }

    /// A segment image with `batches` batches of `records_per_batch` hard-state records.
    fn image_with_batches(batches: usize, records_per_batch: usize) -> (Vec<u8>, Vec<usize>) {
        let mut image = vec![0u8; SEGMENT_HEADER_BYTES];
        let mut record_offsets = Vec::new();
        for batch in 0..batches {
            let batch_start = image.len() as u32;
            for record in 0..records_per_batch {
                record_offsets.push(image.len());
                encode_hard_state(
                    &mut image,
                    batch_start,
                    &hard_state((batch * 100 + record) as u64),
                );
            }
        }
        image.resize(IMAGE_BYTES, 0);
        (image, record_offsets)
    }

    fn path() -> PathBuf {
        PathBuf::from("/data/0000000000000003.wal")
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let header = SegmentHeader {
            cluster_id: 0xfeed,
            sequence: 3,
            first_index: 17,
            segment_bytes: 1 << 20,
            previous_end_offset: 999,
        };
        let mut bytes = header.encode();
        assert_eq!(SegmentHeader::decode(&bytes, &path()).unwrap(), header);
        bytes[30] ^= 4;
        let error = SegmentHeader::decode(&bytes, &path()).unwrap_err();
        assert!(error.to_string().contains("header checksum"), "{error}");
    }

    #[test]
    fn file_names_round_trip_and_sort_by_sequence() {
        assert_eq!(
            parse_segment_file_name(&segment_file_name(0xabc)),
            Some(0xabc)
        );
        assert!(segment_file_name(9) < segment_file_name(10));
        assert_eq!(parse_segment_file_name("0000000000000001.wal.tmp"), None);
        assert_eq!(parse_segment_file_name("1.wal"), None);
    }

    #[test]
    fn clean_segment_ends_at_first_zero_header() {
        let (image, offsets) = image_with_batches(3, 2);
        let scanned = scan_segment(&image, true, &path()).unwrap();
        assert_eq!(scanned.records.len(), offsets.len());
        assert!(scanned.torn_tail.is_none());
    }

    #[test]
    fn partial_last_record_is_a_torn_tail() {
        let (mut image, offsets) = image_with_batches(3, 2);
        let last = *offsets.last().unwrap();
        let record_bytes = record::hard_state_record_bytes();
        image[last + record_bytes / 2..last + record_bytes].fill(0);
        let scanned = scan_segment(&image, true, &path()).unwrap();
        assert_eq!(scanned.records.len(), offsets.len() - 1);
        assert_eq!(scanned.end_offset, last as u64);
        assert_eq!(scanned.torn_tail.unwrap().offset, last as u64);
    }

    #[test]
    fn damage_inside_last_batch_with_later_record_of_same_batch_is_torn() {
        // A write whose pages reached the disk out of order: the first record of
        // the last batch is missing, the second one is there.
        let (mut image, offsets) = image_with_batches(3, 2);
        let first_of_last_batch = offsets[offsets.len() - 2];
        image[first_of_last_batch..first_of_last_batch + 8].fill(0xff);
        let scanned = scan_segment(&image, true, &path()).unwrap();
        assert_eq!(scanned.end_offset, first_of_last_batch as u64);
    }

    #[test]
    fn damage_followed_by_a_later_batch_is_corruption() {
        let (mut image, offsets) = image_with_batches(3, 2);
        image[offsets[2] + 20] ^= 1;
        let error = scan_segment(&image, true, &path()).unwrap_err();
        assert!(
            matches!(error, WalError::Corrupt { offset, .. } if offset == offsets[2] as u64),
            "{error}"
        );
    }

    #[test]
    fn zeroed_sector_before_a_later_batch_is_corruption() {
        let (mut image, offsets) = image_with_batches(3, 2);
        image[offsets[1]..offsets[1] + 2 * record::hard_state_record_bytes()].fill(0);
        assert!(matches!(
            scan_segment(&image, true, &path()),
            Err(WalError::Corrupt { .. })
        ));
    }

    #[test]
    fn any_garbage_in_a_sealed_segment_is_corruption() {
        let (mut image, offsets) = image_with_batches(3, 2);
        let last = *offsets.last().unwrap();
        image[last + 4] ^= 1;
        assert!(scan_segment(&image, true, &path()).is_ok());
        assert!(matches!(
            scan_segment(&image, false, &path()),
            Err(WalError::Corrupt { .. })
        ));
    }

    #[test]
    fn payload_that_passes_checksum_but_does_not_decode_is_corruption() {
        let mut image = vec![0u8; SEGMENT_HEADER_BYTES];
        let marker = SnapshotMarker {
            index: 1,
            term: 1,
            entries_kept: true,
        };
        record::encode_snapshot_marker(&mut image, SEGMENT_HEADER_BYTES as u32, &marker);
        // Flag byte 7 is not a boolean; fix the checksum so only the meaning is wrong.
        let start = SEGMENT_HEADER_BYTES;
        image[start + record::RECORD_HEADER_BYTES + 16] = 7;
        let payload_end = start + record::RECORD_HEADER_BYTES + 17;
        let crc = crc32c::crc32c(&image[start + 4..payload_end]);
        image[start..start + 4].copy_from_slice(&crc.to_le_bytes());
        image.resize(IMAGE_BYTES, 0);
        let error = scan_segment(&image, true, &path()).unwrap_err();
        assert!(error.to_string().contains("flag 7"), "{error}");
    }
}
