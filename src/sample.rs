//! A deterministic, realistic sample database (for `floe demo`, tests and
//! benchmarks): several keyspaces, binary keys, a spread of value sizes, a
//! key-value-separated keyspace with multi-MiB values, an empty keyspace and
//! non-default options.

use crate::engine;
use crate::format::options::{Compaction, KeyspaceOptions};
use crate::{EngineError, Result};
use fjall::{Database, Keyspace, Readable};
use std::path::Path;

/// splitmix64: a tiny deterministic generator.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn fill(&mut self, b: &mut [u8]) {
        for c in b.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const WORDS: [&str; 16] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
    "mike", "november", "oscar", "papa",
];

/// A text-like value of about `len` bytes (compresses roughly like JSON).
pub fn texty(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 16);
    v.extend_from_slice(b"{\"id\":");
    v.extend_from_slice(rng.next_u64().to_string().as_bytes());
    while v.len() < len {
        v.extend_from_slice(b",\"");
        v.extend_from_slice(WORDS[rng.below(16) as usize].as_bytes());
        v.extend_from_slice(b"\":");
        v.extend_from_slice(rng.below(100_000).to_string().as_bytes());
    }
    v.truncate(len);
    v
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct SampleStats {
    pub keyspaces: usize,
    pub records: u64,
    pub logical_bytes: u64,
}

fn fj<T>(r: fjall::Result<T>, path: &Path, action: &str) -> Result<T> {
    r.map_err(|e| EngineError::Fjall { path: path.to_path_buf(), action: action.into(), source: e }.into())
}

/// Builds the sample database in `dir` with about `records` small records
/// (plus a few large values). Deterministic for a given `records`.
pub fn build_sample(dir: &Path, records: u64) -> Result<SampleStats> {
    let db = engine::create_new(dir)?;
    let mut rng = Rng(0x5EED_F10E);
    let mut st = SampleStats::default();
    let act = "building the sample database";
    // Keyspaces are created with options in the format's terms, which the
    // engine adapter turns into fjall's.
    let create = |name: &str, o: KeyspaceOptions| -> Result<Keyspace> {
        let (c, _) = engine::create_options(name, &o)?;
        fj(db.keyspace(name, || c), dir, act)
    };

    let accounts = create("accounts", KeyspaceOptions::default())?;
    let n_acc = records * 3 / 10;
    for i in 0..n_acc {
        let mut key = b"acct:".to_vec();
        key.extend_from_slice(&(i * 7919 % n_acc.max(1)).to_be_bytes());
        let len = 120 + rng.below(200) as usize;
        let v = texty(&mut rng, len);
        st.logical_bytes += (key.len() + v.len()) as u64;
        fj(accounts.insert(key, v), dir, act)?;
    }

    let events = create("events", KeyspaceOptions { data_block_size: Some(vec![16 * 1024]), ..Default::default() })?;
    let n_ev = records - n_acc;
    for i in 0..n_ev {
        let mut key = Vec::with_capacity(12);
        key.extend_from_slice(&(1_700_000_000_000u64 + i * 13).to_be_bytes());
        key.extend_from_slice(&(rng.next_u64() as u32).to_be_bytes());
        let len = 20 + rng.below(400) as usize;
        let mut v = texty(&mut rng, len / 2);
        let mut noise = vec![0u8; len - len / 2];
        rng.fill(&mut noise);
        v.extend_from_slice(&noise);
        st.logical_bytes += (key.len() + v.len()) as u64;
        fj(events.insert(key, v), dir, act)?;
    }
    // Overwrites, so the snapshot differs from the write history.
    for i in (0..n_acc).step_by(97) {
        let mut key = b"acct:".to_vec();
        key.extend_from_slice(&i.to_be_bytes());
        fj(accounts.insert(key, texty(&mut rng, 64)), dir, act)?;
    }

    let blobs = create(
        "blobs",
        KeyspaceOptions { kv_separation: Some(engine::default_kv_separation()), ..Default::default() },
    )?;
    let n_blobs = (records / 2000).clamp(3, 200);
    for i in 0..n_blobs {
        let len = match i % 4 {
            0 => 6 << 20, // larger than a default (1 MiB) archive block: spans blocks
            1 => 512 << 10,
            2 => 64 << 10,
            _ => 1 + rng.below(2 << 20) as usize,
        };
        let mut v = texty(&mut rng, len / 2);
        let mut noise = vec![0u8; len - v.len()];
        rng.fill(&mut noise);
        v.extend_from_slice(&noise);
        let key = format!("blob/{i:06}").into_bytes();
        st.logical_bytes += (key.len() + v.len()) as u64;
        fj(blobs.insert(key, v), dir, act)?;
    }

    let edge = create(
        "edge-cases",
        KeyspaceOptions {
            compaction: Some(Compaction::Fifo { limit_bytes: 1 << 30, ttl_seconds: None }),
            ..Default::default()
        },
    )?;
    let edge_keys: Vec<Vec<u8>> = vec![
        vec![0x00],
        vec![0x00, 0x00],
        vec![0x00, 0xFF],
        vec![0x7F; 300],
        vec![0xFF; 65_535],
        b"\xF0\x9F\x90\x9F fish".to_vec(),
    ];
    for k in &edge_keys {
        st.logical_bytes += k.len() as u64;
        fj(edge.insert(k.clone(), Vec::<u8>::new()), dir, act)?;
    }
    fj(edge.insert(b"deleted-later".to_vec(), b"x".to_vec()), dir, act)?;
    fj(edge.remove(b"deleted-later".to_vec()), dir, act)?;

    create("empty", KeyspaceOptions::default())?;
    fj(db.persist(fjall::PersistMode::SyncAll), dir, act)?;
    st.keyspaces = 5;
    st.records = n_acc + n_ev + n_blobs + edge_keys.len() as u64;
    Ok(st)
}

/// Compares two databases: same keyspace names, options and records.
/// Returns the number of records compared, or a description of the first difference.
pub fn compare_databases(a: &Database, b: &Database) -> std::result::Result<u64, String> {
    let na = engine::keyspace_names(a);
    let nb = engine::keyspace_names(b);
    if na != nb {
        return Err(format!("keyspaces differ: {na:?} vs {nb:?}"));
    }
    let (sa, sb) = (a.snapshot(), b.snapshot());
    let mut n = 0u64;
    for name in &na {
        let ka = engine::open_keyspace(a, Path::new("<first database>"), name).map_err(|e| e.to_string())?;
        let kb = engine::open_keyspace(b, Path::new("<second database>"), name).map_err(|e| e.to_string())?;
        if engine::options_of(&ka) != engine::options_of(&kb) {
            return Err(format!("keyspace '{name}': options differ"));
        }
        let mut ia = sa.iter(&ka);
        let mut ib = sb.iter(&kb);
        loop {
            match (ia.next(), ib.next()) {
                (None, None) => break,
                (Some(x), Some(y)) => {
                    let x = x.into_inner().map_err(|e| e.to_string())?;
                    let y = y.into_inner().map_err(|e| e.to_string())?;
                    if x != y {
                        return Err(format!(
                            "keyspace '{name}': record #{n} differs (key {:?} vs {:?})",
                            &x.0[..x.0.len().min(16)],
                            &y.0[..y.0.len().min(16)]
                        ));
                    }
                    n += 1;
                }
                _ => return Err(format!("keyspace '{name}': record counts differ")),
            }
        }
    }
    Ok(n)
}
