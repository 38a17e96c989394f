//! `floe demo`: the README's first command. Builds a sample database, exports
//! it, verifies the archive, imports it into a fresh directory and compares.

use floe::export::{Destination, ExportOptions};
use floe::import::ImportOptions;
use floe::progress::NoProgress;
use floe::text::human;
use floe::{Error, Result};
use std::path::Path;
use std::time::Instant;

/// A line on standard output (control characters escaped); `?`s a write error.
/// With `--json` the lines go to standard error, leaving stdout to the document.
macro_rules! say {
    ($json:expr; $($arg:tt)*) => {
        if $json {
            let _ = std::io::Write::write_all(
                &mut std::io::stderr().lock(),
                format!("{}\n", floe::text::escape(&format!($($arg)*))).as_bytes(),
            );
        } else {
            floe::text::print_line(&format!($($arg)*))?
        }
    };
}

/// A rate in binary units, like every other floe message (`412.3 MiB/s`).
fn mbps(bytes: u64, secs: f64) -> String {
    format!("{}/s", human((bytes as f64 / secs.max(1e-9)) as u64))
}

/// Runs the demo with about `records` small records; keeps files in `keep` if given.
pub fn run(records: u64, keep: Option<&Path>, json: bool) -> Result<()> {
    let tmp = tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
    let root = match keep {
        Some(k) => {
            std::fs::create_dir_all(k).map_err(|e| Error::io(format!("creating {}", k.display()), e))?;
            k.to_path_buf()
        }
        None => tmp.path().to_path_buf(),
    };
    let src = root.join("sample-db");
    let archive = root.join("sample.floe");
    let dst = root.join("imported-db");
    // The demo never deletes or overwrites: in a --keep directory, whatever is
    // already there under the demo's names may be the user's.
    for p in [&src, &archive, &dst] {
        if std::fs::symlink_metadata(p).is_ok() {
            return Err(Error::InvalidArgument(format!(
                "{} already exists; the demo never deletes or overwrites anything: remove it, or pass --keep with a new directory",
                p.display()
            )));
        }
    }
    say!(json; "floe demo: building a sample fjall database with ~{records} records in {}", src.display());
    let t = Instant::now();
    let st = floe::sample::build_sample(&src, records)?;
    say!(json;
        "  built {} keyspaces, {} of keys and values in {:.2}s",
        st.keyspaces,
        human(st.logical_bytes),
        t.elapsed().as_secs_f64()
    );

    let s = floe::export::export_path(&src, Destination::File(&archive), &ExportOptions::default(), &NoProgress)?;
    let secs = s.elapsed.as_secs_f64();
    let w = &s.write;
    say!(json;
        "  export : {} records, {} keyspaces, snapshot {} -> {} ({} raw, {:.2}x) in {:.2}s = {}",
        w.records,
        w.keyspaces,
        s.snapshot_seqno,
        archive.display(),
        human(w.raw_bytes),
        w.raw_bytes as f64 / w.archive_bytes.max(1) as f64,
        secs,
        mbps(w.raw_bytes, secs)
    );

    let a = floe::read::Archive::open(&archive)?;
    let t = Instant::now();
    let quick = a.verify_with(0, true, &NoProgress)?;
    let tq = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let full = a.verify_with(0, false, &NoProgress)?;
    let tf = t.elapsed().as_secs_f64();
    say!(json;
        "  verify : quick (checksums) {:.3}s = {}; full (decompress, key order, totals) {:.2}s = {}; {} blocks OK",
        tq,
        mbps(quick.archive_bytes, tq),
        tf,
        mbps(full.raw_bytes, tf),
        full.blocks
    );
    drop(a);

    let s = floe::import::import_file(&archive, &dst, &ImportOptions::default(), &NoProgress)?;
    let secs = s.elapsed.as_secs_f64();
    say!(json; "  import : {} records into {} in {:.2}s = {}", s.records, dst.display(), secs, mbps(s.raw_bytes, secs));

    let a = floe::engine::open_existing(&src)?;
    let b = floe::engine::open_existing(&dst)?;
    let n = floe::sample::compare_databases(&a, &b)
        .map_err(|d| Error::InvalidArgument(format!("demo: imported database differs: {d}")))?;
    say!(json; "  compare: {n} records and every keyspace's options identical in source and imported database");
    say!(json; "  try    : zstd -t {0} && zstd -dc {0} | head -c 200 | xxd | head", archive.display());
    if keep.is_none() {
        say!(json; "  (temporary files removed; pass --keep DIR to keep them)");
    }
    Ok(())
}
