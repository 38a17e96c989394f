//! Streaming: `floe export DB -o -` piped straight into `floe import - DB2`,
//! `floe verify -` from stdin, and the library's `import_stream` /
//! `verify_stream` over pipes and small reads.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use floe::import::{import_stream, ImportOptions};
use floe::progress::NoProgress;
use floe::read::verify_stream;
use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Stdio};

fn sample_db(dir: &std::path::Path) -> (std::path::PathBuf, Model) {
    let m = small_model(1500, 21);
    let kv: BTreeSet<String> = ["beta".to_owned()].into();
    let src = make_db_dir(&dir.join("src"), &m, &kv);
    (src, m)
}

#[test]
fn cli_export_to_stdout_piped_into_import_from_stdin() {
    let dir = tempdir();
    let (src, m) = sample_db(dir.path());
    let dst = dir.path().join("dst");
    let mut exp = Command::new(floe_bin())
        .args(["export", p(&src), "-o", "-", "--block-size", "4096", "-t", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pipe = exp.stdout.take().unwrap();
    let imp = Command::new(floe_bin()).args(["import", "-", p(&dst)]).stdin(Stdio::from(pipe)).output().unwrap();
    let exp = exp.wait_with_output().unwrap();
    assert_code(&exp, 0);
    assert_code(&imp, 0);
    assert!(
        stderr(&imp).contains(&format!("imported {} records", m.values().map(|r| r.len()).sum::<usize>())),
        "{}",
        stderr(&imp)
    );
    assert_models_eq(&read_db_at(&dst), &m);
    let (a, b) = (open_db(&src), open_db(&dst));
    assert!(floe::sample::compare_databases(&a, &b).is_ok());
    assert!(is_kv_separated(&b, "beta"));
    drop((a, b));
    assert_no_temporaries(dir.path());
}

#[test]
fn cli_verify_from_stdin() {
    let dir = tempdir();
    let (src, m) = sample_db(dir.path());
    let f = dir.path().join("a.floe");
    assert_code(&floe(&["export", "-q", p(&src), "-o", p(&f), "--block-size", "4096"]), 0);
    // Piped from a file handle and from a real pipe (cat), full and quick, text and JSON.
    let o = floe_stdin(&["verify", "-"], &f);
    assert_code(&o, 0);
    assert!(stdout(&o).starts_with("OK <stdin>") || stdout(&o).starts_with("OK -"), "{}", stdout(&o));
    let records: usize = m.values().map(|r| r.len()).sum();
    let mut cat = Command::new("cat").arg(&f).stdout(Stdio::piped()).spawn().unwrap();
    let o = Command::new(floe_bin())
        .args(["verify", "-", "--json"])
        .stdin(Stdio::from(cat.stdout.take().unwrap()))
        .output()
        .unwrap();
    assert!(cat.wait().unwrap().success());
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["records"], records);
    assert_eq!(v["keyspaces"], m.len());
    assert_eq!(v["archive_bytes"], std::fs::metadata(&f).unwrap().len());
    assert_eq!(v["quick"], false);
    let o = floe_stdin(&["verify", "-", "--quick", "--json"], &f);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["quick"], true);

    // A corrupted stream: exit 3, naming the offset.
    let mut bytes = std::fs::read(&f).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    let bad = dir.path().join("bad.floe");
    std::fs::write(&bad, &bytes).unwrap();
    let o = floe_stdin(&["verify", "-"], &bad);
    assert_code(&o, 3);
    assert!(stderr(&o).contains("offset"), "{}", stderr(&o));
    // Truncated stream: exit 3.
    std::fs::write(&bad, &std::fs::read(&f).unwrap()[..mid]).unwrap();
    assert_code(&floe_stdin(&["verify", "-"], &bad), 3);
    let t = dir.path().join("t");
    let o = floe_stdin(&["import", "-", p(&t)], &bad);
    assert_code(&o, 3);
    assert!(!t.exists());
    assert_no_temporaries(dir.path());
}

#[test]
fn library_import_stream_from_a_pipe() {
    let dir = tempdir();
    let m = small_model(800, 5);
    let db = create_db(&dir.path().join("src"), &m, &BTreeSet::new());
    let bytes = export_bytes(&db, &opts(4096, 2));
    drop(db);
    // Feed the archive through an OS pipe from another thread, in odd-sized writes.
    let (reader, mut writer) = std::io::pipe().unwrap();
    let feed = bytes.clone();
    let t = std::thread::spawn(move || {
        for chunk in feed.chunks(1013) {
            writer.write_all(chunk).unwrap();
        }
    });
    let dst = dir.path().join("dst");
    let s = import_stream(reader, "<pipe>", &dst, &ImportOptions::default(), &NoProgress).unwrap();
    t.join().unwrap();
    assert_eq!(s.records, m.values().map(|r| r.len() as u64).sum::<u64>());
    assert_eq!(s.keyspaces, m.len());
    assert_models_eq(&read_db_at(&dst), &m);

    // Keyspace subset from a stream.
    let dst2 = dir.path().join("dst2");
    let o = {
        let mut o = ImportOptions::default();
        o.keyspaces = Some(vec!["gamma ünïcødé".into(), "empty".into()]);
        o
    };
    let s = import_stream(bytes.as_slice(), "s", &dst2, &o, &NoProgress).unwrap();
    assert_eq!(s.keyspaces, 2);
    let got = read_db_at(&dst2);
    let want: Model =
        m.iter().filter(|(n, _)| *n == "gamma ünïcødé" || *n == "empty").map(|(n, r)| (n.clone(), r.clone())).collect();
    assert_models_eq(&got, &want);

    // verify_stream reports what the archive holds.
    let r = verify_stream(bytes.as_slice(), "s", false, &NoProgress).unwrap();
    assert_eq!(r.archive_bytes, bytes.len() as u64);
    assert_eq!(r.records, m.values().map(|r| r.len() as u64).sum::<u64>());
    assert_eq!(r.keyspaces, m.len());

    // A stream that stops early fails and leaves nothing.
    let dst3 = dir.path().join("dst3");
    let e = import_stream(&bytes[..bytes.len() - 100], "s", &dst3, &ImportOptions::default(), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("offset"), "{e}");
    assert!(!dst3.exists());
    assert_no_temporaries(dir.path());
}
