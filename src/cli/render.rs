//! Human-readable reports of the CLI.

use floe::read::{Archive, Source};
use floe::text::{escape, human, rfc3339};

/// The human-readable `inspect` report. The archive's own strings (its
/// name, the writer and engine, keyspace names, section tags) have their
/// control characters escaped ([`escape`]); the JSON document
/// keeps them exact.
pub fn inspect_text<B: Source>(a: &Archive<B>) -> String {
    let h = a.header();
    let idx = a.index();
    let mut s = String::new();

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
            Some(floe::format::options::Compaction::Fifo { .. }) => opts.push("fifo compaction".into()),
            Some(floe::format::options::Compaction::Leveled { .. }) => opts.push("leveled compaction".into()),
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
