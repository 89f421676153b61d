//! The open database file, and opening it again after a write failed on I/O.
//!
//! redb latches the first I/O error of a write (a full disk: ENOSPC) and from then on fails
//! every read and write of that handle with "Previous I/O error occurred", until the database
//! is closed and opened again. Kept as it was, one moment of full disk left the daemon unable
//! to save a change, record a check-in or render a file until it was restarted, even after the
//! space came back. So a commit that fails on I/O marks its handle failed, and the next use
//! drops it and opens the file again: the open runs redb's repair, which verifies the file and
//! goes on from the last commit that succeeded, so the store is as it was before the failed
//! write. While the open fails (the disk is still full) callers get its error; attempts come at
//! most once per [`RETRY`], since each repair reads the whole file.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redb::Database;

use super::StoreError;

/// The least time between two attempts to open the file again.
const RETRY: Duration = Duration::from_secs(1);

pub(super) struct DbHandle {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    /// `None` after a failed handle was dropped and until an open succeeds.
    db: Option<Arc<Database>>,
    failed: bool,
    /// When the last open was tried, why it failed, and whether for want of space.
    last_attempt: Option<(Instant, String, bool)>,
}

impl DbHandle {
    pub(super) fn new(db: Database, path: &Path) -> DbHandle {
        DbHandle {
            path: path.to_path_buf(),
            state: Mutex::new(State {
                db: Some(Arc::new(db)),
                failed: false,
                last_attempt: None,
            }),
        }
    }

    /// The database, opened again first when its handle failed.
    pub(super) fn get(&self) -> Result<Arc<Database>, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.failed {
            // Dropping the last reference closes the file and releases redb's lock on it.
            state.db = None;
            state.failed = false;
        }
        if let Some(db) = &state.db {
            return Ok(db.clone());
        }
        let unavailable = |message: &str, disk_full| StoreError::Unwritable {
            path: self.path.clone(),
            message: message.to_string(),
            disk_full,
        };
        if let Some((at, message, disk_full)) = &state.last_attempt
            && at.elapsed() < RETRY
        {
            return Err(unavailable(message, *disk_full));
        }
        match super::open::open(&self.path, false) {
            Ok(db) => {
                tracing::warn!(
                    path = %self.path.display(),
                    "database opened again after a write failed on I/O; it goes on from the \
                     last write that succeeded"
                );
                let db = Arc::new(db);
                state.db = Some(db.clone());
                state.last_attempt = None;
                Ok(db)
            }
            Err(e) => {
                let disk_full = e.is_disk_full();
                let message = e.to_string();
                state.last_attempt = Some((Instant::now(), message.clone(), disk_full));
                Err(unavailable(&message, disk_full))
            }
        }
    }

    /// Marks `db` failed when a commit on it failed on I/O, unless it was replaced already.
    pub(super) fn failed_on_io(&self, db: &Arc<Database>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.db.as_ref().is_some_and(|d| Arc::ptr_eq(d, db)) {
            tracing::error!(
                path = %self.path.display(),
                "a write to the database failed on I/O; it is opened again at its next use"
            );
            state.failed = true;
        }
    }
}

/// Whether a commit's error latches redb's handle (an I/O error, or the latch itself).
pub(super) fn latches(e: &redb::CommitError) -> bool {
    matches!(
        e,
        redb::CommitError::Storage(redb::StorageError::Io(_) | redb::StorageError::PreviousIo)
    )
}
