//! §6 blocks: a `BLKH` section followed by one zstd data frame.

use super::codec::{Dec, Put};
use super::limits::{MAX_BLOCK_RAW, MAX_FRAME, MAX_WINDOW, MIN_FRAME};
use super::section::{tags, Section, ZSTD_FRAME_MAGIC};
use super::{crc32, FormatError, Result};

/// Block flag bit 0: the block ends mid-record.
pub const FLAG_CONTINUES: u32 = 1;
/// Size of the `BLKH` body this version writes. A reader takes a block
/// header's size from its section (a later minor version may append fields).
pub const BLOCK_HEADER_BODY: usize = 32;
/// Size of the whole `BLKH` section this version writes, and the smallest
/// one a reader accepts.
pub const BLOCK_HEADER_LEN: usize = super::section::SECTION_OVERHEAD + BLOCK_HEADER_BODY;

/// A block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Keyspace index (§5) of the records in this block.
    pub keyspace: u32,
    /// `block_flags`: bit 0 is [`FLAG_CONTINUES`]; the other bits must be 0.
    pub flags: u32,
    /// Number of this block within its keyspace, from 0.
    pub sequence: u32,
    /// Records whose encoding begins in this block.
    pub record_count: u32,
    /// Decompressed length of the data frame.
    pub raw_len: u32,
    /// Exact byte length of the data frame that follows.
    pub frame_len: u32,
    /// CRC-32 of the decompressed bytes.
    pub raw_crc32: u32,
    /// CRC-32 of the data frame's bytes.
    pub frame_crc32: u32,
}

impl BlockHeader {
    /// True if the block ends mid-record.
    pub fn continues(&self) -> bool {
        self.flags & FLAG_CONTINUES != 0
    }

    /// The header of a block whose raw bytes `raw` were compressed into the
    /// data frame `frame`: lengths and both CRCs (§6).
    pub fn describe(
        keyspace: u32,
        sequence: u32,
        continues: bool,
        record_count: u32,
        raw: &[u8],
        frame: &[u8],
    ) -> BlockHeader {
        BlockHeader {
            keyspace,
            flags: if continues { FLAG_CONTINUES } else { 0 },
            sequence,
            record_count,
            raw_len: raw.len() as u32,
            frame_len: frame.len() as u32,
            raw_crc32: crc32(raw),
            frame_crc32: crc32(frame),
        }
    }

    /// Encodes the 32-byte body this version writes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(BLOCK_HEADER_BODY);
        for v in [
            self.keyspace,
            self.flags,
            self.sequence,
            self.record_count,
            self.raw_len,
            self.frame_len,
            self.raw_crc32,
            self.frame_crc32,
        ] {
            b.put_u32(v);
        }
        b
    }

    /// Decodes and range-checks a block header (§11 item 6, header part).
    pub fn decode(sec: &Section<'_>) -> Result<BlockHeader> {
        sec.expect_tag(tags::BLOCK)?;
        let mut d = Dec::new(sec.body, sec.body_offset(), "block header");
        let keyspace = d.u32("keyspace")?;
        let flags = d.u32("block_flags")?;
        if flags & !FLAG_CONTINUES != 0 {
            return Err(FormatError::corrupt("block header", sec.offset, format!("unknown block flags {flags:#x}")));
        }
        let sequence = d.u32("sequence")?;
        let record_count = d.u32("record_count")?;
        let raw_len = d.u32("raw_len")?;
        let frame_len = d.u32("frame_len")?;
        let raw_crc32 = d.u32("raw_crc32")?;
        let frame_crc32 = d.u32("frame_crc32")?;
        if raw_len == 0 || raw_len > MAX_BLOCK_RAW {
            return Err(FormatError::corrupt(
                "block header",
                sec.offset,
                format!("raw_len {raw_len} outside 1..={MAX_BLOCK_RAW}"),
            ));
        }
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame_len) {
            return Err(FormatError::corrupt(
                "block header",
                sec.offset,
                format!("frame_len {frame_len} outside {MIN_FRAME}..={MAX_FRAME}"),
            ));
        }
        // A record takes at least 7 bytes (6 of header, a 1-byte key).
        if u64::from(record_count) * 7 > u64::from(raw_len) {
            return Err(FormatError::corrupt(
                "block header",
                sec.offset,
                format!("{record_count} records cannot fit in {raw_len} bytes"),
            ));
        }
        Ok(BlockHeader { keyspace, flags, sequence, record_count, raw_len, frame_len, raw_crc32, frame_crc32 })
    }
}

/// A reusable zstd compressor that writes §6-conformant data frames.
pub struct BlockCompressor {
    inner: zstd::bulk::Compressor<'static>,
    level: i32,
}

impl BlockCompressor {
    /// A compressor at zstd `level`; a level outside the linked zstd's
    /// [`zstd::compression_level_range`] is refused (zstd would silently clamp it).
    pub fn new(level: i32) -> std::io::Result<Self> {
        let range = zstd::compression_level_range();
        if !range.contains(&level) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("level {level} is outside zstd's range {}..={}", range.start(), range.end()),
            ));
        }
        let mut inner = zstd::bulk::Compressor::new(level)?;
        inner.include_checksum(true)?;
        inner.include_contentsize(true)?;
        inner.include_dictid(false)?;
        Ok(BlockCompressor { inner, level })
    }

    /// The zstd level it compresses at.
    pub fn level(&self) -> i32 {
        self.level
    }

    /// Compresses one block's raw bytes into a single zstd frame.
    pub fn compress(&mut self, raw: &[u8]) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.compress_into(raw, &mut out)?;
        Ok(out)
    }

    /// As [`BlockCompressor::compress`], into `out` (cleared first; its
    /// allocation is reused when large enough). The bytes are identical.
    pub fn compress_into(&mut self, raw: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(raw.len()));
        self.inner.compress_to_buffer(raw, out)?;
        Ok(())
    }
}

/// What a data-frame error names: the block by its keyspace and sequence
/// (the reader adds the keyspace's name and the archive).
fn frame_what(h: &BlockHeader, what: &str) -> String {
    format!("{what} of block {} of keyspace #{}", h.sequence, h.keyspace)
}

/// Checks a data frame against its header and decompresses it into `out`
/// (cleared first), never allocating more than `raw_len` bytes.
/// `offset` is the absolute offset of the frame.
pub fn decode_frame(h: &BlockHeader, frame: &[u8], offset: u64, out: &mut Vec<u8>) -> Result<()> {
    check_frame(h, frame, offset)?;
    out.clear();
    out.reserve_exact(h.raw_len as usize);
    let n = zstd::bulk::Decompressor::new().and_then(|mut d| d.decompress_to_buffer(frame, out)).map_err(|e| {
        FormatError::corrupt(frame_what(h, "data frame"), offset, format!("zstd could not decompress it: {e}"))
    })?;
    if n != h.raw_len as usize {
        return Err(FormatError::corrupt(
            frame_what(h, "data frame"),
            offset,
            format!("decompressed to {n} bytes, block header says {}", h.raw_len),
        ));
    }
    let c = crc32(out);
    if c != h.raw_crc32 {
        return Err(FormatError::Checksum {
            what: frame_what(h, "decompressed data"),
            offset,
            stored: h.raw_crc32,
            computed: c,
        });
    }
    Ok(())
}

/// A data frame decompressed a piece at a time, so that a reader looking
/// for one key can stop once it has passed it (`floe get`). The frame's
/// `frame_crc32` and header (§6) are checked before the first byte is
/// decompressed; the `raw_crc32` and the zstd content checksum cover the
/// whole block, so they are checked only by readers that decompress it all
/// ([`decode_frame`]).
pub struct PartialFrame<'a> {
    r: zstd::stream::read::Decoder<'a, &'a [u8]>,
    out: Vec<u8>,
    raw_len: usize,
    what: String,
    offset: u64,
}

impl<'a> PartialFrame<'a> {
    /// Checks the frame of the block with header `h` (at `offset`) and
    /// prepares to decompress it.
    pub fn new(h: &BlockHeader, frame: &'a [u8], offset: u64) -> Result<Self> {
        check_frame(h, frame, offset)?;
        let what = frame_what(h, "data frame");
        let r = zstd::stream::read::Decoder::with_buffer(frame)
            .map_err(|e| FormatError::corrupt(what.clone(), offset, format!("zstd could not start on it: {e}")))?
            .single_frame();
        Ok(PartialFrame { r, out: Vec::new(), raw_len: h.raw_len as usize, what, offset })
    }

    /// The bytes decompressed so far.
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// Decompresses until at least `n` bytes are out; false if the block is
    /// shorter (`n` > `raw_len`). Never decompresses past `raw_len`.
    pub fn fill(&mut self, n: usize) -> Result<bool> {
        use std::io::Read;
        if n > self.raw_len {
            return Ok(false);
        }
        while self.out.len() < n {
            let old = self.out.len();
            let step = (n - old).max(64 << 10).min(self.raw_len - old);
            self.out.resize(old + step, 0);
            let got = self.r.read(self.out.get_mut(old..).unwrap_or_default()).map_err(|e| {
                FormatError::corrupt(self.what.clone(), self.offset, format!("zstd could not decompress it: {e}"))
            })?;
            self.out.truncate(old + got);
            if got == 0 {
                return Err(FormatError::corrupt(
                    self.what.clone(),
                    self.offset,
                    format!("decompresses to {old} bytes, fewer than raw_len {}", self.raw_len),
                ));
            }
        }
        Ok(true)
    }
}

/// The `--quick` part of frame checking (§6): length, CRC, the zstd frame
/// header's fields ([`ZstdFrameHeader::check`]), exactly one frame. Does not
/// decompress.
pub fn check_frame(h: &BlockHeader, frame: &[u8], offset: u64) -> Result<()> {
    if frame.len() != h.frame_len as usize {
        return Err(FormatError::Truncated {
            what: frame_what(h, "data frame"),
            offset,
            need: u64::from(h.frame_len),
            have: frame.len() as u64,
        });
    }
    let c = crc32(frame);
    if c != h.frame_crc32 {
        return Err(FormatError::Checksum {
            what: frame_what(h, "data frame"),
            offset,
            stored: h.frame_crc32,
            computed: c,
        });
    }
    let z = ZstdFrameHeader::parse(frame, offset)?;
    z.check(h, offset)?;
    match zstd::zstd_safe::find_frame_compressed_size(frame) {
        Ok(n) if n == frame.len() => {}
        Ok(n) => {
            return Err(FormatError::corrupt(
                frame_what(h, "data frame"),
                offset,
                format!("holds more than one zstd frame (first is {n} of {} bytes)", frame.len()),
            ))
        }
        Err(_) => {
            return Err(FormatError::corrupt(frame_what(h, "data frame"), offset, "is not a well-formed zstd frame"))
        }
    }
    Ok(())
}

/// The fields of a zstd frame header (RFC 8878 §3.1.1.1) that §6 constrains,
/// read from the first 6 to 18 bytes of a frame. Parsing them is all a reader
/// needs to refuse a frame before handing it to a zstd decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZstdFrameHeader {
    /// `Single_Segment_Flag`.
    pub single_segment: bool,
    /// `Window_Size` (RFC 8878 §3.1.1.1.2): from the `Window_Descriptor`, or
    /// `Frame_Content_Size` for a single-segment frame.
    pub window_size: u64,
    /// `Frame_Content_Size`, when the frame declares it.
    pub content_size: Option<u64>,
    /// `Content_Checksum_Flag`.
    pub checksum: bool,
    /// `Dictionary_ID_Flag` (0: no `Dictionary_ID` field).
    pub dictionary_id_flag: u8,
}

impl ZstdFrameHeader {
    /// Parses the frame header at the start of `frame` (absolute offset `offset`).
    pub fn parse(frame: &[u8], offset: u64) -> Result<ZstdFrameHeader> {
        let cut = || FormatError::corrupt("data frame", offset, "zstd frame header is cut short");
        let magic = frame.first_chunk::<4>().ok_or_else(cut)?;
        if u32::from_le_bytes(*magic) != ZSTD_FRAME_MAGIC {
            return Err(FormatError::corrupt("data frame", offset, "does not start with the zstd frame magic"));
        }
        let fhd = *frame.get(4).ok_or_else(cut)?;
        if fhd & 0x08 != 0 {
            return Err(FormatError::corrupt(
                "data frame",
                offset,
                "zstd frame header has its reserved bit set (RFC 8878 3.1.1.1.1)",
            ));
        }
        let fcs_flag = fhd >> 6;
        let single_segment = fhd & 0x20 != 0;
        let checksum = fhd & 0x04 != 0;
        let dictionary_id_flag = fhd & 0x03;
        let mut at = 5;
        let window = if single_segment {
            None
        } else {
            let wd = *frame.get(at).ok_or_else(cut)?;
            at += 1;
            let log = 10 + u32::from(wd >> 3);
            let base = 1u64 << log;
            Some(base + (base / 8) * u64::from(wd & 7))
        };
        at += match dictionary_id_flag {
            0 => 0,
            1 => 1,
            2 => 2,
            _ => 4,
        };
        let fcs_len = match fcs_flag {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let field = frame.get(at..at + fcs_len).ok_or_else(cut)?;
        let mut le = [0u8; 8];
        // fcs_len is at most 8 (the match above)
        le.get_mut(..fcs_len).ok_or_else(cut)?.copy_from_slice(field);
        let value = u64::from_le_bytes(le);
        let content_size = match fcs_len {
            0 => None,
            2 => Some(value + 256),
            _ => Some(value),
        };
        // A single-segment frame always has a content size field (fcs_len >= 1).
        let window_size = window.or(content_size).unwrap_or(0);
        Ok(ZstdFrameHeader { single_segment, window_size, content_size, checksum, dictionary_id_flag })
    }

    /// Checks §6's rules for a block's data frame: declared content size
    /// equal to `raw_len`, window within [`MAX_WINDOW`], no dictionary,
    /// content checksum present.
    pub fn check(&self, h: &BlockHeader, offset: u64) -> Result<()> {
        let fail = |d: String| Err(FormatError::corrupt(frame_what(h, "data frame"), offset, d));
        match self.content_size {
            None => {
                return fail(format!(
                    "zstd frame does not declare its decompressed size (Frame_Content_Size); format-spec 6 requires it (block header says {})",
                    h.raw_len
                ))
            }
            Some(size) if size != u64::from(h.raw_len) => {
                return fail(format!("declares {size} decompressed bytes, block header says {}", h.raw_len))
            }
            Some(_) => {}
        }
        if self.window_size > MAX_WINDOW {
            return fail(format!(
                "zstd frame needs a window of {} bytes, more than the {MAX_WINDOW} format-spec 6 allows",
                self.window_size
            ));
        }
        if self.dictionary_id_flag != 0 {
            return fail("zstd frame names a dictionary; format-spec 6 forbids dictionaries".into());
        }
        if !self.checksum {
            return fail(
                "zstd frame has no content checksum (Content_Checksum_Flag); format-spec 6 requires it".into(),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::section::{decode_section, encode_section, FLAG_REQUIRED};

    fn make(raw: &[u8]) -> (BlockHeader, Vec<u8>) {
        let frame = BlockCompressor::new(3).unwrap().compress(raw).unwrap();
        let h = BlockHeader {
            keyspace: 0,
            flags: 0,
            sequence: 0,
            record_count: 1,
            raw_len: raw.len() as u32,
            frame_len: frame.len() as u32,
            raw_crc32: crc32(raw),
            frame_crc32: crc32(&frame),
        };
        (h, frame)
    }

    #[test]
    fn header_and_frame_round_trip() {
        let raw = b"some raw block bytes, some raw block bytes".to_vec();
        let (h, frame) = make(&raw);
        let s = encode_section(tags::BLOCK, FLAG_REQUIRED, &h.encode());
        assert_eq!(s.len(), BLOCK_HEADER_LEN);
        let h2 = BlockHeader::decode(&decode_section(&s, 0).unwrap()).unwrap();
        assert_eq!(h, h2);
        let mut out = Vec::new();
        decode_frame(&h, &frame, 0, &mut out).unwrap();
        assert_eq!(out, raw);
    }

    #[test]
    fn bomb_is_refused_without_allocating_its_size() {
        // A frame that really expands to 64 MiB, under a header claiming 100 bytes.
        let big = vec![0u8; 64 << 20];
        let (mut h, frame) = make(&big);
        h.raw_len = 100;
        h.frame_crc32 = crc32(&frame);
        let mut out = Vec::new();
        assert!(decode_frame(&h, &frame, 0, &mut out).is_err());
        assert!(out.capacity() < 1 << 20, "allocated {}", out.capacity());
    }

    #[test]
    fn two_frames_in_one_block_are_refused() {
        let (_, f1) = make(b"aaaa");
        let mut frame = f1.clone();
        frame.extend_from_slice(&f1);
        let (mut h, _) = make(b"aaaaaaaa");
        h.frame_len = frame.len() as u32;
        h.frame_crc32 = crc32(&frame);
        let mut out = Vec::new();
        assert!(decode_frame(&h, &frame, 0, &mut out).is_err());
    }
}
