//! Bulk jobs: an operation (activate, deactivate, move, set a parameter, delete, prefetch
//! firmware) over a selection of devices, scheduled, throttled, paused, resumed and stopped,
//! with a result per device. See docs/jobs.md.
//!
//! `model` is pure (the life cycle, what a job does to one device, which devices it selects);
//! the store persists jobs and applies each device step in one transaction; `runner` is the
//! one task that executes them.

pub mod model;
mod runner;

use tokio::sync::Notify;

pub use model::{
    Action, Counts, DeviceResult, Job, JobError, JobId, JobKind, JobState, ResultStatus, Selection,
    Sites,
};
pub use runner::run;

/// Shared with the admin API: wakes the runner after a job is created, resumed, paused or
/// stopped, so it need not poll.
#[derive(Debug, Default)]
pub struct JobsHandle {
    wake: Notify,
}

impl JobsHandle {
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}
