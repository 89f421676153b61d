//! Firmware: the catalogue of releases, the policies that pick one per site and model, a
//! content-addressed cache filled from upstream once per image, and range serving to phones.
//!
//! Pure decisions live in `catalogue` (policy resolution) and `range` (what part of a file to
//! send); `cache`, `fetch` and `upstream` do the disk and network I/O; `serve` answers a phone.

mod body;
pub mod cache;
pub mod catalogue;
pub mod cloud;
mod connect;
mod fetch;
mod flight;
mod jobs;
mod masked;
pub mod range;
mod serve;
mod stall;
mod upload;
mod upstream;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

pub use body::{FileBody, PhoneBody, full};
pub use cache::{Cache, CachedImage};
pub use catalogue::{
    Catalogue, IgnoredPolicy, Pin, PinProblem, Policy, PolicyError, Release, ScopePolicies,
    policy_model, scope_policies,
};
pub use fetch::FetchError;
pub use flight::RemoveImageError;
pub use jobs::{Job, JobImage, JobState};
pub use masked::{Authority, authority, masked_url};
pub use serve::{Asked, matches_none, respond};
pub use upload::{UploadError, UploadOutcome};

use crate::model::{AlarmKind, Severity};
use crate::store::{Recorder, Store, StoreError};

/// Ten minutes: longer than any phone waits for an answer.
const MAX_PHONE_WAIT_MS: u64 = 600_000;

/// An hour: a stall longer than that is an outage, not a slow link.
const MAX_STALL_SECS: u64 = 3600;

/// `[firmware]` in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FirmwareConfig {
    /// Where images are cached; empty means `<data_dir>/firmware`.
    pub cache_dir: PathBuf,
    /// Images beyond this total are evicted, least recently used first, except those a policy
    /// points at; only to publish a verified image, so a failed fetch evicts nothing. Downloads
    /// under way are on disk beside it (their `.part` files).
    pub max_cache_bytes: u64,
    /// PEM bundle trusted for `https://` upstream URLs.
    pub upstream_ca_file: PathBuf,
    /// How long a phone asking for an image not yet cached waits for the fetch before it is
    /// answered 503 with `Retry-After` (the fetch goes on). Bounded so that a slow upstream
    /// cannot hold every connection slot of a boot storm while configuration files wait.
    pub phone_wait_ms: u64,
    /// An image transfer that receives less than 64 KiB in this many seconds is stalled: a
    /// download is broken off and resumed (three tries per URL), then the next URL is tried,
    /// then the unreachable alarm is raised; an upload is ended, what arrived kept for a resume.
    /// Bounds how long a trickling upstream or a stopped upload holds the image's one flight.
    pub stall_secs: u64,
    /// Releases from the config; merged with those added through the admin API at start.
    #[serde(rename = "release")]
    pub releases: Vec<Release>,
}

impl Default for FirmwareConfig {
    fn default() -> Self {
        FirmwareConfig {
            cache_dir: PathBuf::new(),
            max_cache_bytes: 20_000_000_000,
            upstream_ca_file: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
            phone_wait_ms: 20_000,
            stall_secs: 30,
            releases: Vec::new(),
        }
    }
}

impl FirmwareConfig {
    /// Checks every release; the error names the key (`firmware.release[2].sha256`).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_cache_bytes == 0 {
            return Err((
                "firmware.max_cache_bytes",
                "must be greater than zero".into(),
            ));
        }
        if !(1..=MAX_PHONE_WAIT_MS).contains(&self.phone_wait_ms) {
            return Err((
                "firmware.phone_wait_ms",
                format!("must be 1 to {MAX_PHONE_WAIT_MS} (milliseconds)"),
            ));
        }
        if !(1..=MAX_STALL_SECS).contains(&self.stall_secs) {
            return Err((
                "firmware.stall_secs",
                format!("must be 1 to {MAX_STALL_SECS} (seconds)"),
            ));
        }
        let mut files = BTreeSet::new();
        for (i, r) in self.releases.iter().enumerate() {
            if let Err((field, msg)) = r.validate() {
                return Err((
                    release_key(field),
                    format!("release {} ({}): {msg}", i + 1, r.file),
                ));
            }
            if !files.insert(r.file.to_ascii_lowercase()) {
                return Err((
                    "firmware.release.file",
                    format!("{:?} appears more than once", r.file),
                ));
            }
        }
        Ok(())
    }

    pub fn cache_dir(&self, data_dir: &std::path::Path) -> PathBuf {
        if self.cache_dir.as_os_str().is_empty() {
            data_dir.join("firmware")
        } else {
            self.cache_dir.clone()
        }
    }
}

fn release_key(field: &str) -> &'static str {
    match field {
        "models" => "firmware.release.models",
        "version" => "firmware.release.version",
        "file" => "firmware.release.file",
        "sha256" => "firmware.release.sha256",
        "urls" => "firmware.release.urls",
        "size" => "firmware.release.size",
        _ => "firmware.release",
    }
}

/// The firmware service shared by phone requests and the admin API.
pub struct Firmware {
    pub cache: Cache,
    store: Store,
    recorder: Recorder,
    upstream_ca_file: PathBuf,
    /// `firmware.phone_wait_ms`.
    pub phone_wait: std::time::Duration,
    /// `firmware.stall_secs`.
    stall: std::time::Duration,
    /// The store's catalogue and policies (local and the cloud's), reloaded after every admin
    /// change and every pull that changed the cloud's; the hot path
    /// reads this snapshot instead of the database.
    catalogue: RwLock<Arc<Catalogue>>,
    /// Held while the snapshot is reloaded and its pins alarmed, so two reloads cannot
    /// install or alarm an older state after a newer one.
    reloading: Mutex<()>,
    flights: Mutex<HashMap<String, flight::Flight>>,
    /// Image → when and why its last fetch failed, which answers
    /// phones instead of a new fetch for a while ([`fetch::FAILED_FOR`]); locked after
    /// `flights` when both are held.
    failed: Mutex<HashMap<String, (std::time::Instant, FetchError)>>,
    jobs: Mutex<BTreeMap<u64, Job>>,
    pub counters: Counters,
}

/// Cache effectiveness, for the metrics: how many image requests the cache answered, how many
/// had to wait for a fetch, and the fetches themselves.
#[derive(Default)]
pub struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub fetches: AtomicU64,
    pub fetch_failures: AtomicU64,
}

impl Firmware {
    /// Opens the cache and loads the catalogue (config releases already merged into the
    /// store by the caller). Blocking.
    pub fn open(
        config: &FirmwareConfig,
        data_dir: &std::path::Path,
        store: Store,
        recorder: Recorder,
    ) -> Result<Arc<Firmware>, FirmwareError> {
        let dir = config.cache_dir(data_dir);
        let cache =
            Cache::open(&dir, config.max_cache_bytes).map_err(|source| FirmwareError::Io {
                path: dir.clone(),
                source,
            })?;
        store.replace_config_releases(&config.releases)?;
        let firmware = Arc::new(Firmware {
            cache,
            store,
            recorder,
            upstream_ca_file: config.upstream_ca_file.clone(),
            phone_wait: std::time::Duration::from_millis(config.phone_wait_ms),
            stall: std::time::Duration::from_secs(config.stall_secs),
            catalogue: RwLock::new(Arc::default()),
            reloading: Mutex::new(()),
            flights: Mutex::new(HashMap::new()),
            failed: Mutex::new(HashMap::new()),
            jobs: Mutex::new(BTreeMap::new()),
            counters: Counters::default(),
        });
        firmware.reload()?;
        let catalogue = firmware.catalogue();
        let wanted = catalogue
            .releases
            .iter()
            .map(|r| r.sha256.as_str())
            .collect();
        // Leftovers only cost disk space: failing to remove them must not keep phones down.
        match firmware.cache.remove_unwanted_parts(&wanted) {
            Ok(removed) => {
                for name in removed {
                    tracing::info!(file = %name, "removed a partial download no release names");
                }
            }
            Err(e) => tracing::warn!(dir = %dir.join("partial").display(), error = %e,
                "cannot remove partial downloads no release names"),
        }
        Ok(firmware)
    }

    pub fn catalogue(&self) -> Arc<Catalogue> {
        self.catalogue
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Re-reads the catalogue and policies (at start and after a change) and brings the
    /// pin alarms and those of ignored policies in line with them. Blocking.
    pub fn reload(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let c = Arc::new(self.store.firmware_catalogue()?);
        *self.catalogue.write().unwrap_or_else(|p| p.into_inner()) = c.clone();
        // The operator changed something (perhaps the URL that failed): phones try again now.
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let pins = c.pin_problems();
        let pins = pins.iter().map(|p| (p.source(), p.severity(), p.message()));
        self.align_alarms(AlarmKind::FirmwarePinOrphaned, pins);
        for i in &c.ignored {
            tracing::warn!(scope = %i.scope, model = ?i.model, reason = %i.reason,
                "stored firmware policy ignored");
        }
        let kind = AlarmKind::FirmwarePolicyIgnored;
        let ignored = c
            .ignored
            .iter()
            .map(|i| (i.source(), kind.severity(), i.message()));
        self.align_alarms(kind, ignored);
        for r in &c.refused {
            tracing::warn!(source = %r.source, message = %r.message, "cloud firmware not served");
        }
        let kind = AlarmKind::FirmwareCloudRefused;
        let refused = c
            .refused
            .iter()
            .map(|r| (r.source.clone(), kind.severity(), r.message.clone()));
        self.align_alarms(kind, refused);
        Ok(())
    }

    /// Reloads the catalogue after every pull that changed the cloud's releases or policies
    /// ([`Store::cloud_catalogue_changes`]), as an operator's change does: phones are served
    /// the new state at their next request, and images whose fetch failed are tried again.
    /// Ends when `stop` turns true. `changes` is taken before the sync task starts, so no
    /// pull is missed.
    pub async fn follow_cloud(
        self: Arc<Self>,
        mut changes: tokio::sync::watch::Receiver<u64>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                changed = changes.changed() => if changed.is_err() { return },
                _ = stop.changed() => return,
            }
            let fw = self.clone();
            match tokio::task::spawn_blocking(move || fw.reload()).await {
                Ok(Ok(())) => tracing::info!("firmware catalogue reloaded after a cloud pull"),
                Ok(Err(e)) => tracing::error!(error = %e,
                    "cannot reload the firmware catalogue after a cloud pull"),
                Err(e) => tracing::error!(error = %e, "firmware catalogue reload task failed"),
            }
        }
    }

    /// Raises an alarm of `kind` for every (source, severity, message) in `current` and
    /// clears those of other sources: a `firmware_pin_orphaned` alarm for every pin only a
    /// kept release serves, or none ([`Catalogue::pin_problems`]), cleared once the pin is
    /// served again, changed or gone; a `firmware_policy_ignored` one for every stored policy
    /// not followed ([`Catalogue::ignored`]), cleared once the scope is set again. Raised at
    /// every check, as the certificate expiry alarm is, so the count and the time of the
    /// latest occurrence show that it still holds. A failure to clear is logged: the
    /// catalogue change it follows is already committed.
    fn align_alarms(
        &self,
        kind: AlarmKind,
        current: impl Iterator<Item = (String, Severity, String)>,
    ) {
        let mut sources = BTreeSet::new();
        for (source, severity, message) in current {
            self.recorder
                .alarm_with_severity(kind, severity, source.clone(), message);
            sources.insert(source);
        }
        // Committed before the stale ones are cleared, or a queued raise could outlive them.
        self.recorder.flush_blocking();
        let cleared = self.store.list_alarms().and_then(|alarms| {
            let stale = alarms
                .into_iter()
                .filter(|a| a.kind == kind && !sources.contains(&a.source));
            let mut cleared = Vec::new();
            for a in stale {
                self.store.clear_alarm(kind, &a.source)?;
                cleared.push(a.source);
            }
            Ok(cleared)
        });
        match cleared {
            Ok(sources) => {
                for source in sources {
                    tracing::info!(kind = kind.as_str(), %source, "firmware alarm cleared");
                }
            }
            Err(e) => tracing::error!(error = %e, "clearing firmware alarms failed"),
        }
    }

    /// Clears the `firmware_upstream_unreachable` alarm of every release naming `sha` once its
    /// image is cached, fetched after all or uploaded by an operator because the upstream could
    /// not be reached: phones are served the image, so nothing is left to do about that
    /// upstream for it, and an alarm still raised would send an operator to fix what no longer
    /// matters. Raises still queued are committed first, or one could outlive the clearing. A
    /// failure to clear is logged: the image is cached all the same.
    pub(super) async fn image_cached(self: &Arc<Self>, sha: &str) {
        self.recorder.flush().await;
        let (this, sha) = (self.clone(), sha.to_string());
        let cleared = tokio::task::spawn_blocking(move || {
            let sources: BTreeSet<String> = this
                .catalogue()
                .releases
                .iter()
                .filter(|r| r.sha256 == sha && !r.urls.is_empty())
                .map(Release::unreachable_alarm_source)
                .collect();
            let mut cleared = Vec::new();
            for source in sources {
                if this
                    .store
                    .clear_alarm(AlarmKind::FirmwareUpstreamUnreachable, &source)?
                    .is_some()
                {
                    cleared.push(source);
                }
            }
            Ok::<_, StoreError>(cleared)
        })
        .await;
        match cleared {
            Ok(Ok(sources)) => {
                for source in sources {
                    tracing::info!(kind = "firmware_upstream_unreachable", %source,
                        "firmware alarm cleared: the image is cached");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "clearing a firmware alarm failed"),
            Err(e) => tracing::error!(error = %e, "clearing a firmware alarm failed"),
        }
    }

    /// Images a policy points at for some site and model in the inventory or catalogue.
    /// Blocking (reads the inventory's models).
    pub fn pinned(&self) -> BTreeSet<String> {
        let models = match self.store.device_site_models() {
            Ok(pairs) => pairs.into_iter().map(|(_, m)| m).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read inventory models; pinning catalogue models only");
                BTreeSet::new()
            }
        };
        self.catalogue().pinned(&models)
    }

    /// The images the inventory's phones would be told to load under current policies.
    /// Blocking.
    pub fn wanted(&self) -> Result<Vec<Release>, StoreError> {
        let catalogue = self.catalogue();
        let mut out: BTreeMap<String, Release> = BTreeMap::new();
        for (site, model) in self.store.device_site_models()? {
            if let Some(r) = catalogue.resolve(Some(&site), &model) {
                out.entry(r.sha256.clone()).or_insert_with(|| r.clone());
            }
        }
        Ok(out.into_values().collect())
    }

    /// Whether a download of this image is under way.
    pub fn fetching(&self, sha: &str) -> bool {
        self.flights
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(sha)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FirmwareError {
    #[error("firmware cache {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}
