//! floe: flat-file, streaming, checksummed export/import archives for fjall.
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod format;
