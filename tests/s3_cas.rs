//! The manifest's compare-and-swap on a real S3-compatible server (moto):
//! writers that publish at the same time, with no lock, never lose each
//! other's entries (create-only writes of numbered generations, If-None-Match).
//! One test in its own binary: it sets the AWS_* environment of this process.
//! moto only: the disk-backed s3s-fs checks `If-None-Match: *` and then
//! writes, not atomically, so there concurrent create-only writes can both
//! succeed (tests/s3/mod.rs; README, "Object stores").
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod s3;

use floe::backup::Repo;
use serde_json::json;

#[test]
fn concurrent_publishers_without_a_lock_lose_no_entry() {
    let Some(m) = s3::moto() else { return };
    m.create_bucket("casrepo");
    for (k, v) in m.env() {
        std::env::set_var(k, v);
    }
    let (writers, each) = (4, 5);
    std::thread::scope(|s| {
        for w in 0..writers {
            s.spawn(move || {
                let repo = Repo::open("s3://casrepo/repo").unwrap();
                for i in 0..each {
                    let id = format!("w{w}-{i}");
                    let entry = json!({"id": id, "created_unix": 1000 + i, "object": format!("snapshots/{id}.floe"), "size": 1, "sha256": "0".repeat(64)});
                    let entry: floe::backup::Entry = serde_json::from_value(entry).unwrap();
                    repo.publish("test", |m| {
                        m.doc.snapshots.push(entry.clone());
                        Ok(())
                    })
                    .unwrap();
                }
            });
        }
    });
    let repo = Repo::open("s3://casrepo/repo").unwrap();
    let m = repo.manifest().unwrap();
    let mut ids: Vec<String> = m.snapshots(repo.url()).unwrap().into_iter().map(|s| s.id).collect();
    ids.sort();
    let mut want: Vec<String> = (0..writers).flat_map(|w| (0..each).map(move |i| format!("w{w}-{i}"))).collect();
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(m.generation, (writers * each) as u64);
}
