//! Import cost by keyspace count (BENCHMARKS.md, "Many keyspaces").
//!
//! `cargo run --release --example many_keyspaces -- N [DIR]` writes an archive
//! of N keyspaces of one small record each with `floe::write::RecordWriter`,
//! imports it with `floe::import::import_file` and prints the time, the peak
//! RSS and the size of the database built, ignoring floe's limit of
//! `MAX_IMPORT_KEYSPACES`. Every 30 s it prints how many keyspaces the
//! import has built so far; `--stop-after SECS` ends it there. With
//! `--fjall`, it only creates N keyspaces in a fresh fjall database and prints
//! the time per 1,024.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "example code: a panic is a failed run")]

use floe::format::header::Header;
use floe::format::keyspace_table::KeyspaceEntry;
use floe::write::RecordWriter;
use std::path::Path;
use std::time::Instant;

fn peak_rss_mib() -> u64 {
    let st = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    st.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        >> 10
}

fn du(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fjall_only = args.iter().any(|a| a == "--fjall");
    let mut stop_after: Option<u64> = None;
    let mut rest: Vec<&String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--stop-after" => stop_after = it.next().and_then(|s| s.parse().ok()),
            "--fjall" => {}
            _ => rest.push(a),
        }
    }
    let n: usize = rest.first().and_then(|s| s.parse().ok()).expect("usage: many_keyspaces N [DIR] [--fjall]");
    let tmp = tempfile::tempdir_in(rest.get(1).map_or(".", |s| s.as_str())).expect("temporary directory");
    let names: Vec<String> = (0..n).map(|i| format!("ks{i:05}")).collect();
    if fjall_only {
        let db = fjall::Database::builder(tmp.path().join("db")).open().expect("open");
        let mut t = Instant::now();
        for (i, name) in names.iter().enumerate() {
            db.keyspace(name, fjall::KeyspaceCreateOptions::default).expect("keyspace");
            if (i + 1) % 1024 == 0 {
                println!("{:>6} keyspaces: last 1,024 in {:.2}s", i + 1, t.elapsed().as_secs_f64());
                t = Instant::now();
            }
        }
        return;
    }
    let archive = tmp.path().join("many.floe");
    let entries: Vec<KeyspaceEntry> =
        names.iter().map(|n| KeyspaceEntry { name: n.clone(), options: Default::default() }).collect();
    let out = std::io::BufWriter::new(std::fs::File::create(&archive).expect("archive"));
    let mut w = RecordWriter::new(out, Header::new(1, 4096, 0), entries).expect("writer");
    for name in &names {
        w.begin_keyspace(name).expect("begin");
        w.put(b"key", b"value").expect("put");
    }
    w.finish().expect("finish");
    let len = std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0);
    let target = tmp.path().join("db");
    let t = Instant::now();
    let root = tmp.path().to_path_buf();
    std::thread::spawn(move || loop {
        std::thread::sleep(std::time::Duration::from_secs(30));
        let building = std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with(".db.") && e.path().join("keyspaces").is_dir());
        let Some(b) = building else { continue };
        let built = std::fs::read_dir(b.path().join("keyspaces")).map(|r| r.count()).unwrap_or(0);
        println!(
            "  after {:>4.0}s: {built} keyspaces built, peak RSS {} MiB, {} MiB on disk",
            t.elapsed().as_secs_f64(),
            peak_rss_mib(),
            du(&b.path()) >> 20
        );
        if stop_after.is_some_and(|s| t.elapsed().as_secs() >= s) {
            let _ = std::fs::remove_dir_all(&root);
            std::process::exit(0);
        }
    });
    let opts = {
        let mut o = floe::import::ImportOptions::default();
        o.max_keyspaces = usize::MAX;
        o
    };
    let s = floe::import::import_file(&archive, &target, &opts, &floe::progress::NoProgress);
    let secs = t.elapsed().as_secs_f64();
    match s {
        Ok(s) => println!(
            "{n} keyspaces ({} KiB archive): imported {} records in {secs:.2}s, peak RSS {} MiB, database {} MiB",
            len >> 10,
            s.records,
            peak_rss_mib(),
            du(&target) >> 20
        ),
        Err(e) => println!("{n} keyspaces: import failed after {secs:.2}s: {e}"),
    }
}
