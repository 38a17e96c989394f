//! [`KeyRange`]: the one key range that an export or an import carries of
//! each chosen keyspace ([`ExportOptions::range`](crate::ExportOptions::range),
//! [`ImportOptions::range`](crate::ImportOptions::range)).

use crate::read::query::prefix_successor;
use crate::util::text::escape;
use crate::{Error, Result};
use std::ops::Bound;

/// A range of keys (byte strings, compared as bytes): every key within
/// `from` and `to`. The default is every key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRange {
    /// The lower bound (`Included(a)` for `--from a`).
    pub from: Bound<Vec<u8>>,
    /// The upper bound (`Excluded(b)` for `--to b`).
    pub to: Bound<Vec<u8>>,
}

impl Default for KeyRange {
    fn default() -> Self {
        KeyRange::all()
    }
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        KeyRange { from: Bound::Unbounded, to: Bound::Unbounded }
    }

    /// `[from, to)`: keys `>= from` (when given) and `< to` (when given).
    pub fn between(from: Option<Vec<u8>>, to: Option<Vec<u8>>) -> Self {
        KeyRange {
            from: from.map_or(Bound::Unbounded, Bound::Included),
            to: to.map_or(Bound::Unbounded, Bound::Excluded),
        }
    }

    /// The keys starting with `prefix`: `[prefix, successor)` with the
    /// successor of [`prefix_successor`], unbounded above when there is none
    /// (an empty prefix, or one of `0xff` bytes only).
    pub fn prefix(prefix: &[u8]) -> Self {
        let to = prefix_successor(prefix);
        KeyRange::between(Some(prefix.to_vec()), to)
    }

    /// The range holds every key.
    pub fn is_all(&self) -> bool {
        matches!((&self.from, &self.to), (Bound::Unbounded, Bound::Unbounded))
    }

    /// `key` is in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let above = match &self.from {
            Bound::Included(a) => key >= a.as_slice(),
            Bound::Excluded(a) => key > a.as_slice(),
            Bound::Unbounded => true,
        };
        above && self.below_end(key)
    }

    /// `key` is below the range's upper bound (it may still be below the
    /// lower one).
    pub fn below_end(&self, key: &[u8]) -> bool {
        match &self.to {
            Bound::Included(b) => key <= b.as_slice(),
            Bound::Excluded(b) => key < b.as_slice(),
            Bound::Unbounded => true,
        }
    }

    /// The range holds no key at all (e.g. `from >= to`).
    pub fn is_empty(&self) -> bool {
        match (&self.from, &self.to) {
            (Bound::Unbounded, _) | (_, Bound::Unbounded) => {
                // Only `< ""` is empty among half-bounded ranges.
                matches!(&self.to, Bound::Excluded(b) if b.is_empty())
            }
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a), Bound::Excluded(b)) | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
            // (a, b) is empty when b is a or a followed by one 0 byte.
            (Bound::Excluded(a), Bound::Excluded(b)) => a >= b || b.strip_prefix(a.as_slice()) == Some(&[0][..]),
        }
    }

    /// An error (kind `InvalidArgument`) naming both bounds when the range
    /// is empty: an export or import of it would carry nothing, which is
    /// almost surely a mistake in its bounds.
    pub fn check(&self) -> Result<()> {
        if !self.is_empty() {
            return Ok(());
        }
        Err(Error::InvalidArgument(format!(
            "the key range from {} to {} is empty: no key is in it (the lower bound must be below the upper one)",
            show(&self.from),
            show(&self.to)
        )))
    }
}

/// A bound for messages: `'text' (hex 74657874, inclusive)`, or only the
/// hex for a key that is not UTF-8.
fn show(b: &Bound<Vec<u8>>) -> String {
    let key = |k: &[u8], how: &str| match std::str::from_utf8(k) {
        Ok(s) => format!("'{}' (hex {}, {how})", escape(s), crate::util::text::hex(k)),
        Err(_) => format!("hex {} ({how})", crate::util::text::hex(k)),
    };
    match b {
        Bound::Included(k) => key(k, "inclusive"),
        Bound::Excluded(k) => key(k, "exclusive"),
        Bound::Unbounded => "unbounded".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_hold_what_they_say() {
        let r = KeyRange::prefix(b"ab");
        assert!(r.contains(b"ab") && r.contains(b"ab\xff\xff") && !r.contains(b"a") && !r.contains(b"ac"));
        let r = KeyRange::prefix(&[0xff, 0xff]);
        assert_eq!(r.to, Bound::Unbounded);
        assert!(r.contains(&[0xff, 0xff, 0]) && !r.contains(&[0xff, 0xfe]));
        assert!(!KeyRange::prefix(b"").is_all() && KeyRange::prefix(b"").contains(b""));
        assert!(KeyRange::all().is_all() && !KeyRange::all().is_empty());
        assert!(KeyRange::between(Some(b"b".to_vec()), Some(b"b".to_vec())).is_empty());
        assert!(KeyRange::between(Some(b"c".to_vec()), Some(b"b".to_vec())).is_empty());
        assert!(!KeyRange::between(Some(b"b".to_vec()), Some(b"b\0".to_vec())).is_empty());
        assert!(KeyRange::between(None, Some(Vec::new())).is_empty());
        assert!(!KeyRange::between(Some(Vec::new()), None).is_empty());
        let r = KeyRange { from: Bound::Excluded(b"a".to_vec()), to: Bound::Excluded(b"a\0".to_vec()) };
        assert!(r.is_empty());
        let e = KeyRange::between(Some(b"b".to_vec()), Some(b"a".to_vec())).check().unwrap_err().to_string();
        assert!(e.contains("'b' (hex 62, inclusive)") && e.contains("'a' (hex 61, exclusive)"), "{e}");
    }
}
