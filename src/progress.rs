//! Progress reporting and cancellation for long operations. The library reports
//! through the [`Progress`] trait; the CLI draws bars, the C ABI calls a callback.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Which operation is reporting. (Exhaustive on purpose: a front end that
/// maps phases, like the C ABI, must fail to compile when one is added.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// An export: bytes are raw record-stream bytes written.
    Export,
    /// An import: bytes are raw record-stream bytes read.
    Import,
    /// A verification.
    Verify,
}

/// A progress report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProgressInfo {
    /// The operation reporting.
    pub phase: Phase,
    /// Bytes processed so far (raw record-stream bytes).
    pub bytes_done: u64,
    /// Expected total, or 0 when unknown (streaming).
    pub bytes_total: u64,
    /// Records processed so far.
    pub records_done: u64,
}

/// Receives progress. Calls come from floe's worker threads but never
/// concurrently. Return `false` to cancel the operation.
pub trait Progress: Send + Sync {
    /// Called with the progress so far; `false` cancels the operation.
    fn report(&self, info: &ProgressInfo) -> bool;
}

/// Ignores progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _: &ProgressInfo) -> bool {
        true
    }
}

impl<F: Fn(&ProgressInfo) -> bool + Send + Sync> Progress for F {
    fn report(&self, info: &ProgressInfo) -> bool {
        self(info)
    }
}

/// Shared counters that serialise calls into a [`Progress`] and latch cancellation.
/// Aggregates progress across worker threads (public for the pipelines and C ABI).
pub struct Tracker<'a> {
    sink: Mutex<&'a dyn Progress>,
    phase: Phase,
    total: AtomicU64,
    bytes: AtomicU64,
    records: AtomicU64,
    cancelled: AtomicBool,
}

impl<'a> Tracker<'a> {
    /// Reports `phase` to `sink`, expecting `total` bytes (0: unknown).
    pub fn new(sink: &'a dyn Progress, phase: Phase, total: u64) -> Self {
        Tracker {
            sink: Mutex::new(sink),
            phase,
            total: AtomicU64::new(total),
            bytes: AtomicU64::new(0),
            records: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
        }
    }

    /// Adds work done and reports it; returns `Err(Cancelled)` once cancelled.
    pub fn add(&self, bytes: u64, records: u64) -> crate::Result<()> {
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let r = self.records.fetch_add(records, Ordering::Relaxed) + records;
        self.check()?;
        let info = ProgressInfo {
            phase: self.phase,
            bytes_done: b,
            bytes_total: self.total.load(Ordering::Relaxed),
            records_done: r,
        };
        let keep_going = match self.sink.lock() {
            Ok(s) => s.report(&info),
            Err(p) => p.into_inner().report(&info),
        };
        if !keep_going {
            self.cancel();
        }
        self.check()
    }

    /// Cancels; every worker notices at its next check.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    /// `Err(Cancelled)` once cancelled, by the callback or by a signal.
    pub fn check(&self) -> crate::Result<()> {
        if self.cancelled.load(Ordering::Relaxed) || crate::util::interrupt::interrupted() {
            Err(crate::Error::Cancelled)
        } else {
            Ok(())
        }
    }
}
