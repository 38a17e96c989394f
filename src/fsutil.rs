//! Durable, atomic file-system operations: temporary siblings, fsync of files
//! and directories bottom-up, rename into place, cleanup of leftovers.
//!
//! Temporary names are `.<target name>.floe-tmp-<pid>`; a previous run's
//! leftovers are recognised by that pattern and a dead pid.

use crate::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// True once [`set_interrupted`] was called (the CLI's SIGINT handler).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// Makes every running operation stop with `Error::Cancelled`.
pub fn set_interrupted() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

const TMP_MARK: &str = ".floe-tmp-";
const OLD_MARK: &str = ".floe-old-";

fn name_of(target: &Path) -> Result<(PathBuf, String)> {
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
/// never share (or clean up) each other's temporaries.
fn sibling(target: &Path, mark: &str) -> Result<PathBuf> {
    let (parent, name) = name_of(target)?;
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    Ok(parent.join(format!(".{name}{mark}{}-{n}", std::process::id())))
}

fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Removes temporaries left by crashed runs for `target`, and restores a
/// database that a crashed replacement had moved aside. Returns what it did.
pub fn clean_leftovers(target: &Path) -> Result<Vec<String>> {
    let (parent, name) = name_of(target)?;
    let mut notes = Vec::new();
    let Ok(rd) = fs::read_dir(&parent) else { return Ok(notes) };
    for e in rd.flatten() {
        let fname = e.file_name();
        let Some(f) = fname.to_str() else { continue };
        for (mark, is_old) in [(TMP_MARK, false), (OLD_MARK, true)] {
            let prefix = format!(".{name}{mark}");
            let Some(rest) = f.strip_prefix(&prefix) else { continue };
            let Ok(pid) = rest.split('-').next().unwrap_or_default().parse::<i32>() else { continue };
            if pid == std::process::id() as i32 {
                continue; // ours: owned by a live object of this process
            }
            if pid_alive(pid) {
                notes.push(format!("{} belongs to running process {pid}; left alone", e.path().display()));
                continue;
            }
            let path = e.path();
            if is_old && !target.exists() {
                fs::rename(&path, target)
                    .map_err(|err| Error::io(format!("restoring {} to {}", path.display(), target.display()), err))?;
                fsync_dir(&parent)?;
                notes.push(format!(
                    "restored {} from an interrupted replacement ({})",
                    target.display(),
                    path.display()
                ));
            } else {
                remove_path(&path)?;
                notes.push(format!("removed leftover {} from an interrupted run", path.display()));
            }
        }
    }
    Ok(notes)
}

fn remove_path(p: &Path) -> Result<()> {
    let r = if p.is_dir() { fs::remove_dir_all(p) } else { fs::remove_file(p) };
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
pub struct AtomicFile {
    tmp: PathBuf,
    target: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Creates the temporary sibling of `target` (cleaning dead leftovers first).
    pub fn create(target: &Path) -> Result<Self> {
        clean_leftovers(target)?;
        if target.is_dir() {
            return Err(Error::InvalidArgument(format!("{} is a directory", target.display())));
        }
        let tmp = sibling(target, TMP_MARK)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(format!("creating temporary file {}", tmp.display()), e))?;
        Ok(AtomicFile { tmp, target: target.to_path_buf(), file: Some(file) })
    }

    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().unwrap_or_else(|| unreachable!("file is present until commit"))
    }

    /// Flushes, fsyncs, renames into place and fsyncs the parent directory.
    pub fn commit(mut self) -> Result<()> {
        let mut f = self.file.take().unwrap_or_else(|| unreachable!("file is present until commit"));
        f.flush().and_then(|()| f.sync_all()).map_err(|e| Error::io(format!("fsync {}", self.tmp.display()), e))?;
        drop(f);
        fs::rename(&self.tmp, &self.target)
            .map_err(|e| Error::io(format!("renaming {} to {}", self.tmp.display(), self.target.display()), e))?;
        let (parent, _) = name_of(&self.target)?;
        fsync_dir(&parent)
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// A directory built under a temporary sibling name and moved into place by
/// [`AtomicDir::commit`]. Dropped without commit, it is removed.
pub struct AtomicDir {
    tmp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl AtomicDir {
    /// Prepares `target`: refuses a non-empty one unless `replace`, cleans
    /// leftovers and creates the temporary sibling directory.
    pub fn create(target: &Path, replace: bool) -> Result<Self> {
        clean_leftovers(target)?;
        if let Ok(meta) = fs::symlink_metadata(target) {
            if !meta.is_dir() {
                return Err(Error::InvalidArgument(format!(
                    "import target {} exists and is not a directory",
                    target.display()
                )));
            }
            let empty = fs::read_dir(target).map(|mut d| d.next().is_none()).unwrap_or(false);
            if !empty && !replace {
                return Err(Error::TargetExists(target.to_path_buf()));
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
        fs::create_dir(&tmp).map_err(|e| Error::io(format!("creating temporary directory {}", tmp.display()), e))?;
        Ok(AtomicDir { tmp, target: target.to_path_buf(), committed: false })
    }

    /// Where to build.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// fsyncs the tree and moves it into place. An existing target is swapped
    /// atomically (`renameat2(RENAME_EXCHANGE)`) where the OS allows, so that
    /// at every instant either the old or the new database is at `target`.
    pub fn commit(mut self) -> Result<()> {
        fsync_tree(&self.tmp)?;
        let (parent, _) = name_of(&self.target)?;
        if self.target.exists() {
            if exchange(&self.tmp, &self.target).is_ok() {
                // self.tmp now holds the old database.
                fsync_dir(&parent)?;
                self.committed = true;
                remove_path(&self.tmp)?;
                return fsync_dir(&parent);
            }
            // Fallback: move the old one aside; clean_leftovers restores it after a crash.
            let old = sibling(&self.target, OLD_MARK)?;
            fs::rename(&self.target, &old)
                .map_err(|e| Error::io(format!("moving {} aside", self.target.display()), e))?;
            if let Err(e) = fs::rename(&self.tmp, &self.target) {
                let _ = fs::rename(&old, &self.target);
                return Err(Error::io(format!("renaming {} to {}", self.tmp.display(), self.target.display()), e));
            }
            fsync_dir(&parent)?;
            self.committed = true;
            remove_path(&old)?;
            return fsync_dir(&parent);
        }
        fs::rename(&self.tmp, &self.target)
            .map_err(|e| Error::io(format!("renaming {} to {}", self.tmp.display(), self.target.display()), e))?;
        self.committed = true;
        fsync_dir(&parent)
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes())?;
    let cb = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both pointers are valid NUL-terminated paths for the call's duration.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, ca.as_ptr(), libc::AT_FDCWD, cb.as_ptr(), libc::RENAME_EXCHANGE) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
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
    fn atomic_dir_replace_swaps_and_leftovers_are_cleaned() {
        let d = tempfile::tempdir().unwrap();
        let t = d.path().join("db");
        fs::create_dir(&t).unwrap();
        fs::write(t.join("old"), b"old").unwrap();
        assert!(matches!(AtomicDir::create(&t, false), Err(Error::TargetExists(_))));
        let a = AtomicDir::create(&t, true).unwrap();
        fs::write(a.path().join("new"), b"new").unwrap();
        a.commit().unwrap();
        assert!(t.join("new").exists() && !t.join("old").exists());
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
        // A dead run's temporary (pid 0 never names a live process here).
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
}
