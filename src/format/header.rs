//! §4 the header section (`FLOE`) and §10 its version and feature rules.

use super::codec::{Dec, Put};
use super::limits::{MAX_BLOCK_RAW, MAX_KEYSPACES, MIN_BLOCK_TARGET};
use super::section::{tags, Section};
use super::{FormatError, Result, FORMAT_MAJOR, FORMAT_MINOR};

/// Required feature bits this reader implements (§10). Format 1.0 defines none.
pub const KNOWN_REQUIRED_FEATURES: u64 = 0;
/// Codec id for zstd.
pub const CODEC_ZSTD: u8 = 1;

/// The archive header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// `format_major` (§4): 1 for this version.
    pub format_major: u16,
    /// `format_minor` (§4).
    pub format_minor: u16,
    /// Feature bits a reader must implement to read the archive (none defined yet).
    pub required_features: u64,
    /// Feature bits a reader may ignore (none defined yet).
    pub optional_features: u64,
    /// Codec id: [`CODEC_ZSTD`] is the only one.
    pub codec: u8,
    /// The zstd level the writer used (informational).
    pub level: i32,
    /// The raw block size the writer aimed for (§6, §12).
    pub block_target: u32,
    /// Volatile.
    pub snapshot_seqno: u64,
    /// Volatile: seconds since the Unix epoch.
    pub created_unix: i64,
    /// Number of keyspaces in the keyspace table.
    pub keyspace_count: u32,
    /// Source engine name, e.g. `fjall` (empty without an engine).
    pub engine: String,
    /// Source engine version, e.g. `3.1.13`.
    pub engine_version: String,
    /// The writing software and version, e.g. `floe 0.1.0`.
    pub writer: String,
}

impl Header {
    /// A header for the current format version.
    pub fn new(level: i32, block_target: u32, keyspace_count: u32) -> Self {
        Header {
            format_major: FORMAT_MAJOR,
            format_minor: FORMAT_MINOR,
            required_features: 0,
            optional_features: 0,
            codec: CODEC_ZSTD,
            level,
            block_target,
            snapshot_seqno: 0,
            created_unix: 0,
            keyspace_count,
            engine: String::new(),
            engine_version: String::new(),
            writer: format!("floe {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Encodes the section body.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.put_u16(self.format_major);
        b.put_u16(self.format_minor);
        b.put_u64(self.required_features);
        b.put_u64(self.optional_features);
        b.put_u8(self.codec);
        b.put_i32(self.level);
        b.put_u32(self.block_target);
        b.put_u64(self.snapshot_seqno);
        b.put_i64(self.created_unix);
        b.put_u32(self.keyspace_count);
        // A string over the field's 65,535 bytes is cut on a character
        // boundary: the field must stay valid UTF-8 (§4).
        for s in [&self.engine, &self.engine_version, &self.writer] {
            b.put_bytes16(crate::util::text::truncate_at_char(s, u16::MAX as usize).as_bytes());
        }
        b
    }

    /// Decodes and validates a header section (§4, §10, §11 item 3).
    pub fn decode(sec: &Section<'_>) -> Result<Header> {
        sec.expect_tag(tags::HEADER)?;
        let mut d = Dec::new(sec.body, sec.body_offset(), "header");
        let format_major = d.u16("format_major")?;
        let format_minor = d.u16("format_minor")?;
        // Refuse other majors before reading anything else: their layout may differ.
        if format_major != FORMAT_MAJOR {
            return Err(FormatError::UnsupportedVersion {
                major: format_major,
                minor: format_minor,
                supported: FORMAT_MAJOR,
            });
        }
        let required_features = d.u64("required_features")?;
        let unknown = required_features & !KNOWN_REQUIRED_FEATURES;
        if unknown != 0 {
            return Err(FormatError::UnknownRequiredFeatures { bits: unknown });
        }
        let optional_features = d.u64("optional_features")?;
        let at = d.offset();
        let codec = d.u8("codec")?;
        if codec != CODEC_ZSTD {
            return Err(FormatError::corrupt(
                "header",
                at,
                format!("unknown codec id {codec} (1 = zstd is the only one defined)"),
            ));
        }
        let level = d.i32("level")?;
        let at = d.offset();
        let block_target = d.u32("block_target")?;
        if !(MIN_BLOCK_TARGET..=MAX_BLOCK_RAW).contains(&block_target) {
            return Err(FormatError::corrupt(
                "header",
                at,
                format!("block_target {block_target} outside {MIN_BLOCK_TARGET}..={MAX_BLOCK_RAW}"),
            ));
        }
        let snapshot_seqno = d.u64("snapshot_seqno")?;
        let created_unix = d.i64("created_unix")?;
        let at = d.offset();
        let keyspace_count = d.u32("keyspace_count")?;
        if keyspace_count > MAX_KEYSPACES {
            return Err(FormatError::corrupt(
                "header",
                at,
                format!("keyspace_count {keyspace_count} exceeds the limit of {MAX_KEYSPACES}"),
            ));
        }
        let engine = d.str16("engine")?.to_owned();
        let engine_version = d.str16("engine_version")?.to_owned();
        let writer = d.str16("writer")?.to_owned();
        // §3: bytes beyond the known fields are a future minor version's; ignore them.
        Ok(Header {
            format_major,
            format_minor,
            required_features,
            optional_features,
            codec,
            level,
            block_target,
            snapshot_seqno,
            created_unix,
            keyspace_count,
            engine,
            engine_version,
            writer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::section::{decode_section, encode_section, FLAG_REQUIRED};

    fn round(h: &Header) -> Result<Header> {
        let s = encode_section(tags::HEADER, FLAG_REQUIRED, &h.encode());
        Header::decode(&decode_section(&s, 0)?)
    }

    #[test]
    fn round_trip() {
        let mut h = Header::new(3, 1 << 22, 7);
        h.engine = "fjall".into();
        h.engine_version = "3.1.13".into();
        h.snapshot_seqno = 42;
        h.created_unix = -5;
        assert_eq!(round(&h).unwrap(), h);
    }

    #[test]
    fn newer_major_and_unknown_required_features_are_refused() {
        let mut h = Header::new(3, 1 << 22, 0);
        h.format_major = 2;
        h.format_minor = 0;
        let e = round(&h).unwrap_err();
        assert!(e.to_string().contains("2.0"), "{e}");
        assert!(e.is_unsupported());
        let mut h = Header::new(3, 1 << 22, 0);
        h.required_features = 1 << 5;
        assert!(matches!(round(&h), Err(FormatError::UnknownRequiredFeatures { bits: 32 })));
        // Optional features and a newer minor are fine.
        let mut h = Header::new(3, 1 << 22, 0);
        h.optional_features = u64::MAX;
        h.format_minor = 9;
        assert_eq!(round(&h).unwrap(), h);
    }

    #[test]
    fn appended_fields_are_ignored() {
        let h = Header::new(3, 1 << 22, 1);
        let mut body = h.encode();
        body.extend_from_slice(b"future fields");
        let s = encode_section(tags::HEADER, FLAG_REQUIRED, &body);
        assert_eq!(Header::decode(&decode_section(&s, 0).unwrap()).unwrap(), h);
    }
}
