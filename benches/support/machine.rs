//! The machine a benchmark ran on, as Markdown list items (shared by the
//! bench targets through `#[path]`).

use std::fmt::Write;
use std::process::Command;

/// nproc, CPU, memory, kernel and the peer tools' versions.
pub fn machine() -> String {
    let cmd = |c: &str| {
        Command::new("sh")
            .args(["-c", c])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let mut s = String::new();
    let _ = writeln!(s, "- nproc: {}", cmd("nproc"));
    let _ = writeln!(s, "- CPU: {}", cmd("lscpu | sed -n 's/^Model name: *//p' | head -1"));
    let _ = writeln!(s, "- memory: {}", cmd("free -h | awk '/^Mem:/ {print $2\" total, \"$7\" available\"}'"));
    let _ = writeln!(s, "- kernel: {}", cmd("uname -sr"));
    let _ = writeln!(s, "- zstd: {}", cmd("zstd -V"));
    let _ = writeln!(s, "- ldb: {}", cmd("dpkg-query -W -f '${Version}' rocksdb-tools 2>/dev/null || echo absent"));
    let _ = writeln!(s, "- lmdb-utils: {}", cmd("dpkg-query -W -f '${Version}' lmdb-utils 2>/dev/null || echo absent"));
    s
}
