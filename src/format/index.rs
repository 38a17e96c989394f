//! §8 the index section (`INDX`), and the checks of the blocks and the
//! keyspace totals a reader found against it.

use super::block::BlockHeader;
use super::codec::{Dec, Put};
use super::record::Totals;
use super::section::{tags, Section};
use super::{FormatError, Result};

/// Size of one encoded block entry.
pub const BLOCK_ENTRY_LEN: usize = 24;

/// One block's index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockEntry {
    /// Absolute offset of the block's `BLKH` section.
    pub offset: u64,
    /// As in the block header.
    pub keyspace: u32,
    /// As in the block header.
    pub record_count: u32,
    /// As in the block header.
    pub raw_len: u32,
    /// As in the block header.
    pub frame_len: u32,
}

impl BlockEntry {
    /// The entry of the block whose `BLKH` section starts at `offset`: the
    /// header's fields, as writers record it and readers check it (§8).
    pub fn of(offset: u64, h: &BlockHeader) -> BlockEntry {
        BlockEntry {
            offset,
            keyspace: h.keyspace,
            record_count: h.record_count,
            raw_len: h.raw_len,
            frame_len: h.frame_len,
        }
    }
}

/// One keyspace's totals plus where its blocks are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyspaceIndex {
    /// The keyspace's totals, as the writer counted them.
    pub totals: Totals,
    /// Position in [`Index::blocks`] of the keyspace's first block.
    pub first_block: u64,
}

/// Compares the totals decoded from keyspace `k` (named `keyspace`) with the
/// index's, `want` (§8, §11 item 8); the error names every field that
/// differs. `offset` locates the error (the index, or where the reader is).
pub fn check_totals(got: &Totals, want: &Totals, keyspace: &str, k: usize, offset: u64) -> Result<()> {
    let mut diffs = Vec::new();
    macro_rules! cmp {
        ($f:ident) => {
            if got.$f != want.$f {
                diffs.push(format!("{} {:?} (index says {:?})", stringify!($f), got.$f, want.$f));
            }
        };
    }
    cmp!(record_count);
    cmp!(key_bytes);
    cmp!(value_bytes);
    cmp!(raw_bytes);
    cmp!(compressed_bytes);
    cmp!(block_count);
    if got.first_key != want.first_key {
        diffs.push("first_key differs from the index".into());
    }
    if got.last_key != want.last_key {
        diffs.push("last_key differs from the index".into());
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(FormatError::corrupt("index", offset, format!("keyspace #{k} '{keyspace}': {}", diffs.join("; "))))
    }
}

/// The whole index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Index {
    /// Per keyspace, in table order.
    pub keyspaces: Vec<KeyspaceIndex>,
    /// Per block, in file order.
    pub blocks: Vec<BlockEntry>,
    /// The key index directory (§8.1): its parts, in file order; empty when
    /// the archive has no key index (format 1.0).
    pub key_index: Vec<super::key_index::KeyIndexRef>,
}

impl Index {
    /// Encodes the section body.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(16 + self.keyspaces.len() * 64 + self.blocks.len() * BLOCK_ENTRY_LEN);
        b.put_u32(self.keyspaces.len() as u32);
        for k in &self.keyspaces {
            let t = &k.totals;
            b.put_u64(t.record_count);
            b.put_u64(t.key_bytes);
            b.put_u64(t.value_bytes);
            b.put_u64(t.raw_bytes);
            b.put_u64(t.compressed_bytes);
            b.put_u64(k.first_block);
            b.put_u32(t.block_count);
            b.put_bytes16(&t.first_key);
            b.put_bytes16(&t.last_key);
        }
        b.put_u64(self.blocks.len() as u64);
        for e in &self.blocks {
            b.put_u64(e.offset);
            b.put_u32(e.keyspace);
            b.put_u32(e.record_count);
            b.put_u32(e.raw_len);
            b.put_u32(e.frame_len);
        }
        super::key_index::encode_directory(&self.key_index, &mut b);
        b
    }

    /// Checks block `i` of the index against the block header `h` found at
    /// its offset (§8, §11 item 5): the entry holds the header's fields, and
    /// the header's `sequence` is the block's position in its keyspace's
    /// range of blocks (which [`Index::decode`] checked are contiguous and
    /// hold only that keyspace's blocks).
    pub fn check_block(&self, i: usize, h: &BlockHeader) -> Result<()> {
        let Some(e) = self.blocks.get(i) else {
            return Err(FormatError::corrupt(
                "index",
                0,
                format!("block #{i} is not listed (the index lists {})", self.blocks.len()),
            ));
        };
        let pos = e.offset;
        let want = BlockEntry::of(pos, h);
        if *e != want {
            return Err(FormatError::corrupt(
                "block",
                pos,
                format!("block #{i} header {want:?} disagrees with its index entry {e:?}"),
            ));
        }
        let first = self.keyspaces.get(h.keyspace as usize).map_or(i as u64, |k| k.first_block);
        let seq = i as u64 - first.min(i as u64);
        if u64::from(h.sequence) != seq {
            return Err(FormatError::corrupt(
                "block",
                pos,
                format!("block #{i} has sequence {}, expected {seq}", h.sequence),
            ));
        }
        Ok(())
    }

    /// Checks that the index, met at `offset` at the end of a stream, lists
    /// exactly the blocks the stream held (`seen`, in file order; §8).
    pub fn check_blocks_seen(&self, seen: &[BlockEntry], offset: u64) -> Result<()> {
        if self.blocks == seen {
            return Ok(());
        }
        let i = self.blocks.iter().zip(seen).position(|(a, b)| a != b).unwrap_or(self.blocks.len().min(seen.len()));
        Err(FormatError::corrupt(
            "index",
            offset,
            format!(
                "block entry #{i} disagrees with the blocks in the stream ({} listed, {} seen)",
                self.blocks.len(),
                seen.len()
            ),
        ))
    }

    /// Decodes and checks the index's internal consistency (§11 item 5).
    /// `data_start` and `data_end` bound where blocks may lie.
    pub fn decode(sec: &Section<'_>, keyspace_count: u32, data_start: u64, data_end: u64) -> Result<Index> {
        sec.expect_tag(tags::INDEX)?;
        let mut d = Dec::new(sec.body, sec.body_offset(), "index");
        let at = d.offset();
        let n = d.u32("keyspace_count")?;
        if n != keyspace_count {
            return Err(FormatError::corrupt(
                "index",
                at,
                format!("keyspace_count {n} does not match the header's {keyspace_count}"),
            ));
        }
        // Each keyspace entry takes at least 56 bytes: bound the allocation.
        if u64::from(n) * 56 > d.remaining() as u64 {
            return Err(FormatError::corrupt(
                "index",
                at,
                format!("{n} keyspace entries cannot fit in {} bytes", d.remaining()),
            ));
        }
        let mut keyspaces = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let record_count = d.u64("record_count")?;
            let key_bytes = d.u64("key_bytes")?;
            let value_bytes = d.u64("value_bytes")?;
            let raw_bytes = d.u64("raw_bytes")?;
            let compressed_bytes = d.u64("compressed_bytes")?;
            let first_block = d.u64("first_block")?;
            let block_count = d.u32("block_count")?;
            let first_key = d.bytes16("first_key")?.to_vec();
            let last_key = d.bytes16("last_key")?.to_vec();
            keyspaces.push(KeyspaceIndex {
                totals: Totals {
                    record_count,
                    key_bytes,
                    value_bytes,
                    raw_bytes,
                    compressed_bytes,
                    block_count,
                    first_key,
                    last_key,
                },
                first_block,
            });
        }
        let at = d.offset();
        let count = d.u64("block_count")?;
        let need = count.checked_mul(BLOCK_ENTRY_LEN as u64);
        if need.is_none_or(|need| need > d.remaining() as u64) {
            return Err(FormatError::corrupt(
                "index",
                at,
                format!("block_count {count} does not fit in the {} bytes left in the index", d.remaining()),
            ));
        }
        let mut blocks = Vec::with_capacity(count as usize);
        let mut min_next = data_start;
        for i in 0..count {
            let eat = d.offset();
            let e = BlockEntry {
                offset: d.u64("offset")?,
                keyspace: d.u32("keyspace")?,
                record_count: d.u32("record_count")?,
                raw_len: d.u32("raw_len")?,
                frame_len: d.u32("frame_len")?,
            };
            let end = e.offset.checked_add(super::block::BLOCK_HEADER_LEN as u64 + u64::from(e.frame_len));
            if e.offset < min_next || end.is_none_or(|end| end > data_end) {
                return Err(FormatError::corrupt(
                    "index",
                    eat,
                    format!("block #{i} at offset {} (frame {} bytes) overlaps another block or lies outside the data region {min_next}..{data_end}", e.offset, e.frame_len),
                ));
            }
            min_next = end.unwrap_or(data_end);
            blocks.push(e);
        }
        // Keyspace ranges: contiguous, in order, covering all blocks.
        let mut next = 0u64;
        for (k, ks) in keyspaces.iter().enumerate() {
            let t = &ks.totals;
            if ks.first_block != next || t.block_count == 0 {
                return Err(FormatError::corrupt("index", at, format!("keyspace #{k}: block range starts at {} with {} blocks, expected to start at {next} with at least one", ks.first_block, t.block_count)));
            }
            next += u64::from(t.block_count);
            let range = usize::try_from(ks.first_block).ok().zip(usize::try_from(next).ok());
            let Some(range) = range.and_then(|(first, end)| blocks.get(first..end)).filter(|_| next <= count) else {
                return Err(FormatError::corrupt(
                    "index",
                    at,
                    format!("keyspace #{k}: block range runs past the {count} blocks"),
                ));
            };
            if let Some(b) = range.iter().find(|b| b.keyspace != k as u32) {
                return Err(FormatError::corrupt(
                    "index",
                    at,
                    format!("keyspace #{k}: its range holds a block of keyspace #{}", b.keyspace),
                ));
            }
            let raw: u64 = range.iter().map(|b| u64::from(b.raw_len)).sum();
            let comp: u64 = range.iter().map(|b| u64::from(b.frame_len)).sum();
            let recs: u64 = range.iter().map(|b| u64::from(b.record_count)).sum();
            if raw != t.raw_bytes || comp != t.compressed_bytes || recs != t.record_count {
                return Err(FormatError::corrupt(
                    "index",
                    at,
                    format!("keyspace #{k}: totals disagree with its block entries"),
                ));
            }
            if (t.record_count == 0) != t.first_key.is_empty() || (t.record_count == 0) != t.last_key.is_empty() {
                return Err(FormatError::corrupt(
                    "index",
                    at,
                    format!("keyspace #{k}: first/last key inconsistent with record_count {}", t.record_count),
                ));
            }
        }
        if next != count {
            return Err(FormatError::corrupt("index", at, format!("keyspace ranges cover {next} of {count} blocks")));
        }
        let key_index = super::key_index::decode_directory(&mut d, &keyspaces, &blocks, data_start, data_end)?;
        Ok(Index { keyspaces, blocks, key_index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::section::{decode_section, encode_section, FLAG_REQUIRED};

    fn sample() -> Index {
        let blocks = vec![
            BlockEntry { offset: 100, keyspace: 0, record_count: 2, raw_len: 50, frame_len: 40 },
            BlockEntry { offset: 300, keyspace: 1, record_count: 0, raw_len: 9, frame_len: 20 },
        ];
        Index {
            keyspaces: vec![
                KeyspaceIndex {
                    totals: Totals {
                        record_count: 2,
                        key_bytes: 2,
                        value_bytes: 30,
                        raw_bytes: 50,
                        compressed_bytes: 40,
                        block_count: 1,
                        first_key: b"a".to_vec(),
                        last_key: b"b".to_vec(),
                    },
                    first_block: 0,
                },
                KeyspaceIndex {
                    totals: Totals { raw_bytes: 9, compressed_bytes: 20, block_count: 1, ..Default::default() },
                    first_block: 1,
                },
            ],
            blocks,
            key_index: vec![],
        }
    }

    fn dec(i: &Index, end: u64) -> Result<Index> {
        let s = encode_section(tags::INDEX, FLAG_REQUIRED, &i.encode());
        Index::decode(&decode_section(&s, 0).unwrap(), i.keyspaces.len() as u32, 100, end)
    }

    fn header_of(e: &BlockEntry, sequence: u32) -> BlockHeader {
        BlockHeader {
            keyspace: e.keyspace,
            flags: 0,
            sequence,
            record_count: e.record_count,
            raw_len: e.raw_len,
            frame_len: e.frame_len,
            raw_crc32: 7,
            frame_crc32: 9,
        }
    }

    #[test]
    fn blocks_and_totals_are_checked_against_the_index() {
        let i = sample();
        for (n, e) in i.blocks.iter().enumerate() {
            let h = header_of(e, 0);
            assert_eq!(BlockEntry::of(e.offset, &h), *e);
            i.check_block(n, &h).unwrap();
        }
        let h = header_of(&i.blocks[1], 1);
        let e = i.check_block(1, &h).unwrap_err().to_string();
        assert!(e.contains("block #1 has sequence 1, expected 0"), "{e}");
        let h = BlockHeader { raw_len: 51, ..header_of(&i.blocks[0], 0) };
        let e = i.check_block(0, &h).unwrap_err().to_string();
        assert!(e.contains("at offset 100") && e.contains("disagrees with its index entry"), "{e}");
        assert!(i.check_block(2, &h).is_err());
        i.check_blocks_seen(&i.blocks, 500).unwrap();
        let e = i.check_blocks_seen(&i.blocks[..1], 500).unwrap_err().to_string();
        assert!(e.contains("block entry #1 disagrees with the blocks in the stream (2 listed, 1 seen)"), "{e}");
        let want = &i.keyspaces[0].totals;
        check_totals(want, want, "ks", 0, 9).unwrap();
        let got = Totals { key_bytes: 3, last_key: b"c".to_vec(), ..want.clone() };
        let e = check_totals(&got, want, "ks", 0, 9).unwrap_err().to_string();
        assert!(e.contains("keyspace #0 'ks': key_bytes 3 (index says 2); last_key differs from the index"), "{e}");
    }

    #[test]
    fn round_trip() {
        let i = sample();
        assert_eq!(dec(&i, 1000).unwrap(), i);
    }

    #[test]
    fn hostile_indexes_are_rejected() {
        // Points outside the data region.
        assert!(dec(&sample(), 320).is_err());
        // Overlapping blocks.
        let mut i = sample();
        i.blocks[1].offset = 120;
        assert!(dec(&i, 1000).is_err());
        // A block count that would overflow a multiplication.
        let mut body = Index { keyspaces: vec![], blocks: vec![], key_index: vec![] }.encode();
        body.truncate(4);
        body.put_u64(u64::MAX / 2);
        let s = encode_section(tags::INDEX, FLAG_REQUIRED, &body);
        assert!(Index::decode(&decode_section(&s, 0).unwrap(), 0, 0, 10).is_err());
        // Totals that disagree with entries.
        let mut i = sample();
        i.keyspaces[0].totals.raw_bytes += 1;
        assert!(dec(&i, 1000).is_err());
        // Empty block range.
        let mut i = sample();
        i.keyspaces[1].totals.block_count = 0;
        assert!(dec(&i, 1000).is_err());
    }
}
