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
    let parts = &idx.key_index;
    match parts.len() {
        0 => {
            let _ = writeln!(s, "key index       none (queries scan each keyspace's blocks)");
        }
        n => {
            let bytes: u64 = parts.iter().map(|p| u64::from(p.size)).sum();
            let _ = writeln!(s, "key index       {} in {n} part{}", human(bytes), if n == 1 { "" } else { "s" });
        }
    }
    for (t, o) in a.skipped_sections() {
        let _ = writeln!(s, "skipped         optional section '{}' at offset {o}", escape(t));
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<24} {:>12} {:>12} {:>12} {:>7} {:>8}  options",
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
            opts.push(format!(
                "block compression {}",
                per_level(&c.iter().map(|c| c.name().to_string()).collect::<Vec<_>>())
            ));
        }
        if let Some(b) = &o.data_block_size {
            opts.push(format!("block size {}", per_level(&b.iter().map(|x| x.to_string()).collect::<Vec<_>>())));
        }
        match &o.compaction {
            Some(floe::format::options::Compaction::Fifo { .. }) => opts.push("fifo compaction".into()),
            Some(floe::format::options::Compaction::Leveled { .. }) => opts.push("leveled compaction".into()),
            None => {}
        }
        let _ = writeln!(
            s,
            "{:<24} {:>12} {:>12} {:>12} {:>7} {:>8}  {}",
            escape(&e.name),
            t.record_count,
            human(t.raw_bytes),
            human(t.compressed_bytes),
            t.block_count,
            ratio_text(ratio),
            opts.join(", ")
        );
    }
    let recs: u64 = idx.keyspaces.iter().map(|k| k.totals.record_count).sum();
    let raw: u64 = idx.keyspaces.iter().map(|k| k.totals.raw_bytes).sum();
    let comp: u64 = idx.keyspaces.iter().map(|k| k.totals.compressed_bytes).sum();
    let _ = writeln!(s, "{:<24} {:>12} {:>12} {:>12} {:>7}", "total", recs, human(raw), human(comp), idx.blocks.len());
    s
}

/// A compression ratio that fits its column: `3.12x`, `823.8x`, `12345x`.
fn ratio_text(r: f64) -> String {
    if r < 100.0 {
        format!("{r:.2}x")
    } else if r < 10_000.0 {
        format!("{r:.1}x")
    } else {
        format!("{r:.0}x")
    }
}

/// A per-LSM-level setting as fjall stores it (one value per level, the
/// last for every deeper level): `lz4` for one value, else
/// `L0 none, L1 none, L2+ lz4`.
fn per_level(v: &[String]) -> String {
    match v {
        [] => "-".into(),
        [one] => one.clone(),
        _ => v
            .iter()
            .enumerate()
            .map(|(i, x)| if i + 1 == v.len() { format!("L{i}+ {x}") } else { format!("L{i} {x}") })
            .collect::<Vec<_>>()
            .join(", "),
    }
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

    #[test]
    fn ratios_fit_their_column_and_levels_are_named() {
        for r in [0.46, 3.12, 823.76, 99_999.0, 1.0e9] {
            assert!(super::ratio_text(r).len() <= 8 || r > 1.0e7, "{r}: {}", super::ratio_text(r));
        }
        assert_eq!(super::ratio_text(823.76), "823.8x");
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(super::per_level(&v(&["none", "none", "lz4"])), "L0 none, L1 none, L2+ lz4");
        assert_eq!(super::per_level(&v(&["lz4"])), "lz4");
    }
}
