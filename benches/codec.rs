//! Microbenchmarks of the format layer: record encoding/decoding, block
//! compression at several levels, CRC-32, and index decoding.
//! Run: `cargo bench --bench codec`. Figures and their reading: BENCHMARKS.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    reason = "benchmark code: a panic is a failed run; criterion_group! generates an undocumented pub fn"
)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use floe::format::block::{BlockCompressor, BlockHeader};
use floe::format::index::{BlockEntry, Index, KeyspaceIndex};
use floe::format::record::{BlockBuilder, KeyspaceDecoder, RawBlock, Totals};
use floe::format::section::{decode_section, encode_section, tags, FLAG_REQUIRED};
use floe::format::FormatError;
use floe::sample::{texty, Rng};

const BLOCK: u32 = 4 << 20;

fn records(n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rng = Rng(7);
    (0..n as u64)
        .map(|i| {
            let len = 150 + rng.below(150) as usize;
            (i.to_be_bytes().to_vec(), texty(&mut rng, len))
        })
        .collect()
}

fn one_block() -> RawBlock {
    let recs = records(30_000);
    let mut b = BlockBuilder::new(0, "bench", BLOCK);
    let mut out = Vec::new();
    let mut emit = |r: RawBlock| -> Result<(), FormatError> {
        out.push(r);
        Ok(())
    };
    for (k, v) in &recs {
        b.push(k, v, &mut emit).unwrap();
    }
    b.finish(&mut emit).unwrap();
    out.into_iter().next().unwrap()
}

fn bench(c: &mut Criterion) {
    let recs = records(20_000);
    let bytes: u64 = recs.iter().map(|(k, v)| 6 + (k.len() + v.len()) as u64).sum();
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("encode (BlockBuilder)", |b| {
        b.iter(|| {
            let mut bb = BlockBuilder::new(0, "bench", BLOCK);
            let mut sink = |_r: RawBlock| -> Result<(), FormatError> { Ok(()) };
            for (k, v) in &recs {
                bb.push(k, v, &mut sink).unwrap();
            }
            bb.finish(&mut sink).unwrap()
        })
    });
    let raw = one_block();
    let h = BlockHeader {
        keyspace: 0,
        flags: 0,
        sequence: 0,
        record_count: raw.record_count,
        raw_len: raw.data.len() as u32,
        frame_len: 100,
        raw_crc32: 0,
        frame_crc32: 0,
    };
    g.throughput(Throughput::Bytes(raw.data.len() as u64));
    g.bench_function("decode + order check (KeyspaceDecoder)", |b| {
        b.iter(|| {
            let mut d = KeyspaceDecoder::new(0, "bench", true);
            d.feed(&h, &raw.data, 0, |_, _| -> Result<(), FormatError> { Ok(()) }).unwrap();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("block");
    g.throughput(Throughput::Bytes(raw.data.len() as u64));
    g.sample_size(10);
    for level in [1, 3, 6, 9] {
        let mut comp = BlockCompressor::new(level).unwrap();
        g.bench_function(format!("zstd compress level {level}"), |b| b.iter(|| comp.compress(&raw.data).unwrap()));
    }
    let frame = BlockCompressor::new(3).unwrap().compress(&raw.data).unwrap();
    let hdr = BlockHeader {
        frame_len: frame.len() as u32,
        raw_crc32: floe::format::crc32(&raw.data),
        frame_crc32: floe::format::crc32(&frame),
        ..h
    };
    g.bench_function("decode_frame (crc + zstd -d + crc)", |b| {
        let mut out = Vec::new();
        b.iter(|| floe::format::block::decode_frame(&hdr, &frame, 0, &mut out).unwrap())
    });
    g.bench_function("crc32", |b| b.iter(|| floe::format::crc32(&raw.data)));
    g.finish();

    let n = 100_000u64;
    let index = Index {
        keyspaces: vec![KeyspaceIndex {
            totals: Totals { block_count: n as u32, raw_bytes: n * 10, compressed_bytes: n * 20, ..Default::default() },
            first_block: 0,
        }],
        blocks: (0..n)
            .map(|i| BlockEntry { offset: 1000 + i * 100, keyspace: 0, record_count: 0, raw_len: 10, frame_len: 20 })
            .collect(),
        key_index: Vec::new(),
    };
    let sec = encode_section(tags::INDEX, FLAG_REQUIRED, &index.encode());
    let mut g = c.benchmark_group("index");
    g.throughput(Throughput::Elements(n));
    g.bench_function("decode 100k block entries", |b| {
        b.iter_batched(
            || (),
            |_| Index::decode(&decode_section(&sec, 0).unwrap(), 1, 1000, 1000 + n * 100 + 100).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
