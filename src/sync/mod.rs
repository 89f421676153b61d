//! Cloud enrollment sync, offline-first: phones are always served from the store; this task
//! mirrors what the cloud says about this box's site into the store (pull) and delivers the
//! outbox of events the store accumulated (push). The protocol is in docs/sync-protocol.md.
//!
//! Decisions are pure (page validation in `pull`, backoff in `push`, alarm timing in `status`);
//! this file only sequences them around the network and the store.

pub mod client;
pub mod config;
pub mod protocol;
pub mod pull;
pub mod push;
pub mod register;
pub mod status;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};

pub use config::CloudConfig;
pub use status::SyncStatus;

use crate::model::{AlarmKind, now_unix};
use crate::pki::PkiError;
use crate::store::{Recorder, Store, StoreError};
use client::CloudClient;
use status::Progress;

/// Most pages applied in one round before pushing (so a long backlog cannot starve delivery).
const PAGES_PER_ROUND: usize = 100;

/// Most event batches delivered in one round before pulling again: a boot storm's steady
/// check-ins would otherwise keep the outbox from ever emptying and hold back the cloud's
/// activations for as long as the storm lasts.
const BATCHES_PER_ROUND: usize = 100;

/// How a round ended.
enum Round {
    /// Not registered: nothing to do until `wake`.
    Unregistered,
    /// Everything pulled and pushed: the next round after `pull_interval_ms`.
    CaughtUp,
    /// A round's limit was reached with more to pull or push: the next round at once.
    Behind,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cloud sync is not configured: set [cloud] ca_file to the cloud's CA certificate")]
    NotConfigured,
    #[error("cloud URL {0}")]
    Url(String),
    #[error("cannot connect to the cloud at {0}")]
    Connect(String),
    #[error("TLS with the cloud: {0}")]
    Tls(String),
    #[error("HTTP with the cloud: {0}")]
    Http(String),
    #[error("the cloud answered HTTP {status}: {detail}")]
    Status { status: u16, detail: String },
    #[error("the cloud did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the cloud's answer is not valid: {0}")]
    Schema(String),
    #[error("pulled page rejected: {0}")]
    Rejected(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("internal: {0}")]
    Internal(String),
}

/// Shared between the sync task and the admin API.
pub struct SyncHandle {
    pub store: Store,
    pub pki_dir: PathBuf,
    pub config: CloudConfig,
    progress: Mutex<Progress>,
    /// Wakes the task early: after registration, or when asked to sync now.
    wake: Notify,
}

impl SyncHandle {
    pub fn new(store: Store, pki_dir: PathBuf, config: CloudConfig) -> Arc<SyncHandle> {
        store.set_outbox_max(config.outbox_max);
        Arc::new(SyncHandle {
            store,
            pki_dir,
            config,
            progress: Mutex::new(Progress::default()),
            wake: Notify::new(),
        })
    }

    pub fn wake(&self) {
        self.wake.notify_one();
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers with the cloud and starts syncing.
    pub async fn register(&self, url: &str, token: &str) -> Result<SyncStatus, SyncError> {
        register::register(&self.store, &self.pki_dir, &self.config, url, token).await?;
        *self.progress() = Progress::default();
        self.wake();
        self.status().await
    }

    pub async fn status(&self) -> Result<SyncStatus, SyncError> {
        let s = self.store.clone();
        let (reg, cursor, outbox) =
            blocking(move || Ok((s.registration()?, s.cursor()?, s.outbox_depth()?))).await?;
        let p = self.progress().clone();
        let now = now_unix();
        Ok(SyncStatus {
            registered: reg.is_some(),
            url: reg.as_ref().map(|r| r.url.clone()).unwrap_or_default(),
            site: reg.map(|r| r.site).unwrap_or_default(),
            cursor,
            last_pull: p.last_pull,
            last_push: p.last_push,
            lag_secs: outbox.oldest_at.map(|t| (now - t).max(0)).unwrap_or(0),
            outbox,
            last_error: p.last_error,
            failing_since: p.failing_since,
        })
    }
}

/// Runs store calls on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, SyncError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SyncError::Internal(e.to_string()))?
        .map_err(SyncError::from)
}

/// The sync task: idle until registered, then pull and push every `pull_interval_ms`, backing
/// off after failures. Ends when `stop` turns true.
pub async fn run(handle: Arc<SyncHandle>, recorder: Recorder, mut stop: watch::Receiver<bool>) {
    let cfg = handle.config.clone();
    let mut failures = 0u32;
    loop {
        let delay = match round(&handle).await {
            Ok(Round::Unregistered) => None,
            Ok(done) => {
                failures = 0;
                handle.progress().succeeded();
                Some(match done {
                    Round::Behind => Duration::ZERO,
                    _ => Duration::from_millis(cfg.pull_interval_ms),
                })
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let now = now_unix();
                let message = e.to_string();
                tracing::warn!(error = %message, failures, "cloud sync failed");
                if let SyncError::Rejected(why) = &e {
                    recorder.alarm(AlarmKind::SyncRejected, "sync", why.clone());
                }
                let mut p = handle.progress();
                p.failed(message.clone(), now);
                if p.should_alarm(now, cfg.alarm_after_secs) {
                    recorder.alarm(
                        AlarmKind::SyncFailed,
                        "sync",
                        format!(
                            "cloud sync failing since {}: {message}",
                            p.failing_since.unwrap_or(now)
                        ),
                    );
                }
                let jitter = f64::from(u32::from_ne_bytes(crate::pki::random_bytes::<4>()))
                    / f64::from(u32::MAX);
                Some(push::backoff(
                    failures,
                    Duration::from_millis(cfg.retry_min_ms),
                    Duration::from_millis(cfg.retry_max_ms),
                    jitter,
                ))
            }
        };
        let sleep = async {
            match delay {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = handle.wake.notified() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// One round: pull up to `PAGES_PER_ROUND` pages, then push up to `BATCHES_PER_ROUND` batches.
async fn round(handle: &SyncHandle) -> Result<Round, SyncError> {
    let s = handle.store.clone();
    let Some(reg) = blocking(move || s.registration()).await? else {
        return Ok(Round::Unregistered);
    };
    let cfg = &handle.config;
    if cfg.ca_file.as_os_str().is_empty() {
        return Err(SyncError::NotConfigured);
    }
    let identity = crate::pki::cloud::appliance_identity(&handle.pki_dir)?;
    let tls = crate::pki::cloud::cloud_client_config(&cfg.ca_file, Some(identity))?;
    let client = CloudClient::new(&reg.url, tls, Duration::from_millis(cfg.request_timeout_ms))?;
    let mut behind = true;
    for _ in 0..PAGES_PER_ROUND {
        let more = pull::pull_page(&client, &handle.store, cfg.page_limit).await?;
        handle.progress().last_pull = Some(now_unix());
        if !more {
            behind = false;
            break;
        }
    }
    let mut pushing = true;
    for _ in 0..BATCHES_PER_ROUND {
        if push::push_batch(&client, &handle.store, cfg.push_batch).await? == 0 {
            pushing = false;
            break;
        }
        handle.progress().last_push = Some(now_unix());
    }
    Ok(if behind || pushing {
        Round::Behind
    } else {
        Round::CaughtUp
    })
}
