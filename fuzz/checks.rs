//! The properties the fuzz targets check, shared by the libFuzzer targets
//! (`fuzz/fuzz_targets/*.rs`) and the plain-`cargo test` replay of the seed
//! corpus and past findings (`tests/fuzz_replay.rs`); both include this file
//! with `#[path]`. Every entry point takes the raw fuzzer input and panics on a
//! violated property; bad archives themselves must only ever produce errors.
//!
//! * [`read_archive`]: any bytes, as they are and with every checksum patched
//!   to match (to get past the CRCs into the structure checks), through both
//!   readers. Both must agree: accept with the same records, or both refuse.
//! * [`round_trip`]: fuzzer-chosen keyspaces, options and records written with
//!   the export pipeline's pieces and with [`RecordWriter`] (the core's one
//!   record writer; the C ABI and Python wrap its undeclared form): in table
//!   order, and in a fuzzer-chosen order with the table declared up front or
//!   not, spooling in memory or to a file. Every archive
//!   must be identical (§12) and read back identically through both readers.
//! * [`mutate_archive`]: a valid archive with fuzzer-chosen flips, insertions,
//!   deletions, truncations and splices must be refused, or read back exactly
//!   as written. Every byte of an archive is covered by a CRC (spec §2) and
//!   trailing bytes are refused, so no mutation may go unnoticed.
#![allow(dead_code)]

use arbitrary::{Result as AResult, Unstructured};
use floe::format::block::{BlockCompressor, BLOCK_HEADER_BODY};
use floe::format::crc32;
use floe::format::header::Header;
use floe::format::keyspace_table::KeyspaceEntry;
use floe::format::options::{Compaction, Compression, FilterEntry, KeyspaceOptions, KvSeparation, UnknownOption};
use floe::format::record::{BlockBuilder, RawBlock};
use floe::format::section::{section_crc, tags, SECTION_MAGIC, ZSTD_FRAME_MAGIC};
use floe::progress::NoProgress;
use floe::read::{verify_stream, Archive, StreamReader};
use floe::write::{ArchiveWriter, EncodedBlock, RecordWriter};
use std::collections::BTreeMap;

/// One keyspace's records, in key order.
pub type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything an archive carries that a reader hands back.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    pub keyspaces: Vec<KeyspaceEntry>,
    pub records: Vec<Records>,
}

impl Content {
    fn record_count(&self) -> u64 {
        self.records.iter().map(|r| r.len() as u64).sum()
    }
}

// ---------------------------------------------------------------- reading

/// Reads through the index: opens, verifies quick and full, and collects
/// every record with values (as import does). Asserts the three agree.
pub fn read_indexed(bytes: &[u8]) -> floe::Result<Content> {
    let a = Archive::from_bytes(bytes, "fuzz")?;
    let quick = a.verify(true, &NoProgress);
    let full = a.verify(false, &NoProgress);
    let mut records = Vec::with_capacity(a.keyspaces().len());
    let collected = (0..a.keyspaces().len()).try_for_each(|k| {
        let mut recs = Records::new();
        a.for_each_record(k, true, None, |key, v| {
            recs.push((key.to_vec(), v.unwrap_or_default().to_vec()));
            Ok(())
        })?;
        records.push(recs);
        Ok::<_, floe::Error>(())
    });
    assert_eq!(full.is_ok(), collected.is_ok(), "indexed: verify {full:?} but reading the records gave {collected:?}");
    if let Ok(r) = &full {
        assert!(quick.is_ok(), "indexed: full verify passed, quick verify failed: {quick:?}");
        assert_eq!(r.keyspaces, a.keyspaces().len());
        assert_eq!(r.blocks, a.index().blocks.len() as u64);
    }
    full?;
    let c = Content { keyspaces: a.keyspaces().to_vec(), records };
    check_well_formed(&c);
    Ok(c)
}

/// Reads front to back: verify_stream quick and full, and the pipelined
/// record iteration the streaming import uses. Asserts they agree.
pub fn read_streamed(bytes: &[u8]) -> floe::Result<Content> {
    let quick = verify_stream(bytes, "fuzz", true, &NoProgress);
    let full = verify_stream(bytes, "fuzz", false, &NoProgress);
    let collected = (|| {
        let mut s = StreamReader::new(bytes, "fuzz")?;
        let mut records: Vec<Records> = Vec::new();
        s.for_each_keyspace_pipelined(true, None, |k, ks| {
            assert_eq!(k, records.len(), "stream: keyspaces out of order");
            let mut recs = Records::new();
            ks.for_each_record(|key, v| {
                recs.push((key.to_vec(), v.unwrap_or_default().to_vec()));
                Ok(())
            })?;
            records.push(recs);
            Ok(())
        })?;
        Ok::<_, floe::Error>(Content { keyspaces: s.keyspaces().to_vec(), records })
    })();
    assert_eq!(
        full.is_ok(),
        collected.is_ok(),
        "stream: verify {full:?} but reading the records gave {:?}",
        collected.as_ref().err()
    );
    if let (Ok(r), Ok(c)) = (&full, &collected) {
        assert!(quick.is_ok(), "stream: full verify passed, quick verify failed: {quick:?}");
        assert_eq!(r.records, c.record_count(), "stream: verify report and records disagree");
        assert_eq!(r.archive_bytes, bytes.len() as u64, "stream: accepted without reading every byte");
        check_well_formed(c);
    }
    collected
}

/// Reads with both readers and asserts they agree: both refuse, or both accept
/// with the same content. Returns the content when accepted.
pub fn read_both(bytes: &[u8]) -> Option<Content> {
    let indexed = read_indexed(bytes);
    let streamed = read_streamed(bytes);
    match (indexed, streamed) {
        (Ok(a), Ok(b)) => {
            assert!(a == b, "the indexed and the streaming reader accept the archive with different content");
            Some(a)
        }
        (Err(_), Err(_)) => None,
        (a, b) => {
            panic!("the readers disagree: indexed {:?}, streaming {:?}", a.map(|_| "accepted"), b.map(|_| "accepted"))
        }
    }
}

/// What an accepted archive must satisfy whatever its bytes (§1.1, §5, §7).
fn check_well_formed(c: &Content) {
    assert_eq!(c.keyspaces.len(), c.records.len());
    for w in c.keyspaces.windows(2) {
        assert!(w[0].name.as_bytes() < w[1].name.as_bytes(), "keyspace names not strictly ascending");
    }
    for (ks, recs) in c.keyspaces.iter().zip(&c.records) {
        assert!((1..=255).contains(&ks.name.len()), "keyspace name of {} bytes accepted", ks.name.len());
        for (i, (k, v)) in recs.iter().enumerate() {
            assert!((1..=65_535).contains(&k.len()), "key of {} bytes accepted", k.len());
            assert!(v.len() as u64 <= u64::from(u32::MAX));
            if i > 0 {
                assert!(recs[i - 1].0 < *k, "keys not strictly ascending in '{}'", ks.name);
            }
        }
    }
}

// ---------------------------------------------------------------- checksum fixing

/// Patches every checksum it can find so that mutated bytes reach the
/// structure checks behind the CRCs: each section's CRC, and for each block
/// the zstd content checksum (XXH64), `raw_crc32` and `frame_crc32`. Walks the
/// file like a reader; stops where it can no longer find a frame. The trailer
/// (last 60 bytes) is patched even when the walk does not reach it.
pub fn fix_checksums(buf: &mut [u8]) {
    let len = buf.len();
    let mut pos = 0usize;
    while pos + 8 <= len {
        let magic = u32le(&buf[pos..]);
        if magic == ZSTD_FRAME_MAGIC {
            match zstd::zstd_safe::find_frame_compressed_size(&buf[pos..]) {
                Ok(n) if n > 0 => pos += n,
                _ => break,
            }
            continue;
        }
        if magic != SECTION_MAGIC {
            break;
        }
        let total = 8 + u32le(&buf[pos + 4..]) as usize;
        if total < 20 || pos + total > len {
            break;
        }
        let mut next = pos + total;
        if buf[pos + 12..pos + 16] == tags::BLOCK && total >= 20 + BLOCK_HEADER_BODY {
            let body = pos + 20;
            let raw_len = u32le(&buf[body + 16..]) as usize;
            let frame_len = u32le(&buf[body + 20..]) as usize;
            if next + frame_len <= len {
                let frame = &mut buf[next..next + frame_len];
                if let Some(raw) = fix_frame(frame, raw_len) {
                    buf[body + 24..body + 28].copy_from_slice(&crc32(&raw).to_le_bytes());
                }
                let fc = crc32(&buf[next..next + frame_len]);
                buf[body + 28..body + 32].copy_from_slice(&fc.to_le_bytes());
                next += frame_len;
            }
        }
        fix_section_crc(&mut buf[pos..pos + total]);
        pos = next;
    }
    if len >= 60 && u32le(&buf[len - 60..]) == SECTION_MAGIC && u32le(&buf[len - 56..]) == 52 {
        fix_section_crc(&mut buf[len - 60..]);
    }
}

fn u32le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn fix_section_crc(sec: &mut [u8]) {
    let c = section_crc(sec);
    sec[8..12].copy_from_slice(&c.to_le_bytes());
}

/// Decompresses a zstd frame ignoring its content checksum, then patches that
/// checksum to match. Returns the decompressed bytes (at most `cap` of them).
fn fix_frame(frame: &mut [u8], cap: usize) -> Option<Vec<u8>> {
    const CHECKSUM_FLAG: u8 = 1 << 2;
    let cap = cap.min(8 << 20);
    if frame.len() < 9 || u32le(frame) != ZSTD_FRAME_MAGIC {
        return None;
    }
    let n = frame.len();
    let has_checksum = frame[4] & CHECKSUM_FLAG != 0;
    let mut plain = frame.to_vec();
    if has_checksum {
        plain[4] &= !CHECKSUM_FLAG;
        plain.truncate(n - 4);
    }
    let raw = zstd::bulk::decompress(&plain, cap).ok()?;
    if has_checksum {
        let x = xxhash_rust::xxh64::xxh64(&raw, 0) as u32;
        frame[n - 4..].copy_from_slice(&x.to_le_bytes());
    }
    Some(raw)
}

// ---------------------------------------------------------------- generating content

/// A writer's choices and the content it writes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub header: Header,
    pub content: Content,
}

/// Keyspaces (names, options) and sorted unique records, with keys up to the
/// 65,535-byte limit and values spanning several (small) blocks. `budget`
/// caps the total record bytes.
pub fn arbitrary_plan(u: &mut Unstructured<'_>, budget: usize) -> AResult<Plan> {
    let block_target = u.int_in_range(4096..=12_288)?;
    let level = u.int_in_range(-3..=3)?;
    let mut header = Header::new(level, block_target, 0);
    header.created_unix = 1_700_000_000;
    if u.ratio(1, 4)? {
        header.engine = u.arbitrary()?;
        header.engine_version = u.arbitrary()?;
        header.snapshot_seqno = u.arbitrary()?;
    }
    let mut left = budget;
    let mut spaces = BTreeMap::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let name = arbitrary_name(u)?;
        let options = arbitrary_options(u)?;
        let mut recs: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for _ in 0..u.int_in_range(0..=24)? {
            let key = blob(u, 1, 65_535, 8)?;
            let value = blob(u, 0, 3 * block_target as usize + 100, 16)?;
            let cost = key.len() + value.len();
            if key.is_empty() || cost > left {
                continue;
            }
            left -= cost;
            recs.insert(key, value);
        }
        spaces.insert(name, (options, recs));
    }
    let (keyspaces, records) = spaces
        .into_iter()
        .map(|(name, (options, recs))| (KeyspaceEntry { name, options }, recs.into_iter().collect()))
        .unzip();
    Ok(Plan { header, content: Content { keyspaces, records } })
}

/// A valid keyspace name: 1–255 bytes of UTF-8 (falls back to "ks").
fn arbitrary_name(u: &mut Unstructured<'_>) -> AResult<String> {
    let mut s: String = u.arbitrary()?;
    if u.ratio(1, 8)? {
        s = s.repeat(255 / s.len().max(1) + 1);
    }
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    Ok(if s.is_empty() { "ks".into() } else { s })
}

/// Bytes of length `min..=max`: usually short arbitrary bytes, sometimes a
/// long repeated pattern (cheap for the fuzzer to produce).
fn blob(u: &mut Unstructured<'_>, min: usize, max: usize, short: usize) -> AResult<Vec<u8>> {
    let pattern: Vec<u8> = u.arbitrary()?;
    if u.ratio(1, 6)? {
        let n = u.int_in_range(min..=max)?;
        let p = if pattern.is_empty() { vec![0xA5] } else { pattern };
        return Ok(p.iter().copied().cycle().take(n).collect());
    }
    let mut v = pattern;
    v.truncate(short.max(min));
    while v.len() < min {
        v.push(u.arbitrary()?);
    }
    Ok(v)
}

fn policy<T>(
    u: &mut Unstructured<'_>,
    mut f: impl FnMut(&mut Unstructured<'_>) -> AResult<T>,
) -> AResult<Option<Vec<T>>> {
    if !u.arbitrary()? {
        return Ok(None);
    }
    let n = u.int_in_range(1..=7)?;
    (0..n).map(|_| f(u)).collect::<AResult<Vec<T>>>().map(Some)
}

/// A float in `lo..=hi` (never NaN).
fn unit_f32(u: &mut Unstructured<'_>, lo: f32, hi: f32) -> AResult<f32> {
    let x: u16 = u.arbitrary()?;
    Ok(lo + (hi - lo) * f32::from(x) / f32::from(u16::MAX))
}

/// Options within the ranges of spec §5.2, plus unknown optional ids.
fn arbitrary_options(u: &mut Unstructured<'_>) -> AResult<KeyspaceOptions> {
    if !u.arbitrary()? {
        return Ok(KeyspaceOptions::default());
    }
    let comp = |u: &mut Unstructured<'_>| Ok(if u.arbitrary()? { Compression::Lz4 } else { Compression::None });
    let nonzero_u8 = |u: &mut Unstructured<'_>| u.int_in_range(1..=u8::MAX);
    let boolean = |u: &mut Unstructured<'_>| u.arbitrary::<bool>();
    let mut o = KeyspaceOptions {
        data_block_compression: policy(u, comp)?,
        index_block_compression: policy(u, comp)?,
        data_block_size: policy(u, |u| u.int_in_range(1..=u32::MAX))?,
        data_block_restart_interval: policy(u, nonzero_u8)?,
        index_block_restart_interval: policy(u, nonzero_u8)?,
        data_block_hash_ratio: policy(u, |u| unit_f32(u, 0.0, 64.0))?,
        index_block_pinning: policy(u, boolean)?,
        filter_block_pinning: policy(u, boolean)?,
        index_block_partitioning: policy(u, boolean)?,
        filter_block_partitioning: policy(u, boolean)?,
        expect_point_read_hits: if u.arbitrary()? { Some(u.arbitrary()?) } else { None },
        filter_policy: policy(u, |u| {
            Ok(match u.int_in_range(0..=2)? {
                0 => FilterEntry::None,
                1 => FilterEntry::BloomBitsPerKey(unit_f32(u, 0.5, 64.0)?),
                _ => FilterEntry::BloomFalsePositiveRate(unit_f32(u, 0.001, 0.999)?),
            })
        })?,
        kv_separation: None,
        compaction: None,
        unknown: Vec::new(),
    };
    if u.arbitrary()? {
        o.kv_separation = Some(KvSeparation {
            blob_compression: comp(u)?,
            file_target_size: u.arbitrary()?,
            separation_threshold: u.arbitrary()?,
            staleness_threshold: unit_f32(u, 0.0, 1.0)?,
            age_cutoff: unit_f32(u, 0.0, 1.0)?,
        });
    }
    o.compaction = match u.int_in_range(0..=2)? {
        0 => None,
        1 => Some(Compaction::Leveled {
            l0_threshold: u.int_in_range(1..=u8::MAX)?,
            table_target_size: u.int_in_range(1..=u64::MAX)?,
            level_ratios: (0..u.int_in_range(0..=7)?).map(|_| unit_f32(u, 0.5, 100.0)).collect::<AResult<_>>()?,
        }),
        _ => {
            let ttl = if u.arbitrary()? { Some(u.arbitrary()?) } else { None };
            Some(Compaction::Fifo { limit_bytes: u.arbitrary()?, ttl_seconds: ttl })
        }
    };
    // Unknown ids (16..=0x7fff), ascending and unique, never REQUIRED: a
    // reader keeps them verbatim.
    let mut id = 15u16;
    for _ in 0..u.int_in_range(0..=2)? {
        id = id.saturating_add(u.int_in_range(1..=1000)?).min(0x7fff);
        if o.unknown.last().is_some_and(|l| l.tag >= id) {
            break;
        }
        o.unknown.push(UnknownOption { tag: id, value: blob(u, 0, 64, 8)? });
    }
    Ok(o)
}

// ---------------------------------------------------------------- writing

/// Writes with [`RecordWriter`], keyspaces in table order (streamed straight
/// through, nothing spooled).
pub fn write_records(p: &Plan) -> Vec<u8> {
    let mut w = RecordWriter::new(Vec::new(), p.header.clone(), p.content.keyspaces.clone()).expect("record writer");
    for (ks, recs) in p.content.keyspaces.iter().zip(&p.content.records) {
        w.begin_keyspace(&ks.name).expect("begin_keyspace");
        for (k, v) in recs {
            w.put(k, v).expect("put");
        }
    }
    w.finish().expect("finish").0
}

/// How [`write_any_order`] drives the [`RecordWriter`].
#[derive(Debug, Clone)]
pub struct Order {
    /// The order keyspaces are begun in (positions in the plan's table).
    pub begin: Vec<usize>,
    /// Declared only: leave empty keyspaces un-begun (written empty at finish).
    pub skip_empty: bool,
    /// Spool to the temporary file from the first block instead of memory.
    pub spool_to_file: bool,
}

/// A fuzzer-chosen [`Order`] for `n` keyspaces.
pub fn arbitrary_order(u: &mut Unstructured<'_>, n: usize) -> AResult<Order> {
    let mut begin: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        begin.swap(i, u.int_in_range(0..=i)?);
    }
    Ok(Order { begin, skip_empty: u.arbitrary()?, spool_to_file: u.arbitrary()? })
}

/// Writes with [`RecordWriter`], keyspaces begun in `o.begin`'s order: with
/// the table declared up front ([`RecordWriter::new`]) or learnt as keyspaces
/// are begun ([`RecordWriter::undeclared`], as the C ABI and Python do).
pub fn write_any_order(p: &Plan, o: &Order, declared: bool) -> Vec<u8> {
    let mut w = if declared {
        RecordWriter::new(Vec::new(), p.header.clone(), p.content.keyspaces.clone()).expect("record writer")
    } else {
        RecordWriter::undeclared(Vec::new(), p.header.clone()).expect("undeclared record writer")
    };
    if o.spool_to_file {
        w = w.spool_memory_limit(0);
    }
    for &k in &o.begin {
        let (ks, recs) = (&p.content.keyspaces[k], &p.content.records[k]);
        if declared && o.skip_empty && recs.is_empty() {
            continue;
        }
        w.begin_keyspace_with(&ks.name, ks.options.clone()).expect("begin_keyspace");
        for (k, v) in recs {
            w.put(k, v).expect("put");
        }
    }
    w.finish().expect("finish").0
}

/// An unknown section to insert before keyspace `before` (or before the index).
#[derive(Debug, Clone)]
pub struct Extra {
    pub before: usize,
    pub tag: [u8; 4],
    pub required: bool,
    pub body: Vec<u8>,
}

/// Writes with the export pipeline's pieces ([`BlockBuilder`],
/// [`EncodedBlock::compress`], [`ArchiveWriter`]), inserting `extras`.
pub fn write_blocks(p: &Plan, extras: &[Extra]) -> Vec<u8> {
    let mut w = ArchiveWriter::new(Vec::new(), p.header.clone(), &p.content.keyspaces).expect("archive writer");
    let mut c = BlockCompressor::new(p.header.level).expect("compressor");
    let n = p.content.keyspaces.len();
    for k in 0..=n {
        for e in extras.iter().filter(|e| e.before.min(n) == k) {
            w.write_extra_section(e.tag, u32::from(e.required), &e.body).expect("extra section");
        }
        if k == n {
            break;
        }
        let mut b = BlockBuilder::new(k as u32, &p.content.keyspaces[k].name, p.header.block_target);
        let mut emit = |raw: RawBlock| w.write_block(&EncodedBlock::compress(raw, &mut c)?);
        for (key, v) in &p.content.records[k] {
            b.push(key, v, &mut emit).expect("push");
        }
        b.finish(&mut emit).expect("finish keyspace");
    }
    w.finish().expect("finish").0
}

// ---------------------------------------------------------------- the targets

/// Target `read_archive`: raw bytes, as they are and with checksums patched.
pub fn read_archive(data: &[u8]) {
    read_both(data);
    let mut fixed = data.to_vec();
    fix_checksums(&mut fixed);
    if fixed != data {
        read_both(&fixed);
    }
}

/// Target `round_trip`.
pub fn round_trip(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(plan) = arbitrary_plan(&mut u, 256 << 10) else { return };
    let n = plan.content.keyspaces.len();
    let order = arbitrary_order(&mut u, n).unwrap_or(Order {
        begin: (0..n).rev().collect(),
        skip_empty: false,
        spool_to_file: false,
    });
    let mut extras = Vec::new();
    while !u.is_empty() && extras.len() < 3 {
        let Ok(mut tag) = u.arbitrary::<[u8; 4]>() else { break };
        if tags::is_known(&tag) {
            tag[0] ^= 0x80;
        }
        let before = u.int_in_range(0..=plan.content.keyspaces.len()).unwrap_or(0);
        let required = u.ratio(1, 4).unwrap_or(false);
        let body = u.arbitrary::<Vec<u8>>().unwrap_or_default();
        extras.push(Extra { before, tag, required, body });
    }
    let a = write_records(&plan);
    let b = write_blocks(&plan, &[]);
    assert!(a == b, "the record writer and the block pipeline wrote different archives for the same content (§12)");
    for declared in [true, false] {
        let c = write_any_order(&plan, &order, declared);
        assert!(
            a == c,
            "the record writer wrote a different archive for keyspaces begun in another order ({order:?}, declared: {declared}) (§12)"
        );
    }
    let mut want = plan.header.clone();
    want.keyspace_count = plan.content.keyspaces.len() as u32;
    let arch = Archive::from_bytes(&a[..], "fuzz").expect("reopening a fresh archive");
    assert_eq!(*arch.header(), want, "header did not round-trip");
    let got = read_both(&a).expect("a freshly written archive is refused");
    assert!(got == plan.content, "content did not round-trip");
    if extras.is_empty() {
        return;
    }
    let c = write_blocks(&plan, &extras);
    if extras.iter().any(|e| e.required) {
        assert!(read_both(&c).is_none(), "an unknown REQUIRED section was not refused");
    } else {
        let got = read_both(&c).expect("an archive with unknown optional sections is refused");
        assert!(got == plan.content, "unknown optional sections changed the content read");
    }
}

/// One mutation of an archive's bytes.
fn mutate(u: &mut Unstructured<'_>, buf: &mut Vec<u8>) -> AResult<()> {
    let len = buf.len();
    let pos = |u: &mut Unstructured<'_>| u.int_in_range(0..=len.saturating_sub(1));
    match u.int_in_range(0..=7)? {
        0 => {
            let (p, bit) = (pos(u)?, u.int_in_range(0..=7)?);
            buf[p] ^= 1 << bit;
        }
        1 => {
            let p = pos(u)?;
            buf[p] = u.arbitrary()?;
        }
        2 => {
            let p = u.int_in_range(0..=len)?;
            let ins: Vec<u8> = u.arbitrary()?;
            buf.splice(p..p, ins);
        }
        3 => {
            let p = pos(u)?;
            let n = u.int_in_range(1..=(len - p).min(256))?;
            buf.drain(p..p + n);
        }
        4 => buf.truncate(pos(u)?),
        5 => {
            let tail: Vec<u8> = u.arbitrary()?;
            buf.extend_from_slice(if tail.is_empty() { &[0] } else { &tail });
        }
        6 => {
            // Copy a range over another place (overwrite).
            let (src, dst) = (pos(u)?, pos(u)?);
            let n = u.int_in_range(1..=(len - src.max(dst)).min(512))?;
            let piece = buf[src..src + n].to_vec();
            buf[dst..dst + n].copy_from_slice(&piece);
        }
        _ => {
            // Splice a range in again elsewhere (duplicating it).
            let (src, dst) = (pos(u)?, u.int_in_range(0..=len)?);
            let n = u.int_in_range(1..=(len - src).min(512))?;
            let piece = buf[src..src + n].to_vec();
            buf.splice(dst..dst, piece);
        }
    }
    Ok(())
}

/// Target `mutate_archive`.
pub fn mutate_archive(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(plan) = arbitrary_plan(&mut u, 32 << 10) else { return };
    let original = write_records(&plan);
    let fix = u.ratio(1, 4).unwrap_or(false);
    let mut bytes = original.clone();
    let n = u.int_in_range(1..=4).unwrap_or(1);
    for _ in 0..n {
        if bytes.is_empty() || mutate(&mut u, &mut bytes).is_err() {
            break;
        }
    }
    if fix {
        // Checksums patched: a changed archive may legitimately read back
        // differently; the readers must still agree and refuse what is invalid.
        fix_checksums(&mut bytes);
        read_both(&bytes);
        return;
    }
    if let Some(got) = read_both(&bytes) {
        assert!(
            bytes == original || got == plan.content,
            "a mutated archive passed verification with different content"
        );
        assert!(
            bytes == original,
            "a mutated archive ({} bytes, was {}) passed verification",
            bytes.len(),
            original.len()
        );
    }
}
