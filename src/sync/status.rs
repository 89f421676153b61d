//! What `GET /api/v1/sync` and `edgeprov cloud status` show, and when sync failing becomes an
//! alarm. The sync task updates it; readers take a copy.

use serde::{Deserialize, Serialize};

use crate::store::OutboxDepth;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    pub registered: bool,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub cursor: String,
    /// Unix seconds of the last complete pull / delivery (none yet: absent).
    pub last_pull: Option<i64>,
    pub last_push: Option<i64>,
    /// Seconds the oldest undelivered event has waited (0 when the outbox is empty).
    pub lag_secs: i64,
    pub outbox: OutboxDepth,
    pub last_error: Option<String>,
    /// Since when every attempt has failed (absent when the last one worked).
    pub failing_since: Option<i64>,
}

/// The task's own bookkeeping, kept in memory.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub last_pull: Option<i64>,
    pub last_push: Option<i64>,
    pub last_error: Option<String>,
    pub failing_since: Option<i64>,
    /// The current failure episode has been alarmed already.
    pub alarmed: bool,
}

impl Progress {
    pub fn succeeded(&mut self) {
        self.failing_since = None;
        self.alarmed = false;
    }

    pub fn failed(&mut self, error: String, now: i64) {
        self.last_error = Some(error);
        self.failing_since.get_or_insert(now);
    }

    /// Whether to raise the `sync_failed` alarm now (once per failure episode).
    pub fn should_alarm(&mut self, now: i64, after_secs: u64) -> bool {
        match self.failing_since {
            Some(since) if !self.alarmed && now - since >= after_secs as i64 => {
                self.alarmed = true;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarm_once_per_episode_after_the_delay() {
        let mut p = Progress::default();
        p.failed("down".into(), 100);
        p.failed("down".into(), 150);
        assert!(!p.should_alarm(150, 60));
        assert!(p.should_alarm(160, 60));
        assert!(!p.should_alarm(200, 60));
        p.succeeded();
        p.failed("down".into(), 300);
        assert!(p.should_alarm(400, 60));
    }
}
