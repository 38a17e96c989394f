//! Cancellation through the progress callback: returning false stops export
//! (no output file, no temporary) and import (no target directory, no
//! temporary), whether it happens on the first report or midway. Also checks
//! that progress reports are monotonic and complete when not cancelled.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use floe::export::{export_database, export_path, Destination};
use floe::import::{import_file, import_stream, ImportOptions};
use floe::progress::{NoProgress, ProgressInfo};
use floe::read::Archive;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A progress callback that cancels on its `n`-th call (1-based) and counts calls.
fn cancel_at(n: u64, calls: &AtomicU64) -> impl Fn(&ProgressInfo) -> bool + Send + Sync + '_ {
    move |_: &ProgressInfo| calls.fetch_add(1, Ordering::SeqCst) + 1 < n
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf, Model, Vec<u8>) {
    let dir = tempdir();
    let m = small_model(4000, 17);
    let src = make_db_dir(&dir.path().join("src"), &m, &BTreeSet::new());
    let db = open_db(&src);
    let bytes = export_bytes(&db, &opts(4096, 2));
    drop(db);
    (dir, src, m, bytes)
}

#[test]
fn cancelled_export_leaves_no_file() {
    let (dir, src, _m, bytes) = setup();
    let blocks = Archive::from_bytes(bytes.as_slice(), "a").unwrap().index().blocks.len() as u64;
    assert!(blocks > 20, "{blocks}");
    for n in [1, 2, blocks / 2, blocks - 1] {
        let out = dir.path().join("out.floe");
        let calls = AtomicU64::new(0);
        let e = export_path(&src, Destination::File(&out), &opts(4096, 2), &cancel_at(n, &calls)).unwrap_err();
        assert!(matches!(e, floe::Error::Cancelled), "cancel at call {n}: {e}");
        assert_eq!(calls.load(Ordering::SeqCst), n, "export kept reporting after being cancelled");
        assert!(!out.exists(), "cancelled export left {}", out.display());
        assert_eq!(dir_names(dir.path()), vec!["src".to_string()], "cancel at call {n}");
    }
    // In-memory export on an open handle: cancelled too, and the handle stays usable.
    let db = open_db(&src);
    let calls = AtomicU64::new(0);
    let r = export_database(&db, Vec::new(), &opts(4096, 1), &cancel_at(3, &calls));
    assert!(matches!(r, Err(floe::Error::Cancelled)));
    assert_eq!(export_bytes(&db, &opts(4096, 2)), bytes);
}

#[test]
fn export_progress_is_monotonic_and_complete() {
    let (_dir, src, m, bytes) = setup();
    let db = open_db(&src);
    let seen: Mutex<Vec<ProgressInfo>> = Mutex::new(Vec::new());
    let cb = |p: &ProgressInfo| {
        seen.lock().unwrap().push(*p);
        true
    };
    let (out, s) = export_database(&db, Vec::new(), &opts(4096, 2), &cb).unwrap();
    assert_eq!(out, bytes);
    let seen = seen.into_inner().unwrap();
    // One report per block, then the final one with exact totals.
    assert_eq!(seen.len() as u64, s.write.blocks + 1);
    for w in seen.windows(2) {
        assert!(w[1].bytes_done >= w[0].bytes_done && w[1].records_done >= w[0].records_done);
    }
    // The estimated totals never fall below what was done.
    assert!(seen.iter().all(|p| p.bytes_total >= p.bytes_done && p.records_total >= p.records_done));
    let last = seen.last().unwrap();
    assert_eq!(last.bytes_done, s.write.raw_bytes);
    assert_eq!((last.bytes_total, last.records_total), (last.bytes_done, last.records_done));
    assert_eq!(last.records_done, m.values().map(|r| r.len() as u64).sum::<u64>());
}

#[test]
fn cancelled_import_leaves_no_target() {
    let (dir, _src, m, bytes) = setup();
    let f = dir.path().join("a.floe");
    std::fs::write(&f, &bytes).unwrap();
    let target = dir.path().join("dst");
    let expect_clean = |what: &str| {
        assert!(!target.exists(), "{what}: cancelled import left the target");
        assert_eq!(dir_names(dir.path()), vec!["a.floe".to_string(), "src".to_string()], "{what}");
    };
    for n in [1u64, 2, 10] {
        for threads in [1, 2] {
            let calls = AtomicU64::new(0);
            let o = {
                let mut o = ImportOptions::default();
                o.threads = threads;
                o
            };
            let e = import_file(&f, &target, &o, &cancel_at(n, &calls)).unwrap_err();
            assert!(matches!(e, floe::Error::Cancelled), "import_file cancel at {n}: {e}");
            expect_clean(&format!("import_file, cancel at call {n}, {threads} threads"));
            let calls = AtomicU64::new(0);
            let e = import_stream(bytes.as_slice(), "s", &target, &o, &cancel_at(n, &calls)).unwrap_err();
            assert!(matches!(e, floe::Error::Cancelled), "import_stream cancel at {n}: {e}");
            assert_eq!(calls.load(Ordering::SeqCst), n);
            expect_clean(&format!("import_stream, cancel at call {n}"));
        }
    }
    // A cancelled --replace keeps the old database.
    let mut old = Model::new();
    old.insert("old".into(), [(b"k".to_vec(), b"v".to_vec())].into());
    make_db_dir(&target, &old, &BTreeSet::new());
    let calls = AtomicU64::new(0);
    let o = {
        let mut o = ImportOptions::default();
        o.replace = true;
        o
    };
    assert!(matches!(import_file(&f, &target, &o, &cancel_at(5, &calls)), Err(floe::Error::Cancelled)));
    assert_models_eq(&read_db_at(&target), &old);
    assert_no_temporaries(dir.path());
    // Not cancelled: it completes and reports everything.
    std::fs::remove_dir_all(&target).unwrap();
    let last = Mutex::new(None);
    let cb = |p: &ProgressInfo| {
        *last.lock().unwrap() = Some(*p);
        true
    };
    import_file(&f, &target, &ImportOptions::default(), &cb).unwrap();
    let last = last.into_inner().unwrap().unwrap();
    assert_eq!(last.records_done, m.values().map(|r| r.len() as u64).sum::<u64>());
    assert_eq!(last.bytes_done, last.bytes_total);
    assert_models_eq(&read_db_at(&target), &m);
}

#[test]
fn cancelled_verify_stops() {
    let (_dir, _src, _m, bytes) = setup();
    let a = Archive::from_bytes(bytes.as_slice(), "a").unwrap();
    for quick in [false, true] {
        let calls = AtomicU64::new(0);
        let e = a.verify(quick, &cancel_at(2, &calls)).unwrap_err();
        assert!(matches!(e, floe::Error::Cancelled), "{e}");
        let calls = AtomicU64::new(0);
        let e = floe::read::verify_stream(bytes.as_slice(), "s", quick, &cancel_at(2, &calls)).unwrap_err();
        assert!(matches!(e, floe::Error::Cancelled), "{e}");
    }
    a.verify(false, &NoProgress).unwrap();
}
