//! `floe::read::diff` and `floe diff` against in-memory models: added,
//! removed and changed keys, values spanning blocks, empty keyspaces,
//! keyspaces in one archive only, changed options, keyspace filters; and the
//! command line's lines, summary, JSON and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::{floe, stderr, stdout, write_archive, Model, Ranged};
use floe::format::options::KeyspaceOptions;
use floe::read::diff::{diff, ChangeKind, DiffSummary, KeyspaceDiff, Presence};
use floe::read::{Archive, Source};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

type Opts = BTreeMap<String, KeyspaceOptions>;

/// Options that differ from the default.
fn other_options() -> KeyspaceOptions {
    KeyspaceOptions { data_block_size: Some(vec![8192]), ..KeyspaceOptions::default() }
}

/// What the diff of `a` and `b` must be: the changes in order and the summary.
fn expected(
    a: &Model,
    b: &Model,
    oa: &Opts,
    ob: &Opts,
    only: Option<&[String]>,
) -> (Vec<(String, Vec<u8>, ChangeKind)>, DiffSummary) {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut changes = Vec::new();
    let mut s = DiffSummary::default();
    for name in names {
        if only.is_some_and(|o| !o.contains(name)) {
            continue;
        }
        let mut d = KeyspaceDiff {
            name: name.clone(),
            presence: Presence::Both,
            options_changed: false,
            added: 0,
            removed: 0,
            changed: 0,
            unchanged: 0,
        };
        match (a.get(name), b.get(name)) {
            (Some(ra), None) => {
                d.presence = Presence::OnlyInA;
                d.removed = ra.len() as u64;
            }
            (None, Some(rb)) => {
                d.presence = Presence::OnlyInB;
                d.added = rb.len() as u64;
            }
            (Some(ra), Some(rb)) => {
                d.options_changed =
                    oa.get(name).cloned().unwrap_or_default() != ob.get(name).cloned().unwrap_or_default();
                let keys: BTreeSet<&Vec<u8>> = ra.keys().chain(rb.keys()).collect();
                for k in keys {
                    let kind = match (ra.get(k), rb.get(k)) {
                        (Some(_), None) => ChangeKind::Removed,
                        (None, Some(_)) => ChangeKind::Added,
                        (Some(x), Some(y)) if x == y => {
                            d.unchanged += 1;
                            continue;
                        }
                        _ => ChangeKind::Changed,
                    };
                    match kind {
                        ChangeKind::Added => d.added += 1,
                        ChangeKind::Removed => d.removed += 1,
                        ChangeKind::Changed => d.changed += 1,
                    }
                    changes.push((name.clone(), k.clone(), kind));
                }
            }
            (None, None) => unreachable!("a name from one of the models"),
        }
        s.keyspaces.push(d);
    }
    (changes, s)
}

fn run<SA: Source, SB: Source>(
    a: &Archive<SA>,
    b: &Archive<SB>,
    only: Option<&[String]>,
) -> (Vec<(String, Vec<u8>, ChangeKind)>, DiffSummary) {
    let mut changes = Vec::new();
    let s = diff(a, b, only, |c| {
        changes.push((c.keyspace.to_owned(), c.key.to_vec(), c.kind));
        Ok(())
    })
    .unwrap();
    (changes, s)
}

fn model_strategy() -> impl Strategy<Value = Model> {
    // Few names and short keys over a tiny alphabet, so that the two sides
    // share keyspaces and keys (many keys are prefixes of each other).
    let key = prop_oneof![
        6 => proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xff)], 1..4),
        2 => proptest::collection::vec(any::<u8>(), 1..8),
    ];
    let value = prop_oneof![
        4 => prop_oneof![Just(b"x".to_vec()), Just(b"y".to_vec())],
        2 => Just(Vec::new()),
        2 => proptest::collection::vec(any::<u8>(), 0..40),
        // Larger than a block: spans blocks (CONTINUES).
        1 => prop_oneof![Just(vec![7u8; 9_000]), Just(vec![8u8; 9_000]), proptest::collection::vec(any::<u8>(), 4_090..13_000)],
    ];
    // Empty keyspaces are common (0 records).
    proptest::collection::btree_map("[a-d]", proptest::collection::btree_map(key, value, 0..16), 0..4)
}

/// `base` edited by `edits`: a key of an edit whose value has a length
/// divisible by 3 is removed, others are put; an empty keyspace of `edits`
/// removes that keyspace from the result.
fn edited(base: &Model, edits: &Model) -> Model {
    let mut m = base.clone();
    for (name, recs) in edits {
        if recs.is_empty() {
            m.remove(name);
            continue;
        }
        let ks = m.entry(name.clone()).or_default();
        for (k, v) in recs {
            if v.len() % 3 == 0 {
                ks.remove(k);
            } else {
                ks.insert(k.clone(), v.clone());
            }
        }
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(debug_assertions) { 24 } else { 64 }, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn prop_diff_matches_model(
        a in model_strategy(),
        other in model_strategy(),
        // B is A edited (mostly the same), or independent of A.
        derived in any::<bool>(),
        block_size in prop_oneof![Just(4096u32), 4096u32..12_000],
        options_changed in proptest::collection::btree_set("[a-d]", 0..2),
        only in proptest::option::of(proptest::collection::btree_set("[a-d]", 1..3)),
    ) {
        let b = if derived { edited(&a, &other) } else { other };
        let oa = Opts::new();
        let ob: Opts = options_changed.iter().map(|n| (n.clone(), other_options())).collect();
        let bytes_a = write_archive(&a, block_size, &oa, None);
        let bytes_b = write_archive(&b, 4096, &ob, None);
        let aa = Archive::from_bytes(bytes_a.as_slice(), "a").unwrap();
        // B over a ranged source (as from an object store).
        let ab = Archive::from_bytes(Ranged::new(&bytes_b), "b").unwrap();

        let (got, summary) = run(&aa, &ab, None);
        let (want, want_summary) = expected(&a, &b, &oa, &ob, None);
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(&summary, &want_summary);
        let same = a == b && !a.keys().any(|n| b.contains_key(n) && options_changed.contains(n));
        prop_assert_eq!(summary.differs(), !same);

        // Each archive against itself: no change, every key unchanged.
        let (none, s) = run(&aa, &aa, None);
        prop_assert!(none.is_empty() && !s.differs());
        prop_assert_eq!(s.keyspaces.iter().map(|k| k.unchanged).sum::<u64>(), a.values().map(|r| r.len() as u64).sum::<u64>());

        // The reverse swaps added and removed.
        let (rev, _) = run(&ab, &aa, None);
        let flipped: Vec<_> = want.iter().map(|(n, k, c)| (n.clone(), k.clone(), match c {
            ChangeKind::Added => ChangeKind::Removed,
            ChangeKind::Removed => ChangeKind::Added,
            ChangeKind::Changed => ChangeKind::Changed,
        })).collect();
        prop_assert_eq!(rev, flipped);

        // A keyspace filter: names in neither archive are refused.
        if let Some(only) = only {
            let only: Vec<String> = only.into_iter().collect();
            if only.iter().all(|n| a.contains_key(n) || b.contains_key(n)) {
                let (got, s) = run(&aa, &ab, Some(&only));
                let (want, want_s) = expected(&a, &b, &oa, &ob, Some(&only));
                prop_assert_eq!(got, want);
                prop_assert_eq!(s, want_s);
            } else {
                let e = diff(&aa, &ab, Some(&only), |_| Ok(())).unwrap_err();
                prop_assert_eq!(e.kind(), floe::ErrorKind::InvalidArgument);
                prop_assert!(e.to_string().contains("in neither archive"), "{}", e);
            }
        }
    }
}

#[test]
fn an_error_from_the_callback_stops_the_diff() {
    let mut a = Model::new();
    a.insert("k".into(), (0u8..50).map(|i| (vec![i], vec![i])).collect());
    let b = Model::new();
    let (ba, bb) = (write_archive(&a, 4096, &Opts::new(), None), write_archive(&b, 4096, &Opts::new(), None));
    let (aa, ab) = (Archive::from_bytes(ba.as_slice(), "a").unwrap(), Archive::from_bytes(bb.as_slice(), "b").unwrap());
    // A keyspace in one archive only is not listed key by key.
    let mut calls = 0;
    let s = diff(&aa, &ab, None, |_| {
        calls += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!((calls, s.keyspaces[0].presence, s.keyspaces[0].removed), (0, Presence::OnlyInA, 50));
    let mut b = a.clone();
    b.get_mut("k").unwrap().clear();
    let bb = write_archive(&b, 4096, &Opts::new(), None);
    let ab = Archive::from_bytes(bb.as_slice(), "b").unwrap();
    let mut calls = 0;
    let e = diff(&aa, &ab, None, |_| {
        calls += 1;
        if calls == 3 {
            return Err(floe::Error::InvalidArgument("stop here".into()));
        }
        Ok(())
    })
    .unwrap_err();
    assert_eq!((calls, e.to_string().contains("stop here")), (3, true));
}

#[test]
fn a_corrupt_block_fails_the_diff() {
    let mut a = Model::new();
    a.insert("k".into(), (0u8..200).map(|i| (vec![i], vec![i; 100])).collect());
    let bytes = write_archive(&a, 4096, &Opts::new(), None);
    let good = Archive::from_bytes(bytes.as_slice(), "good").unwrap();
    let mut bad = bytes.clone();
    // The last byte of the second block (opening the archive checks only
    // the metadata and the first block's header).
    let blocks = &good.index().blocks;
    assert!(blocks.len() > 2, "{} blocks", blocks.len());
    let off = blocks[2].offset as usize - 1;
    bad[off] ^= 0x55;
    let bad = Archive::from_bytes(bad.as_slice(), "bad").unwrap();
    let e = diff(&good, &bad, None, |_| Ok(())).unwrap_err();
    assert_eq!(e.kind(), floe::ErrorKind::Corrupt, "{e}");
}

// ---- command line ----

fn cli_models() -> (Model, Model) {
    let mut a = Model::new();
    let mut b = Model::new();
    a.insert(
        "users".into(),
        BTreeMap::from([(b"alice".to_vec(), b"admin".to_vec()), (b"bob".to_vec(), b"reader".to_vec())]),
    );
    b.insert(
        "users".into(),
        BTreeMap::from([(b"alice".to_vec(), b"owner".to_vec()), (b"carol".to_vec(), vec![9u8; 20_000])]),
    );
    a.insert("logs".into(), BTreeMap::from([(vec![0xff, 0], b"x".to_vec())]));
    b.insert("logs".into(), BTreeMap::from([(vec![0xff, 0], b"x".to_vec())]));
    a.insert("old".into(), BTreeMap::from([(b"k".to_vec(), b"v".to_vec())]));
    b.insert("new".into(), BTreeMap::new());
    (a, b)
}

fn write_files(dir: &std::path::Path, a: &Model, b: &Model, ob: &Opts) -> (String, String) {
    let (pa, pb) = (dir.join("a.floe"), dir.join("b.floe"));
    std::fs::write(&pa, write_archive(a, 4096, &Opts::new(), None)).unwrap();
    std::fs::write(&pb, write_archive(b, 4096, ob, None)).unwrap();
    (pa.to_str().unwrap().to_owned(), pb.to_str().unwrap().to_owned())
}

#[test]
fn cli_identical_archives_exit_0() {
    let dir = common::tempdir();
    let (a, _) = cli_models();
    let (pa, pb) = write_files(dir.path(), &a, &a, &Opts::new());
    let o = floe(&["diff", &pa, &pb]);
    common::assert_code(&o, 0);
    let out = stdout(&o);
    assert!(out.contains("keyspace users: 0 added, 0 removed, 0 changed, 2 unchanged\n"), "{out}");
    assert!(out.ends_with("the archives hold the same data\n"), "{out}");
    assert!(!out.lines().any(|l| l.starts_with(['+', '-', '~'])), "{out}");
    // file:// URLs too.
    let o = floe(&["diff", &format!("file://{pa}"), &format!("file://{pb}"), "--json"]);
    common::assert_code(&o, 0);
    let doc: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!((doc["ok"].as_bool(), doc["same"].as_bool()), (Some(true), Some(true)), "{doc}");
}

#[test]
fn cli_differing_archives_exit_7_with_lines_and_summary() {
    let dir = common::tempdir();
    let (a, b) = cli_models();
    let (pa, pb) = write_files(dir.path(), &a, &b, &Opts::from([("logs".to_owned(), other_options())]));
    let o = floe(&["diff", &pa, &pb]);
    common::assert_code(&o, 7);
    let hex = common::hex;
    let want = [
        "keyspace logs: 0 added, 0 removed, 0 changed, 1 unchanged; options changed".to_owned(),
        "keyspace new: added (only in B, 0 records)".to_owned(),
        "keyspace old: removed (only in A, 1 record)".to_owned(),
        format!("~ users {}", hex(b"alice")),
        format!("- users {}", hex(b"bob")),
        format!("+ users {}", hex(b"carol")),
        "keyspace users: 1 added, 1 removed, 1 changed, 0 unchanged".to_owned(),
        "the archives differ".to_owned(),
    ];
    let got: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    // Key lines as the keys are compared (users is the last keyspace), then
    // the summary of every keyspace in name order.
    let order: Vec<&String> = want[3..6].iter().chain(&want[..3]).chain(&want[6..]).collect();
    assert_eq!(got.iter().collect::<Vec<_>>(), order, "{got:?}");

    // -k: only that keyspace; an equal one exits 0 even though others differ.
    let o = floe(&["diff", &pa, &pb, "-k", "users"]);
    common::assert_code(&o, 7);
    assert_eq!(stdout(&o).lines().count(), 5, "{}", stdout(&o));
    assert!(!stdout(&o).contains("logs"));
    let o = floe(&["diff", "-k", "logs", &pa, &pb]);
    common::assert_code(&o, 7); // its options changed
    let same = write_files(dir.path(), &a, &b, &Opts::new());
    let o = floe(&["diff", &same.0, &same.1, "-k", "logs"]);
    common::assert_code(&o, 0);
    let o = floe(&["diff", &pa, &pb, "-k", "nope"]);
    common::assert_code(&o, 1);
    assert!(stderr(&o).contains("keyspace 'nope' is in neither archive"), "{}", stderr(&o));
    // With --json, a failure is the usual error document, never exit 7.
    let o = floe(&["--json", "diff", &pa, &pb, "-k", "nope"]);
    common::assert_code(&o, 1);
    let e: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!((e["ok"].as_bool(), e["error"]["kind"].as_str()), (Some(false), Some("invalid_argument")), "{e}");
    assert_code_of_stdin_refused(&pa);
}

#[test]
fn cli_json_lines_parse() {
    let dir = common::tempdir();
    let (a, b) = cli_models();
    let (pa, pb) = write_files(dir.path(), &a, &b, &Opts::new());
    let o = floe(&["--json", "diff", &pa, &pb]);
    common::assert_code(&o, 7);
    let docs: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(docs.len(), 4, "{docs:?}");
    let changes: Vec<(String, String, String)> = docs[..3]
        .iter()
        .map(|d| {
            assert_eq!(d.as_object().unwrap().len(), 3, "{d}");
            (
                d["keyspace"].as_str().unwrap().into(),
                d["key_hex"].as_str().unwrap().into(),
                d["change"].as_str().unwrap().into(),
            )
        })
        .collect();
    let ch = |k: &[u8], c: &str| ("users".to_owned(), common::hex(k), c.to_owned());
    assert_eq!(changes, vec![ch(b"alice", "changed"), ch(b"bob", "removed"), ch(b"carol", "added")]);
    let s = &docs[3];
    assert_eq!(
        (s["ok"].as_bool(), s["command"].as_str(), s["same"].as_bool()),
        (Some(true), Some("diff"), Some(false))
    );
    let ks = s["keyspaces"].as_array().unwrap();
    let names: Vec<&str> = ks.iter().map(|k| k["keyspace"].as_str().unwrap()).collect();
    assert_eq!(names, ["logs", "new", "old", "users"]);
    let presence: Vec<&str> = ks.iter().map(|k| k["presence"].as_str().unwrap()).collect();
    assert_eq!(presence, ["both", "added", "removed", "both"]);
    let u = &ks[3];
    let counts: Vec<u64> =
        ["added", "removed", "changed", "unchanged"].iter().map(|f| u[f].as_u64().unwrap()).collect();
    assert_eq!(counts, [1, 1, 1, 0]);
    assert_eq!(
        (u["differs"].as_bool(), ks[0]["differs"].as_bool(), ks[0]["options_changed"].as_bool()),
        (Some(true), Some(false), Some(false))
    );
    assert_eq!(ks[2]["removed"].as_u64(), Some(1));
}

#[test]
fn large_keyspaces_across_read_ahead_batches() {
    // More records (40,000) and bytes (about 5 MiB with the spanning values)
    // than one read-ahead batch of A holds (16,384 records or 1 MiB).
    let mut a = Model::new();
    let recs: BTreeMap<Vec<u8>, Vec<u8>> = (0u32..40_000)
        .map(|i| {
            let v = if i % 10_000 == 7 { vec![(i % 251) as u8; 1_000_000] } else { i.to_le_bytes().to_vec() };
            (i.to_be_bytes().to_vec(), v)
        })
        .collect();
    a.insert("big".into(), recs);
    let mut b = a.clone();
    let ks = b.get_mut("big").unwrap();
    for i in (0u32..40_000).step_by(997) {
        ks.remove(&i.to_be_bytes().to_vec());
        ks.insert((i + 1).to_be_bytes().to_vec(), b"changed".to_vec());
        ks.insert([i.to_be_bytes().as_slice(), b"+"].concat(), Vec::new());
    }
    // A spanning value changed in its last byte only.
    ks.get_mut(&20_007u32.to_be_bytes().to_vec()).unwrap()[999_999] ^= 1;
    let (ba, bb) = (write_archive(&a, 65_536, &Opts::new(), None), write_archive(&b, 4096, &Opts::new(), None));
    let (aa, ab) = (Archive::from_bytes(ba.as_slice(), "a").unwrap(), Archive::from_bytes(bb.as_slice(), "b").unwrap());
    let (got, s) = run(&aa, &ab, None);
    let (want, want_s) = expected(&a, &b, &Opts::new(), &Opts::new(), None);
    assert_eq!(s, want_s);
    assert_eq!(got, want);
    assert!(got.contains(&("big".into(), 20_007u32.to_be_bytes().to_vec(), ChangeKind::Changed)));
    let d = &s.keyspaces[0];
    assert_eq!((d.added, d.removed, d.changed), (41, 41, 42), "{d:?}");
    // And the reverse (B read ahead).
    let (_, r) = run(&ab, &aa, None);
    assert_eq!((r.keyspaces[0].added, r.keyspaces[0].removed), (41, 41));
}

fn assert_code_of_stdin_refused(pa: &str) {
    let o = floe(&["diff", pa, "-"]);
    common::assert_code(&o, 1);
    assert!(stderr(&o).contains("cannot read standard input"), "{}", stderr(&o));
}

/// Ctrl-C stops a running `floe diff` (and `floe cat`) at once: they have
/// nothing to clean up, so they install no handler and the signal's default
/// action ends them (README, "Guarantees": signals).
#[test]
fn sigint_stops_diff_and_cat() {
    use std::io::Read;
    let dir = common::tempdir();
    let mk = |parity: u32| -> Model {
        let recs =
            (0..200_000u32).filter(|i| i % 2 == parity).map(|i| (format!("k{i:07}").into_bytes(), vec![1])).collect();
        [("ks".to_owned(), recs)].into()
    };
    let (fa, fb) = (dir.path().join("a.floe"), dir.path().join("b.floe"));
    std::fs::write(&fa, write_archive(&mk(0), 65536, &BTreeMap::new(), None)).unwrap();
    std::fs::write(&fb, write_archive(&mk(1), 65536, &BTreeMap::new(), None)).unwrap();
    for args in [vec!["diff", common::p(&fa), common::p(&fb)], vec!["cat", common::p(&fa)]] {
        let mut child = std::process::Command::new(common::floe_bin())
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 4096];
        out.read_exact(&mut first).unwrap();
        // The process is now blocked on a full pipe, well before its end.
        std::thread::sleep(std::time::Duration::from_millis(300));
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let mut rest = Vec::new();
        out.read_to_end(&mut rest).unwrap();
        let status = child.wait().unwrap();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGINT), "{args:?}: {status:?} {err}");
        let lines = (first.len() + rest.len()) / 10;
        assert!(lines < 100_000, "{args:?}: about {lines} lines printed after the interrupt");
    }
}
