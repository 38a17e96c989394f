//! §5.1–5.2 keyspace option entries: the readable subset of fjall's
//! `KeyspaceCreateOptions`, encoded engine-independently. Both directions of
//! both encodings live here: the bytes of §5.1 (`encode`, `decode`) and the
//! JSON of `inspect --json` that writers take back (`to_json`, `from_json`).

use super::codec::{Dec, Put};
use super::{FormatError, Result};

/// Option tag bit 15: an importer that does not know the id must refuse.
pub const OPTION_REQUIRED: u16 = 0x8000;

/// Block compression types (§5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// No compression.
    None,
    /// LZ4.
    Lz4,
}

impl Compression {
    fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Lz4 => 1,
        }
    }
    fn from_code(d: &Dec<'_>, v: u8) -> Result<Self> {
        match v {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Lz4),
            _ => Err(d.err(format!("unknown compression type {v}"))),
        }
    }
    /// Lower-case name for display.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
        }
    }
}

/// One level of a filter policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FilterEntry {
    /// No filter at this level.
    None,
    /// A bloom filter of this many bits per key.
    BloomBitsPerKey(f32),
    /// A bloom filter sized for this false-positive rate.
    BloomFalsePositiveRate(f32),
}

/// Key-value separation settings (present = enabled).
#[derive(Debug, Clone, PartialEq)]
pub struct KvSeparation {
    /// Compression of blob files.
    pub blob_compression: Compression,
    /// Target size of a blob file, in bytes.
    pub file_target_size: u64,
    /// Values at least this many bytes long are stored in blob files.
    pub separation_threshold: u32,
    /// Fraction (0 to 1) of a blob file that must be stale for garbage collection to pick it up.
    pub staleness_threshold: f32,
    /// fjall's blob age cutoff: the fraction (0 to 1) of blob files, oldest first, that garbage collection considers.
    pub age_cutoff: f32,
}

/// Compaction strategy.
#[derive(Debug, Clone, PartialEq)]
pub enum Compaction {
    /// Leveled compaction (option id 14).
    Leveled {
        /// Level-0 tables that trigger a compaction (at least 1).
        l0_threshold: u8,
        /// Target size of a table, in bytes (at least 1).
        table_target_size: u64,
        /// Size ratio between successive levels; empty means the engine's default ratios.
        level_ratios: Vec<f32>,
    },
    /// FIFO compaction (option id 15).
    Fifo {
        /// Size above which the oldest tables are dropped.
        limit_bytes: u64,
        /// Age after which tables are dropped; `None` for no TTL.
        ttl_seconds: Option<u64>,
    },
}

/// An option id this reader does not know, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOption {
    /// The option id as stored, with its [`OPTION_REQUIRED`] bit.
    pub tag: u16,
    /// The option's value bytes.
    pub value: Vec<u8>,
}

/// Keyspace options; `None` means "the engine's default".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyspaceOptions {
    /// Option id 1: one value per LSM level, the last repeating. Data block compression.
    pub data_block_compression: Option<Vec<Compression>>,
    /// Option id 2: one value per LSM level, the last repeating. Index block compression.
    pub index_block_compression: Option<Vec<Compression>>,
    /// Option id 3: one value per LSM level, the last repeating. Data block size in bytes.
    pub data_block_size: Option<Vec<u32>>,
    /// Option id 4: one value per LSM level, the last repeating. Data block restart interval.
    pub data_block_restart_interval: Option<Vec<u8>>,
    /// Option id 5: one value per LSM level, the last repeating. Index block restart interval.
    pub index_block_restart_interval: Option<Vec<u8>>,
    /// Option id 6: one value per LSM level, the last repeating. Data block hash index ratio.
    pub data_block_hash_ratio: Option<Vec<f32>>,
    /// Option id 7: one value per LSM level, the last repeating. Whether index blocks are pinned in the cache.
    pub index_block_pinning: Option<Vec<bool>>,
    /// Option id 8: one value per LSM level, the last repeating. Whether filter blocks are pinned in the cache.
    pub filter_block_pinning: Option<Vec<bool>>,
    /// Option id 9: one value per LSM level, the last repeating. Whether index blocks are partitioned.
    pub index_block_partitioning: Option<Vec<bool>>,
    /// Option id 10: one value per LSM level, the last repeating. Whether filter blocks are partitioned.
    pub filter_block_partitioning: Option<Vec<bool>>,
    /// Option id 11: point reads are expected to find their key (so the last level needs no filter).
    pub expect_point_read_hits: Option<bool>,
    /// Option id 12: one value per LSM level, the last repeating. The filter.
    pub filter_policy: Option<Vec<FilterEntry>>,
    /// Option id 13: key-value separation, when enabled.
    pub kv_separation: Option<KvSeparation>,
    /// Option ids 14 and 15: the compaction strategy.
    pub compaction: Option<Compaction>,
    /// Options of ids this reader does not know (§5.1).
    pub unknown: Vec<UnknownOption>,
}

mod id {
    pub const DATA_COMPRESSION: u16 = 1;
    pub const INDEX_COMPRESSION: u16 = 2;
    pub const DATA_BLOCK_SIZE: u16 = 3;
    pub const DATA_RESTART: u16 = 4;
    pub const INDEX_RESTART: u16 = 5;
    pub const HASH_RATIO: u16 = 6;
    pub const INDEX_PINNING: u16 = 7;
    pub const FILTER_PINNING: u16 = 8;
    pub const INDEX_PARTITIONING: u16 = 9;
    pub const FILTER_PARTITIONING: u16 = 10;
    pub const POINT_READ_HITS: u16 = 11;
    pub const FILTER_POLICY: u16 = 12;
    pub const KV_SEPARATION: u16 = 13;
    pub const COMPACTION_LEVELED: u16 = 14;
    pub const COMPACTION_FIFO: u16 = 15;
}

fn put_policy<T: Copy>(out: &mut Vec<u8>, tag: u16, v: &Option<Vec<T>>, f: impl Fn(&mut Vec<u8>, T)) {
    if let Some(v) = v {
        let mut b = Vec::new();
        let n = v.len().min(255);
        b.put_u8(n as u8);
        for &x in v.iter().take(n) {
            f(&mut b, x);
        }
        put_entry(out, tag, &b);
    }
}

fn put_entry(out: &mut Vec<u8>, tag: u16, value: &[u8]) {
    out.put_u16(tag);
    out.put_u32(value.len() as u32);
    out.extend_from_slice(value);
}

fn get_policy<T>(d: &mut Dec<'_>, mut f: impl FnMut(&mut Dec<'_>) -> Result<T>) -> Result<Vec<T>> {
    let n = d.u8("policy length")?;
    if n == 0 {
        return Err(d.err("a policy needs at least one value"));
    }
    (0..n).map(|_| f(d)).collect()
}

fn finite_in(d: &Dec<'_>, v: f32, lo: f32, hi: f32, lo_inclusive: bool, hi_inclusive: bool, what: &str) -> Result<f32> {
    let ok =
        v.is_finite() && (if lo_inclusive { v >= lo } else { v > lo }) && (if hi_inclusive { v <= hi } else { v < hi });
    if ok {
        Ok(v)
    } else {
        let low = if lo_inclusive { format!(">= {lo}") } else { format!("> {lo}") };
        let valid = match (hi_inclusive, hi == f32::MAX) {
            (true, true) => format!("a finite number {low}"),
            (true, false) => format!("a finite number {low} and <= {hi}"),
            (false, _) => format!("a finite number {low} and < {hi}"),
        };
        Err(d.err(format!("{what} {v} is out of range (valid: {valid})")))
    }
}

impl KeyspaceOptions {
    /// Encodes the option entries (§5.1), ids ascending.
    pub fn encode(&self) -> Vec<u8> {
        let mut o = Vec::new();
        let comp = |b: &mut Vec<u8>, c: Compression| b.put_u8(c.code());
        put_policy(&mut o, id::DATA_COMPRESSION, &self.data_block_compression, comp);
        put_policy(&mut o, id::INDEX_COMPRESSION, &self.index_block_compression, comp);
        put_policy(&mut o, id::DATA_BLOCK_SIZE, &self.data_block_size, |b, x| b.put_u32(x));
        put_policy(&mut o, id::DATA_RESTART, &self.data_block_restart_interval, |b, x| b.put_u8(x));
        put_policy(&mut o, id::INDEX_RESTART, &self.index_block_restart_interval, |b, x| b.put_u8(x));
        put_policy(&mut o, id::HASH_RATIO, &self.data_block_hash_ratio, |b, x| b.put_f32(x));
        let boolean = |b: &mut Vec<u8>, x: bool| b.put_u8(u8::from(x));
        put_policy(&mut o, id::INDEX_PINNING, &self.index_block_pinning, boolean);
        put_policy(&mut o, id::FILTER_PINNING, &self.filter_block_pinning, boolean);
        put_policy(&mut o, id::INDEX_PARTITIONING, &self.index_block_partitioning, boolean);
        put_policy(&mut o, id::FILTER_PARTITIONING, &self.filter_block_partitioning, boolean);
        if let Some(x) = self.expect_point_read_hits {
            put_entry(&mut o, id::POINT_READ_HITS, &[u8::from(x)]);
        }
        put_policy(&mut o, id::FILTER_POLICY, &self.filter_policy, |b, e| match e {
            FilterEntry::None => {
                b.put_u8(0);
                b.put_f32(0.0);
            }
            FilterEntry::BloomBitsPerKey(x) => {
                b.put_u8(1);
                b.put_f32(x);
            }
            FilterEntry::BloomFalsePositiveRate(x) => {
                b.put_u8(2);
                b.put_f32(x);
            }
        });
        if let Some(kv) = &self.kv_separation {
            let mut b = Vec::new();
            b.put_u8(kv.blob_compression.code());
            b.put_u64(kv.file_target_size);
            b.put_u32(kv.separation_threshold);
            b.put_f32(kv.staleness_threshold);
            b.put_f32(kv.age_cutoff);
            put_entry(&mut o, id::KV_SEPARATION, &b);
        }
        match &self.compaction {
            Some(Compaction::Leveled { l0_threshold, table_target_size, level_ratios }) => {
                let mut b = Vec::new();
                b.put_u8(*l0_threshold);
                b.put_u64(*table_target_size);
                let n = level_ratios.len().min(255);
                b.put_u8(n as u8);
                for &r in level_ratios.iter().take(n) {
                    b.put_f32(r);
                }
                put_entry(&mut o, id::COMPACTION_LEVELED, &b);
            }
            Some(Compaction::Fifo { limit_bytes, ttl_seconds }) => {
                let mut b = Vec::new();
                b.put_u64(*limit_bytes);
                b.put_u8(u8::from(ttl_seconds.is_some()));
                b.put_u64(ttl_seconds.unwrap_or(0));
                put_entry(&mut o, id::COMPACTION_FIFO, &b);
            }
            None => {}
        }
        for u in &self.unknown {
            put_entry(&mut o, u.tag, &u.value);
        }
        sort_entries(o)
    }

    /// Decodes option entries; `base` is the absolute offset of `bytes[0]`.
    pub fn decode(bytes: &[u8], base: u64) -> Result<KeyspaceOptions> {
        let mut d = Dec::new(bytes, base, "keyspace options");
        let mut o = KeyspaceOptions::default();
        let mut last_id: Option<u16> = None;
        while d.remaining() > 0 {
            let at = d.offset();
            let tag = d.u16("option tag")?;
            let len = d.u32("option length")? as usize;
            let value = d.take(len, "option value")?;
            let oid = tag & !OPTION_REQUIRED;
            if last_id.is_some_and(|l| oid <= l) {
                return Err(FormatError::corrupt(
                    "keyspace options",
                    at,
                    format!("option id {oid} is repeated or out of ascending order"),
                ));
            }
            last_id = Some(oid);
            let vbase = at + 6;
            let mut v = Dec::new(value, vbase, "keyspace option");
            let comp = |v: &mut Dec<'_>| {
                let c = v.u8("compression")?;
                Compression::from_code(v, c)
            };
            match oid {
                id::DATA_COMPRESSION => o.data_block_compression = Some(get_policy(&mut v, comp)?),
                id::INDEX_COMPRESSION => o.index_block_compression = Some(get_policy(&mut v, comp)?),
                id::DATA_BLOCK_SIZE => {
                    o.data_block_size = Some(get_policy(&mut v, |v| {
                        let x = v.u32("block size")?;
                        if x == 0 {
                            Err(v.err("block size 0"))
                        } else {
                            Ok(x)
                        }
                    })?)
                }
                id::DATA_RESTART => {
                    o.data_block_restart_interval = Some(get_policy(&mut v, |v| nonzero_u8(v, "restart interval"))?)
                }
                id::INDEX_RESTART => {
                    o.index_block_restart_interval = Some(get_policy(&mut v, |v| nonzero_u8(v, "restart interval"))?)
                }
                id::HASH_RATIO => {
                    o.data_block_hash_ratio = Some(get_policy(&mut v, |v| {
                        let x = v.f32("hash ratio")?;
                        finite_in(v, x, 0.0, 64.0, true, true, "hash ratio")
                    })?)
                }
                id::INDEX_PINNING => o.index_block_pinning = Some(get_policy(&mut v, |v| v.bool("pinning"))?),
                id::FILTER_PINNING => o.filter_block_pinning = Some(get_policy(&mut v, |v| v.bool("pinning"))?),
                id::INDEX_PARTITIONING => {
                    o.index_block_partitioning = Some(get_policy(&mut v, |v| v.bool("partitioning"))?)
                }
                id::FILTER_PARTITIONING => {
                    o.filter_block_partitioning = Some(get_policy(&mut v, |v| v.bool("partitioning"))?)
                }
                id::POINT_READ_HITS => o.expect_point_read_hits = Some(v.bool("expect_point_read_hits")?),
                id::FILTER_POLICY => {
                    o.filter_policy = Some(get_policy(&mut v, |v| {
                        let kind = v.u8("filter kind")?;
                        let p = v.f32("filter parameter")?;
                        match kind {
                            // §5.2: floe writes kind 0 with the parameter's four bytes zero.
                            0 if p.to_bits() == 0 => Ok(FilterEntry::None),
                            0 => Err(v.err(format!(
                                "filter kind 0 (no filter) must have param 0, found {p} (bits {:#010x})",
                                p.to_bits()
                            ))),
                            1 => Ok(FilterEntry::BloomBitsPerKey(finite_in(
                                v,
                                p,
                                0.0,
                                64.0,
                                false,
                                true,
                                "bloom bits per key",
                            )?)),
                            2 => Ok(FilterEntry::BloomFalsePositiveRate(finite_in(
                                v,
                                p,
                                0.0,
                                1.0,
                                false,
                                false,
                                "bloom false-positive rate",
                            )?)),
                            k => Err(v.err(format!("unknown filter kind {k}"))),
                        }
                    })?)
                }
                id::KV_SEPARATION => {
                    let blob_compression = comp(&mut v)?;
                    let file_target_size = v.u64("file_target_size")?;
                    let separation_threshold = v.u32("separation_threshold")?;
                    let s = v.f32("staleness_threshold")?;
                    let staleness_threshold = finite_in(&v, s, 0.0, 1.0, true, true, "staleness_threshold")?;
                    let a = v.f32("age_cutoff")?;
                    let age_cutoff = finite_in(&v, a, 0.0, 1.0, true, true, "age_cutoff")?;
                    o.kv_separation = Some(KvSeparation {
                        blob_compression,
                        file_target_size,
                        separation_threshold,
                        staleness_threshold,
                        age_cutoff,
                    });
                }
                id::COMPACTION_LEVELED | id::COMPACTION_FIFO if o.compaction.is_some() => {
                    return Err(FormatError::corrupt(
                        "keyspace options",
                        at,
                        "both leveled and FIFO compaction are given",
                    ));
                }
                id::COMPACTION_LEVELED => {
                    let l0_threshold = v.u8("l0_threshold")?;
                    let table_target_size = v.u64("table_target_size")?;
                    if l0_threshold == 0 || table_target_size == 0 {
                        return Err(v.err("leveled compaction needs l0_threshold and table_target_size of at least 1"));
                    }
                    let n = v.u8("level ratio count")?;
                    let level_ratios = (0..n)
                        .map(|_| {
                            let r = v.f32("level ratio")?;
                            finite_in(&v, r, 0.0, f32::MAX, false, true, "level ratio")
                        })
                        .collect::<Result<Vec<_>>>()?;
                    o.compaction = Some(Compaction::Leveled { l0_threshold, table_target_size, level_ratios });
                }
                id::COMPACTION_FIFO => {
                    let limit_bytes = v.u64("limit_bytes")?;
                    let has_ttl = v.bool("has_ttl")?;
                    let ttl = v.u64("ttl_seconds")?;
                    if !has_ttl && ttl != 0 {
                        return Err(v.err(format!("ttl_seconds must be 0 when has_ttl is 0, found {ttl}")));
                    }
                    o.compaction = Some(Compaction::Fifo { limit_bytes, ttl_seconds: has_ttl.then_some(ttl) });
                }
                _ => {
                    o.unknown.push(UnknownOption { tag, value: value.to_vec() });
                    continue;
                }
            }
            // Values of known ids may carry appended fields from a newer minor version (§3 rule).
        }
        Ok(o)
    }

    /// Option ids (without the flag bit) this reader does not know and that are marked required.
    pub fn unknown_required(&self) -> Option<u16> {
        self.unknown.iter().find(|u| u.tag & OPTION_REQUIRED != 0).map(|u| u.tag & !OPTION_REQUIRED)
    }

    /// A JSON description for `inspect --json`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let mut m = Map::new();
        let comp = |v: &Vec<Compression>| Value::from(v.iter().map(|c| c.name()).collect::<Vec<_>>());
        if let Some(v) = &self.data_block_compression {
            m.insert("data_block_compression".into(), comp(v));
        }
        if let Some(v) = &self.index_block_compression {
            m.insert("index_block_compression".into(), comp(v));
        }
        if let Some(v) = &self.data_block_size {
            m.insert("data_block_size".into(), json!(v));
        }
        if let Some(v) = &self.data_block_restart_interval {
            m.insert("data_block_restart_interval".into(), json!(v));
        }
        if let Some(v) = &self.index_block_restart_interval {
            m.insert("index_block_restart_interval".into(), json!(v));
        }
        if let Some(v) = &self.data_block_hash_ratio {
            m.insert("data_block_hash_ratio".into(), json!(v));
        }
        if let Some(v) = &self.index_block_pinning {
            m.insert("index_block_pinning".into(), json!(v));
        }
        if let Some(v) = &self.filter_block_pinning {
            m.insert("filter_block_pinning".into(), json!(v));
        }
        if let Some(v) = &self.index_block_partitioning {
            m.insert("index_block_partitioning".into(), json!(v));
        }
        if let Some(v) = &self.filter_block_partitioning {
            m.insert("filter_block_partitioning".into(), json!(v));
        }
        if let Some(v) = self.expect_point_read_hits {
            m.insert("expect_point_read_hits".into(), json!(v));
        }
        if let Some(v) = &self.filter_policy {
            let f: Vec<Value> = v
                .iter()
                .map(|e| match e {
                    FilterEntry::None => json!("none"),
                    FilterEntry::BloomBitsPerKey(x) => json!({"bloom_bits_per_key": x}),
                    FilterEntry::BloomFalsePositiveRate(x) => json!({"bloom_false_positive_rate": x}),
                })
                .collect();
            m.insert("filter_policy".into(), Value::from(f));
        }
        m.insert(
            "kv_separation".into(),
            match &self.kv_separation {
                Some(kv) => json!({
                    "blob_compression": kv.blob_compression.name(),
                    "file_target_size": kv.file_target_size,
                    "separation_threshold": kv.separation_threshold,
                    "staleness_threshold": kv.staleness_threshold,
                    "age_cutoff": kv.age_cutoff,
                }),
                None => Value::Null,
            },
        );
        match &self.compaction {
            Some(Compaction::Leveled { l0_threshold, table_target_size, level_ratios }) => {
                m.insert("compaction".into(), json!({"strategy": "leveled", "l0_threshold": l0_threshold, "table_target_size": table_target_size, "level_ratios": level_ratios}));
            }
            Some(Compaction::Fifo { limit_bytes, ttl_seconds }) => {
                m.insert(
                    "compaction".into(),
                    json!({"strategy": "fifo", "limit_bytes": limit_bytes, "ttl_seconds": ttl_seconds}),
                );
            }
            None => {}
        }
        if !self.unknown.is_empty() {
            m.insert(
                "unknown_option_ids".into(),
                json!(self.unknown.iter().map(|u| u.tag & !OPTION_REQUIRED).collect::<Vec<_>>()),
            );
        }
        Value::Object(m)
    }
}

/// Why options given as JSON (the `options` object of `inspect --json`, see
/// [`KeyspaceOptions::from_json`]) cannot be used. The message names the
/// keyspace and the offending option (and field), and says what is valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("keyspace '{keyspace}': {detail}")]
pub struct OptionsJsonError {
    /// The keyspace whose options are wrong.
    pub keyspace: String,
    /// What is wrong, and what is valid.
    pub detail: String,
}

/// Keys accepted in an options object: those [`KeyspaceOptions::to_json`] writes.
pub const JSON_KEYS: &[&str] = &[
    "data_block_compression",
    "index_block_compression",
    "data_block_size",
    "data_block_restart_interval",
    "index_block_restart_interval",
    "data_block_hash_ratio",
    "index_block_pinning",
    "filter_block_pinning",
    "index_block_partitioning",
    "filter_block_partitioning",
    "expect_point_read_hits",
    "filter_policy",
    "kv_separation",
    "compaction",
    "unknown_option_ids",
];

/// The JSON parser behind [`KeyspaceOptions::from_json`]: one keyspace's name
/// for the error messages, and the defaults of key-value separation.
struct JsonParser<'a> {
    keyspace: &'a str,
    kv_defaults: &'a KvSeparation,
}

type JResult<T> = std::result::Result<T, OptionsJsonError>;

fn json_compression(v: &serde_json::Value) -> Option<Compression> {
    match v.as_str()? {
        "none" => Some(Compression::None),
        "lz4" => Some(Compression::Lz4),
        _ => None,
    }
}

fn json_uint<T: TryFrom<u64>>(v: &serde_json::Value) -> Option<T> {
    v.as_u64().and_then(|x| T::try_from(x).ok())
}

fn json_float(v: &serde_json::Value) -> Option<f32> {
    v.as_f64().map(|x| x as f32)
}

fn json_filter_entry(v: &serde_json::Value) -> Option<FilterEntry> {
    use serde_json::Value;
    match v {
        Value::String(s) if s == "none" => Some(FilterEntry::None),
        Value::Object(m) if m.len() == 1 => {
            let (k, x) = m.iter().next()?;
            let x = json_float(x)?;
            match k.as_str() {
                "bloom_bits_per_key" => Some(FilterEntry::BloomBitsPerKey(x)),
                "bloom_false_positive_rate" => Some(FilterEntry::BloomFalsePositiveRate(x)),
                _ => None,
            }
        }
        _ => None,
    }
}

type JsonMap = serde_json::Map<String, serde_json::Value>;

impl JsonParser<'_> {
    fn fail(&self, detail: impl Into<String>) -> OptionsJsonError {
        OptionsJsonError { keyspace: self.keyspace.to_owned(), detail: detail.into() }
    }

    fn bad(&self, key: &str, detail: impl std::fmt::Display) -> OptionsJsonError {
        self.fail(format!("option '{key}': {detail}"))
    }

    /// A policy: an array of 1 to 255 values (one per LSM level, the last
    /// repeating), or a single value meaning "the same on every level".
    fn policy<T>(
        &self,
        key: &str,
        v: &serde_json::Value,
        f: impl Fn(&serde_json::Value) -> Option<T>,
        expect: &str,
    ) -> JResult<Vec<T>> {
        let items: Vec<&serde_json::Value> = match v {
            serde_json::Value::Array(a) => a.iter().collect(),
            one => vec![one],
        };
        if items.is_empty() || items.len() > 255 {
            return Err(self.bad(key, format!("needs 1 to 255 values, has {}", items.len())));
        }
        items.into_iter().map(|x| f(x).ok_or_else(|| self.bad(key, format!("expected {expect}, found {x}")))).collect()
    }

    fn fields<'m>(&self, key: &str, m: &'m JsonMap, allowed: &[&str]) -> JResult<&'m JsonMap> {
        if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(self.bad(key, format!("unknown field '{k}' (known: {})", allowed.join(", "))));
        }
        Ok(m)
    }

    fn field<T>(
        &self,
        key: &str,
        m: &JsonMap,
        name: &str,
        f: impl Fn(&serde_json::Value) -> Option<T>,
        expect: &str,
    ) -> JResult<Option<T>> {
        match m.get(name) {
            None => Ok(None),
            Some(v) => {
                f(v).map(Some).ok_or_else(|| self.bad(key, format!("field '{name}': expected {expect}, found {v}")))
            }
        }
    }

    fn kv_separation(&self, v: &serde_json::Value) -> JResult<Option<KvSeparation>> {
        use serde_json::Value;
        const K: &str = "kv_separation";
        let mut kv = self.kv_defaults.clone();
        match v {
            Value::Null | Value::Bool(false) => Ok(None),
            Value::Bool(true) => Ok(Some(kv)),
            Value::Object(m) => {
                let m = self.fields(
                    K,
                    m,
                    &[
                        "blob_compression",
                        "file_target_size",
                        "separation_threshold",
                        "staleness_threshold",
                        "age_cutoff",
                    ],
                )?;
                if let Some(c) = self.field(K, m, "blob_compression", json_compression, "\"none\" or \"lz4\"")? {
                    kv.blob_compression = c;
                }
                if let Some(x) = self.field(K, m, "file_target_size", json_uint::<u64>, "an unsigned integer")? {
                    kv.file_target_size = x;
                }
                if let Some(x) =
                    self.field(K, m, "separation_threshold", json_uint::<u32>, "an unsigned 32-bit integer")?
                {
                    kv.separation_threshold = x;
                }
                if let Some(x) = self.field(K, m, "staleness_threshold", json_float, "a number")? {
                    kv.staleness_threshold = x;
                }
                if let Some(x) = self.field(K, m, "age_cutoff", json_float, "a number")? {
                    kv.age_cutoff = x;
                }
                Ok(Some(kv))
            }
            other => Err(self.bad(K, format!("expected null, a boolean or an object, found {other}"))),
        }
    }

    fn compaction(&self, v: &serde_json::Value) -> JResult<Option<Compaction>> {
        use serde_json::Value;
        const K: &str = "compaction";
        let m = match v {
            Value::Null => return Ok(None),
            Value::Object(m) => m,
            other => return Err(self.bad(K, format!("expected null or an object, found {other}"))),
        };
        match m.get("strategy").and_then(Value::as_str) {
            Some("leveled") => {
                let m = self.fields(K, m, &["strategy", "l0_threshold", "table_target_size", "level_ratios"])?;
                let l0_threshold = self
                    .field(K, m, "l0_threshold", json_uint::<u8>, "an integer 1 to 255")?
                    .ok_or_else(|| self.bad(K, "leveled needs 'l0_threshold'"))?;
                let table_target_size = self
                    .field(K, m, "table_target_size", json_uint::<u64>, "an unsigned integer")?
                    .ok_or_else(|| self.bad(K, "leveled needs 'table_target_size'"))?;
                let level_ratios = match m.get("level_ratios") {
                    // An empty list (what `to_json` writes for no ratios) is the same as none.
                    None => Vec::new(),
                    Some(Value::Array(a)) if a.is_empty() => Vec::new(),
                    Some(r) => self.policy("compaction.level_ratios", r, json_float, "a number")?,
                };
                Ok(Some(Compaction::Leveled { l0_threshold, table_target_size, level_ratios }))
            }
            Some("fifo") => {
                let m = self.fields(K, m, &["strategy", "limit_bytes", "ttl_seconds"])?;
                let limit_bytes = self
                    .field(K, m, "limit_bytes", json_uint::<u64>, "an unsigned integer")?
                    .ok_or_else(|| self.bad(K, "fifo needs 'limit_bytes'"))?;
                let ttl_seconds = match m.get("ttl_seconds") {
                    None | Some(Value::Null) => None,
                    Some(t) => Some(json_uint::<u64>(t).ok_or_else(|| {
                        self.bad(K, format!("field 'ttl_seconds': expected null or an unsigned integer, found {t}"))
                    })?),
                };
                Ok(Some(Compaction::Fifo { limit_bytes, ttl_seconds }))
            }
            _ => Err(self.bad(K, "'strategy' must be \"leveled\" or \"fifo\"")),
        }
    }

    /// Sets the option `k` of `o` from its JSON value `v`.
    fn set(&self, o: &mut KeyspaceOptions, k: &str, v: &serde_json::Value) -> JResult<()> {
        let comp = "\"none\" or \"lz4\"";
        let boolean = serde_json::Value::as_bool;
        let nonzero_u8 = |x: &serde_json::Value| json_uint::<u8>(x).filter(|&n| n > 0);
        match k {
            "data_block_compression" => o.data_block_compression = Some(self.policy(k, v, json_compression, comp)?),
            "index_block_compression" => o.index_block_compression = Some(self.policy(k, v, json_compression, comp)?),
            "data_block_size" => {
                o.data_block_size = Some(self.policy(
                    k,
                    v,
                    |x| json_uint::<u32>(x).filter(|&n| n > 0),
                    "a block size 1 to 4294967295",
                )?)
            }
            "data_block_restart_interval" => {
                o.data_block_restart_interval = Some(self.policy(k, v, nonzero_u8, "an integer 1 to 255")?)
            }
            "index_block_restart_interval" => {
                o.index_block_restart_interval = Some(self.policy(k, v, nonzero_u8, "an integer 1 to 255")?)
            }
            "data_block_hash_ratio" => o.data_block_hash_ratio = Some(self.policy(k, v, json_float, "a number")?),
            "index_block_pinning" => o.index_block_pinning = Some(self.policy(k, v, boolean, "a boolean")?),
            "filter_block_pinning" => o.filter_block_pinning = Some(self.policy(k, v, boolean, "a boolean")?),
            "index_block_partitioning" => o.index_block_partitioning = Some(self.policy(k, v, boolean, "a boolean")?),
            "filter_block_partitioning" => {
                o.filter_block_partitioning = Some(self.policy(k, v, boolean, "a boolean")?)
            }
            "expect_point_read_hits" => {
                o.expect_point_read_hits =
                    Some(v.as_bool().ok_or_else(|| self.bad(k, format!("expected a boolean, found {v}")))?)
            }
            "filter_policy" => {
                o.filter_policy = Some(self.policy(
                    k,
                    v,
                    json_filter_entry,
                    "\"none\", {\"bloom_bits_per_key\": x} or {\"bloom_false_positive_rate\": x}",
                )?)
            }
            "kv_separation" => o.kv_separation = self.kv_separation(v)?,
            "compaction" => o.compaction = self.compaction(v)?,
            // Output-only in `inspect --json` (the values are not shown), accepted and ignored.
            "unknown_option_ids" => {}
            other => {
                return Err(self.fail(format!("unknown option '{other}' (supported: {})", JSON_KEYS.join(", "))));
            }
        }
        Ok(())
    }
}

impl KeyspaceOptions {
    /// Parses options given as JSON: an object with the keys of the
    /// `options` object of `inspect --json` ([`KeyspaceOptions::to_json`]),
    /// so options read from one archive can be given to a writer unchanged
    /// (`from_json(to_json(o)) == o` for every option set an archive can
    /// hold, except the values of unknown option ids, which `to_json` does
    /// not show). `null` and absent keys keep the engine's defaults.
    ///
    /// A policy is an array of 1 to 255 values or a single value (the same
    /// on every level). `kv_separation` is `null`/`false` (off), `true` (on
    /// with `kv_defaults`) or an object whose absent fields take
    /// `kv_defaults`'. Values are checked against §5.2's ranges by the
    /// decoder itself, so the rules are written once. The error names
    /// `keyspace`, the offending option and what it accepts.
    ///
    /// The engine's own checks and its key-value separation defaults are
    /// applied by `engine::options_from_json`, which is what writers use.
    pub fn from_json(
        keyspace: &str,
        json: &str,
        kv_defaults: &KvSeparation,
    ) -> std::result::Result<KeyspaceOptions, OptionsJsonError> {
        use serde_json::Value;
        let p = JsonParser { keyspace, kv_defaults };
        let v: Value = serde_json::from_str(json).map_err(|e| p.fail(format!("options are not valid JSON: {e}")))?;
        let m = match v {
            Value::Object(m) => m,
            Value::Null => return Ok(KeyspaceOptions::default()),
            other => return Err(p.fail(format!("options must be a JSON object, found {other}"))),
        };
        let mut o = KeyspaceOptions::default();
        for (k, v) in &m {
            p.set(&mut o, k, v)?;
            // The format's range checks (finite floats, bounds) of §5.2, by
            // the decoder. Every option before `k` passed them, so a failure
            // is `k`'s.
            if let Err(e) = KeyspaceOptions::decode(&o.encode(), 0) {
                let detail = match e {
                    FormatError::Corrupt { detail, .. } => detail,
                    other => other.to_string(),
                };
                return Err(p.bad(k, detail));
            }
        }
        Ok(o)
    }
}

/// Reorders encoded entries by option id (§5.1), so unknown ids carried
/// from a newer archive land in their place.
fn sort_entries(bytes: Vec<u8>) -> Vec<u8> {
    let mut entries: Vec<(u16, &[u8])> = Vec::new();
    let mut pos = 0;
    while let Some(head) = bytes.get(pos..).and_then(<[u8]>::first_chunk::<6>) {
        let tag = u16::from_le_bytes([head[0], head[1]]);
        let len = u32::from_le_bytes([head[2], head[3], head[4], head[5]]) as usize;
        let end = pos.saturating_add(6).saturating_add(len).min(bytes.len());
        let Some(entry) = bytes.get(pos..end) else { break };
        entries.push((tag & !OPTION_REQUIRED, entry));
        pos = end;
    }
    entries.sort_by_key(|e| e.0);
    entries.iter().flat_map(|e| e.1.iter().copied()).collect()
}

fn nonzero_u8(v: &mut Dec<'_>, what: &str) -> Result<u8> {
    let x = v.u8(what)?;
    if x == 0 {
        Err(v.err(format!("{what} 0")))
    } else {
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn full() -> KeyspaceOptions {
        KeyspaceOptions {
            data_block_compression: Some(vec![Compression::None, Compression::Lz4]),
            index_block_compression: Some(vec![Compression::None]),
            data_block_size: Some(vec![4096, 8192]),
            data_block_restart_interval: Some(vec![10, 16]),
            index_block_restart_interval: Some(vec![1]),
            data_block_hash_ratio: Some(vec![0.0, 0.5]),
            index_block_pinning: Some(vec![true, true, false]),
            filter_block_pinning: Some(vec![true, false]),
            index_block_partitioning: Some(vec![false, false, false, true]),
            filter_block_partitioning: Some(vec![false, true]),
            expect_point_read_hits: Some(true),
            filter_policy: Some(vec![
                FilterEntry::BloomFalsePositiveRate(0.0001),
                FilterEntry::BloomBitsPerKey(10.0),
                FilterEntry::None,
            ]),
            kv_separation: Some(KvSeparation {
                blob_compression: Compression::Lz4,
                file_target_size: 64 << 20,
                separation_threshold: 1024,
                staleness_threshold: 0.25,
                age_cutoff: 0.25,
            }),
            compaction: Some(Compaction::Leveled {
                l0_threshold: 4,
                table_target_size: 64 << 20,
                level_ratios: vec![10.0, 8.0],
            }),
            unknown: vec![UnknownOption { tag: 200, value: vec![1, 2, 3] }],
        }
    }

    #[test]
    fn unknown_ids_are_encoded_in_order() {
        let o = KeyspaceOptions {
            expect_point_read_hits: Some(true),
            unknown: vec![UnknownOption { tag: 5000, value: vec![] }],
            ..Default::default()
        };
        let mut o2 = o.clone();
        o2.unknown = vec![UnknownOption { tag: 3, value: vec![9] }];
        o2.data_block_size = None;
        assert_eq!(KeyspaceOptions::decode(&o.encode(), 0).unwrap(), o);
        // id 3 is a known id here, so use a known-but-absent slot only to check ordering
        let bytes = o2.encode();
        assert_eq!(u16::from_le_bytes([bytes[0], bytes[1]]), 3);
    }

    #[test]
    fn round_trip_all_options() {
        let o = full();
        assert_eq!(KeyspaceOptions::decode(&o.encode(), 0).unwrap(), o);
        let f = KeyspaceOptions {
            compaction: Some(Compaction::Fifo { limit_bytes: 1 << 30, ttl_seconds: Some(60) }),
            ..Default::default()
        };
        assert_eq!(KeyspaceOptions::decode(&f.encode(), 0).unwrap(), f);
        assert_eq!(KeyspaceOptions::decode(&[], 0).unwrap(), KeyspaceOptions::default());
    }

    #[test]
    fn hostile_values_are_rejected() {
        // empty policy
        let mut b = Vec::new();
        b.put_u16(1);
        b.put_u32(1);
        b.put_u8(0);
        assert!(KeyspaceOptions::decode(&b, 0).is_err());
        // NaN false-positive rate
        let o = KeyspaceOptions {
            filter_policy: Some(vec![FilterEntry::BloomFalsePositiveRate(f32::NAN)]),
            ..Default::default()
        };
        assert!(KeyspaceOptions::decode(&o.encode(), 0).is_err());
        // duplicated id
        let mut b = KeyspaceOptions { expect_point_read_hits: Some(true), ..Default::default() }.encode();
        b.extend(b.clone());
        assert!(KeyspaceOptions::decode(&b, 0).is_err());
        // length running past the end
        let mut b = Vec::new();
        b.put_u16(11);
        b.put_u32(1000);
        assert!(KeyspaceOptions::decode(&b, 0).is_err());
    }

    /// Stand-in engine defaults (the engine's own are `engine::default_kv_separation`).
    const KV_DEFAULTS: KvSeparation = KvSeparation {
        blob_compression: Compression::Lz4,
        file_target_size: 1 << 26,
        separation_threshold: 4096,
        staleness_threshold: 0.5,
        age_cutoff: 0.75,
    };

    fn parse(keyspace: &str, json: &str) -> std::result::Result<KeyspaceOptions, OptionsJsonError> {
        KeyspaceOptions::from_json(keyspace, json, &KV_DEFAULTS)
    }

    #[test]
    fn inspect_output_round_trips() {
        let json = r#"{
            "data_block_compression": ["none", "lz4"], "index_block_compression": "none",
            "data_block_size": [4096, 8192], "data_block_restart_interval": 16,
            "index_block_restart_interval": [1], "data_block_hash_ratio": [0.0, 0.5],
            "index_block_pinning": [true, false], "filter_block_pinning": true,
            "index_block_partitioning": false, "filter_block_partitioning": [false, true],
            "expect_point_read_hits": true,
            "filter_policy": [{"bloom_false_positive_rate": 0.0001}, {"bloom_bits_per_key": 10.0}, "none"],
            "kv_separation": {"blob_compression": "lz4", "file_target_size": 1048576, "separation_threshold": 512,
                              "staleness_threshold": 0.5, "age_cutoff": 0.125},
            "compaction": {"strategy": "fifo", "limit_bytes": 1073741824, "ttl_seconds": 60}
        }"#;
        let o = parse("ks", json).unwrap();
        assert_eq!(o.data_block_size, Some(vec![4096, 8192]));
        assert_eq!(o.data_block_restart_interval, Some(vec![16]));
        assert_eq!(o.compaction, Some(Compaction::Fifo { limit_bytes: 1 << 30, ttl_seconds: Some(60) }));
        // What inspect prints parses back to the same options.
        let again = parse("ks", &o.to_json().to_string()).unwrap();
        assert_eq!(again, o);
        // Every option (the values of unknown ids are not shown, so not carried).
        let mut f = full();
        f.unknown.clear();
        assert_eq!(parse("ks", &f.to_json().to_string()).unwrap(), f);
    }

    #[test]
    fn kv_separation_forms() {
        assert_eq!(parse("k", r#"{"kv_separation": true}"#).unwrap().kv_separation, Some(KV_DEFAULTS));
        assert!(parse("k", r#"{"kv_separation": null}"#).unwrap().kv_separation.is_none());
        assert!(parse("k", r#"{"kv_separation": false}"#).unwrap().kv_separation.is_none());
        let o = parse("k", r#"{"kv_separation": {"separation_threshold": 64}}"#).unwrap();
        assert_eq!(o.kv_separation, Some(KvSeparation { separation_threshold: 64, ..KV_DEFAULTS }));
        assert_eq!(parse("k", "{}").unwrap(), KeyspaceOptions::default());
        assert_eq!(parse("k", "null").unwrap(), KeyspaceOptions::default());
    }

    #[test]
    fn empty_level_ratios_mean_none_as_to_json_writes_them() {
        let o = KeyspaceOptions {
            compaction: Some(Compaction::Leveled { l0_threshold: 4, table_target_size: 1 << 20, level_ratios: vec![] }),
            ..Default::default()
        };
        assert_eq!(KeyspaceOptions::decode(&o.encode(), 0).unwrap(), o);
        assert_eq!(parse("k", &o.to_json().to_string()).unwrap(), o);
    }

    #[test]
    fn bad_options_are_refused_naming_keyspace_option_and_what_is_valid() {
        for (bad, says) in [
            ("[1]", "options must be a JSON object, found [1]"),
            ("{", "options are not valid JSON: "),
            (r#"{"nope": 1}"#, "unknown option 'nope' (supported: data_block_compression, "),
            (r#"{"data_block_size": 0}"#, "option 'data_block_size': expected a block size 1 to 4294967295, found 0"),
            (r#"{"data_block_size": []}"#, "option 'data_block_size': needs 1 to 255 values, has 0"),
            (r#"{"data_block_size": "big"}"#, "option 'data_block_size': expected a block size 1 to 4294967295"),
            (r#"{"data_block_compression": ["zip"]}"#, r#"option 'data_block_compression': expected "none" or "lz4""#),
            (
                r#"{"data_block_hash_ratio": 100.0}"#,
                "option 'data_block_hash_ratio': hash ratio 100 is out of range (valid: a finite number >= 0 and <= 64)",
            ),
            (
                r#"{"kv_separation": {"age_cutoff": 2.0}}"#,
                "option 'kv_separation': age_cutoff 2 is out of range (valid: a finite number >= 0 and <= 1)",
            ),
            (r#"{"kv_separation": {"colour": 1}}"#, "option 'kv_separation': unknown field 'colour' (known: "),
            (r#"{"kv_separation": 3}"#, "option 'kv_separation': expected null, a boolean or an object, found 3"),
            (r#"{"compaction": {"strategy": "tiered"}}"#, r#"option 'compaction': 'strategy' must be "leveled" or"#),
            (
                r#"{"compaction": {"strategy": "leveled", "l0_threshold": 0, "table_target_size": 1}}"#,
                "option 'compaction': leveled compaction needs l0_threshold and table_target_size of at least 1",
            ),
            (r#"{"compaction": {"strategy": "fifo"}}"#, "option 'compaction': fifo needs 'limit_bytes'"),
            (
                r#"{"filter_policy": [{"bloom_false_positive_rate": 1.5}]}"#,
                "option 'filter_policy': bloom false-positive rate 1.5 is out of range (valid: a finite number > 0 and < 1)",
            ),
            (r#"{"expect_point_read_hits": 1}"#, "option 'expect_point_read_hits': expected a boolean, found 1"),
            (
                r#"{"compaction": {"strategy": "leveled", "l0_threshold": 1, "table_target_size": 1, "level_ratios": [0]}}"#,
                "option 'compaction': level ratio 0 is out of range (valid: a finite number > 0)",
            ),
        ] {
            let e = parse("k", bad).unwrap_err();
            assert_eq!(e.keyspace, "k");
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("keyspace 'k': {says}")), "{bad}: {msg}");
        }
    }

    #[test]
    fn unknown_required_option_is_reported() {
        let o = KeyspaceOptions {
            unknown: vec![UnknownOption { tag: OPTION_REQUIRED | 300, value: vec![] }],
            ..Default::default()
        };
        let d = KeyspaceOptions::decode(&o.encode(), 0).unwrap();
        assert_eq!(d.unknown_required(), Some(300));
    }
}
