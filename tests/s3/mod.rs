//! A real S3-compatible server on loopback for the object-store tests: moto's
//! server mode (`FLOE_MOTO_SERVER` = path of `moto_server`, installed by
//! scripts/test-all.sh). Without it the tests print a note and pass, unless
//! `FLOE_REQUIRE_S3=1` (set by test-all.sh), which makes them fail instead.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A moto server on 127.0.0.1:port, killed when dropped.
pub struct Moto {
    exe: String,
    pub port: u16,
    child: Option<Child>,
}

/// Starts a server, or returns `None` (after a printed note) when the tests
/// are to be skipped.
pub fn moto() -> Option<Moto> {
    let Some(exe) = std::env::var_os("FLOE_MOTO_SERVER") else {
        if std::env::var("FLOE_REQUIRE_S3").is_ok_and(|v| v == "1") {
            panic!("FLOE_REQUIRE_S3=1 but FLOE_MOTO_SERVER (path of moto_server) is not set");
        }
        eprintln!(
            "note: FLOE_MOTO_SERVER is not set: skipping this S3 test (scripts/test-all.sh installs moto and sets it)"
        );
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free loopback port").port();
    let mut m = Moto { exe: exe.to_string_lossy().into_owned(), port, child: None };
    m.start();
    Some(m)
}

impl Moto {
    fn start(&mut self) {
        let child = Command::new(&self.exe)
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.exe));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.http("GET", "/", b"").is_none() {
            assert!(Instant::now() < deadline, "moto_server did not answer on port {}", self.port);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the server (all its state is lost, as with a crashed server).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty).
    pub fn restart(&mut self) {
        self.kill();
        self.start();
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a floe process needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("FLOE_RETRY_TIMEOUT_SECS", "2".into()),
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

    /// One plain HTTP/1.1 request (moto accepts unsigned requests); returns
    /// (status, body), or `None` when the server does not answer.
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

    /// The bytes of an object, or `None` when it does not exist.
    pub fn get(&self, path: &str) -> Option<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.port).ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).ok()?;
        let at = out.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        out.starts_with(b"HTTP/1.1 200").then(|| out[at..].to_vec())
    }

    /// Writes an object with a signed request (boto3 from moto's virtualenv:
    /// moto refuses anonymous overwrites of objects written anonymously).
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
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
        let (status, body) = self.http("PUT", &format!("/{bucket}"), b"").expect("moto answers");
        assert_eq!(status, 200, "creating bucket {bucket}: {body}");
    }

    /// Keys of the objects under `prefix`.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) =
            self.http("GET", &format!("/{bucket}?list-type=2&prefix={prefix}"), b"").expect("moto answers");
        assert_eq!(status, 200, "listing {bucket}: {body}");
        tags(&body, "Key")
    }

    /// Multipart uploads started and neither completed nor aborted.
    pub fn pending_uploads(&self, bucket: &str) -> Vec<String> {
        let (status, body) = self.http("GET", &format!("/{bucket}?uploads"), b"").expect("moto answers");
        assert_eq!(status, 200, "listing uploads of {bucket}: {body}");
        tags(&body, "UploadId")
    }
}

fn tags(xml: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    xml.split(&open).skip(1).filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_owned())).collect()
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.kill();
    }
}
