//! The damage itself: a flipped byte, a byte put back, a file cut short.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The files in `dir` whose names end in `suffix`, oldest name first (both
/// servers name their log segments and snapshots so that order is age).
pub fn files_ending(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("reading {}: {error}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// The newest file in `dir` ending in `suffix`; panics when there is none.
pub fn newest_file(dir: &Path, suffix: &str) -> PathBuf {
    files_ending(dir, suffix)
        .pop()
        .unwrap_or_else(|| panic!("no *{suffix} file in {}", dir.display()))
}

/// Overwrites the byte at `offset` with `value`; returns the byte it replaced.
pub fn replace_byte(path: &Path, offset: u64, value: impl FnOnce(u8) -> u8) -> u8 {
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|error| panic!("opening {}: {error}", path.display()));
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset)
        .expect("read the byte");
    file.write_all_at(&[value(byte[0])], offset)
        .expect("write the byte");
    file.sync_all().expect("sync the damage");
    byte[0]
}

/// Flips bits of the byte at `offset`, never to zero (so the damage cannot
/// pass for bytes that were never written); returns the original byte.
pub fn flip_byte(path: &Path, offset: u64) -> u8 {
    replace_byte(path, offset, |byte| {
        if byte == 0x20 {
            byte ^ 0x01
        } else {
            byte ^ 0x20
        }
    })
}

/// Cuts the file to its first `length` bytes.
pub fn truncate(path: &Path, length: u64) {
    let file = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap_or_else(|error| panic!("opening {}: {error}", path.display()));
    file.set_len(length).expect("truncate");
    file.sync_all().expect("sync the truncation");
}

/// Flips one byte in every stored copy of `needle` in the file (the live
/// copy and any stale ones alike, since which is live is the file format's
/// business); returns how many copies it damaged.
pub fn flip_every_copy(path: &Path, needle: &[u8]) -> usize {
    let bytes = fs::read(path).expect("read the file");
    let starts: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, window)| *window == needle)
        .map(|(start, _)| start)
        .collect();
    for start in &starts {
        flip_byte(path, (start + needle.len() / 2) as u64);
    }
    starts.len()
}
