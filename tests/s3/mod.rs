//! Real S3-compatible servers on loopback for the object-store tests, both
//! installed by scripts/test-all.sh:
//!
//! * moto's server mode (`FLOE_MOTO_SERVER` = path of `moto_server`), which
//!   keeps its state in memory: a killed server comes back empty;
//! * s3s-fs (`FLOE_S3FS_SERVER` = path of the `s3s-fs` binary), which keeps
//!   buckets as folders and objects as files under a root directory, and its
//!   multipart uploads and parts as files at the top of that root: a killed
//!   server comes back with everything it had, so what a failed upload leaves
//!   behind can be seen on disk ([`Server::multipart_leftovers`]).
//!
//! Without the variable a test prints a note and passes, unless
//! `FLOE_REQUIRE_S3=1` (set by test-all.sh), which makes it fail instead.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// moto: in memory.
    Moto,
    /// s3s-fs: on disk.
    S3sFs,
}

/// A server on 127.0.0.1:port, killed when dropped.
pub struct Server {
    pub kind: Kind,
    exe: String,
    pub port: u16,
    child: Option<Child>,
    /// s3s-fs's data directory (kept across kill and restart).
    root: Option<tempfile::TempDir>,
}

/// Backwards-compatible name of the server type.
pub type Moto = Server;

fn exe_or_skip(var: &str, what: &str) -> Option<String> {
    match std::env::var_os(var) {
        Some(exe) => Some(exe.to_string_lossy().into_owned()),
        None => {
            if std::env::var("FLOE_REQUIRE_S3").is_ok_and(|v| v == "1") {
                panic!("FLOE_REQUIRE_S3=1 but {var} (path of {what}) is not set");
            }
            eprintln!(
                "note: {var} is not set: skipping this S3 test (scripts/test-all.sh installs {what} and sets it)"
            );
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port()
}

/// Starts a moto server, or returns `None` (after a printed note) when the
/// tests are to be skipped.
pub fn moto() -> Option<Server> {
    let exe = exe_or_skip("FLOE_MOTO_SERVER", "moto_server")?;
    let mut m = Server { kind: Kind::Moto, exe, port: free_port(), child: None, root: None };
    m.start();
    Some(m)
}

/// Starts an s3s-fs server on a fresh data directory, or returns `None`.
pub fn s3fs() -> Option<Server> {
    let exe = exe_or_skip("FLOE_S3FS_SERVER", "s3s-fs")?;
    let root = tempfile::Builder::new().prefix("floe-s3fs-").tempdir().expect("a temporary directory");
    let mut m = Server { kind: Kind::S3sFs, exe, port: free_port(), child: None, root: Some(root) };
    m.start();
    Some(m)
}

/// The server of `kind`, or `None` when its tests are skipped.
pub fn server(kind: Kind) -> Option<Server> {
    match kind {
        Kind::Moto => moto(),
        Kind::S3sFs => s3fs(),
    }
}

/// The access key and secret every server and floe process of the tests use.
const KEY: &str = "test";

impl Server {
    fn start(&mut self) {
        let port = self.port.to_string();
        let mut c = Command::new(&self.exe);
        match self.kind {
            Kind::Moto => c.args(["-H", "127.0.0.1", "-p", &port]),
            Kind::S3sFs => c
                .args(["--host", "127.0.0.1", "--port", &port, "--access-key", KEY, "--secret-key", KEY])
                .arg(self.root()),
        };
        let child = c
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.exe));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Any HTTP answer will do (s3s-fs refuses unsigned requests).
        while self.http("GET", "/", b"").is_none() {
            assert!(Instant::now() < deadline, "{} did not answer on port {}", self.exe, self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The data directory of an s3s-fs server.
    pub fn root(&self) -> &Path {
        self.root.as_ref().expect("an s3s-fs server has a data directory").path()
    }

    /// Kills the server (SIGKILL, as a crash). moto loses all its state;
    /// s3s-fs keeps what it wrote to disk.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port: moto empty, s3s-fs with its data.
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    /// True when a killed server comes back with its objects and uploads.
    pub fn persistent(&self) -> bool {
        self.kind == Kind::S3sFs
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a floe process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            // Long enough for moto under a loaded machine (a Python server
            // serving parallel tests); the tests of dead servers set 2.
            ("FLOE_RETRY_TIMEOUT_SECS", "20".into()),
        ]
    }

    /// A floe command with this server's environment.
    pub fn floe(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_floe"));
        c.args(args).stdin(Stdio::null()).env_remove("SOURCE_DATE_EPOCH");
        for k in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT", "AWS_DEFAULT_REGION"] {
            c.env_remove(k);
        }
        for (k, v) in self.env() {
            c.env(k, v);
        }
        c
    }

    /// One plain HTTP/1.1 request, unsigned; returns (status, body), or
    /// `None` when the server does not answer. (moto accepts unsigned
    /// requests; s3s-fs answers them with 403.)
    pub fn http(&self, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes()).ok()?;
        s.write_all(body).ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        let text = String::from_utf8_lossy(&out).into_owned();
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_owned());
        Some((status, body))
    }

    /// The file of an object on an s3s-fs server (`/bucket/key`).
    fn object_file(&self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    /// The bytes of an object (`/bucket/key`), or `None` when it does not exist.
    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        if self.kind == Kind::S3sFs {
            return std::fs::read(self.object_file(path)).ok();
        }
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.port).ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        let at = out.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        out.starts_with(b"HTTP/1.1 200").then(|| out[at..].to_vec())
    }

    /// Writes an object: on s3s-fs the file itself (written aside, then
    /// renamed into place); on moto with a signed request (boto3 from moto's
    /// virtualenv: moto refuses anonymous overwrites of objects written
    /// anonymously).
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        if self.kind == Kind::S3sFs {
            let dest = self.object_file(&format!("{bucket}/{key}"));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            let tmp = self.root().join(".floe-test-put");
            std::fs::write(&tmp, body).unwrap();
            std::fs::rename(&tmp, &dest).unwrap();
            return;
        }
        let python = Path::new(&self.exe).with_file_name("python");
        let script = "import boto3,sys; boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', \
                      aws_secret_access_key='test').put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=sys.stdin.buffer.read())";
        let mut c = Command::new(&python)
            .args(["-c", script, &self.endpoint(), bucket, key])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running {}: {e}", python.display()));
        c.stdin.take().expect("stdin").write_all(body).expect("writing to python");
        assert!(c.wait().expect("python").success(), "putting s3://{bucket}/{key} failed");
    }

    pub fn create_bucket(&self, bucket: &str) {
        if self.kind == Kind::S3sFs {
            std::fs::create_dir_all(self.root().join(bucket)).unwrap();
            return;
        }
        let (status, body) = self.http("PUT", &format!("/{bucket}"), b"").expect("moto answers");
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    }

    /// Keys of the objects under `prefix`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        if self.kind == Kind::S3sFs {
            let root = self.root().join(bucket);
            let mut out = Vec::new();
            let mut dirs = vec![root.clone()];
            while let Some(d) = dirs.pop() {
                for e in std::fs::read_dir(&d).unwrap() {
                    let e = e.unwrap();
                    if e.file_type().unwrap().is_dir() {
                        dirs.push(e.path());
                    } else {
                        let key = e.path().strip_prefix(&root).unwrap().to_string_lossy().into_owned();
                        if key.starts_with(prefix) {
                            out.push(key);
                        }
                    }
                }
            }
            out.sort();
            return out;
        }
        let (status, body) =
            self.http("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"), b"").expect("moto answers");
        assert_eq!(status, 200, "listing {bucket}: {body}");
        tags(&body, "Key")
    }

    /// Multipart uploads started and neither completed nor aborted (on s3s-fs
    /// for every bucket: it keeps them at the top of its data directory).
    pub fn pending_uploads(&self, bucket: &str) -> Vec<String> {
        if self.kind == Kind::S3sFs {
            return self
                .top_files()
                .into_iter()
                .filter_map(|n| n.strip_prefix(".upload-")?.strip_suffix(".json").map(str::to_owned))
                .collect();
        }
        let (status, body) = self.http("GET", &format!("/{bucket}?uploads"), b"").expect("moto answers");
        assert_eq!(status, 200, "listing uploads of {bucket}: {body}");
        tags(&body, "UploadId")
    }

    /// What multipart uploads left on an s3s-fs server's disk: upload records
    /// (`.upload-ID.json`), their metadata (`….upload-ID.metadata.json`), parts
    /// (`.upload_id-ID.part-N`) and half-written files (`.tmp.N.internal.part`).
    /// Empty on moto, whose state cannot be seen on disk.
    pub fn multipart_leftovers(&self) -> Vec<String> {
        if self.kind != Kind::S3sFs {
            return Vec::new();
        }
        self.top_files().into_iter().filter(|n| n.contains(".upload") || n.starts_with(".tmp.")).collect()
    }

    fn top_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

fn tags(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open).skip(1).filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_owned())).collect()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
