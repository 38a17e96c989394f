//! Comparing two archives: a streaming merge-join of their records.
//!
//! [`diff`] walks the keyspaces of two archives by name (both keyspace
//! tables are sorted by name, §5) and, for each keyspace in both, the
//! records of both with one [`RecordCursor`] per side, in key order. Every
//! key in only one side or with a different value is handed to a callback as
//! a [`Change`]; the [`DiffSummary`] counts them per keyspace.
//!
//! - A keyspace in only one archive is reported as a whole
//!   ([`Presence::OnlyInA`] / [`Presence::OnlyInB`]) with its record count
//!   from the index: its keys are not listed and its blocks are not read.
//! - Keyspace options are compared with [`KeyspaceOptions`] equality; a
//!   difference sets [`KeyspaceDiff::options_changed`] and counts as a
//!   difference.
//!
//! Archive A is read ahead by a thread of its own (its blocks decompress
//! while B's do), handing its records over in batches of about 1 MiB (or
//! 16,384 records, or one larger record), at most three at a time. Memory is
//! bounded by that plus what two cursors hold (one decompressed block and one
//! spanning record each), whatever the archives' sizes. Every record read goes through the cursor's §11
//! checks, so a corrupt archive fails the diff instead of giving an answer.
//!
//! ```no_run
//! # fn main() -> floe::Result<()> {
//! use std::path::Path;
//! let a = floe::Archive::open(Path::new("monday.floe"))?;
//! let b = floe::Archive::open(Path::new("tuesday.floe"))?;
//! let s = floe::read::diff::diff(&a, &b, None, |c| {
//!     println!("{} {} {}", c.kind.name(), c.keyspace, floe::text::hex(c.key));
//!     Ok(())
//! })?;
//! println!("the archives {}", if s.differs() { "differ" } else { "hold the same data" });
//! # Ok(()) }
//! ```

use crate::format::options::KeyspaceOptions;
use crate::read::cursor::RecordCursor;
use crate::read::{Archive, Source};
use crate::{Error, Result};
use std::cmp::Ordering;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

/// How one key differs between archive A and archive B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The key is in B only.
    Added,
    /// The key is in A only.
    Removed,
    /// The key is in both, with different values.
    Changed,
}

impl ChangeKind {
    /// `"added"`, `"removed"` or `"changed"` (the CLI's JSON `change`).
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

/// One differing key, handed to [`diff`]'s callback. Its slices are valid
/// for the call only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change<'a> {
    /// The keyspace's name.
    pub keyspace: &'a str,
    /// The key.
    pub key: &'a [u8],
    /// How it differs.
    pub kind: ChangeKind,
}

/// Which archives hold a keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Presence {
    /// Both: its records were compared.
    Both,
    /// Archive A only: the keyspace was removed.
    OnlyInA,
    /// Archive B only: the keyspace was added.
    OnlyInB,
}

impl Presence {
    /// `"both"`, `"removed"` (A only) or `"added"` (B only).
    pub fn name(self) -> &'static str {
        match self {
            Presence::Both => "both",
            Presence::OnlyInA => "removed",
            Presence::OnlyInB => "added",
        }
    }
}

/// The comparison of one keyspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceDiff {
    /// The keyspace's name.
    pub name: String,
    /// Which archives hold it.
    pub presence: Presence,
    /// In both, with different options.
    pub options_changed: bool,
    /// Keys in B only (for a keyspace in B only: its record count).
    pub added: u64,
    /// Keys in A only (for a keyspace in A only: its record count).
    pub removed: u64,
    /// Keys in both with different values.
    pub changed: u64,
    /// Keys in both with the same value.
    pub unchanged: u64,
}

impl KeyspaceDiff {
    /// The keyspace differs: it is in one archive only, its options changed,
    /// or a key was added, removed or changed.
    pub fn differs(&self) -> bool {
        self.presence != Presence::Both
            || self.options_changed
            || self.added > 0
            || self.removed > 0
            || self.changed > 0
    }
}

/// What [`diff`] found: one entry per keyspace compared, in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffSummary {
    /// The keyspaces, in byte order of their names.
    pub keyspaces: Vec<KeyspaceDiff>,
}

impl DiffSummary {
    /// Some keyspace differs ([`KeyspaceDiff::differs`]); `false` means the
    /// archives hold the same data (for the keyspaces compared).
    pub fn differs(&self) -> bool {
        self.keyspaces.iter().any(KeyspaceDiff::differs)
    }

    /// The summary as JSON: `{"same", "keyspaces": [{"keyspace", "presence",
    /// "options_changed", "added", "removed", "changed", "unchanged",
    /// "differs"}]}` (what `floe diff --json` ends with and the C ABI's
    /// `floe_diff_summary_json` returns).
    pub fn to_json(&self) -> serde_json::Value {
        let ks: Vec<serde_json::Value> = self
            .keyspaces
            .iter()
            .map(|k| {
                serde_json::json!({
                    "keyspace": k.name, "presence": k.presence.name(), "options_changed": k.options_changed,
                    "added": k.added, "removed": k.removed, "changed": k.changed, "unchanged": k.unchanged,
                    "differs": k.differs(),
                })
            })
            .collect();
        serde_json::json!({"same": !self.differs(), "keyspaces": ks})
    }
}

/// Compares archive `a` (the old one) with `b` (the new one): see the
/// [module docs](self). `keyspaces` limits the comparison to those names
/// (each must be in at least one archive); `None` compares all. `on_change`
/// is called for every differing key of the keyspaces in both archives, in
/// name then key order; an error from it stops the diff and is returned.
pub fn diff<SA: Source, SB: Source>(
    a: &Archive<SA>,
    b: &Archive<SB>,
    keyspaces: Option<&[String]>,
    on_change: impl FnMut(&Change<'_>) -> Result<()>,
) -> Result<DiffSummary> {
    diff_until(a, b, keyspaces, &AtomicBool::new(false), on_change)
}

/// As [`diff`], but stops with [`Error::Cancelled`] soon after `stop` is
/// set (it is checked at every record of B and every keyspace), even in a
/// stretch where no key differs; used by the C ABI, whose diff runs on a
/// thread of its own and can be freed at any time.
pub fn diff_until<SA: Source, SB: Source>(
    a: &Archive<SA>,
    b: &Archive<SB>,
    keyspaces: Option<&[String]>,
    stop: &AtomicBool,
    mut on_change: impl FnMut(&Change<'_>) -> Result<()>,
) -> Result<DiffSummary> {
    if let Some(names) = keyspaces {
        for n in names {
            if a.keyspace_position(n).is_none() && b.keyspace_position(n).is_none() {
                return Err(Error::InvalidArgument(format!(
                    "keyspace '{n}' is in neither archive; {} has {}, {} has {}",
                    a.name(),
                    names_of(a),
                    b.name(),
                    names_of(b)
                )));
            }
        }
    }
    let wanted = |name: &str| keyspaces.is_none_or(|names| names.iter().any(|n| n == name));
    let (ea, eb) = (a.keyspaces(), b.keyspaces());
    let (mut i, mut j) = (0, 0);
    let mut out = DiffSummary::default();
    loop {
        if stop.load(AtomicOrdering::Relaxed) {
            return Err(Error::Cancelled);
        }
        let order = match (ea.get(i), eb.get(j)) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(x), Some(y)) => x.name.as_bytes().cmp(y.name.as_bytes()),
        };
        let d = match order {
            Ordering::Less => {
                i += 1;
                one_sided(a, i - 1, Presence::OnlyInA)?
            }
            Ordering::Greater => {
                j += 1;
                one_sided(b, j - 1, Presence::OnlyInB)?
            }
            Ordering::Equal => {
                let (ka, kb) = (i, j);
                i += 1;
                j += 1;
                let name = a.keyspaces().get(ka).map(|e| e.name.as_str()).unwrap_or_default();
                if !wanted(name) {
                    continue;
                }
                both(a, ka, b, kb, stop, &mut on_change)?
            }
        };
        if wanted(&d.name) {
            out.keyspaces.push(d);
        }
    }
    Ok(out)
}

fn names_of<S: Source>(a: &Archive<S>) -> String {
    if a.keyspaces().is_empty() {
        return "no keyspaces".into();
    }
    let names: Vec<String> = a.keyspaces().iter().map(|e| format!("'{}'", e.name)).collect();
    names.join(", ")
}

/// Keyspace `k` of `a`, present in that archive only.
fn one_sided<S: Source>(a: &Archive<S>, k: usize, presence: Presence) -> Result<KeyspaceDiff> {
    let (entry, ki, _) = a.keyspace_parts(k)?;
    let n = ki.totals.record_count;
    let (added, removed) = if presence == Presence::OnlyInB { (n, 0) } else { (0, n) };
    Ok(KeyspaceDiff {
        name: entry.name.clone(),
        presence,
        options_changed: false,
        added,
        removed,
        changed: 0,
        unchanged: 0,
    })
}

/// The merge-join of keyspace `ka` of `a` with `kb` of `b` (the same name).
fn both<SA: Source, SB: Source>(
    a: &Archive<SA>,
    ka: usize,
    b: &Archive<SB>,
    kb: usize,
    stop: &AtomicBool,
    on_change: &mut impl FnMut(&Change<'_>) -> Result<()>,
) -> Result<KeyspaceDiff> {
    let (entry_a, _, _) = a.keyspace_parts(ka)?;
    let (entry_b, _, _) = b.keyspace_parts(kb)?;
    let name = entry_a.name.as_str();
    let options_changed = !same_options(&entry_a.options, &entry_b.options);
    let mut d = KeyspaceDiff {
        name: name.to_owned(),
        presence: Presence::Both,
        options_changed,
        added: 0,
        removed: 0,
        changed: 0,
        unchanged: 0,
    };
    std::thread::scope(|scope| -> Result<()> {
        // A is read ahead by a thread of its own, in batches, while B is read
        // here: the two archives' blocks are decompressed in parallel.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("floe-diff".into())
            .spawn_scoped(scope, move || read_ahead(a, ka, &tx))
            .map_err(|e| Error::io("starting a thread to read the first archive", e))?;
        let mut pa = Batched { rx, batch: Batch::default(), i: 0, off: 0 };
        pa.step()?;
        let mut cb = RecordCursor::keyspace(b, kb)?;
        let mut report = |d: &mut KeyspaceDiff, key: &[u8], kind: ChangeKind| -> Result<()> {
            match kind {
                ChangeKind::Added => d.added += 1,
                ChangeKind::Removed => d.removed += 1,
                ChangeKind::Changed => d.changed += 1,
            }
            on_change(&Change { keyspace: name, key, kind })
        };
        while let Some(rb) = cb.next()? {
            if stop.load(AtomicOrdering::Relaxed) {
                return Err(Error::Cancelled);
            }
            loop {
                let Some((key_a, value_a)) = pa.current() else {
                    report(&mut d, rb.key, ChangeKind::Added)?;
                    break;
                };
                match key_a.cmp(rb.key) {
                    Ordering::Less => {
                        report(&mut d, key_a, ChangeKind::Removed)?;
                        pa.step()?;
                    }
                    Ordering::Equal => {
                        if value_a == rb.value {
                            d.unchanged += 1;
                        } else {
                            report(&mut d, rb.key, ChangeKind::Changed)?;
                        }
                        pa.step()?;
                        break;
                    }
                    Ordering::Greater => {
                        report(&mut d, rb.key, ChangeKind::Added)?;
                        break;
                    }
                }
            }
        }
        while let Some((key_a, _)) = pa.current() {
            if stop.load(AtomicOrdering::Relaxed) {
                return Err(Error::Cancelled);
            }
            report(&mut d, key_a, ChangeKind::Removed)?;
            pa.step()?;
        }
        // Dropping `pa` (its receiver) here stops the reader if it is still
        // running (after an error); the scope then waits for it.
        Ok(())
    })?;
    Ok(d)
}

/// Options equality; floats that `==` refuses (a NaN) compare by their
/// rendering, so an option read alike from both archives is the same.
fn same_options(x: &KeyspaceOptions, y: &KeyspaceOptions) -> bool {
    x == y || format!("{x:?}") == format!("{y:?}")
}

/// Records of A, keys and values concatenated, from the reader thread.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    /// Each record's key and value lengths, in order.
    lens: Vec<(usize, usize)>,
}

/// A batch is sent when it holds this many bytes (or a record larger).
const BATCH_BYTES: usize = 1 << 20;
/// ... or this many records.
const BATCH_RECORDS: usize = 16 * 1024;

/// The reader thread: keyspace `k` of `a` in batches into `tx`, then its
/// error if any. Stops when the receiver is gone.
fn read_ahead<S: Source>(a: &Archive<S>, k: usize, tx: &std::sync::mpsc::SyncSender<Result<Batch>>) {
    let mut c = match RecordCursor::keyspace(a, k) {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    let mut b = Batch::default();
    loop {
        match c.next() {
            Ok(Some(r)) => {
                b.data.extend_from_slice(r.key);
                b.data.extend_from_slice(r.value);
                b.lens.push((r.key.len(), r.value.len()));
                if (b.data.len() >= BATCH_BYTES || b.lens.len() >= BATCH_RECORDS)
                    && tx.send(Ok(std::mem::take(&mut b))).is_err()
                {
                    return;
                }
            }
            Ok(None) => {
                if !b.lens.is_empty() {
                    let _ = tx.send(Ok(b));
                }
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

/// The receiving end: the current record of A in the current batch.
struct Batched {
    rx: std::sync::mpsc::Receiver<Result<Batch>>,
    batch: Batch,
    /// The current record's position in the batch, and its first byte.
    i: usize,
    off: usize,
}

impl Batched {
    /// The current record (key, value); `None` at the keyspace's end.
    fn current(&self) -> Option<(&[u8], &[u8])> {
        let &(k, v) = self.batch.lens.get(self.i)?;
        let key = self.batch.data.get(self.off..self.off + k)?;
        let value = self.batch.data.get(self.off + k..self.off + k + v)?;
        Some((key, value))
    }

    /// Moves to the next record, receiving the next batch when this one is
    /// done; an error of the reader is returned.
    fn step(&mut self) -> Result<()> {
        if let Some(&(k, v)) = self.batch.lens.get(self.i) {
            self.off += k + v;
            self.i += 1;
        }
        if self.i < self.batch.lens.len() {
            return Ok(());
        }
        self.i = 0;
        self.off = 0;
        self.batch = match self.rx.recv() {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Err(e),
            // The reader is done: the end.
            Err(_) => Batch::default(),
        };
        Ok(())
    }
}
