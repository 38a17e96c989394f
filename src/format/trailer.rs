//! §9 the fixed-size trailer section (`TRLR`), and its agreement with the
//! index it locates.

use super::codec::{Dec, Put};
use super::limits::MAX_SECTION;
use super::section::{decode_section, encode_section, tags, FLAG_REQUIRED, SECTION_MAGIC};
use super::{FormatError, Result};

/// Total size of the trailer section.
pub const TRAILER_LEN: usize = 60;
/// The trailer's `frame_size`, fixed in every 1.x version.
pub const TRAILER_FRAME_SIZE: u32 = TRAILER_LEN as u32 - 8;
/// The last 8 bytes of every archive.
pub const END_MAGIC: [u8; 8] = *b"FLOE\r\n\x1a\n";

/// The trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    /// Absolute offset of the index section.
    pub index_offset: u64,
    /// Size of the index section, framing included.
    pub index_size: u64,
    /// Size of the whole archive, this trailer included.
    pub archive_size: u64,
    /// Blocks in the archive (as the index lists).
    pub block_count: u64,
}

impl Trailer {
    /// Encodes the whole 60-byte section.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(40);
        b.put_u64(self.index_offset);
        b.put_u64(self.index_size);
        b.put_u64(self.archive_size);
        b.put_u64(self.block_count);
        b.extend_from_slice(&END_MAGIC);
        let s = encode_section(tags::TRAILER, FLAG_REQUIRED, &b);
        debug_assert_eq!(s.len(), TRAILER_LEN);
        s
    }

    /// Checks where the trailer places the index, before a random-access
    /// reader reads it (§9, §11 item 1): inside the data region's end
    /// (`data_start` is the end of `KSTB`), and no larger than a section may
    /// be. `at` is the trailer's offset.
    pub fn check_index_location(&self, at: u64, data_start: u64) -> Result<()> {
        if self.index_offset < data_start {
            return Err(FormatError::corrupt(
                "trailer",
                at,
                format!("index_offset {} points before the data region ({data_start})", self.index_offset),
            ));
        }
        if self.index_size > MAX_SECTION {
            return Err(FormatError::corrupt(
                "trailer",
                at,
                format!("index_size {} exceeds the section limit of {MAX_SECTION} bytes", self.index_size),
            ));
        }
        Ok(())
    }

    /// Checks the trailer at `at` against the index section it follows (§9):
    /// that section starts at `index_offset`, is `index_size` bytes long and
    /// lists `block_count` blocks.
    pub fn check_index(&self, at: u64, index_offset: u64, index_size: u64, block_count: u64) -> Result<()> {
        let mut diffs = Vec::new();
        if self.index_offset != index_offset {
            diffs.push(format!("index_offset {} but the index starts at {index_offset}", self.index_offset));
        }
        if self.index_size != index_size {
            diffs.push(format!("index_size {} but the index section is {index_size} bytes", self.index_size));
        }
        if self.block_count != block_count {
            diffs.push(format!("block_count {} but the index lists {block_count}", self.block_count));
        }
        if diffs.is_empty() {
            Ok(())
        } else {
            Err(FormatError::corrupt("trailer", at, format!("disagrees with the index: {}", diffs.join("; "))))
        }
    }

    /// Decodes the trailer from the last bytes of a file of `file_len` bytes
    /// (§11 item 1). `tail` is exactly the last 60 bytes.
    pub fn decode(tail: &[u8], file_len: u64) -> Result<Trailer> {
        let offset = file_len.saturating_sub(TRAILER_LEN as u64);
        let fixed: Option<&[u8; TRAILER_LEN]> = tail.try_into().ok();
        let Some(fixed) = fixed.filter(|_| file_len >= TRAILER_LEN as u64) else {
            return Err(FormatError::Truncated {
                what: "trailer".into(),
                offset,
                need: TRAILER_LEN as u64,
                have: file_len.min(tail.len() as u64),
            });
        };
        if fixed.last_chunk::<8>() != Some(&END_MAGIC) {
            return Err(FormatError::corrupt(
                "trailer",
                offset,
                "no floe trailer at the end of the file: the archive is truncated, has data appended, or is not a floe archive",
            ));
        }
        // §9: the trailer never grows. Its frame_size is 52 in every 1.x version
        // (a reader finds it at end of file − 60), so any other size is corrupt.
        let magic = u32::from_le_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]);
        let frame_size = u32::from_le_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        if magic != SECTION_MAGIC {
            return Err(FormatError::corrupt(
                "trailer",
                offset,
                format!("no section starts 60 bytes before the end of the file (found {magic:#010x}): the trailer is always exactly 60 bytes"),
            ));
        }
        if frame_size != TRAILER_FRAME_SIZE {
            return Err(FormatError::corrupt(
                "trailer",
                offset,
                format!(
                    "trailer frame_size is {frame_size}, must be {TRAILER_FRAME_SIZE} (the trailer has a fixed size)"
                ),
            ));
        }
        let sec = decode_section(tail, offset)?;
        sec.expect_tag(tags::TRAILER)?;
        if sec.total_len != TRAILER_LEN as u64 {
            return Err(FormatError::corrupt(
                "trailer",
                offset,
                format!("trailer section is {} bytes, expected {TRAILER_LEN}", sec.total_len),
            ));
        }
        let mut d = Dec::new(sec.body, sec.body_offset(), "trailer");
        let t = Trailer {
            index_offset: d.u64("index_offset")?,
            index_size: d.u64("index_size")?,
            archive_size: d.u64("archive_size")?,
            block_count: d.u64("block_count")?,
        };
        if t.archive_size != file_len {
            return Err(FormatError::corrupt(
                "trailer",
                offset,
                format!("archive_size says {} bytes but the file has {file_len}: truncated or padded", t.archive_size),
            ));
        }
        if t.index_offset.checked_add(t.index_size) != Some(offset) {
            return Err(FormatError::corrupt(
                "trailer",
                offset,
                format!(
                    "index at {} of {} bytes does not end where the trailer starts ({offset})",
                    t.index_offset, t.index_size
                ),
            ));
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size_checks() {
        let t = Trailer { index_offset: 1000, index_size: 40, archive_size: 1100, block_count: 3 };
        let e = t.encode();
        assert_eq!(e.len(), TRAILER_LEN);
        assert_eq!(&e[e.len() - 8..], &END_MAGIC);
        assert_eq!(Trailer::decode(&e, 1100).unwrap(), t);
        assert!(Trailer::decode(&e, 1101).is_err());
        let bad = Trailer { index_size: 41, ..t }.encode();
        assert!(Trailer::decode(&bad, 1100).is_err());
    }

    #[test]
    fn the_trailer_must_agree_with_the_index() {
        let t = Trailer { index_offset: 1000, index_size: 40, archive_size: 1100, block_count: 3 };
        t.check_index_location(1040, 1000).unwrap();
        t.check_index(1040, 1000, 40, 3).unwrap();
        let e = t.check_index_location(1040, 1001).unwrap_err().to_string();
        assert!(e.contains("index_offset 1000 points before the data region (1001)"), "{e}");
        let e = Trailer { index_size: MAX_SECTION + 1, ..t }.check_index_location(1040, 10).unwrap_err().to_string();
        assert!(e.contains("exceeds the section limit"), "{e}");
        for (got, says) in [
            (t.check_index(1040, 999, 40, 3), "index_offset 1000 but the index starts at 999"),
            (t.check_index(1040, 1000, 41, 3), "index_size 40 but the index section is 41 bytes"),
            (t.check_index(1040, 1000, 40, 2), "block_count 3 but the index lists 2"),
        ] {
            let e = got.unwrap_err().to_string();
            assert!(e.contains("trailer at offset 1040") && e.contains(says), "{e}");
        }
    }
}
