//! Format-spec §12: the same contents give byte-identical archives whatever the
//! thread count (library and CLI with SOURCE_DATE_EPOCH), and databases with the
//! same contents but different write histories differ only in the volatile
//! header fields.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod common;

use common::*;
use fjall::KeyspaceCreateOptions;
use floe::format::section::decode_section;
use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn thread_count_does_not_change_the_bytes() {
    let dir = tempdir();
    let m = small_model(3000, 11);
    let kv: BTreeSet<String> = ["beta".to_owned()].into();
    let db = create_db(&dir.path().join("db"), &m, &kv);
    for bs in [4096u32, 65_536] {
        let one = export_bytes(&db, &opts(bs, 1));
        for threads in [2, 3, 0] {
            let other = export_bytes(&db, &opts(bs, threads));
            assert!(one == other, "block size {bs}: threads=1 and threads={threads} differ");
        }
        let a = floe::read::Archive::from_bytes(one.as_slice(), "a").unwrap();
        assert!(a.index().blocks.len() > 3);
    }
}

#[test]
fn cli_with_source_date_epoch_is_reproducible() {
    let dir = tempdir();
    let m = small_model(2000, 12);
    let src = make_db_dir(&dir.path().join("db"), &m, &BTreeSet::new());
    let run = |out: &str, threads: &str| {
        let f = dir.path().join(out);
        let o = Command::new(floe_bin())
            .args(["export", "-q", p(&src), "-o", p(&f), "-t", threads, "--block-size", "8192"])
            .env("SOURCE_DATE_EPOCH", "1234567890")
            .output()
            .unwrap();
        assert_code(&o, 0);
        std::fs::read(f).unwrap()
    };
    let a = run("a.floe", "1");
    let b = run("b.floe", "2");
    let c = run("c.floe", "0");
    assert!(a == b && b == c, "CLI exports differ between thread counts");
    let h = floe::format::header::Header::decode(&decode_section(&a, 0).unwrap()).unwrap();
    assert_eq!(h.created_unix, 1_234_567_890);
    assert_eq!(h.block_target, 8192);
    // Streaming to stdout gives the same bytes as writing a file.
    let o = Command::new(floe_bin())
        .args(["export", "-q", p(&src), "-o", "-", "-t", "2", "--block-size", "8192"])
        .env("SOURCE_DATE_EPOCH", "1234567890")
        .output()
        .unwrap();
    assert_code(&o, 0);
    assert!(o.stdout == a, "stdout export differs from file export");
}

/// Same contents, different history (insertion order, overwrites, deletes,
/// flushes to disk): equal after the header; headers equal except volatile fields.
#[test]
fn write_history_only_changes_volatile_fields() {
    let dir = tempdir();
    let m = small_model(1500, 13);
    let db1 = create_db(&dir.path().join("one"), &m, &BTreeSet::new());
    let db2 = open_db(&dir.path().join("two"));
    // Reverse order, with junk written and removed, and flushed in between.
    for (name, recs) in m.iter().rev() {
        let ks = db2.keyspace(name, KeyspaceCreateOptions::default).unwrap();
        for (i, (k, v)) in recs.iter().rev().enumerate() {
            ks.insert(k.clone(), b"junk".to_vec()).unwrap();
            if i % 3 == 0 {
                ks.insert(b"zzz-temporary".to_vec(), v.clone()).unwrap();
                ks.remove(b"zzz-temporary".to_vec()).unwrap();
            }
            ks.insert(k.clone(), v.clone()).unwrap();
        }
        ks.rotate_memtable_and_wait().unwrap();
    }
    let a = export_bytes(&db1, &opts(4096, 2));
    let b = export_bytes(&db2, &opts(4096, 1));
    let ha = decode_section(&a, 0).unwrap();
    let hb = decode_section(&b, 0).unwrap();
    assert_eq!(ha.total_len, hb.total_len);
    let n = ha.total_len as usize;
    assert!(a[n..] == b[n..], "archives differ after the header");
    let mut xa = floe::format::header::Header::decode(&ha).unwrap();
    let mut xb = floe::format::header::Header::decode(&hb).unwrap();
    assert_ne!(xa.snapshot_seqno, xb.snapshot_seqno, "test should produce different histories");
    xa.snapshot_seqno = 0;
    xb.snapshot_seqno = 0;
    assert_eq!(xa, xb);
}
