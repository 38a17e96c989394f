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
//! * Reading is by ranges ([`ObjectSource`], a [`crate::reader::Source`]):
//!   the reader fetches the trailer, index, header and keyspace table, then
//!   each block with its own ranged GET, several in flight.
//!
//! S3 credentials, region and endpoint come from the standard AWS environment
//! variables (README, "Object stores").

use crate::reader::{Archive, Fetch, Source};
use crate::{Error, Result};
use futures_util::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
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
    inner: Arc<dyn ObjectStore>,
    url: String,
}

/// One object: a store and a key.
#[derive(Clone)]
pub struct Object {
    pub store: Store,
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

    /// Where an export to this location goes.
    pub fn destination(&self) -> crate::export::Destination<'_> {
        match self {
            Location::Local(p) => crate::export::Destination::File(p),
            Location::Object(o) => crate::export::Destination::Object(o.clone()),
        }
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
        Ok(Store { inner: Arc::new(s3), url: format!("s3://{bucket}") })
    }

    /// A local directory used through the object-store API; created if
    /// missing when `create`, else a missing one is an error.
    pub fn local_dir(dir: &Path, create: bool) -> Result<Store> {
        if create {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        } else if !dir.is_dir() {
            return Err(Error::io(
                format!("opening {}", dir.display()),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
            ));
        }
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| store_err(format!("opening {}", dir.display()), e))?;
        Ok(Store { inner: Arc::new(fs), url: dir.display().to_string() })
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

    /// `s3://bucket/key` (or `dir/key`) for messages.
    pub fn describe(&self, key: &ObjPath) -> String {
        format!("{}/{}", self.url, key)
    }

    /// The object's bytes, or `None` when it does not exist.
    pub fn get(&self, key: &ObjPath) -> Result<Option<bytes::Bytes>> {
        let rt = runtime()?;
        let r = rt.block_on(async { self.inner.get(key).await?.bytes().await });
        match r {
            Ok(b) => Ok(Some(b)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(format!("reading {}", self.describe(key)), e)),
        }
    }

    /// Size of the object, or `None` when it does not exist.
    pub fn size(&self, key: &ObjPath) -> Result<Option<u64>> {
        match runtime()?.block_on(self.inner.head(key)) {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err(format!("reading the size of {}", self.describe(key)), e)),
        }
    }

    /// Writes a small object; with `create_only`, atomically and only if no
    /// object of that name exists (S3 `If-None-Match: *`). Returns false when
    /// `create_only` found one.
    pub fn put(&self, key: &ObjPath, bytes: Vec<u8>, create_only: bool) -> Result<bool> {
        let mode = if create_only { PutMode::Create } else { PutMode::Overwrite };
        let opts = PutOptions { mode, ..Default::default() };
        match runtime()?.block_on(self.inner.put_opts(key, PutPayload::from(bytes), opts)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) if create_only => Ok(false),
            Err(e) => Err(store_err(format!("writing {}", self.describe(key)), e)),
        }
    }

    /// Deletes an object; a missing one is not an error.
    pub fn delete(&self, key: &ObjPath) -> Result<()> {
        match runtime()?.block_on(self.inner.delete(key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_err(format!("deleting {}", self.describe(key)), e)),
        }
    }

    /// Every object under `prefix`: (key, size).
    pub fn list(&self, prefix: &ObjPath) -> Result<Vec<(ObjPath, u64)>> {
        let rt = runtime()?;
        let metas: Vec<object_store::ObjectMeta> = rt
            .block_on(self.inner.list(Some(prefix)).try_collect())
            .map_err(|e| store_err(format!("listing {}", self.describe(prefix)), e))?;
        let mut out: Vec<(ObjPath, u64)> = metas.into_iter().map(|m| (m.location, m.size)).collect();
        out.sort_by(|a, b| a.0.as_ref().cmp(b.0.as_ref()));
        Ok(out)
    }
}

impl Object {
    /// `s3://bucket/key` for messages.
    pub fn describe(&self) -> String {
        self.store.describe(&self.key)
    }

    /// Starts a multipart upload to this object.
    pub fn writer(&self) -> Result<ObjectWriter> {
        let rt = runtime()?;
        let up = rt
            .block_on(self.store.inner.put_multipart(&self.key))
            .map_err(|e| store_err(format!("starting the upload of {}", self.describe()), e))?;
        Ok(ObjectWriter {
            up: Some(WriteMultipart::new_with_chunk_size(up, PART_SIZE)),
            name: self.describe(),
            written: 0,
        })
    }

    /// Opens the object for ranged reads (one HEAD request for its size).
    pub fn source(&self) -> Result<ObjectSource> {
        let size = self.store.size(&self.key)?.ok_or_else(|| {
            Error::io(
                format!("opening archive {}", self.describe()),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such object"),
            )
        })?;
        Ok(ObjectSource { store: self.store.inner.clone(), key: self.key.clone(), size, name: self.describe() })
    }
}

/// A `Write` that streams into a multipart upload with bounded memory.
/// Dropped without [`ObjectWriter::finish`], it aborts the upload.
pub struct ObjectWriter {
    up: Option<WriteMultipart>,
    name: String,
    written: u64,
}

impl ObjectWriter {
    /// Uploads what is buffered and completes the upload: only now does the
    /// object appear, whole. On error the upload is aborted.
    pub fn finish(mut self) -> Result<u64> {
        let rt = runtime()?;
        let Some(up) = self.up.take() else { return Err(Error::InvalidArgument("upload already finished".into())) };
        match rt.block_on(up.finish()) {
            Ok(_) => Ok(self.written),
            // WriteMultipart::finish aborts the upload itself when a part failed.
            Err(e) => Err(store_err(format!("completing the upload of {}", self.name), e)),
        }
    }

    fn io_err(&self, e: object_store::Error) -> std::io::Error {
        std::io::Error::other(format!("uploading {}: {e}", self.name))
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let rt = runtime().map_err(std::io::Error::other)?;
        let Some(up) = self.up.as_mut() else { return Err(std::io::Error::other("upload already finished")) };
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
        if let (Some(up), Ok(rt)) = (self.up.take(), runtime()) {
            // Best effort: a server that is gone cannot be told; see `floe backup gc`.
            let _ = rt.block_on(up.abort());
        }
    }
}

/// An object read by ranges, for [`Archive`].
pub struct ObjectSource {
    store: Arc<dyn ObjectStore>,
    key: ObjPath,
    size: u64,
    name: String,
}

impl Source for ObjectSource {
    fn size(&self) -> u64 {
        self.size
    }
    fn fetch(&self, start: u64, len: u64) -> Fetch {
        let (store, key, name) = (self.store.clone(), self.key.clone(), self.name.clone());
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
    Mapped(memmap2::Mmap),
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
