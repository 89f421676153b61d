//! Failed-authentication limiter: after `limit` wrong or missing tokens from one address within a
//! minute, that address is answered 429 until the minute is over, without its tokens being
//! checked, so guessing a token from one place costs time, and an address costs the audit log at
//! most `limit` refusals and one 429 a minute. Pure: the caller passes the clock.
//!
//! An IPv6 "address" here is its /64: a single host is commonly given a whole /64 and may
//! pick any address in it, so counting per address would let it guess without limit (and fill
//! the table, past which new addresses are not counted at all). An IPv4-mapped IPv6 address
//! counts as its IPv4 address. The keying is [`crate::per_source::source`], shared with the
//! other per-source limits.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::per_source::source;

/// Addresses remembered at most; past this, windows that are over are forgotten first.
const MAX_TRACKED: usize = 10_000;
const WINDOW_SECS: i64 = 60;

pub struct FailureLimiter {
    limit: u32,
    windows: Mutex<HashMap<IpAddr, Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    start: i64,
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
    pub fn blocked(&self, ip: IpAddr, now: i64) -> Option<Blocked> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.get_mut(&source(ip))?;
        let left = w.start + WINDOW_SECS - now;
        if left <= 0 || w.failures < self.limit {
            return None;
        }
        let first = !w.told;
        w.told = true;
        Some(Blocked { wait: left, first })
    }

    /// Counts a wrong token from `ip`.
    pub fn fail(&self, ip: IpAddr, now: i64) {
        let ip = source(ip);
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_TRACKED && !windows.contains_key(&ip) {
            windows.retain(|_, w| w.start + WINDOW_SECS > now);
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
        if w.start + WINDOW_SECS <= now {
            *w = fresh;
        }
        w.failures = w.failures.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let l = FailureLimiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..2 {
            l.fail(a, 100);
        }
        assert_eq!(l.blocked(a, 100), None);
        l.fail(a, 110);
        let wait = |b: Option<Blocked>| b.map(|b| b.wait);
        assert_eq!(
            l.blocked(a, 110),
            Some(Blocked {
                wait: 50,
                first: true
            })
        );
        assert_eq!(
            l.blocked(a, 111),
            Some(Blocked {
                wait: 49,
                first: false
            })
        );
        assert_eq!(
            wait(l.blocked(b, 110)),
            None,
            "other addresses are not affected"
        );
        assert_eq!(wait(l.blocked(a, 160)), None, "a new minute starts afresh");
        l.fail(a, 160);
        assert_eq!(l.blocked(a, 161), None);
    }

    /// A host that may pick any address of its /64 is one source: its guesses from many
    /// addresses add up. Another /64 is another source; an IPv4-mapped address is its IPv4 one.
    #[test]
    fn an_ipv6_64_is_one_source() {
        let l = FailureLimiter::new(3);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
            l.fail(ip(host), 100);
        }
        assert!(l.blocked(ip("2001:db8:1:2:abcd::9"), 100).is_some());
        assert_eq!(l.blocked(ip("2001:db8:1:3::1"), 100), None);

        for _ in 0..3 {
            l.fail(ip("::ffff:10.0.0.7"), 100);
        }
        assert!(l.blocked(ip("10.0.0.7"), 100).is_some());
        assert_eq!(l.blocked(ip("10.0.0.8"), 100), None);
    }
}
