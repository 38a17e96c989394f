//! Raw bytes into both archive readers (random access and streaming):
//! never a panic, never unbounded memory.
#![no_main]
use floe::progress::NoProgress;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = floe::reader::Archive::from_bytes(data, "fuzz") {
        let _ = a.verify(false, &NoProgress);
    }
    let _ = floe::reader::verify_stream(data, "fuzz", false, &NoProgress);
});
