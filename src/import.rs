//! The import pipeline: validate the archive, then rebuild a fresh database
//! with fjall bulk ingestion, keyspaces in parallel, atomically.
//!
//! Every record is checked (limits, strict key order, block and keyspace
//! totals) before fjall sees it, so fjall's panicking preconditions can't be
//! reached from archive bytes. The database is built in a temporary sibling
//! of the target and moved into place only after everything was verified and
//! persisted; on any failure the temporary is removed and the target is
//! untouched.

use crate::engine;
use crate::format::keyspace_table::KeyspaceEntry;
use crate::format::record::Totals;
use crate::progress::{Phase, Progress, Tracker};
use crate::read::{Archive, StreamReader};
use crate::util::fs::AtomicDir;
use crate::util::threads::{effective_threads, pool_for};
use crate::{EngineError, Error, KeyRange, Result};
use fjall::{Database, Keyspace, PersistMode};
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

/// A keyspace is split into segments ingested in parallel only when each
/// would hold at least this many raw bytes.
const MIN_SEGMENT_RAW: u64 = 32 << 20;
/// At most this many segments (and so level-0 table runs) per keyspace, below
/// fjall's default level-0 compaction trigger.
const MAX_SEGMENTS: usize = 3;

/// The most keyspaces one import creates (format-spec §1.1 allows 65,536 in
/// an archive; this is a limit of the reader, not of the format). fjall
/// records each new keyspace in its meta keyspace and compacts that at once,
/// rewriting every earlier keyspace's entry, so creating the n-th keyspace
/// costs time proportional to n and creating N costs N²: 4,096 take minutes,
/// 65,536 would take hours (BENCHMARKS.md, "Many keyspaces"). Beyond the
/// limit an import is refused before anything is created.
pub const MAX_IMPORT_KEYSPACES: usize = 4096;

/// Import settings.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Import only these keyspaces (all when `None`).
    pub keyspaces: Option<Vec<String>>,
    /// Replace a non-empty target atomically instead of refusing. The target
    /// must then be a fjall database (a `version` file) that no process has
    /// open; it is locked with fjall's own lock from the start of the import
    /// until it has been swapped out.
    pub replace: bool,
    /// Paths the target must not contain (compared after resolving
    /// symlinks): what the import reads from, such as a backup repository.
    /// A `replace` of a target that contains one is refused. The archive
    /// itself, when its name is a local path, is always protected.
    pub protect: Vec<std::path::PathBuf>,
    /// A keyspace is ingested in parallel segments only when each holds at
    /// least this many raw bytes; 0 means automatic (`MIN_SEGMENT_RAW`, or
    /// an even share of the archive if larger).
    pub segment_bytes: u64,
    /// Refuse to create more keyspaces than this; 0 means
    /// [`MAX_IMPORT_KEYSPACES`].
    pub max_keyspaces: usize,
    /// Import only the records of this key range of every chosen keyspace
    /// (all keys by default). Keyspaces with no key in the range are still
    /// created, empty, with their options. The archive is still read and
    /// checked in full (every block, key order and total against the index,
    /// as without a range); only the records in the range are written. An
    /// empty range ([`KeyRange::check`]) is refused before anything is
    /// created.
    pub range: KeyRange,
}

/// What an import did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImportSummary {
    /// Keyspaces created.
    pub keyspaces: usize,
    /// Records written (with [`ImportOptions::range`], those in the range).
    pub records: u64,
    /// Raw (decompressed) bytes of the imported keyspaces' blocks: all of
    /// them, read and checked also when a range selects fewer records.
    pub raw_bytes: u64,
    /// Time the import took.
    pub elapsed: Duration,
    /// Non-fatal notes: unknown optional keyspace options ignored.
    pub warnings: Vec<String>,
}

fn selected(entries: &[KeyspaceEntry], wanted: &Option<Vec<String>>) -> Result<Vec<usize>> {
    let Some(w) = wanted else { return Ok((0..entries.len()).collect()) };
    let mut out = Vec::new();
    for name in w {
        let Some(i) = entries.iter().position(|e| &e.name == name) else {
            let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
            return Err(Error::InvalidArgument(format!(
                "keyspace '{name}' is not in the archive (it has: {})",
                names.join(", ")
            )));
        };
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Refuses an import of more keyspaces than `opts` allows (see
/// [`MAX_IMPORT_KEYSPACES`]), before anything is created.
fn check_keyspace_count(archive: &str, sel: &[usize], opts: &ImportOptions) -> Result<()> {
    let max = match opts.max_keyspaces {
        0 => MAX_IMPORT_KEYSPACES,
        n => n,
    };
    if sel.len() > max {
        return Err(Error::InvalidArgument(format!(
            "{archive}: importing {} keyspaces, but floe imports at most {max} at once: fjall's cost of creating a \
             keyspace grows with the number already created, so {} would take hours (BENCHMARKS.md, \"Many \
             keyspaces\"). Import a subset with --keyspace (library: ImportOptions::keyspaces); nothing was created",
            sel.len(),
            sel.len()
        )));
    }
    Ok(())
}

/// §5.1/§10: a selected keyspace carrying an unknown option marked REQUIRED
/// means the archive needs a newer floe (an archive error, CLI exit code 4).
fn refuse_unknown_required(archive: &str, entries: &[KeyspaceEntry], sel: &[usize]) -> Result<()> {
    for &i in sel {
        if let Some(id) = entries[i].options.unknown_required() {
            let source = crate::format::FormatError::UnknownRequiredOption { keyspace: entries[i].name.clone(), id };
            return Err(Error::Archive { name: archive.to_owned(), source });
        }
    }
    Ok(())
}

/// Checks options and creates the selected keyspaces in `db`.
fn create_keyspaces(
    db: &Database,
    path: &Path,
    entries: &[KeyspaceEntry],
    sel: &[usize],
    warnings: &mut Vec<String>,
) -> Result<Vec<Option<Keyspace>>> {
    // fjall's create options, as engine::create_options builds them.
    let mut opts: Vec<Option<_>> = entries.iter().map(|_| None).collect();
    for &i in sel {
        let (o, w) = engine::create_options(&entries[i].name, &entries[i].options)?;
        warnings.extend(w);
        opts[i] = Some(o);
    }
    let mut out = Vec::with_capacity(entries.len());
    for (i, o) in opts.into_iter().enumerate() {
        out.push(match o {
            Some(o) => Some(engine::guarded(path, &format!("creating keyspace '{}'", entries[i].name), || {
                db.keyspace(&entries[i].name, || o)
            })?),
            None => None,
        });
    }
    Ok(out)
}

fn ingest_err(path: &Path, name: &str, e: fjall::Error) -> Error {
    EngineError::Fjall { path: path.to_path_buf(), action: format!("ingesting keyspace '{name}'"), source: e }.into()
}

/// Persists, closes, fsyncs and moves the database into place.
fn seal(db: Database, handles: Vec<Option<Keyspace>>, dir: AtomicDir) -> Result<()> {
    let path = dir.path().to_path_buf();
    engine::guarded(&path, "persisting the new database", || db.persist(PersistMode::SyncAll))?;
    drop(handles);
    drop(db);
    dir.commit()
}

/// Imports a random-access archive (already opened and structurally checked).
pub fn import_archive<B: crate::read::Source>(
    archive: &Archive<B>,
    db_dir: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportSummary> {
    let start = Instant::now();
    crate::util::threads::check_threads(opts.threads)?;
    opts.range.check()?;
    let range = &opts.range;
    let entries = archive.keyspaces();
    let sel = selected(entries, &opts.keyspaces)?;
    check_keyspace_count(archive.name(), &sel, opts)?;
    refuse_unknown_required(archive.name(), entries, &sel)?;
    // Check every keyspace's options before touching the file system.
    let mut summary = ImportSummary::default();
    let mut create: Vec<Option<_>> = entries.iter().map(|_| None).collect();
    for &i in &sel {
        let (o, w) = engine::create_options(&entries[i].name, &entries[i].options)?;
        summary.warnings.extend(w);
        create[i] = Some(o);
    }
    let mut protect = opts.protect.clone();
    protect.push(archive.name().into()); // a memory-mapped archive is named by its path
    let dir = AtomicDir::create(db_dir, opts.replace, &protect)?;
    let path = dir.path().to_path_buf();
    let db = engine::create_new(&path)?;
    let mut handles: Vec<Option<Keyspace>> = entries.iter().map(|_| None).collect();
    let total: u64 = sel.iter().map(|&i| archive.index().keyspaces[i].totals.raw_bytes).sum();
    let tracker = Tracker::new(progress, Phase::Import, total);
    tracker.set_records_total(sel.iter().map(|&i| archive.index().keyspaces[i].totals.record_count).sum());
    tracing::info!(
        archive = %archive.name(),
        target = %db_dir.display(),
        keyspaces = %sel.iter().map(|&i| entries[i].name.as_str()).collect::<Vec<_>>().join(","),
        raw_bytes = total,
        snapshot_seqno = archive.header().snapshot_seqno,
        "import: archive opened"
    );
    // Per keyspace: when its first segment started and its last one ended.
    let spans: std::sync::Mutex<Vec<Option<(Instant, Instant)>>> =
        std::sync::Mutex::new(entries.iter().map(|_| None).collect());
    let workers = effective_threads(opts.threads);
    // Work is handed out in segments: a large keyspace is split at record
    // boundaries into up to `workers` runs of blocks, each ingested by its own
    // fjall ingestion (a separate run of tables in level 0), so even a single
    // keyspace keeps every core busy. Segments are joined and checked (order
    // across the seam, totals against the index) before the database is sealed.
    let split = match opts.segment_bytes {
        0 => (total / (2 * workers as u64)).max(MIN_SEGMENT_RAW),
        n => n,
    };
    let max_segments = workers.min(MAX_SEGMENTS);
    let mut work: Vec<(usize, usize, std::ops::Range<usize>, u64)> = Vec::new();
    let mut segments: Vec<usize> = entries.iter().map(|_| 0).collect();
    for &k in &sel {
        let segs = archive.segments(k, max_segments, split);
        segments[k] = segs.len();
        for (j, r) in segs.into_iter().enumerate() {
            let raw = archive.raw_bytes_of(r.clone());
            work.push((k, j, r, raw));
        }
    }
    // Largest first, so parallel ingestion ends together.
    work.sort_by_key(|w| std::cmp::Reverse(w.3));
    // Ingestion runs on dedicated threads (one segment each at a time);
    // decompression runs ahead of them on the rayon pool.
    let pool = pool_for(opts.threads)?;
    let panicked = |name: &str| -> Error {
        EngineError::Panicked {
            path: path.clone(),
            action: format!("ingesting keyspace '{name}'"),
            message: "see stderr".into(),
        }
        .into()
    };
    // This thread hands segments out to at most `workers` ingesting threads at
    // a time. A thread gives its slot back before it finishes its ingestion:
    // finishing writes and fsyncs the last table, mostly waiting for the disk,
    // and the next segment can start meanwhile.
    let slots = Slots::new(workers.min(work.len()));
    let results: Vec<Result<(usize, usize, Totals, u64)>> = std::thread::scope(|scope| {
        let mut jobs = Vec::with_capacity(work.len());
        let mut failed = None;
        for (k, j, blocks, _) in work {
            let name = &entries[k].name;
            // A keyspace is created (directories, fsyncs) just before its first
            // segment waits for a slot, while the work ahead of it is ingested.
            if handles[k].is_none() {
                let Some(o) = create[k].take() else {
                    tracker.cancel();
                    failed = Some(Err(Error::Internal(format!("keyspace '{name}' has no options to create it with"))));
                    break;
                };
                match engine::guarded(&path, &format!("creating keyspace '{name}'"), || db.keyspace(name, || o)) {
                    Ok(ks) => handles[k] = Some(ks),
                    Err(e) => {
                        tracker.cancel();
                        failed = Some(Err(e.into()));
                        break;
                    }
                }
            }
            let Some(ks) = handles[k].clone() else {
                tracker.cancel();
                failed = Some(Err(Error::Internal(format!("keyspace '{name}' was not created"))));
                break;
            };
            slots.acquire();
            if tracker.check().is_err() {
                slots.release();
                break;
            }
            let (path, tracker, pool, slots, panicked, spans) = (&path, &tracker, &pool, &slots, &panicked, &spans);
            jobs.push(scope.spawn(move || {
                let ks = &ks;
                let mut slot = Some(SlotGuard(slots));
                let run = || -> Result<(usize, usize, Totals, u64)> {
                    let started = Instant::now();
                    tracker.keyspace(k, name);
                    let mut ing = ks.start_ingestion().map_err(|e| ingest_err(path, name, e))?;
                    // Records outside the range are read and checked, not written.
                    let mut imported = 0u64;
                    let totals =
                        archive.for_each_record_of_segment(Some(pool), k, blocks, true, Some(tracker), |key, v| {
                            if !range.contains(key) {
                                return Ok(());
                            }
                            imported += 1;
                            ing.write(key, v.unwrap_or_default()).map_err(|e| ingest_err(path, name, e))
                        })?;
                    slot.take();
                    ing.finish().map_err(|e| ingest_err(path, name, e))?;
                    let ended = Instant::now();
                    tracing::debug!(
                        keyspace = %name,
                        segment = j,
                        records = imported,
                        records_read = totals.record_count,
                        bytes = totals.raw_bytes,
                        ms = (ended - started).as_millis() as u64,
                        "import: segment ingested"
                    );
                    if let Ok(mut s) = spans.lock() {
                        let span = s[k].get_or_insert((started, ended));
                        *span = (span.0.min(started), span.1.max(ended));
                    }
                    Ok((k, j, totals, imported))
                };
                let r =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| Err(panicked(name)));
                drop(slot);
                if r.is_err() {
                    tracker.cancel();
                }
                r
            }));
        }
        let mut results: Vec<Result<_>> = failed.into_iter().collect();
        results.extend(
            jobs.into_iter()
                .map(|j| j.join().unwrap_or_else(|_| Err(Error::Internal("an import worker panicked".into())))),
        );
        results
    });
    // Report the first real error rather than a "cancelled" caused by it.
    let mut first_err = None;
    let mut parts: Vec<Vec<Option<Totals>>> = segments.iter().map(|&n| vec![None; n]).collect();
    let mut imported: Vec<u64> = entries.iter().map(|_| 0).collect();
    for r in results {
        match r {
            Ok((k, j, t, n)) => {
                parts[k][j] = Some(t);
                imported[k] += n;
            }
            Err(Error::Cancelled) if first_err.is_some() => {}
            Err(e) => {
                if first_err.as_ref().is_none_or(|f| matches!(f, Error::Cancelled)) {
                    first_err = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    tracker.check()?;
    let spans = spans.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    for &k in &sel {
        // Checks the whole keyspace read against the index, range or not.
        let totals = archive.join_segments(k, std::mem::take(&mut parts[k]))?;
        summary.records += imported[k];
        tracing::info!(
            keyspace = %entries[k].name,
            records = imported[k],
            records_read = totals.record_count,
            bytes = totals.raw_bytes,
            segments = segments[k],
            ms = spans[k].map_or(0, |(a, b)| (b - a).as_millis() as u64),
            "import: keyspace ingested"
        );
    }
    tracker.check()?;
    tracing::info!(ms = start.elapsed().as_millis() as u64, "import: ingestion done");
    let sealing = Instant::now();
    seal(db, handles, dir)?;
    tracing::info!(
        target = %db_dir.display(),
        ms = sealing.elapsed().as_millis() as u64,
        "import: database committed (persist, fsync, rename)"
    );
    summary.keyspaces = sel.len();
    summary.raw_bytes = total;
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// Imports the archive file at `archive` (memory-mapped).
pub fn import_file(
    archive: &Path,
    db_dir: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportSummary> {
    let a = Archive::open(archive)?;
    import_archive(&a, db_dir, opts, progress)
}

/// Imports an archive read front to back from `r` (e.g. stdin), with bounded memory.
pub fn import_stream<R: Read>(
    r: R,
    name: &str,
    db_dir: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportSummary> {
    let start = Instant::now();
    opts.range.check()?;
    let range = &opts.range;
    let mut s = StreamReader::new(r, name)?;
    let entries = s.keyspaces().to_vec();
    let sel = selected(&entries, &opts.keyspaces)?;
    check_keyspace_count(name, &sel, opts)?;
    refuse_unknown_required(name, &entries, &sel)?;
    for &i in &sel {
        engine::create_options(&entries[i].name, &entries[i].options)?;
    }
    crate::util::threads::check_threads(opts.threads)?;
    let dir = AtomicDir::create(db_dir, opts.replace, &opts.protect)?;
    let path = dir.path().to_path_buf();
    let db = engine::create_new(&path)?;
    let mut summary = ImportSummary::default();
    let handles = create_keyspaces(&db, &path, &entries, &sel, &mut summary.warnings)?;
    let tracker = Tracker::new(progress, Phase::Import, 0);
    tracing::info!(
        archive = %name,
        target = %db_dir.display(),
        keyspaces = %sel.iter().map(|&i| entries[i].name.as_str()).collect::<Vec<_>>().join(","),
        snapshot_seqno = s.header().snapshot_seqno,
        "import: reading a stream"
    );
    // Records written per keyspace (fewer than read with a range).
    let mut imported: Vec<u64> = entries.iter().map(|_| 0).collect();
    // This thread reads and decompresses; a second one decodes and ingests.
    let run = || -> Result<Vec<crate::format::record::Totals>> {
        s.for_each_keyspace_pipelined(true, Some(&tracker), |k, records| {
            let Some(ks) = handles[k].as_ref() else { return Ok(()) };
            let name = &entries[k].name;
            tracker.keyspace(k, name);
            let (started, (bytes0, records0)) = (Instant::now(), tracker.done());
            let mut ing = ks.start_ingestion().map_err(|e| ingest_err(&path, name, e))?;
            let mut n = 0u64;
            records.for_each_record(|key, v| {
                if !range.contains(key) {
                    return Ok(());
                }
                n += 1;
                ing.write(key, v.unwrap_or_default()).map_err(|e| ingest_err(&path, name, e))
            })?;
            ing.finish().map_err(|e| ingest_err(&path, name, e))?;
            if let Some(c) = imported.get_mut(k) {
                *c += n;
            }
            let (bytes, records) = tracker.done();
            tracing::info!(
                keyspace = %name,
                records = n,
                records_read = records.saturating_sub(records0),
                bytes = bytes.saturating_sub(bytes0),
                ms = started.elapsed().as_millis() as u64,
                "import: keyspace ingested"
            );
            Ok(())
        })
    };
    let totals = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| {
        Err(EngineError::Panicked { path: path.clone(), action: "ingesting".into(), message: "see stderr".into() }
            .into())
    })?;
    tracing::info!(ms = start.elapsed().as_millis() as u64, "import: ingestion done");
    let sealing = Instant::now();
    seal(db, handles, dir)?;
    tracing::info!(
        target = %db_dir.display(),
        ms = sealing.elapsed().as_millis() as u64,
        "import: database committed (persist, fsync, rename)"
    );
    summary.keyspaces = sel.len();
    summary.records = sel.iter().map(|&i| imported[i]).sum();
    summary.raw_bytes = sel.iter().map(|&i| totals[i].raw_bytes).sum();
    summary.elapsed = start.elapsed();
    Ok(summary)
}

/// A counting semaphore: at most `n` keyspaces are being written at once.
struct Slots {
    free: std::sync::Mutex<usize>,
    cv: std::sync::Condvar,
}

impl Slots {
    fn new(n: usize) -> Self {
        Slots { free: std::sync::Mutex::new(n.max(1)), cv: std::sync::Condvar::new() }
    }

    fn acquire(&self) {
        let mut free = self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
    }

    fn release(&self) {
        *self.free.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.cv.notify_one();
    }
}

/// Gives a slot back when dropped (also when unwinding).
struct SlotGuard<'a>(&'a Slots);

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.0.release();
    }
}
