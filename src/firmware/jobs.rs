//! Prefetch jobs: warm the cache with every image the inventory's phones will ask for, before
//! they ask (ahead of a maintenance window, not during the boot storm).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

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
}

impl Firmware {
    /// Starts fetching `releases` in the background; returns the job's id.
    pub fn start_prefetch(self: &Arc<Self>, releases: Vec<Release>) -> u64 {
        let id = {
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
                },
            );
            id
        };
        let this = self.clone();
        tokio::spawn(async move {
            let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
            let mut tasks = tokio::task::JoinSet::new();
            for (i, rel) in releases.into_iter().enumerate() {
                let (this, sem) = (this.clone(), sem.clone());
                tasks.spawn(async move {
                    let _permit = sem.acquire().await;
                    this.set_image(id, i, "fetching", String::new());
                    match this.ensure_now(&rel).await {
                        Ok(_) => this.set_image(id, i, "cached", String::new()),
                        Err(e) => this.set_image(id, i, "failed", e.to_string()),
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            let mut jobs = this.jobs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(job) = jobs.get_mut(&id) {
                job.state = if job.images.iter().any(|i| i.state == "failed") {
                    JobState::Failed
                } else {
                    JobState::Done
                };
            }
        });
        id
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
