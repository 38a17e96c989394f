//! CLI behaviour and atomicity: exports into missing directories leave no
//! file, failed imports leave no target, `--replace` swaps (and a failed
//! replace keeps the old database), locked databases give exit code 5 with a
//! pointer to the library API, non-empty targets give exit code 6,
//! `--keyspace` subsets on export and import, and the `inspect --json` /
//! `verify --json` documents.
//!
//! These tests use the disk-backed temporary directory (real fsync/rename).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use floe::export::{export_path, Destination};
use floe::progress::NoProgress;
use std::collections::{BTreeMap, BTreeSet};

fn model() -> Model {
    let mut m = Model::new();
    m.insert("a".into(), (0..30u32).map(|i| (format!("a{i:02}").into_bytes(), vec![b'a'; i as usize])).collect());
    m.insert("b".into(), (0..10u32).map(|i| (i.to_be_bytes().to_vec(), b"bee".to_vec())).collect());
    m.insert("c".into(), [(b"c".to_vec(), vec![1, 2, 3])].into());
    m.insert("empty".into(), BTreeMap::new());
    m
}

fn subset(m: &Model, names: &[&str]) -> Model {
    m.iter().filter(|(n, _)| names.contains(&n.as_str())).map(|(n, r)| (n.clone(), r.clone())).collect()
}

#[test]
fn export_into_a_missing_directory_fails_without_a_file() {
    let dir = disk_tempdir();
    let src = make_db_dir(&dir.path().join("db"), &model(), &BTreeSet::new());
    let out = dir.path().join("no-such-dir").join("x.floe");
    let o = floe(&["export", p(&src), "-o", p(&out)]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("no-such-dir"), "{}", stderr(&o));
    assert!(!out.exists() && !out.parent().unwrap().exists());
    let e = export_path(&src, Destination::File(&out), &opts(4096, 1), &NoProgress).unwrap_err();
    assert!(e.to_string().contains("no-such-dir"), "{e}");
    assert!(!out.parent().unwrap().exists());
    // A directory as the output path.
    let o = floe(&["export", p(&src), "-o", p(dir.path())]);
    assert_code(&o, 1);
    // A source that is not a database: refused, and nothing is created there.
    let nodb = dir.path().join("not-a-db");
    std::fs::create_dir(&nodb).unwrap();
    let o = floe(&["export", p(&nodb), "-o", p(&dir.path().join("y.floe"))]);
    assert_code(&o, 1);
    assert!(dir_names(&nodb).is_empty(), "export created files in a non-database directory");
    assert!(!dir.path().join("y.floe").exists());
    assert_eq!(dir_names(dir.path()), vec!["db".to_string(), "not-a-db".to_string()]);
}

#[test]
fn export_refuses_an_existing_file_and_replaces_it_atomically_with_force() {
    let dir = disk_tempdir();
    let m = model();
    let src = make_db_dir(&dir.path().join("db"), &m, &BTreeSet::new());
    let out = dir.path().join("x.floe");
    std::fs::write(&out, b"previous contents").unwrap();
    // No clobbering by default: exit 6, the file untouched, nothing else left.
    let o = floe(&["export", p(&src), "-o", p(&out)]);
    assert_code(&o, 6);
    assert!(stderr(&o).contains("already exists") && stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");
    assert_eq!(dir_names(dir.path()), vec!["db".to_string(), "x.floe".to_string()]);
    let o = floe(&["export", p(&src), "-o", p(&out), "--force"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("exported 41 records in 4 keyspaces"), "{}", stderr(&o));
    let a = floe::read::Archive::open(&out).unwrap();
    a.verify(false, &NoProgress).unwrap();
    assert_eq!(dir_names(dir.path()), vec!["db".to_string(), "x.floe".to_string()]);
}

#[test]
fn failed_import_leaves_no_target_and_replace_is_atomic() {
    let dir = disk_tempdir();
    let m = model();
    let src = make_db_dir(&dir.path().join("src"), &m, &BTreeSet::new());
    let good = dir.path().join("good.floe");
    assert_code(&floe(&["export", "-q", p(&src), "-o", p(&good)]), 0);
    let mut bytes = std::fs::read(&good).unwrap();
    // Corrupt a data frame in the last keyspace: detected only while ingesting.
    let a = floe::read::Archive::from_bytes(bytes.clone(), "g").unwrap();
    let last = a.index().blocks.last().unwrap();
    let at = last.offset as usize + 52 + last.frame_len as usize / 2;
    bytes[at] ^= 0x01;
    let bad = dir.path().join("bad.floe");
    std::fs::write(&bad, &bytes).unwrap();

    // Fresh target: exit 3, no target, no temporaries.
    let t = dir.path().join("new-db");
    let o = floe(&["import", p(&bad), p(&t)]);
    assert_code(&o, 3);
    assert!(stderr(&o).contains(&format!("offset {}", last.offset + 52)), "{}", stderr(&o));
    assert!(!t.exists());
    assert_no_temporaries(dir.path());
    // An existing empty target directory is allowed, and stays as it was on failure.
    std::fs::create_dir(&t).unwrap();
    assert_code(&floe(&["import", p(&bad), p(&t)]), 3);
    assert!(t.is_dir() && dir_names(&t).is_empty());
    assert_code(&floe(&["import", "-q", p(&good), p(&t)]), 0);
    assert_models_eq(&read_db_at(&t), &m);

    // Non-empty target without --replace: exit 6, untouched.
    let mut other = Model::new();
    other.insert("old".into(), [(b"old-key".to_vec(), b"old-value".to_vec())].into());
    let existing = make_db_dir(&dir.path().join("existing"), &other, &BTreeSet::new());
    let o = floe(&["import", p(&good), p(&existing)]);
    assert_code(&o, 6);
    assert!(stderr(&o).contains("--replace"), "{}", stderr(&o));
    assert_models_eq(&read_db_at(&existing), &other);
    // --replace with a corrupt archive: fails, the old database is intact.
    assert_code(&floe(&["import", "--replace", p(&bad), p(&existing)]), 3);
    assert_models_eq(&read_db_at(&existing), &other);
    assert_no_temporaries(dir.path());
    // --replace with a good archive: the new database, nothing else left.
    let o = floe(&["import", "--replace", p(&good), p(&existing)]);
    assert_code(&o, 0);
    assert_models_eq(&read_db_at(&existing), &m);
    assert_no_temporaries(dir.path());
    // ... also from a stream.
    let o = floe_stdin(&["import", "--replace", "-", p(&existing)], &good);
    assert_code(&o, 0);
    assert_models_eq(&read_db_at(&existing), &m);
    // Library: TargetExists without replace.
    let e = floe::import::import_file(&good, &existing, &Default::default(), &NoProgress).unwrap_err();
    assert!(matches!(e, floe::Error::TargetExists(_)), "{e}");
    // A file where the target should be: refused.
    let file_target = dir.path().join("a-file");
    std::fs::write(&file_target, b"x").unwrap();
    assert_ne!(code(&floe(&["import", p(&good), p(&file_target)])), 0);
    assert_eq!(std::fs::read(&file_target).unwrap(), b"x");
    assert_no_temporaries(dir.path());
}

#[test]
fn locked_database_gives_exit_5_and_points_to_the_library() {
    let dir = disk_tempdir();
    let m = model();
    let db = create_db(&dir.path().join("db"), &m, &BTreeSet::new());
    let out = dir.path().join("x.floe");
    let o = floe(&["export", p(&dir.path().join("db")), "-o", p(&out)]);
    assert_code(&o, 5);
    let e = stderr(&o);
    assert!(e.contains("locked"), "{e}");
    assert!(e.contains("export_database") && e.contains("library"), "{e}");
    assert!(!out.exists());
    assert_no_temporaries(dir.path());
    // The library path from inside the owning process works.
    let bytes = export_bytes(&db, &opts(4096, 1));
    floe::read::Archive::from_bytes(bytes, "x").unwrap().verify(false, &NoProgress).unwrap();
    drop(db);
    // Once closed, the CLI can export it.
    assert_code(&floe(&["export", "-q", p(&dir.path().join("db")), "-o", p(&out)]), 0);
}

#[test]
fn keyspace_subsets_on_export_and_import() {
    let dir = disk_tempdir();
    let m = model();
    let src = make_db_dir(&dir.path().join("src"), &m, &BTreeSet::new());
    // Export a subset (order and repetition on the command line do not matter).
    let f = dir.path().join("sub.floe");
    assert_code(&floe(&["export", "-q", p(&src), "-o", p(&f), "-k", "c", "--keyspace", "a", "-k", "c"]), 0);
    let a = floe::read::Archive::open(&f).unwrap();
    let names: Vec<&str> = a.keyspaces().iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["a", "c"]);
    let t = dir.path().join("t1");
    assert_code(&floe(&["import", "-q", p(&f), p(&t)]), 0);
    assert_models_eq(&read_db_at(&t), &subset(&m, &["a", "c"]));
    // Unknown keyspace on export: exit 1, message lists what exists, no file.
    let f2 = dir.path().join("none.floe");
    let o = floe(&["export", p(&src), "-o", p(&f2), "-k", "nope"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("nope") && stderr(&o).contains("empty"), "{}", stderr(&o));
    assert!(!f2.exists());

    // Import a subset of a full archive, from a file and from a stream.
    let full = dir.path().join("full.floe");
    assert_code(&floe(&["export", "-q", p(&src), "-o", p(&full)]), 0);
    let t2 = dir.path().join("t2");
    assert_code(&floe(&["import", "-q", p(&full), p(&t2), "--keyspace", "b", "-k", "empty"]), 0);
    assert_models_eq(&read_db_at(&t2), &subset(&m, &["b", "empty"]));
    let t3 = dir.path().join("t3");
    assert_code(&floe_stdin(&["import", "-q", "-", p(&t3), "-k", "a"], &full), 0);
    assert_models_eq(&read_db_at(&t3), &subset(&m, &["a"]));
    let t4 = dir.path().join("t4");
    let o = floe(&["import", p(&full), p(&t4), "-k", "zzz"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("zzz"), "{}", stderr(&o));
    assert!(!t4.exists());
    assert_no_temporaries(dir.path());
}

#[test]
fn inspect_and_verify_json_documents() {
    let dir = disk_tempdir();
    let m = model();
    let kv: BTreeSet<String> = ["b".to_owned()].into();
    let src = make_db_dir(&dir.path().join("src"), &m, &kv);
    let f = dir.path().join("x.floe");
    let o = std::process::Command::new(floe_bin())
        .args(["export", "-q", p(&src), "-o", p(&f), "--level", "5", "--block-size", "4096"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert_code(&o, 0);
    let o = floe(&["inspect", "--json", p(&f)]);
    assert_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["format_version"], "1.1");
    assert_eq!(v["archive_bytes"], std::fs::metadata(&f).unwrap().len());
    assert_eq!(v["created_unix"], 1_700_000_000);
    assert_eq!(v["created"], "2023-11-14T22:13:20Z");
    assert_eq!(v["codec"], "zstd");
    assert_eq!(v["zstd_level"], 5);
    assert_eq!(v["block_size"], 4096);
    assert_eq!(v["engine"], "fjall");
    assert!(v["engine_version"].as_str().unwrap().starts_with("3."), "{}", v["engine_version"]);
    assert!(v["writer"].as_str().unwrap().starts_with("floe "));
    assert_eq!(v["required_features"], 0);
    assert_eq!(v["records"], 41);
    assert_eq!(v["skipped_sections"].as_array().unwrap().len(), 0);
    let ks = v["keyspaces"].as_array().unwrap();
    assert_eq!(ks.len(), 4);
    let mut block_sum = 0;
    for (k, (name, recs)) in ks.iter().zip(&m) {
        assert_eq!(k["name"], name.as_str());
        assert_eq!(k["records"], recs.len());
        assert_eq!(k["key_bytes"], recs.keys().map(|x| x.len()).sum::<usize>());
        assert_eq!(k["value_bytes"], recs.values().map(|x| x.len()).sum::<usize>());
        assert_eq!(k["first_key_hex"], recs.keys().next().map(|x| hex(x)).unwrap_or_default());
        assert_eq!(k["last_key_hex"], recs.keys().next_back().map(|x| hex(x)).unwrap_or_default());
        assert!(k["blocks"].as_u64().unwrap() >= 1);
        block_sum += k["blocks"].as_u64().unwrap();
        assert!(k["options"].is_object());
    }
    assert_eq!(v["blocks"], block_sum);
    assert!(!ks[1]["options"]["kv_separation"].is_null(), "kv separation not shown: {}", ks[1]["options"]);
    assert!(ks[0]["options"]["kv_separation"].is_null());

    // Human-readable inspect names every keyspace.
    let o = floe(&["inspect", p(&f)]);
    assert_code(&o, 0);
    for name in m.keys() {
        assert!(stdout(&o).contains(name.as_str()));
    }
    // inspect needs a file.
    assert_code(&floe_stdin(&["inspect", "-"], &f), 1);

    let o = floe(&["verify", "--json", p(&f)]);
    assert_code(&o, 0);
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(r["ok"], true);
    assert_eq!(r["records"], 41);
    assert_eq!(r["keyspaces"], 4);
    assert_eq!(r["blocks"], block_sum);
    assert_eq!(r["quick"], false);
    let o = floe(&["verify", "--quick", "--json", p(&f)]);
    assert_code(&o, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&stdout(&o)).unwrap()["quick"], true);

    // Not an archive at all: exit 3.
    let junk = dir.path().join("junk.floe");
    std::fs::write(&junk, vec![b'x'; 1000]).unwrap();
    for args in [vec!["verify", p(&junk)], vec!["inspect", p(&junk)]] {
        let o = floe(&args);
        assert_code(&o, 3);
        assert!(stderr(&o).contains("offset"), "{}", stderr(&o));
    }
    assert_code(&floe_stdin(&["verify", "-"], &junk), 3);
    // Missing file: exit 1.
    assert_code(&floe(&["verify", p(&dir.path().join("missing.floe"))]), 1);
    // Usage error: exit 2.
    assert_code(&floe(&["export"]), 2);
}

/// With `--replace`, an observer polling the target path always finds a
/// database there: first the old one (marked), then the new one; never a gap.
#[test]
fn replace_never_leaves_the_target_missing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = disk_tempdir();
    let m = small_model(3000, 8);
    let src = make_db_dir(&dir.path().join("src"), &m, &BTreeSet::new());
    let f = dir.path().join("a.floe");
    assert_code(&floe(&["export", "-q", p(&src), "-o", p(&f)]), 0);
    let target = dir.path().join("target");
    for round in 0..5 {
        let mut old = Model::new();
        old.insert("old".into(), [(b"k".to_vec(), format!("round {round}").into_bytes())].into());
        if target.exists() {
            std::fs::remove_dir_all(&target).unwrap();
        }
        make_db_dir(&target, &old, &BTreeSet::new());
        std::fs::write(target.join("OLD-MARKER"), b"").unwrap();
        let done = AtomicBool::new(false);
        let (states, polls) = std::thread::scope(|s| {
            let observer = s.spawn(|| {
                let mut states: Vec<&str> = Vec::new();
                let mut polls = 0u64;
                while !done.load(Ordering::SeqCst) {
                    polls += 1;
                    let st = match (target.join("version").is_file(), target.join("OLD-MARKER").exists()) {
                        (true, true) => "old",
                        (true, false) => "new",
                        (false, true) => "old without version file",
                        (false, false) => "missing",
                    };
                    if states.last() != Some(&st) {
                        states.push(st);
                    }
                }
                (states, polls)
            });
            let r = floe::import::import_file(
                &f,
                &target,
                &{
                    let mut o = floe::import::ImportOptions::default();
                    o.replace = true;
                    o
                },
                &NoProgress,
            );
            done.store(true, Ordering::SeqCst);
            r.unwrap();
            observer.join().unwrap()
        });
        assert!(polls > 10, "observer barely ran");
        assert!(
            states == ["old", "new"] || states == ["new"] || states == ["old"],
            "round {round}: target states seen: {states:?}"
        );
        assert_models_eq(&read_db_at(&target), &m);
        assert_no_temporaries(dir.path());
    }
}

/// SIGINT during a streaming import: exit code 130, no target, no temporaries.
#[cfg(target_os = "linux")]
#[test]
fn sigint_interrupts_a_streaming_import_cleanly() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::Duration;
    let dir = tempdir();
    let m = small_model(3000, 4);
    let db = create_db(&dir.path().join("src"), &m, &BTreeSet::new());
    let bytes = export_bytes(&db, &opts(4096, 1));
    drop(db);
    let target = dir.path().join("dst");
    let mut child = Command::new(floe_bin())
        .args(["import", "-", p(&target)])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_for_handler(pid, libc::SIGINT);
    let mut stdin = child.stdin.take().unwrap();
    let cut = bytes.len() / 3;
    stdin.write_all(&bytes[..cut]).unwrap();
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    signal(pid, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    let _ = stdin.write_all(&bytes[cut..]); // may fail with EPIPE once floe has exited
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 130);
    assert!(!target.exists(), "interrupted import left the target");
    assert_eq!(dir_names(dir.path()), vec!["src".to_string()]);
}
