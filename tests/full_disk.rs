//! A full disk: export and import into a 4 MiB tmpfs mounted for the test.
//! Each fails with an error naming the condition ("No space left on device"),
//! leaves no partial output and no temporary on the small file system, and
//! leaves the source (database or archive) untouched; `--replace` keeps the
//! old database. The mount is removed even when an assertion fails.
//!
//! Mounting needs root (CI runs as root). Without it the tests print a note
//! and pass, unless `FLOE_REQUIRE_ROOT_TESTS=1` (set by scripts/test-all.sh),
//! in which case they fail.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A small tmpfs mounted on a fresh directory; unmounted on drop.
struct TinyFs {
    dir: tempfile::TempDir,
}

impl TinyFs {
    /// `None` (after printing why) when mounting is not permitted here.
    fn mount(size: &str) -> Option<TinyFs> {
        let dir = disk_tempdir();
        let target = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        let data = CString::new(format!("size={size},mode=0755")).unwrap();
        // SAFETY: valid NUL-terminated strings for the duration of the call.
        let r =
            unsafe { libc::mount(c"floe-test".as_ptr(), target.as_ptr(), c"tmpfs".as_ptr(), 0, data.as_ptr().cast()) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            let msg = format!("cannot mount a tmpfs on {} ({e}); the full-disk tests need root", dir.path().display());
            if std::env::var_os("FLOE_REQUIRE_ROOT_TESTS").is_some_and(|v| v == "1") {
                panic!("{msg} and FLOE_REQUIRE_ROOT_TESTS=1");
            }
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        Some(TinyFs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TinyFs {
    fn drop(&mut self) {
        let target = CString::new(self.dir.path().as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path; MNT_DETACH unmounts even if something is still open there.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// About 12 MB of incompressible records: an archive or database several
/// times larger than the 4 MiB file system.
fn big_model() -> Model {
    let mut rng = floe::sample::Rng(4);
    let mut m = Model::new();
    for ks in ["a", "b"] {
        let mut recs = std::collections::BTreeMap::new();
        for i in 0..1500u32 {
            let mut v = vec![0u8; 4000];
            rng.fill(&mut v);
            recs.insert(format!("{ks}{i:06}").into_bytes(), v);
        }
        m.insert(ks.into(), recs);
    }
    m
}

#[track_caller]
fn assert_disk_full(o: &std::process::Output) {
    assert_code(o, 1);
    let e = stderr(o);
    assert!(e.contains("No space left on device"), "the error does not name the full disk: {e}");
}

#[test]
fn export_to_a_full_disk_fails_cleanly() {
    let Some(fs) = TinyFs::mount("4m") else { return };
    let dir = tempdir();
    let src = make_db_dir(&dir.path().join("src"), &big_model(), &BTreeSet::new());
    let before = db_data_files(&src);
    let out = fs.path().join("x.floe");
    let o = floe(&["export", "-q", p(&src), "-o", p(&out)]);
    assert_disk_full(&o);
    assert!(stderr(&o).contains(fs.path().to_str().unwrap()), "the error does not name the file: {}", stderr(&o));
    assert_eq!(dir_names(fs.path()), Vec::<String>::new(), "the failed export left files on the full disk");
    assert_eq!(db_data_files(&src), before, "the failed export changed the source database");
    // The library reports an I/O error of kind StorageFull.
    let e = floe::export::export_path(
        &src,
        floe::export::Destination::File(&out),
        &opts(1 << 20, 2),
        &floe::progress::NoProgress,
    )
    .unwrap_err();
    match &e {
        floe::Error::Io { source, .. } => assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{e}"),
        other => panic!("expected an I/O error, got {other}"),
    }
    assert_eq!(dir_names(fs.path()), Vec::<String>::new());
    // A small export still fits afterwards: the space was given back.
    let small = make_db_dir(&dir.path().join("small"), &small_model(200, 1), &BTreeSet::new());
    assert_code(&floe(&["export", "-q", p(&small), "-o", p(&out)]), 0);
    floe::read::Archive::open(&out).unwrap().verify(false, &floe::progress::NoProgress).unwrap();
}

#[test]
fn import_to_a_full_disk_fails_cleanly() {
    let Some(fs) = TinyFs::mount("4m") else { return };
    let dir = tempdir();
    let m = big_model();
    let db = create_db(&dir.path().join("src"), &m, &BTreeSet::new());
    let archive = dir.path().join("a.floe");
    std::fs::write(&archive, export_bytes(&db, &opts(1 << 20, 2))).unwrap();
    drop(db);
    let hash = file_hash(&archive);
    let target = fs.path().join("db");
    for threads in ["1", "2"] {
        let o = floe(&["import", "-q", "--threads", threads, p(&archive), p(&target)]);
        assert_disk_full(&o);
        assert!(stderr(&o).contains("the disk is full"), "{}", stderr(&o));
        assert!(!target.exists(), "the failed import left the target");
        assert_eq!(dir_names(fs.path()), Vec::<String>::new(), "the failed import left files on the full disk");
        let o = floe_stdin(&["import", "-q", "-", p(&target)], &archive);
        assert_disk_full(&o);
        assert_eq!(
            dir_names(fs.path()),
            Vec::<String>::new(),
            "the failed streaming import left files on the full disk"
        );
        assert_eq!(file_hash(&archive), hash, "the failed import modified the archive");
    }
    // --replace over a small database that fits: it stays as it was.
    let old = small_model(100, 2);
    make_db_dir(&target, &old, &BTreeSet::new());
    let o = floe(&["import", "-q", "--replace", p(&archive), p(&target)]);
    assert_disk_full(&o);
    assert_models_eq(&read_db_at(&target), &old);
    assert_eq!(dir_names(fs.path()), vec!["db".to_string()]);
    assert_eq!(file_hash(&archive), hash);
}
