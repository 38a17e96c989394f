//! The backup catalog: a repository of snapshots at a URL or in a local
//! directory (format-spec.md, part II "Backup repository").
//!
//! ```text
//! REPO/floe-repository.json                the marker: this location is a floe repository
//! REPO/snapshots/ID.floe                   one archive per snapshot, written once
//! REPO/manifest/00000000000000000042.json  immutable manifest generations; the highest is current
//! REPO/locks/00000000000000000007.json     immutable lock generations; the highest is the lock's state
//! ```
//!
//! Publishing is compare-and-swap: a new manifest generation N+1 is created
//! with create-only semantics (S3 `If-None-Match: *`, a no-clobber link on a
//! local file system). A writer that loses the race re-reads generation N+1,
//! reapplies its change and tries N+2, so concurrent writers never lose each
//! other's entries. The lock works the same way (every take, renewal,
//! release and break is a create-only write of the next lock generation), so
//! two jobs breaking a stale lock cannot both win.
//!
//! floe deletes only what it can prove it created: names of the exact forms
//! of format-spec.md II.1, in a location recognised as a repository (II.0),
//! never following a symbolic link or descending into a folder.

use crate::error::BackupError;
use crate::export::{export_database, ExportOptions, ExportSummary};
use crate::import::{import_archive, ImportOptions, ImportSummary};
use crate::progress::Progress;
use crate::read::{Archive, VerifyReport};
use crate::store::{EntryKind, Object, Store};
use crate::util::text::{escape, hex, rfc3339};
use crate::{Error, Result};
use object_store::path::Path as ObjPath;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The manifest version this floe writes and fully understands.
pub const MANIFEST_VERSION: u64 = 1;
/// The repository marker's name (format-spec.md II.0).
pub const MARKER: &str = "floe-repository.json";
/// The repository marker version this floe writes.
pub const REPOSITORY_VERSION: u64 = 1;
/// Most snapshots a repository's manifest may list (`--keep` at most this).
pub const MAX_SNAPSHOTS: usize = 10_000;
/// A lock's lease; the holder renews it every third of that.
pub const LEASE: Duration = Duration::from_secs(300);
/// Manifest generations kept by gc besides the current one.
pub const KEEP_GENERATIONS: u64 = 2;
/// gc's default grace period: younger unreferenced objects are kept.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);
/// Attempts at publishing a manifest generation before giving up.
const CAS_ATTEMPTS: usize = 100;

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_default()
}

fn hostname() -> String {
    let h = read_trimmed("/proc/sys/kernel/hostname");
    if h.is_empty() {
        "unknown".into()
    } else {
        h
    }
}

fn boot_id() -> String {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

fn pid_ns() -> String {
    std::fs::read_link("/proc/self/ns/pid").map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}

/// A process's start time (field 22 of `/proc/PID/stat`, clock ticks since
/// boot), or `None` when there is no such process.
fn process_start(pid: u64) -> Option<u64> {
    if pid == 0 || pid > i32::MAX as u64 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(22 - 3).and_then(|f| f.parse().ok())
}

/// Deserializes a present field as `T` (so `null` is refused); with
/// `#[serde(default)]` a missing one is `None`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> std::result::Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// One manifest generation's document (format-spec.md II.2). Fields floe
/// does not know are kept in `extra` and written back unchanged.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestDoc {
    /// `"floe-backup-manifest"`.
    pub format: String,
    /// The manifest version (at least 1).
    pub version: u64,
    /// The generation, as in the object's name.
    pub generation: u64,
    /// The published snapshots, in publication order.
    pub snapshots: Vec<Entry>,
    /// Fields floe does not know, kept and written back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A snapshot entry of the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The snapshot id, unique within the manifest.
    pub id: String,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: i64,
    /// `created_unix` as RFC 3339 UTC (informational).
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The archive header's `snapshot_seqno`.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub snapshot_seqno: Option<u64>,
    /// Version of the floe that created it.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub floe_version: Option<String>,
    /// Archive format `"MAJOR.MINOR"` from its header.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub format_version: Option<String>,
    /// `"snapshots/ID.floe"`.
    pub object: String,
    /// The archive object's size in bytes.
    pub size: u64,
    /// SHA-256 of the archive object, 64 lowercase hex digits.
    pub sha256: String,
    /// The keyspaces, in table order.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub keyspaces: Option<Vec<KeyspaceEntry>>,
    /// Free text given at creation.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub remarks: Option<String>,
    /// Fields floe does not know, kept and written back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A keyspace of a snapshot entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyspaceEntry {
    /// The keyspace's name.
    pub name: String,
    /// Its records.
    pub records: u64,
    /// Fields floe does not know, kept and written back unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// The repository marker (format-spec.md II.0).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MarkerDoc {
    format: String,
    version: u64,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// Checks every rule of format-spec.md II.2 that the types do not.
fn validate(doc: &ManifestDoc, g: u64) -> std::result::Result<(), String> {
    if doc.format != "floe-backup-manifest" {
        return Err(format!("\"format\" is {:?}, not \"floe-backup-manifest\"", escape(&doc.format)));
    }
    if doc.version == 0 {
        return Err("\"version\" is 0; versions start at 1".into());
    }
    if doc.generation != g {
        return Err(format!("\"generation\" is {}, but the object's name says {g}", doc.generation));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, e) in doc.snapshots.iter().enumerate() {
        if !valid_id(&e.id) {
            return Err(format!("snapshots[{i}]: id {:?} is not a valid snapshot id", escape(&e.id)));
        }
        if !seen.insert(e.id.as_str()) {
            return Err(format!("snapshots[{i}]: id {} appears more than once", e.id));
        }
        if e.object != format!("snapshots/{}.floe", e.id) {
            return Err(format!(
                "snapshots[{i}] ({}): object {:?} is not snapshots/{}.floe",
                e.id,
                escape(&e.object),
                e.id
            ));
        }
        if e.sha256.len() != 64 || !e.sha256.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
            return Err(format!(
                "snapshots[{i}] ({}): sha256 {:?} is not 64 lowercase hex digits",
                e.id,
                escape(&e.sha256)
            ));
        }
    }
    Ok(())
}

/// A repository: a store and the key prefix everything lives under.
pub struct Repo {
    store: Store,
    prefix: ObjPath,
    url: String,
}

/// One parsed, valid manifest generation (generation 0: none published yet).
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The generation (0: none published yet).
    pub generation: u64,
    /// Its document.
    pub doc: ManifestDoc,
}

/// The fields of a snapshot entry that floe uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// As [`Entry::id`].
    pub id: String,
    /// As [`Entry::created_unix`].
    pub created_unix: i64,
    /// As [`Entry::object`].
    pub object: String,
    /// As [`Entry::size`].
    pub size: u64,
    /// As [`Entry::sha256`].
    pub sha256: String,
}

impl Manifest {
    fn empty() -> Manifest {
        let doc = ManifestDoc {
            format: "floe-backup-manifest".into(),
            version: MANIFEST_VERSION,
            generation: 0,
            snapshots: Vec::new(),
            extra: Map::new(),
        };
        Manifest { generation: 0, doc }
    }

    /// The manifest's version.
    pub fn version(&self) -> u64 {
        self.doc.version
    }

    /// The snapshot entries as JSON, unknown fields included, in stored order.
    pub fn entries(&self) -> Vec<Value> {
        self.doc.snapshots.iter().filter_map(|e| serde_json::to_value(e).ok()).collect()
    }

    /// Snapshot entries, oldest first (creation time, then id).
    pub fn snapshots(&self, _repo: &str) -> Result<Vec<Snapshot>> {
        let mut out: Vec<Snapshot> = self
            .doc
            .snapshots
            .iter()
            .map(|e| Snapshot {
                id: e.id.clone(),
                created_unix: e.created_unix,
                object: e.object.clone(),
                size: e.size,
                sha256: e.sha256.clone(),
            })
            .collect();
        out.sort_by(|a, b| (a.created_unix, &a.id).cmp(&(b.created_unix, &b.id)));
        Ok(out)
    }
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
    let h = Sha256::digest(
        format!("{nanos} {} {} {:?}", std::process::id(), hostname(), std::thread::current().id()).as_bytes(),
    );
    let t = rfc3339(now).replace(['-', ':'], "");
    format!("{t}-{}", hex(&h[..4]))
}

/// What a snapshot-folder name is (format-spec.md II.1, II.5).
#[derive(Debug, PartialEq, Eq)]
enum SnapshotName<'a> {
    /// `ID.floe` with a valid id.
    Object(&'a str),
    /// `ID.floe#N` (object_store's staging file) or `ID.floe.floe-tmp-X…` (floe's temporary).
    Partial,
    /// Anything else: not floe's.
    Foreign,
}

fn object_id(name: &str) -> Option<&str> {
    name.strip_suffix(".floe").filter(|id| valid_id(id))
}

fn classify(name: &str) -> SnapshotName<'_> {
    let is_object = object_id;
    if let Some(id) = is_object(name) {
        return SnapshotName::Object(id);
    }
    if let Some((base, n)) = name.rsplit_once('#') {
        if !n.is_empty() && n.len() <= 20 && n.bytes().all(|c| c.is_ascii_digit()) && is_object(base).is_some() {
            return SnapshotName::Partial;
        }
    }
    if crate::store::temp_target(name).is_some_and(|base| is_object(base).is_some()) {
        return SnapshotName::Partial;
    }
    SnapshotName::Foreign
}

/// A 20-digit generation file name `G.json`, parsed (`None` for other names
/// and for numbers beyond `u64`).
fn generation_of(name: &str) -> Option<u64> {
    name.strip_suffix(".json").filter(|n| n.len() == 20 && n.bytes().all(|c| c.is_ascii_digit()))?.parse().ok()
}

/// How a command uses the repository (format-spec.md II.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// list, verify, restore: must be a repository; nothing is written.
    Read,
    /// delete, gc: must be a repository; a legacy one gets its marker.
    Write,
    /// create: may also initialise an empty or absent location.
    Init,
}

/// One lock generation (format-spec.md II.4).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct LockDoc {
    state: String,
    token: String,
    job: String,
    host: String,
    boot_id: String,
    pid_ns: String,
    pid: u64,
    pid_start: u64,
    created_unix: i64,
    expires_unix: i64,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

impl LockDoc {
    fn mine(job: &str, token: &str, now: i64) -> LockDoc {
        let pid = u64::from(std::process::id());
        LockDoc {
            state: "held".into(),
            token: token.into(),
            job: job.into(),
            host: hostname(),
            boot_id: boot_id(),
            pid_ns: pid_ns(),
            pid,
            pid_start: process_start(pid).unwrap_or(0),
            created_unix: now,
            expires_unix: now.saturating_add(LEASE.as_secs() as i64),
            extra: Map::new(),
        }
    }

    /// True when the holder is on this host, boot and pid namespace and its
    /// process is gone (no such pid, or one started at another time).
    fn holder_is_dead(&self) -> bool {
        let same = |a: &str, b: String| !a.is_empty() && a == b;
        same(&self.host, hostname())
            && same(&self.boot_id, boot_id())
            && same(&self.pid_ns, pid_ns())
            && match process_start(self.pid) {
                None => true,
                Some(start) => self.pid_start != 0 && start != self.pid_start,
            }
    }

    /// Why a held lock may be broken, or `None` while it is live.
    fn stale(&self, now: i64) -> Option<String> {
        if self.holder_is_dead() {
            Some(format!("its holder, process {} on this host, is gone", self.pid))
        } else if self.expires_unix < now {
            Some(format!("its lease expired at {}", rfc3339(self.expires_unix)))
        } else {
            None
        }
    }

    fn describe(&self) -> String {
        format!(
            "'{}' (host {}, pid {}) since {}, lease until {}",
            escape(if self.job.is_empty() { "?" } else { &self.job }),
            escape(if self.host.is_empty() { "?" } else { &self.host }),
            self.pid,
            rfc3339(self.created_unix),
            rfc3339(self.expires_unix)
        )
    }
}

/// The state of a held lock, shared with its renewer.
struct Held {
    store: Store,
    dir: ObjPath,
    /// The generation last written by this holder, and its document.
    current: Mutex<(u64, LockDoc)>,
    lost: AtomicBool,
}

impl Held {
    /// Writes `doc` as the generation after ours; false when someone else
    /// wrote a later one (the lock was broken).
    fn advance(&self, doc: LockDoc) -> bool {
        let Ok(mut cur) = self.current.lock() else { return false };
        let Some(next) = cur.0.checked_add(1) else { return false };
        match write_lock_generation(&self.store, &self.dir, next, &doc) {
            Ok(true) => {
                *cur = (next, doc);
                true
            }
            _ => false,
        }
    }
}

/// The lock generations present, ascending.
fn lock_generations(store: &Store, dir: &ObjPath) -> Result<Vec<u64>> {
    let mut out: Vec<u64> = store
        .list_dir(dir)?
        .into_iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter_map(|e| generation_of(&e.name))
        .collect();
    out.sort_unstable();
    Ok(out)
}

fn lock_key(dir: &ObjPath, l: u64) -> ObjPath {
    dir.clone().join(format!("{l:020}.json").as_str())
}

/// Create-only write of lock generation `l`, then a check that it is the
/// highest one (a slot below the current one may have been pruned and be
/// free again: winning it wins nothing). Prunes generations below `l - 1`.
fn write_lock_generation(store: &Store, dir: &ObjPath, l: u64, doc: &LockDoc) -> Result<bool> {
    let body = serde_json::to_vec(doc).map_err(|e| Error::Internal(format!("encoding the lock: {e}")))?;
    if !store.put(&lock_key(dir, l), body, true)? {
        return Ok(false);
    }
    let gens = lock_generations(store, dir)?;
    if gens.last().is_some_and(|&top| top > l) {
        return Ok(false);
    }
    for g in gens.into_iter().filter(|&g| g.saturating_add(1) < l) {
        let _ = store.delete(&lock_key(dir, g));
    }
    Ok(true)
}

/// A held lock; renewed by a background thread, released on drop.
pub struct Lock {
    held: Arc<Held>,
    stop: Arc<AtomicBool>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl Lock {
    /// The lock generation this holder wrote last.
    pub fn generation(&self) -> u64 {
        self.held.current.lock().map_or(0, |c| c.0)
    }

    /// False once another job broke this lock.
    pub fn still_held(&self) -> bool {
        !self.held.lost.load(Ordering::SeqCst)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.renewer.take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if self.held.lost.load(Ordering::SeqCst) {
            tracing::warn!(locks = %self.held.dir, "backup: the lock was broken by another job while held");
            return;
        }
        // Release: a create-only write of the next generation (fails if broken).
        let doc = self.held.current.lock().ok().map(|c| c.1.clone());
        if let Some(mut doc) = doc {
            doc.state = "released".into();
            doc.expires_unix = now_unix();
            let released = self.held.advance(doc);
            tracing::info!(locks = %self.held.dir, lock_generation = self.generation(), released, "backup: lock released");
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

    /// The repository's location as given (without a trailing `/`).
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

    fn malformed(&self, what: impl Into<String>, detail: impl Into<String>) -> Error {
        BackupError::Malformed { repo: self.url.clone(), what: what.into(), detail: detail.into() }.into()
    }

    /// Generation numbers of the manifests present, ascending (regular
    /// files named with 20 digits within `u64`; other names are ignored).
    fn generations(&self) -> Result<Vec<u64>> {
        let mut out: Vec<u64> = self
            .store
            .list_dir(&self.key("manifest"))?
            .into_iter()
            .filter(|e| e.kind == EntryKind::File)
            .filter_map(|e| generation_of(&e.name))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// The current manifest (the highest generation), or an empty one. A
    /// current generation that breaks a rule of format-spec.md II.2 is an
    /// error naming it (there is no fallback to an older one).
    pub fn manifest(&self) -> Result<Manifest> {
        let Some(&g) = self.generations()?.last() else { return Ok(Manifest::empty()) };
        self.read_generation(g)
    }

    fn read_generation(&self, g: u64) -> Result<Manifest> {
        let what = format!("manifest/{g:020}.json (generation {g}, the current one)");
        let bytes = self.store.get(&self.manifest_key(g))?.ok_or_else(|| BackupError::Invalid {
            repo: self.url.clone(),
            detail: format!("{what} vanished while being read (retry)"),
        })?;
        let doc: ManifestDoc = serde_json::from_slice(&bytes).map_err(|e| self.malformed(&what, e.to_string()))?;
        validate(&doc, g).map_err(|d| self.malformed(&what, d))?;
        Ok(Manifest { generation: g, doc })
    }

    /// The marker's version, `None` when there is no marker.
    fn marker(&self) -> Result<Option<u64>> {
        let Some(b) = self.store.get(&self.key(MARKER))? else { return Ok(None) };
        let bad = |detail: String| BackupError::NotARepository {
            repo: self.url.clone(),
            detail: format!("{MARKER} is not a floe repository marker ({detail}); floe leaves this location alone"),
        };
        let m: MarkerDoc = serde_json::from_slice(&b).map_err(|e| bad(e.to_string()))?;
        if m.format != "floe-backup-repository" || m.version == 0 {
            return Err(bad(format!("format {:?}, version {}", escape(&m.format), m.version)).into());
        }
        Ok(Some(m.version))
    }

    /// Writes the marker create-only; a marker written first by another job is fine if valid.
    fn write_marker(&self) -> Result<()> {
        let doc = serde_json::json!({
            "format": "floe-backup-repository", "version": REPOSITORY_VERSION,
            "created_unix": now_unix(), "created_by": concat!("floe ", env!("CARGO_PKG_VERSION")),
        });
        if !self.store.put(&self.key(MARKER), doc.to_string().into_bytes(), true)? {
            self.marker()?;
        }
        Ok(())
    }

    /// Recognises the repository (format-spec.md II.0) and returns its
    /// current, valid manifest. Refuses a location that is not one; `Init`
    /// initialises only an empty or absent location.
    fn recognise(&self, usage: Use, action: &str) -> Result<Manifest> {
        let marker = self.marker()?;
        let m = self.manifest()?;
        match marker {
            Some(v) => {
                if v > REPOSITORY_VERSION && usage != Use::Read {
                    return Err(BackupError::RepositoryTooNew {
                        repo: self.url.clone(),
                        marker: MARKER.into(),
                        version: v,
                        supported: REPOSITORY_VERSION,
                        action: action.into(),
                    }
                    .into());
                }
            }
            // A repository of a floe from before the marker: a valid manifest.
            None if m.generation > 0 => {
                if usage != Use::Read {
                    self.write_marker()?;
                }
            }
            None if usage == Use::Init && self.store.is_empty(&self.prefix)? => self.write_marker()?,
            // Another floe may have initialised it meanwhile: it writes the marker first.
            None if usage == Use::Init && self.marker()?.is_some() => {}
            None => {
                let detail = if usage == Use::Init {
                    format!(
                        "the location is not empty and has neither {MARKER} nor a manifest; create initialises only \
                         an empty or new location (check --repo)"
                    )
                } else {
                    format!("it has neither {MARKER} nor a manifest (check --repo)")
                };
                return Err(BackupError::NotARepository { repo: self.url.clone(), detail }.into());
            }
        }
        Ok(m)
    }

    /// Refuses to write over `m` when it is too new or its generation cannot be followed.
    fn check_writable(&self, m: &Manifest, action: &str) -> Result<()> {
        if m.version() > MANIFEST_VERSION {
            return Err(BackupError::TooNew {
                repo: self.url.clone(),
                generation: m.generation,
                version: m.version(),
                supported: MANIFEST_VERSION,
                action: action.into(),
            }
            .into());
        }
        if m.generation.checked_add(1).is_none() {
            return Err(self.malformed(
                format!("manifest/{:020}.json (generation {}, the current one)", m.generation, m.generation),
                format!(
                    "generation {} is the largest possible and cannot be followed; floe refuses to {action}. \
                     If floe did not write it, remove it",
                    m.generation
                ),
            ));
        }
        Ok(())
    }

    /// Applies `change` to the current manifest and publishes it as the next
    /// generation with a create-only write; on a lost race, re-reads and
    /// retries. Returns the published manifest.
    pub fn publish(&self, action: &str, mut change: impl FnMut(&mut Manifest) -> Result<()>) -> Result<Manifest> {
        for _ in 0..CAS_ATTEMPTS {
            let mut m = self.manifest()?;
            self.check_writable(&m, action)?;
            change(&mut m)?;
            let next =
                m.generation.checked_add(1).ok_or_else(|| self.malformed("the manifest", "generation overflow"))?;
            m.generation = next;
            m.doc.version = MANIFEST_VERSION;
            m.doc.generation = next;
            validate(&m.doc, next).map_err(|d| self.malformed(format!("the new generation {next}"), d))?;
            let body = serde_json::to_vec_pretty(&m.doc)
                .map_err(|e| Error::Internal(format!("encoding the manifest: {e}")))?;
            if self.store.put(&self.manifest_key(m.generation), body, true)? {
                tracing::info!(repo = %escape(&self.url), action, generation = m.generation, "backup: manifest generation published");
                return Ok(m);
            }
            tracing::debug!(repo = %escape(&self.url), action, generation = next, "backup: another writer published generation first; retrying");
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(BackupError::Invalid {
            repo: self.url.clone(),
            detail: format!("gave up publishing after {CAS_ATTEMPTS} conflicting writers"),
        }
        .into())
    }

    /// Takes the repository's lock for `job` (format-spec.md II.4). A held
    /// lock is an error naming its holder; a stale one (expired lease, or a
    /// holder on this host whose process is gone) is broken only with
    /// `break_lock`, by the same create-only write that takes it. Waits up
    /// to `wait` for a live lock to go away.
    pub fn lock(&self, job: &str, break_lock: bool, wait: Duration) -> Result<Lock> {
        let dir = self.key("locks");
        let token = new_id(now_unix());
        let deadline = std::time::Instant::now() + wait;
        loop {
            let now = now_unix();
            self.legacy_lock(break_lock, now, deadline)?;
            let gens = lock_generations(&self.store, &dir)?;
            let (next, held) = match gens.last() {
                None => (1, None),
                Some(&l) => {
                    let Some(b) = self.store.get(&lock_key(&dir, l))? else { continue };
                    // An unreadable generation: a holder we cannot name, with an expired lease.
                    let doc: LockDoc = serde_json::from_slice(&b)
                        .unwrap_or_else(|_| LockDoc { state: "held".into(), ..LockDoc::default() });
                    let next = l.checked_add(1).ok_or_else(|| {
                        self.malformed(format!("locks/{l:020}.json"), "lock generation cannot be followed")
                    })?;
                    (next, (doc.state != "released").then_some(doc))
                }
            };
            if let Some(h) = &held {
                match h.stale(now) {
                    Some(why) if break_lock => {
                        tracing::warn!(repo = %escape(&self.url), holder = %h.describe(), "breaking the lock: {why}");
                    }
                    Some(why) => {
                        return Err(BackupError::Locked {
                            repo: self.url.clone(),
                            holder: format!("{}; {why}: pass --break-lock to break it", h.describe()),
                        }
                        .into())
                    }
                    None if std::time::Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(500));
                        continue;
                    }
                    None => {
                        return Err(BackupError::Locked {
                            repo: self.url.clone(),
                            holder: format!("{}; wait for it, or pass --wait SECONDS", h.describe()),
                        }
                        .into())
                    }
                }
            }
            let doc = LockDoc::mine(job, &token, now);
            if write_lock_generation(&self.store, &dir, next, &doc)? {
                tracing::info!(repo = %escape(&self.url), job, lock_generation = next, "backup: lock taken");
                return Ok(self.start_renewing(dir, next, doc));
            }
            // Another job wrote generation `next` first: re-read its state.
        }
    }

    /// A `lock.json` of floe ≤ 0.1.0: a live one is honoured, a stale one
    /// is removed only with `break_lock`.
    fn legacy_lock(&self, break_lock: bool, now: i64, deadline: std::time::Instant) -> Result<()> {
        let key = self.key("lock.json");
        loop {
            let Some(b) = self.store.get(&key)? else { return Ok(()) };
            let d: LockDoc = serde_json::from_slice(&b).unwrap_or_default();
            match d.stale(now) {
                Some(why) if break_lock => {
                    tracing::warn!(repo = %escape(&self.url), holder = %d.describe(), "breaking the lock: {why}");
                    self.store.delete(&key)?;
                    return Ok(());
                }
                None if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
                stale => {
                    let hint = match stale {
                        Some(why) => format!("{why}: pass --break-lock to break it"),
                        None => "wait for it, or pass --wait SECONDS".into(),
                    };
                    return Err(BackupError::Locked {
                        repo: self.url.clone(),
                        holder: format!("{} (lock.json of an older floe); {hint}", d.describe()),
                    }
                    .into());
                }
            }
        }
    }

    fn start_renewing(&self, dir: ObjPath, generation: u64, doc: LockDoc) -> Lock {
        let held = Arc::new(Held {
            store: self.store.clone(),
            dir,
            current: Mutex::new((generation, doc)),
            lost: AtomicBool::new(false),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (h, st) = (held.clone(), stop.clone());
        let renewer = std::thread::Builder::new()
            .name("floe-lease".into())
            .spawn(move || {
                while !st.load(Ordering::SeqCst) {
                    std::thread::park_timeout(LEASE / 3);
                    if st.load(Ordering::SeqCst) {
                        break;
                    }
                    let doc = h.current.lock().ok().map(|c| c.1.clone());
                    let Some(mut doc) = doc else { break };
                    doc.expires_unix = now_unix().saturating_add(LEASE.as_secs() as i64);
                    if !h.advance(doc) {
                        // Broken by someone else: the manifest CAS still protects entries.
                        h.lost.store(true, Ordering::SeqCst);
                        break;
                    }
                }
            })
            .ok();
        Lock { held, stop, renewer }
    }

    /// Streams the object through SHA-256: (hex digest, size).
    fn hash_object(&self, o: &Object) -> Result<(String, u64)> {
        let src = o.source()?;
        let mut h = Sha256::new();
        let mut n = 0u64;
        let size = crate::read::Source::size(&src);
        const CHUNK: u64 = 8 << 20;
        while n < size {
            let len = CHUNK.min(size - n);
            let b = crate::read::Source::fetch(&src, n, len).wait()?;
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
            .ok_or_else(|| BackupError::NoSuchSnapshot { repo: self.url.clone(), id: escape(id).into_owned() }.into())
    }
}

/// Settings of `backup create`.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CreateOptions {
    /// How the snapshot's archive is exported.
    pub export: ExportOptions,
    /// Free text recorded in the manifest entry.
    pub remarks: Option<String>,
    /// Keep only the newest N snapshots after publishing (1..=MAX_SNAPSHOTS).
    pub keep: Option<usize>,
    /// Break a stale lock (see [`Repo::lock`]).
    pub break_lock: bool,
    /// How long to wait for a live lock to go away.
    pub wait: Duration,
}

/// What `backup create` did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Created {
    /// The new snapshot's id.
    pub id: String,
    /// Its archive's size in bytes.
    pub size: u64,
    /// Its archive's SHA-256.
    pub sha256: String,
    /// What the export produced.
    pub export: ExportSummary,
    /// The manifest generation that published it.
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

/// The snapshots retention removes after `just_published` was published:
/// the oldest others, so that `keep` remain counting the new one, which is
/// never among them (even when an older entry is dated after it).
pub(crate) fn retention_victims(m: &Manifest, just_published: &str, keep: usize) -> Vec<String> {
    let others: Vec<String> =
        m.snapshots("").unwrap_or_default().into_iter().map(|s| s.id).filter(|id| id != just_published).collect();
    let keep_others = keep.saturating_sub(1);
    let n = others.len().saturating_sub(keep_others);
    others.into_iter().take(n).collect()
}

/// `floe backup create`: exports the database at `db_dir` into the
/// repository, then publishes it in the manifest, then applies retention.
pub fn create(repo: &Repo, db_dir: &Path, opts: &CreateOptions, progress: &dyn Progress) -> Result<Created> {
    if let Some(k) = opts.keep {
        if k == 0 || k > MAX_SNAPSHOTS {
            return Err(Error::InvalidArgument(format!("--keep must be 1 to {MAX_SNAPSHOTS}")));
        }
    }
    let action = "add a snapshot";
    let m = repo.recognise(Use::Init, action)?;
    repo.check_writable(&m, action)?;
    let _lock = repo.lock("backup create", opts.break_lock, opts.wait)?;
    let current = repo.manifest()?;
    repo.check_writable(&current, action)?;
    if opts.keep.is_none() && current.doc.snapshots.len() >= MAX_SNAPSHOTS {
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
    tracing::info!(repo = %escape(&repo.url), id = %id, bytes = size, sha256 = %sha256, "backup: snapshot uploaded");
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
    let keyspaces: Vec<KeyspaceEntry> = a
        .keyspaces()
        .iter()
        .zip(&a.index().keyspaces)
        .map(|(k, i)| KeyspaceEntry { name: k.name.clone(), records: i.totals.record_count, extra: Map::new() })
        .collect();
    let h = a.header();
    let entry = Entry {
        id: id.clone(),
        created_unix: created,
        created: Some(rfc3339(created)),
        snapshot_seqno: Some(h.snapshot_seqno),
        floe_version: Some(env!("CARGO_PKG_VERSION").into()),
        format_version: Some(format!("{}.{}", h.format_major, h.format_minor)),
        object: format!("snapshots/{id}.floe"),
        size,
        sha256: sha256.clone(),
        keyspaces: Some(keyspaces),
        remarks: opts.remarks.clone(),
        extra: Map::new(),
    };
    let m = repo.publish(action, |m| {
        m.doc.snapshots.push(entry.clone());
        Ok(())
    })?;
    let mut removed = Vec::new();
    if let Some(keep) = opts.keep {
        let old = retention_victims(&m, &id, keep);
        if !old.is_empty() {
            remove(repo, &old)?;
            removed = old;
        }
    }
    Ok(Created { id, size, sha256, export, generation: m.generation, removed })
}

/// Removes `ids` from the manifest (published first), then their objects.
fn remove(repo: &Repo, ids: &[String]) -> Result<u64> {
    let m = repo.publish("delete snapshots", |m| {
        m.doc.snapshots.retain(|e| !ids.contains(&e.id));
        Ok(())
    })?;
    for id in ids.iter().filter(|id| valid_id(id)) {
        repo.store.delete(&repo.snapshot_object(id).key)?;
    }
    Ok(m.generation)
}

/// `floe backup delete`: manifest entries first, then the objects.
pub fn delete(repo: &Repo, ids: &[String], break_lock: bool, wait: Duration) -> Result<u64> {
    let action = "delete snapshots";
    let m = repo.recognise(Use::Write, action)?;
    repo.check_writable(&m, action)?;
    let _lock = repo.lock("backup delete", break_lock, wait)?;
    let m = repo.manifest()?;
    repo.check_writable(&m, action)?;
    for id in ids {
        repo.find(&m, id)?;
    }
    remove(repo, ids)
}

/// `floe backup list`: the current manifest.
pub fn list(repo: &Repo) -> Result<Manifest> {
    repo.recognise(Use::Read, "list")
}

/// `floe backup verify`: each snapshot's size and SHA-256 against the
/// manifest, then every check of `floe verify` (all snapshots when `ids` is empty).
pub fn verify(
    repo: &Repo,
    ids: &[String],
    threads: usize,
    progress: &dyn Progress,
) -> Result<Vec<(String, VerifyReport)>> {
    let m = repo.recognise(Use::Read, "verify")?;
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
    let m = repo.recognise(Use::Read, "restore")?;
    let s = repo.find(&m, id)?;
    let o = repo.check_checksum(&s)?;
    let a = Archive::from_bytes(o.source()?, &o.describe())?;
    let mut opts = opts.clone();
    if let Ok(crate::store::Location::Local(dir)) = crate::store::Location::parse(repo.url()) {
        opts.protect.push(dir); // --replace must not swap away the repository being read
    }
    import_archive(&a, db_dir, &opts, progress)
}

/// What gc removed, kept and left alone.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GcReport {
    /// Unreferenced snapshot objects and partial writes removed (names relative to the repository).
    pub orphans: Vec<String>,
    /// Unreferenced objects and partial writes kept because they are younger than the grace period.
    pub young: Vec<String>,
    /// Names under `snapshots/` that are not floe's (folders, links, other names): never touched.
    pub foreign: Vec<String>,
    /// Old manifest generations pruned.
    pub generations: u64,
}

/// Parses a gc grace period: `0`, `90`, `90s`, `30m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        Some((i, 'd')) => (&t[..i], 86_400),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is not a duration (e.g. 0s, 90s, 30m, 2h, 1d)"))
}

/// `floe backup gc` (format-spec.md II.5): in a recognised repository with a
/// valid current manifest, removes the top-level regular files of
/// `snapshots/` named `ID.floe` that the manifest does not reference, and
/// floe's partial writes there, when older than `grace`; floe's temporaries
/// in `manifest/` and `locks/` likewise; and manifest generations older than
/// the current one minus [`KEEP_GENERATIONS`]. Never follows a symbolic link,
/// never descends into a folder, never touches another name.
pub fn gc(repo: &Repo, break_lock: bool, wait: Duration, grace: Duration) -> Result<GcReport> {
    let action = "collect garbage";
    let m = repo.recognise(Use::Write, action)?;
    repo.check_writable(&m, action)?;
    let _lock = repo.lock("backup gc", break_lock, wait)?;
    let m = repo.manifest()?;
    repo.check_writable(&m, action)?;
    let keep: std::collections::BTreeSet<&str> = m.doc.snapshots.iter().map(|e| e.id.as_str()).collect();
    let now = SystemTime::now();
    let old_enough = |t: Option<SystemTime>| t.and_then(|t| now.duration_since(t).ok()).is_some_and(|age| age >= grace);
    let mut report = GcReport::default();
    for e in repo.store.list_dir(&repo.key("snapshots"))? {
        let rel = format!("snapshots/{}", e.name);
        if e.kind != EntryKind::File {
            let what = match e.kind {
                EntryKind::Dir => "a folder",
                EntryKind::Symlink => "a symbolic link",
                _ => "not a regular file",
            };
            report.foreign.push(format!("{} ({what})", escape(&rel)));
            continue;
        }
        match classify(&e.name) {
            SnapshotName::Object(id) if keep.contains(id) => continue,
            SnapshotName::Object(_) | SnapshotName::Partial => {}
            SnapshotName::Foreign => {
                report.foreign.push(escape(&rel).into_owned());
                continue;
            }
        }
        if old_enough(e.modified) {
            repo.store.delete_entry(&e)?;
            report.orphans.push(rel);
        } else {
            report.young.push(rel);
        }
    }
    for dir in ["manifest", "locks"] {
        for e in repo.store.list_dir(&repo.key(dir))? {
            if e.kind == EntryKind::File && crate::store::temp_target(&e.name).is_some() && old_enough(e.modified) {
                repo.store.delete_entry(&e)?;
                report.orphans.push(format!("{dir}/{}", e.name));
            }
        }
    }
    // Keep the current generation and the KEEP_GENERATIONS before it.
    if let Some(floor) = m.generation.checked_sub(KEEP_GENERATIONS) {
        for g in repo.generations()?.into_iter().filter(|&g| g < floor) {
            repo.store.delete(&repo.manifest_key(g))?;
            report.generations += 1;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_gc_may_remove() {
        assert_eq!(classify("20260101T000000Z-0123abcd.floe"), SnapshotName::Object("20260101T000000Z-0123abcd"));
        assert_eq!(classify("a.floe#1"), SnapshotName::Partial);
        assert_eq!(classify("a.floe.floe-tmp-0123456789abcdef"), SnapshotName::Partial);
        for foreign in ["img.jpg", ".a.floe", "a.floe#", "a.floe#x", "a.floe.floe-tmp-0123", "a", "a.floe.bak", ".floe"]
        {
            assert_eq!(classify(foreign), SnapshotName::Foreign, "{foreign}");
        }
        assert_eq!(generation_of("00000000000000000042.json"), Some(42));
        assert_eq!(generation_of("18446744073709551615.json"), Some(u64::MAX));
        assert_eq!(generation_of("99999999999999999999.json"), None);
        assert_eq!(generation_of("42.json"), None);
    }

    #[test]
    fn durations_and_escaping() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("h").is_err() && parse_duration("-1s").is_err() && parse_duration("1w").is_err());
        assert_eq!(escape("a\x1b[2Jb\nc"), "a\\x1b[2Jb\\nc");
    }

    #[test]
    fn the_process_start_time_is_read() {
        let me = u64::from(std::process::id());
        assert!(process_start(me).is_some_and(|s| s > 0));
        assert_eq!(process_start(0), None);
    }
}
