//! Cloud enrollment sync, offline-first: phones are always served from the store; this task
//! mirrors what the cloud says about this box's site into the store (pull) and delivers the
//! outbox of events the store accumulated (push). The protocol is in docs/sync-protocol.md.
//!
//! Decisions are pure (page validation in `pull`, backoff in `push`, alarm timing in `status`);
//! this file only sequences them around the network and the store.

pub mod client;
pub mod config;
pub mod page_items;
pub mod protocol;
pub mod pull;
pub mod push;
pub mod register;
pub mod release_item;
pub mod status;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};

pub use config::CloudConfig;
pub use status::SyncStatus;

use crate::model::{AlarmKind, MAX_MESSAGE, clip, now_unix};
use crate::pki::PkiError;
use crate::store::{Recorder, Store, StoreError};
use client::CloudClient;
use status::Progress;

/// Most characters of any one value the cloud sent that a message quotes: messages are stored
/// (alarms, the last error), logged and sent back to the cloud, once per retry.
const QUOTED: usize = 256;

/// Most pages applied in one round before pushing (so a long backlog cannot starve delivery).
const PAGES_PER_ROUND: usize = 100;

/// Most event batches delivered in one round before pulling again: a boot storm's steady
/// check-ins would otherwise keep the outbox from ever emptying and hold back the cloud's
/// activations for as long as the storm lasts.
const BATCHES_PER_ROUND: usize = 100;

/// What a round did. Pulling and pushing succeed or fail each on its own: a page the box
/// rejects must not hold back the events (the outbox would fill and drop check-ins while the
/// events endpoint is healthy), nor a refused event post the cloud's changes.
struct Round {
    /// `Ok(true)`: stopped at `PAGES_PER_ROUND` with more to pull.
    pull: Result<bool, SyncError>,
    /// `Ok(true)`: stopped at `BATCHES_PER_ROUND` with more to push.
    push: Result<bool, SyncError>,
}

/// A round's failures, each named by the half it stopped (none: the round could not start).
type Failures = Vec<(Option<&'static str>, SyncError)>;

impl Round {
    /// `Ok(behind)` when both halves worked, else each half's failure.
    fn outcome(self) -> Result<bool, Failures> {
        match (self.pull, self.push) {
            (Ok(pull), Ok(push)) => Ok(pull || push),
            (pull, push) => Err([("pull", pull), ("push", push)]
                .into_iter()
                .filter_map(|(half, r)| r.err().map(|e| (Some(half), e)))
                .collect()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cloud sync is not configured: set [cloud] ca_file to the cloud's CA certificate")]
    NotConfigured,
    #[error("cloud URL {0}")]
    Url(String),
    #[error("cannot resolve the cloud's host name {0}")]
    Resolve(String),
    #[error("cannot connect to the cloud at {0}")]
    Connect(String),
    #[error("TLS with the cloud: {0}")]
    Tls(String),
    #[error("HTTP with the cloud: {0}")]
    Http(String),
    #[error(
        "the cloud answered HTTP {status}: {detail}{}",
        asked_to_wait(retry_after)
    )]
    Status {
        status: u16,
        detail: String,
        /// How long the cloud asked the box to wait (`Retry-After`), if it did.
        retry_after: Option<Duration>,
    },
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
    /// The pinned CA could not be read: named by its key, since the path alone does not say
    /// what the file is for.
    #[error("the cloud's CA ([cloud] ca_file): {0}")]
    CloudCa(PkiError),
    #[error("internal: {0}")]
    Internal(String),
}

impl SyncError {
    /// Whether the cloud gave no answer at all: nothing reached it, or it did not answer in
    /// time.
    fn unreachable(&self) -> bool {
        matches!(
            self,
            SyncError::Resolve(_)
                | SyncError::Connect(_)
                | SyncError::Tls(_)
                | SyncError::Http(_)
                | SyncError::Timeout(_)
        )
    }

    /// What kind of failure this is, for deciding whether a `sync_failed` alarm already names
    /// it: the step that failed, and for an answer its status (every 5xx alike: a failing
    /// cloud's 502 and 503 are one cause).
    fn cause(&self) -> String {
        match self {
            SyncError::Status { status, .. } if (500..600).contains(status) => "HTTP 5xx".into(),
            SyncError::Status { status, .. } => format!("HTTP {status}"),
            SyncError::NotConfigured => "not configured".into(),
            SyncError::Url(_) => "url".into(),
            SyncError::Resolve(_) => "resolve".into(),
            SyncError::Connect(_) => "connect".into(),
            SyncError::Tls(_) => "tls".into(),
            SyncError::Http(_) => "http".into(),
            SyncError::Timeout(_) => "timeout".into(),
            SyncError::Schema(_) => "schema".into(),
            SyncError::Rejected(_) => "rejected".into(),
            SyncError::CloudCa(_) => "ca_file".into(),
            SyncError::Store(_) | SyncError::Pki(_) | SyncError::Internal(_) => "local".into(),
        }
    }

    /// How long the cloud asked to be left alone (`Retry-After`, as on 429 and 503).
    fn retry_after(&self) -> Option<Duration> {
        match self {
            SyncError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The end of a status error's message when the cloud asked the box to wait.
fn asked_to_wait(retry_after: &Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |d| {
        format!(" (asked to retry after {}s)", d.as_secs())
    })
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
        let (reg, cursor, outbox, rejected) = blocking(move || {
            Ok((
                s.registration()?,
                s.cursor()?,
                s.outbox_depth()?,
                s.dead_letters(0)?.count,
            ))
        })
        .await?;
        let p = self.progress().clone();
        let now = now_unix();
        Ok(SyncStatus {
            configured: !self.config.ca_file.as_os_str().is_empty(),
            registered: reg.is_some(),
            url: reg
                .as_ref()
                .map(|r| crate::firmware::masked_url(&r.url))
                .unwrap_or_default(),
            site: reg.map(|r| r.site).unwrap_or_default(),
            cursor,
            last_pull: p.last_pull,
            last_push: p.last_push,
            lag_secs: outbox.oldest_at.map(|t| (now - t).max(0)).unwrap_or(0),
            outbox,
            rejected,
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
        let outcome = match round(&handle).await {
            Ok(None) => None,
            Ok(Some(round)) => Some(round.outcome()),
            Err(e) => Some(Err(vec![(None, e)])),
        };
        let delay = match outcome {
            None => None,
            Some(Ok(behind)) => {
                failures = 0;
                handle.progress().succeeded();
                Some(if behind {
                    Duration::ZERO
                } else {
                    Duration::from_millis(cfg.pull_interval_ms)
                })
            }
            Some(Err(errors)) => {
                failures = failures.saturating_add(1);
                failed(&handle, &recorder, &errors, failures);
                let jitter = f64::from(u32::from_ne_bytes(crate::pki::random_bytes::<4>()))
                    / f64::from(u32::MAX);
                let backoff = push::backoff(
                    failures,
                    Duration::from_millis(cfg.retry_min_ms),
                    Duration::from_millis(cfg.retry_max_ms),
                    jitter,
                );
                let asked = errors.iter().filter_map(|(_, e)| e.retry_after()).max();
                Some(push::honour_retry_after(backoff, asked, jitter))
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

/// Records a failed round: the error (each half's, named) as the last error, a
/// `sync_rejected` alarm for a rejected page, and `sync_failed` once failing has lasted.
fn failed(handle: &SyncHandle, recorder: &Recorder, errors: &Failures, failures: u32) {
    let now = now_unix();
    let message = errors
        .iter()
        .map(|(half, e)| match half {
            Some(half) => format!("{half}: {e}"),
            None => e.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let message = clip(&message, MAX_MESSAGE);
    tracing::warn!(error = %message, failures, "cloud sync failed");
    for (_, e) in errors {
        if let SyncError::Rejected(why) = e {
            recorder.alarm(AlarmKind::SyncRejected, "sync", why.clone());
        }
    }
    let mut p = handle.progress();
    let mono = Instant::now();
    p.failed(message.clone(), now, mono);
    let cause = errors
        .iter()
        .map(|(half, e)| format!("{}:{}", half.unwrap_or("start"), e.cause()))
        .collect::<Vec<_>>()
        .join(",");
    if p.should_alarm(
        mono,
        Duration::from_secs(handle.config.alarm_after_secs),
        &cause,
    ) {
        recorder.alarm(
            AlarmKind::SyncFailed,
            "sync",
            format!(
                "cloud sync failing since {}: {message}",
                p.failing_since.unwrap_or(now)
            ),
        );
    }
}

/// One round: pull up to `PAGES_PER_ROUND` pages, then push up to `BATCHES_PER_ROUND` batches,
/// whatever became of the pull but an unreachable cloud. `None`: not registered, or registered
/// again during the round, nothing to do until `wake` (which registering calls). An error:
/// the round could not start (no configuration, identity or client), so neither half ran.
async fn round(handle: &SyncHandle) -> Result<Option<Round>, SyncError> {
    let s = handle.store.clone();
    let Some(reg) = blocking(move || s.registration()).await? else {
        return Ok(None);
    };
    let cfg = &handle.config;
    if cfg.ca_file.as_os_str().is_empty() {
        return Err(SyncError::NotConfigured);
    }
    let identity = crate::pki::cloud::appliance_identity(&handle.pki_dir)?;
    let tls = crate::pki::cloud::cloud_client_config(&cfg.ca_file, Some(identity))
        .map_err(SyncError::CloudCa)?;
    let client = CloudClient::new(&reg.url, tls, Duration::from_millis(cfg.request_timeout_ms))?;
    let pull = pull_pages(handle, &client, reg.generation).await;
    if let Err(SyncError::Store(StoreError::Superseded(why))) = &pull {
        // Registering again woke the task: the next round starts over with the new cloud.
        // Nothing failed, and the events are the new cloud's to receive.
        tracing::info!(%why, "registered again while pulling");
        return Ok(None);
    }
    // A cloud that could not be reached would fail the push the same way, after another
    // timeout, and the failure would be known that much later; one that asked to be left
    // alone for a while (`Retry-After`) is left alone; one that otherwise answered (a page
    // rejected, an error status) may well take events.
    let push = match &pull {
        Err(e) if e.unreachable() || e.retry_after().is_some() => Ok(false),
        _ => push_batches(handle, &client).await,
    };
    Ok(Some(Round { pull, push }))
}

/// Pulls up to `PAGES_PER_ROUND` pages under registration `generation`; `true` when the cloud
/// has more ready. A page leading back to a cursor pulled from in this round ends it as
/// rejected (see `pull::check_cycle`).
async fn pull_pages(
    handle: &SyncHandle,
    client: &CloudClient,
    generation: u64,
) -> Result<bool, SyncError> {
    let mut pulled = HashSet::new();
    for _ in 0..PAGES_PER_ROUND {
        let limit = handle.config.page_limit;
        let more = pull::pull_page(client, &handle.store, limit, generation, &mut pulled).await?;
        handle.progress().last_pull = Some(now_unix());
        if !more {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Delivers up to `BATCHES_PER_ROUND` batches; `true` when events may be left.
async fn push_batches(handle: &SyncHandle, client: &CloudClient) -> Result<bool, SyncError> {
    for _ in 0..BATCHES_PER_ROUND {
        if push::push_batch(client, &handle.store, handle.config.push_batch).await? == 0 {
            return Ok(false);
        }
        handle.progress().last_push = Some(now_unix());
    }
    Ok(true)
}
