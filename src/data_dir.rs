//! The data directory, and the firmware cache, must be the daemon's to read and write with
//! everything the daemon keeps in them. An installer meets this first in three ways: `data_dir`
//! names a place the service user cannot write; `edgeprov serve` was once run by hand as root
//! on a packaged box and left files only root may open; or a directory outside
//! `/var/lib/edgeprov` is named under the packaged unit, whose `ProtectSystem=strict` makes
//! every other place read-only. Checked once at start, so the error names the file and says
//! what to do, instead of a bare "Permission denied" or "Read-only file system" from whichever
//! part touched it first.

use std::path::{Path, PathBuf};

use rustix::fs::{Access, AtFlags, CWD, accessat};

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}{}", hint(dir, source))]
pub struct DataDirError {
    /// The file or directory that cannot be used.
    pub path: PathBuf,
    /// The data directory it is in (or is).
    pub dir: PathBuf,
    pub source: std::io::Error,
}

/// What to do when the cause is one an installer can fix: ownership, or the unit's sandbox.
fn hint(dir: &Path, source: &std::io::Error) -> String {
    match source.kind() {
        std::io::ErrorKind::PermissionDenied => format!(
            " ({} and everything in it must be readable and writable by the user edgeprov runs \
             as, uid {}: on a packaged box `chown -R edgeprov:edgeprov {}` (edgeprov once run \
             by hand as root leaves files only root may open), else name a directory of this \
             user's)",
            dir.display(),
            rustix::process::geteuid().as_raw(),
            dir.display()
        ),
        std::io::ErrorKind::ReadOnlyFilesystem => format!(
            " (under the packaged edgeprov.service, ProtectSystem=strict leaves only \
             /var/lib/edgeprov writable: keep data_dir and firmware.cache_dir under it, or let \
             the service write to {} with `systemctl edit edgeprov`: [Service] ReadWritePaths={})",
            dir.display(),
            dir.display()
        ),
        _ => String::new(),
    }
}

/// Creates `dir` if missing (mode 0700: [`crate::fsutil::create_private_dir`]) and checks that this process may read and write it, its entries
/// and those of its `pki` directory (where the data directory keeps the keys).
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    let fail = |path: &Path, source| DataDirError {
        path: path.to_path_buf(),
        dir: dir.to_path_buf(),
        source,
    };
    crate::fsutil::create_private_dir(dir).map_err(|e| fail(dir, e))?;
    check(dir, true).map_err(|e| fail(dir, e))?;
    for sub in [dir.to_path_buf(), dir.join("pki")] {
        let entries = match std::fs::read_dir(&sub) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(fail(&sub, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| fail(&sub, e))?;
            let path = entry.path();
            let is_dir = entry.file_type().map_err(|e| fail(&path, e))?.is_dir();
            check(&path, is_dir).map_err(|e| fail(&path, e))?;
        }
    }
    Ok(())
}

/// What in `dir` (itself, its entries and their entries one level down: `pki/`, the firmware
/// cache's directories) another user than `dir`'s owner owns, with that user's uid. The
/// daemon runs as the owner, so it cannot open those: the files `edgeprov serve` run by hand
/// as root leaves. [`prepare`] finds them as the daemon's own user; `edgeprov doctor` is run
/// as root, to whom everything is open, so it asks this instead.
pub fn foreign_owned(dir: &Path) -> std::io::Result<Vec<(PathBuf, u32)>> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(dir)?.uid();
    let mut out = Vec::new();
    let mut walk = vec![(dir.to_path_buf(), 1)];
    while let Some((sub, depth)) = walk.pop() {
        for entry in std::fs::read_dir(&sub)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.uid() != owner {
                out.push((entry.path(), meta.uid()));
            }
            if meta.is_dir() && depth > 0 {
                walk.push((entry.path(), depth - 1));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Read and write access (and search, for a directory) as the effective user.
fn check(path: &Path, is_dir: bool) -> std::io::Result<()> {
    let mut access = Access::READ_OK | Access::WRITE_OK;
    if is_dir {
        access |= Access::EXEC_OK;
    }
    accessat(CWD, path, access, AtFlags::EACCESS).map_err(std::io::Error::from)
}

/// The file a running daemon holds locked (`flock`) from before it opens the database until it
/// exits, however it exits: the kernel releases the lock with the process. A restore must not
/// swap the data directory from under a daemon (its acknowledged writes would go on into the
/// directory moved aside), and `listeners.json` alone does not show one: it is written only once
/// the listeners are bound, after the store is open, which after an upgrade can take minutes.
const LOCK: &str = "daemon.lock";

/// The data directory's lock, held for as long as this value lives.
pub struct DataDirLock {
    _file: std::fs::File,
}

/// Takes `dir`'s lock for this daemon; another daemon on the same directory is an error.
pub fn lock(dir: &Path) -> Result<DataDirLock, DataDirError> {
    let path = dir.join(LOCK);
    let fail = |source| DataDirError {
        path: path.clone(),
        dir: dir.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(fail)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(fail(std::io::Error::other(
            "another edgeprov is running on this data directory (it holds this file locked)",
        ))),
        Err(e) => Err(fail(e.into())),
    }
}

/// Whether a daemon holds `dir`'s lock now.
pub fn in_use(dir: &Path) -> std::io::Result<bool> {
    let file = match std::fs::File::open(dir.join(LOCK)) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok(false),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Ok(true),
        Err(e) => Err(e.into()),
    }
}
