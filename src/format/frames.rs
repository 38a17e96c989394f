//! §2 file layout: the one frame walker. "Read 8 bytes, classify the frame
//! (§3), read the rest of the section, check its CRC" is written here once,
//! and so is "what may stand in the data region between `KSTB` and `INDX`"
//! (§2, §10, §11 rule 9). Both readers use it: the random-access reader
//! (`reader::Archive`, over memory or ranged reads) and the streaming reader
//! (`reader::StreamReader`, over any `Read`). Each supplies the bytes through
//! [`ReadAt`]; the walker decides what they mean.
//!
//! Every size comes from the section's own `frame_size`, never from what this
//! version writes: a section whose body carries fields appended by a later
//! minor version (§3, §10) is walked like any other.

use super::block::BlockHeader;
use super::section::{check_unknown, decode_section, frame_start, tag_name, tags, FrameStart, Section};
use super::FormatError;
use std::ops::Deref;

/// Where the walker gets bytes: a slice in memory, ranged reads, or a stream
/// read front to back.
pub trait ReadAt {
    /// The bytes of one read (borrowed or owned).
    type Buf: Deref<Target = [u8]>;
    /// The error a read can fail with.
    type Error;
    /// Exactly `len` bytes at absolute offset `offset`, or an error (a
    /// truncation error naming `what` when the archive ends first). The walker
    /// asks for the 8 bytes at an offset and then for the whole section at the
    /// same offset, so a front-to-back source must serve that second read from
    /// the 8 bytes it already gave out plus the bytes that follow; otherwise
    /// offsets only increase.
    fn read_at(&mut self, offset: u64, len: u64, what: &str) -> Result<Self::Buf, Self::Error>;
    /// Turns a format error into this source's error (adding, say, the archive's name).
    fn error(&self, e: FormatError) -> Self::Error;
}

/// A whole archive (or its first bytes) in memory: offset 0 is `self.0[0]`.
pub struct InMemory<'a>(pub &'a [u8]);

impl<'a> ReadAt for InMemory<'a> {
    type Buf = &'a [u8];
    type Error = FormatError;
    fn read_at(&mut self, offset: u64, len: u64, what: &str) -> Result<&'a [u8], FormatError> {
        let range = usize::try_from(offset).ok().zip(offset.checked_add(len).and_then(|e| usize::try_from(e).ok()));
        range.and_then(|(start, end)| self.0.get(start..end)).ok_or_else(|| {
            let have = (self.0.len() as u64).saturating_sub(offset);
            FormatError::Truncated { what: what.into(), offset, need: len, have }
        })
    }
    fn error(&self, e: FormatError) -> FormatError {
        e
    }
}

/// A section read by [`read_section`]: magic, size and CRC checked.
#[derive(Debug, Clone)]
pub struct SectionBuf<B> {
    /// Absolute offset of the section's first byte.
    pub offset: u64,
    /// The section's tag.
    pub tag: [u8; 4],
    /// The section's flags.
    pub flags: u32,
    /// Total size, framing included (`frame_size + 8`).
    pub total_len: u64,
    bytes: B,
}

impl<B: Deref<Target = [u8]>> SectionBuf<B> {
    /// The decoded section, borrowing these bytes.
    #[expect(
        clippy::indexing_slicing,
        reason = "read_section, the only constructor, decoded these bytes as a section: they hold its 20 bytes of framing"
    )]
    pub fn section(&self) -> Section<'_> {
        Section {
            offset: self.offset,
            tag: self.tag,
            flags: self.flags,
            body: &self.bytes[super::section::SECTION_OVERHEAD..],
            total_len: self.total_len,
        }
    }
    /// Absolute offset of the first byte after the section.
    pub fn end(&self) -> u64 {
        self.offset + self.total_len
    }
    /// The section's bytes, framing included.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reads the section at `offset` (§3): its first 8 bytes first, which are
/// classified and bounded (a zstd data frame, a foreign skippable frame, any
/// other magic and a `frame_size` outside §1.1 are refused there, before
/// anything is allocated for the rest), then the whole section, whose CRC is
/// checked.
pub fn read_section<R: ReadAt>(r: &mut R, offset: u64) -> Result<SectionBuf<R::Buf>, R::Error> {
    let total_len =
        {
            let first = r.read_at(offset, 8, "section header")?;
            let Some(first8) = first.first_chunk::<8>() else {
                let have = first.len() as u64;
                return Err(r.error(FormatError::Truncated { what: "section header".into(), offset, need: 8, have }));
            };
            match frame_start(first8, offset) {
                Ok(FrameStart::Section { total_len }) => total_len,
                Ok(FrameStart::Zstd) => return Err(r.error(FormatError::corrupt(
                    "section",
                    offset,
                    "found a zstd data frame where a section was expected (a data frame must follow its block header)",
                ))),
                Err(e) => return Err(r.error(e)),
            }
        };
    let bytes = r.read_at(offset, total_len, "section")?;
    let (tag, flags) = match decode_section(&bytes, offset) {
        Ok(s) => (s.tag, s.flags),
        Err(e) => return Err(r.error(e)),
    };
    Ok(SectionBuf { offset, tag, flags, total_len, bytes })
}

/// One item of the data region (§2): what stands between the keyspace table
/// and the index, and the index that ends it.
#[derive(Debug)]
pub enum DataItem<B> {
    /// A block: its `BLKH` section and decoded header. The data frame is the
    /// `header.frame_len` bytes at [`DataItem::frame_offset`]; the walker does
    /// not read it (each reader reads, checks and decompresses it its own way).
    Block {
        /// The `BLKH` section.
        section: SectionBuf<B>,
        /// Its decoded block header.
        header: BlockHeader,
    },
    /// An unknown section without `REQUIRED` (§10), skipped. Its CRC was checked.
    Skipped(SectionBuf<B>),
    /// The `INDX` section: the data region ends here.
    Index(SectionBuf<B>),
    /// A `KIDX` key index part (§8.2), CRC checked, not yet decoded: the
    /// reader checks that the index's directory lists it at this offset.
    KeyIndex(SectionBuf<B>),
}

impl<B: Deref<Target = [u8]>> DataItem<B> {
    /// Absolute offset of the item's first byte.
    pub fn offset(&self) -> u64 {
        match self {
            DataItem::Block { section, .. }
            | DataItem::Skipped(section)
            | DataItem::Index(section)
            | DataItem::KeyIndex(section) => section.offset,
        }
    }
    /// Absolute offset of a block's data frame (right after its header
    /// section, whatever that section's size); the end of the section otherwise.
    pub fn frame_offset(&self) -> u64 {
        match self {
            DataItem::Block { section, .. }
            | DataItem::Skipped(section)
            | DataItem::Index(section)
            | DataItem::KeyIndex(section) => section.end(),
        }
    }
    /// Absolute offset of the first byte after the item (after a block's data frame).
    pub fn end(&self) -> u64 {
        match self {
            DataItem::Block { section, header } => section.end() + u64::from(header.frame_len),
            DataItem::Skipped(section) | DataItem::Index(section) | DataItem::KeyIndex(section) => section.end(),
        }
    }
    /// Printable tag of the item's section.
    pub fn tag_name(&self) -> String {
        match self {
            DataItem::Block { section, .. }
            | DataItem::Skipped(section)
            | DataItem::Index(section)
            | DataItem::KeyIndex(section) => tag_name(&section.tag),
        }
    }
}

/// Reads the item of the data region that starts at `offset` (§2, §10, §11
/// rule 9): a block header (decoded and range-checked, §6), an unknown
/// optional section (skipped), or the index. Anything else is refused at
/// `offset`: garbage, a foreign skippable frame, a zstd frame without a block
/// header before it, a known section other than `BLKH`, `KIDX` and `INDX`, and an
/// unknown section with `REQUIRED` set.
pub fn read_data_item<R: ReadAt>(r: &mut R, offset: u64) -> Result<DataItem<R::Buf>, R::Error> {
    let section = read_section(r, offset)?;
    match section.tag {
        tags::BLOCK => match BlockHeader::decode(&section.section()) {
            Ok(header) => Ok(DataItem::Block { section, header }),
            Err(e) => Err(r.error(e)),
        },
        tags::INDEX => Ok(DataItem::Index(section)),
        tags::KEY_INDEX => Ok(DataItem::KeyIndex(section)),
        t if tags::is_known(&t) => Err(r.error(FormatError::corrupt(
            "section",
            offset,
            format!("unexpected '{}' section in the data region", tag_name(&t)),
        ))),
        _ => match check_unknown(&section.section()) {
            Ok(()) => Ok(DataItem::Skipped(section)),
            Err(e) => Err(r.error(e)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::section::{encode_section, FLAG_REQUIRED};

    #[test]
    fn sizes_come_from_the_section_not_from_this_version() {
        let h = BlockHeader {
            keyspace: 0,
            flags: 0,
            sequence: 0,
            record_count: 0,
            raw_len: 10,
            frame_len: 9,
            raw_crc32: 0,
            frame_crc32: 0,
        };
        let mut body = h.encode();
        body.extend_from_slice(b"appended by format 1.1");
        let mut a = vec![0xEEu8; 5];
        a.extend_from_slice(&encode_section(tags::BLOCK, FLAG_REQUIRED, &body));
        let item = read_data_item(&mut InMemory(&a), 5).unwrap();
        assert_eq!(item.frame_offset(), 5 + 20 + body.len() as u64);
        assert_eq!(item.end(), item.frame_offset() + 9);
        assert!(matches!(item, DataItem::Block { header, .. } if header == h));
        // Garbage where an item should start is refused at its offset.
        let e = read_data_item(&mut InMemory(&a), 0).unwrap_err().to_string();
        assert!(e.contains("offset 0"), "{e}");
    }

    #[test]
    fn unknown_sections_follow_the_required_flag() {
        let a = encode_section(*b"XTRA", 0, b"x");
        assert!(matches!(read_data_item(&mut InMemory(&a), 0).unwrap(), DataItem::Skipped(_)));
        let a = encode_section(*b"XTRA", FLAG_REQUIRED, b"x");
        assert!(read_data_item(&mut InMemory(&a), 0).unwrap_err().is_unsupported());
        let a = encode_section(tags::KEYSPACES, FLAG_REQUIRED, b"x");
        assert!(read_data_item(&mut InMemory(&a), 0).is_err());
    }
}
