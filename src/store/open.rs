//! Opening the database file: a damaged file is refused and left as it is, never trusted or
//! made anew.
//!
//! redb trusts a file it closed cleanly: it reads no checksum at open, so a flipped byte in a
//! page went unseen and the daemon served what it now said (a device's MAC one bit off, whose
//! phone then got no settings); and `Database::create` makes a new, empty database in a file of
//! length zero, so a truncated file started the box with no inventory at all. So an empty file
//! is refused, a new database is made only where no file is, and `edgeprov doctor` verifies the
//! checksum of every page (redb's integrity check, a read of the whole file).
//!
//! The daemon itself does not verify every page of a file closed cleanly: that read costs
//! about 180 ms per 40 MB here (a store of 100,000 devices; one whose check-in history is full
//! holds ten times that), and the box must listen within 300 ms of starting, when a site's
//! phones are booting with it after a power cut. After such a cut the file was not closed
//! cleanly, and redb's repair reads and verifies it all anyway.
//!
//! After a crash or power loss redb may roll back to the commit before the last, whose write
//! had not finished (it never answered, so nothing acknowledged is lost). A file closed cleanly
//! has no such unfinished commit: when the verification finds its last commit failing its
//! checksums the file was changed outside edgeprov or the disk is failing, and rolling back
//! would drop a write that was acknowledged, so the open is refused instead. Whether the file was closed cleanly is
//! the "recovery required" bit of redb's header (file format 3, `docs/design.md` of redb): set
//! while the file is open for writing, cleared when it is closed.

use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use redb::{Database, DatabaseError, RepairSession};

use super::error::is_disk_full;
use super::{CACHE_BYTES, StoreError};

/// redb's magic number, then its "god byte" of flags.
const MAGIC: [u8; 9] = [b'r', b'e', b'd', b'b', 0x1A, 0x0A, 0xA9, 0x0D, 0x0A];
const RECOVERY_REQUIRED: u8 = 2;

/// The progress redb reports when its last commit failed its checksums and it is about to fall
/// back to the one before (`RepairSession::progress` after the first of its three scans); the
/// next report, after the second scan, is at 0.6 and comes on every open that checks.
const FALLING_BACK: std::ops::Range<f64> = 0.3..0.6;

/// Opens the database at `path`, creating it only when there is no file; with
/// `verify_every_page` the checksum of every page is read first (`edgeprov doctor`), else only
/// as redb does after a crash.
pub(super) fn open(path: &Path, verify_every_page: bool) -> Result<Database, StoreError> {
    let mut builder = Database::builder();
    builder.set_cache_size(CACHE_BYTES);
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private(path)?;
            return builder.create(path).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            });
        }
        Err(source) => {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
        Ok(meta) if meta.len() == 0 => return Err(damaged(path, "the file is empty")),
        Ok(meta) => keep_private(path, &meta),
    }
    let closed_cleanly = closed_cleanly(path)?;
    builder.set_check_integrity_on_open(verify_every_page);
    builder.set_repair_callback(move |session: &mut RepairSession| {
        if closed_cleanly && FALLING_BACK.contains(&session.progress()) {
            session.abort();
        }
    });
    builder.open(path).map_err(|e| match e {
        DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen {
            path: path.to_path_buf(),
        },
        DatabaseError::RepairAborted => damaged(
            path,
            "its last commit fails its checksums though edgeprov closed it cleanly: it was \
             changed outside edgeprov, or the disk is failing",
        ),
        DatabaseError::Storage(redb::StorageError::Corrupted(why)) => damaged(path, &why),
        DatabaseError::Storage(redb::StorageError::Io(io))
            if matches!(
                io.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            damaged(path, &format!("it is not a whole edgeprov database: {io}"))
        }
        DatabaseError::Storage(redb::StorageError::Io(source)) if is_disk_full(&source) => {
            StoreError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
        other => StoreError::Open {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    })
}

/// The database holds every secret in clear (SIP passwords, PINs, HTTP credentials, uploads):
/// it is made readable by its user alone, whatever the umask. redb makes a new database in a
/// file of length zero, so the file is created first, with its mode, and redb fills it.
fn create_private(path: &Path) -> Result<(), StoreError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// A database that others may read (made by an earlier edgeprov under a umask of 022) is made
/// its user's alone. Only a warning when that fails (a file of another owner): the daemon can
/// still run on it, and `data_dir`'s own checks say what is wrong with ownership.
fn keep_private(path: &Path, meta: &std::fs::Metadata) {
    let mode = meta.permissions().mode();
    if mode & 0o077 == 0 {
        return;
    }
    let private = std::fs::Permissions::from_mode(mode & 0o700);
    match std::fs::set_permissions(path, private) {
        Ok(()) => tracing::info!(
            path = %path.display(),
            was = format!("{:o}", mode & 0o777),
            "database made readable by its owner only"
        ),
        Err(e) => tracing::warn!(
            path = %path.display(),
            error = %e,
            "database is readable by other users, and its mode cannot be changed"
        ),
    }
}

fn damaged(path: &Path, why: &str) -> StoreError {
    StoreError::Damaged {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// Whether redb closed the file cleanly; a file too short for a header counts as closed
/// cleanly (redb then refuses it as damaged).
fn closed_cleanly(path: &Path) -> Result<bool, StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut head = [0u8; MAGIC.len() + 1];
    let mut file = std::fs::File::open(path).map_err(io)?;
    match file.read_exact(&mut head) {
        Ok(()) => Ok(head[..MAGIC.len()] != MAGIC || head[MAGIC.len()] & RECOVERY_REQUIRED == 0),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(true),
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::store::Store;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_new_database_is_its_owners_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/edgeprov.redb");
        drop(Store::open(&path).unwrap());
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            mode(path.parent().unwrap()) & 0o077,
            0,
            "the data directory"
        );
    }

    #[test]
    fn a_database_others_may_read_is_made_its_owners_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edgeprov.redb");
        drop(Store::open(&path).unwrap());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(store.count_devices().unwrap(), 0, "opened as before");
    }
}
