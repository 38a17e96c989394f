//! floe deletes or replaces only what it created, or what the user named and
//! floe checked (issue 10, items 10–16):
//!
//! * import without `--replace` never moves over a target that appeared while
//!   it ran; of two concurrent imports exactly one wins, the other exits 6;
//! * `--replace` takes fjall's lock on the target (exit 5 while another
//!   process has it open, also for `backup restore`), holds it through the
//!   swap, replaces only a fjall database, and never one that contains the
//!   archive or the repository being read;
//! * export refuses an output inside its source database (symlinks resolved);
//! * a temporary whose `flock` is held is never removed as a leftover,
//!   whatever pid its name carries;
//! * SIGTERM and SIGHUP cancel and clean up like SIGINT, with exit 143 / 129;
//! * an existing device or FIFO output is written to as a stream, never
//!   renamed over.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use floe::import::{import_file, ImportOptions};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A source database with `n` records and its archive.
fn archive(root: &Path, n: usize) -> (Model, PathBuf, PathBuf) {
    let m = small_model(n, 10);
    let src = make_db_dir(&root.join("src"), &m, &BTreeSet::new());
    let f = root.join("a.floe");
    assert_code(&floe(&["export", "-q", p(&src), "-o", p(&f)]), 0);
    (m, src, f)
}

fn replace() -> ImportOptions {
    {
        let mut o = ImportOptions::default();
        o.replace = true;
        o
    }
}

/// Item 10: a target directory that appears while an import runs (created
/// from its progress callback, so always mid-run) is never moved over.
#[test]
fn import_never_moves_over_a_target_that_appeared() {
    let dir = tempdir();
    let (m, _, f) = archive(dir.path(), 3000);
    let target = dir.path().join("dst");
    let appeared = std::sync::Once::new();
    let hook = |_: &floe::progress::ProgressInfo| {
        appeared.call_once(|| {
            fs::create_dir(&target).unwrap();
            fs::write(target.join("IMPORTANT.txt"), b"the user's file").unwrap();
        });
        true
    };
    let r = import_file(&f, &target, &ImportOptions::default(), &hook);
    assert!(appeared.is_completed(), "the hook never ran");
    assert!(matches!(r, Err(floe::Error::TargetExists(_))), "{r:?}");
    assert_eq!(fs::read(target.join("IMPORTANT.txt")).unwrap(), b"the user's file");
    assert_eq!(dir_names(&target), ["IMPORTANT.txt"]);
    assert_no_temporaries(dir.path());
    // An empty directory that appears is taken over (nothing is lost).
    fs::remove_dir_all(&target).unwrap();
    let appeared = std::sync::Once::new();
    let hook = |_: &floe::progress::ProgressInfo| {
        appeared.call_once(|| fs::create_dir(&target).unwrap());
        true
    };
    import_file(&f, &target, &ImportOptions::default(), &hook).unwrap();
    assert!(appeared.is_completed());
    assert_models_eq(&read_db_at(&target), &m);
}

/// Item 10, through the CLI: two imports into one target started together;
/// exactly one wins, the other exits 6, and the winner's database is whole.
#[test]
fn of_two_concurrent_imports_exactly_one_wins() {
    let dir = tempdir();
    let (m, _, f) = archive(dir.path(), 20_000);
    let target = dir.path().join("dst");
    let mut both_ran = 0;
    for round in 0..6 {
        let start = || {
            Command::new(floe_bin())
                .args(["import", "-q", p(&f), p(&target)])
                .stdin(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (start(), start());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        let mut codes = [code(&a), code(&b)];
        codes.sort();
        assert_eq!(codes, [0, 6], "round {round}: {}\n{}", stderr(&a), stderr(&b));
        let loser = if code(&a) == 6 { &a } else { &b };
        if !stderr(loser).contains("exists") {
            panic!("round {round}: {}", stderr(loser));
        }
        both_ran += 1;
        assert_models_eq(&read_db_at(&target), &m);
        assert_no_temporaries(dir.path());
        fs::remove_dir_all(&target).unwrap();
    }
    assert_eq!(both_ran, 6);
}

/// Item 10, through the CLI as the issue reproduced it: the target (with a
/// user's file) is created by another process once the import is running.
#[test]
fn a_target_created_during_a_cli_import_survives() {
    let dir = tempdir();
    let (_, _, f) = archive(dir.path(), 20_000);
    let target = dir.path().join("dst");
    let mut checked = 0;
    for _ in 0..5 {
        let child = Command::new(floe_bin())
            .args(["import", "-q", p(&f), p(&target)])
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        while temporaries(dir.path()).is_empty() && !target.exists() {
            std::thread::yield_now();
        }
        // Created under another name and renamed in, like a user's `mv`.
        let mine = dir.path().join("mine");
        fs::create_dir(&mine).unwrap();
        fs::write(mine.join("IMPORTANT.txt"), b"keep me").unwrap();
        let moved = fs::rename(&mine, &target).is_ok();
        let o = child.wait_with_output().unwrap();
        if moved {
            assert_code(&o, 6);
            assert_eq!(fs::read(target.join("IMPORTANT.txt")).unwrap(), b"keep me");
            checked += 1;
        } else {
            assert_code(&o, 0); // the import had already finished: nothing to race
            fs::remove_dir_all(&mine).unwrap();
        }
        assert_no_temporaries(dir.path());
        fs::remove_dir_all(&target).unwrap();
    }
    assert!(checked > 0, "the import always finished before the target could appear");
}

/// Item 11: `--replace` of a database open in another process is exit 5 and
/// leaves it alone, for `import` and `backup restore`; the library gives
/// `TargetLocked` (the C and Python `replace` options call the same function).
#[test]
fn replace_refuses_a_database_open_elsewhere() {
    let dir = tempdir();
    let (m, src, f) = archive(dir.path(), 2000);
    let mut old = Model::new();
    old.insert("old".into(), [(b"k".to_vec(), b"v".to_vec())].into());
    let target = dir.path().join("live");
    let live = create_db(&target, &old, &BTreeSet::new()); // held open by this process
    let o = floe(&["import", "-q", p(&f), p(&target), "--replace"]);
    assert_code(&o, 5);
    assert!(stderr(&o).contains("open in another process"), "{}", stderr(&o));
    let repo = dir.path().join("repo");
    let o = floe(&["backup", "create", "-q", p(&src), "--repo", p(&repo)]);
    assert_code(&o, 0);
    let id = stdout(&o).trim().to_owned();
    let o = floe(&["backup", "restore", "-q", "--repo", p(&repo), &id, p(&target), "--replace"]);
    assert_code(&o, 5);
    let r = import_file(&f, &target, &replace(), &floe::progress::NoProgress);
    assert!(matches!(r, Err(floe::Error::Engine(floe::EngineError::TargetLocked { .. }))), "{r:?}");
    // The open database was not swapped away: its handle still sees the same directory.
    live.keyspace("old", fjall::KeyspaceCreateOptions::default).unwrap().insert("k2", "v2").unwrap();
    live.persist(fjall::PersistMode::SyncAll).unwrap();
    drop(live);
    old.get_mut("old").unwrap().insert(b"k2".to_vec(), b"v2".to_vec());
    assert_models_eq(&read_db_at(&target), &old);
    assert_no_temporaries(dir.path());
    // Closed, it is replaced.
    assert_code(&floe(&["backup", "restore", "-q", "--repo", p(&repo), &id, p(&target), "--replace"]), 0);
    assert_models_eq(&read_db_at(&target), &m);
}

/// Item 11: the lock is held from the start of a replacing import through the
/// swap: nobody can open the old database meanwhile.
#[test]
fn replace_holds_the_target_locked_while_it_runs() {
    let dir = tempdir();
    let (m, _, f) = archive(dir.path(), 3000);
    let mut old = Model::new();
    old.insert("old".into(), [(b"k".to_vec(), b"v".to_vec())].into());
    let target = make_db_dir(&dir.path().join("db"), &old, &BTreeSet::new());
    let opened = std::sync::Mutex::new(Vec::new());
    let hook = |_: &floe::progress::ProgressInfo| {
        let r = fjall::Database::builder(&target).open().map(drop);
        opened.lock().unwrap().push(matches!(r, Err(fjall::Error::Locked)));
        true
    };
    import_file(&f, &target, &replace(), &hook).unwrap();
    let opened = opened.into_inner().unwrap();
    assert!(!opened.is_empty() && opened.iter().all(|&locked| locked), "{opened:?}");
    assert_models_eq(&read_db_at(&target), &m);
}

/// Item 12: `--replace` replaces only a fjall database, never one holding
/// the archive or repository being read (symlinks resolved).
#[test]
fn replace_refuses_what_is_not_a_database_or_holds_the_source() {
    let dir = tempdir();
    let (m, src, f) = archive(dir.path(), 2000);
    // Not a database.
    let photos = dir.path().join("photos");
    fs::create_dir(&photos).unwrap();
    fs::write(photos.join("img.jpg"), b"jpeg").unwrap();
    let o = floe(&["import", "-q", p(&f), p(&photos), "--replace"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("not a fjall database"), "{}", stderr(&o));
    assert_eq!(dir_names(&photos), ["img.jpg"]);
    // A database holding the archive being read, named directly and through a symlink.
    let db = make_db_dir(&dir.path().join("db"), &m, &BTreeSet::new());
    let inside = db.join("a.floe");
    fs::copy(&f, &inside).unwrap();
    let link = dir.path().join("link.floe");
    std::os::unix::fs::symlink(&inside, &link).unwrap();
    // ... and a backup repository inside it.
    let repo = db.join("repo");
    let o = floe(&["backup", "create", "-q", p(&src), "--repo", p(&repo)]);
    assert_code(&o, 0);
    let id = stdout(&o).trim().to_owned();
    let before = db_data_files(&db);
    for a in [&inside, &link] {
        let o = floe(&["import", "-q", p(a), p(&db), "--replace"]);
        assert_code(&o, 1);
        assert!(stderr(&o).contains("which this import reads from"), "{}", stderr(&o));
        assert!(inside.is_file());
    }
    assert_eq!(db_data_files(&db), before);
    // The repository being restored from, as target or inside it.
    let o = floe(&["backup", "restore", "-q", "--repo", p(&repo), &id, p(&repo), "--replace"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("not a fjall database"), "{}", stderr(&o));
    let o = floe(&["backup", "restore", "-q", "--repo", p(&repo), &id, p(&db), "--replace"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("which this import reads from"), "{}", stderr(&o));
    assert_code(&floe(&["backup", "verify", "-q", "--repo", p(&repo)]), 0);
    assert_eq!(db_data_files(&db), before);
    // The library's own list.
    let opts = {
        let mut o = ImportOptions::default();
        o.replace = true;
        o.protect = vec![repo.clone()];
        o
    };
    let r = import_file(&f, &db, &opts, &floe::progress::NoProgress);
    assert!(matches!(&r, Err(floe::Error::InvalidArgument(s)) if s.contains("reads from")), "{r:?}");
    assert_eq!(db_data_files(&db), before);
    assert_no_temporaries(dir.path());
}

/// Item 13: export refuses an output inside its source, also through symlinks.
#[test]
fn export_never_writes_into_its_source() {
    let dir = tempdir();
    let m = small_model(500, 3);
    let db = make_db_dir(&dir.path().join("db"), &m, &BTreeSet::new());
    let dir_link = dir.path().join("dblink");
    std::os::unix::fs::symlink(&db, &dir_link).unwrap();
    let file_link = dir.path().join("out.floe");
    std::os::unix::fs::symlink(db.join("version"), &file_link).unwrap();
    let before = db_data_files(&db);
    let names = dir_names(&db);
    for out in [db.join("version"), db.join("new.floe"), dir_link.join("version"), file_link.clone()] {
        let o = floe(&["export", "-q", p(&db), "-o", p(&out)]);
        assert_code(&o, 1);
        assert!(stderr(&o).contains("inside the source database"), "{out:?}: {}", stderr(&o));
        assert_eq!(db_data_files(&db), before, "{out:?}");
        assert_eq!(dir_names(&db), names, "{out:?}");
    }
    assert_models_eq(&read_db_at(&db), &m);
}

/// Item 14: a temporary whose lock is held (here by this test process, with
/// a pid in its name that is not running here, as from another pid
/// namespace) is left alone by the import and export that clean leftovers.
#[test]
fn a_live_temporary_of_another_pid_namespace_is_not_removed() {
    let dir = tempdir();
    let (_, src, f) = archive(dir.path(), 500);
    let live_dir = dir.path().join(".dst.floe-tmp-999999999-0");
    fs::create_dir(&live_dir).unwrap();
    fs::write(live_dir.join("being-built"), b"x").unwrap();
    let live_file = dir.path().join(".b.floe.floe-tmp-999999999-1");
    fs::write(&live_file, b"being written").unwrap();
    let locks = [fs::File::open(&live_dir).unwrap(), fs::File::open(&live_file).unwrap()];
    for l in &locks {
        l.lock().unwrap();
    }
    let o = floe(&["import", p(&f), p(&dir.path().join("dst"))]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("in use by a running floe"), "{}", stderr(&o));
    let o = floe(&["export", p(&src), "-o", p(&dir.path().join("b.floe"))]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("in use by a running floe"), "{}", stderr(&o));
    assert!(live_dir.join("being-built").exists() && live_file.exists());
    // Released (its owner died), it is a leftover.
    drop(locks);
    let o = floe(&["import", "--replace", p(&f), p(&dir.path().join("dst"))]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("removed leftover"), "{}", stderr(&o));
    assert!(!live_dir.exists());
}

/// Item 15: SIGTERM and SIGHUP during an import cancel it like SIGINT: no
/// target, no temporary, exit 128 + signal.
#[cfg(target_os = "linux")]
#[test]
fn sigterm_and_sighup_interrupt_an_import_cleanly() {
    use std::io::Write;
    let dir = tempdir();
    let m = small_model(3000, 4);
    let db = create_db(&dir.path().join("src"), &m, &BTreeSet::new());
    let bytes = export_bytes(&db, &opts(4096, 1));
    drop(db);
    let target = dir.path().join("dst");
    for (sig, want) in [(libc::SIGTERM, 143), (libc::SIGHUP, 129), (libc::SIGINT, 130)] {
        let mut child = Command::new(floe_bin())
            .args(["import", "-q", "-", p(&target)])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        wait_for_handler(pid, sig);
        let mut stdin = child.stdin.take().unwrap();
        let cut = bytes.len() / 3;
        stdin.write_all(&bytes[..cut]).unwrap();
        stdin.flush().unwrap();
        // The import is running (it waits for the rest of stdin) once its temporary exists.
        while temporaries(dir.path()).is_empty() {
            std::thread::yield_now();
        }
        signal(pid, sig);
        // floe's handler sets its flag as the signal is delivered; only then
        // does the import get the rest of its input.
        wait_delivered(pid, sig);
        let _ = stdin.write_all(&bytes[cut..]); // may fail with EPIPE once floe has exited
        drop(stdin);
        let o = child.wait_with_output().unwrap();
        assert_code(&o, want);
        assert!(!target.exists(), "signal {sig}: the interrupted import left the target");
        assert_eq!(dir_names(dir.path()), ["src"], "signal {sig}");
    }
}

/// Waits until `sig` is no longer pending for process `pid` or any of its
/// threads, i.e. its handler has run.
#[cfg(target_os = "linux")]
fn wait_delivered(pid: u32, sig: i32) {
    let bit = 1u64 << (sig - 1);
    let pending = |status: &str, field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .is_some_and(|m| m & bit != 0)
    };
    loop {
        let shared = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let mut any = pending(&shared, "ShdPnd:");
        for t in fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
            let s = fs::read_to_string(t.path().join("status")).unwrap_or_default();
            any |= pending(&s, "SigPnd:");
        }
        if !any {
            return;
        }
        std::thread::yield_now();
    }
}

/// Item 16: an existing FIFO output is written to as a stream.
#[test]
fn export_writes_into_a_fifo_and_keeps_it() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tempdir();
    let m = small_model(2000, 5);
    let db = make_db_dir(&dir.path().join("db"), &m, &BTreeSet::new());
    let fifo = dir.path().join("pipe");
    let c = std::ffi::CString::new(p(&fifo)).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let link = dir.path().join("pipe-link");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for out in [&fifo, &link] {
        let copy = dir.path().join("copy.floe");
        let mut reader = Command::new("cat").arg(&fifo).stdout(fs::File::create(&copy).unwrap()).spawn().unwrap();
        let o = floe(&["export", "-q", p(&db), "-o", p(out)]);
        let still_fifo = fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo();
        if !still_fifo {
            let _ = reader.kill();
        }
        let _ = reader.wait();
        assert!(still_fifo, "the FIFO was replaced");
        assert_code(&o, 0);
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        let a = floe::read::Archive::open(&copy).unwrap();
        a.verify(false, &floe::progress::NoProgress).unwrap();
        fs::remove_file(&copy).unwrap();
        assert_no_temporaries(dir.path());
    }
}

/// Item 16: an existing character device (a `/dev/null` made with mknod) is
/// written to and stays a device; a block device is refused. Needs root
/// (CAP_MKNOD) and a file system without `nodev`: skipped otherwise, unless
/// `FLOE_REQUIRE_ROOT_TESTS=1`.
#[test]
fn export_to_a_device_node_keeps_the_device() {
    use std::os::unix::fs::FileTypeExt;
    let required = std::env::var("FLOE_REQUIRE_ROOT_TESTS").is_ok_and(|v| v == "1");
    let dir = disk_tempdir();
    let m = small_model(500, 6);
    let db = make_db_dir(&dir.path().join("db"), &m, &BTreeSet::new());
    let null = dir.path().join("null");
    let c = std::ffi::CString::new(p(&null)).unwrap();
    // SAFETY: a valid NUL-terminated path; makedev of constant numbers.
    let made = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) } == 0;
    if !made || fs::OpenOptions::new().write(true).open(&null).is_err() {
        assert!(!required, "cannot make or open a device node: {}", std::io::Error::last_os_error());
        eprintln!("skipped: needs root and a file system that allows device nodes");
        return;
    }
    let link = dir.path().join("null-link");
    std::os::unix::fs::symlink(&null, &link).unwrap();
    for out in [&null, &link] {
        assert_code(&floe(&["export", "-q", p(&db), "-o", p(out)]), 0);
        let ft = fs::symlink_metadata(&null).unwrap().file_type();
        assert!(ft.is_char_device(), "{out:?}: the device was replaced");
        assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_no_temporaries(dir.path());
    }
    let block = dir.path().join("block");
    let c = std::ffi::CString::new(p(&block)).unwrap();
    // SAFETY: as above. A loop device's numbers; it is never opened.
    assert_eq!(unsafe { libc::mknod(c.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(7, 0)) }, 0);
    let o = floe(&["export", "-q", p(&db), "-o", p(&block)]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("block device"), "{}", stderr(&o));
    assert!(fs::symlink_metadata(&block).unwrap().file_type().is_block_device());
}

/// Issue 12 item 6 (library side): `export_path` to a file refuses an
/// existing output unless `ExportOptions::overwrite`, before opening the
/// database, and never renames over an output that appeared while it ran.
#[test]
fn library_export_overwrites_only_when_asked() {
    use floe::export::{export_path, Destination, ExportOptions};
    let dir = tempdir();
    let (_, src, f) = archive(dir.path(), 3000);
    let before = fs::read(&f).unwrap();
    let keep = {
        let mut o = ExportOptions::default();
        o.block_size = 4096;
        o
    };
    assert!(!keep.overwrite, "no-clobber is the default");
    let e = export_path(&src, Destination::File(&f), &keep, &floe::progress::NoProgress).unwrap_err();
    assert!(matches!(&e, floe::Error::OutputExists(p) if p == &f), "{e}");
    assert_eq!(e.kind(), floe::ErrorKind::TargetExists);
    assert!(e.to_string().contains(p(&f)) && e.to_string().contains("already exists"), "{e}");
    assert_eq!(fs::read(&f).unwrap(), before);
    // Checked before the database is opened: a missing source is not even looked at.
    let e = export_path(&dir.path().join("nodb"), Destination::File(&f), &keep, &floe::progress::NoProgress);
    assert!(matches!(e, Err(floe::Error::OutputExists(_))), "{e:?}");
    // An output that appears mid-run is left alone.
    let late = dir.path().join("late.floe");
    let appeared = std::sync::Once::new();
    let hook = |_: &floe::progress::ProgressInfo| {
        appeared.call_once(|| fs::write(&late, b"the user's file").unwrap());
        true
    };
    let e = export_path(&src, Destination::File(&late), &keep, &hook).unwrap_err();
    assert!(appeared.is_completed(), "the hook never ran");
    assert!(matches!(e, floe::Error::OutputExists(_)), "{e}");
    assert_eq!(fs::read(&late).unwrap(), b"the user's file");
    assert_no_temporaries(dir.path());
    // With overwrite, the existing output is replaced.
    let force = {
        let mut o = keep;
        o.overwrite = true;
        o
    };
    export_path(&src, Destination::File(&late), &force, &floe::progress::NoProgress).unwrap();
    floe::read::Archive::open(&late).unwrap().verify(false, &floe::progress::NoProgress).unwrap();
}
