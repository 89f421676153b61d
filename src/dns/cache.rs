//! The forwarding cache: upstream answers kept for their TTL (the smallest in the answer),
//! negative answers for the SOA's negative TTL (RFC 2308). Time is passed in, so it is tested
//! without waiting.

use std::collections::HashMap;
use std::time::Instant;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{DNSClass, LowerName, RData, Record, RecordType};

/// Longest time anything stays cached, whatever upstream says (one day).
const MAX_TTL: u32 = 86_400;
/// Longest time a negative answer stays cached (RFC 2308 suggests 1–3 hours).
const MAX_NEGATIVE_TTL: u32 = 3_600;

pub type Key = (LowerName, RecordType, DNSClass);

/// An upstream answer as kept and as served (TTLs already reduced by the time spent cached).
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

struct Entry {
    answer: Cached,
    stored: Instant,
    ttl: u32,
}

pub struct Cache {
    entries: HashMap<Key, Entry>,
    capacity: usize,
}

impl Cache {
    pub fn new(capacity: usize) -> Cache {
        Cache {
            entries: HashMap::new(),
            capacity,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&mut self, key: &Key, now: Instant) -> Option<Cached> {
        let entry = self.entries.get(key)?;
        let age = u32::try_from(now.saturating_duration_since(entry.stored).as_secs()).ok()?;
        if age >= entry.ttl {
            self.entries.remove(key);
            return None;
        }
        let mut answer = entry.answer.clone();
        for rec in answer
            .answers
            .iter_mut()
            .chain(&mut answer.authorities)
            .chain(&mut answer.additionals)
        {
            rec.ttl = rec.ttl.saturating_sub(age);
        }
        Some(answer)
    }

    /// Keeps `answer` if it may be cached: NOERROR with records, or a negative answer (NXDOMAIN
    /// or NODATA) carrying an SOA. Other answers (SERVFAIL, no SOA, TTL 0) are not kept.
    pub fn put(&mut self, key: Key, answer: Cached, now: Instant) {
        let Some(ttl) = cache_ttl(&answer) else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries.retain(|_, e| {
                now.saturating_duration_since(e.stored).as_secs() < u64::from(e.ttl)
            });
            if self.entries.len() >= self.capacity
                && let Some(victim) = self.entries.keys().next().cloned()
            {
                self.entries.remove(&victim);
            }
        }
        self.entries.insert(
            key,
            Entry {
                answer,
                stored: now,
                ttl,
            },
        );
    }
}

fn cache_ttl(answer: &Cached) -> Option<u32> {
    let negative = match answer.rcode {
        ResponseCode::NXDomain => true,
        ResponseCode::NoError => answer.answers.is_empty(),
        _ => return None,
    };
    let ttl = if negative {
        let soa = answer.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })?;
        soa.min(MAX_NEGATIVE_TTL)
    } else {
        answer.answers.iter().map(|r| r.ttl).min()?.min(MAX_TTL)
    };
    (ttl > 0).then_some(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;
    use hickory_proto::rr::rdata::{A, SOA};
    use std::time::Duration;

    fn key(n: &str) -> Key {
        (
            LowerName::from(Name::from_ascii(n).unwrap()),
            RecordType::A,
            DNSClass::IN,
        )
    }

    fn positive(ttl: u32) -> Cached {
        Cached {
            rcode: ResponseCode::NoError,
            answers: vec![Record::from_rdata(
                Name::from_ascii("a.example.").unwrap(),
                ttl,
                RData::A(A::new(192, 0, 2, 1)),
            )],
            authorities: vec![],
            additionals: vec![],
        }
    }

    fn negative(soa_ttl: u32, minimum: u32) -> Cached {
        let soa = SOA::new(
            Name::from_ascii("ns.example.").unwrap(),
            Name::from_ascii("h.example.").unwrap(),
            1,
            1,
            1,
            1,
            minimum,
        );
        Cached {
            rcode: ResponseCode::NXDomain,
            answers: vec![],
            authorities: vec![Record::from_rdata(
                Name::from_ascii("example.").unwrap(),
                soa_ttl,
                RData::SOA(soa),
            )],
            additionals: vec![],
        }
    }

    #[test]
    fn ttl_counts_down_and_expires() {
        let mut c = Cache::new(10);
        let t0 = Instant::now();
        c.put(key("a.example."), positive(30), t0);
        let got = c
            .get(&key("A.EXAMPLE."), t0 + Duration::from_secs(10))
            .unwrap();
        assert_eq!(got.answers[0].ttl, 20);
        assert!(
            c.get(&key("a.example."), t0 + Duration::from_secs(30))
                .is_none()
        );
        assert!(c.is_empty());
    }

    #[test]
    fn negative_answers_use_the_soa_minimum() {
        let mut c = Cache::new(10);
        let t0 = Instant::now();
        c.put(key("n.example."), negative(300, 5), t0);
        assert!(
            c.get(&key("n.example."), t0 + Duration::from_secs(4))
                .is_some()
        );
        assert!(
            c.get(&key("n.example."), t0 + Duration::from_secs(5))
                .is_none()
        );
        let mut no_soa = negative(300, 5);
        no_soa.authorities.clear();
        c.put(key("m.example."), no_soa, t0);
        assert!(c.get(&key("m.example."), t0).is_none());
    }

    #[test]
    fn servfail_and_zero_ttl_are_not_kept_and_size_is_bounded() {
        let mut c = Cache::new(2);
        let t0 = Instant::now();
        let mut fail = positive(30);
        fail.rcode = ResponseCode::ServFail;
        c.put(key("f.example."), fail, t0);
        c.put(key("z.example."), positive(0), t0);
        assert!(c.is_empty());
        for n in ["a.example.", "b.example.", "c.example."] {
            c.put(key(n), positive(30), t0);
        }
        assert_eq!(c.len(), 2);
    }
}
