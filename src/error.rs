//! The error type of floe's pipelines (export, import, verify, reader, writer).
//! Format and engine layers have their own enums, wrapped here with context.

use crate::format::FormatError;
use std::path::PathBuf;

/// Errors from the fjall engine adapter.
#[derive(Debug, thiserror::Error)]
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
    #[error(
        "{path} is not a fjall database (no 'version' file); export reads an existing database and never creates one"
    )]
    NotADatabase { path: PathBuf },
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
    /// An object store (S3 and the like) failed, after its retries.
    #[error("{context}: {source}")]
    Store { context: String, source: object_store::Error },
    /// A backup repository operation failed (see `floe::backup`).
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    /// The operation was cancelled by its progress callback or a signal.
    #[error("operation cancelled; nothing was left behind")]
    Cancelled,
}

impl Error {
    /// Wraps an I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
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
