//! Option structs that can grow: each begins with `size_t struct_size`, the
//! size of the struct as the caller's header declares it (`sizeof`). The
//! library reads only the first `min(struct_size, sizeof)` bytes it knows and
//! defaults the rest, so a program built against an older header (a smaller
//! struct) keeps working with a newer library; fields are only ever appended.
//! A caller's struct larger than the library's (a newer header, an older
//! library) is accepted only when every byte the library does not know is
//! zero (the new fields at their defaults), as Linux's `openat2` does, so a
//! field the library cannot honour is never silently ignored.

use crate::error::{FResult, Fail};
use crate::floe_status;

/// Larger values of `struct_size` are refused as uninitialised memory: no
/// option struct will ever be this big.
const MAX_STRUCT_SIZE: usize = 4096;

/// An option struct whose first field is `struct_size: usize`.
///
/// # Safety
/// The implementing type is `#[repr(C)]`, starts with `struct_size: usize`,
/// and every bit pattern of its fields that C can produce is valid (integers,
/// pointers, `bool` holding 0 or 1), with all-zero bytes meaning the defaults.
pub(crate) unsafe trait Versioned: Copy {
    /// The C name, e.g. `floe_export_options`.
    const NAME: &'static str;
    /// Size in bytes of the struct's first version (the smallest accepted).
    const FIRST_SIZE: usize;
    /// The initialiser, e.g. `floe_export_options_default`.
    const INIT: &'static str;
}

fn invalid(msg: String) -> Fail {
    Fail::new(floe_status::FLOE_INVALID_ARGUMENT, msg)
}

/// Checks a `struct_size` the caller gave for a `T`.
fn check_size<T: Versioned>(size: usize) -> FResult<()> {
    let (name, init) = (T::NAME, T::INIT);
    let how = format!("set it to sizeof({name}), or initialise the struct with {init}(&options, sizeof options)");
    if size == 0 {
        return Err(invalid(format!("{name}.struct_size is 0: {how}")));
    }
    if size < T::FIRST_SIZE {
        return Err(invalid(format!(
            "{name}.struct_size is {size}, smaller than the first version of {name} ({} bytes): {how}",
            T::FIRST_SIZE
        )));
    }
    if size > MAX_STRUCT_SIZE {
        return Err(invalid(format!(
            "{name}.struct_size is {size}, which no version of {name} has (is the struct initialised?): {how}"
        )));
    }
    Ok(())
}

/// Reads the caller's option struct: `None` for NULL (the defaults).
///
/// # Safety
/// `p` is NULL or points to `p->struct_size` readable bytes (at least a `usize`).
pub(crate) unsafe fn read<T: Versioned>(p: *const T) -> FResult<Option<T>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: every version of the struct begins with an aligned `size_t`.
    let size = unsafe { p.cast::<usize>().read() };
    check_size::<T>(size)?;
    let ours = std::mem::size_of::<T>();
    if size > ours {
        // SAFETY: the caller's struct is `size` readable bytes long.
        let tail = unsafe { std::slice::from_raw_parts(p.cast::<u8>().add(ours), size - ours) };
        if let Some(i) = tail.iter().position(|&b| b != 0) {
            return Err(invalid(format!(
                "{name} has {size} bytes (struct_size) but this libfloe {v} knows only the first {ours}: byte {at} is \
                 set, so a field of a newer floe.h is in use that this library cannot honour. Use a libfloe as new as \
                 the header, or leave that field zero",
                name = T::NAME,
                v = crate::FLOE_VERSION_STRING,
                at = ours + i,
            )));
        }
    }
    // SAFETY: all-zero is a valid T (the trait's contract), meaning the defaults.
    let mut out: T = unsafe { std::mem::zeroed() };
    // SAFETY: `size.min(ours)` bytes are readable at `p` and writable in `out`;
    // the bytes are valid field values per the trait's contract.
    unsafe { std::ptr::copy_nonoverlapping(p.cast::<u8>(), (&raw mut out).cast::<u8>(), size.min(ours)) };
    Ok(Some(out))
}

/// Initialises the caller's struct of `size` bytes to the defaults (all
/// zero) with `struct_size = size`. Nothing is written unless `size` is
/// acceptable.
///
/// # Safety
/// `p` is NULL or points to `size` writable bytes.
pub(crate) unsafe fn init<T: Versioned>(p: *mut T, size: usize) -> FResult<()> {
    if p.is_null() {
        return Err(Fail::null("options"));
    }
    check_size::<T>(size)?;
    // SAFETY: `size` writable bytes at `p`, and an aligned `usize` first.
    unsafe {
        std::ptr::write_bytes(p.cast::<u8>(), 0, size);
        p.cast::<usize>().write(size);
    }
    Ok(())
}

/// Implements [`Versioned`] for an option struct; `$last` is the last field of its
/// first version (of type `$last_ty`).
macro_rules! sized_struct {
    ($t:ident, $init:literal, $last:ident: $last_ty:ty) => {
        // SAFETY: checked by the assertions below and the struct's definition.
        unsafe impl $crate::sized::Versioned for $t {
            const NAME: &'static str = stringify!($t);
            const FIRST_SIZE: usize = {
                let end = std::mem::offset_of!($t, $last) + std::mem::size_of::<$last_ty>();
                let align = std::mem::align_of::<$t>();
                end.div_ceil(align) * align
            };
            const INIT: &'static str = $init;
        }
        const _: () = assert!(std::mem::offset_of!($t, struct_size) == 0, "struct_size must come first");
        const _: () = assert!(<$t as $crate::sized::Versioned>::FIRST_SIZE <= std::mem::size_of::<$t>());
    };
}
pub(crate) use sized_struct;

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct demo_options {
        struct_size: usize,
        a: u32,
        b: u64,
        c: bool,
    }
    sized_struct!(demo_options, "demo_options_default", b: u64);

    /// The caller's bytes: its struct_size, then `fill` for the rest.
    fn caller(size: usize, fill: u8) -> Vec<u64> {
        let mut v = vec![0u64; size.div_ceil(8)];
        // SAFETY: v has at least `size` bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), size) };
        bytes.fill(fill);
        bytes[..8].copy_from_slice(&size.to_ne_bytes());
        v
    }

    fn read_of(v: &[u64]) -> FResult<Option<demo_options>> {
        // SAFETY: the buffer holds struct_size bytes.
        unsafe { read(v.as_ptr().cast::<demo_options>()) }
    }

    #[test]
    fn sizes_of_the_first_and_current_versions() {
        assert_eq!(demo_options::FIRST_SIZE, 24);
        assert_eq!(std::mem::size_of::<demo_options>(), 32);
    }

    #[test]
    fn an_older_struct_reads_only_its_bytes() {
        // The byte where `c` would be is 1 in the caller's memory, past its struct.
        let mut v = caller(32, 0);
        v[1] = 7;
        v[2] = 9;
        v[3] = 1;
        v[0] = 24;
        let o = read_of(&v).unwrap().unwrap();
        assert_eq!((o.a, o.b, o.c), (7, 9, false));
        v[0] = 32;
        assert!(read_of(&v).unwrap().unwrap().c);
    }

    #[test]
    fn a_newer_struct_needs_zero_unknown_bytes() {
        let mut v = caller(40, 0);
        assert!(read_of(&v).unwrap().is_some());
        v[4] = 1 << 8; // byte 33
        let e = read_of(&v).unwrap_err();
        assert!(e.message.contains("byte 33") && e.message.contains("knows only the first 32"), "{}", e.message);
    }

    #[test]
    fn bad_sizes_are_refused() {
        for size in [0usize, 8, 23, 4097, usize::MAX] {
            let mut v = caller(32, 0);
            v[0] = size as u64;
            let e = read_of(&v).unwrap_err();
            assert_eq!(e.status, floe_status::FLOE_INVALID_ARGUMENT);
            assert!(e.message.contains("demo_options.struct_size") && e.message.contains("demo_options_default"));
        }
        // SAFETY: NULL.
        assert!(unsafe { read::<demo_options>(std::ptr::null()) }.unwrap().is_none());
    }

    #[test]
    fn init_writes_exactly_the_callers_size() {
        let mut v = caller(40, 0xAB);
        // SAFETY: 40 writable bytes; only 24 may be written.
        unsafe { init(v.as_mut_ptr().cast::<demo_options>(), 24) }.unwrap();
        assert_eq!(v[0], 24);
        assert_eq!((v[1], v[2]), (0, 0));
        assert_eq!((v[3], v[4]), (u64::from_ne_bytes([0xAB; 8]), u64::from_ne_bytes([0xAB; 8])));
        // SAFETY: as above.
        unsafe { init(v.as_mut_ptr().cast::<demo_options>(), 40) }.unwrap();
        assert_eq!(v, [40, 0, 0, 0, 0]);
        // SAFETY: nothing is written for a refused size.
        assert!(unsafe { init(v.as_mut_ptr().cast::<demo_options>(), 7) }.is_err());
        assert_eq!(v[0], 40);
    }
}
