//! `floe inspect`: what an archive holds, from its header, keyspace table and
//! index only (no block is decompressed).

use crate::read::Archive;
use crate::util::text::{hex, rfc3339};
use serde_json::{json, Value};

/// The `inspect --json` document. Field names are stable.
pub fn inspect_json<B: crate::read::Source>(a: &Archive<B>) -> Value {
    let h = a.header();
    let idx = a.index();
    let keyspaces: Vec<Value> = a
        .keyspaces()
        .iter()
        .zip(&idx.keyspaces)
        .map(|(e, k)| {
            let t = &k.totals;
            json!({
                "name": e.name,
                "records": t.record_count,
                "key_bytes": t.key_bytes,
                "value_bytes": t.value_bytes,
                "raw_bytes": t.raw_bytes,
                "compressed_bytes": t.compressed_bytes,
                "blocks": t.block_count,
                "first_key_hex": hex(&t.first_key),
                "last_key_hex": hex(&t.last_key),
                "options": e.options.to_json(),
            })
        })
        .collect();
    let sum = |f: fn(&crate::format::record::Totals) -> u64| idx.keyspaces.iter().map(|k| f(&k.totals)).sum::<u64>();
    json!({
        "file": a.name(),
        "archive_bytes": a.len(),
        "format_version": format!("{}.{}", h.format_major, h.format_minor),
        "required_features": h.required_features,
        "optional_features": h.optional_features,
        "writer": h.writer,
        "engine": h.engine,
        "engine_version": h.engine_version,
        "snapshot_seqno": h.snapshot_seqno,
        "created_unix": h.created_unix,
        "created": rfc3339(h.created_unix),
        "codec": "zstd",
        "zstd_level": h.level,
        "block_size": h.block_target,
        "blocks": idx.blocks.len(),
        "records": sum(|t| t.record_count),
        "raw_bytes": sum(|t| t.raw_bytes),
        "compressed_bytes": sum(|t| t.compressed_bytes),
        "key_index": {
            "parts": idx.key_index.len(),
            "bytes": idx.key_index.iter().map(|p| u64::from(p.size)).sum::<u64>(),
        },
        "skipped_sections": a.skipped_sections().iter().map(|(t, o)| json!({"tag": t, "offset": o})).collect::<Vec<_>>(),
        "keyspaces": keyspaces,
    })
}
