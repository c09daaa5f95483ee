//! Sector framing: how a write batch is laid out in 512-byte sectors, each
//! with its own checksum and write number, and how recovery classifies a
//! sector it reads back. Pure byte manipulation; `segment` decides what a
//! pattern of sectors means.
//!
//! # Failure model
//!
//! Recovery is only as sound as the model of what a crash and a bad disk can
//! leave behind. This log assumes:
//!
//! - A crash affects only the write not yet synced (a batch whose fdatasync
//!   has not returned). Each 512-byte sector of that write (aligned at a file
//!   offset multiple of 512) is persisted either entirely with its new content
//!   or not at all, in any subset and any order. Segments are preallocated
//!   with zeros and no sector is ever written twice with data (every batch
//!   starts on a fresh sector), so a sector that was not persisted reads as
//!   all zeros.
//! - Corruption (bit flips, garbage, a misdirected write) can hit any
//!   persisted byte, synced or not. It never produces a sector whose checksum
//!   matches, nor an all-zero sector. (A 32-bit checksum makes the first
//!   astronomically unlikely; a sector zeroed by the device after it was synced
//!   is indistinguishable from a lost write and is covered by the next point.)
//! - A lost write (the disk reported the sync done but never wrote the data)
//!   of the last batch looks exactly like a torn write of it: a single member
//!   cannot tell the two apart, and cuts the batch. If that batch was
//!   acknowledged, the entries it held survive on the quorum that counted it;
//!   the cluster's replication, not this member's log, covers that case. A lost
//!   write followed by any later write is detected (see `segment`).
//!
//! # Layout
//!
//! A batch is the records of one write, in one byte stream, followed by at
//! least [`BATCH_TERMINATOR_BYTES`] zero bytes and padded with zeros to a
//! multiple of [`SECTOR_DATA_BYTES`]. Each 504-byte piece of that stream
//! becomes one sector:
//!
//! ```text
//! 0..504    stream bytes
//! 504..508  crc32c of bytes 0..504 and 508..512
//! 508..512  write number (u32, never 0): the same for every sector of a batch,
//!           one more than the previous batch's in the same segment
//! ```
//!
//! A non-zero write number means no written sector is ever all zeros, so an
//! unwritten sector is never mistaken for a written one. The terminator is
//! what marks a batch as complete: a record never starts with eight zero
//! bytes (its length is never zero), so a batch whose records run to the
//! very end of its last intact sector without a terminator is known to
//! continue in a sector that is missing.

use crate::record;

pub(crate) const SECTOR_BYTES: usize = 512;
/// Bytes of the log's stream each sector carries.
pub(crate) const SECTOR_DATA_BYTES: usize = 504;
/// Zero bytes that end every batch's stream.
pub(crate) const BATCH_TERMINATOR_BYTES: usize = 8;
const CRC_OFFSET: usize = SECTOR_DATA_BYTES;
const WRITE_NUMBER_OFFSET: usize = SECTOR_DATA_BYTES + 4;

/// What a sector read back holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SectorState {
    /// Written whole by the write with this number: its checksum matches.
    Intact { write_number: u32 },
    /// All zeros: never written (or written and lost).
    Unwritten,
    /// Anything else: corruption.
    Damaged,
}

/// Classifies one sector (`sector` is exactly [`SECTOR_BYTES`] long).
pub(crate) fn classify(sector: &[u8]) -> SectorState {
    debug_assert_eq!(sector.len(), SECTOR_BYTES);
    if sector.iter().all(|&byte| byte == 0) {
        return SectorState::Unwritten;
    }
    let write_number = record::u32_at(sector, WRITE_NUMBER_OFFSET);
    if write_number != 0 && sector_crc(sector) == record::u32_at(sector, CRC_OFFSET) {
        SectorState::Intact { write_number }
    } else {
        SectorState::Damaged
    }
}

/// The stream bytes a sector carries.
pub(crate) fn data(sector: &[u8]) -> &[u8] {
    &sector[..SECTOR_DATA_BYTES]
}

fn sector_crc(sector: &[u8]) -> u32 {
    crc32c::crc32c_append(
        crc32c::crc32c(&sector[..SECTOR_DATA_BYTES]),
        &sector[WRITE_NUMBER_OFFSET..SECTOR_BYTES],
    )
}

/// Sectors a batch of `stream_bytes` of records takes, terminator and padding included.
pub(crate) fn batch_sectors(stream_bytes: usize) -> usize {
    (stream_bytes + BATCH_TERMINATOR_BYTES).div_ceil(SECTOR_DATA_BYTES)
}

/// Bytes of records a batch spread over `sectors` sectors can hold.
pub(crate) fn batch_capacity_bytes(sectors: u64) -> u64 {
    (sectors * SECTOR_DATA_BYTES as u64).saturating_sub(BATCH_TERMINATOR_BYTES as u64)
}

/// Appends the sectors of one batch holding the records `stream` to `out`.
pub(crate) fn frame_batch(stream: &[u8], write_number: u32, out: &mut Vec<u8>) {
    debug_assert_ne!(write_number, 0);
    for sector_index in 0..batch_sectors(stream.len()) {
        let start = out.len();
        let from = (sector_index * SECTOR_DATA_BYTES).min(stream.len());
        let to = ((sector_index + 1) * SECTOR_DATA_BYTES).min(stream.len());
        out.extend_from_slice(&stream[from..to]);
        out.resize(start + SECTOR_BYTES, 0);
        out[start + WRITE_NUMBER_OFFSET..start + SECTOR_BYTES]
            .copy_from_slice(&write_number.to_le_bytes());
        let crc = sector_crc(&out[start..]);
        out[start + CRC_OFFSET..start + WRITE_NUMBER_OFFSET].copy_from_slice(&crc.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn batch_always_ends_in_a_terminator() {
        for stream_bytes in [0, 8, 488, 496, 504, 1000, 1008] {
            let sectors = batch_sectors(stream_bytes);
            assert!(sectors * SECTOR_DATA_BYTES >= stream_bytes + BATCH_TERMINATOR_BYTES);
            assert!((sectors - 1) * SECTOR_DATA_BYTES < stream_bytes + BATCH_TERMINATOR_BYTES);
            assert!(batch_capacity_bytes(sectors as u64) >= stream_bytes as u64);
        }
    }

    proptest! {
        #[test]
        fn framed_sectors_are_intact_and_carry_the_stream(
            stream in prop::collection::vec(any::<u8>(), 0..2000),
            write_number in 1u32..,
        ) {
            let mut framed = Vec::new();
            frame_batch(&stream, write_number, &mut framed);
            prop_assert_eq!(framed.len(), batch_sectors(stream.len()) * SECTOR_BYTES);
            let mut carried = Vec::new();
            for sector in framed.chunks(SECTOR_BYTES) {
                prop_assert_eq!(classify(sector), SectorState::Intact { write_number });
                carried.extend_from_slice(data(sector));
            }
            prop_assert_eq!(&carried[..stream.len()], &stream[..]);
            prop_assert!(carried[stream.len()..].iter().all(|&byte| byte == 0));
        }

        #[test]
        fn any_single_bit_flip_damages_the_sector(
            stream in prop::collection::vec(any::<u8>(), 1..504),
            bit in 0..SECTOR_BYTES * 8,
        ) {
            let mut framed = Vec::new();
            frame_batch(&stream, 7, &mut framed);
            framed[bit / 8] ^= 1 << (bit % 8);
            prop_assert_eq!(classify(&framed[..SECTOR_BYTES]), SectorState::Damaged);
        }
    }

    #[test]
    fn zeros_are_unwritten_and_a_zero_write_number_is_damage() {
        assert_eq!(classify(&[0u8; SECTOR_BYTES]), SectorState::Unwritten);
        let mut sector = [0u8; SECTOR_BYTES];
        sector[0] = 1;
        let crc = sector_crc(&sector);
        sector[CRC_OFFSET..WRITE_NUMBER_OFFSET].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(classify(&sector), SectorState::Damaged);
    }
}
