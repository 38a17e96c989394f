//! The floe archive format (format-spec.md). Encoding and decoding of every
//! structure, and nothing else: no engine code and no I/O policy live here.
//!
//! Each submodule implements the rules that format-spec.md's module table
//! assigns to it (§ numbers in its docs); no rule is implemented twice.

// Decoding code indexes untrusted bytes: out-of-range access must be an
// error naming the offset, never a panic (issue 11 item 9).
#![warn(clippy::indexing_slicing)]

pub mod block;
pub mod codec;
pub mod frames;
pub mod header;
pub mod index;
pub mod key_index;
pub mod keyspace_table;
pub mod options;
pub mod record;
pub mod section;
pub mod trailer;

/// §1.1 limits.
pub mod limits {
    /// Longest key, in bytes.
    pub const MAX_KEY: usize = 65_535;
    /// Longest value, in bytes.
    pub const MAX_VALUE: u64 = u32::MAX as u64;
    /// Longest keyspace name, in bytes.
    pub const MAX_NAME: usize = 255;
    /// Most keyspaces in one archive.
    pub const MAX_KEYSPACES: u32 = 1 << 16;
    /// Largest decompressed block.
    pub const MAX_BLOCK_RAW: u32 = 64 << 20;
    /// Largest data frame.
    pub const MAX_FRAME: u32 = 65 << 20;
    /// Largest `Window_Size` of a data frame (RFC 8878 §3.1.1.1.2).
    pub const MAX_WINDOW: u64 = 64 << 20;
    /// Smallest data frame (a zstd frame header plus one block header).
    pub const MIN_FRAME: u32 = 9;
    /// Smallest `block_target`.
    pub const MIN_BLOCK_TARGET: u32 = 4096;
    /// Largest section, header included.
    pub const MAX_SECTION: u64 = 256 << 20;
}

/// Format major version this crate reads and writes.
pub const FORMAT_MAJOR: u16 = 1;
/// Format minor version this crate writes.
pub const FORMAT_MINOR: u16 = 1;

/// An error in the bytes of an archive, or a violation of the format's rules.
///
/// Every variant says what is wrong and at which absolute file offset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The archive ends before a structure does.
    #[error("truncated archive: {what} at offset {offset} needs {need} bytes, only {have} remain")]
    Truncated {
        /// What was being read (a structure or field).
        what: String,
        /// Absolute file offset where it starts.
        offset: u64,
        /// Bytes it needs.
        need: u64,
        /// Bytes the archive has left from `offset`.
        have: u64,
    },
    /// A checksum does not match.
    #[error("checksum mismatch in {what} at offset {offset}: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// What the checksum covers.
        what: String,
        /// Absolute file offset of that structure.
        offset: u64,
        /// The checksum stored in the archive.
        stored: u32,
        /// The checksum of the bytes read.
        computed: u32,
    },
    /// The archive was written by a newer, incompatible format.
    #[error(
        "unsupported archive format version {major}.{minor}: this floe reads format {supported}.x only (upgrade floe)"
    )]
    UnsupportedVersion {
        /// The archive's `format_major`.
        major: u16,
        /// The archive's `format_minor`.
        minor: u16,
        /// The format major version this reader reads.
        supported: u16,
    },
    /// The archive needs features this reader does not implement.
    #[error("archive requires format features {bits:#x} that this floe does not implement (upgrade floe)")]
    UnknownRequiredFeatures {
        /// The `required_features` bits this reader does not know.
        bits: u64,
    },
    /// A required section this reader does not know.
    #[error("archive contains required section '{tag}' at offset {offset} that this floe does not understand (upgrade floe)")]
    UnknownRequiredSection {
        /// The section's tag, printable.
        tag: String,
        /// Absolute file offset of the section.
        offset: u64,
    },
    /// A required keyspace option this reader does not know.
    #[error("keyspace '{keyspace}' carries required option id {id} that this floe does not understand (upgrade floe)")]
    UnknownRequiredOption {
        /// The keyspace that carries it.
        keyspace: String,
        /// The option id (§5.1).
        id: u16,
    },
    /// A record that breaks §1.1 or the ordering rule, offered to a writer.
    #[error("invalid record #{index} for keyspace '{keyspace}': {detail}")]
    InvalidRecord {
        /// The keyspace being written.
        keyspace: String,
        /// Position of the record in the keyspace, from 0.
        index: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// Any other structural violation.
    #[error("corrupt archive: {what} at offset {offset}: {detail}")]
    Corrupt {
        /// The structure that is wrong.
        what: String,
        /// Absolute file offset of the structure.
        offset: u64,
        /// What is wrong with it.
        detail: String,
    },
}

impl FormatError {
    /// Shorthand for [`FormatError::Corrupt`].
    pub fn corrupt(what: impl Into<String>, offset: u64, detail: impl Into<String>) -> Self {
        FormatError::Corrupt { what: what.into(), offset, detail: detail.into() }
    }

    /// The absolute file offset the error is about, when it names one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            FormatError::Truncated { offset, .. }
            | FormatError::Checksum { offset, .. }
            | FormatError::UnknownRequiredSection { offset, .. }
            | FormatError::Corrupt { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// True when the error means "this floe is too old", not "the file is bad".
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            FormatError::UnsupportedVersion { .. }
                | FormatError::UnknownRequiredFeatures { .. }
                | FormatError::UnknownRequiredSection { .. }
                | FormatError::UnknownRequiredOption { .. }
        )
    }
}

/// Result alias for the format layer.
pub type Result<T> = std::result::Result<T, FormatError>;

/// CRC-32/ISO-HDLC of `data` (§1).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}
