//! Query benchmark (issue 13, "Performance"): `get`, `cat` and `diff` against
//! the costs they are measured by, side by side in one run. One command
//! (BENCHMARKS.md, "Queries (issue 13)", has results and reading):
//!
//! ```sh
//! cargo bench --bench query                    # 1M records, ~520 MB raw, 1-3 minutes on 2 cores
//! cargo bench --bench query -- --scale 0.05    # a quick look
//! cargo bench --bench query -- --out FILE.md   # also write the report to FILE.md
//! ```
//!
//! Options: `--scale F` (records = 1M × F), `--seed N`, `--out FILE`,
//! `--data-dir DIR` (archive cache, default `target/bench-data`),
//! `--block-size BYTES` (default: floe's default block size).
//!
//! The dataset: one keyspace `one` of 1M records, keys of 16 bytes
//! (`k`, the record number big-endian, 7 random bytes), values uniform in
//! 100–900 bytes (three quarters JSON-like text, a quarter random bytes, about
//! 2:1 with zstd), written with floe's defaults (zstd level 1, 1 MiB blocks)
//! by the library writer (no fjall database needed). Three archives: `a`
//! (format 1.1, with its key index), `a-nokeys` (the same blocks without a key
//! index: a 1.0-style reader's fallback) and `b` (`a` with 1% of the values
//! changed, 0.1% of the keys removed and 0.1% added). One keyspace is the
//! worst case for the fallback, which scans the keyspace's blocks.
//!
//! Whole-process steps are children timed by the clock around them (CPU from
//! `wait4`); each comparison interleaves its two sides and keeps medians.
//! In-process steps time single calls with `Instant`. Warm page cache. No
//! peer (RocksDB `ldb`) is measured: it is not installed here.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "bench")]

#[path = "support/machine.rs"]
mod machine;

use floe::format::block::{BlockCompressor, BLOCK_HEADER_LEN};
use floe::format::header::Header;
use floe::format::keyspace_table::KeyspaceEntry;
use floe::format::record::{BlockBuilder, RawBlock};
use floe::read::{Archive, Fetch, Source};
use floe::sample::{texty, Rng};
use floe::write::{ArchiveWriter, EncodedBlock};
use machine::machine;
use rayon::prelude::*;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

const FLOE: &str = env!("CARGO_BIN_EXE_floe");
/// Bump when the generator changes, so cached archives are rebuilt.
const GENERATOR_VERSION: u32 = 1;
const KS: &str = "one";

// ───────────────────────────── dataset ─────────────────────────────

fn key_of(i: u64, rng: &mut Rng) -> Vec<u8> {
    let mut key = Vec::with_capacity(16);
    key.push(b'k');
    key.extend_from_slice(&i.to_be_bytes());
    key.extend_from_slice(&rng.next_u64().to_be_bytes()[..7]);
    key
}

fn value(rng: &mut Rng) -> Vec<u8> {
    let len = 100 + rng.below(801) as usize;
    let mut v = texty(rng, len - len / 4);
    let mut noise = vec![0u8; len / 4];
    rng.fill(&mut noise);
    v.extend_from_slice(&noise);
    v
}

/// One archive being written: its block builder, pending raw blocks and
/// writer(s) (`a` goes to two writers: with and without a key index).
struct Out {
    builder: Option<BlockBuilder>,
    pending: Vec<RawBlock>,
    writers: Vec<ArchiveWriter<BufWriter<File>>>,
}

impl Out {
    fn new(paths: &[(&Path, bool)], block: u32) -> Out {
        let header = Header::new(floe::export::DEFAULT_LEVEL, block, 0);
        let entries = [KeyspaceEntry { name: KS.into(), options: Default::default() }];
        let writers = paths
            .iter()
            .map(|(p, keys)| {
                let f = BufWriter::with_capacity(1 << 20, File::create(p).unwrap());
                let mut w = ArchiveWriter::new(f, header.clone(), &entries).unwrap();
                w.set_key_index(*keys);
                w
            })
            .collect();
        Out { builder: Some(BlockBuilder::new(0, KS, block)), pending: Vec::new(), writers }
    }

    fn put(&mut self, key: &[u8], v: &[u8]) {
        let pending = &mut self.pending;
        self.builder
            .as_mut()
            .unwrap()
            .push(key, v, &mut |r: RawBlock| -> floe::Result<()> {
                pending.push(r);
                Ok(())
            })
            .unwrap();
        if self.pending.len() >= 8 {
            self.drain();
        }
    }

    /// Compresses the pending blocks in parallel and writes them in order.
    fn drain(&mut self) {
        let level = floe::export::DEFAULT_LEVEL;
        let blocks: Vec<EncodedBlock> = std::mem::take(&mut self.pending)
            .into_par_iter()
            .map_init(|| BlockCompressor::new(level).unwrap(), |c, r| EncodedBlock::compress(r, c).unwrap())
            .collect();
        for b in &blocks {
            for w in &mut self.writers {
                w.write_block(b).unwrap();
            }
        }
    }

    fn finish(mut self) {
        let pending = &mut self.pending;
        self.builder
            .take()
            .unwrap()
            .finish(&mut |r: RawBlock| -> floe::Result<()> {
                pending.push(r);
                Ok(())
            })
            .unwrap();
        self.drain();
        for w in self.writers {
            w.finish().unwrap().0.flush().unwrap();
        }
    }
}

struct Data {
    a: PathBuf,
    a_nokeys: PathBuf,
    b: PathBuf,
    /// A random sample of keys present in `a` (about 1 in 250).
    sample: Vec<Vec<u8>>,
    records: u64,
    raw_bytes: u64,
}

fn build(dir: &Path, records: u64, seed: u64, block: u32) -> Data {
    let (a, a_nokeys, b) = (dir.join("a.floe"), dir.join("a-nokeys.floe"), dir.join("b.floe"));
    let (sample_f, meta_f) = (dir.join("sample"), dir.join("meta"));
    if let (Ok(meta), Ok(s)) = (std::fs::read_to_string(&meta_f), std::fs::read(&sample_f)) {
        let raw_bytes = meta.trim().parse().unwrap();
        return Data { a, a_nokeys, b, sample: s.chunks(16).map(<[u8]>::to_vec).collect(), records, raw_bytes };
    }
    std::fs::create_dir_all(dir).unwrap();
    eprintln!("building {records} records into {} ...", dir.display());
    let t = Instant::now();
    let mut oa = Out::new(&[(&a, true), (&a_nokeys, false)], block);
    let mut ob = Out::new(&[(&b, true)], block);
    let mut rng = Rng(seed ^ 0x9E37_79B9_7F4A_7C15);
    let mut other = Rng(seed ^ 0xB10B);
    let mut pick = Rng(seed ^ 0x5A3F);
    let mut sample = Vec::new();
    let mut raw_bytes = 0u64;
    for i in 0..records {
        let key = key_of(i, &mut rng);
        let v = value(&mut rng);
        raw_bytes += (6 + key.len() + v.len()) as u64;
        oa.put(&key, &v);
        if pick.below(250) == 0 {
            sample.extend_from_slice(&key);
        }
        match i % 1000 {
            // 1% changed, 0.1% removed, 0.1% added (a key after this one).
            m if m % 100 == 50 => ob.put(&key, &value(&mut other)),
            1 => {}
            2 => {
                ob.put(&key, &v);
                let mut added = key.clone();
                added.push(0);
                ob.put(&added, &value(&mut other));
            }
            _ => ob.put(&key, &v),
        }
    }
    oa.finish();
    ob.finish();
    std::fs::write(&sample_f, &sample).unwrap();
    std::fs::write(&meta_f, format!("{raw_bytes}\n")).unwrap();
    eprintln!("built in {:.1}s", t.elapsed().as_secs_f64());
    Data { a, a_nokeys, b, sample: sample.chunks(16).map(<[u8]>::to_vec).collect(), records, raw_bytes }
}

// ───────────────────────────── measuring ─────────────────────────────

/// A ranged source over a file's bytes that counts what is fetched (the
/// counters are shared, so the bench reads them while the archive owns the source).
struct Counting {
    map: memmap2::Mmap,
    counts: Arc<(AtomicU64, AtomicU64)>,
}

impl Counting {
    /// The source and its (bytes, requests) counters.
    fn open(p: &Path) -> (Counting, Arc<(AtomicU64, AtomicU64)>) {
        let f = File::open(p).unwrap();
        // SAFETY: read-only map of a file nobody modifies during the run.
        let map = unsafe { memmap2::Mmap::map(&f) }.unwrap();
        let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
        (Counting { map, counts: counts.clone() }, counts)
    }
}

impl Source for Counting {
    fn size(&self) -> u64 {
        self.map.len() as u64
    }
    fn fetch(&self, start: u64, len: u64) -> Fetch {
        self.counts.0.fetch_add(len, Ordering::Relaxed);
        self.counts.1.fetch_add(1, Ordering::Relaxed);
        let b = bytes::Bytes::copy_from_slice(&self.map[start as usize..(start + len) as usize]);
        Fetch::new(move || Ok(b))
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn median(v: &mut [f64]) -> f64 {
    pct(v, 0.5)
}

#[derive(Clone, Copy, Default)]
struct M {
    wall: f64,
    cpu: f64,
}

/// Runs `args` as a child of `program` with stdout to /dev/null; wall time
/// around it, CPU from wait4. Exit codes in `ok` are success.
fn run(program: &str, args: &[&str], ok: &[i32]) -> M {
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null()).stdout(File::create("/dev/null").unwrap()).stderr(Stdio::piped());
    let t = Instant::now();
    let child = cmd.spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain integers, for which all-zero bytes are valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, writing into the rusage and status we pass.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t.elapsed().as_secs_f64();
    let mut child = child;
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    std::mem::forget(child); // already reaped
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    assert!(r == pid && ok.contains(&code), "{program} {args:?} exited {code}: {err}");
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    M { wall, cpu: tv(ru.ru_utime) + tv(ru.ru_stime) }
}

/// Runs the `sides` interleaved `n` times; the median wall and CPU of each.
fn interleaved(n: usize, sides: &[&dyn Fn() -> M]) -> Vec<M> {
    let mut w: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    let mut c: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    for _ in 0..n {
        for (i, s) in sides.iter().enumerate() {
            let m = s();
            w[i].push(m.wall);
            c[i].push(m.cpu);
        }
    }
    w.iter_mut().zip(c.iter_mut()).map(|(w, c)| M { wall: median(w), cpu: median(c) }).collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn us(s: f64) -> String {
    format!("{:.0} µs", s * 1e6)
}

fn ms(s: f64) -> String {
    format!("{:.1} ms", s * 1e3)
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✅"
    } else {
        "❌"
    }
}

/// Times `f(key)` for each key; the times in seconds.
fn time_each<T>(keys: &[Vec<u8>], mut f: impl FnMut(&[u8]) -> T) -> Vec<f64> {
    keys.iter()
        .map(|k| {
            let t = Instant::now();
            std::hint::black_box(f(k));
            t.elapsed().as_secs_f64()
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let (mut scale, mut seed, mut out, mut data_dir) = (1.0f64, 42u64, None, target.join("bench-data"));
    let mut block = floe::export::DEFAULT_BLOCK_SIZE;
    let usage =
        "usage: cargo bench --bench query -- [--scale F] [--seed N] [--out FILE] [--data-dir DIR] [--block-size BYTES]";
    let mut i = 0;
    while i < args.len() {
        let val = || args.get(i + 1).cloned().unwrap_or_else(|| panic!("{} needs a value\n{usage}", args[i]));
        match args[i].as_str() {
            "--scale" => scale = val().parse().expect("--scale F"),
            "--seed" => seed = val().parse().expect("--seed N"),
            "--out" => out = Some(PathBuf::from(val())),
            "--data-dir" => data_dir = PathBuf::from(val()),
            "--block-size" => block = val().parse().expect("--block-size BYTES"),
            "-h" | "--help" => {
                println!("{usage}");
                return;
            }
            other => panic!("unknown argument {other}\n{usage}"),
        }
        i += 2;
    }
    let start = Instant::now();
    let records = ((1_000_000.0 * scale).round() as u64).max(1000);
    let d = build(&data_dir.join(format!("query-v{GENERATOR_VERSION}-{records}-{seed}-{block}")), records, seed, block);
    let (a_path, an_path, b_path) =
        (d.a.to_str().unwrap().to_owned(), d.a_nokeys.to_str().unwrap().to_owned(), d.b.to_str().unwrap().to_owned());
    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    let mut s = String::new();
    let argv = format!("cargo bench --bench query --{}", args.iter().map(|a| format!(" {a}")).collect::<String>());
    let _ = writeln!(s, "## Run: `{}`\n\n{}", argv.trim_end_matches(" --"), machine());
    let _ = writeln!(
        s,
        "Dataset: {} records in 1 keyspace, {:.0} MB raw; archive `a` {:.0} MB (with key index), `a-nokeys` {:.0} MB, `b` {:.0} MB; zstd level {}, {} KiB blocks. Warm page cache.\n",
        d.records,
        d.raw_bytes as f64 / 1e6,
        size(&d.a) as f64 / 1e6,
        size(&d.a_nokeys) as f64 / 1e6,
        size(&d.b) as f64 / 1e6,
        floe::export::DEFAULT_LEVEL,
        block >> 10,
    );

    // Keys: present (from the sample) and absent (a present key followed by
    // a 0 byte: between two keys, inside the range, in the same block).
    let mut rng = Rng(seed ^ 0x7777);
    let pick = |rng: &mut Rng, n: usize| -> Vec<Vec<u8>> {
        (0..n).map(|_| d.sample[rng.below(d.sample.len() as u64) as usize].clone()).collect()
    };
    let absent_of = |ks: &[Vec<u8>]| -> Vec<Vec<u8>> {
        ks.iter()
            .map(|k| {
                let mut a = k.clone();
                a.push(0);
                a
            })
            .collect()
    };

    // ── in process ──
    eprintln!("in-process get ...");
    let a = Archive::open(&d.a).unwrap();
    let blocks = a.index().blocks.len();
    let mean_frame = a.index().blocks.iter().map(|b| u64::from(b.frame_len)).sum::<u64>() as f64 / blocks as f64;
    let max_frame = a.index().blocks.iter().map(|b| b.frame_len).max().unwrap_or(0);
    let mut buf = Vec::new();
    a.read_block(0, &mut buf).unwrap(); // warm
    let present = pick(&mut rng, 1000);
    let absent = absent_of(&pick(&mut rng, 1000));
    assert!(a.get(KS, &present[0]).unwrap().is_some(), "a sampled key is missing");
    assert!(a.get(KS, &absent[0]).unwrap().is_none(), "an absent key was found");
    // Interleaved: one block decompression, one present get, one absent get.
    let (mut dec, mut gp, mut ga) = (Vec::new(), Vec::new(), Vec::new());
    for (p, q) in present.iter().zip(&absent) {
        let i = rng.below(blocks as u64) as usize;
        let t = Instant::now();
        a.read_block(i, &mut buf).unwrap();
        dec.push(t.elapsed().as_secs_f64());
        gp.extend(time_each(std::slice::from_ref(p), |k| a.get(KS, k).unwrap()));
        ga.extend(time_each(std::slice::from_ref(q), |k| a.get(KS, k).unwrap()));
    }
    let (dec50, dec99) = (pct(&mut dec, 0.5), pct(&mut dec, 0.99));
    let (gp50, gp99, ga50, ga99) = (pct(&mut gp, 0.5), pct(&mut gp, 0.99), pct(&mut ga, 0.5), pct(&mut ga, 0.99));
    // Opening: in process, and open + first get (loads the key index).
    let mut open_t = Vec::new();
    let mut open_get_t = Vec::new();
    for k in present.iter().take(20) {
        let t = Instant::now();
        let x = Archive::open(&d.a).unwrap();
        open_t.push(t.elapsed().as_secs_f64());
        x.get(KS, k).unwrap();
        open_get_t.push(t.elapsed().as_secs_f64());
    }
    let (open50, open_get50) = (median(&mut open_t), median(&mut open_get_t));

    // Bytes per get through a counting (ranged) source.
    let counted = |path: &Path, keys: &[Vec<u8>]| -> (u64, u64, f64, u64, f64) {
        let (src, c) = Counting::open(path);
        let arch = Archive::from_bytes(src, "counted").unwrap();
        let source_counts = |_: &Archive<Counting>| (c.0.load(Ordering::Relaxed), c.1.load(Ordering::Relaxed));
        let opened = source_counts(&arch);
        arch.get(KS, &keys[0]).unwrap();
        let after_first = source_counts(&arch);
        let mut per = Vec::new();
        let mut reqs = Vec::new();
        for k in &keys[1..] {
            let b0 = source_counts(&arch);
            arch.get(KS, k).unwrap();
            let b1 = source_counts(&arch);
            per.push((b1.0 - b0.0) as f64);
            reqs.push((b1.1 - b0.1) as f64);
        }
        let max = per.iter().copied().fold(0.0, f64::max) as u64;
        let mean = per.iter().sum::<f64>() / per.len() as f64;
        (opened.0, after_first.0 - opened.0, mean, max, reqs.iter().sum::<f64>() / reqs.len() as f64)
    };
    let mixed: Vec<Vec<u8>> = present.iter().take(100).chain(absent.iter().take(100)).cloned().collect();
    let (open_bytes, keyidx_bytes, bytes_mean, bytes_max, reqs_mean) = counted(&d.a, &mixed);

    // Fallback: no key index.
    eprintln!("fallback get ...");
    let an = Archive::open(&d.a_nokeys).unwrap();
    let fb_present = pick(&mut rng, 30);
    let fb_absent = absent_of(&pick(&mut rng, 30));
    let mut fp = time_each(&fb_present, |k| an.get(KS, k).unwrap());
    let mut fa = time_each(&fb_absent, |k| an.get(KS, k).unwrap());
    let (fp50, fp99, fa50) = (pct(&mut fp, 0.5), pct(&mut fp, 0.99), pct(&mut fa, 0.5));
    let fb_mixed: Vec<Vec<u8>> = fb_present.iter().take(10).chain(fb_absent.iter().take(10)).cloned().collect();
    let (_, _, fb_bytes_mean, fb_bytes_max, _) = counted(&d.a_nokeys, &fb_mixed);
    drop((a, an));

    // ── whole process ──
    eprintln!("whole-process get vs inspect ...");
    // The absent key follows the present one (same block): the two gets differ only in the answer.
    let (kp, ka) = (hex(&present[1]), format!("{}00", hex(&present[1])));
    let get_inspect = interleaved(
        15,
        &[
            &|| run(FLOE, &["get", "--hex", &a_path, KS, &kp], &[0]),
            &|| run(FLOE, &["get", "--hex", &a_path, KS, &ka], &[7]),
            &|| run(FLOE, &["inspect", &a_path], &[0]),
        ],
    );
    let fb_get = interleaved(3, &[&|| run(FLOE, &["get", "--hex", &an_path, KS, &kp], &[0])]);
    eprintln!("cat vs verify ...");
    let cat_verify = interleaved(
        3,
        &[&|| run(FLOE, &["cat", &a_path], &[0]), &|| run(FLOE, &["verify", "-q", &a_path], &[0]), &|| {
            run(FLOE, &["cat", "--format", "tsv", &a_path], &[0])
        }],
    );
    eprintln!("diff vs verify A + verify B ...");
    let diff_verify = interleaved(
        3,
        &[&|| run(FLOE, &["diff", &a_path, &b_path], &[7]), &|| run(FLOE, &["verify", "-q", &a_path], &[0]), &|| {
            run(FLOE, &["verify", "-q", &b_path], &[0])
        }],
    );

    // ── report ──
    let (g, gabs, ins) = (get_inspect[0], get_inspect[1], get_inspect[2]);
    let (cat, ver, tsv) = (cat_verify[0], cat_verify[1], cat_verify[2]);
    let (diff, va, vb) = (diff_verify[0], diff_verify[1], diff_verify[2]);
    let block_on_disk = mean_frame + BLOCK_HEADER_LEN as f64;
    let _ = writeln!(s, "### Targets (same run)\n\n| ratio | target | measured | |\n|---|---|---|---|");
    let r1 = g.wall / ins.wall;
    let _ = writeln!(
        s,
        "| `floe get` wall / `floe inspect` wall (present key; median of 15, interleaved) | ≤ 2 | {:.2} ({} / {}) | {} |",
        r1,
        ms(g.wall),
        ms(ins.wall),
        mark(r1 <= 2.0)
    );
    let _ = writeln!(
        s,
        "| in-process `get` p50, present keys, vs 1 block decompression (p50 {}) + 50 µs | ≤ {} | {} (p99 {}; {:+.0} µs over the decompression) | {} |",
        us(dec50),
        us(dec50 + 50e-6),
        us(gp50),
        us(gp99),
        (gp50 - dec50) * 1e6,
        mark(gp50 <= dec50 + 50e-6)
    );
    let _ = writeln!(
        s,
        "| in-process `get` p50, absent keys inside the range | ≤ {} | {} (p99 {}; {:+.0} µs) | {} |",
        us(dec50 + 50e-6),
        us(ga50),
        us(ga99),
        (ga50 - dec50) * 1e6,
        mark(ga50 <= dec50 + 50e-6)
    );
    let _ = writeln!(
        s,
        "| bytes fetched per `get` (ranged source; mean, max) / one block on disk ({:.0} B mean, {} B max) | ≤ 1 | {:.2} (mean {:.0} B, max {} B, {:.2} requests) | {} |",
        block_on_disk,
        u64::from(max_frame) + BLOCK_HEADER_LEN as u64,
        bytes_max as f64 / (f64::from(max_frame) + BLOCK_HEADER_LEN as f64),
        bytes_mean,
        bytes_max,
        reqs_mean,
        mark(bytes_max <= u64::from(max_frame) + BLOCK_HEADER_LEN as u64)
    );
    let r4 = ver.wall / cat.wall;
    let _ = writeln!(
        s,
        "| `cat` throughput / `verify` throughput (= verify wall / cat wall; median of 3) | ≥ 0.5 | {:.2} (cat {:.2} s, verify {:.2} s) | {} |",
        r4,
        cat.wall,
        ver.wall,
        mark(r4 >= 0.5)
    );
    let r5 = diff.wall / (va.wall + vb.wall);
    let _ = writeln!(
        s,
        "| `diff A B` wall / (`verify A` + `verify B`) (median of 3) | ≤ 1.5 | {:.2} (diff {:.2} s, verify {:.2} + {:.2} s) | {} |",
        r5,
        diff.wall,
        va.wall,
        vb.wall,
        mark(r5 <= 1.5)
    );
    let _ = writeln!(s, "\n### Fallback: no key index (`a-nokeys`, what a 1.0 archive costs)\n");
    let _ = writeln!(s, "| | value |\n|---|---|");
    let _ = writeln!(s, "| in-process `get` p50, present keys (30) | {} (p99 {}) |", ms(fp50), ms(fp99));
    let _ = writeln!(s, "| in-process `get` p50, absent keys (30) | {} |", ms(fa50));
    let _ = writeln!(s, "| the same with the key index (p50) | {} |", us(gp50));
    let _ = writeln!(s, "| fallback / key index, p50 | {:.0}× |", fp50 / gp50);
    let _ = writeln!(
        s,
        "| bytes fetched per fallback `get` (ranged; mean, max) | {:.1} MB, {:.1} MB ({:.1} blocks on average) |",
        fb_bytes_mean / 1e6,
        bytes_max_mb(fb_bytes_max),
        fb_bytes_mean / block_on_disk
    );
    let _ = writeln!(s, "| whole-process `floe get` (median of 3) | {} |", ms(fb_get[0].wall));
    let _ = writeln!(s, "| keyspace blocks (the scan reads half on average) | {blocks} |");
    let _ = writeln!(s, "\n### Details\n\n| measurement | wall | CPU |\n|---|---|---|");
    for (what, m) in [
        ("`floe get` present key (median of 15)", g),
        ("`floe get` absent key, exit 7 (median of 15)", gabs),
        ("`floe inspect` (median of 15)", ins),
        ("`floe cat` jsonl > /dev/null (median of 3)", cat),
        ("`floe cat --format tsv` > /dev/null (median of 3)", tsv),
        ("`floe verify a` (median of 3, twice)", M { wall: (ver.wall + va.wall) / 2.0, cpu: (ver.cpu + va.cpu) / 2.0 }),
        ("`floe verify b` (median of 3)", vb),
        ("`floe diff a b`, exit 7 (median of 3)", diff),
    ] {
        let _ = writeln!(s, "| {what} | {} | {:.3} s |", ms(m.wall), m.cpu);
    }
    let _ = writeln!(
        s,
        "| `cat` throughput, raw MB/s (jsonl, tsv) | {:.0}, {:.0} MB/s | |",
        d.raw_bytes as f64 / 1e6 / cat.wall,
        d.raw_bytes as f64 / 1e6 / tsv.wall
    );
    let _ = writeln!(s, "| `verify` throughput, raw MB/s | {:.0} MB/s | |", d.raw_bytes as f64 / 1e6 / ver.wall);
    let _ = writeln!(
        s,
        "| `Archive::read_block` (decompress one block; 1000 random, p50 / p99) | {} / {} | |",
        us(dec50),
        us(dec99)
    );
    let _ = writeln!(s, "| `Archive::open` in process (median of 20) | {} | |", us(open50));
    let _ = writeln!(s, "| `Archive::open` + first `get` (loads the key index; median of 20) | {} | |", us(open_get50));
    let _ = writeln!(
        s,
        "| ranged source: bytes fetched by open; by the first get's key index load | {open_bytes} B; {keyidx_bytes} B (incl. that get's block) | |"
    );
    let _ = writeln!(s, "| blocks; mean compressed block on disk | {blocks}; {block_on_disk:.0} B | |");
    // Bloom filter decision data.
    let _ = writeln!(s, "\n### Bloom filter decision data (absent key inside the range)\n");
    let _ = writeln!(s, "| | value |\n|---|---|");
    let _ = writeln!(
        s,
        "| in-process absent `get` p50; of which one block decompression (p50) | {}; {} ({:.0}%) |",
        us(ga50),
        us(dec50),
        100.0 * dec50 / ga50
    );
    let _ = writeln!(
        s,
        "| in-process open + first get; of which the decompression | {}; {:.0}% |",
        us(open_get50),
        100.0 * dec50 / open_get50
    );
    let _ = writeln!(
        s,
        "| whole-process absent `floe get`; of which the decompression; of which inspect (opening) | {}; {:.0}%; {:.0}% |",
        ms(gabs.wall),
        100.0 * dec50 / gabs.wall,
        100.0 * ins.wall / gabs.wall
    );
    let _ = writeln!(
        s,
        "| bytes a filter would save per miss on a ranged source (one block) | {block_on_disk:.0} B mean |"
    );
    let _ = writeln!(s, "\nTotal harness time {:.0}s.", start.elapsed().as_secs_f64());
    println!("{s}");
    if let Some(p) = &out {
        std::fs::write(p, &s).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        eprintln!("report written to {}", p.display());
    }
}

fn bytes_max_mb(b: u64) -> f64 {
    b as f64 / 1e6
}
