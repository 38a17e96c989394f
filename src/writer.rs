//! Sequential archive writing: header and keyspace table first, then blocks
//! in order, then index and trailer. Needs no seeking, so it writes to pipes.
//!
//! [`ArchiveWriter`] takes already-compressed blocks (the parallel export
//! pipeline feeds it); [`RecordWriter`] takes records one at a time (the C ABI
//! and Python writers).

use crate::format::block::{BlockCompressor, BlockHeader};
use crate::format::header::Header;
use crate::format::index::{BlockEntry, Index, KeyspaceIndex};
use crate::format::keyspace_table::{self, check_name, KeyspaceEntry};
use crate::format::limits::{MAX_BLOCK_RAW, MAX_KEYSPACES, MIN_BLOCK_TARGET};
use crate::format::record::{BlockBuilder, RawBlock};
use crate::format::section::{encode_section, tags, FLAG_REQUIRED};
use crate::format::trailer::{Trailer, TRAILER_LEN};
use crate::format::FormatError;
use crate::{Error, Result};
use std::io::Write;

/// A compressed block ready to be written, with the statistics of its records.
#[derive(Debug)]
pub struct EncodedBlock {
    pub header: BlockHeader,
    pub frame: Vec<u8>,
    pub key_bytes: u64,
    pub value_bytes: u64,
    pub first_key: Option<Vec<u8>>,
    pub last_key: Option<Vec<u8>>,
}

impl EncodedBlock {
    /// Compresses a raw block.
    pub fn compress(raw: RawBlock, c: &mut BlockCompressor) -> Result<EncodedBlock> {
        Self::compress_reusing(raw, c, Vec::new()).map(|(b, _)| b)
    }

    /// As [`EncodedBlock::compress`], writing the frame into `frame` (its
    /// allocation reused) and handing back the raw block's buffer for reuse.
    pub fn compress_reusing(
        mut raw: RawBlock,
        c: &mut BlockCompressor,
        mut frame: Vec<u8>,
    ) -> Result<(EncodedBlock, Vec<u8>)> {
        c.compress_into(&raw.data, &mut frame).map_err(|e| Error::io("zstd compression", e))?;
        let header =
            BlockHeader::describe(raw.keyspace, raw.sequence, raw.continues, raw.record_count, &raw.data, &frame);
        let data = std::mem::take(&mut raw.data);
        Ok((
            EncodedBlock {
                header,
                frame,
                key_bytes: raw.key_bytes,
                value_bytes: raw.value_bytes,
                first_key: raw.first_key,
                last_key: raw.last_key,
            },
            data,
        ))
    }
}

/// What a finished archive holds.
#[derive(Debug, Clone)]
pub struct WriteSummary {
    pub archive_bytes: u64,
    pub records: u64,
    pub raw_bytes: u64,
    pub key_bytes: u64,
    pub value_bytes: u64,
    pub blocks: u64,
    pub keyspaces: usize,
}

/// Validates a keyspace list for writing: names per §1.1, strictly ascending.
pub fn check_keyspaces(ks: &[KeyspaceEntry]) -> Result<()> {
    if ks.len() as u64 > u64::from(MAX_KEYSPACES) {
        return Err(Error::InvalidArgument(format!(
            "{} keyspaces exceed the format limit of {MAX_KEYSPACES}",
            ks.len()
        )));
    }
    for (i, k) in ks.iter().enumerate() {
        check_name(k.name.as_bytes()).map_err(|m| Error::InvalidArgument(format!("keyspace #{i}: {m}")))?;
        if i > 0 && ks[i - 1].name.as_bytes() >= k.name.as_bytes() {
            return Err(Error::InvalidArgument(format!(
                "keyspaces must be given in strictly ascending name order without duplicates ('{}' then '{}')",
                ks[i - 1].name,
                k.name
            )));
        }
    }
    Ok(())
}

/// Writes an archive sequentially to any `Write`.
pub struct ArchiveWriter<W: Write> {
    out: W,
    offset: u64,
    names: Vec<String>,
    index: Index,
    /// Keyspace currently receiving blocks, and whether its last block continues.
    current: Option<(u32, bool)>,
}

impl<W: Write> ArchiveWriter<W> {
    /// Writes the header and keyspace table. `header.keyspace_count` is set here.
    pub fn new(out: W, mut header: Header, keyspaces: &[KeyspaceEntry]) -> Result<Self> {
        check_keyspaces(keyspaces)?;
        if !(MIN_BLOCK_TARGET..=MAX_BLOCK_RAW).contains(&header.block_target) {
            return Err(Error::InvalidArgument(format!(
                "block size {} outside {MIN_BLOCK_TARGET}..={MAX_BLOCK_RAW}",
                header.block_target
            )));
        }
        header.keyspace_count = keyspaces.len() as u32;
        let mut w = ArchiveWriter {
            out,
            offset: 0,
            names: keyspaces.iter().map(|k| k.name.clone()).collect(),
            index: Index::default(),
            current: None,
        };
        w.put(&encode_section(tags::HEADER, FLAG_REQUIRED, &header.encode()))?;
        let kstb = keyspace_table::encode(keyspaces);
        if kstb.len() as u64 + 20 > crate::format::limits::MAX_SECTION {
            return Err(Error::InvalidArgument("keyspace table exceeds the 256 MiB section limit".into()));
        }
        w.put(&encode_section(tags::KEYSPACES, FLAG_REQUIRED, &kstb))?;
        Ok(w)
    }

    fn put(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b).map_err(|e| Error::io(format!("writing archive at offset {}", self.offset), e))?;
        self.offset += b.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Writes an extra section (a future or private extension, §10). Only
    /// valid before the first block or between keyspaces.
    #[doc(hidden)]
    pub fn write_extra_section(&mut self, tag: [u8; 4], flags: u32, body: &[u8]) -> Result<()> {
        if self.current.is_some_and(|(_, cont)| cont) {
            return Err(Error::InvalidArgument("cannot insert a section inside a record".into()));
        }
        self.put(&encode_section(tag, flags, body))
    }

    /// Writes one block. Blocks must come keyspace by keyspace in table order,
    /// each keyspace's in sequence order, every keyspace with at least one.
    pub fn write_block(&mut self, b: &EncodedBlock) -> Result<()> {
        let h = &b.header;
        let k = h.keyspace;
        let expect = match self.current {
            None => (0, 0),
            Some((cur, _)) if k == cur => (cur, self.index.keyspaces[cur as usize].totals.block_count),
            Some((cur, false)) => (cur + 1, 0),
            Some((cur, true)) => {
                return Err(Error::InvalidArgument(format!("keyspace #{cur} ended in the middle of a record")));
            }
        };
        if (k, h.sequence) != expect || k as usize >= self.names.len() {
            return Err(Error::InvalidArgument(format!(
                "block {} of keyspace #{k} out of order: expected block {} of keyspace #{}",
                h.sequence, expect.1, expect.0
            )));
        }
        if h.sequence == 0 {
            self.index
                .keyspaces
                .push(KeyspaceIndex { first_block: self.index.blocks.len() as u64, ..Default::default() });
        }
        let entry = BlockEntry {
            offset: self.offset,
            keyspace: k,
            record_count: h.record_count,
            raw_len: h.raw_len,
            frame_len: h.frame_len,
        };
        self.put(&encode_section(tags::BLOCK, FLAG_REQUIRED, &h.encode()))?;
        self.put(&b.frame)?;
        self.index.blocks.push(entry);
        let t = &mut self.index.keyspaces[k as usize].totals;
        t.record_count += u64::from(h.record_count);
        t.key_bytes += b.key_bytes;
        t.value_bytes += b.value_bytes;
        t.raw_bytes += u64::from(h.raw_len);
        t.compressed_bytes += u64::from(h.frame_len);
        t.block_count += 1;
        if let Some(f) = &b.first_key {
            if t.first_key.is_empty() {
                t.first_key = f.clone();
            }
        }
        if let Some(l) = &b.last_key {
            t.last_key = l.clone();
        }
        self.current = Some((k, h.continues()));
        Ok(())
    }

    /// Writes index and trailer, flushes, and returns the sink.
    pub fn finish(mut self) -> Result<(W, WriteSummary)> {
        let done = match self.current {
            None => 0,
            Some((_, true)) => {
                return Err(Error::InvalidArgument("last keyspace ended in the middle of a record".into()))
            }
            Some((k, false)) => k as usize + 1,
        };
        if done != self.names.len() {
            return Err(Error::InvalidArgument(format!("keyspace '{}' received no blocks", self.names[done])));
        }
        let body = self.index.encode();
        let index_offset = self.offset;
        let sec = encode_section(tags::INDEX, FLAG_REQUIRED, &body);
        if sec.len() as u64 > crate::format::limits::MAX_SECTION {
            return Err(Error::InvalidArgument(
                "index exceeds the 256 MiB section limit (too many blocks; raise the block size)".into(),
            ));
        }
        self.put(&sec)?;
        let trailer = Trailer {
            index_offset,
            index_size: sec.len() as u64,
            archive_size: self.offset + TRAILER_LEN as u64,
            block_count: self.index.blocks.len() as u64,
        };
        self.put(&trailer.encode())?;
        self.out.flush().map_err(|e| Error::io("flushing archive", e))?;
        let ks = &self.index.keyspaces;
        let summary = WriteSummary {
            archive_bytes: self.offset,
            records: ks.iter().map(|k| k.totals.record_count).sum(),
            raw_bytes: ks.iter().map(|k| k.totals.raw_bytes).sum(),
            key_bytes: ks.iter().map(|k| k.totals.key_bytes).sum(),
            value_bytes: ks.iter().map(|k| k.totals.value_bytes).sum(),
            blocks: self.index.blocks.len() as u64,
            keyspaces: ks.len(),
        };
        Ok((self.out, summary))
    }
}

/// Writes an archive record by record, compressing blocks on the calling
/// thread. Keyspaces are begun in ascending name order; keys within a keyspace
/// must be strictly ascending.
pub struct RecordWriter<W: Write> {
    inner: ArchiveWriter<W>,
    keyspaces: Vec<KeyspaceEntry>,
    compressor: BlockCompressor,
    block_target: u32,
    builder: Option<BlockBuilder>,
    next: usize,
}

impl<W: Write> RecordWriter<W> {
    /// Declares every keyspace up front (the table precedes the data).
    pub fn new(out: W, header: Header, keyspaces: Vec<KeyspaceEntry>) -> Result<Self> {
        let compressor = BlockCompressor::new(header.level)
            .map_err(|e| Error::InvalidArgument(format!("zstd level {}: {e}", header.level)))?;
        let block_target = header.block_target;
        let inner = ArchiveWriter::new(out, header, &keyspaces)?;
        Ok(RecordWriter { inner, keyspaces, compressor, block_target, builder: None, next: 0 })
    }

    fn emit(inner: &mut ArchiveWriter<W>, c: &mut BlockCompressor, raw: RawBlock) -> Result<()> {
        let b = EncodedBlock::compress(raw, c)?;
        inner.write_block(&b)
    }

    fn end_keyspace(&mut self) -> Result<()> {
        if let Some(b) = self.builder.take() {
            let (inner, c) = (&mut self.inner, &mut self.compressor);
            b.finish(&mut |r| Self::emit(inner, c, r))?;
        }
        Ok(())
    }

    /// Moves on to the keyspace named `name`; keyspaces skipped over are written empty.
    pub fn begin_keyspace(&mut self, name: &str) -> Result<()> {
        let pos = self.keyspaces.iter().position(|k| k.name == name).ok_or_else(|| {
            Error::InvalidArgument(format!("keyspace '{name}' was not declared when the writer was created"))
        })?;
        if pos < self.next {
            return Err(Error::InvalidArgument(format!(
                "keyspace '{name}' was already written; keyspaces go in ascending name order"
            )));
        }
        self.end_keyspace()?;
        while self.next < pos {
            self.start(self.next);
            self.end_keyspace()?;
        }
        self.start(pos);
        Ok(())
    }

    fn start(&mut self, i: usize) {
        self.builder = Some(BlockBuilder::new(i as u32, &self.keyspaces[i].name, self.block_target));
        self.next = i + 1;
    }

    /// Adds a record to the current keyspace.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let Some(b) = self.builder.as_mut() else {
            return Err(Error::InvalidArgument("put before begin_keyspace".into()));
        };
        let (inner, c) = (&mut self.inner, &mut self.compressor);
        b.push(key, value, &mut |r| Self::emit(inner, c, r))
    }

    /// Ends the last keyspace (and any never begun), writes index and trailer.
    pub fn finish(mut self) -> Result<(W, WriteSummary)> {
        self.end_keyspace()?;
        while self.next < self.keyspaces.len() {
            self.start(self.next);
            self.end_keyspace()?;
        }
        self.inner.finish()
    }
}

impl From<FormatError> for Error {
    fn from(source: FormatError) -> Self {
        match source {
            FormatError::InvalidRecord { .. } => Error::InvalidArgument(source.to_string()),
            source => Error::Archive { name: "archive".into(), source },
        }
    }
}
