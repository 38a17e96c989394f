//! Online export (`export_database` on the application's own handle) while
//! writer threads keep inserting, overwriting and deleting. The archive must
//! hold exactly one snapshot:
//!
//! * "generation" writer: every batch (atomic across keyspaces) rewrites every
//!   key of keyspaces a, b, c with its generation number, deletes the keys
//!   that generation leaves out, and sets a marker key. The archive must show
//!   one single generation in every key of every keyspace, exactly that
//!   generation's key set, and a generation that was committed no earlier than
//!   before the export started and no later than when it ended.
//! * "sliding window" writer: separate single-key writes into keyspace `log`,
//!   insert i then delete i-W. Any snapshot shows a contiguous run of keys.
//!
//! To make sure the export really overlaps the writers, the progress callback
//! waits for the generation writer to commit new batches while the export is
//! in flight (the export's producers then read the snapshot after those
//! commits). Repeated `ROUNDS` (30) times, alternating 1 and 2 export threads.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use fjall::{Database, KeyspaceCreateOptions};
use floe::export::export_database;
use floe::progress::ProgressInfo;
use floe::read::Archive;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEYS: u64 = 400;
const WINDOW: u64 = 50;
const KS: [&str; 3] = ["a", "b", "c"];
/// Exports taken while the writers run.
const ROUNDS: usize = 30;

fn key(i: u64) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

/// Whether key i exists in generation g (some keys are deleted each generation).
fn present(i: u64, g: u64) -> bool {
    !(i * 7 + g).is_multiple_of(5)
}

fn value(g: u64, i: u64, ks: usize) -> Vec<u8> {
    let mut v = g.to_be_bytes().to_vec();
    // Padding so that each keyspace spans many 4 KiB blocks.
    v.extend(std::iter::repeat_n((i as u8) ^ (ks as u8), 40 + (i % 60) as usize));
    v
}

fn commit_generation(db: &Database, ks: &[fjall::Keyspace], meta: &fjall::Keyspace, g: u64) {
    let mut b = db.batch();
    for (k, h) in ks.iter().enumerate() {
        for i in 0..KEYS {
            if present(i, g) {
                b.insert(h, key(i), value(g, i, k));
            } else {
                b.remove(h, key(i));
            }
        }
    }
    b.insert(meta, b"generation".to_vec(), g.to_be_bytes().to_vec());
    b.commit().unwrap();
}

/// Checks one exported archive; returns its generation.
fn check_archive(bytes: &[u8], before: u64, after: u64) -> u64 {
    let a = Archive::from_bytes(bytes, "online").unwrap();
    a.verify(false, &floe::progress::NoProgress).unwrap();
    let mut m = Model::new();
    for (k, e) in a.keyspaces().iter().enumerate() {
        let mut recs = BTreeMap::new();
        a.for_each_record(k, true, None, |key, v| {
            recs.insert(key.to_vec(), v.unwrap().to_vec());
            Ok(())
        })
        .unwrap();
        m.insert(e.name.clone(), recs);
    }
    let g = u64::from_be_bytes(m["meta"][&b"generation".to_vec()].as_slice().try_into().unwrap());
    assert!(g >= before && g <= after, "archive generation {g} outside the export's window {before}..={after}");
    for (k, name) in KS.iter().enumerate() {
        let recs = &m[*name];
        let mut gens = BTreeSet::new();
        for (kk, v) in recs {
            gens.insert(u64::from_be_bytes(v[..8].try_into().unwrap()));
            let i: u64 = std::str::from_utf8(&kk[3..]).unwrap().parse().unwrap();
            assert_eq!(v, &value(g, i, k), "keyspace {name}: key {i} has a value from another generation or garbled");
        }
        assert_eq!(gens, BTreeSet::from([g]), "keyspace {name}: several generations in one archive");
        let want: BTreeSet<Vec<u8>> = (0..KEYS).filter(|&i| present(i, g)).map(key).collect();
        let got: BTreeSet<Vec<u8>> = recs.keys().cloned().collect();
        assert_eq!(got, want, "keyspace {name}: key set is not generation {g}'s (deletes not atomic with the batch)");
    }
    // The sliding window: contiguous keys, W or W+1 of them (or fewer at the start).
    let log: Vec<u64> = m["log"].keys().map(|k| u64::from_be_bytes(k.as_slice().try_into().unwrap())).collect();
    for w in log.windows(2) {
        assert_eq!(w[1], w[0] + 1, "log keyspace has a gap: not a single snapshot");
    }
    assert!(log.len() as u64 <= WINDOW + 1, "log holds {} keys: deletes missing", log.len());
    if let Some(&first) = log.first() {
        if first > 0 {
            assert!(log.len() as u64 >= WINDOW, "log holds only {} keys after key {first}", log.len());
        }
    }
    g
}

#[test]
fn online_export_sees_exactly_one_snapshot() {
    let dir = tempdir();
    let db = open_db(&dir.path().join("db"));
    let handles: Vec<fjall::Keyspace> =
        KS.iter().map(|n| db.keyspace(n, KeyspaceCreateOptions::default).unwrap()).collect();
    let meta = db.keyspace("meta", KeyspaceCreateOptions::default).unwrap();
    let log = db.keyspace("log", KeyspaceCreateOptions::default).unwrap();
    commit_generation(&db, &handles, &meta, 1);

    let committed = Arc::new(AtomicU64::new(1));
    let stop = Arc::new(AtomicBool::new(false));
    let gen_writer = {
        let (db, handles, meta, committed, stop) =
            (db.clone(), handles.clone(), meta.clone(), committed.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut g = 1;
            while !stop.load(Ordering::SeqCst) {
                g += 1;
                commit_generation(&db, &handles, &meta, g);
                committed.store(g, Ordering::SeqCst);
            }
        })
    };
    let log_writer = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                log.insert(i.to_be_bytes(), b"x").unwrap();
                if i >= WINDOW {
                    log.remove((i - WINDOW).to_be_bytes()).unwrap();
                }
                i += 1;
            }
            i
        })
    };

    let mut overlapped = 0;
    let mut generations = Vec::new();
    for round in 0..ROUNDS {
        let before = committed.load(Ordering::SeqCst);
        let calls = AtomicU64::new(0);
        // Hold the export until the writer has committed more batches, on the
        // first few progress reports (bounded wait, never cancels).
        let progress = |_: &ProgressInfo| -> bool {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if n < 2 {
                let want = committed.load(Ordering::SeqCst) + 1;
                let t = Instant::now();
                while committed.load(Ordering::SeqCst) < want && t.elapsed() < Duration::from_secs(10) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            true
        };
        let o = {
            let mut o = opts(4096, 1);
            o.threads = 1 + round % 2;
            o
        };
        let (bytes, summary) = export_database(&db, Vec::new(), &o, &progress).unwrap();
        let after = committed.load(Ordering::SeqCst);
        assert!(summary.write.blocks > 24, "too few blocks ({}) to interleave with writers", summary.write.blocks);
        let g = check_archive(&bytes, before, after);
        if after > g {
            overlapped += 1;
        }
        generations.push((before, g, after));
    }
    stop.store(true, Ordering::SeqCst);
    gen_writer.join().unwrap();
    let logged = log_writer.join().unwrap();
    eprintln!("rounds (committed before, archived, committed after): {generations:?}; log writes: {logged}");
    // The writers really ran during the exports: newer generations were
    // committed while every export was still reading its snapshot.
    assert_eq!(overlapped, ROUNDS, "{generations:?}");
    assert!(logged > WINDOW, "log writer barely ran ({logged})");

    // The live database afterwards still exports and round-trips consistently.
    let bytes = export_bytes(&db, &opts(4096, 2));
    let g = committed.load(Ordering::SeqCst);
    check_archive(&bytes, g, g);
}
