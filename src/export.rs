//! The export pipeline: one fjall snapshot, every keyspace streamed into one
//! archive, blocks compressed in parallel and written in a deterministic order.
//!
//! ```text
//!  producer threads (≤ threads, keyspaces claimed in table order)
//!    snapshot.iter(ks) → BlockBuilder → raw block ─┐ spawn on rayon pool
//!                                                   ▼
//!                         per-keyspace bounded queue of pending compressions
//!                                                   ▼
//!  calling thread: for keyspace in order, for block in order → ArchiveWriter
//! ```
//!
//! Memory bound: at most `threads` producers each hold one block being built
//! plus `QUEUE_PER_PRODUCER` blocks queued (raw until compressed, then the
//! compressed frame) and one being written, so peak buffers ≈ `threads ×
//! (QUEUE_PER_PRODUCER + 2) × 2 × block_size`, plus one zstd context per
//! thread and 24 bytes of index per block; independent of database size.
//! With the default 1 MiB blocks that is about 10 MiB per thread (threads
//! default to one per core, at most [`MAX_THREADS`](crate::MAX_THREADS)): about 20 MiB on two
//! cores.

use crate::engine::{self, ENGINE_NAME, ENGINE_VERSION};
use crate::format::block::BlockCompressor;
use crate::format::header::Header;
use crate::format::keyspace_table::KeyspaceEntry;
use crate::format::record::{BlockBuilder, BufferPool, RawBlock};
use crate::progress::{Phase, Progress, Tracker};
use crate::util::fs::AtomicFile;
use crate::util::threads::{effective_threads, pool_for};
use crate::write::{ArchiveWriter, EncodedBlock, WriteSummary};
use crate::{EngineError, Error, KeyRange, Result};
use fjall::{Database, Keyspace, Readable};
use std::cell::RefCell;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::time::{Duration, Instant};

/// Default zstd level. Chosen from the benchmarks (BENCHMARKS.md, "Chosen
/// defaults"): on its datasets level 1 compresses about twice as fast as
/// level 3 into archives no larger, which keeps export well ahead of its
/// peers on two cores. Text with long repeats favours `--level 3` instead
/// (about 18% smaller for about 25% more CPU there).
pub const DEFAULT_LEVEL: i32 = 1;
/// Default raw block size. Compression ratio and export speed are flat
/// from 1 to 16 MiB (BENCHMARKS.md, "Chosen defaults"), while a point query
/// decompresses one block: 1 MiB makes `floe get` about half as costly as
/// 4 MiB did (BENCHMARKS.md, "Queries"), and keeps per-block overhead small
/// (76 bytes of block header and index, plus its key-index entry, per MiB).
pub const DEFAULT_BLOCK_SIZE: u32 = 1 << 20;
/// A zstd level in which 0 stands for "the default" ([`DEFAULT_LEVEL`]): the
/// convention of the C ABI's and Python's option structs, whose all-zero
/// value means the defaults. Both resolve it here. (The library's options
/// and the CLI's `--level` take zstd's levels as they are.)
pub fn level_or_default(level: i32) -> i32 {
    if level == 0 {
        DEFAULT_LEVEL
    } else {
        level
    }
}

/// A block size in which 0 stands for [`DEFAULT_BLOCK_SIZE`] (the same
/// convention as [`level_or_default`]). A thread count of 0 needs no such
/// step: it means one per core everywhere ([`effective_threads`]).
pub fn block_size_or_default(block_size: u32) -> u32 {
    if block_size == 0 {
        DEFAULT_BLOCK_SIZE
    } else {
        block_size
    }
}

/// Compressions queued per producer beyond the block being built.
pub(crate) const QUEUE_PER_PRODUCER: usize = 3;

/// Export settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExportOptions {
    /// zstd level (1–22, or negative for fast modes).
    pub level: i32,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Export only these keyspaces (all when `None`).
    pub keyspaces: Option<Vec<String>>,
    /// Raw block size target in bytes.
    pub block_size: u32,
    /// Creation time to record; `None` uses `SOURCE_DATE_EPOCH`, else the clock.
    pub created_unix: Option<i64>,
    /// Replace an existing output file ([`export_path`] to a
    /// [`Destination::File`]). When false (the default), an existing output
    /// is refused with [`Error::OutputExists`] before the database is
    /// opened, and one that appears meanwhile is never renamed over.
    /// Devices and FIFOs (written as streams) and objects are not affected.
    pub overwrite: bool,
    /// Export only the records of this key range of every chosen keyspace
    /// (all keys by default). Keyspaces with no key in the range are still
    /// exported, empty, with their options. An empty range ([`KeyRange::check`])
    /// is refused before anything is written. The archive is then the one a
    /// full export of a database holding only the range would give.
    pub range: KeyRange,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            level: DEFAULT_LEVEL,
            threads: 0,
            keyspaces: None,
            block_size: DEFAULT_BLOCK_SIZE,
            created_unix: None,
            overwrite: false,
            range: KeyRange::all(),
        }
    }
}

/// What an export produced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExportSummary {
    /// What the archive holds.
    pub write: WriteSummary,
    /// The engine sequence number of the snapshot exported.
    pub snapshot_seqno: u64,
    /// Time the export took.
    pub elapsed: Duration,
}

/// Creation time per the rules of format-spec §4.
pub fn creation_time(explicit: Option<i64>) -> i64 {
    explicit.or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse().ok())).unwrap_or_else(
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0),
    )
}

fn select(db: &Database, wanted: &Option<Vec<String>>) -> Result<Vec<String>> {
    let all = engine::keyspace_names(db);
    let Some(w) = wanted else { return Ok(all) };
    let mut out = Vec::new();
    for name in w {
        if !all.contains(name) {
            return Err(Error::InvalidArgument(format!(
                "keyspace '{name}' does not exist in the database (it has: {})",
                all.join(", ")
            )));
        }
        if !out.contains(name) {
            out.push(name.clone());
        }
    }
    out.sort_unstable_by(|a: &String, b: &String| a.as_bytes().cmp(b.as_bytes()));
    Ok(out)
}

thread_local! {
    static COMPRESSOR: RefCell<Option<BlockCompressor>> = const { RefCell::new(None) };
}

/// Spare raw-block and frame buffers shared by one export's producers,
/// compressors and writer.
struct Buffers {
    raw: BufferPool,
    frames: BufferPool,
}

fn compress(raw: RawBlock, level: i32, bufs: &Buffers) -> Result<EncodedBlock> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        let c = match &mut *c {
            Some(c) if c.level() == level => c,
            slot => slot.insert(
                BlockCompressor::new(level).map_err(|e| Error::InvalidArgument(format!("zstd level {level}: {e}")))?,
            ),
        };
        let (block, data) = EncodedBlock::compress_reusing(raw, c, bufs.frames.take().unwrap_or_default())?;
        bufs.raw.give(data);
        Ok(block)
    })
}

type Pending = Receiver<Result<EncodedBlock>>;

/// Exports every keyspace (or `opts.keyspaces`) of an open database from one
/// consistent snapshot into `out`. Other threads may keep writing: the archive
/// holds exactly the snapshot. Returns the sink and a summary.
pub fn export_database<W: Write>(
    db: &Database,
    out: W,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<(W, ExportSummary)> {
    let start = Instant::now();
    opts.range.check()?;
    let snapshot = db.snapshot();
    let names = select(db, &opts.keyspaces)?;
    let path = Path::new("<database>");
    tracing::info!(snapshot_seqno = snapshot.seqno(), keyspaces = names.len(), "export: snapshot taken");
    let mut handles: Vec<Keyspace> = Vec::with_capacity(names.len());
    let mut entries = Vec::with_capacity(names.len());
    let mut expected = Vec::with_capacity(names.len());
    for n in &names {
        let ks = engine::open_keyspace(db, path, n)?;
        let e = engine::size_estimate(&ks);
        tracing::debug!(
            keyspace = %n,
            disk_bytes = e.disk_bytes,
            memtable_bytes = e.memtable_bytes,
            approximate_items = e.items,
            "export: keyspace selected"
        );
        expected.push((e.disk_bytes + e.memtable_bytes, e.items));
        entries.push(KeyspaceEntry { name: n.clone(), options: engine::options_of(&ks) });
        handles.push(ks);
    }
    tracing::info!(
        keyspaces = %names.join(","),
        approximate_bytes = expected.iter().map(|e| e.0).sum::<u64>(),
        approximate_items = expected.iter().map(|e| e.1).sum::<u64>(),
        "export: keyspaces selected"
    );
    let mut header = Header::new(opts.level, opts.block_size, names.len() as u32);
    header.engine = ENGINE_NAME.into();
    header.engine_version = ENGINE_VERSION.into();
    header.snapshot_seqno = snapshot.seqno();
    header.created_unix = creation_time(opts.created_unix);
    BlockCompressor::new(opts.level).map_err(|e| Error::InvalidArgument(format!("zstd level {}: {e}", opts.level)))?;
    let mut writer = ArchiveWriter::new(out, header, &entries)?;
    let threads = effective_threads(opts.threads);
    let pool = pool_for(threads)?;
    let tracker = Tracker::with_estimate(progress, Phase::Export, expected);
    let next = AtomicUsize::new(0);
    let level = opts.level;
    let block_size = opts.block_size;
    // Enough spares for every buffer in flight (see the memory bound above).
    let in_flight = threads * (QUEUE_PER_PRODUCER + 2);
    let bufs = std::sync::Arc::new(Buffers { raw: BufferPool::new(in_flight), frames: BufferPool::new(in_flight) });

    let (txs, rxs): (Vec<SyncSender<Pending>>, Vec<Receiver<Pending>>) =
        (0..names.len()).map(|_| sync_channel::<Pending>(QUEUE_PER_PRODUCER)).unzip();
    let txs: Vec<std::sync::Mutex<Option<SyncSender<Pending>>>> =
        txs.into_iter().map(|t| std::sync::Mutex::new(Some(t))).collect();

    let result = std::thread::scope(|scope| -> Result<()> {
        for _ in 0..threads.min(names.len()) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= names.len() {
                    return;
                }
                let Some(tx) = txs[k].lock().ok().and_then(|mut t| t.take()) else { return };
                let res = produce(
                    &snapshot,
                    &handles[k],
                    &opts.range,
                    k as u32,
                    &names[k],
                    block_size,
                    level,
                    &pool,
                    &tracker,
                    &tx,
                    &bufs,
                );
                if let Err(e) = res {
                    let (etx, erx) = sync_channel(1);
                    let _ = etx.send(Err(e));
                    let _ = tx.send(erx);
                    return;
                }
            });
        }
        let mut rxs = rxs;
        let res = (|| -> Result<()> {
            for (k, rx) in rxs.iter_mut().enumerate() {
                tracker.keyspace(k, &names[k]);
                let (ks_start, (bytes0, records0)) = (Instant::now(), tracker.done());
                // Closed when its producer finished (or failed after sending its error).
                while let Ok(pending) = rx.recv() {
                    let block =
                        pending.recv().map_err(|_| Error::InvalidArgument("compression worker vanished".into()))??;
                    writer.write_block(&block)?;
                    tracker.add(u64::from(block.header.raw_len), u64::from(block.header.record_count))?;
                    bufs.frames.give(block.frame);
                }
                let (bytes, records) = tracker.done();
                tracing::info!(
                    keyspace = %names[k],
                    records = records - records0,
                    bytes = bytes - bytes0,
                    ms = ks_start.elapsed().as_millis() as u64,
                    "export: keyspace done"
                );
            }
            tracker.finish()
        })();
        if res.is_err() {
            tracker.cancel();
        }
        drop(rxs); // unblocks producers still sending
        res
    });
    result?;
    let finishing = Instant::now();
    let (out, write) = writer.finish()?;
    tracing::info!(
        snapshot_seqno = snapshot.seqno(),
        records = write.records,
        raw_bytes = write.raw_bytes,
        archive_bytes = write.archive_bytes,
        index_ms = finishing.elapsed().as_millis() as u64,
        ms = start.elapsed().as_millis() as u64,
        "export: archive written"
    );
    Ok((out, ExportSummary { write, snapshot_seqno: snapshot.seqno(), elapsed: start.elapsed() }))
}

#[allow(clippy::too_many_arguments)]
fn produce(
    snapshot: &fjall::Snapshot,
    ks: &Keyspace,
    range: &KeyRange,
    k: u32,
    name: &str,
    block_size: u32,
    level: i32,
    pool: &rayon::ThreadPool,
    tracker: &Tracker<'_>,
    tx: &SyncSender<Pending>,
    bufs: &std::sync::Arc<Buffers>,
) -> Result<()> {
    let mut builder = BlockBuilder::with_pool(k, name, block_size, bufs.raw.clone());
    let mut emit = |raw: RawBlock| -> Result<()> {
        tracker.check()?;
        let (btx, brx) = sync_channel(1);
        let bufs = bufs.clone();
        pool.spawn(move || {
            let _ = btx.send(compress(raw, level, &bufs));
        });
        tx.send(brx).map_err(|_| Error::Cancelled)
    };
    let path = Path::new("<database>");
    let items =
        if range.is_all() { snapshot.iter(ks) } else { snapshot.range(ks, (range.from.clone(), range.to.clone())) };
    for item in items {
        let (key, value) = item.into_inner().map_err(|e| EngineError::Fjall {
            path: path.to_path_buf(),
            action: format!("reading keyspace '{name}' from the snapshot"),
            source: e,
        })?;
        builder.push(&key, &value, &mut emit)?;
    }
    builder.finish(&mut emit)?;
    Ok(())
}

/// Where an export goes.
#[non_exhaustive]
pub enum Destination<'a> {
    /// A file, written atomically (temporary sibling, fsync, rename, fsync
    /// dir). An existing character device or FIFO there (or a symlink to
    /// one) is written to directly, as a stream; see [`check_output`].
    File(&'a Path),
    /// Standard output.
    Stdout,
    /// An object in an object store, streamed through a multipart upload
    /// (aborted on any failure, so no object appears).
    Object(crate::store::Object),
}

impl<'a> From<&'a crate::store::Location> for Destination<'a> {
    /// Where an export to this location goes.
    fn from(l: &'a crate::store::Location) -> Self {
        match l {
            crate::store::Location::Local(p) => Destination::File(p),
            crate::store::Location::Object(o) => Destination::Object(o.clone()),
        }
    }
}

/// Prefixes an I/O error's context with the output file (the writer itself
/// only knows offsets), e.g. "backup.floe: writing archive at offset 4194224:
/// No space left on device".
fn naming_file(e: Error, p: &Path) -> Error {
    match e {
        Error::Io { context, source } => Error::Io { context: format!("{}: {context}", p.display()), source },
        e => e,
    }
}

/// How [`export_path`] writes a local output path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutputKind {
    /// A regular file (or nothing yet): written atomically, replaced by rename.
    File,
    /// An existing character device or FIFO (symlinks followed): opened and
    /// written to directly, like standard output; never renamed over.
    Stream,
}

/// Checks a local export output before anything is opened: refuses an
/// output inside the source database directory `db_dir` (both compared
/// after resolving symlinks, the output through its parent directory and,
/// if it exists, itself), a block device and a socket; says whether it is
/// written as a file or as a stream.
pub fn check_output(db_dir: &Path, output: &Path) -> Result<OutputKind> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(db) = std::fs::canonicalize(db_dir) {
        let via_parent = output.file_name().and_then(|name| {
            let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::canonicalize(parent).ok().map(|p| p.join(name))
        });
        let inside = [via_parent, std::fs::canonicalize(output).ok()].into_iter().flatten().any(|p| p.starts_with(&db));
        if inside {
            return Err(Error::InvalidArgument(format!(
                "output {} is inside the source database {}; export never writes into its source. Choose an output                  outside the database directory",
                output.display(),
                db_dir.display()
            )));
        }
    }
    let parent = output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "the output's directory {} does not exist; create it first (floe creates no directories)",
            parent.display()
        )));
    }
    let Ok(meta) = std::fs::metadata(output) else { return Ok(OutputKind::File) };
    let ft = meta.file_type();
    if ft.is_char_device() || ft.is_fifo() {
        Ok(OutputKind::Stream)
    } else if ft.is_block_device() || ft.is_socket() {
        let what = if ft.is_socket() { "a socket" } else { "a block device" };
        Err(Error::InvalidArgument(format!(
            "output {} is {what}; floe does not write archives onto it (use -o - and a redirection if you mean it)",
            output.display()
        )))
    } else {
        Ok(OutputKind::File) // a regular file, or a directory (refused by AtomicFile)
    }
}

/// Opens an existing character device or FIFO for writing (no create, no
/// truncate), checking it still is one.
fn open_stream(p: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(p)
        .map_err(|e| Error::io(format!("opening {}", p.display()), e))?;
    let ft = f.metadata().map_err(|e| Error::io(format!("stat {}", p.display()), e))?.file_type();
    if !(ft.is_char_device() || ft.is_fifo()) {
        return Err(Error::InvalidArgument(format!(
            "{} changed while it was being opened (it is no longer a device or FIFO); nothing was written",
            p.display()
        )));
    }
    Ok(f)
}

/// Opens the database at `db_dir` (which must not be open in another process)
/// and exports it to `dest`. A local output is checked first
/// ([`check_output`]: never inside the database, no clobbering unless
/// [`ExportOptions::overwrite`]).
pub fn export_path(
    db_dir: &Path,
    dest: Destination<'_>,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportSummary> {
    opts.range.check()?;
    let kind = match &dest {
        Destination::File(p) => Some(check_output(db_dir, p)?),
        _ => None,
    };
    if let (Destination::File(p), Some(OutputKind::File)) = (&dest, kind) {
        crate::util::fs::check_file_target(p, opts.overwrite)?;
    }
    let opening = Instant::now();
    let db = engine::open_existing(db_dir)?;
    tracing::info!(db = %db_dir.display(), ms = opening.elapsed().as_millis() as u64, "export: database opened");
    export_to(&db, dest, opts, progress)
}

/// Exports one consistent snapshot of an open database to `dest`: the online
/// export of an application's own handle, with the same durability as the
/// CLI's. A file is written under a temporary name, fsynced and renamed into
/// place, never over an existing file unless [`ExportOptions::overwrite`]; an object is uploaded in parts and appears
/// only when complete; a failure or cancellation leaves nothing behind.
/// Keep the output outside the database's directory.
pub fn export_to(
    db: &Database,
    dest: Destination<'_>,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> Result<ExportSummary> {
    opts.range.check()?;
    let stream = match &dest {
        Destination::File(p) => {
            use std::os::unix::fs::FileTypeExt;
            std::fs::metadata(p).is_ok_and(|m| m.file_type().is_char_device() || m.file_type().is_fifo())
        }
        _ => false,
    };
    match dest {
        Destination::File(p) if stream => {
            let buf = std::io::BufWriter::with_capacity(1 << 20, open_stream(p)?);
            let (mut buf, summary) = export_database(db, buf, opts, progress).map_err(|e| naming_file(e, p))?;
            buf.flush().map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
            Ok(summary)
        }
        Destination::File(p) => {
            let mut f = AtomicFile::create_with(p, opts.overwrite)?;
            let buf = std::io::BufWriter::with_capacity(1 << 20, f.file());
            let (buf, summary) = export_database(db, buf, opts, progress).map_err(|e| naming_file(e, p))?;
            buf.into_inner().map_err(|e| Error::io(format!("writing {}", p.display()), e.into_error()))?;
            let committing = Instant::now();
            f.commit()?;
            tracing::info!(
                output = %p.display(),
                ms = committing.elapsed().as_millis() as u64,
                "export: archive file committed (fsync, rename)"
            );
            Ok(summary)
        }
        Destination::Object(o) => {
            let buf = std::io::BufWriter::with_capacity(1 << 20, o.writer()?);
            let (buf, summary) = export_database(db, buf, opts, progress)?;
            let w = buf.into_inner().map_err(|e| Error::io(format!("uploading {}", o.describe()), e.into_error()))?;
            let committing = Instant::now();
            w.finish()?;
            tracing::info!(
                output = %o.describe(),
                ms = committing.elapsed().as_millis() as u64,
                "export: upload completed"
            );
            Ok(summary)
        }
        Destination::Stdout => {
            let out = std::io::stdout().lock();
            let buf = std::io::BufWriter::with_capacity(1 << 20, out);
            let (mut buf, summary) = export_database(db, buf, opts, progress)?;
            buf.flush().map_err(|e| Error::io("writing to standard output", e))?;
            Ok(summary)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::threads::MAX_THREADS;

    #[test]
    fn zero_means_the_default_only_where_the_front_ends_say_so() {
        assert_eq!(level_or_default(0), DEFAULT_LEVEL);
        assert_eq!((level_or_default(-5), level_or_default(19)), (-5, 19));
        assert_eq!(block_size_or_default(0), DEFAULT_BLOCK_SIZE);
        assert_eq!(block_size_or_default(8192), 8192);
        assert_eq!(ExportOptions::default().level, DEFAULT_LEVEL);
        assert_eq!(effective_threads(3), 3);
        assert!((1..=MAX_THREADS).contains(&effective_threads(0)));
    }
}
