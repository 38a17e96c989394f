//! floe: flat-file, streaming, checksummed export/import archives for fjall.
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod error;
pub mod format;
pub mod fsutil;
pub mod progress;
pub mod spool;
pub mod writer;

pub use error::{EngineError, Error, ErrorKind, Result};
pub mod backup;
pub mod cursor;
pub mod demo;
pub mod engine;
pub mod export;
pub mod import;
pub mod inspect;
pub mod reader;
pub mod sample;
pub mod store;
pub mod text;
