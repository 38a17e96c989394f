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
    Locked {
        /// The database directory.
        path: PathBuf,
    },
    /// A database that an import would replace is open in another process
    /// (or being replaced by another floe).
    #[error(
        "database {path} is open in another process (fjall's lock is held), so it cannot be replaced. Stop that \
         process and run the import again; floe replaces a database only when no process has it open"
    )]
    TargetLocked {
        /// The database directory the import would replace.
        path: PathBuf,
    },
    /// The source path holds no fjall database.
    #[error("{path} {what}; export reads an existing fjall database and never creates one")]
    NotADatabase {
        /// The path given as the source.
        path: PathBuf,
        /// What is there instead ("does not exist", "is a file, ...").
        what: String,
    },
    /// fjall returned an error.
    #[error("fjall error on {path} while {action}: {}{source}", disk_full(.source))]
    Fjall {
        /// The database directory.
        path: PathBuf,
        /// What floe was doing, e.g. "opening the database".
        action: String,
        /// fjall's error.
        source: fjall::Error,
    },
    /// fjall panicked (caught); should never happen after floe's own validation.
    #[error("fjall panicked on {path} while {action}: {message}")]
    Panicked {
        /// The database directory.
        path: PathBuf,
        /// What floe was doing.
        action: String,
        /// The panic's message.
        message: String,
    },
    /// A keyspace option could not be carried to or from fjall.
    #[error("keyspace '{keyspace}': {detail}")]
    Options {
        /// The keyspace.
        keyspace: String,
        /// What could not be carried, and why.
        detail: String,
    },
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
    Io {
        /// What floe was doing, and on which file.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The archive's bytes are wrong (or too new). `name` is the file or `<stdin>`.
    #[error("{name}: {source}")]
    Archive {
        /// The archive: a path, `<stdin>` or a URL.
        name: String,
        /// What is wrong with its bytes.
        source: FormatError,
    },
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
    Store {
        /// What floe was doing, and on which object.
        context: String,
        /// The object store's error.
        source: object_store::Error,
    },
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
    Locked {
        /// The repository (its path or URL).
        repo: String,
        /// Who holds the lock: job, host, since and until when.
        holder: String,
    },
    /// A manifest is of a newer version than this floe writes.
    #[error("repository {repo}: manifest generation {generation} has version {version}; this floe writes version {supported} and refuses to {action} (it needs a newer floe)")]
    TooNew {
        /// The repository (its path or URL).
        repo: String,
        /// The manifest's generation.
        generation: u64,
        /// Its version.
        version: u64,
        /// The version this floe writes.
        supported: u64,
        /// What floe refused to do.
        action: String,
    },
    /// The repository marker is of a newer version than this floe writes.
    #[error("repository {repo}: its marker {marker} has version {version}; this floe writes version {supported} and refuses to {action} (it needs a newer floe)")]
    RepositoryTooNew {
        /// The repository (its path or URL).
        repo: String,
        /// The marker file.
        marker: String,
        /// Its version.
        version: u64,
        /// The version this floe writes.
        supported: u64,
        /// What floe refused to do.
        action: String,
    },
    /// A repository file does not parse or breaks a rule of format-spec.md part II.
    #[error("repository {repo}: {what} is malformed: {detail}")]
    Malformed {
        /// The repository (its path or URL).
        repo: String,
        /// The file that is malformed.
        what: String,
        /// What is wrong with it.
        detail: String,
    },
    /// No snapshot has this id.
    #[error("repository {repo} has no snapshot {id}")]
    NoSuchSnapshot {
        /// The repository (its path or URL).
        repo: String,
        /// The snapshot id asked for.
        id: String,
    },
    /// A snapshot's archive does not match what the manifest records for it.
    #[error("snapshot {id} in {repo}: {detail}")]
    Mismatch {
        /// The repository (its path or URL).
        repo: String,
        /// The snapshot.
        id: String,
        /// What does not match.
        detail: String,
    },
    /// The operation cannot be done on the repository as it is (it holds the
    /// most snapshots it may, a manifest vanished, writers kept conflicting).
    #[error("repository {repo}: {detail}")]
    Invalid {
        /// The repository (its path or URL).
        repo: String,
        /// What stands in the way, and what to do.
        detail: String,
    },
    /// The location holds no floe repository (format-spec.md II.0).
    #[error("{repo} is not a floe backup repository: {detail}")]
    NotARepository {
        /// The location.
        repo: String,
        /// Why it is not one.
        detail: String,
    },
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
