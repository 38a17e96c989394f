//! §1 conventions: little-endian primitives with explicit lengths.
//!
//! Encoding appends to a `Vec<u8>`; decoding reads from a bounds-checked cursor
//! that knows its absolute file offset, so every error names where it happened.

use super::{FormatError, Result};

/// Appends little-endian primitives to a byte vector.
pub trait Put {
    /// Appends one byte.
    fn put_u8(&mut self, v: u8);
    /// Appends a little-endian `u16`.
    fn put_u16(&mut self, v: u16);
    /// Appends a little-endian `u32`.
    fn put_u32(&mut self, v: u32);
    /// Appends a little-endian `u64`.
    fn put_u64(&mut self, v: u64);
    /// Appends a little-endian `i32`.
    fn put_i32(&mut self, v: i32);
    /// Appends a little-endian `i64`.
    fn put_i64(&mut self, v: i64);
    /// Appends an `f32`'s bits as a little-endian `u32`.
    fn put_f32(&mut self, v: f32);
    /// `bytes16`: u16 length then the bytes. The caller guarantees `b.len() <= 65535`.
    fn put_bytes16(&mut self, b: &[u8]);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i32(&mut self, v: i32) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_i64(&mut self, v: i64) {
        self.extend_from_slice(&v.to_le_bytes());
    }
    fn put_f32(&mut self, v: f32) {
        self.extend_from_slice(&v.to_bits().to_le_bytes());
    }
    fn put_bytes16(&mut self, b: &[u8]) {
        debug_assert!(b.len() <= u16::MAX as usize);
        self.put_u16(b.len() as u16);
        self.extend_from_slice(b);
    }
}

/// A bounds-checked little-endian reader over a byte slice.
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    what: &'static str,
}

impl<'a> Dec<'a> {
    /// `base` is the absolute file offset of `buf[0]`; `what` names the structure.
    pub fn new(buf: &'a [u8], base: u64, what: &'static str) -> Self {
        Dec { buf, pos: 0, base, what }
    }

    /// Absolute file offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Builds a corruption error at the current offset.
    pub fn err(&self, detail: impl Into<String>) -> FormatError {
        FormatError::corrupt(self.what, self.offset(), detail)
    }

    /// Reads `n` bytes.
    pub fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        let Some(s) = self.pos.checked_add(n).and_then(|end| self.buf.get(self.pos..end)) else {
            return Err(self.err(format!(
                "field '{field}' needs {n} bytes but only {} remain in the {}",
                self.remaining(),
                self.what
            )));
        };
        self.pos += n;
        Ok(s)
    }

    fn arr<const N: usize>(&mut self, field: &str) -> Result<[u8; N]> {
        let s = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Reads one byte.
    pub fn u8(&mut self, field: &str) -> Result<u8> {
        Ok(self.arr::<1>(field)?[0])
    }
    /// Reads a little-endian `u16`.
    pub fn u16(&mut self, field: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.arr(field)?))
    }
    /// Reads a little-endian `u32`.
    pub fn u32(&mut self, field: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr(field)?))
    }
    /// Reads a little-endian `u64`.
    pub fn u64(&mut self, field: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr(field)?))
    }
    /// Reads a little-endian `i32`.
    pub fn i32(&mut self, field: &str) -> Result<i32> {
        Ok(i32::from_le_bytes(self.arr(field)?))
    }
    /// Reads a little-endian `i64`.
    pub fn i64(&mut self, field: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.arr(field)?))
    }
    /// Reads an `f32` stored as its bits in a little-endian `u32`.
    pub fn f32(&mut self, field: &str) -> Result<f32> {
        Ok(f32::from_bits(u32::from_le_bytes(self.arr(field)?)))
    }
    /// A boolean byte: 0 or 1, anything else is corrupt.
    pub fn bool(&mut self, field: &str) -> Result<bool> {
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.err(format!("field '{field}' must be 0 or 1, found {v}"))),
        }
    }
    /// `bytes16`.
    pub fn bytes16(&mut self, field: &str) -> Result<&'a [u8]> {
        let n = self.u16(field)? as usize;
        self.take(n, field)
    }
    /// `str16`.
    pub fn str16(&mut self, field: &str) -> Result<&'a str> {
        let at = self.offset();
        let b = self.bytes16(field)?;
        std::str::from_utf8(b)
            .map_err(|e| FormatError::corrupt(self.what, at, format!("field '{field}' is not valid UTF-8: {e}")))
    }
}
