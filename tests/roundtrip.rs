//! Round trips through fjall: database → export → archive → import → database,
//! as property tests over arbitrary keyspaces and binary records (small block
//! sizes, so records span blocks), plus explicit edge cases: empty database,
//! empty keyspaces, 65,535-byte keys with empty values, multi-MiB values in a
//! key-value-separated keyspace, and 1,000 keyspaces.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use floe::import::{import_archive, import_file, import_stream, ImportOptions};
use floe::progress::NoProgress;
use floe::read::{verify_stream, Archive};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// Exports `model` from a real database, checks the archive, imports it twice
/// (random access and streaming) and compares everything.
fn round_trip(model: &Model, kv_sep: &BTreeSet<String>, block_size: u32, threads: usize) -> Vec<u8> {
    let dir = tempdir();
    let src = create_db(&dir.path().join("src"), model, kv_sep);
    let bytes = export_bytes(&src, &opts(block_size, threads));
    // The source holds what we put in (sanity for the test itself).
    assert_models_eq(&read_db(&src), model);

    let a = Archive::from_bytes(bytes.as_slice(), "mem").expect("open archive");
    let full = a.verify(false, &NoProgress).expect("verify");
    let quick = a.verify(true, &NoProgress).expect("verify --quick");
    let records: u64 = model.values().map(|r| r.len() as u64).sum();
    assert_eq!(full.records, records);
    assert_eq!(quick.records, records);
    assert_eq!(full.keyspaces, model.len());
    assert_eq!(a.header().block_target, block_size);
    let st = verify_stream(bytes.as_slice(), "mem", false, &NoProgress).expect("verify stream");
    assert_eq!(st.records, records);
    assert_eq!(st.archive_bytes, bytes.len() as u64);

    // Records read straight from the archive equal the model.
    let mut from_archive = Model::new();
    for (k, e) in a.keyspaces().iter().enumerate() {
        let mut recs = BTreeMap::new();
        let mut last: Option<Vec<u8>> = None;
        a.for_each_record(k, true, None, |key, v| {
            assert!(last.as_deref().is_none_or(|l| l < key), "keys not ascending");
            last = Some(key.to_vec());
            recs.insert(key.to_vec(), v.expect("materialized").to_vec());
            Ok(())
        })
        .unwrap();
        from_archive.insert(e.name.clone(), recs);
    }
    assert_models_eq(&from_archive, model);

    // Random-access import.
    let dst = dir.path().join("dst");
    let s = import_archive(
        &a,
        &dst,
        &{
            let mut o = ImportOptions::default();
            o.threads = threads;
            o
        },
        &NoProgress,
    )
    .expect("import");
    assert_eq!(s.records, records);
    assert_eq!(s.keyspaces, model.len());
    let imported = open_db(&dst);
    assert_models_eq(&read_db(&imported), model);
    let n = floe::sample::compare_databases(&src, &imported).expect("compare_databases");
    assert_eq!(n, records);
    for name in kv_sep {
        assert!(is_kv_separated(&imported, name), "keyspace {name} lost key-value separation");
    }
    drop(imported);

    // Random-access import with every keyspace of more than one block split
    // into up to three segments, ingested in parallel and joined.
    let dst4 = dir.path().join("dst4");
    let o = {
        let mut o = ImportOptions::default();
        o.threads = 3;
        o.segment_bytes = 1;
        o
    };
    let s = import_archive(&a, &dst4, &o, &NoProgress).expect("segmented import");
    assert_eq!(s.records, records);
    assert_models_eq(&read_db_at(&dst4), model);
    // Import from a source read by ranges (as from an object store).
    let fetched = std::sync::atomic::AtomicU64::new(0);
    let ranged = Archive::from_bytes(Ranged::counting(&bytes, &fetched), "mem").expect("open ranged");
    // Opening (all that inspect needs) reads only the header, the keyspace
    // table, the index and the trailer, plus an 8-byte size probe for each of
    // the first two; the blocks are read as they are decoded.
    let t = ranged.trailer();
    let data_start = a.index().blocks.first().map_or(t.index_offset, |b| b.offset);
    assert_eq!(fetched.load(std::sync::atomic::Ordering::Relaxed), data_start + 16 + t.index_size + 60);
    assert_eq!(floe::inspect::inspect_json(&ranged), floe::inspect::inspect_json(&a));
    assert_eq!(ranged.verify(false, &NoProgress).expect("ranged verify").records, records);
    assert_eq!(ranged.verify(true, &NoProgress).expect("ranged verify --quick").records, records);
    let dst3 = dir.path().join("dst3");
    let s = import_archive(
        &ranged,
        &dst3,
        &{
            let mut o = ImportOptions::default();
            o.threads = threads;
            o.segment_bytes = 1;
            o
        },
        &NoProgress,
    )
    .expect("ranged import");
    assert_eq!(s.records, records);
    let imported = open_db(&dst3);
    assert_eq!(floe::sample::compare_databases(&src, &imported), Ok(records));
    drop(imported);

    // Streaming import, reading in awkward small chunks.
    let dst2 = dir.path().join("dst2");
    let s = import_stream(
        Chunky { data: &bytes, pos: 0, step: 0 },
        "chunky",
        &dst2,
        &ImportOptions::default(),
        &NoProgress,
    )
    .expect("import_stream");
    assert_eq!(s.records, records);
    let imported = open_db(&dst2);
    assert_eq!(floe::sample::compare_databases(&src, &imported), Ok(records));
    drop(imported);
    assert_no_temporaries(dir.path());
    bytes
}

/// A reader returning between 1 and 13 bytes per call.
struct Chunky<'a> {
    data: &'a [u8],
    pos: usize,
    step: usize,
}

impl std::io::Read for Chunky<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.step = self.step % 13 + 1;
        let n = self.step.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Keyspace names: 1–255 bytes of arbitrary UTF-8 (any chars, cut at a char boundary).
fn name_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z][a-z0-9_.-]{0,12}",
        2 => proptest::collection::vec(any::<char>(), 1..40).prop_map(|cs| cs.into_iter().collect::<String>()),
        1 => proptest::collection::vec(any::<char>(), 60..120).prop_map(|cs| cs.into_iter().collect::<String>()),
    ]
    .prop_map(|s| {
        let mut end = s.len().min(255);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s[..end].to_owned()
    })
}

fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        10 => proptest::collection::vec(any::<u8>(), 0..200),
        1 => proptest::collection::vec(any::<u8>(), 3_000..14_000),
        1 => (0u8..4, 4_000usize..20_000).prop_map(|(b, n)| vec![b; n]),
    ]
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 1..24),
        1 => proptest::collection::vec(0u8..3, 1..6),
        1 => proptest::collection::vec(any::<u8>(), 1_000..6_000),
    ]
}

fn model_strategy() -> impl Strategy<Value = (Model, BTreeSet<String>)> {
    proptest::collection::btree_map(
        name_strategy(),
        (proptest::collection::btree_map(key_strategy(), value_strategy(), 0..40), any::<bool>(), 0u8..6),
        0..5,
    )
    .prop_map(|m| {
        let mut model = Model::new();
        let mut kv = BTreeSet::new();
        for (name, (recs, sep, empty)) in m {
            if sep {
                kv.insert(name.clone());
            }
            // Some keyspaces are empty on purpose.
            model.insert(name, if empty == 0 { BTreeMap::new() } else { recs });
        }
        (model, kv)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn prop_database_round_trip(
        (model, kv) in model_strategy(),
        block_size in prop_oneof![Just(4096u32), Just(5000u32), Just(16384u32)],
        threads in 1usize..3,
    ) {
        round_trip(&model, &kv, block_size, threads);
    }
}

#[test]
fn empty_database() {
    let bytes = round_trip(&Model::new(), &BTreeSet::new(), 4096, 1);
    let a = Archive::from_bytes(bytes.as_slice(), "empty").unwrap();
    assert_eq!(a.keyspaces().len(), 0);
    assert_eq!(a.index().blocks.len(), 0);
    // Header, keyspace table, index and trailer only.
    assert!(bytes.len() < 300, "{} bytes", bytes.len());
}

#[test]
fn empty_keyspaces() {
    let mut m = Model::new();
    for n in ["a", "b", "c d", "ünïcødé", &"x".repeat(255)] {
        m.insert(n.to_owned(), BTreeMap::new());
    }
    m.get_mut("b").unwrap().insert(b"only".to_vec(), b"record".to_vec());
    let bytes = round_trip(&m, &BTreeSet::new(), 4096, 2);
    let a = Archive::from_bytes(bytes.as_slice(), "m").unwrap();
    // Every keyspace, empty ones included, has exactly one block (its marker).
    assert!(a.index().keyspaces.iter().all(|k| k.totals.block_count == 1));
    assert_eq!(a.index().keyspaces[0].totals.record_count, 0);
    assert!(a.index().keyspaces[0].totals.first_key.is_empty());
}

#[test]
fn max_length_keys_and_empty_values() {
    let mut recs = BTreeMap::new();
    for b in [0u8, 1, 0x7f, 0xfe, 0xff] {
        let mut k = vec![0xA5; 65_535];
        k[65_534] = b;
        recs.insert(k, Vec::new());
        let mut k = vec![b; 65_535];
        k[0] = 0x10;
        recs.insert(k, Vec::new());
    }
    recs.insert(vec![0x00], Vec::new());
    recs.insert(vec![0xff; 65_535], Vec::new());
    let mut m = Model::new();
    m.insert("keys".into(), recs.clone());
    m.insert("keys-sep".into(), recs);
    let kv: BTreeSet<String> = ["keys-sep".to_owned()].into();
    for bs in [4096, 65_541, 1 << 20] {
        let bytes = round_trip(&m, &kv, bs, 2);
        let a = Archive::from_bytes(bytes.as_slice(), "m").unwrap();
        assert_eq!(a.index().keyspaces[0].totals.last_key, vec![0xff; 65_535]);
        assert_eq!(a.index().keyspaces[0].totals.value_bytes, 0);
        if bs == 4096 {
            // A 65,541-byte record spans 17 blocks of 4 KiB.
            assert!(a.index().keyspaces[0].totals.block_count > 150, "{}", a.index().keyspaces[0].totals.block_count);
        }
    }
}

#[test]
fn multi_mib_values_with_kv_separation() {
    let mut rng = floe::sample::Rng(77);
    let mut big = |n: usize| {
        let mut v = floe::sample::texty(&mut rng, n / 2);
        let mut noise = vec![0u8; n - v.len()];
        rng.fill(&mut noise);
        v.extend_from_slice(&noise);
        v
    };
    let mut blobs = BTreeMap::new();
    blobs.insert(b"blob/0".to_vec(), big(5 << 20)); // more than one default 4 MiB block
    blobs.insert(b"blob/1".to_vec(), big(3 << 20));
    blobs.insert(b"blob/2".to_vec(), big(9 << 20)); // three blocks
    blobs.insert(b"blob/3".to_vec(), vec![7u8; 100]); // below the separation threshold
    blobs.insert(b"blob/4".to_vec(), Vec::new());
    let mut plain = BTreeMap::new();
    plain.insert(b"p".to_vec(), big((2 << 20) + 17));
    plain.insert(b"q".to_vec(), b"small".to_vec());
    let mut m = Model::new();
    m.insert("blobs".into(), blobs);
    m.insert("plain".into(), plain);
    let kv: BTreeSet<String> = ["blobs".to_owned()].into();
    let bytes = round_trip(&m, &kv, floe::export::DEFAULT_BLOCK_SIZE, 2);
    let a = Archive::from_bytes(bytes.as_slice(), "m").unwrap();
    assert!(a.keyspaces()[0].options.kv_separation.is_some(), "kv separation not carried");
    assert!(a.keyspaces()[1].options.kv_separation.is_none());
    assert!(a.index().keyspaces[0].totals.block_count >= 5, "{:?}", a.index().keyspaces[0].totals.block_count);
    // Small blocks: one multi-MiB value cut into many pieces still round-trips.
    let mut small = Model::new();
    small.insert("blobs".into(), [(b"one".to_vec(), m["blobs"][&b"blob/1".to_vec()].clone())].into());
    round_trip(&small, &kv, 64 << 10, 1);
}

/// Release builds only by default: fjall rewrites and compacts its metadata
/// keyspace on every keyspace creation, so creating 2 × 1,000 keyspaces takes
/// ~100 s unoptimized (~5 s optimized). `many_keyspaces` below covers the same
/// path with 150 keyspaces in every build.
#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "slow unoptimized (fjall keyspace creation); run with --release or --include-ignored"
)]
fn thousand_keyspaces() {
    keyspaces_round_trip(1000);
}

#[test]
fn many_keyspaces() {
    keyspaces_round_trip(150);
}

fn keyspaces_round_trip(count: u32) {
    let mut m = Model::new();
    for i in 0..count {
        let mut recs = BTreeMap::new();
        for j in 0..(i % 3) {
            recs.insert(format!("key{j}").into_bytes(), i.to_le_bytes().to_vec());
        }
        m.insert(format!("ks{i:04}-{}", "é".repeat((i % 5) as usize)), recs);
    }
    let dir = tempdir();
    let src = create_db(&dir.path().join("src"), &m, &BTreeSet::new());
    let bytes = export_bytes(&src, &opts(4096, 2));
    drop(src);
    let a = Archive::from_bytes(bytes.as_slice(), "k").unwrap();
    let records: u64 = (0..count).map(|i| u64::from(i % 3)).sum();
    assert_eq!(a.keyspaces().len(), count as usize);
    assert_eq!(a.verify(false, &NoProgress).unwrap().records, records);
    let file = dir.path().join("k.floe");
    std::fs::write(&file, &bytes).unwrap();
    let dst = dir.path().join("dst");
    let s = import_file(&file, &dst, &ImportOptions::default(), &NoProgress).unwrap();
    assert_eq!((s.keyspaces, s.records), (count as usize, records));
    assert_models_eq(&read_db_at(&dst), &m);
}

/// Segmented import joins keyspace segments and checks key order across the
/// seam: an archive whose blocks 1 and 2 were swapped (each block sorted
/// inside, totals and index intact) is refused whether the seam falls between
/// segments or inside one, and leaves no database behind.
#[test]
fn segment_seam_out_of_order_is_rejected() {
    use floe::format::keyspace_table::KeyspaceEntry;
    use floe::format::record::{BlockBuilder, RawBlock};
    use floe::write::{ArchiveWriter, EncodedBlock};
    let mut blocks: Vec<RawBlock> = Vec::new();
    let mut b = BlockBuilder::new(0, "ks", 4096);
    let mut emit = |r: RawBlock| -> floe::Result<()> {
        blocks.push(r);
        Ok(())
    };
    for i in 0..290u32 {
        b.push(format!("key{i:06}").as_bytes(), &[i as u8; 40], &mut emit).unwrap();
    }
    b.finish(&mut emit).unwrap();
    assert!(
        blocks.len() >= 4 && !blocks[0].continues && !blocks[1].continues && !blocks[2].continues,
        "{} blocks",
        blocks.len()
    );
    // Swap the contents of blocks 1 and 2 (not their position or sequence).
    let (b1, b2) = (blocks[1].clone(), blocks[2].clone());
    for (slot, from) in [(1, b2), (2, b1)] {
        let seq = blocks[slot].sequence;
        blocks[slot] = RawBlock { sequence: seq, ..from };
    }
    let entries = vec![KeyspaceEntry { name: "ks".into(), options: Default::default() }];
    let mut w = ArchiveWriter::new(Vec::new(), floe::format::header::Header::new(3, 4096, 0), &entries).unwrap();
    // No key index, which would refuse the swap by itself: the seam check is under test.
    w.set_key_index(false);
    let mut c = floe::format::block::BlockCompressor::new(3).unwrap();
    for r in blocks {
        w.write_block(&EncodedBlock::compress(r, &mut c).unwrap()).unwrap();
    }
    let bytes = w.finish().unwrap().0;
    let a = Archive::from_bytes(bytes.as_slice(), "swapped").unwrap();
    // With two segments the seam falls exactly between the swapped blocks.
    let n = a.index().keyspaces[0].totals.block_count as usize;
    assert_eq!(a.segments(0, 2, 1), vec![0..2, 2..n]);
    let dir = tempdir();
    for segment_bytes in [0, 1, 3 * 4096] {
        let dst = dir.path().join(format!("dst{segment_bytes}"));
        let o = {
            let mut o = ImportOptions::default();
            o.threads = 2;
            o.segment_bytes = segment_bytes;
            o
        };
        let e = import_archive(&a, &dst, &o, &NoProgress).expect_err("swapped blocks imported").to_string();
        assert!(e.contains("key out of order"), "segment_bytes {segment_bytes}: {e}");
        assert!(e.contains("swapped") && e.contains("keyspace 'ks'"), "{e}");
        assert!(!dst.exists(), "a failed import left {}", dst.display());
    }
    assert!(a.verify(false, &NoProgress).is_err());
}
