//! Helpers shared by the integration tests: an in-memory model of a database,
//! building fjall databases from it and reading them back, exporting to bytes,
//! and file-system checks for the atomicity guarantees.
#![allow(dead_code)]

use fjall::{Database, KeyspaceCreateOptions, KvSeparationOptions, Readable};
use floe::export::{export_database, ExportOptions};
use floe::progress::NoProgress;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A scratch directory. fjall and floe fsync a lot, which on a real disk makes
/// tests with many keyspaces slow; by default scratch space is on tmpfs
/// (`/dev/shm`) when available. `FLOE_TEST_TMPDIR` overrides the location
/// (set it to a disk path to exercise real fsyncs).
pub fn tempdir() -> tempfile::TempDir {
    if let Some(d) = std::env::var_os("FLOE_TEST_TMPDIR") {
        return tempfile::tempdir_in(d).expect("FLOE_TEST_TMPDIR is not usable");
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().expect("temporary directory")
}

/// A scratch directory on the default (disk-backed) temporary location, for
/// tests about durable file-system behaviour.
pub fn disk_tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temporary directory")
}

/// keyspace name -> (key -> value), both in byte order like the archive.
pub type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Opens (or creates) a fjall database.
pub fn open_db(path: &Path) -> Database {
    Database::builder(path).open().unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// Creates a database at `path` holding `model`; keyspaces named in `kv_sep`
/// use key-value separation.
pub fn create_db(path: &Path, model: &Model, kv_sep: &BTreeSet<String>) -> Database {
    let db = open_db(path);
    fill_db(&db, model, kv_sep);
    db
}

/// Writes `model` into an open database.
pub fn fill_db(db: &Database, model: &Model, kv_sep: &BTreeSet<String>) {
    for (name, recs) in model {
        let sep = kv_sep.contains(name);
        let ks = db
            .keyspace(name, || {
                if sep {
                    KeyspaceCreateOptions::default().with_kv_separation(Some(KvSeparationOptions::default()))
                } else {
                    KeyspaceCreateOptions::default()
                }
            })
            .unwrap();
        for (k, v) in recs {
            ks.insert(k.clone(), v.clone()).unwrap();
        }
    }
}

/// Everything a database holds, read from one snapshot.
pub fn read_db(db: &Database) -> Model {
    let snap = db.snapshot();
    let mut out = Model::new();
    for name in floe::engine::keyspace_names(db) {
        let ks = db.keyspace(&name, KeyspaceCreateOptions::default).unwrap();
        let mut recs = BTreeMap::new();
        for item in snap.iter(&ks) {
            let (k, v) = item.into_inner().unwrap();
            recs.insert(k.to_vec(), v.to_vec());
        }
        out.insert(name, recs);
    }
    out
}

/// Opens the database at `path`, reads it, closes it.
pub fn read_db_at(path: &Path) -> Model {
    let db = open_db(path);
    read_db(&db)
}

/// True if the keyspace `name` of `db` uses key-value separation.
pub fn is_kv_separated(db: &Database, name: &str) -> bool {
    let ks = db.keyspace(name, KeyspaceCreateOptions::default).unwrap();
    floe::engine::options_of(&ks).kv_separation.is_some()
}

/// Deterministic export options: fixed creation time, given block size and threads.
pub fn opts(block_size: u32, threads: usize) -> ExportOptions {
    {
        let mut o = ExportOptions::default();
        o.level = 3;
        o.threads = threads;
        o.keyspaces = None;
        o.block_size = block_size;
        o.created_unix = Some(1_700_000_000);
        o
    }
}

/// Exports an open database into memory.
pub fn export_bytes(db: &Database, o: &ExportOptions) -> Vec<u8> {
    let (bytes, _summary) = export_database(db, Vec::new(), o, &NoProgress).expect("export");
    bytes
}

/// Short human description of a model difference (for assertion messages).
pub fn diff_models(a: &Model, b: &Model) -> Option<String> {
    if a == b {
        return None;
    }
    let ka: Vec<&String> = a.keys().collect();
    let kb: Vec<&String> = b.keys().collect();
    if ka != kb {
        return Some(format!("keyspaces differ: {ka:?} vs {kb:?}"));
    }
    for (name, ra) in a {
        let rb = &b[name];
        if ra.len() != rb.len() {
            return Some(format!("keyspace {name:?}: {} vs {} records", ra.len(), rb.len()));
        }
        for ((k1, v1), (k2, v2)) in ra.iter().zip(rb) {
            if k1 != k2 {
                return Some(format!(
                    "keyspace {name:?}: key {:02x?} vs {:02x?}",
                    &k1[..k1.len().min(16)],
                    &k2[..k2.len().min(16)]
                ));
            }
            if v1 != v2 {
                return Some(format!(
                    "keyspace {name:?}: key {:02x?}: values of {} vs {} bytes differ",
                    &k1[..k1.len().min(16)],
                    v1.len(),
                    v2.len()
                ));
            }
        }
    }
    Some("models differ".into())
}

/// Asserts two models are equal with a readable message.
#[track_caller]
pub fn assert_models_eq(got: &Model, want: &Model) {
    if let Some(d) = diff_models(got, want) {
        panic!("database contents differ: {d}");
    }
}

/// Names in a directory, sorted.
pub fn dir_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Asserts that no floe temporary (`.floe-tmp-`/`.floe-old-`) remains in `dir`.
#[track_caller]
pub fn assert_no_temporaries(dir: &Path) {
    let left = temporaries(dir);
    assert!(left.is_empty(), "temporaries left behind in {}: {left:?}", dir.display());
}

/// A deterministic model with several keyspaces, an empty one, and some
/// values that span 4 KiB blocks. About `n` records in total.
pub fn small_model(n: usize, seed: u64) -> Model {
    let mut rng = floe::sample::Rng(seed);
    let mut m = Model::new();
    let names = ["alpha", "beta", "empty", "gamma ünïcødé"];
    for name in names {
        m.insert(name.to_owned(), BTreeMap::new());
    }
    for i in 0..n {
        let name = match i % 3 {
            0 => "alpha",
            1 => "beta",
            _ => "gamma ünïcødé",
        };
        let mut key = format!("k{:06}", rng.below(1_000_000)).into_bytes();
        key.push(rng.below(256) as u8);
        let len = match rng.below(20) {
            0 => 0,
            1 => 5_000 + rng.below(6_000) as usize,
            _ => rng.below(120) as usize,
        };
        let mut v = floe::sample::texty(&mut rng, len / 2);
        let mut noise = vec![0u8; len - v.len()];
        rng.fill(&mut noise);
        v.extend_from_slice(&noise);
        m.get_mut(name).unwrap().insert(key, v);
    }
    m
}

/// Path of the CLI binary under test.
pub fn floe_bin() -> &'static str {
    env!("CARGO_BIN_EXE_floe")
}

/// Runs the CLI with `args` (quiet progress, stdin closed) and returns its output.
pub fn floe(args: &[&str]) -> Output {
    Command::new(floe_bin())
        .args(args)
        .stdin(Stdio::null())
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("running floe")
}

/// Runs the CLI with `stdin` fed from a file.
pub fn floe_stdin(args: &[&str], stdin_file: &Path) -> Output {
    let f = std::fs::File::open(stdin_file).unwrap();
    Command::new(floe_bin()).args(args).stdin(Stdio::from(f)).output().expect("running floe")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit code, or a panic with the output if the process was killed.
#[track_caller]
pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or_else(|| panic!("floe was killed: {:?}\nstderr: {}", o.status, stderr(o)))
}

/// Asserts an exit code, showing stderr on mismatch.
#[track_caller]
pub fn assert_code(o: &Output, want: i32) {
    assert_eq!(code(o), want, "unexpected exit code; stdout: {}\nstderr: {}", stdout(o), stderr(o));
}

pub fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Writes `model` to a new database at `dir` and closes it.
pub fn make_db_dir(dir: &Path, model: &Model, kv_sep: &BTreeSet<String>) -> PathBuf {
    let db = create_db(dir, model, kv_sep);
    db.persist(fjall::PersistMode::SyncAll).unwrap();
    drop(db);
    dir.to_path_buf()
}

/// FNV-1a 64 over a keyspace's records: (u16 key_len, key, u32 value_len, value)*.
/// Independent of floe's own code, so it can pin down golden contents.
pub fn digest(recs: &BTreeMap<Vec<u8>, Vec<u8>>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: &[u8]| {
        for &x in b {
            h ^= u64::from(x);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (k, v) in recs {
        eat(&(k.len() as u16).to_le_bytes());
        eat(k);
        eat(&(v.len() as u32).to_le_bytes());
        eat(v);
    }
    format!("{h:016x}")
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes `model` with the low-level writer (no fjall). `options` gives
/// keyspace options by name (default otherwise). With `extra = Some((tag,
/// flags))`, an extension section is written before the first block and
/// after every keyspace (format-spec §2 allows them anywhere between the
/// keyspace table and the index, except inside a block).
pub fn write_archive(
    model: &Model,
    block_size: u32,
    options: &BTreeMap<String, floe::format::options::KeyspaceOptions>,
    extra: Option<([u8; 4], u32)>,
) -> Vec<u8> {
    write_archive_with(model, block_size, options, extra, Some(256 << 20))
}

/// As [`write_archive`]; with `key_index` `None` the archive has no key
/// index (format-spec §8.1 `key_index_count` 0), as a 1.0 archive; with
/// `Some(limit)` its key index parts are cut at `limit` bytes.
pub fn write_archive_with(
    model: &Model,
    block_size: u32,
    options: &BTreeMap<String, floe::format::options::KeyspaceOptions>,
    extra: Option<([u8; 4], u32)>,
    key_index: Option<u64>,
) -> Vec<u8> {
    use floe::format::keyspace_table::KeyspaceEntry;
    use floe::format::record::{BlockBuilder, RawBlock};
    use floe::write::{ArchiveWriter, EncodedBlock};
    let entries: Vec<KeyspaceEntry> = model
        .keys()
        .map(|n| KeyspaceEntry { name: n.clone(), options: options.get(n).cloned().unwrap_or_default() })
        .collect();
    let mut header = floe::format::header::Header::new(3, block_size, 0);
    header.created_unix = 1_700_000_000;
    let mut w = ArchiveWriter::new(Vec::new(), header, &entries).unwrap();
    match key_index {
        Some(limit) => w.set_key_index_part_limit(limit),
        None => w.set_key_index(false),
    }
    let mut c = floe::format::block::BlockCompressor::new(3).unwrap();
    if let Some((tag, flags)) = extra {
        w.write_extra_section(tag, flags, b"an extension written before the first block").unwrap();
    }
    for (k, (name, recs)) in model.iter().enumerate() {
        let mut blocks = Vec::new();
        let mut b = BlockBuilder::new(k as u32, name, block_size);
        let mut emit = |r: RawBlock| -> floe::Result<()> {
            blocks.push(r);
            Ok(())
        };
        for (key, v) in recs {
            b.push(key, v, &mut emit).unwrap();
        }
        b.finish(&mut emit).unwrap();
        for r in blocks {
            w.write_block(&EncodedBlock::compress(r, &mut c).unwrap()).unwrap();
        }
        if let Some((tag, flags)) = extra {
            w.write_extra_section(tag, flags, format!("after keyspace {name}").as_bytes()).unwrap();
        }
    }
    w.finish().unwrap().0
}

/// Replaces the header section of `archive` by `f(header)` re-encoded (with a
/// valid CRC). The header must keep its size unless `allow_resize`; a resized
/// header shifts every offset, so only header-first checks stay meaningful.
pub fn rewrite_header(archive: &[u8], f: impl FnOnce(&mut floe::format::header::Header)) -> Vec<u8> {
    use floe::format::section::{decode_section, encode_section, tags, FLAG_REQUIRED};
    let sec = decode_section(archive, 0).unwrap();
    let mut h = floe::format::header::Header::decode(&sec).unwrap();
    let old_len = sec.total_len as usize;
    f(&mut h);
    let new = encode_section(tags::HEADER, FLAG_REQUIRED, &h.encode());
    assert_eq!(new.len(), old_len, "header size changed");
    let mut out = new;
    out.extend_from_slice(&archive[old_len..]);
    out
}

/// Replaces the header section by one with this raw body (CRC made valid).
pub fn replace_header_body(archive: &[u8], body: &[u8]) -> Vec<u8> {
    use floe::format::section::{decode_section, encode_section, tags, FLAG_REQUIRED};
    let old_len = decode_section(archive, 0).unwrap().total_len as usize;
    let mut out = encode_section(tags::HEADER, FLAG_REQUIRED, body);
    out.extend_from_slice(&archive[old_len..]);
    out
}

/// FNV-1a 64 of a byte string (for "unchanged" checks).
pub fn fnv64(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// FNV-1a 64 of a file's contents.
pub fn file_hash(path: &Path) -> u64 {
    fnv64(&std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display())))
}

/// Every regular file under `root` (relative path -> content hash), except
/// those for which `skip(relative path)` is true. Directories are listed too
/// (hash 0), so a created or removed directory shows up.
pub fn tree_digest(root: &Path, skip: &dyn Fn(&Path) -> bool) -> BTreeMap<PathBuf, u64> {
    fn walk(root: &Path, dir: &Path, skip: &dyn Fn(&Path) -> bool, out: &mut BTreeMap<PathBuf, u64>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if skip(&rel) {
                continue;
            }
            if path.is_dir() {
                out.insert(rel, 0);
                walk(root, &path, skip, out);
            } else {
                out.insert(rel, file_hash(&path));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out);
    out
}

/// Waits until process `pid` has installed a handler for `sig` (SigCgt in
/// /proc/PID/status), i.e. the CLI is past its startup.
#[cfg(target_os = "linux")]
pub fn wait_for_handler(pid: u32, sig: i32) {
    let t = std::time::Instant::now();
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
            .unwrap_or(0);
        if caught & (1 << (sig - 1)) != 0 {
            return;
        }
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "floe never installed a handler for signal {sig}");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Sends `sig` to our own child process `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a child this test spawned and has not reaped yet.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "kill({pid}, {sig})");
}

/// Names of floe temporaries (`.floe-tmp-` / `.floe-old-`) in `dir`.
pub fn temporaries(dir: &Path) -> Vec<String> {
    dir_names(dir).into_iter().filter(|n| n.contains(".floe-tmp") || n.contains(".floe-old")).collect()
}

/// What "the source database is unchanged" compares: the contents of every
/// file and directory under the database directory except fjall's own
/// bookkeeping, which fjall rewrites or garbage-collects whenever it opens a
/// database, on its own schedule: the `lock` file, the journals (`*.jnl` in
/// the top directory), and each keyspace's LSM version manifests (`vN`) and
/// their `current` pointer (lsm-tree deletes superseded manifests on open and
/// may write a new one listing the same tables). Everything else must stay
/// byte-identical and nothing may appear or disappear: the `version` file,
/// every table and every blob file.
pub fn db_data_files(db: &Path) -> BTreeMap<PathBuf, u64> {
    let manifest = |rel: &Path| -> bool {
        let Some(name) = rel.file_name().and_then(|n| n.to_str()) else { return false };
        let in_keyspace = rel.parent().and_then(|d| d.parent()) == Some(Path::new("keyspaces"));
        in_keyspace
            && (name == "current"
                || name.strip_prefix('v').is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())))
    };
    tree_digest(db, &|rel: &Path| {
        rel == Path::new("lock")
            || (rel.parent() == Some(Path::new("")) && rel.extension().is_some_and(|e| e == "jnl"))
            || manifest(rel)
    })
}

/// Runs every reader over `bytes`; returns the error messages (one per reader)
/// or panics naming the first reader that accepted the bytes.
#[track_caller]
pub fn all_readers_refuse(bytes: &[u8], what: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let ra = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        floe::read::Archive::from_bytes(bytes, "x").and_then(|a| a.verify(false, &floe::progress::NoProgress))
    }));
    let rq = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        floe::read::Archive::from_bytes(bytes, "x").and_then(|a| a.verify(true, &floe::progress::NoProgress))
    }));
    let rr = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        floe::read::Archive::from_bytes(Ranged::new(bytes), "x")
            .and_then(|a| a.verify(false, &floe::progress::NoProgress))
    }));
    let rrq = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        floe::read::Archive::from_bytes(Ranged::new(bytes), "x")
            .and_then(|a| a.verify(true, &floe::progress::NoProgress))
    }));
    let rs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        floe::read::verify_stream(bytes, "x", false, &floe::progress::NoProgress)
    }));
    let rsq = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        floe::read::verify_stream(bytes, "x", true, &floe::progress::NoProgress)
    }));
    let readers = [
        ("random-access verify", ra),
        ("random-access verify --quick", rq),
        ("ranged verify", rr),
        ("ranged verify --quick", rrq),
        ("stream verify", rs),
        ("stream verify --quick", rsq),
    ];
    for (reader, r) in readers {
        match r {
            Err(_) => panic!("{what}: {reader} panicked"),
            Ok(Ok(rep)) => panic!("{what}: {reader} accepted the archive: {rep:?}"),
            Ok(Err(e)) => {
                let msg = e.to_string();
                assert!(matches!(e, floe::Error::Archive { .. }), "{what}: {reader}: not an archive error: {msg}");
                assert!(msg.contains("offset"), "{what}: {reader}: message does not name an offset: {msg}");
                errs.push(msg);
            }
        }
    }
    errs
}

/// Imports `bytes` from a file and from a stream; both must fail and leave nothing.
#[track_caller]
pub fn imports_fail_cleanly(bytes: &[u8], what: &str) {
    import_fails_cleanly(bytes, what, true, true);
}

/// Imports `bytes` from a file (`file`) and/or from a stream (`stream`);
/// each must fail with an archive error and leave nothing behind.
#[track_caller]
pub fn import_fails_cleanly(bytes: &[u8], what: &str, file: bool, stream: bool) {
    let dir = tempdir();
    let path = dir.path().join("bad.floe");
    std::fs::write(&path, bytes).unwrap();
    let target = dir.path().join("db");
    let np = &floe::progress::NoProgress;
    type Import<'a> = &'a dyn Fn() -> floe::Result<floe::import::ImportSummary>;
    let runs: [(&str, bool, Import<'_>); 2] = [
        ("import_file", file, &|| floe::import::import_file(&path, &target, &Default::default(), np)),
        ("import_stream", stream, &|| floe::import::import_stream(bytes, "stdin", &target, &Default::default(), np)),
    ];
    for (name, run, f) in runs {
        if !run {
            continue;
        }
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Err(_) => panic!("{what}: {name} panicked"),
            Ok(Ok(s)) => panic!("{what}: {name} succeeded: {s:?}"),
            Ok(Err(e)) => assert!(matches!(e, floe::Error::Archive { .. }), "{what}: {name}: {e}"),
        }
        check_nothing_left(dir.path(), &target, what);
    }
    assert!(std::fs::read(&path).unwrap() == bytes, "{what}: the failed import modified the archive");
}

#[track_caller]
pub fn check_nothing_left(dir: &Path, target: &Path, what: &str) {
    assert!(!target.exists(), "{what}: failed import left the target {}", target.display());
    assert_eq!(dir_names(dir), vec!["bad.floe".to_string()], "{what}: failed import left files behind");
}

/// An archive read by ranges, as from an object store: the reader sees no
/// bytes in memory and fetches each range it needs (floe::read::Source).
/// Optionally counts the bytes fetched.
pub struct Ranged<'a> {
    pub bytes: &'a [u8],
    pub fetched: Option<&'a std::sync::atomic::AtomicU64>,
    /// Every read (start, length), when logging.
    pub log: Option<&'a std::sync::Mutex<Vec<(u64, u64)>>>,
}

impl<'a> Ranged<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Ranged { bytes, fetched: None, log: None }
    }
    pub fn counting(bytes: &'a [u8], fetched: &'a std::sync::atomic::AtomicU64) -> Self {
        Ranged { bytes, fetched: Some(fetched), log: None }
    }
    pub fn logging(bytes: &'a [u8], log: &'a std::sync::Mutex<Vec<(u64, u64)>>) -> Self {
        Ranged { bytes, fetched: None, log: Some(log) }
    }
}

impl floe::read::Source for Ranged<'_> {
    fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
    fn fetch(&self, start: u64, len: u64) -> floe::read::Fetch {
        if let Some(f) = self.fetched {
            f.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(log) = self.log {
            log.lock().unwrap().push((start, len));
        }
        let b = bytes::Bytes::copy_from_slice(&self.bytes[start as usize..(start + len) as usize]);
        floe::read::Fetch::new(move || Ok(b))
    }
}

/// Runs `sh -c cmd` on a pseudo-terminal 120 columns wide (stdin, stdout and
/// stderr all the terminal unless `cmd` redirects them) and returns
/// everything written to the terminal, and the exit code.
pub fn on_terminal(cmd: &str) -> (String, i32) {
    assert!(
        Command::new("sh").args(["-c", "command -v script"]).output().is_ok_and(|o| o.status.success()),
        "these tests need `script` from util-linux (apt-get install util-linux)"
    );
    let full = format!("stty cols 120 rows 40; {cmd}");
    let o = Command::new("script")
        .args(["-qfec", &full, "/dev/null"])
        .stdin(Stdio::null())
        .env_remove("RUST_LOG")
        .output()
        .expect("running script");
    (String::from_utf8_lossy(&o.stdout).into_owned(), o.status.code().unwrap_or(-1))
}
