//! Key ranges with etcd's `range_end` conventions.
//!
//! Owns the translation of a `(key, range_end)` pair into a set of keys, so that
//! reads, deletes, compares and the duplicate-key check agree on it. It must never
//! touch storage.

/// The set of keys a `(key, range_end)` pair names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyRange {
    /// `range_end` empty: exactly this key.
    Single(Vec<u8>),
    /// `range_end` is `"\0"`: every key greater than or equal to this one.
    From(Vec<u8>),
    /// `[start, end)`, non-empty.
    Between(Vec<u8>, Vec<u8>),
    /// `range_end` at or before `key`: no key at all.
    Empty,
}

impl KeyRange {
    pub(crate) fn new(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => Self::Single(key.to_vec()),
            [0] => Self::From(key.to_vec()),
            end if end > key => Self::Between(key.to_vec(), end.to_vec()),
            _ => Self::Empty,
        }
    }

    pub(crate) fn contains(&self, candidate: &[u8]) -> bool {
        match self {
            Self::Single(key) => candidate == key.as_slice(),
            Self::From(start) => candidate >= start.as_slice(),
            Self::Between(start, end) => {
                candidate >= start.as_slice() && candidate < end.as_slice()
            }
            Self::Empty => false,
        }
    }

    /// The first key of the range, if the range can hold any.
    pub(crate) fn start(&self) -> Option<&[u8]> {
        match self {
            Self::Single(key) | Self::From(key) | Self::Between(key, _) => Some(key),
            Self::Empty => None,
        }
    }

    /// The exclusive upper key bound; `None` when unbounded or a single key.
    pub(crate) fn end_exclusive(&self) -> Option<&[u8]> {
        match self {
            Self::Between(_, end) => Some(end),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_range_end_is_one_key() {
        let range = KeyRange::new(b"a", b"");
        assert!(range.contains(b"a"));
        assert!(!range.contains(b"ab"));
        assert!(!range.contains(b""));
    }

    #[test]
    fn nul_range_end_is_everything_from_key() {
        let range = KeyRange::new(b"b", b"\0");
        assert!(!range.contains(b"a"));
        assert!(range.contains(b"b"));
        assert!(range.contains(b"\xff\xff"));
        assert!(KeyRange::new(b"\0", b"\0").contains(b"\x01"));
    }

    #[test]
    fn range_end_is_exclusive() {
        let range = KeyRange::new(b"a", b"c");
        assert!(range.contains(b"a"));
        assert!(range.contains(b"bzz"));
        assert!(!range.contains(b"c"));
    }

    #[test]
    fn range_end_not_after_key_is_empty() {
        assert_eq!(KeyRange::new(b"b", b"a"), KeyRange::Empty);
        assert_eq!(KeyRange::new(b"b", b"b"), KeyRange::Empty);
        assert!(!KeyRange::new(b"b", b"a").contains(b"b"));
    }
}
