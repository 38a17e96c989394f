//! Hostile archives: well-checksummed files that lie. Each one is refused by
//! every reader (random-access and streaming, full and `--quick`) with an
//! archive error naming an offset, and by both imports, which leave nothing
//! behind. "Before allocating" is shown by `hostile_archives_stay_within_the_memory_bound`,
//! which runs the `floe` binary on the worst of them and bounds its peak RSS.
//!
//! Covered elsewhere (unit tests next to the decoders, named here so the list
//! is complete): `format::block::tests::bomb_is_refused_without_allocating_its_size`,
//! `format::index::tests::hostile_indexes_are_rejected`,
//! `format::keyspace_table::tests::duplicates_order_and_names_are_checked`,
//! `format::record::tests::decoder_catches_disorder_across_blocks_and_bad_flags`,
//! `format::options::tests::hostile_values_are_rejected`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use floe::format::block::BlockCompressor;
use floe::format::keyspace_table::KeyspaceEntry;
use floe::format::record::{put_marker, put_record, RawBlock};
use floe::format::section::{decode_section, encode_section, FLAG_REQUIRED};
use floe::write::{ArchiveWriter, EncodedBlock};
use std::collections::BTreeMap;

const MIB: usize = 1 << 20;

/// A raw block given verbatim, so that its records can break the rules.
/// `starts` are the keys of the records that begin in it (for the block
/// header's count and the index's first and last key).
fn blk(keyspace: u32, continues: bool, starts: &[&[u8]], data: Vec<u8>) -> RawBlock {
    RawBlock {
        keyspace,
        continues,
        record_count: starts.len() as u32,
        key_bytes: starts.iter().map(|k| k.len() as u64).sum(),
        first_key: starts.first().map(|k| k.to_vec()),
        last_key: starts.last().map(|k| k.to_vec()),
        data,
        ..Default::default()
    }
}

/// An archive of the given raw blocks (sequence numbers filled in).
fn archive_of_blocks(names: &[&str], blocks: Vec<RawBlock>) -> Vec<u8> {
    let entries: Vec<KeyspaceEntry> =
        names.iter().map(|n| KeyspaceEntry { name: (*n).into(), options: Default::default() }).collect();
    let mut w = ArchiveWriter::new(Vec::new(), floe::format::header::Header::new(1, 4096, 0), &entries).unwrap();
    // No key index: these blocks break record rules that the decoder must
    // catch by itself (tests/key_index.rs corrupts key indexes).
    w.set_key_index(false);
    let mut c = BlockCompressor::new(1).unwrap();
    let mut seq: BTreeMap<u32, u32> = BTreeMap::new();
    for mut raw in blocks {
        let s = seq.entry(raw.keyspace).or_default();
        raw.sequence = *s;
        *s += 1;
        w.write_block(&EncodedBlock::compress(raw, &mut c).unwrap()).unwrap();
    }
    w.finish().unwrap().0
}

fn marker(name: &str) -> Vec<u8> {
    let mut b = Vec::new();
    put_marker(&mut b, name);
    b
}

fn records(start: Vec<u8>, recs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut b = start;
    for (k, v) in recs {
        put_record(&mut b, k, v);
    }
    b
}

/// A valid archive with three keyspaces.
fn valid() -> Vec<u8> {
    let mut m = small_model(300, 3);
    m.remove("empty");
    write_archive(&m, 4096, &BTreeMap::new(), None)
}

/// Section boundaries: (offset, length) of every section and frame, in order.
fn sections(a: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < a.len() {
        let size = u32::from_le_bytes(a[at + 4..at + 8].try_into().unwrap()) as usize + 8;
        let magic = u32::from_le_bytes(a[at..at + 4].try_into().unwrap());
        let len =
            if magic == 0x184D_2A5A { size } else { zstd::zstd_safe::find_frame_compressed_size(&a[at..]).unwrap() };
        out.push((at, len));
        at += len;
    }
    out
}

/// Replaces the section at `at` by one with the same tag and flags and the
/// body `f` makes of its body (CRC recomputed).
fn patch_section(a: &[u8], at: usize, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let sec = decode_section(&a[at..], at as u64).unwrap();
    let mut body = sec.body.to_vec();
    f(&mut body);
    let mut out = a[..at].to_vec();
    out.extend_from_slice(&encode_section(sec.tag, sec.flags, &body));
    out.extend_from_slice(&a[at + sec.total_len as usize..]);
    out
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Refused everywhere, and every reader's message contains one of `want`.
#[track_caller]
fn refused(bytes: &[u8], what: &str, want: &[&str]) {
    let errs = all_readers_refuse(bytes, what);
    for e in &errs {
        assert!(want.iter().any(|w| e.contains(w)), "{what}: message does not say why ({want:?}): {e}");
    }
    imports_fail_cleanly(bytes, what);
}

/// Refused by decoding the records (full verify, both imports). `--quick`
/// checks checksums and structure only, without decompressing, so by
/// definition it cannot see these.
#[track_caller]
fn refused_when_decoded(bytes: &[u8], what: &str, want: &[&str]) {
    for e in full_readers_refuse(bytes, what) {
        assert!(want.iter().any(|w| e.contains(w)), "{what}: message does not say why ({want:?}): {e}");
    }
    imports_fail_cleanly(bytes, what);
}

/// The full (decompressing) readers refuse `bytes`; returns their messages.
#[track_caller]
fn full_readers_refuse(bytes: &[u8], what: &str) -> Vec<String> {
    let np = &floe::progress::NoProgress;
    let ra = floe::read::Archive::from_bytes(bytes, "x").and_then(|a| a.verify(false, np));
    let rs = floe::read::verify_stream(bytes, "x", false, np);
    [ra, rs].into_iter().map(|r| r.expect_err(what).to_string()).collect()
}

fn index_at(a: &[u8]) -> usize {
    sections(a)[sections(a).len() - 2].0
}

/// Offset, in an index section body, of its first block entry (after the
/// keyspace totals, whose first and last keys vary in length).
fn entries_at(body: &[u8]) -> usize {
    let nks = u32::from_le_bytes(body[..4].try_into().unwrap());
    let mut at = 4;
    for _ in 0..nks {
        at += 52;
        for _ in 0..2 {
            at += 2 + u16::from_le_bytes([body[at], body[at + 1]]) as usize;
        }
    }
    at + 8
}

/// Replaces `len` bytes at `at` (before the index) by `new`, and
/// shifts everything after: index entry offsets, the trailer's index offset
/// and archive size. The result is consistent except for what `new` says.
fn splice(a: &[u8], at: usize, len: usize, new: &[u8]) -> Vec<u8> {
    let delta = new.len() as i64 - len as i64;
    let shift = |v: u64| (v as i64 + delta) as u64;
    let ix = index_at(a);
    let a = patch_section(a, ix, |body| {
        let first = entries_at(body);
        for e in (first..body.len()).step_by(24) {
            let o = u64::from_le_bytes(body[e..e + 8].try_into().unwrap());
            if o >= at as u64 {
                set_u64(body, e, shift(o));
            }
        }
    });
    let mut out = a[..at].to_vec();
    out.extend_from_slice(new);
    out.extend_from_slice(&a[at + len..]);
    let n = out.len();
    patch_section(&out, n - 60, |body| {
        set_u64(body, 0, shift(ix as u64));
        set_u64(body, 16, n as u64);
    })
}

#[test]
fn declared_section_sizes_beyond_the_limit() {
    let a = valid();
    for (i, (at, _)) in sections(&a).into_iter().enumerate().filter(|(i, _)| *i < 2) {
        let mut b = a.clone();
        set_u32(&mut b, at + 4, (256 << 20) - 7); // one byte over 256 MiB in total
        refused(&b, &format!("section #{i} declaring 256 MiB + 1"), &["exceeds the format limit"]);
        let mut b = a.clone();
        set_u32(&mut b, at + 4, 200 << 20); // within the limit, far beyond the file
        refused(&b, &format!("section #{i} declaring 200 MiB"), &["truncated", "trailer", "checksum"]);
    }
    // The trailer's index size, beyond the limit and beyond the file.
    for size in [u64::MAX, 257 << 20, 1 << 30] {
        let n = a.len();
        let b = patch_section(&a, n - 60, |body| set_u64(body, 8, size));
        refused(&b, &format!("trailer index_size {size}"), &["index"]);
    }
}

#[test]
fn block_sizes_beyond_the_limits() {
    let a = valid();
    let blkh = sections(&a)[2].0;
    for (field, at, v, why) in [
        ("raw_len", 16, (64 << 20) + 1, "raw_len"),
        ("raw_len", 16, 0, "raw_len"),
        ("frame_len", 20, (65 << 20) + 1, "frame_len"),
        ("frame_len", 20, 8, "frame_len"),
        ("record_count", 12, u32::MAX, "record"),
    ] {
        let b = patch_section(&a, blkh, |body| set_u32(body, at, v));
        refused(&b, &format!("block header {field} = {v}"), &[why]);
    }
}

/// A frame that really yields 64 MiB under a block header that says less, with
/// and without the frame declaring its content size.
#[test]
fn decompression_bombs_are_refused() {
    let zeros = vec![0u8; 64 * MIB];
    for declare_size in [true, false] {
        let mut c = zstd::bulk::Compressor::new(19).unwrap();
        c.include_contentsize(declare_size).unwrap();
        let bomb = c.compress(&zeros).unwrap();
        assert!(bomb.len() < 8 * 1024, "bomb frame is {} bytes", bomb.len());
        // A block whose payload is one small record; swap its frame for the bomb.
        let a = archive_of_blocks(&["ks"], vec![blk(0, false, &[b"k"], records(marker("ks"), &[(b"k", b"v")]))]);
        let s = sections(&a);
        let (blkh, _) = s[2];
        let (frame_at, frame_len) = s[3];
        let b = patch_section(&a, blkh, |body| {
            set_u32(body, 20, bomb.len() as u32);
            set_u32(body, 28, crc32fast::hash(&bomb));
        });
        let b = splice(&b, frame_at, frame_len, &bomb);
        let ix = index_at(&b);
        let b = patch_section(&b, ix, |body| {
            let e = entries_at(body);
            set_u32(body, e + 20, bomb.len() as u32); // the block entry's frame_len
            set_u64(body, 4 + 32, bomb.len() as u64); // the keyspace's compressed_bytes
        });
        let what = format!("bomb (content size declared: {declare_size})");
        if declare_size {
            refused(&b, &what, &["declares"]);
        } else {
            // Without a declared size only decompression can tell.
            refused_when_decoded(&b, &what, &["decompress"]);
        }
    }
}

#[test]
fn index_pointing_outside_the_file_or_at_overlapping_blocks() {
    let a = valid();
    let ix = index_at(&a);
    for (what, v) in
        [("beyond the end of the file", 1u64 << 40), ("inside the header", 3), ("onto the previous block", 0)]
    {
        let b = patch_section(&a, ix, |body| {
            let first = entries_at(body);
            let e = first + 24; // block #1
            let v = if v == 0 { u64::from_le_bytes(body[first..first + 8].try_into().unwrap()) + 10 } else { v };
            set_u64(body, e, v);
        });
        refused(&b, &format!("index entry pointing {what}"), &["index", "block"]);
    }
    // Two entries swapped: out of order.
    let b = patch_section(&a, ix, |body| {
        let first = entries_at(body);
        let (x, y) = (body[first..first + 24].to_vec(), body[first + 24..first + 48].to_vec());
        body[first..first + 24].copy_from_slice(&y);
        body[first + 24..first + 48].copy_from_slice(&x);
    });
    refused(&b, "index entries swapped", &["index", "block"]);
}

#[test]
fn block_counts_that_would_overflow() {
    let a = valid();
    let ix = index_at(&a);
    for count in [u64::MAX, u64::MAX / 24 + 1, 1 << 40] {
        let b = patch_section(&a, ix, |body| {
            let at = entries_at(body) - 8;
            set_u64(body, at, count);
        });
        refused(&b, &format!("index block_count {count}"), &["block_count"]);
        let n = a.len();
        let b = patch_section(&a, n - 60, |body| set_u64(body, 24, count));
        refused(&b, &format!("trailer block_count {count}"), &["block_count", "trailer"]);
    }
}

/// A keyspace table section with these raw names (header count adjusted).
fn with_names(names: &[&[u8]]) -> Vec<u8> {
    let a = valid();
    let mut body = Vec::new();
    body.extend_from_slice(&(names.len() as u32).to_le_bytes());
    for n in names {
        body.extend_from_slice(&(n.len() as u16).to_le_bytes());
        body.extend_from_slice(n);
        body.extend_from_slice(&0u32.to_le_bytes());
    }
    let (kat, klen) = sections(&a)[1];
    let a = rewrite_header(&a, |h| h.keyspace_count = names.len() as u32);
    splice(&a, kat, klen, &encode_section(*b"KSTB", FLAG_REQUIRED, &body))
}

#[test]
fn duplicate_keyspace_names() {
    refused(&with_names(&[b"alpha", b"alpha", b"beta"]), "duplicate keyspace names", &["duplicate keyspace name"]);
    refused(&with_names(&[b"beta", b"alpha", b"gamma"]), "unsorted keyspace names", &["out of order"]);
}

#[test]
fn names_that_are_empty_too_long_or_not_utf8() {
    let long = vec![b'n'; 256];
    refused(&with_names(&[b"", b"b", b"cc"]), "empty keyspace name", &["empty"]);
    refused(&with_names(&[b"a", b"b", &long]), "256-byte keyspace name", &["255"]);
    refused(&with_names(&[b"a", b"b", &[0xff, 0xfe, b'x']]), "keyspace name not UTF-8", &["UTF-8"]);
    // 255 bytes is allowed (the table decodes; the rest of the archive then disagrees).
    let max = vec![b'n'; 255];
    let e = full_readers_refuse(&with_names(&[b"a", b"b", &max]), "255-byte name");
    assert!(e.iter().all(|e| !e.contains("keyspace name")), "{e:?}");
}

#[test]
fn keyspace_count_beyond_the_limit() {
    let a = valid();
    for n in [(1u32 << 16) + 1, u32::MAX] {
        let b = rewrite_header(&a, |h| h.keyspace_count = n);
        refused(&b, &format!("keyspace_count {n}"), &["exceeds the limit of 65536"]);
    }
}

#[test]
fn unsorted_or_duplicate_keys_within_a_block() {
    for (what, recs, why) in [
        ("unsorted keys", vec![(&b"b"[..], &b"1"[..]), (b"a", b"2")], "out of order"),
        ("duplicate keys", vec![(&b"a"[..], &b"1"[..]), (b"a", b"2")], "duplicate"),
        ("a shorter key after its extension", vec![(&b"ab"[..], &b"1"[..]), (b"a", b"2")], "out of order"),
    ] {
        let starts: Vec<&[u8]> = recs.iter().map(|r| r.0).collect();
        let b = archive_of_blocks(&["ks"], vec![blk(0, false, &starts, records(marker("ks"), &recs))]);
        refused_when_decoded(&b, what, &[why]);
    }
}

#[test]
fn unsorted_or_duplicate_keys_across_block_boundaries() {
    for (what, k1, k2, why) in
        [("unsorted", &b"m"[..], &b"c"[..], "out of order"), ("duplicate", b"m", b"m", "duplicate")]
    {
        // Whole records in consecutive blocks.
        let b = archive_of_blocks(
            &["ks"],
            vec![
                blk(0, false, &[k1], records(marker("ks"), &[(k1, b"1")])),
                blk(0, false, &[k2], records(Vec::new(), &[(k2, b"2")])),
            ],
        );
        refused_when_decoded(&b, &format!("{what} keys in consecutive blocks"), &[why]);
        // The second record spans a block boundary (CONTINUES).
        let mut second = Vec::new();
        put_record(&mut second, k2, &[7u8; 100]);
        let mut first = records(marker("ks"), &[(k1, b"1")]);
        first.extend_from_slice(&second[..10]);
        let b =
            archive_of_blocks(&["ks"], vec![blk(0, true, &[k1, k2], first), blk(0, false, &[], second[10..].to_vec())]);
        refused_when_decoded(&b, &format!("{what} key in a record spanning blocks"), &[why]);
    }
}

#[test]
fn empty_keys_and_key_lengths() {
    // An empty key is a keyspace marker: one in the middle of a keyspace is refused.
    let b = archive_of_blocks(
        &["ks"],
        vec![blk(0, false, &[b"a", b"b"], records(marker("ks"), &[(b"a", b"1"), (b"", b"x")]))],
    );
    refused_when_decoded(&b, "empty key", &["marker"]);
    // The same, starting a spanning piece.
    let mut first = records(marker("ks"), &[(b"a", b"1")]);
    first.extend_from_slice(&[0, 0, 9]);
    let b = archive_of_blocks(
        &["ks"],
        vec![blk(0, true, &[b"a", b"b"], first), blk(0, false, &[], vec![0, 0, 0, b'x', b'y', b'z', 1, 2, 3])],
    );
    refused_when_decoded(&b, "empty key split across blocks", &["marker"]);
    // key_len is a u16: a key over 65,535 bytes cannot be expressed in an
    // archive; writers refuse it, and the longest key round-trips.
    let long = vec![b'k'; 65_536];
    let mut bb = floe::format::record::BlockBuilder::new(0, "ks", 4096);
    let mut sink = |_r: RawBlock| -> floe::Result<()> { Ok(()) };
    let e = bb.push(&long, b"v", &mut sink).unwrap_err();
    assert!(e.to_string().contains("65535"), "{e}");
    let mut m = Model::new();
    m.insert("ks".into(), [(long[..65_535].to_vec(), b"v".to_vec())].into());
    let a = write_archive(&m, 4096, &BTreeMap::new(), None);
    floe::read::Archive::from_bytes(a.as_slice(), "x").unwrap().verify(false, &floe::progress::NoProgress).unwrap();
}

// ---------------------------------------------------------------------------
// The memory bound (README "Guarantees", format-spec §1.1).

/// Peak RSS bound for a run of `floe` on a hostile archive of `file_len`
/// bytes, as README ("Guarantees") states it: a fixed working set (program,
/// threads, zstd contexts, fjall's caches) plus decompression buffers, plus
/// metadata decoded from the archive's own bytes (at most 8 bytes of memory
/// per byte of archive), plus, for import, three times the values being
/// ingested at once (`values`: the largest value of each keyspace ingested
/// in parallel): floe's copy of a value that spans blocks, and fjall's
/// buffers while it writes the value into a table.
fn bound(mode: &str, file_len: u64, values: u64) -> u64 {
    let fixed = 48 * MIB as u64;
    let buffers = match mode {
        "verify" => 192,        // one keyspace at a time: ≤ 64 MiB ahead + 2 blocks, ≤ 3 blocks
        "verify-stream" => 384, // one ≤ 65 MiB frame + ≤ 5 blocks between reader and decoder
        "import" => 2 * 192,    // --threads 2: two keyspaces at once
        "import-stream" => 384,
        _ => unreachable!(),
    } * MIB as u64;
    fixed + buffers + 8 * file_len + 3 * values
}

/// Runs `floe args` (stdin from `stdin` if given) and returns (exit code,
/// peak RSS in bytes). The peak is the child's own high-water mark (VmHWM in
/// /proc/PID/status), polled every millisecond until it exits; getrusage's
/// maxrss would not do, as Linux carries the spawning test process's peak
/// over into a child's maxrss across exec.
fn peak_rss(args: &[&str], stdin: Option<&std::path::Path>) -> (i32, u64) {
    use std::process::{Command, Stdio};
    let mut c = Command::new(floe_bin());
    c.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    c.stdin(match stdin {
        Some(f) => Stdio::from(std::fs::File::open(f).unwrap()),
        None => Stdio::null(),
    });
    let mut child = c.spawn().unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(st) = std::fs::read_to_string(&status_file) {
            let kib = st
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
            peak = peak.max(kib.unwrap_or(0) * 1024);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    (status.code().unwrap_or_else(|| panic!("floe {args:?} died: {status}")), peak)
}

/// A *valid* archive of `keyspaces` keyspaces of `blocks` raw blocks of
/// 64 MiB each that compress to about 2 KiB: one record per block, its value
/// all zeros.
fn zero_bomb(path: &std::path::Path, keyspaces: u32, blocks: u32) {
    let names: Vec<String> = (0..keyspaces).map(|k| format!("ks{k}")).collect();
    let entries: Vec<KeyspaceEntry> =
        names.iter().map(|n| KeyspaceEntry { name: n.clone(), options: Default::default() }).collect();
    let out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = ArchiveWriter::new(out, floe::format::header::Header::new(1, 64 * MIB as u32, 0), &entries).unwrap();
    let mut c = BlockCompressor::new(1).unwrap();
    let mut data = Vec::with_capacity(64 * MIB);
    for (k, name) in names.iter().enumerate() {
        for i in 0..blocks {
            data.clear();
            if i == 0 {
                put_marker(&mut data, name);
            }
            let key = format!("k{i:04}").into_bytes();
            let vlen = 64 * MIB - data.len() - 6 - key.len();
            data.extend_from_slice(&(key.len() as u16).to_le_bytes());
            data.extend_from_slice(&(vlen as u32).to_le_bytes());
            data.extend_from_slice(&key);
            data.resize(64 * MIB, 0);
            let mut raw = blk(k as u32, false, &[&key], std::mem::take(&mut data));
            raw.sequence = i;
            raw.first_offset = if i == 0 { 6 + name.len() as u32 } else { 0 };
            raw.value_bytes = vlen as u64;
            let (b, back) = EncodedBlock::compress_reusing(raw, &mut c, Vec::new()).unwrap();
            data = back;
            w.write_block(&b).unwrap();
        }
    }
    w.finish().unwrap();
}

/// A record declaring a 4 GiB − 1 value whose bytes really arrive, 64 MiB
/// per tiny block, for `blocks` blocks, and then stop: refused at the end.
fn undelivered_value(path: &std::path::Path, blocks: u32) -> u64 {
    let entries = [KeyspaceEntry { name: "ks".into(), options: Default::default() }];
    let out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = ArchiveWriter::new(out, floe::format::header::Header::new(1, 64 * MIB as u32, 0), &entries).unwrap();
    let mut c = BlockCompressor::new(1).unwrap();
    let mut first = marker("ks");
    first.extend_from_slice(&1u16.to_le_bytes());
    first.extend_from_slice(&u32::MAX.to_le_bytes());
    first.push(b'k');
    let mut delivered = 0;
    for i in 0..blocks {
        let mut data = if i == 0 { first.clone() } else { Vec::new() };
        data.resize(64 * MIB, 0);
        delivered += (data.len() - if i == 0 { first.len() } else { 0 }) as u64;
        let mut raw = blk(0, i + 1 < blocks, if i == 0 { &[b"k"] } else { &[] }, data);
        raw.sequence = i;
        raw.first_offset = if i == 0 { 8 } else { 0 }; // after the marker of "ks"
        w.write_block(&EncodedBlock::compress(raw, &mut c).unwrap()).unwrap();
    }
    // The writer refuses to end mid-record; the last block is written without CONTINUES above.
    w.finish().unwrap();
    delivered
}

#[test]
fn hostile_archives_stay_within_the_memory_bound() {
    let dir = disk_tempdir();
    let d = dir.path();
    let mut results = Vec::new();
    let mut check = |what: &str,
                     mode: &str,
                     args: &[&str],
                     stdin: Option<&std::path::Path>,
                     file: &std::path::Path,
                     value: u64,
                     want_code: i32| {
        let (code, rss) = peak_rss(args, stdin);
        let len = std::fs::metadata(file).unwrap().len();
        let b = bound(mode, len, value);
        results.push(format!(
            "{what:<48} {mode:<14} exit {code}  peak RSS {:>5} MiB  (bound {:>5} MiB, archive {} KiB)",
            rss >> 20,
            b >> 20,
            len >> 10
        ));
        assert_eq!(code, want_code, "{what}: {mode}: unexpected exit code");
        assert!(rss <= b, "{what}: {mode}: peak RSS {} MiB exceeds the stated bound of {} MiB", rss >> 20, b >> 20);
    };

    // 1. Twelve 64 MiB blocks of zeros in ~1 KiB frames each: valid, 768 MiB raw.
    let bomb = d.join("bomb.floe");
    zero_bomb(&bomb, 1, 12);
    for threads in ["2", "8"] {
        check(
            &format!("12 x 64 MiB zero blocks, --threads {threads}"),
            "verify",
            &["verify", "--threads", threads, p(&bomb)],
            None,
            &bomb,
            0,
            0,
        );
    }
    check("12 x 64 MiB zero blocks", "verify-stream", &["verify", "-"], Some(&bomb), &bomb, 0, 0);

    // Two keyspaces of four such blocks, imported two at a time: the import
    // holds two keyspaces' buffers and two 64 MiB values at once.
    let bomb2 = d.join("bomb2.floe");
    zero_bomb(&bomb2, 2, 4);
    let t = d.join("t0");
    check(
        "2 keyspaces x 4 x 64 MiB zero blocks",
        "import",
        &["import", "--threads", "2", p(&bomb2), p(&t)],
        None,
        &bomb2,
        2 * 64 * MIB as u64,
        0,
    );

    // 2. A record declaring a 4 GiB value; 4 x 64 MiB of it arrive, then the keyspace ends.
    let value = d.join("value.floe");
    let delivered = undelivered_value(&value, 4);
    check(
        "4 GiB value declared, 256 MiB delivered",
        "verify",
        &["verify", "--threads", "2", p(&value)],
        None,
        &value,
        0,
        3,
    );
    check("4 GiB value declared, 256 MiB delivered", "verify-stream", &["verify", "-"], Some(&value), &value, 0, 3);
    let t = d.join("t1");
    check(
        "4 GiB value declared, 256 MiB delivered",
        "import",
        &["import", "--threads", "2", p(&value), p(&t)],
        None,
        &value,
        delivered,
        3,
    );
    check(
        "4 GiB value declared, 256 MiB delivered",
        "import-stream",
        &["import", "-", p(&t)],
        Some(&value),
        &value,
        delivered,
        3,
    );
    assert!(!t.exists());

    // 3. The most keyspaces allowed (65,536), all empty: valid.
    let many = d.join("many.floe");
    let mut m = Model::new();
    for i in 0..(1u32 << 16) {
        m.insert(format!("k{i:05}"), BTreeMap::new());
    }
    std::fs::write(&many, write_archive(&m, 4096, &BTreeMap::new(), None)).unwrap();
    check("65,536 keyspaces", "verify", &["verify", "--threads", "2", p(&many)], None, &many, 0, 0);
    check("65,536 keyspaces", "verify-stream", &["verify", "-"], Some(&many), &many, 0, 0);
    let t = d.join("t2");
    check(
        "65,536 keyspaces, importing one",
        "import",
        &["import", "--threads", "2", "-k", "k65535", p(&many), p(&t)],
        None,
        &many,
        0,
        0,
    );

    // 4. A header section declaring 255 MiB in a 100-byte file.
    let lie = d.join("lie.floe");
    let mut b = valid()[..100].to_vec();
    set_u32(&mut b, 4, (255 << 20) - 8);
    std::fs::write(&lie, &b).unwrap();
    check("255 MiB section declared in 100 bytes", "verify-stream", &["verify", "-"], Some(&lie), &lie, 0, 3);
    let t = d.join("t3");
    check("255 MiB section declared in 100 bytes", "import-stream", &["import", "-", p(&t)], Some(&lie), &lie, 0, 3);

    eprintln!("{}", results.join("\n"));
}

/// An archive of `keyspaces` keyspaces of `values` records each, every value
/// `value_len` zeros (64 MiB blocks, so a value spans blocks joined by
/// CONTINUES; a few KiB of archive per GiB).
fn huge_values(path: &std::path::Path, keyspaces: usize, values: usize, value_len: usize) {
    let names: Vec<String> = (0..keyspaces).map(|k| format!("ks{k}")).collect();
    let entries = names.iter().map(|n| KeyspaceEntry { name: n.clone(), options: Default::default() }).collect();
    let out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w =
        floe::write::RecordWriter::new(out, floe::format::header::Header::new(1, 64 * MIB as u32, 0), entries).unwrap();
    let zeros = vec![0u8; value_len];
    for name in &names {
        w.begin_keyspace(name).unwrap();
        for i in 0..values {
            w.put(format!("k{i}").as_bytes(), &zeros).unwrap();
        }
    }
    w.finish().unwrap();
}

/// Issue 10 item 17: a keyspace whose records may exceed 64 MiB is not cut
/// into segments, so its huge values are reassembled one at a time, and the
/// stated bound (V = the largest value of each segment being ingested) holds.
#[test]
fn huge_values_in_one_keyspace_stay_within_the_memory_bound() {
    const GIB: u64 = 1 << 30;
    // tmpfs when available: 2 GiB of fjall tables on a slow disk take minutes
    // (the pages written to tmpfs are not the child's RSS).
    let dir = tempdir();
    let d = dir.path();
    let mut results = Vec::new();
    let mut check = |what: &str, args: &[&str], file: &std::path::Path, value: u64| {
        let (code, rss) = peak_rss(args, None);
        let len = std::fs::metadata(file).unwrap().len();
        let b = bound("import", len, value);
        results.push(format!("{what:<52} exit {code}  peak RSS {:>5} MiB  (bound {:>5} MiB)", rss >> 20, b >> 20));
        assert_eq!(code, 0, "{what}: unexpected exit code");
        assert!(rss <= b, "{what}: peak RSS {} MiB exceeds the stated bound of {} MiB", rss >> 20, b >> 20);
    };
    // Two 1 GiB values in one keyspace, --threads 2: before, two segments
    // each held one (6.5 GiB against 3.5 GiB).
    let two = d.join("two.floe");
    huge_values(&two, 1, 2, GIB as usize);
    let a = floe::read::Archive::open(&two).unwrap();
    assert!(a.largest_record_bound(0).unwrap() >= GIB);
    assert_eq!(a.segments(0, 3, 1).len(), 1, "a keyspace with 1 GiB values is one segment");
    drop(a);
    check(
        "1 keyspace, 2 x 1 GiB values, --threads 2",
        &["import", "-q", "-t", "2", p(&two), p(&d.join("t0"))],
        &two,
        GIB,
    );
    // Keyspaces of small values are still cut.
    let small = d.join("small.floe");
    huge_values(&small, 1, 6, 48 * MIB);
    assert_eq!(floe::read::Archive::open(&small).unwrap().segments(0, 3, 1).len(), 3);
    eprintln!("{}", results.join("\n"));
}
