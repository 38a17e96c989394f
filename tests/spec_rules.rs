//! Rules of format-spec Part I that answer its former open questions, each
//! checked on crafted archives through every reader (random access in memory
//! and by ranges, streaming; full and `--quick`) and both imports:
//!
//! * §6 data frames: `Frame_Content_Size` present and equal to `raw_len`,
//!   `Window_Size` ≤ 64 MiB, no `Dictionary_ID`, `Content_Checksum_Flag` set,
//!   reserved bit clear; and every frame floe writes satisfies them.
//! * §5.2: filter kind 0 has parameter 0; FIFO `ttl_seconds` is 0 when `has_ttl` is 0.
//! * §6 rule 2: a block holding only the keyspace marker is not empty.
//! * §10: an unknown optional section's CRC is checked.
//! * §11 rule 9: the data region parses completely, with no gaps.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;
#[path = "common/rebuild.rs"]
mod rebuild;

use common::*;
use floe::format::block::{BlockCompressor, BlockHeader, ZstdFrameHeader};
use floe::format::header::Header;
use floe::format::keyspace_table::KeyspaceEntry;
use floe::format::limits::MAX_WINDOW;
use floe::format::options::{KeyspaceOptions, UnknownOption};
use floe::format::record::{put_marker, put_record, BlockBuilder, RawBlock};
use floe::format::section::{encode_section, tags};
use floe::import::{import_file, import_stream, ImportOptions};
use floe::progress::NoProgress;
use floe::read::{verify_stream, Archive};
use floe::write::{ArchiveWriter, EncodedBlock};
use std::collections::BTreeMap;
use zstd::zstd_safe::{CCtx, CParameter};

const KEY: &[u8] = b"key";

/// The raw bytes of the only block of keyspace "ks": its marker, one record.
fn raw_block(value: &[u8]) -> Vec<u8> {
    let mut raw = Vec::new();
    put_marker(&mut raw, "ks");
    put_record(&mut raw, KEY, value);
    raw
}

fn value() -> Vec<u8> {
    (0..1u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 % 16 + b'a').collect()
}

/// One keyspace, one block holding `raw_block(value)`, whose data frame is `frame`.
fn archive_with_frame(value: &[u8], frame: Vec<u8>) -> Vec<u8> {
    let raw = raw_block(value);
    let entries = vec![KeyspaceEntry { name: "ks".into(), options: Default::default() }];
    let mut w = ArchiveWriter::new(Vec::new(), Header::new(3, 4 << 20, 0), &entries).unwrap();
    let header = BlockHeader::describe(0, 0, false, 1, &raw, &frame);
    w.write_block(&EncodedBlock {
        header,
        frame,
        key_bytes: KEY.len() as u64,
        value_bytes: value.len() as u64,
        first_key: Some(KEY.to_vec()),
        first_offset: 8, // after the marker of "ks"
        last_key: Some(KEY.to_vec()),
    })
    .unwrap();
    w.finish().unwrap().0
}

fn compress(raw: &[u8], params: &[CParameter]) -> Vec<u8> {
    let mut c = CCtx::create();
    for &p in params {
        c.set_parameter(p).unwrap();
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
    c.compress2(&mut out, raw).unwrap();
    out
}

/// Every reader accepts the archive and both imports read back its records.
#[track_caller]
fn accepted(bytes: &[u8], want: &Model, what: &str) {
    let np = &NoProgress;
    for quick in [false, true] {
        Archive::from_bytes(bytes, "a").and_then(|a| a.verify(quick, np)).unwrap_or_else(|e| panic!("{what}: {e}"));
        Archive::from_bytes(Ranged::new(bytes), "r")
            .and_then(|a| a.verify(quick, np))
            .unwrap_or_else(|e| panic!("{what}: ranged: {e}"));
        verify_stream(bytes, "s", quick, np).unwrap_or_else(|e| panic!("{what}: stream: {e}"));
    }
    let dir = tempdir();
    let f = dir.path().join("a.floe");
    std::fs::write(&f, bytes).unwrap();
    import_file(&f, &dir.path().join("db1"), &ImportOptions::default(), np).unwrap();
    assert_models_eq(&read_db_at(&dir.path().join("db1")), want);
    import_stream(bytes, "s", &dir.path().join("db2"), &ImportOptions::default(), np).unwrap();
    assert_models_eq(&read_db_at(&dir.path().join("db2")), want);
}

/// Every reader (quick ones included) and both imports refuse, each message
/// naming an offset and saying one of `why`.
#[track_caller]
fn refused(bytes: &[u8], what: &str, why: &[&str]) {
    for e in all_readers_refuse(bytes, what) {
        assert!(why.iter().any(|w| e.contains(w)), "{what}: message does not say why ({why:?}): {e}");
    }
    imports_fail_cleanly(bytes, what);
}

fn zstd_t(bytes: &[u8]) -> Option<bool> {
    let dir = tempdir();
    let f = dir.path().join("a.floe");
    std::fs::write(&f, bytes).unwrap();
    let o = std::process::Command::new("zstd").arg("-tq").arg(&f).output().ok()?;
    Some(o.status.success())
}

#[test]
fn data_frame_header_rules() {
    let v = value();
    let raw = raw_block(&v);
    let want: Model = [("ks".to_owned(), [(KEY.to_vec(), v.clone())].into())].into();
    // A conforming multi-segment frame: a 1 KiB window for 1 MiB of content.
    let base =
        compress(&raw, &[CParameter::CompressionLevel(3), CParameter::WindowLog(10), CParameter::ChecksumFlag(true)]);
    let z = ZstdFrameHeader::parse(&base, 0).unwrap();
    assert!(!z.single_segment && z.window_size == 1024 && z.content_size == Some(raw.len() as u64), "{z:?}");
    accepted(&archive_with_frame(&v, base.clone()), &want, "1 KiB window");

    // Window_Descriptor patched (a window only bounds what the decoder keeps,
    // so the frame still decodes): exactly 64 MiB is allowed, more is not.
    for (wd, window, ok) in [
        (16u8 << 3, 64u64 << 20, true),
        (16 << 3 | 1, 72 << 20, false),
        (17 << 3, 128 << 20, false),
        (18 << 3, 256 << 20, false),
    ] {
        let mut f = base.clone();
        f[5] = wd;
        assert_eq!(ZstdFrameHeader::parse(&f, 0).unwrap().window_size, window);
        let a = archive_with_frame(&v, f);
        let what = format!("window of {window} bytes");
        if ok {
            accepted(&a, &want, &what);
        } else {
            refused(&a, &what, &["window"]);
        }
        // Stock zstd -t (default limit 128 MiB) refuses more than 128 MiB.
        if let Some(t) = zstd_t(&a) {
            assert_eq!(t, window <= 128 << 20, "zstd -t on {what}");
        }
    }

    // No Frame_Content_Size: refused (the bound on decompression is the header's).
    let f = compress(
        &raw,
        &[CParameter::WindowLog(10), CParameter::ChecksumFlag(true), CParameter::ContentSizeFlag(false)],
    );
    assert_eq!(ZstdFrameHeader::parse(&f, 0).unwrap().content_size, None);
    refused(&archive_with_frame(&v, f), "no content size", &["Frame_Content_Size"]);
    // A declared size other than raw_len.
    let mut longer = raw.clone();
    longer.push(b'x');
    let f = compress(&longer, &[CParameter::ChecksumFlag(true)]);
    refused(&archive_with_frame(&v, f), "content size raw_len + 1", &["declares"]);
    // No content checksum.
    let f = compress(&raw, &[CParameter::ChecksumFlag(false)]);
    refused(&archive_with_frame(&v, f), "no checksum", &["checksum"]);
    // A Dictionary_ID (1 byte, after the window descriptor).
    let mut f = base.clone();
    f[4] |= 1;
    f.insert(6, 7);
    refused(&archive_with_frame(&v, f), "dictionary id", &["dictionary"]);
    // The reserved bit.
    let mut f = base.clone();
    f[4] |= 0x08;
    refused(&archive_with_frame(&v, f), "reserved bit", &["reserved"]);
    // A header cut short: a frame of just magic and descriptor.
    let f = base[..5].to_vec();
    let a = archive_with_frame(&v, [f.clone(), vec![0; 4]].concat());
    refused(&a, "cut header", &["zstd", "frame"]);
}

/// Every frame floe writes satisfies §6: the golden fixture's, and the
/// compressor's at levels from fast to ultra on blocks up to 64 MiB (zstd
/// lowers the window to the content size, which is at most 64 MiB, when the
/// size is pledged; frames are single-segment except when the level's own
/// window is smaller than the block).
#[test]
fn every_frame_floe_writes_satisfies_the_frame_rules() {
    let golden = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v1.0-sample.floe")).unwrap();
    let a = Archive::from_bytes(golden.as_slice(), "golden").unwrap();
    let mut single = 0;
    for i in 0..a.index().blocks.len() {
        let e = a.index().blocks[i];
        let at = e.offset as usize + 52;
        let f = &golden[at..at + e.frame_len as usize];
        let z = ZstdFrameHeader::parse(f, at as u64).unwrap();
        assert_eq!(z.content_size, Some(u64::from(e.raw_len)));
        assert!(z.window_size <= MAX_WINDOW && z.checksum && z.dictionary_id_flag == 0, "{z:?}");
        single += usize::from(z.single_segment);
    }
    eprintln!("golden fixture: {single} of {} frames single-segment", a.index().blocks.len());
    let zeros = vec![0u8; 64 << 20];
    for level in [-7, 1, 3, 9, 19, 22] {
        let mut c = BlockCompressor::new(level).unwrap();
        for len in [1usize, 5_000, 1 << 20, 8 << 20, 64 << 20] {
            let f = c.compress(&zeros[..len]).unwrap();
            let z = ZstdFrameHeader::parse(&f, 0).unwrap();
            assert_eq!(z.content_size, Some(len as u64), "level {level}, {len} bytes");
            assert!(z.window_size <= MAX_WINDOW && z.checksum && z.dictionary_id_flag == 0, "{z:?}");
            eprintln!("level {level:3}, raw {len:9}: single_segment {}, window {}", z.single_segment, z.window_size);
        }
    }
}

fn one_keyspace(options: KeyspaceOptions) -> (Vec<u8>, Model) {
    let m: Model = [("ks".to_owned(), [(b"k".to_vec(), b"v".to_vec())].into())].into();
    let bytes = write_archive(&m, 4096, &[("ks".to_owned(), options)].into(), None);
    (bytes, m)
}

/// An option value given as raw bytes under a known id.
fn raw_option(id: u16, value: Vec<u8>) -> KeyspaceOptions {
    KeyspaceOptions { unknown: vec![UnknownOption { tag: id, value }], ..Default::default() }
}

#[test]
fn option_values_that_floe_never_writes_are_refused() {
    let filter = |kind: u8, param: u32| {
        let mut v = vec![1, kind];
        v.extend_from_slice(&param.to_le_bytes());
        raw_option(12, v)
    };
    let (ok, m) = one_keyspace(filter(0, 0));
    accepted(&ok, &m, "filter kind 0, param 0");
    let d = KeyspaceOptions::decode(
        &{
            let mut v = vec![1, 0];
            v.extend_from_slice(&0u32.to_le_bytes());
            let mut e = 12u16.to_le_bytes().to_vec();
            e.extend_from_slice(&(v.len() as u32).to_le_bytes());
            e.extend_from_slice(&v);
            e
        },
        0,
    )
    .unwrap();
    assert_eq!(d.filter_policy, Some(vec![floe::format::options::FilterEntry::None]));
    for bits in [1.0f32.to_bits(), (-0.0f32).to_bits(), f32::NAN.to_bits()] {
        refused(&one_keyspace(filter(0, bits)).0, &format!("filter kind 0, param bits {bits:#x}"), &["param"]);
    }
    let fifo = |has_ttl: u8, ttl: u64| {
        let mut v = (1u64 << 30).to_le_bytes().to_vec();
        v.push(has_ttl);
        v.extend_from_slice(&ttl.to_le_bytes());
        raw_option(15, v)
    };
    for (has_ttl, ttl) in [(0, 0), (1, 0), (1, 60)] {
        let (ok, m) = one_keyspace(fifo(has_ttl, ttl));
        accepted(&ok, &m, &format!("fifo has_ttl {has_ttl} ttl {ttl}"));
    }
    for ttl in [1, u64::MAX] {
        refused(&one_keyspace(fifo(0, ttl)).0, &format!("fifo has_ttl 0 ttl {ttl}"), &["ttl_seconds"]);
    }
}

/// §6 rule 2: "the current block is not empty" counts the keyspace marker, so
/// a first record that does not fit after the marker closes a block that
/// holds only the marker (no records, no `CONTINUES`).
#[test]
fn a_block_holding_only_the_marker_is_not_empty() {
    let target = 4096usize;
    let marker = 6 + 2; // "ks"
    let cut = |first_enc: usize| -> Vec<RawBlock> {
        let mut b = BlockBuilder::new(0, "ks", target as u32);
        let mut out = Vec::new();
        let mut emit = |r: RawBlock| -> floe::Result<()> {
            out.push(r);
            Ok(())
        };
        b.push(b"a", &vec![7u8; first_enc - 7], &mut emit).unwrap();
        b.push(b"b", b"second", &mut emit).unwrap();
        b.finish(&mut emit).unwrap();
        out
    };
    let shape = |bs: &[RawBlock]| bs.iter().map(|b| (b.data.len(), b.record_count, b.continues)).collect::<Vec<_>>();
    // Fits exactly after the marker: one full block, then the second record.
    assert_eq!(shape(&cut(target - marker)), [(4096, 1, false), (12 + 1, 1, false)]);
    // One byte more: block 0 holds only the marker; the record starts block 1.
    assert_eq!(shape(&cut(target - marker + 1)), [(marker, 0, false), (4089, 1, false), (13, 1, false)]);
    // Larger than a block: the marker-only block, then pieces (rule 3).
    assert_eq!(shape(&cut(5000)), [(marker, 0, false), (4096, 1, true), (904 + 13, 1, false)]);
    // Such archives read back through every reader.
    for first in [target - marker + 1, 5000] {
        let m: Model =
            [("ks".to_owned(), [(b"a".to_vec(), vec![7u8; first - 7]), (b"b".to_vec(), b"second".to_vec())].into())]
                .into();
        let bytes = write_archive(&m, target as u32, &BTreeMap::new(), None);
        let a = Archive::from_bytes(bytes.as_slice(), "a").unwrap();
        assert_eq!((a.index().blocks[0].raw_len, a.index().blocks[0].record_count), (marker as u32, 0));
        accepted(&bytes, &m, "marker-only first block");
    }
}

/// A model whose keyspace "a" has a value spanning three blocks (so a block
/// with `CONTINUES`), and two more keyspaces.
fn spanning_model() -> (Vec<u8>, Model) {
    let mut m = Model::new();
    m.insert("a".into(), [(b"big".to_vec(), vec![3u8; 9_000]), (b"small".to_vec(), b"v".to_vec())].into());
    m.insert("b".into(), (0..40u32).map(|i| (format!("k{i:03}").into_bytes(), vec![1u8; 300])).collect());
    m.insert("c".into(), BTreeMap::new());
    (write_archive(&m, 4096, &BTreeMap::new(), None), m)
}

#[test]
fn the_data_region_parses_completely_without_gaps() {
    let (good, m) = spanning_model();
    let a = Archive::from_bytes(good.as_slice(), "a").unwrap();
    let n = a.index().blocks.len();
    assert!(n >= 7 && a.index().keyspaces[0].totals.block_count >= 3, "{n} blocks");
    let after = |i: usize, b: Vec<u8>| {
        rebuild::rebuild(&good, &rebuild::Edits { after_block: [(i, b)].into(), ..Default::default() })
    };
    // An unknown optional section after any block (inside a keyspace, after a
    // block with CONTINUES, between keyspaces, before the index) is skipped.
    let xtra = encode_section(*b"XTRA", 0, b"between blocks");
    for i in [0, 1, 3, n - 1] {
        let b = after(i, xtra.clone());
        accepted(&b, &m, &format!("XTRA after block {i}"));
        let r = Archive::from_bytes(b.as_slice(), "a").unwrap();
        assert_eq!(r.skipped_sections().len(), 1);
    }
    // Garbage of any length, a zstd frame or a known section there is refused.
    let frame = BlockCompressor::new(3).unwrap().compress(b"a stray data frame").unwrap();
    let kstb = encode_section(tags::KEYSPACES, 1, &0u32.to_le_bytes());
    let mut bad_crc = xtra.clone();
    bad_crc[8] ^= 1;
    let mut bad_body = xtra.clone();
    *bad_body.last_mut().unwrap() ^= 1;
    for (what, bytes, why) in [
        ("1 byte of garbage", vec![0u8], &["magic", "section"][..]),
        ("3 bytes of garbage", b"abc".to_vec(), &["magic", "section"]),
        ("8 bytes of garbage", b"garbage!".to_vec(), &["magic"]),
        ("a foreign skippable frame", [0x184D_2A50u32.to_le_bytes(), 0u32.to_le_bytes()].concat(), &["foreign"]),
        ("a data frame without block header", frame, &["zstd data frame"]),
        ("a second KSTB", kstb, &["unexpected 'KSTB'"]),
        ("an optional section with a bad CRC", bad_crc, &["checksum"]),
        ("an optional section with a flipped body bit", bad_body, &["checksum"]),
    ] {
        for i in [1, n - 1] {
            let b = after(i, bytes.clone());
            refused(&b, &format!("{what} after block {i}"), why);
        }
    }
}
