//! Replays the fuzzers' committed seed corpus (`fuzz/corpus/<target>/`) and
//! every past finding (`fuzz/regressions/<target>/`) through the same checks
//! the fuzz targets run (`fuzz/checks.rs`), so `cargo test` keeps them fixed
//! without cargo-fuzz. Running the fuzzers themselves: `scripts/fuzz.sh`.

#[path = "../fuzz/checks.rs"]
mod checks;

use std::path::Path;

/// Runs `check` on every file under `fuzz/{corpus,regressions}/<target>/`;
/// returns how many there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for kind in ["corpus", "regressions"] {
        let dir = root.join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = entries.map(|e| e.expect("listing corpus").path()).collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).expect("reading a corpus file");
            let r = std::panic::catch_unwind(|| check(&data));
            assert!(r.is_ok(), "{target}: {} fails its check (rerun: cargo fuzz run {target} {})", f.display(), f.display());
            n += 1;
        }
    }
    n
}

#[test]
fn read_archive_corpus_and_regressions() {
    assert!(replay("read_archive", checks::read_archive) > 0, "no seed corpus for read_archive");
}

#[test]
fn round_trip_corpus_and_regressions() {
    assert!(replay("round_trip", checks::round_trip) > 0, "no seed corpus for round_trip");
}

#[test]
fn mutate_archive_corpus_and_regressions() {
    assert!(replay("mutate_archive", checks::mutate_archive) > 0, "no seed corpus for mutate_archive");
}
