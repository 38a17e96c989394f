//! The archive reader: open a file or a memory buffer, list keyspaces, and
//! iterate records one block at a time with bounded memory.

use crate::error::{arg_bytes, arg_out, arg_str, guard, guard_void, owned_c_string, write_out, FResult, Fail};
use crate::floe_status;
use crate::ops::{floe_progress_callback, floe_verify_report, inspect_string, report_of, verify_archive, Callback};
use floe_core::format::header::Header;
use floe_core::read::cursor::{Record, RecordCursor};
use floe_core::read::query::{prefix_successor, RangeCursor};
use floe_core::read::{Archive, Fetch, Source};
use floe_core::store::{ArchiveBytes, Location};
use std::ffi::{c_char, c_void};
use std::ops::Bound;
use std::sync::Arc;

/// The bytes behind a reader: a memory-mapped file, an object read by
/// ranges (`s3://`), or a buffer copied from the caller.
pub(crate) enum ReaderBytes {
    /// What floe::store::open_archive() opens: a memory-mapped local file,
    /// or an object read by ranged requests.
    Store(ArchiveBytes),
    /// A copy of the caller's buffer.
    Buffer(Vec<u8>),
}

impl Source for ReaderBytes {
    fn size(&self) -> u64 {
        match self {
            ReaderBytes::Store(b) => b.size(),
            ReaderBytes::Buffer(b) => b.len() as u64,
        }
    }
    fn in_memory(&self) -> Option<&[u8]> {
        match self {
            ReaderBytes::Store(b) => b.in_memory(),
            ReaderBytes::Buffer(b) => Some(b),
        }
    }
    fn fetch(&self, start: u64, len: u64) -> Fetch {
        match self {
            ReaderBytes::Store(b) => b.fetch(start, len),
            ReaderBytes::Buffer(b) => b.fetch(start, len),
        }
    }
}

/// The archive of a reader handle.
pub(crate) type ReaderArchive = Archive<ReaderBytes>;

/// A record cursor over a reader's archive: all records, one keyspace, or a
/// key range of one keyspace.
trait AnyCursor {
    fn next(&mut self) -> floe_core::Result<Option<Record<'_>>>;
}

impl AnyCursor for RecordCursor<Arc<ReaderArchive>> {
    fn next(&mut self) -> floe_core::Result<Option<Record<'_>>> {
        RecordCursor::next(self)
    }
}

impl AnyCursor for RangeCursor<Arc<ReaderArchive>> {
    fn next(&mut self) -> floe_core::Result<Option<Record<'_>>> {
        RangeCursor::next(self)
    }
}

/// An open archive (opaque). Create with floe_reader_open() or
/// floe_reader_open_buffer(); free with floe_reader_free().
///
/// A reader is immutable once open: it may be used from several threads at
/// once. Iterators keep what they need alive, so a reader may be freed
/// before its iterators.
pub struct floe_reader {
    pub(crate) archive: Arc<ReaderArchive>,
    /// NUL-terminated keyspace names, in table order.
    names: Vec<Vec<u8>>,
    /// The header's `engine`, `engine_version` and `writer`, NUL-terminated.
    header_strings: [Vec<u8>; 3],
}

/// A keyspace of an open archive, with the totals from the archive's index.
/// The pointers stay valid until the reader is freed.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct floe_keyspace_info {
    /// The name, NUL-terminated UTF-8. `name_len` excludes the NUL (a name
    /// may itself contain NUL bytes; use the length to be exact).
    pub name: *const c_char,
    /// Length of `name` in bytes, without the NUL.
    pub name_len: usize,
    /// Records.
    pub records: u64,
    /// Sum of key lengths.
    pub key_bytes: u64,
    /// Sum of value lengths.
    pub value_bytes: u64,
    /// Bytes of this keyspace's raw record stream (records and marker).
    pub raw_bytes: u64,
    /// Bytes of its compressed data frames.
    pub compressed_bytes: u64,
    /// Blocks.
    pub blocks: u64,
    /// The smallest key (length 0 when the keyspace is empty).
    pub first_key: *const u8,
    /// Length of `first_key` in bytes.
    pub first_key_len: usize,
    /// The largest key (see `first_key`).
    pub last_key: *const u8,
    /// Length of `last_key` in bytes.
    pub last_key_len: usize,
}

fn new_reader(archive: Arc<ReaderArchive>) -> Box<floe_reader> {
    let names = archive
        .keyspaces()
        .iter()
        .map(|k| {
            let mut n = k.name.as_bytes().to_vec();
            n.push(0);
            n
        })
        .collect();
    let h = archive.header();
    let header_strings = [&h.engine, &h.engine_version, &h.writer].map(|s| {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    });
    Box::new(floe_reader { archive, names, header_strings })
}

pub(crate) fn reader_ref<'a>(r: *const floe_reader) -> FResult<&'a floe_reader> {
    // SAFETY: the caller passes NULL or a live handle from floe_reader_open*.
    unsafe { r.as_ref() }.ok_or_else(|| Fail::null("reader"))
}

/// Opens the archive at `path` and checks its structure: trailer, header,
/// keyspace table, index and (for a local file) every block header (not the
/// data: use floe_reader_verify() or iterate). On success `*out_reader` is a
/// new handle.
///
/// `path` is a location, as for floe_verify(): a local path or `file://`
/// URL (memory-mapped; the file must not be modified while it is open), or
/// an `s3://bucket/key` URL (read by ranged requests: opening reads the
/// trailer, index, header and keyspace table; queries and iterators then
/// read only the blocks they need).
///
/// # Safety
/// `path` is NUL-terminated; `out_reader` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_open(path: *const c_char, out_reader: *mut *mut floe_reader) -> floe_status {
    guard("floe_reader_open", || {
        // SAFETY: per the function contract.
        let path = unsafe { arg_str(path, "path") }?;
        arg_out(out_reader, "out_reader")?;
        let a = match Location::parse(path)? {
            Location::Local(p) => Archive::open_mapped(&p, |m| ReaderBytes::Store(ArchiveBytes::Mapped(m)))?,
            Location::Object(o) => {
                Archive::from_bytes(ReaderBytes::Store(ArchiveBytes::Object(o.source()?)), &o.describe())?
            }
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_reader, Box::into_raw(new_reader(Arc::new(a)))) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Opens an archive held in memory: the `len` bytes at `data` are copied,
/// so the buffer may be released as soon as this returns. Checks as
/// floe_reader_open().
///
/// # Safety
/// `data` points to `len` readable bytes; `out_reader` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_open_buffer(
    data: *const u8,
    len: usize,
    out_reader: *mut *mut floe_reader,
) -> floe_status {
    guard("floe_reader_open_buffer", || {
        if data.is_null() {
            return Err(Fail::null("data"));
        }
        // SAFETY: per the function contract.
        let bytes = unsafe { arg_bytes(data, len, "data") }?;
        arg_out(out_reader, "out_reader")?;
        let a = Archive::from_bytes(ReaderBytes::Buffer(bytes.to_vec()), "<buffer>")?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_reader, Box::into_raw(new_reader(Arc::new(a)))) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Frees a reader. Accepts NULL. Iterators created from it stay usable.
///
/// # Safety
/// `reader` is NULL or a live handle, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_free(reader: *mut floe_reader) {
    if reader.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: a live handle from Box::into_raw, per the contract.
        drop(unsafe { Box::from_raw(reader) });
    });
}

/// Number of keyspaces in the archive.
///
/// # Safety
/// `reader` is a live handle; `out_count` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_keyspace_count(reader: *const floe_reader, out_count: *mut usize) -> floe_status {
    guard("floe_reader_keyspace_count", || {
        let r = reader_ref(reader)?;
        arg_out(out_count, "out_count")?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_count, r.names.len()) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Writes one header field of an open archive to `out`.
fn header_field<T>(func: &str, reader: *const floe_reader, out: *mut T, f: impl FnOnce(&Header) -> T) -> floe_status {
    guard(func, || {
        let r = reader_ref(reader)?;
        arg_out(out, "out")?;
        // SAFETY: checked non-NULL above; valid per the caller's contract.
        unsafe { write_out(out, f(r.archive.header())) };
        Ok(floe_status::FLOE_OK)
    })
}

/// One of the header's strings (`which` indexes `header_strings`).
fn header_string(
    func: &str,
    reader: *const floe_reader,
    which: usize,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> floe_status {
    guard(func, || {
        let r = reader_ref(reader)?;
        arg_out(out, "out")?;
        let s = &r.header_strings[which];
        // SAFETY: checked non-NULL above; `out_len` is NULL or valid per the contract.
        unsafe {
            write_out(out, s.as_ptr().cast::<c_char>());
            write_out(out_len, s.len() - 1);
        }
        Ok(floe_status::FLOE_OK)
    })
}

/// The archive's format version: the header fields `format_major` (always
/// FLOE_FORMAT_MAJOR in an archive that opened) and `format_minor`, which
/// may be newer than FLOE_FORMAT_MINOR (format-spec §4, §10).
///
/// # Safety
/// `reader` is a live handle; `out_major` and `out_minor` are valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_format_version(
    reader: *const floe_reader,
    out_major: *mut u16,
    out_minor: *mut u16,
) -> floe_status {
    guard("floe_reader_format_version", || {
        let r = reader_ref(reader)?;
        arg_out(out_major, "out_major")?;
        arg_out(out_minor, "out_minor")?;
        let h = r.archive.header();
        // SAFETY: checked non-NULL above.
        unsafe {
            write_out(out_major, h.format_major);
            write_out(out_minor, h.format_minor);
        }
        Ok(floe_status::FLOE_OK)
    })
}

/// The header field `optional_features`: a bit set of optional features the
/// writer used; format 1.0 defines none (format-spec §4, §10).
///
/// # Safety
/// `reader` is a live handle; `out` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_optional_features(reader: *const floe_reader, out: *mut u64) -> floe_status {
    header_field("floe_reader_optional_features", reader, out, |h| h.optional_features)
}

/// The header field `level`: the zstd level the writer used (informational).
///
/// # Safety
/// `reader` is a live handle; `out` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_level(reader: *const floe_reader, out: *mut i32) -> floe_status {
    header_field("floe_reader_level", reader, out, |h| h.level)
}

/// The header field `block_target`: the raw block size in bytes the writer
/// aimed for.
///
/// # Safety
/// `reader` is a live handle; `out` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_block_target(reader: *const floe_reader, out: *mut u32) -> floe_status {
    header_field("floe_reader_block_target", reader, out, |h| h.block_target)
}

/// The header field `snapshot_seqno`: the engine's sequence number of the
/// snapshot the archive was exported from (0 for an archive made by a
/// writer, which reads no snapshot).
///
/// # Safety
/// `reader` is a live handle; `out` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_snapshot_seqno(reader: *const floe_reader, out: *mut u64) -> floe_status {
    header_field("floe_reader_snapshot_seqno", reader, out, |h| h.snapshot_seqno)
}

/// The header field `created_unix`: when the archive was made, in seconds
/// since 1970-01-01T00:00:00Z (`SOURCE_DATE_EPOCH` when that was set).
///
/// # Safety
/// `reader` is a live handle; `out` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_created_unix(reader: *const floe_reader, out: *mut i64) -> floe_status {
    header_field("floe_reader_created_unix", reader, out, |h| h.created_unix)
}

/// The header field `engine`: the source engine's name, e.g. "fjall" (""
/// for an archive made by a writer). `*out` is NUL-terminated UTF-8 owned by
/// the reader, valid until it is freed; `out_len` (may be NULL) receives its
/// length without the NUL (the string may itself contain NUL bytes).
///
/// # Safety
/// `reader` is a live handle; `out` is valid; `out_len` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_engine(
    reader: *const floe_reader,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> floe_status {
    header_string("floe_reader_engine", reader, 0, out, out_len)
}

/// The header field `engine_version`, e.g. "3.1.13" (as floe_reader_engine()).
///
/// # Safety
/// `reader` is a live handle; `out` is valid; `out_len` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_engine_version(
    reader: *const floe_reader,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> floe_status {
    header_string("floe_reader_engine_version", reader, 1, out, out_len)
}

/// The header field `writer`: the software that wrote the archive and its
/// version, e.g. "floe 0.1.0" (as floe_reader_engine()).
///
/// # Safety
/// `reader` is a live handle; `out` is valid; `out_len` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_writer(
    reader: *const floe_reader,
    out: *mut *const c_char,
    out_len: *mut usize,
) -> floe_status {
    header_string("floe_reader_writer", reader, 2, out, out_len)
}

fn check_index(r: &floe_reader, index: usize) -> FResult<()> {
    if index >= r.names.len() {
        return Err(Fail::invalid(format!(
            "keyspace index {index} out of range: the archive has {} keyspaces",
            r.names.len()
        )));
    }
    Ok(())
}

/// Describes keyspace number `index` (0-based, in the archive's order, which
/// is ascending by name).
///
/// # Safety
/// `reader` is a live handle; `out_info` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_keyspace(
    reader: *const floe_reader,
    index: usize,
    out_info: *mut floe_keyspace_info,
) -> floe_status {
    guard("floe_reader_keyspace", || {
        let r = reader_ref(reader)?;
        arg_out(out_info, "out_info")?;
        check_index(r, index)?;
        let t = &r.archive.index().keyspaces[index].totals;
        let info = floe_keyspace_info {
            name: r.names[index].as_ptr().cast(),
            name_len: r.names[index].len() - 1,
            records: t.record_count,
            key_bytes: t.key_bytes,
            value_bytes: t.value_bytes,
            raw_bytes: t.raw_bytes,
            compressed_bytes: t.compressed_bytes,
            blocks: u64::from(t.block_count),
            first_key: t.first_key.as_ptr(),
            first_key_len: t.first_key.len(),
            last_key: t.last_key.as_ptr(),
            last_key_len: t.last_key.len(),
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_info, info) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Finds the keyspace named `name`; `FLOE_INVALID_ARGUMENT` if there is none.
///
/// # Safety
/// `reader` is a live handle; `name` is NUL-terminated; `out_index` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_find_keyspace(
    reader: *const floe_reader,
    name: *const c_char,
    out_index: *mut usize,
) -> floe_status {
    guard("floe_reader_find_keyspace", || {
        let r = reader_ref(reader)?;
        // SAFETY: per the function contract.
        let name = unsafe { arg_str(name, "name") }?;
        arg_out(out_index, "out_index")?;
        let ks = r.archive.keyspaces();
        let i = ks
            .binary_search_by(|k| k.name.as_bytes().cmp(name.as_bytes()))
            .map_err(|_| Fail::invalid(format!("keyspace '{name}' is not in the archive {}", r.archive.name())))?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_index, i) };
        Ok(floe_status::FLOE_OK)
    })
}

/// The options of keyspace number `index` as a JSON object (the `options` of
/// `floe inspect --json`; accepted as is by floe_writer_begin_keyspace()).
/// The caller frees `*out_json` with floe_string_free().
///
/// # Safety
/// `reader` is a live handle; `out_json` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_keyspace_options_json(
    reader: *const floe_reader,
    index: usize,
    out_json: *mut *mut c_char,
) -> floe_status {
    guard("floe_reader_keyspace_options_json", || {
        let r = reader_ref(reader)?;
        arg_out(out_json, "out_json")?;
        check_index(r, index)?;
        let s = r.archive.keyspaces()[index].options.to_json().to_string();
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_json, owned_c_string(s)) };
        Ok(floe_status::FLOE_OK)
    })
}

/// The `floe inspect --json` document of an open archive (see
/// floe_inspect_json()). The caller frees `*out_json` with floe_string_free().
///
/// # Safety
/// `reader` is a live handle; `out_json` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_inspect_json(
    reader: *const floe_reader,
    out_json: *mut *mut c_char,
) -> floe_status {
    guard("floe_reader_inspect_json", || {
        let r = reader_ref(reader)?;
        arg_out(out_json, "out_json")?;
        let s = inspect_string(&r.archive)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_json, owned_c_string(s)) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Verifies an open archive, as floe_verify() does for a file.
///
/// # Safety
/// `reader` is a live handle; `out_report` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_verify(
    reader: *const floe_reader,
    quick: bool,
    threads: u32,
    progress: floe_progress_callback,
    user_data: *mut c_void,
    out_report: *mut floe_verify_report,
) -> floe_status {
    guard("floe_reader_verify", || {
        let r = reader_ref(reader)?;
        let cb = Callback::new(progress, user_data);
        let rep = verify_archive(&r.archive, quick, threads, &cb)?;
        // SAFETY: NULL or valid per the contract.
        unsafe { write_out(out_report, report_of(&rep)) };
        Ok(floe_status::FLOE_OK)
    })
}

/// One record, as returned by floe_iter_next().
///
/// `key` and `value` point into memory owned by the iterator and stay valid
/// until the next call to floe_iter_next() or floe_iter_free() on that
/// iterator. Copy them to keep them. They are never NULL (an empty value
/// points to a valid zero-length buffer).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct floe_record {
    /// The record's keyspace: its index in the archive (floe_reader_keyspace()).
    pub keyspace: usize,
    /// The key's bytes.
    pub key: *const u8,
    /// Length of `key` in bytes.
    pub key_len: usize,
    /// The value's bytes.
    pub value: *const u8,
    /// Length of `value` in bytes.
    pub value_len: usize,
}

/// An iterator over the records of one keyspace or of all keyspaces
/// (opaque). Create with floe_reader_iter_keyspace() or
/// floe_reader_iter_all(); free with floe_iter_free().
///
/// Memory is bounded by one decompressed block (at most the archive's block
/// size, 64 MiB at most) plus the largest record that spans blocks. Every
/// check of a full verification applies to the records it returns: a damaged
/// block fails with `FLOE_CORRUPT_ARCHIVE` before any of its records is
/// returned, and the keyspace's totals are checked against the index when
/// its last record has been returned. An iterator is not thread-safe; use it
/// from one thread at a time.
pub struct floe_iter {
    /// The core's record cursor (it keeps the archive alive); dropped at the
    /// end so that its buffers are released.
    cursor: Option<Box<dyn AnyCursor>>,
    failed: Option<(floe_status, String)>,
}

static EMPTY: [u8; 1] = [0];

/// A pointer for C: never NULL, even for an empty slice.
fn c_slice(s: &[u8]) -> (*const u8, usize) {
    if s.is_empty() {
        (EMPTY.as_ptr(), 0)
    } else {
        (s.as_ptr(), s.len())
    }
}

impl floe_iter {
    fn new(archive: Arc<ReaderArchive>, k: Option<usize>) -> FResult<Self> {
        let cursor: Box<dyn AnyCursor> = match k {
            Some(k) => Box::new(RecordCursor::keyspace(archive, k)?),
            None => Box::new(RecordCursor::new(archive)),
        };
        Ok(floe_iter { cursor: Some(cursor), failed: None })
    }

    fn next(&mut self) -> FResult<Option<floe_record>> {
        if let Some((status, message)) = &self.failed {
            return Err(Fail::new(*status, format!("the iterator failed earlier: {message}")));
        }
        let Some(cursor) = self.cursor.as_mut() else { return Ok(None) };
        match cursor.next() {
            Ok(Some(r)) => {
                let (key, key_len) = c_slice(r.key);
                let (value, value_len) = c_slice(r.value);
                Ok(Some(floe_record { keyspace: r.keyspace, key, key_len, value, value_len }))
            }
            Ok(None) => {
                self.cursor = None;
                Ok(None)
            }
            Err(e) => {
                let e = Fail::from(e);
                self.failed = Some((e.status, e.message.clone()));
                self.cursor = None;
                Err(e)
            }
        }
    }
}

/// Starts iterating over the records of keyspace number `index`, in key order.
///
/// # Safety
/// `reader` is a live handle; `out_iter` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_iter_keyspace(
    reader: *const floe_reader,
    index: usize,
    out_iter: *mut *mut floe_iter,
) -> floe_status {
    guard("floe_reader_iter_keyspace", || {
        let r = reader_ref(reader)?;
        arg_out(out_iter, "out_iter")?;
        check_index(r, index)?;
        let it = Box::new(floe_iter::new(Arc::clone(&r.archive), Some(index))?);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_iter, Box::into_raw(it)) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Starts iterating over every record of the archive in archive order:
/// keyspace by keyspace (ascending names), each in key order.
///
/// # Safety
/// `reader` is a live handle; `out_iter` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_iter_all(
    reader: *const floe_reader,
    out_iter: *mut *mut floe_iter,
) -> floe_status {
    guard("floe_reader_iter_all", || {
        let r = reader_ref(reader)?;
        arg_out(out_iter, "out_iter")?;
        let it = Box::new(floe_iter::new(Arc::clone(&r.archive), None)?);
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_iter, Box::into_raw(it)) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Advances the iterator. Returns `FLOE_OK` and fills `*out_record`, or
/// `FLOE_DONE` when there are no more records (and on every later call), or
/// an error (`FLOE_CORRUPT_ARCHIVE`...), which every later call repeats.
/// The record's pointers stay valid until the next call on this iterator.
///
/// # Safety
/// `iter` is a live handle; `out_record` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_iter_next(iter: *mut floe_iter, out_record: *mut floe_record) -> floe_status {
    guard("floe_iter_next", || {
        // SAFETY: NULL or a live handle, per the contract.
        let it = unsafe { iter.as_mut() }.ok_or_else(|| Fail::null("iter"))?;
        arg_out(out_record, "out_record")?;
        match it.next()? {
            Some(rec) => {
                // SAFETY: checked non-NULL above.
                unsafe { write_out(out_record, rec) };
                Ok(floe_status::FLOE_OK)
            }
            None => Ok(floe_status::FLOE_DONE),
        }
    })
}

/// Frees an iterator. Accepts NULL.
///
/// # Safety
/// `iter` is NULL or a live handle, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn floe_iter_free(iter: *mut floe_iter) {
    if iter.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: a live handle from Box::into_raw, per the contract.
        drop(unsafe { Box::from_raw(iter) });
    });
}

/// The position of the keyspace named `name`; an error naming the keyspaces
/// the archive holds if there is none.
fn keyspace_arg(r: &floe_reader, name: *const c_char) -> FResult<usize> {
    // SAFETY: NULL or NUL-terminated, per the caller's contract.
    let name = unsafe { arg_str(name, "keyspace") }?;
    Ok(r.archive.keyspace_named(name)?)
}

/// An optional key bound: NULL (with length 0) is `None`, anything else the
/// `len` bytes at `p`.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes.
unsafe fn opt_bytes<'a>(p: *const u8, len: usize, what: &str) -> FResult<Option<&'a [u8]>> {
    if p.is_null() && len == 0 {
        return Ok(None);
    }
    // SAFETY: forwarded contract.
    unsafe { arg_bytes(p, len, what) }.map(Some)
}

/// Looks up `key` (`key_len` bytes) in the keyspace named `keyspace`, in
/// place: no record is imported, and only the blocks that can hold the key
/// are read and checked (as iteration checks them).
///
/// On `FLOE_OK`, `*out_found` says whether the key is there. If it is,
/// `*out_value` and `*out_value_len` are a copy of its value, which the caller
/// frees with floe_bytes_free(*out_value, *out_value_len) (an empty value is
/// a non-NULL pointer with length 0; freeing it is a no-op). If it is not,
/// `*out_value` is NULL and `*out_value_len` 0: an absent key is not an
/// error. A keyspace the archive does not have is `FLOE_INVALID_ARGUMENT`,
/// with a message naming the keyspaces it has. `key` may be NULL only with
/// `key_len` 0 (no key is empty, so nothing is found).
///
/// # Safety
/// `reader` is a live handle; `keyspace` is NUL-terminated; `key` points to
/// `key_len` readable bytes; the out-parameters are valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_get(
    reader: *const floe_reader,
    keyspace: *const c_char,
    key: *const u8,
    key_len: usize,
    out_value: *mut *mut u8,
    out_value_len: *mut usize,
    out_found: *mut bool,
) -> floe_status {
    guard("floe_reader_get", || {
        let r = reader_ref(reader)?;
        // SAFETY: per the function contract.
        let name = unsafe { arg_str(keyspace, "keyspace") }?;
        // SAFETY: per the function contract.
        let key = unsafe { arg_bytes(key, key_len, "key") }?;
        arg_out(out_value, "out_value")?;
        arg_out(out_value_len, "out_value_len")?;
        arg_out(out_found, "out_found")?;
        let found = r.archive.get(name, key)?;
        let (ptr, len, found) = match found {
            Some(v) if v.is_empty() => (EMPTY.as_ptr().cast_mut(), 0, true),
            Some(v) => {
                let len = v.len();
                (Box::into_raw(v.into_boxed_slice()).cast::<u8>(), len, true)
            }
            None => (std::ptr::null_mut(), 0, false),
        };
        // SAFETY: checked non-NULL above.
        unsafe {
            write_out(out_value, ptr);
            write_out(out_value_len, len);
            write_out(out_found, found);
        }
        Ok(floe_status::FLOE_OK)
    })
}

/// Frees a buffer floe allocated for the caller (the value of
/// floe_reader_get()), given with the length floe returned with it. Accepts
/// NULL, and does nothing when `len` is 0.
///
/// # Safety
/// `data` is NULL or a buffer floe returned with length `len`, not freed before.
#[no_mangle]
pub unsafe extern "C" fn floe_bytes_free(data: *mut u8, len: usize) {
    if data.is_null() || len == 0 {
        return;
    }
    guard_void(|| {
        // SAFETY: per the contract, `data` and `len` came from Box<[u8]>::into_raw in floe_reader_get().
        drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, len)) });
    });
}

/// A range iterator over keyspace `k`.
fn scan_iter(r: &floe_reader, k: usize, from: Option<&[u8]>, to: Option<&[u8]>) -> FResult<*mut floe_iter> {
    let from = from.map_or(Bound::Unbounded, Bound::Included);
    let to = to.map_or(Bound::Unbounded, Bound::Excluded);
    let cursor = RangeCursor::new(Arc::clone(&r.archive), k, from, to)?;
    Ok(Box::into_raw(Box::new(floe_iter { cursor: Some(Box::new(cursor)), failed: None })))
}

/// Starts iterating over the records of the keyspace named `keyspace` whose
/// keys are at least `start` (inclusive) and below `end` (exclusive), in key
/// order, in place. Use the iterator as one of floe_reader_iter_keyspace():
/// floe_iter_next() until `FLOE_DONE`, then floe_iter_free(); its records
/// carry the keyspace's index.
///
/// `start` NULL (with `start_len` 0) means from the keyspace's first key;
/// `end` NULL (with `end_len` 0) means to its last. A non-NULL `end` of
/// length 0 is the empty key, which no key is below: the range is empty.
/// A `start` at or past `end` is an empty range, not an error. Reading
/// begins at the block that can hold `start` and stops at the first key at
/// or past `end`. A keyspace the archive does not have is
/// `FLOE_INVALID_ARGUMENT`, naming the ones it has.
///
/// # Safety
/// `reader` is a live handle; `keyspace` is NUL-terminated; `start` and
/// `end` are NULL or point to `start_len` / `end_len` readable bytes (copied:
/// they may be released when this returns); `out_iter` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_scan(
    reader: *const floe_reader,
    keyspace: *const c_char,
    start: *const u8,
    start_len: usize,
    end: *const u8,
    end_len: usize,
    out_iter: *mut *mut floe_iter,
) -> floe_status {
    guard("floe_reader_scan", || {
        let r = reader_ref(reader)?;
        let k = keyspace_arg(r, keyspace)?;
        // SAFETY: per the function contract.
        let from = unsafe { opt_bytes(start, start_len, "start") }?;
        // SAFETY: per the function contract.
        let to = unsafe { opt_bytes(end, end_len, "end") }?;
        arg_out(out_iter, "out_iter")?;
        let it = scan_iter(r, k, from, to)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_iter, it) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Starts iterating over the records of the keyspace named `keyspace` whose
/// keys begin with `prefix`, in key order: the range from `prefix`
/// (inclusive) to its successor, the smallest key greater than every key
/// with that prefix (exclusive). A prefix that is empty or all `0xff` bytes
/// has no successor: the range then runs to the keyspace's last key. Used as
/// floe_reader_scan()'s iterator.
///
/// # Safety
/// `reader` is a live handle; `keyspace` is NUL-terminated; `prefix` points
/// to `prefix_len` readable bytes (NULL only with 0); `out_iter` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_scan_prefix(
    reader: *const floe_reader,
    keyspace: *const c_char,
    prefix: *const u8,
    prefix_len: usize,
    out_iter: *mut *mut floe_iter,
) -> floe_status {
    guard("floe_reader_scan_prefix", || {
        let r = reader_ref(reader)?;
        let k = keyspace_arg(r, keyspace)?;
        // SAFETY: per the function contract.
        let prefix = unsafe { arg_bytes(prefix, prefix_len, "prefix") }?;
        arg_out(out_iter, "out_iter")?;
        let successor = prefix_successor(prefix);
        let it = scan_iter(r, k, Some(prefix), successor.as_deref())?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_iter, it) };
        Ok(floe_status::FLOE_OK)
    })
}
