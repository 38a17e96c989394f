//! The `floe` command-line tool: a thin front end over the library.

use clap::builder::{RangedI64ValueParser, RangedU64ValueParser};
use clap::{Args, Parser, Subcommand};
use floe::export::{Destination, ExportOptions, DEFAULT_BLOCK_SIZE, DEFAULT_LEVEL};
use floe::format::limits::{MAX_BLOCK_RAW, MIN_BLOCK_TARGET};
use floe::import::ImportOptions;
use floe::progress::{Progress, ProgressInfo};
use floe::store::Location;
use floe::text::human;
use floe::text::{escape, write_stdout};
use floe::MAX_THREADS;
use floe::{Error, ErrorKind};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod demo;
mod log;
mod query;
mod render;

use log::LogFormat;

/// Exit codes (documented in README).
mod exit {
    pub const ERROR: u8 = 1;
    pub const CORRUPT: u8 = 3;
    pub const TOO_NEW: u8 = 4;
    pub const LOCKED: u8 = 5;
    pub const TARGET_EXISTS: u8 = 6;
    /// The answer is no: `get` found no such key.
    pub const NOT_FOUND: u8 = 7;
    /// The answer is no: `diff` found that the archives differ.
    pub const DIFFERENT: u8 = 7;
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Parser)]
#[command(name = "floe", version = concat!(env!("CARGO_PKG_VERSION"), " (archive format 1.x, fjall ", env!("FLOE_FJALL_VERSION"), ")"))]
#[command(about = "Export and import fjall databases as single checksummed, zstd-readable archive files")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// More log output on stderr: -v info (phases, timings, snapshot), -vv debug, -vvv trace. RUST_LOG overrides.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log line format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// Print the result as one JSON document on stdout, and a failure as
    /// {"ok": false, "error": {...}} (schema: README, "JSON output").
    #[arg(long, global = true)]
    json: bool,
}

/// `--level`: the linked zstd's range (checked at parse time, exit code 2).
fn level_parser() -> RangedI64ValueParser<i32> {
    let r = zstd::compression_level_range();
    RangedI64ValueParser::new().range(i64::from(*r.start())..=i64::from(*r.end()))
}

/// `--threads`: 0 (one per core) to `MAX_THREADS`.
fn threads_parser() -> RangedU64ValueParser<usize> {
    RangedU64ValueParser::new().range(0..=MAX_THREADS as u64)
}

/// `--block-size`: 4096 to 64 MiB (format-spec §1.1).
fn block_size_parser() -> RangedU64ValueParser<u32> {
    RangedU64ValueParser::new().range(u64::from(MIN_BLOCK_TARGET)..=u64::from(MAX_BLOCK_RAW))
}

#[derive(Args)]
struct Common {
    /// Worker threads: 1 to 256, or 0 (the default) for one per core.
    #[arg(long, short = 't', default_value_t = 0, hide_default_value = true, value_parser = threads_parser())]
    threads: usize,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// How an archive is written: shared by `export` and `backup create`.
#[derive(Args)]
struct ArchiveArgs {
    /// zstd compression level, within the linked zstd's range (-131072 to 22 for zstd 1.5).
    #[arg(long, default_value_t = DEFAULT_LEVEL, allow_negative_numbers = true, value_parser = level_parser())]
    level: i32,
    /// Only this keyspace (repeatable).
    #[arg(long = "keyspace", short = 'k')]
    keyspaces: Vec<String>,
    /// Raw block size in bytes (4096 to 67108864).
    #[arg(long, default_value_t = DEFAULT_BLOCK_SIZE, value_parser = block_size_parser())]
    block_size: u32,
}

impl ArchiveArgs {
    /// The library's export options for these flags and `threads`.
    fn export_options(self, threads: usize) -> ExportOptions {
        let mut o = ExportOptions::default();
        o.level = self.level;
        o.threads = threads;
        o.keyspaces = opt_list(self.keyspaces);
        o.block_size = self.block_size;
        o
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Export a database (not open in another process) to an archive.
    Export {
        /// The fjall database directory.
        db: PathBuf,
        /// Output archive: a path, file:///path or s3://bucket/key, or - for
        /// standard output. Written atomically (a file) or by an upload that
        /// is aborted on failure (an object).
        #[arg(short = 'o', long = "output")]
        output: String,
        #[command(flatten)]
        archive: ArchiveArgs,
        #[command(flatten)]
        range: query::RangeArgs,
        /// Overwrite an existing output file (by default export refuses to, exit code 6).
        #[arg(long, short = 'f')]
        force: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Build a new database from an archive, atomically.
    Import {
        /// The archive (path, file:// or s3:// URL), or - for standard input.
        archive: String,
        /// The database directory to create.
        db: PathBuf,
        /// Import only this keyspace (repeatable).
        #[arg(long = "keyspace", short = 'k')]
        keyspaces: Vec<String>,
        #[command(flatten)]
        range: query::RangeArgs,
        /// Replace an existing non-empty database (atomically swapped).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Check every checksum, block, key order and total of an archive.
    Verify {
        /// The archive (path, file:// or s3:// URL), or - for standard input.
        archive: String,
        /// Check checksums and structure only, without decompressing.
        #[arg(long)]
        quick: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Show what an archive holds (header, keyspaces, totals, options).
    Inspect {
        /// The archive (path, file:// or s3:// URL). Only the trailer, index,
        /// header and keyspace table are read.
        archive: String,
    },
    /// Print the value of one key (raw bytes; --json for an object). Exit code 7 if the key is absent.
    Get(query::GetArgs),
    /// Stream the records of an archive (all, or some keyspaces and a key range) as jsonl or tsv.
    Cat(query::CatArgs),
    /// Compare two archives key by key; exit code 7 when they differ.
    Diff {
        /// The old archive (path, file:// or s3:// URL).
        a: String,
        /// The new archive (path, file:// or s3:// URL).
        b: String,
        /// Compare only this keyspace (repeatable).
        #[arg(long = "keyspace", short = 'k')]
        keyspaces: Vec<String>,
    },
    /// A backup repository of snapshots at a URL or in a local directory.
    Backup {
        #[command(subcommand)]
        cmd: BackupCmd,
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
    /// Print a shell completion script (e.g. floe completions bash > /etc/bash_completion.d/floe).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout (e.g. floe man | man -l -).
    Man,
}

#[derive(Args)]
struct LockArgs {
    /// Break the repository lock if its lease has expired (its holder died).
    #[arg(long)]
    break_lock: bool,
    /// Wait up to this many seconds for a lock held by another job.
    #[arg(long, default_value_t = 0)]
    wait: u64,
}

#[derive(Subcommand)]
enum BackupCmd {
    /// Export a database into the repository as a new snapshot and publish it.
    Create {
        /// The fjall database directory (not open in another process).
        db: PathBuf,
        /// The repository: a directory, file:///dir or s3://bucket/prefix.
        #[arg(long)]
        repo: String,
        /// Free text stored with the snapshot.
        #[arg(long)]
        remarks: Option<String>,
        /// After publishing, keep only the newest N snapshots (1 to 10000).
        #[arg(long)]
        keep: Option<usize>,
        #[command(flatten)]
        archive: ArchiveArgs,
        #[command(flatten)]
        lock: LockArgs,
        #[command(flatten)]
        common: Common,
    },
    /// List the snapshots of the repository.
    List {
        /// The repository: a directory, file:///dir or s3://bucket/prefix.
        #[arg(long)]
        repo: String,
    },
    /// Check snapshots (all when no ID is given) against the manifest's size
    /// and SHA-256, and verify them fully.
    Verify {
        /// The repository: a directory, file:///dir or s3://bucket/prefix.
        #[arg(long)]
        repo: String,
        /// Snapshot ids to check (all when none is given).
        ids: Vec<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Check a snapshot against its checksum, then build a new database from it atomically.
    Restore {
        /// The repository: a directory, file:///dir or s3://bucket/prefix.
        #[arg(long)]
        repo: String,
        /// The snapshot id (see `floe backup list`).
        id: String,
        /// The database directory to create (must be absent or empty, or --replace).
        db: PathBuf,
        /// Replace an existing non-empty database (atomically swapped).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Remove snapshots: from the manifest first, then their objects.
    Delete {
        /// The repository: a directory, file:///dir or s3://bucket/prefix.
        #[arg(long)]
        repo: String,
        /// Snapshot ids to remove.
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Remove objects no manifest entry references (left by crashes) and old manifest generations.
    Gc {
        /// The repository: a directory, file:///dir or s3://bucket/prefix.
        #[arg(long)]
        repo: String,
        /// Keep unreferenced objects younger than this (e.g. 0s, 90s, 30m, 2h, 1d).
        #[arg(long, default_value = "1h", value_parser = floe::backup::parse_duration)]
        grace: std::time::Duration,
        #[command(flatten)]
        lock: LockArgs,
    },
}

/// Draws an indicatif bar on stderr: bytes done of the total, percent, rate,
/// time left, records and the current keyspace; a spinner with bytes and
/// rate while no total is known (a stream). Cleared when dropped, leaving
/// no line behind; log lines are printed above it (see `log`).
struct Bar {
    pb: ProgressBar,
    /// The current keyspace, escaped for the terminal.
    keyspace: std::sync::Mutex<String>,
    /// Totals known beforehand (bytes, records) for a stream that reports none.
    known: std::sync::Mutex<Option<(u64, u64)>>,
}

/// The bar's line once a total is known.
const WITH_TOTAL: &str =
    "{prefix:6} {percent:>3}% [{bar:10}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}";
/// The bar's line while no total is known.
const NO_TOTAL: &str = "{prefix:6} {spinner} {bytes} {binary_bytes_per_sec} {elapsed} {wide_msg}";

impl Bar {
    fn new(quiet: bool, msg: &'static str) -> Bar {
        Bar::shown(!quiet, msg)
    }

    /// A bar drawn only if `show` and stderr is a terminal.
    fn shown(show: bool, msg: &'static str) -> Bar {
        let target = if !show || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let pb = ProgressBar::with_draw_target(None, target);
        pb.set_style(Bar::style(NO_TOTAL));
        pb.set_prefix(msg);
        log::show_bar(Some(&pb));
        Bar { pb, keyspace: std::sync::Mutex::new(String::new()), known: std::sync::Mutex::new(None) }
    }

    /// Totals to show while the operation reports none.
    fn expect(&self, totals: Option<(u64, u64)>) {
        if let Ok(mut k) = self.known.lock() {
            *k = totals;
        }
    }

    fn style(template: &str) -> ProgressStyle {
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
    }
}

impl Progress for Bar {
    fn report(&self, p: &ProgressInfo) -> bool {
        let mut p = *p;
        if let (0, Ok(Some((bytes, records)))) = (p.bytes_total, self.known.lock().as_deref()) {
            (p.bytes_total, p.records_total) = (*bytes, *records);
        }
        if p.bytes_total > 0 {
            if self.pb.length().is_none() {
                self.pb.set_style(Bar::style(WITH_TOTAL));
            }
            // An estimated total (export) can be passed: never beyond 100%.
            let total = p.bytes_total.max(p.bytes_done);
            if self.pb.length() != Some(total) {
                self.pb.set_length(total);
            }
        }
        self.pb.set_position(p.bytes_done);
        let records = match (p.records_total, p.phase) {
            (0, _) => format!("{} rec", p.records_done),
            (t, floe::Phase::Export) if t != p.records_done => format!("{}/~{} rec", p.records_done, t),
            (t, _) => format!("{}/{} rec", p.records_done, t),
        };
        let ks = self.keyspace.lock().map(|k| k.clone()).unwrap_or_default();
        self.pb.set_message(if ks.is_empty() { records } else { format!("[{ks}] {records}") });
        true
    }

    fn keyspace(&self, _index: usize, name: &str) {
        if let Ok(mut k) = self.keyspace.lock() {
            *k = escape(name).into_owned();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        log::show_bar(None);
        self.pb.finish_and_clear();
    }
}

/// Standard output is redirected to a regular file (`> archive.floe`), not a pipe.
fn stdout_is_file() -> bool {
    use std::os::fd::AsFd;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .and_then(|fd| std::fs::File::from(fd).metadata().ok())
        .is_some_and(|m| m.is_file())
}

/// The raw bytes and records of the archive on standard input, when it is
/// a regular file read from its start (`floe import - DB < archive.floe`):
/// read from its index, which a stream reaches only at its end. The stream
/// is then read as usual, from the start.
fn stdin_totals() -> Option<(u64, u64)> {
    use std::io::Seek;
    use std::os::fd::AsFd;
    let mut f = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned().ok()?);
    if !f.metadata().ok()?.is_file() || f.stream_position().ok()? != 0 {
        return None;
    }
    let a = floe::read::Archive::open_file(&f, "<stdin>", |m| m).ok()?;
    let t = a.index().keyspaces.iter().fold((0, 0), |(b, r), k| (b + k.totals.raw_bytes, r + k.totals.record_count));
    Some(t)
}

/// A line of human-readable output on standard output, with control
/// characters in it (from names, ids, remarks and paths) escaped; `?`s the
/// write error.
macro_rules! out {
    ($($arg:tt)*) => {
        floe::text::print_line(&format!($($arg)*))?
    };
}

/// A line on standard error, control characters escaped. A failed write to
/// standard error is ignored: there is nowhere left to report it.
macro_rules! note {
    ($($arg:tt)*) => {{
        let line = format!("{}\n", escape(&format!($($arg)*)));
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }};
}

fn is_dash(p: &str) -> bool {
    p == "-"
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
    for note in floe::fs::clean_leftovers(target)? {
        note!("floe: {note}");
    }
    Ok(())
}

/// Prints one JSON document on stdout (`--json`).
fn emit(doc: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(doc)
        .map_err(|e| Error::Internal(format!("cannot render the result as JSON: {e}")))?;
    write_stdout(&format!("{text}\n"))
}

/// A JSON object with `"ok": true` first, then `fields`.
fn ok_doc(fields: serde_json::Value) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    m.insert("ok".into(), true.into());
    if let serde_json::Value::Object(f) = fields {
        m.extend(f);
    }
    serde_json::Value::Object(m)
}

/// "1 keyspace", "2 keyspaces".
fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Refuses a terminal where floe would read or write a binary archive
/// (as `zstd` does): a terminal on stdin makes `import -` wait for input
/// nobody will type, and one on stdout gets binary garbage.
fn refuse_terminal(stdin: bool) -> Result<(), Error> {
    if stdin && std::io::stdin().is_terminal() {
        return Err(Error::InvalidArgument(
            "standard input is a terminal, not an archive: pipe one in (floe export DB -o - | floe import - NEW), \
             redirect a file (< backup.floe), or give the archive's path instead of -"
                .into(),
        ));
    }
    if !stdin && std::io::stdout().is_terminal() {
        return Err(Error::InvalidArgument(
            "standard output is a terminal: floe will not write a binary archive to it; redirect it (-o - > \
             backup.floe), pipe it (-o - | floe import - NEW), or give a file with -o"
                .into(),
        ));
    }
    Ok(())
}

/// The exit code of a command that succeeded: 0, or 7 (`get`: not found).
fn run(cli: Cli) -> Result<u8, Error> {
    let json = cli.json;
    match cli.cmd {
        Cmd::Export { db, output, archive, range, force, common } => {
            let mut opts = archive.export_options(common.threads);
            opts.overwrite = force;
            opts.range = range.key_range()?;
            opts.range.check()?; // before anything is opened
            let location = if is_dash(&output) {
                refuse_terminal(false)?;
                if json {
                    return Err(Error::InvalidArgument(
                        "--json prints its document on standard output, where -o - writes the archive; give a file \
                         with -o"
                            .into(),
                    ));
                }
                None
            } else {
                Some(Location::parse(&output)?)
            };
            if let Some(Location::Local(path)) = &location {
                if floe::export::check_output(&db, path)? == floe::export::OutputKind::File {
                    report_leftovers(path)?;
                }
            }
            // Export to a pipe draws no bar: the reader at the other end
            // (`floe import -`) draws one on the same terminal.
            let to_pipe = location.is_none() && !stdout_is_file();
            let bar = Bar::shown(!common.quiet && !json && !to_pipe, "export");
            let dest = location.as_ref().map_or(Destination::Stdout, Destination::from);
            let s = floe::export::export_path(&db, dest, &opts, &bar)?;
            drop(bar);
            let w = &s.write;
            if json {
                emit(&ok_doc(serde_json::json!({
                    "command": "export", "output": output, "snapshot_seqno": s.snapshot_seqno,
                    "keyspaces": w.keyspaces, "records": w.records, "blocks": w.blocks, "raw_bytes": w.raw_bytes,
                    "archive_bytes": w.archive_bytes, "seconds": s.elapsed.as_secs_f64(),
                })))?;
            } else if !common.quiet {
                if to_pipe {
                    // Over the reader's bar, if it draws one: its next draw goes below.
                    log::clear_line();
                }
                note!(
                    "exported {} in {} from snapshot {} ({} raw -> {} archive, {:.2}x) in {:.2}s, {}",
                    plural(w.records, "record", "records"),
                    plural(w.keyspaces as u64, "keyspace", "keyspaces"),
                    s.snapshot_seqno,
                    human(w.raw_bytes),
                    human(w.archive_bytes),
                    w.raw_bytes as f64 / w.archive_bytes.max(1) as f64,
                    s.elapsed.as_secs_f64(),
                    rate(w.raw_bytes, s.elapsed.as_secs_f64())
                );
            }
        }
        Cmd::Import { archive, db, keyspaces, range, replace, common } => {
            let opts = {
                let mut o = ImportOptions::default();
                o.threads = common.threads;
                o.keyspaces = opt_list(keyspaces);
                o.replace = replace;
                o.range = range.key_range()?;
                o
            };
            opts.range.check()?; // before the archive is opened
            if is_dash(&archive) {
                refuse_terminal(true)?;
            }
            report_leftovers(&db)?;
            let bar = Bar::new(common.quiet || json, "import");
            let s = if is_dash(&archive) {
                bar.expect(stdin_totals());
                floe::import::import_stream(std::io::stdin().lock(), "<stdin>", &db, &opts, &bar)?
            } else {
                floe::import::import_archive(&floe::store::open_archive(&archive)?, &db, &opts, &bar)?
            };
            drop(bar);
            if json {
                emit(&ok_doc(serde_json::json!({
                    "command": "import", "archive": archive, "db": db, "keyspaces": s.keyspaces,
                    "records": s.records, "raw_bytes": s.raw_bytes, "seconds": s.elapsed.as_secs_f64(),
                    "warnings": s.warnings,
                })))?;
                return Ok(0);
            }
            for w in &s.warnings {
                note!("floe: warning: {w}");
            }
            if !common.quiet {
                note!(
                    "imported {} in {} ({}) into {} in {:.2}s, {}",
                    plural(s.records, "record", "records"),
                    plural(s.keyspaces as u64, "keyspace", "keyspaces"),
                    human(s.raw_bytes),
                    db.display(),
                    s.elapsed.as_secs_f64(),
                    rate(s.raw_bytes, s.elapsed.as_secs_f64())
                );
            }
        }
        Cmd::Verify { archive, quick, common } => {
            if is_dash(&archive) {
                refuse_terminal(true)?;
            }
            let bar = Bar::new(common.quiet || json, "verify");
            let start = std::time::Instant::now();
            let r = if is_dash(&archive) {
                bar.expect(stdin_totals());
                floe::read::verify_stream(std::io::stdin().lock(), "<stdin>", quick, &bar)?
            } else {
                floe::store::open_archive(&archive)?.verify_with(common.threads, quick, &bar)?
            };
            drop(bar);
            let secs = start.elapsed().as_secs_f64();
            if json {
                let v = serde_json::to_string(&r.to_json(&archive, secs))
                    .map_err(|e| Error::Internal(format!("cannot render the verify report as JSON: {e}")))?;
                write_stdout(&format!("{v}\n"))?;
            } else {
                out!(
                    "OK {}: {}, {}, {}, {} raw in {} ({}{:.2}s)",
                    archive,
                    plural(r.keyspaces as u64, "keyspace", "keyspaces"),
                    plural(r.blocks, "block", "blocks"),
                    plural(r.records, "record", "records"),
                    human(r.raw_bytes),
                    human(r.archive_bytes),
                    if r.quick { "checksums only, " } else { "" },
                    secs
                );
            }
        }
        Cmd::Inspect { archive } => {
            if is_dash(&archive) {
                return Err(Error::InvalidArgument(
                    "inspect needs a file (it reads the index at the end); use `floe verify -` for a stream".into(),
                ));
            }
            let a = floe::store::open_archive(&archive)?;
            if json {
                emit(&ok_doc(floe::inspect::inspect_json(&a)))?;
            } else {
                // inspect_text escapes the archive's strings itself.
                write_stdout(&render::inspect_text(&a))?;
            }
        }
        Cmd::Get(a) => return query::get(a, json),
        Cmd::Cat(a) => query::cat(a)?,
        Cmd::Diff { a, b, keyspaces } => {
            if diff(&a, &b, opt_list(keyspaces), json)? {
                return Ok(exit::DIFFERENT);
            }
        }
        Cmd::Backup { cmd } => backup(cmd, json)?,
        Cmd::Demo { records, keep } => {
            demo::run(records, keep.as_deref(), json)?;
            if json {
                emit(&ok_doc(serde_json::json!({"command": "demo", "records": records})))?;
            }
        }
        Cmd::Completions { shell } => {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "floe", &mut buf);
            write_stdout(&String::from_utf8_lossy(&buf))?;
        }
        Cmd::Man => {
            let mut buf = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
                .render(&mut buf)
                .map_err(|e| Error::io("rendering the manual page", e))?;
            write_stdout(&String::from_utf8_lossy(&buf))?;
        }
    }
    Ok(0)
}

/// `floe diff`: one line per differing key, then the summary; `true` if the
/// archives differ.
fn diff(a: &str, b: &str, keyspaces: Option<Vec<String>>, json: bool) -> Result<bool, Error> {
    for p in [a, b] {
        if is_dash(p) {
            return Err(Error::InvalidArgument(
                "diff needs two archive files or URLs (it reads their indexes); it cannot read standard input".into(),
            ));
        }
    }
    let (aa, ab) = (floe::store::open_archive(a)?, floe::store::open_archive(b)?);
    let s = floe::diff(&aa, &ab, keyspaces.as_deref(), |c| {
        if json {
            let line =
                serde_json::json!({"keyspace": c.keyspace, "key_hex": floe::text::hex(c.key), "change": c.kind.name()});
            write_stdout(&format!("{line}\n"))
        } else {
            let sign = match c.kind {
                floe::ChangeKind::Added => '+',
                floe::ChangeKind::Removed => '-',
                floe::ChangeKind::Changed => '~',
            };
            floe::text::print_line(&format!("{sign} {} {}", c.keyspace, floe::text::hex(c.key)))
        }
    })?;
    let differs = s.differs();
    if json {
        let mut doc = ok_doc(serde_json::json!({"command": "diff"}));
        if let (serde_json::Value::Object(d), serde_json::Value::Object(summary)) = (&mut doc, s.to_json()) {
            d.extend(summary);
        }
        write_stdout(&format!("{doc}\n"))?;
    } else {
        for k in &s.keyspaces {
            match k.presence {
                floe::Presence::OnlyInA => {
                    out!("keyspace {}: removed (only in A, {})", k.name, plural(k.removed, "record", "records"))
                }
                floe::Presence::OnlyInB => {
                    out!("keyspace {}: added (only in B, {})", k.name, plural(k.added, "record", "records"))
                }
                floe::Presence::Both => out!(
                    "keyspace {}: {} added, {} removed, {} changed, {} unchanged{}",
                    k.name,
                    k.added,
                    k.removed,
                    k.changed,
                    k.unchanged,
                    if k.options_changed { "; options changed" } else { "" }
                ),
            }
        }
        if differs {
            out!("the archives differ");
        } else {
            out!("the archives hold the same data");
        }
    }
    Ok(differs)
}

fn backup(cmd: BackupCmd, json: bool) -> Result<(), Error> {
    use floe::backup::{self, Repo};
    let wait = |l: &LockArgs| std::time::Duration::from_secs(l.wait);
    match cmd {
        BackupCmd::Create { db, repo, remarks, keep, archive, lock, common } => {
            let repo = Repo::open_or_create(&repo)?;
            let export = archive.export_options(common.threads);
            let opts = {
                let mut o = backup::CreateOptions::default();
                o.export = export;
                o.remarks = remarks;
                o.keep = keep;
                o.break_lock = lock.break_lock;
                o.wait = wait(&lock);
                o
            };
            let bar = Bar::new(common.quiet || json, "backup");
            let c = backup::create(&repo, &db, &opts, &bar)?;
            drop(bar);
            if json {
                let w = &c.export.write;
                return emit(&ok_doc(serde_json::json!({
                    "command": "backup create", "repo": repo.url(), "id": c.id, "generation": c.generation,
                    "size": c.size, "sha256": c.sha256, "snapshot_seqno": c.export.snapshot_seqno,
                    "keyspaces": w.keyspaces, "records": w.records, "raw_bytes": w.raw_bytes, "removed": c.removed,
                })));
            }
            out!("{}", c.id);
            if !common.quiet {
                note!(
                    "published snapshot {} ({}, {} archive, sha256 {}) in {} as manifest generation {}",
                    c.id,
                    plural(c.export.write.records, "record", "records"),
                    human(c.size),
                    c.sha256,
                    repo.url(),
                    c.generation
                );
                for id in &c.removed {
                    note!("retention: removed snapshot {id}");
                }
            }
        }
        BackupCmd::List { repo } => {
            let repo = Repo::open(&repo)?;
            let m = backup::list(&repo)?;
            if json {
                let doc = serde_json::to_value(&m.doc)
                    .map_err(|e| Error::Internal(format!("cannot render the manifest as JSON: {e}")))?;
                emit(&ok_doc(doc))?;
            } else {
                out!("{:<26} {:<20} {:>10} {:>12}  remarks", "id", "created", "records", "size");
                for e in m.entries() {
                    let s = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
                    let records: u64 = e
                        .get("keyspaces")
                        .and_then(|k| k.as_array())
                        .map_or(0, |a| a.iter().filter_map(|k| k.get("records").and_then(|r| r.as_u64())).sum());
                    let size = e.get("size").and_then(|v| v.as_u64()).unwrap_or(0);
                    out!("{:<26} {:<20} {:>10} {:>12}  {}", s("id"), s("created"), records, human(size), s("remarks"));
                }
            }
        }
        BackupCmd::Verify { repo, ids, common } => {
            let repo = Repo::open(&repo)?;
            let bar = Bar::new(common.quiet || json, "verify");
            let r = backup::verify(&repo, &ids, common.threads, &bar)?;
            drop(bar);
            if json {
                let snaps: Vec<_> = r
                    .iter()
                    .map(|(id, r)| {
                        serde_json::json!({"id": id, "keyspaces": r.keyspaces, "blocks": r.blocks, "records": r.records,
                                           "raw_bytes": r.raw_bytes, "archive_bytes": r.archive_bytes})
                    })
                    .collect();
                return emit(&ok_doc(serde_json::json!({"command": "backup verify", "snapshots": snaps})));
            }
            for (id, r) in r {
                out!(
                    "OK {id}: checksum matches the manifest; {}, {}, {}",
                    plural(r.keyspaces as u64, "keyspace", "keyspaces"),
                    plural(r.blocks, "block", "blocks"),
                    plural(r.records, "record", "records")
                );
            }
        }
        BackupCmd::Restore { repo, id, db, replace, common } => {
            let repo = Repo::open(&repo)?;
            report_leftovers(&db)?;
            let bar = Bar::new(common.quiet || json, "restore");
            let opts = {
                let mut o = ImportOptions::default();
                o.threads = common.threads;
                o.replace = replace;
                o
            };
            let s = backup::restore(&repo, &id, &db, &opts, &bar)?;
            drop(bar);
            if json {
                return emit(&ok_doc(serde_json::json!({
                    "command": "backup restore", "id": id, "db": db, "keyspaces": s.keyspaces, "records": s.records,
                    "raw_bytes": s.raw_bytes, "seconds": s.elapsed.as_secs_f64(),
                })));
            }
            if !common.quiet {
                note!(
                    "restored snapshot {id}: {} in {} into {}",
                    plural(s.records, "record", "records"),
                    plural(s.keyspaces as u64, "keyspace", "keyspaces"),
                    db.display()
                );
            }
        }
        BackupCmd::Delete { repo, ids, lock } => {
            let repo = Repo::open(&repo)?;
            let g = backup::delete(&repo, &ids, lock.break_lock, wait(&lock))?;
            if json {
                return emit(&ok_doc(serde_json::json!({"command": "backup delete", "deleted": ids, "generation": g})));
            }
            note!("deleted {}; manifest generation {g}", plural(ids.len() as u64, "snapshot", "snapshots"));
        }
        BackupCmd::Gc { repo, grace, lock } => {
            let repo = Repo::open(&repo)?;
            let r = backup::gc(&repo, lock.break_lock, wait(&lock), grace)?;
            if json {
                return emit(&ok_doc(serde_json::json!({
                    "command": "backup gc", "removed": r.orphans, "young": r.young, "foreign": r.foreign,
                    "generations_removed": r.generations,
                })));
            }
            for o in &r.young {
                note!("gc: kept {o}: unreferenced but younger than --grace");
            }
            for o in &r.foreign {
                note!("gc: left alone {o}: not an object floe wrote");
            }
            for o in &r.orphans {
                out!("removed orphan {o}");
            }
            note!(
                "gc: {} and {} removed",
                plural(r.orphans.len() as u64, "orphaned object", "orphaned objects"),
                plural(r.generations, "old manifest generation", "old manifest generations")
            );
        }
    }
    Ok(())
}

/// SIGINT, SIGTERM (`kill`, `timeout`, systemd) and SIGHUP (a closed
/// terminal) all cancel a running export, import or verify, which cleans up
/// after itself; the exit code is then 128 + the signal. The handlers set
/// atomics only. A second signal ends the process as the signal's default
/// action does, and so does any signal to a command with nothing to cancel
/// (no handler is installed for those).
fn install_signal_handlers(cancellable: bool) {
    use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::flag;
    if !cancellable {
        return;
    }
    let (stop, number) = floe::interrupt::signal_flags();
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        // Run in this order: the default action if a signal already asked
        // to stop, else record this signal and ask the operation to stop.
        let r = flag::register_conditional_default(sig, stop)
            .and_then(|_| flag::register_usize(sig, number, sig as usize))
            .and_then(|_| flag::register(sig, stop));
        if let Err(e) = r {
            eprintln!("floe: warning: cannot handle signal {sig} ({e}); it will not clean up");
        }
    }
}

/// The exit code of an error: the CLI's one mapping of [`floe::ErrorKind`].
fn exit_code(e: &Error) -> u8 {
    match e.kind() {
        // 128 + the signal, like a shell: 130 SIGINT, 143 SIGTERM, 129 SIGHUP.
        ErrorKind::Cancelled => {
            floe::interrupt::interrupting_signal().and_then(|s| u8::try_from(128 + s).ok()).unwrap_or(exit::INTERRUPTED)
        }
        ErrorKind::Corrupt => exit::CORRUPT,
        ErrorKind::Unsupported => exit::TOO_NEW,
        ErrorKind::Locked => exit::LOCKED,
        ErrorKind::TargetExists => exit::TARGET_EXISTS,
        _ => exit::ERROR,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::init(cli.verbose, cli.log_format);
    install_signal_handlers(matches!(
        &cli.cmd,
        Cmd::Export { .. }
            | Cmd::Import { .. }
            | Cmd::Verify { .. }
            | Cmd::Demo { .. }
            | Cmd::Backup { cmd: BackupCmd::Create { .. } | BackupCmd::Verify { .. } | BackupCmd::Restore { .. } }
    ));
    let json = cli.json;
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        // A closed standard output (`| head`) is not an error: the reader has
        // all it wanted. Nothing floe writes to stdout is left half-made.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
            note!("floe: error: {e}");
            if json {
                let doc = serde_json::json!({"ok": false, "error": {
                    "kind": e.kind().name(), "exit_code": code, "message": e.to_string(), "offset": e.offset(),
                }});
                let _ = write_stdout(&format!("{doc}\n"));
            }
            ExitCode::from(code)
        }
    }
}
