//! The error type of floe's pipelines (export, import, verify, reader, writer).
//! Format and engine layers have their own enums, wrapped here with context.

use crate::format::FormatError;
use std::path::PathBuf;

/// Errors from the fjall engine adapter.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The database is open in another process.
    #[error(
        "database {path} is locked by another process. fjall allows one process per database: \
         stop that process, or export online from inside it through the floe library \
         (floe::export::export_database on the application's own fjall::Database handle)"
    )]
    Locked { path: PathBuf },
    /// A database that an import would replace is open in another process
    /// (or being replaced by another floe).
    #[error(
        "database {path} is open in another process (fjall's lock is held), so it cannot be replaced. Stop that \
         process and run the import again; floe replaces a database only when no process has it open"
    )]
    TargetLocked { path: PathBuf },
    /// The source path holds no fjall database.
    #[error("{path} {what}; export reads an existing fjall database and never creates one")]
    NotADatabase { path: PathBuf, what: String },
    /// fjall returned an error.
    #[error("fjall error on {path} while {action}: {}{source}", disk_full(.source))]
    Fjall { path: PathBuf, action: String, source: fjall::Error },
    /// fjall panicked (caught); should never happen after floe's own validation.
    #[error("fjall panicked on {path} while {action}: {message}")]
    Panicked { path: PathBuf, action: String, message: String },
    /// A keyspace option could not be carried to or from fjall.
    #[error("keyspace '{keyspace}': {detail}")]
    Options { keyspace: String, detail: String },
}

/// "the disk is full; " when an I/O error in `e`'s source chain says so
/// (fjall's own message is a debug dump in which that is easy to miss).
fn disk_full(e: &fjall::Error) -> &'static str {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if x.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull) {
            return "the disk is full; ";
        }
        cur = x.source();
    }
    ""
}

/// floe's top-level error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error, with what floe was doing and on which file.
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    /// The archive's bytes are wrong (or too new). `name` is the file or `<stdin>`.
    #[error("{name}: {source}")]
    Archive { name: String, source: FormatError },
    /// The fjall engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The caller passed something invalid.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Import target exists and is not empty.
    #[error(
        "target {0} exists and is not empty; pass --replace (library: ImportOptions::replace) to replace it atomically"
    )]
    TargetExists(PathBuf),
    /// An export or writer output exists and overwriting it was not asked
    /// for (`ExportOptions::overwrite`, [`crate::fs::AtomicFile::create_new`]).
    /// Front ends name their own switch (see `ffi/src/error.rs`).
    #[error(
        "output {0} already exists; floe does not overwrite it unless asked to (CLI: --force; library: \
         ExportOptions::overwrite). Choose another path, or remove it first"
    )]
    OutputExists(PathBuf),
    /// An object store (S3 and the like) failed, after its retries.
    #[error("{context}: {source}")]
    Store { context: String, source: object_store::Error },
    /// A backup repository operation failed (see `floe::backup`).
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The operation was cancelled by its progress callback or a signal.
    #[error("operation cancelled; nothing was left behind")]
    Cancelled,
    /// A broken invariant inside floe (a bug), never caused by input.
    #[error("internal error (a bug in floe; please report it): {0}")]
    Internal(String),
}

/// Errors of the backup catalog (`floe::backup`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// `holder` says which job holds the lock, where, since and until when.
    #[error("repository {repo} is locked by {holder}")]
    Locked { repo: String, holder: String },
    #[error("repository {repo}: manifest generation {generation} has version {version}; this floe writes version {supported} and refuses to {action} (it needs a newer floe)")]
    TooNew { repo: String, generation: u64, version: u64, supported: u64, action: String },
    #[error("repository {repo}: its marker {marker} has version {version}; this floe writes version {supported} and refuses to {action} (it needs a newer floe)")]
    RepositoryTooNew { repo: String, marker: String, version: u64, supported: u64, action: String },
    #[error("repository {repo}: {what} is malformed: {detail}")]
    Malformed { repo: String, what: String, detail: String },
    #[error("repository {repo} has no snapshot {id}")]
    NoSuchSnapshot { repo: String, id: String },
    #[error("snapshot {id} in {repo}: {detail}")]
    Mismatch { repo: String, id: String, detail: String },
    #[error("repository {repo}: {detail}")]
    Invalid { repo: String, detail: String },
    /// The location holds no floe repository (format-spec.md II.0).
    #[error("{repo} is not a floe backup repository: {detail}")]
    NotARepository { repo: String, detail: String },
}

/// What kind of failure an [`Error`] is: the one classification that every
/// front end maps from, each exactly once: the CLI to exit codes
/// (`src/main.rs`), the C ABI to `floe_status` (`ffi/src/error.rs`), Python to
/// its exception classes (through the C status codes).
///
/// New kinds may be added in later versions; match with a wildcard arm.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// An operating-system or object-store I/O error (missing file, permission, disk full, network).
    Io,
    /// An archive is damaged, truncated or not a floe archive; a snapshot does not match its
    /// manifest checksum; a backup manifest is malformed.
    Corrupt,
    /// An archive, manifest or repository marker needs a newer floe.
    Unsupported,
    /// A database, an import target or a backup repository is locked by another process or job.
    Locked,
    /// The import target exists and is not empty, or an export output exists and overwriting
    /// it was not asked for.
    TargetExists,
    /// The caller passed something invalid (including a location that is not a repository, or a
    /// snapshot id it does not hold).
    InvalidArgument,
    /// The storage engine (fjall) failed.
    Engine,
    /// Cancelled by a progress callback or a signal; nothing was left behind.
    Cancelled,
    /// A bug in floe: a broken invariant.
    Internal,
}

impl ErrorKind {
    /// A stable lower-case name (`"corrupt"`, `"target_exists"`, ...), for JSON output and logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Locked => "locked",
            ErrorKind::TargetExists => "target_exists",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Engine => "engine",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Internal => "internal",
        }
    }
}

impl Error {
    /// Wraps an I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// What kind of failure this is (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        use BackupError as B;
        match self {
            Error::Io { .. } | Error::Store { .. } => ErrorKind::Io,
            Error::Archive { source, .. } if source.is_unsupported() => ErrorKind::Unsupported,
            Error::Archive { .. } => ErrorKind::Corrupt,
            Error::Engine(EngineError::Locked { .. } | EngineError::TargetLocked { .. }) => ErrorKind::Locked,
            Error::Engine(_) => ErrorKind::Engine,
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::TargetExists(_) | Error::OutputExists(_) => ErrorKind::TargetExists,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::Internal(_) => ErrorKind::Internal,
            Error::Backup(b) => match b {
                B::Locked { .. } => ErrorKind::Locked,
                B::TooNew { .. } | B::RepositoryTooNew { .. } => ErrorKind::Unsupported,
                B::Malformed { .. } | B::Mismatch { .. } => ErrorKind::Corrupt,
                _ => ErrorKind::InvalidArgument,
            },
        }
    }

    /// The archive offset the error is about, when it names one (`--json`'s `error.offset`).
    pub fn offset(&self) -> Option<u64> {
        self.format_error().and_then(FormatError::offset)
    }

    /// The format error inside, if any.
    pub fn format_error(&self) -> Option<&FormatError> {
        match self {
            Error::Archive { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result alias for floe.
pub type Result<T> = std::result::Result<T, Error>;

/// Attaches a file name to format errors.
pub(crate) trait ArchiveContext<T> {
    fn ctx(self, name: &str) -> Result<T>;
}

impl<T> ArchiveContext<T> for std::result::Result<T, FormatError> {
    fn ctx(self, name: &str) -> Result<T> {
        self.map_err(|source| Error::Archive { name: name.to_owned(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_classify_every_family_of_error() {
        let b = |e: BackupError| Error::Backup(e).kind();
        assert_eq!(b(BackupError::Locked { repo: "r".into(), holder: "h".into() }), ErrorKind::Locked);
        assert_eq!(
            b(BackupError::Malformed { repo: "r".into(), what: "m".into(), detail: "d".into() }),
            ErrorKind::Corrupt
        );
        assert_eq!(
            b(BackupError::Mismatch { repo: "r".into(), id: "i".into(), detail: "d".into() }),
            ErrorKind::Corrupt
        );
        assert_eq!(b(BackupError::NoSuchSnapshot { repo: "r".into(), id: "i".into() }), ErrorKind::InvalidArgument);
        assert_eq!(Error::Internal("x".into()).kind(), ErrorKind::Internal);
        assert_eq!(Error::Cancelled.kind(), ErrorKind::Cancelled);
        assert_eq!(Error::Engine(EngineError::Locked { path: "p".into() }).kind(), ErrorKind::Locked);
        assert_eq!(ErrorKind::TargetExists.name(), "target_exists");
        assert_eq!(Error::OutputExists("a.floe".into()).kind(), ErrorKind::TargetExists);
    }
}
