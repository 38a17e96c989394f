//! §6 blocks: a `BLKH` section followed by one zstd data frame.

use super::codec::{Dec, Put};
use super::limits::{MAX_BLOCK_RAW, MAX_FRAME, MIN_FRAME};
use super::section::{tags, Section, ZSTD_FRAME_MAGIC};
use super::{crc32, FormatError, Result};

/// Block flag bit 0: the block ends mid-record.
pub const FLAG_CONTINUES: u32 = 1;
/// Size of a `BLKH` body.
pub const BLOCK_HEADER_BODY: usize = 32;
/// Size of a whole `BLKH` section.
pub const BLOCK_HEADER_LEN: usize = super::section::SECTION_OVERHEAD + BLOCK_HEADER_BODY;

/// A block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub keyspace: u32,
    pub flags: u32,
    pub sequence: u32,
    pub record_count: u32,
    pub raw_len: u32,
    pub frame_len: u32,
    pub raw_crc32: u32,
    pub frame_crc32: u32,
}

impl BlockHeader {
    /// True if the block ends mid-record.
    pub fn continues(&self) -> bool {
        self.flags & FLAG_CONTINUES != 0
    }

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

/// Checks a data frame against its header and decompresses it into `out`
/// (cleared first), never allocating more than `raw_len` bytes.
/// `offset` is the absolute offset of the frame.
pub fn decode_frame(h: &BlockHeader, frame: &[u8], offset: u64, out: &mut Vec<u8>) -> Result<()> {
    check_frame(h, frame, offset)?;
    out.clear();
    out.reserve_exact(h.raw_len as usize);
    let n = zstd::bulk::Decompressor::new()
        .and_then(|mut d| d.decompress_to_buffer(frame, out))
        .map_err(|e| FormatError::corrupt("data frame", offset, format!("zstd could not decompress it: {e}")))?;
    if n != h.raw_len as usize {
        return Err(FormatError::corrupt(
            "data frame",
            offset,
            format!("decompressed to {n} bytes, block header says {}", h.raw_len),
        ));
    }
    let c = crc32(out);
    if c != h.raw_crc32 {
        return Err(FormatError::Checksum {
            what: "decompressed block".into(),
            offset,
            stored: h.raw_crc32,
            computed: c,
        });
    }
    Ok(())
}

/// The `--quick` part of frame checking: length, magic, CRC, single frame,
/// declared content size. Does not decompress.
pub fn check_frame(h: &BlockHeader, frame: &[u8], offset: u64) -> Result<()> {
    if frame.len() != h.frame_len as usize {
        return Err(FormatError::Truncated {
            what: "data frame".into(),
            offset,
            need: u64::from(h.frame_len),
            have: frame.len() as u64,
        });
    }
    let c = crc32(frame);
    if c != h.frame_crc32 {
        return Err(FormatError::Checksum { what: "data frame".into(), offset, stored: h.frame_crc32, computed: c });
    }
    if frame.len() < 4 || u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) != ZSTD_FRAME_MAGIC {
        return Err(FormatError::corrupt("data frame", offset, "does not start with the zstd frame magic"));
    }
    match zstd::zstd_safe::find_frame_compressed_size(frame) {
        Ok(n) if n == frame.len() => {}
        Ok(n) => {
            return Err(FormatError::corrupt(
                "data frame",
                offset,
                format!("holds more than one zstd frame (first is {n} of {} bytes)", frame.len()),
            ))
        }
        Err(_) => return Err(FormatError::corrupt("data frame", offset, "is not a well-formed zstd frame")),
    }
    if let Ok(Some(size)) = zstd::zstd_safe::get_frame_content_size(frame) {
        if size != u64::from(h.raw_len) {
            return Err(FormatError::corrupt(
                "data frame",
                offset,
                format!("declares {size} decompressed bytes, block header says {}", h.raw_len),
            ));
        }
    }
    Ok(())
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
