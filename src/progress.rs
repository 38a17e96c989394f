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
    /// Expected records, or 0 when unknown. Like `bytes_total` for an
    /// export, an estimate (fjall's approximate item counts), never below
    /// `records_done`.
    pub records_total: u64,
}

/// Receives progress. Calls come from floe's worker threads but never
/// concurrently. Return `false` to cancel the operation.
pub trait Progress: Send + Sync {
    /// Called with the progress so far; `false` cancels the operation.
    fn report(&self, info: &ProgressInfo) -> bool;

    /// The operation moved on to keyspace `name` (the `index`-th of the
    /// archive or selection). Called between reports, never concurrently
    /// with them; when keyspaces are worked on in parallel (import of a
    /// random-access archive), the one started last.
    fn keyspace(&self, _index: usize, _name: &str) {}
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
    records_total: AtomicU64,
    /// The totals are estimates (see [`Tracker::with_estimate`]).
    estimate: Option<Mutex<Estimate>>,
    bytes: AtomicU64,
    records: AtomicU64,
    cancelled: AtomicBool,
}

/// Estimated sizes of the keyspaces of an operation worked on in order (an
/// export), refined as they are done.
struct Estimate {
    /// Per keyspace: (bytes, records) expected.
    expected: Vec<(u64, u64)>,
    /// The keyspace being worked on.
    current: usize,
    /// Bytes and records done before it.
    before: (u64, u64),
}

impl Estimate {
    /// (bytes, records) totals to report after `done` bytes and `records`.
    ///
    /// Keyspaces done count what they held. The current one: its bytes per
    /// record so far times its expected records (item counts are close;
    /// sizes on disk are compressed and undercount raw bytes). Those after
    /// it: their expected bytes, scaled by how far the finished keyspaces'
    /// raw bytes were from their expected ones. Never below what was done.
    fn totals(&self, done: u64, records: u64) -> (u64, u64) {
        let (b0, r0) = self.before;
        let (cur_b, cur_r) = (done.saturating_sub(b0), records.saturating_sub(r0));
        let expected_before: u64 = self.expected.iter().take(self.current).map(|e| e.0).sum();
        let scale = if expected_before > 0 && b0 > 0 { b0 as f64 / expected_before as f64 } else { 1.0 };
        let scaled = |b: u64| (b as f64 * scale) as u64;
        let (exp_b, exp_r) = self.expected.get(self.current).copied().unwrap_or((0, 0));
        let cur_total = if cur_r > 0 && exp_r > 0 {
            (u128::from(cur_b) * u128::from(exp_r.max(cur_r)) / u128::from(cur_r)) as u64
        } else {
            scaled(exp_b)
        };
        let after = self.expected.iter().skip(self.current + 1);
        let bytes = b0 + cur_total.max(cur_b) + after.clone().map(|e| scaled(e.0)).sum::<u64>();
        let recs = r0 + exp_r.max(cur_r) + after.map(|e| e.1).sum::<u64>();
        (bytes.max(done), recs.max(records))
    }
}

impl<'a> Tracker<'a> {
    /// Reports `phase` to `sink`, expecting `total` bytes (0: unknown).
    pub fn new(sink: &'a dyn Progress, phase: Phase, total: u64) -> Self {
        Tracker {
            sink: Mutex::new(sink),
            phase,
            total: AtomicU64::new(total),
            records_total: AtomicU64::new(0),
            estimate: None,
            bytes: AtomicU64::new(0),
            records: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
        }
    }

    /// A tracker whose totals are estimates, for work done keyspace by
    /// keyspace in order (an export): `expected` holds each keyspace's
    /// (bytes, records) as fjall estimates them. The reported totals are
    /// refined as records arrive and as keyspaces are done (see
    /// [`Tracker::keyspace`]), and never fall below what was done;
    /// [`Tracker::finish`] makes them exact.
    pub fn with_estimate(sink: &'a dyn Progress, phase: Phase, expected: Vec<(u64, u64)>) -> Self {
        let mut t = Tracker::new(sink, phase, expected.iter().map(|e| e.0).sum());
        t.records_total = AtomicU64::new(expected.iter().map(|e| e.1).sum());
        t.estimate = Some(Mutex::new(Estimate { expected, current: 0, before: (0, 0) }));
        t
    }

    /// Sets the expected number of records (0: unknown).
    pub fn set_records_total(&self, records: u64) {
        self.records_total.store(records, Ordering::Relaxed);
    }

    /// Tells the sink that work on keyspace `name` started (for an
    /// estimated tracker: every keyspace before it is done).
    pub fn keyspace(&self, index: usize, name: &str) {
        if let Some(e) = &self.estimate {
            let mut e = e.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            e.current = index;
            e.before = self.done();
        }
        match self.sink.lock() {
            Ok(s) => s.keyspace(index, name),
            Err(p) => p.into_inner().keyspace(index, name),
        }
    }

    /// Bytes and records done so far.
    pub fn done(&self) -> (u64, u64) {
        (self.bytes.load(Ordering::Relaxed), self.records.load(Ordering::Relaxed))
    }

    /// Adds work done and reports it; returns `Err(Cancelled)` once cancelled.
    pub fn add(&self, bytes: u64, records: u64) -> crate::Result<()> {
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let r = self.records.fetch_add(records, Ordering::Relaxed) + records;
        self.check()?;
        self.send(b, r, false)
    }

    /// Reports the end of an estimated operation: the totals become what was
    /// done, so a front end shows 100% and no remaining time.
    pub fn finish(&self) -> crate::Result<()> {
        let (b, r) = self.done();
        self.check()?;
        self.send(b, r, true)
    }

    fn send(&self, b: u64, r: u64, last: bool) -> crate::Result<()> {
        let total = self.total.load(Ordering::Relaxed);
        let records_total = self.records_total.load(Ordering::Relaxed);
        let (bytes_total, records_total) = match &self.estimate {
            Some(_) if last => (b, r),
            Some(e) => e.lock().unwrap_or_else(std::sync::PoisonError::into_inner).totals(b, r),
            None => (total, records_total),
        };
        let info = ProgressInfo { phase: self.phase, bytes_done: b, bytes_total, records_done: r, records_total };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_estimated_total_is_refined_and_never_below_what_was_done() {
        let e = |current, before| Estimate { expected: vec![(100, 10), (50, 100), (200, 4)], current, before };
        // Nothing done yet: the expected sizes.
        assert_eq!(e(0, (0, 0)).totals(0, 0), (350, 114));
        // 2 of 10 records of the first took 40 bytes: 200 expected of it.
        assert_eq!(e(0, (0, 0)).totals(40, 2), (200 + 50 + 200, 114));
        // The first held 300 bytes, 3x its estimate: the rest scaled by 3.
        assert_eq!(e(1, (300, 10)).totals(300, 10), (300 + 150 + 600, 114));
        // More records than counted: the totals follow what was done.
        assert_eq!(e(2, (400, 110)).totals(5000, 130), (5000, 130));
        let seen = Mutex::new(Vec::new());
        let sink = |p: &ProgressInfo| {
            seen.lock().unwrap().push(*p);
            true
        };
        let t = Tracker::with_estimate(&sink, Phase::Export, vec![(100, 4), (100, 1)]);
        t.keyspace(0, "a");
        t.add(50, 1).unwrap();
        t.keyspace(1, "b");
        t.add(250, 4).unwrap();
        t.finish().unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!((seen[0].bytes_total, seen[0].records_total), (200 + 100, 5));
        assert_eq!((seen[1].bytes_done, seen[1].bytes_total, seen[1].records_total), (300, 300, 5));
        assert_eq!((seen[2].bytes_done, seen[2].bytes_total, seen[2].records_total), (300, 300, 5));
    }
}
