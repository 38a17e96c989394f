//! Issue 12: what a user meets at the command line: `--json` on every
//! command (successes and failures), completions and a man page, terminals
//! refused where an archive should flow, and messages that name the mistake.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use std::collections::BTreeSet;
use std::process::Command;

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {}", stdout(o)))
}

/// Runs `floe ARGS` with a pseudo-terminal on stdin, stdout and stderr ([`on_terminal`]).
fn floe_on_a_terminal(args: &[&str]) -> (i32, String) {
    let cmd = std::iter::once(floe_bin()).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
    let (out, code) = on_terminal(&cmd);
    (code, out)
}

#[test]
fn every_command_speaks_json_and_failures_are_documents_with_the_same_exit_code() {
    let dir = tempdir();
    let src = make_db_dir(&dir.path().join("db"), &small_model(50, 3), &BTreeSet::new());
    let a = dir.path().join("a.floe");
    let o = floe(&["--json", "export", p(&src), "-o", p(&a)]);
    assert_code(&o, 0);
    let d = json(&o);
    assert_eq!((d["ok"].as_bool(), d["command"].as_str()), (Some(true), Some("export")));
    assert!(d["records"].as_u64().unwrap() > 0 && d["archive_bytes"].as_u64().unwrap() > 0, "{d}");
    // The flag works after the subcommand too.
    let o = floe(&["verify", p(&a), "--json"]);
    assert_code(&o, 0);
    assert_eq!(json(&o)["records"], d["records"]);
    let o = floe(&["inspect", p(&a), "--json"]);
    assert_eq!(json(&o)["ok"], true);
    let o = floe(&["import", p(&a), p(&dir.path().join("new")), "--json"]);
    assert_code(&o, 0);
    assert_eq!((json(&o)["command"].as_str(), &json(&o)["records"]), (Some("import"), &d["records"]));
    let repo = dir.path().join("repo");
    let o = floe(&["--json", "backup", "create", p(&src), "--repo", p(&repo)]);
    assert_code(&o, 0);
    let id = json(&o)["id"].as_str().unwrap().to_owned();
    for args in [
        vec!["backup", "list", "--repo", p(&repo)],
        vec!["backup", "verify", "--repo", p(&repo)],
        vec!["backup", "gc", "--repo", p(&repo)],
        vec!["backup", "delete", "--repo", p(&repo), &id],
    ] {
        let o = floe(&[&["--json"], &args[..]].concat());
        assert_code(&o, 0);
        assert_eq!(json(&o)["ok"], true, "floe --json {args:?}");
    }
    // Failures: a document with the kind, the exit code and the offset where there is one.
    let o = floe(&["--json", "export", p(&src), "-o", p(&a)]);
    assert_code(&o, 6);
    let e = json(&o);
    assert_eq!((e["ok"].as_bool(), e["error"]["kind"].as_str()), (Some(false), Some("target_exists")));
    assert_eq!(e["error"]["exit_code"], 6);
    assert!(e["error"]["message"].as_str().unwrap().contains("--force"), "{e}");
    let mut bytes = std::fs::read(&a).unwrap();
    let n = bytes.len();
    bytes[n - 30] ^= 0x55; // inside the trailer
    let bad = dir.path().join("bad.floe");
    std::fs::write(&bad, &bytes).unwrap();
    let o = floe(&["--json", "verify", p(&bad)]);
    assert_code(&o, 3);
    let e = json(&o);
    assert_eq!((e["error"]["kind"].as_str(), e["error"]["exit_code"].as_u64()), (Some("corrupt"), Some(3)));
    assert!(e["error"]["offset"].is_u64(), "a corrupt archive names the offset: {e}");
    assert!(stderr(&o).contains("floe: error:"), "the human message stays on stderr");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_definition() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = floe(&["completions", shell]);
        assert_code(&o, 0);
        let s = stdout(&o);
        assert!(s.contains("floe") && s.contains("export") && s.contains("keyspace"), "{shell}: {s}");
    }
    let o = floe(&["man"]);
    assert_code(&o, 0);
    let m = stdout(&o);
    assert!(m.starts_with(".ie") || m.contains(".TH floe"), "{m}");
    assert!(m.contains("export") && m.contains("backup"), "{m}");
    assert_code(&floe(&["completions", "tcsh"]), 2);
}

#[test]
fn a_terminal_where_an_archive_should_flow_is_refused() {
    let dir = tempdir();
    let src = make_db_dir(&dir.path().join("db"), &small_model(20, 1), &BTreeSet::new());
    let (code, out) = floe_on_a_terminal(&["export", p(&src), "-o", "-"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("standard output is a terminal") && out.contains("redirect"), "{out}");
    assert!(!out.contains("FLOE"), "binary archive bytes reached the terminal: {out}");
    for cmd in ["import", "verify"] {
        let target = dir.path().join("new");
        let args: Vec<&str> = if cmd == "import" { vec![cmd, "-", p(&target)] } else { vec![cmd, "-"] };
        let (code, out) = floe_on_a_terminal(&args);
        assert_eq!(code, 1, "floe {cmd}: {out}");
        assert!(out.contains("standard input is a terminal"), "{cmd}: {out}");
        assert!(!target.exists());
    }
    // A pipe is fine.
    let o = Command::new("sh")
        .args(["-c", &format!("{} export -q {} -o - | {} verify -", floe_bin(), p(&src), floe_bin())])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn messages_name_the_mistake() {
    let dir = tempdir();
    let d = dir.path();
    let src = make_db_dir(&d.join("db"), &small_model(20, 1), &BTreeSet::new());
    let a = d.join("a.floe");
    assert_code(&floe(&["export", "-q", p(&src), "-o", p(&a)]), 0);
    // A database where an archive is expected.
    for args in [vec!["verify", p(&src)], vec!["inspect", p(&src)], vec!["import", p(&src), p(&d.join("x"))]] {
        let o = floe(&args);
        assert_code(&o, 1);
        assert!(stderr(&o).contains("is a directory (a fjall database?), not an archive"), "{args:?}: {}", stderr(&o));
    }
    // A missing source, and a file given as a database.
    let o = floe(&["export", p(&d.join("nope")), "-o", p(&d.join("b.floe"))]);
    assert!(stderr(&o).contains("does not exist"), "{}", stderr(&o));
    let o = floe(&["export", p(&a), "-o", p(&d.join("b.floe"))]);
    assert!(stderr(&o).contains("is a file, not a database directory"), "{}", stderr(&o));
    // A missing output directory is reported before the database is opened:
    // even a locked database does not get in the way.
    let _held = open_db(&src);
    let o = floe(&["export", p(&src), "-o", p(&d.join("no-dir").join("b.floe"))]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("no-dir does not exist; create it first"), "{}", stderr(&o));
    // '.' as an import target.
    let here = d.join("here");
    std::fs::create_dir(&here).unwrap();
    let o = Command::new(floe_bin()).args(["import", p(&a), "."]).current_dir(&here).output().unwrap();
    assert_code(&o, 1);
    assert!(stderr(&o).contains("name the target from its parent"), "{}", stderr(&o));
    // A damaged data frame names the keyspace and the block.
    let arch = floe::read::Archive::open(&a).unwrap();
    let (k, b) = (arch.index().blocks[0].keyspace as usize, &arch.index().blocks[0]);
    let name = arch.keyspaces()[k].name.clone();
    let mut bytes = std::fs::read(&a).unwrap();
    let at = (b.offset + 60) as usize; // past the block header, inside the frame
    bytes[at] ^= 0xff;
    let bad = d.join("bad.floe");
    std::fs::write(&bad, &bytes).unwrap();
    let o = floe(&["verify", p(&bad)]);
    assert_code(&o, 3);
    let e = stderr(&o);
    assert!(e.contains(&format!("keyspace '{name}'")) && e.contains("of block 0"), "{e}");
    // Plurals.
    let mut m = Model::new();
    m.insert("only".into(), [(b"k".to_vec(), b"v".to_vec())].into_iter().collect());
    let one = make_db_dir(&d.join("one"), &m, &BTreeSet::new());
    let o = floe(&["export", p(&one), "-o", p(&d.join("one.floe"))]);
    assert!(stderr(&o).contains("in 1 keyspace "), "{}", stderr(&o));
}
