//! §7 the record stream, and the §6 rule for cutting it into blocks.
//!
//! [`BlockBuilder`] turns one keyspace's sorted records into raw blocks;
//! [`KeyspaceDecoder`] turns raw blocks back into records while checking every
//! §11 rule about records (items 7 and 8).

use super::block::BlockHeader;
use super::key_index::{KeyEntry, KeyIndexPart, KeyspaceKeys};
use super::limits::{MAX_KEY, MAX_VALUE};
use super::{FormatError, Result};

/// Bytes of a record header: `u16 key_len`, `u32 value_len`.
pub const RECORD_HEADER: usize = 6;

/// Appends one record.
pub fn put_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Appends a keyspace marker.
pub fn put_marker(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(name.len() as u32).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
}

/// Validates a record against §1.1 and the order rule, before anything is written.
/// `prev` is the previous key of the same keyspace.
pub fn check_record(keyspace: &str, index: u64, key: &[u8], value_len: u64, prev: Option<&[u8]>) -> Result<()> {
    let bad = |detail: String| FormatError::InvalidRecord { keyspace: keyspace.to_owned(), index, detail };
    if key.is_empty() {
        return Err(bad("empty key (keys must be 1 to 65535 bytes)".into()));
    }
    if key.len() > MAX_KEY {
        return Err(bad(format!("key of {} bytes exceeds the limit of {MAX_KEY}", key.len())));
    }
    if value_len > MAX_VALUE {
        return Err(bad(format!("value of {value_len} bytes exceeds the limit of {MAX_VALUE}")));
    }
    if let Some(p) = prev {
        if key <= p {
            let why = if key == p { "duplicate key" } else { "key out of order" };
            return Err(bad(format!(
                "{why}: keys must be strictly ascending (key {} after {})",
                hex_preview(key),
                hex_preview(p)
            )));
        }
    }
    Ok(())
}

/// Short hex rendering of a key for messages.
pub fn hex_preview(k: &[u8]) -> String {
    let mut s: String = k.iter().take(24).map(|b| format!("{b:02x}")).collect();
    if k.len() > 24 {
        s.push_str(&format!("…({} bytes)", k.len()));
    }
    format!("0x{s}")
}

/// One raw (uncompressed) block and the statistics of the records that begin in it.
#[derive(Debug, Clone, Default)]
pub struct RawBlock {
    /// Keyspace index (§5).
    pub keyspace: u32,
    /// Number of the block within its keyspace, from 0.
    pub sequence: u32,
    /// The last record continues in the next block (`CONTINUES`).
    pub continues: bool,
    /// Records that begin in this block.
    pub record_count: u32,
    /// The block's bytes: the record stream of §7.
    pub data: Vec<u8>,
    /// Sum of the key lengths of the records that begin here.
    pub key_bytes: u64,
    /// Sum of the value lengths of the records that begin here.
    pub value_bytes: u64,
    /// Key of the first record that begins here, if any.
    pub first_key: Option<Vec<u8>>,
    /// Offset in `data` where that record's header starts (0 without one),
    /// for the key index (§8.2).
    pub first_offset: u32,
    /// Key of the last record that begins here, if any.
    pub last_key: Option<Vec<u8>>,
}

/// A shared stash of spare block buffers, so a pipeline reuses its
/// multi-MiB allocations instead of allocating (and page-faulting in) one
/// per block. Holds at most `cap` buffers.
#[derive(Clone, Debug, Default)]
pub struct BufferPool {
    spare: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    cap: usize,
}

impl BufferPool {
    /// A pool keeping at most `cap` spare buffers.
    pub fn new(cap: usize) -> Self {
        BufferPool { spare: Default::default(), cap }
    }

    /// A spare buffer (empty, with its capacity), if any.
    pub fn take(&self) -> Option<Vec<u8>> {
        self.spare.lock().ok().and_then(|mut s| s.pop())
    }

    /// Returns a buffer for reuse (dropped if the pool is full).
    pub fn give(&self, mut v: Vec<u8>) {
        v.clear();
        if let Ok(mut s) = self.spare.lock() {
            if s.len() < self.cap {
                s.push(v);
            }
        }
    }
}

/// Cuts one keyspace's records into raw blocks following §6 exactly, so the
/// result depends only on the records and `block_target` (§12).
pub struct BlockBuilder {
    name: String,
    target: usize,
    cur: RawBlock,
    prev_key: Vec<u8>,
    records: u64,
    pool: Option<BufferPool>,
}

impl BlockBuilder {
    /// Starts keyspace `keyspace` (its table index) named `name`; writes the marker.
    pub fn new(keyspace: u32, name: &str, block_target: u32) -> Self {
        Self::build(keyspace, name, block_target, None)
    }

    /// As [`BlockBuilder::new`], taking block buffers from `pool` when it has
    /// spares (the consumer gives emitted blocks' buffers back to it).
    pub fn with_pool(keyspace: u32, name: &str, block_target: u32, pool: BufferPool) -> Self {
        Self::build(keyspace, name, block_target, Some(pool))
    }

    fn build(keyspace: u32, name: &str, block_target: u32, pool: Option<BufferPool>) -> Self {
        let target = block_target as usize;
        let data = pool.as_ref().and_then(BufferPool::take).unwrap_or_else(|| Vec::with_capacity(target.min(1 << 16)));
        let mut cur = RawBlock { keyspace, data, ..Default::default() };
        put_marker(&mut cur.data, name);
        BlockBuilder { name: name.to_owned(), target, cur, prev_key: Vec::new(), records: 0, pool }
    }

    /// Records accepted so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    fn flush<E>(
        &mut self,
        continues: bool,
        emit: &mut impl FnMut(RawBlock) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let data = self.pool.as_ref().and_then(BufferPool::take).unwrap_or_else(|| Vec::with_capacity(self.target));
        let next =
            RawBlock { keyspace: self.cur.keyspace, sequence: self.cur.sequence + 1, data, ..Default::default() };
        let mut done = std::mem::replace(&mut self.cur, next);
        done.continues = continues;
        // The block's last record is the last one pushed: blocks close before
        // the next record is noted.
        if done.record_count > 0 {
            done.last_key = Some(self.prev_key.clone());
        }
        emit(done)
    }

    fn note_start(&mut self, key: &[u8], value_len: usize, at: usize) {
        let c = &mut self.cur;
        c.record_count += 1;
        c.key_bytes += key.len() as u64;
        c.value_bytes += value_len as u64;
        if c.first_key.is_none() {
            c.first_key = Some(key.to_vec());
            c.first_offset = at as u32; // at < block_target ≤ 64 MiB
        }
        self.prev_key.clear();
        self.prev_key.extend_from_slice(key);
        self.records += 1;
    }

    /// Adds a record. Fails (with nothing written) if it breaks §1.1 or the order rule.
    pub fn push<E: From<FormatError>>(
        &mut self,
        key: &[u8],
        value: &[u8],
        emit: &mut impl FnMut(RawBlock) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let prev = (self.records > 0).then_some(self.prev_key.as_slice());
        check_record(&self.name, self.records, key, value.len() as u64, prev)?;
        let enc = RECORD_HEADER + key.len() + value.len();
        if self.cur.data.len() + enc <= self.target {
            let at = self.cur.data.len();
            put_record(&mut self.cur.data, key, value);
            self.note_start(key, value.len(), at);
            return Ok(());
        }
        if !self.cur.data.is_empty() {
            self.flush(false, emit)?;
        }
        if enc <= self.target {
            put_record(&mut self.cur.data, key, value);
            self.note_start(key, value.len(), 0);
            return Ok(());
        }
        // A record larger than a block: pieces of exactly `target` bytes, each ending
        // a block with CONTINUES, while more than `target` bytes remain.
        self.note_start(key, value.len(), self.cur.data.len());
        let mut hdr = [0u8; RECORD_HEADER];
        hdr[..2].copy_from_slice(&(key.len() as u16).to_le_bytes());
        hdr[2..].copy_from_slice(&(value.len() as u32).to_le_bytes());
        let parts: [&[u8]; 3] = [&hdr, key, value];
        let mut remaining = enc;
        for mut part in parts {
            while !part.is_empty() {
                let room = self.target - self.cur.data.len();
                let piece = take_upto(&mut part, room);
                self.cur.data.extend_from_slice(piece);
                remaining -= piece.len();
                if self.cur.data.len() == self.target && remaining > 0 {
                    self.flush(true, emit)?;
                }
            }
        }
        Ok(())
    }

    /// Emits the last block. Every keyspace ends with at least one block.
    pub fn finish<E>(
        mut self,
        emit: &mut impl FnMut(RawBlock) -> std::result::Result<(), E>,
    ) -> std::result::Result<u64, E> {
        if !self.cur.data.is_empty() {
            self.flush(false, emit)?;
        }
        Ok(self.records)
    }
}

/// Per-keyspace totals as §8 defines them, accumulated while decoding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Records.
    pub record_count: u64,
    /// Sum of key lengths.
    pub key_bytes: u64,
    /// Sum of value lengths.
    pub value_bytes: u64,
    /// Sum of the blocks' `raw_len` (record headers and the marker included).
    pub raw_bytes: u64,
    /// Sum of the blocks' `frame_len`.
    pub compressed_bytes: u64,
    /// Blocks.
    pub block_count: u32,
    /// The first key; empty without records.
    pub first_key: Vec<u8>,
    /// The last key; empty without records.
    pub last_key: Vec<u8>,
}

impl Totals {
    /// Appends the totals of the segment of the same keyspace that follows
    /// this one, checking that keys stay strictly ascending across the seam.
    /// `offset` is where the later segment's first block starts (for messages).
    pub fn append(&mut self, next: Totals, keyspace: &str, offset: u64) -> Result<()> {
        if self.record_count > 0 && next.record_count > 0 {
            check_record(keyspace, self.record_count, &next.first_key, 0, Some(&self.last_key)).map_err(
                |e| match e {
                    FormatError::InvalidRecord { keyspace, index, detail } => FormatError::corrupt(
                        "record",
                        offset,
                        format!("keyspace '{keyspace}', record #{index}: {detail}"),
                    ),
                    e => e,
                },
            )?;
        }
        if self.record_count == 0 {
            self.first_key = next.first_key;
        }
        if next.record_count > 0 {
            self.last_key = next.last_key;
        }
        self.record_count += next.record_count;
        self.key_bytes += next.key_bytes;
        self.value_bytes += next.value_bytes;
        self.raw_bytes += next.raw_bytes;
        self.compressed_bytes += next.compressed_bytes;
        self.block_count = self.block_count.saturating_add(next.block_count);
        Ok(())
    }
}

/// A record whose bytes span blocks.
struct Partial {
    hdr: [u8; RECORD_HEADER],
    hdr_len: usize,
    key_len: usize,
    value_len: u64,
    key: Vec<u8>,
    value: Vec<u8>,
    value_seen: u64,
    /// Block and offset where the record began, while its start still has
    /// to be checked against the key index (it was the first record to
    /// begin in that block and its key was not complete there).
    start: Option<(u32, usize)>,
}

/// Where a record handed out by [`KeyspaceDecoder::feed_located`] lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordAt {
    /// Whole inside the block fed: its header starts at this offset of the
    /// block's raw bytes.
    Block(usize),
    /// It began in an earlier block (`CONTINUES`) and was reassembled.
    Spanned,
}

/// Decodes and checks one keyspace's raw blocks, in order.
pub struct KeyspaceDecoder {
    keyspace: u32,
    name: String,
    /// `name`, shared with the error closures of `feed_located`.
    shared_name: std::sync::Arc<str>,
    materialize: bool,
    /// Keep the record reassembled by the last `feed` for [`KeyspaceDecoder::take_spanned`].
    keep_spanned: bool,
    spanned: Option<(Vec<u8>, Vec<u8>)>,
    next_seq: u32,
    /// Index of the first record this decoder sees within its keyspace
    /// (non-zero when decoding a later segment of the keyspace; for messages).
    index_base: u64,
    partial: Option<Partial>,
    totals: Totals,
    /// The keyspace's key index, against which every block's first record
    /// start is checked (§11 item 10); `None` without one.
    keys: Option<std::sync::Arc<KeyspaceKeys>>,
    /// Bytes at the start of the first block fed that belong to a record
    /// begun in an earlier block, not decoded (a key index lookup, §8.2).
    skip: usize,
    /// A streaming reader's check of key index parts that arrive after the
    /// blocks they describe (§11 item 10, record rule).
    stream: Option<StreamStarts>,
}

/// Record starts found by decoding and key index entries met in a stream,
/// matched in order as both arrive.
#[derive(Debug, Default)]
struct StreamStarts {
    expected: std::collections::VecDeque<(u32, KeyEntry, u64)>,
    found: std::collections::VecDeque<(u32, usize, Vec<u8>, u64)>,
    /// Bytes of keys held in `found`.
    held: usize,
    /// More than a part's worth of starts arrived with no part: no longer
    /// tracked (a writer following §8.2 would have written a part).
    overflowed: bool,
}

impl KeyspaceDecoder {
    /// `materialize = false` skips assembling values (verify); the callback then
    /// receives `None` for every value. With `true` it receives every value.
    pub fn new(keyspace: u32, name: &str, materialize: bool) -> Self {
        Self::resume(keyspace, name, materialize, 0, 0)
    }

    /// A decoder for a segment of the keyspace that starts at block `sequence`,
    /// whose first record is the keyspace's record number `index_base`. The
    /// block before it must end at a record boundary (no `CONTINUES`). The
    /// totals it returns cover the segment only; join segments with
    /// [`Totals::append`].
    pub fn resume(keyspace: u32, name: &str, materialize: bool, sequence: u32, index_base: u64) -> Self {
        KeyspaceDecoder {
            keyspace,
            name: name.to_owned(),
            shared_name: name.into(),
            materialize,
            keep_spanned: false,
            spanned: None,
            next_seq: sequence,
            index_base,
            partial: None,
            totals: Totals::default(),
            keys: None,
            skip: 0,
            stream: None,
        }
    }

    /// For a streaming reader: remembers every block's first record start
    /// so that key index parts met later ([`KeyspaceDecoder::expect_part`])
    /// are checked against them (§11 item 10, record rule).
    pub fn track_starts(&mut self) {
        self.stream = Some(StreamStarts::default());
    }

    /// A key index part of this keyspace, met in a stream after the blocks
    /// it describes: its entries are matched with the starts decoded.
    pub fn expect_part(&mut self, part: &KeyIndexPart, part_offset: u64) -> Result<()> {
        let Some(st) = self.stream.as_mut() else { return Ok(()) };
        if st.overflowed {
            return Ok(());
        }
        for (j, e) in part.entries.iter().enumerate() {
            if !e.first_key.is_empty() {
                st.expected.push_back((part.first_block + j as u32, e.clone(), part_offset));
            }
        }
        self.match_starts()
    }

    fn found_start(&mut self, seq: u32, pos: usize, key: &[u8], offset: u64) -> Result<()> {
        let Some(st) = self.stream.as_mut() else { return Ok(()) };
        if st.overflowed {
            return Ok(());
        }
        st.found.push_back((seq, pos, key.to_vec(), offset));
        st.held += key.len() + 16;
        if st.expected.is_empty() && st.held as u64 > super::limits::MAX_SECTION {
            st.overflowed = true;
            st.found.clear();
            return Ok(());
        }
        self.match_starts()
    }

    fn match_starts(&mut self) -> Result<()> {
        let Some(st) = self.stream.as_mut() else { return Ok(()) };
        while !st.expected.is_empty() && !st.found.is_empty() {
            let (Some((seq, e, part_offset)), Some((fseq, pos, key, block_offset))) =
                (st.expected.pop_front(), st.found.pop_front())
            else {
                break;
            };
            st.held = st.held.saturating_sub(key.len() + 16);
            if seq != fseq || e.record_offset as usize != pos || e.first_key != key {
                return Err(FormatError::corrupt(
                    "key index part",
                    part_offset,
                    format!(
                        "keyspace '{}': the entry for block {seq} does not match the first record start found (block {fseq}, at offset {block_offset}, block offset {pos})",
                        self.name
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A decoder starting in the middle of block `sequence`, at its first
    /// record start `skip` (from the key index, §8.2): the bytes before it end
    /// a record begun earlier and are not decoded. `index_base` is the
    /// number of records beginning in the keyspace's earlier blocks.
    pub fn resume_at(
        keyspace: u32,
        name: &str,
        materialize: bool,
        sequence: u32,
        index_base: u64,
        skip: usize,
    ) -> Self {
        let mut d = Self::resume(keyspace, name, materialize, sequence, index_base);
        d.skip = if sequence == 0 { 0 } else { skip };
        d
    }

    /// Checks the first record start of every block fed against the
    /// keyspace's key index (§11 item 10, record rule).
    pub fn check_key_index(&mut self, keys: std::sync::Arc<KeyspaceKeys>) {
        self.keys = Some(keys);
    }

    /// The key of the record still being reassembled, once all of its key
    /// has been fed (the last block fed ended in the middle of the record).
    pub fn pending_key(&self) -> Option<&[u8]> {
        self.partial
            .as_ref()
            .filter(|p| p.hdr_len == RECORD_HEADER && p.key.len() == p.key_len)
            .map(|p| p.key.as_slice())
    }

    /// True if the last block fed ended in the middle of a record.
    pub fn is_pending(&self) -> bool {
        self.partial.is_some()
    }

    fn check_start(&mut self, seq: u32, pos: usize, key: &[u8], offset: u64) -> Result<()> {
        if let Some(keys) = &self.keys {
            keys.check_start(&self.name, seq, pos, key, offset)?;
        }
        self.found_start(seq, pos, key, offset)
    }

    /// Totals so far.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Keeps the key and value of the record that spanned blocks and was
    /// completed by the last [`KeyspaceDecoder::feed`], for
    /// [`KeyspaceDecoder::take_spanned`] (a pull-style reader hands it out
    /// after `feed` returns, without copying it).
    pub fn keep_spanned(&mut self, keep: bool) {
        self.keep_spanned = keep;
    }

    /// The key and value (empty unless materializing) of the record that the
    /// last `feed` completed from earlier blocks, when [`KeyspaceDecoder::keep_spanned`]
    /// is on. It was handed to that `feed`'s callback as [`RecordAt::Spanned`].
    pub fn take_spanned(&mut self) -> Option<(Vec<u8>, Vec<u8>)> {
        self.spanned.take()
    }

    #[allow(clippy::too_many_arguments)]
    fn emit<E: From<FormatError>>(
        totals: &mut Totals,
        index_base: u64,
        name: &str,
        offset: u64,
        seq: u32,
        key: &[u8],
        value_len: u64,
        value: Option<&[u8]>,
        at: RecordAt,
        f: &mut impl FnMut(RecordAt, &[u8], Option<&[u8]>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let prev = (totals.record_count > 0).then_some(totals.last_key.as_slice());
        check_record(name, index_base + totals.record_count, key, value_len, prev).map_err(|e| match e {
            FormatError::InvalidRecord { keyspace, index, detail } => FormatError::corrupt(
                "record",
                offset,
                format!("keyspace '{keyspace}', block {seq}, record #{index}: {detail}"),
            ),
            e => e,
        })?;
        if totals.record_count == 0 {
            totals.first_key = key.to_vec();
        }
        totals.last_key.clear();
        totals.last_key.extend_from_slice(key);
        totals.record_count += 1;
        totals.key_bytes += key.len() as u64;
        totals.value_bytes += value_len;
        f(at, key, value)
    }

    /// Feeds the next block of this keyspace. `offset` is the absolute offset of
    /// the block's `BLKH` section; `raw` its decompressed bytes.
    pub fn feed<E: From<FormatError>>(
        &mut self,
        h: &BlockHeader,
        raw: &[u8],
        offset: u64,
        mut f: impl FnMut(&[u8], Option<&[u8]>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.feed_located(h, raw, offset, |_, key, value| f(key, value))
    }

    /// As [`KeyspaceDecoder::feed`], also telling the callback where each
    /// record lies.
    pub fn feed_located<E: From<FormatError>>(
        &mut self,
        h: &BlockHeader,
        raw: &[u8],
        offset: u64,
        mut f: impl FnMut(RecordAt, &[u8], Option<&[u8]>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.spanned = None;
        let seq = h.sequence;
        let ks_name = std::sync::Arc::clone(&self.shared_name);
        let corrupt = move |detail: String| {
            FormatError::corrupt("block", offset, format!("keyspace '{ks_name}', block {seq}: {detail}"))
        };
        if h.keyspace != self.keyspace || seq != self.next_seq {
            return Err(corrupt(format!(
                "expected block {} of keyspace #{}, found block {seq} of keyspace #{}",
                self.next_seq, self.keyspace, h.keyspace
            ))
            .into());
        }
        if raw.len() != h.raw_len as usize {
            return Err(corrupt(format!("has {} raw bytes, header says {}", raw.len(), h.raw_len)).into());
        }
        self.next_seq = self.next_seq.checked_add(1).ok_or_else(|| corrupt("too many blocks".into()))?;
        self.totals.block_count += 1;
        self.totals.raw_bytes += u64::from(h.raw_len);
        self.totals.compressed_bytes += u64::from(h.frame_len);
        // The bytes not yet decoded; they start at block offset `raw.len() - body.len()`.
        let mut body = raw;
        let mut started = 0u32;
        if seq == 0 {
            let n = self.name.len();
            let after_marker = body.split_first_chunk::<RECORD_HEADER>().and_then(|(hdr, rest)| {
                let header_ok = hdr[..2] == [0, 0] && hdr[2..] == (n as u32).to_le_bytes();
                rest.strip_prefix(self.name.as_bytes()).filter(|_| header_ok)
            });
            let Some(after_marker) = after_marker else {
                return Err(corrupt(format!("does not begin with the marker of keyspace '{}'", self.name)).into());
            };
            body = after_marker;
        }
        if self.skip > 0 {
            let skip = std::mem::take(&mut self.skip);
            body = raw.get(skip..).filter(|_| self.partial.is_none()).ok_or_else(|| {
                corrupt(format!("the key index places the first record at block offset {skip}, past the block"))
            })?;
        }
        // Finish a record carried over from the previous block.
        let mut deferred = None;
        if let Some(p) = self.partial.as_mut() {
            if p.hdr_len < RECORD_HEADER {
                let got = take_upto(&mut body, RECORD_HEADER - p.hdr_len);
                for (d, &s) in p.hdr.iter_mut().skip(p.hdr_len).zip(got) {
                    *d = s;
                }
                p.hdr_len += got.len();
                if p.hdr_len == RECORD_HEADER {
                    p.key_len = u16::from_le_bytes([p.hdr[0], p.hdr[1]]) as usize;
                    p.value_len = u64::from(u32::from_le_bytes([p.hdr[2], p.hdr[3], p.hdr[4], p.hdr[5]]));
                    if p.key_len == 0 {
                        return Err(corrupt("keyspace marker in the middle of a keyspace".into()).into());
                    }
                }
            }
            if p.hdr_len == RECORD_HEADER {
                p.key.extend_from_slice(take_upto(&mut body, p.key_len - p.key.len()));
                if let Some((s, pos)) = p.start.filter(|_| p.key.len() == p.key_len) {
                    p.start = None;
                    deferred = Some((s, pos, p.key.clone()));
                }
                let vpart = take_upto(&mut body, (p.value_len - p.value_seen) as usize);
                if self.materialize {
                    if p.value.capacity() == 0 {
                        p.value.reserve_exact((p.value_len as usize).min(64 << 20));
                    }
                    p.value.extend_from_slice(vpart);
                }
                p.value_seen += vpart.len() as u64;
            }
            let complete = p.hdr_len == RECORD_HEADER && p.key.len() == p.key_len && p.value_seen == p.value_len;
            if let Some(p) = self.partial.take_if(|_| complete) {
                let v = self.materialize.then_some(p.value.as_slice());
                let (base, name) = (self.index_base, &self.name);
                Self::emit(
                    &mut self.totals,
                    base,
                    name,
                    offset,
                    seq,
                    &p.key,
                    p.value_len,
                    v,
                    RecordAt::Spanned,
                    &mut f,
                )?;
                if self.keep_spanned {
                    self.spanned = Some((p.key, p.value));
                }
            }
        }
        if let Some((s, pos, key)) = deferred {
            self.check_start(s, pos, &key, offset)?;
        }
        while !body.is_empty() {
            let pos = raw.len() - body.len();
            started += 1;
            let Some((hdr, after)) = body.split_first_chunk::<RECORD_HEADER>() else {
                let mut hdr = [0u8; RECORD_HEADER];
                for (d, &s) in hdr.iter_mut().zip(body) {
                    *d = s;
                }
                self.partial = Some(Partial {
                    hdr,
                    hdr_len: body.len(),
                    key_len: 0,
                    value_len: 0,
                    key: Vec::new(),
                    value: Vec::new(),
                    value_seen: 0,
                    start: (started == 1).then_some((seq, pos)),
                });
                break;
            };
            let key_len = u16::from_le_bytes([hdr[0], hdr[1]]) as usize;
            let value_len = u32::from_le_bytes([hdr[2], hdr[3], hdr[4], hdr[5]]) as usize;
            if key_len == 0 {
                return Err(
                    corrupt(format!("keyspace marker at block offset {pos} in the middle of a keyspace")).into()
                );
            }
            if let Some((record, next)) = after.split_at_checked(key_len + value_len) {
                let (key, value) = record.split_at(key_len); // key_len <= record.len()
                if started == 1 {
                    self.check_start(seq, pos, key, offset)?;
                }
                let v = self.materialize.then_some(value);
                Self::emit(
                    &mut self.totals,
                    self.index_base,
                    &self.name,
                    offset,
                    seq,
                    key,
                    value_len as u64,
                    v,
                    RecordAt::Block(pos),
                    &mut f,
                )?;
                body = next;
            } else {
                let mut vpart = after;
                let key = take_upto(&mut vpart, key_len);
                let whole_key = key.len() == key_len;
                if started == 1 && whole_key {
                    self.check_start(seq, pos, key, offset)?;
                }
                let mut p = Partial {
                    hdr: *hdr,
                    hdr_len: RECORD_HEADER,
                    key_len,
                    value_len: value_len as u64,
                    key: key.to_vec(),
                    value: Vec::new(),
                    value_seen: vpart.len() as u64,
                    start: (started == 1 && !whole_key).then_some((seq, pos)),
                };
                if self.materialize {
                    p.value.reserve_exact(value_len.min(64 << 20).max(vpart.len()));
                    p.value.extend_from_slice(vpart);
                }
                self.partial = Some(p);
                body = &[];
            }
        }
        if started != h.record_count {
            return Err(
                corrupt(format!("{started} records begin in this block, header says {}", h.record_count)).into()
            );
        }
        match (h.continues(), self.partial.is_some()) {
            (true, false) => {
                return Err(corrupt("CONTINUES is set but the block ends at a record boundary".into()).into())
            }
            (false, true) => {
                return Err(corrupt("block ends in the middle of a record without CONTINUES".into()).into())
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends the keyspace; `offset` names where the next structure starts.
    pub fn finish(self, offset: u64) -> Result<Totals> {
        if self.next_seq == 0 || self.totals.block_count == 0 {
            return Err(FormatError::corrupt(
                "keyspace",
                offset,
                format!("keyspace '{}' has no blocks (every keyspace has at least one)", self.name),
            ));
        }
        if self.partial.is_some() {
            return Err(FormatError::corrupt(
                "keyspace",
                offset,
                format!("keyspace '{}' ends in the middle of a record", self.name),
            ));
        }
        if let Some((seq, _, part_offset)) = self.stream.as_ref().and_then(|st| st.expected.front()) {
            return Err(FormatError::corrupt(
                "key index part",
                *part_offset,
                format!(
                    "keyspace '{}': the entry for block {seq} names a record start the blocks do not hold",
                    self.name
                ),
            ));
        }
        Ok(self.totals)
    }
}

/// Splits off and returns the first `n` bytes of `*b`, or all of it if it is
/// shorter (never panics).
fn take_upto<'a>(b: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = b.split_at(n.min(b.len()));
    *b = tail;
    head
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::block::FLAG_CONTINUES;

    fn build(target: u32, recs: &[(Vec<u8>, Vec<u8>)]) -> Vec<RawBlock> {
        let mut out = Vec::new();
        let mut b = BlockBuilder::new(0, "ks", target);
        let mut emit = |r: RawBlock| -> Result<()> {
            out.push(r);
            Ok(())
        };
        for (k, v) in recs {
            b.push(k, v, &mut emit).unwrap();
        }
        b.finish(&mut emit).unwrap();
        out
    }

    fn header(r: &RawBlock) -> BlockHeader {
        BlockHeader {
            keyspace: r.keyspace,
            flags: if r.continues { FLAG_CONTINUES } else { 0 },
            sequence: r.sequence,
            record_count: r.record_count,
            raw_len: r.data.len() as u32,
            frame_len: 100,
            raw_crc32: 0,
            frame_crc32: 0,
        }
    }

    /// Records (key, value if materialized) and totals.
    type Decoded = (Vec<(Vec<u8>, Option<Vec<u8>>)>, Totals);

    fn decode(blocks: &[RawBlock], materialize: bool) -> Result<Decoded> {
        let mut d = KeyspaceDecoder::new(0, "ks", materialize);
        let mut got = Vec::new();
        for b in blocks {
            d.feed(&header(b), &b.data, 0, |k, v| -> Result<()> {
                got.push((k.to_vec(), v.map(<[u8]>::to_vec)));
                Ok(())
            })?;
        }
        Ok((got, d.finish(0)?))
    }

    #[test]
    fn small_and_spanning_records_round_trip() {
        let recs: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"a".to_vec(), vec![]),
            (b"b".to_vec(), vec![7u8; 5000]),
            (b"c".to_vec(), vec![1u8; 20_000]),
            (vec![b'd'; 65_535], vec![2u8; 3]),
            (b"e".to_vec(), vec![3u8; 4096 - 7]),
            (b"f".to_vec(), vec![4u8; 10]),
        ];
        let blocks = build(4096, &recs);
        assert!(blocks.iter().all(|b| b.data.len() <= 4096));
        assert!(blocks.iter().any(|b| b.continues));
        assert!(!blocks.last().unwrap().continues);
        let (got, t) = decode(&blocks, true).unwrap();
        assert_eq!(got.len(), recs.len());
        for ((k, v), (gk, gv)) in recs.iter().zip(&got) {
            assert_eq!(k, gk);
            assert_eq!(Some(v), gv.as_ref());
        }
        assert_eq!(t.record_count, 6);
        assert_eq!(t.first_key, b"a");
        assert_eq!(t.value_bytes, recs.iter().map(|r| r.1.len() as u64).sum::<u64>());
        let (got2, t2) = decode(&blocks, false).unwrap();
        assert!(got2.iter().all(|(_, v)| v.is_none()));
        assert_eq!(t, t2);
    }

    #[test]
    fn empty_keyspace_is_one_marker_block() {
        let blocks = build(4096, &[]);
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].data, [0, 0, 2, 0, 0, 0, b'k', b's']);
        assert_eq!(decode(&blocks, true).unwrap().1.record_count, 0);
    }

    #[test]
    fn builder_rejects_bad_records() {
        let mut b = BlockBuilder::new(0, "ks", 4096);
        let mut sink = |_r: RawBlock| -> Result<()> { Ok(()) };
        assert!(b.push(b"", b"v", &mut sink).is_err());
        assert!(b.push(&vec![1u8; 65_536], b"v", &mut sink).is_err());
        b.push(b"m", b"v", &mut sink).unwrap();
        let e = b.push(b"m", b"v", &mut sink).unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
        let e = b.push(b"a", b"v", &mut sink).unwrap_err();
        assert!(e.to_string().contains("out of order"), "{e}");
        assert_eq!(b.records(), 1);
    }

    #[test]
    fn decoder_catches_disorder_across_blocks_and_bad_flags() {
        let blocks = build(4096, &[(b"a".to_vec(), vec![0; 4000]), (b"b".to_vec(), vec![0; 4000])]);
        assert_eq!(blocks.len(), 2);
        // Swap the keys' content so block 1 holds a key smaller than block 0's.
        let mut bad = blocks.clone();
        let p = bad[1].data.iter().position(|&c| c == b'b').unwrap();
        bad[1].data[p] = b'a';
        assert!(decode(&bad, false).unwrap_err().to_string().contains("duplicate"));
        let mut bad = blocks.clone();
        bad[0].continues = true;
        assert!(decode(&bad, false).is_err());
        let mut bad = blocks.clone();
        bad[1].record_count = 2;
        assert!(decode(&bad, false).is_err());
        assert!(decode(&blocks[..1], false).is_ok());
        assert!(decode(&blocks[1..], false).is_err());
    }
}
