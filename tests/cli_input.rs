//! Bad command-line input and hostile strings (issue 10, items 19–22): a
//! closed standard output ends a command quietly with exit code 0, arguments
//! out of range are refused at parse time (exit code 2) before anything is
//! opened, header strings are cut on a character boundary, and control
//! characters in names, remarks and paths are escaped in human output while
//! JSON keeps them exact.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};

/// Runs `floe args` with its standard output a pipe whose reading end is
/// already closed, so every write to it fails with EPIPE (what `| head -1`
/// does once `head` has its line). Returns (exit code, stderr).
fn with_closed_stdout(args: &[&str]) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let o = Command::new(floe_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("running floe");
    (code(&o), stderr(&o))
}

fn small_db(dir: &std::path::Path) -> std::path::PathBuf {
    let mut m = Model::new();
    m.insert("a".into(), (0..200u32).map(|i| (format!("k{i:04}").into_bytes(), vec![b'v'; 100])).collect());
    m.insert("b".into(), [(b"x".to_vec(), b"y".to_vec())].into());
    make_db_dir(&dir.join("db"), &m, &BTreeSet::new())
}

#[test]
fn a_closed_stdout_ends_quietly_with_exit_code_0() {
    let dir = tempdir();
    let d = dir.path();
    let db = small_db(d);
    let a = d.join("a.floe");
    assert_code(&floe(&["export", p(&db), "-o", p(&a), "-q"]), 0);
    let repo = d.join("repo");
    assert_code(&floe(&["backup", "create", p(&db), "--repo", p(&repo), "-q"]), 0);
    let runs: [&[&str]; 8] = [
        &["inspect", "--json", p(&a)],
        &["inspect", p(&a)],
        &["verify", p(&a)],
        &["verify", "--json", p(&a)],
        &["backup", "list", "--repo", p(&repo)],
        &["backup", "list", "--json", "--repo", p(&repo)],
        &["export", p(&db), "-o", "-", "-q"],
        &["backup", "verify", "--repo", p(&repo), "-q"],
    ];
    for args in runs {
        let (code, err) = with_closed_stdout(args);
        assert_eq!(code, 0, "floe {args:?} with a closed stdout: exit {code}, stderr: {err}");
        assert!(err.is_empty(), "floe {args:?} with a closed stdout printed: {err}");
    }
    // Other write errors on stdout are still errors: /dev/full.
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let o = Command::new(floe_bin()).args(["inspect", p(&a)]).stdout(full).output().unwrap();
    assert_code(&o, 1);
    assert!(stderr(&o).contains("writing to standard output"), "{}", stderr(&o));
}

/// (args, the flag, its range as clap states it)
fn out_of_range(db: &str, out: &str, repo: &str, archive: &str) -> Vec<(Vec<String>, &'static str, String)> {
    let r = zstd::compression_level_range();
    let levels = format!("{}..={}", r.start(), r.end());
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        (s(&["export", db, "-o", out, "--level", &(r.end() + 1).to_string()]), "--level", levels.clone()),
        (s(&["export", db, "-o", out, "--level", &(r.start() - 1).to_string()]), "--level", levels.clone()),
        (s(&["export", db, "-o", out, "--level", "99"]), "--level", levels.clone()),
        (s(&["export", db, "-o", out, "--threads", "257"]), "--threads", "0..=256".into()),
        (s(&["export", db, "-o", out, "--block-size", "4095"]), "--block-size", "4096..=67108864".into()),
        (s(&["export", db, "-o", out, "--block-size", "67108865"]), "--block-size", "4096..=67108864".into()),
        (s(&["import", archive, out, "--threads", "1000"]), "--threads", "0..=256".into()),
        (s(&["import", "-", out, "-t", "257"]), "--threads", "0..=256".into()),
        (s(&["verify", archive, "--threads", "1000"]), "--threads", "0..=256".into()),
        (s(&["backup", "create", db, "--repo", repo, "--level", "99"]), "--level", levels),
        (s(&["backup", "create", db, "--repo", repo, "--threads", "257"]), "--threads", "0..=256".into()),
        (s(&["backup", "verify", "--repo", repo, "--threads", "257"]), "--threads", "0..=256".into()),
        (s(&["backup", "restore", "--repo", repo, "ID", out, "--threads", "257"]), "--threads", "0..=256".into()),
    ]
}

#[test]
fn out_of_range_arguments_are_refused_at_parse_time() {
    let dir = tempdir();
    let d = dir.path();
    let db = small_db(d);
    let a = d.join("a.floe");
    assert_code(&floe(&["export", p(&db), "-o", p(&a), "-q"]), 0);
    let (out, repo) = (d.join("out"), d.join("repo"));
    let before = dir_names(d);
    for (args, flag, range) in out_of_range(p(&db), p(&out), p(&repo), p(&a)) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = floe(&args);
        assert_code(&o, 2);
        let e = stderr(&o);
        assert!(e.contains(flag) && e.contains(&range), "floe {args:?}: the message names {flag} and {range}: {e}");
        assert_eq!(dir_names(d), before, "floe {args:?} created something");
    }
    // The ends of the ranges are accepted.
    let r = zstd::compression_level_range();
    for (level, bs) in [(r.end().to_string(), "4096"), ("1".into(), "67108864")] {
        let o = floe(&[
            "export",
            p(&db),
            "-o",
            p(&out),
            "--level",
            &level,
            "--block-size",
            bs,
            "-t",
            "256",
            "-q",
            "--force",
        ]);
        assert_code(&o, 0);
        assert_code(&floe(&["verify", p(&out), "--threads", "256"]), 0);
    }
    // The library refuses them too (C and Python callers skip the parser).
    assert!(floe::threads::pool_for(257).is_err());
    assert!(floe::format::block::BlockCompressor::new(r.end() + 1).is_err());
    let mut opts = {
        let mut o = floe::export::ExportOptions::default();
        o.level = 99;
        o
    };
    let dest = floe::export::Destination::File(&d.join("lib.floe"));
    assert!(floe::export::export_path(&db, dest, &opts, &floe::progress::NoProgress).is_err());
    opts.level = 1;
    opts.threads = 1000;
    let dest = floe::export::Destination::File(&d.join("lib.floe"));
    assert!(floe::export::export_path(&db, dest, &opts, &floe::progress::NoProgress).is_err());
    let io = {
        let mut o = floe::import::ImportOptions::default();
        o.threads = 257;
        o
    };
    let e = floe::import::import_file(&a, &d.join("lib-db"), &io, &floe::progress::NoProgress).unwrap_err();
    assert!(e.to_string().contains("0..=256"), "{e}");
    assert!(!d.join("lib.floe").exists() && !d.join("lib-db").exists());
}

#[test]
fn header_strings_are_cut_on_a_character_boundary() {
    // 30,000 three-byte characters: 90,000 bytes, over the field's 65,535.
    let long = "€".repeat(30_000);
    let mut h = floe::format::header::Header::new(1, 4096, 0);
    h.writer = long.clone();
    h.engine = format!("x{long}");
    let ks = vec![floe::format::keyspace_table::KeyspaceEntry { name: "ks".into(), options: Default::default() }];
    let mut w = floe::write::RecordWriter::new(Vec::new(), h, ks).unwrap();
    w.begin_keyspace("ks").unwrap();
    w.put(b"k", b"v").unwrap();
    let bytes = w.finish().unwrap().0;
    let a = floe::read::Archive::from_bytes(bytes.as_slice(), "long.floe").unwrap();
    a.verify(false, &floe::progress::NoProgress).unwrap();
    assert_eq!(a.header().writer, "€".repeat(21_845));
    assert_eq!(a.header().engine, format!("x{}", "€".repeat(21_844)));
    // floe's own CLI reads it back.
    let dir = tempdir();
    let f = dir.path().join("long.floe");
    std::fs::write(&f, &bytes).unwrap();
    assert_code(&floe(&["verify", p(&f)]), 0);
    assert_code(&floe(&["import", p(&f), p(&dir.path().join("db")), "-q"]), 0);
}

const EVIL: &str = "evil\x1b[31m\nforged row";

#[test]
fn control_characters_are_escaped_in_human_output_and_exact_in_json() {
    let dir = tempdir();
    let d = dir.path();
    let mut m = Model::new();
    m.insert(EVIL.into(), [(b"k".to_vec(), b"v".to_vec())].into());
    m.insert("plain".into(), BTreeMap::new());
    let db = make_db_dir(&d.join("db"), &m, &BTreeSet::new());
    let a = d.join(format!("{EVIL}.floe"));
    assert_code(&floe(&["export", p(&db), "-o", p(&a), "-q"]), 0);
    let escaped = "evil\\x1b[31m\\nforged row";
    let raw_free = |s: &str, what: &str| {
        assert!(!s.contains('\x1b') && !s.contains("\nforged"), "{what}: raw control characters in:\n{s}");
        assert!(s.contains(escaped), "{what}: no escaped name in:\n{s}");
    };

    // inspect: the keyspace name and the file name.
    let o = floe(&["inspect", p(&a)]);
    assert_code(&o, 0);
    raw_free(&stdout(&o), "inspect");
    let o = floe(&["inspect", "--json", p(&a)]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["keyspaces"][0]["name"], EVIL);
    assert_eq!(v["file"], p(&a));

    // verify: the path.
    let o = floe(&["verify", p(&a)]);
    assert_code(&o, 0);
    raw_free(&stdout(&o), "verify");
    let o = floe(&["verify", "--json", p(&a)]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["archive"], p(&a));

    // Error messages on stderr: a keyspace that is not there lists the names.
    let o = floe(&["import", p(&a), p(&d.join("t")), "-k", "missing\x1b]0;title\x07"]);
    assert_code(&o, 1);
    let e = stderr(&o);
    raw_free(&e, "import error");
    assert!(e.contains("missing\\x1b]0;title\\x07") && !e.contains('\x07'), "{e}");
    let o = floe(&["verify", p(&d.join(format!("{EVIL}-missing.floe")))]);
    assert_code(&o, 1);
    assert!(
        !stderr(&o).contains('\x1b') && stderr(&o).contains("evil\\x1b[31m\\nforged row-missing"),
        "{}",
        stderr(&o)
    );

    // backup list: a remark cannot forge a row.
    let repo = d.join("repo");
    let remark = "fine\n01ABCDEFGHJKMNPQRSTVWXYZ12 2020-01-01T00:00:00Z  1  1 B  \x1b[31mforged";
    let o = floe(&["backup", "create", p(&db), "--repo", p(&repo), "--remarks", remark, "-q"]);
    assert_code(&o, 0);
    let o = floe(&["backup", "list", "--repo", p(&repo)]);
    assert_code(&o, 0);
    let list = stdout(&o);
    assert_eq!(list.lines().count(), 2, "a header and one row:\n{list}");
    assert!(!list.contains('\x1b') && list.contains("fine\\n01ABC"), "{list}");
    let o = floe(&["backup", "list", "--json", "--repo", p(&repo)]);
    assert_code(&o, 0);
    assert!(stdout(&o).contains(&serde_json::to_string(remark).unwrap()), "{}", stdout(&o));
}

/// An archive of `n` empty keyspaces.
fn empty_keyspaces(n: usize) -> Vec<u8> {
    let m: Model = (0..n).map(|i| (format!("ks{i:05}"), BTreeMap::new())).collect();
    write_archive(&m, 4096, &BTreeMap::new(), None)
}

#[test]
fn imports_of_too_many_keyspaces_are_refused_before_anything_is_created() {
    let max = floe::import::MAX_IMPORT_KEYSPACES;
    let dir = tempdir();
    let d = dir.path();
    let a = d.join("many.floe");
    std::fs::write(&a, empty_keyspaces(max + 1)).unwrap();
    let t = d.join("t");
    for stdin in [false, true] {
        let o = if stdin { floe_stdin(&["import", "-", p(&t)], &a) } else { floe(&["import", p(&a), p(&t)]) };
        assert_code(&o, 1);
        let e = stderr(&o);
        assert!(
            e.contains(&format!("importing {} keyspaces", max + 1)) && e.contains(&format!("at most {max}")),
            "{e}"
        );
        assert!(e.contains("--keyspace"), "{e}");
        assert_eq!(dir_names(d), vec!["many.floe".to_string()], "stdin {stdin}: something was created");
    }
    // A subset of the same archive imports.
    assert_code(&floe(&["import", p(&a), p(&t), "-k", "ks00007", "-k", "ks04096", "-q"]), 0);
    assert_eq!(read_db_at(&t).keys().collect::<Vec<_>>(), ["ks00007", "ks04096"]);
    // The limit itself: at it, the import runs (a small limit, to keep this fast).
    let small = d.join("small.floe");
    std::fs::write(&small, empty_keyspaces(12)).unwrap();
    let import = |max_keyspaces, target: &str| {
        let o = {
            let mut o = floe::import::ImportOptions::default();
            o.max_keyspaces = max_keyspaces;
            o
        };
        floe::import::import_file(&small, &d.join(target), &o, &floe::progress::NoProgress)
    };
    let e = import(11, "t11").unwrap_err();
    assert!(e.to_string().contains("at most 11"), "{e}");
    assert!(!d.join("t11").exists());
    assert_eq!(import(12, "t12").unwrap().keyspaces, 12);
    assert_eq!(read_db_at(&d.join("t12")).len(), 12);
}

/// `demo --keep DIR` never deletes or overwrites what is already in DIR under its names.
#[test]
fn demo_keep_never_deletes_what_is_already_there() {
    let d = tempfile::tempdir().unwrap();
    let precious = d.path().join("sample-db").join("IMPORTANT.txt");
    std::fs::create_dir_all(precious.parent().unwrap()).unwrap();
    std::fs::write(&precious, b"mine").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["demo", "--records", "100", "--keep"])
        .arg(d.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "demo ran over an existing sample-db");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"mine");
    assert!(!d.path().join("sample.floe").exists());
}
