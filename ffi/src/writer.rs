//! The archive writer: records in, a normal floe archive out. A thin wrapper
//! over the core's [`RecordWriter::undeclared`], which takes keyspaces in any
//! order and spools their compressed blocks until floe_writer_finish() (see
//! `floe_core::write::spool`: in memory up to 8 MiB, beyond that in an anonymous
//! temporary file in the target's directory, gone with the writer). The
//! archive is written into a temporary sibling of the target, renamed into
//! place on success. Memory stays bounded by one block, the in-memory part of
//! the spool and ~50 bytes per block of bookkeeping, whatever the archive size.

use crate::error::{
    arg_bytes, arg_opt_str, arg_out, arg_str, guard, guard_void, local_path, output_exists, write_out, FResult, Fail,
};
use crate::floe_status;
use crate::ops::floe_write_summary;
use floe_core::export::{block_size_or_default, creation_time, level_or_default};
use floe_core::format::header::Header;
use floe_core::format::options::KeyspaceOptions;
use floe_core::fs::AtomicFile;
use floe_core::write::RecordWriter;
use floe_core::Error;
use std::ffi::c_char;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

/// Writer settings. Initialise with floe_writer_options_default() (or set
/// `struct_size` to `sizeof(floe_writer_options)` and everything else to
/// zero); passing NULL means the defaults. Every field's zero value is its
/// default.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct floe_writer_options {
    /// `sizeof(floe_writer_options)` as the caller's header declares it
    /// (see floe_export_options.struct_size).
    pub struct_size: usize,
    /// zstd level: 1 to 22, negative for the fast modes; 0 = default (1).
    pub level: i32,
    /// Raw block size in bytes, 4096 to 67108864; 0 = default (1 MiB).
    pub block_size: u32,
    /// Replace an existing file at the path. Without it (the default) an
    /// existing file is refused with `FLOE_TARGET_EXISTS` by
    /// floe_writer_create(), and one that appears before
    /// floe_writer_finish() makes the finish fail with it, the file that
    /// appeared being left alone. (Added after the first version: a struct
    /// of the first version's size does not overwrite.)
    pub overwrite: bool,
}
crate::sized::sized_struct!(floe_writer_options, "floe_writer_options_default", block_size: u32);

/// Sets `*options` to the defaults, as floe_export_options_default().
///
/// # Safety
/// `options` points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn floe_writer_options_default(
    options: *mut floe_writer_options,
    struct_size: usize,
) -> floe_status {
    guard("floe_writer_options_default", || {
        // SAFETY: per the function contract.
        unsafe { crate::sized::init(options, struct_size) }?;
        Ok(floe_status::FLOE_OK)
    })
}

struct Open {
    target: PathBuf,
    /// The temporary sibling the archive goes to; removed unless committed.
    out: AtomicFile,
    /// Writes into `out`'s file (through its own handle on it).
    writer: RecordWriter<BufWriter<File>>,
}

enum State {
    Open(Box<Open>),
    Finished,
    Aborted,
    Failed(String),
}

/// An archive being written (opaque). Create with floe_writer_create(),
/// end with floe_writer_finish() or floe_writer_abort(), and always free
/// with floe_writer_free(). Not thread-safe: use from one thread at a time.
pub struct floe_writer {
    state: State,
}

/// A refusal because of the writer's state (keyspace begun twice, put before
/// begin): the core reports those as invalid arguments.
fn state_error(e: Error) -> Fail {
    match e {
        Error::InvalidArgument(m) => Fail::state(m),
        e => e.into(),
    }
}

impl Open {
    fn begin(&mut self, name: &str, options: KeyspaceOptions) -> FResult<()> {
        let twice = self.writer.is_begun(name);
        self.writer.begin_keyspace_with(name, options).map_err(|e| if twice { state_error(e) } else { e.into() })
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> FResult<()> {
        let before_begin = !self.writer.in_keyspace();
        self.writer.put(key, value).map_err(|e| if before_begin { state_error(e) } else { e.into() })
    }

    fn finish(self) -> FResult<floe_write_summary> {
        let Open { target, out, writer } = self;
        let (buf, summary) = writer.finish()?;
        buf.into_inner().map_err(|e| Error::io(format!("writing {}", target.display()), e.into_error()))?;
        out.commit().map_err(|e| output_exists(e, "floe_writer_finish()", "floe_writer_options"))?;
        Ok((&summary).into())
    }
}

fn writer_mut<'a>(w: *mut floe_writer) -> FResult<&'a mut floe_writer> {
    // SAFETY: the caller passes NULL or a live handle from floe_writer_create.
    unsafe { w.as_mut() }.ok_or_else(|| Fail::null("writer"))
}

impl floe_writer {
    fn open(&mut self) -> FResult<&mut Open> {
        match &mut self.state {
            State::Open(o) => Ok(o),
            State::Finished => Err(Fail::state("the writer was already finished")),
            State::Aborted => Err(Fail::state("the writer was aborted")),
            State::Failed(m) => Err(Fail::state(format!("the writer failed earlier and can only be freed: {m}"))),
        }
    }

    /// Runs `f` on the open writer; an error other than a rejected argument
    /// leaves the writer failed (its temporary files are removed at once).
    fn with_open<T>(&mut self, f: impl FnOnce(&mut Open) -> FResult<T>) -> FResult<T> {
        let r = f(self.open()?);
        if let Err(e) = &r {
            if !matches!(e.status, floe_status::FLOE_INVALID_ARGUMENT | floe_status::FLOE_INVALID_STATE) {
                self.state = State::Failed(e.message.clone());
            }
        }
        r
    }
}

/// Starts writing an archive to the file `path` (a local path: no URL).
/// Nothing appears at `path` until floe_writer_finish() succeeds: the
/// archive is built in a temporary sibling (`.NAME.floe-tmp-PID-N`) and
/// moved into place. An existing file at `path` is refused with
/// `FLOE_TARGET_EXISTS` unless `options->overwrite` is set (then it is
/// replaced). `options` may be NULL (defaults).
///
/// Do not write the same path with two writers at once in one process.
///
/// # Safety
/// `path` is NUL-terminated; `options` is NULL or points to
/// `options->struct_size` readable bytes; `out_writer` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_writer_create(
    path: *const c_char,
    options: *const floe_writer_options,
    out_writer: *mut *mut floe_writer,
) -> floe_status {
    guard("floe_writer_create", || {
        // SAFETY: per the function contract.
        let path = unsafe { arg_str(path, "path") }?;
        arg_out(out_writer, "out_writer")?;
        // SAFETY: NULL or a valid struct of `struct_size` bytes per the contract.
        let o = unsafe { crate::sized::read(options) }?.unwrap_or(floe_writer_options {
            struct_size: std::mem::size_of::<floe_writer_options>(),
            level: 0,
            block_size: 0,
            overwrite: false,
        });
        let mut header = Header::new(level_or_default(o.level), block_size_or_default(o.block_size), 0);
        header.created_unix = creation_time(None);
        let target = local_path(
            path,
            "floe_writer_create()",
            "floe_export() writes s3:// URLs from a database (so does the floe CLI); to upload records written here, \
             write a local file and upload it",
        )?;
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        RecordWriter::<BufWriter<File>>::check_header(&header)?;
        let mut out = AtomicFile::create_with(&target, o.overwrite)
            .map_err(|e| output_exists(e, "floe_writer_create()", "floe_writer_options"))?;
        let file = out
            .file()
            .try_clone()
            .map_err(|e| Error::io(format!("opening a second handle on the temporary file for {path}"), e))?;
        let writer = RecordWriter::undeclared(BufWriter::with_capacity(1 << 20, file), header)?.spool_in(dir);
        let open = Open { target, out, writer };
        let w = Box::new(floe_writer { state: State::Open(Box::new(open)) });
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_writer, Box::into_raw(w)) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Begins the keyspace `name` (1 to 255 bytes of UTF-8) and ends the
/// previous one. Keyspaces may be begun in any order (the archive lists them
/// sorted by name), each once. An empty keyspace is begun and not put to.
///
/// `options_json` is NULL (the engine's defaults) or a JSON object with the
/// keys of the `options` object of `floe inspect --json`; absent keys keep
/// the engine's defaults. Supported: `data_block_compression`,
/// `index_block_compression` ("none"/"lz4"), `data_block_size`,
/// `data_block_restart_interval`, `index_block_restart_interval`,
/// `data_block_hash_ratio`, `index_block_pinning`, `filter_block_pinning`,
/// `index_block_partitioning`, `filter_block_partitioning` (each an array
/// with one value per LSM level, the last repeating, or a single value),
/// `expect_point_read_hits` (boolean), `filter_policy` (array of "none",
/// {"bloom_bits_per_key": x} or {"bloom_false_positive_rate": x}),
/// `kv_separation` (null/false = off, true = on with fjall's defaults, or an
/// object with any of `blob_compression`, `file_target_size`,
/// `separation_threshold`, `staleness_threshold`, `age_cutoff`) and
/// `compaction` ({"strategy": "leveled", "l0_threshold": n,
/// "table_target_size": n, "level_ratios": [...]} or {"strategy": "fifo",
/// "limit_bytes": n, "ttl_seconds": n or null}). Anything else is
/// `FLOE_INVALID_ARGUMENT`.
///
/// # Safety
/// `writer` is a live handle; strings are NUL-terminated or (options) NULL.
#[no_mangle]
pub unsafe extern "C" fn floe_writer_begin_keyspace(
    writer: *mut floe_writer,
    name: *const c_char,
    options_json: *const c_char,
) -> floe_status {
    guard("floe_writer_begin_keyspace", || {
        let w = writer_mut(writer)?;
        // SAFETY: per the function contract.
        let name = unsafe { arg_str(name, "name") }?;
        // SAFETY: per the function contract.
        let json = unsafe { arg_opt_str(options_json, "options_json") }?;
        w.open()?;
        let options = match json {
            Some(j) => crate::options::parse(name, j)?,
            None => KeyspaceOptions::default(),
        };
        w.with_open(|o| o.begin(name, options))?;
        Ok(floe_status::FLOE_OK)
    })
}

/// Adds a record to the current keyspace. Keys are 1 to 65535 bytes and
/// strictly ascending (unsigned byte-wise) within a keyspace; values are 0 to
/// 4294967295 bytes (a NULL `value` is allowed when `value_len` is 0). A
/// key that breaks these rules is refused with `FLOE_INVALID_ARGUMENT`,
/// nothing is written, and the writer stays usable.
///
/// # Safety
/// `writer` is a live handle; `key`/`value` point to `key_len`/`value_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn floe_writer_put(
    writer: *mut floe_writer,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> floe_status {
    guard("floe_writer_put", || {
        let w = writer_mut(writer)?;
        if key.is_null() {
            return Err(Fail::null("key"));
        }
        // SAFETY: per the function contract.
        let key = unsafe { arg_bytes(key, key_len, "key") }?;
        // SAFETY: per the function contract.
        let value = unsafe { arg_bytes(value, value_len, "value") }?;
        w.with_open(|o| o.put(key, value))?;
        Ok(floe_status::FLOE_OK)
    })
}

/// Finishes the archive: writes it completely, fsyncs it and renames it
/// into place. On success `*out_summary` (if not NULL) describes it. After
/// this call, successful or not, the writer accepts nothing more (calls
/// return `FLOE_INVALID_STATE`); on failure no file is left. Free it with
/// floe_writer_free().
///
/// # Safety
/// `writer` is a live handle; `out_summary` is NULL or valid.
#[no_mangle]
pub unsafe extern "C" fn floe_writer_finish(
    writer: *mut floe_writer,
    out_summary: *mut floe_write_summary,
) -> floe_status {
    guard("floe_writer_finish", || {
        let w = writer_mut(writer)?;
        w.open()?;
        let State::Open(open) = std::mem::replace(&mut w.state, State::Failed("floe_writer_finish() failed".into()))
        else {
            return Err(Error::Internal("floe_writer_finish: the writer was open a moment ago".into()).into());
        };
        match open.finish() {
            Ok(s) => {
                w.state = State::Finished;
                // SAFETY: NULL or valid per the contract.
                unsafe { write_out(out_summary, s) };
                Ok(floe_status::FLOE_OK)
            }
            Err(e) => {
                w.state = State::Failed(e.message.clone());
                Err(e)
            }
        }
    })
}

/// Abandons the archive: removes its temporary files; nothing appears at the
/// path. `FLOE_INVALID_STATE` if the writer was already finished or aborted.
/// The handle must still be freed with floe_writer_free().
///
/// # Safety
/// `writer` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn floe_writer_abort(writer: *mut floe_writer) -> floe_status {
    guard("floe_writer_abort", || {
        let w = writer_mut(writer)?;
        match w.state {
            State::Finished => return Err(Fail::state("the writer was already finished; the archive stays")),
            State::Aborted => return Err(Fail::state("the writer was already aborted")),
            State::Open(_) | State::Failed(_) => {}
        }
        // Dropping the open state removes the temporary archive and spool.
        w.state = State::Aborted;
        Ok(floe_status::FLOE_OK)
    })
}

/// Frees a writer, aborting it first if it was neither finished nor
/// aborted. Accepts NULL.
///
/// # Safety
/// `writer` is NULL or a live handle, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn floe_writer_free(writer: *mut floe_writer) {
    if writer.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: a live handle from Box::into_raw, per the contract.
        drop(unsafe { Box::from_raw(writer) });
    });
}
