//! Export and import of one key range (`ExportOptions::range`,
//! `ImportOptions::range`, `--prefix` / `--from` / `--to` / `--hex`),
//! checked against an in-memory model: keys that are prefixes of each other,
//! `0xff` boundaries (the successor of an all-`0xff` prefix is unbounded),
//! values spanning blocks, empty keyspaces and parallel import segments.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use floe::format::section::decode_section;
use floe::{ImportOptions, KeyRange, NoProgress};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::Path;
use std::process::Command;

/// Keys chosen to sit on every edge the ranges below have (fjall keys are
/// never empty).
fn edge_keys() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [&b"a"[..], b"ab", b"ab\0", b"abc", b"ab\xff", b"ab\xff\xff", b"ac", b"b", b"ba"]
        .iter()
        .map(|k| k.to_vec())
        .collect();
    v.extend([vec![0xfe, 0xff], vec![0xff], vec![0xff, 0x00], vec![0xff, 0xfe], vec![0xff, 0xff], vec![0xff, 0xff, 0]]);
    v.push(vec![0xff, 0xff, 0xff, 0xff]);
    v
}

/// Keyspaces "a" and "b" with the edge keys and random ones (some values
/// spanning 4 KiB blocks), "c" with random keys only, and "empty".
fn model() -> Model {
    let mut rng = floe::sample::Rng(42);
    let mut m = Model::new();
    for name in ["a", "b", "c", "empty"] {
        m.insert(name.to_owned(), BTreeMap::new());
    }
    for name in ["a", "b"] {
        for (i, k) in edge_keys().into_iter().enumerate() {
            m.get_mut(name).unwrap().insert(k, format!("{name}{i}").into_bytes());
        }
    }
    for i in 0..1500 {
        let name = ["a", "b", "c"][i % 3];
        let mut key = match rng.below(4) {
            0 => b"ab".to_vec(),
            1 => vec![0xff],
            2 => b"b".to_vec(),
            _ => Vec::new(),
        };
        let len = 1 + rng.below(6) as usize;
        let mut tail = vec![0u8; len];
        rng.fill(&mut tail);
        key.extend_from_slice(&tail);
        let vlen = if rng.below(25) == 0 { 5000 + rng.below(5000) as usize } else { rng.below(100) as usize };
        let mut v = vec![0u8; vlen];
        rng.fill(&mut v);
        m.get_mut(name).unwrap().insert(key, v);
    }
    m
}

/// The model's records within `r`, of the keyspaces `only` (all when
/// `None`); every selected keyspace kept, also when empty.
fn model_range(m: &Model, r: &KeyRange, only: Option<&[&str]>) -> Model {
    m.iter()
        .filter(|(n, _)| only.is_none_or(|o| o.contains(&n.as_str())))
        .map(|(n, recs)| {
            let sub = recs.range::<Vec<u8>, _>((r.from.clone(), r.to.clone())).map(|(k, v)| (k.clone(), v.clone()));
            (n.clone(), sub.collect())
        })
        .collect()
}

fn ranges() -> Vec<(&'static str, KeyRange)> {
    let s = |b: &[u8]| Some(b.to_vec());
    vec![
        ("prefix ab", KeyRange::prefix(b"ab")),
        ("prefix ab\\xff", KeyRange::prefix(b"ab\xff")),
        ("prefix a", KeyRange::prefix(b"a")),
        ("prefix ff", KeyRange::prefix(&[0xff])),
        ("prefix ffff", KeyRange::prefix(&[0xff, 0xff])),
        ("prefix (empty)", KeyRange::prefix(b"")),
        ("prefix absent", KeyRange::prefix(b"zz")),
        ("from ab to b", KeyRange::between(s(b"ab"), s(b"b"))),
        ("from ab to ab\\0", KeyRange::between(s(b"ab"), s(b"ab\0"))),
        ("from ab", KeyRange::between(s(b"ab"), None)),
        ("to ab", KeyRange::between(None, s(b"ab"))),
        ("to \\0", KeyRange::between(None, s(b"\0"))),
        ("from ff to ffff00", KeyRange::between(s(&[0xff]), s(&[0xff, 0xff, 0]))),
        ("all", KeyRange::all()),
        ("excluded from", KeyRange { from: Bound::Excluded(b"ab".to_vec()), to: Bound::Included(b"b".to_vec()) }),
    ]
}

/// Everything an archive holds, read through the library.
fn read_archive(bytes: &[u8]) -> Model {
    let a = floe::Archive::from_bytes(bytes, "test").unwrap();
    let mut m = Model::new();
    for (k, e) in a.keyspaces().iter().enumerate() {
        let mut recs = BTreeMap::new();
        a.for_each_record(k, true, None, |key, v| {
            recs.insert(key.to_vec(), v.unwrap_or_default().to_vec());
            Ok(())
        })
        .unwrap();
        m.insert(e.name.clone(), recs);
    }
    m
}

fn count(m: &Model) -> u64 {
    m.values().map(|r| r.len() as u64).sum()
}

#[test]
fn ranged_export_holds_exactly_the_models_range() {
    let dir = tempdir();
    let m = model();
    let db = create_db(&dir.path().join("db"), &m, &BTreeSet::new());
    for (what, r) in ranges() {
        for only in [None, Some(&["b", "empty"][..])] {
            let mut o = opts(4096, 3);
            o.range = r.clone();
            o.keyspaces = only.map(|o| o.iter().map(|s| (*s).to_owned()).collect());
            let want = model_range(&m, &r, only);
            let (bytes, s) = floe::export_database(&db, Vec::new(), &o, &NoProgress).unwrap();
            assert_eq!(s.write.records, count(&want), "{what}");
            let got = read_archive(&bytes);
            assert!(got == want, "{what}, keyspaces {only:?}: {:?}", diff_models(&got, &want));
            // The archive verifies.
            floe::Archive::from_bytes(bytes.as_slice(), "x").unwrap().verify(false, &NoProgress).unwrap();
        }
    }
}

#[test]
fn ranged_import_holds_exactly_the_models_range() {
    let dir = tempdir();
    let m = model();
    let db = create_db(&dir.path().join("db"), &m, &BTreeSet::new());
    let full = export_bytes(&db, &opts(4096, 2));
    let archive = floe::Archive::from_bytes(full.as_slice(), "full").unwrap();
    for (i, (what, r)) in ranges().into_iter().enumerate() {
        for only in [None, Some(&["a", "empty"][..])] {
            let want = model_range(&m, &r, only);
            let mut o = ImportOptions::default();
            o.range = r.clone();
            o.keyspaces = only.map(|o| o.iter().map(|s| (*s).to_owned()).collect());
            o.threads = 3;
            // Small segments: a keyspace is ingested in parallel runs of blocks.
            o.segment_bytes = 8192;
            let target = dir.path().join(format!("imp{i}-{}", only.is_some()));
            let s = floe::import_archive(&archive, &target, &o, &NoProgress).unwrap();
            assert_eq!((s.records, s.keyspaces), (count(&want), want.len()), "{what}");
            assert_models_eq(&read_db_at(&target), &want);
            // The same from a stream.
            let target = dir.path().join(format!("stream{i}-{}", only.is_some()));
            let s = floe::import_stream(full.as_slice(), "stream", &target, &o, &NoProgress).unwrap();
            assert_eq!((s.records, s.keyspaces), (count(&want), want.len()), "{what} (stream)");
            assert_models_eq(&read_db_at(&target), &want);
        }
    }
}

#[test]
fn ranged_import_still_checks_the_whole_archive() {
    let dir = tempdir();
    let m = model();
    let db = create_db(&dir.path().join("db"), &m, &BTreeSet::new());
    let mut full = export_bytes(&db, &opts(4096, 1));
    // Corrupt a byte in the last block of the archive, far outside the range.
    let a = floe::Archive::from_bytes(full.as_slice(), "full").unwrap();
    let last = a.index().blocks.last().unwrap().offset as usize;
    full[last + 40] ^= 0x55;
    let mut o = ImportOptions::default();
    o.range = KeyRange::between(None, Some(vec![1]));
    let target = dir.path().join("t");
    let a = floe::Archive::from_bytes(full.as_slice(), "corrupt");
    if let Ok(a) = a {
        let e = floe::import_archive(&a, &target, &o, &NoProgress).unwrap_err();
        assert_eq!(e.kind(), floe::ErrorKind::Corrupt, "{e}");
    }
    let e = floe::import_stream(full.as_slice(), "corrupt", &target, &o, &NoProgress).unwrap_err();
    assert_eq!(e.kind(), floe::ErrorKind::Corrupt, "{e}");
    assert!(!target.exists());
}

#[test]
fn empty_ranges_are_refused_naming_both_bounds() {
    let dir = tempdir();
    let m = model();
    let db = create_db(&dir.path().join("db"), &m, &BTreeSet::new());
    let full = export_bytes(&db, &opts(4096, 1));
    for r in [
        KeyRange::between(Some(b"b".to_vec()), Some(b"a".to_vec())),
        KeyRange::between(Some(b"b".to_vec()), Some(b"b".to_vec())),
        KeyRange::between(None, Some(Vec::new())),
    ] {
        let mut o = opts(4096, 1);
        o.range = r.clone();
        let e = floe::export_database(&db, Vec::new(), &o, &NoProgress).unwrap_err();
        assert_eq!(e.kind(), floe::ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("empty"), "{e}");
        let mut o = ImportOptions::default();
        o.range = r;
        let target = dir.path().join("t");
        let e = floe::import_stream(full.as_slice(), "s", &target, &o, &NoProgress).unwrap_err();
        assert_eq!(e.kind(), floe::ErrorKind::InvalidArgument, "{e}");
        assert!(!target.exists());
    }
    let mut o = opts(4096, 1);
    o.range = KeyRange::between(Some(b"zeta".to_vec()), Some(b"alpha".to_vec()));
    let e = floe::export_database(&db, Vec::new(), &o, &NoProgress).unwrap_err().to_string();
    assert!(e.contains("'zeta'") && e.contains("'alpha'"), "{e}");
}

/// Header bytes of an archive, and the rest.
fn split_header(a: &[u8]) -> (floe::format::header::Header, &[u8]) {
    let h = decode_section(a, 0).unwrap();
    let n = h.total_len as usize;
    (floe::format::header::Header::decode(&h).unwrap(), &a[n..])
}

#[test]
fn ranged_export_equals_a_full_export_of_just_the_range() {
    let dir = tempdir();
    let m = model();
    let src = make_db_dir(&dir.path().join("db"), &m, &BTreeSet::new());
    let export = |db: &Path, out: &str, extra: &[&str]| {
        let f = dir.path().join(out);
        let o = Command::new(floe_bin())
            .args(["export", "-q", p(db), "-o", p(&f), "--block-size", "4096", "-t", "2"])
            .args(extra)
            .env("SOURCE_DATE_EPOCH", "1234567890")
            .output()
            .unwrap();
        assert_code(&o, 0);
        std::fs::read(f).unwrap()
    };
    let cases: Vec<(&[&str], KeyRange)> = vec![
        (&["--prefix", "ab"], KeyRange::prefix(b"ab")),
        (&["--hex", "--prefix", "ff"], KeyRange::prefix(&[0xff])),
        (&["--from", "ab", "--to", "b"], KeyRange::between(Some(b"ab".to_vec()), Some(b"b".to_vec()))),
        (&["--hex", "--to", "61"], KeyRange::between(None, Some(b"a".to_vec()))),
    ];
    for (i, (flags, r)) in cases.into_iter().enumerate() {
        let ranged = export(&src, &format!("r{i}.floe"), flags);
        let only = make_db_dir(&dir.path().join(format!("only{i}")), &model_range(&m, &r, None), &BTreeSet::new());
        let whole = export(&only, &format!("w{i}.floe"), &[]);
        let (mut ha, ra) = split_header(&ranged);
        let (mut hb, rb) = split_header(&whole);
        assert!(ra == rb, "{flags:?}: archives differ after the header");
        assert_eq!(ha.created_unix, 1_234_567_890);
        // The volatile fields (format-spec §12).
        ha.snapshot_seqno = 0;
        hb.snapshot_seqno = 0;
        assert_eq!(ha, hb, "{flags:?}");
    }
}

/// CLI flags, the range they mean, the keyspaces they choose.
type Case = (Vec<&'static str>, KeyRange, Option<&'static [&'static str]>);

#[test]
fn cli_export_and_import_of_a_range() {
    let dir = tempdir();
    let m = model();
    let src = make_db_dir(&dir.path().join("db"), &m, &BTreeSet::new());
    let full = dir.path().join("full.floe");
    assert_code(&floe(&["export", "-q", p(&src), "-o", p(&full)]), 0);
    let s = |b: &[u8]| Some(b.to_vec());
    let cases: Vec<Case> = vec![
        (vec!["--prefix", "ab"], KeyRange::prefix(b"ab"), None),
        (vec!["--prefix", "ab", "-k", "b", "-k", "empty"], KeyRange::prefix(b"ab"), Some(&["b", "empty"])),
        (vec!["--hex", "--prefix", "ffff"], KeyRange::prefix(&[0xff, 0xff]), None),
        (vec!["--from", "ab", "--to", "b"], KeyRange::between(s(b"ab"), s(b"b")), None),
        (vec!["--from", "ab"], KeyRange::between(s(b"ab"), None), None),
        (vec!["--to", "ab", "-k", "a"], KeyRange::between(None, s(b"ab")), Some(&["a"])),
        (vec!["--hex", "--from", "6162", "--to", "62", "-k", "a"], KeyRange::between(s(b"ab"), s(b"b")), Some(&["a"])),
    ];
    for (i, (flags, r, only)) in cases.into_iter().enumerate() {
        let want = model_range(&m, &r, only);
        // Export the range, import it whole.
        let out = dir.path().join(format!("r{i}.floe"));
        let mut args = vec!["export", "-q", p(&src), "-o", p(&out)];
        args.extend(&flags);
        assert_code(&floe(&args), 0);
        let t = dir.path().join(format!("e{i}"));
        assert_code(&floe(&["import", "-q", p(&out), p(&t)]), 0);
        assert_models_eq(&read_db_at(&t), &want);
        // Import the range of the full archive, from a file and from stdin.
        let t = dir.path().join(format!("i{i}"));
        let mut args = vec!["--json", "import", "-q", p(&full), p(&t)];
        args.extend(&flags);
        let o = floe(&args);
        assert_code(&o, 0);
        let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(doc["records"].as_u64(), Some(count(&want)), "{flags:?}");
        assert_models_eq(&read_db_at(&t), &want);
        let t = dir.path().join(format!("s{i}"));
        let mut args = vec!["import", "-q", "-", p(&t)];
        args.extend(&flags);
        assert_code(&floe_stdin(&args, &full), 0);
        assert_models_eq(&read_db_at(&t), &want);
    }
}

#[test]
fn cli_range_errors() {
    let dir = tempdir();
    let m = model();
    let src = make_db_dir(&dir.path().join("db"), &m, &BTreeSet::new());
    let full = dir.path().join("full.floe");
    assert_code(&floe(&["export", "-q", p(&src), "-o", p(&full)]), 0);
    let out = dir.path().join("out.floe");
    let t = dir.path().join("t");
    let export = |flags: &[&str]| {
        let mut a = vec!["export", "-q", p(&src), "-o", p(&out)];
        a.extend(flags);
        floe(&a)
    };
    let import = |flags: &[&str]| {
        let mut a = vec!["import", "-q", p(&full), p(&t)];
        a.extend(flags);
        floe(&a)
    };
    // --prefix conflicts with --from and --to (a usage error, exit code 2).
    for flags in [&["--prefix", "a", "--from", "b"][..], &["--prefix", "a", "--to", "b"]] {
        assert_code(&export(flags), 2);
        assert_code(&import(flags), 2);
    }
    // An empty range names both bounds; nothing is written.
    for (flags, a, b) in [
        (&["--from", "zeta", "--to", "alpha"][..], "'zeta'", "'alpha'"),
        (&["--from", "k", "--to", "k"], "'k'", "'k'"),
        (&["--hex", "--from", "ff", "--to", "00"], "hex ff", "hex 00"),
    ] {
        for o in [export(flags), import(flags)] {
            assert_code(&o, 1);
            let e = stderr(&o);
            assert!(e.contains("empty") && e.contains(a) && e.contains(b), "{flags:?}: {e}");
        }
        assert!(!out.exists() && !t.exists());
    }
    // The range is checked before anything is opened.
    let missing = dir.path().join("missing.floe");
    let o = floe(&["import", "-q", p(&missing), p(&t), "--from", "b", "--to", "a"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("is empty"), "{}", stderr(&o));
    // Bad hex names the flag.
    for o in [export(&["--hex", "--prefix", "6"]), import(&["--hex", "--from", "zz"])] {
        assert_code(&o, 1);
        assert!(stderr(&o).contains("is not hex"), "{}", stderr(&o));
    }
    assert!(!out.exists() && !t.exists());
}
