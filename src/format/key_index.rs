//! §8.1 the key index directory (appended to `INDX`) and §8.2 the key index
//! parts (`KIDX`): encoding, decoding, the checks of §11 item 10, the
//! writer's cut into parts, and the lookup of the block a key can begin in.

use super::codec::{Dec, Put};
use super::index::{BlockEntry, KeyspaceIndex};
use super::limits::{MAX_KEY, MAX_SECTION};
use super::section::{encode_section, tags, Section, SECTION_OVERHEAD};
use super::{FormatError, Result};

/// Size of one encoded part reference (§8.1).
pub const KEY_INDEX_REF_LEN: usize = 28;
/// Bytes of a part's body before its entries (§8.2).
const PART_FIXED: usize = 12;
/// The smallest part section: framing plus the fixed body fields.
pub const MIN_PART_SIZE: u32 = (SECTION_OVERHEAD + PART_FIXED) as u32;

/// A reference to one key index part, from the `INDX` directory (§8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyIndexRef {
    /// Absolute offset of the part's `KIDX` section.
    pub offset: u64,
    /// Total size of that section.
    pub size: u32,
    /// Keyspace index.
    pub keyspace: u32,
    /// `sequence` of the first block the part describes.
    pub first_block: u32,
    /// Consecutive blocks it describes.
    pub block_count: u32,
}

/// One entry: where the first record that begins in a block starts, and its
/// key; `first_key` empty for a block in which no record begins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyEntry {
    /// Offset of that record's header in the block's raw bytes (0 when empty).
    pub record_offset: u32,
    /// That record's key (empty when no record begins in the block).
    pub first_key: Vec<u8>,
}

/// A decoded key index part (§8.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyIndexPart {
    /// Keyspace index.
    pub keyspace: u32,
    /// `sequence` of the block of `entries[0]`.
    pub first_block: u32,
    /// One entry per block.
    pub entries: Vec<KeyEntry>,
}

fn entry_len(e: &KeyEntry) -> usize {
    6 + e.first_key.len()
}

impl KeyIndexPart {
    /// The part's section body.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(PART_FIXED + self.entries.iter().map(entry_len).sum::<usize>());
        b.put_u32(self.keyspace);
        b.put_u32(self.first_block);
        b.put_u32(self.entries.len() as u32);
        for e in &self.entries {
            b.put_u32(e.record_offset);
            b.put_bytes16(&e.first_key);
        }
        b
    }

    /// The reference a part found at `sec` describes (for a streaming
    /// reader, which meets parts before the directory).
    pub fn decode_found(sec: &Section<'_>) -> Result<(KeyIndexRef, KeyIndexPart)> {
        let mut d = Dec::new(sec.body, sec.body_offset(), "key index part");
        let r = KeyIndexRef {
            offset: sec.offset,
            size: sec.total_len as u32,
            keyspace: d.u32("keyspace")?,
            first_block: d.u32("first_block")?,
            block_count: d.u32("entry_count")?,
        };
        Ok((r, Self::decode(sec, &r)?))
    }

    /// Decodes a `KIDX` section found where `r` says one stands, checking its
    /// fields against the reference (§11 item 10). Bytes after the entries
    /// (appended fields of a later minor version) are ignored.
    pub fn decode(sec: &Section<'_>, r: &KeyIndexRef) -> Result<KeyIndexPart> {
        sec.expect_tag(tags::KEY_INDEX)?;
        let mut d = Dec::new(sec.body, sec.body_offset(), "key index part");
        let at = d.offset();
        let keyspace = d.u32("keyspace")?;
        let first_block = d.u32("first_block")?;
        let n = d.u32("entry_count")?;
        if (keyspace, first_block, n) != (r.keyspace, r.first_block, r.block_count) {
            return Err(FormatError::corrupt(
                "key index part",
                at,
                format!(
                    "describes keyspace #{keyspace} blocks {first_block}+{n}; the index's directory says keyspace #{} blocks {}+{}",
                    r.keyspace, r.first_block, r.block_count
                ),
            ));
        }
        // Each entry takes at least 6 bytes: bound the allocation.
        if u64::from(n) * 6 > d.remaining() as u64 {
            return Err(FormatError::corrupt(
                "key index part",
                at,
                format!("{n} entries cannot fit in {} bytes", d.remaining()),
            ));
        }
        let mut entries = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let record_offset = d.u32("record_offset")?;
            let first_key = d.bytes16("first_key")?.to_vec();
            entries.push(KeyEntry { record_offset, first_key });
        }
        Ok(KeyIndexPart { keyspace, first_block, entries })
    }
}

/// Encodes the directory appended to the `INDX` body (§8.1).
pub fn encode_directory(refs: &[KeyIndexRef], out: &mut Vec<u8>) {
    out.put_u64(refs.len() as u64);
    for r in refs {
        out.put_u64(r.offset);
        out.put_u32(r.size);
        out.put_u32(r.keyspace);
        out.put_u32(r.first_block);
        out.put_u32(r.block_count);
        out.put_u32(0);
    }
}

/// Decodes and checks the directory from the rest of the `INDX` body (`d`
/// positioned after `blocks`), §8.1: nothing left means no key index.
pub fn decode_directory(
    d: &mut Dec<'_>,
    keyspaces: &[KeyspaceIndex],
    blocks: &[BlockEntry],
    data_start: u64,
    data_end: u64,
) -> Result<Vec<KeyIndexRef>> {
    if d.remaining() == 0 {
        return Ok(Vec::new());
    }
    let at = d.offset();
    let n = d.u64("key_index_count")?;
    if n.checked_mul(KEY_INDEX_REF_LEN as u64).is_none_or(|need| need > d.remaining() as u64) {
        return Err(FormatError::corrupt(
            "index",
            at,
            format!("key_index_count {n} does not fit in the {} bytes left in the index", d.remaining()),
        ));
    }
    let mut refs = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let r = KeyIndexRef {
            offset: d.u64("offset")?,
            size: d.u32("size")?,
            keyspace: d.u32("keyspace")?,
            first_block: d.u32("first_block")?,
            block_count: d.u32("block_count")?,
        };
        d.u32("reserved")?;
        refs.push(r);
    }
    if n == 0 {
        return Ok(refs);
    }
    let bad = |i: usize, detail: String| FormatError::corrupt("index", at, format!("key index part #{i}: {detail}"));
    // Coverage: per keyspace in table order, consecutive parts from block 0.
    let mut parts = refs.iter().enumerate();
    let mut min_offset = data_start;
    for (k, ks) in keyspaces.iter().enumerate() {
        let mut next = 0u32;
        while next < ks.totals.block_count {
            let Some((i, r)) = parts.next() else {
                return Err(bad(refs.len(), format!("missing: keyspace #{k}'s blocks from {next} have no part")));
            };
            if r.keyspace != k as u32 || r.first_block != next || r.block_count == 0 {
                return Err(bad(
                    i,
                    format!(
                        "describes keyspace #{} blocks {}+{}; expected keyspace #{k} from block {next}",
                        r.keyspace, r.first_block, r.block_count
                    ),
                ));
            }
            next = next
                .checked_add(r.block_count)
                .filter(|&e| e <= ks.totals.block_count)
                .ok_or_else(|| bad(i, format!("runs past keyspace #{k}'s {} blocks", ks.totals.block_count)))?;
            // Placement: inside the data region, in file order, after the
            // data frame of the last block it describes.
            let last = usize::try_from(ks.first_block + u64::from(next) - 1).ok().and_then(|b| blocks.get(b));
            let after =
                last.map_or(data_start, |e| e.offset + super::block::BLOCK_HEADER_LEN as u64 + u64::from(e.frame_len));
            let end = r.offset.checked_add(u64::from(r.size));
            if r.offset < min_offset.max(after)
                || end.is_none_or(|e| e > data_end)
                || r.size < MIN_PART_SIZE
                || u64::from(r.size) > MAX_SECTION
            {
                return Err(bad(
                    i,
                    format!(
                        "at offset {} ({} bytes) is out of place: parts lie in the data region {data_start}..{data_end}, in file order, each after the last block it describes (here ending at {after}), with sizes of {MIN_PART_SIZE} bytes to 256 MiB",
                        r.offset, r.size
                    ),
                ));
            }
            min_offset = end.unwrap_or(data_end);
        }
    }
    if let Some((i, _)) = parts.next() {
        return Err(bad(i, "describes no block: every block is already described".into()));
    }
    Ok(refs)
}

/// The key index of one keyspace, assembled from its parts and checked
/// against the index (§11 item 10, structural rules), ready for lookups.
#[derive(Debug, Clone, Default)]
pub struct KeyspaceKeys {
    /// One entry per block of the keyspace, by `sequence`.
    entries: Vec<KeyEntry>,
    /// The blocks in which records begin: (sequence, records beginning in
    /// the keyspace's blocks before it), in sequence order.
    starts: Vec<(u32, u64)>,
    /// Offset of the keyspace's first part, for messages.
    offset: u64,
}

impl KeyspaceKeys {
    /// Assembles keyspace `k`'s parts (in directory order, each with its
    /// reference) and checks them against the index's block entries of the
    /// keyspace (`blocks`) and its totals (§11 item 10). `marker_len` is the
    /// length of the keyspace's marker (6 + name length).
    pub fn assemble(
        k: usize,
        parts: Vec<(KeyIndexRef, KeyIndexPart)>,
        ks: &KeyspaceIndex,
        blocks: &[BlockEntry],
        marker_len: usize,
    ) -> Result<KeyspaceKeys> {
        let offset = parts.first().map_or(0, |(r, _)| r.offset);
        let mut entries = Vec::with_capacity(blocks.len());
        let mut starts = Vec::new();
        let mut check = PartCheck::new(k, marker_len);
        let bounds = Some((ks.totals.first_key.as_slice(), ks.totals.last_key.as_slice()));
        for (r, part) in parts {
            let seq0 = entries.len();
            let Some(part_blocks) = blocks.get(seq0..seq0 + part.entries.len()) else {
                return Err(FormatError::corrupt(
                    "key index part",
                    r.offset,
                    format!("keyspace #{k}: entries past the keyspace's {} blocks", blocks.len()),
                ));
            };
            check.part(&r, &part, part_blocks, bounds)?;
            for (e, b) in part.entries.into_iter().zip(part_blocks) {
                if b.record_count > 0 {
                    starts.push((entries.len() as u32, check.records_before));
                }
                check.records_before += u64::from(b.record_count);
                entries.push(e);
            }
        }
        if entries.len() != blocks.len() {
            return Err(FormatError::corrupt(
                "key index part",
                offset,
                format!("keyspace #{k}: {} entries for {} blocks", entries.len(), blocks.len()),
            ));
        }
        Ok(KeyspaceKeys { entries, starts, offset })
    }

    /// The entry of block `sequence`.
    pub fn entry(&self, sequence: u32) -> Option<&KeyEntry> {
        self.entries.get(sequence as usize)
    }

    /// Offset of the keyspace's first part (for messages).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Where to decode to find `key` (§8.2 "finding a key"): the last block
    /// whose first key is ≤ `key`, as (sequence, records beginning before
    /// it, record_offset), or `None` when `key` is below the first key.
    pub fn locate(&self, key: &[u8]) -> Option<(u32, u64, u32)> {
        let n = self.starts.partition_point(|&(seq, _)| self.entry(seq).is_some_and(|e| e.first_key.as_slice() <= key));
        let &(seq, before) = self.starts.get(n.checked_sub(1)?)?;
        Some((seq, before, self.entry(seq)?.record_offset))
    }

    /// Where decoding of block `sequence` starts, as [`KeyspaceKeys::locate`]
    /// returns it, if a record begins in that block.
    pub fn start_of(&self, sequence: u32) -> Option<(u32, u64, u32)> {
        let n = self.starts.partition_point(|&(seq, _)| seq < sequence);
        let &(seq, before) = self.starts.get(n).filter(|(s, _)| *s == sequence)?;
        Some((seq, before, self.entry(seq)?.record_offset))
    }

    /// The sequence of the next block after `sequence` in which a record
    /// begins, if any.
    pub fn next_start(&self, sequence: u32) -> Option<u32> {
        let n = self.starts.partition_point(|&(seq, _)| seq <= sequence);
        self.starts.get(n).map(|&(s, _)| s)
    }

    /// Checks a record start found by decoding (§11 item 10, record rule):
    /// the first record beginning in block `sequence` starts at `pos` with
    /// `key`. `block_offset` locates the block for the message.
    pub fn check_start(&self, keyspace: &str, sequence: u32, pos: usize, key: &[u8], block_offset: u64) -> Result<()> {
        match self.entry(sequence) {
            Some(e) if e.record_offset as usize == pos && e.first_key == key => Ok(()),
            _ => Err(FormatError::corrupt(
                "key index part",
                self.offset,
                format!(
                    "keyspace '{keyspace}', block {sequence} (at offset {block_offset}): the key index entry does not match the block's first record (at block offset {pos}); the key index is corrupt (floe verify names every fault)"
                ),
            )),
        }
    }
}

/// The structural checks of §11 item 10 over one keyspace's parts, in order
/// (random-access readers through [`KeyspaceKeys::assemble`]; a streaming
/// reader part by part as it meets them, with the index's first and last key
/// checked once the index arrives).
#[derive(Debug)]
pub struct PartCheck {
    k: usize,
    marker_len: usize,
    prev: Option<Vec<u8>>,
    /// The keyspace's first non-empty first key met, if any.
    pub first: Option<Vec<u8>>,
    /// Records beginning in the blocks checked so far.
    pub records_before: u64,
}

impl PartCheck {
    /// Checks of keyspace `k`, whose marker is `marker_len` bytes long.
    pub fn new(k: usize, marker_len: usize) -> Self {
        PartCheck { k, marker_len, prev: None, first: None, records_before: 0 }
    }

    /// The last non-empty first key met, if any.
    pub fn last(&self) -> Option<&[u8]> {
        self.prev.as_deref()
    }

    /// Checks `part` (found as `r` says) against the index entries of the
    /// blocks it describes, in order after the parts checked before. With
    /// `bounds` (the keyspace's first and last key), the first keys must
    /// start at the first and stay within the last.
    pub fn part(
        &mut self,
        r: &KeyIndexRef,
        part: &KeyIndexPart,
        blocks: &[BlockEntry],
        bounds: Option<(&[u8], &[u8])>,
    ) -> Result<()> {
        let k = self.k;
        if part.entries.len() != blocks.len() {
            return Err(FormatError::corrupt(
                "key index part",
                r.offset,
                format!("keyspace #{k}: {} entries for {} blocks", part.entries.len(), blocks.len()),
            ));
        }
        for (j, (e, b)) in part.entries.iter().zip(blocks).enumerate() {
            let seq = u64::from(part.first_block) + j as u64;
            let bad = |detail: String| {
                FormatError::corrupt(
                    "key index part",
                    r.offset,
                    format!("keyspace #{k}, entry for block {seq}: {detail}"),
                )
            };
            if b.record_count == 0 {
                if !e.first_key.is_empty() || e.record_offset != 0 {
                    return Err(bad("no record begins in this block, but the entry names one".into()));
                }
                continue;
            }
            if e.first_key.is_empty() {
                return Err(bad(format!("{} records begin in the block, the entry is empty", b.record_count)));
            }
            if e.first_key.len() > MAX_KEY {
                return Err(bad(format!("first key of {} bytes exceeds the key limit", e.first_key.len())));
            }
            if e.record_offset >= b.raw_len || (seq == 0 && e.record_offset as usize != self.marker_len) {
                return Err(bad(format!(
                    "record_offset {} is impossible in a block of {} raw bytes",
                    e.record_offset, b.raw_len
                )));
            }
            let ordered = match (&self.prev, bounds) {
                (Some(p), _) => *p < e.first_key,
                (None, Some((first, _))) => e.first_key == first,
                (None, None) => true,
            };
            if !ordered || bounds.is_some_and(|(_, last)| e.first_key.as_slice() > last) {
                return Err(bad(
                    "first keys must ascend strictly, start at the keyspace's first key and stay within its last"
                        .into(),
                ));
            }
            if self.first.is_none() {
                self.first = Some(e.first_key.clone());
            }
            self.prev = Some(e.first_key.clone());
        }
        Ok(())
    }
}

/// Builds a writer's key index (§8.2, cut as §12 requires): entries are
/// added block by block; a part is closed when the next entry would push its
/// section past 256 MiB, and at the end of each keyspace.
#[derive(Debug, Default)]
pub struct KeyIndexBuilder {
    refs: Vec<KeyIndexRef>,
    open: Option<KeyIndexPart>,
    open_len: usize,
    /// The section size limit (256 MiB; smaller in tests).
    limit: u64,
}

impl KeyIndexBuilder {
    /// A builder cutting parts at the 256 MiB section limit.
    pub fn new() -> Self {
        Self::with_limit(MAX_SECTION)
    }

    /// A builder cutting parts at `limit` bytes per section (tests use a
    /// small one to exercise several parts).
    pub fn with_limit(limit: u64) -> Self {
        KeyIndexBuilder { limit, ..Default::default() }
    }

    /// Adds the entry of block `sequence` of keyspace `keyspace`. Returns a
    /// full part to write now (before this block), if the entry did not fit.
    pub fn add(&mut self, keyspace: u32, sequence: u32, entry: KeyEntry) -> Option<KeyIndexPart> {
        let len = entry_len(&entry);
        let full = self.open.as_ref().is_some_and(|p| {
            p.keyspace == keyspace && (SECTION_OVERHEAD + PART_FIXED + self.open_len + len) as u64 > self.limit
        });
        let out = if full { self.close() } else { None };
        let part =
            self.open.get_or_insert_with(|| KeyIndexPart { keyspace, first_block: sequence, entries: Vec::new() });
        part.entries.push(entry);
        self.open_len += len;
        out
    }

    /// Closes the open part (at a keyspace's end), returning it to write,
    /// if a part is open.
    pub fn close(&mut self) -> Option<KeyIndexPart> {
        self.open_len = 0;
        self.open.take()
    }

    /// Records that `part` (just closed) was written at `offset` as a
    /// section of `size` bytes; every closed part is recorded in turn.
    pub fn written(&mut self, offset: u64, size: u64, part: &KeyIndexPart) {
        self.refs.push(KeyIndexRef {
            offset,
            size: size as u32,
            keyspace: part.keyspace,
            first_block: part.first_block,
            block_count: part.entries.len() as u32,
        });
    }

    /// The directory of the parts written.
    pub fn refs(&self) -> &[KeyIndexRef] {
        &self.refs
    }
}

/// The complete `KIDX` section of a part body.
pub fn part_section(body: &[u8]) -> Vec<u8> {
    encode_section(tags::KEY_INDEX, 0, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ks(blocks: u32, first: &[u8], last: &[u8]) -> KeyspaceIndex {
        let mut k = KeyspaceIndex::default();
        k.totals.block_count = blocks;
        k.totals.record_count = 1;
        k.totals.first_key = first.to_vec();
        k.totals.last_key = last.to_vec();
        k
    }

    fn block(record_count: u32) -> BlockEntry {
        BlockEntry { offset: 0, keyspace: 0, record_count, raw_len: 100, frame_len: 10 }
    }

    fn e(off: u32, k: &[u8]) -> KeyEntry {
        KeyEntry { record_offset: off, first_key: k.to_vec() }
    }

    fn r() -> KeyIndexRef {
        KeyIndexRef { offset: 0, size: 0, keyspace: 0, first_block: 0, block_count: 4 }
    }

    #[test]
    fn lookups_pick_the_last_block_starting_at_or_below_the_key() {
        let blocks = [block(2), block(0), block(3), block(1)];
        let part =
            KeyIndexPart { keyspace: 0, first_block: 0, entries: vec![e(7, b"b"), e(0, b""), e(40, b"m"), e(3, b"t")] };
        let keys = KeyspaceKeys::assemble(0, vec![(r(), part)], &ks(4, b"b", b"z"), &blocks, 7).unwrap();
        assert_eq!(keys.locate(b"a"), None);
        assert_eq!(keys.locate(b"b"), Some((0, 0, 7)));
        assert_eq!(keys.locate(b"l"), Some((0, 0, 7)));
        assert_eq!(keys.locate(b"m"), Some((2, 2, 40)));
        assert_eq!(keys.locate(b"zz"), Some((3, 5, 3)));
        assert_eq!(keys.next_start(0), Some(2));
        assert_eq!(keys.next_start(3), None);
    }

    #[test]
    fn inconsistent_entries_are_refused() {
        let blocks = [block(2), block(0), block(3), block(1)];
        let good = vec![e(7, b"b"), e(0, b""), e(40, b"m"), e(3, b"t")];
        let cases: Vec<(usize, KeyEntry)> = vec![
            (1, e(0, b"c")),   // names a record in a block where none begins
            (2, e(0, b"")),    // empty where records begin
            (2, e(100, b"m")), // offset past the block
            (0, e(8, b"b")),   // block 0's first record follows the marker
            (0, e(7, b"a")),   // not the keyspace's first key
            (3, e(3, b"m")),   // not ascending
            (3, e(3, b"zz")),  // past the last key
        ];
        for (i, bad) in cases {
            let mut entries = good.clone();
            entries[i] = bad.clone();
            let part = KeyIndexPart { keyspace: 0, first_block: 0, entries };
            let r = KeyspaceKeys::assemble(0, vec![(r(), part)], &ks(4, b"b", b"z"), &blocks, 7);
            assert!(r.is_err(), "entry {i} = {bad:?} accepted");
        }
    }

    #[test]
    fn the_builder_cuts_parts_at_its_limit() {
        let mut b = KeyIndexBuilder::with_limit((SECTION_OVERHEAD + PART_FIXED + 2 * 7) as u64);
        assert!(b.add(0, 0, e(7, b"a")).is_none());
        assert!(b.add(0, 1, e(0, b"b")).is_none());
        let full = b.add(0, 2, e(0, b"c")).unwrap();
        assert_eq!((full.first_block, full.entries.len()), (0, 2));
        let last = b.close().unwrap();
        assert_eq!((last.first_block, last.entries.len()), (2, 1));
        assert!(b.close().is_none());
    }
}
