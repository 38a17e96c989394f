//! A pull-style, seekable cursor over the records of a random-access
//! [`Archive`] (a memory map, a buffer, or a ranged [`Source`] such as an
//! object-store object).
//!
//! [`RecordCursor`] runs every §11 check that [`Archive::for_each_record`]
//! runs (it is built on the cursor): the keyspace marker, key order within and
//! across blocks, each block's record count and `CONTINUES` flag, the
//! keyspace's end, and, when a keyspace was read from its first block to its
//! end, its totals against the index. A block is decoded and checked whole
//! before any of its records is returned.
//!
//! Memory is bounded by one decompressed block plus one record that spans
//! blocks (reassembled by the decoder and handed out without a copy).
//!
//! ```no_run
//! # fn main() -> floe::Result<()> {
//! let archive = floe::read::Archive::open(std::path::Path::new("db.floe"))?;
//! let mut c = archive.cursor();
//! c.seek_named("users", b"m")?; // first key >= "m" of keyspace "users"
//! while let Some(r) = c.next()? {
//!     println!("{:?} = {} bytes", r.key, r.value.len());
//! }
//! # Ok(()) }
//! ```

use crate::error::ArchiveContext;
use crate::format::record::{hex_preview, KeyspaceDecoder, RecordAt, Totals, RECORD_HEADER};
use crate::format::FormatError;
use crate::progress::Tracker;
use crate::read::{check_totals, Archive, BlockAhead, Source};
use crate::{Error, Result};
use std::ops::{Deref, Range};

/// One record returned by [`RecordCursor::next`]. Its slices borrow the
/// cursor and stay valid until its next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'c> {
    /// The keyspace's position in the archive's table.
    pub keyspace: usize,
    /// The key.
    pub key: &'c [u8],
    /// The value; empty for every record when values are off
    /// ([`RecordCursor::with_values`]).
    pub value: &'c [u8],
}

/// Where decoding starts to reach a key: a block of the keyspace that begins
/// at a record boundary, with the decoder state that block expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockStart {
    /// Block number in index order.
    block: usize,
    /// Its sequence within the keyspace.
    sequence: u32,
    /// Records of the keyspace before it.
    index_base: u64,
    /// Bytes at its start that end a record begun earlier (§8.2 `record_offset`).
    skip: usize,
}

/// Raw bytes a cursor decompresses ahead of its position, at most.
const READ_AHEAD_BYTES: usize = 32 << 20;

/// A keyspace being decoded.
struct Reading {
    k: usize,
    /// Where decoding starts.
    from: BlockStart,
    /// Created when the first block is read, with the cursor's `values`
    /// then (kept in `values`).
    dec: Option<KeyspaceDecoder>,
    values: bool,
    /// Next block to read (index order), and one past the keyspace's last.
    next: usize,
    end: usize,
    /// Decoding began at the keyspace's first block, so its totals can be
    /// checked against the index at its end.
    from_start: bool,
}

enum State {
    Reading(Box<Reading>),
    /// Keyspace `k` has no more records for this cursor: it was read to its
    /// end (`totals` then holds its checked totals), or the cursor was
    /// positioned past its last key.
    End {
        k: usize,
        totals: Option<Totals>,
    },
    /// The archive has no keyspaces.
    Empty,
    /// An error was returned; the cursor must be positioned again.
    Failed(String),
}

/// What the next record is, found by [`RecordCursor::advance`].
enum Loc {
    /// In the current block's raw bytes.
    Raw { k: usize, key: Range<usize>, value: Range<usize> },
    /// The reassembled spanning record in `held`.
    Held { k: usize },
}

/// A pull-style cursor over an archive's records; see the [module docs](self).
///
/// `A` is anything that dereferences to an [`Archive`]: `&Archive<B>` (from
/// [`Archive::cursor`]), `Arc<Archive<B>>`, `Box<Archive<B>>`.
///
/// A cursor walks either the whole archive (keyspace after keyspace, from
/// [`RecordCursor::new`]) or one keyspace ([`RecordCursor::keyspace`]); seeks
/// keep that scope. After an error, [`RecordCursor::next`] fails until the
/// cursor is positioned again.
pub struct RecordCursor<A> {
    archive: A,
    values: bool,
    /// `next` moves on to the following keyspaces at a keyspace's end.
    whole_archive: bool,
    state: State,
    /// The current block's raw bytes, the next in-block record's offset in
    /// them, and how many in-block records remain.
    raw: Vec<u8>,
    pos: usize,
    left: u32,
    /// A spanning record completed by the current block, returned before its
    /// in-block records.
    spanned: Option<(Vec<u8>, Vec<u8>)>,
    /// The spanning record last returned (borrowed by that [`Record`]).
    held: Option<(Vec<u8>, Vec<u8>)>,
    /// Records with keys below this are skipped (a seek in progress).
    target: Option<Vec<u8>>,
    /// Blocks being decompressed ahead, in order (archives in memory).
    ahead: std::collections::VecDeque<BlockAhead>,
    /// Buffers of blocks already consumed, for the read-ahead to reuse.
    spare: Vec<Vec<u8>>,
}

impl<B: Source> Archive<B> {
    /// A cursor over every record of the archive, keyspace by keyspace in
    /// table order, positioned before the first.
    pub fn cursor(&self) -> RecordCursor<&Self> {
        RecordCursor::new(self)
    }
}

impl<A, B> RecordCursor<A>
where
    A: Deref<Target = Archive<B>>,
    B: Source,
{
    /// A cursor over the whole archive, positioned before its first record.
    pub fn new(archive: A) -> Self {
        let mut c = Self::unpositioned(archive, true);
        c.state = if c.archive.keyspaces().is_empty() { State::Empty } else { c.begin(0, None) };
        c
    }

    /// A cursor over keyspace `k` only, positioned before its first record.
    /// Fails if the archive has no keyspace `k`.
    pub fn keyspace(archive: A, k: usize) -> Result<Self> {
        let mut c = Self::unpositioned(archive, false);
        c.seek_keyspace(k)?;
        Ok(c)
    }

    fn unpositioned(archive: A, whole_archive: bool) -> Self {
        RecordCursor {
            archive,
            values: true,
            whole_archive,
            state: State::Empty,
            raw: Vec::new(),
            pos: 0,
            left: 0,
            spanned: None,
            held: None,
            target: None,
            ahead: std::collections::VecDeque::new(),
            spare: Vec::new(),
        }
    }

    /// With `false`, values are not assembled: every [`Record::value`] is
    /// empty (value lengths are still checked). Applies from the next
    /// keyspace the cursor starts reading (set it before the first
    /// [`RecordCursor::next`] to apply it to every record).
    pub fn with_values(mut self, values: bool) -> Self {
        self.set_values(values);
        self
    }

    /// As [`RecordCursor::with_values`].
    pub fn set_values(&mut self, values: bool) {
        self.values = values;
    }

    /// The archive read.
    pub fn archive(&self) -> &Archive<B> {
        &self.archive
    }

    /// The keyspace the cursor is in (the one of the record last returned,
    /// or the one it was positioned at); `None` for an archive without
    /// keyspaces or after an error.
    pub fn current_keyspace(&self) -> Option<usize> {
        match &self.state {
            State::Reading(r) => Some(r.k),
            State::End { k, .. } => Some(*k),
            State::Empty | State::Failed(_) => None,
        }
    }

    /// The totals of the keyspace the cursor just read to its end, already
    /// checked against the index; `None` if it is not at such an end (or was
    /// positioned past the keyspace's last key, so that it read nothing).
    pub fn totals(&self) -> Option<&Totals> {
        match &self.state {
            State::End { totals, .. } => totals.as_ref(),
            _ => None,
        }
    }

    /// Positions the cursor before the first record of keyspace `k`.
    pub fn seek_keyspace(&mut self, k: usize) -> Result<()> {
        self.check_keyspace(k)?;
        self.state = self.begin(k, None);
        Ok(())
    }

    /// Positions the cursor before the first record of the keyspace named `name`.
    pub fn seek_keyspace_named(&mut self, name: &str) -> Result<()> {
        let k = self.keyspace_named(name)?;
        self.seek_keyspace(k)
    }

    /// Positions the cursor at the first record of keyspace `k` whose key is
    /// ≥ `key`. With no such record the cursor is at the keyspace's end (a
    /// whole-archive cursor then continues with the next keyspace).
    ///
    /// The index's first and last key of the keyspace answer "before the
    /// first" and "after the last" without reading a block; otherwise blocks
    /// are decoded (and checked) from the keyspace's first block, and the
    /// records before `key` skipped.
    pub fn seek(&mut self, k: usize, key: &[u8]) -> Result<()> {
        let t = &self.archive.keyspace_parts(k)?.1.totals;
        self.state = if t.record_count == 0 || key > t.last_key.as_slice() {
            self.clear_block();
            State::End { k, totals: None }
        } else if key <= t.first_key.as_slice() {
            self.begin(k, None)
        } else {
            let s = self.begin(k, Some(self.locate(k, key)?));
            self.target = Some(key.to_vec());
            s
        };
        Ok(())
    }

    /// As [`RecordCursor::seek`], for the keyspace named `name`.
    pub fn seek_named(&mut self, name: &str, key: &[u8]) -> Result<()> {
        let k = self.keyspace_named(name)?;
        self.seek(k, key)
    }

    /// The next record, or `None` at the end of the cursor's scope (one
    /// keyspace, or the archive). Records come in key order within a
    /// keyspace, keyspaces in table order.
    // Not `Iterator`: a record borrows the cursor until the next call.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Record<'_>>> {
        self.next_tracked(None)
    }

    /// As [`RecordCursor::next`], checking `tracker` for cancellation before
    /// each block is read and reporting each block's progress to it.
    pub(crate) fn next_tracked(&mut self, tracker: Option<&Tracker<'_>>) -> Result<Option<Record<'_>>> {
        if let State::Failed(msg) = &self.state {
            return Err(Error::InvalidArgument(format!(
                "the record cursor failed earlier ({msg}); position it again (seek) to go on"
            )));
        }
        let loc = match self.advance(tracker) {
            Ok(loc) => loc,
            Err(e) => {
                self.state = State::Failed(e.to_string());
                self.clear_block();
                return Err(e);
            }
        };
        Ok(loc.map(|loc| match loc {
            Loc::Raw { k, key, value } => {
                Record { keyspace: k, key: slice(&self.raw, key), value: slice(&self.raw, value) }
            }
            Loc::Held { k } => {
                let (key, value) = self.held.as_ref().map_or((&[][..], &[][..]), |(k, v)| (k.as_slice(), v.as_slice()));
                Record { keyspace: k, key, value }
            }
        }))
    }

    fn check_keyspace(&self, k: usize) -> Result<()> {
        let n = self.archive.keyspaces().len();
        if k >= n {
            return Err(Error::InvalidArgument(format!(
                "keyspace index {k} out of range: the archive {} has {n} keyspaces",
                self.archive.name()
            )));
        }
        Ok(())
    }

    fn keyspace_named(&self, name: &str) -> Result<usize> {
        self.archive.keyspace_named(name)
    }

    /// Where to start decoding keyspace `k` to find the first key ≥ `key`.
    /// With a key index (§8.2) that is the last block whose first key is ≤
    /// `key`, from its first record start; without one (format 1.0), the
    /// keyspace's first block.
    fn locate(&self, k: usize, key: &[u8]) -> Result<BlockStart> {
        let first = self.archive.keyspace_parts(k)?.2.start;
        let start = BlockStart { block: first, sequence: 0, index_base: 0, skip: 0 };
        let Some(keys) = self.archive.keyspace_keys(k)? else { return Ok(start) };
        Ok(match keys.locate(key) {
            Some((sequence, index_base, skip)) => {
                BlockStart { block: first + sequence as usize, sequence, index_base, skip: skip as usize }
            }
            None => start,
        })
    }

    /// The state "before the first record of keyspace `k`", decoding from
    /// `from` (default: the keyspace's first block). Reads nothing yet.
    fn begin(&mut self, k: usize, from: Option<BlockStart>) -> State {
        self.clear_block();
        let a = &*self.archive;
        let blocks = match a.keyspace_parts(k) {
            Ok((_, _, blocks)) => blocks,
            Err(e) => return State::Failed(e.to_string()),
        };
        let first = blocks.start;
        let from = from.unwrap_or(BlockStart { block: first, sequence: 0, index_base: 0, skip: 0 });
        State::Reading(Box::new(Reading {
            k,
            from,
            dec: None,
            values: self.values,
            next: from.block,
            end: blocks.end,
            from_start: from.block == first,
        }))
    }

    fn clear_block(&mut self) {
        self.ahead.clear();
        self.pos = 0;
        self.left = 0;
        self.spanned = None;
        self.held = None;
        self.target = None;
        self.raw.clear();
    }

    /// Moves to the next record to return (skipping those below `target`).
    fn advance(&mut self, tracker: Option<&Tracker<'_>>) -> Result<Option<Loc>> {
        self.held = None;
        loop {
            let r = match &mut self.state {
                State::Empty | State::Failed(_) => return Ok(None),
                State::End { k, .. } => {
                    let next = *k + 1;
                    if !self.whole_archive || next >= self.archive.keyspaces().len() {
                        return Ok(None);
                    }
                    self.state = self.begin(next, None);
                    continue;
                }
                State::Reading(r) => r,
            };
            let k = r.k;
            let a = &*self.archive;
            if r.dec.is_none() {
                r.values = self.values;
            }
            let (from, values) = (r.from, r.values);
            let dec = match &mut r.dec {
                Some(dec) => dec,
                None => {
                    let mut d = a.decoder(k, values, from.sequence, from.index_base, from.skip)?;
                    d.keep_spanned(true);
                    r.dec.insert(d)
                }
            };
            if let Some((key, value)) = self.spanned.take() {
                if self.target.as_deref().is_some_and(|t| key.as_slice() < t) {
                    continue;
                }
                self.target = None;
                self.held = Some((key, value));
                return Ok(Some(Loc::Held { k }));
            }
            if self.left > 0 {
                let (key, mut value, next) = parse(&self.raw, self.pos).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "internal error: checked block of keyspace #{k} in {} does not parse at {}",
                        self.archive.name(),
                        self.pos
                    ))
                })?;
                self.left -= 1;
                self.pos = next;
                if self.target.as_deref().is_some_and(|t| slice(&self.raw, key.clone()) < t) {
                    continue;
                }
                self.target = None;
                if !values {
                    value = value.start..value.start;
                }
                return Ok(Some(Loc::Raw { k, key, value }));
            }
            if r.next < r.end {
                let b = r.next;
                r.next += 1;
                if let Some(t) = tracker {
                    t.check()?;
                }
                // Blocks are decompressed a few ahead, on the pool, while
                // this one's records are handed out (archives in memory).
                while self.ahead.front().is_some_and(|x| x.i != b) {
                    self.ahead.pop_front();
                }
                let h = match self.ahead.pop_front() {
                    Some(x) => {
                        let (h, raw) = x.wait()?;
                        self.spare.push(std::mem::replace(&mut self.raw, raw));
                        h
                    }
                    None => a.read_block(b, &mut self.raw)?,
                };
                let largest =
                    a.index().blocks.get(b..r.end).map_or(1, |e| e.iter().map(|e| e.raw_len).max().unwrap_or(1));
                let window = (rayon::current_num_threads() + 1).min(READ_AHEAD_BYTES / largest.max(1) as usize);
                let mut next = self.ahead.back().map_or(b + 1, |x| x.i + 1);
                while self.ahead.len() < window && next < r.end {
                    match a.decompress_ahead(next, self.spare.pop().unwrap_or_default()) {
                        Some(x) => self.ahead.push_back(x),
                        None => break,
                    }
                    next += 1;
                }
                // read_block refuses a block the index does not list.
                let offset = a.index().blocks.get(b).map_or(a.trailer().index_offset, |e| e.offset);
                let before = dec.totals().record_count;
                let (mut first, mut in_block) = (None, 0u32);
                dec.feed_located(&h, &self.raw, offset, |at, _, _| -> std::result::Result<(), FormatError> {
                    if let RecordAt::Block(p) = at {
                        first.get_or_insert(p);
                        in_block += 1;
                    }
                    Ok(())
                })
                .ctx(a.name())?;
                self.spanned = dec.take_spanned();
                self.pos = first.unwrap_or(self.raw.len());
                self.left = in_block;
                if let Some(t) = tracker {
                    t.add(u64::from(h.raw_len), dec.totals().record_count - before)?;
                }
                continue;
            }
            // The keyspace's last block was decoded: end it.
            let at = a.index().blocks.get(r.end).map_or(a.trailer().index_offset, |e| e.offset);
            let from_start = r.from_start;
            let Some(dec) = r.dec.take() else { continue };
            let totals = dec.finish(at).ctx(a.name())?;
            let totals = if from_start {
                let (entry, ki, _) = a.keyspace_parts(k)?;
                check_totals(a.name(), &entry.name, k, &totals, &ki.totals, a.trailer().index_offset)?;
                Some(totals)
            } else {
                None
            };
            self.clear_block();
            self.state = State::End { k, totals };
        }
    }
}

impl<A> std::fmt::Debug for RecordCursor<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Reading(r) => format!("reading keyspace #{} (next block {})", r.k, r.next),
            State::End { k, .. } => format!("at the end of keyspace #{k}"),
            State::Empty => "no keyspaces".into(),
            State::Failed(m) => format!("failed: {m}"),
        };
        let target = self.target.as_deref().map(hex_preview);
        f.debug_struct("RecordCursor").field("state", &state).field("seeking", &target).finish()
    }
}

/// The key and value ranges of the record whose header starts at `pos` of
/// `raw`, and where the next one starts; `None` if it does not fit.
fn parse(raw: &[u8], pos: usize) -> Option<(Range<usize>, Range<usize>, usize)> {
    let h = raw.get(pos..pos.checked_add(RECORD_HEADER)?)?;
    let [k0, k1, v0, v1, v2, v3] = <[u8; RECORD_HEADER]>::try_from(h).ok()?;
    let key_len = usize::from(u16::from_le_bytes([k0, k1]));
    let value_len = usize::try_from(u32::from_le_bytes([v0, v1, v2, v3])).ok()?;
    let key_start = pos + RECORD_HEADER;
    let value_start = key_start.checked_add(key_len)?;
    let end = value_start.checked_add(value_len)?;
    (end <= raw.len()).then_some((key_start..value_start, value_start..end, end))
}

/// `buf[r]`, for a range [`parse`] checked against this same buffer.
fn slice(buf: &[u8], r: Range<usize>) -> &[u8] {
    buf.get(r).unwrap_or_default()
}
