//! Golden fixtures for archive formats 1.0 and 1.1 (format-spec §10: every
//! format version has a golden archive that every later reader must keep
//! importing). Both hold the same contents; 1.1 adds the key index (§8.2).
//!
//! `tests/fixtures/vX.Y-sample.floe` was written once by
//! [`regenerate_golden_fixture`] and is checked in together with
//! `tests/fixtures/vX.Y-sample.expected.json`, which pins the file's own hash
//! and, per keyspace, the record count, byte totals, first/last key, whether it
//! is key-value separated and an FNV-1a digest of its records. Normal test runs
//! only read these files.
//!
//! To regenerate (only ever needed if the fixture is lost; a new format
//! version gets a NEW fixture next to this one instead):
//!
//! ```sh
//! FLOE_REGENERATE_FIXTURES=v1.1 cargo test --test golden -- --ignored regenerate_golden_fixture
//! ```
//!
//! (It refuses to overwrite a fixture that exists, and writes only the
//! version this floe writes.)
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use floe::import::{import_file, import_stream, ImportOptions};
use floe::progress::NoProgress;
use floe::read::{verify_stream, Archive};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const CREATED_UNIX: i64 = 1_700_000_000;
const BLOCK_SIZE: u32 = 4096;

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// The fixture's contents: several keyspaces, an empty one, a key-value
/// separated one holding a value that spans three 4 KiB blocks, edge-case keys.
fn golden_model() -> (Model, BTreeSet<String>) {
    let mut rng = floe::sample::Rng(0x0060_1DE4);
    let mut m = Model::new();
    let mut accounts = BTreeMap::new();
    for i in 0..120u32 {
        let len = 30 + rng.below(120) as usize;
        accounts.insert(format!("acct:{i:04}").into_bytes(), floe::sample::texty(&mut rng, len));
    }
    m.insert("accounts".to_owned(), accounts);
    let mut blobs = BTreeMap::new();
    let mut spanning = vec![0u8; 12_000];
    rng.fill(&mut spanning);
    blobs.insert(b"blob/0-spanning".to_vec(), spanning);
    blobs.insert(b"blob/1".to_vec(), floe::sample::texty(&mut rng, 200));
    blobs.insert(b"blob/2-empty".to_vec(), Vec::new());
    m.insert("blobs".to_owned(), blobs);
    m.insert("empty".to_owned(), BTreeMap::new());
    let mut edge = BTreeMap::new();
    edge.insert(vec![0x00], Vec::new());
    edge.insert(vec![0x00, 0x00], b"\x00".to_vec());
    edge.insert(vec![0xff; 300], b"max-ish key".to_vec());
    edge.insert("ünïcødé key".as_bytes().to_vec(), "välue".as_bytes().to_vec());
    m.insert("edge ✓".to_owned(), edge);
    (m, ["blobs".to_owned()].into())
}

/// What the expectation file says about each keyspace, computed from a model.
fn keyspace_expectations(m: &Model, kv: &BTreeSet<String>) -> Vec<Value> {
    m.iter()
        .map(|(name, recs)| {
            json!({
                "name": name,
                "records": recs.len(),
                "key_bytes": recs.keys().map(|k| k.len()).sum::<usize>(),
                "value_bytes": recs.values().map(|v| v.len()).sum::<usize>(),
                "first_key_hex": recs.keys().next().map(|k| hex(k)).unwrap_or_default(),
                "last_key_hex": recs.keys().next_back().map(|k| hex(k)).unwrap_or_default(),
                "kv_separated": kv.contains(name),
                "digest_fnv1a64": digest(recs),
            })
        })
        .collect()
}

fn fnv64(b: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Every format version's fixture.
const VERSIONS: [&str; 2] = ["v1.0", "v1.1"];

fn load(version: &str) -> (Vec<u8>, Value) {
    let bytes = std::fs::read(fixture_dir().join(format!("{version}-sample.floe"))).expect("golden fixture missing");
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join(format!("{version}-sample.expected.json"))).unwrap(),
    )
    .unwrap();
    (bytes, exp)
}

#[test]
fn golden_fixtures_are_intact() {
    for v in VERSIONS {
        fixture_is_intact(v);
    }
}

fn fixture_is_intact(version: &str) {
    let (bytes, exp) = load(version);
    assert!(bytes.len() < 64 << 10, "fixture is {} bytes", bytes.len());
    assert_eq!(exp["archive_bytes"], bytes.len());
    assert_eq!(exp["archive_fnv1a64"], fnv64(&bytes), "the fixture file changed; fixtures must never be rewritten");
}

#[test]
fn golden_fixtures_still_verify() {
    for v in VERSIONS {
        fixture_still_verifies(v);
    }
}

fn fixture_still_verifies(version: &str) {
    let (bytes, exp) = load(version);
    let file = fixture_dir().join(format!("{version}-sample.floe"));
    let a = Archive::from_bytes(bytes.as_slice(), "fixture").unwrap();
    let full = a.verify(false, &NoProgress).unwrap();
    a.verify(true, &NoProgress).unwrap();
    let st = verify_stream(bytes.as_slice(), "fixture", false, &NoProgress).unwrap();
    let h = a.header();
    assert_eq!(format!("{}.{}", h.format_major, h.format_minor), exp["format_version"].as_str().unwrap());
    assert_eq!(h.created_unix, exp["created_unix"].as_i64().unwrap());
    assert_eq!(u64::from(h.block_target), exp["block_size"].as_u64().unwrap());
    assert_eq!(h.engine, exp["engine"].as_str().unwrap());
    assert_eq!(h.engine_version, exp["engine_version"].as_str().unwrap());
    let ks = exp["keyspaces"].as_array().unwrap();
    assert_eq!(a.keyspaces().len(), ks.len());
    let total: u64 = ks.iter().map(|k| k["records"].as_u64().unwrap()).sum();
    assert_eq!(full.records, total);
    assert_eq!(st.records, total);
    for (k, (e, want)) in a.keyspaces().iter().zip(ks).enumerate() {
        assert_eq!(e.name, want["name"].as_str().unwrap());
        assert_eq!(e.options.kv_separation.is_some(), want["kv_separated"].as_bool().unwrap(), "{}", e.name);
        let t = &a.index().keyspaces[k].totals;
        assert_eq!(t.record_count, want["records"].as_u64().unwrap());
        assert_eq!(t.key_bytes, want["key_bytes"].as_u64().unwrap());
        assert_eq!(t.value_bytes, want["value_bytes"].as_u64().unwrap());
        assert_eq!(hex(&t.first_key), want["first_key_hex"].as_str().unwrap());
        assert_eq!(hex(&t.last_key), want["last_key_hex"].as_str().unwrap());
        let mut recs = BTreeMap::new();
        a.for_each_record(k, true, None, |key, v| {
            recs.insert(key.to_vec(), v.unwrap().to_vec());
            Ok(())
        })
        .unwrap();
        assert_eq!(digest(&recs), want["digest_fnv1a64"].as_str().unwrap(), "keyspace {}", e.name);
    }
    // The fixture exercises a record spanning blocks.
    let mut spans = 0;
    for i in 0..a.index().blocks.len() {
        let mut raw = Vec::new();
        spans += u32::from(a.read_block(i, &mut raw).unwrap().continues());
    }
    assert!(spans >= 2, "fixture has {spans} continued blocks");
    // And through the CLI.
    let o = floe(&["verify", p(&file)]);
    assert_code(&o, 0);
    let o = floe(&["inspect", "--json", p(&file)]);
    assert_code(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["format_version"], exp["format_version"]);
    assert_eq!(v["records"], total);
}

#[test]
fn golden_fixtures_still_import_with_exactly_their_content() {
    for v in VERSIONS {
        fixture_still_imports(v);
    }
}

/// Every query answers from every fixture as the model says: 1.0 by
/// scanning (no key index), 1.1 through its key index.
#[test]
fn golden_fixtures_answer_queries() {
    let (m, _) = golden_model();
    for v in VERSIONS {
        let (bytes, _) = load(v);
        let a = Archive::from_bytes(bytes.as_slice(), v).unwrap();
        assert_eq!(a.index().key_index.is_empty(), v == "v1.0", "{v}: key index presence");
        for (name, recs) in &m {
            for (key, value) in recs {
                assert_eq!(a.get(name, key).unwrap().as_ref(), Some(value), "{v}: get {name} {}", hex(key));
                let mut absent = key.clone();
                absent.push(0x7f);
                assert_eq!(a.get(name, &absent).unwrap(), recs.get(&absent).cloned(), "{v}: get {}", hex(&absent));
            }
            for prefix in [&b""[..], b"acct:00", b"blob/", &[0x00], &[0xff, 0xff]] {
                let to = floe::read::query::prefix_successor(prefix);
                let mut r = a.range(name, std::ops::Bound::Included(prefix), floe::read::query::upper(&to)).unwrap();
                let mut got = Vec::new();
                while let Some(rec) = r.next().unwrap() {
                    got.push((rec.key.to_vec(), rec.value.to_vec()));
                }
                let want: Vec<_> =
                    recs.iter().filter(|(k, _)| k.starts_with(prefix)).map(|(k, v)| (k.clone(), v.clone())).collect();
                assert_eq!(got, want, "{v}: {name} prefix {}", hex(prefix));
            }
        }
    }
}

fn fixture_still_imports(version: &str) {
    let (bytes, exp) = load(version);
    let dir = tempdir();
    let f = dir.path().join("fixture.floe");
    std::fs::write(&f, &bytes).unwrap();
    let check = |path: &std::path::Path| {
        let db = open_db(path);
        let got = read_db(&db);
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        let want_names: Vec<&str> =
            exp["keyspaces"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
        assert_eq!(names, want_names);
        let kv: BTreeSet<String> = got.keys().filter(|n| is_kv_separated(&db, n)).cloned().collect();
        assert_eq!(Value::from(keyspace_expectations(&got, &kv)), exp["keyspaces"]);
    };
    import_file(&f, &dir.path().join("a"), &ImportOptions::default(), &NoProgress).unwrap();
    check(&dir.path().join("a"));
    import_stream(
        bytes.as_slice(),
        "fixture",
        &dir.path().join("b"),
        &{
            let mut o = ImportOptions::default();
            o.threads = 1;
            o
        },
        &NoProgress,
    )
    .unwrap();
    check(&dir.path().join("b"));
    assert_code(&floe(&["import", "-q", p(&f), p(&dir.path().join("c"))]), 0);
    check(&dir.path().join("c"));
}

/// The generator's model is what the expectation file describes (so the
/// generator below documents the fixture's contents).
#[test]
fn golden_generator_matches_the_expectation() {
    for v in VERSIONS {
        let (_, exp) = load(v);
        let (m, kv) = golden_model();
        assert_eq!(Value::from(keyspace_expectations(&m, &kv)), exp["keyspaces"], "{v}");
    }
}

/// Writes the fixture and its expectation. Ignored: run only by hand, with
/// FLOE_REGENERATE_FIXTURES=1 (see the module docs). Never part of normal runs.
#[test]
#[ignore = "generator for the checked-in golden fixture; run by hand only"]
fn regenerate_golden_fixture() {
    let version = format!("v{}.{}", floe::format::FORMAT_MAJOR, floe::format::FORMAT_MINOR);
    assert_eq!(
        std::env::var("FLOE_REGENERATE_FIXTURES").ok(),
        Some(version.clone()),
        "writing the golden fixture needs FLOE_REGENERATE_FIXTURES={version}"
    );
    let name = format!("{version}-sample.floe");
    assert!(!fixture_dir().join(&name).exists(), "{name} exists; fixtures are never rewritten");
    let (m, kv) = golden_model();
    let dir = tempdir();
    let db = create_db(&dir.path().join("db"), &m, &kv);
    let o = {
        let mut o = floe::export::ExportOptions::default();
        o.level = 3;
        o.threads = 1;
        o.keyspaces = None;
        o.block_size = BLOCK_SIZE;
        o.created_unix = Some(CREATED_UNIX);
        o
    };
    let bytes = export_bytes(&db, &o);
    drop(db);
    assert!(bytes.len() < 64 << 10, "fixture would be {} bytes", bytes.len());
    let a = Archive::from_bytes(bytes.as_slice(), "new").unwrap();
    a.verify(false, &NoProgress).unwrap();
    let exp = json!({
        "comment": format!("Expectation for {name}; written by tests/golden.rs regenerate_golden_fixture. Never edit by hand."),
        "fixture": name,
        "format_version": version.trim_start_matches('v'),
        "created_unix": CREATED_UNIX,
        "block_size": BLOCK_SIZE,
        "engine": a.header().engine,
        "engine_version": a.header().engine_version,
        "writer": a.header().writer,
        "archive_bytes": bytes.len(),
        "archive_fnv1a64": fnv64(&bytes),
        "keyspaces": keyspace_expectations(&m, &kv),
    });
    std::fs::create_dir_all(fixture_dir()).unwrap();
    std::fs::write(fixture_dir().join(&name), &bytes).unwrap();
    std::fs::write(
        fixture_dir().join(format!("{version}-sample.expected.json")),
        serde_json::to_string_pretty(&exp).unwrap() + "\n",
    )
    .unwrap();
    eprintln!("wrote {} ({} bytes)", fixture_dir().join(&name).display(), bytes.len());
}
