//! Object-store URLs and the backup catalog against real S3-compatible
//! servers on loopback, through the CLI: moto (in memory) and s3s-fs (on
//! disk), see tests/s3/mod.rs. Round trips for export, import, verify and
//! inspect (s3:// and file://), every backup command, concurrent creators, a
//! cancelled upload, a server killed mid-upload (on s3s-fs, what it leaves on
//! disk), memory, a silent endpoint, and missing credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;
mod s3;

use common::*;
use s3::{moto, Kind, Server};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(mut c: Command) -> Output {
    c.output().expect("running floe")
}

fn sample_db(dir: &Path, n: usize, seed: u64) -> (std::path::PathBuf, Model) {
    let model = small_model(n, seed);
    let db = make_db_dir(&dir.join(format!("db-{seed}")), &model, &BTreeSet::new());
    (db, model)
}

#[test]
fn export_import_verify_inspect_through_s3_and_file_urls_moto() {
    export_import_verify_inspect(Kind::Moto);
}

#[test]
fn export_import_verify_inspect_through_s3_and_file_urls_s3fs() {
    export_import_verify_inspect(Kind::S3sFs);
}

fn export_import_verify_inspect(kind: Kind) {
    let Some(m) = s3::server(kind) else { return };
    m.create_bucket("roundtrip");
    let dir = tempdir();
    let (db, model) = sample_db(dir.path(), 3000, 1);
    let file_url = format!("file://{}", dir.path().join("f.floe").display());
    for (i, url) in ["s3://roundtrip/some/prefix/a.floe", file_url.as_str()].into_iter().enumerate() {
        assert_code(&run(m.floe(&["export", "-q", p(&db), "-o", url])), 0);
        let o = run(m.floe(&["verify", url]));
        assert_code(&o, 0);
        assert!(stdout(&o).starts_with("OK "), "{}", stdout(&o));
        assert_code(&run(m.floe(&["verify", "--quick", url])), 0);
        let o = run(m.floe(&["inspect", "--json", url]));
        assert_code(&o, 0);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(v["keyspaces"].as_array().unwrap().len(), model.len(), "{v}");
        let target = dir.path().join(format!("imported-{i}"));
        assert_code(&run(m.floe(&["import", "-q", url, p(&target)])), 0);
        assert_models_eq(&read_db_at(&target), &model);
    }
    assert_eq!(m.keys("roundtrip", "some/"), vec!["some/prefix/a.floe".to_string()]);
    let local = dir.path().join("local.floe");
    let o = run(m.floe(&["export", "-q", p(&db), "-o", p(&local)]));
    assert_code(&o, 0);
    // Errors name the object.
    let o = run(m.floe(&["verify", "s3://roundtrip/missing.floe"]));
    assert_code(&o, 1);
    assert!(stderr(&o).contains("s3://roundtrip/missing.floe"), "{}", stderr(&o));
    let o = run(m.floe(&["verify", "gs://x/y"]));
    assert!(stderr(&o).contains("unsupported URL scheme"), "{}", stderr(&o));
    // A corrupt object is refused as corrupt (exit 3), not imported.
    let mut bytes = std::fs::read(&local).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&local, &bytes).unwrap();
    let bad = format!("file://{}", local.display());
    assert_code(&run(m.floe(&["export", "-q", p(&db), "-o", "s3://roundtrip/bad.floe"])), 0);
    m.put("roundtrip", "bad.floe", &bytes);
    for url in ["s3://roundtrip/bad.floe", bad.as_str()] {
        assert_code(&run(m.floe(&["verify", url])), 3);
        let target = dir.path().join("never");
        assert_code(&run(m.floe(&["import", "-q", url, p(&target)])), 3);
        assert!(!target.exists());
    }
}

fn list_json(m: &Server, repo: &str) -> Value {
    let o = run(m.floe(&["backup", "list", "--repo", repo, "--json"]));
    assert_code(&o, 0);
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn ids(v: &Value) -> Vec<String> {
    v["snapshots"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

fn create(m: &Server, repo: &str, db: &Path, extra: &[&str]) -> String {
    let mut args = vec!["backup", "create", p(db), "--repo", repo, "-q"];
    args.extend_from_slice(extra);
    let o = run(m.floe(&args));
    assert_code(&o, 0);
    stdout(&o).trim().to_owned()
}

/// Every backup command on one repository; `put` writes a raw object into it.
fn backup_commands(
    m: &Server,
    repo: &str,
    put: &dyn Fn(&str, &[u8]),
    get: &dyn Fn(&str) -> Option<Vec<u8>>,
    dir: &Path,
) {
    let (db1, model1) = sample_db(dir, 2000, 11);
    let (db2, model2) = sample_db(dir, 1500, 12);
    let a = create(m, repo, &db1, &["--remarks", "before the migration"]);
    let b = create(m, repo, &db2, &[]);
    let v = list_json(m, repo);
    assert_eq!(ids(&v), vec![a.clone(), b.clone()]);
    assert_eq!(v["version"], 1);
    let e = &v["snapshots"][0];
    assert_eq!(e["remarks"], "before the migration");
    assert_eq!(e["floe_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(e["format_version"], "1.1");
    assert_eq!(e["sha256"].as_str().unwrap().len(), 64);
    assert!(e["snapshot_seqno"].as_u64().unwrap() > 0);
    let recs: u64 = e["keyspaces"].as_array().unwrap().iter().map(|k| k["records"].as_u64().unwrap()).sum();
    assert_eq!(recs, model1.values().map(|r| r.len() as u64).sum::<u64>());
    assert_eq!(e["size"].as_u64().unwrap(), get(&format!("snapshots/{a}.floe")).unwrap().len() as u64);
    let o = run(m.floe(&["backup", "list", "--repo", repo]));
    assert_code(&o, 0);
    assert!(stdout(&o).contains(&a) && stdout(&o).contains("before the migration"), "{}", stdout(&o));

    // verify (all, and by id), restore.
    let o = run(m.floe(&["backup", "verify", "--repo", repo]));
    assert_code(&o, 0);
    assert_eq!(stdout(&o).lines().filter(|l| l.starts_with("OK ")).count(), 2, "{}", stdout(&o));
    assert_code(&run(m.floe(&["backup", "verify", "--repo", repo, &b])), 0);
    let r1 = dir.join("restored-1");
    assert_code(&run(m.floe(&["backup", "restore", "-q", "--repo", repo, &a, p(&r1)])), 0);
    assert_models_eq(&read_db_at(&r1), &model1);
    let o = run(m.floe(&["backup", "restore", "-q", "--repo", repo, "no-such-id", p(&dir.join("x"))]));
    assert_code(&o, 1);
    assert!(stderr(&o).contains("no snapshot no-such-id"), "{}", stderr(&o));

    // Unknown manifest fields survive a rewrite by this floe.
    let gen = v["generation"].as_u64().unwrap();
    let mut doc = v.clone();
    doc["written_by_a_future_tool"] = serde_json::json!({"x": 1});
    doc["snapshots"][1]["future_field"] = serde_json::json!("kept");
    doc["generation"] = serde_json::json!(gen + 1);
    put(&format!("manifest/{:020}.json", gen + 1), doc.to_string().as_bytes());

    // A checksum mismatch: verify and restore refuse (exit 3), nothing is built.
    let obj = format!("snapshots/{b}.floe");
    let good = get(&obj).unwrap();
    let mut bad = good.clone();
    bad[10] ^= 1;
    put(&obj, &bad);
    let o = run(m.floe(&["backup", "verify", "--repo", repo, &b]));
    assert_code(&o, 3);
    assert!(stderr(&o).contains("SHA-256"), "{}", stderr(&o));
    let r2 = dir.join("restored-2");
    assert_code(&run(m.floe(&["backup", "restore", "-q", "--repo", repo, &b, p(&r2)])), 3);
    assert!(!r2.exists());
    put(&obj, &good);
    assert_code(&run(m.floe(&["backup", "restore", "-q", "--repo", repo, &b, p(&r2)])), 0);
    assert_models_eq(&read_db_at(&r2), &model2);

    // delete: the manifest first, then the object.
    let o = run(m.floe(&["backup", "delete", "--repo", repo, &a]));
    assert_code(&o, 0);
    let v = list_json(m, repo);
    assert_eq!(ids(&v), vec![b.clone()]);
    assert_eq!(v["written_by_a_future_tool"]["x"], 1, "unknown top-level field lost: {v}");
    assert_eq!(v["snapshots"][0]["future_field"], "kept", "unknown entry field lost: {v}");
    assert!(get(&format!("snapshots/{a}.floe")).is_none());
    assert_code(&run(m.floe(&["backup", "delete", "--repo", repo, "no-such-id"])), 1);

    // Retention: --keep 2 after two more creates leaves the two newest.
    std::thread::sleep(Duration::from_millis(1100));
    let c = create(m, repo, &db1, &[]);
    std::thread::sleep(Duration::from_millis(1100));
    let d = create(m, repo, &db2, &["--keep", "2"]);
    assert_eq!(ids(&list_json(m, repo)), vec![c.clone(), d.clone()]);
    assert!(get(&format!("snapshots/{b}.floe")).is_none(), "retention left the object of {b}");
    let o = run(m.floe(&["backup", "create", p(&db1), "--repo", repo, "--keep", "0"]));
    assert_code(&o, 1);

    // gc: an orphan (as a crashed create leaves) goes, referenced objects stay.
    put("snapshots/20200101T000000Z-deadbeef.floe", b"half an upload");
    put("snapshots/not-floes/img.jpg", b"a photo");
    let o = run(m.floe(&["backup", "gc", "--repo", repo]));
    assert_code(&o, 0);
    // (moto refuses unsigned reads of objects written by boto3: check what gc says.)
    assert!(
        stderr(&o).contains("kept snapshots/20200101T000000Z-deadbeef.floe"),
        "gc ignored the grace period: {}",
        stderr(&o)
    );
    let o = run(m.floe(&["backup", "gc", "--repo", repo, "--grace", "0s"]));
    assert_code(&o, 0);
    assert!(stderr(&o).contains("left alone snapshots/not-floes (a folder)"), "{}", stderr(&o));
    assert!(stdout(&o).contains("removed orphan snapshots/20200101T000000Z-deadbeef.floe"), "{}", stdout(&o));
    assert!(get("snapshots/20200101T000000Z-deadbeef.floe").is_none());
    assert!(get(&format!("snapshots/{c}.floe")).is_some());
    assert_code(&run(m.floe(&["backup", "verify", "--repo", repo])), 0);

    // Locks: a live one names its holder (exit 5); a stale one needs --break-lock.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let lock = |expires: i64| {
        serde_json::json!({"job": "backup create", "host": "elsewhere", "pid": 4242, "token": "t", "created_unix": now - 1000, "expires_unix": expires}).to_string()
    };
    // Lock generations (format-spec II.4): plant one far above the current ones.
    let held = |expires: i64| {
        serde_json::json!({"state": "held", "job": "backup create", "host": "elsewhere", "pid": 4242, "token": "t", "created_unix": now - 1000, "expires_unix": expires}).to_string()
    };
    put("locks/10000000000000000000.json", held(now + 3600).as_bytes());
    let o = run(m.floe(&["backup", "gc", "--repo", repo, "--break-lock"]));
    assert_code(&o, 5);
    assert!(stderr(&o).contains("locked by 'backup create' (host elsewhere, pid 4242)"), "{}", stderr(&o));
    put("locks/10000000000000000001.json", held(now - 10).as_bytes());
    let o = run(m.floe(&["backup", "create", p(&db1), "--repo", repo]));
    assert_code(&o, 5);
    assert!(stderr(&o).contains("--break-lock"), "{}", stderr(&o));
    create(m, repo, &db1, &["--break-lock"]);
    // Released: the next job takes the lock without --break-lock.
    assert_code(&run(m.floe(&["backup", "gc", "--repo", repo])), 0);
    // A live lock.json of an older floe is honoured; a stale one is broken with --break-lock.
    put("lock.json", lock(now + 3600).as_bytes());
    assert_code(&run(m.floe(&["backup", "gc", "--repo", repo, "--break-lock"])), 5);
    put("lock.json", lock(now - 10).as_bytes());
    assert_code(&run(m.floe(&["backup", "gc", "--repo", repo])), 5);
    assert_code(&run(m.floe(&["backup", "gc", "--repo", repo, "--break-lock"])), 0);
    assert!(get("lock.json").is_none(), "the stale legacy lock was not broken");
    assert_eq!(ids(&list_json(m, repo)).len(), 3);

    // A manifest of a newer version: read-only commands work, writers refuse (exit 4).
    let v = list_json(m, repo);
    let gen = v["generation"].as_u64().unwrap();
    let mut doc = v.clone();
    doc["version"] = serde_json::json!(2);
    doc["generation"] = serde_json::json!(gen + 1);
    put(&format!("manifest/{:020}.json", gen + 1), doc.to_string().as_bytes());
    assert_eq!(ids(&list_json(m, repo)).len(), 3);
    assert_code(&run(m.floe(&["backup", "verify", "--repo", repo, &c])), 0);
    let o = run(m.floe(&["backup", "create", p(&db1), "--repo", repo]));
    assert_code(&o, 4);
    assert!(stderr(&o).contains("newer floe"), "{}", stderr(&o));
    assert_code(&run(m.floe(&["backup", "gc", "--repo", repo])), 4);
    assert_code(&run(m.floe(&["backup", "delete", "--repo", repo, &c])), 4);
}

fn backup_commands_on_s3(m: &Server, dir: &Path) {
    m.create_bucket("backups");
    let put = |rel: &str, b: &[u8]| m.put("backups", &format!("team/repo/{rel}"), b);
    let get = |rel: &str| m.get(&format!("/backups/team/repo/{rel}"));
    let scratch = dir.join("s3");
    std::fs::create_dir(&scratch).unwrap();
    backup_commands(m, "s3://backups/team/repo", &put, &get, &scratch);
}

#[test]
fn backup_commands_on_s3_s3fs() {
    let Some(m) = s3::s3fs() else { return };
    let dir = tempdir();
    backup_commands_on_s3(&m, dir.path());
}

#[test]
fn backup_commands_on_s3_and_in_a_local_directory() {
    let Some(m) = moto() else { return };
    let dir = tempdir();
    backup_commands_on_s3(&m, dir.path());

    let repo = dir.path().join("local-repo");
    let put = |rel: &str, b: &[u8]| {
        let f = repo.join(rel);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b).unwrap();
    };
    let get = |rel: &str| std::fs::read(repo.join(rel)).ok();
    let scratch = dir.path().join("local");
    std::fs::create_dir(&scratch).unwrap();
    backup_commands(&m, p(&repo), &put, &get, &scratch);
    // A mistyped local repository is an error, not a new empty repository.
    let o = run(m.floe(&["backup", "list", "--repo", p(&dir.path().join("no-such-repo"))]));
    assert_code(&o, 1);
    assert!(!dir.path().join("no-such-repo").exists());
    // file:// names the same repository.
    assert_eq!(ids(&list_json(&m, &format!("file://{}", repo.display()))).len(), 3);
}

/// moto only: s3s-fs checks `If-None-Match: *` and then writes, not
/// atomically, so two creators can both take the lock there (a server bug, not
/// a floe one); floe needs a server whose create-only writes are atomic, as
/// S3's are.
#[test]
fn concurrent_creates_from_two_processes_both_survive() {
    let Some(m) = moto() else { return };
    m.create_bucket("concurrent");
    let dir = tempdir();
    let (db1, _) = sample_db(dir.path(), 3000, 21);
    let (db2, _) = sample_db(dir.path(), 3000, 22);
    let spawn = |db: &Path| {
        m.floe(&["backup", "create", p(db), "--repo", "s3://concurrent/r", "-q", "--wait", "120"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (c1, c2) = (spawn(&db1), spawn(&db2));
    let (o1, o2) = (c1.wait_with_output().unwrap(), c2.wait_with_output().unwrap());
    assert_code(&o1, 0);
    assert_code(&o2, 0);
    let mut got = ids(&list_json(&m, "s3://concurrent/r"));
    got.sort();
    let mut want = vec![stdout(&o1).trim().to_owned(), stdout(&o2).trim().to_owned()];
    want.sort();
    assert_eq!(got, want);
    assert_code(&run(m.floe(&["backup", "verify", "--repo", "s3://concurrent/r"])), 0);
}

/// A database whose archive is about `mib` MiB (incompressible values).
fn big_db(dir: &Path, mib: usize) -> std::path::PathBuf {
    let path = dir.join(format!("big-{mib}"));
    let db = open_db(&path);
    let ks = db.keyspace("big", fjall::KeyspaceCreateOptions::default).unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut value = vec![0u8; 256 << 10];
    // Bulk ingestion writes tables directly: no journal to replay into
    // memory when floe opens the database.
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
    drop(ks);
    drop(db);
    path
}

/// Waits until `f` holds (polling), or panics after `secs`.
fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn interrupted_and_failed_uploads_leave_no_object_parts_or_entry_moto() {
    interrupted_and_failed_uploads(Kind::Moto);
}

/// On s3s-fs the server's disk shows what an upload leaves behind, and a
/// killed server comes back with it.
#[test]
fn interrupted_and_failed_uploads_leave_no_object_parts_or_entry_s3fs() {
    interrupted_and_failed_uploads(Kind::S3sFs);
}

/// Waits until an upload to `bucket` is under way: started on moto; on s3s-fs
/// with at least one part on disk.
fn wait_for_upload(m: &Server, bucket: &str) {
    if m.persistent() {
        wait_for(60, "a part on the server's disk", || m.multipart_leftovers().iter().any(|n| n.contains(".part-")));
    } else {
        wait_for(60, "a multipart upload to start", || !m.pending_uploads(bucket).is_empty());
    }
}

fn no_leftovers(m: &Server, bucket: &str, what: &str) {
    assert_eq!(m.pending_uploads(bucket), Vec::<String>::new(), "{what} left a multipart upload");
    // s3s-fs removes the half-written file of a part whose request was cut
    // off when it notices, a moment after floe is done: wait for that.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !m.multipart_leftovers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(m.multipart_leftovers(), Vec::<String>::new(), "{what} left parts on the server's disk");
}

fn interrupted_and_failed_uploads(kind: Kind) {
    let Some(mut m) = s3::server(kind) else { return };
    m.create_bucket("killed");
    let dir = tempdir();
    let db = big_db(dir.path(), 120);

    // Ctrl-C during a backup upload: exit 130, the upload is aborted (no
    // parts), no object, no manifest entry, the lock is released.
    let mut child =
        m.floe(&["backup", "create", p(&db), "--repo", "s3://killed/r", "-q"]).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_upload(&m, "killed");
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(130), "expected an interrupted exit");
    no_leftovers(&m, "killed", "the cancelled upload");
    // What remains is the repository's marker and lock generations: no snapshot, no manifest.
    let left = m.keys("killed", "r/");
    assert!(left.iter().all(|k| k == "r/floe-repository.json" || k.starts_with("r/locks/")), "{left:?}");
    assert!(left.contains(&"r/floe-repository.json".to_string()), "{left:?}");

    // The server dies mid-upload: a clear error naming the object.
    // (A short FLOE_RETRY_TIMEOUT_SECS: floe gives up on the dead server in 2 s.)
    let child = m
        .floe(&["export", "-q", p(&db), "-o", "s3://killed/x.floe"])
        .env("FLOE_RETRY_TIMEOUT_SECS", "2")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_upload(&m, "killed");
    m.kill();
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains("s3://killed/x.floe"), "the error does not name the object: {err}");
    if m.persistent() {
        // A server that is gone cannot be told to abort: its parts stay on its
        // disk (README: give the bucket an AbortIncompleteMultipartUpload
        // lifecycle rule), but no object appears, whole or partial.
        m.restart();
        assert_eq!(m.pending_uploads("killed").len(), 1, "{:?}", m.multipart_leftovers());
        assert!(m.multipart_leftovers().iter().any(|n| n.contains(".part-")), "{:?}", m.multipart_leftovers());
        assert!(!m.keys("killed", "").contains(&"x.floe".to_string()));
        std::fs::remove_dir_all(m.root()).unwrap();
        std::fs::create_dir(m.root()).unwrap();
        m.restart();
        m.create_bucket("killed");

        // The server is killed and comes back while floe is still retrying
        // (within FLOE_RETRY_TIMEOUT_SECS): the upload either goes on to a
        // whole object or is aborted; either way no part is left on disk.
        let child = m
            .floe(&["export", "-q", p(&db), "-o", "s3://killed/y.floe"])
            .env("FLOE_RETRY_TIMEOUT_SECS", "30")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_upload(&m, "killed");
        m.kill();
        std::thread::sleep(Duration::from_millis(500));
        m.restart();
        let o = child.wait_with_output().unwrap();
        eprintln!("export across a server restart: exit {:?}: {}", o.status.code(), stderr(&o));
        if o.status.success() {
            assert_code(&run(m.floe(&["verify", "s3://killed/y.floe"])), 0);
        } else {
            assert!(!m.keys("killed", "").contains(&"y.floe".to_string()), "a failed upload left an object");
        }
        no_leftovers(&m, "killed", "an upload across a server restart");
    }

    // The same during backup create: no manifest entry, gc leaves nothing, a retry succeeds.
    m.restart();
    m.create_bucket("killed");
    let child = m
        .floe(&["backup", "create", p(&db), "--repo", "s3://killed/r", "-q"])
        .env("FLOE_RETRY_TIMEOUT_SECS", "2")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_upload(&m, "killed");
    m.kill();
    let o = child.wait_with_output().unwrap();
    assert_code(&o, 1);
    assert!(stderr(&o).contains("s3://killed/r/snapshots/"), "{}", stderr(&o));
    m.restart();
    m.create_bucket("killed");
    if m.persistent() {
        // The repository is still there, with no entry for the killed create;
        // its parts are on the server's disk, invisible to listings and to gc.
        // Its lock could not be released either: the next job says so.
        assert_eq!(ids(&list_json(&m, "s3://killed/r")), Vec::<String>::new());
        assert!(m.multipart_leftovers().iter().any(|n| n.contains(".part-")), "{:?}", m.multipart_leftovers());
        let o = run(m.floe(&["backup", "gc", "--repo", "s3://killed/r", "--grace", "0s"]));
        assert_code(&o, 5);
        assert!(stderr(&o).contains("is gone: pass --break-lock"), "{}", stderr(&o));
        let o = run(m.floe(&["backup", "gc", "--repo", "s3://killed/r", "--grace", "0s", "--break-lock"]));
        assert_code(&o, 0);
        let snaps = m.keys("killed", "r/snapshots/");
        assert_eq!(snaps, Vec::<String>::new(), "a killed create left a snapshot object");
    } else {
        // moto keeps its state in memory: a restarted server starts empty.
        // Nothing is left, so there is no repository: gc refuses, create initialises one.
        let o = run(m.floe(&["backup", "gc", "--repo", "s3://killed/r"]));
        assert_code(&o, 1);
        assert!(stderr(&o).contains("not a floe backup repository"), "{}", stderr(&o));
        assert_eq!(m.pending_uploads("killed"), Vec::<String>::new());
    }
    let leftovers_before = m.multipart_leftovers();
    let id = create(&m, "s3://killed/r", &db, &[]);
    assert_eq!(ids(&list_json(&m, "s3://killed/r")), vec![id]);
    // The retry's own upload completed and left nothing (older leftovers are the killed one's).
    assert_eq!(m.multipart_leftovers(), leftovers_before);
}

/// Peak resident memory of a finished child (wait4's ru_maxrss), in KiB.
#[allow(clippy::zombie_processes)] // reaped by wait4, which also reports its peak memory
fn run_rss(mut c: Command) -> (i32, i64) {
    let child = c.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain integers, for which all-zero bytes are valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, writing into the rusage and status we pass.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    assert_eq!(pid, child.id() as i32);
    (libc::WEXITSTATUS(status), ru.ru_maxrss)
}

#[test]
fn export_to_s3_stays_within_the_memory_bound_of_a_local_export() {
    let Some(m) = moto() else { return };
    m.create_bucket("mem");
    let dir = tempdir();
    let mib = 400;
    let db = big_db(dir.path(), mib);
    let (code, local) = run_rss(m.floe(&["export", "-q", "-t", "2", p(&db), "-o", p(&dir.path().join("local.floe"))]));
    assert_eq!(code, 0);
    let (code, remote) = run_rss(m.floe(&["export", "-q", "-t", "2", p(&db), "-o", "s3://mem/big.floe"]));
    assert_eq!(code, 0);
    // The upload adds at most PARTS_IN_FLIGHT parts plus the one being filled.
    let upload = ((floe::store::PARTS_IN_FLIGHT + 1) * floe::store::PART_SIZE / 1024) as i64;
    eprintln!(
        "peak RSS exporting {mib} MiB: local {} MiB, s3 {} MiB (upload allowance {} MiB)",
        local / 1024,
        remote / 1024,
        upload / 1024
    );
    assert!(remote <= local + upload + 16 * 1024, "s3 export peak {remote} KiB vs local {local} KiB");
    assert!(remote < (mib as i64 * 1024) * 2 / 3, "s3 export buffered much of the {mib} MiB archive: {remote} KiB");
    let (code, _) = run_rss(m.floe(&["verify", "--quick", "s3://mem/big.floe"]));
    assert_eq!(code, 0);
}

/// A floe command with no AWS credentials of any kind in its environment (HOME
/// is `home`, so no profile files either), reaching `endpoint`.
fn floe_without_credentials(home: &Path, endpoint: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_floe"));
    c.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(|k| k.starts_with("AWS_")) {
            c.env_remove(k);
        }
    }
    c.env("HOME", home)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("FLOE_RETRY_TIMEOUT_SECS", "2");
    c
}

/// A loopback listener that accepts connections and never answers; counts them.
struct Silent {
    port: u16,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

fn silent_endpoint() -> Silent {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = accepted.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        // Bounded: at most 64 connections, kept open (never answered) until the test process ends.
        for s in l.incoming().take(64) {
            n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(s);
        }
    });
    Silent { port, accepted }
}

/// Issue 12, item 9: an endpoint that accepts connections and never answers
/// fails within FLOE_RETRY_TIMEOUT_SECS (plus a margin), saying it timed out
/// and where; no S3 server needed.
#[test]
fn a_silent_endpoint_times_out_within_the_retry_timeout() {
    let s = silent_endpoint();
    let endpoint = format!("http://127.0.0.1:{}", s.port);
    let dir = tempdir();
    let (db, _) = sample_db(dir.path(), 200, 31);
    for args in [
        vec!["verify", "s3://silent/a.floe"], // HEAD, retried when it times out
        vec!["export", "-q", p(&db), "-o", "s3://silent/b.floe"], // POST (starts an upload), not retried
        vec!["backup", "list", "--repo", "s3://silent/r"], // GET
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_floe"));
        c.args(&args).stdin(Stdio::null());
        for k in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3"] {
            c.env_remove(k);
        }
        c.env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("FLOE_RETRY_TIMEOUT_SECS", "2");
        let t = Instant::now();
        let o = run(c);
        let secs = t.elapsed().as_secs_f64();
        eprintln!("{args:?} against a silent endpoint: {secs:.1} s: {}", stderr(&o).trim());
        assert_code(&o, 1);
        assert!(secs < 20.0, "{args:?} took {secs:.1} s with FLOE_RETRY_TIMEOUT_SECS=2");
        assert!(secs >= 1.9, "{args:?} gave up after {secs:.1} s, before the timeout: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("timed out after 2 s") && err.contains(&endpoint), "{args:?}: {err}");
    }
    assert!(s.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 3, "the requests never reached the listener");
}

/// An endpoint where nothing listens: retried for FLOE_RETRY_TIMEOUT_SECS,
/// then reported as a connection failure naming the endpoint.
#[test]
fn a_refused_connection_names_the_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let home = tempdir();
    let mut c = floe_without_credentials(home.path(), &endpoint, &["verify", "s3://refused/a.floe"]);
    c.env("AWS_ACCESS_KEY_ID", "test").env("AWS_SECRET_ACCESS_KEY", "test");
    let t = Instant::now();
    let o = run(c);
    let secs = t.elapsed().as_secs_f64();
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(&format!("cannot connect to {endpoint} (retried for up to 2 s)")), "{err}");
    assert!(err.contains("s3://refused/a.floe"), "{err}");
    assert!((1.9..20.0).contains(&secs), "gave up after {secs:.1} s with FLOE_RETRY_TIMEOUT_SECS=2");
}

/// Mirrors floe's own check (src/store.rs, looks_like_ec2): on an EC2 host
/// with no credentials, floe asks the instance metadata service, which these
/// tests must never reach; there they set AWS_EC2_METADATA_DISABLED=true.
fn host_looks_like_ec2() -> bool {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_ascii_lowercase()).unwrap_or_default();
    let dmi = "/sys/devices/virtual/dmi/id";
    read(&format!("{dmi}/sys_vendor")).contains("amazon ec2")
        || read(&format!("{dmi}/bios_vendor")).contains("amazon ec2")
        || read(&format!("{dmi}/board_asset_tag")).starts_with("i-")
        || read(&format!("{dmi}/product_uuid")).starts_with("ec2")
        || read("/sys/hypervisor/uuid").starts_with("ec2")
}

const NO_CREDENTIALS: &str = "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                              AWS_PROFILE; for a local server set AWS_ENDPOINT_URL and AWS_ALLOW_HTTP=true";

/// Issue 12, item 10: no credentials anywhere is refused before any request,
/// with a message that says what to set; the instance metadata service is
/// asked only where it may answer, and its failure says the same.
#[test]
fn missing_credentials_are_refused_before_any_request() {
    let s = silent_endpoint();
    let endpoint = format!("http://127.0.0.1:{}", s.port);
    let home = tempdir();
    let dir = tempdir();
    let (db, _) = sample_db(dir.path(), 100, 41);
    let mut variants: Vec<(&str, Vec<(&str, &str)>)> =
        vec![("AWS_EC2_METADATA_DISABLED=true", vec![("AWS_EC2_METADATA_DISABLED", "true")])];
    if !host_looks_like_ec2() {
        variants.push(("nothing set", vec![]));
        // A key without its secret is not credentials either (reported as such, not as "none found").
    } else {
        eprintln!("note: this host looks like an EC2 instance: the no-variable case is not run (it would ask 169.254.169.254)");
    }
    for (what, env) in &variants {
        for args in [vec!["verify", "s3://nocreds/a.floe"], vec!["export", "-q", p(&db), "-o", "s3://nocreds/b.floe"]] {
            let mut c = floe_without_credentials(home.path(), &endpoint, &args);
            for (k, v) in env {
                c.env(k, v);
            }
            let t = Instant::now();
            let o = run(c);
            assert_code(&o, 1);
            let err = stderr(&o);
            assert!(err.contains(NO_CREDENTIALS), "{what}, {args:?}: {err}");
            // Decided before any request: the metadata service was not asked either.
            assert!(!err.contains("instance metadata"), "{what}, {args:?}: {err}");
            assert!(err.contains("s3://nocreds"), "{what}, {args:?}: the message names no bucket: {err}");
            assert!(t.elapsed() < Duration::from_secs(5), "{what}, {args:?}: took {:?}", t.elapsed());
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.accepted.load(std::sync::atomic::Ordering::SeqCst), 0, "a request was sent without credentials");

    // Where the metadata service is asked (here: AWS_METADATA_ENDPOINT names a
    // loopback one that refuses, as IMDS does for an instance with no role),
    // its failure is reported as missing credentials too, with its detail.
    let imds = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let imds_url = format!("http://127.0.0.1:{}", imds.local_addr().unwrap().port());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut c in imds.incoming().take(32).flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let mut c = floe_without_credentials(home.path(), &endpoint, &["verify", "s3://nocreds/a.floe"]);
    c.env("AWS_METADATA_ENDPOINT", &imds_url);
    let o = run(c);
    assert_code(&o, 1);
    let err = stderr(&o);
    assert!(err.contains(NO_CREDENTIALS) && err.contains(&imds_url) && err.contains("403"), "{err}");
    assert_eq!(s.accepted.load(std::sync::atomic::Ordering::SeqCst), 0, "an unsigned request was sent");

    // A named profile that does not exist, or has no static keys, is refused by name.
    let mut c = floe_without_credentials(home.path(), &endpoint, &["verify", "s3://nocreds/a.floe"]);
    c.env("AWS_PROFILE", "nosuch");
    let o = run(c);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("AWS_PROFILE=nosuch: no profile [nosuch]"), "{}", stderr(&o));
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(home.path().join(".aws/config"), "[profile sso]\nsso_session = corp\nregion = eu-west-1\n").unwrap();
    let mut c = floe_without_credentials(home.path(), &endpoint, &["verify", "s3://nocreds/a.floe"]);
    c.env("AWS_PROFILE", "sso");
    let o = run(c);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("AWS_PROFILE=sso: it uses sso_session"), "{}", stderr(&o));
    assert!(stderr(&o).contains("aws configure export-credentials --profile sso"), "{}", stderr(&o));
    assert_eq!(s.accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// Static keys from the shared credentials file, as the AWS CLI reads them:
/// the default profile, or the one AWS_PROFILE names. On s3s-fs, which checks
/// signatures: a profile with the wrong secret is refused by the server.
#[test]
fn credentials_from_an_aws_profile_reach_the_server() {
    let Some(m) = s3::s3fs() else { return };
    m.create_bucket("profiles");
    let home = tempdir();
    let dir = tempdir();
    let (db, model) = sample_db(dir.path(), 500, 51);
    std::fs::create_dir_all(home.path().join(".aws")).unwrap();
    std::fs::write(
        home.path().join(".aws/credentials"),
        "# written by the test\n[default]\naws_access_key_id = test\naws_secret_access_key = test\n\n[other]\n\
         aws_access_key_id=test\naws_secret_access_key=test\n[wrong]\naws_access_key_id = test\naws_secret_access_key = nope\n",
    )
    .unwrap();
    std::fs::write(
        home.path().join(".aws/config"),
        "[default]\nregion = us-east-1\n[profile other]\nregion=us-east-1\n",
    )
    .unwrap();
    let o = run(floe_without_credentials(
        home.path(),
        &m.endpoint(),
        &["export", "-q", p(&db), "-o", "s3://profiles/a.floe"],
    ));
    assert_code(&o, 0);
    let mut c = floe_without_credentials(
        home.path(),
        &m.endpoint(),
        &["import", "-q", "s3://profiles/a.floe", p(&dir.path().join("t"))],
    );
    c.env("AWS_PROFILE", "other");
    assert_code(&run(c), 0);
    assert_models_eq(&read_db_at(&dir.path().join("t")), &model);
    let mut c = floe_without_credentials(home.path(), &m.endpoint(), &["verify", "s3://profiles/a.floe"]);
    c.env("AWS_PROFILE", "wrong");
    let o = run(c);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("403") || stderr(&o).contains("ermission"), "{}", stderr(&o));
}

/// The ranged reads (start, length) that `floe` logged (`store: range read`
/// events at trace level, JSON log lines on stderr).
fn range_reads(o: &Output) -> Vec<(u64, u64)> {
    stderr(o)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["fields"]["message"] == "store: range read")
        .map(|e| (e["fields"]["start"].as_u64().unwrap(), e["fields"]["len"].as_u64().unwrap()))
        .collect()
}

/// `floe get`, `cat --prefix` and `diff` on s3:// answer as the model says,
/// and a get reads the metadata once and then one block (format-spec §8.2),
/// counted from the requests floe logs.
#[test]
fn get_cat_and_diff_on_s3_read_only_what_they_need_moto() {
    let Some(m) = s3::server(Kind::Moto) else { return };
    m.create_bucket("query");
    let dir = tempdir();
    let (db, model) = sample_db(dir.path(), 6000, 7);
    let url = "s3://query/a.floe";
    assert_code(&run(m.floe(&["export", "-q", p(&db), "-o", url, "--block-size", "16384"])), 0);
    let bytes = m.get("/query/a.floe").expect("the object");
    let a = floe::read::Archive::from_bytes(bytes.as_slice(), "a").unwrap();
    let in_blocks = |r: &(u64, u64)| {
        a.index().blocks.iter().filter(|e| r.0 < e.offset + 52 + u64::from(e.frame_len) && e.offset < r.0 + r.1).count()
    };
    let largest = a.index().blocks.iter().map(|e| 52 + u64::from(e.frame_len)).max().unwrap();
    let ks = "beta";
    let mut checked = 0;
    for (key, value) in model[ks].iter().step_by(500) {
        let mut c = m.floe(&["--log-format", "json", "get", "--hex", url, ks, &hex(key)]);
        c.env("RUST_LOG", "floe::store=trace");
        let o = run(c);
        assert_code(&o, 0);
        assert_eq!(&o.stdout, value);
        let reads = range_reads(&o);
        let data: Vec<_> = reads.iter().filter(|r| in_blocks(r) > 0).collect();
        assert!(reads.len() <= 10, "{} requests: {reads:?}", reads.len());
        assert!(data.len() <= 2 && data.iter().all(|r| in_blocks(r) == 1), "data reads {data:?}");
        assert!(data.iter().map(|r| r.1).sum::<u64>() <= 2 * largest);
        checked += 1;
    }
    assert!(checked >= 3);
    // An absent key: exit 7, "not found", still no more than two blocks.
    let mut c = m.floe(&["--log-format", "json", "get", url, ks, "k000000\u{1}"]);
    c.env("RUST_LOG", "floe::store=trace");
    let o = run(c);
    assert_code(&o, 7);
    assert!(range_reads(&o).iter().filter(|r| in_blocks(r) > 0).count() <= 2);
    // cat --prefix: only the blocks of the range.
    let mut c = m.floe(&["--log-format", "json", "cat", url, "-k", ks, "--prefix", "k5", "--format", "tsv"]);
    c.env("RUST_LOG", "floe::store=trace");
    let o = run(c);
    assert_code(&o, 0);
    let want: Vec<String> = model[ks]
        .iter()
        .filter(|(k, _)| k.starts_with(b"k5"))
        .map(|(k, v)| format!("{ks}\t{}\t{}", hex(k), hex(v)))
        .collect();
    assert_eq!(stdout(&o).lines().collect::<Vec<_>>(), want);
    let blocks_of_ks = a.index().keyspaces[a.keyspace_position(ks).unwrap()].totals.block_count as usize;
    let data = range_reads(&o).iter().filter(|r| in_blocks(r) > 0).count();
    assert!(data < blocks_of_ks / 2 + 2, "cat --prefix read {data} of the keyspace's {blocks_of_ks} blocks");
    // diff against itself (s3:// and a local copy): the same.
    let local = dir.path().join("copy.floe");
    std::fs::write(&local, &bytes).unwrap();
    assert_code(&run(m.floe(&["diff", url, p(&local)])), 0);
}
