//! The CLI's progress display and log output (issue 12, items 1 and 3),
//! driven through a pseudo-terminal (`script` from util-linux): the export
//! bar has a total (fjall's estimate) and a percentage that moves, names the
//! keyspace and counts records; `export -o - | import -` shows one bar and
//! leaves no bar line behind; `-v` and `--log-format json` log the snapshot,
//! each keyspace and the phases' times, and nothing at info level without
//! `-v`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

/// `s` quoted for `sh`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What a terminal shows after `raw`: carriage return, line feed, cursor up
/// and down (`ESC [ n A`/`B`), erase line (`ESC [ 2K`); other escape
/// sequences are ignored. Trailing blanks and empty lines are dropped.
fn screen(raw: &str) -> Vec<String> {
    let mut lines: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut it = raw.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\r' => col = 0,
            '\n' => row += 1,
            '\x1b' => {
                if it.peek() != Some(&'[') {
                    continue;
                }
                it.next();
                let mut param = String::new();
                let mut cmd = ' ';
                for c in it.by_ref() {
                    if c.is_ascii_alphabetic() {
                        cmd = c;
                        break;
                    }
                    param.push(c);
                }
                let n: usize = param.parse().unwrap_or(1);
                match cmd {
                    'A' => row = row.saturating_sub(n),
                    'B' => row += n,
                    'K' if param == "2" => {
                        if let Some(l) = lines.get_mut(row) {
                            l.clear();
                        }
                    }
                    'K' => {
                        if let Some(l) = lines.get_mut(row) {
                            l.truncate(col);
                        }
                    }
                    _ => {}
                }
            }
            c => {
                while lines.len() <= row {
                    lines.push(Vec::new());
                }
                let l = &mut lines[row];
                while l.len() < col {
                    l.push(' ');
                }
                if col < l.len() {
                    l[col] = c;
                } else {
                    l.push(c);
                }
                col += 1;
            }
        }
        while lines.len() <= row {
            lines.push(Vec::new());
        }
    }
    lines
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Every percentage a bar drew (`NN% [`).
fn percentages(raw: &str) -> Vec<u32> {
    let b = raw.as_bytes();
    let mut out = Vec::new();
    for (i, _) in raw.match_indices("% [") {
        let start = (0..i).rev().take_while(|&j| b[j].is_ascii_digit()).last();
        if let Some(s) = start {
            out.push(raw[s..i].parse().unwrap());
        }
    }
    out
}

/// Two keyspaces of 1,000 records of 2 KiB random bytes each (about 4 MiB
/// that do not compress), in blocks of 4 KiB.
fn db_4mib(dir: &Path) -> std::path::PathBuf {
    let mut rng = floe::sample::Rng(7);
    let mut m = Model::new();
    for name in ["alpha", "beta"] {
        let recs = (0..1000u32)
            .map(|i| {
                let mut v = vec![0u8; 2048];
                rng.fill(&mut v);
                (format!("key{i:05}").into_bytes(), v)
            })
            .collect();
        m.insert(name.into(), recs);
    }
    make_db_dir(&dir.join("db"), &m, &BTreeSet::new())
}

#[test]
fn the_export_bar_has_a_total_and_moves_and_is_cleared() {
    let dir = tempdir();
    let db = db_4mib(dir.path());
    // A FIFO read slowly (64 KiB per 10 ms, about 0.7 s for the archive)
    // paces the export, so the bar is drawn at many points between 0 and
    // 100% however fast the machine.
    let fifo = dir.path().join("out.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            use std::io::Read;
            let mut f = std::fs::File::open(&fifo).unwrap();
            let (mut buf, mut n) = (vec![0u8; 64 << 10], 0u64);
            loop {
                let got = f.read(&mut buf).unwrap();
                if got == 0 {
                    return n;
                }
                n += got as u64;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        })
    };
    let cmd = format!(
        "{} -v export {} -o {} --block-size 4096 -t 1",
        sh_quote(floe_bin()),
        sh_quote(p(&db)),
        sh_quote(p(&fifo))
    );
    let (raw, code) = on_terminal(&cmd);
    let archive_bytes = reader.join().unwrap();
    assert_eq!(code, 0, "{raw}");
    assert!(archive_bytes > 4_000_000, "{archive_bytes}");
    let pct = percentages(&raw);
    assert!(pct.iter().all(|&p| p <= 100), "a percentage above 100: {pct:?}");
    assert!(pct.iter().any(|&p| p > 0 && p < 100), "no percentage between 0 and 100 was drawn: {pct:?}\n{raw}");
    assert!(pct.iter().filter(|&&p| (20..=80).contains(&p)).count() >= 2, "the bar hardly moved: {pct:?}");
    // Bytes of a total, the records of an estimated total, the keyspace.
    assert!(raw.contains(" MiB/") || raw.contains(" KiB/"), "no bytes/total: {raw}");
    assert!(raw.contains("/~2000 rec"), "no record count of an estimated total: {raw}");
    assert!(raw.contains("[alpha] ") && raw.contains("[beta] "), "no keyspace names: {raw}");
    assert!(raw.contains("ETA "), "no time left: {raw}");
    // What stays on the screen: the log lines (above the bar) and the
    // summary; no bar line.
    let shown = screen(&raw);
    assert!(shown.last().is_some_and(|l| l.starts_with("exported 2000 records")), "{shown:#?}");
    for l in &shown {
        assert!(l.starts_with("floe: info: ") || l.starts_with("exported "), "a stale line {l:?} in {shown:#?}");
    }
    assert!(shown.iter().any(|l| l.contains("keyspace done keyspace=alpha records=1000")), "{shown:#?}");
}

#[test]
fn export_into_import_through_a_pipe_shows_one_bar_and_leaves_no_bar_line() {
    let dir = tempdir();
    let db = db_4mib(dir.path());
    let target = dir.path().join("imported");
    let floe = sh_quote(floe_bin());
    let cmd =
        format!("{floe} export {} -o - --block-size 4096 | {floe} import - {}", sh_quote(p(&db)), sh_quote(p(&target)));
    let (raw, code) = on_terminal(&cmd);
    assert_eq!(code, 0, "{raw}");
    // Only the importer draws (the exporter's prefix never appears).
    assert!(!raw.contains("export "), "the exporter drew a bar: {raw}");
    assert!(raw.contains("import "), "the importer drew no bar: {raw}");
    let shown = screen(&raw);
    assert_eq!(shown.len(), 2, "{shown:#?}\n{raw:?}");
    assert!(shown[0].starts_with("exported 2000 records in 2 keyspaces"), "{shown:#?}");
    assert!(shown[1].starts_with("imported 2000 records in 2 keyspaces"), "{shown:#?}");
    assert_eq!(read_db_at(&target).values().map(|k| k.len()).sum::<usize>(), 2000);
}

#[test]
fn import_of_a_file_on_stdin_shows_the_total_from_its_index() {
    let dir = tempdir();
    let db = db_4mib(dir.path());
    let a = dir.path().join("a.floe");
    assert_code(&floe(&["export", p(&db), "-o", p(&a), "-q", "--block-size", "4096"]), 0);
    let target = dir.path().join("imported");
    let cmd = format!("{} import - {} < {}", sh_quote(floe_bin()), sh_quote(p(&target)), sh_quote(p(&a)));
    let (raw, code) = on_terminal(&cmd);
    assert_eq!(code, 0, "{raw}");
    assert!(raw.contains("/2000 rec"), "no record total: {raw}");
    assert!(!percentages(&raw).is_empty(), "no percentage: {raw}");
    assert!(raw.contains("B/3.93 MiB "), "no byte total (3.93 MiB raw): {raw}");
    let shown = screen(&raw);
    assert_eq!(shown.len(), 1, "{shown:#?}");
    assert!(shown[0].starts_with("imported 2000 records"), "{shown:#?}");
}

fn small_db(dir: &Path) -> std::path::PathBuf {
    let mut m = Model::new();
    m.insert("first".into(), (0..50u32).map(|i| (format!("k{i:03}").into_bytes(), vec![b'v'; 10])).collect());
    m.insert("second".into(), [(b"x".to_vec(), b"y".to_vec())].into());
    make_db_dir(&dir.join("db"), &m, &BTreeSet::new())
}

#[test]
fn verbose_logs_name_the_snapshot_each_keyspace_and_phase_times() {
    let dir = tempdir();
    let db = small_db(dir.path());
    let a = dir.path().join("a.floe");
    let o = floe(&["-v", "export", p(&db), "-o", p(&a)]);
    assert_code(&o, 0);
    let err = stderr(&o);
    let snap = err
        .lines()
        .find(|l| l.starts_with("floe: info: export: snapshot taken snapshot_seqno="))
        .unwrap_or_else(|| panic!("no snapshot line: {err}"));
    let seqno: u64 = snap.split("snapshot_seqno=").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(err.contains(&format!("from snapshot {seqno} ")), "the logged snapshot is not the exported one: {err}");
    for ks in ["keyspace=first records=50 ", "keyspace=second records=1 "] {
        assert!(err.lines().any(|l| l.contains("export: keyspace done") && l.contains(ks)), "{ks}: {err}");
    }
    assert!(err.lines().any(|l| l.contains("export: archive written") && l.contains(" ms=")), "{err}");

    let t = dir.path().join("t");
    let o = floe(&["-v", "import", p(&a), p(&t)]);
    assert_code(&o, 0);
    let err = stderr(&o);
    for want in ["import: archive opened", "keyspace=first records=50", "import: database committed"] {
        assert!(err.contains(want), "{want}: {err}");
    }
    let o = floe(&["-v", "verify", p(&a)]);
    assert!(stderr(&o).contains("verify: archive is sound"), "{}", stderr(&o));

    // Without -v: no info lines (and RUST_LOG selects them instead).
    let o = floe(&["export", p(&db), "-o", p(&dir.path().join("b.floe"))]);
    assert_code(&o, 0);
    assert!(!stderr(&o).contains("info"), "{}", stderr(&o));
    let o = Command::new(floe_bin())
        .args(["verify", p(&a)])
        .env("RUST_LOG", "floe=info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(stderr(&o).contains("floe: info: verify: started"), "{}", stderr(&o));
}

#[test]
fn json_logs_are_one_object_per_line_with_level_and_fields() {
    let dir = tempdir();
    let db = small_db(dir.path());
    let a = dir.path().join("a.floe");
    let o = floe(&["-v", "--log-format", "json", "export", p(&db), "-o", p(&a), "-q"]);
    assert_code(&o, 0);
    let err = stderr(&o);
    let events: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l:?}\n{err}")))
        .collect();
    assert!(events.iter().all(|e| e["level"].is_string() && e["fields"].is_object()), "{err}");
    let done: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["fields"]["message"] == "export: keyspace done").collect();
    assert_eq!(done.len(), 2, "{err}");
    assert_eq!(done[0]["level"], "INFO");
    assert_eq!(done[0]["fields"]["keyspace"], "first");
    assert_eq!(done[0]["fields"]["records"], 50);
    assert!(done[0]["fields"]["ms"].is_u64() && done[0]["fields"]["bytes"].as_u64() > Some(500), "{err}");
    assert!(events.iter().any(|e| e["fields"]["snapshot_seqno"].is_u64()), "{err}");
}
