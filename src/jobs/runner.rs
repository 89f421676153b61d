//! The one task that executes jobs: it sleeps until the earliest scheduled job is due (or the
//! admin API wakes it), runs one job at a time, one device per store transaction, honours the
//! job's rate, and sees a pause or stop before the next device. A job left running by a
//! shutdown or crash continues after the restart with the first device it had not processed.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

use super::JobsHandle;
use super::model::{Action, Job, JobId, JobKind, JobState, Outcome, Pick, Sites, pick};
use crate::firmware::Firmware;
use crate::model::{Device, now_unix};
use crate::store::{Store, StoreError};

/// After a store failure, the runner tries again this much later (and says so in the log).
const RETRY: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// What the runner needs, owned by its task.
struct Runner {
    store: Store,
    firmware: Arc<Firmware>,
    handle: Arc<JobsHandle>,
    stop: watch::Receiver<bool>,
}

/// Runs jobs until the daemon stops. A job in progress at shutdown stays `running` in the
/// store and continues after the next start.
pub async fn run(
    store: Store,
    firmware: Arc<Firmware>,
    handle: Arc<JobsHandle>,
    stop: watch::Receiver<bool>,
) {
    let mut r = Runner {
        store,
        firmware,
        handle,
        stop,
    };
    loop {
        if *r.stop.borrow_and_update() {
            return;
        }
        let wait = match r.next().await {
            Ok(Pick::Run(id)) => match r.run_job(id).await {
                Ok(()) => continue,
                Err(e) => {
                    tracing::error!(job = id, error = %e, "job runner: store failure; retrying");
                    Some(RETRY)
                }
            },
            Ok(Pick::WaitUntil(at)) => Some(until(at)),
            Ok(Pick::Idle) => None,
            Err(e) => {
                tracing::error!(error = %e, "job runner: cannot read jobs; retrying");
                Some(RETRY)
            }
        };
        tokio::select! {
            _ = r.stop.changed() => return,
            _ = r.handle.wake.notified() => {}
            _ = sleep_for(wait) => {}
        }
    }
}

/// How long until Unix time `at` (zero if past), to the millisecond.
fn until(at: i64) -> Duration {
    let at = UNIX_EPOCH + Duration::from_secs(at.max(0).unsigned_abs());
    at.duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

/// The time between device starts at `rate` devices per second. A rate so small that the
/// time does not fit a `Duration` (say `1e-20`, which the API accepts as "more than 0") waits as
/// long as a `Duration` can.
fn spacing(rate: f64) -> Duration {
    Duration::try_from_secs_f64(1.0 / rate)
        .unwrap_or(Duration::MAX)
        .max(Duration::from_micros(1))
}

async fn sleep_for(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, RunError> {
    Ok(tokio::task::spawn_blocking(f).await??)
}

impl Runner {
    async fn next(&self) -> Result<Pick, RunError> {
        let store = self.store.clone();
        let jobs = blocking(move || store.list_jobs()).await?;
        Ok(pick(&jobs, now_unix()))
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, RunError> {
        let store = self.store.clone();
        blocking(move || store.get_job(id)).await
    }

    /// Runs (or continues) one job until it finishes, is paused or stopped, or the daemon
    /// stops.
    async fn run_job(&mut self, id: JobId) -> Result<(), RunError> {
        let Some(mut job) = self.get(id).await? else {
            return Ok(());
        };
        if job.state == JobState::Scheduled {
            let store = self.store.clone();
            match blocking(move || store.start_job(id)).await? {
                Ok(j) => job = j,
                // Paused or stopped between the pick and the start.
                Err(_) => return Ok(()),
            }
            tracing::info!(
                job = id,
                kind = job.kind.name(),
                devices = job.counts.total,
                "job started"
            );
        } else {
            tracing::info!(job = id, next = job.next, "job continues");
        }
        let interval = job.rate.map(spacing);
        let mut last: Option<Instant> = None;
        loop {
            if job.state != JobState::Running {
                tracing::info!(job = id, state = %job.state, "job halted");
                return Ok(());
            }
            if job.complete() {
                let failed = job.counts.failed > 0;
                let store = self.store.clone();
                if let Ok(j) =
                    blocking(move || store.job_action(id, Action::Finish { failed })).await?
                {
                    tracing::info!(job = id, state = %j.state, ok = j.counts.ok, failed = j.counts.failed, "job finished");
                }
                return Ok(());
            }
            if let (Some(interval), Some(last)) = (interval, last) {
                // Past the clock's range: due never, so only a pause, stop or shutdown ends it.
                let due = last.checked_add(interval);
                while due.is_none_or(|due| Instant::now() < due) {
                    tokio::select! {
                        _ = self.stop.changed() => return Ok(()),
                        _ = self.handle.wake.notified() => {
                            // Paused or stopped while waiting: let go at once.
                            match self.get(id).await? {
                                Some(j) if j.state == JobState::Running => {}
                                _ => return Ok(()),
                            }
                        }
                        _ = sleep_for(due.map(|due| due.saturating_duration_since(Instant::now()))) => {}
                    }
                }
            }
            if *self.stop.borrow() {
                return Ok(());
            }
            last = Some(Instant::now());
            match self.step(&job).await? {
                Some(Some(j)) => job = j,
                // The daemon is stopping, or the job was paused, stopped or deleted.
                _ => return Ok(()),
            }
        }
    }

    /// Processes the job's next device: the job after the step, `Some(None)` when the store
    /// refused the step (no longer running), `None` when the daemon stopped meanwhile.
    async fn step(&mut self, job: &Job) -> Result<Option<Option<Job>>, RunError> {
        let (id, index) = (job.id, job.next);
        let store = self.store.clone();
        if job.kind == JobKind::FirmwarePrefetch {
            // The step checks the device's site again when it records the outcome; checked
            // here too so that no image is fetched (and named in the result) for a device the
            // job may not touch.
            let checked = job.clone();
            let (device, refusal) = blocking(move || {
                let device = store
                    .job_device(id, index)?
                    .map(|mac| store.get_device(mac))
                    .transpose()?
                    .flatten();
                let creator = Sites::held_by(
                    &checked.created_by,
                    &store.list_tokens()?,
                    crate::model::now_unix(),
                );
                let refusal = checked.refusal(device.as_ref(), &creator);
                Ok((device, refusal))
            })
            .await?;
            let fw = self.firmware.clone();
            let outcome = match refusal {
                Some(why) => Outcome::Skipped(why),
                None => tokio::select! {
                    o = prefetch(&fw, device) => o,
                    _ = self.stop.changed() => return Ok(None),
                },
            };
            let store = self.store.clone();
            return Ok(Some(
                blocking(move || store.job_step(id, index, move |_| outcome)).await?,
            ));
        }
        let kind = job.kind.clone();
        Ok(Some(
            blocking(move || store.job_step(id, index, move |d| kind.apply(d))).await?,
        ))
    }
}

/// Fetches the image a device's policy points at (shared with phones' own requests: one
/// download per image however many devices want it).
async fn prefetch(fw: &Arc<Firmware>, device: Option<Device>) -> Outcome {
    let Some(d) = device else {
        return Outcome::Failed("not in the inventory".into());
    };
    let catalogue = fw.catalogue();
    let Some(rel) = catalogue.resolve(Some(&d.site), &d.model).cloned() else {
        return Outcome::Unchanged(format!(
            "no firmware for model {:?} (policy off or no release)",
            d.model
        ));
    };
    match fw.ensure(&rel).await {
        Ok(_) => Outcome::Unchanged(format!("{} cached", rel.file)),
        Err(e) => Outcome::Failed(format!("{}: {e}", rel.file)),
    }
}
