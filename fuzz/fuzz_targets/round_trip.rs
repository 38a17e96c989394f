//! Structure-aware round trip: arbitrary keyspaces, options and records are
//! written with both writer paths and must read back identically.
//! Properties: ../checks.rs (shared with tests/fuzz_replay.rs).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::round_trip(data));
