//! Object-store locations: where an archive or a backup repository lives.
//!
//! A location is a plain path, a `file://` URL (both read and written as local
//! files: memory-mapped, written atomically), or an `s3://bucket/key` URL read
//! and written through the `object_store` crate. Everything asynchronous stays
//! in here, on a small internal tokio runtime; floe's API stays synchronous.
//!
//! * Writing streams through a multipart upload ([`ObjectWriter`]) with at
//!   most [`PARTS_IN_FLIGHT`] parts of [`PART_SIZE`] bytes in flight, plus the
//!   part being filled. A writer dropped before [`ObjectWriter::finish`] (an
//!   error, a cancellation) aborts the upload: no object, no parts.
//! * Reading is by ranges ([`ObjectSource`], a [`crate::read::Source`]):
//!   the reader fetches the trailer, index, header and keyspace table, then
//!   each block with its own ranged GET, several in flight.
//!
//! S3 credentials, region and endpoint come from the standard AWS environment
//! variables (README, "Object stores").

use crate::read::{Archive, Fetch, Source};
use crate::{Error, Result};
use futures_util::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
#[cfg(feature = "s3")]
use std::time::Duration;

/// Size of one multipart-upload part (S3 needs at least 5 MiB but the last).
pub const PART_SIZE: usize = 8 << 20;
/// Parts uploaded concurrently; a writer waits while this many are in flight.
pub const PARTS_IN_FLIGHT: usize = 3;
/// Default bound on the time one request is retried for (`FLOE_RETRY_TIMEOUT_SECS`).
pub const DEFAULT_RETRY_TIMEOUT_SECS: u64 = 60;

/// The runtime that runs object-store requests (two I/O threads, started on first use).
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("floe-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Error::io("starting the object-store runtime", std::io::Error::other(e.clone())))
}

fn store_err(context: impl Into<String>, source: object_store::Error) -> Error {
    Error::Store { context: context.into(), source }
}

/// An object store and a display prefix for messages (`s3://bucket`).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    url: String,
}

/// S3 and the like go through `object_store`; a local directory is read and
/// written with `std::fs` (format-spec.md II.6): temp file, fsync, link or
/// rename, fsync the folder; listing with `lstat`, never following a link.
#[derive(Clone)]
enum Backend {
    #[cfg_attr(not(feature = "s3"), expect(dead_code, reason = "only the s3 feature makes remote stores"))]
    Remote(Arc<dyn ObjectStore>),
    Local(Arc<PathBuf>),
}

/// What a name in a listed folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file or an object.
    File,
    /// A folder (a common prefix in an object store).
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A device, FIFO, socket.
    Other,
}

/// One name directly under a listed folder.
#[derive(Debug, Clone)]
pub struct DirEntry {
    /// The name, without the folder's prefix.
    pub name: String,
    /// The full key (path) of the entry.
    pub key: ObjPath,
    /// File (object), folder or symbolic link.
    pub kind: EntryKind,
    /// Size in bytes, as the store or file system reports it.
    pub size: u64,
    /// Last-modified time, when known.
    pub modified: Option<std::time::SystemTime>,
    /// The file's path in a local directory (its key may be percent-encoded).
    pub path: Option<PathBuf>,
}

/// The suffix of floe's local temporaries: `NAME.floe-tmp-` then 16 lowercase hex digits.
pub(crate) const TMP_MARK: &str = ".floe-tmp-";

/// True for `NAME.floe-tmp-XXXXXXXXXXXXXXXX` with a non-empty `NAME`; returns `NAME`.
pub(crate) fn temp_target(name: &str) -> Option<&str> {
    let i = name.rfind(TMP_MARK)?;
    let (base, tail) = (&name[..i], &name[i + TMP_MARK.len()..]);
    (!base.is_empty() && tail.len() == 16 && tail.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)))
        .then_some(base)
}

fn temp_name(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let x = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ N.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{name}{TMP_MARK}{x:016x}")
}

/// Creates `dir` and its missing parents under `root`, fsyncing the parent of each folder created.
fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        ensure_dir(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
    }
    match dir.parent() {
        Some(p) => crate::util::fs::fsync_dir(if p.as_os_str().is_empty() { Path::new(".") } else { p }),
        None => Ok(()),
    }
}

/// A local temporary being written: removed on drop unless published.
struct LocalTemp {
    file: Option<std::fs::File>,
    tmp: PathBuf,
    dest: PathBuf,
}

impl LocalTemp {
    fn create(dest: &Path) -> Result<LocalTemp> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        ensure_dir(dir)?;
        let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = dir.join(temp_name(&name));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
        Ok(LocalTemp { file: Some(file), tmp, dest: dest.to_owned() })
    }

    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.write_all(b),
            None => Err(std::io::Error::other("write after publish")),
        }
    }

    /// fsync, publish (no-clobber link for `create_only`, else rename), fsync
    /// the folder. Returns false when `create_only` found the name taken.
    fn publish(mut self, create_only: bool) -> Result<bool> {
        let Some(f) = self.file.take() else { return Err(Error::InvalidArgument("already published".into())) };
        f.sync_all().map_err(|e| Error::io(format!("syncing {}", self.tmp.display()), e))?;
        drop(f);
        if create_only {
            match std::fs::hard_link(&self.tmp, &self.dest) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
                Err(e) => return Err(Error::io(format!("publishing {}", self.dest.display()), e)),
            }
            // The temporary is removed by drop (below); the link is the object.
        } else {
            std::fs::rename(&self.tmp, &self.dest)
                .map_err(|e| Error::io(format!("publishing {}", self.dest.display()), e))?;
        }
        let _ = std::fs::remove_file(&self.tmp);
        let dir = self.dest.parent().unwrap_or(Path::new("."));
        crate::util::fs::fsync_dir(dir)?;
        Ok(true)
    }
}

impl Drop for LocalTemp {
    fn drop(&mut self) {
        self.file = None;
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// One object: a store and a key.
#[derive(Clone)]
pub struct Object {
    /// The store that holds it.
    pub store: Store,
    /// Its key in that store.
    pub key: ObjPath,
}

/// Where an archive is read from or written to.
pub enum Location {
    /// A local file (a plain path or a `file://` URL).
    Local(PathBuf),
    /// An object in an object store.
    Object(Object),
}

impl Location {
    /// Parses a plain path, `file:///abs/path`, or `s3://bucket/key`.
    pub fn parse(s: &str) -> Result<Location> {
        Ok(match split_url(s)? {
            None => Location::Local(PathBuf::from(s)),
            Some(Parsed::File(p)) => Location::Local(p),
            Some(Parsed::S3 { bucket, key }) => {
                if key.as_ref().is_empty() {
                    return Err(Error::InvalidArgument(format!(
                        "{s}: the URL names a bucket but no object (s3://BUCKET/KEY)"
                    )));
                }
                Location::Object(Object { store: Store::s3(&bucket)?, key })
            }
        })
    }

    /// True for a string with a URL scheme (`scheme://`).
    pub fn is_url(s: &str) -> bool {
        s.split_once("://").is_some_and(|(scheme, _)| {
            !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        })
    }
}

enum Parsed {
    File(PathBuf),
    S3 { bucket: String, key: ObjPath },
}

fn split_url(s: &str) -> Result<Option<Parsed>> {
    if !Location::is_url(s) {
        return Ok(None);
    }
    let Some((scheme, rest)) = s.split_once("://") else { return Ok(None) };
    match scheme.to_ascii_lowercase().as_str() {
        "file" => {
            let path = rest.strip_prefix("localhost").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(Error::InvalidArgument(format!(
                    "{s}: a file URL needs an absolute path (file:///dir/name)"
                )));
            }
            Ok(Some(Parsed::File(PathBuf::from(path))))
        }
        "s3" | "s3a" => {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::InvalidArgument(format!("{s}: no bucket name (s3://BUCKET/KEY)")));
            }
            let key = ObjPath::parse(key.trim_matches('/'))
                .map_err(|e| Error::InvalidArgument(format!("{s}: bad object key: {e}")))?;
            Ok(Some(Parsed::S3 { bucket: bucket.to_owned(), key }))
        }
        other => Err(Error::InvalidArgument(format!(
            "{s}: unsupported URL scheme '{other}://' (floe reads and writes plain paths, file:// and s3://)"
        ))),
    }
}

impl Store {
    /// An S3 (or S3-compatible) bucket configured from the AWS environment.
    #[cfg(feature = "s3")]
    pub fn s3(bucket: &str) -> Result<Store> {
        let secs = std::env::var("FLOE_RETRY_TIMEOUT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_RETRY_TIMEOUT_SECS);
        let retry = object_store::RetryConfig { retry_timeout: Duration::from_secs(secs), ..Default::default() };
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retry)
            .build()
            .map_err(|e| store_err(format!("configuring s3://{bucket} from the AWS_* environment"), e))?;
        Ok(Store { backend: Backend::Remote(Arc::new(s3)), url: format!("s3://{bucket}") })
    }

    /// Without the `s3` cargo feature there is no S3 client: `s3://` URLs are refused.
    #[cfg(not(feature = "s3"))]
    pub fn s3(bucket: &str) -> Result<Store> {
        Err(Error::InvalidArgument(format!(
            "s3://{bucket}: this floe was built without S3 support; rebuild it with the `s3` cargo feature (on by default)"
        )))
    }

    /// A local directory, read and written with `std::fs` (durably, II.6);
    /// created if missing when `create`, else a missing one is an error.
    pub fn local_dir(dir: &Path, create: bool) -> Result<Store> {
        if create {
            ensure_dir(dir)?;
        } else if !dir.is_dir() {
            return Err(Error::io(
                format!("opening {}", dir.display()),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            ));
        }
        Ok(Store { backend: Backend::Local(Arc::new(dir.to_owned())), url: dir.display().to_string() })
    }

    /// A store and key prefix for a repository URL or directory (a missing
    /// directory is created when `create`).
    pub fn at(s: &str, create: bool) -> Result<(Store, ObjPath)> {
        match split_url(s)? {
            None => Ok((Store::local_dir(Path::new(s), create)?, ObjPath::default())),
            Some(Parsed::File(p)) => Ok((Store::local_dir(&p, create)?, ObjPath::default())),
            Some(Parsed::S3 { bucket, key }) => Ok((Store::s3(&bucket)?, key)),
        }
    }

    /// True for a local directory (read and written with `std::fs`).
    pub fn is_local(&self) -> bool {
        matches!(self.backend, Backend::Local(_))
    }

    /// The local path of `key` (local stores only).
    pub fn local_path(&self, key: &ObjPath) -> Option<PathBuf> {
        match &self.backend {
            Backend::Local(root) => {
                Some(if key.as_ref().is_empty() { root.as_ref().clone() } else { root.join(key.as_ref()) })
            }
            Backend::Remote(_) => None,
        }
    }

    /// `s3://bucket/key` (or `dir/key`) for messages.
    pub fn describe(&self, key: &ObjPath) -> String {
        format!("{}/{}", self.url, key)
    }

    /// The object's bytes, or `None` when it does not exist.
    pub fn get(&self, key: &ObjPath) -> Result<Option<bytes::Bytes>> {
        let inner = match &self.backend {
            Backend::Remote(s) => s,
            Backend::Local(_) => {
                let p = self.local_path(key).unwrap_or_default();
                return match std::fs::read(&p) {
                    Ok(b) => Ok(Some(b.into())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(format!("reading {}", p.display()), e)),
                };
            }
        };
        let rt = runtime()?;
        let r = rt.block_on(async { inner.get(key).await?.bytes().await });
        match r {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(format!("reading {}", self.describe(key)), e)),
        }
    }

    /// Size of the object, or `None` when it does not exist.
    pub fn size(&self, key: &ObjPath) -> Result<Option<u64>> {
        let inner = match &self.backend {
            Backend::Remote(s) => s,
            Backend::Local(_) => {
                let p = self.local_path(key).unwrap_or_default();
                return match std::fs::metadata(&p) {
                    Ok(m) => Ok(Some(m.len())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io(format!("reading the size of {}", p.display()), e)),
                };
            }
        };
        match runtime()?.block_on(inner.head(key)) {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(format!("reading the size of {}", self.describe(key)), e)),
        }
    }

    /// Writes a small object; with `create_only`, atomically and only if no
    /// object of that name exists (S3 `If-None-Match: *`, a no-clobber link
    /// locally). Returns false when `create_only` found one. Local writes are
    /// durable when this returns (II.6).
    pub fn put(&self, key: &ObjPath, bytes: Vec<u8>, create_only: bool) -> Result<bool> {
        let inner = match &self.backend {
            Backend::Remote(s) => s,
            Backend::Local(_) => {
                let dest = self.local_path(key).unwrap_or_default();
                let mut t = LocalTemp::create(&dest)?;
                t.write_all(&bytes).map_err(|e| Error::io(format!("writing {}", t.tmp.display()), e))?;
                return t.publish(create_only);
            }
        };
        let mode = if create_only { PutMode::Create } else { PutMode::Overwrite };
        let opts = PutOptions { mode, ..Default::default() };
        match runtime()?.block_on(inner.put_opts(key, PutPayload::from(bytes), opts)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) if create_only => Ok(false),
            Err(e) => Err(store_err(format!("writing {}", self.describe(key)), e)),
        }
    }

    /// Deletes an object; a missing one is not an error. Locally only a
    /// regular file or a symbolic link itself is removed (`unlink`), never a
    /// folder or what a link points to.
    pub fn delete(&self, key: &ObjPath) -> Result<()> {
        let inner = match &self.backend {
            Backend::Remote(s) => s,
            Backend::Local(_) => {
                let p = self.local_path(key).unwrap_or_default();
                return match std::fs::remove_file(&p) {
                    Ok(()) => crate::util::fs::fsync_dir(p.parent().unwrap_or(Path::new("."))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(Error::io(format!("deleting {}", p.display()), e)),
                };
            }
        };
        match runtime()?.block_on(inner.delete(key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(format!("deleting {}", self.describe(key)), e)),
        }
    }

    /// Deletes a listed entry: locally its path itself (`unlink`, never a
    /// folder or a link's target), else its key.
    pub fn delete_entry(&self, e: &DirEntry) -> Result<()> {
        match &e.path {
            Some(p) => match std::fs::remove_file(p) {
                Ok(()) => crate::util::fs::fsync_dir(p.parent().unwrap_or(Path::new("."))),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(err) => Err(Error::io(format!("deleting {}", p.display()), err)),
            },
            None => self.delete(&e.key),
        }
    }

    /// The names directly under `prefix` (one level, never following a
    /// symbolic link), sorted by name. A missing folder is empty.
    pub fn list_dir(&self, prefix: &ObjPath) -> Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        match &self.backend {
            Backend::Local(_) => {
                let dir = self.local_path(prefix).unwrap_or_default();
                let rd = match std::fs::read_dir(&dir) {
                    Ok(rd) => rd,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
                };
                for e in rd {
                    let e = e.map_err(|e| Error::io(format!("listing {}", dir.display()), e))?;
                    let name = e.file_name().to_string_lossy().into_owned();
                    // lstat: a symbolic link is reported as one, never followed.
                    let m = match std::fs::symlink_metadata(e.path()) {
                        Ok(m) => m,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(err) => return Err(Error::io(format!("reading {}", e.path().display()), err)),
                    };
                    let ft = m.file_type();
                    let kind = if ft.is_symlink() {
                        EntryKind::Symlink
                    } else if ft.is_dir() {
                        EntryKind::Dir
                    } else if ft.is_file() {
                        EntryKind::File
                    } else {
                        EntryKind::Other
                    };
                    let key = prefix.clone().join(name.as_str());
                    let path = Some(e.path());
                    out.push(DirEntry { name, key, kind, size: m.len(), modified: m.modified().ok(), path });
                }
            }
            Backend::Remote(inner) => {
                let r = runtime()?
                    .block_on(inner.list_with_delimiter(Some(prefix)))
                    .map_err(|e| store_err(format!("listing {}", self.describe(prefix)), e))?;
                for m in r.objects {
                    let name = m.location.filename().unwrap_or_default().to_owned();
                    out.push(DirEntry {
                        name,
                        key: m.location,
                        kind: EntryKind::File,
                        size: m.size,
                        modified: Some(m.last_modified.into()),
                        path: None,
                    });
                }
                for p in r.common_prefixes {
                    let name = p.filename().unwrap_or_default().to_owned();
                    out.push(DirEntry { name, key: p, kind: EntryKind::Dir, size: 0, modified: None, path: None });
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// True when nothing at all is stored under `prefix` (no file, folder or
    /// link in a local directory; no object in an object store).
    pub fn is_empty(&self, prefix: &ObjPath) -> Result<bool> {
        match &self.backend {
            Backend::Local(_) => Ok(self.list_dir(prefix)?.is_empty()),
            Backend::Remote(inner) => {
                let first = runtime()?
                    .block_on(async { inner.list(Some(prefix)).try_next().await })
                    .map_err(|e| store_err(format!("listing {}", self.describe(prefix)), e))?;
                Ok(first.is_none())
            }
        }
    }
}

impl Object {
    /// `s3://bucket/key` for messages.
    pub fn describe(&self) -> String {
        self.store.describe(&self.key)
    }

    /// Starts writing this object: a multipart upload, or locally a
    /// temporary published create-only by [`ObjectWriter::finish`].
    pub fn writer(&self) -> Result<ObjectWriter> {
        let inner = match &self.store.backend {
            Backend::Remote(s) => s,
            Backend::Local(_) => {
                let dest = self.store.local_path(&self.key).unwrap_or_default();
                return Ok(ObjectWriter {
                    up: Upload::Local(Some(LocalTemp::create(&dest)?)),
                    name: self.describe(),
                    written: 0,
                });
            }
        };
        let rt = runtime()?;
        let up = rt
            .block_on(inner.put_multipart(&self.key))
            .map_err(|e| store_err(format!("starting the upload of {}", self.describe()), e))?;
        Ok(ObjectWriter {
            up: Upload::Remote(Some(WriteMultipart::new_with_chunk_size(up, PART_SIZE))),
            name: self.describe(),
            written: 0,
        })
    }

    /// Opens the object for ranged reads (one HEAD request for its size).
    pub fn source(&self) -> Result<ObjectSource> {
        let missing = || {
            Error::io(
                format!("opening archive {}", self.describe()),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
            )
        };
        match &self.store.backend {
            Backend::Local(_) => {
                let p = self.store.local_path(&self.key).unwrap_or_default();
                let f = match std::fs::File::open(&p) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
                    Err(e) => return Err(Error::io(format!("opening archive {}", p.display()), e)),
                };
                let size = f.metadata().map_err(|e| Error::io(format!("opening archive {}", p.display()), e))?.len();
                Ok(ObjectSource { from: From::Local(Arc::new(f)), size, name: self.describe() })
            }
            Backend::Remote(inner) => {
                let size = self.store.size(&self.key)?.ok_or_else(missing)?;
                Ok(ObjectSource { from: From::Remote(inner.clone(), self.key.clone()), size, name: self.describe() })
            }
        }
    }
}

enum Upload {
    Remote(Option<WriteMultipart>),
    Local(Option<LocalTemp>),
}

/// A `Write` that streams into a multipart upload with bounded memory, or
/// into a local temporary. Dropped without [`ObjectWriter::finish`], it
/// aborts the upload (removes the temporary).
pub struct ObjectWriter {
    up: Upload,
    name: String,
    written: u64,
}

impl ObjectWriter {
    /// Uploads what is buffered and completes the upload: only now does the
    /// object appear, whole (locally: fsynced and linked create-only, folder
    /// fsynced). On error the upload is aborted.
    pub fn finish(mut self) -> Result<u64> {
        let done = || Error::InvalidArgument("upload already finished".into());
        match &mut self.up {
            Upload::Local(t) => {
                let t = t.take().ok_or_else(done)?;
                if !t.publish(true)? {
                    return Err(Error::io(
                        format!("publishing {}", self.name),
                        std::io::Error::new(std::io::ErrorKind::AlreadyExists, "an object of that name exists"),
                    ));
                }
                Ok(self.written)
            }
            Upload::Remote(up) => {
                let rt = runtime()?;
                let up = up.take().ok_or_else(done)?;
                match rt.block_on(up.finish()) {
                    Ok(_) => Ok(self.written),
                    // WriteMultipart::finish aborts the upload itself when a part failed.
                    Err(e) => Err(store_err(format!("completing the upload of {}", self.name), e)),
                }
            }
        }
    }

    fn io_err(&self, e: object_store::Error) -> std::io::Error {
        std::io::Error::other(format!("uploading {}: {e}", self.name))
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Upload::Local(t) = &mut self.up {
            let Some(t) = t.as_mut() else { return Err(std::io::Error::other("upload already finished")) };
            t.write_all(buf)?;
            self.written += buf.len() as u64;
            return Ok(buf.len());
        }
        let rt = runtime().map_err(std::io::Error::other)?;
        let Upload::Remote(Some(up)) = &mut self.up else {
            return Err(std::io::Error::other("upload already finished"));
        };
        // At most one part's worth per call, after waiting for a free slot:
        // memory stays at PARTS_IN_FLIGHT parts plus the one being filled.
        let n = buf.len().min(PART_SIZE);
        if let Err(e) = rt.block_on(up.wait_for_capacity(PARTS_IN_FLIGHT)) {
            return Err(self.io_err(e));
        }
        let _in_runtime = rt.enter();
        up.write(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        // A local temporary removes itself when dropped.
        if let Upload::Remote(up) = &mut self.up {
            if let (Some(up), Ok(rt)) = (up.take(), runtime()) {
                // Best effort: a server that is gone cannot be told; see `floe backup gc`.
                let _ = rt.block_on(up.abort());
            }
        }
    }
}

/// An object read by ranges, for [`Archive`].
pub struct ObjectSource {
    from: From,
    size: u64,
    name: String,
}

enum From {
    Remote(Arc<dyn ObjectStore>, ObjPath),
    Local(Arc<std::fs::File>),
}

impl Source for ObjectSource {
    fn size(&self) -> u64 {
        self.size
    }
    fn fetch(&self, start: u64, len: u64) -> Fetch {
        let name = self.name.clone();
        let (store, key) = match &self.from {
            From::Local(f) => {
                let f = f.clone();
                return Fetch::new(move || {
                    use std::os::unix::fs::FileExt;
                    let n = usize::try_from(len)
                        .map_err(|_| Error::io(format!("reading {name}"), std::io::Error::other("range too large")))?;
                    let mut b = vec![0u8; n];
                    f.read_exact_at(&mut b, start)
                        .map_err(|e| Error::io(format!("reading {name} at offset {start} ({len} bytes)"), e))?;
                    Ok(b.into())
                });
            }
            From::Remote(store, key) => (store.clone(), key.clone()),
        };
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(e) => {
                let msg = e.to_string();
                return Fetch::new(move || Err(Error::io("object-store runtime", std::io::Error::other(msg))));
            }
        };
        let task = rt.spawn(async move { store.get_range(&key, start..start + len).await });
        Fetch::new(move || match rt.block_on(task) {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(e)) => Err(store_err(format!("reading {name} at offset {start} ({len} bytes)"), e)),
            Err(e) => Err(Error::io(format!("reading {name} at offset {start}"), std::io::Error::other(e))),
        })
    }
}

/// An archive's bytes: a memory-mapped local file or an object read by ranges.
pub enum ArchiveBytes {
    /// A local file, memory-mapped.
    Mapped(memmap2::Mmap),
    /// An object, read by ranged requests.
    Object(ObjectSource),
}

impl Source for ArchiveBytes {
    fn size(&self) -> u64 {
        match self {
            ArchiveBytes::Mapped(m) => m.len() as u64,
            ArchiveBytes::Object(o) => o.size(),
        }
    }
    fn in_memory(&self) -> Option<&[u8]> {
        match self {
            ArchiveBytes::Mapped(m) => Some(m),
            ArchiveBytes::Object(_) => None,
        }
    }
    fn fetch(&self, start: u64, len: u64) -> Fetch {
        match self {
            ArchiveBytes::Mapped(m) => m.fetch(start, len),
            ArchiveBytes::Object(o) => o.fetch(start, len),
        }
    }
}

/// Opens the archive at a path or URL: a local file is memory-mapped, an
/// object is read by ranges.
pub fn open_archive(location: &str) -> Result<Archive<ArchiveBytes>> {
    match Location::parse(location)? {
        Location::Local(p) => Archive::open_mapped(&p, ArchiveBytes::Mapped),
        Location::Object(o) => Archive::from_bytes(ArchiveBytes::Object(o.source()?), &o.describe()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert!(matches!(Location::parse("backup.floe").unwrap(), Location::Local(p) if p == Path::new("backup.floe")));
        assert!(matches!(Location::parse("dir/x://y").unwrap(), Location::Local(_)));
        assert!(
            matches!(Location::parse("file:///tmp/a.floe").unwrap(), Location::Local(p) if p == Path::new("/tmp/a.floe"))
        );
        assert!(
            matches!(Location::parse("file://localhost/tmp/a.floe").unwrap(), Location::Local(p) if p == Path::new("/tmp/a.floe"))
        );
        assert!(Location::parse("file://relative/a.floe").is_err());
        assert!(Location::parse("s3://bucket").is_err());
        assert!(Location::parse("s3:///key").is_err());
        assert!(Location::parse("gs://bucket/key")
            .err()
            .is_some_and(|e| e.to_string().contains("unsupported URL scheme")));
        assert!(
            matches!(split_url("s3://b/p/q.floe").unwrap(), Some(Parsed::S3 { bucket, key }) if bucket == "b" && key.as_ref() == "p/q.floe")
        );
    }
}
