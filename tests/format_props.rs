//! Property tests of the format layer alone (no fjall): RecordWriter →
//! bytes → Archive::from_bytes / StreamReader → records, with many cases.
//! Also checks the §6 block-cutting rule against an independent model, and
//! that keyspaces written in any order give the bytes of table order, and
//! that keyspace options survive both their encodings (§5.2 bytes, and the
//! JSON of `inspect --json` that writers take back).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::Model;
use floe::format::header::Header;
use floe::format::keyspace_table::KeyspaceEntry;
use floe::format::options::{Compaction, Compression, FilterEntry, KeyspaceOptions, KvSeparation};
use floe::progress::NoProgress;
use floe::read::{verify_stream, Archive, StreamReader};
use floe::write::RecordWriter;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn write_archive(model: &Model, block_size: u32, level: i32) -> Vec<u8> {
    let entries: Vec<KeyspaceEntry> =
        model.keys().map(|n| KeyspaceEntry { name: n.clone(), options: KeyspaceOptions::default() }).collect();
    let mut w = RecordWriter::new(Vec::new(), Header::new(level, block_size, 0), entries).unwrap();
    for (name, recs) in model {
        // Skip beginning empty keyspaces sometimes: the writer must still emit them.
        if recs.is_empty() && name.len() % 2 == 0 {
            continue;
        }
        w.begin_keyspace(name).unwrap();
        for (k, v) in recs {
            w.put(k, v).unwrap();
        }
    }
    let (bytes, summary) = w.finish().unwrap();
    assert_eq!(summary.archive_bytes, bytes.len() as u64);
    assert_eq!(summary.records, model.values().map(|r| r.len() as u64).sum::<u64>());
    bytes
}

/// As [`write_archive`], beginning the keyspaces in `order` (positions in
/// name order), with the table declared up front or not.
fn write_in_order_of(
    model: &Model,
    order: &[usize],
    block_size: u32,
    level: i32,
    declared: bool,
    to_file: bool,
) -> Vec<u8> {
    let spaces: Vec<_> = model.iter().collect();
    let header = Header::new(level, block_size, 0);
    let mut w = if declared {
        let entries =
            model.keys().map(|n| KeyspaceEntry { name: n.clone(), options: KeyspaceOptions::default() }).collect();
        RecordWriter::new(Vec::new(), header, entries).unwrap()
    } else {
        RecordWriter::undeclared(Vec::new(), header).unwrap()
    };
    let dir = common::tempdir();
    w = w.spool_in(dir.path()).spool_memory_limit(if to_file { 0 } else { 1 << 20 });
    for &i in order {
        let (name, recs) = spaces[i];
        if declared && recs.is_empty() && name.len() % 2 == 0 {
            continue;
        }
        w.begin_keyspace(name).unwrap();
        for (k, v) in recs {
            w.put(k, v).unwrap();
        }
    }
    let (bytes, summary) = w.finish().unwrap();
    assert_eq!(summary.archive_bytes, bytes.len() as u64);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the spool left a file behind");
    bytes
}

/// The raw block lengths §6 prescribes for one keyspace, computed from the rule
/// text independently of floe's BlockBuilder.
fn expected_raw_lens(name: &str, recs: &BTreeMap<Vec<u8>, Vec<u8>>, target: usize) -> Vec<(usize, bool)> {
    let mut blocks = Vec::new();
    let mut cur = 6 + name.len(); // the marker
    for (k, v) in recs {
        let enc = 6 + k.len() + v.len();
        if cur + enc <= target {
            cur += enc;
            continue;
        }
        if cur > 0 {
            blocks.push((cur, false));
        }
        if enc <= target {
            cur = enc;
            continue;
        }
        let mut rest = enc;
        while rest > target {
            blocks.push((target, true));
            rest -= target;
        }
        cur = rest;
    }
    if cur > 0 {
        blocks.push((cur, false));
    }
    blocks
}

fn read_all<B: AsRef<[u8]> + Sync>(a: &Archive<B>) -> Model {
    let mut out = Model::new();
    for (k, e) in a.keyspaces().iter().enumerate() {
        let mut recs = BTreeMap::new();
        let t = a
            .for_each_record(k, true, None, |key, v| {
                let prev = recs.insert(key.to_vec(), v.expect("materialized value").to_vec());
                assert!(prev.is_none(), "duplicate key");
                Ok(())
            })
            .unwrap();
        assert_eq!(t.record_count, recs.len() as u64);
        out.insert(e.name.clone(), recs);
    }
    out
}

fn read_stream(bytes: &[u8]) -> Model {
    let mut s = StreamReader::new(bytes, "stream").unwrap();
    let names: Vec<String> = s.keyspaces().iter().map(|e| e.name.clone()).collect();
    let mut out = Model::new();
    for n in &names {
        out.insert(n.clone(), BTreeMap::new());
    }
    s.for_each_keyspace(true, None, |k, recs| {
        let m = out.get_mut(&names[k]).unwrap();
        recs.for_each_record(|key, v| {
            m.insert(key.to_vec(), v.expect("materialized").to_vec());
            Ok(())
        })
    })
    .unwrap();
    out
}

fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,8}",
        proptest::collection::vec(any::<char>(), 1..80).prop_map(|cs| {
            let s: String = cs.into_iter().collect();
            let mut end = s.len().min(255);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_owned()
        }),
    ]
}

fn model_strategy() -> impl Strategy<Value = Model> {
    let key = prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 1..12),
        2 => proptest::collection::vec(0u8..2, 1..5),
        1 => proptest::collection::vec(any::<u8>(), 4_000..9_000),
    ];
    let value = prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
        1 => proptest::collection::vec(any::<u8>(), 4_090..13_000),
    ];
    proptest::collection::btree_map(name_strategy(), proptest::collection::btree_map(key, value, 0..24), 0..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(debug_assertions) { 96 } else { 256 }, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn prop_record_writer_round_trip(
        model in model_strategy(),
        block_size in prop_oneof![Just(4096u32), 4096u32..20_000],
        level in prop_oneof![Just(1i32), Just(3), Just(-5)],
    ) {
        let bytes = write_archive(&model, block_size, level);
        let a = Archive::from_bytes(bytes.as_slice(), "mem").unwrap();
        prop_assert_eq!(a.keyspaces().len(), model.len());
        let r = a.verify(false, &NoProgress).unwrap();
        prop_assert_eq!(r.records, model.values().map(|r| r.len() as u64).sum::<u64>());
        a.verify(true, &NoProgress).unwrap();
        prop_assert_eq!(&read_all(&a), &model);
        prop_assert_eq!(&read_stream(&bytes), &model);
        verify_stream(bytes.as_slice(), "s", false, &NoProgress).unwrap();
        verify_stream(bytes.as_slice(), "s", true, &NoProgress).unwrap();

        // Block cutting follows §6 exactly.
        for (k, (name, recs)) in model.iter().enumerate() {
            let ki = &a.index().keyspaces[k];
            let first = ki.first_block as usize;
            let got: Vec<(usize, bool)> = (first..first + ki.totals.block_count as usize)
                .map(|b| {
                    let mut raw = Vec::new();
                    let h = a.read_block(b, &mut raw).unwrap();
                    assert_eq!(raw.len(), h.raw_len as usize);
                    (h.raw_len as usize, h.continues())
                })
                .collect();
            prop_assert_eq!(got, expected_raw_lens(name, recs, block_size as usize), "keyspace {:?}", name);
            let t = &ki.totals;
            prop_assert_eq!(t.key_bytes, recs.keys().map(|k| k.len() as u64).sum::<u64>());
            prop_assert_eq!(t.value_bytes, recs.values().map(|v| v.len() as u64).sum::<u64>());
            prop_assert_eq!(t.first_key.as_slice(), recs.keys().next().map_or(&[][..], |k| k.as_slice()));
            prop_assert_eq!(t.last_key.as_slice(), recs.keys().next_back().map_or(&[][..], |k| k.as_slice()));
        }
    }
}

fn model_and_order() -> impl Strategy<Value = (Model, Vec<usize>)> {
    model_strategy().prop_flat_map(|m| {
        let n = m.len();
        (Just(m), Just((0..n).collect::<Vec<usize>>()).prop_shuffle())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(debug_assertions) { 48 } else { 128 }, failure_persistence: None, ..ProptestConfig::default() })]

    /// Keyspaces begun in any order give the archive of table order, byte
    /// for byte (§12), which reads back as the model.
    #[test]
    fn prop_any_order_writes_the_bytes_of_table_order(
        (model, order) in model_and_order(),
        block_size in prop_oneof![Just(4096u32), 4096u32..20_000],
        level in prop_oneof![Just(1i32), Just(-5)],
        declared in any::<bool>(),
        to_file in any::<bool>(),
    ) {
        let want = write_archive(&model, block_size, level);
        let got = write_in_order_of(&model, &order, block_size, level, declared, to_file);
        prop_assert!(got == want, "order {:?}, declared {}, to file {}: the archives differ", order, declared, to_file);
        let a = Archive::from_bytes(got.as_slice(), "mem").unwrap();
        a.verify(false, &NoProgress).unwrap();
        prop_assert_eq!(&read_all(&a), &model);
        prop_assert_eq!(&read_stream(&got), &model);
    }
}

/// `Some(policy of 1 to 5 values)` or `None`.
fn policy<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<Vec<T>>> {
    proptest::option::of(proptest::collection::vec(s, 1..6))
}

/// Every option set an archive can carry (§5.2's ranges, edges included),
/// without unknown ids (whose values `to_json` does not show).
fn options_strategy() -> BoxedStrategy<KeyspaceOptions> {
    let comp = prop_oneof![Just(Compression::None), Just(Compression::Lz4)];
    let unit = prop_oneof![Just(0.0f32), Just(1.0f32), 0.0f32..=1.0];
    let filter = prop_oneof![
        Just(FilterEntry::None),
        prop_oneof![Just(64.0f32), Just(f32::MIN_POSITIVE), 0.001f32..=64.0].prop_map(FilterEntry::BloomBitsPerKey),
        prop_oneof![Just(f32::MIN_POSITIVE), 0.000_001f32..0.999_999].prop_map(FilterEntry::BloomFalsePositiveRate),
    ];
    let kv = (comp.clone(), any::<u64>(), any::<u32>(), unit.clone(), unit).prop_map(|(c, f, s, st, a)| KvSeparation {
        blob_compression: c,
        file_target_size: f,
        separation_threshold: s,
        staleness_threshold: st,
        age_cutoff: a,
    });
    let ratio = prop_oneof![Just(f32::MAX), Just(f32::MIN_POSITIVE), 0.01f32..1000.0];
    let compaction = prop_oneof![
        (1u8..=255, 1u64..=u64::MAX, proptest::collection::vec(ratio, 0..8))
            .prop_map(|(l, t, r)| { Compaction::Leveled { l0_threshold: l, table_target_size: t, level_ratios: r } }),
        (any::<u64>(), proptest::option::of(any::<u64>()))
            .prop_map(|(l, t)| Compaction::Fifo { limit_bytes: l, ttl_seconds: t }),
    ];
    let blocks = (
        policy(comp.clone()),
        policy(comp),
        policy(1u32..=u32::MAX),
        policy(1u8..=255),
        policy(1u8..=255),
        policy(prop_oneof![Just(0.0f32), Just(64.0f32), 0.0f32..=64.0]),
    );
    let rest = (
        policy(any::<bool>()),
        policy(any::<bool>()),
        policy(any::<bool>()),
        policy(any::<bool>()),
        proptest::option::of(any::<bool>()),
        policy(filter),
        proptest::option::of(kv),
        proptest::option::of(compaction),
    );
    (blocks, rest)
        .prop_map(|((dc, ic, bs, dr, ir, hr), (ip, fp, ipa, fpa, hits, f, kv, c))| KeyspaceOptions {
            data_block_compression: dc,
            index_block_compression: ic,
            data_block_size: bs,
            data_block_restart_interval: dr,
            index_block_restart_interval: ir,
            data_block_hash_ratio: hr,
            index_block_pinning: ip,
            filter_block_pinning: fp,
            index_block_partitioning: ipa,
            filter_block_partitioning: fpa,
            expect_point_read_hits: hits,
            filter_policy: f,
            kv_separation: kv,
            compaction: c,
            unknown: Vec::new(),
        })
        .boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(debug_assertions) { 256 } else { 1024 }, failure_persistence: None, ..ProptestConfig::default() })]

    /// Both encodings of keyspace options, both directions:
    /// `decode(encode(o)) == o` and `from_json(to_json(o)) == o`.
    #[test]
    fn prop_options_round_trip_through_bytes_and_json(o in options_strategy()) {
        prop_assert_eq!(&KeyspaceOptions::decode(&o.encode(), 0).unwrap(), &o);
        let defaults = KvSeparation {
            blob_compression: Compression::None,
            file_target_size: 1,
            separation_threshold: 1,
            staleness_threshold: 0.0,
            age_cutoff: 0.0,
        };
        let json = o.to_json().to_string();
        match KeyspaceOptions::from_json("ks", &json, &defaults) {
            Ok(back) => prop_assert_eq!(&back, &o, "{}", json),
            Err(e) => prop_assert!(false, "{} refused: {}", json, e),
        }
    }
}

#[test]
fn writer_refuses_bad_records_and_order() {
    let entries = vec![
        KeyspaceEntry { name: "a".into(), options: KeyspaceOptions::default() },
        KeyspaceEntry { name: "b".into(), options: KeyspaceOptions::default() },
    ];
    let mut w = RecordWriter::new(Vec::new(), Header::new(3, 4096, 0), entries.clone()).unwrap();
    w.begin_keyspace("a").unwrap();
    w.put(b"k2", b"").unwrap();
    assert!(w.put(b"k2", b"").is_err(), "duplicate key accepted");
    assert!(w.put(b"k1", b"").is_err(), "descending key accepted");
    assert!(w.put(b"", b"v").is_err(), "empty key accepted");
    assert!(w.put(&vec![1u8; 65_536], b"v").is_err(), "65,536-byte key accepted");
    w.put(b"k3", b"").unwrap();
    w.begin_keyspace("b").unwrap();
    assert!(w.begin_keyspace("a").is_err(), "keyspace order not enforced");
    assert!(w.begin_keyspace("zz").is_err(), "undeclared keyspace accepted");
    // Unsorted or duplicate keyspace declarations are refused.
    let mut rev = entries.clone();
    rev.reverse();
    assert!(RecordWriter::new(Vec::new(), Header::new(3, 4096, 0), rev).is_err());
    let dup = vec![entries[0].clone(), entries[0].clone()];
    assert!(RecordWriter::new(Vec::new(), Header::new(3, 4096, 0), dup).is_err());
    // Block sizes below the format minimum are refused.
    assert!(RecordWriter::new(Vec::new(), Header::new(3, 4095, 0), entries).is_err());
}
