//! Mutations of a valid archive must be refused, never read back as something
//! else.
//! Properties: ../checks.rs (shared with tests/fuzz_replay.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::mutate_archive(data));
