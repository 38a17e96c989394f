//! The archive reader: open a file or a memory buffer, list keyspaces, and
//! iterate records one block at a time with bounded memory.

use crate::error::{
    arg_bytes, arg_out, arg_str, guard, guard_void, local_path, owned_c_string, write_out, FResult, Fail,
};
use crate::floe_status;
use crate::ops::{floe_progress_callback, floe_verify_report, inspect_string, report_of, verify_archive, Callback};
use floe_core::format::header::Header;
use floe_core::format::index::Index;
use floe_core::format::keyspace_table::KeyspaceEntry;
use floe_core::read::cursor::{Record, RecordCursor};
use floe_core::read::{Archive, Source, VerifyReport};
use std::ffi::{c_char, c_void};
use std::sync::Arc;

/// What the C handles need from an `Archive<B>`, whatever `B` is.
trait AnyArchive: Send + Sync {
    fn name(&self) -> &str;
    fn keyspaces(&self) -> &[KeyspaceEntry];
    fn index(&self) -> &Index;
    fn header(&self) -> &Header;
    /// A cursor over keyspace `k`, or over the whole archive (`None`).
    fn cursor(self: Arc<Self>, k: Option<usize>) -> floe_core::Result<Box<dyn AnyCursor>>;
    fn inspect(&self) -> FResult<String>;
    fn verify(&self, quick: bool, threads: u32, cb: &Callback) -> FResult<VerifyReport>;
}

/// A [`RecordCursor`] over an `Archive<B>`, whatever `B` is.
trait AnyCursor {
    fn next(&mut self) -> floe_core::Result<Option<Record<'_>>>;
}

impl<B: Source> AnyCursor for RecordCursor<Arc<Archive<B>>> {
    fn next(&mut self) -> floe_core::Result<Option<Record<'_>>> {
        RecordCursor::next(self)
    }
}

impl<B: AsRef<[u8]> + Send + Sync + 'static> AnyArchive for Archive<B> {
    fn name(&self) -> &str {
        Archive::name(self)
    }
    fn keyspaces(&self) -> &[KeyspaceEntry] {
        Archive::keyspaces(self)
    }
    fn index(&self) -> &Index {
        Archive::index(self)
    }
    fn header(&self) -> &Header {
        Archive::header(self)
    }
    fn cursor(self: Arc<Self>, k: Option<usize>) -> floe_core::Result<Box<dyn AnyCursor>> {
        Ok(match k {
            Some(k) => Box::new(RecordCursor::keyspace(self, k)?),
            None => Box::new(RecordCursor::new(self)),
        })
    }
    fn inspect(&self) -> FResult<String> {
        inspect_string(self)
    }
    fn verify(&self, quick: bool, threads: u32, cb: &Callback) -> FResult<VerifyReport> {
        verify_archive(self, quick, threads, cb)
    }
}

/// An open archive (opaque). Create with floe_reader_open() or
/// floe_reader_open_buffer(); free with floe_reader_free().
///
/// A reader is immutable once open: it may be used from several threads at
/// once. Iterators keep what they need alive, so a reader may be freed
/// before its iterators.
pub struct floe_reader {
    archive: Arc<dyn AnyArchive>,
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

fn new_reader(archive: Arc<dyn AnyArchive>) -> Box<floe_reader> {
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

fn reader_ref<'a>(r: *const floe_reader) -> FResult<&'a floe_reader> {
    // SAFETY: the caller passes NULL or a live handle from floe_reader_open*.
    unsafe { r.as_ref() }.ok_or_else(|| Fail::null("reader"))
}

/// Opens the archive file at `path` (memory-mapped) and checks its
/// structure: trailer, header, keyspace table, index and every block header
/// (not the data: use floe_reader_verify() or iterate). On success
/// `*out_reader` is a new handle.
///
/// `path` is a local path (or a `file://` URL). Any other URL, such as
/// `s3://bucket/key`, is refused with `FLOE_INVALID_ARGUMENT`: floe_verify(),
/// floe_inspect_json() and floe_import() read those.
///
/// The file must not be modified while it is open.
///
/// # Safety
/// `path` is NUL-terminated; `out_reader` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_open(path: *const c_char, out_reader: *mut *mut floe_reader) -> floe_status {
    guard("floe_reader_open", || {
        // SAFETY: per the function contract.
        let path = unsafe { arg_str(path, "path") }?;
        arg_out(out_reader, "out_reader")?;
        let local = local_path(
            path,
            "floe_reader_open()",
            "floe_verify(), floe_inspect_json() and floe_import() read s3:// URLs (so does the floe CLI); to iterate \
             over the records, download the object to a local file first",
        )?;
        let a = Archive::open(&local)?;
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
        let a = Archive::from_bytes(bytes.to_vec(), "<buffer>")?;
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
        let s = r.archive.inspect()?;
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
        let rep = r.archive.verify(quick, threads, &cb)?;
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
    fn new(archive: Arc<dyn AnyArchive>, k: Option<usize>) -> FResult<Self> {
        Ok(floe_iter { cursor: Some(archive.cursor(k)?), failed: None })
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
