//! The socket loop: receive, decode, ask the engine, answer. Offers, NAKs and INFORM answers go
//! out at once; ACKs go to one writer thread that commits the leases of everything queued in a
//! single transaction and only then sends those ACKs (group commit: durable before the ACK
//! leaves, without one disk sync per client).
//!
//! Every datagram is read with `IP_PKTINFO`: one socket bound to all interfaces still learns the
//! interface a client's broadcast came in on and this host's address there. That address picks
//! the subnet of a client that is not relayed, and a broadcast answer is sent out of that same
//! interface; routing alone would send 255.255.255.255 out of the default route's interface.

use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket as StdUdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::socket::{
    ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, sendmsg, setsockopt,
    sockopt,
};
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;

use super::answer::Plan;
use super::config::DhcpConfig;
use super::lease::{Decision, Engine};
use super::packet;
use super::vendor::ProvisioningUrl;
use super::{DhcpError, reservations};
use crate::model::{AlarmKind, Lease, now_unix};
use crate::store::{Recorder, Store};
use crate::supervise::{Watched, join_failure};

/// ACKs waiting for their commit; beyond this a request is dropped (the client retries).
const QUEUE: usize = 16_384;
/// Most leases committed in one transaction.
const BATCH: usize = 4_096;
/// Socket receive buffer asked for (the kernel caps it at net.core.rmem_max).
const RECV_BUFFER: usize = 4 << 20;
/// How often the inventory's reservations are re-read.
const RESERVATION_REFRESH: Duration = Duration::from_secs(10);
/// Least time between two `dhcp_pool_exhausted` alarms of one subnet: a full pool refuses
/// every DISCOVER of a boot storm, and each would otherwise be an alarm write and a cloud event.
const EXHAUSTED_ALARM_EVERY: Duration = Duration::from_secs(60);

/// One subnet's `dhcp_pool_exhausted` alarm as the server knows it.
#[derive(Debug, Clone, Copy)]
struct Exhaustion {
    /// When the alarm was last raised (at most once per [`EXHAUSTED_ALARM_EVERY`]).
    raised: Option<Instant>,
    /// The alarm may be in the store: raised since the last clear, or left from before start.
    open: bool,
    /// A client was refused since the last refresh round.
    refused: bool,
}

impl Default for Exhaustion {
    fn default() -> Self {
        Exhaustion {
            raised: None,
            open: true,
            refused: false,
        }
    }
}

/// Counters, shown by `GET /api/v1/dhcp/stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub received: AtomicU64,
    pub malformed: AtomicU64,
    pub ignored: AtomicU64,
    pub offers: AtomicU64,
    pub acks: AtomicU64,
    pub naks: AtomicU64,
    pub informs: AtomicU64,
    pub releases: AtomicU64,
    pub declines: AtomicU64,
    pub exhausted: AtomicU64,
    pub dropped: AtomicU64,
    pub commit_errors: AtomicU64,
    pub send_errors: AtomicU64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StatsView {
    pub received: u64,
    pub malformed: u64,
    pub ignored: u64,
    pub offers: u64,
    pub acks: u64,
    pub naks: u64,
    pub informs: u64,
    pub releases: u64,
    pub declines: u64,
    pub exhausted: u64,
    pub dropped: u64,
    pub commit_errors: u64,
    pub send_errors: u64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    pub fn view(&self) -> StatsView {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsView {
            received: g(&self.received),
            malformed: g(&self.malformed),
            ignored: g(&self.ignored),
            offers: g(&self.offers),
            acks: g(&self.acks),
            naks: g(&self.naks),
            informs: g(&self.informs),
            releases: g(&self.releases),
            declines: g(&self.declines),
            exhausted: g(&self.exhausted),
            dropped: g(&self.dropped),
            commit_errors: g(&self.commit_errors),
            send_errors: g(&self.send_errors),
        }
    }
}

/// Sockets bound at start with the other listeners, one per interface (or one for all).
pub struct Bound {
    sockets: Vec<(StdUdpSocket, Option<String>)>,
}

impl Bound {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.sockets.first().and_then(|(s, _)| s.local_addr().ok())
    }
}

fn udp_socket(device: Option<&str>) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    if let Some(d) = device {
        s.bind_device(Some(d.as_bytes()))?;
    }
    Ok(s)
}

/// Binds the DHCP port: SO_BROADCAST for replies to clients without an address, SO_REUSEADDR
/// so one socket per interface can share the port, SO_BINDTODEVICE per listed interface,
/// IP_PKTINFO to learn where each datagram arrived.
pub fn bind(config: &DhcpConfig) -> std::io::Result<Bound> {
    let devices: Vec<Option<String>> = if config.interfaces.is_empty() {
        vec![None]
    } else {
        config.interfaces.iter().cloned().map(Some).collect()
    };
    let mut sockets = Vec::new();
    let mut addr = config.listen;
    for device in devices {
        let s = udp_socket(device.as_deref())?;
        s.set_reuse_address(true)?;
        s.set_broadcast(true)?;
        setsockopt(&s, sockopt::Ipv4PacketInfo, &true)?;
        // A boot storm arrives faster than it is answered for a moment: queue, do not drop.
        s.set_recv_buffer_size(RECV_BUFFER)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())?;
        let std: StdUdpSocket = s.into();
        // Port 0 (tests): every interface's socket shares the port the first one got.
        addr = std.local_addr()?;
        sockets.push((std, device));
    }
    Ok(Bound { sockets })
}

/// This server's addresses, which no client may be given: every server identifier of every
/// socket (configured or worked out from the routes) and every address of this host's
/// interfaces. Read again with the reservations, since interfaces gain addresses after start.
fn own_addresses(server_ids: &[Vec<Ipv4Addr>]) -> Vec<Ipv4Addr> {
    let mut own: Vec<Ipv4Addr> = server_ids.iter().flatten().copied().collect();
    match nix::ifaddrs::getifaddrs() {
        Ok(ifaddrs) => {
            own.extend(ifaddrs.filter_map(|a| a.address?.as_sockaddr_in().map(|sin| sin.ip())))
        }
        Err(e) => tracing::warn!(error = %e, "listing this host's addresses for DHCP"),
    }
    own.retain(|ip| !ip.is_unspecified());
    own.sort_unstable();
    own.dedup();
    own
}

/// Hands the engine this server's addresses; warns about those inside a range when they differ
/// from `last` (the engine skips them, but the range is wrong and its size overstated).
fn set_own_addresses(engine: &mut Engine, own: &[Ipv4Addr], last: &mut Vec<Ipv4Addr>) {
    let inside = engine.set_own_addresses(own.iter().copied().collect());
    if inside != *last {
        for ip in &inside {
            tracing::warn!(%ip, "this server's own address lies inside a DHCP range: it is never handed out; take it out of dhcp.subnet.ranges");
        }
        *last = inside;
    }
}

/// The source address the kernel would use toward `target`: connecting a UDP socket only looks
/// up the route, it sends nothing.
fn route_source(target: Ipv4Addr, device: Option<&str>) -> Option<Ipv4Addr> {
    let s = udp_socket(device).ok()?;
    s.connect(&SocketAddr::from((target, 67)).into()).ok()?;
    match s.local_addr().ok()?.as_socket()? {
        SocketAddr::V4(a) => Some(*a.ip()),
        SocketAddr::V6(_) => None,
    }
}

/// Where a datagram came from and arrived: the interface, and this host's address there as the
/// kernel works it out (the destination of a unicast; the interface's address for a broadcast).
#[derive(Debug, Clone, Copy)]
struct Arrival {
    peer: SocketAddrV4,
    ifindex: u32,
    local: Ipv4Addr,
}

/// One datagram and its `IP_PKTINFO`. A datagram without it (none is expected once the option
/// is set) keeps an unspecified local address and interface 0.
fn recv_with_pktinfo(
    fd: RawFd,
    buf: &mut [u8],
    cmsg: &mut [u8],
) -> std::io::Result<(usize, Arrival)> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn>(fd, &mut iov, Some(cmsg), MsgFlags::empty())?;
    let peer = msg
        .address
        .map(|a| SocketAddrV4::new(a.ip(), a.port()))
        .unwrap_or_else(|| SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));
    let mut arrival = Arrival {
        peer,
        ifindex: 0,
        local: Ipv4Addr::UNSPECIFIED,
    };
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
            arrival.ifindex = u32::try_from(info.ipi_ifindex).unwrap_or(0);
            arrival.local = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
        }
    }
    Ok((msg.bytes, arrival))
}

/// Sends a reply. A broadcast is pinned to the interface its request came in on (and sent from
/// this host's address there): with one socket for all interfaces, routing would pick the
/// default route's interface, or fail with no default route.
fn send_reply(fd: RawFd, out: &Outgoing) -> std::io::Result<usize> {
    let iov = [IoSlice::new(&out.bytes)];
    let to = SockaddrIn::from(out.dest);
    let pin = libc::in_pktinfo {
        ipi_ifindex: i32::try_from(out.ifindex).unwrap_or(0),
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(out.source).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    let pinned = [ControlMessage::Ipv4PacketInfo(&pin)];
    let cmsgs = if out.dest.ip().is_broadcast() && out.ifindex != 0 {
        &pinned[..]
    } else {
        &[]
    };
    Ok(sendmsg(fd, &iov, cmsgs, MsgFlags::empty(), Some(&to))?)
}

/// A reply ready to leave: by which socket, to where, and for a broadcast out of which
/// interface and from which address.
struct Outgoing {
    bytes: Vec<u8>,
    dest: SocketAddrV4,
    socket: usize,
    ifindex: u32,
    source: Ipv4Addr,
}

struct Job {
    lease: Lease,
    reply: Option<Outgoing>,
}

struct Shared {
    engine: Mutex<Engine>,
    plan: Plan,
    /// Per socket, per subnet: our address as the subnet's clients see it.
    server_ids: Vec<Vec<Ipv4Addr>>,
    /// The server identifier for a client of no configured subnet (an INFORM in inform mode)
    /// when the arrival gave no local address.
    fallback_id: Ipv4Addr,
    port: u16,
    stats: Arc<Stats>,
    /// The monotonic clock the wall clock is checked against (see [`Engine::observe_clock`]).
    started: Instant,
    recorder: Recorder,
    /// Per subnet: its network, which names it in alarms, and its exhaustion alarm.
    networks: Vec<ipnet::Ipv4Net>,
    exhausted: Mutex<Vec<Exhaustion>>,
}

impl Shared {
    /// The networks whose `dhcp_pool_exhausted` alarm is to be cleared now: the alarm may be
    /// stored, no client of the subnet was refused since the last round (a pool at its limit,
    /// refusing one client in a while, keeps its alarm rather than have it cleared and raised
    /// again at every freed address), and a new client could be given an address. Each round
    /// starts a new period of refusals.
    fn recovered(&self, engine: &Engine) -> Vec<String> {
        let now = now_unix();
        let mut all = self.exhausted.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (subnet, slot) in all.iter_mut().enumerate() {
            if slot.open && !slot.refused && engine.has_free(subnet, now) {
                *slot = Exhaustion {
                    open: false,
                    ..Exhaustion::default()
                };
                if let Some(net) = self.networks.get(subnet) {
                    out.push(net.to_string());
                }
            }
            slot.refused = false;
        }
        out
    }

    /// Raises `dhcp_pool_exhausted` for `subnet`, unless it was raised within
    /// [`EXHAUSTED_ALARM_EVERY`].
    fn alarm_exhausted(&self, subnet: usize, mac: crate::model::Mac) {
        let Some(net) = self.networks.get(subnet) else {
            return;
        };
        {
            let mut all = self.exhausted.lock().unwrap_or_else(|p| p.into_inner());
            let Some(slot) = all.get_mut(subnet) else {
                return;
            };
            slot.refused = true;
            slot.open = true;
            if slot
                .raised
                .is_some_and(|at| at.elapsed() < EXHAUSTED_ALARM_EVERY)
            {
                return;
            }
            slot.raised = Some(Instant::now());
        }
        self.recorder.alarm(
            AlarmKind::DhcpPoolExhausted,
            net.to_string(),
            format!(
                "no free address in DHCP subnet {net} for {mac}: every address of its ranges is \
                 leased, offered, reserved or quarantined (a declined address); widen \
                 dhcp.subnet.ranges or shorten its lease_seconds"
            ),
        );
    }
}

/// A DHCP server ready to serve: leases loaded, sockets bound.
pub struct Server {
    shared: Arc<Shared>,
    sockets: Vec<UdpSocket>,
    senders: Vec<StdUdpSocket>,
    store: Store,
    /// This server's addresses inside a range, already warned about.
    own_in_ranges: Vec<Ipv4Addr>,
}

impl Server {
    pub async fn prepare(
        bound: Bound,
        config: &DhcpConfig,
        url: Option<ProvisioningUrl>,
        store: Store,
        recorder: Recorder,
        stats: Arc<Stats>,
    ) -> Result<Server, DhcpError> {
        let plan = Plan::new(config, url).map_err(DhcpError::Config)?;
        let mut engine = Engine::new(config);
        let s = store.clone();
        let (leases, devices) = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::StoreError>((s.list_leases()?, s.list_devices()?))
        })
        .await
        .map_err(|e| DhcpError::Task(e.to_string()))??;
        tracing::info!(leases = leases.len(), "DHCP leases loaded");
        let shortened = engine.load(leases, now_unix());
        if !shortened.is_empty() {
            tracing::warn!(
                leases = shortened.len(),
                "stored DHCP leases ran further ahead than a lease may (the clock went back while \
                 stopped): each now ends at most the lease time it was given from now"
            );
            let s = store.clone();
            tokio::task::spawn_blocking(move || s.put_leases(&shortened))
                .await
                .map_err(|e| DhcpError::Task(e.to_string()))??;
        }
        let listen_ip = match config.listen {
            SocketAddr::V4(a) => *a.ip(),
            SocketAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        let mut server_ids = Vec::new();
        let mut sockets = Vec::new();
        let mut senders = Vec::new();
        let mut port = config.listen.port();
        for (sock, device) in bound.sockets {
            let ids: Vec<Ipv4Addr> = config
                .subnets
                .iter()
                .map(|s| {
                    s.server_id.unwrap_or_else(|| {
                        let target = s
                            .ranges
                            .first()
                            .map(|r| r[0])
                            .unwrap_or(s.network.network());
                        route_source(target, device.as_deref()).unwrap_or(listen_ip)
                    })
                })
                .collect();
            tracing::info!(interface = device.as_deref().unwrap_or("*"), server_ids = ?ids, "DHCP socket");
            server_ids.push(ids);
            port = sock.local_addr().map(|a| a.port()).unwrap_or(port);
            senders.push(sock.try_clone().map_err(DhcpError::Io)?);
            sockets.push(UdpSocket::from_std(sock).map_err(DhcpError::Io)?);
        }
        let own = own_addresses(&server_ids);
        let mut own_in_ranges = Vec::new();
        set_own_addresses(&mut engine, &own, &mut own_in_ranges);
        engine.set_reservations(reservations::from_devices(&devices, &config.subnets, &own).0);
        Ok(Server {
            shared: Arc::new(Shared {
                engine: Mutex::new(engine),
                plan,
                server_ids,
                fallback_id: listen_ip,
                port,
                stats,
                started: Instant::now(),
                recorder,
                networks: config.subnets.iter().map(|s| s.network).collect(),
                exhausted: Mutex::new(vec![Exhaustion::default(); config.subnets.len()]),
            }),
            sockets,
            senders,
            store,
            own_in_ranges,
        })
    }

    /// Serves until `stop` turns true, then commits and answers what is queued. Ends early
    /// with an error naming the part that died (the lease writer thread, a receive loop, the
    /// reservation refresh): without the writer no lease is stored and no ACK sent.
    pub async fn serve(
        self,
        subnets: Vec<super::config::SubnetConfig>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), String> {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let store = self.store.clone();
        let stats = self.shared.stats.clone();
        let senders = self.senders;
        let mut writer = Watched::spawn("lease writer", "edgeprov-dhcp-writer", move || {
            write_loop(store, rx, senders, stats);
            Ok::<(), std::convert::Infallible>(())
        })
        .map_err(|e| format!("cannot start the lease writer thread: {e}"))?;
        let mut tasks = tokio::task::JoinSet::new();
        for (idx, sock) in self.sockets.into_iter().enumerate() {
            tasks.spawn(recv_loop(
                sock,
                idx,
                self.shared.clone(),
                tx.clone(),
                stop.clone(),
            ));
        }
        drop(tx);
        let refresh = {
            let shared = self.shared.clone();
            let store = self.store.clone();
            let mut stop = stop.clone();
            let mut own_in_ranges = self.own_in_ranges;
            async move {
                // The first round runs at once, so a reservation refused at start is told
                // then rather than a refresh later.
                let mut refused = Vec::new();
                let mut first = true;
                loop {
                    if !std::mem::take(&mut first) {
                        tokio::select! {
                            _ = tokio::time::sleep(RESERVATION_REFRESH) => {}
                            _ = stop.changed() => return,
                        }
                    }
                    let s = store.clone();
                    let Ok(Ok(devices)) =
                        tokio::task::spawn_blocking(move || s.list_devices()).await
                    else {
                        continue;
                    };
                    let own = own_addresses(&shared.server_ids);
                    let (map, problems) = reservations::from_devices(&devices, &subnets, &own);
                    let recovered = {
                        let mut engine = shared.engine.lock().unwrap_or_else(|p| p.into_inner());
                        set_own_addresses(&mut engine, &own, &mut own_in_ranges);
                        engine.set_reservations(map);
                        shared.recovered(&engine)
                    };
                    report_refused(&shared.recorder, &store, &mut refused, problems).await;
                    clear_exhausted(&shared.recorder, &store, recovered).await;
                }
            }
        };
        tasks.spawn(refresh);
        let failed = tokio::select! {
            _ = stop.wait_for(|s| *s) => None,
            reason = writer.failed() => Some(format!("lease writer {reason}")),
            reason = async {
                while let Some(done) = tasks.join_next().await {
                    if let Err(e) = done
                        && let Some(reason) = join_failure(e)
                    {
                        return reason;
                    }
                }
                std::future::pending().await
            } => Some(format!("receive or refresh task {reason}")),
        };
        if failed.is_some() {
            // The others are cancelled; the writer then commits what they queued and ends.
            tasks.shutdown().await;
        } else {
            while tasks.join_next().await.is_some() {}
        }
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        failed.map_or(Ok(()), Err)
    }
}

/// Tells the operator about reservations that cannot be honoured: a
/// `dhcp_reservation_refused` alarm per device when its problem is new or changed, cleared once
/// the device's reservation is honoured or gone. `last` holds what was told before.
async fn report_refused(
    recorder: &Recorder,
    store: &Store,
    last: &mut Vec<reservations::Refused>,
    now: Vec<reservations::Refused>,
) {
    if now == *last {
        return;
    }
    for p in now.iter().filter(|p| !last.contains(p)) {
        tracing::warn!("DHCP reservation refused: {}", p.message);
        recorder.alarm(
            AlarmKind::DhcpReservationRefused,
            p.mac.to_string(),
            format!(
                "{}; the device gets a dynamic address until its dhcp:address is corrected",
                p.message
            ),
        );
    }
    let fixed: Vec<String> = last
        .iter()
        .filter(|p| !now.iter().any(|n| n.mac == p.mac))
        .map(|p| p.mac.to_string())
        .collect();
    *last = now;
    if fixed.is_empty() {
        return;
    }
    let store = store.clone();
    let cleared = tokio::task::spawn_blocking(move || {
        fixed.iter().try_for_each(|mac| {
            store
                .clear_alarm(AlarmKind::DhcpReservationRefused, mac)
                .map(drop)
        })
    })
    .await;
    if let Ok(Err(e)) = cleared {
        tracing::warn!(error = %e, "clearing a dhcp_reservation_refused alarm");
    }
}

/// Clears the `dhcp_pool_exhausted` alarms of `networks`, once the recorder has stored every
/// alarm raised before (one still queued would otherwise come back after the clear).
async fn clear_exhausted(recorder: &Recorder, store: &Store, networks: Vec<String>) {
    if networks.is_empty() {
        return;
    }
    let (recorder, store) = (recorder.clone(), store.clone());
    let cleared = tokio::task::spawn_blocking(move || {
        recorder.flush_blocking();
        networks.iter().try_for_each(|net| {
            store
                .clear_alarm(AlarmKind::DhcpPoolExhausted, net)
                .map(|gone| {
                    if gone.is_some() {
                        tracing::info!(subnet = %net, "DHCP pool has free addresses again: dhcp_pool_exhausted cleared");
                    }
                })
        })
    })
    .await;
    if let Ok(Err(e)) = cleared {
        tracing::warn!(error = %e, "clearing a dhcp_pool_exhausted alarm");
    }
}

async fn recv_loop(
    sock: UdpSocket,
    idx: usize,
    shared: Arc<Shared>,
    writer: SyncSender<Job>,
    mut stop: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 4096];
    let mut cmsg = nix::cmsg_space!(libc::in_pktinfo);
    let fd = sock.as_raw_fd();
    loop {
        let (len, arrival) = tokio::select! {
            r = sock.async_io(Interest::READABLE, || recv_with_pktinfo(fd, &mut buf, &mut cmsg)) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(error = %e, "DHCP receive");
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        // Decoding is written not to panic; should a dependency still do so on some input, the
        // packet is counted as malformed and the loop goes on answering.
        let packet = &buf[..len];
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            handle(&sock, idx, &shared, &writer, packet, arrival)
        }));
        if handled.is_err() {
            bump(&shared.stats.malformed);
            tracing::error!(peer = %arrival.peer, "DHCP packet made the decoder panic; dropped");
        }
    }
}

fn handle(
    sock: &UdpSocket,
    idx: usize,
    shared: &Shared,
    writer: &SyncSender<Job>,
    bytes: &[u8],
    arrival: Arrival,
) {
    let peer = arrival.peer;
    let stats = &shared.stats;
    bump(&stats.received);
    let req = match packet::decode(bytes) {
        Ok(r) => r,
        Err(e) => {
            bump(if e.is_malformed() {
                &stats.malformed
            } else {
                &stats.ignored
            });
            tracing::debug!(%peer, error = %e, "DHCP packet dropped");
            return;
        }
    };
    let now = now_unix();
    let mono = i64::try_from(shared.started.elapsed().as_secs()).unwrap_or(i64::MAX);
    let (decision, subnet, server_id, stepped) = {
        let mut engine = shared.engine.lock().unwrap_or_else(|p| p.into_inner());
        let stepped = engine.observe_clock(now, mono);
        let subnet = engine.subnet_for(&req, engine.attached(arrival.local));
        let server_id = subnet
            .and_then(|s| shared.server_ids[idx].get(s).copied())
            .or(Some(arrival.local).filter(|ip| !ip.is_unspecified()))
            .unwrap_or(shared.fallback_id);
        (
            engine.handle(&req, subnet, server_id, now),
            subnet,
            server_id,
            stepped,
        )
    };
    if let Some((step, moved)) = stepped {
        tracing::warn!(
            step_seconds = step,
            leases = moved.len(),
            "the wall clock stepped: running DHCP leases keep the time they had left"
        );
        for lease in moved {
            if writer.try_send(Job { lease, reply: None }).is_err() {
                bump(&stats.dropped);
            }
        }
    }
    let counter = match &decision {
        Decision::Offer { .. } => &stats.offers,
        Decision::Ack { .. } => &stats.acks,
        Decision::InformAck { .. } => &stats.informs,
        Decision::Nak { why, freed } => {
            tracing::debug!(mac = %req.mac, why, freed = ?freed.as_ref().map(|l| l.ip), "DHCP NAK");
            &stats.naks
        }
        Decision::Write(l) if l.state == crate::model::LeaseState::Declined => {
            // One per address at most every quarantine: only an address the client was given
            // can be declined, and a declined one is given to no one until it ends.
            shared.recorder.alarm(
                AlarmKind::DhcpAddressDeclined,
                l.ip.to_string(),
                format!(
                    "client {} declined {}: another device answers on it (a fixed address \
                     inside dhcp.subnet.ranges?); kept out of use for dhcp.decline_seconds",
                    l.mac, l.ip
                ),
            );
            &stats.declines
        }
        Decision::Write(_) => &stats.releases,
        Decision::Exhausted => {
            tracing::warn!(mac = %req.mac, "DHCP pool exhausted");
            if let Some(subnet) = subnet {
                shared.alarm_exhausted(subnet, req.mac);
            }
            &stats.exhausted
        }
        Decision::Ignore(why) => {
            tracing::debug!(mac = %req.mac, why, "DHCP request ignored");
            &stats.ignored
        }
    };
    bump(counter);
    let reply = shared
        .plan
        .reply(&req, &decision, server_id)
        .map(|r| Outgoing {
            bytes: packet::encode(&req, &r),
            dest: packet::destination(&req, r.msg_type, shared.port),
            socket: idx,
            ifindex: arrival.ifindex,
            source: arrival.local,
        });
    let job = match (decision, reply) {
        (Decision::Ack { lease, .. }, Some(out)) => Job {
            lease,
            reply: Some(out),
        },
        (Decision::Write(lease), _) => Job { lease, reply: None },
        // Offers, NAKs and INFORM answers (a DHCPACK too, RFC 2131 4.3.5) bind no address: they
        // leave at once. Only the engine's Ack carries a lease that must be durable first.
        (decision, Some(out)) => {
            debug_assert!(
                !matches!(decision, Decision::Ack { .. }),
                "a lease must be committed before its ACK leaves"
            );
            let fd = sock.as_raw_fd();
            if let Err(e) = sock.try_io(Interest::WRITABLE, || send_reply(fd, &out)) {
                bump(&stats.send_errors);
                tracing::debug!(dest = %out.dest, error = %e, "DHCP send");
            }
            // The lease a NAK ended is stored after the NAK: it frees an address and promises
            // nothing, so losing it only keeps the address out of use until the old end.
            match decision {
                Decision::Nak {
                    freed: Some(lease), ..
                } => Job { lease, reply: None },
                _ => return,
            }
        }
        _ => return,
    };
    match writer.try_send(job) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => bump(&stats.dropped),
    }
}

fn write_loop(store: Store, rx: Receiver<Job>, senders: Vec<StdUdpSocket>, stats: Arc<Stats>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // One address twice in a batch: the later record wins inside the transaction.
        let leases: Vec<Lease> = batch.iter().map(|j| j.lease.clone()).collect();
        if let Err(e) = store.put_leases(&leases) {
            stats
                .commit_errors
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            tracing::error!(error = %e, leases = batch.len(), "DHCP leases not saved: their ACKs are not sent");
            continue;
        }
        for out in batch.into_iter().filter_map(|j| j.reply) {
            if let Some(sock) = senders.get(out.socket)
                && send_reply(sock.as_raw_fd(), &out).is_err()
            {
                bump(&stats.send_errors);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_lookup_sends_nothing_and_finds_loopback() {
        assert_eq!(
            route_source(Ipv4Addr::LOCALHOST, None),
            Some(Ipv4Addr::LOCALHOST)
        );
    }

    #[test]
    fn later_record_of_an_address_wins_in_a_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let mk = |state| Lease {
            ip: Ipv4Addr::new(10, 0, 0, 1),
            mac: crate::model::Mac::from_octets([1; 6]),
            client_id: String::new(),
            hostname: String::new(),
            vendor_class: String::new(),
            state,
            starts: 0,
            expires: 0,
            granted: 0,
        };
        let batch = [
            mk(crate::model::LeaseState::Bound),
            mk(crate::model::LeaseState::Released),
        ];
        store.put_leases(&batch).unwrap();
        let stored = store.list_leases().unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].state, crate::model::LeaseState::Released);
    }
}
