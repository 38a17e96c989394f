//! Interoperability with the stock `zstd` CLI (format-spec §2, §7): `zstd -t`
//! accepts every archive, and `zstd -dc` prints exactly the record stream,
//! which this test parses on its own (keyspace markers included) and compares
//! with the database. Skipped with a message if `zstd` is not installed, unless
//! FLOE_REQUIRE_ZSTD=1.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

fn have_zstd() -> bool {
    let ok = Command::new("zstd").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("FLOE_REQUIRE_ZSTD").is_none(), "zstd CLI not found but FLOE_REQUIRE_ZSTD is set");
        eprintln!("SKIPPED: the zstd command-line tool is not installed");
    }
    ok
}

/// One keyspace of a parsed record stream: its name and its records in stream order.
type StreamKeyspace = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// Parses a §7 record stream: returns keyspaces in stream order with their
/// records in stream order. Panics on anything malformed.
fn parse_record_stream(raw: &[u8]) -> Vec<StreamKeyspace> {
    let mut out: Vec<StreamKeyspace> = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        assert!(raw.len() - i >= 6, "record header cut at stream offset {i}");
        let klen = u16::from_le_bytes([raw[i], raw[i + 1]]) as usize;
        let vlen = u32::from_le_bytes([raw[i + 2], raw[i + 3], raw[i + 4], raw[i + 5]]) as usize;
        i += 6;
        assert!(raw.len() - i >= klen + vlen, "record cut at stream offset {i}");
        let key = raw[i..i + klen].to_vec();
        let val = raw[i + klen..i + klen + vlen].to_vec();
        i += klen + vlen;
        if klen == 0 {
            out.push((String::from_utf8(val).expect("keyspace marker name is UTF-8"), Vec::new()));
        } else {
            out.last_mut().expect("record before the first keyspace marker").1.push((key, val));
        }
    }
    out
}

fn zstd_dc(file: &Path) -> Vec<u8> {
    let o = Command::new("zstd").arg("-dc").arg(file).output().unwrap();
    assert!(o.status.success(), "zstd -dc failed: {}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

fn zstd_t(file: &Path) {
    let o = Command::new("zstd").arg("-t").arg(file).output().unwrap();
    assert!(o.status.success(), "zstd -t failed: {}", String::from_utf8_lossy(&o.stderr));
}

fn check_stream_equals(raw: &[u8], model: &Model) {
    let parsed = parse_record_stream(raw);
    // One marker per keyspace, in ascending byte order, empty keyspaces included.
    let names: Vec<&String> = parsed.iter().map(|(n, _)| n).collect();
    let want: Vec<&String> = model.keys().collect();
    assert_eq!(names, want, "keyspace markers");
    for (name, recs) in &parsed {
        for w in recs.windows(2) {
            assert!(w[0].0 < w[1].0, "keys of {name:?} not strictly ascending");
        }
        let got: BTreeMap<Vec<u8>, Vec<u8>> = recs.iter().cloned().collect();
        assert_eq!(got.len(), recs.len());
        assert!(got == model[name], "records of keyspace {name:?} differ");
    }
}

#[test]
fn zstd_reads_an_exported_database() {
    if !have_zstd() {
        return;
    }
    let mut model = small_model(600, 9);
    // A value much larger than the block size, in a key-value-separated keyspace.
    let mut rng = floe::sample::Rng(3);
    let mut huge = vec![0u8; 300_000];
    rng.fill(&mut huge);
    model.insert("sep".into(), [(b"huge".to_vec(), huge), (b"tiny".to_vec(), vec![])].into());
    model.insert("z-empty".into(), BTreeMap::new());
    let kv: BTreeSet<String> = ["sep".to_owned()].into();
    let dir = tempdir();
    let db = create_db(&dir.path().join("db"), &model, &kv);
    for block_size in [4096u32, 1 << 20] {
        let bytes = export_bytes(&db, &opts(block_size, 2));
        let f = dir.path().join(format!("a{block_size}.floe"));
        std::fs::write(&f, &bytes).unwrap();
        zstd_t(&f);
        let raw = zstd_dc(&f);
        // The stream's length is what the index says.
        let a = floe::read::Archive::from_bytes(bytes.as_slice(), "a").unwrap();
        let raw_total: u64 = a.index().keyspaces.iter().map(|k| k.totals.raw_bytes).sum();
        assert_eq!(raw.len() as u64, raw_total);
        check_stream_equals(&raw, &model);
        check_frame_headers(&bytes, &a);
    }
}

/// §6: every data frame is a single zstd frame (RFC 8878 §3.1.1) with
/// Frame_Content_Size = raw_len and Content_Checksum_Flag set, so `zstd -t`
/// checks content too. Parsed from the frame header bytes directly.
fn check_frame_headers(bytes: &[u8], a: &floe::read::Archive<&[u8]>) {
    for (i, e) in a.index().blocks.iter().enumerate() {
        let start = e.offset as usize + 52;
        let f = &bytes[start..start + e.frame_len as usize];
        assert_eq!(u32::from_le_bytes(f[..4].try_into().unwrap()), 0xFD2F_B528, "block {i}: not a zstd frame");
        let fhd = f[4];
        assert!(fhd & 0x04 != 0, "block {i}: Content_Checksum_Flag not set");
        assert!(fhd & 0x03 == 0, "block {i}: a dictionary id is present");
        let single_segment = fhd & 0x20 != 0;
        let fcs_len = match fhd >> 6 {
            0 if single_segment => 1,
            0 => panic!("block {i}: Frame_Content_Size absent"),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let pos = 5 + usize::from(!single_segment);
        let mut v = [0u8; 8];
        v[..fcs_len].copy_from_slice(&f[pos..pos + fcs_len]);
        let size = u64::from_le_bytes(v) + if fcs_len == 2 { 256 } else { 0 };
        assert_eq!(size, u64::from(e.raw_len), "block {i}: Frame_Content_Size");
    }
}

#[test]
fn zstd_reads_empty_archives_and_skips_extension_sections() {
    if !have_zstd() {
        return;
    }
    let dir = tempdir();
    // An empty database: zstd -t accepts it, zstd -dc prints nothing.
    let db = open_db(&dir.path().join("empty-db"));
    let bytes = export_bytes(&db, &opts(4096, 1));
    let f = dir.path().join("empty.floe");
    std::fs::write(&f, &bytes).unwrap();
    zstd_t(&f);
    assert!(zstd_dc(&f).is_empty());

    // Optional extension sections (zstd skippable frames) between keyspaces are skipped.
    let mut model = Model::new();
    model.insert("a".into(), [(b"k1".to_vec(), b"v1".to_vec()), (b"k2".to_vec(), vec![5; 9000])].into());
    model.insert("b".into(), BTreeMap::new());
    model.insert("c".into(), [(b"x".to_vec(), b"y".to_vec())].into());
    let bytes = write_archive(&model, 4096, &BTreeMap::new(), Some((*b"XTRA", 0)));
    let f = dir.path().join("ext.floe");
    std::fs::write(&f, &bytes).unwrap();
    zstd_t(&f);
    check_stream_equals(&zstd_dc(&f), &model);
    let a = floe::read::Archive::from_bytes(bytes.as_slice(), "ext").unwrap();
    assert_eq!(a.skipped_sections().len(), 4);
    check_frame_headers(&bytes, &a);
}
