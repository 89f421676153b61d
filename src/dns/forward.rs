//! Forwarding of names outside the zone to the configured upstream resolvers, through the
//! cache. Each upstream gets `timeout`; a connected UDP socket makes an unreachable upstream
//! fail at once (ICMP port unreachable) instead of after the timeout. A truncated upstream
//! answer is asked again over TCP.
//!
//! An upstream that gave no answer (timeout or network error) is tried after the others for
//! [`HOLD_DOWN`]: with the first of two resolvers dead, every uncached name otherwise waited its
//! whole timeout before the second was asked. Order is kept otherwise (a site may list an
//! internal resolver first for internal names), and a held upstream is still asked when the
//! others fail, so nothing is answered SERVFAIL that the old order would have answered.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::LowerName;
use hickory_proto::serialize::binary::BinEncodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::cache::{Cache, Cached, Key};
use super::respond::EDNS_PAYLOAD;

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("{server}: {source}")]
    Io {
        server: SocketAddr,
        source: std::io::Error,
    },
    #[error("{server}: no answer within {timeout:?}")]
    Timeout {
        server: SocketAddr,
        timeout: Duration,
    },
    #[error("{server}: {message}")]
    Bad { server: SocketAddr, message: String },
}

/// Asks `server` one question (with RD set) and returns its matching answer.
pub async fn exchange(
    server: SocketAddr,
    query: &Query,
    timeout: Duration,
) -> Result<Message, ExchangeError> {
    let mut req = Message::query();
    req.metadata.recursion_desired = true;
    req.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    req.edns = Some(edns);
    let bytes = req.to_bytes().map_err(|e| ExchangeError::Bad {
        server,
        message: e.to_string(),
    })?;
    let io = |source| ExchangeError::Io { server, source };
    let work = async {
        let local: SocketAddr = if server.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let sock = UdpSocket::bind(local).await.map_err(io)?;
        sock.connect(server).await.map_err(io)?;
        sock.send(&bytes).await.map_err(io)?;
        let mut buf = vec![0u8; 65_535];
        loop {
            let n = sock.recv(&mut buf).await.map_err(io)?;
            let Ok(reply) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            if !matches_request(&req, &reply) {
                continue;
            }
            if reply.metadata.truncation {
                return exchange_tcp(server, &req, &bytes).await;
            }
            return Ok(reply);
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ExchangeError::Timeout { server, timeout })?
}

fn matches_request(req: &Message, reply: &Message) -> bool {
    reply.metadata.id == req.metadata.id
        && reply.metadata.message_type == MessageType::Response
        && reply.queries.len() == 1
        && reply.queries[0].query_type() == req.queries[0].query_type()
        && reply.queries[0].name() == req.queries[0].name()
}

async fn exchange_tcp(
    server: SocketAddr,
    req: &Message,
    bytes: &[u8],
) -> Result<Message, ExchangeError> {
    let io = |source| ExchangeError::Io { server, source };
    let mut tcp = TcpStream::connect(server).await.map_err(io)?;
    let len = u16::try_from(bytes.len()).map_err(|_| ExchangeError::Bad {
        server,
        message: "query too long".into(),
    })?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    tcp.write_all(&framed).await.map_err(io)?;
    let n = usize::from(tcp.read_u16().await.map_err(io)?);
    let mut buf = vec![0u8; n];
    tcp.read_exact(&mut buf).await.map_err(io)?;
    let reply = Message::from_vec(&buf).map_err(|e| ExchangeError::Bad {
        server,
        message: e.to_string(),
    })?;
    if !matches_request(req, &reply) {
        return Err(ExchangeError::Bad {
            server,
            message: "answer does not match the question".into(),
        });
    }
    Ok(reply)
}

/// How long an upstream that gave no answer is asked only after the others: the interval at
/// which dnsmasq, too, tries again a server it stopped favouring.
const HOLD_DOWN: Duration = Duration::from_secs(20);

pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    cache: Mutex<Cache>,
    /// Per upstream: until when it is tried last, after it gave no answer.
    held: Mutex<Vec<Option<Instant>>>,
}

/// The upstreams in the order to try them at `now`: those not held in configured order, then
/// the held ones in configured order.
fn order(held: &[Option<Instant>], now: Instant) -> Vec<usize> {
    let is_held = |i: &usize| held[*i].is_some_and(|until| until > now);
    let (held, live): (Vec<usize>, Vec<usize>) = (0..held.len()).partition(is_held);
    live.into_iter().chain(held).collect()
}

impl Forwarder {
    pub fn new(upstreams: Vec<SocketAddr>, timeout: Duration, cache_size: usize) -> Forwarder {
        Forwarder {
            held: Mutex::new(vec![None; upstreams.len()]),
            upstreams,
            timeout,
            cache: Mutex::new(Cache::new(cache_size)),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Vec<Option<Instant>>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records whether upstream `i` answered at all (any response code counts: it is up).
    fn answered(&self, i: usize, yes: bool) {
        if let Some(slot) = self.held().get_mut(i) {
            *slot = (!yes).then(|| Instant::now() + HOLD_DOWN);
        }
    }

    /// The answer from the cache, else from the first upstream that gives a usable one
    /// (NOERROR or NXDOMAIN). `None` when none does: the caller answers SERVFAIL. The flag says
    /// whether the cache answered.
    pub async fn resolve(&self, query: &Query) -> (Option<Cached>, bool) {
        let key = (
            LowerName::from(query.name().clone()),
            query.query_type(),
            query.query_class(),
        );
        if let Some(hit) = self.cache().get(&key, Instant::now()) {
            return (Some(hit), true);
        }
        (self.ask_upstreams(query, key).await, false)
    }

    async fn ask_upstreams(&self, query: &Query, key: Key) -> Option<Cached> {
        let order = order(&self.held(), Instant::now());
        for i in order {
            let server = &self.upstreams[i];
            let result = exchange(*server, query, self.timeout).await;
            self.answered(i, result.is_ok());
            match result {
                Ok(reply)
                    if matches!(
                        reply.metadata.response_code,
                        ResponseCode::NoError | ResponseCode::NXDomain
                    ) =>
                {
                    let answer = Cached {
                        rcode: reply.metadata.response_code,
                        answers: reply.answers,
                        authorities: reply.authorities,
                        additionals: reply.additionals,
                    };
                    self.cache().put(key, answer.clone(), Instant::now());
                    return Some(answer);
                }
                Ok(reply) => tracing::debug!(
                    %server, rcode = %reply.metadata.response_code, name = %query.name(),
                    "upstream could not answer; trying the next"
                ),
                Err(e) => tracing::debug!(error = %e, name = %query.name(), "upstream failed"),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_that_gave_no_answer_go_last_until_their_hold_ends() {
        let now = Instant::now();
        assert_eq!(order(&[None, None, None], now), vec![0, 1, 2]);
        let later = Some(now + Duration::from_secs(5));
        assert_eq!(order(&[later, None, later], now), vec![1, 0, 2]);
        assert_eq!(
            order(&[later, later], now),
            vec![0, 1],
            "all held: as configured"
        );
        let over = Some(now.checked_sub(Duration::from_secs(1)).unwrap_or(now));
        assert_eq!(order(&[over, None], now), vec![0, 1], "hold over");
    }
}
