//! Process-wide cancellation: a signal handler (the CLI's) or a host (the C
//! ABI) asks every running operation to stop; each one notices at its next
//! progress check, cleans up after itself and returns `Error::Cancelled`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// True once [`set_interrupted`] was called (the CLI's signal handler).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Makes every running operation stop with `Error::Cancelled`.
pub fn set_interrupted() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// What a signal handler sets, directly in the handler (atomics are
/// async-signal-safe): the flag [`interrupted`] reads, and the number of the
/// signal, which [`interrupting_signal`] reads. For the CLI's handlers.
pub fn signal_flags() -> (&'static AtomicBool, &'static AtomicUsize) {
    (&INTERRUPTED, &SIGNAL)
}

/// The signal that interrupted this process, if a handler recorded one.
pub fn interrupting_signal() -> Option<i32> {
    i32::try_from(SIGNAL.load(Ordering::SeqCst)).ok().filter(|&s| s != 0)
}
