//! Prefetch jobs: warm the cache with every image the inventory's phones will ask for, before
//! they ask (ahead of a maintenance window, not during the boot storm).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::Serialize;
use tokio::task::JoinError;

use super::Firmware;
use super::catalogue::Release;

/// How many images a job fetches at once: enough to overlap two slow upstreams, few enough
/// not to saturate the site's uplink.
const PARALLEL: usize = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Running,
    Done,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobImage {
    pub file: String,
    pub size: Option<u64>,
    /// `waiting`, `fetching`, `cached` or `failed`.
    pub state: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// A job's progress as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: u64,
    pub state: JobState,
    pub images: Vec<JobImage>,
    /// Bytes on disk for this job's images (finished plus partial downloads).
    pub done_bytes: u64,
    /// Sum of the known sizes.
    pub total_bytes: u64,
    /// Why the job ended before every image had its outcome (its task panicked or was
    /// cancelled): without it such a job would show `running` for ever.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

impl Firmware {
    /// Starts fetching `releases` in the background; returns the job's id. A second task
    /// watches the first and records the job's end however it ends ([`Firmware::end_job`]).
    pub fn start_prefetch(self: &Arc<Self>, releases: Vec<Release>) -> u64 {
        let id = self.new_job(&releases);
        let work = tokio::spawn(self.clone().prefetch(id, releases));
        let this = self.clone();
        tokio::spawn(async move { this.end_job(id, work.await) });
        id
    }

    /// Enters a job of `releases`, every image waiting, and returns its id.
    fn new_job(&self, releases: &[Release]) -> u64 {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let id = jobs.keys().next_back().map_or(1, |k| k + 1);
        jobs.insert(
            id,
            Job {
                id,
                state: JobState::Running,
                // Sizes come from the catalogue as given: saturate rather than overflow.
                total_bytes: releases
                    .iter()
                    .filter_map(|r| r.size)
                    .fold(0, u64::saturating_add),
                done_bytes: 0,
                images: releases
                    .iter()
                    .map(|r| JobImage {
                        file: r.file.clone(),
                        size: r.size,
                        state: "waiting".into(),
                        error: String::new(),
                    })
                    .collect(),
                error: String::new(),
            },
        );
        id
    }

    /// Fetches the job's images, [`PARALLEL`] at a time. An image whose task panics is
    /// failed with the panic's message.
    async fn prefetch(self: Arc<Self>, id: u64, releases: Vec<Release>) {
        let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
        let mut tasks = tokio::task::JoinSet::new();
        let mut index_of = HashMap::new();
        for (i, rel) in releases.into_iter().enumerate() {
            let (this, sem) = (self.clone(), sem.clone());
            let task = tasks.spawn(async move {
                let _permit = sem.acquire().await;
                this.set_image(id, i, "fetching", String::new());
                match this.ensure_now(&rel).await {
                    Ok(_) => this.set_image(id, i, "cached", String::new()),
                    Err(e) => this.set_image(id, i, "failed", e.to_string()),
                }
            });
            index_of.insert(task.id(), i);
        }
        while let Some(done) = tasks.join_next_with_id().await {
            if let Err(e) = done
                && let Some(&i) = index_of.get(&e.id())
            {
                self.set_image(id, i, "failed", task_end(e));
            }
        }
    }

    /// Records the end of job `id`'s task, `ended` as its `JoinHandle` gave it: `done` when
    /// every image is cached, else `failed`; a task that panicked or was cancelled fails the
    /// job with the reason, and every image it left without an outcome with it.
    fn end_job(&self, id: u64, ended: Result<(), JoinError>) {
        let why = ended.err().map(task_end);
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let Some(job) = jobs.get_mut(&id) else {
            return;
        };
        for img in &mut job.images {
            if img.state == "waiting" || img.state == "fetching" {
                img.state = "failed".into();
                img.error = why
                    .clone()
                    .unwrap_or_else(|| "its fetch ended without an outcome".into());
            }
        }
        job.state = if why.is_some() || job.images.iter().any(|i| i.state == "failed") {
            JobState::Failed
        } else {
            JobState::Done
        };
        job.error = why.unwrap_or_default();
    }

    fn set_image(&self, id: u64, index: usize, state: &str, error: String) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(img) = jobs.get_mut(&id).and_then(|j| j.images.get_mut(index)) {
            img.state = state.to_string();
            img.error = error;
        }
    }

    /// A job with its byte progress measured now. Blocking (stats partial files).
    pub fn job(&self, id: u64) -> Option<Job> {
        let mut job = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)?
            .clone();
        let catalogue = self.catalogue();
        let by_file: BTreeMap<&str, &Release> = catalogue
            .releases
            .iter()
            .map(|r| (r.file.as_str(), r))
            .collect();
        job.done_bytes = job
            .images
            .iter()
            .filter_map(|img| by_file.get(img.file.as_str()))
            .map(|r| {
                let path = if self.fetching(&r.sha256) {
                    self.cache.part_path(&r.sha256)
                } else {
                    self.cache.image_path(&r.sha256)
                };
                std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
            })
            .sum();
        Some(job)
    }
}

/// What a task's `JoinError` says about its end.
fn task_end(e: JoinError) -> String {
    match crate::supervise::join_failure(e) {
        Some(why) => format!("its task {why}"),
        None => "its task was cancelled (the daemon is stopping)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firmware::FirmwareConfig;
    use crate::store::{Recorder, Store};

    fn release(file: &str, n: u8) -> Release {
        Release {
            models: vec!["J179".into()],
            version: "4.1".into(),
            file: file.into(),
            urls: Vec::new(),
            sha256: format!("{n:064x}"),
            size: Some(10),
        }
    }

    /// No input makes a prefetch task panic, so the mechanism is tested where it is: the end of
    /// a job is recorded from the `JoinError` of a task that really panicked. The job used to
    /// stay `running` for ever (and `edgeprov firmware prefetch` poll it for ever); now it is
    /// `failed` with the panic's message, and so is every image left without an outcome.
    #[tokio::test]
    async fn a_job_whose_task_panics_ends_failed_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let (recorder, _thread) = Recorder::start(store.clone()).unwrap();
        let firmware =
            Firmware::open(&FirmwareConfig::default(), dir.path(), store, recorder).unwrap();
        let id = firmware.new_job(&[release("a.bin", 1), release("b.bin", 2)]);
        firmware.set_image(id, 0, "cached", String::new());
        firmware.set_image(id, 1, "fetching", String::new());
        let panicked = tokio::spawn(async { panic!("a bug in the prefetch task") }).await;
        firmware.end_job(id, panicked);

        let job = firmware.job(id).unwrap();
        assert_eq!(job.state, JobState::Failed);
        assert_eq!(job.error, "its task panicked: a bug in the prefetch task");
        assert_eq!(
            job.images[0].state, "cached",
            "an image it finished stays so"
        );
        assert_eq!(job.images[1].state, "failed");
        assert_eq!(job.images[1].error, job.error);

        let id = firmware.new_job(&[release("a.bin", 1)]);
        firmware.set_image(id, 0, "cached", String::new());
        firmware.end_job(id, Ok(()));
        let job = firmware.job(id).unwrap();
        assert_eq!((job.state, job.error.as_str()), (JobState::Done, ""));
    }
}
