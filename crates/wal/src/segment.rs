//! Segment files: their names, their header, and reading one back. A segment is
//! a fixed-size, preallocated (zero-filled) file: a header sector, then write
//! batches in sectors (see `sector` for their framing and the failure model).
//! This module decides, for a segment image in memory, where its intact
//! batches end and whether what follows is a torn last write (safe to cut) or
//! damage to data that may have been acknowledged (refuse). It never writes
//! files.
//!
//! The verdict, from the state of each sector (intact, unwritten, damaged):
//! - any damaged sector, anywhere: corruption;
//! - every segment starts with intact batches, each one write number higher
//!   than the one before, each ending in its terminator;
//! - in a sealed segment (not the last), only unwritten sectors follow them;
//! - in the last segment, what follows may be sectors of one more write (the
//!   next write number) with unwritten sectors among them: a torn last write,
//!   whose fdatasync cannot have returned, so it was never acknowledged. It is
//!   cut as a whole. An intact sector of any other write there means a write
//!   that was synced was lost: corruption;
//! - a record that does not parse although all its sectors are intact:
//!   corruption.
//!
//! The segment header is in sector 0 (the rest of that sector is zeros). It is
//! written and synced before the segment gets its name, so it is never torn.
//!
//! Header (64 bytes):
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
use crate::record::{self, Record, RECORD_HEADER_BYTES};
use crate::sector::{self, SectorState, SECTOR_BYTES, SECTOR_DATA_BYTES};

pub(crate) const SEGMENT_HEADER_BYTES: usize = 64;
/// Version 2 framed batches in checksummed sectors; version 1 files (records
/// straight in the file) are refused with [`WalError::UnsupportedVersion`].
pub(crate) const SEGMENT_FORMAT_VERSION: u32 = 2;
/// Where the first batch of a segment starts: the header has sector 0 to itself.
pub(crate) const FIRST_BATCH_OFFSET: u64 = SECTOR_BYTES as u64;
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

/// Sectors after the intact batches of the last segment, left by a write that
/// never completed. Recovery zeroes them before accepting new writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TornTail {
    pub(crate) offset: u64,
    /// One past the last sector of the torn write that reached the disk.
    pub(crate) end_offset: u64,
}

/// A segment read back: its records, where the next write goes, and any torn tail.
#[derive(Clone, Debug)]
pub(crate) struct ScannedSegment {
    pub(crate) records: Vec<Record>,
    /// File offset (a sector boundary) just past the last intact batch.
    pub(crate) end_offset: u64,
    /// The write number the next batch in this segment gets.
    pub(crate) next_write_number: u32,
    pub(crate) torn_tail: Option<TornTail>,
}

/// A segment image cut into sectors; `path` only names the file in errors.
struct Sectors<'a> {
    image: &'a [u8],
    path: &'a Path,
}

impl<'a> Sectors<'a> {
    fn count(&self) -> usize {
        self.image.len() / SECTOR_BYTES
    }

    fn get(&self, index: usize) -> &'a [u8] {
        &self.image[index * SECTOR_BYTES..(index + 1) * SECTOR_BYTES]
    }

    fn state(&self, index: usize) -> SectorState {
        sector::classify(self.get(index))
    }

    fn offset(index: usize) -> u64 {
        (index * SECTOR_BYTES) as u64
    }

    fn corrupt(&self, offset: u64, problem: impl Into<String>) -> WalError {
        WalError::corrupt(self.path, offset, problem)
    }

    fn damaged(&self, index: usize) -> WalError {
        self.corrupt(
            Self::offset(index),
            format!(
                "sector at byte {} fails its checksum (corruption, not a torn write: a record in it may have been acknowledged)",
                Self::offset(index)
            ),
        )
    }
}

/// How reading the batch at a sector ended.
enum BatchRead {
    Complete {
        records: Vec<Record>,
        sectors: usize,
        write_number: u32,
    },
    /// No batch starts here: an unwritten sector, or the end of the segment.
    NoBatch,
    /// A batch starts here, but its records continue into an unwritten sector.
    Incomplete,
}

/// Reads every record of a segment image (header included in `image`), per
/// the rules in the module documentation.
pub(crate) fn scan_segment(
    image: &[u8],
    is_last: bool,
    path: &Path,
) -> Result<ScannedSegment, WalError> {
    let sectors = Sectors { image, path };
    if !image.len().is_multiple_of(SECTOR_BYTES) || sectors.count() < 2 {
        return Err(sectors.corrupt(
            image.len() as u64,
            format!(
                "segment is {} bytes, not a whole number of {SECTOR_BYTES}-byte sectors past its header",
                image.len()
            ),
        ));
    }
    if let Some(position) = image[SEGMENT_HEADER_BYTES..SECTOR_BYTES]
        .iter()
        .position(|&byte| byte != 0)
    {
        return Err(sectors.corrupt(
            (SEGMENT_HEADER_BYTES + position) as u64,
            "non-zero byte in the header sector after the header",
        ));
    }
    let mut records = Vec::new();
    let mut index = FIRST_BATCH_OFFSET as usize / SECTOR_BYTES;
    let mut last_write_number = 0u32;
    while let BatchRead::Complete {
        records: batch,
        sectors: batch_sectors,
        write_number,
    } = read_batch(&sectors, index, last_write_number)?
    {
        records.extend(batch);
        index += batch_sectors;
        last_write_number = write_number;
    }
    if last_write_number == 0 {
        return Err(sectors.corrupt(
            FIRST_BATCH_OFFSET,
            "the segment's first batch (written and synced before the segment was named) is missing",
        ));
    }
    let torn_tail = check_tail(&sectors, index, is_last, last_write_number)?;
    Ok(ScannedSegment {
        records,
        end_offset: Sectors::offset(index),
        next_write_number: last_write_number + 1,
        torn_tail,
    })
}

/// Reads the batch starting at sector `first`, which must be numbered one
/// past `previous_write_number`.
fn read_batch(
    sectors: &Sectors<'_>,
    first: usize,
    previous_write_number: u32,
) -> Result<BatchRead, WalError> {
    if first == sectors.count() {
        return Ok(BatchRead::NoBatch);
    }
    let write_number = match sectors.state(first) {
        SectorState::Unwritten => return Ok(BatchRead::NoBatch),
        SectorState::Damaged => return Err(sectors.damaged(first)),
        SectorState::Intact { write_number } => write_number,
    };
    if write_number != previous_write_number + 1 {
        return Err(sectors.corrupt(
            Sectors::offset(first),
            format!(
                "sector was written by write {write_number}, but the previous batch was write {previous_write_number} (each batch is numbered one higher)"
            ),
        ));
    }
    let mut stream = Vec::new();
    let mut after_run = first;
    while after_run < sectors.count()
        && sectors.state(after_run) == (SectorState::Intact { write_number })
    {
        stream.extend_from_slice(sector::data(sectors.get(after_run)));
        after_run += 1;
    }
    let stream_offset = |position: usize| {
        Sectors::offset(first + position / SECTOR_DATA_BYTES)
            + (position % SECTOR_DATA_BYTES) as u64
    };
    let mut records = Vec::new();
    let mut position = 0;
    while position < stream.len() {
        if stream[position..position + sector::BATCH_TERMINATOR_BYTES]
            .iter()
            .all(|&byte| byte == 0)
        {
            let batch_sectors = position / SECTOR_DATA_BYTES + 1;
            let padding = &stream[position..batch_sectors * SECTOR_DATA_BYTES];
            if let Some(stray) = padding.iter().position(|&byte| byte != 0) {
                return Err(sectors.corrupt(
                    stream_offset(position + stray),
                    "non-zero byte after the end of a batch, in an intact sector",
                ));
            }
            return Ok(BatchRead::Complete {
                records,
                sectors: batch_sectors,
                write_number,
            });
        }
        let Some(header) = stream.get(position..position + RECORD_HEADER_BYTES) else {
            break;
        };
        let length = record::u32_at(header, 4) as usize;
        if position + record::framed_bytes(length) > stream.len() {
            break;
        }
        let frame = record::read_frame(&stream, position).map_err(|defect| {
            sectors.corrupt(
                stream_offset(position),
                format!("{defect} in a record whose sectors are all intact"),
            )
        })?;
        let decoded = record::decode_payload(&frame)
            .map_err(|problem| sectors.corrupt(stream_offset(position), problem))?;
        records.push(decoded);
        position = frame.next_offset;
    }
    // The batch's records go on past the intact sectors of its write.
    let cut_short_at = stream_offset(position.min(stream.len()));
    if after_run == sectors.count() {
        return Err(sectors.corrupt(
            cut_short_at,
            "a batch runs past the end of the segment (its writer never does that)",
        ));
    }
    match sectors.state(after_run) {
        SectorState::Unwritten => Ok(BatchRead::Incomplete),
        SectorState::Damaged => Err(sectors.damaged(after_run)),
        SectorState::Intact {
            write_number: other,
        } => Err(sectors.corrupt(
            Sectors::offset(after_run),
            format!(
                "batch of write {write_number} is cut short by a sector of write {other}: part of a synced write was lost"
            ),
        )),
    }
}

/// Checks the sectors from `first` (just past the intact batches) to the end
/// of the segment; returns the torn last write to cut, if any.
fn check_tail(
    sectors: &Sectors<'_>,
    first: usize,
    is_last: bool,
    last_write_number: u32,
) -> Result<Option<TornTail>, WalError> {
    let torn_write_number = last_write_number + 1;
    let mut torn_end = None;
    for index in first..sectors.count() {
        match sectors.state(index) {
            SectorState::Unwritten => {}
            SectorState::Damaged => return Err(sectors.damaged(index)),
            SectorState::Intact { write_number } if !is_last => {
                return Err(sectors.corrupt(
                    Sectors::offset(index),
                    format!(
                        "sector of write {write_number} past the end of a sealed segment's data at byte {} (a sealed segment was synced whole: part of it was lost)",
                        Sectors::offset(first)
                    ),
                ));
            }
            SectorState::Intact { write_number } if write_number != torn_write_number => {
                return Err(sectors.corrupt(
                    Sectors::offset(index),
                    format!(
                        "sector of write {write_number} after unwritten sectors at byte {}: only the last write (number {torn_write_number}) can be torn, so a synced write was lost",
                        Sectors::offset(first)
                    ),
                ));
            }
            SectorState::Intact { .. } => torn_end = Some(Sectors::offset(index + 1)),
        }
    }
    Ok(torn_end.map(|end_offset| TornTail {
        offset: Sectors::offset(first),
        end_offset,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode_entries, encode_hard_state, SnapshotMarker};
    use proptest::prelude::*;
    use raft::{Entry, EntryKind, HardState};

    const IMAGE_BYTES: usize = 16 * SECTOR_BYTES;

    /// One batch's place in a test image: its sector range and record count.
    #[derive(Clone, Copy, Debug)]
    struct BatchSpan {
        first_sector: usize,
        sectors: usize,
        records: usize,
    }

    /// A segment image of batches, batch `n` holding a hard state and an
    /// entries record with `entry_bytes[n]` bytes of data (so it may span
    /// several sectors).
    fn image_with_batches(entry_bytes: &[usize]) -> (Vec<u8>, Vec<BatchSpan>) {
        let header = SegmentHeader {
            cluster_id: 1,
            sequence: 3,
            first_index: 1,
            segment_bytes: IMAGE_BYTES as u64,
            previous_end_offset: 0,
        };
        let mut image = header.encode().to_vec();
        image.resize(FIRST_BATCH_OFFSET as usize, 0);
        let mut spans = Vec::new();
        for (number, &bytes) in entry_bytes.iter().enumerate() {
            let mut stream = Vec::new();
            let term = number as u64 + 1;
            encode_hard_state(
                &mut stream,
                &HardState {
                    term,
                    vote: 1,
                    commit: 0,
                },
            );
            let entry = Entry {
                term,
                index: term,
                kind: EntryKind::Normal,
                data: vec![0xa5; bytes],
            };
            encode_entries(&mut stream, &[entry]);
            let first_sector = image.len() / SECTOR_BYTES;
            sector::frame_batch(&stream, number as u32 + 1, &mut image);
            spans.push(BatchSpan {
                first_sector,
                sectors: image.len() / SECTOR_BYTES - first_sector,
                records: 2,
            });
        }
        assert!(image.len() <= IMAGE_BYTES, "test batches fit the image");
        image.resize(IMAGE_BYTES, 0);
        (image, spans)
    }

    fn records_before(spans: &[BatchSpan], batch: usize) -> usize {
        spans[..batch].iter().map(|span| span.records).sum()
    }

    fn zero_sector(image: &mut [u8], index: usize) {
        image[index * SECTOR_BYTES..(index + 1) * SECTOR_BYTES].fill(0);
    }

    fn path() -> PathBuf {
        PathBuf::from("/data/0000000000000003.wal")
    }

    fn corrupt_offset(result: Result<ScannedSegment, WalError>) -> u64 {
        match result {
            Err(WalError::Corrupt { offset, .. }) => offset,
            other => panic!("expected corruption, got {other:?}"),
        }
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
    fn previous_format_version_is_a_clear_error() {
        let mut bytes = SegmentHeader {
            cluster_id: 1,
            sequence: 0,
            first_index: 1,
            segment_bytes: 1 << 20,
            previous_end_offset: 0,
        }
        .encode();
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[0..56]);
        bytes[56..60].copy_from_slice(&crc.to_le_bytes());
        let error = SegmentHeader::decode(&bytes, &path()).unwrap_err();
        assert!(
            matches!(
                error,
                WalError::UnsupportedVersion {
                    found: 1,
                    supported: SEGMENT_FORMAT_VERSION,
                    ..
                }
            ),
            "{error}"
        );
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
    fn clean_segment_keeps_every_batch() {
        let (image, spans) = image_with_batches(&[10, 700, 20]);
        let scanned = scan_segment(&image, true, &path()).unwrap();
        assert_eq!(scanned.records.len(), records_before(&spans, 3));
        let last = spans[2];
        assert_eq!(
            scanned.end_offset,
            ((last.first_sector + last.sectors) * SECTOR_BYTES) as u64
        );
        assert_eq!(scanned.next_write_number, 4);
        assert!(scanned.torn_tail.is_none());
        assert!(scan_segment(&image, false, &path()).is_ok());
    }

    #[test]
    fn last_batch_with_only_its_first_sectors_persisted_is_cut() {
        let (image, spans) = image_with_batches(&[10, 20, 1200]);
        let last = spans[2];
        assert!(last.sectors >= 3);
        for persisted in 1..last.sectors {
            let mut torn = image.clone();
            for index in last.first_sector + persisted..last.first_sector + last.sectors {
                zero_sector(&mut torn, index);
            }
            let scanned = scan_segment(&torn, true, &path()).unwrap();
            assert_eq!(scanned.records.len(), records_before(&spans, 2));
            let start = (last.first_sector * SECTOR_BYTES) as u64;
            assert_eq!(scanned.end_offset, start);
            assert_eq!(
                scanned.torn_tail,
                Some(TornTail {
                    offset: start,
                    end_offset: ((last.first_sector + persisted) * SECTOR_BYTES) as u64,
                })
            );
            assert_eq!(
                scanned.next_write_number, 3,
                "the cut write's number is reused"
            );
        }
    }

    #[test]
    fn last_batch_missing_a_middle_sector_is_cut() {
        let (mut image, spans) = image_with_batches(&[10, 20, 1200]);
        let last = spans[2];
        zero_sector(&mut image, last.first_sector + 1);
        let scanned = scan_segment(&image, true, &path()).unwrap();
        assert_eq!(scanned.records.len(), records_before(&spans, 2));
        assert_eq!(
            scanned.torn_tail.unwrap().end_offset,
            ((last.first_sector + last.sectors) * SECTOR_BYTES) as u64
        );
    }

    #[test]
    fn last_batch_missing_its_first_sector_is_cut() {
        let (mut image, spans) = image_with_batches(&[10, 20, 1200]);
        zero_sector(&mut image, spans[2].first_sector);
        let scanned = scan_segment(&image, true, &path()).unwrap();
        assert_eq!(scanned.records.len(), records_before(&spans, 2));
        assert!(scanned.torn_tail.is_some());
    }

    #[test]
    fn unwritten_sector_followed_by_a_later_write_is_corruption() {
        // The middle batch was synced (a later one was written after it), then lost.
        let (mut image, spans) = image_with_batches(&[10, 700, 20]);
        let middle = spans[1];
        zero_sector(&mut image, middle.first_sector);
        let offset = corrupt_offset(scan_segment(&image, true, &path()));
        assert_eq!(offset, (spans[2].first_sector * SECTOR_BYTES) as u64);
        // Only part of it lost: its records run into a hole, then the later write.
        let (mut image, spans) = image_with_batches(&[10, 700, 20]);
        zero_sector(&mut image, spans[1].first_sector + 1);
        assert_eq!(
            corrupt_offset(scan_segment(&image, true, &path())),
            (spans[2].first_sector * SECTOR_BYTES) as u64
        );
    }

    #[test]
    fn flipped_byte_in_the_last_batch_is_corruption_not_a_torn_write() {
        let (mut image, spans) = image_with_batches(&[10, 20, 30]);
        let last = spans[2];
        let offset = last.first_sector * SECTOR_BYTES + 100;
        image[offset] ^= 0x40;
        let error = scan_segment(&image, true, &path()).unwrap_err();
        assert!(
            matches!(error, WalError::Corrupt { offset: at, .. } if at == (last.first_sector * SECTOR_BYTES) as u64),
            "{error}"
        );
        assert!(
            error.to_string().contains("may have been acknowledged"),
            "{error}"
        );
    }

    #[test]
    fn damaged_sector_in_a_torn_write_is_corruption() {
        let (mut image, spans) = image_with_batches(&[10, 20, 1200]);
        let last = spans[2];
        zero_sector(&mut image, last.first_sector + 1);
        image[(last.first_sector + 2) * SECTOR_BYTES + 3] ^= 1;
        assert_eq!(
            corrupt_offset(scan_segment(&image, true, &path())),
            ((last.first_sector + 2) * SECTOR_BYTES) as u64
        );
    }

    #[test]
    fn sealed_segment_with_anything_past_its_data_is_corruption() {
        let (mut image, spans) = image_with_batches(&[10, 20, 1200]);
        let last = spans[2];
        zero_sector(&mut image, last.first_sector + 1);
        assert!(scan_segment(&image, true, &path()).is_ok());
        assert_eq!(
            corrupt_offset(scan_segment(&image, false, &path())),
            (last.first_sector * SECTOR_BYTES) as u64
        );
    }

    #[test]
    fn stray_byte_in_the_header_sector_is_corruption() {
        let (mut image, _) = image_with_batches(&[10]);
        image[SEGMENT_HEADER_BYTES + 7] = 1;
        assert_eq!(
            corrupt_offset(scan_segment(&image, true, &path())),
            (SEGMENT_HEADER_BYTES + 7) as u64
        );
    }

    #[test]
    fn missing_first_batch_is_corruption() {
        let (mut image, spans) = image_with_batches(&[10]);
        zero_sector(&mut image, spans[0].first_sector);
        assert_eq!(
            corrupt_offset(scan_segment(&image, true, &path())),
            FIRST_BATCH_OFFSET
        );
    }

    #[test]
    fn payload_that_passes_checksum_but_does_not_decode_is_corruption() {
        let mut image = SegmentHeader {
            cluster_id: 1,
            sequence: 3,
            first_index: 1,
            segment_bytes: IMAGE_BYTES as u64,
            previous_end_offset: 0,
        }
        .encode()
        .to_vec();
        image.resize(FIRST_BATCH_OFFSET as usize, 0);
        let mut stream = Vec::new();
        let marker = SnapshotMarker {
            index: 1,
            term: 1,
            entries_kept: true,
        };
        record::encode_snapshot_marker(&mut stream, &marker);
        // Flag byte 7 is not a boolean; fix the checksum so only the meaning is wrong.
        stream[RECORD_HEADER_BYTES + 16] = 7;
        let payload_end = RECORD_HEADER_BYTES + 17;
        let crc = crc32c::crc32c(&stream[4..payload_end]);
        stream[0..4].copy_from_slice(&crc.to_le_bytes());
        sector::frame_batch(&stream, 1, &mut image);
        image.resize(IMAGE_BYTES, 0);
        let error = scan_segment(&image, true, &path()).unwrap_err();
        assert!(error.to_string().contains("flag 7"), "{error}");
    }

    fn arb_batches() -> impl Strategy<Value = Vec<usize>> {
        prop::collection::vec(0usize..1100, 1..5)
    }

    proptest! {
        #[test]
        fn any_subset_of_the_last_batch_persisted_is_cut_or_kept_never_refused(
            entry_bytes in arb_batches(),
            persisted in prop::collection::vec(any::<bool>(), 4),
        ) {
            let (mut image, spans) = image_with_batches(&entry_bytes);
            let last_batch = spans.len() - 1;
            let last = spans[last_batch];
            for (index, &kept) in persisted.iter().enumerate().take(last.sectors) {
                if !kept {
                    zero_sector(&mut image, last.first_sector + index);
                }
            }
            let all_persisted = persisted.iter().take(last.sectors).all(|&kept| kept);
            if last_batch == 0 && !all_persisted {
                // A segment's first batch is synced before the segment is named.
                prop_assert!(scan_segment(&image, true, &path()).is_err());
                return Ok(());
            }
            let scanned = scan_segment(&image, true, &path()).unwrap();
            let synced = records_before(&spans, last_batch);
            if all_persisted {
                prop_assert_eq!(scanned.records.len(), synced + last.records);
                prop_assert!(scanned.torn_tail.is_none());
            } else {
                prop_assert_eq!(scanned.records.len(), synced);
                let any_persisted = persisted.iter().take(last.sectors).any(|&kept| kept);
                prop_assert_eq!(scanned.torn_tail.is_some(), any_persisted);
            }
        }

        #[test]
        fn any_flipped_byte_in_written_sectors_is_refused(
            entry_bytes in arb_batches(),
            position in any::<prop::sample::Index>(),
            flip in 1u8..,
        ) {
            let (mut image, spans) = image_with_batches(&entry_bytes);
            let last = spans[spans.len() - 1];
            let written_end = (last.first_sector + last.sectors) * SECTOR_BYTES;
            let offset = FIRST_BATCH_OFFSET as usize
                + position.index(written_end - FIRST_BATCH_OFFSET as usize);
            image[offset] ^= flip;
            for is_last in [true, false] {
                let at = corrupt_offset(scan_segment(&image, is_last, &path()));
                prop_assert_eq!(at, (offset / SECTOR_BYTES * SECTOR_BYTES) as u64);
            }
        }
    }
}
