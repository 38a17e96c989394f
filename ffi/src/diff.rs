//! Comparing two open archives: the core's streaming merge-join
//! (`floe::read::diff`), run on a thread of its own and handed to C one
//! difference at a time.

use crate::error::{arg_out, arg_str_array, guard, guard_void, owned_c_string, write_out, FResult, Fail};
use crate::floe_status;
use crate::reader::{floe_reader, reader_ref, ReaderArchive};
use floe_core::read::diff::{diff, diff_until, ChangeKind, DiffSummary};
use floe_core::Error;
use std::collections::VecDeque;
use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// How a key differs between archive A and archive B (floe_diff_next()).
/// The numbers are fixed; new kinds are only ever appended.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum floe_change {
    /// The key is in B only.
    FLOE_CHANGE_ADDED = 1,
    /// The key is in A only.
    FLOE_CHANGE_REMOVED = 2,
    /// The key is in both archives, with different values.
    FLOE_CHANGE_CHANGED = 3,
}

impl From<ChangeKind> for floe_change {
    fn from(k: ChangeKind) -> Self {
        match k {
            ChangeKind::Added => floe_change::FLOE_CHANGE_ADDED,
            ChangeKind::Removed => floe_change::FLOE_CHANGE_REMOVED,
            ChangeKind::Changed => floe_change::FLOE_CHANGE_CHANGED,
        }
    }
}

/// One differing key, as returned by floe_diff_next(). The pointers point
/// into memory owned by the diff and stay valid until the next call to
/// floe_diff_next() or floe_diff_free() on it; they are never NULL.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct floe_difference {
    /// The keyspace's name, NUL-terminated UTF-8 (`keyspace_len` excludes
    /// the NUL). Keyspaces are matched by name: the keyspace's index may
    /// differ between the two archives.
    pub keyspace: *const c_char,
    /// Length of `keyspace` in bytes, without the NUL.
    pub keyspace_len: usize,
    /// The key's bytes.
    pub key: *const u8,
    /// Length of `key` in bytes.
    pub key_len: usize,
    /// Added (in B only), removed (in A only) or changed (another value).
    pub change: floe_change,
}

/// A difference as the diff thread hands it over.
struct Owned {
    /// The keyspace's name with a NUL appended (shared by its keys).
    keyspace: Arc<[u8]>,
    key: Vec<u8>,
    kind: ChangeKind,
}

enum Msg {
    Changes(Vec<Owned>),
    Done(floe_core::Result<DiffSummary>),
}

/// A batch is handed over when it holds this many differences ...
const BATCH: usize = 1024;
/// ... or this many key bytes.
const BATCH_BYTES: usize = 1 << 20;

/// A comparison of two archives under way (opaque). Create with
/// floe_reader_diff(); read with floe_diff_next() and, at the end,
/// floe_diff_summary_json(); free with floe_diff_free().
///
/// The comparison runs on a thread of its own, ahead of the caller by at
/// most two batches of differences (1024 keys or 1 MiB of keys each).
/// Memory is bounded as the core's diff bounds it, whatever the archives'
/// sizes. A diff is used by one thread at a time.
pub struct floe_diff {
    /// Set when the diff is freed: the comparison stops soon after.
    stop: Arc<AtomicBool>,
    rx: Option<Receiver<Msg>>,
    thread: Option<JoinHandle<()>>,
    queue: VecDeque<Owned>,
    /// The difference last returned (its bytes back the caller's pointers).
    current: Option<Owned>,
    summary: Option<String>,
    failed: Option<(floe_status, String)>,
}

impl Drop for floe_diff {
    fn drop(&mut self) {
        // Stop the comparison (closing the channel also makes its next
        // hand-over fail); then wait for it.
        self.stop.store(true, Ordering::Relaxed);
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn summary_json(s: &DiffSummary) -> String {
    s.to_json().to_string()
}

/// The diff thread: compares `a` with `b`, sending differences in batches
/// and then the summary or the error.
fn run(a: &ReaderArchive, b: &ReaderArchive, keyspaces: Option<&[String]>, stop: &AtomicBool, tx: &SyncSender<Msg>) {
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut last: Option<Arc<[u8]>> = None;
    let result = diff_until(a, b, keyspaces, stop, |c| {
        let name = match &last {
            Some(n) if n.get(..n.len() - 1) == Some(c.keyspace.as_bytes()) => Arc::clone(n),
            _ => {
                let n: Arc<[u8]> = [c.keyspace.as_bytes(), &[0]].concat().into();
                last = Some(Arc::clone(&n));
                n
            }
        };
        bytes += c.key.len();
        batch.push(Owned { keyspace: name, key: c.key.to_vec(), kind: c.kind });
        if batch.len() >= BATCH || bytes >= BATCH_BYTES {
            bytes = 0;
            // The receiver is gone: the diff was freed; stop.
            tx.send(Msg::Changes(std::mem::take(&mut batch))).map_err(|_| Error::Cancelled)?;
        }
        Ok(())
    });
    if !batch.is_empty() && tx.send(Msg::Changes(batch)).is_err() {
        return;
    }
    let _ = tx.send(Msg::Done(result));
}

impl floe_diff {
    fn next(&mut self) -> FResult<Option<&Owned>> {
        if let Some((status, message)) = &self.failed {
            return Err(Fail::new(*status, format!("the diff failed earlier: {message}")));
        }
        self.current = None;
        loop {
            if let Some(c) = self.queue.pop_front() {
                return Ok(Some(self.current.insert(c)));
            }
            let Some(rx) = &self.rx else { return Ok(None) };
            let msg = rx
                .recv()
                .unwrap_or_else(|_| Msg::Done(Err(Error::Internal("the diff thread ended without a result".into()))));
            match msg {
                Msg::Changes(v) => self.queue.extend(v),
                Msg::Done(Ok(s)) => {
                    self.summary = Some(summary_json(&s));
                    self.rx = None;
                    return Ok(None);
                }
                Msg::Done(Err(e)) => {
                    let e = Fail::from(e);
                    self.failed = Some((e.status, e.message.clone()));
                    self.rx = None;
                    return Err(e);
                }
            }
        }
    }
}

/// Starts comparing archive `a` (the old one) with `b` (the new one): a
/// streaming merge-join of their records, keyspace by keyspace (matched by
/// name) and key by key, as `floe diff` does. `keyspaces` (`keyspace_count`
/// names) limits the comparison to those keyspaces, each of which must be in
/// at least one archive; NULL with 0 compares all.
///
/// floe_diff_next() then returns each differing key of the keyspaces in both
/// archives, in name then key order. After it returned `FLOE_DONE`,
/// floe_diff_summary_json() gives the summary: keyspaces in one archive only
/// (their keys are not listed), changed options, and counts per keyspace.
/// Every record read is checked as iteration checks it: a damaged archive
/// makes floe_diff_next() fail rather than report a difference.
///
/// The readers may be freed before the diff.
///
/// # Safety
/// `a` and `b` are live handles; `keyspaces` is NULL or points to
/// `keyspace_count` NUL-terminated strings; `out_diff` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_reader_diff(
    a: *const floe_reader,
    b: *const floe_reader,
    keyspaces: *const *const c_char,
    keyspace_count: usize,
    out_diff: *mut *mut floe_diff,
) -> floe_status {
    guard("floe_reader_diff", || {
        let ra = reader_ref(a).map_err(|_| Fail::null("a"))?;
        let rb = reader_ref(b).map_err(|_| Fail::null("b"))?;
        // SAFETY: per the function contract.
        let names = unsafe { arg_str_array(keyspaces, keyspace_count, "keyspaces") }?;
        arg_out(out_diff, "out_diff")?;
        let names = (!keyspaces.is_null()).then_some(names);
        // Check the names here, so that a wrong one fails this call.
        if let Some(names) = &names {
            for n in names {
                if ra.archive.keyspace_position(n).is_none() && rb.archive.keyspace_position(n).is_none() {
                    // The core's message names the keyspaces of both archives.
                    diff(&*ra.archive, &*rb.archive, Some(std::slice::from_ref(n)), |_| Ok(()))?;
                }
            }
        }
        let (aa, ab) = (Arc::clone(&ra.archive), Arc::clone(&rb.archive));
        let (tx, rx) = sync_channel(2);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("floe-diff-c".into())
            .spawn(move || {
                let tx2 = tx.clone();
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run(&aa, &ab, names.as_deref(), &stop2, &tx)
                }));
                if r.is_err() {
                    let _ = tx2.send(Msg::Done(Err(Error::Internal("the diff panicked".into()))));
                }
            })
            .map_err(|e| Fail::from(Error::io("starting the diff thread", e)))?;
        let d = floe_diff {
            stop,
            rx: Some(rx),
            thread: Some(thread),
            queue: VecDeque::new(),
            current: None,
            summary: None,
            failed: None,
        };
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_diff, Box::into_raw(Box::new(d))) };
        Ok(floe_status::FLOE_OK)
    })
}

/// Advances the diff. Returns `FLOE_OK` and fills `*out_difference`, or
/// `FLOE_DONE` when every difference has been returned (and on every later
/// call), or an error, which every later call repeats. The difference's
/// pointers stay valid until the next call on this diff.
///
/// # Safety
/// `d` is a live handle; `out_difference` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_diff_next(d: *mut floe_diff, out_difference: *mut floe_difference) -> floe_status {
    guard("floe_diff_next", || {
        // SAFETY: NULL or a live handle, per the contract.
        let d = unsafe { d.as_mut() }.ok_or_else(|| Fail::null("diff"))?;
        arg_out(out_difference, "out_difference")?;
        match d.next()? {
            Some(c) => {
                let out = floe_difference {
                    keyspace: c.keyspace.as_ptr().cast::<c_char>(),
                    keyspace_len: c.keyspace.len() - 1,
                    key: c.key.as_ptr(),
                    key_len: c.key.len(),
                    change: c.kind.into(),
                };
                // SAFETY: checked non-NULL above.
                unsafe { write_out(out_difference, out) };
                Ok(floe_status::FLOE_OK)
            }
            None => Ok(floe_status::FLOE_DONE),
        }
    })
}

/// The summary of a finished diff as a JSON object, the summary of `floe
/// diff --json`: `{"same": bool, "keyspaces": [{"keyspace", "presence"
/// ("both", "removed": in A only, "added": in B only), "options_changed",
/// "added", "removed", "changed", "unchanged", "differs"}, ...]}`, one entry
/// per keyspace compared, in name order. For a keyspace in one archive only,
/// `added` or `removed` is its record count. `same` is true when the archives
/// hold the same data. Only after floe_diff_next() returned `FLOE_DONE`;
/// before, `FLOE_INVALID_STATE`. The caller frees `*out_json` with
/// floe_string_free().
///
/// # Safety
/// `d` is a live handle; `out_json` is valid.
#[no_mangle]
pub unsafe extern "C" fn floe_diff_summary_json(d: *const floe_diff, out_json: *mut *mut c_char) -> floe_status {
    guard("floe_diff_summary_json", || {
        // SAFETY: NULL or a live handle, per the contract.
        let d = unsafe { d.as_ref() }.ok_or_else(|| Fail::null("diff"))?;
        arg_out(out_json, "out_json")?;
        if let Some((status, message)) = &d.failed {
            return Err(Fail::new(*status, format!("the diff failed: {message}")));
        }
        let s = summary_of(d)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_json, owned_c_string(s.to_owned())) };
        Ok(floe_status::FLOE_OK)
    })
}

fn summary_of(d: &floe_diff) -> FResult<&str> {
    d.summary
        .as_deref()
        .ok_or_else(|| Fail::state("the diff is not finished: call floe_diff_next() until it returns FLOE_DONE first"))
}

/// Frees a diff, stopping its comparison if it is still running (within a
/// record or so; it does not run to its end). Accepts NULL.
///
/// # Safety
/// `d` is NULL or a live handle, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn floe_diff_free(d: *mut floe_diff) {
    if d.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: a live handle from Box::into_raw, per the contract.
        drop(unsafe { Box::from_raw(d) });
    });
}
