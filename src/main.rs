//! The `floe` command-line tool: a thin front end over the library.

use clap::{Args, Parser, Subcommand};
use floe::export::{Destination, ExportOptions, DEFAULT_BLOCK_SIZE, DEFAULT_LEVEL};
use floe::import::ImportOptions;
use floe::inspect::human;
use floe::progress::{Progress, ProgressInfo};
use floe::{EngineError, Error};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit codes (documented in README).
mod exit {
    pub const ERROR: u8 = 1;
    pub const CORRUPT: u8 = 3;
    pub const TOO_NEW: u8 = 4;
    pub const LOCKED: u8 = 5;
    pub const TARGET_EXISTS: u8 = 6;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Parser)]
#[command(name = "floe", version = concat!(env!("CARGO_PKG_VERSION"), " (archive format 1.x, fjall ", env!("FLOE_FJALL_VERSION"), ")"))]
#[command(about = "Export and import fjall databases as single checksummed, zstd-readable archive files")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
struct Common {
    /// Worker threads (default: one per core).
    #[arg(long, short = 't', default_value_t = 0)]
    threads: usize,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Export a database (not open in another process) to an archive.
    Export {
        /// The fjall database directory.
        db: PathBuf,
        /// Output archive, or - for standard output. Written atomically.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// zstd compression level.
        #[arg(long, default_value_t = DEFAULT_LEVEL, allow_negative_numbers = true)]
        level: i32,
        /// Export only this keyspace (repeatable).
        #[arg(long = "keyspace", short = 'k')]
        keyspaces: Vec<String>,
        /// Raw block size in bytes (4096 to 67108864).
        #[arg(long, default_value_t = DEFAULT_BLOCK_SIZE)]
        block_size: u32,
        #[command(flatten)]
        common: Common,
    },
    /// Build a new database from an archive, atomically.
    Import {
        /// The archive, or - for standard input.
        archive: PathBuf,
        /// The database directory to create.
        db: PathBuf,
        /// Import only this keyspace (repeatable).
        #[arg(long = "keyspace", short = 'k')]
        keyspaces: Vec<String>,
        /// Replace an existing non-empty database (atomically swapped).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Check every checksum, block, key order and total of an archive.
    Verify {
        /// The archive, or - for standard input.
        archive: PathBuf,
        /// Check checksums and structure only, without decompressing.
        #[arg(long)]
        quick: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Show what an archive holds (header, keyspaces, totals, options).
    Inspect {
        archive: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Build a sample database, export, verify, import and compare it.
    Demo {
        /// Small records in the sample database.
        #[arg(long, default_value_t = 200_000)]
        records: u64,
        /// Keep the sample, archive and imported database in this directory.
        #[arg(long)]
        keep: Option<PathBuf>,
    },
}

/// Draws an indicatif bar on stderr.
struct Bar(ProgressBar);

impl Bar {
    fn new(quiet: bool, msg: &'static str) -> Bar {
        let target = if quiet || !std::io::stderr().is_terminal() { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        let pb = ProgressBar::with_draw_target(None, target);
        pb.set_style(
            ProgressStyle::with_template("{msg:8} {spinner} {bytes:>10} {binary_bytes_per_sec:>12} {wide_bar} {percent:>3}% {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.set_message(msg);
        Bar(pb)
    }
}

impl Progress for Bar {
    fn report(&self, p: &ProgressInfo) -> bool {
        if p.bytes_total > 0 && self.0.length() != Some(p.bytes_total) {
            self.0.set_length(p.bytes_total);
        }
        self.0.set_position(p.bytes_done);
        true
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

fn is_dash(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn opt_list(v: Vec<String>) -> Option<Vec<String>> {
    (!v.is_empty()).then_some(v)
}

fn rate(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".into();
    }
    format!("{}/s", human((bytes as f64 / secs) as u64))
}

/// Removes (or restores) what crashed runs left beside `target`, saying so.
fn report_leftovers(target: &Path) -> Result<(), Error> {
    for note in floe::fsutil::clean_leftovers(target)? {
        eprintln!("floe: {note}");
    }
    Ok(())
}

fn run(cli: Cli) -> Result<(), Error> {
    match cli.cmd {
        Cmd::Export { db, output, level, keyspaces, block_size, common } => {
            let opts = ExportOptions { level, threads: common.threads, keyspaces: opt_list(keyspaces), block_size, created_unix: None };
            if !is_dash(&output) {
                report_leftovers(&output)?;
            }
            let bar = Bar::new(common.quiet, "export");
            let dest = if is_dash(&output) { Destination::Stdout } else { Destination::File(&output) };
            let s = floe::export::export_path(&db, dest, &opts, &bar)?;
            drop(bar);
            if !common.quiet {
                let w = &s.write;
                eprintln!(
                    "exported {} records in {} keyspaces from snapshot {} ({} raw -> {} archive, {:.2}x) in {:.2}s, {}",
                    w.records,
                    w.keyspaces,
                    s.snapshot_seqno,
                    human(w.raw_bytes),
                    human(w.archive_bytes),
                    w.raw_bytes as f64 / w.archive_bytes.max(1) as f64,
                    s.elapsed.as_secs_f64(),
                    rate(w.raw_bytes, s.elapsed.as_secs_f64())
                );
            }
        }
        Cmd::Import { archive, db, keyspaces, replace, common } => {
            let opts = ImportOptions { threads: common.threads, keyspaces: opt_list(keyspaces), replace, ..Default::default() };
            report_leftovers(&db)?;
            let bar = Bar::new(common.quiet, "import");
            let s = if is_dash(&archive) {
                floe::import::import_stream(std::io::stdin().lock(), "<stdin>", &db, &opts, &bar)?
            } else {
                floe::import::import_file(&archive, &db, &opts, &bar)?
            };
            drop(bar);
            for w in &s.warnings {
                eprintln!("floe: warning: {w}");
            }
            if !common.quiet {
                eprintln!(
                    "imported {} records in {} keyspaces ({}) into {} in {:.2}s, {}",
                    s.records,
                    s.keyspaces,
                    human(s.raw_bytes),
                    db.display(),
                    s.elapsed.as_secs_f64(),
                    rate(s.raw_bytes, s.elapsed.as_secs_f64())
                );
            }
        }
        Cmd::Verify { archive, quick, json, common } => {
            let bar = Bar::new(common.quiet, "verify");
            let start = std::time::Instant::now();
            let r = if is_dash(&archive) {
                floe::reader::verify_stream(std::io::stdin().lock(), "<stdin>", quick, &bar)?
            } else {
                let a = floe::reader::Archive::open(&archive)?;
                a.verify_with(common.threads, quick, &bar)?
            };
            drop(bar);
            let secs = start.elapsed().as_secs_f64();
            if json {
                let v = serde_json::json!({
                    "ok": true, "archive": archive.display().to_string(), "quick": r.quick, "archive_bytes": r.archive_bytes,
                    "keyspaces": r.keyspaces, "blocks": r.blocks, "records": r.records, "raw_bytes": r.raw_bytes, "seconds": secs,
                });
                println!("{v}");
            } else {
                println!(
                    "OK {}: {} keyspaces, {} blocks, {} records, {} raw in {} ({}{:.2}s)",
                    archive.display(),
                    r.keyspaces,
                    r.blocks,
                    r.records,
                    human(r.raw_bytes),
                    human(r.archive_bytes),
                    if r.quick { "checksums only, " } else { "" },
                    secs
                );
            }
        }
        Cmd::Inspect { archive, json } => {
            if is_dash(&archive) {
                return Err(Error::InvalidArgument("inspect needs a file (it reads the index at the end); use `floe verify -` for a stream".into()));
            }
            let a = floe::reader::Archive::open(&archive)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&floe::inspect::inspect_json(&a)).unwrap_or_default());
            } else {
                print!("{}", floe::inspect::inspect_text(&a));
            }
        }
        Cmd::Demo { records, keep } => floe::demo::run(records, keep.as_deref())?,
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _ = ctrlc::set_handler(floe::fsutil::set_interrupted);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floe: error: {e}");
            let code = match &e {
                Error::Cancelled => exit::INTERRUPTED,
                Error::Archive { source, .. } if source.is_unsupported() => exit::TOO_NEW,
                Error::Archive { .. } => exit::CORRUPT,
                Error::Engine(EngineError::Locked { .. }) => exit::LOCKED,
                Error::TargetExists(_) => exit::TARGET_EXISTS,
                _ => exit::ERROR,
            };
            ExitCode::from(code)
        }
    }
}
