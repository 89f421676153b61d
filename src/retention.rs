//! Keeps the check-in history and the audit log within the retention the preferences set: once
//! at start, then every hour, and at once when an administrator changes the preferences. The
//! hourly pass also drops the store's decoded inventory when listings have not used it lately.

use std::time::Duration;

use tokio::sync::watch;

use crate::model::now_unix;
use crate::store::{Store, StoreError};

const EVERY: Duration = Duration::from_secs(3600);
/// Decoded copies unused this long are dropped on the hourly pass.
const CACHE_IDLE: Duration = Duration::from_secs(600);
const DAY: i64 = 86_400;

/// What one pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    pub checkins: u64,
    pub audit: u64,
    /// Ended jobs, kept as long as the audit log that records their creation.
    pub jobs: u64,
    /// Check-ins and audit entries (counted above too) removed because they could not be read:
    /// not dated, but each was at the front with only old entries before it.
    pub unreadable: u64,
}

/// Removes what is older than the retention, as of `now`. Each table is pruned whatever became
/// of the others, so that a failure in one does not let the others grow; the first failure is
/// returned once all have run.
pub fn prune_once(store: &Store, now: i64) -> Result<Pruned, StoreError> {
    let prefs = store.preferences()?;
    let audit_cutoff = now - i64::from(prefs.audit_retention_days) * DAY;
    let checkins = store.prune_checkins(now - i64::from(prefs.checkin_retention_days) * DAY);
    let audit = store.prune_audit(audit_cutoff);
    let jobs = store.prune_jobs(audit_cutoff);
    let (checkins, audit, jobs) = (checkins?, audit?, jobs?);
    Ok(Pruned {
        checkins: checkins.removed,
        audit: audit.removed,
        jobs,
        unreadable: checkins.unreadable + audit.unreadable,
    })
}

pub async fn run(store: Store, mut stop: watch::Receiver<bool>) {
    loop {
        let s = store.clone();
        match tokio::task::spawn_blocking(move || prune_once(&s, now_unix())).await {
            Ok(Ok(p)) if p.checkins + p.audit + p.jobs > 0 => {
                tracing::info!(
                    checkins = p.checkins,
                    audit = p.audit,
                    jobs = p.jobs,
                    unreadable = p.unreadable,
                    "retention applied"
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "retention pass failed"),
            Err(e) => tracing::error!(error = %e, "retention task failed"),
        }
        store.release_idle_caches(CACHE_IDLE);
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{Job, JobKind, JobState, Selection, Sites};
    use crate::model::{CheckIn, Mac};
    use crate::store::AuditEntry;

    /// A delete job made at `created`, in `state`, ended at `finished`.
    fn ended_job(now: i64, created: i64, state: JobState, finished: Option<i64>) -> Job {
        let mut job = Job::new(
            JobKind::Delete,
            Selection::default(),
            now,
            None,
            "admin",
            Sites::All,
            created,
        );
        job.state = state;
        job.finished = finished;
        job
    }

    /// An administrator's change made at `time`.
    fn audit_entry(time: i64) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time,
            who: "admin".into(),
            source: "127.0.0.1".into(),
            method: "POST".into(),
            resource: "/api/v1/x".into(),
            status: 200,
            summary: String::new(),
            changes: serde_json::Value::Null,
        }
    }

    fn times(history: &[CheckIn]) -> Vec<i64> {
        history.iter().map(|c| c.last_seen).collect()
    }

    #[tokio::test]
    async fn removes_only_what_is_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        store
            .update_preferences(|p| {
                p.checkin_retention_days = 7;
                p.audit_retention_days = 30;
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        let now = 1_000 * DAY;
        for age_days in [40, 20, 1] {
            store
                .append_audit(AuditEntry {
                    resource: format!("/api/v1/x{age_days}"),
                    ..audit_entry(now - age_days * DAY)
                })
                .unwrap();
        }
        let mac = Mac::from_octets([2, 0, 0, 0, 0, 1]);
        // Ended 40 and 20 days ago, and one still waiting: only the first goes.
        let mut ids = Vec::new();
        for (state, finished) in [
            (JobState::Done, Some(now - 40 * DAY)),
            (JobState::Stopped, Some(now - 20 * DAY)),
            (JobState::Scheduled, None),
        ] {
            let job = ended_job(now, now - 50 * DAY, state, finished);
            ids.push(store.create_job(job).unwrap().id);
        }
        let (recorder, _thread) =
            crate::store::Recorder::start(store.clone()).expect("recorder thread");
        for age_days in [10, 8, 2] {
            recorder.check_in(
                mac,
                CheckIn {
                    last_seen: now - age_days * DAY,
                    ..CheckIn::default()
                },
            );
        }
        recorder.flush().await;

        assert_eq!(
            prune_once(&store, now).unwrap(),
            Pruned {
                checkins: 2,
                audit: 1,
                jobs: 1,
                unreadable: 0
            }
        );
        let left = store.list_audit(10, |_| true).unwrap();
        assert_eq!(
            left.iter().map(|e| e.resource.as_str()).collect::<Vec<_>>(),
            ["/api/v1/x1", "/api/v1/x20"]
        );
        let history = store.checkins_of(mac, 10).unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].last_seen, now - 2 * DAY);
        let left: Vec<u64> = store.list_jobs().unwrap().iter().map(|j| j.id).collect();
        assert_eq!(left, ids[1..]);
        assert_eq!(prune_once(&store, now).unwrap().audit, 0, "idempotent");
    }

    /// An administrator deleting an ended job while a pass runs: the pass still prunes the
    /// rest (it failed as a whole when the job it had listed was gone by its delete).
    #[test]
    fn a_job_deleted_meanwhile_does_not_fail_the_pass() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let now = 1_000 * DAY;
        let ended = move || ended_job(now, now - 500 * DAY, JobState::Done, Some(now - 400 * DAY));
        let admin = {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..300 {
                    let id = store.create_job(ended()).unwrap().id;
                    // Either this delete or the pass's removes it.
                    match store.delete_job(id) {
                        Ok(r) => drop(r.unwrap()),
                        Err(e) => assert!(matches!(e, StoreError::NotFound(_)), "{e}"),
                    }
                }
            })
        };
        while !admin.is_finished() {
            prune_once(&store, now).expect("a pass while jobs are deleted");
        }
        admin.join().unwrap();
        assert!(store.list_jobs().unwrap().is_empty());
    }

    /// Damage written straight into the file: the oldest check-in (indexed under its device)
    /// and the oldest audit entry no longer read at all, and the next check-in lost every
    /// field but its device and time. Retention failed at the first of them on every pass
    /// from then on; now it dates what it can, removes what it cannot read (counted), leaves
    /// no index row without its check-in and no check-in without its index row, and keeps the
    /// young rows.
    #[test]
    fn unreadable_rows_at_the_front_do_not_stop_retention() {
        use redb::{ReadableDatabase, ReadableTable, TableDefinition};
        const CHECKINS: TableDefinition<u64, &[u8]> = TableDefinition::new("checkins");
        const INDEX: TableDefinition<(u64, u64), ()> = TableDefinition::new("checkins_by_mac");
        const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
        const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let now = 1_000 * DAY;
        let (a, b) = (
            Mac::from_octets([2, 0, 0, 0, 0, 0xa]),
            Mac::from_octets([2, 0, 0, 0, 0, 0xb]),
        );
        {
            // Retention by default: check-ins 30 days, audit 365.
            let store = Store::open(&path).unwrap();
            let (recorder, thread) =
                crate::store::Recorder::start(store.clone()).expect("recorder thread");
            for (mac, age_days) in [(a, 40), (a, 35), (b, 33), (a, 2), (b, 1)] {
                let checkin = CheckIn {
                    last_seen: now - age_days * DAY,
                    ..CheckIn::default()
                };
                recorder.check_in(mac, checkin);
            }
            recorder.flush_blocking();
            recorder.stop();
            thread.join().unwrap();
            for age_days in [400, 1] {
                store
                    .append_audit(audit_entry(now - age_days * DAY))
                    .unwrap();
            }
        }
        {
            let db = redb::Database::open(&path).unwrap();
            let tx = db.begin_write().unwrap();
            let mut checkins = tx.open_table(CHECKINS).unwrap();
            checkins.insert(1, b"\xff\x00 not json".as_slice()).unwrap();
            let bare = format!(r#"{{"mac":"{a}","last_seen":{}}}"#, now - 35 * DAY);
            checkins.insert(2, bare.as_bytes()).unwrap();
            drop(checkins);
            tx.open_table(AUDIT)
                .unwrap()
                .insert(1, b"{\"time\":".as_slice())
                .unwrap();
            // A job record no longer read: kept (it is not dated), and it stops nothing.
            tx.open_table(JOBS)
                .unwrap()
                .insert(7, b"\x00".as_slice())
                .unwrap();
            tx.commit().unwrap();
        }

        let store = Store::open(&path).unwrap();
        assert_eq!(
            prune_once(&store, now).unwrap(),
            Pruned {
                checkins: 3,
                audit: 1,
                jobs: 0,
                unreadable: 2
            }
        );
        assert_eq!(times(&store.checkins_of(a, 10).unwrap()), [now - 2 * DAY]);
        assert_eq!(times(&store.checkins_of(b, 10).unwrap()), [now - DAY]);
        assert_eq!(store.list_audit(10, |_| true).unwrap().len(), 1);
        assert_eq!(
            prune_once(&store, now).unwrap(),
            Pruned {
                checkins: 0,
                audit: 0,
                jobs: 0,
                unreadable: 0
            }
        );
        drop(store);

        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_read().unwrap();
        let rows: Vec<u64> = tx
            .open_table(CHECKINS)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| r.unwrap().0.value())
            .collect();
        let mut indexed: Vec<u64> = tx
            .open_table(INDEX)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| r.unwrap().0.value().1)
            .collect();
        indexed.sort();
        assert_eq!(rows, [4, 5]);
        assert_eq!(
            indexed, rows,
            "one index row per check-in, none for a removed one"
        );
    }
}
