//! What `GET /api/v1/sync` and `edgeprov cloud status` show, and when sync failing becomes an
//! alarm. The sync task updates it; readers take a copy.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::store::OutboxDepth;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncStatus {
    /// Whether `[cloud] ca_file` is set: without it the box cannot register, and a box that
    /// is not registered would otherwise look like one waiting for `cloud register`. Absent
    /// in an older daemon's answer, which is read as configured (what it showed before).
    #[serde(default = "configured_unless_told")]
    pub configured: bool,
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
    /// Events the cloud refused for good, kept apart from the outbox (`GET /sync/rejected`).
    #[serde(default)]
    pub rejected: u64,
    pub last_error: Option<String>,
    /// Since when every attempt has failed (absent when the last one worked).
    pub failing_since: Option<i64>,
}

fn configured_unless_told() -> bool {
    true
}

/// The task's own bookkeeping, kept in memory.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub last_pull: Option<i64>,
    pub last_push: Option<i64>,
    pub last_error: Option<String>,
    /// Unix seconds, for people: shown in the status and the alarm's message.
    pub failing_since: Option<i64>,
    /// The same moment on the monotonic clock, for the decision to alarm: a wall-clock step
    /// (NTP correcting a box that booted without a clock, an administrator's `date`) must
    /// neither raise `sync_failed` at the first failure nor hold it back for hours.
    failing_since_mono: Option<Instant>,
    /// The cause the current failure episode was last alarmed for (see `SyncError::cause`).
    alarmed: Option<String>,
}

impl Progress {
    pub fn succeeded(&mut self) {
        self.failing_since = None;
        self.failing_since_mono = None;
        self.alarmed = None;
    }

    /// Records a failure at `now` (Unix seconds, shown) and `mono` (when it happened on the
    /// monotonic clock, which decides).
    pub fn failed(&mut self, error: String, now: i64, mono: Instant) {
        self.last_error = Some(error);
        self.failing_since.get_or_insert(now);
        self.failing_since_mono.get_or_insert(mono);
    }

    /// Whether to raise the `sync_failed` alarm at `mono`: failing has lasted `after` by the
    /// monotonic clock, and the episode has not been alarmed for this `cause` yet. Once per
    /// cause, not once per episode: an outage of days changes cause (the DNS server fixed, the
    /// cloud's certificate then refused), and an alarm still naming the cause already fixed
    /// would send the operator after the wrong thing.
    pub fn should_alarm(&mut self, mono: Instant, after: Duration, cause: &str) -> bool {
        match self.failing_since_mono {
            Some(since)
                if self.alarmed.as_deref() != Some(cause)
                    && mono.saturating_duration_since(since) >= after =>
            {
                self.alarmed = Some(cause.to_string());
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn alarm_once_per_episode_after_the_delay() {
        let t = Instant::now();
        let mut p = Progress::default();
        p.failed("down".into(), 100, t);
        p.failed("down".into(), 150, t + secs(50));
        assert!(!p.should_alarm(t + secs(50), secs(60), "connect"));
        assert!(p.should_alarm(t + secs(60), secs(60), "connect"));
        assert!(!p.should_alarm(t + secs(100), secs(60), "connect"));
        assert_eq!(p.failing_since, Some(100));
        p.succeeded();
        p.failed("down".into(), 300, t + secs(200));
        assert!(p.should_alarm(t + secs(300), secs(60), "connect"));
    }

    /// Within one episode, a new cause is alarmed again (once), so that the alarm names what
    /// fails now; going back to the first cause is alarmed again too.
    #[test]
    fn a_new_cause_in_the_same_episode_is_alarmed_again() {
        let t = Instant::now();
        let mut p = Progress::default();
        p.failed("dns".into(), 100, t);
        assert!(p.should_alarm(t + secs(60), secs(60), "resolve"));
        assert!(!p.should_alarm(t + secs(70), secs(60), "resolve"));
        assert!(p.should_alarm(t + secs(80), secs(60), "tls"));
        assert!(!p.should_alarm(t + secs(90), secs(60), "tls"));
        assert!(p.should_alarm(t + secs(95), secs(60), "resolve"));
        assert_eq!(p.failing_since, Some(100), "still one episode");
    }

    /// The wall clock stepping while sync fails changes what the status shows, never when
    /// the alarm comes: a step back does not hold it back, a step forward does not bring it
    /// on at the next failure.
    #[test]
    fn a_wall_clock_step_neither_raises_nor_suppresses_the_alarm() {
        let t = Instant::now();
        let after = secs(900);
        let mut back = Progress::default();
        back.failed("down".into(), 1_790_000_000, t);
        back.failed("down".into(), 1_790_000_000 - 86_400, t + secs(900));
        assert!(
            back.should_alarm(t + secs(900), after, "connect"),
            "held back"
        );

        let mut forward = Progress::default();
        forward.failed("down".into(), 1_000_000, t);
        forward.failed("down".into(), 1_790_000_000, t + secs(5));
        assert!(
            !forward.should_alarm(t + secs(5), after, "connect"),
            "raised early"
        );
        assert_eq!(forward.failing_since, Some(1_000_000));
    }
}
