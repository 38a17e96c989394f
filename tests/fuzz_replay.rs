//! Replays the fuzzers' committed seed corpus (`fuzz/corpus/<target>/`) and
//! every past finding (`fuzz/regressions/<target>/`) through the same checks
//! the fuzz targets run (`fuzz/checks.rs`), so `cargo test` keeps them fixed
//! without cargo-fuzz. Running the fuzzers themselves: `scripts/fuzz.sh`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

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
            assert!(
                r.is_ok(),
                "{target}: {} fails its check (rerun: cargo fuzz run {target} {})",
                f.display(),
                f.display()
            );
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

/// A small archive: one keyspace whose value spans two 4 KiB blocks.
fn small_plan() -> checks::Plan {
    use floe::format::{header::Header, keyspace_table::KeyspaceEntry, options::KeyspaceOptions};
    let ks = KeyspaceEntry { name: "ks".into(), options: KeyspaceOptions::default() };
    let records = vec![(b"a".to_vec(), vec![]), (b"b".to_vec(), vec![7; 6000])];
    checks::Plan {
        header: Header::new(1, 4096, 1),
        content: checks::Content { keyspaces: vec![ks], records: vec![records] },
    }
}

#[test]
fn the_checks_accept_a_valid_archive_and_catch_appended_bytes() {
    let plan = small_plan();
    let mut a = checks::write_records(&plan);
    assert_eq!(checks::read_both(&a), Some(plan.content.clone()));
    // Spec §2: trailing data is an error for both readers.
    a.extend_from_slice(b"garbage");
    assert_eq!(checks::read_both(&a), None);
}

#[test]
fn the_checksum_fixer_only_changes_checksums() {
    let plan = small_plan();
    let a = checks::write_records(&plan);
    let mut b = a.clone();
    checks::fix_checksums(&mut b);
    assert_eq!(a, b, "fixing the checksums of a valid archive changed it");
    // A flipped record byte inside a data frame is caught by the CRCs, and
    // with the checksums patched the readers still agree.
    let mut c = a.clone();
    let at = c.len() / 2;
    c[at] ^= 0x10;
    assert_eq!(checks::read_both(&c), None);
    checks::fix_checksums(&mut c);
    checks::read_both(&c);
}
