//! §3 section framing: every piece of metadata is one zstd skippable frame
//! `magic, frame_size, crc32, tag, flags, body`.

use super::codec::Put;
use super::limits::MAX_SECTION;
use super::{FormatError, Result};

/// The skippable-frame magic floe uses for all of its sections.
pub const SECTION_MAGIC: u32 = 0x184D_2A5A;
/// Bytes of framing around a section body (magic, size, crc, tag, flags).
pub const SECTION_OVERHEAD: usize = 20;
/// Section flag bit 0: a reader that does not know the tag must refuse the archive.
pub const FLAG_REQUIRED: u32 = 1;
/// Magic of an ordinary zstd frame (RFC 8878 §3.1.1).
pub const ZSTD_FRAME_MAGIC: u32 = 0xFD2F_B528;

/// Section tags defined by format 1.
pub mod tags {
    /// The §4 header.
    pub const HEADER: [u8; 4] = *b"FLOE";
    /// The §5 keyspace table.
    pub const KEYSPACES: [u8; 4] = *b"KSTB";
    /// The §6 block header.
    pub const BLOCK: [u8; 4] = *b"BLKH";
    /// The §8 index.
    pub const INDEX: [u8; 4] = *b"INDX";
    /// The §9 trailer.
    pub const TRAILER: [u8; 4] = *b"TRLR";
    /// A §8.2 key index part (format 1.1; optional, `REQUIRED` clear).
    pub const KEY_INDEX: [u8; 4] = *b"KIDX";

    /// True for tags this reader understands.
    pub fn is_known(tag: &[u8; 4]) -> bool {
        [HEADER, KEYSPACES, BLOCK, INDEX, TRAILER, KEY_INDEX].contains(tag)
    }
}

/// Printable form of a tag for messages.
pub fn tag_name(tag: &[u8; 4]) -> String {
    tag.iter().map(|&b| if b.is_ascii_graphic() { (b as char).to_string() } else { format!("\\x{b:02x}") }).collect()
}

/// Appends one complete section to `out`.
pub fn put_section(out: &mut Vec<u8>, tag: [u8; 4], flags: u32, body: &[u8]) {
    let frame_size = (12 + body.len()) as u32;
    // The CRC covers every byte but its own field (`section_crc`), hashed
    // here from the parts before they are appended.
    let mut h = crc32fast::Hasher::new();
    h.update(&SECTION_MAGIC.to_le_bytes());
    h.update(&frame_size.to_le_bytes());
    h.update(&tag);
    h.update(&flags.to_le_bytes());
    h.update(body);
    out.put_u32(SECTION_MAGIC);
    out.put_u32(frame_size);
    out.put_u32(h.finalize());
    out.extend_from_slice(&tag);
    out.put_u32(flags);
    out.extend_from_slice(body);
}

/// Encodes one complete section.
pub fn encode_section(tag: [u8; 4], flags: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SECTION_OVERHEAD + body.len());
    put_section(&mut out, tag, flags, body);
    out
}

/// CRC of a whole section, skipping its crc field (bytes 8..12).
///
/// Defined for any input and never panics: input shorter than 12 bytes (too
/// short to be a section) is hashed up to its 8th byte, as if the missing
/// part of the crc field were skipped.
pub fn section_crc(section: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(section.get(..8).unwrap_or(section));
    h.update(section.get(12..).unwrap_or_default());
    h.finalize()
}

/// What the first 8 bytes of a frame announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStart {
    /// A floe section of this total size (header included).
    Section {
        /// Bytes of the section, its 8-byte frame header included.
        total_len: u64,
    },
    /// An ordinary zstd frame.
    Zstd,
}

/// Classifies a frame from its first 8 bytes, and bounds a section's size.
pub fn frame_start(first8: &[u8; 8], offset: u64) -> Result<FrameStart> {
    let magic = u32::from_le_bytes([first8[0], first8[1], first8[2], first8[3]]);
    let size = u32::from_le_bytes([first8[4], first8[5], first8[6], first8[7]]);
    if magic == SECTION_MAGIC {
        let total = 8 + u64::from(size);
        if (size as usize) < 12 {
            return Err(FormatError::corrupt(
                "section",
                offset,
                format!("frame_size {size} is below the minimum of 12"),
            ));
        }
        if total > MAX_SECTION {
            return Err(FormatError::corrupt(
                "section",
                offset,
                format!("section size {total} exceeds the format limit of {MAX_SECTION} bytes"),
            ));
        }
        Ok(FrameStart::Section { total_len: total })
    } else if magic == ZSTD_FRAME_MAGIC {
        Ok(FrameStart::Zstd)
    } else if magic & 0xFFFF_FFF0 == 0x184D_2A50 {
        Err(FormatError::corrupt(
            "section",
            offset,
            format!("foreign zstd skippable frame (magic {magic:#010x}) where a floe section was expected"),
        ))
    } else {
        Err(FormatError::corrupt(
            "frame",
            offset,
            format!("bad frame magic {magic:#010x}: not a floe section or zstd frame"),
        ))
    }
}

/// A decoded, checksum-verified section borrowed from the archive bytes.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    /// Absolute offset of the section's first byte.
    pub offset: u64,
    /// The section's tag (`tags::*`, or one this reader does not know).
    pub tag: [u8; 4],
    /// The section's flags ([`FLAG_REQUIRED`] and reserved bits).
    pub flags: u32,
    /// The section's body, after the 20 bytes of framing.
    pub body: &'a [u8],
    /// Total size of the section, framing included.
    pub total_len: u64,
}

impl<'a> Section<'a> {
    /// Absolute offset of the first body byte.
    pub fn body_offset(&self) -> u64 {
        self.offset + SECTION_OVERHEAD as u64
    }
    /// True if the `REQUIRED` flag is set.
    pub fn required(&self) -> bool {
        self.flags & FLAG_REQUIRED != 0
    }
    /// Fails unless this section has the expected tag.
    pub fn expect_tag(&self, tag: [u8; 4]) -> Result<()> {
        if self.tag != tag {
            return Err(FormatError::corrupt(
                "section",
                self.offset,
                format!("expected a '{}' section, found '{}'", tag_name(&tag), tag_name(&self.tag)),
            ));
        }
        Ok(())
    }
}

/// Decodes the section that starts at `buf[0]` (absolute offset `offset`).
/// `buf` may extend past the section. Checks magic, size and CRC.
pub fn decode_section(buf: &[u8], offset: u64) -> Result<Section<'_>> {
    let Some(first8) = buf.first_chunk::<8>() else {
        return Err(FormatError::Truncated { what: "section header".into(), offset, need: 8, have: buf.len() as u64 });
    };
    let total = match frame_start(first8, offset)? {
        FrameStart::Section { total_len } => total_len,
        FrameStart::Zstd => {
            return Err(FormatError::corrupt("section", offset, "found a zstd data frame where a section was expected"))
        }
    };
    let truncated = || FormatError::Truncated { what: "section".into(), offset, need: total, have: buf.len() as u64 };
    let sec = usize::try_from(total).ok().and_then(|t| buf.get(..t)).ok_or_else(truncated)?;
    // `frame_start` bounds `frame_size` below by 12, so `total` >= 20 and the
    // framing is there; the `else` is for the type system.
    let Some((framing, body)) = sec.split_first_chunk::<SECTION_OVERHEAD>() else { return Err(truncated()) };
    let stored = u32::from_le_bytes([framing[8], framing[9], framing[10], framing[11]]);
    let computed = section_crc(sec);
    let tag = [framing[12], framing[13], framing[14], framing[15]];
    if stored != computed {
        return Err(FormatError::Checksum { what: format!("section '{}'", tag_name(&tag)), offset, stored, computed });
    }
    let flags = u32::from_le_bytes([framing[16], framing[17], framing[18], framing[19]]);
    Ok(Section { offset, tag, flags, body, total_len: total })
}

/// Applies §10 to a section whose tag is not one of `tags::*`: error if required.
pub fn check_unknown(sec: &Section<'_>) -> Result<()> {
    if sec.required() {
        Err(FormatError::UnknownRequiredSection { tag: tag_name(&sec.tag), offset: sec.offset })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_round_trip_and_every_bit_is_covered() {
        let s = encode_section(*b"TEST", FLAG_REQUIRED, b"hello");
        let d = decode_section(&s, 100).unwrap();
        assert_eq!(d.body, b"hello");
        assert_eq!(d.tag, *b"TEST");
        assert_eq!(d.total_len, s.len() as u64);
        for bit in 0..s.len() * 8 {
            let mut c = s.clone();
            c[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_section(&c, 0).is_err(), "flipping bit {bit} went unnoticed");
        }
    }

    #[test]
    fn section_crc_is_total_on_short_input() {
        // Shorter than the 12 bytes up to the end of the crc field: hashed up
        // to byte 8, never a panic.
        let bytes: Vec<u8> = (1..=12).collect();
        for n in 0..12 {
            let b = &bytes[..n];
            assert_eq!(section_crc(b), crate::format::crc32(&b[..n.min(8)]), "{n} bytes");
        }
        assert_eq!(section_crc(&bytes), crate::format::crc32(&bytes[..8]));
        // A short buffer is refused by the decoder, not a panic.
        for n in 0..SECTION_OVERHEAD {
            assert!(decode_section(&encode_section(*b"TEST", 0, b"")[..n], 0).is_err(), "{n} bytes");
        }
    }

    #[test]
    fn encoded_crc_is_section_crc() {
        let s = encode_section(*b"TEST", 3, b"body");
        assert_eq!(u32::from_le_bytes([s[8], s[9], s[10], s[11]]), section_crc(&s));
    }

    #[test]
    fn crc_check_value() {
        assert_eq!(crate::format::crc32(b"123456789"), 0xCBF4_3926);
    }
}
