//! floe: flat-file, streaming, checksummed export/import archives for fjall.
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod format;
pub mod error;
pub mod fsutil;
pub mod progress;
pub mod writer;

pub use error::{EngineError, Error, Result};
pub mod reader;
pub mod engine;
pub mod export;
pub mod import;
pub mod inspect;
pub mod sample;
pub mod demo;
pub mod store;
pub mod backup;
