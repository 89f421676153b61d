//! The schema version, the tables made at open, and moving an older file to this version.
//!
//! Schema 1 → 2 indexes every check-in by device. A box with years of history holds tens of
//! millions of rows and indexing them takes minutes. Done as one transaction before READY it
//! outlasted systemd's start timeout: edgeprov was killed, the transaction lost, and the next
//! start began again from nothing, for ever. So the index is built in chunks, each committed
//! with a marker saying how far it has come ([`INDEXED_THROUGH`]): a start stopped or killed
//! part-way keeps what it did and the next goes on from the marker. After every chunk the
//! caller hears of the progress, so the daemon can ask systemd for more time (`notify.rs`);
//! the store itself knows nothing of systemd.
//!
//! The file says schema 2 from the upgrade's first commit, so an edgeprov that knows only 1
//! refuses it: it would add check-ins without index rows, and prune rows whose index rows would
//! then outlive them. While the marker is present the index is incomplete; opening the store
//! finishes it before anything reads it, and `edgeprov doctor` says so.

use std::ops::{Bound, ControlFlow};
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use serde::Deserialize;

use super::history::{CHECKINS, CHECKINS_BY_MAC, mac_key};
use super::{
    ALARMS, AUDIT, DEVICES, LAYERS, LEASES, META, SCHEMA_VERSION, SITES, STATIC_FILES, Store,
    StoreError, dead_letters, decode, device_certs, dns_records, files, firmware, jobs,
    pending_enrolments, prefs, sync, tokens, uploads,
};
use crate::model::Mac;

/// Key in [`META`] present only while the check-in index is being built: every check-in row
/// whose sequence number is at most its value is indexed, and none after it.
const INDEXED_THROUGH: &str = "checkins_indexed_through";

/// The most one transaction of an upgrade does.
#[derive(Debug, Clone, Copy)]
pub(super) struct Chunk {
    pub rows: usize,
    pub time: Duration,
}

/// A chunk ends after a million rows or five seconds, whichever comes first (and after one row
/// at least). Each commit writes every touched device's last index page again, so a chunk
/// should carry many rows per device; yet a kill loses at most one chunk, and the progress
/// reported after each must come well within the start-up time the daemon asks for each time
/// (a minute: `notify::EXTEND_START_USEC`).
pub(super) const CHUNK: Chunk = Chunk {
    rows: 1_000_000,
    time: Duration::from_secs(5),
};

/// How far an upgrade has come, in check-in rows (those that cannot be read count as done:
/// they are passed over).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeProgress {
    pub done: u64,
    pub total: u64,
}

/// What one chunk did.
struct Step {
    progress: UpgradeProgress,
    unreadable: u64,
    finished: bool,
}

impl Store {
    /// Makes every table and records this version's schema. A schema-1 file is marked, in the
    /// same transaction, as schema 2 with nothing indexed yet; the indexing is
    /// [`Store::upgrade`]'s.
    pub(super) fn init_schema(&self) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut meta = tx.open_table(META)?;
            let found = meta.get("schema_version")?.map(|v| v.value());
            match found {
                None => {
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                }
                Some(1) => {
                    meta.insert("schema_version", SCHEMA_VERSION)?;
                    meta.insert(INDEXED_THROUGH, 0)?;
                }
                Some(v) if v == SCHEMA_VERSION => {}
                Some(v) => {
                    return Err(StoreError::Schema {
                        path: self.path.to_path_buf(),
                        found: v,
                    });
                }
            }
            tx.open_table(DEVICES)?;
            tx.open_table(SITES)?;
            tx.open_table(LAYERS)?;
            tx.open_table(ALARMS)?;
            tx.open_table(AUDIT)?;
            tx.open_table(STATIC_FILES)?;
            tx.open_table(files::STATIC_FLAGS)?;
            tx.open_table(dns_records::DNS_RECORDS)?;
            tx.open_table(firmware::FIRMWARE_RELEASES)?;
            tx.open_table(firmware::FIRMWARE_POLICIES)?;
            tx.open_table(sync::SYNC_STATE)?;
            tx.open_table(sync::CLOUD_DATA)?;
            tx.open_table(sync::OUTBOX)?;
            tx.open_table(sync::OUTBOX_INDEX)?;
            tx.open_table(dead_letters::DEAD_LETTERS)?;
            tx.open_table(LEASES)?;
            tx.open_table(jobs::JOBS)?;
            tx.open_table(jobs::JOB_RESULTS)?;
            tx.open_table(tokens::TOKENS)?;
            tx.open_table(device_certs::DEVICE_CERTS)?;
            tx.open_table(device_certs::REVOKED_BEFORE)?;
            tx.open_table(pending_enrolments::PENDING_ENROLMENTS)?;
            tx.open_table(CHECKINS)?;
            tx.open_table(CHECKINS_BY_MAC)?;
            tx.open_table(prefs::PREFERENCES)?;
            tx.open_table(uploads::UPLOADS)?;
            tx.open_table(uploads::UPLOAD_INFO)?;
            tx.open_table(uploads::LOGS_BY_AGE)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// How far an unfinished upgrade has come; `None` when the file is wholly on its schema.
    pub fn upgrade_pending(&self) -> Result<Option<UpgradeProgress>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let meta = tx.open_table(META)?;
        let Some(through) = meta.get(INDEXED_THROUGH)?.map(|v| v.value()) else {
            return Ok(None);
        };
        let table = tx.open_table(CHECKINS)?;
        Ok(Some(progress(&table, through)?))
    }

    /// Finishes an upgrade that [`Store::init_schema`] began, now or at an earlier start that
    /// was stopped, in chunks of at most `chunk`. `report` hears how far it has come before the
    /// first chunk and after each commits; with nothing to do it hears nothing. When it answers
    /// [`ControlFlow::Break`] (the daemon was asked to stop) the upgrade ends there with
    /// [`StoreError::UpgradeStopped`]: every committed chunk is kept and the next start goes
    /// on from the marker, so a stop waits for one chunk at most, not for the whole history.
    pub(super) fn upgrade(
        &self,
        chunk: Chunk,
        mut report: impl FnMut(UpgradeProgress) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        let Some(from) = self.upgrade_pending()? else {
            return Ok(());
        };
        tracing::info!(
            done = from.done,
            total = from.total,
            "upgrading the database to schema {SCHEMA_VERSION}: indexing the check-in history \
             by device, a chunk per commit (a restart goes on from the last)"
        );
        let stopped = |p: UpgradeProgress| StoreError::UpgradeStopped {
            done: p.done,
            total: p.total,
        };
        if report(from).is_break() {
            return Err(stopped(from));
        }
        let started = Instant::now();
        let mut unreadable = 0;
        loop {
            let step = self.index_chunk(chunk)?;
            unreadable += step.unreadable;
            let asked_to_stop = report(step.progress).is_break();
            if step.finished {
                tracing::info!(
                    total = step.progress.total,
                    unreadable,
                    seconds = started.elapsed().as_secs(),
                    "database upgraded to schema {SCHEMA_VERSION}"
                );
                return Ok(());
            }
            if asked_to_stop {
                return Err(stopped(step.progress));
            }
            tracing::info!(
                done = step.progress.done,
                total = step.progress.total,
                "upgrading the database: check-ins indexed by device"
            );
        }
    }

    /// Indexes the rows after the marker, at most `chunk`, and in the same transaction moves
    /// the marker to the last of them, or removes it with the last row of the table: however a
    /// start ends, every row up to the marker is indexed once and the rest are left for the
    /// next. Only the MAC is decoded. A row that cannot be read is left out of the index, with
    /// a warning, rather than keeping the daemon from starting over a history entry.
    fn index_chunk(&self, chunk: Chunk) -> Result<Step, StoreError> {
        #[derive(Deserialize)]
        struct Owner {
            mac: Mac,
        }
        let tx = self.begin_uncounted_write()?;
        let step = {
            let mut meta = tx.open_table(META)?;
            let through = meta.get(INDEXED_THROUGH)?.map(|v| v.value());
            let table = tx.open_table(CHECKINS)?;
            let mut index = tx.open_table(CHECKINS_BY_MAC)?;
            let started = Instant::now();
            let (mut last, mut rows, mut unreadable) = (through.unwrap_or(u64::MAX), 0, 0);
            let mut finished = true;
            for row in table.range::<u64>((Bound::Excluded(last), Bound::Unbounded))? {
                if rows > 0 && (rows >= chunk.rows || started.elapsed() >= chunk.time) {
                    finished = false;
                    break;
                }
                let (k, v) = row?;
                let seq = k.value();
                match decode::<Owner>("checkins", &seq.to_string(), v.value()) {
                    Ok(owner) => {
                        index.insert((mac_key(owner.mac), seq), ())?;
                    }
                    Err(e) => {
                        tracing::warn!(seq, error = %e, "check-in left out of the device index");
                        unreadable += 1;
                    }
                }
                (last, rows) = (seq, rows + 1);
            }
            let progress = if finished {
                meta.remove(INDEXED_THROUGH)?;
                let total = table.len()?;
                UpgradeProgress { done: total, total }
            } else {
                meta.insert(INDEXED_THROUGH, last)?;
                progress(&table, last)?
            };
            Step {
                progress,
                unreadable,
                finished,
            }
        };
        tx.commit()?;
        Ok(step)
    }
}

/// How many rows are at or before `through`. Sequence numbers have no gaps (rows are removed
/// only from the front and added only at the end), so this is a subtraction, not a count.
fn progress(
    table: &impl ReadableTable<u64, &'static [u8]>,
    through: u64,
) -> Result<UpgradeProgress, StoreError> {
    let total = table.len()?;
    let first = table.first()?.map_or(1, |(k, _)| k.value());
    Ok(UpgradeProgress {
        done: through.saturating_add(1).saturating_sub(first).min(total),
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::encode;
    use crate::store::history::CheckinRecord;
    use crate::store::history::tests::{A, B, append, index_rows, seen, times};

    /// A file as edgeprov wrote it before the index (schema 1): check-in rows with sequence
    /// numbers from 1, each `Some((device, time))` or `None` for a row that cannot be read.
    fn schema_1_file(path: &std::path::Path, rows: &[Option<(Mac, i64)>]) {
        let db = redb::Database::create(path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META)
            .unwrap()
            .insert("schema_version", 1)
            .unwrap();
        let mut table = tx.open_table(CHECKINS).unwrap();
        for (seq, row) in (1u64..).zip(rows) {
            let bytes = match row {
                Some((mac, t)) => encode(&CheckinRecord {
                    mac: *mac,
                    checkin: seen(*t),
                }),
                None => b"not json".to_vec(),
            };
            table.insert(seq, bytes.as_slice()).unwrap();
        }
        drop(table);
        tx.commit().unwrap();
    }

    /// The store on `path` as opening makes it before the upgrade's work: tables made and a
    /// schema-1 file marked as being upgraded.
    fn begun(path: &std::path::Path) -> Store {
        let s = Store::of(redb::Database::create(path).unwrap(), path);
        s.init_schema().unwrap();
        s
    }

    /// A database written by the previous version (schema 1: check-in rows, no index) is
    /// indexed when opened, answers as that version did, and goes on from there; a row that
    /// cannot be read does not keep it from opening.
    #[test]
    fn a_schema_1_database_is_indexed_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        schema_1_file(
            &path,
            &[
                Some((A, 10)),
                Some((B, 11)),
                Some((A, 12)),
                Some((B, 13)),
                Some((A, 14)),
                None,
            ],
        );

        // Looking (edgeprov doctor) leaves it as it was: an older daemon can still start on it.
        let looked = Store::inspect(&path).unwrap();
        assert_eq!(looked.schema_version().unwrap(), 1);
        drop(looked);
        assert_eq!(Store::inspect(&path).unwrap().schema_version().unwrap(), 1);

        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(index_rows(&s).len(), 5, "every row that can be read");
        assert_eq!(times(&s.checkins_of(A, 10).unwrap()), [14, 12, 10]);
        assert_eq!(times(&s.checkins_of(A, 2).unwrap()), [14, 12]);
        assert_eq!(times(&s.checkins_of(B, 10).unwrap()), [13, 11]);

        append(&s, &[(A, 15)]);
        assert_eq!(s.prune_checkins(12).unwrap().removed, 2);
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(times(&s.checkins_of(A, 10).unwrap()), [15, 14, 12]);
        assert_eq!(times(&s.checkins_of(B, 10).unwrap()), [13]);
        assert_eq!(index_rows(&s).len(), 4);
    }

    /// A start that ends part-way through the upgrade (a chunk committed, then the process
    /// gone) leaves a file that says schema 2, so an edgeprov that knows only 1 refuses it, and
    /// that says it is not done, so nothing takes its index as whole. The next start goes on
    /// from the marker: every row that can be read ends up indexed exactly once, under its own
    /// device, and progress is reported before the first chunk and after every one.
    #[test]
    fn an_upgrade_stopped_part_way_goes_on_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let rows = [
            Some((A, 10)),
            Some((B, 11)),
            Some((A, 12)),
            None,
            Some((B, 14)),
            Some((A, 15)),
            Some((B, 16)),
        ];
        schema_1_file(&path, &rows);
        let long = Duration::from_secs(3600);

        let s = begun(&path);
        let step = s
            .index_chunk(Chunk {
                rows: 3,
                time: long,
            })
            .unwrap();
        assert!(!step.finished);
        assert_eq!(step.progress, UpgradeProgress { done: 3, total: 7 });
        drop(s);

        let looked = Store::inspect(&path).unwrap();
        assert_eq!(looked.schema_version().unwrap(), SCHEMA_VERSION);
        assert_eq!(
            looked.upgrade_pending().unwrap(),
            Some(UpgradeProgress { done: 3, total: 7 })
        );
        assert_eq!(
            index_rows(&looked),
            [(mac_key(A), 1), (mac_key(A), 3), (mac_key(B), 2)]
        );
        drop(looked);

        // No time for more than a row per chunk: still a row each, never none.
        let s = begun(&path);
        let mut reports = Vec::new();
        s.upgrade(
            Chunk {
                rows: 3,
                time: Duration::ZERO,
            },
            |p| {
                reports.push(p.done);
                ControlFlow::Continue(())
            },
        )
        .unwrap();
        assert_eq!(reports, [3, 4, 5, 6, 7]);
        assert_eq!(s.upgrade_pending().unwrap(), None);
        let every_readable_row = [
            (mac_key(A), 1),
            (mac_key(A), 3),
            (mac_key(A), 6),
            (mac_key(B), 2),
            (mac_key(B), 5),
            (mac_key(B), 7),
        ];
        assert_eq!(index_rows(&s), every_readable_row);
        assert_eq!(times(&s.checkins_of(A, 10).unwrap()), [15, 12, 10]);
        assert_eq!(times(&s.checkins_of(B, 10).unwrap()), [16, 14, 11]);
        drop(s);

        let mut reported = false;
        let s = Store::open_reporting(&path, |_| {
            reported = true;
            ControlFlow::Continue(())
        })
        .unwrap();
        assert!(!reported, "an upgraded file has nothing to report");
        assert_eq!(index_rows(&s), every_readable_row);
    }

    /// A daemon asked to stop during the upgrade ends it after the chunk in hand (systemd kills
    /// a stop that takes longer than 30 s, which the whole history would), keeping every chunk
    /// committed; asked before the first, it indexes nothing. The next open finishes the rest.
    #[test]
    fn an_upgrade_asked_to_stop_ends_after_the_chunk_in_hand() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let rows: Vec<_> = (0..6).map(|i| Some((A, 10 + i))).collect();
        schema_1_file(&path, &rows);
        let one_row = Chunk {
            rows: 1,
            time: Duration::from_secs(3600),
        };

        let s = begun(&path);
        let stopped = s.upgrade(one_row, |_| ControlFlow::Break(()));
        assert!(matches!(
            stopped,
            Err(StoreError::UpgradeStopped { done: 0, total: 6 })
        ));
        assert!(index_rows(&s).is_empty());

        let mut reports = Vec::new();
        let stopped = s.upgrade(one_row, |p| {
            reports.push(p.done);
            match p.done {
                2 => ControlFlow::Break(()),
                _ => ControlFlow::Continue(()),
            }
        });
        assert!(matches!(
            stopped,
            Err(StoreError::UpgradeStopped { done: 2, total: 6 })
        ));
        assert_eq!(reports, [0, 1, 2], "no chunk after the stop");
        assert_eq!(
            s.upgrade_pending().unwrap(),
            Some(UpgradeProgress { done: 2, total: 6 })
        );
        drop(s);

        let s = Store::open(&path).unwrap();
        assert_eq!(s.upgrade_pending().unwrap(), None);
        assert_eq!(index_rows(&s).len(), 6);
    }
}
