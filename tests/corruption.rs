//! Corruption, truncation and trailing garbage, on a ~3.5 KB archive with
//! five keyspaces (one empty, one key-value separated, a value spanning three
//! blocks) whose regions (header, keyspace table, every block header, every
//! data frame, index, trailer) are named and checked to tile the file.
//!
//! * EVERY bit is flipped in turn: random-access open + full verify, quick
//!   verify, and streaming verify (full and quick) must all fail, with an
//!   archive error whose message names an offset; and `import_file` (the
//!   CLI's path for files) must fail with an archive error and leave neither
//!   the target nor a temporary. No panic is allowed. `import_stream` runs on
//!   a deterministic sample (every 97th bit, plus the first, middle and last
//!   bit of every region): it builds a database before it meets a bad block,
//!   which makes it the slow one (unoptimized builds also flip only every
//!   3rd data-frame bit outside that sample).
//! * Truncation at every byte offset: every reader refuses, and both imports
//!   fail and leave nothing.
//! * Appended garbage of several kinds: the spec (§2) forbids trailing bytes,
//!   so every reader and both imports refuse it.
//! * "Re-checksummed" flips: every bit (every other one unoptimized) of every
//!   section's flags and body is flipped and the section CRC recomputed, so only semantic validation can
//!   notice. Each such archive must either be refused or read back exactly the
//!   original records: a reader may never silently return different data.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use floe::import::{import_file, ImportOptions};
use floe::progress::NoProgress;
use floe::read::{verify_stream, Archive};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Builds the test archive: five keyspaces (one empty, one key-value separated),
/// a value spanning three 4 KiB blocks, about 4 KB in total.
fn sample_archive() -> (Vec<u8>, Model) {
    let mut rng = floe::sample::Rng(42);
    let mut m = Model::new();
    let mut a = BTreeMap::new();
    for i in 0..30u32 {
        a.insert(format!("user:{i:04}").into_bytes(), floe::sample::texty(&mut rng, 20 + (i as usize % 30)));
    }
    m.insert("accounts".into(), a);
    let mut b = BTreeMap::new();
    let mut big = vec![0u8; 300];
    rng.fill(&mut big);
    let spanning: Vec<u8> = big.iter().cycle().take(9_000).copied().collect(); // compressible, spans 3 blocks
    b.insert(b"big".to_vec(), spanning);
    b.insert(b"small".to_vec(), b"v".to_vec());
    m.insert("blobs".into(), b);
    m.insert("empty".into(), BTreeMap::new());
    let mut c = BTreeMap::new();
    c.insert(vec![0u8], Vec::new());
    c.insert(vec![0xff; 40], b"edge".to_vec());
    m.insert("edge ünï".into(), c);
    let kv: BTreeSet<String> = ["blobs".to_owned()].into();
    let dir = tempdir();
    let db = create_db(&dir.path().join("src"), &m, &kv);
    let bytes = export_bytes(&db, &opts(4096, 1));
    (bytes, m)
}

/// Named byte ranges of the archive, from its own index.
fn regions(bytes: &[u8]) -> Vec<(String, std::ops::Range<usize>)> {
    let a = Archive::from_bytes(bytes, "r").unwrap();
    let hlen = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize + 8;
    let klen = u32::from_le_bytes(bytes[hlen + 4..hlen + 8].try_into().unwrap()) as usize + 8;
    let mut r = vec![("header".to_string(), 0..hlen), ("keyspace table".to_string(), hlen..hlen + klen)];
    for (i, e) in a.index().blocks.iter().enumerate() {
        let o = e.offset as usize;
        r.push((format!("block header #{i}"), o..o + 52));
        r.push((format!("data frame #{i}"), o + 52..o + 52 + e.frame_len as usize));
    }
    for (i, p) in a.index().key_index.iter().enumerate() {
        let o = p.offset as usize;
        r.push((format!("key index part #{i}"), o..o + p.size as usize));
    }
    r.sort_by_key(|(_, range)| range.start);
    let io = a.trailer().index_offset as usize;
    r.push(("index".into(), io..io + a.trailer().index_size as usize));
    r.push(("trailer".into(), bytes.len() - 60..bytes.len()));
    // The regions tile the file exactly.
    let mut at = 0;
    for (name, range) in &r {
        assert_eq!(range.start, at, "gap before {name}");
        at = range.end;
    }
    assert_eq!(at, bytes.len());
    r
}

#[test]
fn every_bit_flip_is_detected() {
    let (bytes, _) = sample_archive();
    let regs = regions(&bytes);
    assert!(bytes.len() > 2_000 && bytes.len() < 8_000, "archive is {} bytes", bytes.len());
    assert!(regs.iter().filter(|(n, _)| n.starts_with("data frame")).count() >= 7, "{regs:?}");
    let nbits = bytes.len() * 8;
    eprintln!("archive of {} bytes, {} regions, {nbits} bits", bytes.len(), regs.len());
    let mut sample = BTreeSet::new();
    for (_, r) in &regs {
        let (s, e) = (r.start * 8, r.end * 8);
        sample.extend([s, (s + e) / 2, e - 1]);
    }
    sample.extend((0..nbits).step_by(97));
    let data_stride = if cfg!(debug_assertions) { 3 } else { 1 };
    // Bits are shared out among the cores (each thread flips its own copy).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let flipped: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (regs, sample, mut bytes) = (&regs, &sample, bytes.clone());
                scope.spawn(move || {
                    let mut flipped = 0;
                    for bit in (t..nbits).step_by(threads) {
                        let region = &regs.iter().find(|(_, r)| r.contains(&(bit / 8))).unwrap().0;
                        if region.starts_with("data frame") && bit % data_stride != 0 && !sample.contains(&bit) {
                            continue;
                        }
                        flipped += 1;
                        bytes[bit / 8] ^= 1 << (bit % 8);
                        let what = format!("bit {bit} (byte {}, {region})", bit / 8);
                        all_readers_refuse(&bytes, &what);
                        import_fails_cleanly(&bytes, &what, true, sample.contains(&bit));
                        bytes[bit / 8] ^= 1 << (bit % 8);
                    }
                    flipped
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).sum()
    });
    eprintln!("flipped {flipped} bits, all imported from a file, {} of them also from a stream", sample.len());
    assert!(flipped >= nbits / data_stride);
    // Sanity: the unflipped archive is valid.
    Archive::from_bytes(bytes.as_slice(), "x").unwrap().verify(false, &NoProgress).unwrap();
}

#[test]
fn truncation_at_every_offset_is_detected() {
    let (bytes, _) = sample_archive();
    for n in 0..bytes.len() {
        let what = format!("truncated to {n} of {} bytes", bytes.len());
        all_readers_refuse(&bytes[..n], &what);
        imports_fail_cleanly(&bytes[..n], &what);
    }
    // Also via the memory-mapped path, for a couple of sizes.
    let dir = tempdir();
    for n in [0, 59, 60, bytes.len() - 1] {
        let f = dir.path().join(format!("t{n}.floe"));
        std::fs::write(&f, &bytes[..n]).unwrap();
        let e = Archive::open(&f).and_then(|a| a.verify(false, &NoProgress)).unwrap_err();
        assert!(e.to_string().contains("offset"), "{e}");
    }
}

#[test]
fn trailing_garbage_is_refused() {
    let (bytes, _) = sample_archive();
    let trailer = bytes[bytes.len() - 60..].to_vec();
    let skippable = {
        // A well-formed zstd skippable frame (what a careless tool might append).
        let mut s = 0x184D_2A50u32.to_le_bytes().to_vec();
        s.extend_from_slice(&4u32.to_le_bytes());
        s.extend_from_slice(b"junk");
        s
    };
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("one zero byte", vec![0]),
        ("a newline", b"\n".to_vec()),
        ("60 zero bytes", vec![0; 60]),
        ("a copy of the trailer", trailer),
        ("a second archive", bytes.clone()),
        ("a skippable frame", skippable),
    ];
    for (what, g) in garbage {
        let mut b = bytes.clone();
        b.extend_from_slice(&g);
        let errs = all_readers_refuse(&b, what);
        assert!(
            errs.iter().any(|e| e.contains("trailer") || e.contains("trailing") || e.contains("archive_size")),
            "{what}: {errs:?}"
        );
        imports_fail_cleanly(&b, what);
    }
}

/// Every bit of every section's flags and body, flipped with the section CRC
/// recomputed: refused, or read back identically.
#[test]
fn rechecksummed_flips_never_change_the_records() {
    let (bytes, model) = sample_archive();
    let regs = regions(&bytes);
    let sections: Vec<std::ops::Range<usize>> =
        regs.iter().filter(|(n, _)| !n.starts_with("data frame")).map(|(_, r)| r.clone()).collect();
    let mut refused = 0u32;
    let mut accepted = 0u32;
    let mut imported = 0u32;
    let mut buf = bytes.clone();
    for r in &sections {
        for byte in r.start + 16..r.end {
            for bit in 0..8 {
                // Unoptimized builds: every other bit (alternating, so every bit position is covered).
                if cfg!(debug_assertions) && (bit + byte) % 2 == 1 {
                    continue;
                }
                buf[byte] ^= 1 << bit;
                fix_crc(&mut buf[r.clone()]);
                let what = format!("byte {byte} bit {bit} (section at {})", r.start);
                let res = catch_unwind(AssertUnwindSafe(|| read_everything(&buf)));
                match res {
                    Err(_) => panic!("{what}: a reader panicked"),
                    Ok(Err(_)) => refused += 1,
                    Ok(Ok(got)) => {
                        assert_models_eq(&got, &model);
                        accepted += 1;
                        // Sampled: a full import of an accepted archive holds the same records.
                        if accepted.is_multiple_of(23) {
                            let dir = tempdir();
                            let f = dir.path().join("a.floe");
                            std::fs::write(&f, &buf).unwrap();
                            match import_file(&f, &dir.path().join("db"), &ImportOptions::default(), &NoProgress) {
                                Ok(_) => {
                                    assert_models_eq(&read_db_at(&dir.path().join("db")), &model);
                                    imported += 1;
                                }
                                // Options that fjall cannot take are refused before anything is built.
                                Err(e) => {
                                    assert!(!dir.path().join("db").exists(), "{what}: {e}");
                                    assert_no_temporaries(dir.path());
                                }
                            }
                        }
                    }
                }
                buf[r.clone()].copy_from_slice(&bytes[r.clone()]);
            }
        }
    }
    eprintln!("re-checksummed flips: {refused} refused, {accepted} accepted with identical records, {imported} of those imported");
    // Most fields matter; a few (level, seqno, time, writer strings, flag bits 1-31) don't.
    assert!(refused > accepted, "refused {refused}, accepted {accepted}");
    assert!(accepted > 0 && imported > 0);
}

/// Reads every record through both readers; Err if any reader refuses. Both
/// readers must agree on acceptance.
fn read_everything(b: &[u8]) -> Result<Model, String> {
    let a = Archive::from_bytes(b, "x").and_then(|a| a.verify(false, &NoProgress).map(|_| a));
    let s = verify_stream(b, "x", false, &NoProgress);
    let a = match (a, s) {
        (Ok(a), Ok(_)) => a,
        (Err(e), Err(_)) => return Err(e.to_string()),
        (Ok(_), Err(e)) => panic!("stream reader refused what the random-access reader accepted: {e}"),
        (Err(e), Ok(_)) => panic!("random-access reader refused what the stream reader accepted: {e}"),
    };
    let mut out = Model::new();
    for (k, e) in a.keyspaces().iter().enumerate() {
        let mut recs = BTreeMap::new();
        a.for_each_record(k, true, None, |key, v| {
            recs.insert(key.to_vec(), v.unwrap().to_vec());
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        out.insert(e.name.clone(), recs);
    }
    Ok(out)
}

/// Recomputes a section's CRC (§3) in place.
fn fix_crc(sec: &mut [u8]) {
    let c = floe::format::section::section_crc(sec);
    sec[8..12].copy_from_slice(&c.to_le_bytes());
}
