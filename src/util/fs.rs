//! Durable, atomic file-system operations: temporary siblings, fsync of files
//! and directories bottom-up, rename into place, cleanup of leftovers.
//!
//! Temporary names are `.<target name>.floe-tmp-<pid>-<n>` (and
//! `.<target name>.floe-old-<pid>-<n>` for a database moved aside by a
//! replacement where the OS cannot swap atomically). The pid is there for
//! people reading a directory listing; it is **not** what decides whether a
//! temporary is abandoned, because a pid means nothing across pid namespaces
//! (containers) or hosts. Instead every temporary is held under an advisory
//! `flock(2)` on the temporary itself (the file, or the directory) by its
//! owner for as long as it is in use, and [`clean_leftovers`] removes only a
//! temporary whose lock it can take: the kernel releases a lock when its
//! owner exits, however it exits. Creating a temporary and taking its lock
//! happen under a shared `flock` of the parent directory, and the scan for
//! leftovers under an exclusive one, so a scan never sees a temporary that
//! was created but not yet locked.
//!
//! Network file systems: on NFS, Linux emulates `flock` with byte-range locks
//! on the server (or keeps it local to one client with `-o local_lock`); a
//! lock that cannot be taken at all (no lock manager, or a directory, which
//! cannot be opened for writing) makes floe leave that temporary alone and
//! say so, and locks held by another client are only seen if the server's
//! lock manager works. Remove such leftovers by hand once no floe runs.

use crate::{EngineError, Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const TMP_MARK: &str = ".floe-tmp-";
const OLD_MARK: &str = ".floe-old-";

fn name_of(target: &Path) -> Result<(PathBuf, String)> {
    if matches!(target.components().next_back(), Some(std::path::Component::CurDir | std::path::Component::ParentDir)) {
        return Err(Error::InvalidArgument(format!(
            "{} names a directory through '.' or '..'; floe builds the new file or database beside its target and \
             renames it into place, so name the target from its parent (e.g. cd .. && floe import ARCHIVE NAME)",
            target.display()
        )));
    }
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidArgument(format!("{} has no usable file name", target.display())))?
        .to_owned();
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name))
}

static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `.<name><mark><pid>-<n>`: unique per object, so two writers in one process
/// never share each other's temporaries.
fn sibling(target: &Path, mark: &str) -> Result<PathBuf> {
    let (parent, name) = name_of(target)?;
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(parent.join(format!(".{name}{mark}{}-{n}", std::process::id())))
}

/// For a name in the parent of target `name`: `Some((is_old, pid))` when it
/// is one of floe's temporaries for that target.
fn parse_temporary(file: &str, name: &str) -> Option<(bool, u32)> {
    let rest = file.strip_prefix('.')?.strip_prefix(name)?;
    let (is_old, rest) = match (rest.strip_prefix(TMP_MARK), rest.strip_prefix(OLD_MARK)) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => return None,
    };
    let (pid, n) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    Some((is_old, pid.parse().ok()?))
}

/// Takes an exclusive `flock` without waiting: `Ok(true)` when taken,
/// `Ok(false)` when another open file holds it.
fn try_flock(f: &File) -> std::io::Result<bool> {
    match f.try_lock() {
        Ok(()) => Ok(true),
        Err(fs::TryLockError::WouldBlock) => Ok(false),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// A `flock` of a directory (shared while creating a temporary in it,
/// exclusive while scanning it for leftovers), released when dropped. Where
/// the file system refuses the lock, nothing is held (see the module doc).
struct DirLock(#[allow(dead_code)] Option<File>);

fn lock_dir(dir: &Path, exclusive: bool) -> DirLock {
    let Ok(f) = File::open(dir) else { return DirLock(None) };
    let r = if exclusive { f.lock() } else { f.lock_shared() };
    DirLock(r.ok().map(|()| f))
}

/// Opens `path` without following a symlink (a directory too, read-only).
fn open_nofollow(path: &Path, write: bool) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(write).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC).open(path)
}

/// (device, inode): what a path refers to.
fn id_of(m: &fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// A leftover this process has locked, so no live owner has it.
struct Claimed {
    path: PathBuf,
    is_old: bool,
    is_dir: bool,
    _lock: File,
}

/// Locks the leftover at `path` if its lock is free: `Ok(None)` when its
/// owner holds it, `Err` (a reason) when it cannot be locked at all.
fn claim(path: &Path, is_old: bool) -> std::result::Result<Option<Claimed>, String> {
    let meta = fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    let is_dir = meta.is_dir();
    if !is_dir && !meta.is_file() {
        return Err("it is neither a regular file nor a directory, so floe did not make it".into());
    }
    let f = open_nofollow(path, false).map_err(|e| e.to_string())?;
    match try_flock(&f) {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        Err(e) => return Err(format!("its lock cannot be taken: {e}")),
    }
    let same = f.metadata().ok().map(|m| id_of(&m)) == Some(id_of(&meta));
    if !same {
        return Err("it changed while being checked".into());
    }
    Ok(Some(Claimed { path: path.to_path_buf(), is_old, is_dir, _lock: f }))
}

/// Removes temporaries left by crashed runs for `target`, and restores a
/// database that a crashed replacement had moved aside. A temporary is a
/// leftover only when its `flock` is free (see the module doc); one still
/// locked by its owner, or one that cannot be locked, is left alone and
/// reported. Returns what it did.
pub fn clean_leftovers(target: &Path) -> Result<Vec<String>> {
    let (parent, name) = name_of(target)?;
    let mut notes = Vec::new();
    let mut claimed = Vec::new();
    {
        let _scan = lock_dir(&parent, true);
        let Ok(rd) = fs::read_dir(&parent) else { return Ok(notes) };
        for e in rd.flatten() {
            let fname = e.file_name();
            let Some(f) = fname.to_str() else { continue };
            let Some((is_old, pid)) = parse_temporary(f, &name) else { continue };
            let path = e.path();
            match claim(&path, is_old) {
                Ok(Some(c)) => claimed.push(c),
                Ok(None) => notes.push(format!(
                    "{} is in use by a running floe (it holds its lock; named by process {pid}); left alone",
                    path.display()
                )),
                Err(why) => notes.push(format!(
                    "{} looks like a leftover of process {pid}, but {why}; left alone (remove it yourself once no \
                     floe runs)",
                    path.display()
                )),
            }
        }
    }
    for c in claimed {
        if c.is_old && c.is_dir {
            match rename_noreplace(&c.path, target) {
                Ok(()) => {
                    fsync_dir(&parent)?;
                    notes.push(format!(
                        "restored {} from an interrupted replacement ({})",
                        target.display(),
                        c.path.display()
                    ));
                    continue;
                }
                Err(e) if exists_error(&e) => {} // the replacement had finished: the old one is superseded
                Err(e) => return Err(Error::io(format!("restoring {} to {}", c.path.display(), target.display()), e)),
            }
        }
        let r = if c.is_dir { fs::remove_dir_all(&c.path) } else { fs::remove_file(&c.path) };
        match r {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("removing {}", c.path.display()), e)),
        }
        notes.push(format!("removed leftover {} from an interrupted run", c.path.display()));
    }
    Ok(notes)
}

fn remove_path(p: &Path) -> Result<()> {
    let r = match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) => Err(e),
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", p.display()), e)),
    }
}

/// fsyncs a directory.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(format!("fsync of directory {}", dir.display()), e))
}

/// fsyncs every file, then every directory, bottom-up.
pub fn fsync_tree(root: &Path) -> Result<()> {
    let rd = fs::read_dir(root).map_err(|e| Error::io(format!("reading directory {}", root.display()), e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(format!("reading directory {}", root.display()), e))?;
        let p = e.path();
        let ft = e.file_type().map_err(|err| Error::io(format!("stat {}", p.display()), err))?;
        if ft.is_dir() {
            fsync_tree(&p)?;
        } else if ft.is_file() {
            File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|err| Error::io(format!("fsync {}", p.display()), err))?;
        }
    }
    fsync_dir(root)
}

/// A file written under a temporary sibling name and renamed into place by
/// [`AtomicFile::commit`]. Dropped without commit, it removes the temporary.
/// The temporary is `flock`ed while it exists (see the module doc).
pub struct AtomicFile {
    tmp: PathBuf,
    target: PathBuf,
    file: Option<File>,
    /// Replace an existing target on commit ([`AtomicFile::create`]); when
    /// false ([`AtomicFile::create_new`]) the commit never replaces anything.
    overwrite: bool,
}

/// Checks that an [`AtomicFile`] may be created for `target`, before any
/// work: an existing `target` must be a regular file (or a symlink, which
/// the commit replaces), never a directory, device, FIFO or socket; and when
/// `overwrite` is false nothing may be there at all, a dangling symlink
/// neither ([`Error::OutputExists`]; the commit checks again, atomically).
pub fn check_file_target(target: &Path, overwrite: bool) -> Result<()> {
    if let Ok(meta) = fs::metadata(target) {
        if meta.is_dir() {
            return Err(Error::InvalidArgument(format!("{} is a directory", target.display())));
        }
        if !meta.is_file() {
            return Err(Error::InvalidArgument(format!(
                "{} exists and is not a regular file (a device, FIFO or socket); floe replaces only regular \
                 files and never renames over anything else",
                target.display()
            )));
        }
    }
    if !overwrite && fs::symlink_metadata(target).is_ok() {
        return Err(Error::OutputExists(target.to_path_buf()));
    }
    Ok(())
}

impl AtomicFile {
    /// Creates the temporary sibling of `target` (cleaning dead leftovers
    /// first). An existing `target` must be a regular file (or a symlink,
    /// which the commit replaces); a directory, device, FIFO or socket is
    /// refused, never renamed over.
    pub fn create(target: &Path) -> Result<Self> {
        Self::create_with(target, true)
    }

    /// As [`AtomicFile::create`], but never replaces anything: an existing
    /// `target` is refused here with [`Error::OutputExists`], and one that
    /// appears before the commit makes the commit fail with it (the rename
    /// is `renameat2(RENAME_NOREPLACE)`, or a hard link where that is
    /// unsupported), the temporary being removed.
    pub fn create_new(target: &Path) -> Result<Self> {
        Self::create_with(target, false)
    }

    /// [`AtomicFile::create`] when `overwrite`, else [`AtomicFile::create_new`].
    pub fn create_with(target: &Path, overwrite: bool) -> Result<Self> {
        check_file_target(target, overwrite)?;
        clean_leftovers(target)?;
        let (parent, _) = name_of(target)?;
        let tmp = sibling(target, TMP_MARK)?;
        let _creating = lock_dir(&parent, false);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(|e| Error::io(format!("creating temporary file {}", tmp.display()), e))?;
        // A file system without flock leaves it unlocked: cleaners there
        // cannot lock it either, so they leave it alone.
        let _ = try_flock(&file);
        Ok(AtomicFile { tmp, target: target.to_path_buf(), file: Some(file), overwrite })
    }

    /// The open temporary file.
    #[expect(clippy::expect_used, reason = "`file` is Some from create_with until commit, which consumes self")]
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("the file is present until commit")
    }

    /// Flushes, fsyncs, renames into place and fsyncs the parent directory.
    pub fn commit(mut self) -> Result<()> {
        let Some(mut f) = self.file.take() else {
            return Err(Error::Internal(format!("{}: the temporary file was taken before commit", self.tmp.display())));
        };
        let r = (|| {
            f.flush().and_then(|()| f.sync_all()).map_err(|e| Error::io(format!("fsync {}", self.tmp.display()), e))?;
            let renamed = if self.overwrite {
                fs::rename(&self.tmp, &self.target)
            } else {
                link_noreplace(&self.tmp, &self.target)
            };
            renamed.map_err(|e| {
                if !self.overwrite && exists_error(&e) {
                    Error::OutputExists(self.target.clone())
                } else {
                    Error::io(format!("renaming {} to {}", self.tmp.display(), self.target.display()), e)
                }
            })
        })();
        if r.is_err() {
            let _ = fs::remove_file(&self.tmp);
        }
        r?;
        let (parent, _) = name_of(&self.target)?;
        fsync_dir(&parent) // the lock is released (f closed) after the rename
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
            self.file = None;
        }
    }
}

/// The existing database an [`AtomicDir`] replaces: checked, and locked
/// (fjall's own lock and a `flock` of the directory) from the check until it
/// has been swapped out and removed.
struct Held {
    id: (u64, u64),
    _dir: File,
    _fjall: File,
}

/// Checks that the non-empty directory `target` may be replaced and locks
/// it: it must be a fjall database (a `version` file), contain none of
/// `protect` (canonical paths), and be open in no other process.
fn hold_for_replace(target: &Path, protect: &[PathBuf]) -> Result<Held> {
    let shown = target.display();
    let version = fs::symlink_metadata(target.join("version"));
    if !version.is_ok_and(|m| m.is_file()) {
        return Err(Error::InvalidArgument(format!(
            "replace target {shown} is not empty and is not a fjall database (it has no 'version' file); floe \
             replaces only a fjall database. Move it away or import into a new path"
        )));
    }
    let canonical = fs::canonicalize(target).map_err(|e| Error::io(format!("resolving {shown}"), e))?;
    if let Some(p) = protect.iter().find(|p| p.starts_with(&canonical)) {
        return Err(Error::InvalidArgument(format!(
            "replace target {shown} contains {}, which this import reads from; replacing it would destroy the \
             source. Import into another path",
            p.display()
        )));
    }
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(target)
        .map_err(|e| Error::io(format!("opening {shown}"), e))?;
    let id = dir.metadata().map(|m| id_of(&m)).map_err(|e| Error::io(format!("stat {shown}"), e))?;
    let locked = || EngineError::TargetLocked { path: target.to_path_buf() };
    // Another floe replacing the same target holds this one.
    if let Ok(false) = try_flock(&dir) {
        return Err(locked().into());
    }
    // fjall 3 holds `DB/lock` under flock (std's File::try_lock) while the
    // database is open; taking it keeps any process from opening it until
    // the swap is done, and fails if one has it open now.
    let lock_path = target.join("lock");
    let fjall = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lock_path)
        .map_err(|e| Error::io(format!("opening fjall's lock file {}", lock_path.display()), e))?;
    match try_flock(&fjall) {
        Ok(true) => {}
        Ok(false) => return Err(locked().into()),
        Err(e) => return Err(Error::io(format!("locking {}", lock_path.display()), e)),
    }
    Ok(Held { id, _dir: dir, _fjall: fjall })
}

fn dir_is_empty(p: &Path) -> Result<bool> {
    let mut rd = fs::read_dir(p).map_err(|e| Error::io(format!("reading directory {}", p.display()), e))?;
    Ok(rd.next().is_none())
}

/// A directory built under a temporary sibling name and moved into place by
/// [`AtomicDir::commit`]. Dropped without commit, it is removed. The
/// temporary is `flock`ed while it exists (see the module doc).
pub struct AtomicDir {
    tmp: PathBuf,
    target: PathBuf,
    replace: bool,
    protect: Vec<PathBuf>,
    held: Option<Held>,
    committed: bool,
    _lock: Option<File>,
}

impl AtomicDir {
    /// Prepares `target`: refuses a non-empty one unless `replace`, cleans
    /// leftovers and creates the temporary sibling directory. With `replace`,
    /// a non-empty target must be a fjall database that contains none of the
    /// paths in `protect` (compared after resolving symlinks) and that no
    /// other process has open; it stays locked until the commit.
    pub fn create(target: &Path, replace: bool, protect: &[PathBuf]) -> Result<Self> {
        clean_leftovers(target)?;
        let protect: Vec<PathBuf> = protect.iter().filter_map(|p| fs::canonicalize(p).ok()).collect();
        let mut held = None;
        if let Ok(meta) = fs::symlink_metadata(target) {
            if !meta.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "import target {} exists and is not a directory",
                    target.display()
                )));
            }
            if !dir_is_empty(target)? {
                if !replace {
                    return Err(Error::TargetExists(target.to_path_buf()));
                }
                held = Some(hold_for_replace(target, &protect)?);
            }
        }
        let (parent, _) = name_of(target)?;
        if !parent.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "parent directory {} of the import target does not exist",
                parent.display()
            )));
        }
        let tmp = sibling(target, TMP_MARK)?;
        let _creating = lock_dir(&parent, false);
        fs::create_dir(&tmp).map_err(|e| Error::io(format!("creating temporary directory {}", tmp.display()), e))?;
        let lock = File::open(&tmp).ok();
        if let Some(l) = &lock {
            let _ = try_flock(l); // see AtomicFile::create
        }
        Ok(AtomicDir { tmp, target: target.to_path_buf(), replace, protect, held, committed: false, _lock: lock })
    }

    /// Where to build.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// fsyncs the tree and moves it into place.
    ///
    /// A missing target is created by a rename that fails if the target
    /// appeared meanwhile (`renameat2(RENAME_NOREPLACE)`); an empty directory
    /// there is removed first (`rmdir`, which fails if anything appeared in
    /// it). Anything else at the target is `Error::TargetExists`, unless
    /// `replace`: then the target must pass the checks of [`AtomicDir::create`]
    /// (again, if it is no longer the directory checked then) and is swapped
    /// atomically (`renameat2(RENAME_EXCHANGE)`) where the OS allows, so that
    /// at every instant either the old or the new database is at `target`.
    pub fn commit(mut self) -> Result<()> {
        fsync_tree(&self.tmp)?;
        let (parent, _) = name_of(&self.target)?;
        // Keeps scans for leftovers out while the old database sits under a
        // temporary name.
        let _committing = lock_dir(&parent, false);
        for _ in 0..8 {
            match rename_noreplace(&self.tmp, &self.target) {
                Ok(()) => {
                    self.committed = true;
                    return fsync_dir(&parent);
                }
                Err(e) if exists_error(&e) => {}
                Err(e) => {
                    return Err(Error::io(format!("renaming {} to {}", self.tmp.display(), self.target.display()), e))
                }
            }
            let meta = match fs::symlink_metadata(&self.target) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("stat {}", self.target.display()), e)),
            };
            if meta.is_dir() && dir_is_empty(&self.target)? {
                match fs::remove_dir(&self.target) {
                    Ok(()) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound || exists_error(&e) => continue,
                    Err(e) => return Err(Error::io(format!("removing empty directory {}", self.target.display()), e)),
                }
            }
            if !self.replace {
                return Err(Error::TargetExists(self.target.clone()));
            }
            if !meta.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "import target {} exists and is not a directory",
                    self.target.display()
                )));
            }
            if self.held.as_ref().is_none_or(|h| h.id != id_of(&meta)) {
                self.held = None;
                self.held = Some(hold_for_replace(&self.target, &self.protect)?);
            }
            return self.swap(&parent);
        }
        Err(Error::InvalidArgument(format!(
            "import target {} kept changing while the import moved into place; nothing was replaced",
            self.target.display()
        )))
    }

    /// Replaces the held target with the new database.
    fn swap(&mut self, parent: &Path) -> Result<()> {
        let Some(held) = self.held.as_ref().map(|h| h.id) else {
            return Err(Error::Internal(format!("replacing {}: no target is held", self.target.display())));
        };
        let changed = || {
            Error::InvalidArgument(format!(
                "import target {} changed while it was being replaced; it was put back and nothing was replaced",
                self.target.display()
            ))
        };
        let at = |p: &Path| fs::symlink_metadata(p).ok().map(|m| id_of(&m));
        match exchange(&self.tmp, &self.target) {
            Ok(()) => {
                // self.tmp now holds what was at the target: it must be what was checked and locked.
                if at(&self.tmp) != Some(held) {
                    exchange(&self.tmp, &self.target)
                        .map_err(|e| Error::io(format!("putting back {}", self.target.display()), e))?;
                    return Err(changed());
                }
                fsync_dir(parent)?;
                self.committed = true;
                remove_path(&self.tmp)?;
                return fsync_dir(parent);
            }
            Err(e) if !unsupported_error(&e) => {
                return Err(Error::io(format!("swapping {} into {}", self.tmp.display(), self.target.display()), e))
            }
            Err(_) => {}
        }
        // Fallback: move the old one aside (still locked by us, so no scan
        // removes it); clean_leftovers restores it after a crash.
        let old = sibling(&self.target, OLD_MARK)?;
        fs::rename(&self.target, &old).map_err(|e| Error::io(format!("moving {} aside", self.target.display()), e))?;
        if at(&old) != Some(held) {
            rename_noreplace(&old, &self.target)
                .map_err(|e| Error::io(format!("putting back {}", self.target.display()), e))?;
            return Err(changed());
        }
        if let Err(e) = rename_noreplace(&self.tmp, &self.target) {
            let _ = rename_noreplace(&old, &self.target);
            return Err(Error::io(format!("renaming {} to {}", self.tmp.display(), self.target.display()), e));
        }
        fsync_dir(parent)?;
        self.committed = true;
        remove_path(&old)?;
        fsync_dir(parent)
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// The rename found something at the destination.
fn exists_error(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY | libc::ENOTDIR | libc::EISDIR))
}

/// The file system or OS cannot do this kind of rename.
fn unsupported_error(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Unsupported || matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS))
}

#[cfg(target_os = "linux")]
fn renameat2(a: &Path, b: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes())?;
    let cb = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both pointers are valid NUL-terminated paths for the call's duration.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Renames directory `a` to `b`, failing (`EEXIST`) if `b` exists. Where
/// `RENAME_NOREPLACE` is unsupported, a plain `rename`, which for a directory
/// fails on anything at `b` but an empty directory (replaced; no data lost).
fn rename_noreplace(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    match renameat2(a, b, libc::RENAME_NOREPLACE) {
        Err(e) if unsupported_error(&e) => {}
        r => return r,
    }
    fs::rename(a, b)
}

/// Moves file `a` to `b`, failing (`EEXIST`) if anything is at `b`:
/// `renameat2(RENAME_NOREPLACE)`, or where that is unsupported a hard link
/// (which never replaces) and the removal of `a`.
fn link_noreplace(a: &Path, b: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    match renameat2(a, b, libc::RENAME_NOREPLACE) {
        Err(e) if unsupported_error(&e) => {}
        r => return r,
    }
    fs::hard_link(a, b)?;
    fs::remove_file(a)
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    renameat2(a, b, libc::RENAME_EXCHANGE)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::Error::new(std::io::ErrorKind::Unsupported, "no atomic exchange"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_file_commit_and_abort() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("a.floe");
        let mut f = AtomicFile::create(&t).unwrap();
        f.file().write_all(b"x").unwrap();
        drop(f);
        assert!(!t.exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0, "temporary left behind");
        let mut f = AtomicFile::create(&t).unwrap();
        f.file().write_all(b"y").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&t).unwrap(), b"y");
    }

    #[test]
    fn atomic_file_without_overwrite_never_replaces() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("a.floe");
        fs::write(&t, b"mine").unwrap();
        // Refused up front, before a temporary exists.
        assert!(matches!(AtomicFile::create_new(&t), Err(Error::OutputExists(p)) if p == t));
        assert!(matches!(check_file_target(&t, false), Err(Error::OutputExists(_))));
        check_file_target(&t, true).unwrap();
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        // A target that appears between create and commit is not renamed over.
        let n = d.path().join("n.floe");
        let mut f = AtomicFile::create_new(&n).unwrap();
        f.file().write_all(b"new").unwrap();
        fs::write(&n, b"appeared").unwrap();
        assert!(matches!(f.commit(), Err(Error::OutputExists(p)) if p == n));
        assert_eq!(fs::read(&n).unwrap(), b"appeared");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2, "temporary left behind");
        // A dangling symlink counts as existing.
        let l = d.path().join("l.floe");
        std::os::unix::fs::symlink(d.path().join("nowhere"), &l).unwrap();
        assert!(matches!(AtomicFile::create_new(&l), Err(Error::OutputExists(_))));
        // Nothing there: written and committed.
        let m = d.path().join("m.floe");
        let mut f = AtomicFile::create_new(&m).unwrap();
        f.file().write_all(b"m").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&m).unwrap(), b"m");
        // The no-replace move itself.
        let (a, b) = (d.path().join("x"), d.path().join("y"));
        fs::write(&a, b"x").unwrap();
        fs::write(&b, b"y").unwrap();
        assert!(exists_error(&link_noreplace(&a, &b).unwrap_err()));
        assert_eq!((fs::read(&a).unwrap(), fs::read(&b).unwrap()), (b"x".to_vec(), b"y".to_vec()));
    }

    #[test]
    fn temporary_names_are_parsed_strictly() {
        assert_eq!(parse_temporary(".db.floe-tmp-12-3", "db"), Some((false, 12)));
        assert_eq!(parse_temporary(".db.floe-old-12-3", "db"), Some((true, 12)));
        for other in
            [".db.floe-tmp-12", ".db.floe-tmp-x-3", ".db.floe-tmp-12-3x", ".dbx.floe-tmp-1-2", "db.floe-tmp-1-2"]
        {
            assert_eq!(parse_temporary(other, "db"), None, "{other}");
        }
    }

    #[test]
    fn atomic_dir_replace_swaps_and_leftovers_are_cleaned() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("db");
        fs::create_dir(&t).unwrap();
        fs::write(t.join("version"), b"old").unwrap();
        assert!(matches!(AtomicDir::create(&t, false, &[]), Err(Error::TargetExists(_))));
        let a = AtomicDir::create(&t, true, &[]).unwrap();
        fs::write(a.path().join("new"), b"new").unwrap();
        a.commit().unwrap();
        assert!(t.join("new").exists() && !t.join("version").exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        // A dead run's temporary: nobody holds its lock.
        fs::create_dir(d.path().join(".db.floe-tmp-999999999-0")).unwrap();
        let notes = clean_leftovers(&t).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        // A crashed replacement that moved the old database aside is restored.
        fs::rename(&t, d.path().join(".db.floe-old-999999999-3")).unwrap();
        clean_leftovers(&t).unwrap();
        assert!(t.join("new").exists());
        // Two atomic files for one target in one process keep their own temporaries.
        let f = d.path().join("x.floe");
        let mut a = AtomicFile::create(&f).unwrap();
        let mut b = AtomicFile::create(&f).unwrap();
        a.file().write_all(b"a").unwrap();
        b.file().write_all(b"b").unwrap();
        a.commit().unwrap();
        b.commit().unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"b");
    }

    /// A temporary is judged by its lock, not by the pid in its name: one
    /// whose lock is held survives a cleanup even if its pid names no
    /// process here (another pid namespace), and is removed once released.
    #[test]
    fn a_locked_temporary_is_never_a_leftover() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("db");
        let live_dir = d.path().join(".db.floe-tmp-999999999-0");
        let live_file = d.path().join(".db.floe-tmp-999999998-1");
        fs::create_dir(&live_dir).unwrap();
        fs::write(live_dir.join("data"), b"in use").unwrap();
        fs::write(&live_file, b"in use").unwrap();
        let dl = File::open(&live_dir).unwrap();
        let fl = File::open(&live_file).unwrap();
        dl.lock().unwrap();
        fl.lock().unwrap();
        // Held from another thread, as by another process.
        let notes = std::thread::scope(|s| s.spawn(|| clean_leftovers(&t).unwrap()).join().unwrap());
        assert!(live_dir.join("data").exists() && live_file.exists(), "a live temporary was removed: {notes:?}");
        assert_eq!(notes.iter().filter(|n| n.contains("in use")).count(), 2, "{notes:?}");
        drop((dl, fl));
        clean_leftovers(&t).unwrap();
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn commit_never_moves_over_a_target_that_appeared() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("db");
        let a = AtomicDir::create(&t, false, &[]).unwrap();
        fs::write(a.path().join("new"), b"new").unwrap();
        fs::create_dir(&t).unwrap();
        fs::write(t.join("IMPORTANT.txt"), b"mine").unwrap();
        assert!(matches!(a.commit(), Err(Error::TargetExists(_))));
        assert_eq!(fs::read(t.join("IMPORTANT.txt")).unwrap(), b"mine");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1, "temporary left behind");
        // An empty directory that appeared is taken over.
        fs::remove_dir_all(&t).unwrap();
        let a = AtomicDir::create(&t, false, &[]).unwrap();
        fs::write(a.path().join("new"), b"new").unwrap();
        fs::create_dir(&t).unwrap();
        a.commit().unwrap();
        assert!(t.join("new").exists());
    }
}
