//! Queries in place (floe::read::query: Archive::get, Archive::range,
//! prefix_successor) against an in-memory model, on archives with spanning
//! values, empty keyspaces, keys that are prefixes of each other and 0xff…
//! keys, in memory and over a ranged source; and the CLI's `get` and `cat`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;
mod s3;

use common::{assert_code, floe, hex, p, stderr, stdout, Model, Ranged};
use floe::format::header::Header;
use floe::format::keyspace_table::KeyspaceEntry;
use floe::format::options::KeyspaceOptions;
use floe::read::{Archive, Source};
use floe::{prefix_successor, RecordWriter};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Bound;

fn write_archive(model: &Model, block_size: u32) -> Vec<u8> {
    let entries: Vec<KeyspaceEntry> =
        model.keys().map(|n| KeyspaceEntry { name: n.clone(), options: KeyspaceOptions::default() }).collect();
    let mut w = RecordWriter::new(Vec::new(), Header::new(1, block_size, 0), entries).unwrap();
    for (name, recs) in model {
        w.begin_keyspace(name).unwrap();
        for (k, v) in recs {
            w.put(k, v).unwrap();
        }
    }
    w.finish().unwrap().0
}

type Kv = (Vec<u8>, Vec<u8>);

fn drain_range<B: Source>(a: &Archive<B>, ks: &str, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Vec<Kv> {
    let mut r = a.range(ks, from, to).unwrap();
    let mut out = Vec::new();
    while let Some(rec) = r.next().unwrap() {
        out.push((rec.key.to_vec(), rec.value.to_vec()));
    }
    // The end repeats.
    assert!(r.next().unwrap().is_none());
    out
}

fn model_range(recs: &BTreeMap<Vec<u8>, Vec<u8>>, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Vec<Kv> {
    let within = |k: &[u8]| {
        (match from {
            Bound::Included(s) => k >= s,
            Bound::Excluded(s) => k > s,
            Bound::Unbounded => true,
        }) && (match to {
            Bound::Included(e) => k <= e,
            Bound::Excluded(e) => k < e,
            Bound::Unbounded => true,
        })
    };
    recs.iter().filter(|(k, _)| within(k)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Probe keys: present keys, their prefixes and neighbours, 0xff… keys, and `random`.
fn probes(recs: &BTreeMap<Vec<u8>, Vec<u8>>, random: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut p: Vec<Vec<u8>> = random.to_vec();
    p.extend([vec![], vec![0], vec![0xff], vec![0xff; 2], vec![0xff; 70]]);
    for k in recs.keys().take(5).chain(recs.keys().rev().take(3)) {
        p.push(k.clone());
        p.push(k[..k.len() - 1].to_vec());
        p.push([k.as_slice(), &[0]].concat());
        p.push([k.as_slice(), &[0xff, 0xff]].concat());
    }
    p
}

fn bound(kind: u8, key: &[u8]) -> Bound<&[u8]> {
    match kind % 3 {
        0 => Bound::Included(key),
        1 => Bound::Excluded(key),
        _ => Bound::Unbounded,
    }
}

fn check_queries<B: Source>(a: &Archive<B>, model: &Model, random: &[Vec<u8>]) -> Result<(), TestCaseError> {
    for (name, recs) in model {
        let ps = probes(recs, random);
        for key in &ps {
            prop_assert_eq!(a.get(name, key).unwrap(), recs.get(key).cloned(), "get {:?} in {:?}", key, name);
            // As a prefix.
            let succ = prefix_successor(key);
            let want: Vec<Kv> =
                recs.iter().filter(|(k, _)| k.starts_with(key)).map(|(k, v)| (k.clone(), v.clone())).collect();
            let got = drain_range(a, name, Bound::Included(key), floe::read::query::upper(&succ));
            prop_assert_eq!(got, want, "prefix {:?} in {:?}", key, name);
        }
        // Ranges between pairs of probes, with every kind of bound.
        for (i, s) in ps.iter().enumerate().step_by(3) {
            for (j, e) in ps.iter().enumerate().step_by(2) {
                // Every pair of bound kinds occurs (i / 3 and j / 2 count up by one).
                let (from, to) = (bound((i / 3) as u8, s), bound((i / 3 + j / 2) as u8, e));
                let got = drain_range(a, name, from, to);
                prop_assert_eq!(got, model_range(recs, from, to), "range {:?}..{:?} in {:?}", from, to, name);
            }
        }
        prop_assert_eq!(
            drain_range(a, name, Bound::Unbounded, Bound::Unbounded),
            model_range(recs, Bound::Unbounded, Bound::Unbounded)
        );
    }
    // A keyspace the archive lacks names the ones it holds.
    let e = a.get("no such keyspace", b"k").unwrap_err();
    prop_assert_eq!(e.kind(), floe::ErrorKind::InvalidArgument);
    for name in model.keys() {
        prop_assert!(e.to_string().contains(&format!("'{name}'")), "{}", e);
    }
    prop_assert!(a.range("no such keyspace", Bound::Unbounded, Bound::Unbounded).is_err());
    Ok(())
}

fn model_strategy() -> impl Strategy<Value = Model> {
    let key = prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 1..12),
        // Short keys over a tiny alphabet: many are prefixes of each other, and 0xff… keys.
        4 => proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xfe), Just(0xff)], 1..5),
        1 => proptest::collection::vec(any::<u8>(), 4_000..9_000),
    ];
    let value = prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
        // Larger than a block: spans blocks (CONTINUES).
        2 => proptest::collection::vec(any::<u8>(), 4_090..13_000),
    ];
    // 0..20 records: some keyspaces are empty.
    proptest::collection::btree_map("[a-z]{1,6}", proptest::collection::btree_map(key, value, 0..20), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(debug_assertions) { 16 } else { 64 }, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn prop_get_and_range_match_model(
        model in model_strategy(),
        block_size in prop_oneof![Just(4096u32), 4096u32..12_000],
        random in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..6), 0..6),
    ) {
        let bytes = write_archive(&model, block_size);
        let a = Archive::from_bytes(bytes.as_slice(), "mem").unwrap();
        check_queries(&a, &model, &random)?;
        // A ranged source (as from an object store) answers the same.
        let r = Archive::from_bytes(Ranged::new(&bytes), "ranged").unwrap();
        check_queries(&r, &model, &random)?;
    }
}

/// A model with spanning values, an empty keyspace, prefix keys and 0xff keys.
fn fixed_model() -> Model {
    let mut m = Model::new();
    let mut a = BTreeMap::new();
    for i in 0u32..300 {
        a.insert(format!("k{i:04}").into_bytes(), format!("v{i}").into_bytes());
    }
    a.insert(b"k".to_vec(), b"short".to_vec());
    a.insert(b"k0100x".to_vec(), vec![7; 20_000]); // spans blocks
    a.insert(vec![0xff; 3], vec![0xfe, 0xff]); // not UTF-8
    m.insert("a".into(), a);
    m.insert("b-empty".into(), BTreeMap::new());
    m.insert("c".into(), BTreeMap::from([(b"k0100".to_vec(), b"in c".to_vec()), (vec![0xff], vec![])]));
    m
}

#[test]
fn absent_keys_outside_a_keyspace_read_no_block() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let m = fixed_model();
    let bytes = write_archive(&m, 4096);
    let fetched = AtomicU64::new(0);
    let a = Archive::from_bytes(Ranged::counting(&bytes, &fetched), "ranged").unwrap();
    let opened = fetched.load(Ordering::Relaxed);
    // Before the first key, after the last, and in an empty keyspace: answered from the index.
    assert_eq!(a.get("a", b"a").unwrap(), None);
    assert_eq!(a.get("a", &[0xff; 4]).unwrap(), None);
    assert_eq!(a.get("b-empty", b"k").unwrap(), None);
    assert!(drain_range(&a, "a", Bound::Unbounded, Bound::Excluded(b"k")).is_empty());
    assert!(drain_range(&a, "a", Bound::Excluded(&[0xff; 3]), Bound::Unbounded).is_empty());
    assert_eq!(fetched.load(Ordering::Relaxed), opened, "no block was read");
    // A key inside the keyspace reads blocks.
    assert_eq!(a.get("a", b"k0100x").unwrap(), Some(vec![7; 20_000]));
    assert!(fetched.load(Ordering::Relaxed) > opened);
    // A range stops at its end: far fewer bytes than the keyspace.
    let before = fetched.load(Ordering::Relaxed);
    assert_eq!(drain_range(&a, "a", Bound::Included(b"k"), Bound::Excluded(b"k0002")).len(), 3);
    let ks_bytes: u64 = a.index().keyspaces[0].totals.compressed_bytes;
    assert!(fetched.load(Ordering::Relaxed) - before < ks_bytes / 2, "range read past its end");
}

/// The fixed model as an archive file in a temporary directory.
fn archive_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("q.floe");
    std::fs::write(&path, write_archive(&fixed_model(), 4096)).unwrap();
    path
}

#[test]
fn cli_get_found_absent_missing_keyspace_hex_and_json() {
    let dir = common::tempdir();
    let f = archive_file(dir.path());
    let f = p(&f);
    // Found: the raw bytes, nothing else.
    let o = floe(&["get", f, "a", "k0007"]);
    assert_code(&o, 0);
    assert_eq!(o.stdout, b"v7");
    let o = floe(&["get", f, "a", "k0100x"]);
    assert_code(&o, 0);
    assert_eq!(o.stdout, vec![7; 20_000]);
    // The same key in another keyspace.
    assert_eq!(floe(&["get", f, "c", "k0100"]).stdout, b"in c");
    // --hex.
    let o = floe(&["get", "--hex", f, "a", "ffffff"]);
    assert_code(&o, 0);
    assert_eq!(o.stdout, [0xfe, 0xff]);
    // Over a file:// URL.
    let url = format!("file://{f}");
    assert_eq!(floe(&["get", &url, "a", "k"]).stdout, b"short");
    // Absent: exit 7, "not found" on stderr, nothing on stdout; inside, before and after the keyspace, and empty.
    for (ks, key) in [("a", "k0007a"), ("a", "a"), ("a", "zzz"), ("b-empty", "k"), ("c", "k0007")] {
        let o = floe(&["get", f, ks, key]);
        assert_code(&o, 7);
        assert!(o.stdout.is_empty());
        assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    }
    // A missing keyspace: an error naming the ones there are.
    let o = floe(&["get", f, "nope", "k"]);
    assert_code(&o, 1);
    let e = stderr(&o);
    assert!(e.contains("'nope'") && e.contains("'a', 'b-empty', 'c'"), "{e}");
    // Bad hex: a clear message.
    for bad in ["fff", "zz"] {
        let o = floe(&["get", "--hex", f, "a", bad]);
        assert_code(&o, 1);
        assert!(stderr(&o).contains("not hex"), "{}", stderr(&o));
    }
    // --json, found: value only when it is UTF-8.
    let j = |o: &std::process::Output| serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap();
    let o = floe(&["--json", "get", f, "a", "k0007"]);
    assert_code(&o, 0);
    let v = j(&o);
    assert_eq!(v["ok"], true);
    assert_eq!(v["found"], true);
    assert_eq!(v["keyspace"], "a");
    assert_eq!(v["key_hex"], hex(b"k0007"));
    assert_eq!(v["value_hex"], hex(b"v7"));
    assert_eq!(v["value"], "v7");
    let v = j(&floe(&["--json", "get", "--hex", f, "a", "ffffff"]));
    assert_eq!(v["value_hex"], "feff");
    assert!(v.get("value").is_none(), "{v}");
    // --json, absent: exit 7 with found false.
    let o = floe(&["--json", "get", f, "a", "nope"]);
    assert_code(&o, 7);
    let v = j(&o);
    assert_eq!(
        (v["ok"].clone(), v["found"].clone(), v["key_hex"].clone()),
        (true.into(), false.into(), hex(b"nope").into())
    );
    // --json, missing keyspace: the error document.
    let o = floe(&["--json", "get", f, "nope", "k"]);
    assert_code(&o, 1);
    let v = j(&o);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["kind"], "invalid_argument");
}

fn jsonl(o: &std::process::Output) -> Vec<serde_json::Value> {
    stdout(o).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn keys_of(v: &[serde_json::Value]) -> Vec<String> {
    v.iter().map(|r| format!("{}/{}", r["keyspace"].as_str().unwrap(), r["key_hex"].as_str().unwrap())).collect()
}

#[test]
fn cli_cat_formats_keyspaces_and_ranges() {
    let dir = common::tempdir();
    let m = fixed_model();
    let f = archive_file(dir.path());
    let f = p(&f);
    let all_of = |pred: &dyn Fn(&str, &[u8]) -> bool| -> Vec<String> {
        m.iter()
            .flat_map(|(ks, recs)| recs.keys().filter(|k| pred(ks, k)).map(move |k| format!("{ks}/{}", hex(k))))
            .collect()
    };
    // Everything, in archive order.
    let o = floe(&["cat", f]);
    assert_code(&o, 0);
    let recs = jsonl(&o);
    assert_eq!(keys_of(&recs), all_of(&|_, _| true));
    // Each object: hex always, text when UTF-8.
    let r = recs.iter().find(|r| r["key_hex"] == hex(b"k0007")).unwrap();
    assert_eq!(
        (r["key"].as_str(), r["value"].as_str(), r["value_hex"].as_str()),
        (Some("k0007"), Some("v7"), Some(hex(b"v7").as_str()))
    );
    let r = recs.iter().find(|r| r["key_hex"] == "ffffff").unwrap();
    assert!(r.get("key").is_none() && r.get("value").is_none(), "{r}");
    assert_eq!(r["value_hex"], "feff");
    let big = recs.iter().find(|r| r["key_hex"] == hex(b"k0100x")).unwrap();
    assert_eq!(big["value_hex"].as_str().unwrap().len(), 40_000);
    // tsv.
    let o = floe(&["cat", f, "--format", "tsv", "-k", "c"]);
    assert_code(&o, 0);
    assert_eq!(stdout(&o), format!("c\t{}\t{}\nc\tff\t\n", hex(b"k0100"), hex(b"in c")));
    // -k: several keyspaces, still in archive order whatever the order given.
    let o = floe(&["cat", f, "-k", "c", "-k", "a"]);
    assert_eq!(keys_of(&jsonl(&o)), all_of(&|ks, _| ks != "b-empty"));
    let o = floe(&["cat", f, "-k", "b-empty"]);
    assert_code(&o, 0);
    assert!(o.stdout.is_empty());
    let o = floe(&["cat", f, "-k", "nope"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("'a', 'b-empty', 'c'"), "{}", stderr(&o));
    // --prefix, in every keyspace.
    let o = floe(&["cat", f, "--prefix", "k010"]);
    assert_eq!(keys_of(&jsonl(&o)), all_of(&|_, k| k.starts_with(b"k010")));
    assert_eq!(jsonl(&o).len(), 12);
    // --prefix of 0xff bytes with --hex: unbounded above.
    let o = floe(&["cat", f, "--hex", "--prefix", "ff"]);
    assert_eq!(keys_of(&jsonl(&o)), all_of(&|_, k| k.starts_with(&[0xff])));
    // --from inclusive, --to exclusive; either alone.
    let o = floe(&["cat", f, "-k", "a", "--from", "k0010", "--to", "k0013"]);
    assert_eq!(keys_of(&jsonl(&o)), ["k0010", "k0011", "k0012"].map(|k| format!("a/{}", hex(k.as_bytes()))));
    let o = floe(&["cat", f, "--from", "k0298"]);
    assert_eq!(keys_of(&jsonl(&o)), all_of(&|_, k| k >= b"k0298".as_slice()));
    let o = floe(&["cat", f, "--hex", "--to", hex(b"k0001").as_str()]);
    assert_eq!(keys_of(&jsonl(&o)), all_of(&|_, k| k < b"k0001".as_slice()));
    // --prefix with --from is a usage error; bad hex is refused.
    assert_code(&floe(&["cat", f, "--prefix", "a", "--from", "b"]), 2);
    let o = floe(&["cat", f, "--hex", "--from", "xy"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains("--from") && stderr(&o).contains("not hex"), "{}", stderr(&o));
}

#[test]
fn cli_get_and_cat_over_s3() {
    let Some(m) = s3::moto() else { return };
    m.create_bucket("query");
    m.put("query", "q.floe", &write_archive(&fixed_model(), 4096));
    let url = "s3://query/q.floe";
    let o = m.floe(&["get", url, "a", "k0100x"]).output().unwrap();
    assert_code(&o, 0);
    assert_eq!(o.stdout, vec![7; 20_000]);
    let o = m.floe(&["get", url, "a", "k0100y"]).output().unwrap();
    assert_code(&o, 7);
    let o = m.floe(&["cat", url, "--prefix", "k010", "--format", "tsv"]).output().unwrap();
    assert_code(&o, 0);
    assert_eq!(stdout(&o).lines().count(), 12);
    let o = m.floe(&["get", url, "nope", "k"]).output().unwrap();
    assert_code(&o, 1);
    assert!(stderr(&o).contains("'a', 'b-empty', 'c'"), "{}", stderr(&o));
}
