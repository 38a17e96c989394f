//! `floe inspect`: what an archive holds, from its header, keyspace table and
//! index only (no block is decompressed).

use crate::reader::Archive;
use serde_json::{json, Value};

/// Lowercase hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// RFC 3339 UTC rendering of Unix seconds (proleptic Gregorian calendar).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The `inspect --json` document. Field names are stable.
pub fn inspect_json<B: crate::reader::Source>(a: &Archive<B>) -> Value {
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
        "skipped_sections": a.skipped_sections().iter().map(|(t, o)| json!({"tag": t, "offset": o})).collect::<Vec<_>>(),
        "keyspaces": keyspaces,
    })
}

/// Human-readable bytes.
pub fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// The human-readable `inspect` report. The archive's own strings (its
/// name, the writer and engine, keyspace names, section tags) have their
/// control characters escaped ([`crate::text::escape`]); the JSON document
/// keeps them exact.
pub fn inspect_text<B: crate::reader::Source>(a: &Archive<B>) -> String {
    let h = a.header();
    let idx = a.index();
    let mut s = String::new();
    use crate::text::escape;
    use std::fmt::Write;
    let _ = writeln!(s, "archive         {} ({})", escape(a.name()), human(a.len()));
    let _ = writeln!(
        s,
        "format          {}.{} (required features {:#x}, optional {:#x})",
        h.format_major, h.format_minor, h.required_features, h.optional_features
    );
    let _ = writeln!(s, "written by      {}", escape(&h.writer));
    let _ = writeln!(s, "engine          {} {}", escape(&h.engine), escape(&h.engine_version));
    let _ = writeln!(s, "snapshot seqno  {}", h.snapshot_seqno);
    let _ = writeln!(s, "created         {} ({})", rfc3339(h.created_unix), h.created_unix);
    let _ = writeln!(s, "compression     zstd level {}, {} blocks", h.level, human(u64::from(h.block_target)));
    for (t, o) in a.skipped_sections() {
        let _ = writeln!(s, "skipped         optional section '{}' at offset {o}", escape(t));
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<24} {:>12} {:>12} {:>12} {:>7} {:>6}  options",
        "keyspace", "records", "raw", "compressed", "blocks", "ratio"
    );
    for (e, k) in a.keyspaces().iter().zip(&idx.keyspaces) {
        let t = &k.totals;
        let ratio = if t.compressed_bytes > 0 { t.raw_bytes as f64 / t.compressed_bytes as f64 } else { 0.0 };
        let o = &e.options;
        let mut opts = Vec::new();
        if let Some(kv) = &o.kv_separation {
            opts.push(format!("kv-separated (threshold {})", kv.separation_threshold));
        }
        if let Some(c) = &o.data_block_compression {
            opts.push(format!("data blocks {}", c.iter().map(|c| c.name()).collect::<Vec<_>>().join("/")));
        }
        if let Some(b) = &o.data_block_size {
            opts.push(format!("block size {}", b.iter().map(|x| x.to_string()).collect::<Vec<_>>().join("/")));
        }
        match &o.compaction {
            Some(crate::format::options::Compaction::Fifo { .. }) => opts.push("fifo compaction".into()),
            Some(crate::format::options::Compaction::Leveled { .. }) => opts.push("leveled compaction".into()),
            None => {}
        }
        let _ = writeln!(
            s,
            "{:<24} {:>12} {:>12} {:>12} {:>7} {:>5.2}x  {}",
            escape(&e.name),
            t.record_count,
            human(t.raw_bytes),
            human(t.compressed_bytes),
            t.block_count,
            ratio,
            opts.join(", ")
        );
    }
    let recs: u64 = idx.keyspaces.iter().map(|k| k.totals.record_count).sum();
    let raw: u64 = idx.keyspaces.iter().map(|k| k.totals.raw_bytes).sum();
    let comp: u64 = idx.keyspaces.iter().map(|k| k.totals.compressed_bytes).sum();
    let _ = writeln!(s, "{:<24} {:>12} {:>12} {:>12} {:>7}", "total", recs, human(raw), human(comp), idx.blocks.len());
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(super::rfc3339(-1), "1969-12-31T23:59:59Z");
    }
}
