//! Sockets and the one loop that owns them: read a datagram, check its source's rate, ask
//! `profile` what it is, answer, and send due NOTIFYs again (`transactions`).
//!
//! A socket bound to the wildcard address receives both the phones' multicast and unicast. A
//! socket bound to one address does not receive multicast (its destination is the group, not
//! that address), so then a second socket is bound to the group address itself on the same
//! port; answers always leave from the `listen` socket. Replies go to the address the
//! SUBSCRIBE came from (as RFC 3581's `rport` would have it), never to one the message names:
//! otherwise anyone could aim the NOTIFYs at a third party.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::config::PnpConfig;
use super::message::MAX_MESSAGE;
use super::profile::{self, Incoming, Local, Refusal, Subscribe, SubscribeKey};
use super::transactions::{Admit, Answered, Notify, Outcome, Transactions};
use crate::dns::rrl::{RateLimiter, Verdict};

/// The plug-and-play group: IANA's "SIP" multicast address (sip.mcast.net), where RFC 6080
/// has a device look for its profile server, and where every PnP phone sends.
pub const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 1, 75);
/// SUBSCRIBEs remembered (answered in the last half-minute, or their NOTIFY in flight) at
/// once: a boot storm of a few thousand phones within that time; beyond it a SUBSCRIBE is
/// dropped and the phone asks again. About 2 KB each.
const MAX_TRANSACTIONS: usize = 4096;
/// SUBSCRIBEs remembered at once from one address. A phone has one in hand at a time, two if
/// it reboots within the 32 s an answered one is remembered; a host holding more is not a
/// phone booting. Without a share of its own, thirteen hosts at the default rate limit (10 a
/// second each, 320 remembered each) kept the whole table full and every real phone was
/// turned away as busy. Sixteen leaves room for a phone that retries eagerly; 256 hosts are
/// needed to fill the table. Not a key: plug-and-play is link-local multicast, so no relay or
/// NAT puts many phones behind one address, and no real site needs another value.
const MAX_PER_SOURCE: usize = 16;

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    pub answered: AtomicU64,
    pub acknowledged: AtomicU64,
    pub refused: AtomicU64,
    pub unanswered: AtomicU64,
    pub ignored: AtomicU64,
    pub malformed: AtomicU64,
    pub rate_limited: AtomicU64,
    pub busy: AtomicU64,
    pub source_busy: AtomicU64,
    pub no_dialog: AtomicU64,
    pub out_of_order: AtomicU64,
    pub send_errors: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// `(name, value)` of every counter.
    pub fn view(&self) -> [(&'static str, u64); 12] {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("answered", g(&self.answered)),
            ("acknowledged", g(&self.acknowledged)),
            ("refused", g(&self.refused)),
            ("unanswered", g(&self.unanswered)),
            ("ignored", g(&self.ignored)),
            ("malformed", g(&self.malformed)),
            ("rate_limited", g(&self.rate_limited)),
            ("busy", g(&self.busy)),
            ("source_busy", g(&self.source_busy)),
            ("no_dialog", g(&self.no_dialog)),
            ("out_of_order", g(&self.out_of_order)),
            ("send_errors", g(&self.send_errors)),
        ]
    }
}

/// The bound sockets, so that a port in use fails the start, naming the key.
pub struct Bound {
    listen: std::net::UdpSocket,
    group: Option<std::net::UdpSocket>,
    /// The interfaces the group was joined on.
    pub joined: Vec<String>,
}

impl Bound {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listen.local_addr().ok()
    }
}

/// Why binding failed: the key to blame and the error.
pub type BindError = (&'static str, std::io::Error);

fn udp(addr: SocketAddr) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// The interfaces to join the group on: those listed, else each that is up, can multicast and
/// has an IPv4 address.
fn interfaces(config: &PnpConfig) -> Vec<String> {
    if !config.interfaces.is_empty() {
        return config.interfaces.clone();
    }
    use nix::net::if_::InterfaceFlags as F;
    let mut names: Vec<String> = Vec::new();
    for a in nix::ifaddrs::getifaddrs().into_iter().flatten() {
        if a.flags.contains(F::IFF_UP | F::IFF_MULTICAST)
            && a.address.is_some_and(|s| s.as_sockaddr_in().is_some())
            && !names.contains(&a.interface_name)
        {
            names.push(a.interface_name);
        }
    }
    names
}

/// Binds `pnp.listen` (and the group socket when it is not the wildcard) and joins the group.
/// A listed interface that cannot join fails the start; one found by looking is skipped with
/// a warning.
pub fn bind(config: &PnpConfig) -> Result<Bound, BindError> {
    let listen = udp(config.listen).map_err(|e| ("pnp.listen", e))?;
    let port = listen
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map_or(config.listen.port(), |a| a.port());
    let group = match config.listen.ip().is_unspecified() {
        true => None,
        false => Some(udp(SocketAddr::from((GROUP, port))).map_err(|e| ("pnp.listen", e))?),
    };
    let member = group.as_ref().unwrap_or(&listen);
    let mut joined = Vec::new();
    for name in interfaces(config) {
        let joining = nix::net::if_::if_nametoindex(name.as_str())
            .map_err(std::io::Error::from)
            .and_then(|index| {
                member.join_multicast_v4_n(&GROUP, &InterfaceIndexOrAddress::Index(index))
            });
        match joining {
            Ok(()) => joined.push(name),
            Err(e) if config.interfaces.is_empty() => {
                tracing::warn!(interface = %name, error = %e, "cannot join the PnP group 224.0.1.75 there");
            }
            Err(e) => {
                let e = std::io::Error::new(e.kind(), format!("interface {name:?}: {e}"));
                return Err(("pnp.interfaces", e));
            }
        }
    }
    if joined.is_empty() {
        tracing::warn!(
            "no interface joined the PnP group 224.0.1.75: only SUBSCRIBEs sent to this box's \
             own address are answered"
        );
    }
    Ok(Bound {
        listen: listen.into(),
        group: group.map(Into::into),
        joined,
    })
}

/// The address of this host that `peer` reaches: the bound one, or for a wildcard the one the
/// kernel routes toward the peer (connecting a UDP socket sends nothing).
fn local_toward(bound: SocketAddr, peer: SocketAddr) -> Local {
    if !bound.ip().is_unspecified() {
        return Local(bound);
    }
    let ip = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
        .and_then(|s| s.connect(peer).and_then(|()| s.local_addr()))
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip());
    Local(SocketAddr::new(ip, bound.port()))
}

/// A random token for tags and branches (RFC 3261 §19.3 asks for 32 bits of randomness at
/// least; a branch starts with the magic cookie `z9hG4bK`).
fn token() -> String {
    crate::phone::credentials::hex(&crate::pki::random_bytes::<8>())
}

struct Loop {
    listen: UdpSocket,
    bound: SocketAddr,
    url: String,
    limiter: RateLimiter,
    transactions: Transactions,
    stats: Arc<Stats>,
}

impl Loop {
    async fn send(&self, bytes: &[u8], peer: SocketAddr) {
        if let Err(e) = self.listen.send_to(bytes, peer).await {
            bump(&self.stats.send_errors);
            tracing::debug!(%peer, error = %e, "PnP: could not send");
        }
    }

    async fn datagram(&mut self, bytes: &[u8], peer: SocketAddr) {
        let now = Instant::now();
        if self.limiter.check(peer.ip(), true, now) != Verdict::Answer {
            bump(&self.stats.rate_limited);
            return;
        }
        match profile::classify(bytes) {
            Err(e) => {
                bump(&self.stats.malformed);
                tracing::debug!(%peer, error = %e, "PnP: malformed SIP dropped");
            }
            Ok(Incoming::Other) => bump(&self.stats.ignored),
            Ok(Incoming::NotifyResponse(r)) => match self.transactions.answered(&r, peer) {
                Some(Outcome::Acknowledged) => {
                    bump(&self.stats.acknowledged);
                    tracing::debug!(%peer, call_id = %r.call_id, "PnP: NOTIFY acknowledged");
                }
                Some(Outcome::Refused) => {
                    bump(&self.stats.refused);
                    tracing::debug!(%peer, code = r.code, "PnP: NOTIFY refused by the phone");
                }
                None => bump(&self.stats.ignored),
            },
            Ok(Incoming::Subscribe(sub)) => self.subscribe(&sub, peer, now).await,
        }
    }

    async fn subscribe(&mut self, sub: &Subscribe, peer: SocketAddr, now: Instant) {
        let key = sub.key();
        match self
            .transactions
            .admit(&key, sub.to_tag.as_deref(), peer.ip(), now)
        {
            Admit::Repeat(ok) => {
                let ok = ok.to_vec();
                self.send(&ok, peer).await;
            }
            Admit::Refused(why) => {
                self.send(&profile::refusal(sub, peer, why), peer).await;
                bump(match why {
                    Refusal::NoDialog => &self.stats.no_dialog,
                    Refusal::OutOfOrder => &self.stats.out_of_order,
                });
                tracing::debug!(%peer, call_id = %sub.call_id, ?why, "PnP: SUBSCRIBE in a dialog refused");
            }
            Admit::Full => bump(&self.stats.busy),
            Admit::SourceFull => bump(&self.stats.source_busy),
            Admit::New => self.answer(sub, key, peer, token(), 1, now).await,
            Admit::Refresh { tag, cseq } => self.answer(sub, key, peer, tag, cseq, now).await,
        }
    }

    /// Answers `sub` 200 in the dialog of `tag` and sends the NOTIFY, CSeq `cseq` of ours in it.
    async fn answer(
        &mut self,
        sub: &Subscribe,
        key: SubscribeKey,
        peer: SocketAddr,
        tag: String,
        cseq: u32,
        now: Instant,
    ) {
        let local = local_toward(self.bound, peer);
        let branch = format!("z9hG4bK{}", token());
        let ok = profile::ok_response(sub, peer, local, &tag);
        let body = profile::body_for(&sub.device, &self.url);
        let notify = Notify {
            bytes: profile::notify(sub, local, &tag, &branch, cseq, &body),
            branch,
            cseq,
        };
        tracing::debug!(
            %peer,
            vendor = %sub.device.vendor,
            model = %sub.device.model,
            version = %sub.device.version,
            mac = ?sub.device.mac.map(|m| m.to_string()),
            url = %body,
            refresh = cseq > 1,
            "PnP: SUBSCRIBE answered"
        );
        self.send(&ok, peer).await;
        self.send(&notify.bytes, peer).await;
        bump(&self.stats.answered);
        let answered = Answered {
            peer,
            tag,
            ok,
            notify,
        };
        self.transactions.start(key, answered, now);
    }

    async fn retransmit(&mut self) {
        let (sends, unanswered) = self.transactions.due(Instant::now());
        for s in sends {
            self.send(&s.bytes, s.peer).await;
        }
        if unanswered > 0 {
            self.stats
                .unanswered
                .fetch_add(unanswered, Ordering::Relaxed);
            tracing::debug!(unanswered, "PnP: NOTIFY given up on, no answer");
        }
    }
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// Serves until `stop` turns true; `url` is the provisioning URL phones are sent.
pub async fn serve(
    bound: Bound,
    config: PnpConfig,
    url: String,
    stats: Arc<Stats>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let io = |e: std::io::Error| format!("PnP socket: {e}");
    let local = bound.listen.local_addr().map_err(io)?;
    let listen = UdpSocket::from_std(bound.listen).map_err(io)?;
    let group = bound
        .group
        .map(UdpSocket::from_std)
        .transpose()
        .map_err(io)?;
    let mut state = Loop {
        listen,
        bound: local,
        url,
        limiter: RateLimiter::new(config.rate_limit),
        transactions: Transactions::new(MAX_TRANSACTIONS, MAX_PER_SOURCE),
        stats,
    };
    // One byte more than a message may be, so that a longer one is seen as too long.
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let mut group_buf = vec![0u8; MAX_MESSAGE + 1];
    loop {
        let deadline = state.transactions.next_deadline();
        let due = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return Ok(());
                }
            }
            got = state.listen.recv_from(&mut buf) => match got {
                Ok((n, peer)) => state.datagram(&buf[..n], peer).await,
                Err(e) => tracing::debug!(error = %e, "PnP: receive failed"),
            },
            got = recv(group.as_ref(), &mut group_buf) => match got {
                Ok((n, peer)) => state.datagram(&group_buf[..n], peer).await,
                Err(e) => tracing::debug!(error = %e, "PnP: receive failed"),
            },
            () = due => state.retransmit().await,
        }
    }
}
