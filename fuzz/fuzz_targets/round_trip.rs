//! Structure-aware round trip: arbitrary keyspaces, options and records are
//! written with the block pipeline and with the record writer (in table order
//! and in an arbitrary order); the archives must be identical and read back
//! identically.
//! Properties: ../checks.rs (shared with tests/fuzz_replay.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::round_trip(data));
