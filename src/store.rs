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
//! variables and shared profile files (README, "Object stores"). Every request
//! is bounded by `FLOE_RETRY_TIMEOUT_SECS` (connect, answer and retries), and
//! the two failures a new user meets first, a silent endpoint and missing
//! credentials, get messages that say so (`Net::error`).

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

fn store_err(net: Option<&Net>, context: impl Into<String>, source: object_store::Error) -> Error {
    match net {
        Some(n) => n.error(context.into(), source),
        None => Error::Store { context: context.into(), source },
    }
}

/// The S3 client's plumbing: deadlines, credentials, error messages.
#[cfg(feature = "s3")]
mod remote {
    use super::*;

    /// Where the EC2 instance metadata service answers, unless `AWS_METADATA_ENDPOINT` says otherwise.
    pub(super) const DEFAULT_METADATA_ENDPOINT: &str = "http://169.254.169.254";

    /// What to do when no credentials are found (the message of issue 12, item 10).
    pub(super) const NO_CREDENTIALS: &str =
        "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or \
                                  AWS_PROFILE; for a local server set AWS_ENDPOINT_URL and AWS_ALLOW_HTTP=true";

    /// `FLOE_RETRY_TIMEOUT_SECS`, or its default; at least 1.
    pub(super) fn retry_timeout_secs() -> Result<u64> {
        match std::env::var("FLOE_RETRY_TIMEOUT_SECS") {
            Err(_) => Ok(DEFAULT_RETRY_TIMEOUT_SECS),
            Ok(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(Error::InvalidArgument(format!(
                    "FLOE_RETRY_TIMEOUT_SECS={v}: expected a whole number of seconds, at least 1 (default {DEFAULT_RETRY_TIMEOUT_SECS})"
                ))),
            },
        }
    }

    /// The slowest upload floe waits for: a request with a body gets one more
    /// second per this many bytes (an 8 MiB part: 64 s) on top of `FLOE_RETRY_TIMEOUT_SECS`.
    pub(super) const MIN_UPLOAD_RATE: usize = 128 << 10;

    /// How long a request with a body of `len` bytes may take to be sent and answered.
    pub(super) fn request_deadline(secs: u64, len: usize) -> Duration {
        Duration::from_secs(secs + len.div_ceil(MIN_UPLOAD_RATE) as u64)
    }

    /// Bytes of a CompleteMultipartUpload body per part, at least (`<Part><ETag>"…"</ETag><PartNumber>…`).
    pub(super) const COMPLETE_BYTES_PER_PART: usize = 64;

    /// How long the request that completes an upload may take to be answered:
    /// the server answers once it has put the object together, so one second per
    /// part (counted generously from the size of the request's list of parts).
    pub(super) fn completion_deadline(secs: u64, len: usize) -> Duration {
        Duration::from_secs(secs + len.div_ceil(COMPLETE_BYTES_PER_PART) as u64)
    }

    /// Builds object_store's usual HTTP client, wrapped in [`Deadline`].
    #[derive(Debug)]
    pub(super) struct DeadlineConnector {
        pub(super) secs: u64,
    }

    impl object_store::client::HttpConnector for DeadlineConnector {
        fn connect(
            &self,
            options: &object_store::ClientOptions,
        ) -> object_store::Result<object_store::client::HttpClient> {
            let inner = object_store::client::ReqwestConnector::default().connect(options)?;
            Ok(object_store::client::HttpClient::new(Deadline { inner, secs: self.secs }))
        }
    }

    /// Gives up on a request that is not answered (its response headers have not
    /// arrived) within [`request_deadline`] ([`completion_deadline`] for the
    /// completion of an upload): a silent endpoint fails in
    /// `FLOE_RETRY_TIMEOUT_SECS`, while a large part may take the time it needs to
    /// be sent. The failure is a timeout, retried as object_store retries those.
    #[derive(Debug)]
    pub(super) struct Deadline {
        pub(super) inner: object_store::client::HttpClient,
        pub(super) secs: u64,
    }

    /// The error of a request [`Deadline`] gave up on.
    #[derive(Debug)]
    pub(super) struct NoAnswer {
        pub(super) secs: u64,
    }

    impl std::fmt::Display for NoAnswer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "no answer within {} s", self.secs)
        }
    }

    impl std::error::Error for NoAnswer {}

    pub(super) type HttpResult =
        std::result::Result<object_store::client::HttpResponse, object_store::client::HttpError>;

    // `HttpService` is an `async_trait` trait; this is the signature that macro gives it.
    impl object_store::client::HttpService for Deadline {
        fn call<'a, 'b>(
            &'a self,
            req: object_store::client::HttpRequest,
        ) -> std::pin::Pin<Box<dyn std::future::Future<Output = HttpResult> + Send + 'b>>
        where
            'a: 'b,
            Self: 'b,
        {
            let len = req.body().content_length();
            // CompleteMultipartUpload: POST KEY?uploadId=ID (CreateMultipartUpload is POST KEY?uploads).
            let completes =
                req.method().as_str() == "POST" && req.uri().query().is_some_and(|q| q.contains("uploadId="));
            let t = if completes { completion_deadline(self.secs, len) } else { request_deadline(self.secs, len) };
            Box::pin(async move {
                match tokio::time::timeout(t, self.inner.execute(req)).await {
                    Ok(r) => r,
                    Err(_) => Err(object_store::client::HttpError::new(
                        object_store::client::HttpErrorKind::Timeout,
                        NoAnswer { secs: t.as_secs() },
                    )),
                }
            })
        }
    }

    /// How a remote store is reached, for the messages of its failures.
    pub(super) struct Net {
        /// The S3 endpoint (`AWS_ENDPOINT_URL`, or AWS's own for the region).
        pub(super) endpoint: String,
        /// `FLOE_RETRY_TIMEOUT_SECS` in force.
        pub(super) timeout_secs: u64,
        /// The instance metadata endpoint that credentials may come from.
        pub(super) metadata_endpoint: String,
    }

    impl Net {
        /// An object-store failure as floe reports it: a request that timed out
        /// says so and names the endpoint; a credential lookup through the
        /// instance metadata service that failed says that no credentials were
        /// found and what to set; anything else keeps the library's message.
        pub(super) fn error(&self, context: String, e: object_store::Error) -> Error {
            use object_store::client::{HttpError, HttpErrorKind};
            use std::io::ErrorKind as IoKind;
            let full = chain(&e);
            if full.contains(&self.metadata_endpoint) {
                let msg = format!(
                    "{NO_CREDENTIALS} (the EC2 instance metadata service at {} gave none: {full})",
                    self.metadata_endpoint
                );
                return Error::io(context, std::io::Error::new(IoKind::PermissionDenied, msg));
            }
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(x) = cur {
                if let Some(h) = x.downcast_ref::<HttpError>() {
                    let n = self.timeout_secs;
                    let ep = endpoint_in(&full).unwrap_or_else(|| self.endpoint.clone());
                    let (kind, msg) = match h.kind() {
                        HttpErrorKind::Timeout => {
                            // Deadline's own bound, else the client's (connecting: the same N).
                            let after =
                                std::iter::successors(Some(h as &(dyn std::error::Error + 'static)), |x| x.source())
                                    .find_map(|x| x.downcast_ref::<NoAnswer>())
                                    .map_or(n, |a| a.secs);
                            (
                                IoKind::TimedOut,
                                format!(
                                    "timed out after {after} s talking to {ep}: no answer (FLOE_RETRY_TIMEOUT_SECS={n} \
                                     bounds each request and its retries; check the endpoint, or raise it for a slow link)"
                                ),
                            )
                        }
                        HttpErrorKind::Connect => (
                            IoKind::ConnectionRefused,
                            format!("cannot connect to {ep} (retried for up to {n} s): {}", source_chain(h)),
                        ),
                        _ => break,
                    };
                    return Error::io(context, std::io::Error::new(kind, msg));
                }
                cur = x.source();
            }
            Error::Store { context, source: e }
        }
    }

    /// `scheme://host:port` of the request an object_store error names
    /// ("Error performing GET http://host:port/bucket/key …"), when it names one.
    pub(super) fn endpoint_in(msg: &str) -> Option<String> {
        let rest = &msg[msg.find("Error performing ")? + "Error performing ".len()..];
        let uri = rest.split_whitespace().nth(1)?;
        let (scheme, tail) = uri.split_once("://")?;
        let authority = tail.split(['/', '?']).next().filter(|a| !a.is_empty())?;
        Some(format!("{scheme}://{authority}"))
    }

    /// An error and every source under it, joined with ": ".
    pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
        let mut out = e.to_string();
        let mut cur = e.source();
        while let Some(x) = cur {
            let s = x.to_string();
            if !out.contains(&s) {
                out.push_str(": ");
                out.push_str(&s);
            }
            cur = x.source();
        }
        out
    }

    /// The sources under an error (what the HTTP client said), joined with ": ".
    pub(super) fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
        e.source().map_or_else(|| e.to_string(), chain)
    }

    /// Credentials and region from the shared AWS files, as the AWS CLI reads
    /// them: profile `AWS_PROFILE` (else `default`) of `~/.aws/credentials`
    /// (`AWS_SHARED_CREDENTIALS_FILE`) and `~/.aws/config` (`AWS_CONFIG_FILE`).
    /// Static keys only; the environment's own keys and region take precedence.
    pub(super) fn apply_profile(b: object_store::aws::AmazonS3Builder) -> Result<object_store::aws::AmazonS3Builder> {
        use object_store::aws::AmazonS3ConfigKey as K;
        let named = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
        let name = named.clone().unwrap_or_else(|| "default".into());
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let file = |var: &str, rel: &str| {
            std::env::var_os(var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(rel)))
        };
        let creds_path = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
        let config_path = file("AWS_CONFIG_FILE", ".aws/config");
        let read = |p: &Option<PathBuf>, section: &str| -> Result<Option<Vec<(String, String)>>> {
            let Some(p) = p else { return Ok(None) };
            match std::fs::read_to_string(p) {
                Ok(text) => Ok(ini_section(&text, section)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(format!("reading AWS profile file {}", p.display()), e)),
            }
        };
        let config_section = if name == "default" { "default".to_string() } else { format!("profile {name}") };
        let creds = read(&creds_path, &name)?;
        let config = read(&config_path, &config_section)?;
        if creds.is_none() && config.is_none() {
            if named.is_some() {
                let show = |p: &Option<PathBuf>| p.as_ref().map_or("(no HOME)".into(), |p| p.display().to_string());
                return Err(Error::InvalidArgument(format!(
                    "AWS_PROFILE={name}: no profile [{name}] in {} and no [{config_section}] in {}",
                    show(&creds_path),
                    show(&config_path)
                )));
            }
            return Ok(b);
        }
        let get = |k: &str| {
            let find =
                |s: &Option<Vec<(String, String)>>| s.as_ref()?.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            find(&creds).or_else(|| find(&config))
        };
        let mut b = b;
        if b.get_config_value(&K::Region).is_none() {
            if let Some(r) = get("region") {
                b = b.with_region(r);
            }
        }
        let env_keys =
            b.get_config_value(&K::AccessKeyId).is_some() || b.get_config_value(&K::SecretAccessKey).is_some();
        if env_keys {
            return Ok(b);
        }
        match (get("aws_access_key_id"), get("aws_secret_access_key")) {
            (Some(id), Some(secret)) => {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(t) = get("aws_session_token") {
                    b = b.with_token(t);
                }
                Ok(b)
            }
            _ if named.is_some() => {
                let kind = ["sso_session", "sso_start_url", "role_arn", "credential_process", "source_profile"]
                    .into_iter()
                    .find(|k| get(k).is_some());
                let what = match kind {
                    Some(k) => format!("it uses {k}, which floe does not support (static keys only)"),
                    None => "it has no aws_access_key_id and aws_secret_access_key".into(),
                };
                Err(Error::InvalidArgument(format!(
                    "AWS_PROFILE={name}: {what}; export its keys instead, e.g. eval \"$(aws configure \
                     export-credentials --profile {name} --format env)\""
                )))
            }
            // A default profile without keys (e.g. only a region): other sources may still have credentials.
            _ => Ok(b),
        }
    }

    /// The `key = value` pairs of `[section]` in an INI file (AWS's format), or
    /// `None` when there is no such section.
    pub(super) fn ini_section(text: &str, section: &str) -> Option<Vec<(String, String)>> {
        let mut out: Option<Vec<(String, String)>> = None;
        let mut inside = false;
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = name.trim() == section;
                if inside && out.is_none() {
                    out = Some(Vec::new());
                }
                continue;
            }
            if let (true, Some((k, v))) = (inside, line.split_once('=')) {
                if let Some(o) = out.as_mut() {
                    o.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
        }
        out
    }

    /// Refuses, before any request, a configuration with no credentials at all:
    /// no keys (environment or profile), no web identity, no container
    /// credentials, no anonymous access (`AWS_SKIP_SIGNATURE=true`), and no EC2
    /// instance metadata to ask. The metadata service is asked when the host looks
    /// like an EC2 instance ([`looks_like_ec2`]), when `AWS_METADATA_ENDPOINT` names
    /// one, or when `AWS_EC2_METADATA_DISABLED=false` asks for it; never when
    /// `AWS_EC2_METADATA_DISABLED=true`. Elsewhere it could only time out or be
    /// refused, after a delay and with a message about 169.254.169.254.
    pub(super) fn check_credentials(b: &object_store::aws::AmazonS3Builder, bucket: &str) -> Result<()> {
        use object_store::aws::AmazonS3ConfigKey as K;
        let has = |k: K| b.get_config_value(&k).is_some_and(|v| !v.is_empty());
        let yes = |k: K| b.get_config_value(&k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        if has(K::AccessKeyId) || has(K::SecretAccessKey) // a half pair is reported by object_store
            || yes(K::SkipSignature)
            || (has(K::WebIdentityTokenFile) && has(K::RoleArn))
            || has(K::ContainerCredentialsRelativeUri)
            || has(K::ContainerCredentialsFullUri)
        {
            return Ok(());
        }
        let imds = std::env::var("AWS_EC2_METADATA_DISABLED").ok().map(|v| v.trim().to_ascii_lowercase());
        let ask_imds = match imds.as_deref() {
            Some("true") => false,
            Some("false") => true,
            _ => has(K::MetadataEndpoint) || looks_like_ec2(),
        };
        if ask_imds {
            return Ok(());
        }
        Err(Error::io(
            format!("opening s3://{bucket}"),
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, NO_CREDENTIALS),
        ))
    }

    /// True when this host says it is an EC2 instance (AWS's documented markers:
    /// the DMI vendor, asset tag or product UUID on Nitro, the Xen hypervisor
    /// UUID on older instances), or when that cannot be told (not Linux).
    pub(super) fn looks_like_ec2() -> bool {
        if !cfg!(target_os = "linux") {
            return true;
        }
        let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_ascii_lowercase()).unwrap_or_default();
        let dmi = "/sys/devices/virtual/dmi/id";
        read(&format!("{dmi}/sys_vendor")).contains("amazon ec2")
            || read(&format!("{dmi}/bios_vendor")).contains("amazon ec2")
            || read(&format!("{dmi}/board_asset_tag")).starts_with("i-")
            || read(&format!("{dmi}/product_uuid")).starts_with("ec2")
            || read("/sys/hypervisor/uuid").starts_with("ec2")
    }
}
#[cfg(feature = "s3")]
use remote::*;

/// Without the S3 client there is no network to describe.
#[cfg(not(feature = "s3"))]
pub(crate) struct Net;

#[cfg(not(feature = "s3"))]
impl Net {
    fn error(&self, context: String, e: object_store::Error) -> Error {
        Error::Store { context, source: e }
    }
}

/// An object store and a display prefix for messages (`s3://bucket`).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    url: String,
    /// How a remote store is reached (for messages); `None` for a local directory.
    net: Option<Arc<Net>>,
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
    /// An S3 (or S3-compatible) bucket configured from the AWS environment
    /// and the shared profile files (README, "Object stores"). Refuses, before
    /// any request, to run without credentials (`check_credentials`).
    #[cfg(feature = "s3")]
    pub fn s3(bucket: &str) -> Result<Store> {
        use object_store::aws::AmazonS3ConfigKey as K;
        use object_store::ClientConfigKey as C;
        let secs = retry_timeout_secs()?;
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        b = apply_profile(b)?;
        check_credentials(&b, bucket)?;
        // FLOE_RETRY_TIMEOUT_SECS bounds connecting, sending a request and
        // waiting for its answer (`Deadline`: longer by the time its body
        // takes at MIN_UPLOAD_RATE), and the retries. The client's own bound
        // on a whole request, the download of its answer included, is as long
        // as the largest block takes at that rate.
        let whole = request_deadline(secs, crate::format::limits::MAX_FRAME as usize);
        b = b
            .with_config(K::Client(C::ConnectTimeout), format!("{secs}s"))
            .with_config(K::Client(C::Timeout), format!("{}s", whole.as_secs()))
            .with_http_connector(DeadlineConnector { secs });
        let backoff = object_store::BackoffConfig {
            max_backoff: Duration::from_millis((secs * 250).clamp(100, 15_000)),
            ..Default::default()
        };
        // Retried until the time is up, however many tries that takes.
        let retry = object_store::RetryConfig { backoff, max_retries: 1000, retry_timeout: Duration::from_secs(secs) };
        let endpoint =
            b.get_config_value(&K::S3Endpoint).or_else(|| b.get_config_value(&K::Endpoint)).unwrap_or_else(|| {
                let region = b.get_config_value(&K::Region).unwrap_or_else(|| "us-east-1".into());
                format!("https://s3.{region}.amazonaws.com")
            });
        let metadata = b.get_config_value(&K::MetadataEndpoint).unwrap_or_else(|| DEFAULT_METADATA_ENDPOINT.into());
        let net = Net { endpoint, timeout_secs: secs, metadata_endpoint: metadata };
        let s3 = b
            .with_retry(retry)
            .build()
            .map_err(|e| store_err(None, format!("configuring s3://{bucket} from the AWS_* environment"), e))?;
        Ok(Store { backend: Backend::Remote(Arc::new(s3)), url: format!("s3://{bucket}"), net: Some(Arc::new(net)) })
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
        Ok(Store { backend: Backend::Local(Arc::new(dir.to_owned())), url: dir.display().to_string(), net: None })
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
            Err(e) => Err(store_err(self.net.as_deref(), format!("reading {}", self.describe(key)), e)),
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
            Err(e) => Err(store_err(self.net.as_deref(), format!("reading the size of {}", self.describe(key)), e)),
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
            Err(e) => Err(store_err(self.net.as_deref(), format!("writing {}", self.describe(key)), e)),
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
            Err(e) => Err(store_err(self.net.as_deref(), format!("deleting {}", self.describe(key)), e)),
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
                    .map_err(|e| store_err(self.net.as_deref(), format!("listing {}", self.describe(prefix)), e))?;
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
                    .map_err(|e| store_err(self.net.as_deref(), format!("listing {}", self.describe(prefix)), e))?;
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
                    net: None,
                });
            }
        };
        let rt = runtime()?;
        let up = rt.block_on(inner.put_multipart(&self.key)).map_err(|e| {
            store_err(self.store.net.as_deref(), format!("starting the upload of {}", self.describe()), e)
        })?;
        tracing::debug!(object = %self.describe(), part_size = PART_SIZE, "store: multipart upload started");
        Ok(ObjectWriter {
            up: Upload::Remote(Some(WriteMultipart::new_with_chunk_size(up, PART_SIZE))),
            name: self.describe(),
            written: 0,
            net: self.store.net.clone(),
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
                let from = From::Remote(inner.clone(), self.key.clone(), self.store.net.clone());
                Ok(ObjectSource { from, size, name: self.describe() })
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
    net: Option<Arc<Net>>,
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
                let mut up = up.take().ok_or_else(done)?;
                // A part that failed is the error to report: WriteMultipart::finish
                // would report its abort's instead when that fails too (a server
                // that lost the upload).
                if let Err(e) = rt.block_on(up.wait_for_capacity(0)) {
                    let err = store_err(self.net.as_deref(), format!("uploading {}", self.name), e);
                    let _ = rt.block_on(up.abort());
                    return Err(err);
                }
                match rt.block_on(up.finish()) {
                    Ok(_) => {
                        tracing::debug!(object = %self.name, bytes = self.written, "store: multipart upload completed");
                        Ok(self.written)
                    }
                    // WriteMultipart::finish aborts the upload itself when a part failed.
                    Err(e) => Err(store_err(self.net.as_deref(), format!("completing the upload of {}", self.name), e)),
                }
            }
        }
    }

    fn io_err(&self, e: object_store::Error) -> std::io::Error {
        // The message of `Net::error` (a timeout, missing credentials), as an io::Error of its kind.
        match store_err(self.net.as_deref(), format!("uploading {}", self.name), e) {
            Error::Io { context, source } => std::io::Error::new(source.kind(), format!("{context}: {source}")),
            other => std::io::Error::other(other.to_string()),
        }
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
                let r = rt.block_on(up.abort());
                tracing::debug!(object = %self.name, bytes = self.written, ok = r.is_ok(), "store: multipart upload aborted");
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
    Remote(Arc<dyn ObjectStore>, ObjPath, Option<Arc<Net>>),
    Local(Arc<std::fs::File>),
}

impl Source for ObjectSource {
    fn size(&self) -> u64 {
        self.size
    }
    fn fetch(&self, start: u64, len: u64) -> Fetch {
        let name = self.name.clone();
        let (store, key, net) = match &self.from {
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
            From::Remote(store, key, net) => (store.clone(), key.clone(), net.clone()),
        };
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(e) => {
                let msg = e.to_string();
                return Fetch::new(move || Err(Error::io("object-store runtime", std::io::Error::other(msg))));
            }
        };
        tracing::trace!(object = %name, start, len, "store: range read");
        let task = rt.spawn(async move { store.get_range(&key, start..start + len).await });
        Fetch::new(move || match rt.block_on(task) {
            Ok(Ok(b)) => Ok(b),
            Ok(Err(e)) => Err(store_err(net.as_deref(), format!("reading {name} at offset {start} ({len} bytes)"), e)),
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
    fn ini_sections_as_aws_writes_them() {
        let text = "# comment\n[default]\naws_access_key_id = AK\n; other comment\nAWS_Secret_Access_Key=SK \n\n\
                    [profile dev]\nregion = eu-west-1\n[dev]\naws_access_key_id=DK\n";
        let d = ini_section(text, "default").unwrap();
        assert_eq!(d, vec![("aws_access_key_id".into(), "AK".into()), ("aws_secret_access_key".into(), "SK".into())]);
        assert_eq!(ini_section(text, "profile dev").unwrap(), vec![("region".into(), "eu-west-1".into())]);
        assert_eq!(ini_section(text, "dev").unwrap(), vec![("aws_access_key_id".into(), "DK".into())]);
        assert!(ini_section(text, "nope").is_none());
        assert_eq!(ini_section("[empty]\n", "empty"), Some(vec![]));
    }

    #[test]
    fn the_endpoint_an_error_names() {
        let m = "Generic S3 error: Error performing HEAD http://127.0.0.1:4566/b/k.floe in 2.0s - HTTP error";
        assert_eq!(endpoint_in(m).as_deref(), Some("http://127.0.0.1:4566"));
        let m = "Error performing PUT https://b.s3.eu-west-1.amazonaws.com?uploads in 1s";
        assert_eq!(endpoint_in(m).as_deref(), Some("https://b.s3.eu-west-1.amazonaws.com"));
        assert_eq!(endpoint_in("Error performing GET REDACTED in 1s"), None);
        assert_eq!(endpoint_in("something else"), None);
    }

    #[test]
    fn deadlines_grow_with_what_a_request_carries() {
        assert_eq!(request_deadline(5, 0), Duration::from_secs(5));
        assert_eq!(request_deadline(5, 1), Duration::from_secs(6));
        assert_eq!(request_deadline(60, PART_SIZE), Duration::from_secs(60 + 64));
        // 50 parts' worth of CompleteMultipartUpload XML (~90 bytes a part): at least 50 s more.
        assert!(completion_deadline(2, 50 * 90) >= Duration::from_secs(52));
    }

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
