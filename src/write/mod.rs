//! Sequential archive writing: header and keyspace table first, then blocks
//! in order, then index and trailer. Needs no seeking, so it writes to pipes.
//!
//! [`ArchiveWriter`] takes already-compressed blocks (the parallel export
//! pipeline feeds it). [`RecordWriter`] takes records one at a time, its
//! keyspaces in any order (spooling those that cannot be written yet, see
//! [`crate::write::spool`]); the C ABI and Python wrap it.

pub mod spool;

use crate::format::block::{BlockCompressor, BlockHeader};
use crate::format::header::Header;
use crate::format::index::{BlockEntry, Index, KeyspaceIndex};
use crate::format::key_index::{part_section, KeyEntry, KeyIndexBuilder, KeyIndexPart};
use crate::format::keyspace_table::{self, check_name, KeyspaceEntry};
use crate::format::limits::{MAX_BLOCK_RAW, MAX_KEYSPACES, MAX_SECTION, MIN_BLOCK_TARGET};
use crate::format::options::KeyspaceOptions;
use crate::format::record::{BlockBuilder, RawBlock};
use crate::format::section::{encode_section, tags, FLAG_REQUIRED};
use crate::format::trailer::{Trailer, TRAILER_LEN};
use crate::format::FormatError;
use crate::write::spool::{Spool, SpooledKeyspace};
use crate::{Error, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

/// A compressed block ready to be written, with the statistics of its records.
#[derive(Debug)]
pub struct EncodedBlock {
    /// Its block header (CRCs and lengths filled in).
    pub header: BlockHeader,
    /// The zstd data frame.
    pub frame: Vec<u8>,
    /// As [`RawBlock::key_bytes`].
    pub key_bytes: u64,
    /// As [`RawBlock::value_bytes`].
    pub value_bytes: u64,
    /// As [`RawBlock::first_key`].
    pub first_key: Option<Vec<u8>>,
    /// As [`RawBlock::first_offset`].
    pub first_offset: u32,
    /// As [`RawBlock::last_key`].
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
                first_offset: raw.first_offset,
                last_key: raw.last_key,
            },
            data,
        ))
    }
}

/// What a finished archive holds.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WriteSummary {
    /// Size of the archive, in bytes.
    pub archive_bytes: u64,
    /// Records.
    pub records: u64,
    /// Decompressed bytes of all blocks.
    pub raw_bytes: u64,
    /// Sum of key lengths.
    pub key_bytes: u64,
    /// Sum of value lengths.
    pub value_bytes: u64,
    /// Blocks.
    pub blocks: u64,
    /// Keyspaces.
    pub keyspaces: usize,
}

/// Validates a keyspace list for writing: names per §1.1, strictly ascending
/// (the rule of [`keyspace_table::check_entries`]).
pub(crate) fn check_keyspaces(ks: &[KeyspaceEntry]) -> Result<()> {
    keyspace_table::check_entries(ks).map_err(Error::InvalidArgument)
}

/// Writes an archive sequentially to any `Write`.
pub struct ArchiveWriter<W: Write> {
    out: W,
    offset: u64,
    names: Vec<String>,
    index: Index,
    /// Keyspace currently receiving blocks, and whether its last block continues.
    current: Option<(u32, bool)>,
    /// The key index being built (§8.2); `None` when writing none.
    keys: Option<KeyIndexBuilder>,
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
            keys: Some(KeyIndexBuilder::new()),
        };
        w.put(&encode_section(tags::HEADER, FLAG_REQUIRED, &header.encode()))?;
        let kstb = keyspace_table::encode(keyspaces);
        if kstb.len() as u64 + 20 > crate::format::limits::MAX_SECTION {
            return Err(Error::InvalidArgument("keyspace table exceeds the 256 MiB section limit".into()));
        }
        w.put(&encode_section(tags::KEYSPACES, FLAG_REQUIRED, &kstb))?;
        Ok(w)
    }

    /// With `false`, writes no key index (§8.1 `key_index_count` 0: readers
    /// then answer queries as for a format 1.0 archive, by scanning). Call
    /// before the first block.
    pub fn set_key_index(&mut self, on: bool) {
        self.keys = on.then(KeyIndexBuilder::new);
    }

    /// Cuts key index parts at `limit` bytes instead of the 256 MiB section
    /// limit, so tests can exercise keyspaces with several parts (§8.2).
    /// Archives written so do not follow §12's cut rule.
    #[doc(hidden)]
    pub fn set_key_index_part_limit(&mut self, limit: u64) {
        self.keys = Some(KeyIndexBuilder::with_limit(limit));
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
        // The key index (§8.2): a keyspace's last part right after its last
        // block, an earlier one right before the block whose entry did not fit.
        if h.sequence == 0 {
            self.write_key_index_part()?;
        }
        let entry = match (&b.first_key, h.record_count) {
            (Some(key), 1..) => KeyEntry { record_offset: b.first_offset, first_key: key.clone() },
            _ => KeyEntry::default(),
        };
        if let Some(part) = self.keys.as_mut().and_then(|keys| keys.add(k, h.sequence, entry)) {
            self.put_part(part)?;
        }
        if h.sequence == 0 {
            self.index
                .keyspaces
                .push(KeyspaceIndex { first_block: self.index.blocks.len() as u64, ..Default::default() });
        }
        let entry = BlockEntry::of(self.offset, h);
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

    /// Closes the open key index part, if any, and writes it.
    fn write_key_index_part(&mut self) -> Result<()> {
        match self.keys.as_mut().and_then(KeyIndexBuilder::close) {
            Some(part) => self.put_part(part),
            None => Ok(()),
        }
    }

    fn put_part(&mut self, part: KeyIndexPart) -> Result<()> {
        let sec = part_section(&part.encode());
        let offset = self.offset;
        self.put(&sec)?;
        if let Some(keys) = self.keys.as_mut() {
            keys.written(offset, sec.len() as u64, &part);
        }
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
        self.write_key_index_part()?;
        self.index.key_index = self.keys.as_ref().map_or_else(Vec::new, |k| k.refs().to_vec());
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
/// thread. This is the writer of the C ABI and Python (both wrap
/// [`RecordWriter::undeclared`]), and the one the `round_trip` fuzz target
/// drives.
///
/// Keyspaces may be begun in any order, each once; a keyspace's records are
/// put between its `begin_keyspace` and the next one (or [`finish`]), with
/// strictly ascending keys. Whatever the order they were written in, the
/// archive lists keyspaces in ascending name order and cuts blocks per §6,
/// so the same content always gives the same bytes (§12). A keyspace that
/// cannot go into the archive yet is compressed into the spool
/// ([`crate::write::spool`]: memory up to a limit, then an anonymous temporary file
/// that is gone when the writer is).
///
/// * [`RecordWriter::new`] declares the keyspace table up front and writes
///   header and table at once. A keyspace begun while every keyspace before
///   it in the table is complete streams straight into the archive, so
///   keyspaces written in table order are never spooled; one begun earlier
///   is spooled until those before it are complete. Keyspaces never begun
///   are written empty.
/// * [`RecordWriter::undeclared`] learns the keyspaces (and their options) as
///   they are begun. Every keyspace is spooled; [`finish`] writes the
///   archive.
///
/// Every §1.1 limit is checked before anything is written: a refused name,
/// key, value or order changes nothing, and the writer stays usable. An I/O
/// or compression error leaves it failed: later calls are refused with that
/// error. Dropping the writer (finished or not) removes its spool.
///
/// [`finish`]: RecordWriter::finish
pub struct RecordWriter<W: Write> {
    /// The archive, once header and table are written: at once when the
    /// table is declared, else in `finish`.
    archive: Option<ArchiveWriter<W>>,
    /// The sink and header until then (undeclared).
    deferred: Option<(W, Header)>,
    /// Declared: in table order. Undeclared: in the order begun.
    slots: Vec<Slot>,
    by_name: HashMap<String, usize>,
    /// Undeclared: the size the keyspace table section will have.
    table_bytes: u64,
    compressor: BlockCompressor,
    block_target: u32,
    spool: Spool,
    current: Option<Current>,
    /// Declared: the table position of the next keyspace the archive takes.
    next_out: usize,
    /// A reusable frame buffer.
    frame: Vec<u8>,
    /// Why the writer failed, once it has.
    failed: Option<String>,
}

struct Slot {
    entry: KeyspaceEntry,
    state: SlotState,
}

enum SlotState {
    NotBegun,
    /// Receiving records (the current keyspace).
    Open,
    /// Complete, in the spool.
    Spooled(SpooledKeyspace),
    /// Complete, in the archive.
    Written,
}

/// The keyspace receiving records.
struct Current {
    slot: usize,
    builder: BlockBuilder,
    /// Where its blocks go: the spool (`Some`) or straight into the archive.
    spooled: Option<SpooledKeyspace>,
}

/// The parts of a [`RecordWriter`] that blocks pass through on their way out.
struct Sink<'a, W: Write> {
    archive: &'a mut Option<ArchiveWriter<W>>,
    spool: &'a mut Spool,
    compressor: &'a mut BlockCompressor,
    frame: &'a mut Vec<u8>,
}

impl<W: Write> Sink<'_, W> {
    /// Compresses a block and writes it to the archive, or spools it into `to`.
    fn emit(&mut self, to: &mut Option<SpooledKeyspace>, raw: RawBlock) -> Result<()> {
        let (mut b, _) = EncodedBlock::compress_reusing(raw, self.compressor, std::mem::take(self.frame))?;
        let r = match (to, self.archive.as_mut()) {
            (Some(ks), _) => self.spool.push(ks, &mut b),
            (None, Some(a)) => a.write_block(&b),
            (None, None) => Err(Error::InvalidArgument("internal: a block to stream before the archive began".into())),
        };
        *self.frame = b.frame;
        r
    }
}

fn check_block_target(block_target: u32) -> Result<()> {
    if !(MIN_BLOCK_TARGET..=MAX_BLOCK_RAW).contains(&block_target) {
        return Err(Error::InvalidArgument(format!(
            "block size {block_target} outside {MIN_BLOCK_TARGET}..={MAX_BLOCK_RAW}"
        )));
    }
    Ok(())
}

/// Bytes a keyspace adds to the keyspace table body (§5).
fn table_entry_len(e: &KeyspaceEntry) -> u64 {
    2 + e.name.len() as u64 + 4 + e.options.encode().len() as u64
}

impl<W: Write> RecordWriter<W> {
    /// A writer whose keyspace table is declared up front (names strictly
    /// ascending, as the table lists them): header and table are written at
    /// once, and keyspaces begun in table order stream straight through.
    pub fn new(out: W, header: Header, keyspaces: Vec<KeyspaceEntry>) -> Result<Self> {
        let compressor = Self::compressor(&header)?;
        let block_target = header.block_target;
        let archive = ArchiveWriter::new(out, header, &keyspaces)?;
        let by_name = keyspaces.iter().enumerate().map(|(i, k)| (k.name.clone(), i)).collect();
        let slots = keyspaces.into_iter().map(|entry| Slot { entry, state: SlotState::NotBegun }).collect();
        Ok(Self::build(Some(archive), None, slots, by_name, compressor, block_target))
    }

    /// A writer that learns its keyspaces as they are begun
    /// ([`RecordWriter::begin_keyspace_with`]), in any order. Every keyspace
    /// is spooled and nothing reaches `out` before [`RecordWriter::finish`].
    /// `header.keyspace_count` is set when the archive is written.
    pub fn undeclared(out: W, header: Header) -> Result<Self> {
        let compressor = Self::compressor(&header)?;
        let block_target = header.block_target;
        Ok(Self::build(None, Some((out, header)), Vec::new(), HashMap::new(), compressor, block_target))
    }

    /// Checks the settings in `header` (block size, zstd level) as the
    /// constructors do, for a caller that wants to refuse them before it
    /// creates the sink.
    pub fn check_header(header: &Header) -> Result<()> {
        Self::compressor(header).map(drop)
    }

    fn compressor(header: &Header) -> Result<BlockCompressor> {
        check_block_target(header.block_target)?;
        BlockCompressor::new(header.level)
            .map_err(|e| Error::InvalidArgument(format!("zstd level {}: {e}", header.level)))
    }

    fn build(
        archive: Option<ArchiveWriter<W>>,
        deferred: Option<(W, Header)>,
        slots: Vec<Slot>,
        by_name: HashMap<String, usize>,
        compressor: BlockCompressor,
        block_target: u32,
    ) -> Self {
        RecordWriter {
            archive,
            deferred,
            slots,
            by_name,
            table_bytes: 4,
            compressor,
            block_target,
            spool: Spool::new(),
            current: None,
            next_out: 0,
            frame: Vec::new(),
            failed: None,
        }
    }

    /// Creates the spool's temporary file (if one is needed) in `dir`
    /// instead of `std::env::temp_dir()`. The file is anonymous: it never
    /// appears in `dir`.
    pub fn spool_in(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool.set_dir(dir.into());
        self
    }

    /// Keeps at most `bytes` of spooled (compressed) blocks in memory before
    /// moving the spool to a temporary file; 0 spools to the file from the
    /// first block. Default: [`crate::write::spool::DEFAULT_MEMORY_LIMIT`].
    pub fn spool_memory_limit(mut self, bytes: usize) -> Self {
        self.spool.set_memory_limit(bytes);
        self
    }

    /// Whether the keyspace `name` was begun already (it cannot be again).
    pub fn is_begun(&self, name: &str) -> bool {
        self.by_name.get(name).is_some_and(|&i| !matches!(self.slots[i].state, SlotState::NotBegun))
    }

    /// Whether a keyspace is receiving records (`put` is allowed).
    pub fn in_keyspace(&self) -> bool {
        self.current.is_some()
    }

    /// Whether the spool has moved to a temporary file.
    pub fn spooled_to_file(&self) -> bool {
        self.spool.on_file()
    }

    fn usable(&self) -> Result<()> {
        match &self.failed {
            None => Ok(()),
            Some(m) => Err(Error::InvalidArgument(format!("the writer failed earlier and can only be dropped: {m}"))),
        }
    }

    /// Notes a failure that leaves the writer unusable.
    fn poison<T>(&mut self, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            self.failed = Some(e.to_string());
        }
        r
    }

    fn sink(&mut self) -> Sink<'_, W> {
        Sink {
            archive: &mut self.archive,
            spool: &mut self.spool,
            compressor: &mut self.compressor,
            frame: &mut self.frame,
        }
    }

    /// Begins the keyspace `name` and ends the one before it. Declared: with
    /// its declared options. Undeclared: with the engine's default options.
    pub fn begin_keyspace(&mut self, name: &str) -> Result<()> {
        let options = match self.by_name.get(name) {
            Some(&i) if self.archive.is_some() => self.slots[i].entry.options.clone(),
            _ => KeyspaceOptions::default(),
        };
        self.begin_keyspace_with(name, options)
    }

    /// Begins the keyspace `name` with `options` and ends the one before it.
    /// Refused (changing nothing) if the name breaks §1.1, was begun
    /// already, or — declared — is not in the table or has other options.
    pub fn begin_keyspace_with(&mut self, name: &str, options: KeyspaceOptions) -> Result<()> {
        self.usable()?;
        let declared = self.deferred.is_none();
        let slot = match self.by_name.get(name) {
            Some(&i) if !matches!(self.slots[i].state, SlotState::NotBegun) => {
                return Err(Error::InvalidArgument(format!(
                    "keyspace '{name}' was already begun; each keyspace is written in one go \
                     (all its records between its begin_keyspace and the next)"
                )));
            }
            Some(&i) => {
                if self.slots[i].entry.options != options {
                    return Err(Error::InvalidArgument(format!(
                        "keyspace '{name}' was declared with other options when the writer was created"
                    )));
                }
                i
            }
            None if declared => {
                return Err(Error::InvalidArgument(format!(
                    "keyspace '{name}' was not declared when the writer was created"
                )));
            }
            None => {
                check_name(name.as_bytes()).map_err(|m| Error::InvalidArgument(format!("keyspace '{name}': {m}")))?;
                if self.slots.len() as u64 >= u64::from(MAX_KEYSPACES) {
                    return Err(Error::InvalidArgument(format!(
                        "an archive holds at most {MAX_KEYSPACES} keyspaces; '{name}' would be one more"
                    )));
                }
                let entry = KeyspaceEntry { name: name.to_owned(), options };
                let table_bytes = self.table_bytes + table_entry_len(&entry);
                if table_bytes + 20 > MAX_SECTION {
                    return Err(Error::InvalidArgument(format!(
                        "keyspace '{name}' would grow the keyspace table past the 256 MiB section limit"
                    )));
                }
                self.table_bytes = table_bytes;
                self.slots.push(Slot { entry, state: SlotState::NotBegun });
                self.by_name.insert(name.to_owned(), self.slots.len() - 1);
                self.slots.len() - 1
            }
        };
        let r = self.end_keyspace();
        self.poison(r)?;
        // Straight into the archive when every keyspace before it is in.
        let spooled = (!declared || slot != self.next_out).then(SpooledKeyspace::default);
        self.slots[slot].state = SlotState::Open;
        let builder = BlockBuilder::new(slot as u32, name, self.block_target);
        self.current = Some(Current { slot, builder, spooled });
        Ok(())
    }

    /// Adds a record to the current keyspace. A key or value that breaks
    /// §1.1 or the order is refused with nothing written, naming the
    /// keyspace and the record's index in it.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.usable()?;
        let mut sink = Sink {
            archive: &mut self.archive,
            spool: &mut self.spool,
            compressor: &mut self.compressor,
            frame: &mut self.frame,
        };
        let Some(cur) = self.current.as_mut() else {
            return Err(Error::InvalidArgument("put before begin_keyspace(): begin a keyspace first".into()));
        };
        let mut emit_failed = false;
        let r = cur.builder.push(key, value, &mut |raw| {
            let r = sink.emit(&mut cur.spooled, raw);
            emit_failed |= r.is_err();
            r
        });
        if emit_failed {
            return self.poison(r);
        }
        r
    }

    /// Completes the current keyspace, if any; then (declared) moves every
    /// spooled keyspace whose turn it now is into the archive.
    fn end_keyspace(&mut self) -> Result<()> {
        let Some(Current { slot, builder, mut spooled }) = self.current.take() else { return Ok(()) };
        let mut sink = self.sink();
        builder.finish(&mut |raw| sink.emit(&mut spooled, raw))?;
        match spooled {
            Some(ks) => self.slots[slot].state = SlotState::Spooled(ks),
            None => {
                self.slots[slot].state = SlotState::Written;
                self.next_out = slot + 1;
                self.drain()?;
            }
        }
        Ok(())
    }

    /// Declared: moves spooled keyspaces into the archive while they are next.
    fn drain(&mut self) -> Result<()> {
        while let Some(s) = self.slots.get_mut(self.next_out) {
            let ks = match std::mem::replace(&mut s.state, SlotState::Written) {
                SlotState::Spooled(ks) => ks,
                other => {
                    s.state = other;
                    break;
                }
            };
            self.replay(self.next_out, ks)?;
            self.next_out += 1;
        }
        Ok(())
    }

    /// Copies a spooled keyspace into the archive as table position `pos`.
    fn replay(&mut self, pos: usize, ks: SpooledKeyspace) -> Result<()> {
        let Some(a) = self.archive.as_mut() else {
            return Err(Error::InvalidArgument("internal: replaying a keyspace before the archive began".into()));
        };
        self.spool.replay(ks, pos as u32, &mut self.frame, |b| a.write_block(b))
    }

    /// Ends the last keyspace, writes every keyspace not in the archive yet
    /// (those never begun empty), then index and trailer; flushes and returns
    /// the sink.
    pub fn finish(mut self) -> Result<(W, WriteSummary)> {
        self.usable()?;
        self.end_keyspace()?;
        if let Some((out, header)) = self.deferred.take() {
            // Undeclared: the table is known now.
            let mut order: Vec<usize> = (0..self.slots.len()).collect();
            order.sort_by(|&a, &b| self.slots[a].entry.name.as_bytes().cmp(self.slots[b].entry.name.as_bytes()));
            let entries: Vec<KeyspaceEntry> = order.iter().map(|&i| self.slots[i].entry.clone()).collect();
            self.archive = Some(ArchiveWriter::new(out, header, &entries)?);
            let mut slots = std::mem::take(&mut self.slots);
            for (pos, &i) in order.iter().enumerate() {
                match std::mem::replace(&mut slots[i].state, SlotState::Written) {
                    SlotState::Spooled(ks) => self.replay(pos, ks)?,
                    _ => return Err(Error::InvalidArgument("internal: a begun keyspace was not spooled".into())),
                }
            }
        } else {
            for pos in self.next_out..self.slots.len() {
                match std::mem::replace(&mut self.slots[pos].state, SlotState::Written) {
                    SlotState::NotBegun => {
                        let b = BlockBuilder::new(pos as u32, &self.slots[pos].entry.name, self.block_target);
                        let mut sink = self.sink();
                        b.finish(&mut |raw| sink.emit(&mut None, raw))?;
                    }
                    SlotState::Spooled(ks) => self.replay(pos, ks)?,
                    SlotState::Open | SlotState::Written => {
                        return Err(Error::InvalidArgument(format!(
                            "internal: keyspace #{pos} is not in the archive but was written"
                        )));
                    }
                }
            }
        }
        match self.archive.take() {
            Some(a) => a.finish(),
            None => Err(Error::InvalidArgument("internal: the archive was never begun".into())),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::limits::{MAX_KEY, MAX_VALUE};
    use crate::read::Archive;
    use std::path::Path;

    fn ks(name: &str) -> KeyspaceEntry {
        KeyspaceEntry { name: name.into(), options: KeyspaceOptions::default() }
    }

    fn header() -> Header {
        Header::new(1, 4096, 0)
    }

    type Records = Vec<(Vec<u8>, Vec<u8>)>;

    /// Records per keyspace, big enough for several blocks each.
    fn content() -> Vec<(&'static str, Records)> {
        let recs = |tag: u8| (0..40u32).map(|i| (format!("k{i:04}").into_bytes(), vec![tag; 300])).collect();
        vec![("a", recs(1)), ("b", Vec::new()), ("c", recs(2)), ("d", recs(3))]
    }

    fn write_in_order() -> Vec<u8> {
        let c = content();
        let mut w = RecordWriter::new(Vec::new(), header(), c.iter().map(|(n, _)| ks(n)).collect()).unwrap();
        for (n, recs) in &c {
            w.begin_keyspace(n).unwrap();
            for (k, v) in recs {
                w.put(k, v).unwrap();
            }
        }
        w.finish().unwrap().0
    }

    /// Open file descriptors of this process that refer to something in `dir`.
    fn fds_into(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|p| p.starts_with(dir))
            .count()
    }

    fn assert_no_spool_left(dir: &Path) {
        assert_eq!(std::fs::read_dir(dir).unwrap().count(), 0, "a spool file was left in {}", dir.display());
        if cfg!(target_os = "linux") {
            assert_eq!(fds_into(dir), 0, "the spool file in {} is still open", dir.display());
        }
    }

    /// A writer with the whole of `content()` put, keyspaces in reverse order.
    fn reversed<W: Write>(mut w: RecordWriter<W>) -> RecordWriter<W> {
        for (n, recs) in content().iter().rev() {
            w.begin_keyspace(n).unwrap();
            for (k, v) in recs {
                w.put(k, v).unwrap();
            }
        }
        w
    }

    #[test]
    fn keyspaces_in_any_order_give_the_same_bytes() {
        let want = write_in_order();
        let c = content();
        let table: Vec<KeyspaceEntry> = c.iter().map(|(n, _)| ks(n)).collect();
        for limit in [0, DEFAULT_SPOOL_TEST_LIMIT] {
            let d = tempfile::tempdir().unwrap();
            let w = RecordWriter::new(Vec::new(), header(), table.clone()).unwrap();
            let w = reversed(w.spool_in(d.path()).spool_memory_limit(limit));
            assert_eq!(w.finish().unwrap().0, want, "declared, reverse order, spool limit {limit}");
            let w = RecordWriter::undeclared(Vec::new(), header()).unwrap();
            let w = reversed(w.spool_in(d.path()).spool_memory_limit(limit));
            assert_eq!(w.finish().unwrap().0, want, "undeclared, reverse order, spool limit {limit}");
            assert_no_spool_left(d.path());
        }
        // Declared, with an empty keyspace skipped and one out of order.
        let mut w = RecordWriter::new(Vec::new(), header(), table).unwrap().spool_memory_limit(0);
        for i in [0, 3, 2] {
            w.begin_keyspace(c[i].0).unwrap();
            for (k, v) in &c[i].1 {
                w.put(k, v).unwrap();
            }
        }
        assert_eq!(w.finish().unwrap().0, want);
        let a = Archive::from_bytes(&want[..], "mem").unwrap();
        assert_eq!(a.keyspaces().iter().map(|k| k.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    }

    const DEFAULT_SPOOL_TEST_LIMIT: usize = crate::write::spool::DEFAULT_MEMORY_LIMIT;

    #[test]
    fn keyspaces_in_table_order_are_never_spooled() {
        let d = tempfile::tempdir().unwrap();
        let c = content();
        let mut w = RecordWriter::new(Vec::new(), header(), c.iter().map(|(n, _)| ks(n)).collect())
            .unwrap()
            .spool_in(d.path())
            .spool_memory_limit(0);
        for (n, recs) in &c {
            w.begin_keyspace(n).unwrap();
            for (k, v) in recs {
                w.put(k, v).unwrap();
            }
            assert!(!w.spooled_to_file(), "keyspace '{n}', begun in table order, was spooled");
        }
        assert_eq!(w.finish().unwrap().0, write_in_order());
    }

    #[test]
    fn the_spool_file_is_anonymous_and_gone_after_success_error_and_drop() {
        let d = tempfile::tempdir().unwrap();
        let spool = |out| {
            let mut w = RecordWriter::undeclared(out, header()).unwrap().spool_in(d.path()).spool_memory_limit(0);
            w.begin_keyspace("ks").unwrap();
            w.put(b"k", &[7; 5000]).unwrap();
            w.begin_keyspace("other").unwrap();
            assert!(w.spooled_to_file());
            // Never visible in the directory, but open while the writer lives
            // (so the checks below are looking at the right place).
            assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
            if cfg!(target_os = "linux") {
                assert_eq!(fds_into(d.path()), 1);
            }
            w
        };
        // Success.
        let (bytes, _) = spool(Out::Ok(Vec::new())).finish().unwrap();
        assert_no_spool_left(d.path());
        assert!(matches!(bytes, Out::Ok(ref b) if !b.is_empty()));
        // Error: the sink fails while the archive is written.
        let e = spool(Out::Broken).finish().unwrap_err();
        assert!(e.to_string().contains("writing archive at offset 0"), "{e}");
        assert_no_spool_left(d.path());
        // Drop without finish.
        drop(spool(Out::Ok(Vec::new())));
        assert_no_spool_left(d.path());
    }

    /// An output that works, or fails every write.
    #[derive(Debug)]
    enum Out {
        Ok(Vec<u8>),
        Broken,
    }

    impl Write for Out {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            match self {
                Out::Ok(v) => v.write(b),
                Out::Broken => Err(std::io::Error::other("disk on fire")),
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_spool_that_cannot_be_created_fails_the_writer_clearly() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("no-such-dir");
        let mut w = RecordWriter::undeclared(Vec::new(), header()).unwrap().spool_in(&missing).spool_memory_limit(0);
        w.begin_keyspace("ks").unwrap();
        w.put(b"k", b"").unwrap();
        // The first block is full: it goes to the spool, whose file cannot be created.
        let e = w.put(b"l", &[1; 5000]).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e:?}");
        assert!(e.to_string().contains(&format!("creating a temporary spool file in {}", missing.display())), "{e}");
        let again = w.put(b"m", b"").unwrap_err();
        assert!(again.to_string().contains("failed earlier"), "{again}");
        assert!(w.finish().unwrap_err().to_string().contains("failed earlier"));
    }

    #[test]
    fn refused_calls_change_nothing() {
        for declared in [true, false] {
            let c = content();
            let table: Vec<KeyspaceEntry> = c.iter().map(|(n, _)| ks(n)).collect();
            let mut w = if declared {
                RecordWriter::new(Vec::new(), header(), table).unwrap()
            } else {
                RecordWriter::undeclared(Vec::new(), header()).unwrap()
            };
            let msg = |r: Result<()>| match r {
                Err(Error::InvalidArgument(m)) => m,
                other => panic!("expected a refusal, got {other:?}"),
            };
            let m = msg(w.put(b"k", b"v"));
            assert!(m.contains("before begin_keyspace"), "{m}");
            let long = "n".repeat(256);
            if declared {
                assert!(msg(w.begin_keyspace("zz")).contains("'zz' was not declared"));
                let other = KeyspaceOptions { expect_point_read_hits: Some(true), ..KeyspaceOptions::default() };
                assert!(msg(w.begin_keyspace_with("a", other)).contains("other options"));
            } else {
                assert!(msg(w.begin_keyspace("")).contains("keyspace name is empty"));
                assert!(msg(w.begin_keyspace(&long)).contains("256 bytes, the limit is 255"));
            }
            for (i, (n, recs)) in c.iter().enumerate() {
                w.begin_keyspace(n).unwrap();
                for (j, (k, v)) in recs.iter().enumerate() {
                    w.put(k, v).unwrap();
                    if j != 2 {
                        continue;
                    }
                    let m = msg(w.put(&recs[1].0, b"x"));
                    assert!(m.contains(&format!("record #3 for keyspace '{n}'")) && m.contains("out of order"), "{m}");
                    let m = msg(w.put(k, b"x"));
                    assert!(m.contains(&format!("record #3 for keyspace '{n}'")) && m.contains("duplicate"), "{m}");
                    assert!(msg(w.put(b"", b"x")).contains("empty key"));
                    let m = msg(w.put(&vec![b'z'; MAX_KEY + 1], b"x"));
                    assert!(m.contains("key of 65536 bytes exceeds the limit of 65535"), "{m}");
                    #[cfg(target_pointer_width = "64")]
                    {
                        let m = msg(w.put(b"zz", &huge_value()));
                        assert!(m.contains(&format!("value of {} bytes exceeds", MAX_VALUE + 1)), "{m}");
                    }
                }
                if i > 0 {
                    let m = msg(w.begin_keyspace(c[i - 1].0));
                    assert!(m.contains(&format!("keyspace '{}' was already begun", c[i - 1].0)), "{m}");
                    assert!(w.is_begun(c[i - 1].0));
                }
            }
            assert_eq!(w.finish().unwrap().0, write_in_order(), "declared: {declared}");
        }
    }

    /// A value one byte over the §1.1 limit, as a sparse read-only mapping
    /// (the writer must refuse it by its length, without reading it).
    #[cfg(target_pointer_width = "64")]
    fn huge_value() -> memmap2::Mmap {
        let f = tempfile::tempfile().unwrap();
        f.set_len(MAX_VALUE + 1).unwrap();
        // SAFETY: the file is private to this test and never modified while mapped.
        unsafe { memmap2::Mmap::map(&f) }.unwrap()
    }

    #[test]
    fn too_many_keyspaces_and_bad_settings_are_refused_up_front() {
        assert!(RecordWriter::undeclared(Vec::new(), Header::new(1, 4095, 0)).is_err());
        assert!(RecordWriter::<Vec<u8>>::check_header(&Header::new(1, MAX_BLOCK_RAW + 1, 0)).is_err());
        let mut w = RecordWriter::undeclared(Vec::new(), header()).unwrap();
        for i in 0..MAX_KEYSPACES {
            w.begin_keyspace(&format!("{i:05}")).unwrap();
        }
        let e = w.begin_keyspace("more").unwrap_err().to_string();
        assert!(e.contains("at most 65536 keyspaces"), "{e}");
    }
}
