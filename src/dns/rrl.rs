//! Response-rate limiting per client, so the responder cannot be used to reflect and amplify
//! traffic at a spoofed victim. A token bucket per client, refilled at `rate` per second with one
//! second of burst. Over the limit, every second query gets a tiny truncated reply ("slip"), the
//! rest nothing: a real client behind a busy NAT still gets through over TCP, a victim gets at
//! most what the attacker sent. Time is passed in.
//!
//! Who is one client: a source inside `allow_from` (the phones this box serves) is one address
//! (an IPv6 /64); any other source is its whole /24 (IPv4) or /56 (IPv6). A voice VLAN is usually
//! one /24, so counting it as one client let a boot storm of a few hundred phones exceed the
//! limit and go unanswered; counted per phone, each needs a handful of queries per boot, far
//! below it. Sources outside `allow_from` only ever get REFUSED, so there the aggregate stays:
//! an attacker spoofing many addresses of one victim network is still held to one bucket.
//! Allowed sources are limited rather than exempt, so one looping phone cannot take the loop.
//!
//! Over TCP ([`RateLimiter::pace`]) the same buckets hold back queries instead: the source is
//! proven by the handshake and an answer amplifies nothing, so a client over the limit is made
//! to wait for its answers rather than losing them.
//!
//! One budget per client over both transports and every listening socket ([`SharedLimiter`]):
//! with a bucket per UDP socket and another for TCP, a client got `rate` answers a second over
//! each, twice (or more) what `dns.rate_limit` says.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// The bucket a source counts against; `own`: the source is inside `allow_from`. The last byte
/// keeps the four kinds of key apart.
fn client(ip: IpAddr, own: bool) -> [u8; 16] {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let mut key = [0u8; 16];
    match (ip, own) {
        (IpAddr::V4(v4), false) => key[..3].copy_from_slice(&v4.octets()[..3]),
        (IpAddr::V4(v4), true) => {
            key[..4].copy_from_slice(&v4.octets());
            key[15] = 4;
        }
        (IpAddr::V6(v6), false) => {
            key[..7].copy_from_slice(&v6.octets()[..7]);
            key[15] = 6;
        }
        (IpAddr::V6(v6), true) => {
            key[..8].copy_from_slice(&v6.octets()[..8]);
            key[15] = 64;
        }
    }
    key
}

impl RateLimiter {
    /// `rate` responses per second per client; 0 disables limiting.
    pub fn new(rate: u32) -> RateLimiter {
        RateLimiter {
            rate: f64::from(rate),
            buckets: HashMap::new(),
        }
    }

    /// The verdict for one query from `ip`; `allowed`: the source is inside `allow_from`.
    pub fn check(&mut self, ip: IpAddr, allowed: bool, now: Instant) -> Verdict {
        if self.rate == 0.0 {
            return Verdict::Answer;
        }
        let bucket = self.refilled(ip, allowed, now);
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

    /// How long a query from `ip` must wait before it is answered: zero within the limit.
    /// The query takes its token at once, on credit when there is none, so queries waiting on
    /// several connections of one client are answered `rate` per second between them, in the
    /// order they came. The credit is bounded by the queries a client can have waiting: one
    /// per connection.
    pub fn pace(&mut self, ip: IpAddr, allowed: bool, now: Instant) -> Duration {
        if self.rate == 0.0 {
            return Duration::ZERO;
        }
        let rate = self.rate;
        let bucket = self.refilled(ip, allowed, now);
        bucket.tokens -= 1.0;
        if bucket.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-bucket.tokens / rate)
        }
    }

    /// The bucket of `ip` topped up for the time since its last use, dropping idle buckets
    /// first when there are too many.
    fn refilled(&mut self, ip: IpAddr, allowed: bool, now: Instant) -> &mut Bucket {
        if self.buckets.len() >= MAX_BUCKETS {
            let rate = self.rate;
            self.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.last).as_secs_f64() * rate < rate
            });
            if self.buckets.len() >= MAX_BUCKETS {
                self.buckets.clear();
            }
        }
        let bucket = self.buckets.entry(client(ip, allowed)).or_insert(Bucket {
            tokens: self.rate,
            last: now,
            limited: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.rate);
        bucket.last = now;
        bucket
    }
}

/// The buckets every UDP socket and every TCP connection of the responder draw on.
pub struct SharedLimiter {
    /// `dns.rate_limit` is 0: nothing to count, so the UDP threads do not take the lock.
    off: bool,
    limiter: Mutex<RateLimiter>,
}

impl SharedLimiter {
    pub fn new(rate: u32) -> SharedLimiter {
        SharedLimiter {
            off: rate == 0,
            limiter: Mutex::new(RateLimiter::new(rate)),
        }
    }

    /// [`RateLimiter::check`] on the shared buckets (a UDP query).
    pub fn check(&self, ip: IpAddr, allowed: bool, now: Instant) -> Verdict {
        if self.off {
            return Verdict::Answer;
        }
        self.limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .check(ip, allowed, now)
    }

    /// [`RateLimiter::pace`] on the shared buckets (a TCP query).
    pub fn pace(&self, ip: IpAddr, allowed: bool, now: Instant) -> Duration {
        if self.off {
            return Duration::ZERO;
        }
        self.limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pace(ip, allowed, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers over UDP and over TCP come out of one budget: a client that spent it over one
    /// transport is held back over the other.
    #[test]
    fn udp_and_tcp_share_one_budget() {
        let shared = SharedLimiter::new(10);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(shared.check(a, true, t0), Verdict::Answer);
        }
        assert_eq!(
            shared.pace(a, true, t0),
            Duration::from_millis(100),
            "TCP after UDP"
        );
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..10 {
            assert!(shared.pace(b, true, t0).is_zero());
        }
        assert_eq!(shared.check(b, true, t0), Verdict::Slip, "UDP after TCP");
        assert_eq!(
            SharedLimiter::new(0).check(a, true, t0),
            Verdict::Answer,
            "off"
        );
    }

    #[test]
    fn limits_per_network_and_refills() {
        let mut rl = RateLimiter::new(10);
        let t0 = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let same_net: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(rl.check(a, false, t0), Verdict::Answer);
        }
        assert_eq!(rl.check(same_net, false, t0), Verdict::Slip);
        assert_eq!(rl.check(a, false, t0), Verdict::Drop);
        assert_eq!(rl.check(other, false, t0), Verdict::Answer);
        assert_eq!(
            rl.check(a, false, t0 + Duration::from_millis(200)),
            Verdict::Answer
        );
    }

    #[test]
    fn pacing_delays_past_the_limit_and_refills() {
        let mut rl = RateLimiter::new(10);
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(rl.pace(a, true, t0), Duration::ZERO);
        }
        // Each further query waits a tenth of a second longer than the one before.
        let waits: Vec<_> = (0..3).map(|_| rl.pace(a, true, t0).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 300]);
        assert_eq!(
            rl.pace("10.0.0.2".parse().unwrap(), true, t0),
            Duration::ZERO,
            "another client"
        );
        // Once the waits are over and a second more has passed, the burst is back.
        assert_eq!(
            rl.pace(a, true, t0 + Duration::from_millis(1_300)),
            Duration::ZERO
        );
        assert!(RateLimiter::new(0).pace(a, true, t0).is_zero());
    }

    #[test]
    fn zero_is_off() {
        let mut rl = RateLimiter::new(0);
        let t0 = Instant::now();
        for _ in 0..10_000 {
            assert_eq!(rl.check("::1".parse().unwrap(), true, t0), Verdict::Answer);
        }
    }

    /// A boot storm from one voice VLAN: 250 phones in one /24, two queries each, at once.
    #[test]
    fn allowed_clients_are_limited_per_address() {
        let mut rl = RateLimiter::new(200);
        let t0 = Instant::now();
        for host in 1..=250u8 {
            let phone = IpAddr::from([10, 1, 2, host]);
            assert_eq!(rl.check(phone, true, t0), Verdict::Answer, "{phone}");
            assert_eq!(rl.check(phone, true, t0), Verdict::Answer, "{phone}");
        }
        let one: IpAddr = "10.1.2.3".parse().unwrap();
        let mut rl = RateLimiter::new(10);
        for _ in 0..10 {
            assert_eq!(rl.check(one, true, t0), Verdict::Answer);
        }
        assert_eq!(rl.check(one, true, t0), Verdict::Slip, "still limited");
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(rl.check(mapped, true, t0), Verdict::Drop, "same phone");
        let v6: IpAddr = "fd00::1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(rl.check(v6, true, t0), Verdict::Answer);
        }
        let same_64: IpAddr = "fd00::2".parse().unwrap();
        let next_64: IpAddr = "fd00:0:0:1::1".parse().unwrap();
        assert_eq!(rl.check(same_64, true, t0), Verdict::Slip);
        assert_eq!(rl.check(next_64, true, t0), Verdict::Answer);
    }
}
