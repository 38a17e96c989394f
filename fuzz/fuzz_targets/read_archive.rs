//! Raw bytes into both archive readers (random access and streaming), as they
//! are and with their checksums patched: never a panic, never unbounded memory,
//! and both readers agree.
//! Properties: ../checks.rs (shared with tests/fuzz_replay.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::read_archive(data));
