//! Point and range queries on an archive in place, without restoring it:
//! [`Archive::get`] and [`Archive::range`] (a [`RangeCursor`]).
//!
//! On a format 1.0 archive (no key index) a query first compares the key
//! with the index's first and last key of the keyspace, which answers
//! "absent" (or "empty range") without reading a block; otherwise it decodes
//! the keyspace's blocks from its first, through [`RecordCursor::seek`]. The
//! cost of a lookup inside a keyspace is then a scan of its blocks up to the
//! key; a range stops reading at its upper bound.
//!
//! ```no_run
//! # fn main() -> floe::Result<()> {
//! use std::ops::Bound;
//! let archive = floe::store::open_archive("s3://bucket/backup.floe")?;
//! if let Some(v) = archive.get("users", b"alice")? {
//!     println!("{} bytes", v.len());
//! }
//! let to = floe::read::query::prefix_successor(b"user:");
//! let mut r = archive.range("users", Bound::Included(&b"user:"[..]), floe::read::query::upper(&to))?;
//! while let Some(rec) = r.next()? {
//!     println!("{:?}", rec.key);
//! }
//! # Ok(()) }
//! ```

use crate::error::ArchiveContext;
use crate::read::cursor::{Record, RecordCursor};
use crate::read::{Archive, Source};
use crate::{Error, Result};
use std::ops::{Bound, Deref};

/// The smallest key greater than every key that starts with `prefix`, so
/// that `[prefix, successor)` is exactly the keys with that prefix; `None`
/// when there is none (the prefix is empty or all `0xff` bytes): the range
/// is then unbounded above.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let last = prefix.iter().rposition(|&b| b != 0xff)?;
    let mut s = prefix.get(..=last)?.to_vec();
    if let Some(b) = s.last_mut() {
        *b += 1;
    }
    Some(s)
}

/// The upper bound for [`prefix_successor`]'s result: `Excluded(s)`, or
/// `Unbounded` for `None`.
pub fn upper(successor: &Option<Vec<u8>>) -> Bound<&[u8]> {
    successor.as_deref().map_or(Bound::Unbounded, Bound::Excluded)
}

/// "keyspace 'x' is not in the archive A; it holds: a, b" (at most 50
/// names listed).
pub(crate) fn missing_keyspace<B: Source>(a: &Archive<B>, name: &str) -> Error {
    const SHOWN: usize = 50;
    let names: Vec<String> = a.keyspaces().iter().take(SHOWN).map(|k| format!("'{}'", k.name)).collect();
    let holds = match a.keyspaces().len() {
        0 => "it holds no keyspaces".to_owned(),
        n if n > SHOWN => format!("it holds {n} keyspaces: {}, ...", names.join(", ")),
        _ => format!("it holds: {}", names.join(", ")),
    };
    Error::InvalidArgument(format!("keyspace '{name}' is not in the archive {}; {holds}", a.name()))
}

impl<B: Source> Archive<B> {
    /// The position of the keyspace named `name` in the table; an error
    /// (kind `InvalidArgument`) naming the keyspaces the archive holds if it
    /// has none of that name.
    pub fn keyspace_named(&self, name: &str) -> Result<usize> {
        self.keyspace_position(name).ok_or_else(|| missing_keyspace(self, name))
    }

    /// The value of `key` in keyspace `keyspace`, or `None` if the keyspace
    /// has no such key. A keyspace the archive lacks is an error naming the
    /// ones it holds. Every block read is checked as [`RecordCursor`] checks it.
    ///
    /// With a key index (format 1.1, §8.2) this decodes the one block in
    /// which `key` can begin (and the chain of blocks of its value, if that
    /// spans blocks); when every key beginning in that block is below `key`,
    /// also the first record of the next block in which records begin, whose
    /// key-index entry is then checked too, so that no entry is trusted
    /// unchecked. Without one it scans the keyspace's blocks up to `key`.
    pub fn get(&self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let k = self.keyspace_named(keyspace)?;
        let t = &self.keyspace_parts(k)?.1.totals;
        if t.record_count == 0 || key < t.first_key.as_slice() || key > t.last_key.as_slice() {
            return Ok(None);
        }
        let Some(keys) = self.keyspace_keys(k)? else {
            let mut c = RecordCursor::keyspace(self, k)?;
            c.seek(k, key)?;
            return Ok(match c.next()? {
                Some(r) if r.key == key => Some(r.value.to_vec()),
                _ => None,
            });
        };
        let Some((seq, before, skip)) = keys.locate(key) else { return Ok(None) };
        // Most lookups end inside the block: decompress it only up to the key.
        let fetched = match self.lookup_early(k, &keys, seq, before, skip, key)? {
            Ok(found) => return Ok(found),
            Err(fetched) => fetched,
        };
        match self.lookup_from(k, seq, before, skip, key, Some(fetched))? {
            Lookup::Found(v) => Ok(Some(v)),
            Lookup::Absent => Ok(None),
            // Every key beginning in the block is below `key`: the next
            // block in which a record begins starts with a key above it,
            // which decoding that record checks against its entry.
            Lookup::Below => match keys.next_start(seq) {
                Some(next) => {
                    let (s, b, skip) = keys.start_of(next).ok_or_else(|| {
                        Error::Internal(format!("key index of keyspace #{k}: block {next} has no start"))
                    })?;
                    Ok(match self.lookup_from(k, s, b, skip, key, None)? {
                        Lookup::Found(v) => Some(v),
                        Lookup::Absent | Lookup::Below => None,
                    })
                }
                None => Ok(None),
            },
        }
    }

    /// The common case of [`Archive::get`] with a key index: block `seq`
    /// (its frame checked, §6) is decompressed from the start only up to
    /// the first record whose key is ≥ `key`, the records on the way checked
    /// as they are parsed (the first against its key-index entry, §11 item
    /// 10; keys ascending). `Some(answer)` when that settles it; `None` when
    /// the full path must decide: the block ends before such a record, the
    /// record spans out of the block, or anything is irregular (the full
    /// path then reports it as verify would).
    fn lookup_early(
        &self,
        k: usize,
        keys: &crate::format::key_index::KeyspaceKeys,
        seq: u32,
        before: u64,
        skip: u32,
        key: &[u8],
    ) -> Result<std::result::Result<Option<Vec<u8>>, super::FrameRef<'_>>> {
        let (entry, _, blocks) = self.keyspace_parts(k)?;
        let f = self.finish_block(self.start_block(blocks.start + seq as usize))?;
        let offset = self.index().blocks.get(blocks.start + seq as usize).map_or(0, |e| e.offset);
        Ok(match Self::scan_to(&f, keys, &entry.name, seq, before, skip, key, offset) {
            Some(found) => Ok(found),
            None => Err(f),
        })
    }

    /// [`Archive::lookup_early`]'s walk over the block's frame `f`.
    #[allow(clippy::too_many_arguments)]
    fn scan_to(
        f: &super::FrameRef<'_>,
        keys: &crate::format::key_index::KeyspaceKeys,
        name: &str,
        seq: u32,
        before: u64,
        skip: u32,
        key: &[u8],
        offset: u64,
    ) -> Option<Option<Vec<u8>>> {
        use crate::format::record::{check_record, RECORD_HEADER};
        let mut pf = crate::format::block::PartialFrame::new(&f.header, &f.frame, f.offset).ok()?;
        let (mut pos, mut index) = (skip as usize, before);
        let mut prev: Option<std::ops::Range<usize>> = None;
        loop {
            if pf.fill(pos + RECORD_HEADER).ok() != Some(true) {
                return None;
            }
            let hdr = *pf.bytes().get(pos..)?.first_chunk::<RECORD_HEADER>()?;
            let key_len = usize::from(u16::from_le_bytes([hdr[0], hdr[1]]));
            let value_len = u32::from_le_bytes([hdr[2], hdr[3], hdr[4], hdr[5]]) as usize;
            let key_at = pos + RECORD_HEADER;
            let end = key_at + key_len + value_len;
            if key_len == 0 || pf.fill(key_at + key_len).ok() != Some(true) {
                return None;
            }
            let bytes = pf.bytes();
            let rk = bytes.get(key_at..key_at + key_len)?;
            // The first record against its key-index entry, every later one
            // against the key before it.
            let checked = match &prev {
                None => keys.check_start(name, seq, pos, rk, offset).is_ok(),
                Some(r) => bytes
                    .get(r.clone())
                    .is_some_and(|p| check_record(name, index, rk, value_len as u64, Some(p)).is_ok()),
            };
            if !checked {
                return None;
            }
            match rk.cmp(key) {
                std::cmp::Ordering::Greater => return Some(None),
                std::cmp::Ordering::Equal => {
                    let value = key_at + key_len..end;
                    return pf
                        .fill(end)
                        .ok()
                        .filter(|&whole| whole)
                        .and_then(|_| pf.bytes().get(value).map(|v| Some(v.to_vec())));
                }
                std::cmp::Ordering::Less => {}
            }
            prev = Some(key_at..key_at + key_len);
            pos = end;
            index += 1;
        }
    }

    /// Decodes keyspace `k` from block `seq`'s first record start (`skip`
    /// bytes in; `before` records begin in earlier blocks), looking for
    /// `key`: found, absent (a larger key was met), or below (every key
    /// beginning in the block is smaller). Blocks after `seq` are read only
    /// to finish a record that spans out of it, and only if that record's
    /// key is `key` (or not yet known).
    fn lookup_from(
        &self,
        k: usize,
        seq: u32,
        before: u64,
        skip: u32,
        key: &[u8],
        mut fetched: Option<super::FrameRef<'_>>,
    ) -> Result<Lookup> {
        let first = self.keyspace_parts(k)?.2.start;
        let mut dec = self.decoder(k, true, seq, before, skip as usize)?;
        let mut raw = Vec::new();
        let mut b = first + seq as usize;
        let mut found = None;
        let mut above = false;
        loop {
            let h = match fetched.take() {
                Some(f) => self.decode_fetched(f, &mut raw)?,
                None => self.read_block(b, &mut raw)?,
            };
            let offset = self.index().blocks.get(b).map_or(self.trailer().index_offset, |e| e.offset);
            dec.feed(&h, &raw, offset, |rk, v| -> std::result::Result<(), crate::format::FormatError> {
                if found.is_none() && !above {
                    match rk.cmp(key) {
                        std::cmp::Ordering::Equal => found = Some(v.unwrap_or_default().to_vec()),
                        std::cmp::Ordering::Greater => above = true,
                        std::cmp::Ordering::Less => {}
                    }
                }
                Ok(())
            })
            .ctx(self.name())?;
            if let Some(v) = found {
                return Ok(Lookup::Found(v));
            }
            if above {
                return Ok(Lookup::Absent);
            }
            // The block's last record goes on in the next block: read on
            // only if it may be `key`.
            let read_on = dec.is_pending() && dec.pending_key().is_none_or(|pk| pk == key);
            if !read_on {
                return Ok(if dec.pending_key().is_some_and(|pk| pk > key) { Lookup::Absent } else { Lookup::Below });
            }
            b += 1;
        }
    }
    /// The records of keyspace `keyspace` with keys within `from` and `to`,
    /// in key order, streamed (memory bounded as for [`RecordCursor`]).
    /// Reading stops at the first key past `to`. A keyspace the archive lacks
    /// is an error naming the ones it holds.
    pub fn range(&self, keyspace: &str, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<RangeCursor<&Self>> {
        let k = self.keyspace_named(keyspace)?;
        RangeCursor::new(self, k, from, to)
    }
}

/// What [`Archive::lookup_from`] found.
enum Lookup {
    Found(Vec<u8>),
    Absent,
    Below,
}

/// A cursor over the records of one keyspace within a key range; see
/// [`Archive::range`].
pub struct RangeCursor<A> {
    cursor: RecordCursor<A>,
    to: Bound<Vec<u8>>,
    done: bool,
}

impl<A, B> RangeCursor<A>
where
    A: Deref<Target = Archive<B>>,
    B: Source,
{
    /// A cursor over keyspace `k` of `archive` (by position; see
    /// [`Archive::keyspace_named`]) within `from` and `to`.
    pub fn new(archive: A, k: usize, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Result<Self> {
        let mut cursor = RecordCursor::keyspace(archive, k)?;
        let t = &cursor.archive().keyspace_parts(k)?.1.totals;
        // No key of the keyspace is below `to`: read nothing.
        let first = t.first_key.as_slice();
        let mut done = t.record_count == 0
            || match to {
                Bound::Included(e) => e < first,
                Bound::Excluded(e) => e <= first,
                Bound::Unbounded => false,
            };
        if let (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) = (from, to) {
            done |= s > e;
        }
        if !done {
            match from {
                Bound::Included(s) => cursor.seek(k, s)?,
                // The smallest key greater than `s` is `s` followed by a 0 byte.
                Bound::Excluded(s) => cursor.seek(k, &[s, &[0]].concat())?,
                Bound::Unbounded => {}
            }
        }
        Ok(RangeCursor { cursor, to: to.map(<[u8]>::to_vec), done })
    }

    /// With `false`, values are not assembled (every value is empty); see
    /// [`RecordCursor::with_values`].
    pub fn with_values(mut self, values: bool) -> Self {
        self.cursor.set_values(values);
        self
    }

    /// The keyspace's position in the archive's table.
    pub fn keyspace(&self) -> Option<usize> {
        self.cursor.current_keyspace()
    }

    /// The next record of the range, or `None` past its end. The record
    /// borrows the cursor until the next call.
    // Not `Iterator`: a record borrows the cursor.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Record<'_>>> {
        if self.done {
            return Ok(None);
        }
        match self.cursor.next()? {
            Some(r) if !below(r.key, &self.to) => {
                self.done = true;
                Ok(None)
            }
            None => {
                self.done = true;
                Ok(None)
            }
            some => Ok(some),
        }
    }
}

impl<A> std::fmt::Debug for RangeCursor<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeCursor").field("cursor", &self.cursor).field("done", &self.done).finish()
    }
}

/// `key` is within the upper bound `to`.
fn below(key: &[u8], to: &Bound<Vec<u8>>) -> bool {
    match to {
        Bound::Included(e) => key <= e.as_slice(),
        Bound::Excluded(e) => key < e.as_slice(),
        Bound::Unbounded => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_of_prefixes() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xfe, 0xff]), Some(vec![0xff, 0xff]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
        assert_eq!(prefix_successor(b""), None);
    }
}
