//! Status codes, the thread-local last error, panic containment, and the
//! argument checks every exported function performs.

use floe_core::{Error, ErrorKind};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The result of every fallible floe function.
///
/// The numbers are fixed and append-only: a value, once released, never
/// changes meaning, and new codes are only ever added at the end. Every code
/// other than `FLOE_OK` and `FLOE_DONE` is an error; the thread's last error
/// message (floe_last_error()) then says what went wrong.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum floe_status {
    /// Success.
    FLOE_OK = 0,
    /// Not an error: an iterator has no more records (floe_iter_next()).
    FLOE_DONE = 1,
    /// A required pointer argument was NULL (or a NULL buffer with a non-zero length).
    FLOE_NULL_ARGUMENT = 2,
    /// A string argument was not valid UTF-8.
    FLOE_INVALID_UTF8 = 3,
    /// An argument was invalid: bad option, unknown keyspace, keys not
    /// strictly ascending, key or value too long, bad keyspace name...
    FLOE_INVALID_ARGUMENT = 4,
    /// The handle cannot do this now: writer already finished, aborted or
    /// failed; put before begin_keyspace; keyspace begun twice.
    FLOE_INVALID_STATE = 5,
    /// An operating-system I/O error (file missing, permission, disk full...).
    FLOE_IO = 6,
    /// The archive is damaged, truncated or not a floe archive.
    FLOE_CORRUPT_ARCHIVE = 7,
    /// The archive needs a newer floe (format major version or required
    /// feature, section or option this build does not know).
    FLOE_UNSUPPORTED_VERSION = 8,
    /// The database is open in another process.
    FLOE_DATABASE_LOCKED = 9,
    /// The fjall engine failed (including: the source is not a fjall database).
    FLOE_ENGINE = 10,
    /// The import target exists and is not empty (set `replace` to swap it),
    /// or the archive file an export or writer would create exists (set
    /// `overwrite` to replace it).
    FLOE_TARGET_EXISTS = 11,
    /// The progress callback asked to stop. Nothing was left behind.
    FLOE_CANCELLED = 12,
    /// floe panicked (a bug). The panic was contained; the handle involved
    /// should be freed and not used further.
    FLOE_PANIC = 13,
    /// A broken invariant inside floe (a bug, never caused by input). The
    /// message says what; please report it.
    FLOE_INTERNAL = 14,
}

/// A failure: a status and its message.
#[derive(Debug)]
pub(crate) struct Fail {
    pub status: floe_status,
    pub message: String,
}

impl Fail {
    pub fn new(status: floe_status, message: impl Into<String>) -> Fail {
        Fail { status, message: message.into() }
    }
    pub fn null(what: &str) -> Fail {
        Fail::new(floe_status::FLOE_NULL_ARGUMENT, format!("argument '{what}' is NULL"))
    }
    pub fn state(message: impl Into<String>) -> Fail {
        Fail::new(floe_status::FLOE_INVALID_STATE, message)
    }
    pub fn invalid(message: impl Into<String>) -> Fail {
        Fail::new(floe_status::FLOE_INVALID_ARGUMENT, message)
    }
}

/// The status for a library error: the C ABI's one mapping of
/// [`floe_core::ErrorKind`].
pub(crate) fn status_of(e: &Error) -> floe_status {
    use floe_status::*;
    match e.kind() {
        ErrorKind::Io => FLOE_IO,
        ErrorKind::Corrupt => FLOE_CORRUPT_ARCHIVE,
        ErrorKind::Unsupported => FLOE_UNSUPPORTED_VERSION,
        ErrorKind::Locked => FLOE_DATABASE_LOCKED,
        ErrorKind::TargetExists => FLOE_TARGET_EXISTS,
        ErrorKind::InvalidArgument => FLOE_INVALID_ARGUMENT,
        ErrorKind::Engine => FLOE_ENGINE,
        ErrorKind::Cancelled => FLOE_CANCELLED,
        ErrorKind::Internal => FLOE_INTERNAL,
        // A kind added to the core later than this mapping: still an error, never success.
        _ => FLOE_INTERNAL,
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        Fail { status: status_of(&e), message: e.to_string() }
    }
}

/// An existing output that `func` would not overwrite, in the C ABI's own
/// terms (the `overwrite` field of the option struct `options`); any other
/// error as it is.
pub(crate) fn output_exists(e: Error, func: &str, options: &str) -> Fail {
    match e {
        Error::OutputExists(p) => Fail::new(
            floe_status::FLOE_TARGET_EXISTS,
            format!(
                "{} already exists; {func} does not overwrite it unless options->overwrite is set ({options}). \
                 Choose another path, or remove it first",
                p.display()
            ),
        ),
        e => e.into(),
    }
}

/// An import target that `func` would not replace, in the C ABI's own terms
/// (the `replace` field of `floe_import_options`); any other error as it is.
pub(crate) fn target_exists(e: Error, func: &str) -> Fail {
    match e {
        Error::TargetExists(p) => Fail::new(
            floe_status::FLOE_TARGET_EXISTS,
            format!(
                "target {} exists and is not empty; {func} replaces it (atomically) only when options->replace is \
                 set (floe_import_options)",
                p.display()
            ),
        ),
        e => e.into(),
    }
}

pub(crate) type FResult<T> = Result<T, Fail>;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let c = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|l| *l.borrow_mut() = c);
}

fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|l| {
        if let Ok(mut l) = l.try_borrow_mut() {
            if !l.as_bytes().is_empty() {
                *l = CString::default();
            }
        }
    });
}

pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR.try_with(|l| l.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".into())
}

/// Runs the body of an exported function: contains panics, records the
/// message of a failure as the thread's last error, clears it on success.
pub(crate) fn guard(func: &str, f: impl FnOnce() -> FResult<floe_status>) -> floe_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(s)) => {
            clear_last_error();
            s
        }
        Ok(Err(fail)) => {
            set_last_error(&fail.message);
            fail.status
        }
        Err(p) => {
            let msg = format!("{func}: floe panicked (this is a bug): {}", panic_message(&*p));
            let _ = catch_unwind(|| set_last_error(&msg));
            floe_status::FLOE_PANIC
        }
    }
}

/// For `void` functions (the `_free`s): contains panics, reports nothing.
pub(crate) fn guard_void(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// A required C string argument, as UTF-8.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn arg_str<'a>(p: *const c_char, what: &str) -> FResult<&'a str> {
    if p.is_null() {
        return Err(Fail::null(what));
    }
    // SAFETY: non-NULL and NUL-terminated per the contract above.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|e| Fail::new(floe_status::FLOE_INVALID_UTF8, format!("argument '{what}' is not valid UTF-8: {e}")))
}

/// An optional C string argument (NULL = `None`).
///
/// # Safety
/// As [`arg_str`].
pub(crate) unsafe fn arg_opt_str<'a>(p: *const c_char, what: &str) -> FResult<Option<&'a str>> {
    if p.is_null() {
        Ok(None)
    } else {
        // SAFETY: forwarded contract.
        unsafe { arg_str(p, what) }.map(Some)
    }
}

/// A byte buffer argument: NULL is accepted only with length 0.
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn arg_bytes<'a>(p: *const u8, len: usize, what: &str) -> FResult<&'a [u8]> {
    if p.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(Fail::new(
            floe_status::FLOE_NULL_ARGUMENT,
            format!("argument '{what}' is NULL but its length is {len}"),
        ));
    }
    if len > isize::MAX as usize {
        return Err(Fail::invalid(format!("argument '{what}': length {len} is too large")));
    }
    // SAFETY: non-NULL, `len` readable bytes per the contract above.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// An array of `n` C strings (NULL array accepted only with `n` = 0).
///
/// # Safety
/// `p` is NULL or points to `n` pointers, each NULL or a NUL-terminated string.
pub(crate) unsafe fn arg_str_array(p: *const *const c_char, n: usize, what: &str) -> FResult<Vec<String>> {
    if p.is_null() {
        if n == 0 {
            return Ok(Vec::new());
        }
        return Err(Fail::new(
            floe_status::FLOE_NULL_ARGUMENT,
            format!("argument '{what}' is NULL but its count is {n}"),
        ));
    }
    if n > (isize::MAX as usize) / std::mem::size_of::<*const c_char>() {
        return Err(Fail::invalid(format!("argument '{what}': count {n} is too large")));
    }
    // SAFETY: `n` readable pointers per the contract above.
    let ptrs = unsafe { std::slice::from_raw_parts(p, n) };
    ptrs.iter()
        .enumerate()
        .map(|(i, &s)| {
            // SAFETY: each element is NULL or NUL-terminated per the contract.
            unsafe { arg_str(s, &format!("{what}[{i}]")) }.map(str::to_owned)
        })
        .collect()
}

/// A path argument of a function that takes local files only (the reader
/// and writer handles): a plain path or a `file://` URL. Any other URL
/// (`s3://...`) is refused with `FLOE_INVALID_ARGUMENT`, saying so and what
/// takes URLs instead (`instead`), rather than failing as a missing file.
pub(crate) fn local_path(path: &str, func: &str, instead: &str) -> FResult<std::path::PathBuf> {
    use floe_core::store::Location;
    let scheme = path.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme {
        Some(s) if Location::is_url(path) && s != "file" => Err(Fail::invalid(format!(
            "{func} takes local paths only (a path or a file:// URL), not the URL {path}; {instead}"
        ))),
        _ => match Location::parse(path)? {
            Location::Local(p) => Ok(p),
            Location::Object(o) => {
                Err(Error::Internal(format!("{} parsed as an object, not a file", o.describe())).into())
            }
        },
    }
}

/// Checks that a required output pointer is not NULL.
pub(crate) fn arg_out<T>(p: *mut T, what: &str) -> FResult<()> {
    if p.is_null() {
        Err(Fail::null(what))
    } else {
        Ok(())
    }
}

/// Writes an output value.
///
/// # Safety
/// `p` was checked by [`arg_out`] (or is NULL, then nothing is written) and
/// points to writable memory for a `T`.
pub(crate) unsafe fn write_out<T>(p: *mut T, v: T) {
    if !p.is_null() {
        // SAFETY: per the contract above; `write` does not drop the old (possibly
        // uninitialised) contents.
        unsafe { p.write(v) };
    }
}

/// A string the caller frees with floe_string_free().
pub(crate) fn owned_c_string(s: String) -> *mut c_char {
    let c = CString::new(s.replace('\0', "\\0")).unwrap_or_default();
    c.into_raw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use floe_core::BackupError;

    #[test]
    fn statuses_follow_the_core_error_kinds() {
        use floe_status::*;
        let malformed =
            Error::Backup(BackupError::Malformed { repo: "r".into(), what: "manifest".into(), detail: "x".into() });
        let cases = [
            (Error::Internal("x".into()), FLOE_INTERNAL),
            (malformed, FLOE_CORRUPT_ARCHIVE),
            (Error::Cancelled, FLOE_CANCELLED),
            (Error::InvalidArgument("x".into()), FLOE_INVALID_ARGUMENT),
            (Error::TargetExists("t".into()), FLOE_TARGET_EXISTS),
            (Error::OutputExists("o".into()), FLOE_TARGET_EXISTS),
            (Error::io("x", std::io::Error::other("y")), FLOE_IO),
        ];
        for (e, want) in cases {
            assert_eq!(status_of(&e), want, "{e}");
        }
        // An existing output is reported in the C ABI's terms; other errors pass through.
        let f = output_exists(Error::OutputExists("a.floe".into()), "floe_export()", "floe_export_options");
        assert_eq!(f.status, FLOE_TARGET_EXISTS);
        assert!(f.message.starts_with("a.floe already exists; floe_export()"), "{}", f.message);
        assert!(f.message.contains("options->overwrite") && !f.message.contains("--force"), "{}", f.message);
        assert_eq!(output_exists(Error::Cancelled, "f", "o").status, FLOE_CANCELLED);
    }
}
