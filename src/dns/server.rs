//! Socket wiring only. UDP: one OS thread per socket doing blocking `recv_from`/`send_to`
//! (the cheapest loop per packet: rate limit, then the pre-encoded fast path, else a parse and
//! the zone's answer on the thread, and a task on the runtime only for a question forwarded
//! upstream). TCP: `tcp`'s bounded accept loop.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::fast::slip;
use super::handler::{Local, Responder};
use super::respond::{encode, for_udp, udp_limit};
use super::rrl::{SharedLimiter, Verdict};
use super::stats::Stats;
use super::tcp::{self, Admission};
use crate::supervise::{Watched, any_failed};

/// Queries longer than this are not queries (one question plus an OPT with options fits in a
/// fraction of it); they are dropped unread.
const MAX_QUERY: usize = 4096;
/// Forwarded questions in flight per UDP socket; beyond it, new ones are dropped rather than
/// queued, so a flood cannot grow memory.
const MAX_INFLIGHT: usize = 1024;
/// How often a UDP thread looks at the stop flag when no packet arrives.
const POLL: Duration = Duration::from_millis(200);

/// Bound sockets, so a busy port fails the start before anything is served.
pub struct DnsSockets {
    udp: Vec<UdpSocket>,
    tcp: Vec<TcpListener>,
    pub addrs: Vec<SocketAddr>,
}

/// Binds UDP and TCP on each address (the same port for both; with port 0 the kernel's UDP
/// choice is reused for TCP).
pub async fn bind(listen: &[SocketAddr]) -> Result<DnsSockets, (SocketAddr, std::io::Error)> {
    let mut out = DnsSockets {
        udp: Vec::new(),
        tcp: Vec::new(),
        addrs: Vec::new(),
    };
    for &addr in listen {
        let mut attempt = 0;
        let (udp, tcp) = loop {
            let udp = bind_udp(addr).map_err(|e| (addr, e))?;
            let bound = udp.local_addr().map_err(|e| (addr, e))?;
            match bind_tcp(bound) {
                Ok(tcp) => break (udp, tcp),
                Err(e) if addr.port() == 0 && attempt < 10 => {
                    attempt += 1;
                    tracing::debug!(error = %e, "TCP port taken; choosing another");
                }
                Err(e) => return Err((addr, e)),
            }
        };
        udp.set_read_timeout(Some(POLL)).map_err(|e| (addr, e))?;
        out.addrs.push(udp.local_addr().map_err(|e| (addr, e))?);
        out.udp.push(udp);
        out.tcp.push(tcp);
    }
    Ok(out)
}

/// A UDP socket on `addr`; an IPv6 one takes IPv6 only, so `0.0.0.0:53` and `[::]:53` can
/// both be listed (see `daemon::bind`).
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The TCP listener beside a UDP socket, IPv6-only like it; the backlog tokio's `bind` uses.
fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => {
            let socket = tokio::net::TcpSocket::new_v6()?;
            socket2::SockRef::from(&socket).set_only_v6(true)?;
            socket
        }
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves until `stop` turns true. Ends early with an error naming the part that died (a UDP
/// thread, a TCP accept loop): a socket nobody reads leaves phones without names.
pub async fn serve(
    sockets: DnsSockets,
    responder: Arc<Responder>,
    limiter: Arc<SharedLimiter>,
    tcp_admission: Arc<Admission>,
    tcp_timeout: Duration,
    stop: watch::Receiver<bool>,
) -> Result<(), String> {
    let stopping = Arc::new(AtomicBool::new(false));
    let runtime = tokio::runtime::Handle::current();
    let mut threads = Vec::new();
    let mut failed = None;
    for sock in sockets.udp {
        let (responder, limiter, stopping, runtime) = (
            responder.clone(),
            limiter.clone(),
            stopping.clone(),
            runtime.clone(),
        );
        let spawned = Watched::spawn("UDP thread", "dns-udp", move || {
            udp_loop(sock, responder, runtime, &limiter, stopping);
            Ok::<(), std::convert::Infallible>(())
        });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                failed = Some(format!("cannot start a UDP thread: {e}"));
                break;
            }
        }
    }
    if failed.is_none() {
        failed = tokio::select! {
            served = tcp::serve(sockets.tcp, responder, tcp_admission, tcp_timeout, stop) => served.err(),
            reason = any_failed(&mut threads) => Some(reason),
        };
    }
    stopping.store(true, Ordering::Relaxed);
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
    failed.map_or(Ok(()), Err)
}

fn udp_loop(
    sock: UdpSocket,
    responder: Arc<Responder>,
    runtime: tokio::runtime::Handle,
    limiter: &SharedLimiter,
    stopping: Arc<AtomicBool>,
) {
    let sock = Arc::new(sock);
    let inflight = Arc::new(AtomicUsize::new(0));
    let mut buf = vec![0u8; 65_536];
    let mut seen = responder.zone.generation();
    let mut served = responder.zone.current();
    while !stopping.load(Ordering::Relaxed) {
        let (n, src) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                        | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "DNS UDP receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        // Too short for a header, too long for a query, or a response (never answered, so two
        // servers cannot be made to loop): dropped.
        if !(12..=MAX_QUERY).contains(&n) || buf[2] & 0x80 != 0 {
            continue;
        }
        let packet = &buf[..n];
        let allowed = responder.allowed(src.ip());
        match limiter.check(src.ip(), allowed, Instant::now()) {
            Verdict::Answer => {}
            Verdict::Slip => {
                Stats::count(&responder.stats.rate_limited);
                if let Some(reply) = slip(packet) {
                    let _ = sock.send_to(&reply, src);
                }
                continue;
            }
            Verdict::Drop => {
                Stats::count(&responder.stats.rate_limited);
                continue;
            }
        }
        let generation = responder.zone.generation();
        if generation != seen {
            seen = generation;
            served = responder.zone.current();
        }
        if allowed && let Some(reply) = served.fast.answer(packet) {
            Stats::count(&responder.stats.local);
            let _ = sock.send_to(&reply, src);
            continue;
        }
        // Garbage is dropped: answering FORMERR to unparseable input is a reflection vector.
        let Ok(req) = Message::from_vec(packet) else {
            Stats::count(&responder.stats.dropped);
            continue;
        };
        // The zone's other answers (no such name or type, refusals) are answered here too:
        // only forwarding waits, and only forwarded questions take an in-flight slot, so a
        // silent upstream holding every slot cannot stop the box's own names being answered.
        let (query, partial) = match responder.local(&req, src.ip()) {
            Local::Reply(reply) => {
                if let Some(bytes) = reply.and_then(|r| encode(&for_udp(r), udp_limit(&req))) {
                    let _ = sock.send_to(&bytes, src);
                }
                continue;
            }
            Local::Forward { query, partial } => (query, partial),
        };
        if inflight.load(Ordering::Relaxed) >= MAX_INFLIGHT {
            Stats::count(&responder.stats.dropped);
            continue;
        }
        inflight.fetch_add(1, Ordering::Relaxed);
        let (sock, responder, inflight) = (sock.clone(), responder.clone(), inflight.clone());
        runtime.spawn(async move {
            let reply = responder.forward(&req, &query, partial.as_ref()).await;
            if let Some(bytes) = encode(&for_udp(reply), udp_limit(&req)) {
                let _ = sock.send_to(&bytes, src);
            }
            inflight.fetch_sub(1, Ordering::Relaxed);
        });
    }
}
