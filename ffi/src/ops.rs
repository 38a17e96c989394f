//! Whole operations: export, import, verify, inspect; progress callbacks.

use crate::error::{
    arg_out, arg_str, arg_str_array, guard, output_exists, owned_c_string, target_exists, write_out, FResult, Fail,
};
use crate::floe_status;
use floe_core::export::{block_size_or_default, export_path, level_or_default, ExportOptions};
use floe_core::import::{import_archive, ImportOptions};
use floe_core::progress::{Phase, Progress, ProgressInfo};
use floe_core::read::{Archive, Source, VerifyReport};
use floe_core::store::{open_archive, Location};
use std::ffi::{c_char, c_int, c_void};
use std::path::Path;

/// Which operation a progress report comes from.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum floe_phase {
    /// floe_export().
    FLOE_PHASE_EXPORT = 0,
    /// floe_import().
    FLOE_PHASE_IMPORT = 1,
    /// floe_verify().
    FLOE_PHASE_VERIFY = 2,
}

/// A progress report, passed to a floe_progress_callback.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct floe_progress {
    /// The operation reporting.
    pub phase: floe_phase,
    /// Bytes processed so far (of the raw record stream; compressed bytes for
    /// a quick verify).
    pub bytes_done: u64,
    /// Expected total of `bytes_done`, or 0 when not known in advance. For an
    /// export, an estimate from the database's sizes: it may change from one
    /// report to the next, is never below `bytes_done`, and is exact in the
    /// last report.
    pub bytes_total: u64,
    /// Records processed so far.
    pub records_done: u64,
}

/// Receives progress during floe_export(), floe_import() and floe_verify().
///
/// Return 0 to continue, any other value to cancel: the operation then stops
/// as soon as possible, removes everything it created (temporary files and
/// directories; an existing target is untouched) and returns
/// `FLOE_CANCELLED`.
///
/// Threads: the callback may run on the calling thread or on one of floe's
/// worker threads (export reports from the calling thread; import and verify
/// from worker threads). Calls are never concurrent, and all of them happen
/// before the operation returns. `progress` is valid only during the call.
pub type floe_progress_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, progress: *const floe_progress) -> c_int>;

/// Adapts a C callback to the library's Progress trait.
pub(crate) struct Callback {
    cb: floe_progress_callback,
    user_data: *mut c_void,
}

// SAFETY: the library serialises calls (never concurrent); the caller is
// told the callback may run on another thread, and `user_data` is only ever
// handed back to that callback.
unsafe impl Send for Callback {}
// SAFETY: as above.
unsafe impl Sync for Callback {}

impl Callback {
    pub(crate) fn new(cb: floe_progress_callback, user_data: *mut c_void) -> Self {
        Callback { cb, user_data }
    }
}

impl Progress for Callback {
    fn report(&self, info: &ProgressInfo) -> bool {
        let Some(cb) = self.cb else { return true };
        let p = floe_progress {
            phase: match info.phase {
                Phase::Export => floe_phase::FLOE_PHASE_EXPORT,
                Phase::Import => floe_phase::FLOE_PHASE_IMPORT,
                Phase::Verify => floe_phase::FLOE_PHASE_VERIFY,
            },
            bytes_done: info.bytes_done,
            bytes_total: info.bytes_total,
            records_done: info.records_done,
        };
        // SAFETY: the caller supplied a callback with this signature; `p` lives for the call.
        unsafe { cb(self.user_data, &p) == 0 }
    }
}

/// Export settings. Initialise with floe_export_options_default() (or set
/// `struct_size` to `sizeof(floe_export_options)` and everything else to
/// zero), then set the fields wanted; passing NULL means the defaults.
/// Every field's zero value is its default. Fields are only ever appended
/// (see ffi/README.md, "ABI evolution").
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct floe_export_options {
    /// `sizeof(floe_export_options)` as the caller's header declares it.
    /// The library reads only that many bytes (a struct of an older header
    /// has fewer fields; the missing ones take their defaults). 0 or less
    /// than the first version's size is `FLOE_INVALID_ARGUMENT`.
    pub struct_size: usize,
    /// zstd level: 1 to 22, negative for the fast modes; 0 = default (1).
    pub level: i32,
    /// Worker threads; 0 = one per core.
    pub threads: u32,
    /// Raw block size in bytes, 4096 to 67108864; 0 = default (1 MiB).
    pub block_size: u32,
    /// Export only these keyspaces (`keyspace_count` UTF-8 names); NULL with
    /// count 0 = all keyspaces.
    pub keyspaces: *const *const c_char,
    /// Number of names in `keyspaces`.
    pub keyspace_count: usize,
    /// Replace an existing archive file at `archive_path`. Without it (the
    /// default) an existing file is refused with `FLOE_TARGET_EXISTS` before
    /// the database is opened, and a file that appears while the export runs
    /// is never renamed over. (Added after the first version: a struct of the
    /// first version's size does not overwrite. Devices, FIFOs and `s3://`
    /// objects are written whatever it says.)
    pub overwrite: bool,
}
crate::sized::sized_struct!(floe_export_options, "floe_export_options_default", keyspace_count: usize);

/// Import settings. Initialise with floe_import_options_default() (or set
/// `struct_size` to `sizeof(floe_import_options)` and everything else to
/// zero); passing NULL means the defaults. Every field's zero value is its
/// default.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct floe_import_options {
    /// `sizeof(floe_import_options)` as the caller's header declares it
    /// (see floe_export_options.struct_size).
    pub struct_size: usize,
    /// Worker threads; 0 = one per core.
    pub threads: u32,
    /// Replace an existing non-empty database directory (atomically swapped
    /// in once the import succeeded). Without it such a target fails with
    /// `FLOE_TARGET_EXISTS`.
    pub replace: bool,
    /// Import only these keyspaces; NULL with count 0 = all keyspaces.
    pub keyspaces: *const *const c_char,
    /// Number of names in `keyspaces`.
    pub keyspace_count: usize,
}
crate::sized::sized_struct!(floe_import_options, "floe_import_options_default", keyspace_count: usize);

/// Sets `*options` to the defaults: every field zero and `struct_size` =
/// `struct_size`, which must be `sizeof *options` as the caller's header
/// declares it (the library writes exactly that many bytes, so a struct of
/// an older header is never overrun). `FLOE_INVALID_ARGUMENT` (and nothing
/// written) if `struct_size` is 0 or smaller than the first version.
///
/// ```c
/// floe_export_options o;
/// floe_export_options_default(&o, sizeof o);
/// o.level = 3;
/// ```
///
/// # Safety
/// `options` points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn floe_export_options_default(
    options: *mut floe_export_options,
    struct_size: usize,
) -> floe_status {
    guard("floe_export_options_default", || {
        // SAFETY: per the function contract.
        unsafe { crate::sized::init(options, struct_size) }?;
        Ok(floe_status::FLOE_OK)
    })
}

/// Sets `*options` to the defaults, as floe_export_options_default().
///
/// # Safety
/// `options` points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn floe_import_options_default(
    options: *mut floe_import_options,
    struct_size: usize,
) -> floe_status {
    guard("floe_import_options_default", || {
        // SAFETY: per the function contract.
        unsafe { crate::sized::init(options, struct_size) }?;
        Ok(floe_status::FLOE_OK)
    })
}

/// What an archive written by floe holds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct floe_write_summary {
    /// Size of the archive file in bytes.
    pub archive_bytes: u64,
    /// Records.
    pub records: u64,
    /// Bytes of the raw record stream (keys, values, record headers, markers).
    pub raw_bytes: u64,
    /// Sum of key lengths.
    pub key_bytes: u64,
    /// Sum of value lengths.
    pub value_bytes: u64,
    /// Blocks.
    pub blocks: u64,
    /// Keyspaces.
    pub keyspaces: u64,
}

/// What floe_export() did.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct floe_export_summary {
    /// What the archive holds.
    pub write: floe_write_summary,
    /// The fjall snapshot's sequence number.
    pub snapshot_seqno: u64,
    /// Seconds the export took.
    pub elapsed_seconds: f64,
}

/// What floe_import() did.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct floe_import_summary {
    /// Keyspaces created.
    pub keyspaces: u64,
    /// Records written.
    pub records: u64,
    /// Bytes of the imported keyspaces' raw record streams.
    pub raw_bytes: u64,
    /// Seconds the import took.
    pub elapsed_seconds: f64,
    /// Non-fatal notes (e.g. unknown optional keyspace options ignored), one
    /// per line; NULL when there are none. Owned by the caller: free it with
    /// floe_string_free().
    pub warnings: *mut c_char,
}

/// What floe_verify() established.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct floe_verify_report {
    /// Size of the archive in bytes.
    pub archive_bytes: u64,
    /// Keyspaces.
    pub keyspaces: u64,
    /// Blocks.
    pub blocks: u64,
    /// Records.
    pub records: u64,
    /// Bytes of the raw record stream.
    pub raw_bytes: u64,
    /// True when only checksums and structure were checked.
    pub quick: bool,
}

impl From<&floe_core::write::WriteSummary> for floe_write_summary {
    fn from(w: &floe_core::write::WriteSummary) -> Self {
        floe_write_summary {
            archive_bytes: w.archive_bytes,
            records: w.records,
            raw_bytes: w.raw_bytes,
            key_bytes: w.key_bytes,
            value_bytes: w.value_bytes,
            blocks: w.blocks,
            keyspaces: w.keyspaces as u64,
        }
    }
}

pub(crate) fn report_of(r: &VerifyReport) -> floe_verify_report {
    floe_verify_report {
        archive_bytes: r.archive_bytes,
        keyspaces: r.keyspaces as u64,
        blocks: r.blocks,
        records: r.records,
        raw_bytes: r.raw_bytes,
        quick: r.quick,
    }
}

fn keyspace_list(p: *const *const c_char, n: usize) -> FResult<Option<Vec<String>>> {
    // SAFETY: forwarded from the caller's contract on the options struct.
    let v = unsafe { arg_str_array(p, n, "keyspaces") }?;
    Ok(if p.is_null() { None } else { Some(v) })
}

/// Exports the fjall database in the directory `db_path` into the archive
/// `archive_path`: a file (a path or a `file://` URL), written atomically (a
/// temporary sibling renamed into place), or an object (`s3://bucket/key`),
/// streamed through a multipart upload that is aborted on failure. On failure
/// or cancellation no file or object is left. The database must not
/// be open in another process (`FLOE_DATABASE_LOCKED`).
///
/// An existing file at `archive_path` is refused with `FLOE_TARGET_EXISTS`
/// (nothing is read or written) unless `options->overwrite` is set.
///
/// `options` may be NULL (defaults). `progress` may be NULL; `user_data` is
/// passed to it. `out_summary` may be NULL; it is written only on success.
///
/// # Safety
/// Strings are NUL-terminated; `options` is NULL or points to
/// `options->struct_size` readable bytes; `out_summary` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn floe_export(
    db_path: *const c_char,
    archive_path: *const c_char,
    options: *const floe_export_options,
    progress: floe_progress_callback,
    user_data: *mut c_void,
    out_summary: *mut floe_export_summary,
) -> floe_status {
    guard("floe_export", || {
        // SAFETY: per the function contract.
        let db = unsafe { arg_str(db_path, "db_path") }?;
        // SAFETY: per the function contract.
        let archive = unsafe { arg_str(archive_path, "archive_path") }?;
        let mut opts = ExportOptions::default();
        // SAFETY: NULL or a valid struct of `struct_size` bytes per the contract.
        if let Some(o) = unsafe { crate::sized::read(options) }? {
            opts.level = level_or_default(o.level);
            opts.threads = o.threads as usize;
            opts.block_size = block_size_or_default(o.block_size);
            opts.keyspaces = keyspace_list(o.keyspaces, o.keyspace_count)?;
            opts.overwrite = o.overwrite;
        }
        let cb = Callback::new(progress, user_data);
        let s = export_path(Path::new(db), (&Location::parse(archive)?).into(), &opts, &cb)
            .map_err(|e| output_exists(e, "floe_export()", "floe_export_options"))?;
        let out = floe_export_summary {
            write: (&s.write).into(),
            snapshot_seqno: s.snapshot_seqno,
            elapsed_seconds: s.elapsed.as_secs_f64(),
        };
        // SAFETY: NULL or valid per the contract.
        unsafe { write_out(out_summary, out) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Imports the archive `archive_path` (a path, a `file://` URL, or an
/// `s3://bucket/key` object read by ranged requests) into a new fjall database in the
/// directory `db_path`. The database is built in a temporary sibling and
/// moved into place only after every record was checked and persisted: on
/// failure or cancellation nothing is left and an existing target is
/// untouched. A non-empty existing target fails with `FLOE_TARGET_EXISTS`
/// unless `options->replace` is set.
///
/// `options`, `progress` and `out_summary` may be NULL. On success the
/// summary's `warnings` (if not NULL) must be freed with floe_string_free().
///
/// # Safety
/// Strings are NUL-terminated; `options` is NULL or points to
/// `options->struct_size` readable bytes; `out_summary` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn floe_import(
    archive_path: *const c_char,
    db_path: *const c_char,
    options: *const floe_import_options,
    progress: floe_progress_callback,
    user_data: *mut c_void,
    out_summary: *mut floe_import_summary,
) -> floe_status {
    guard("floe_import", || {
        // SAFETY: per the function contract.
        let archive = unsafe { arg_str(archive_path, "archive_path") }?;
        // SAFETY: per the function contract.
        let db = unsafe { arg_str(db_path, "db_path") }?;
        let mut opts = ImportOptions::default();
        // SAFETY: NULL or a valid struct of `struct_size` bytes per the contract.
        if let Some(o) = unsafe { crate::sized::read(options) }? {
            opts.threads = o.threads as usize;
            opts.replace = o.replace;
            opts.keyspaces = keyspace_list(o.keyspaces, o.keyspace_count)?;
        }
        let cb = Callback::new(progress, user_data);
        let s = import_archive(&open_archive(archive)?, Path::new(db), &opts, &cb)
            .map_err(|e| target_exists(e, "floe_import()"))?;
        if !out_summary.is_null() {
            let warnings =
                if s.warnings.is_empty() { std::ptr::null_mut() } else { owned_c_string(s.warnings.join("\n")) };
            let out = floe_import_summary {
                keyspaces: s.keyspaces as u64,
                records: s.records,
                raw_bytes: s.raw_bytes,
                elapsed_seconds: s.elapsed.as_secs_f64(),
                warnings,
            };
            // SAFETY: valid per the contract.
            unsafe { write_out(out_summary, out) };
        }
        Ok(floe_status::FLOE_OK)
    })
}

/// Verifies in a pool of `threads` workers (0 = one per core).
pub(crate) fn verify_archive<B: Source>(
    a: &Archive<B>,
    quick: bool,
    threads: u32,
    cb: &Callback,
) -> FResult<VerifyReport> {
    let pool = floe_core::threads::pool_for(threads as usize)?;
    Ok(pool.install(|| a.verify(quick, cb))?)
}

/// Verifies the archive at `archive_path` (a path, `file://` or `s3://` URL; format-spec §11): every
/// checksum, block, record order and total. With `quick`, checksums and
/// structure only, without decompressing. `threads`: 0 = one per core.
/// Returns `FLOE_OK` only if the archive is sound; `FLOE_CORRUPT_ARCHIVE`
/// (with the offset of the damage in the message) or
/// `FLOE_UNSUPPORTED_VERSION` otherwise.
///
/// `progress` and `out_report` may be NULL.
///
/// # Safety
/// `archive_path` is NUL-terminated; `out_report` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn floe_verify(
    archive_path: *const c_char,
    quick: bool,
    threads: u32,
    progress: floe_progress_callback,
    user_data: *mut c_void,
    out_report: *mut floe_verify_report,
) -> floe_status {
    guard("floe_verify", || {
        // SAFETY: per the function contract.
        let path = unsafe { arg_str(archive_path, "archive_path") }?;
        let a = open_archive(path)?;
        let cb = Callback::new(progress, user_data);
        let r = verify_archive(&a, quick, threads, &cb)?;
        // SAFETY: NULL or valid per the contract.
        unsafe { write_out(out_report, report_of(&r)) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Describes the archive at `archive_path` (a path, `file://` or `s3://` URL) as JSON: exactly the document
/// `floe inspect --json` prints (header, keyspaces with totals and options).
/// Reads only the header, keyspace table and index; use floe_verify() to
/// check the data. On success `*out_json` is a NUL-terminated UTF-8 string
/// the caller frees with floe_string_free().
///
/// # Safety
/// `archive_path` is NUL-terminated; `out_json` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_inspect_json(archive_path: *const c_char, out_json: *mut *mut c_char) -> floe_status {
    guard("floe_inspect_json", || {
        // SAFETY: per the function contract.
        let path = unsafe { arg_str(archive_path, "archive_path") }?;
        arg_out(out_json, "out_json")?;
        let a = open_archive(path)?;
        let s = inspect_string(&a)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_json, owned_c_string(s)) };
        Ok(floe_status::FLOE_OK)
    })
}

pub(crate) fn inspect_string<B: Source>(a: &Archive<B>) -> FResult<String> {
    serde_json::to_string_pretty(&floe_core::inspect::inspect_json(a))
        .map_err(|e| Fail::invalid(format!("cannot render JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sorted names of a Python dataclass's fields (`    name: type` lines).
    fn python_fields<'a>(py: &'a str, class: &str) -> Vec<&'a str> {
        let Some(start) = py.find(&format!("\nclass {class}(")) else {
            panic!("no class {class} in the Python package")
        };
        let mut fields: Vec<&str> = py[start + 1..]
            .lines()
            .skip(1)
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .filter_map(|l| l.strip_prefix("    ")?.split_once(": ").map(|(name, _)| name))
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            .collect();
        fields.sort_unstable();
        fields
    }

    /// `floe verify --json` is built once, by the core's `VerifyJson`; Python
    /// rebuilds its fields from floe_verify_report, so this pins its
    /// `VerifyReport` (and the README's table) to the core's field names.
    #[test]
    fn python_verify_report_has_the_fields_of_verify_json() {
        let doc = serde_json::to_value(VerifyReport::default().to_json("a.floe", 0.5)).unwrap_or_default();
        let Some(doc) = doc.as_object() else { panic!("verify JSON is not an object: {doc}") };
        let want: Vec<&str> = doc.keys().map(String::as_str).collect();
        assert_eq!(want.len(), 9, "{want:?}");
        let py = include_str!("../python/floe/__init__.py");
        assert_eq!(python_fields(py, "VerifyReport"), want);
        let readme = include_str!("../python/README.md");
        let Some(row) = readme.lines().find(|l| l.starts_with("| `VerifyReport` |")) else {
            panic!("ffi/python/README.md lists no VerifyReport fields")
        };
        // The cell's first code span: `ok archive quick ...`.
        let cell = row.split('|').nth(2).unwrap_or_default();
        let mut listed: Vec<&str> = cell.split('`').nth(1).unwrap_or_default().split(' ').collect();
        listed.sort_unstable();
        assert_eq!(listed, want);
    }
}
