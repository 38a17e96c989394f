//! Helpers below every layer: durable file-system operations, process-wide
//! interruption, text rendering and the `threads` option. Nothing here knows
//! the archive format or an engine.

pub mod fs;
pub mod interrupt;
pub mod text;
pub mod threads;
