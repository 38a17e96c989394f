//! The fjall engine adapter: opening databases, reading keyspace options into
//! the format's engine-independent form and back, snapshot iteration, and
//! bulk ingestion. No other module of the library names fjall's option types
//! (`KeyspaceCreateOptions`, `KvSeparationOptions`, `fjall::config::*`):
//! they describe options in the format's terms ([`KeyspaceOptions`]) and hand
//! fjall what [`create_options`] built, or open keyspaces through
//! [`open_keyspace`]. (Tests, benchmarks and examples use fjall directly, as
//! an application does.)

use crate::error::EngineError;
use crate::format::options::{Compaction, Compression, FilterEntry, KeyspaceOptions, KvSeparation, OptionsJsonError};
use fjall::config::{
    BlockSizePolicy, BloomConstructionPolicy, CompressionPolicy, FilterPolicy, FilterPolicyEntry, HashRatioPolicy,
    PinningPolicy, RestartIntervalPolicy,
};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions};
use std::path::Path;
use std::sync::Arc;

/// Engine name written into archive headers.
pub const ENGINE_NAME: &str = "fjall";
/// fjall version this build links.
pub const ENGINE_VERSION: &str = env!("FLOE_FJALL_VERSION");

fn fjall_err(path: &Path, action: &str, e: fjall::Error) -> EngineError {
    if matches!(e, fjall::Error::Locked) {
        EngineError::Locked { path: path.to_path_buf() }
    } else {
        EngineError::Fjall { path: path.to_path_buf(), action: action.to_owned(), source: e }
    }
}

/// Runs an engine call, turning a panic into an error (fjall asserts on some inputs;
/// floe validates first, this is the last line of defence).
pub(crate) fn guarded<T>(path: &Path, action: &str, f: impl FnOnce() -> fjall::Result<T>) -> Result<T, EngineError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(|e| fjall_err(path, action, e)),
        Err(p) => {
            let message = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(EngineError::Panicked { path: path.to_path_buf(), action: action.to_owned(), message })
        }
    }
}

/// Opens an existing database for export. Refuses a path that holds no fjall
/// database (fjall would create one, and export must not touch its source).
pub fn open_existing(path: &Path) -> Result<Database, EngineError> {
    if !path.join("version").is_file() {
        let what = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist".to_owned(),
            Err(e) => format!("cannot be read ({e})"),
            Ok(m) if m.is_file() => "is a file, not a database directory (is it an archive? use floe import)".into(),
            Ok(m) if m.is_dir() => "is a directory but not a fjall database (it has no 'version' file)".into(),
            Ok(_) => "is not a directory".into(),
        };
        return Err(EngineError::NotADatabase { path: path.to_path_buf(), what });
    }
    guarded(path, "opening the source database", || Database::builder(path).open())
}

/// Creates a new database at `path` (an empty directory) for import.
pub fn create_new(path: &Path) -> Result<Database, EngineError> {
    guarded(path, "creating the target database", || Database::builder(path).open())
}

/// All keyspace names, sorted by bytes.
pub fn keyspace_names(db: &Database) -> Vec<String> {
    let mut v: Vec<String> = db.list_keyspace_names().iter().map(|n| n.to_string()).collect();
    v.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    v
}

/// What fjall knows of a keyspace's size without reading it: an estimate
/// for progress reporting, not a count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SizeEstimate {
    /// Bytes of its tables (and blob files) on disk: compressed, so raw
    /// record bytes are usually more.
    pub disk_bytes: u64,
    /// Bytes in its active memtable (not yet on disk; fjall's approximation).
    pub memtable_bytes: u64,
    /// Items in tables and memtables, counting overwritten versions and
    /// tombstones, so the live records are usually fewer.
    pub items: u64,
}

/// fjall's approximate size of `ks` (cheap: table metadata and memtable counters).
pub fn size_estimate(ks: &Keyspace) -> SizeEstimate {
    use fjall::AbstractTree;
    SizeEstimate {
        disk_bytes: ks.disk_space(),
        memtable_bytes: ks.tree.active_memtable().size(),
        items: ks.approximate_len() as u64,
    }
}

fn comp_to(c: &CompressionType) -> Compression {
    match c {
        CompressionType::None => Compression::None,
        #[allow(unreachable_patterns)]
        _ => Compression::Lz4,
    }
}

fn comp_from(c: Compression) -> CompressionType {
    match c {
        Compression::None => CompressionType::None,
        Compression::Lz4 => CompressionType::Lz4,
    }
}

fn le_u64(b: &[u8]) -> Option<u64> {
    b.get(..8).map(|s| u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]))
}

/// Reads the options carried by the format (format-spec §5.2) from an open keyspace.
pub fn options_of(ks: &Keyspace) -> KeyspaceOptions {
    let c = &ks.config;
    let filter = c
        .filter_policy
        .iter()
        .map(|e| match e {
            FilterPolicyEntry::None => FilterEntry::None,
            FilterPolicyEntry::Bloom(BloomConstructionPolicy::BitsPerKey(x)) => FilterEntry::BloomBitsPerKey(*x),
            FilterPolicyEntry::Bloom(BloomConstructionPolicy::FalsePositiveRate(x)) => {
                FilterEntry::BloomFalsePositiveRate(*x)
            }
        })
        .collect();
    let kv_separation = c.kv_separation_opts.as_ref().map(|k| KvSeparation {
        blob_compression: comp_to(&k.compression),
        file_target_size: k.file_target_size,
        separation_threshold: k.separation_threshold,
        staleness_threshold: k.staleness_threshold,
        age_cutoff: k.age_cutoff,
    });
    let strategy = &c.compaction_strategy;
    let cfg = strategy.get_config();
    let get = |name: &str| cfg.iter().find(|(k, _)| &**k == name.as_bytes()).map(|(_, v)| v.to_vec());
    let compaction = match strategy.get_name() {
        "LeveledCompaction" => (|| {
            let l0 = *get("leveled_l0_threshold")?.first()?;
            let target = le_u64(&get("leveled_target_size")?)?;
            let ratios_raw = get("leveled_level_ratio_policy")?;
            let n = *ratios_raw.first()? as usize;
            let ratios = (0..n)
                .map(|i| ratios_raw.get(1 + 4 * i..5 + 4 * i).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect::<Option<Vec<f32>>>()?;
            Some(Compaction::Leveled { l0_threshold: l0, table_target_size: target, level_ratios: ratios })
        })(),
        "FifoCompaction" => (|| {
            let limit = le_u64(&get("fifo_limit")?)?;
            let has_ttl = get("fifo_ttl")? == [1];
            let ttl = if has_ttl { Some(le_u64(&get("fifo_ttl_seconds")?)?) } else { None };
            Some(Compaction::Fifo { limit_bytes: limit, ttl_seconds: ttl })
        })(),
        _ => None,
    };
    KeyspaceOptions {
        data_block_compression: Some(c.data_block_compression_policy.iter().map(comp_to).collect()),
        index_block_compression: Some(c.index_block_compression_policy.iter().map(comp_to).collect()),
        data_block_size: Some(c.data_block_size_policy.to_vec()),
        data_block_restart_interval: Some(c.data_block_restart_interval_policy.to_vec()),
        index_block_restart_interval: Some(c.index_block_restart_interval_policy.to_vec()),
        data_block_hash_ratio: Some(c.data_block_hash_ratio_policy.to_vec()),
        index_block_pinning: Some(c.index_block_pinning_policy.to_vec()),
        filter_block_pinning: Some(c.filter_block_pinning_policy.to_vec()),
        index_block_partitioning: Some(c.index_block_partitioning_policy.to_vec()),
        filter_block_partitioning: Some(c.filter_block_partitioning_policy.to_vec()),
        expect_point_read_hits: Some(c.expect_point_read_hits),
        filter_policy: Some(filter),
        kv_separation,
        compaction,
        unknown: Vec::new(),
    }
}

/// fjall's defaults for key-value separation, in the format's form: what
/// `"kv_separation": true` (or an object leaving fields out) means in
/// options given as JSON.
pub fn default_kv_separation() -> KvSeparation {
    let d = KvSeparationOptions::default();
    KvSeparation {
        blob_compression: comp_to(&d.compression),
        file_target_size: d.file_target_size,
        separation_threshold: d.separation_threshold,
        staleness_threshold: d.staleness_threshold,
        age_cutoff: d.age_cutoff,
    }
}

/// Parses a keyspace's options given as JSON (the `options` object of
/// `inspect --json`; [`KeyspaceOptions::from_json`] with fjall's key-value
/// separation defaults) and checks that fjall accepts them
/// ([`create_options`]). This is what the C ABI's and Python's writers take.
pub fn options_from_json(keyspace: &str, json: &str) -> Result<KeyspaceOptions, OptionsJsonError> {
    let o = KeyspaceOptions::from_json(keyspace, json, &default_kv_separation())?;
    create_options(keyspace, &o).map_err(|e| match e {
        EngineError::Options { keyspace, detail } => OptionsJsonError { keyspace, detail },
        other => OptionsJsonError { keyspace: keyspace.to_owned(), detail: other.to_string() },
    })?;
    Ok(o)
}

/// Opens the existing keyspace `name` of `db` (for export: the options it
/// was created with are kept, [`options_of`] reads them).
pub fn open_keyspace(db: &Database, path: &Path, name: &str) -> Result<Keyspace, EngineError> {
    guarded(path, "opening a keyspace", || db.keyspace(name, KeyspaceCreateOptions::default))
}

fn policy<T: Clone>(v: &[T], name: &str, ks: &str) -> Result<Vec<T>, EngineError> {
    if v.is_empty() || v.len() > 255 {
        return Err(EngineError::Options {
            keyspace: ks.to_owned(),
            detail: format!("{name} needs 1 to 255 values, has {}", v.len()),
        });
    }
    Ok(v.to_vec())
}

/// Builds fjall create options from archived options. Absent options keep
/// fjall's defaults. Refuses unknown required options (format-spec §5.1);
/// returns warnings for unknown optional ones.
pub fn create_options(ks: &str, o: &KeyspaceOptions) -> Result<(KeyspaceCreateOptions, Vec<String>), EngineError> {
    if let Some(id) = o.unknown_required() {
        return Err(EngineError::Options {
            keyspace: ks.to_owned(),
            detail: format!("carries required option id {id} that this floe does not understand (upgrade floe)"),
        });
    }
    let warnings = o.unknown.iter().map(|u| format!("keyspace '{ks}': ignoring unknown option id {}", u.tag)).collect();
    let mut c = KeyspaceCreateOptions::default();
    if let Some(v) = &o.data_block_compression {
        c.data_block_compression_policy = CompressionPolicy::new(
            policy(v, "data_block_compression", ks)?.into_iter().map(comp_from).collect::<Vec<_>>(),
        );
    }
    if let Some(v) = &o.index_block_compression {
        c.index_block_compression_policy = CompressionPolicy::new(
            policy(v, "index_block_compression", ks)?.into_iter().map(comp_from).collect::<Vec<_>>(),
        );
    }
    if let Some(v) = &o.data_block_size {
        c.data_block_size_policy = BlockSizePolicy::new(policy(v, "data_block_size", ks)?);
    }
    if let Some(v) = &o.data_block_restart_interval {
        c.data_block_restart_interval_policy =
            RestartIntervalPolicy::new(policy(v, "data_block_restart_interval", ks)?);
    }
    if let Some(v) = &o.index_block_restart_interval {
        c.index_block_restart_interval_policy =
            RestartIntervalPolicy::new(policy(v, "index_block_restart_interval", ks)?);
    }
    if let Some(v) = &o.data_block_hash_ratio {
        c.data_block_hash_ratio_policy = HashRatioPolicy::new(policy(v, "data_block_hash_ratio", ks)?);
    }
    if let Some(v) = &o.index_block_pinning {
        c.index_block_pinning_policy = PinningPolicy::new(policy(v, "index_block_pinning", ks)?);
    }
    if let Some(v) = &o.filter_block_pinning {
        c.filter_block_pinning_policy = PinningPolicy::new(policy(v, "filter_block_pinning", ks)?);
    }
    if let Some(v) = &o.index_block_partitioning {
        c.index_block_partitioning_policy = PinningPolicy::new(policy(v, "index_block_partitioning", ks)?);
    }
    if let Some(v) = &o.filter_block_partitioning {
        c.filter_block_partitioning_policy = PinningPolicy::new(policy(v, "filter_block_partitioning", ks)?);
    }
    if let Some(v) = o.expect_point_read_hits {
        c.expect_point_read_hits = v;
    }
    if let Some(v) = &o.filter_policy {
        let entries = policy(v, "filter_policy", ks)?
            .into_iter()
            .map(|e| match e {
                FilterEntry::None => FilterPolicyEntry::None,
                FilterEntry::BloomBitsPerKey(x) => FilterPolicyEntry::Bloom(BloomConstructionPolicy::BitsPerKey(x)),
                FilterEntry::BloomFalsePositiveRate(x) => {
                    FilterPolicyEntry::Bloom(BloomConstructionPolicy::FalsePositiveRate(x))
                }
            })
            .collect::<Vec<_>>();
        c.filter_policy = FilterPolicy::new(entries);
    }
    if let Some(kv) = &o.kv_separation {
        c.kv_separation_opts = Some(KvSeparationOptions {
            compression: comp_from(kv.blob_compression),
            file_target_size: kv.file_target_size,
            separation_threshold: kv.separation_threshold,
            staleness_threshold: kv.staleness_threshold,
            age_cutoff: kv.age_cutoff,
        });
    }
    match &o.compaction {
        Some(Compaction::Leveled { l0_threshold, table_target_size, level_ratios }) => {
            if *l0_threshold == 0 || *table_target_size == 0 {
                return Err(EngineError::Options {
                    keyspace: ks.to_owned(),
                    detail: "leveled compaction needs l0_threshold and table_target_size of at least 1".into(),
                });
            }
            let mut s = fjall::compaction::Leveled::default()
                .with_l0_threshold(*l0_threshold)
                .with_table_target_size(*table_target_size);
            if !level_ratios.is_empty() {
                s = s.with_level_ratio_policy(level_ratios.clone());
            }
            c.compaction_strategy = Arc::new(s);
        }
        Some(Compaction::Fifo { limit_bytes, ttl_seconds }) => {
            c.compaction_strategy = Arc::new(fjall::compaction::Fifo::new(*limit_bytes, *ttl_seconds));
        }
        None => {}
    }
    Ok((c, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_options_take_fjalls_kv_defaults_and_its_checks() {
        // `default_kv_separation` is fjall's default, field by field.
        let (c, _) = create_options(
            "k",
            &KeyspaceOptions { kv_separation: Some(default_kv_separation()), ..Default::default() },
        )
        .unwrap();
        assert_eq!(c.kv_separation_opts, Some(KvSeparationOptions::default()));
        let o = options_from_json("k", r#"{"kv_separation": true}"#).unwrap();
        assert_eq!(o.kv_separation, Some(default_kv_separation()));
        let o = options_from_json("k", r#"{"kv_separation": {"separation_threshold": 64}}"#).unwrap();
        assert_eq!(o.kv_separation, Some(KvSeparation { separation_threshold: 64, ..default_kv_separation() }));
        assert_eq!(options_from_json("k", "null").unwrap(), KeyspaceOptions::default());
        let e = options_from_json("ks", r#"{"data_block_size": 0}"#).unwrap_err();
        assert!(e.to_string().starts_with("keyspace 'ks': option 'data_block_size': "), "{e}");
    }

    #[test]
    fn options_survive_fjall_and_back() {
        let d = tempfile::tempdir().unwrap();
        let db = Database::builder(d.path()).open().unwrap();
        let mut o = options_of(&db.keyspace("plain", KeyspaceCreateOptions::default).unwrap());
        o.kv_separation = Some(KvSeparation {
            blob_compression: Compression::None,
            file_target_size: 1 << 20,
            separation_threshold: 512,
            staleness_threshold: 0.5,
            age_cutoff: 0.125,
        });
        o.compaction = Some(Compaction::Fifo { limit_bytes: 1 << 30, ttl_seconds: Some(3600) });
        o.data_block_size = Some(vec![8192, 16384]);
        o.filter_policy = Some(vec![FilterEntry::BloomBitsPerKey(7.5)]);
        let (c, w) = create_options("custom", &o).unwrap();
        assert!(w.is_empty());
        let ks = db.keyspace("custom", || c).unwrap();
        assert_eq!(options_of(&ks), o);
        drop(ks);
        drop(db);
        // Persisted: reopen and read again.
        let db = Database::builder(d.path()).open().unwrap();
        let ks = db.keyspace("custom", KeyspaceCreateOptions::default).unwrap();
        assert_eq!(options_of(&ks), o);
        assert!(ENGINE_VERSION.starts_with("3."), "{ENGINE_VERSION}");
    }
}
