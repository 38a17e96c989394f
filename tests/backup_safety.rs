//! The backup catalog never destroys what it did not create (issue 10, items
//! 1–9): gc and symbolic links or foreign folders, repository recognition,
//! malformed manifests, generation overflow, killed creates, the grace
//! period, durable local writes, lock breaking as compare-and-swap, and
//! retention under clock skew. Local repositories in temporary folders.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const ID_A: &str = "20200101T000000Z-0000000a";

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn db(dir: &Path, seed: u64) -> PathBuf {
    make_db_dir(&dir.join(format!("db-{seed}")), &small_model(300, seed), &BTreeSet::new())
}

/// `backup create` into `repo`, returning the new id.
#[track_caller]
fn create(repo: &Path, db: &Path, extra: &[&str]) -> String {
    let mut args = vec!["backup", "create", "-q", p(db), "--repo", p(repo)];
    args.extend_from_slice(extra);
    let o = floe(&args);
    assert_code(&o, 0);
    stdout(&o).trim().to_owned()
}

#[track_caller]
fn list_ids(repo: &Path) -> Vec<String> {
    let o = floe(&["backup", "list", "--repo", p(repo), "--json"]);
    assert_code(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    v["snapshots"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

/// The current manifest generation and its document.
fn current(repo: &Path) -> (u64, Value) {
    let g =
        dir_names(&repo.join("manifest")).iter().filter_map(|n| n.strip_suffix(".json")?.parse().ok()).max().unwrap();
    let v = serde_json::from_slice(&std::fs::read(repo.join(format!("manifest/{g:020}.json"))).unwrap()).unwrap();
    (g, v)
}

fn write_generation(repo: &Path, g: u64, doc: &Value) {
    std::fs::write(repo.join(format!("manifest/{g:020}.json")), serde_json::to_vec_pretty(doc).unwrap()).unwrap();
}

/// Sets a file's modification time `secs` seconds from now (negative: in the past).
fn set_age(path: &Path, secs: i64) {
    let t = if secs >= 0 {
        SystemTime::now() + Duration::from_secs(secs as u64)
    } else {
        SystemTime::now() - Duration::from_secs(secs.unsigned_abs())
    };
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_modified(t).unwrap();
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(d: &Path, root: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let e = e.unwrap();
            let ft = std::fs::symlink_metadata(e.path()).unwrap().file_type();
            if ft.is_dir() {
                walk(&e.path(), root, out);
            } else {
                out.push(e.path().strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    walk(dir, dir, &mut out);
    out.sort();
    out
}

// Item 1.
#[test]
fn gc_never_follows_a_symlink_or_descends_into_a_folder() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    let id = create(&repo, &db(dir.path(), 1), &[]);
    let outside = dir.path().join("precious");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("thesis.txt"), b"years of work").unwrap();
    std::fs::write(outside.join(format!("{ID_A}.floe")), b"not a snapshot").unwrap();
    let snaps = repo.join("snapshots");
    std::os::unix::fs::symlink(&outside, snaps.join("evil")).unwrap();
    std::os::unix::fs::symlink(outside.join("thesis.txt"), snaps.join("20200101T000000Z-0000000b.floe")).unwrap();
    std::fs::create_dir_all(snaps.join("folder.floe")).unwrap();
    std::fs::write(snaps.join("folder.floe/20200101T000000Z-0000000c.floe"), b"x").unwrap();
    set_age(&snaps.join("folder.floe/20200101T000000Z-0000000c.floe"), -10 * 3600);
    let before = files_under(&outside);
    let o = floe(&["backup", "gc", "--repo", p(&repo), "--grace", "0s"]);
    assert_code(&o, 0);
    assert_eq!(files_under(&outside), before, "gc deleted files outside the repository");
    assert_eq!(std::fs::read(outside.join("thesis.txt")).unwrap(), b"years of work");
    assert!(std::fs::symlink_metadata(snaps.join("evil")).is_ok(), "gc removed a symbolic link it did not create");
    assert!(std::fs::symlink_metadata(snaps.join("20200101T000000Z-0000000b.floe")).is_ok());
    assert!(snaps.join("folder.floe/20200101T000000Z-0000000c.floe").exists(), "gc descended into a folder");
    assert!(stderr(&o).contains("left alone snapshots/evil (a symbolic link)"), "{}", stderr(&o));
    assert!(stderr(&o).contains("snapshots/folder.floe (a folder)"), "{}", stderr(&o));
    assert!(snaps.join(format!("{id}.floe")).is_file());
    assert_code(&floe(&["backup", "verify", "--repo", p(&repo)]), 0);
}

// Item 2.
#[test]
fn a_folder_that_is_not_a_repository_is_refused_and_left_alone() {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join("snapshots/a")).unwrap();
    std::fs::write(home.join("snapshots/a/img.jpg"), b"a photo").unwrap();
    std::fs::write(home.join(format!("snapshots/{ID_A}.floe")), b"a file named like a snapshot").unwrap();
    set_age(&home.join(format!("snapshots/{ID_A}.floe")), -10 * 3600);
    let before = files_under(&home);
    let db1 = db(dir.path(), 2);
    for args in [
        vec!["backup", "gc", "--repo", p(&home), "--grace", "0s", "--break-lock"],
        vec!["backup", "delete", "--repo", p(&home), ID_A],
        vec!["backup", "list", "--repo", p(&home)],
        vec!["backup", "verify", "--repo", p(&home)],
        vec!["backup", "create", "-q", p(&db1), "--repo", p(&home)],
        vec!["backup", "create", "-q", p(&db1), "--repo", p(&home), "--keep", "1"],
    ] {
        let o = floe(&args);
        assert_code(&o, 1);
        assert!(stderr(&o).contains("is not a floe backup repository"), "{args:?}: {}", stderr(&o));
        assert_eq!(files_under(&home), before, "{args:?} changed a folder that is not a repository");
    }
    // create initialises an empty or absent location, with its marker.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for repo in [&empty, &dir.path().join("absent")] {
        let id = create(repo, &db1, &[]);
        let marker: Value = serde_json::from_slice(&std::fs::read(repo.join("floe-repository.json")).unwrap()).unwrap();
        assert_eq!((marker["format"].as_str(), marker["version"].as_u64()), (Some("floe-backup-repository"), Some(1)));
        assert_eq!(list_ids(repo), vec![id]);
    }
    // A bad marker is not a repository, even with a manifest.
    std::fs::write(empty.join("floe-repository.json"), b"{\"format\":\"something-else\",\"version\":1}").unwrap();
    let o = floe(&["backup", "gc", "--repo", p(&empty)]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("not a floe repository marker"), "{}", stderr(&o));
    // A repository of the previous floe (a manifest, no marker) keeps working; the
    // next mutating command adds the marker.
    let legacy = dir.path().join("absent");
    std::fs::remove_file(legacy.join("floe-repository.json")).unwrap();
    assert_eq!(list_ids(&legacy).len(), 1);
    assert!(!legacy.join("floe-repository.json").exists(), "list wrote into the repository");
    assert_code(&floe(&["backup", "gc", "--repo", p(&legacy)]), 0);
    assert!(legacy.join("floe-repository.json").is_file());
}

// Item 3.
#[test]
fn a_malformed_current_manifest_is_refused_by_every_command_and_gc_deletes_nothing() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    let db1 = db(dir.path(), 3);
    let id = create(&repo, &db1, &[]);
    let (g, good) = current(&repo);
    let object = repo.join(format!("snapshots/{id}.floe"));
    set_age(&object, -10 * 3600);
    let mut bad_docs = vec![];
    let mut d = good.clone();
    d["snapshots"] = json!({});
    bad_docs.push(("snapshots is an object", d));
    let mut d = good.clone();
    d["snapshots"][0].as_object_mut().unwrap().remove("sha256");
    bad_docs.push(("an entry without sha256", d));
    let mut d = good.clone();
    let e = d["snapshots"][0].clone();
    d["snapshots"].as_array_mut().unwrap().push(e);
    bad_docs.push(("a duplicate id", d));
    let mut d = good.clone();
    d["snapshots"][0]["size"] = json!("12");
    bad_docs.push(("a string size", d));
    let mut d = good.clone();
    d["snapshots"][0]["remarks"] = json!(null);
    bad_docs.push(("null remarks", d));
    let mut d = good.clone();
    d["snapshots"][0]["keyspaces"] = json!([{"name": 1, "records": 2}]);
    bad_docs.push(("a keyspace name that is a number", d));
    let mut d = good.clone();
    d.as_object_mut().unwrap().remove("snapshots");
    bad_docs.push(("no snapshots", d));
    let mut d = good.clone();
    d["generation"] = json!(g);
    bad_docs.push(("a generation field that is not its name", d));
    for (what, mut doc) in bad_docs {
        if what != "a generation field that is not its name" {
            doc["generation"] = json!(g + 1);
        }
        write_generation(&repo, g + 1, &doc);
        let target = dir.path().join("restored");
        for args in [
            vec!["backup", "list", "--repo", p(&repo)],
            vec!["backup", "verify", "--repo", p(&repo)],
            vec!["backup", "restore", "-q", "--repo", p(&repo), &id, p(&target)],
            vec!["backup", "create", "-q", p(&db1), "--repo", p(&repo)],
            vec!["backup", "delete", "--repo", p(&repo), &id],
            vec!["backup", "gc", "--repo", p(&repo), "--grace", "0s"],
        ] {
            let o = floe(&args);
            assert_code(&o, 3);
            assert!(stderr(&o).contains(&format!("generation {}", g + 1)), "{what}: {args:?}: {}", stderr(&o));
        }
        assert!(object.is_file(), "{what}: gc deleted a snapshot");
        assert!(!target.exists());
        assert_eq!(current(&repo).0, g + 1, "{what}: a command published over a malformed manifest");
    }
    std::fs::remove_file(repo.join(format!("manifest/{:020}.json", g + 1))).unwrap();
    assert_eq!(list_ids(&repo), vec![id]);
}

// Item 4.
#[test]
fn generation_u64_max_cannot_be_followed_and_gc_keeps_the_last_three() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    let db1 = db(dir.path(), 4);
    let ids: Vec<String> = (0..5).map(|_| create(&repo, &db1, &[])).collect();
    assert_eq!(current(&repo).0, 5);
    let (_, mut doc) = current(&repo);
    doc["generation"] = json!(u64::MAX);
    write_generation(&repo, u64::MAX, &doc);
    let manifests = dir_names(&repo.join("manifest"));
    for args in [
        vec!["backup", "create", "-q", p(&db1), "--repo", p(&repo)],
        vec!["backup", "gc", "--repo", p(&repo), "--grace", "0s"],
        vec!["backup", "delete", "--repo", p(&repo), &ids[0]],
        vec!["backup", "create", "-q", p(&db1), "--repo", p(&repo), "--keep", "1"],
    ] {
        let o = floe(&args);
        assert_code(&o, 3);
        assert!(stderr(&o).contains("cannot be followed"), "{args:?}: {}", stderr(&o));
        assert_eq!(dir_names(&repo.join("manifest")), manifests, "{args:?} changed the generations");
    }
    assert!(!repo.join(format!("manifest/{:020}.json", 0)).exists());
    for id in &ids {
        assert!(repo.join(format!("snapshots/{id}.floe")).is_file());
    }
    assert_eq!(list_ids(&repo), ids, "readers still read the current generation");
    std::fs::remove_file(repo.join(format!("manifest/{:020}.json", u64::MAX))).unwrap();
    let o = floe(&["backup", "gc", "--repo", p(&repo)]);
    assert_code(&o, 0);
    let left: Vec<String> = dir_names(&repo.join("manifest"));
    assert_eq!(left, vec![format!("{:020}.json", 3), format!("{:020}.json", 4), format!("{:020}.json", 5)]);
    assert_code(&floe(&["backup", "verify", "--repo", p(&repo)]), 0);
}

/// A database whose archive is about `mib` MiB (incompressible values).
fn big_db(dir: &Path, mib: usize) -> PathBuf {
    let path = dir.join(format!("big-{mib}"));
    let db = open_db(&path);
    let ks = db.keyspace("big", fjall::KeyspaceCreateOptions::default).unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut value = vec![0u8; 256 << 10];
    let mut ing = ks.start_ingestion().unwrap();
    for i in 0..mib * 4 {
        for c in value.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
        }
        ing.write(format!("key-{i:08}"), value.as_slice()).unwrap();
    }
    ing.finish().unwrap();
    db.persist(fjall::PersistMode::SyncAll).unwrap();
    path
}

// Items 5, 6 and 8 (a dead holder on this host).
#[test]
fn killed_creates_leave_partials_that_gc_removes_after_the_grace_period() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    let small = db(dir.path(), 5);
    let kept = create(&repo, &small, &[]);
    let big = big_db(dir.path(), 96);
    let mut partials = 0;
    for _ in 0..3 {
        let before = dir_names(&repo.join("snapshots"));
        let mut child = Command::new(floe_bin())
            .args(["backup", "create", "-q", "-t", "1", p(&big), "--repo", p(&repo), "--break-lock"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < deadline
            && !dir_names(&repo.join("snapshots")).iter().any(|n| !before.contains(n) && n.contains(".floe-tmp-"))
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(50));
        signal(child.id(), libc::SIGKILL);
        let st = child.wait().unwrap();
        if st.code().is_none() && dir_names(&repo.join("snapshots")).len() > before.len() {
            partials += 1;
        }
    }
    assert!(partials > 0, "no create was killed mid-upload");
    // A partial of the previous floe's object_store backend.
    let old = repo.join(format!("snapshots/{ID_A}.floe#1"));
    std::fs::write(&old, b"half an upload").unwrap();
    set_age(&old, -2 * 3600);
    let names = dir_names(&repo.join("snapshots"));
    let leftovers: Vec<&String> = names.iter().filter(|n| **n != format!("{kept}.floe")).collect();
    assert!(leftovers.len() >= 2, "{names:?}");
    assert_eq!(list_ids(&repo), vec![kept.clone()]);
    // The killed create's lock: its process is gone, so it can be broken now.
    let o = floe(&["backup", "gc", "--repo", p(&repo)]);
    assert_code(&o, 5);
    assert!(stderr(&o).contains("is gone") && stderr(&o).contains("--break-lock"), "{}", stderr(&o));
    // Default grace: the fresh partials stay, the 2-hour-old one goes.
    let o = floe(&["backup", "gc", "--repo", p(&repo), "--break-lock"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("is gone"), "{}", stderr(&o));
    assert!(stdout(&o).contains(&format!("removed orphan snapshots/{ID_A}.floe#1")), "{}", stdout(&o));
    assert!(!old.exists());
    let after = dir_names(&repo.join("snapshots"));
    assert_eq!(after.len(), names.len() - 1, "gc removed a partial younger than the grace period: {after:?}");
    // Grace 0: every partial goes, the published snapshot stays.
    let o = floe(&["backup", "gc", "--repo", p(&repo), "--grace", "0s"]);
    assert_code(&o, 0);
    assert_eq!(dir_names(&repo.join("snapshots")), vec![format!("{kept}.floe")], "{}", stdout(&o));
    assert_code(&floe(&["backup", "verify", "--repo", p(&repo)]), 0);
}

// Item 6.
#[test]
fn gc_keeps_unreferenced_objects_younger_than_the_grace_period() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    create(&repo, &db(dir.path(), 6), &[]);
    let orphan = repo.join(format!("snapshots/{ID_A}.floe"));
    std::fs::write(&orphan, b"an upload in flight").unwrap();
    let o = floe(&["backup", "gc", "--repo", p(&repo)]);
    assert_code(&o, 0);
    assert!(orphan.exists(), "gc removed an object younger than the default grace period (1 hour)");
    assert!(stderr(&o).contains("younger than --grace"), "{}", stderr(&o));
    set_age(&orphan, 3600 * 24);
    assert_code(&floe(&["backup", "gc", "--repo", p(&repo), "--grace", "0s"]), 0);
    assert!(orphan.exists(), "gc removed an object dated in the future");
    set_age(&orphan, -2 * 3600);
    assert_code(&floe(&["backup", "gc", "--repo", p(&repo), "--grace", "3h"]), 0);
    assert!(orphan.exists());
    let o = floe(&["backup", "gc", "--repo", p(&repo)]);
    assert_code(&o, 0);
    assert!(!orphan.exists(), "a 2-hour-old orphan survived the default grace period");
    assert_code(&floe(&["backup", "gc", "--repo", p(&repo), "--grace", "soon"]), 2);
}

// Item 7.
#[test]
fn local_objects_are_written_through_a_temporary_and_leave_none() {
    use floe::store::{Object, Store};
    use std::io::Write;
    let dir = tempdir();
    let store = Store::local_dir(dir.path(), false).unwrap();
    let key = object_store::path::Path::from("snapshots/x.floe");
    let o = Object { store: store.clone(), key: key.clone() };
    let mut w = o.writer().unwrap();
    w.write_all(b"archive bytes").unwrap();
    let names = dir_names(&dir.path().join("snapshots"));
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].starts_with("x.floe.floe-tmp-"), "not written through a floe temporary: {names:?}");
    w.finish().unwrap();
    assert_eq!(dir_names(&dir.path().join("snapshots")), vec!["x.floe"]);
    assert_eq!(std::fs::read(dir.path().join("snapshots/x.floe")).unwrap(), b"archive bytes");
    // Create-only: an existing object is never replaced.
    let mut w = o.writer().unwrap();
    w.write_all(b"other").unwrap();
    assert!(w.finish().is_err());
    assert_eq!(std::fs::read(dir.path().join("snapshots/x.floe")).unwrap(), b"archive bytes");
    assert_eq!(dir_names(&dir.path().join("snapshots")), vec!["x.floe"]);
    // A writer dropped unfinished leaves nothing.
    let o2 = Object { store: store.clone(), key: "snapshots/y.floe".into() };
    let mut w = o2.writer().unwrap();
    w.write_all(b"half").unwrap();
    drop(w);
    assert_eq!(dir_names(&dir.path().join("snapshots")), vec!["x.floe"]);
    // Small objects: create-only and overwrite.
    let m = object_store::path::Path::from("manifest/a.json");
    assert!(store.put(&m, b"1".to_vec(), true).unwrap());
    assert!(!store.put(&m, b"2".to_vec(), true).unwrap());
    assert!(store.put(&m, b"3".to_vec(), false).unwrap());
    assert_eq!(std::fs::read(dir.path().join("manifest/a.json")).unwrap(), b"3");
    assert_eq!(dir_names(&dir.path().join("manifest")), vec!["a.json"]);
    // A whole create leaves no temporary anywhere in the repository.
    let repo = dir.path().join("repo");
    let id = create(&repo, &db(dir.path(), 7), &[]);
    let all = files_under(&repo);
    assert!(all.iter().all(|f| !f.contains(".floe-tmp-") && !f.contains('#')), "{all:?}");
    assert!(all.contains(&format!("snapshots/{id}.floe")), "{all:?}");
}

fn proc_start(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    s[s.rfind(')').unwrap() + 1..].split_whitespace().nth(19).unwrap().parse().unwrap()
}

fn this_host() -> Value {
    let r = |p: &str| std::fs::read_to_string(p).unwrap().trim().to_owned();
    json!({
        "host": r("/proc/sys/kernel/hostname"),
        "boot_id": r("/proc/sys/kernel/random/boot_id"),
        "pid_ns": std::fs::read_link("/proc/self/ns/pid").unwrap().to_string_lossy(),
    })
}

/// Writes a held lock generation above every existing one.
fn put_lock(repo: &Path, mut doc: Value) {
    let locks = repo.join("locks");
    std::fs::create_dir_all(&locks).unwrap();
    let top: u64 = dir_names(&locks).iter().filter_map(|n| n.strip_suffix(".json")?.parse().ok()).max().unwrap_or(0);
    doc["state"] = json!("held");
    doc["token"] = json!(format!("planted-{top}"));
    std::fs::write(locks.join(format!("{:020}.json", top + 1)), doc.to_string()).unwrap();
}

// Item 8.
#[test]
fn concurrent_breakers_of_a_stale_lock_never_both_hold_it() {
    let dir = tempdir();
    let repo_dir = dir.path().join("repo");
    create(&repo_dir, &db(dir.path(), 8), &[]);
    let threads = 6;
    for trial in 0..60 {
        let stale = json!({"job": "backup create", "host": "elsewhere", "pid": 4242, "created_unix": now() - 1000, "expires_unix": now() - 10});
        put_lock(&repo_dir, stale);
        let barrier = std::sync::Barrier::new(threads);
        let got: Vec<Result<floe::backup::Lock, String>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let repo = floe::backup::Repo::open(p(&repo_dir)).unwrap();
                        barrier.wait();
                        repo.lock("breaker", true, Duration::ZERO).map_err(|e| e.to_string())
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let holders = got.iter().filter(|r| r.is_ok()).count();
        assert_eq!(
            holders,
            1,
            "trial {trial}: {holders} breakers hold the lock at once: {:?}",
            got.iter().filter_map(|r| r.as_ref().err()).collect::<Vec<_>>()
        );
        for e in got.iter().filter_map(|r| r.as_ref().err()) {
            assert!(e.contains("is locked by 'breaker'"), "trial {trial}: {e}");
        }
    }
    // Pruned as it goes: a handful of lock generations, not hundreds.
    assert!(dir_names(&repo_dir.join("locks")).len() <= 4, "{:?}", dir_names(&repo_dir.join("locks")));
}

// Item 8 (same-host holders), and escaping of what backup.rs prints.
#[test]
fn a_dead_holder_on_this_host_is_broken_at_once_a_live_one_never() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    create(&repo, &db(dir.path(), 9), &[]);
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let mut doc = this_host();
    doc["job"] = json!("backup create");
    doc["pid"] = json!(dead_pid);
    doc["pid_start"] = json!(1);
    doc["created_unix"] = json!(now());
    doc["expires_unix"] = json!(now() + 300);
    put_lock(&repo, doc.clone());
    let o = floe(&["backup", "gc", "--repo", p(&repo)]);
    assert_code(&o, 5);
    assert!(stderr(&o).contains(&format!("process {dead_pid} on this host, is gone")), "{}", stderr(&o));
    let o = floe(&["backup", "gc", "--repo", p(&repo), "--break-lock"]);
    assert_code(&o, 0);
    assert!(stderr(&o).contains("breaking the lock"), "{}", stderr(&o));
    // A live holder on this host (this test process, with its true start time) is not broken.
    let me = std::process::id();
    doc["pid"] = json!(me);
    doc["pid_start"] = json!(proc_start(me));
    put_lock(&repo, doc.clone());
    let o = floe(&["backup", "gc", "--repo", p(&repo), "--break-lock"]);
    assert_code(&o, 5);
    assert!(stderr(&o).contains("wait for it"), "{}", stderr(&o));
    // The same pid with another start time is a reused pid: its holder is dead.
    doc["pid_start"] = json!(proc_start(me) + 1);
    put_lock(&repo, doc.clone());
    assert_code(&floe(&["backup", "gc", "--repo", p(&repo), "--break-lock"]), 0);
    // Control characters from a lock are escaped in what floe prints.
    let evil =
        json!({"job": "x\u{1b}[2J\nfloe: fake line", "host": "h\u{7}", "pid": 1, "created_unix": 0, "expires_unix": 1});
    put_lock(&repo, evil);
    let o = floe(&["backup", "gc", "--repo", p(&repo), "--break-lock"]);
    assert_code(&o, 0);
    let err = stderr(&o);
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}') && err.contains("x\\x1b[2J\\nfloe: fake line"), "{err}");
}

// Item 9.
#[test]
fn retention_never_removes_the_snapshot_it_just_published() {
    let dir = tempdir();
    let repo = dir.path().join("repo");
    let db1 = db(dir.path(), 10);
    let a = create(&repo, &db1, &[]);
    // Clock skew: the older entry claims to be from ten years ahead.
    let (g, mut doc) = current(&repo);
    doc["snapshots"][0]["created_unix"] = json!(now() + 10 * 365 * 86_400);
    doc["generation"] = json!(g + 1);
    write_generation(&repo, g + 1, &doc);
    let b = create(&repo, &db1, &["--keep", "1"]);
    assert_eq!(list_ids(&repo), vec![b.clone()], "retention removed the snapshot just published");
    assert!(repo.join(format!("snapshots/{b}.floe")).is_file());
    assert!(!repo.join(format!("snapshots/{a}.floe")).exists());
    let c = create(&repo, &db1, &["--keep", "2"]);
    assert_eq!(list_ids(&repo), vec![b, c]);
    assert_code(&floe(&["backup", "verify", "--repo", p(&repo)]), 0);
}
