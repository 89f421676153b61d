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
    /// When the last open was tried, and why it failed.
    last_attempt: Option<(Instant, Failure)>,
}

/// Why an open again failed: its message, whether for want of space, and whether because a
/// transaction of the failed handle still held the file.
#[derive(Clone)]
struct Failure {
    message: String,
    disk_full: bool,
    held: bool,
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
        let unavailable = |f: &Failure| StoreError::Unwritable {
            path: self.path.clone(),
            message: f.message.clone(),
            disk_full: f.disk_full,
            held: f.held,
        };
        if let Some((at, failure)) = &state.last_attempt
            && at.elapsed() < RETRY
        {
            return Err(unavailable(failure));
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
                let failure = Failure {
                    message: e.to_string(),
                    disk_full: e.is_disk_full(),
                    held: matches!(e, StoreError::AlreadyOpen { .. }),
                };
                let err = unavailable(&failure);
                state.last_attempt = Some((Instant::now(), failure));
                Err(err)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// A write begun on the handle that failed (one that waited for the failed one and began as
    /// it ended) still holds the file when the next use opens it again: redb keeps a database
    /// open until its last write transaction ends. That open is refused as held, which passes
    /// (the API answers 503 with Retry-After, not 500), and the store works again once the
    /// write has ended.
    #[test]
    fn an_open_again_that_a_writer_on_the_failed_handle_holds_off_passes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("edgeprov.redb")).unwrap();
        let failed = store.db().unwrap();
        let writer = failed.begin_write().unwrap();
        store.db.failed_on_io(&failed);
        drop(failed);

        let err = store.db().unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.to_string().contains("still open"), "{err}");
        let api = crate::admin::ApiError::from(err);
        use axum::response::IntoResponse;
        assert_eq!(api.into_response().status(), 503);

        drop(writer);
        std::thread::sleep(RETRY);
        store.db().unwrap().begin_write().unwrap().commit().unwrap();
    }

    /// A read begun on the failed handle goes on after the file was opened again, and the
    /// failed handle closed under it: redb answers "Database closed", which is the same passing
    /// state (503 with Retry-After), not an internal error.
    #[test]
    fn a_read_that_outlives_the_failed_handle_is_unavailable_for_the_moment() {
        use redb::ReadableDatabase;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("edgeprov.redb")).unwrap();
        let failed = store.db().unwrap();
        let reader = failed.begin_read().unwrap();
        store.db.failed_on_io(&failed);
        drop(failed);
        store.db().unwrap();

        let err = StoreError::from(reader.list_tables().map(|_| ()).unwrap_err());
        assert!(err.is_transient(), "{err}");
        let api = crate::admin::ApiError::from(err);
        use axum::response::IntoResponse;
        assert_eq!(api.into_response().status(), 503);
    }
}
