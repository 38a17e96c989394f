//! libfloe: the C ABI of floe (see include/floe.h, generated from this crate
//! by cbindgen; ffi/README.md documents the API as a whole).
//!
//! Conventions (after rustls-ffi):
//! * every fallible function returns a [`floe_status`]; on failure the
//!   thread's last error message is set (floe_last_error());
//! * no panic crosses the boundary: each function contains them and returns
//!   `FLOE_PANIC`;
//! * pointer arguments are checked for NULL and strings for UTF-8;
//! * handles are opaque and freed by their `_free` function, which accepts NULL;
//! * output parameters are written only on success.
#![forbid(unsafe_op_in_unsafe_fn)]
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)] // every function's safety contract is in its doc comment

mod diff;
mod error;
mod ops;
mod options;
mod reader;
mod sized;
mod writer;

pub use diff::*;
pub use error::floe_status;
pub use ops::*;
pub use reader::*;
pub use writer::*;

use error::guard_void;
use std::ffi::{c_char, CString};
use std::sync::OnceLock;

/// Major version of this library (semantic versioning).
pub const FLOE_VERSION_MAJOR: u32 = 0;
/// Minor version of this library.
pub const FLOE_VERSION_MINOR: u32 = 1;
/// Patch version of this library.
pub const FLOE_VERSION_PATCH: u32 = 0;
/// This library's version as a string.
#[allow(clippy::redundant_static_lifetimes)] // cbindgen exports only `&'static str` constants
pub const FLOE_VERSION_STRING: &'static str = "0.1.0";
/// The archive format major version this library reads and writes. It reads
/// every minor version of this major.
pub const FLOE_FORMAT_MAJOR: u16 = 1;
/// The archive format minor version this library writes.
pub const FLOE_FORMAT_MINOR: u16 = 1;

const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    let mut i = 0;
    let mut n = 0u32;
    while i < b.len() {
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

// The header's version macros come from the constants above: keep them equal
// to the package version and to the library's format version.
const _: () = assert!(FLOE_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")), "update FLOE_VERSION_MAJOR");
const _: () = assert!(FLOE_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")), "update FLOE_VERSION_MINOR");
const _: () = assert!(FLOE_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")), "update FLOE_VERSION_PATCH");
const _: () = assert!(str_eq(FLOE_VERSION_STRING, env!("CARGO_PKG_VERSION")), "update FLOE_VERSION_STRING");
const _: () = assert!(FLOE_FORMAT_MAJOR == floe_core::format::FORMAT_MAJOR, "update FLOE_FORMAT_MAJOR");
const _: () = assert!(FLOE_FORMAT_MINOR == floe_core::format::FORMAT_MINOR, "update FLOE_FORMAT_MINOR");

/// Versions of this library, of the archive format and of the storage engine.
/// All strings are static: never free them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct floe_version_info {
    /// floe's version, e.g. "0.1.0" (equal to FLOE_VERSION_STRING of the
    /// header this library was built with).
    pub version: *const c_char,
    /// floe's major version.
    pub major: u32,
    /// floe's minor version.
    pub minor: u32,
    /// floe's patch version.
    pub patch: u32,
    /// Archives of this format major version are read, whatever their minor
    /// version (format-spec §10).
    pub format_major: u16,
    /// The format minor version written.
    pub format_minor: u16,
    /// The storage engine: "fjall".
    pub engine: *const c_char,
    /// The engine's version linked into this library, e.g. "3.1.13".
    pub engine_version: *const c_char,
    /// One line for humans, e.g.
    /// "floe 0.1.0 (archive format 1.x, writes 1.0; fjall 3.1.13)".
    pub description: *const c_char,
}

struct VersionStrings {
    version: CString,
    engine: CString,
    engine_version: CString,
    description: CString,
}

fn version_strings() -> &'static VersionStrings {
    static V: OnceLock<VersionStrings> = OnceLock::new();
    V.get_or_init(|| {
        let c = |s: &str| CString::new(s).unwrap_or_default();
        let ev = floe_core::engine::ENGINE_VERSION;
        VersionStrings {
            version: c(FLOE_VERSION_STRING),
            engine: c(floe_core::engine::ENGINE_NAME),
            engine_version: c(ev),
            description: c(&format!(
                "floe {FLOE_VERSION_STRING} (archive format {FLOE_FORMAT_MAJOR}.x, writes {FLOE_FORMAT_MAJOR}.{FLOE_FORMAT_MINOR}; {} {ev})",
                floe_core::engine::ENGINE_NAME
            )),
        }
    })
}

/// Returns the versions of floe, of the archive format it reads and writes,
/// and of the engine. Never fails; safe to call from any thread.
#[no_mangle]
pub extern "C" fn floe_version() -> floe_version_info {
    let empty = c"".as_ptr();
    let mut out = floe_version_info {
        version: empty,
        major: FLOE_VERSION_MAJOR,
        minor: FLOE_VERSION_MINOR,
        patch: FLOE_VERSION_PATCH,
        format_major: FLOE_FORMAT_MAJOR,
        format_minor: FLOE_FORMAT_MINOR,
        engine: empty,
        engine_version: empty,
        description: empty,
    };
    guard_void(|| {
        let v = version_strings();
        out.version = v.version.as_ptr();
        out.engine = v.engine.as_ptr();
        out.engine_version = v.engine_version.as_ptr();
        out.description = v.description.as_ptr();
    });
    out
}

/// The message of the last failed floe call on the calling thread, or "" if
/// the last call succeeded. Never NULL. The string belongs to floe and stays
/// valid until the next floe call on the same thread; copy it to keep it.
#[no_mangle]
pub extern "C" fn floe_last_error() -> *const c_char {
    std::panic::catch_unwind(error::last_error_ptr).unwrap_or(c"".as_ptr())
}

/// The name of a status code, e.g. "FLOE_CORRUPT_ARCHIVE", or
/// "FLOE_UNKNOWN_STATUS" for a number that is not a status. Static; never
/// free it. Takes an `int` so that any number is safe to pass.
#[no_mangle]
pub extern "C" fn floe_status_name(status: i32) -> *const c_char {
    std::panic::catch_unwind(|| status_name(status).as_ptr()).unwrap_or(c"FLOE_UNKNOWN_STATUS".as_ptr())
}

fn status_name(status: i32) -> &'static std::ffi::CStr {
    match status {
        0 => c"FLOE_OK",
        1 => c"FLOE_DONE",
        2 => c"FLOE_NULL_ARGUMENT",
        3 => c"FLOE_INVALID_UTF8",
        4 => c"FLOE_INVALID_ARGUMENT",
        5 => c"FLOE_INVALID_STATE",
        6 => c"FLOE_IO",
        7 => c"FLOE_CORRUPT_ARCHIVE",
        8 => c"FLOE_UNSUPPORTED_VERSION",
        9 => c"FLOE_DATABASE_LOCKED",
        10 => c"FLOE_ENGINE",
        11 => c"FLOE_TARGET_EXISTS",
        12 => c"FLOE_CANCELLED",
        13 => c"FLOE_PANIC",
        14 => c"FLOE_INTERNAL",
        _ => c"FLOE_UNKNOWN_STATUS",
    }
}

/// Frees a string returned by floe (floe_inspect_json(), the `warnings` of an
/// import summary, ...). Accepts NULL. Never pass a string floe did not
/// allocate, nor free one twice.
///
/// # Safety
/// `s` is NULL or a string floe returned to the caller for freeing.
#[no_mangle]
pub unsafe extern "C" fn floe_string_free(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: per the contract, `s` came from CString::into_raw in this library.
        drop(unsafe { CString::from_raw(s) });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_match_the_enum() {
        use floe_status::*;
        for s in [
            FLOE_OK,
            FLOE_DONE,
            FLOE_NULL_ARGUMENT,
            FLOE_INVALID_UTF8,
            FLOE_INVALID_ARGUMENT,
            FLOE_INVALID_STATE,
            FLOE_IO,
            FLOE_CORRUPT_ARCHIVE,
            FLOE_UNSUPPORTED_VERSION,
            FLOE_DATABASE_LOCKED,
            FLOE_ENGINE,
            FLOE_TARGET_EXISTS,
            FLOE_CANCELLED,
            FLOE_PANIC,
            FLOE_INTERNAL,
        ] {
            // SAFETY: static NUL-terminated strings.
            let name = unsafe { std::ffi::CStr::from_ptr(floe_status_name(s as i32)) }.to_str().unwrap();
            assert_eq!(name, format!("{s:?}"));
        }
    }
}
