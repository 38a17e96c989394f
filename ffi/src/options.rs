//! Keyspace options given to the writer as JSON, mirroring the `options`
//! object of `floe inspect --json` (format-spec §5.2), so options read from
//! one archive can be given to a writer unchanged.

use crate::error::{FResult, Fail};
use floe_core::format::options::{Compaction, Compression, FilterEntry, KeyspaceOptions, KvSeparation};
use serde_json::{Map, Value};

/// Keys accepted in an options object.
pub(crate) const SUPPORTED: &[&str] = &[
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

fn bad(key: &str, detail: impl std::fmt::Display) -> Fail {
    Fail::invalid(format!("keyspace option '{key}': {detail}"))
}

/// A policy: an array of 1 to 255 values (one per LSM level, the last
/// repeating), or a single value meaning "the same on every level".
fn policy<T>(key: &str, v: &Value, f: impl Fn(&Value) -> Option<T>, expect: &str) -> FResult<Vec<T>> {
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    if items.is_empty() || items.len() > 255 {
        return Err(bad(key, format!("needs 1 to 255 values, has {}", items.len())));
    }
    items.into_iter().map(|x| f(x).ok_or_else(|| bad(key, format!("expected {expect}, found {x}")))).collect()
}

fn compression(v: &Value) -> Option<Compression> {
    match v.as_str()? {
        "none" => Some(Compression::None),
        "lz4" => Some(Compression::Lz4),
        _ => None,
    }
}

fn uint<T: TryFrom<u64>>(v: &Value) -> Option<T> {
    v.as_u64().and_then(|x| T::try_from(x).ok())
}

fn float(v: &Value) -> Option<f32> {
    v.as_f64().map(|x| x as f32)
}

fn filter_entry(v: &Value) -> Option<FilterEntry> {
    match v {
        Value::String(s) if s == "none" => Some(FilterEntry::None),
        Value::Object(m) if m.len() == 1 => {
            let (k, x) = m.iter().next()?;
            let x = float(x)?;
            match k.as_str() {
                "bloom_bits_per_key" => Some(FilterEntry::BloomBitsPerKey(x)),
                "bloom_false_positive_rate" => Some(FilterEntry::BloomFalsePositiveRate(x)),
                _ => None,
            }
        }
        _ => None,
    }
}

fn fields<'a>(key: &str, m: &'a Map<String, Value>, allowed: &[&str]) -> FResult<&'a Map<String, Value>> {
    if let Some(k) = m.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(key, format!("unknown field '{k}' (known: {})", allowed.join(", "))));
    }
    Ok(m)
}

fn field<T>(
    key: &str,
    m: &Map<String, Value>,
    name: &str,
    f: impl Fn(&Value) -> Option<T>,
    expect: &str,
) -> FResult<Option<T>> {
    match m.get(name) {
        None => Ok(None),
        Some(v) => f(v).map(Some).ok_or_else(|| bad(key, format!("field '{name}': expected {expect}, found {v}"))),
    }
}

fn kv_separation(v: &Value) -> FResult<Option<KvSeparation>> {
    const K: &str = "kv_separation";
    let d = fjall::KvSeparationOptions::default();
    let mut kv = KvSeparation {
        blob_compression: if matches!(d.compression, fjall::CompressionType::None) {
            Compression::None
        } else {
            Compression::Lz4
        },
        file_target_size: d.file_target_size,
        separation_threshold: d.separation_threshold,
        staleness_threshold: d.staleness_threshold,
        age_cutoff: d.age_cutoff,
    };
    match v {
        Value::Null | Value::Bool(false) => Ok(None),
        Value::Bool(true) => Ok(Some(kv)),
        Value::Object(m) => {
            let m = fields(
                K,
                m,
                &["blob_compression", "file_target_size", "separation_threshold", "staleness_threshold", "age_cutoff"],
            )?;
            if let Some(c) = field(K, m, "blob_compression", compression, "\"none\" or \"lz4\"")? {
                kv.blob_compression = c;
            }
            if let Some(x) = field(K, m, "file_target_size", uint::<u64>, "an unsigned integer")? {
                kv.file_target_size = x;
            }
            if let Some(x) = field(K, m, "separation_threshold", uint::<u32>, "an unsigned 32-bit integer")? {
                kv.separation_threshold = x;
            }
            if let Some(x) = field(K, m, "staleness_threshold", float, "a number")? {
                kv.staleness_threshold = x;
            }
            if let Some(x) = field(K, m, "age_cutoff", float, "a number")? {
                kv.age_cutoff = x;
            }
            Ok(Some(kv))
        }
        other => Err(bad(K, format!("expected null, a boolean or an object, found {other}"))),
    }
}

fn compaction(v: &Value) -> FResult<Option<Compaction>> {
    const K: &str = "compaction";
    let m = match v {
        Value::Null => return Ok(None),
        Value::Object(m) => m,
        other => return Err(bad(K, format!("expected null or an object, found {other}"))),
    };
    match m.get("strategy").and_then(Value::as_str) {
        Some("leveled") => {
            let m = fields(K, m, &["strategy", "l0_threshold", "table_target_size", "level_ratios"])?;
            let l0_threshold = field(K, m, "l0_threshold", uint::<u8>, "an integer 1 to 255")?
                .ok_or_else(|| bad(K, "leveled needs 'l0_threshold'"))?;
            let table_target_size = field(K, m, "table_target_size", uint::<u64>, "an unsigned integer")?
                .ok_or_else(|| bad(K, "leveled needs 'table_target_size'"))?;
            let level_ratios = match m.get("level_ratios") {
                None => Vec::new(),
                Some(r) => policy("compaction.level_ratios", r, float, "a number")?,
            };
            Ok(Some(Compaction::Leveled { l0_threshold, table_target_size, level_ratios }))
        }
        Some("fifo") => {
            let m = fields(K, m, &["strategy", "limit_bytes", "ttl_seconds"])?;
            let limit_bytes = field(K, m, "limit_bytes", uint::<u64>, "an unsigned integer")?
                .ok_or_else(|| bad(K, "fifo needs 'limit_bytes'"))?;
            let ttl_seconds = match m.get("ttl_seconds") {
                None | Some(Value::Null) => None,
                Some(t) => Some(uint::<u64>(t).ok_or_else(|| {
                    bad(K, format!("field 'ttl_seconds': expected null or an unsigned integer, found {t}"))
                })?),
            };
            Ok(Some(Compaction::Fifo { limit_bytes, ttl_seconds }))
        }
        _ => Err(bad(K, "'strategy' must be \"leveled\" or \"fifo\"")),
    }
}

/// Parses an options object. Absent keys keep the engine's defaults.
pub(crate) fn parse(keyspace: &str, json: &str) -> FResult<KeyspaceOptions> {
    let v: Value = serde_json::from_str(json)
        .map_err(|e| Fail::invalid(format!("keyspace '{keyspace}': options are not valid JSON: {e}")))?;
    let m = match v {
        Value::Object(m) => m,
        Value::Null => return Ok(KeyspaceOptions::default()),
        other => {
            return Err(Fail::invalid(format!("keyspace '{keyspace}': options must be a JSON object, found {other}")))
        }
    };
    let mut o = KeyspaceOptions::default();
    for (k, v) in &m {
        let k = k.as_str();
        let comp = "\"none\" or \"lz4\"";
        match k {
            "data_block_compression" => o.data_block_compression = Some(policy(k, v, compression, comp)?),
            "index_block_compression" => o.index_block_compression = Some(policy(k, v, compression, comp)?),
            "data_block_size" => {
                o.data_block_size =
                    Some(policy(k, v, |x| uint::<u32>(x).filter(|&n| n > 0), "a block size 1 to 4294967295")?)
            }
            "data_block_restart_interval" => {
                o.data_block_restart_interval =
                    Some(policy(k, v, |x| uint::<u8>(x).filter(|&n| n > 0), "an integer 1 to 255")?)
            }
            "index_block_restart_interval" => {
                o.index_block_restart_interval =
                    Some(policy(k, v, |x| uint::<u8>(x).filter(|&n| n > 0), "an integer 1 to 255")?)
            }
            "data_block_hash_ratio" => o.data_block_hash_ratio = Some(policy(k, v, float, "a number")?),
            "index_block_pinning" => o.index_block_pinning = Some(policy(k, v, Value::as_bool, "a boolean")?),
            "filter_block_pinning" => o.filter_block_pinning = Some(policy(k, v, Value::as_bool, "a boolean")?),
            "index_block_partitioning" => o.index_block_partitioning = Some(policy(k, v, Value::as_bool, "a boolean")?),
            "filter_block_partitioning" => {
                o.filter_block_partitioning = Some(policy(k, v, Value::as_bool, "a boolean")?)
            }
            "expect_point_read_hits" => {
                o.expect_point_read_hits =
                    Some(v.as_bool().ok_or_else(|| bad(k, format!("expected a boolean, found {v}")))?)
            }
            "filter_policy" => {
                o.filter_policy = Some(policy(
                    k,
                    v,
                    filter_entry,
                    "\"none\", {\"bloom_bits_per_key\": x} or {\"bloom_false_positive_rate\": x}",
                )?)
            }
            "kv_separation" => o.kv_separation = kv_separation(v)?,
            "compaction" => o.compaction = compaction(v)?,
            // Output-only in `inspect --json` (the values are not shown), accepted and ignored.
            "unknown_option_ids" => {}
            other => {
                return Err(Fail::invalid(format!(
                    "keyspace '{keyspace}': unknown option '{other}' (supported: {})",
                    SUPPORTED.join(", ")
                )));
            }
        }
    }
    // Range checks of the format (finite floats, bounds) and of the engine.
    KeyspaceOptions::decode(&o.encode(), 0)
        .map_err(|e| Fail::invalid(format!("keyspace '{keyspace}': invalid options: {e}")))?;
    floe_core::engine::create_options(keyspace, &o).map_err(|e| Fail::invalid(format!("invalid options: {e}")))?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn kv_separation_forms() {
        assert!(parse("k", r#"{"kv_separation": true}"#).unwrap().kv_separation.is_some());
        assert!(parse("k", r#"{"kv_separation": null}"#).unwrap().kv_separation.is_none());
        assert!(parse("k", r#"{"kv_separation": false}"#).unwrap().kv_separation.is_none());
        let o = parse("k", r#"{"kv_separation": {"separation_threshold": 64}}"#).unwrap();
        assert_eq!(o.kv_separation.unwrap().separation_threshold, 64);
        assert_eq!(parse("k", "{}").unwrap(), KeyspaceOptions::default());
        assert_eq!(parse("k", "null").unwrap(), KeyspaceOptions::default());
    }

    #[test]
    fn bad_options_are_refused() {
        for bad in [
            "[1]",
            "{",
            r#"{"nope": 1}"#,
            r#"{"data_block_size": 0}"#,
            r#"{"data_block_size": []}"#,
            r#"{"data_block_size": "big"}"#,
            r#"{"data_block_compression": ["zip"]}"#,
            r#"{"data_block_hash_ratio": 100.0}"#,
            r#"{"kv_separation": {"age_cutoff": 2.0}}"#,
            r#"{"kv_separation": {"colour": 1}}"#,
            r#"{"kv_separation": 3}"#,
            r#"{"compaction": {"strategy": "tiered"}}"#,
            r#"{"compaction": {"strategy": "leveled", "l0_threshold": 0, "table_target_size": 1}}"#,
            r#"{"compaction": {"strategy": "fifo"}}"#,
            r#"{"filter_policy": [{"bloom_false_positive_rate": 1.5}]}"#,
            r#"{"expect_point_read_hits": 1}"#,
        ] {
            let e = parse("k", bad).unwrap_err();
            assert_eq!(e.status, crate::floe_status::FLOE_INVALID_ARGUMENT, "{bad}: {}", e.message);
        }
    }
}
