//! The record cursor (floe::read::cursor::RecordCursor) against an in-memory model:
//! iterating, seeking to present, absent, prefix, before-first, after-last and
//! 0xff… keys, on archives with records spanning blocks and empty keyspaces,
//! in memory and over a ranged source; and corruption found through it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::{Model, Ranged};
use floe::format::block::BlockCompressor;
use floe::format::header::Header;
use floe::format::keyspace_table::KeyspaceEntry;
use floe::format::options::KeyspaceOptions;
use floe::format::record::{put_marker, put_record, RawBlock};
use floe::read::cursor::RecordCursor;
use floe::read::{Archive, Source};
use floe::write::{ArchiveWriter, EncodedBlock, RecordWriter};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Deref;

fn entries(names: &[&str]) -> Vec<KeyspaceEntry> {
    names.iter().map(|n| KeyspaceEntry { name: (*n).to_owned(), options: KeyspaceOptions::default() }).collect()
}

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

type Rec = (usize, Vec<u8>, Vec<u8>);

/// Drains a cursor (at most `limit` records).
fn drain<A, B>(c: &mut RecordCursor<A>, limit: usize) -> Vec<Rec>
where
    A: Deref<Target = Archive<B>>,
    B: Source,
{
    let mut out = Vec::new();
    while out.len() < limit {
        match c.next().unwrap() {
            Some(r) => out.push((r.keyspace, r.key.to_vec(), r.value.to_vec())),
            None => break,
        }
    }
    out
}

/// The model's records from keyspace `k`'s first key ≥ `key` on, in cursor
/// order: that keyspace only, or (`whole`) followed by every later keyspace.
fn model_from(model: &Model, k: usize, key: &[u8], whole: bool) -> Vec<Rec> {
    let mut out = Vec::new();
    for (i, recs) in model.values().enumerate().skip(k) {
        if i > k && !whole {
            break;
        }
        for (rk, rv) in recs {
            if i > k || rk.as_slice() >= key {
                out.push((i, rk.clone(), rv.clone()));
            }
        }
    }
    out
}

/// Probe keys for keyspace `recs`: present keys, their neighbours and
/// prefixes, before the first, after the last, 0xff… keys, and `random`.
fn probes(recs: &BTreeMap<Vec<u8>, Vec<u8>>, random: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut p: Vec<Vec<u8>> = random.to_vec();
    p.extend([vec![], vec![0], vec![0xff], vec![0xff; 3], vec![0xff; 70]]);
    for k in recs.keys().take(6).chain(recs.keys().rev().take(3)) {
        p.push(k.clone());
        p.push(k[..k.len() - 1].to_vec()); // a prefix (may be empty)
        let mut longer = k.clone();
        longer.push(0);
        p.push(longer); // just after it
        let mut up = k.clone();
        if let Some(b) = up.last_mut() {
            if *b < 0xff {
                *b += 1;
                p.push(up);
            }
        }
        let mut ff = k.clone();
        ff.extend([0xff; 4]);
        p.push(ff);
    }
    p
}

fn check_cursor<B: Source>(a: &Archive<B>, model: &Model, random: &[Vec<u8>]) -> Result<(), TestCaseError> {
    // The whole archive, in order.
    let all = drain(&mut a.cursor(), usize::MAX);
    prop_assert_eq!(&all, &model_from(model, 0, b"", true));
    // Keys only.
    let mut c = a.cursor().with_values(false);
    let keys = drain(&mut c, usize::MAX);
    prop_assert_eq!(keys.len(), all.len());
    prop_assert!(keys.iter().zip(&all).all(|(x, y)| x.0 == y.0 && x.1 == y.1 && x.2.is_empty()));

    for (k, (name, recs)) in model.iter().enumerate() {
        // One keyspace to its end: totals checked and exposed.
        let mut c = RecordCursor::keyspace(a, k).unwrap();
        prop_assert_eq!(drain(&mut c, usize::MAX), model_from(model, k, b"", false));
        prop_assert_eq!(c.totals(), Some(&a.index().keyspaces[k].totals));
        prop_assert!(c.next().unwrap().is_none(), "the end repeats");

        for key in probes(recs, random) {
            // A few records after the seek, and everything to the end.
            let want = model_from(model, k, &key, false);
            c.seek(k, &key).unwrap();
            prop_assert_eq!(drain(&mut c, 3), want.iter().take(3).cloned().collect::<Vec<_>>(), "seek {:?}", key);
            c.seek_named(name, &key).unwrap();
            prop_assert_eq!(&drain(&mut c, usize::MAX), &want, "seek {:?} in {:?}", key, name);
            // A whole-archive cursor goes on with the next keyspaces.
            let mut w = a.cursor();
            w.seek(k, &key).unwrap();
            prop_assert_eq!(drain(&mut w, usize::MAX), model_from(model, k, &key, true));
        }
        // Back to the start of the keyspace after seeks.
        c.seek_keyspace(k).unwrap();
        prop_assert_eq!(drain(&mut c, usize::MAX), model_from(model, k, b"", false));
    }
    // Out-of-range keyspaces are refused, never a panic.
    let n = model.len();
    prop_assert!(RecordCursor::keyspace(a, n).is_err());
    prop_assert!(a.cursor().seek(n, b"x").is_err());
    prop_assert!(a.cursor().seek_keyspace(usize::MAX).is_err());
    let missing = a.cursor().seek_keyspace_named("no such keyspace");
    prop_assert!(missing.is_err());
    prop_assert!(a.for_each_record(n, true, None, |_, _| Ok(())).is_err());
    Ok(())
}

fn model_strategy() -> impl Strategy<Value = Model> {
    let key = prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 1..12),
        // Short keys over a tiny alphabet: many are prefixes of each other.
        3 => proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(0xff)], 1..5),
        1 => proptest::collection::vec(any::<u8>(), 4_000..9_000),
    ];
    let value = prop_oneof![
        8 => proptest::collection::vec(any::<u8>(), 0..64),
        1 => Just(Vec::new()),
        // Larger than a block: spans blocks (CONTINUES).
        2 => proptest::collection::vec(any::<u8>(), 4_090..13_000),
    ];
    proptest::collection::btree_map("[a-z]{1,6}", proptest::collection::btree_map(key, value, 0..20), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(debug_assertions) { 24 } else { 64 }, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn prop_cursor_matches_model(
        model in model_strategy(),
        block_size in prop_oneof![Just(4096u32), 4096u32..12_000],
        random in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..6), 0..6),
    ) {
        let bytes = write_archive(&model, block_size);
        let a = Archive::from_bytes(bytes.as_slice(), "mem").unwrap();
        check_cursor(&a, &model, &random)?;
        // A ranged source (as from an object store) reads the same.
        let r = Archive::from_bytes(Ranged::new(&bytes), "ranged").unwrap();
        check_cursor(&r, &model, &random)?;
    }
}

/// A model with spanning values, empty keyspaces and 0xff keys.
fn fixed_model() -> Model {
    let mut m = Model::new();
    let mut a = BTreeMap::new();
    for i in 0u32..300 {
        a.insert(format!("k{i:04}").into_bytes(), vec![i as u8; (i as usize * 37) % 200]);
    }
    a.insert(b"k0100x".to_vec(), vec![7; 20_000]); // spans blocks
    a.insert(vec![0xff; 5], vec![1; 9_000]);
    m.insert("a".into(), a);
    m.insert("b-empty".into(), BTreeMap::new());
    m.insert("c".into(), BTreeMap::from([(vec![0xff], vec![]), (vec![0xff, 0xff], vec![2; 5_000])]));
    m
}

#[test]
fn seeks_on_a_fixed_archive_with_spanning_records() {
    let m = fixed_model();
    let bytes = write_archive(&m, 4096);
    let a = Archive::from_bytes(bytes.as_slice(), "mem").unwrap();
    assert!(a.index().keyspaces[0].totals.block_count > 5);
    let mut c = RecordCursor::keyspace(&a, 0).unwrap();
    c.seek(0, b"k0100").unwrap();
    let r = c.next().unwrap().unwrap();
    assert_eq!((r.key, r.value.len()), (&b"k0100"[..], (100 * 37) % 200));
    let r = c.next().unwrap().unwrap();
    assert_eq!((r.key, r.value), (&b"k0100x"[..], &[7u8; 20_000][..]));
    let r = c.next().unwrap().unwrap();
    assert_eq!(r.key, b"k0101");
    // Seeking into the spanning record's key lands on it.
    c.seek(0, b"k0100\x00").unwrap();
    assert_eq!(c.next().unwrap().unwrap().key, b"k0100x");
    // Empty keyspace: nothing, by index or by name, whatever the key.
    c.seek_keyspace_named("b-empty").unwrap();
    assert!(c.next().unwrap().is_none());
    assert_eq!(c.totals().map(|t| t.record_count), Some(0));
    c.seek(1, b"").unwrap();
    assert!(c.next().unwrap().is_none());
    // After the last key of "a", a whole-archive cursor is at "c"'s first.
    let mut w = a.cursor();
    w.seek(0, &[0xff; 6]).unwrap();
    let r = w.next().unwrap().unwrap();
    assert_eq!((r.keyspace, r.key), (2, &[0xff][..]));
    assert_eq!(drain(&mut w, 10).len(), 1);
    // The cursor's records equal for_each_record's.
    let mut seen = Vec::new();
    a.for_each_record(0, true, None, |k, v| {
        seen.push((0, k.to_vec(), v.unwrap().to_vec()));
        Ok(())
    })
    .unwrap();
    assert_eq!(seen, drain(&mut RecordCursor::keyspace(&a, 0).unwrap(), usize::MAX));
}

/// Every read call that takes a keyspace or block index refuses one out of
/// range, in memory and over a ranged source, instead of panicking (issue 11
/// item 9).
#[test]
fn keyspace_and_block_indexes_out_of_range_are_refused() {
    let m = fixed_model();
    let bytes = write_archive(&m, 4096);
    let mem = Archive::from_bytes(bytes.as_slice(), "mem").unwrap();
    let ranged = Archive::from_bytes(Ranged::new(&bytes), "ranged").unwrap();
    fn check<B: Source>(a: &Archive<B>) {
        let (n, blocks) = (a.keyspaces().len(), a.index().blocks.len());
        for k in [n, n + 1, usize::MAX] {
            let e = a.for_each_record(k, true, None, |_, _| Ok(())).unwrap_err().to_string();
            assert!(e.contains(&format!("keyspace index {k} out of range")), "{e}");
            assert!(a.for_each_record_in(None, k, false, None, |_, _| Ok(())).is_err());
            assert!(a.for_each_record_of_segment(None, k, 0..1, true, None, |_, _| Ok(())).is_err());
            assert!(a.join_segments(k, vec![]).is_err());
            assert_eq!(a.segments(k, 4, 1), Vec::<std::ops::Range<usize>>::new());
            assert_eq!(a.largest_record_bound(k), None);
        }
        // Blocks that are not the keyspace's own.
        let own = a.segments(0, 1, 1).remove(0);
        for bad in [own.end..own.end + 1, own.start..blocks + 1, blocks..blocks, usize::MAX - 1..usize::MAX] {
            let r = a.for_each_record_of_segment(None, 0, bad.clone(), true, None, |_, _| Ok(()));
            assert!(r.unwrap_err().to_string().contains("are not among keyspace #0's blocks"), "{bad:?}");
        }
        assert_eq!(a.raw_bytes_of(blocks..blocks + 1), 0);
        let backwards = own.start + 1..own.start;
        assert!(a.for_each_record_of_segment(None, 0, backwards, true, None, |_, _| Ok(())).is_err());
        let mut out = Vec::new();
        for i in [blocks, usize::MAX] {
            let e = a.read_block(i, &mut out).unwrap_err().to_string();
            assert!(e.contains(&format!("block index {i} out of range")), "{e}");
        }
        // In range, they work.
        assert!(a.for_each_record_of_segment(None, 0, own.clone(), true, None, |_, _| Ok(())).is_ok());
        assert!(a.raw_bytes_of(own) > 0);
    }
    check(&mem);
    check(&ranged);
}

/// A seek past the last key or before the first reads no block: the
/// index's first and last keys answer it.
#[test]
fn seeks_outside_the_key_range_read_no_blocks() {
    let m = fixed_model();
    let bytes = write_archive(&m, 4096);
    let fetched = std::sync::atomic::AtomicU64::new(0);
    let a = Archive::from_bytes(Ranged::counting(&bytes, &fetched), "ranged").unwrap();
    let opened = fetched.load(std::sync::atomic::Ordering::Relaxed);
    let mut c = RecordCursor::keyspace(&a, 0).unwrap();
    c.seek(0, &[0xff; 9]).unwrap();
    assert!(c.next().unwrap().is_none());
    c.seek(2, &[0xff; 3]).unwrap();
    assert!(c.next().unwrap().is_none());
    assert_eq!(fetched.load(std::sync::atomic::Ordering::Relaxed), opened, "a block was fetched");
    // Before the first key: only the first block is needed for the first record.
    c.seek(0, b"a").unwrap();
    assert_eq!(c.next().unwrap().unwrap().key, b"k0000");
    let first_block = u64::from(a.index().blocks[0].frame_len) + 52;
    let key_index = u64::from(a.index().key_index[0].size);
    assert_eq!(fetched.load(std::sync::atomic::Ordering::Relaxed), opened + key_index + first_block);
}

/// One keyspace "ks" of hand-made raw blocks (each a list of records),
/// compressed with valid checksums; `fix` may alter each block before it is
/// written (its records are counted first).
fn hand_made(blocks: &[&[(&[u8], &[u8])]], fix: impl Fn(usize, &mut EncodedBlock)) -> Vec<u8> {
    let mut w = ArchiveWriter::new(Vec::new(), Header::new(1, 4096, 0), &entries(&["ks"])).unwrap();
    // No key index: the decoder's own checks are under test.
    w.set_key_index(false);
    let mut comp = BlockCompressor::new(1).unwrap();
    for (i, recs) in blocks.iter().enumerate() {
        let mut raw = RawBlock { keyspace: 0, sequence: i as u32, ..Default::default() };
        if i == 0 {
            put_marker(&mut raw.data, "ks");
        }
        for (k, v) in recs.iter() {
            put_record(&mut raw.data, k, v);
            raw.record_count += 1;
            raw.key_bytes += k.len() as u64;
            raw.value_bytes += v.len() as u64;
            raw.first_key.get_or_insert_with(|| k.to_vec());
            raw.last_key = Some(k.to_vec());
        }
        let mut b = EncodedBlock::compress(raw, &mut comp).unwrap();
        fix(i, &mut b);
        w.write_block(&b).unwrap();
    }
    w.finish().unwrap().0
}

/// Drains keyspace 0 through a cursor; returns the keys read and the error.
fn read_until_error(bytes: &[u8]) -> (Vec<Vec<u8>>, String) {
    let a = Archive::from_bytes(bytes, "bad.floe").unwrap();
    let mut c = RecordCursor::keyspace(&a, 0).unwrap();
    let mut keys = Vec::new();
    loop {
        match c.next() {
            Ok(Some(r)) => keys.push(r.key.to_vec()),
            Ok(None) => panic!("no error; read {keys:?}"),
            Err(e) => {
                let msg = e.to_string();
                assert!(e.format_error().is_some(), "not an archive error: {msg}");
                // The error repeats (as a cursor failure) until the cursor is positioned again.
                let again = c.next().unwrap_err().to_string();
                assert!(again.contains(&msg), "{again}");
                let same = read_with_for_each(&a);
                assert_eq!(same, msg, "for_each_record and the cursor disagree");
                return (keys, msg);
            }
        }
    }
}

fn read_with_for_each<B: AsRef<[u8]> + Sync>(a: &Archive<B>) -> String {
    a.for_each_record(0, true, None, |_, _| Ok(())).unwrap_err().to_string()
}

#[test]
fn swapped_keys_within_a_block_are_detected() {
    let bytes = hand_made(&[&[(b"a", b"1"), (b"c", b"2"), (b"b", b"3")]], |_, _| {});
    let (keys, e) = read_until_error(&bytes);
    assert!(keys.is_empty(), "records of a bad block were returned: {keys:?}");
    assert!(e.starts_with("bad.floe: corrupt archive: record at offset "), "{e}");
    assert!(e.contains("keyspace 'ks', block 0, record #2: key out of order"), "{e}");
}

#[test]
fn keys_out_of_order_across_blocks_are_detected() {
    let bytes = hand_made(&[&[(b"a", b"1"), (b"m", b"2")], &[(b"m", b"3"), (b"z", b"4")]], |_, _| {});
    let (keys, e) = read_until_error(&bytes);
    assert_eq!(keys, [b"a".to_vec(), b"m".to_vec()], "the first, good block is returned");
    assert!(e.contains("keyspace 'ks', block 1, record #2: duplicate key"), "{e}");
    let a = Archive::from_bytes(bytes.as_slice(), "bad.floe").unwrap();
    let block1 = a.index().blocks[1].offset;
    assert!(e.contains(&format!("at offset {block1}")), "{e}");
    // Seeking into the bad block finds the error too: blocks before are scanned.
    let mut c = RecordCursor::keyspace(&a, 0).unwrap();
    c.seek(0, b"y").unwrap();
    assert!(c.next().unwrap_err().to_string().contains("duplicate key"));
    // ... and the cursor may be positioned again after it.
    c.seek(0, b"b").unwrap();
    assert_eq!(c.next().unwrap().unwrap().key, b"m");
}

#[test]
fn wrong_record_counts_are_detected() {
    // (The value makes room for two records, so that the block header alone is plausible.)
    let bytes = hand_made(&[&[(b"a", b"1"), (b"b", b"2")], &[(b"c", &[3; 30])]], |i, b| {
        if i == 1 {
            b.header.record_count = 2;
        }
    });
    let (keys, e) = read_until_error(&bytes);
    assert_eq!(keys.len(), 2);
    assert!(e.contains("keyspace 'ks', block 1: 1 records begin in this block, header says 2"), "{e}");
}

#[test]
fn totals_are_checked_when_a_keyspace_is_read_to_its_end() {
    let bytes = hand_made(&[&[(b"a", b"1"), (b"b", b"22")]], |_, b| b.value_bytes += 1);
    let (keys, e) = read_until_error(&bytes);
    assert_eq!(keys.len(), 2, "every record comes before the totals check");
    assert!(e.contains("keyspace #0 'ks': value_bytes 3 (index says 4)"), "{e}");
    // A seek past the last key reads nothing, so checks nothing.
    let a = Archive::from_bytes(bytes.as_slice(), "bad.floe").unwrap();
    let mut c = RecordCursor::keyspace(&a, 0).unwrap();
    c.seek(0, b"c").unwrap();
    assert!(c.next().unwrap().is_none());
}
