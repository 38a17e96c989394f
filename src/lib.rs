//! floe: flat-file, streaming, checksummed export/import archives for
//! [fjall](https://docs.rs/fjall) databases.
//!
//! An archive holds one consistent snapshot of every keyspace of a database
//! in one file: zstd frames of sorted records, each checksummed, with an
//! index for random access. `format-spec.md` describes every byte.
//!
//! The entry points are re-exported here:
//! - **Export** an open database online ([`export_to`]) or a database
//!   directory ([`export_path`]) to an atomic local file, standard output or
//!   an object URL ([`Destination`], [`store::Location`]).
//! - **Import** an archive into a new database, atomically and in parallel
//!   ([`import_file`], [`import_archive`], [`import_stream`]).
//! - **Read** an archive in place: [`Archive`] (memory map, buffer or ranged
//!   object reads) with [`RecordCursor`] to seek and iterate, and
//!   [`StreamReader`] / [`verify_stream`] front to back.
//! - **Write** an archive from records of your own, with no engine involved:
//!   [`RecordWriter`] (keyspaces in any order).
//! - **Back up** into a repository with a manifest: [`backup`].
//!
//! Every error is an [`Error`]; [`Error::kind`] classifies it
//! ([`ErrorKind`]). Progress and cancellation go through [`Progress`]; a
//! closure `|p: &ProgressInfo| -> bool` is one, and returning `false` cancels.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! // The application's own database, open and taking writes.
//! let db = fjall::Database::builder(dir.path().join("db")).open()?;
//! let users = db.keyspace("users", fjall::KeyspaceCreateOptions::default)?;
//! users.insert("alice", "admin")?;
//! users.insert("bob", "reader")?;
//!
//! // Online export of one snapshot, written atomically (temporary file,
//! // fsync, rename; never over an existing file unless `overwrite`).
//! let path = dir.path().join("backup.floe");
//! let opts = floe::ExportOptions::default();
//! let s = floe::export_to(&db, floe::Destination::File(&path), &opts, &floe::NoProgress)?;
//! assert_eq!(s.write.records, 2);
//!
//! // Look inside without restoring: seek to the first key >= "b".
//! let archive = floe::Archive::open(&path)?;
//! let mut c = archive.cursor();
//! c.seek_named("users", b"b")?;
//! let r = c.next()?.expect("bob is there");
//! assert_eq!((r.key, r.value), (&b"bob"[..], &b"reader"[..]));
//!
//! // Rebuild a new database from it, atomically.
//! let restored = dir.path().join("restored");
//! let i = floe::import_file(&path, &restored, &floe::ImportOptions::default(), &floe::NoProgress)?;
//! assert_eq!(i.records, 2);
//! # Ok(()) }
//! ```
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod error;
pub mod format;
mod util;

pub mod engine;
pub mod progress;
pub mod read;
pub mod write;

pub mod export;
pub mod import;
pub mod inspect;
pub mod key_range;
pub mod store;

pub mod backup;

#[doc(hidden)]
pub mod sample;

pub use error::{BackupError, EngineError, Error, ErrorKind, Result};
pub use export::{export_database, export_path, export_to, Destination, ExportOptions, ExportSummary};
pub use import::{import_archive, import_file, import_stream, ImportOptions, ImportSummary};
pub use key_range::KeyRange;
pub use progress::{NoProgress, Phase, Progress, ProgressInfo};
pub use read::cursor::{Record, RecordCursor};
pub use read::diff::{diff, Change, ChangeKind, DiffSummary, KeyspaceDiff, Presence};
pub use read::query::{prefix_successor, RangeCursor};
pub use read::{verify_stream, Archive, Source, StreamReader, VerifyReport};
pub use util::interrupt;
pub use util::text;
pub use util::threads;
pub use util::threads::MAX_THREADS;
pub use write::{RecordWriter, WriteSummary};

/// Durable, atomic file-system operations that front ends need.
pub mod fs {
    pub use crate::util::fs::{clean_leftovers, AtomicFile};
}
