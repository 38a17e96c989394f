//! The `threads` option shared by every parallel pipeline: 0 means one per
//! core, resolved here and nowhere else.

use crate::{Error, Result};

/// The most worker threads a `threads` option (`--threads`) may ask for.
pub const MAX_THREADS: usize = 256;

/// Threads to use for a `threads` option (0 = cores, at most [`MAX_THREADS`]).
pub fn effective_threads(threads: usize) -> usize {
    if threads == 0 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(MAX_THREADS)
    } else {
        threads
    }
}

/// Refuses a `threads` option over [`MAX_THREADS`].
pub fn check_threads(threads: usize) -> Result<()> {
    if threads > MAX_THREADS {
        return Err(Error::InvalidArgument(format!(
            "threads {threads} is outside 0..={MAX_THREADS} (0 = one per core)"
        )));
    }
    Ok(())
}

/// A rayon pool with `threads` workers (0 = cores).
pub fn pool_for(threads: usize) -> Result<rayon::ThreadPool> {
    check_threads(threads)?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(effective_threads(threads))
        .thread_name(|i| format!("floe-worker-{i}"))
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot start {threads} threads: {e}")))
}
