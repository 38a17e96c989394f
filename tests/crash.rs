//! Crash safety of the CLI, run as a subprocess (`floe` binary):
//!
//! * **SIGKILL at random moments** (fixed seed), ≥ 20 trials each for export
//!   and import (half of the imports with `--replace` over an old database).
//!   Kill times are spread over 0–150 % of the measured duration of an
//!   uninterrupted run (every other trial: over the part of it during which
//!   the output is being written). After each kill the output either does not exist or
//!   is complete: an export's archive is byte-identical to a reference export,
//!   an imported database holds exactly the archive's records (with
//!   `--replace`: exactly the old database or exactly the new one). The next
//!   run removes what the killed one left behind and says so on stderr.
//! * **SIGINT** during export and during import from a file (sent once the
//!   run's temporary exists, so it always lands mid-run): exit code 130, no
//!   output, no temporary.
//! * **The source is untouched**: the archive's bytes after every killed or
//!   interrupted import; the source database's files after every killed or
//!   interrupted export (see `db_data_files` in tests/common for exactly what is compared).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The two tests measure run durations: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const TRIALS: usize = 24;

/// About 24 MB of records in four keyspaces (one empty), a mix of
/// compressible and random values, some spanning 256 KiB blocks.
fn dataset(root: &Path) -> (PathBuf, Model) {
    let mut rng = floe::sample::Rng(0xC4A5);
    let mut m = Model::new();
    for (name, n, len) in [("docs", 12_000u32, 900usize), ("blobs", 60, 150_000), ("idx", 30_000, 40), ("empty", 0, 0)]
    {
        let mut recs = std::collections::BTreeMap::new();
        for i in 0..n {
            let mut v = floe::sample::texty(&mut rng, len / 2);
            let mut noise = vec![0u8; len - v.len().min(len)];
            rng.fill(&mut noise);
            v.extend_from_slice(&noise);
            recs.insert(format!("{name}:{i:08}").into_bytes(), v);
        }
        m.insert(name.to_owned(), recs);
    }
    let src = root.join("src");
    let db = create_db(&src, &m, &Default::default());
    // Flush every memtable into tables, so that opening the database does
    // not replay a large journal: the run's time is spent exporting.
    for name in m.keys() {
        db.keyspace(name, fjall::KeyspaceCreateOptions::default).unwrap().rotate_memtable_and_wait().unwrap();
    }
    db.persist(fjall::PersistMode::SyncAll).unwrap();
    drop(db);
    (src, m)
}

fn floe_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(floe_bin());
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("SOURCE_DATE_EPOCH", "1700000000");
    c
}

/// Durations of an uninterrupted run (median of three): until its temporary
/// appears in `dir` (the output is being written), and until it exits.
struct Timing {
    writing: Duration,
    full: Duration,
}

fn measure(args: &[&str], dir: &Path, cleanup: &dyn Fn()) -> Timing {
    let (mut writing, mut full) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let t = Instant::now();
        let mut child = floe_cmd(args).spawn().unwrap();
        let mut seen = None;
        let status = loop {
            if seen.is_none() && !temporaries(dir).is_empty() {
                seen = Some(t.elapsed());
            }
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        assert!(status.success(), "uninterrupted run failed: {status}");
        full.push(t.elapsed());
        writing.push(seen.expect("the run never showed a temporary"));
        cleanup();
    }
    writing.sort();
    full.sort();
    Timing { writing: writing[1], full: full[1] }
}

/// Kill times: even trials anywhere in 0–150 % of the run; odd trials while
/// it writes its output (from its temporary's appearance to its end), where
/// the interesting cases are (fjall may spend most of a short run opening).
fn kill_time(rng: &mut floe::sample::Rng, trial: usize, t: &Timing) -> Duration {
    if trial.is_multiple_of(2) {
        Duration::from_micros(rng.below(t.full.as_micros() as u64 * 3 / 2))
    } else {
        t.writing + Duration::from_micros(rng.below(t.full.saturating_sub(t.writing).as_micros() as u64))
    }
}

/// Starts `args`, SIGKILLs it after `after`; returns its output (killed or
/// exited normally if it was faster).
fn kill_after(args: &[&str], after: Duration) -> Output {
    let child = floe_cmd(args).spawn().unwrap();
    std::thread::sleep(after);
    signal(child.id(), libc::SIGKILL); // a finished, unreaped child is a zombie: still ours to signal
    child.wait_with_output().unwrap()
}

/// Starts `args`, waits for its SIGINT handler and for `in_progress` (a
/// temporary exists), sends SIGINT, returns the output.
fn interrupt(args: &[&str], in_progress: &dyn Fn() -> bool) -> Output {
    let child = floe_cmd(args).spawn().unwrap();
    wait_for_handler(child.id(), libc::SIGINT);
    let t = Instant::now();
    while !in_progress() {
        assert!(t.elapsed() < Duration::from_secs(20), "the run never created its temporary");
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(child.id(), libc::SIGINT);
    child.wait_with_output().unwrap()
}

/// Asserts that `stderr` reports the removal of every name in `left`.
#[track_caller]
fn assert_reported(o: &Output, left: &[String]) {
    let e = stderr(o);
    for name in left {
        assert!(
            e.contains("removed leftover") && e.contains(name.as_str()),
            "next run did not report leftover {name}: {e}"
        );
    }
}

#[test]
fn killed_and_interrupted_exports_leave_nothing_or_a_complete_archive() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let (src, _m) = dataset(dir.path());
    let before = db_data_files(&src);
    let out = dir.path().join("out.floe");
    let args = ["export", "-q", "--force", "--threads", "2", "--block-size", "262144", p(&src), "-o", p(&out)];
    assert_code(&floe_cmd(&args).output().unwrap(), 0);
    let reference = std::fs::read(&out).unwrap();
    let timing = measure(&args, dir.path(), &|| std::fs::remove_file(&out).unwrap());
    eprintln!("uninterrupted export: {:?} (writing from {:?}), {} bytes", timing.full, timing.writing, reference.len());

    let mut rng = floe::sample::Rng(20_251_121);
    let (mut none, mut complete, mut left_temp) = (0, 0, 0);
    for trial in 0..TRIALS {
        let o = kill_after(&args, kill_time(&mut rng, trial, &timing));
        if out.exists() {
            assert!(
                std::fs::read(&out).unwrap() == reference,
                "trial {trial}: the archive differs from the reference export ({:?})",
                o.status
            );
            complete += 1;
            std::fs::remove_file(&out).unwrap();
        } else {
            none += 1;
        }
        let left = temporaries(dir.path());
        if !left.is_empty() {
            left_temp += 1;
            // The next run removes the killed run's temporary, says so, and succeeds.
            let o = floe_cmd(&args).output().unwrap();
            assert_code(&o, 0);
            assert_reported(&o, &left);
            assert!(
                std::fs::read(&out).unwrap() == reference,
                "trial {trial}: the next run's archive differs from the reference"
            );
            std::fs::remove_file(&out).unwrap();
        }
        assert_no_temporaries(dir.path());
        assert_eq!(db_data_files(&src), before, "trial {trial}: the killed export changed the source database");
    }
    eprintln!(
        "{TRIALS} killed exports: {none} left no archive ({left_temp} of them a temporary), {complete} a complete one"
    );
    assert!(left_temp >= TRIALS / 4, "too few kills landed mid-run ({left_temp} of {TRIALS}): make the dataset larger");

    let o = interrupt(&args, &|| !temporaries(dir.path()).is_empty());
    assert_code(&o, 130);
    assert!(stderr(&o).contains("cancelled"), "{}", stderr(&o));
    assert!(!out.exists(), "interrupted export left the archive");
    assert_no_temporaries(dir.path());
    assert_eq!(db_data_files(&src), before, "the interrupted export changed the source database");
}

#[test]
fn killed_and_interrupted_imports_leave_nothing_or_a_complete_database() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempdir();
    let (src, m) = dataset(dir.path());
    let archive = dir.path().join("a.floe");
    assert_code(
        &floe_cmd(&["export", "-q", "--block-size", "262144", p(&src), "-o", p(&archive)]).output().unwrap(),
        0,
    );
    let archive_hash = file_hash(&archive);
    std::fs::remove_dir_all(&src).unwrap();
    let target = dir.path().join("dst");
    let mut old = Model::new();
    old.insert("old".into(), [(b"k".to_vec(), b"the old database".to_vec())].into());
    let args = ["import", "-q", "--threads", "2", p(&archive), p(&target)];
    assert_code(&floe_cmd(&args).output().unwrap(), 0);
    assert_models_eq(&read_db_at(&target), &m);
    std::fs::remove_dir_all(&target).unwrap();
    let timing = measure(&args, dir.path(), &|| std::fs::remove_dir_all(&target).unwrap());
    eprintln!("uninterrupted import: {:?} (writing from {:?})", timing.full, timing.writing);

    let mut rng = floe::sample::Rng(0x1121_2025);
    let (mut none, mut old_kept, mut complete, mut left_temp) = (0, 0, 0, 0);
    for trial in 0..TRIALS {
        let replace = !(trial / 2).is_multiple_of(2); // both kinds of kill time, with and without --replace
        if replace {
            make_db_dir(&target, &old, &Default::default());
        }
        let mut args = vec!["import", "-q", "--threads", "2", p(&archive), p(&target)];
        if replace {
            args.push("--replace");
        }
        let o = kill_after(&args, kill_time(&mut rng, trial, &timing));
        let what = format!("trial {trial} ({}, {:?})", if replace { "--replace" } else { "new target" }, o.status);
        if !target.exists() {
            assert!(!replace, "{what}: the old database is gone");
            none += 1;
        } else {
            let got = read_db_at(&target);
            if replace && got == old {
                old_kept += 1;
            } else {
                assert_models_eq(&got, &m);
                complete += 1;
            }
        }
        let left = temporaries(dir.path());
        if !left.is_empty() {
            left_temp += 1;
            // The next run removes the leftovers, says so, and completes.
            let o = floe_cmd(&["import", "-q", "--replace", p(&archive), p(&target)]).output().unwrap();
            assert_code(&o, 0);
            assert_reported(&o, &left);
            assert_models_eq(&read_db_at(&target), &m);
        }
        assert_no_temporaries(dir.path());
        assert_eq!(file_hash(&archive), archive_hash, "{what}: the archive was modified");
        if target.exists() {
            std::fs::remove_dir_all(&target).unwrap();
        }
    }
    eprintln!("{TRIALS} killed imports: {none} left no target, {old_kept} kept the old database, {complete} a complete one; {left_temp} left temporaries");
    assert!(left_temp >= TRIALS / 4, "too few kills landed mid-run ({left_temp} of {TRIALS}): make the dataset larger");

    // SIGINT, into a fresh target and over an old database.
    for replace in [false, true] {
        if replace {
            make_db_dir(&target, &old, &Default::default());
        }
        let mut args = vec!["import", "-q", "--threads", "2", p(&archive), p(&target)];
        if replace {
            args.push("--replace");
        }
        let o = interrupt(&args, &|| !temporaries(dir.path()).is_empty());
        assert_code(&o, 130);
        assert!(stderr(&o).contains("cancelled"), "{}", stderr(&o));
        if replace {
            assert_models_eq(&read_db_at(&target), &old);
            std::fs::remove_dir_all(&target).unwrap();
        }
        assert!(!target.exists(), "interrupted import left the target");
        assert_no_temporaries(dir.path());
        assert_eq!(file_hash(&archive), archive_hash, "the interrupted import modified the archive");
    }
}
