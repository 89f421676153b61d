//! Failed-attempt limiter per source: after `limit` failures from one address within a minute
//! (wrong or missing admin tokens, refused SCEP enrolments), that address is answered 429 until
//! the minute is over without its attempts being checked, so guessing a secret from one place
//! costs time, and an address costs the audit log or the alarms at most `limit` refusals and
//! one 429 a minute. Pure: the caller passes the clock.
//!
//! The clock is a monotonic one ([`Instant`]), not the box's wall clock: a wall clock stepped
//! back by hours (an NTP correction after a boot without a battery-backed clock) would hold an
//! address off for those hours, and one stepped forward would end every hold at once. What a
//! human reads is the wait in seconds (`Retry-After`), which needs no wall clock.
//!
//! An IPv6 "address" here is its /64: a single host is commonly given a whole /64 and may
//! pick any address in it, so counting per address would let it guess without limit (and fill
//! the table, past which new addresses are not counted at all). An IPv4-mapped IPv6 address
//! counts as its IPv4 address. The keying is [`crate::per_source::source`], shared with the
//! other per-source limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::per_source::source;

/// Addresses remembered at most; past this, windows that are over are forgotten first.
const MAX_TRACKED: usize = 10_000;
const WINDOW: Duration = Duration::from_secs(60);

pub struct FailureLimiter {
    limit: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    failures: u32,
    /// Whether a 429 was already answered in this window.
    told: bool,
}

/// An address held off: for how long, and whether this is the first answer of its window that
/// says so (the one worth an audit entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    pub wait: i64,
    pub first: bool,
}

impl FailureLimiter {
    pub fn new(limit_per_minute: u32) -> Self {
        FailureLimiter {
            limit: limit_per_minute.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` is held off, or `None` if it may try now.
    pub fn blocked(&self, ip: IpAddr, now: Instant) -> Option<Blocked> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.get_mut(&source(ip))?;
        let left = WINDOW.saturating_sub(now.saturating_duration_since(w.start));
        if left.is_zero() || w.failures < self.limit {
            return None;
        }
        let first = !w.told;
        w.told = true;
        // Whole seconds, rounded up: `Retry-After: 0` would invite an immediate retry.
        let wait = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        Some(Blocked {
            wait: i64::try_from(wait).unwrap_or(i64::MAX),
            first,
        })
    }

    /// Counts a failed attempt (a wrong token, a refused enrolment) from `ip`.
    pub fn fail(&self, ip: IpAddr, now: Instant) {
        let ip = source(ip);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&ip) {
            windows.retain(|_, w| !over(w, now));
            if windows.len() >= MAX_TRACKED {
                return;
            }
        }
        let fresh = Window {
            start: now,
            failures: 0,
            told: false,
        };
        let w = windows.entry(ip).or_insert(fresh);
        if over(w, now) {
            *w = fresh;
        }
        w.failures = w.failures.saturating_add(1);
    }
}

/// Whether the minute of `w` has passed at `now`.
fn over(w: &Window, now: Instant) -> bool {
    now.saturating_duration_since(w.start) >= WINDOW
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `secs` seconds after a fixed point of the monotonic clock.
    fn at(secs: u64) -> Instant {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *BASE.get_or_init(Instant::now) + Duration::from_secs(secs)
    }

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let l = FailureLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..2 {
            l.fail(a, at(100));
        }
        assert_eq!(l.blocked(a, at(100)), None);
        l.fail(a, at(110));
        let wait = |b: Option<Blocked>| b.map(|b| b.wait);
        assert_eq!(
            l.blocked(a, at(110)),
            Some(Blocked {
                wait: 50,
                first: true
            })
        );
        assert_eq!(
            l.blocked(a, at(111)),
            Some(Blocked {
                wait: 49,
                first: false
            })
        );
        assert_eq!(
            wait(l.blocked(b, at(110))),
            None,
            "other addresses are not affected"
        );
        assert_eq!(
            wait(l.blocked(a, at(160))),
            None,
            "a new minute starts afresh"
        );
        l.fail(a, at(160));
        assert_eq!(l.blocked(a, at(161)), None);
    }

    /// A host that may pick any address of its /64 is one source: its guesses from many
    /// addresses add up. Another /64 is another source; an IPv4-mapped address is its IPv4 one.
    #[test]
    fn an_ipv6_64_is_one_source() {
        let l = FailureLimiter::new(3);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
            l.fail(ip(host), at(100));
        }
        assert!(l.blocked(ip("2001:db8:1:2:abcd::9"), at(100)).is_some());
        assert_eq!(l.blocked(ip("2001:db8:1:3::1"), at(100)), None);

        for _ in 0..3 {
            l.fail(ip("::ffff:10.0.0.7"), at(100));
        }
        assert!(l.blocked(ip("10.0.0.7"), at(100)).is_some());
        assert_eq!(l.blocked(ip("10.0.0.8"), at(100)), None);
    }

    /// A hold is a minute of the monotonic clock, never more, whatever the wall clock does: a
    /// reading from before the window began (as a wall clock stepped back by an hour gave, and as
    /// a request that read the clock just before another one failed still gives) holds off for
    /// no more than the window.
    #[test]
    fn a_hold_is_never_longer_than_the_window() {
        let l = FailureLimiter::new(1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        l.fail(a, at(3_700));
        let held = l.blocked(a, at(100)).map(|b| b.wait);
        assert_eq!(held, Some(60), "held for the window, not 3,660 s");
        assert_eq!(
            l.blocked(a, at(3_760)),
            None,
            "and over a minute after it began"
        );
    }
}
