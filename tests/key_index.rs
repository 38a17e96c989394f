//! Format 1.1's key index (format-spec §8.1, §8.2, §11 item 10): lookups
//! read one block, ranges read only their blocks, the 1.0 fallback answers
//! the same, and a forged key index (CRC recomputed) is caught by verify and
//! never turns into a wrong answer.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use floe::format::section::section_crc;
use floe::progress::NoProgress;
use floe::read::query::{prefix_successor, upper};
use floe::read::{verify_stream, Archive, Source};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Mutex;

/// One keyspace "ks" of 400 records of ~100 bytes (about 12 blocks of 4 KiB)
/// with a 20 KB value in the middle (spanning 5 blocks), and an empty one.
fn model() -> Model {
    let mut recs = BTreeMap::new();
    for i in 0..400u32 {
        recs.insert(format!("key{i:05}").into_bytes(), vec![(i % 251) as u8; 90]);
    }
    recs.insert(b"key00200-big".to_vec(), vec![7u8; 20_000]);
    let mut m = Model::new();
    m.insert("ks".into(), recs);
    m.insert("void".into(), BTreeMap::new());
    m
}

/// The blocks (index positions) whose bytes the reads in `log` touched.
fn blocks_read(a: &Archive<&[u8]>, log: &[(u64, u64)]) -> Vec<usize> {
    let mut out: Vec<usize> = a
        .index()
        .blocks
        .iter()
        .enumerate()
        .filter(|(_, e)| log.iter().any(|&(s, l)| s < e.offset + 52 + u64::from(e.frame_len) && e.offset < s + l))
        .map(|(i, _)| i)
        .collect();
    out.dedup();
    out
}

#[test]
fn a_lookup_reads_the_key_index_once_then_one_block() {
    let m = model();
    let bytes = write_archive(&m, 4096, &BTreeMap::new(), None);
    let local = Archive::from_bytes(bytes.as_slice(), "local").unwrap();
    assert_eq!(local.index().key_index.len(), 2, "one part per keyspace");
    let parts: Vec<(u64, u64)> = local.index().key_index.iter().map(|p| (p.offset, u64::from(p.size))).collect();
    let log = Mutex::new(Vec::new());
    let a = Archive::from_bytes(Ranged::logging(&bytes, &log), "ranged").unwrap();
    let opened = log.lock().unwrap().len();
    assert!(opened <= 8, "opening made {opened} reads");
    let mut first = true;
    let mut two_block_misses = 0;
    for (key, value) in &m["ks"] {
        log.lock().unwrap().clear();
        assert_eq!(a.get("ks", key).unwrap().as_ref(), Some(value));
        let reads = std::mem::take(&mut *log.lock().unwrap());
        let meta: Vec<_> = reads.iter().filter(|r| parts.contains(r)).collect();
        assert_eq!(meta.len(), usize::from(first), "key index reads for {}: {reads:?}", hex(key));
        first = false;
        let blocks = blocks_read(&local, &reads);
        let want = if value.len() > 4096 { 6 } else { 1 };
        assert!(
            blocks.len() <= want && reads.len() - meta.len() == blocks.len(),
            "get {} read blocks {blocks:?} in {} requests",
            hex(key),
            reads.len()
        );
        // Exactly the bytes of those blocks (header and frame), nothing else.
        let need: u64 = blocks.iter().map(|&b| 52 + u64::from(local.index().blocks[b].frame_len)).sum();
        let got: u64 = reads.iter().filter(|r| !parts.contains(r)).map(|r| r.1).sum();
        assert_eq!(got, need);
        // An absent key inside the range reads at most one block.
        let mut absent = key.clone();
        absent.push(b'~');
        if !m["ks"].contains_key(&absent) {
            assert_eq!(a.get("ks", &absent).unwrap(), None);
            let reads = std::mem::take(&mut *log.lock().unwrap());
            // Two blocks only when it falls between a block's last key and
            // the next block's first, whose entry is then checked.
            let n = blocks_read(&local, &reads).len();
            assert!(n <= 2, "{reads:?}");
            two_block_misses += usize::from(n == 2);
        }
    }
    assert!(two_block_misses < local.index().blocks.len(), "{two_block_misses} misses read two blocks");
    // Outside the keyspace's range, or in an empty keyspace: nothing is read.
    for (ks, key) in [("ks", &b"a"[..]), ("ks", b"zzz"), ("void", b"key00001")] {
        assert_eq!(a.get(ks, key).unwrap(), None);
    }
    assert!(blocks_read(&local, &log.lock().unwrap()).is_empty());
}

#[test]
fn a_range_reads_only_its_blocks() {
    let m = model();
    let bytes = write_archive(&m, 4096, &BTreeMap::new(), None);
    let local = Archive::from_bytes(bytes.as_slice(), "local").unwrap();
    let log = Mutex::new(Vec::new());
    let a = Archive::from_bytes(Ranged::logging(&bytes, &log), "ranged").unwrap();
    for prefix in [&b"key0030"[..], b"key001", b"key0039", b"key00200"] {
        log.lock().unwrap().clear();
        let to = prefix_successor(prefix);
        let mut r = a.range("ks", Bound::Included(prefix), upper(&to)).unwrap();
        let mut n = 0;
        while let Some(rec) = r.next().unwrap() {
            assert!(rec.key.starts_with(prefix));
            n += 1;
        }
        assert_eq!(n, m["ks"].keys().filter(|k| k.starts_with(prefix)).count());
        // The blocks read run from the one where the range's first key
        // begins to the one where the first key past the range begins.
        let keys = local.keyspace_keys(0).unwrap().unwrap();
        let lo = keys.locate(prefix).unwrap().0 as usize;
        let hi = to.as_deref().and_then(|t| keys.locate(t)).map_or(usize::MAX, |s| s.0 as usize);
        let reads = log.lock().unwrap().clone();
        let read = blocks_read(&local, &reads);
        assert!(
            read.first() == Some(&lo) && read.iter().all(|&b| b >= lo && b <= hi),
            "prefix {}: read {read:?}, the range lies in blocks {lo}..={hi}",
            hex(prefix)
        );
    }
}

/// The answers of an archive: every key and probe looked up, and scans of
/// the given prefixes, as results (errors included).
/// The records one query returned.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

fn answers<B: Source>(a: &Archive<B>, m: &Model, probes: &[Vec<u8>]) -> Vec<floe::Result<Records>> {
    let mut out = Vec::new();
    for name in m.keys() {
        for k in m[name].keys().chain(probes) {
            out.push(a.get(name, k).map(|v| v.map(|v| (k.clone(), v)).into_iter().collect()));
        }
        for p in probes.iter().map(|p| &p[..p.len().min(2)]) {
            let to = prefix_successor(p);
            let r = (|| {
                let mut c = a.range(name, Bound::Included(p), upper(&to))?;
                let mut v = Vec::new();
                while let Some(rec) = c.next()? {
                    v.push((rec.key.to_vec(), rec.value.to_vec()));
                }
                Ok(v)
            })();
            out.push(r);
        }
    }
    out
}

fn expected(m: &Model, probes: &[Vec<u8>]) -> Vec<Records> {
    let mut out = Vec::new();
    for recs in m.values() {
        for k in recs.keys().chain(probes) {
            out.push(recs.get(k).map(|v| (k.clone(), v.clone())).into_iter().collect());
        }
        for p in probes.iter().map(|p| &p[..p.len().min(2)]) {
            out.push(recs.iter().filter(|(k, _)| k.starts_with(p)).map(|(k, v)| (k.clone(), v.clone())).collect());
        }
    }
    out
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(prop_oneof![Just(0u8), Just(1), Just(b'a'), Just(0xfe), Just(0xff)], 1..5),
        2 => proptest::collection::vec(any::<u8>(), 1..40),
        1 => Just(vec![0xff; 300]),
    ]
}

fn models() -> impl Strategy<Value = Model> {
    let value = prop_oneof![8 => proptest::collection::vec(any::<u8>(), 0..200), 1 => proptest::collection::vec(any::<u8>(), 4_000..12_000)];
    let ks = proptest::collection::btree_map(key(), value, 0..150);
    proptest::collection::btree_map("[a-c]{1,3}", ks, 1..4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// With and without a key index (1.1 and the 1.0 fallback), every
    /// lookup and scan gives the model's answer.
    #[test]
    fn lookups_match_the_model_with_and_without_a_key_index(m in models(), probes in proptest::collection::vec(key(), 1..12)) {
        let want: Vec<_> = expected(&m, &probes).into_iter().map(Ok::<_, String>).collect();
        // No key index, one part per keyspace, and parts of about 3 entries.
        for key_index in [None, Some(256 << 20), Some(64)] {
            let bytes = write_archive_with(&m, 4096, &BTreeMap::new(), None, key_index);
            let a = Archive::from_bytes(bytes.as_slice(), "p").unwrap();
            prop_assert_eq!(a.index().key_index.is_empty(), key_index.is_none());
            a.verify(false, &NoProgress).unwrap();
            verify_stream(bytes.as_slice(), "p", false, &NoProgress).unwrap();
            let got: Vec<_> = answers(&a, &m, &probes).into_iter().map(|r| r.map_err(|e| e.to_string())).collect();
            prop_assert_eq!(&got, &want, "key index {:?}", key_index);
        }
    }
}

/// Flips bit `bit` of byte `at` and recomputes the CRC of the section that
/// starts at `section`, so only the key index's own checks can catch it.
fn forge(bytes: &[u8], section: usize, at: usize, bit: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at] ^= 1 << bit;
    let size = u32::from_le_bytes(b[section + 4..section + 8].try_into().unwrap()) as usize + 8;
    let crc = section_crc(&b[section..section + size]);
    b[section + 8..section + 12].copy_from_slice(&crc.to_le_bytes());
    b
}

#[test]
fn a_forged_key_index_is_caught_and_never_answers_wrongly() {
    let m = model();
    let bytes = write_archive(&m, 4096, &BTreeMap::new(), None);
    let a = Archive::from_bytes(bytes.as_slice(), "good").unwrap();
    let probes: Vec<Vec<u8>> = [&b"key00100"[..], b"key00100~", b"key0020", b"key00200-big", b"key00399", b"a", b"zz"]
        .map(<[u8]>::to_vec)
        .into();
    let want = expected(&m, &probes);
    let mut forged = 0;
    for part in a.index().key_index.clone() {
        let (s, e) = (part.offset as usize, (part.offset + u64::from(part.size)) as usize);
        // Every byte of the body (after the 20 bytes of framing), one bit each.
        for at in s + 20..e {
            let bad = forge(&bytes, s, at, (at % 8) as u8);
            let what = format!("part at {s}, byte {} of its body", at - s - 20);
            forged += 1;
            let opened = Archive::from_bytes(bad.as_slice(), "forged");
            let Ok(fa) = opened else { continue };
            let v = fa.verify(false, &NoProgress);
            assert!(v.is_err(), "{what}: full verify accepted a forged key index");
            let msg = v.unwrap_err().to_string();
            assert!(msg.contains("key index"), "{what}: {msg}");
            assert!(verify_stream(bad.as_slice(), "forged", false, &NoProgress).is_err(), "{what}: stream verify");
            // Queries: an error or the right answer, never a wrong one.
            for (got, want) in answers(&fa, &m, &probes).into_iter().zip(&want) {
                if let Ok(got) = got {
                    assert_eq!(&got, want, "{what}: a query answered wrongly");
                }
            }
        }
    }
    assert!(forged > 200, "{forged} forgeries");
}

#[test]
fn the_directory_must_describe_the_parts() {
    let m = model();
    let bytes = write_archive(&m, 4096, &BTreeMap::new(), None);
    let a = Archive::from_bytes(bytes.as_slice(), "good").unwrap();
    let io = a.trailer().index_offset as usize;
    let isize = a.trailer().index_size as usize;
    // The directory is the last 8 + 28 × parts bytes of the index body.
    let dir_start = io + isize - (8 + 28 * a.index().key_index.len());
    for at in dir_start..io + isize {
        for bit in [0u8, 3, 7] {
            let bad = forge(&bytes, io, at, bit);
            let what = format!("directory byte {}", at - dir_start);
            // Reserved bytes are ignored; everything else is refused at open
            // or by verify.
            let reserved = (at - dir_start) >= 8 && (at - dir_start - 8) % 28 >= 24;
            let r = Archive::from_bytes(bad.as_slice(), "bad").and_then(|a| a.verify(false, &NoProgress).map(|_| ()));
            assert_eq!(r.is_ok(), reserved, "{what} bit {bit}: {r:?}");
            assert_eq!(verify_stream(bad.as_slice(), "bad", true, &NoProgress).is_ok(), reserved, "{what}: stream");
        }
    }
}

#[test]
fn several_parts_per_keyspace_are_read_alike() {
    let m = model();
    let bytes = write_archive_with(&m, 4096, &BTreeMap::new(), None, Some(80));
    let a = Archive::from_bytes(bytes.as_slice(), "parts").unwrap();
    let parts = a.index().key_index.iter().filter(|p| p.keyspace == 0).count();
    assert!(parts >= 4, "{parts} parts");
    a.verify(false, &NoProgress).unwrap();
    a.verify(true, &NoProgress).unwrap();
    verify_stream(bytes.as_slice(), "parts", false, &NoProgress).unwrap();
    let probes: Vec<Vec<u8>> = [&b"key00100~"[..], b"key0020", b"zz"].map(<[u8]>::to_vec).into();
    let got: Vec<_> = answers(&a, &m, &probes).into_iter().map(Result::unwrap).collect();
    assert_eq!(got, expected(&m, &probes));
    // A forged record_offset in a later part is caught like in the first.
    let p = a.index().key_index.iter().filter(|p| p.keyspace == 0).nth(2).copied().unwrap();
    let bad = forge(&bytes, p.offset as usize, p.offset as usize + 20 + 12, 1);
    let fa = Archive::from_bytes(bad.as_slice(), "forged").unwrap();
    assert!(fa.verify(false, &NoProgress).unwrap_err().to_string().contains("key index"));
    assert!(verify_stream(bad.as_slice(), "forged", false, &NoProgress).is_err());
}
