//! Response-rate limiting per client network, so the responder cannot be used to reflect and
//! amplify traffic at a spoofed victim. A token bucket per /24 (IPv4) or /56 (IPv6), refilled at
//! `rate` per second with one second of burst. Over the limit, every second query gets a tiny
//! truncated reply ("slip"), the rest nothing: a real client behind a busy NAT still gets through
//! over TCP, a victim gets at most what the attacker sent. Time is passed in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Buckets kept at most; past this, full (idle) buckets are dropped first.
const MAX_BUCKETS: usize = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Answer,
    Slip,
    Drop,
}

struct Bucket {
    tokens: f64,
    last: Instant,
    limited: u32,
}

pub struct RateLimiter {
    rate: f64,
    buckets: HashMap<[u8; 16], Bucket>,
}

fn prefix(ip: IpAddr) -> [u8; 16] {
    let mut key = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => key[..3].copy_from_slice(&v4.octets()[..3]),
        IpAddr::V6(v6) => {
            key[..7].copy_from_slice(&v6.octets()[..7]);
            key[15] = 6;
        }
    }
    key
}

impl RateLimiter {
    /// `rate` responses per second per client network; 0 disables limiting.
    pub fn new(rate: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            buckets: HashMap::new(),
        }
    }

    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.rate == 0.0 {
            return Verdict::Answer;
        }
        if self.buckets.len() >= MAX_BUCKETS {
            let rate = self.rate;
            self.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < rate
            });
            if self.buckets.len() >= MAX_BUCKETS {
                self.buckets.clear();
            }
        }
        let bucket = self.buckets.entry(prefix(ip)).or_insert(Bucket {
            tokens: self.rate,
            last: now,
            limited: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.rate);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Answer;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        if bucket.limited % 2 == 1 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limits_per_network_and_refills() {
        let mut rl = RateLimiter::new(10);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let same_net: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(rl.check(a, t0), Verdict::Answer);
        }
        assert_eq!(rl.check(same_net, t0), Verdict::Slip);
        assert_eq!(rl.check(a, t0), Verdict::Drop);
        assert_eq!(rl.check(other, t0), Verdict::Answer);
        assert_eq!(
            rl.check(a, t0 + Duration::from_millis(200)),
            Verdict::Answer
        );
    }

    #[test]
    fn zero_is_off() {
        let mut rl = RateLimiter::new(0);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(rl.check("::1".parse().unwrap(), t0), Verdict::Answer);
        }
    }
}
