//! Reading archives: random access over a memory map or buffer ([`Archive`]),
//! and front-to-back over any `Read` ([`StreamReader`]). Both perform every
//! check of format-spec §11.

// Decoding code indexes untrusted bytes: out-of-range access must be an
// error naming the offset, never a panic (issue 11 item 9).
#![warn(clippy::indexing_slicing)]

pub mod cursor;
pub mod diff;
pub mod query;

use crate::error::ArchiveContext;
use crate::format::block::{check_frame, decode_frame, BlockHeader, BLOCK_HEADER_LEN};
use crate::format::frames::{read_data_item, read_section, DataItem, InMemory, ReadAt};
use crate::format::header::Header;
use crate::format::index::{BlockEntry, Index, KeyspaceIndex};
use crate::format::key_index::{KeyIndexPart, KeyIndexRef, KeyspaceKeys, PartCheck};
use crate::format::keyspace_table::{self, KeyspaceEntry};
use crate::format::limits::MAX_FRAME;
use crate::format::record::{BufferPool, KeyspaceDecoder, Totals};
use crate::format::section::decode_section;
use crate::format::trailer::{Trailer, TRAILER_LEN};
use crate::format::FormatError;
use crate::progress::{Phase, Progress, Tracker};
use crate::{Error, Result};
use rayon::prelude::*;
use std::io::Read;
use std::path::Path;

/// Blocks decompressed ahead of the consumer per keyspace, per thread.
const LOOKAHEAD_PER_THREAD: usize = 4;
/// ... but at most this many raw bytes ahead per keyspace (and at least two
/// blocks), whatever the thread count: a keyspace's decompression buffers
/// then never exceed `max(64 MiB + 1 block, 3 blocks)` ≤ 192 MiB, even for
/// an archive of tiny frames that each declare a 64 MiB block.
const LOOKAHEAD_BYTES: usize = 64 << 20;
/// A keyspace that may hold a record larger than this is never cut into
/// segments ([`Archive::segments`]): each segment could be reassembling such
/// a value at the same time, multiplying the memory it needs (README,
/// "Guarantees"). With segments of a keyspace limited to records of at most
/// 64 MiB, a larger value is held by one ingestion at a time.
pub const SEGMENT_MAX_RECORD: u64 = 64 << 20;

/// What verification established.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Size of the archive, in bytes.
    pub archive_bytes: u64,
    /// Keyspaces.
    pub keyspaces: usize,
    /// Blocks.
    pub blocks: u64,
    /// Records.
    pub records: u64,
    /// Decompressed bytes of all blocks.
    pub raw_bytes: u64,
    /// True when only checksums were checked (`--quick`).
    pub quick: bool,
}

/// The document `floe verify --json` prints, built only here: a
/// [`VerifyReport`] with the archive's name and the seconds taken. Python's
/// `VerifyReport` has exactly these fields (checked by the ffi crate's tests).
/// The fields are in name order, as the JSON lists them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VerifyJson<'a> {
    /// The archive's name (a path, `-` or a URL).
    pub archive: &'a str,
    /// As [`VerifyReport::archive_bytes`].
    pub archive_bytes: u64,
    /// As [`VerifyReport::blocks`].
    pub blocks: u64,
    /// As [`VerifyReport::keyspaces`].
    pub keyspaces: usize,
    /// Always true: a failed verification is an error, not a document.
    pub ok: bool,
    /// As [`VerifyReport::quick`].
    pub quick: bool,
    /// As [`VerifyReport::raw_bytes`].
    pub raw_bytes: u64,
    /// As [`VerifyReport::records`].
    pub records: u64,
    /// Seconds the verification took.
    pub seconds: f64,
}

impl VerifyReport {
    /// The `verify --json` document for this report on `archive`, which took `seconds`.
    pub fn to_json<'a>(&self, archive: &'a str, seconds: f64) -> VerifyJson<'a> {
        VerifyJson {
            archive,
            archive_bytes: self.archive_bytes,
            blocks: self.blocks,
            keyspaces: self.keyspaces,
            ok: true,
            quick: self.quick,
            raw_bytes: self.raw_bytes,
            records: self.records,
            seconds,
        }
    }
}

/// Compares decoded totals with the index's (§11 item 8, the rule of
/// [`crate::format::index::check_totals`]), naming the archive `name`.
pub(crate) fn check_totals(name: &str, ks: &str, k: usize, got: &Totals, want: &Totals, offset: u64) -> Result<()> {
    crate::format::index::check_totals(got, want, ks, k, offset).ctx(name)
}

/// Where a random-access archive's bytes come from: memory (a map, a `Vec`,
/// a slice: every `AsRef<[u8]>`), or a source read by ranges, such as an
/// object in an object store (`floe::store`). The same checks (§11) run on
/// both: a ranged source is read only where the checks need bytes.
pub trait Source: Sync {
    /// Archive size in bytes.
    fn size(&self) -> u64;
    /// The whole archive when it is in memory; `None` for a ranged source.
    fn in_memory(&self) -> Option<&[u8]> {
        None
    }
    /// Starts reading `len` bytes at `start` of a ranged source and returns
    /// without waiting; the returned [`Fetch`] waits. Called only when
    /// [`Source::in_memory`] is `None`, with ranges inside the archive.
    fn fetch(&self, start: u64, len: u64) -> Fetch;
}

impl<T: AsRef<[u8]> + Sync> Source for T {
    fn size(&self) -> u64 {
        self.as_ref().len() as u64
    }
    fn in_memory(&self) -> Option<&[u8]> {
        Some(self.as_ref())
    }
    fn fetch(&self, start: u64, len: u64) -> Fetch {
        // Not used by the reader for bytes in memory (it borrows them); a
        // range outside the bytes yields fewer bytes, which callers refuse.
        let b = self.as_ref();
        let from = (start as usize).min(b.len());
        let to = (start.saturating_add(len) as usize).min(b.len());
        let b = bytes::Bytes::copy_from_slice(b.get(from..to).unwrap_or_default());
        Fetch::new(move || Ok(b))
    }
}

/// A range read under way; [`Fetch::wait`] blocks until its bytes arrived.
pub struct Fetch(Box<dyn FnOnce() -> Result<bytes::Bytes> + Send>);

impl Fetch {
    /// A read whose bytes `wait` returns (blocking until they arrived).
    pub fn new(wait: impl FnOnce() -> Result<bytes::Bytes> + Send + 'static) -> Self {
        Fetch(Box::new(wait))
    }
    /// Blocks until the bytes arrived.
    pub fn wait(self) -> Result<bytes::Bytes> {
        (self.0)()
    }
}

/// Bytes read from a [`Source`]: borrowed from memory, or fetched.
pub enum Chunk<'a> {
    /// Borrowed from bytes in memory.
    Borrowed(&'a [u8]),
    /// Fetched by a ranged read.
    Fetched(bytes::Bytes),
}

impl std::ops::Deref for Chunk<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Chunk::Borrowed(b) => b,
            Chunk::Fetched(b) => b,
        }
    }
}

/// A block read started by `Archive::start_block`.
pub struct PendingBlock {
    i: usize,
    fetch: Option<Fetch>,
}

/// A block being decompressed ahead of its reader ([`Archive::decompress_ahead`]).
pub(crate) struct BlockAhead {
    /// The block (index order).
    pub(crate) i: usize,
    rx: std::sync::mpsc::Receiver<Result<(BlockHeader, Vec<u8>)>>,
}

impl BlockAhead {
    /// Waits for the block: its header and raw bytes.
    pub(crate) fn wait(self) -> Result<(BlockHeader, Vec<u8>)> {
        self.rx.recv().map_err(|_| Error::Internal("a block decompression task vanished".into()))?
    }
}

/// `NAME: keyspace 'KS'` for errors inside a keyspace's blocks.
fn keyspace_context(name: &str, keyspaces: &[KeyspaceEntry], k: u32) -> String {
    match keyspaces.get(k as usize) {
        Some(e) => format!("{name}: keyspace '{}'", crate::util::text::escape(&e.name)),
        None => name.to_owned(),
    }
}

/// A block's header and its data frame, checked against the index (§11 items
/// 2, 5, 6 except decompression).
struct FrameRef<'a> {
    header: BlockHeader,
    frame: Chunk<'a>,
    /// Absolute offset of the frame.
    offset: u64,
}

/// A random-access archive over a [`Source`]: bytes in memory (a memory map,
/// a `Vec`, a slice) or a ranged source such as an object-store object.
pub struct Archive<B: Source> {
    bytes: B,
    name: String,
    header: Header,
    keyspaces: Vec<KeyspaceEntry>,
    index: Index,
    trailer: Trailer,
    /// Every block header, checked at open, for archives in memory; empty for
    /// a ranged source, whose blocks are checked as they are fetched.
    block_headers: Vec<BlockHeader>,
    skipped_sections: Vec<(String, u64)>,
    /// Per keyspace, its key index (§8.2) once loaded and checked.
    keys: std::sync::Mutex<Vec<Option<std::sync::Arc<KeyspaceKeys>>>>,
    /// The bytes are a read-only file mapping whose pages may be handed back
    /// to the kernel once read (see [`Archive::release`]).
    release_pages: bool,
}

impl Archive<memmap2::Mmap> {
    /// Memory-maps and opens the archive at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        Archive::open_mapped(path, |m| m)
    }
}

impl<B: Source> Archive<B> {
    /// Opens an archive; `name` is used in error messages. Checks trailer,
    /// header, keyspace table and index; for an archive in memory also every
    /// block header (a ranged source's are checked as blocks are fetched).
    /// A ranged source is read only at the trailer, the index, the header and
    /// the keyspace table.
    pub fn from_bytes(bytes: B, name: &str) -> Result<Self> {
        Self::open_source(bytes, name)
    }

    /// Memory-maps the archive at `path` and opens it as `wrap(map)`.
    pub fn open_mapped(path: &Path, wrap: impl FnOnce(memmap2::Mmap) -> B) -> Result<Self> {
        let name = path.display().to_string();
        let f = std::fs::File::open(path).map_err(|e| Error::io(format!("opening archive {name}"), e))?;
        let meta = f.metadata().map_err(|e| Error::io(format!("stat {name}"), e))?;
        if meta.is_dir() {
            let hint = if path.join("version").is_file() { " (a fjall database?)" } else { "" };
            return Err(Error::InvalidArgument(format!(
                "{name} is a directory{hint}, not an archive; give the archive file (floe export DB -o FILE makes one)"
            )));
        }
        if !meta.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{name} is not a regular file (a device, FIFO or socket); to read a stream, use - and redirect it"
            )));
        }
        Self::map_file(&f, &name, wrap)
    }

    /// Memory-maps the open regular file `f` (e.g. standard input
    /// redirected from a file) and opens it as `wrap(map)`; `name` is used
    /// in messages.
    pub fn open_file(f: &std::fs::File, name: &str, wrap: impl FnOnce(memmap2::Mmap) -> B) -> Result<Self> {
        Self::map_file(f, name, wrap)
    }

    fn map_file(f: &std::fs::File, name: &str, wrap: impl FnOnce(memmap2::Mmap) -> B) -> Result<Self> {
        let name = name.to_owned();
        let len = f.metadata().map_err(|e| Error::io(format!("stat {name}"), e))?.len();
        if len < TRAILER_LEN as u64 {
            return Err(FormatError::Truncated {
                what: "archive (smaller than a trailer)".into(),
                offset: 0,
                need: TRAILER_LEN as u64,
                have: len,
            })
            .ctx(&name);
        }
        // SAFETY: the map is read-only. floe never writes archives in place; a
        // concurrent writer truncating the file would be an external misuse
        // (documented), and every read is bounds- and checksum-checked.
        let map = unsafe { memmap2::Mmap::map(f) }.map_err(|e| Error::io(format!("mapping {name}"), e))?;
        let mut a = Archive::from_bytes(wrap(map), &name)?;
        // Import and verify read every block once: give mapped pages back as
        // they are consumed, so resident memory stays bounded by the blocks in
        // flight rather than growing with the archive (the pages stay in the
        // page cache; touching them again just maps them again).
        a.release_pages = true;
        a.release(0, a.len());
        Ok(a)
    }

    fn open_source(bytes: B, name: &str) -> Result<Self> {
        let len = bytes.size();
        if len < TRAILER_LEN as u64 {
            return Err(FormatError::Truncated {
                what: "archive (smaller than a trailer)".into(),
                offset: 0,
                need: TRAILER_LEN as u64,
                have: len,
            })
            .ctx(name);
        }
        let src = &bytes;
        // The header first: a newer major version may lay out the rest
        // differently (format-spec §9 allows the checks in any order).
        let hsec = read_section(&mut SourceIn::new(src, name), 0)?;
        let header = Header::decode(&hsec.section()).ctx(name)?;
        let kstart = hsec.end();
        drop(hsec);
        let tail = read_at(src, name, len - TRAILER_LEN as u64, TRAILER_LEN as u64, "trailer")?;
        let trailer = Trailer::decode(&tail, len).ctx(name)?;
        drop(tail);
        let ksec = read_section(&mut SourceIn::new(src, name), kstart)?;
        let keyspaces = keyspace_table::decode(&ksec.section(), header.keyspace_count).ctx(name)?;
        let data_start = ksec.end();
        drop(ksec);
        let trailer_at = len - TRAILER_LEN as u64;
        trailer.check_index_location(trailer_at, data_start).ctx(name)?;
        let ibytes = read_at(src, name, trailer.index_offset, trailer.index_size, "index")?;
        let index = (|| {
            let isec = decode_section(&ibytes, trailer.index_offset)?;
            let index = Index::decode(&isec, header.keyspace_count, data_start, trailer.index_offset)?;
            trailer.check_index(trailer_at, trailer.index_offset, isec.total_len, index.blocks.len() as u64)?;
            Ok(index)
        })()
        .ctx(name)?;
        drop(ibytes);
        let (block_headers, skipped_sections) = match src.in_memory() {
            Some(buf) => walk(buf, data_start, &index, trailer.index_offset).ctx(name)?,
            None => {
                // The region before the first block holds only optional sections.
                let first = index.blocks.first().map_or(trailer.index_offset, |b| b.offset);
                check_gap(src, name, data_start, first, &index.key_index)?;
                (Vec::new(), Vec::new())
            }
        };
        Ok(Archive {
            bytes,
            name: name.to_owned(),
            header,
            index,
            trailer,
            keys: std::sync::Mutex::new(vec![None; keyspaces.len()]),
            keyspaces,
            block_headers,
            skipped_sections,
            release_pages: false,
        })
    }

    /// For a memory-mapped archive, unmaps the whole pages inside
    /// `start..start + len` from this process (`MADV_DONTNEED`); a no-op for
    /// archives held in ordinary memory. The bytes stay readable: the mapping
    /// is a read-only view of a file, so a later access maps the same,
    /// unchanged page-cache pages again.
    fn release(&self, start: u64, len: u64) {
        if !self.release_pages {
            return;
        }
        let Some(bytes) = self.bytes.in_memory() else { return };
        let page = page_size();
        let end = (start.saturating_add(len)).min(bytes.len() as u64) as usize;
        let base = bytes.as_ptr() as usize;
        let from = (base + start as usize).next_multiple_of(page);
        let to = (base + end) / page * page;
        if to > from {
            // SAFETY: `from..to` lies inside the live, page-aligned mapping
            // (mmap returns page-aligned memory). MADV_DONTNEED on a shared,
            // read-only file mapping discards only this process's page-table
            // entries; the contents, and any slice another thread holds into
            // them, read back identically from the page cache.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED);
            }
        }
    }

    /// The name the archive was opened under (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The header (§4).
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The keyspace table (§5), in table order.
    pub fn keyspaces(&self) -> &[KeyspaceEntry] {
        &self.keyspaces
    }
    /// What an error in block `h` is reported against: the archive and the keyspace's name.
    fn block_context(&self, h: &BlockHeader) -> String {
        keyspace_context(&self.name, &self.keyspaces, h.keyspace)
    }
    /// The index (§8).
    pub fn index(&self) -> &Index {
        &self.index
    }
    /// The trailer (§9).
    pub fn trailer(&self) -> &Trailer {
        &self.trailer
    }
    /// Unknown optional sections that were skipped: (tag, offset). Those
    /// between blocks are listed for archives in memory only.
    pub fn skipped_sections(&self) -> &[(String, u64)] {
        &self.skipped_sections
    }
    /// Archive size in bytes.
    pub fn len(&self) -> u64 {
        self.bytes.size()
    }
    /// Never true: an archive has at least a header and trailer.
    pub fn is_empty(&self) -> bool {
        false
    }
    /// Position of the keyspace named `name`.
    pub fn keyspace_position(&self, name: &str) -> Option<usize> {
        self.keyspaces.binary_search_by(|k| k.name.as_bytes().cmp(name.as_bytes())).ok()
    }

    /// Keyspace `k`: its table entry, its index entry and its blocks (a
    /// range of index positions), or an error if the archive has no keyspace
    /// `k`. (The index's decoder checked that every keyspace's block range
    /// lies within the index.)
    pub(crate) fn keyspace_parts(&self, k: usize) -> Result<(&KeyspaceEntry, &KeyspaceIndex, std::ops::Range<usize>)> {
        match (self.keyspaces.get(k), self.index.keyspaces.get(k)) {
            (Some(entry), Some(ki)) => {
                let first = ki.first_block as usize;
                Ok((entry, ki, first..first + ki.totals.block_count as usize))
            }
            _ => Err(Error::InvalidArgument(format!(
                "keyspace index {k} out of range: the archive {} has {} keyspaces",
                self.name,
                self.keyspaces.len()
            ))),
        }
    }

    /// Keyspace `k`'s key index (§8.2), read and checked (§11 item 10,
    /// structural rules) on first use and kept; `None` when the archive has
    /// none (format 1.0). A ranged source fetches only keyspace `k`'s parts.
    pub fn keyspace_keys(&self, k: usize) -> Result<Option<std::sync::Arc<KeyspaceKeys>>> {
        if self.index.key_index.is_empty() {
            return Ok(None);
        }
        if let Some(hit) = self.keys.lock().ok().and_then(|v| v.get(k).cloned().flatten()) {
            return Ok(Some(hit));
        }
        let (entry, ki, blocks) = self.keyspace_parts(k)?;
        let refs = &self.index.key_index;
        let (lo, hi) =
            (refs.partition_point(|r| (r.keyspace as usize) < k), refs.partition_point(|r| (r.keyspace as usize) <= k));
        let mut parts = Vec::new();
        for r in refs.get(lo..hi).unwrap_or_default() {
            let bytes = read_at(&self.bytes, &self.name, r.offset, u64::from(r.size), "key index part")?;
            let part = (|| {
                let sec = decode_section(&bytes, r.offset)?;
                if sec.total_len != u64::from(r.size) {
                    return Err(FormatError::corrupt(
                        "key index part",
                        r.offset,
                        format!("section of {} bytes, the index's directory says {}", sec.total_len, r.size),
                    ));
                }
                KeyIndexPart::decode(&sec, r)
            })()
            .ctx(&self.name)?;
            parts.push((*r, part));
        }
        let block_entries = self.index.blocks.get(blocks).unwrap_or_default();
        let keys = KeyspaceKeys::assemble(k, parts, ki, block_entries, 6 + entry.name.len()).ctx(&self.name)?;
        let keys = std::sync::Arc::new(keys);
        if let Ok(mut v) = self.keys.lock() {
            if let Some(slot) = v.get_mut(k) {
                *slot = Some(keys.clone());
            }
        }
        Ok(Some(keys))
    }

    /// A decoder of keyspace `k` from block `sequence` (`skip` bytes into
    /// it, see [`KeyspaceDecoder::resume_at`]) that checks each block's first
    /// record start against the key index, when the archive has one.
    pub(crate) fn decoder(
        &self,
        k: usize,
        materialize: bool,
        sequence: u32,
        index_base: u64,
        skip: usize,
    ) -> Result<KeyspaceDecoder> {
        let name = &self.keyspace_parts(k)?.0.name;
        let mut d = KeyspaceDecoder::resume_at(k as u32, name, materialize, sequence, index_base, skip);
        if let Some(keys) = self.keyspace_keys(k)? {
            d.check_key_index(keys);
        }
        Ok(d)
    }

    /// Starts reading block `i` (index order): a no-op in memory, a ranged
    /// read of its header (of the size this version writes) and data frame
    /// otherwise. Finish with [`Archive::finish_block`] (on any thread).
    fn start_block(&self, i: usize) -> PendingBlock {
        // A block the index does not list is refused by `finish_block`.
        let entry = self.index.blocks.get(i).filter(|_| self.bytes.in_memory().is_none());
        let fetch = entry.map(|e| self.bytes.fetch(e.offset, BLOCK_HEADER_LEN as u64 + u64::from(e.frame_len)));
        PendingBlock { i, fetch }
    }

    /// The checked header and data frame of a started block: the block is
    /// read through the frame walker and checked against its index entry
    /// ([`block_at`]) whatever the source. For a ranged source this also
    /// checks the optional sections after the frame, as [`walk`] does in
    /// memory at open. A block header longer than this version writes (fields
    /// appended by a later minor version) costs a ranged source one more read.
    fn finish_block(&self, p: PendingBlock) -> Result<FrameRef<'_>> {
        let i = p.i;
        let e = self.index.blocks.get(i).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "block index {i} out of range: the archive {} has {} blocks",
                self.name,
                self.index.blocks.len()
            ))
        })?;
        let prefetched = match p.fetch {
            Some(f) => {
                Some((e.offset, fetched(f, e.offset, BLOCK_HEADER_LEN as u64 + u64::from(e.frame_len), &self.name)?))
            }
            None => None,
        };
        let ranged = prefetched.is_some();
        let mut r = SourceIn { src: &self.bytes, name: &self.name, prefetched };
        let seg_end = self.index.blocks.get(i + 1).map_or(self.trailer.index_offset, |b| b.offset);
        let (h, offset) = block_at(&mut r, i, e, &self.index, seg_end)?;
        let frame = r.read_at(offset, u64::from(h.frame_len), "data frame")?;
        if ranged {
            check_gap(&self.bytes, &self.name, offset + u64::from(h.frame_len), seg_end, &self.index.key_index)?;
        }
        Ok(FrameRef { header: h, frame, offset })
    }

    /// Starts decompressing block `i` (index order) on the rayon pool, for a
    /// reader that will want it soon (a cursor's read-ahead). The block is
    /// read and checked against the index here, its frame copied, and the
    /// frame checked and decompressed on the pool as [`Archive::read_block`]
    /// does it. `spare` is a buffer to decompress into. `None` for a ranged
    /// source (whose blocks are read on demand) or a block the index lacks.
    pub(crate) fn decompress_ahead(&self, i: usize, spare: Vec<u8>) -> Option<BlockAhead> {
        self.bytes.in_memory()?;
        let f = self.finish_block(self.start_block(i)).ok()?;
        let (h, offset, frame, ctx) = (f.header, f.offset, f.frame.to_vec(), self.block_context(&f.header));
        self.release(offset, frame.len() as u64);
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rayon::spawn(move || {
            let mut out = spare;
            let r = decode_frame(&h, &frame, offset, &mut out).ctx(&ctx).map(|()| (h, out));
            let _ = tx.send(r);
        });
        Some(BlockAhead { i, rx })
    }

    /// Decompresses block `i` (index order) into `out`, checking both CRCs.
    /// `out`'s capacity is reused.
    pub fn read_block(&self, i: usize, out: &mut Vec<u8>) -> Result<BlockHeader> {
        self.decode_block(self.start_block(i), out)
    }

    fn decode_block(&self, p: PendingBlock, out: &mut Vec<u8>) -> Result<BlockHeader> {
        self.decode_fetched(self.finish_block(p)?, out)
    }

    /// Decompresses a block already read by [`Archive::finish_block`].
    fn decode_fetched(&self, f: FrameRef<'_>, out: &mut Vec<u8>) -> Result<BlockHeader> {
        let r = decode_frame(&f.header, &f.frame, f.offset, out).ctx(&self.block_context(&f.header));
        self.release(f.offset, f.frame.len() as u64);
        r?;
        Ok(f.header)
    }

    /// Decodes keyspace `k`'s records in order, calling `f` on this thread
    /// (`None` for every value unless `materialize`), with a
    /// [`RecordCursor`](crate::read::cursor::RecordCursor): one block at a time.
    /// Returns its totals, already checked against the index. Fails if there
    /// is no keyspace `k`. (To decompress ahead on a pool, see
    /// [`Archive::for_each_record_in`].)
    pub fn for_each_record(
        &self,
        k: usize,
        materialize: bool,
        tracker: Option<&Tracker<'_>>,
        mut f: impl FnMut(&[u8], Option<&[u8]>) -> Result<()>,
    ) -> Result<Totals> {
        let mut c = crate::read::cursor::RecordCursor::keyspace(self, k)?.with_values(materialize);
        while let Some(r) = c.next_tracked(tracker)? {
            f(r.key, materialize.then_some(r.value))?;
        }
        c.totals()
            .cloned()
            .ok_or_else(|| Error::InvalidArgument("internal error: the cursor ended without totals".into()))
    }

    /// As [`Archive::for_each_record`], decompressing on `pool`.
    pub fn for_each_record_in(
        &self,
        pool: Option<&rayon::ThreadPool>,
        k: usize,
        materialize: bool,
        tracker: Option<&Tracker<'_>>,
        f: impl FnMut(&[u8], Option<&[u8]>) -> Result<()>,
    ) -> Result<Totals> {
        let (entry, ki, blocks) = self.keyspace_parts(k)?;
        let totals = self.for_each_record_of_segment(pool, k, blocks, materialize, tracker, f)?;
        check_totals(&self.name, &entry.name, k, &totals, &ki.totals, self.trailer.index_offset)?;
        Ok(totals)
    }

    /// Splits keyspace `k`'s blocks into at most `max` consecutive segments
    /// of roughly equal raw size (cut at block boundaries, each about
    /// `min_raw` bytes or more), each
    /// starting at a record boundary (after a block without `CONTINUES`).
    /// Segments can be decoded independently and their totals joined with
    /// [`Totals::append`]. A keyspace whose largest record may exceed
    /// [`SEGMENT_MAX_RECORD`] ([`Archive::largest_record_bound`]) is one segment.
    /// No segments (an empty list) if the archive has no keyspace `k`.
    pub fn segments(&self, k: usize, max: usize, min_raw: u64) -> Vec<std::ops::Range<usize>> {
        let Ok((_, _, all)) = self.keyspace_parts(k) else { return Vec::new() };
        let (first, end) = (all.start, all.end);
        // Where a block ends (at a record boundary or not) is known only
        // from its header: an archive read by ranges fetches those lazily,
        // so it is decoded as one segment.
        if self.largest_record_bound(k).is_none_or(|r| r > SEGMENT_MAX_RECORD) {
            return vec![all];
        }
        let raw = self.raw_bytes_of(first..end);
        let n = (raw / min_raw.max(1)).clamp(1, max.max(1) as u64);
        let mut out = Vec::new();
        let (mut start, mut seen) = (first, 0u64);
        // largest_record_bound returned Some: the block headers are loaded.
        let entries = self.index.blocks.get(all.clone()).unwrap_or_default();
        let headers = self.block_headers.get(all).unwrap_or_default();
        for (b, (e, h)) in (first..).zip(entries.iter().zip(headers)) {
            seen += u64::from(e.raw_len);
            let cut = (out.len() as u64 + 1) * raw / n;
            if seen >= cut && b + 1 < end && !h.continues() && (out.len() as u64) + 1 < n {
                out.push(start..b + 1);
                start = b + 1;
            }
        }
        out.push(start..end);
        out
    }

    /// An upper bound on the size of keyspace `k`'s largest record (so of
    /// the largest value an import reassembles for it): the raw bytes of its
    /// longest run of blocks joined by `CONTINUES`, or of its largest block.
    /// A record's bytes lie only in the blocks it spans, and the decoder
    /// refuses a block whose `CONTINUES` flag does not match its records, so
    /// a lying flag cannot make a value outgrow this. `None` when the block
    /// headers are not loaded (an archive read by ranges), or if the archive
    /// has no keyspace `k`.
    pub fn largest_record_bound(&self, k: usize) -> Option<u64> {
        if self.block_headers.len() != self.index.blocks.len() {
            return None;
        }
        let (_, _, blocks) = self.keyspace_parts(k).ok()?;
        let entries = self.index.blocks.get(blocks.clone())?;
        let headers = self.block_headers.get(blocks)?;
        let (mut largest, mut run) = (0u64, 0u64);
        for (e, h) in entries.iter().zip(headers) {
            run += u64::from(e.raw_len);
            largest = largest.max(run);
            if !h.continues() {
                run = 0;
            }
        }
        Some(largest)
    }

    /// Raw (decompressed) bytes of the blocks `blocks`, as the index declares;
    /// 0 if `blocks` is not a range of the index's blocks.
    pub fn raw_bytes_of(&self, blocks: std::ops::Range<usize>) -> u64 {
        self.index.blocks.get(blocks).map_or(0, |b| b.iter().map(|e| u64::from(e.raw_len)).sum())
    }

    /// Joins the totals of keyspace `k`'s segments (in order; `None` for one
    /// that was not decoded) and checks them against the index (§11).
    pub fn join_segments(&self, k: usize, parts: Vec<Option<Totals>>) -> Result<Totals> {
        let (entry, ki, blocks) = self.keyspace_parts(k)?;
        let ks = &entry.name;
        let mut block = blocks.start;
        let mut all = Totals::default();
        for t in parts {
            let Some(t) = t else { return Err(Error::Cancelled) };
            let offset = self.index.blocks.get(block).map_or(self.trailer.index_offset, |e| e.offset);
            block += t.block_count as usize;
            all.append(t, ks, offset).ctx(&self.name)?;
        }
        check_totals(&self.name, ks, k, &all, &ki.totals, self.trailer.index_offset)?;
        Ok(all)
    }

    /// Decodes the records of blocks `blocks` (index order; a range returned
    /// by [`Archive::segments`]) of keyspace `k` in order, calling `f` on this
    /// thread, with blocks decompressed ahead on `pool`. Returns the segment's
    /// totals, which the caller joins and checks against the index. Fails if
    /// the archive has no keyspace `k` or `blocks` are not among its blocks.
    pub fn for_each_record_of_segment(
        &self,
        pool: Option<&rayon::ThreadPool>,
        k: usize,
        blocks: std::ops::Range<usize>,
        materialize: bool,
        tracker: Option<&Tracker<'_>>,
        mut f: impl FnMut(&[u8], Option<&[u8]>) -> Result<()>,
    ) -> Result<Totals> {
        let (_, _, all) = self.keyspace_parts(k)?;
        let in_keyspace = all.start <= blocks.start && blocks.start <= blocks.end && blocks.end <= all.end;
        let Some(before) = self.index.blocks.get(all.start..blocks.start).filter(|_| in_keyspace) else {
            return Err(Error::InvalidArgument(format!(
                "blocks {blocks:?} are not among keyspace #{k}'s blocks {all:?} in the archive {}",
                self.name
            )));
        };
        let sequence = u32::try_from(blocks.start - all.start).unwrap_or(u32::MAX);
        let index_base: u64 = before.iter().map(|e| u64::from(e.record_count)).sum();
        let mut dec = self.decoder(k, materialize, sequence, index_base, 0)?;
        // Block buffers go round between the decompressing workers and this
        // thread instead of being allocated (and page-faulted in) per block.
        let spare = BufferPool::new(self.window(pool, blocks.clone()) + 1);
        let decompress = |p: PendingBlock| -> Result<(BlockHeader, Vec<u8>)> {
            if let Some(t) = tracker {
                t.check()?;
            }
            let mut out = spare.take().unwrap_or_default();
            let h = self.decode_block(p, &mut out)?;
            Ok((h, out))
        };
        let mut consume = |b: usize, (h, raw): (BlockHeader, Vec<u8>)| -> Result<()> {
            let before = dec.totals().record_count;
            // `b` is one of `blocks`, checked above to be in the index.
            let offset = self.index.blocks.get(b).map_or(self.trailer.index_offset, |e| e.offset);
            dec.feed(&h, &raw, offset, |key, v| f(key, v).map_err(Into::into))
                .map_err(|e: FeedError| e.into_error(&self.name))?;
            spare.give(raw);
            if let Some(t) = tracker {
                t.add(u64::from(h.raw_len), dec.totals().record_count - before)?;
            }
            Ok(())
        };
        let end_offset = self.index.blocks.get(blocks.end).map_or(self.trailer.index_offset, |e| e.offset);
        self.pipeline(pool, blocks, &decompress, &mut consume)?;
        dec.finish(end_offset).ctx(&self.name)
    }

    /// Blocks read and decompressed ahead of the consumer.
    fn window(&self, pool: Option<&rayon::ThreadPool>, blocks: std::ops::Range<usize>) -> usize {
        let threads = pool.map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
        let blocks = self.index.blocks.get(blocks).unwrap_or_default();
        let largest = blocks.iter().map(|e| e.raw_len as usize).max().unwrap_or(1).max(1);
        (threads * LOOKAHEAD_PER_THREAD).min(LOOKAHEAD_BYTES / largest).max(2)
    }

    /// Runs `work` on `blocks` on the pool, keeping a window of blocks
    /// started (ranged reads in flight) and in work, and hands the results to
    /// `consume` in block order on the calling thread.
    fn pipeline<T: Send>(
        &self,
        pool: Option<&rayon::ThreadPool>,
        blocks: std::ops::Range<usize>,
        work: &(dyn Fn(PendingBlock) -> Result<T> + Sync),
        consume: &mut dyn FnMut(usize, T) -> Result<()>,
    ) -> Result<()> {
        let window = self.window(pool, blocks.clone());
        // On a worker thread of the pool that would decompress, blocking on a
        // channel could starve the pool: work window by window with
        // work-stealing joins instead. Elsewhere, keep `window` blocks in flight.
        let on_worker = match pool {
            Some(p) => p.current_thread_index().is_some(),
            None => rayon::current_thread_index().is_some(),
        };
        if on_worker {
            let mut i = blocks.start;
            while i < blocks.end {
                let end = (i + window).min(blocks.end);
                let started: Vec<PendingBlock> = (i..end).map(|b| self.start_block(b)).collect();
                let done: Vec<Result<T>> = started.into_par_iter().map(work).collect();
                for (b, r) in (i..end).zip(done) {
                    consume(b, r?)?;
                }
                i = end;
            }
            Ok(())
        } else {
            let start = &|b: usize| self.start_block(b);
            match pool {
                Some(p) => p.in_place_scope(|s| pump(s, blocks, window, start, work, consume)),
                None => rayon::in_place_scope(|s| pump(s, blocks, window, start, work, consume)),
            }
        }
    }

    /// Verifies the archive (§11) on the current rayon pool. `quick` checks
    /// checksums and structure without decompressing.
    pub fn verify(&self, quick: bool, progress: &dyn Progress) -> Result<VerifyReport> {
        self.verify_in(None, quick, progress)
    }

    /// Verifies with `threads` workers (0 = one per core).
    pub fn verify_with(&self, threads: usize, quick: bool, progress: &dyn Progress) -> Result<VerifyReport> {
        let pool = crate::util::threads::pool_for(threads)?;
        self.verify_in(Some(&pool), quick, progress)
    }

    fn verify_in(
        &self,
        pool: Option<&rayon::ThreadPool>,
        quick: bool,
        progress: &dyn Progress,
    ) -> Result<VerifyReport> {
        let total_raw: u64 = self.index.keyspaces.iter().map(|k| k.totals.raw_bytes).sum();
        let total_comp: u64 = self.index.keyspaces.iter().map(|k| k.totals.compressed_bytes).sum();
        let mut report = VerifyReport {
            archive_bytes: self.len(),
            keyspaces: self.keyspaces.len(),
            blocks: self.index.blocks.len() as u64,
            records: self.index.keyspaces.iter().map(|k| k.totals.record_count).sum(),
            raw_bytes: total_raw,
            quick,
        };
        let start = std::time::Instant::now();
        for k in 0..self.keyspaces.len() {
            self.keyspace_keys(k)?;
        }
        tracing::info!(
            archive = %self.name,
            quick,
            keyspaces = report.keyspaces,
            blocks = report.blocks,
            "verify: started"
        );
        if quick {
            let tracker = Tracker::new(progress, Phase::Verify, total_comp);
            tracker.set_records_total(report.records);
            let check = |p: PendingBlock| -> Result<(u32, u32)> {
                tracker.check()?;
                let f = self.finish_block(p)?;
                let r = check_frame(&f.header, &f.frame, f.offset).ctx(&self.block_context(&f.header));
                self.release(f.offset, f.frame.len() as u64);
                r?;
                Ok((f.header.frame_len, f.header.record_count))
            };
            let mut consume =
                |_, (frame_len, records): (u32, u32)| tracker.add(u64::from(frame_len), u64::from(records));
            self.pipeline(pool, 0..self.index.blocks.len(), &check, &mut consume)?;
        } else {
            let tracker = Tracker::new(progress, Phase::Verify, total_raw);
            tracker.set_records_total(report.records);
            let mut records = 0;
            for (k, entry) in self.keyspaces.iter().enumerate() {
                let ks_start = std::time::Instant::now();
                tracker.keyspace(k, &entry.name);
                let n = self.for_each_record_in(pool, k, false, Some(&tracker), |_, _| Ok(()))?.record_count;
                tracing::debug!(
                    keyspace = %entry.name,
                    records = n,
                    ms = ks_start.elapsed().as_millis() as u64,
                    "verify: keyspace checked"
                );
                records += n;
            }
            report.records = records;
        }
        tracing::info!(archive = %self.name, ms = start.elapsed().as_millis() as u64, "verify: archive is sound");
        Ok(report)
    }
}

/// `len` bytes at `start` of `src`, borrowed from memory or fetched (and waited for).
fn read_at<'a, B: Source>(src: &'a B, name: &str, start: u64, len: u64, what: &str) -> Result<Chunk<'a>> {
    let have = src.size().saturating_sub(start);
    if have < len {
        return Err(FormatError::Truncated { what: what.into(), offset: start, need: len, have }).ctx(name);
    }
    match src.in_memory() {
        Some(b) => InMemory(b).read_at(start, len, what).map(Chunk::Borrowed).ctx(name),
        None => Ok(Chunk::Fetched(fetched(src.fetch(start, len), start, len, name)?)),
    }
}

/// The frame walker's view of a [`Source`]: borrows bytes in memory, fetches
/// ranges otherwise. `prefetched` (offset, bytes) serves reads inside it
/// without fetching; a read that starts inside it and runs past its end
/// fetches only the missing tail.
struct SourceIn<'a, B: Source> {
    src: &'a B,
    name: &'a str,
    prefetched: Option<(u64, bytes::Bytes)>,
}

impl<'a, B: Source> SourceIn<'a, B> {
    fn new(src: &'a B, name: &'a str) -> Self {
        SourceIn { src, name, prefetched: None }
    }
}

impl<'a, B: Source> ReadAt for SourceIn<'a, B> {
    type Buf = Chunk<'a>;
    type Error = Error;
    fn read_at(&mut self, offset: u64, len: u64, what: &str) -> Result<Chunk<'a>> {
        if let Some((at, have)) = &self.prefetched {
            let have_end = at + have.len() as u64;
            if (*at..have_end).contains(&offset) {
                let from = (offset - at) as usize;
                if offset.saturating_add(len) <= have_end {
                    return Ok(Chunk::Fetched(have.slice(from..from + len as usize)));
                }
                let tail = read_at(self.src, self.name, have_end, offset.saturating_add(len) - have_end, what)?;
                let mut joined = Vec::with_capacity(len as usize);
                #[expect(clippy::indexing_slicing, reason = "from < have.len(): offset lies in at..have_end")]
                joined.extend_from_slice(&have[from..]);
                joined.extend_from_slice(&tail);
                return Ok(Chunk::Fetched(joined.into()));
            }
        }
        read_at(self.src, self.name, offset, len, what)
    }
    fn error(&self, e: FormatError) -> Error {
        Error::Archive { name: self.name.to_owned(), source: e }
    }
}

/// Checks that `start..end` of the data region holds only unknown optional
/// sections and the key index parts the directory `dir` places there, read
/// one at a time through the frame walker (a listed part is stepped over by
/// its listed size, not read: it is read and checked when it is used).
fn check_gap<B: Source>(src: &B, name: &str, start: u64, end: u64, dir: &[KeyIndexRef]) -> Result<()> {
    let mut r = SourceIn::new(src, name);
    let mut pos = start;
    while pos < end {
        pos = gap_item(&mut r, pos, end, dir)?.0;
    }
    Ok(())
}

/// Waits for a ranged read and checks that it returned exactly `len` bytes.
fn fetched(f: Fetch, start: u64, len: u64, name: &str) -> Result<bytes::Bytes> {
    let b = f.wait()?;
    if b.len() as u64 != len {
        return Err(FormatError::Truncated {
            what: "range read".into(),
            offset: start,
            need: len,
            have: b.len() as u64,
        })
        .ctx(name);
    }
    Ok(b)
}

fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(page).ok().filter(|&p| p.is_power_of_two()).unwrap_or(4096)
    })
}

/// Keeps `window` blocks started and in work on `s` and hands results to
/// `consume` in block order, on the calling thread.
fn pump<'s, T: Send + 's>(
    s: &rayon::Scope<'s>,
    blocks: std::ops::Range<usize>,
    window: usize,
    start: &dyn Fn(usize) -> PendingBlock,
    work: &'s (dyn Fn(PendingBlock) -> Result<T> + Sync),
    consume: &mut dyn FnMut(usize, T) -> Result<()>,
) -> Result<()> {
    let mut inflight = std::collections::VecDeque::with_capacity(window);
    let mut next = blocks.start;
    let spawn = |b: usize, inflight: &mut std::collections::VecDeque<std::sync::mpsc::Receiver<Result<T>>>| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let p = start(b);
        s.spawn(move |_| {
            let _ = tx.send(work(p));
        });
        inflight.push_back(rx);
    };
    while next < blocks.end && inflight.len() < window {
        spawn(next, &mut inflight);
        next += 1;
    }
    for b in blocks.clone() {
        let Some(rx) = inflight.pop_front() else {
            return Err(Error::Internal("the block pipeline lost a receiver (one is started per block)".into()));
        };
        let r = rx.recv().map_err(|_| Error::InvalidArgument("decompression worker vanished".into()))??;
        if next < blocks.end {
            spawn(next, &mut inflight);
            next += 1;
        }
        consume(b, r)?;
    }
    Ok(())
}

/// Error plumbing for decoder callbacks that return floe errors.
pub(crate) enum FeedError {
    Format(FormatError),
    Floe(Error),
}
impl From<FormatError> for FeedError {
    fn from(e: FormatError) -> Self {
        FeedError::Format(e)
    }
}
impl From<Error> for FeedError {
    fn from(e: Error) -> Self {
        FeedError::Floe(e)
    }
}
impl FeedError {
    pub(crate) fn into_error(self, name: &str) -> Error {
        match self {
            FeedError::Format(e) => Error::Archive { name: name.to_owned(), source: e },
            FeedError::Floe(e) => e,
        }
    }
}

/// Walks the data region `start..end` of an archive in memory with the
/// frame walker (§11 items 2, 5, 6, 9): every item starts where the one
/// before ends, every block header matches its index entry, unknown sections
/// are skipped or refused, and the walk ends exactly at the index. A ranged
/// source runs the same [`block_at`] and [`gap_item`] on each block and gap
/// as it fetches them.
/// The block headers in index order, and the skipped sections (tag, offset).
type Walked = (Vec<BlockHeader>, Vec<(String, u64)>);

fn walk(buf: &[u8], start: u64, index: &Index, end: u64) -> std::result::Result<Walked, FormatError> {
    let mut r = InMemory(buf);
    let mut headers = Vec::with_capacity(index.blocks.len());
    let mut skipped = Vec::new();
    let mut parts = 0usize;
    let mut pos = start;
    while pos < end {
        let i = headers.len();
        match index.blocks.get(i) {
            Some(e) if e.offset == pos => {
                let seg_end = index.blocks.get(i + 1).map_or(end, |b| b.offset);
                let (h, frame_offset) = block_at(&mut r, i, e, index, seg_end)?;
                headers.push(h);
                pos = frame_offset + u64::from(h.frame_len);
            }
            next => {
                let (item_end, tag) = gap_item(&mut r, pos, next.map_or(end, |e| e.offset), &index.key_index)?;
                match tag {
                    Some(tag) => skipped.push((tag, pos)),
                    None => parts += 1,
                }
                pos = item_end;
            }
        }
    }
    if parts != index.key_index.len() {
        return Err(FormatError::corrupt(
            "index",
            end,
            format!("the key index directory lists {} parts, the data region holds {parts}", index.key_index.len()),
        ));
    }
    if headers.len() != index.blocks.len() {
        return Err(FormatError::corrupt(
            "index",
            end,
            format!("index lists {} blocks, the file holds {}", index.blocks.len(), headers.len()),
        ));
    }
    Ok((headers, skipped))
}

/// Reads block `i` (index order, entry `e`) at the offset its index entry gives, through
/// the frame walker: a `BLKH` section (of whatever size its `frame_size`
/// says) whose fields match index entry `i`, with the expected sequence, and
/// a data frame that ends by `seg_end` (the next block or the index).
/// Returns its header and the absolute offset of its data frame.
fn block_at<R: ReadAt>(
    r: &mut R,
    i: usize,
    e: &BlockEntry,
    index: &Index,
    seg_end: u64,
) -> std::result::Result<(BlockHeader, u64), R::Error> {
    let pos = e.offset;
    let item = read_data_item(r, pos)?;
    let DataItem::Block { header: h, .. } = &item else {
        return Err(r.error(FormatError::corrupt(
            "block",
            pos,
            format!("block #{i} listed in the index at this offset is a '{}' section", item.tag_name()),
        )));
    };
    let h = *h;
    index.check_block(i, &h).map_err(|e| r.error(e))?;
    if item.end() > seg_end {
        return Err(r.error(FormatError::corrupt(
            "block",
            pos,
            format!("data frame of {} bytes runs past {seg_end}", h.frame_len),
        )));
    }
    Ok((h, item.frame_offset()))
}

/// Reads one item of a gap between blocks (it starts at `pos`) through the
/// frame walker: only an unknown, optional section ending by `gap_end` may be
/// there, or a key index part that the directory `dir` lists at `pos`.
/// Returns where it ends and the tag of the skipped section (`None` for a
/// key index part, stepped over by its listed size without being read).
fn gap_item<R: ReadAt>(
    r: &mut R,
    pos: u64,
    gap_end: u64,
    dir: &[KeyIndexRef],
) -> std::result::Result<(u64, Option<String>), R::Error> {
    if let Ok(i) = dir.binary_search_by_key(&pos, |p| p.offset) {
        let end = dir.get(i).map_or(pos, |p| pos + u64::from(p.size));
        if end <= gap_end {
            return Ok((end, None));
        }
        return Err(r.error(FormatError::corrupt(
            "key index part",
            pos,
            format!("the directory's part runs past the next block or the index at {gap_end}"),
        )));
    }
    let item = read_data_item(r, pos)?;
    let why = match &item {
        DataItem::Skipped(_) if item.end() <= gap_end => return Ok((item.end(), Some(item.tag_name()))),
        DataItem::Skipped(_) => format!("section runs past the next block or the index at {gap_end}"),
        DataItem::Block { .. } => "block is not listed in the index at this offset".into(),
        DataItem::Index(_) => "unexpected 'INDX' section in the data region".into(),
        DataItem::KeyIndex(_) => "key index part that the index's directory does not list".into(),
    };
    Err(r.error(FormatError::corrupt("section", pos, why)))
}

/// One block read from a stream, already decompressed and checked.
pub struct StreamBlock {
    /// The block's header.
    pub header: BlockHeader,
    /// Absolute offset of its `BLKH` section.
    pub offset: u64,
    /// Its decompressed bytes.
    pub raw: Vec<u8>,
}

/// Reads an archive front to back from any `Read`, with bounded memory: at
/// most one section (≤ 256 MiB, grown only as bytes arrive) or one block
/// (≤ 65 MiB compressed + 64 MiB raw) at a time, plus, when pipelined
/// ([`StreamReader::for_each_keyspace_pipelined`]), `STREAM_AHEAD` + 1
/// decompressed blocks waiting for or held by the consumer.
pub struct StreamReader<R: Read> {
    r: R,
    name: String,
    offset: u64,
    header: Header,
    keyspaces: Vec<KeyspaceEntry>,
    data_start: u64,
    seen: Vec<BlockEntry>,
    index: Option<Index>,
    quick: bool,
    /// Reused for every data frame read.
    frame_buf: Vec<u8>,
    /// Decompressed-block buffers handed back by the consumer.
    spare: BufferPool,
    /// Key index parts met so far (§8.2), to compare with the directory.
    parts_seen: Vec<KeyIndexRef>,
    /// Per keyspace whose parts were met: its checks so far.
    part_checks: Vec<(u32, PartCheck)>,
}

/// What a stream yields next: a block, or the end (with the offset reached).
enum Next {
    Block(StreamBlock),
    /// A key index part and its offset.
    Part(Box<KeyIndexPart>, u64),
    End(u64),
}

fn read_n<R: Read>(r: &mut R, n: u64, offset: u64, what: &str, name: &str, out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    read_more(r, n, offset, what, name, out)
}

/// Appends the next `n` bytes of `r` (at absolute `offset`) to `out`.
fn read_more<R: Read>(r: &mut R, n: u64, offset: u64, what: &str, name: &str, out: &mut Vec<u8>) -> Result<()> {
    // Grow with the data actually present: a hostile size costs nothing until bytes arrive.
    let got =
        r.by_ref().take(n).read_to_end(out).map_err(|e| Error::io(format!("reading {name} at offset {offset}"), e))?
            as u64;
    if got != n {
        return Err(FormatError::Truncated { what: what.into(), offset, need: n, have: got }).ctx(name);
    }
    Ok(())
}

/// The frame walker's view of a stream read front to back; `pos` is the
/// offset of the next unread byte. The walker reads 8 bytes and then the
/// whole section at the same offset: a read is served from the last small
/// read (kept) plus the bytes that follow it.
struct StreamIn<'a, R: Read> {
    r: &'a mut R,
    pos: &'a mut u64,
    name: &'a str,
    last: Option<(u64, Vec<u8>)>,
}

impl<'a, R: Read> StreamIn<'a, R> {
    fn new(r: &'a mut R, pos: &'a mut u64, name: &'a str) -> Self {
        StreamIn { r, pos, name, last: None }
    }
}

impl<R: Read> ReadAt for StreamIn<'_, R> {
    type Buf = Vec<u8>;
    type Error = Error;
    fn read_at(&mut self, offset: u64, len: u64, what: &str) -> Result<Vec<u8>> {
        let mut out = match self.last.take() {
            Some((at, prefix))
                if at == offset && at + prefix.len() as u64 == *self.pos && len >= prefix.len() as u64 =>
            {
                prefix
            }
            _ if offset == *self.pos => Vec::new(),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "stream reader asked for offset {offset} at offset {} (a stream cannot seek)",
                    self.pos
                )))
            }
        };
        let more = len - out.len() as u64;
        read_more(self.r, more, *self.pos, what, self.name, &mut out)?;
        *self.pos += more;
        if len <= 64 {
            self.last = Some((offset, out.clone()));
        }
        Ok(out)
    }
    fn error(&self, e: FormatError) -> Error {
        Error::Archive { name: self.name.to_owned(), source: e }
    }
}

impl<R: Read> StreamReader<R> {
    /// Reads and checks the header and keyspace table.
    pub fn new(mut r: R, name: &str) -> Result<Self> {
        let mut offset = 0u64;
        let mut src = StreamIn::new(&mut r, &mut offset, name);
        let hsec = read_section(&mut src, 0)?;
        let header = Header::decode(&hsec.section()).ctx(name)?;
        let ksec = read_section(&mut src, hsec.end())?;
        let keyspaces = keyspace_table::decode(&ksec.section(), header.keyspace_count).ctx(name)?;
        drop((hsec, ksec));
        Ok(StreamReader {
            r,
            name: name.to_owned(),
            offset,
            header,
            keyspaces,
            data_start: offset,
            seen: Vec::new(),
            index: None,
            quick: false,
            frame_buf: Vec::new(),
            spare: BufferPool::new(STREAM_AHEAD + 2),
            parts_seen: Vec::new(),
            part_checks: Vec::new(),
        })
    }

    /// With `quick`, blocks are checksum-checked but not decompressed
    /// ([`StreamBlock::raw`] is then empty).
    pub fn set_quick(&mut self, quick: bool) {
        self.quick = quick;
    }
    /// The name the archive was opened under (for messages).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// The header (§4).
    pub fn header(&self) -> &Header {
        &self.header
    }
    /// The keyspace table (§5), in table order.
    pub fn keyspaces(&self) -> &[KeyspaceEntry] {
        &self.keyspaces
    }
    /// The index, once [`StreamReader::next_block`] has returned `None`.
    pub fn index(&self) -> Option<&Index> {
        self.index.as_ref()
    }
    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next block, or `None` after the index and trailer were read and
    /// checked against everything seen (and end of input was confirmed).
    pub fn next_block(&mut self) -> Result<Option<StreamBlock>> {
        loop {
            match self.next()? {
                Next::Block(b) => return Ok(Some(b)),
                Next::End(_) => return Ok(None),
                Next::Part(..) => {}
            }
        }
    }

    /// The next block, key index part (already checked against the index
    /// entries of the blocks it describes), or the end.
    fn next(&mut self) -> Result<Next> {
        if self.index.is_some() {
            return Ok(Next::End(self.offset));
        }
        loop {
            let at = self.offset;
            let item = read_data_item(&mut StreamIn::new(&mut self.r, &mut self.offset, &self.name), at)?;
            debug_assert_eq!(self.offset, item.frame_offset());
            match item {
                DataItem::Block { header: h, .. } => {
                    debug_assert!(h.frame_len <= MAX_FRAME);
                    let foff = self.offset;
                    let mut frame = std::mem::take(&mut self.frame_buf);
                    read_n(&mut self.r, u64::from(h.frame_len), foff, "data frame", &self.name, &mut frame)?;
                    self.offset += u64::from(h.frame_len);
                    self.seen.push(BlockEntry::of(at, &h));
                    let mut raw = Vec::new();
                    let checked = if self.quick {
                        check_frame(&h, &frame, foff)
                    } else {
                        raw = self.spare.take().unwrap_or_default();
                        decode_frame(&h, &frame, foff, &mut raw)
                    };
                    self.frame_buf = frame;
                    checked.ctx(&keyspace_context(&self.name, &self.keyspaces, h.keyspace))?;
                    return Ok(Next::Block(StreamBlock { header: h, offset: at, raw }));
                }
                DataItem::Index(sec) => {
                    let index = Index::decode(&sec.section(), self.header.keyspace_count, self.data_start, at)
                        .ctx(&self.name)?;
                    let index_size = sec.total_len;
                    index.check_blocks_seen(&self.seen, at).ctx(&self.name)?;
                    self.check_parts_seen(&index, at)?;
                    let toff = self.offset;
                    let mut buf = Vec::new();
                    read_n(&mut self.r, TRAILER_LEN as u64, toff, "trailer", &self.name, &mut buf)?;
                    self.offset += TRAILER_LEN as u64;
                    let t = Trailer::decode(&buf, self.offset).ctx(&self.name)?;
                    t.check_index(toff, at, index_size, self.seen.len() as u64).ctx(&self.name)?;
                    let mut probe = [0u8; 1];
                    let extra = loop {
                        match self.r.read(&mut probe) {
                            Ok(n) => break n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                            Err(e) => return Err(Error::io(format!("reading {}", self.name), e)),
                        }
                    };
                    if extra != 0 {
                        return Err(FormatError::corrupt(
                            "archive",
                            self.offset,
                            "data follows the trailer (the spec forbids trailing bytes)",
                        ))
                        .ctx(&self.name);
                    }
                    self.index = Some(index);
                    return Ok(Next::End(self.offset));
                }
                DataItem::KeyIndex(sec) => return Ok(Next::Part(Box::new(self.check_part(&sec.section())?), at)),
                DataItem::Skipped(_) => {}
            }
        }
    }

    /// A key index part met in the stream (§8.2): it describes blocks
    /// already seen, and is checked against their index entries (§11 item
    /// 10, structural rules).
    fn check_part(&mut self, sec: &crate::format::section::Section<'_>) -> Result<KeyIndexPart> {
        let (r, part) = KeyIndexPart::decode_found(sec).ctx(&self.name)?;
        let k = r.keyspace;
        let start = self.seen.partition_point(|e| e.keyspace < k);
        let from = start + r.first_block as usize;
        let blocks = self
            .seen
            .get(from..from + r.block_count as usize)
            .filter(|b| b.iter().all(|e| e.keyspace == k) && r.block_count > 0);
        let Some(blocks) = blocks else {
            return Err(FormatError::corrupt(
                "key index part",
                r.offset,
                format!(
                    "describes blocks {}+{} of keyspace #{k}, which do not all stand before it",
                    r.first_block, r.block_count
                ),
            ))
            .ctx(&self.name);
        };
        if self.part_checks.last().is_none_or(|(last, _)| *last != k) {
            let name_len = self.keyspaces.get(k as usize).map_or(0, |e| e.name.len());
            self.part_checks.push((k, PartCheck::new(k as usize, 6 + name_len)));
        }
        if let Some((_, check)) = self.part_checks.last_mut() {
            check.part(&r, &part, blocks, None).ctx(&self.name)?;
        }
        self.parts_seen.push(r);
        Ok(part)
    }

    /// At the index: the directory lists exactly the parts met, and each
    /// keyspace's first keys start at its first key and stay within its last.
    fn check_parts_seen(&self, index: &Index, at: u64) -> Result<()> {
        if index.key_index != self.parts_seen {
            return Err(FormatError::corrupt(
                "index",
                at,
                format!(
                    "the key index directory lists {} parts, the stream held {} (or they differ)",
                    index.key_index.len(),
                    self.parts_seen.len()
                ),
            ))
            .ctx(&self.name);
        }
        for (k, check) in &self.part_checks {
            let Some(t) = index.keyspaces.get(*k as usize).map(|ks| &ks.totals) else { continue };
            let first_ok = check.first.as_deref().is_none_or(|f| f == t.first_key.as_slice());
            if !first_ok || check.last().is_some_and(|l| l > t.last_key.as_slice()) {
                return Err(FormatError::corrupt(
                    "key index part",
                    self.parts_seen.iter().find(|r| r.keyspace == *k).map_or(at, |r| r.offset),
                    format!("keyspace #{k}: first keys do not start at the keyspace's first key or pass its last"),
                ))
                .ctx(&self.name);
            }
        }
        Ok(())
    }

    /// Walks the stream keyspace by keyspace: `per_keyspace(k, records)` is
    /// called as keyspace `k` begins and may pump its records with
    /// [`KeyspaceStream::for_each_record`] (records it leaves are still read and
    /// checked). Checks totals against the index at the end.
    pub fn for_each_keyspace(
        &mut self,
        materialize: bool,
        tracker: Option<&Tracker<'_>>,
        mut per_keyspace: impl FnMut(usize, &mut KeyspaceStream<'_, '_>) -> Result<()>,
    ) -> Result<Vec<Totals>> {
        let (name, keyspaces, quick, spare) =
            (self.name.clone(), self.keyspaces.clone(), self.quick, self.spare.clone());
        let walk = Walk { name: &name, keyspaces: &keyspaces, quick, materialize, tracker, spare: &spare };
        let totals = walk.run(&mut || self.next(), &mut per_keyspace)?;
        self.check_end(&totals)?;
        Ok(totals)
    }

    /// As [`StreamReader::for_each_keyspace`], in two stages: this thread
    /// reads, checks and decompresses blocks up to `STREAM_AHEAD` blocks
    /// ahead, while a second thread decodes them and runs `per_keyspace` and
    /// its record callbacks. `R` stays on this thread.
    pub fn for_each_keyspace_pipelined(
        &mut self,
        materialize: bool,
        tracker: Option<&Tracker<'_>>,
        per_keyspace: impl FnMut(usize, &mut KeyspaceStream<'_, '_>) -> Result<()> + Send,
    ) -> Result<Vec<Totals>> {
        let (name, keyspaces, quick, spare) =
            (self.name.clone(), self.keyspaces.clone(), self.quick, self.spare.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Next>>(STREAM_AHEAD);
        let totals = std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("floe-ingest".into())
                .spawn_scoped(scope, move || {
                    let mut per_keyspace = per_keyspace;
                    let walk = Walk { name: &name, keyspaces: &keyspaces, quick, materialize, tracker, spare: &spare };
                    let mut source = || {
                        rx.recv().unwrap_or_else(|_| Err(Error::InvalidArgument("the stream reader stopped".into())))
                    };
                    walk.run(&mut source, &mut per_keyspace)
                    // Dropping `rx` here stops the reader at its next send.
                })
                .map_err(|e| Error::io("starting the decoding thread", e))?;
            loop {
                let next = self.next();
                let more = matches!(next, Ok(Next::Block(_) | Next::Part(..)));
                if tx.send(next).is_err() || !more {
                    break;
                }
            }
            drop(tx);
            worker.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
        })?;
        self.check_end(&totals)?;
        Ok(totals)
    }

    /// After the last block: every keyspace seen, totals match the index.
    fn check_end(&self, totals: &[Totals]) -> Result<()> {
        let index =
            self.index.as_ref().ok_or_else(|| Error::InvalidArgument("stream ended without an index".into()))?;
        if totals.len() != self.keyspaces.len() {
            return Err(FormatError::corrupt(
                "archive",
                self.offset,
                format!("{} of {} keyspaces have blocks", totals.len(), self.keyspaces.len()),
            ))
            .ctx(&self.name);
        }
        if !self.quick {
            let per_keyspace = totals.iter().zip(&index.keyspaces).zip(&self.keyspaces);
            for (k, ((got, want), entry)) in per_keyspace.enumerate() {
                check_totals(&self.name, &entry.name, k, got, &want.totals, self.offset)?;
            }
        }
        Ok(())
    }
}

/// Blocks a pipelined stream reader runs ahead of its consumer.
pub(crate) const STREAM_AHEAD: usize = 2;

/// The keyspace-by-keyspace walk over a source of blocks (the reader itself,
/// or a channel fed by it on another thread).
struct Walk<'a, 't> {
    name: &'a str,
    keyspaces: &'a [KeyspaceEntry],
    quick: bool,
    materialize: bool,
    tracker: Option<&'a Tracker<'t>>,
    spare: &'a BufferPool,
}

impl<'t> Walk<'_, 't> {
    fn run(
        &self,
        source: &mut dyn FnMut() -> Result<Next>,
        per_keyspace: &mut dyn FnMut(usize, &mut KeyspaceStream<'_, 't>) -> Result<()>,
    ) -> Result<Vec<Totals>> {
        let mut totals: Vec<Totals> = Vec::with_capacity(self.keyspaces.len());
        let mut end = 0u64;
        let mut lookahead = pull(source, &mut end, None, self.name)?;
        while let Some(b) = lookahead.as_ref() {
            let k = b.header.keyspace as usize;
            let Some(entry) = self.keyspaces.get(k).filter(|_| k == totals.len()) else {
                return Err(FormatError::corrupt("block", b.offset, format!("block of keyspace #{k} where keyspace #{} was expected (keyspaces must be contiguous and in table order)", totals.len()))).ctx(self.name);
            };
            let mut ks = KeyspaceStream {
                source: &mut *source,
                name: self.name,
                quick: self.quick,
                k,
                dec: {
                    let mut d = KeyspaceDecoder::new(k as u32, &entry.name, self.materialize);
                    d.track_starts();
                    d
                },
                lookahead: &mut lookahead,
                end: &mut end,
                tracker: self.tracker,
                spare: self.spare,
            };
            per_keyspace(k, &mut ks)?;
            ks.for_each_record(|_, _| Ok(()))?;
            let end_at = ks.lookahead.as_ref().map_or(*ks.end, |b| b.offset);
            let t = if self.quick { Totals::default() } else { ks.dec.finish(end_at).ctx(self.name)? };
            totals.push(t);
        }
        Ok(totals)
    }
}

/// The next block from `source`; a key index part met on the way is
/// matched with the record starts `dec` decoded (§11 item 10).
fn pull(
    source: &mut dyn FnMut() -> Result<Next>,
    end: &mut u64,
    mut dec: Option<&mut KeyspaceDecoder>,
    name: &str,
) -> Result<Option<StreamBlock>> {
    loop {
        match source()? {
            Next::Block(b) => return Ok(Some(b)),
            Next::Part(part, at) => {
                if let Some(d) = dec.as_deref_mut() {
                    d.expect_part(&part, at).ctx(name)?;
                }
            }
            Next::End(at) => {
                *end = at;
                return Ok(None);
            }
        }
    }
}

/// One keyspace's records in a stream; see [`StreamReader::for_each_keyspace`].
pub struct KeyspaceStream<'s, 't> {
    source: &'s mut dyn FnMut() -> Result<Next>,
    name: &'s str,
    quick: bool,
    k: usize,
    dec: KeyspaceDecoder,
    lookahead: &'s mut Option<StreamBlock>,
    end: &'s mut u64,
    tracker: Option<&'s Tracker<'t>>,
    spare: &'s BufferPool,
}

impl KeyspaceStream<'_, '_> {
    /// Keyspace position in the table.
    pub fn keyspace(&self) -> usize {
        self.k
    }

    /// Calls `f` for each remaining record of this keyspace, in order.
    pub fn for_each_record(&mut self, mut f: impl FnMut(&[u8], Option<&[u8]>) -> Result<()>) -> Result<()> {
        while let Some(b) = self.lookahead.take_if(|b| b.header.keyspace as usize == self.k) {
            if let Some(t) = self.tracker {
                t.check()?;
            }
            if !self.quick {
                let before = self.dec.totals().record_count;
                self.dec
                    .feed(&b.header, &b.raw, b.offset, |key, v| f(key, v).map_err(Into::into))
                    .map_err(|e: FeedError| e.into_error(self.name))?;
                if let Some(t) = self.tracker {
                    t.add(u64::from(b.header.raw_len), self.dec.totals().record_count - before)?;
                }
            } else if let Some(t) = self.tracker {
                // Quick mode does not decode records: report the block's own counts.
                t.add(u64::from(b.header.raw_len), u64::from(b.header.record_count))?;
            }
            self.spare.give(b.raw);
            let dec = (!self.quick).then_some(&mut self.dec);
            *self.lookahead = pull(self.source, self.end, dec, self.name)?;
        }
        Ok(())
    }
}

/// Verifies an archive read front to back from `r` (e.g. stdin).
pub fn verify_stream<R: Read>(r: R, name: &str, quick: bool, progress: &dyn Progress) -> Result<VerifyReport> {
    let mut s = StreamReader::new(r, name)?;
    s.set_quick(quick);
    let tracker = Tracker::new(progress, Phase::Verify, 0);
    let start = std::time::Instant::now();
    tracing::info!(archive = %name, quick, "verify: reading a stream");
    s.for_each_keyspace(false, Some(&tracker), |_, _| Ok(()))?;
    tracing::info!(archive = %name, ms = start.elapsed().as_millis() as u64, "verify: archive is sound");
    let index = s.index().ok_or_else(|| Error::InvalidArgument("stream ended without an index".into()))?;
    Ok(VerifyReport {
        archive_bytes: s.offset(),
        keyspaces: s.keyspaces().len(),
        blocks: index.blocks.len() as u64,
        records: index.keyspaces.iter().map(|k| k.totals.record_count).sum(),
        raw_bytes: index.keyspaces.iter().map(|k| k.totals.raw_bytes).sum(),
        quick,
    })
}
