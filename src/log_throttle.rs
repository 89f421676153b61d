//! At most one log line per interval about something the network makes happen at will (a
//! refused connection, a refused request): a host that floods them must not flood the journal
//! too, where journald's rate limit would then drop the box's other lines. What is not logged
//! is counted and reported in the next line; metrics and the alarm table count every one.

use std::time::{Duration, Instant};

/// The least time between two log lines about one kind of occurrence.
pub const EVERY: Duration = Duration::from_secs(10);

/// Occurrences not yet logged, and when the last line was written.
#[derive(Default)]
pub struct LogThrottle {
    last: Option<Instant>,
    unlogged: u64,
}

impl LogThrottle {
    /// Counts one occurrence at `now`; when a line is due (the first occurrence, then at most
    /// one per [`EVERY`]) answers how many occurrences it reports: this one and those not
    /// logged since the last line.
    pub fn occurred(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_at_most_once_per_interval_with_the_count() {
        let mut log = LogThrottle::default();
        let t0 = Instant::now();
        assert_eq!(log.occurred(t0), Some(1), "the first one at once");
        for ms in [1, 500, 9_999] {
            assert_eq!(log.occurred(t0 + Duration::from_millis(ms)), None);
        }
        assert_eq!(log.occurred(t0 + EVERY), Some(4));
        assert_eq!(log.occurred(t0 + EVERY), None);
    }
}
