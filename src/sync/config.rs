//! The `[cloud]` table. Sync runs once the box is registered (`edgeprov cloud register`); until
//! then, and whenever the cloud is unreachable, phones are served from the store as always.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudConfig {
    /// The cloud's CA certificate (PEM), pinned: the only root trusted for the cloud's server
    /// certificate. Empty: this box cannot register (sync off).
    pub ca_file: PathBuf,
    /// Time between pulls when nothing failed.
    pub pull_interval_ms: u64,
    /// One HTTPS request (connect, TLS, answer) must finish within this time.
    pub request_timeout_ms: u64,
    /// First retry delay after a failure; doubled per failure, with jitter.
    pub retry_min_ms: u64,
    /// Cap of the retry delay; a longer `Retry-After` from the cloud is still waited for (up
    /// to an hour, see `push::honour_retry_after`).
    pub retry_max_ms: u64,
    /// Events kept for the cloud at most (check-ins are coalesced per device; beyond this,
    /// new check-ins are dropped and an `outbox_overflow` alarm says so; alarms are kept up to
    /// twice this).
    pub outbox_max: u64,
    /// Events per push request.
    pub push_batch: usize,
    /// Changes per pulled page (asked of the cloud; it may send fewer).
    pub page_limit: usize,
    /// Raise a `sync_failed` alarm when sync has failed for longer than this; 0 raises it at the
    /// first failed round.
    pub alarm_after_secs: u64,
}

impl Default for CloudConfig {
    fn default() -> Self {
        CloudConfig {
            ca_file: PathBuf::new(),
            pull_interval_ms: 30_000,
            request_timeout_ms: 30_000,
            retry_min_ms: 1_000,
            retry_max_ms: 300_000,
            outbox_max: 10_000,
            push_batch: 500,
            page_limit: 500,
            alarm_after_secs: 900,
        }
    }
}

impl CloudConfig {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = [
            ("cloud.pull_interval_ms", self.pull_interval_ms),
            ("cloud.request_timeout_ms", self.request_timeout_ms),
            ("cloud.retry_min_ms", self.retry_min_ms),
            ("cloud.outbox_max", self.outbox_max),
            ("cloud.push_batch", self.push_batch as u64),
            ("cloud.page_limit", self.page_limit as u64),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err((key, "must be greater than zero".into()));
            }
        }
        if self.retry_max_ms < self.retry_min_ms {
            return Err((
                "cloud.retry_max_ms",
                "must not be less than retry_min_ms".into(),
            ));
        }
        Ok(())
    }
}
