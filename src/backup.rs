//! The backup catalog: a repository of snapshots at a URL or in a local
//! directory (format-spec.md, part II "Backup repository").
//!
//! ```text
//! REPO/snapshots/ID.floe                   one archive per snapshot, written once
//! REPO/manifest/00000000000000000042.json  immutable manifest generations; the highest is current
//! REPO/lock.json                           the lease of the job running on the repository
//! ```
//!
//! Publishing is compare-and-swap: a new manifest generation N+1 is created
//! with create-only semantics (S3 `If-None-Match: *`, a no-clobber link on a
//! local file system). A writer that loses the race re-reads generation N+1,
//! reapplies its change and tries N+2, so concurrent writers never lose each
//! other's entries. Every job also holds the lease lock, so normally only one
//! job runs at a time; the compare-and-swap keeps the manifest correct even
//! when a lock is broken while its holder still runs.

use crate::export::{export_database, ExportOptions, ExportSummary};
use crate::import::{import_archive, ImportOptions, ImportSummary};
use crate::inspect::{hex, rfc3339};
use crate::progress::Progress;
use crate::reader::{Archive, VerifyReport};
use crate::store::{Object, Store};
use crate::{Error, Result};
use object_store::path::Path as ObjPath;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The manifest version this floe writes and fully understands.
pub const MANIFEST_VERSION: u64 = 1;
/// Most snapshots a repository's manifest may list (`--keep` at most this).
pub const MAX_SNAPSHOTS: usize = 10_000;
/// A lock's lease; the holder renews it every third of that.
pub const LEASE: Duration = Duration::from_secs(300);
/// Manifest generations kept by gc besides the current one.
pub const KEEP_GENERATIONS: u64 = 2;
/// Attempts at publishing a manifest generation before giving up.
const CAS_ATTEMPTS: usize = 100;

/// Errors of the backup catalog.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// `holder` says which job holds the lock, where, since and until when.
    #[error("repository {repo} is locked by {holder}")]
    Locked { repo: String, holder: String },
    #[error("repository {repo}: manifest generation {generation} has version {version}; this floe writes version {MANIFEST_VERSION} and refuses to {action} (it needs a newer floe)")]
    TooNew { repo: String, generation: u64, version: u64, action: String },
    #[error("repository {repo}: {what} is malformed: {detail}")]
    Malformed { repo: String, what: String, detail: String },
    #[error("repository {repo} has no snapshot {id}")]
    NoSuchSnapshot { repo: String, id: String },
    #[error("snapshot {id} in {repo}: {detail}")]
    Mismatch { repo: String, id: String, detail: String },
    #[error("repository {repo}: {detail}")]
    Invalid { repo: String, detail: String },
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// A repository: a store and the key prefix everything lives under.
pub struct Repo {
    store: Store,
    prefix: ObjPath,
    url: String,
}

/// One parsed manifest generation. `doc` keeps every field, known or not.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub generation: u64,
    pub doc: Map<String, Value>,
}

/// The fields of a snapshot entry that floe uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    pub created_unix: i64,
    pub object: String,
    pub size: u64,
    pub sha256: String,
}

impl Manifest {
    fn empty() -> Manifest {
        let mut doc = Map::new();
        doc.insert("format".into(), json!("floe-backup-manifest"));
        doc.insert("version".into(), json!(MANIFEST_VERSION));
        doc.insert("snapshots".into(), json!([]));
        Manifest { generation: 0, doc }
    }

    pub fn version(&self) -> u64 {
        self.doc.get("version").and_then(Value::as_u64).unwrap_or(0)
    }

    /// The snapshot entries, as stored (unknown fields included).
    pub fn entries(&self) -> &[Value] {
        self.doc.get("snapshots").and_then(Value::as_array).map_or(&[], Vec::as_slice)
    }

    fn entries_mut(&mut self) -> &mut Vec<Value> {
        let v = self.doc.entry("snapshots").or_insert_with(|| json!([]));
        if !v.is_array() {
            *v = json!([]);
        }
        match v {
            Value::Array(a) => a,
            _ => unreachable!("made an array above"),
        }
    }

    /// Parsed snapshot entries, oldest first (creation time, then id).
    pub fn snapshots(&self, repo: &str) -> Result<Vec<Snapshot>> {
        let mut out = self.entries().iter().map(|e| parse_entry(e, repo)).collect::<Result<Vec<_>>>()?;
        out.sort_by(|a, b| (a.created_unix, &a.id).cmp(&(b.created_unix, &b.id)));
        Ok(out)
    }
}

fn parse_entry(e: &Value, repo: &str) -> Result<Snapshot> {
    let bad = |detail: String| {
        Error::from(BackupError::Malformed { repo: repo.into(), what: "a manifest entry".into(), detail })
    };
    let s = |k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bad(format!("field '{k}' is missing or not a string: {e}")))
    };
    let id = s("id")?;
    if !valid_id(&id) {
        return Err(bad(format!("id {id:?} is not a valid snapshot id")));
    }
    let object = s("object")?;
    if object != format!("snapshots/{id}.floe") {
        return Err(bad(format!("snapshot {id}: object {object:?} is not snapshots/{id}.floe")));
    }
    let sha256 = s("sha256")?;
    if sha256.len() != 64 || !sha256.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
        return Err(bad(format!("snapshot {id}: sha256 {sha256:?} is not 64 lowercase hex digits")));
    }
    let created_unix = e
        .get("created_unix")
        .and_then(Value::as_i64)
        .ok_or_else(|| bad(format!("snapshot {id}: created_unix is missing")))?;
    let size = e.get("size").and_then(Value::as_u64).ok_or_else(|| bad(format!("snapshot {id}: size is missing")))?;
    Ok(Snapshot { id, created_unix, object, size, sha256 })
}

/// Snapshot ids: 1–64 of `[0-9A-Za-z._-]`, not starting with a dot.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with('.')
        && id.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

/// A new id: creation time, then 8 hex digits unique to this process and moment.
fn new_id(now: i64) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let h = Sha256::digest(format!("{nanos} {} {}", std::process::id(), hostname()).as_bytes());
    let t = rfc3339(now).replace(['-', ':'], "");
    format!("{t}-{}", hex(&h[..4]))
}

/// A held lease lock; renewed by a background thread, removed on drop.
pub struct Lock {
    repo: Arc<(Store, ObjPath)>,
    token: String,
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.renewer.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        // Remove the lock only if it is still ours (it may have been broken).
        let (store, key) = &*self.repo;
        if let Ok(Some(b)) = store.get(key) {
            if serde_json::from_slice::<Value>(&b)
                .ok()
                .and_then(|v| v.get("token").and_then(Value::as_str).map(str::to_owned))
                .as_deref()
                == Some(&self.token)
            {
                let _ = store.delete(key);
            }
        }
    }
}

impl Repo {
    /// Opens the repository at `url`. A local directory must exist.
    pub fn open(url: &str) -> Result<Repo> {
        Self::open_with(url, false)
    }

    /// Opens the repository at `url`, creating a missing local directory.
    pub fn open_or_create(url: &str) -> Result<Repo> {
        Self::open_with(url, true)
    }

    fn open_with(url: &str, create: bool) -> Result<Repo> {
        let (store, prefix) = Store::at(url, create)?;
        Ok(Repo { store, prefix, url: url.trim_end_matches('/').to_owned() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, rel: &str) -> ObjPath {
        let mut k = self.prefix.clone();
        for part in rel.split('/') {
            k = k.clone().join(part);
        }
        k
    }

    /// The object holding snapshot `id`.
    pub fn snapshot_object(&self, id: &str) -> Object {
        Object { store: self.store.clone(), key: self.key(&format!("snapshots/{id}.floe")) }
    }

    fn manifest_key(&self, generation: u64) -> ObjPath {
        self.key(&format!("manifest/{generation:020}.json"))
    }

    /// Generation numbers of the manifests present, ascending.
    fn generations(&self) -> Result<Vec<u64>> {
        let dir = self.key("manifest");
        let mut out: Vec<u64> = self
            .store
            .list(&dir)?
            .into_iter()
            .filter_map(|(k, _)| {
                k.filename()
                    .and_then(|f| f.strip_suffix(".json"))
                    .filter(|n| n.len() == 20)
                    .and_then(|n| n.parse().ok())
            })
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The current manifest (the highest generation), or an empty one.
    pub fn manifest(&self) -> Result<Manifest> {
        let Some(&g) = self.generations()?.last() else { return Ok(Manifest::empty()) };
        self.read_generation(g)
    }

    fn read_generation(&self, g: u64) -> Result<Manifest> {
        let what = format!("manifest/{g:020}.json");
        let bytes = self.store.get(&self.manifest_key(g))?.ok_or_else(|| BackupError::Invalid {
            repo: self.url.clone(),
            detail: format!("{what} vanished while being read (retry)"),
        })?;
        let doc: Map<String, Value> = serde_json::from_slice(&bytes).map_err(|e| BackupError::Malformed {
            repo: self.url.clone(),
            what: what.clone(),
            detail: e.to_string(),
        })?;
        if doc.get("format").and_then(Value::as_str) != Some("floe-backup-manifest") {
            return Err(BackupError::Malformed {
                repo: self.url.clone(),
                what,
                detail: "\"format\" is not \"floe-backup-manifest\"".into(),
            }
            .into());
        }
        let m = Manifest { generation: g, doc };
        if m.version() == 0 {
            return Err(BackupError::Malformed {
                repo: self.url.clone(),
                what,
                detail: "\"version\" is missing or not a positive integer".into(),
            }
            .into());
        }
        Ok(m)
    }

    /// Applies `change` to the current manifest and publishes it as the next
    /// generation with a create-only write; on a lost race, re-reads and
    /// retries. Returns the published manifest.
    pub fn publish(&self, action: &str, mut change: impl FnMut(&mut Manifest) -> Result<()>) -> Result<Manifest> {
        for _ in 0..CAS_ATTEMPTS {
            let mut m = self.manifest()?;
            if m.version() > MANIFEST_VERSION {
                return Err(BackupError::TooNew {
                    repo: self.url.clone(),
                    generation: m.generation,
                    version: m.version(),
                    action: action.into(),
                }
                .into());
            }
            change(&mut m)?;
            m.generation += 1;
            m.doc.insert("version".into(), json!(MANIFEST_VERSION));
            m.doc.insert("generation".into(), json!(m.generation));
            let body = serde_json::to_vec_pretty(&m.doc)
                .map_err(|e| Error::InvalidArgument(format!("encoding the manifest: {e}")))?;
            if self.store.put(&self.manifest_key(m.generation), body, true)? {
                return Ok(m);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(BackupError::Invalid {
            repo: self.url.clone(),
            detail: format!("gave up publishing after {CAS_ATTEMPTS} conflicting writers"),
        }
        .into())
    }

    /// Takes the repository's lease lock for `job`. A held lock is an error
    /// naming its holder; an expired one is broken only with `break_lock`.
    /// Waits up to `wait` for a held lock to go away.
    pub fn lock(&self, job: &str, break_lock: bool, wait: Duration) -> Result<Lock> {
        let key = self.key("lock.json");
        let token = new_id(now_unix());
        let deadline = std::time::Instant::now() + wait;
        loop {
            let now = now_unix();
            let body = json!({
                "job": job, "host": hostname(), "pid": std::process::id(), "token": token,
                "created_unix": now, "expires_unix": now + LEASE.as_secs() as i64,
            });
            if self.store.put(&key, body.to_string().into_bytes(), true)? {
                return Ok(self.start_renewing(key, token));
            }
            let Some(held) = self.store.get(&key)? else { continue };
            let v: Value = serde_json::from_slice(&held).unwrap_or(Value::Null);
            let expires = v.get("expires_unix").and_then(Value::as_i64).unwrap_or(0);
            let stale = expires < now;
            if stale && break_lock {
                eprintln!("floe: breaking the stale lock of {} (lease expired {})", self.url, rfc3339(expires));
                self.store.delete(&key)?;
                continue;
            }
            if !stale && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                continue;
            }
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_owned();
            let holder = format!(
                "'{}' (host {}, pid {}) since {}, lease until {}; {}",
                s("job"),
                s("host"),
                v.get("pid").and_then(Value::as_u64).unwrap_or(0),
                rfc3339(v.get("created_unix").and_then(Value::as_i64).unwrap_or(0)),
                rfc3339(expires),
                if stale {
                    "the lease has expired: pass --break-lock to break it"
                } else {
                    "wait for it, or pass --wait SECONDS"
                },
            );
            return Err(BackupError::Locked { repo: self.url.clone(), holder }.into());
        }
    }

    fn start_renewing(&self, key: ObjPath, token: String) -> Lock {
        let repo = Arc::new((self.store.clone(), key));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, st, tok) = (repo.clone(), stop.clone(), token.clone());
        let renewer = std::thread::Builder::new()
            .name("floe-lease".into())
            .spawn(move || {
                while !st.load(Ordering::SeqCst) {
                    std::thread::park_timeout(LEASE / 3);
                    if st.load(Ordering::SeqCst) {
                        break;
                    }
                    let (store, key) = &*r;
                    let Ok(Some(b)) = store.get(key) else { break };
                    let mut v: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
                    if v.get("token").and_then(Value::as_str) != Some(&tok) {
                        break; // broken by someone else: the manifest CAS still protects entries
                    }
                    v["expires_unix"] = json!(now_unix() + LEASE.as_secs() as i64);
                    let _ = store.put(key, v.to_string().into_bytes(), false);
                }
            })
            .ok();
        Lock { repo, token, stop, renewer }
    }

    /// Streams the object through SHA-256: (hex digest, size).
    fn hash_object(&self, o: &Object) -> Result<(String, u64)> {
        let src = o.source()?;
        let mut h = Sha256::new();
        let mut n = 0u64;
        let size = crate::reader::Source::size(&src);
        const CHUNK: u64 = 8 << 20;
        while n < size {
            let len = CHUNK.min(size - n);
            let b = crate::reader::Source::fetch(&src, n, len).wait()?;
            if b.len() as u64 != len {
                return Err(Error::io(
                    format!("reading {}", o.describe()),
                    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short read"),
                ));
            }
            h.update(&b);
            n += len;
        }
        Ok((hex(&h.finalize()), n))
    }

    /// Checks snapshot `s`'s object against the manifest: size and SHA-256.
    fn check_checksum(&self, s: &Snapshot) -> Result<Object> {
        let o = self.snapshot_object(&s.id);
        let (sha, size) = self.hash_object(&o)?;
        if size != s.size || sha != s.sha256 {
            return Err(BackupError::Mismatch {
                repo: self.url.clone(),
                id: s.id.clone(),
                detail: format!(
                    "{} has {size} bytes with SHA-256 {sha}; the manifest says {} bytes with SHA-256 {}",
                    o.describe(),
                    s.size,
                    s.sha256
                ),
            }
            .into());
        }
        Ok(o)
    }

    fn find(&self, m: &Manifest, id: &str) -> Result<Snapshot> {
        m.snapshots(&self.url)?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| BackupError::NoSuchSnapshot { repo: self.url.clone(), id: id.into() }.into())
    }
}

/// Settings of `backup create`.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub export: ExportOptions,
    pub remarks: Option<String>,
    /// Keep only the newest N snapshots after publishing (1..=MAX_SNAPSHOTS).
    pub keep: Option<usize>,
    pub break_lock: bool,
    pub wait: Duration,
}

/// What `backup create` did.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub size: u64,
    pub sha256: String,
    pub export: ExportSummary,
    pub generation: u64,
    /// Snapshots removed by retention.
    pub removed: Vec<String>,
}

/// A `Write` that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    sha: Sha256,
    n: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `floe backup create`: exports the database at `db_dir` into the
/// repository, then publishes it in the manifest, then applies retention.
pub fn create(repo: &Repo, db_dir: &Path, opts: &CreateOptions, progress: &dyn Progress) -> Result<Created> {
    if let Some(k) = opts.keep {
        if k == 0 || k > MAX_SNAPSHOTS {
            return Err(Error::InvalidArgument(format!("--keep must be 1 to {MAX_SNAPSHOTS}")));
        }
    }
    let _lock = repo.lock("backup create", opts.break_lock, opts.wait)?;
    let current = repo.manifest()?;
    if current.version() > MANIFEST_VERSION {
        return Err(BackupError::TooNew {
            repo: repo.url.clone(),
            generation: current.generation,
            version: current.version(),
            action: "add a snapshot".into(),
        }
        .into());
    }
    if opts.keep.is_none() && current.entries().len() >= MAX_SNAPSHOTS {
        return Err(BackupError::Invalid {
            repo: repo.url.clone(),
            detail: format!(
                "the repository holds {MAX_SNAPSHOTS} snapshots, the most it may; pass --keep N or delete some"
            ),
        }
        .into());
    }
    let db = crate::engine::open_existing(db_dir)?;
    let created = now_unix();
    let id = new_id(created);
    let object = repo.snapshot_object(&id);
    // Upload first; the snapshot exists for readers only once the manifest lists it.
    let up = Hashing { inner: std::io::BufWriter::with_capacity(1 << 20, object.writer()?), sha: Sha256::new(), n: 0 };
    let (up, export) = export_database(&db, up, &opts.export, progress)?;
    drop(db);
    let sha256 = hex(&up.sha.clone().finalize());
    let size = up.n;
    let writer =
        up.inner.into_inner().map_err(|e| Error::io(format!("uploading {}", object.describe()), e.into_error()))?;
    writer.finish()?;
    // Read back what the store holds (trailer, index, header) for the entry.
    let a = Archive::from_bytes(object.source()?, &object.describe())?;
    if a.len() != size {
        return Err(BackupError::Mismatch {
            repo: repo.url.clone(),
            id,
            detail: format!("uploaded {size} bytes but the store holds {}", a.len()),
        }
        .into());
    }
    let keyspaces: Vec<Value> = a
        .keyspaces()
        .iter()
        .zip(&a.index().keyspaces)
        .map(|(k, i)| json!({"name": k.name, "records": i.totals.record_count}))
        .collect();
    let h = a.header();
    let mut entry = json!({
        "id": id, "created_unix": created, "created": rfc3339(created), "snapshot_seqno": h.snapshot_seqno,
        "floe_version": env!("CARGO_PKG_VERSION"), "format_version": format!("{}.{}", h.format_major, h.format_minor),
        "object": format!("snapshots/{id}.floe"), "size": size, "sha256": sha256, "keyspaces": keyspaces,
    });
    if let Some(r) = &opts.remarks {
        entry["remarks"] = json!(r);
    }
    let m = repo.publish("add a snapshot", |m| {
        m.entries_mut().push(entry.clone());
        Ok(())
    })?;
    let mut removed = Vec::new();
    if let Some(keep) = opts.keep {
        let snaps = m.snapshots(&repo.url)?;
        if snaps.len() > keep {
            let old: Vec<String> = snaps[..snaps.len() - keep].iter().map(|s| s.id.clone()).collect();
            remove(repo, &old)?;
            removed = old;
        }
    }
    Ok(Created { id, size, sha256, export, generation: m.generation, removed })
}

/// Removes `ids` from the manifest (published first), then their objects.
fn remove(repo: &Repo, ids: &[String]) -> Result<u64> {
    let m = repo.publish("delete snapshots", |m| {
        m.entries_mut().retain(|e| !e.get("id").and_then(Value::as_str).is_some_and(|id| ids.iter().any(|x| x == id)));
        Ok(())
    })?;
    for id in ids {
        repo.store.delete(&repo.snapshot_object(id).key)?;
    }
    Ok(m.generation)
}

/// `floe backup delete`: manifest entries first, then the objects.
pub fn delete(repo: &Repo, ids: &[String], break_lock: bool, wait: Duration) -> Result<u64> {
    let _lock = repo.lock("backup delete", break_lock, wait)?;
    let m = repo.manifest()?;
    for id in ids {
        repo.find(&m, id)?;
    }
    remove(repo, ids)
}

/// `floe backup list`: the current manifest.
pub fn list(repo: &Repo) -> Result<Manifest> {
    repo.manifest()
}

/// `floe backup verify`: each snapshot's size and SHA-256 against the
/// manifest, then every check of `floe verify` (all snapshots when `ids` is empty).
pub fn verify(
    repo: &Repo,
    ids: &[String],
    threads: usize,
    progress: &dyn Progress,
) -> Result<Vec<(String, VerifyReport)>> {
    let m = repo.manifest()?;
    let snaps = if ids.is_empty() {
        m.snapshots(&repo.url)?
    } else {
        ids.iter().map(|id| repo.find(&m, id)).collect::<Result<Vec<_>>>()?
    };
    let mut out = Vec::new();
    for s in snaps {
        let o = repo.check_checksum(&s)?;
        let a = Archive::from_bytes(o.source()?, &o.describe())?;
        out.push((s.id.clone(), a.verify_with(threads, false, progress)?));
    }
    Ok(out)
}

/// `floe backup restore`: checks the snapshot against the manifest's
/// checksum, then imports it atomically (every check of `floe import`).
pub fn restore(
    repo: &Repo,
    id: &str,
    db_dir: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportSummary> {
    let m = repo.manifest()?;
    let s = repo.find(&m, id)?;
    let o = repo.check_checksum(&s)?;
    let a = Archive::from_bytes(o.source()?, &o.describe())?;
    let mut opts = opts.clone();
    if let Ok(crate::store::Location::Local(dir)) = crate::store::Location::parse(repo.url()) {
        opts.protect.push(dir); // --replace must not swap away the repository being read
    }
    import_archive(&a, db_dir, &opts, progress)
}

/// What gc removed.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// Snapshot objects no manifest entry references (left by crashes).
    pub orphans: Vec<String>,
    /// Old manifest generations pruned.
    pub generations: u64,
}

/// `floe backup gc`: removes objects under `snapshots/` that the current
/// manifest does not reference, and manifest generations older than the
/// current one minus [`KEEP_GENERATIONS`]. Runs under the lock, so no create
/// is uploading meanwhile.
pub fn gc(repo: &Repo, break_lock: bool, wait: Duration) -> Result<GcReport> {
    let _lock = repo.lock("backup gc", break_lock, wait)?;
    let m = repo.manifest()?;
    if m.version() > MANIFEST_VERSION {
        return Err(BackupError::TooNew {
            repo: repo.url.clone(),
            generation: m.generation,
            version: m.version(),
            action: "collect garbage".into(),
        }
        .into());
    }
    let keep: std::collections::BTreeSet<String> = m.snapshots(&repo.url)?.into_iter().map(|s| s.object).collect();
    let mut report = GcReport::default();
    let dir = repo.key("snapshots");
    for (k, _) in repo.store.list(&dir)? {
        let rel =
            k.as_ref().strip_prefix(repo.prefix.as_ref()).unwrap_or(k.as_ref()).trim_start_matches('/').to_owned();
        if !keep.contains(&rel) {
            repo.store.delete(&k)?;
            report.orphans.push(rel);
        }
    }
    for g in repo.generations()? {
        if g + KEEP_GENERATIONS < m.generation {
            repo.store.delete(&repo.manifest_key(g))?;
            report.generations += 1;
        }
    }
    Ok(report)
}
