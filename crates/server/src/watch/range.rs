//! Which events a watcher wants: its key range, with etcd's `range_end`
//! rules, and its NOPUT/NODELETE filters. Pure matching; it owns no state and
//! must never read the store.

use mvcc::{Event, EventKind};

/// The keys a watcher covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    key: Vec<u8>,
    end: RangeEnd,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RangeEnd {
    /// Only `key` itself (an empty `range_end`).
    Single,
    /// Every key greater than or equal to `key` (`range_end` is `"\0"`).
    FromKey,
    /// The half-open range `[key, end)`.
    Before(Vec<u8>),
}

/// A `range_end` at or below its key: the range holds no key, which etcd
/// refuses with "mvcc: watcher range is empty".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("mvcc: watcher range is empty")]
pub struct EmptyRange;

impl KeyRange {
    /// The range of a watch request, as etcd reads it: an empty key is `"\0"`
    /// (the smallest key), an empty `range_end` is the key alone, `"\0"` is
    /// every key from `key` on, anything else the half-open range, which must
    /// not be empty.
    pub fn new(key: Vec<u8>, range_end: Vec<u8>) -> Result<Self, EmptyRange> {
        let key = if key.is_empty() { vec![0] } else { key };
        let end = match range_end.as_slice() {
            [] => RangeEnd::Single,
            [0] => RangeEnd::FromKey,
            _ if key >= range_end => return Err(EmptyRange),
            _ => RangeEnd::Before(range_end),
        };
        Ok(Self { key, end })
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        match &self.end {
            RangeEnd::Single => key == self.key,
            RangeEnd::FromKey => key >= self.key.as_slice(),
            RangeEnd::Before(end) => key >= self.key.as_slice() && key < end.as_slice(),
        }
    }
}

/// The event kinds a watcher leaves out (etcd's `FilterType`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventFilter {
    pub no_put: bool,
    pub no_delete: bool,
}

impl EventFilter {
    pub fn passes(self, event: &Event) -> bool {
        match event.kind {
            EventKind::Put => !self.no_put,
            EventKind::Delete => !self.no_delete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvcc::KeyValue;

    fn range(key: &str, end: &[u8]) -> KeyRange {
        KeyRange::new(key.as_bytes().to_vec(), end.to_vec()).unwrap()
    }

    #[test]
    fn an_empty_range_end_is_the_key_alone() {
        let single = range("foo", b"");
        assert!(single.contains(b"foo"));
        assert!(!single.contains(b"foo0"));
        assert!(!single.contains(b"fo"));
        assert!(!single.contains(b""));
    }

    #[test]
    fn a_nul_range_end_is_every_key_from_the_key_on() {
        let from = range("b", b"\0");
        assert!(from.contains(b"b"));
        assert!(from.contains(b"zzz"));
        assert!(from.contains(&[0xff, 0xff]));
        assert!(!from.contains(b"a"));
        assert!(!from.contains(b"az"));
    }

    #[test]
    fn an_empty_key_is_the_smallest_key() {
        let all = KeyRange::new(Vec::new(), vec![0]).unwrap();
        assert!(all.contains(&[0]));
        assert!(all.contains(b"anything"));
        let nul_only = KeyRange::new(Vec::new(), Vec::new()).unwrap();
        assert!(nul_only.contains(&[0]));
        assert!(!nul_only.contains(b"a"));
    }

    #[test]
    fn a_prefix_range_is_half_open() {
        // etcdctl --prefix foo sends range_end "fop".
        let prefix = range("foo", b"fop");
        assert!(prefix.contains(b"foo"));
        assert!(prefix.contains(b"foo/bar"));
        assert!(prefix.contains(&[b'f', b'o', b'o', 0xff]));
        assert!(!prefix.contains(b"fop"));
        assert!(!prefix.contains(b"fo"));
    }

    #[test]
    fn a_range_ending_at_or_before_its_key_is_refused() {
        assert_eq!(KeyRange::new(b"b".to_vec(), b"b".to_vec()), Err(EmptyRange));
        assert_eq!(KeyRange::new(b"b".to_vec(), b"a".to_vec()), Err(EmptyRange));
        assert_eq!(EmptyRange.to_string(), "mvcc: watcher range is empty");
    }

    #[test]
    fn filters_leave_out_their_kind_only() {
        let event = |kind| Event {
            kind,
            kv: KeyValue::default(),
            prev_kv: None,
        };
        let (put, delete) = (event(EventKind::Put), event(EventKind::Delete));
        let all = EventFilter::default();
        assert!(all.passes(&put) && all.passes(&delete));
        let no_put = EventFilter {
            no_put: true,
            no_delete: false,
        };
        assert!(!no_put.passes(&put) && no_put.passes(&delete));
        let no_delete = EventFilter {
            no_put: false,
            no_delete: true,
        };
        assert!(no_delete.passes(&put) && !no_delete.passes(&delete));
    }
}
