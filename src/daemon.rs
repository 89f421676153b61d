//! Starts every service as a task and wires shutdown: bind everything first (so a port in use
//! fails the start, naming the key), then serve until SIGTERM/SIGINT, then drain connections,
//! flush the recorder and close the database cleanly.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::config::Loaded;
use crate::firmware::{Firmware, FirmwareError};
use crate::logging::LogControl;
use crate::phone::{self, PhoneState};
use crate::pki::{LiveCerts, PkiError, Revocations};
use crate::reload::{Reloader, RunningConfig};
use crate::serve::{ConnInfo, ConnectionLimit, Limits, TlsSource, accept_loop};
use crate::store::{Recorder, Store, StoreError};

/// What the logs, the exit error and alarms call the check-in recorder thread.
const RECORDER: &str = "check-in recorder";
/// How long shutdown waits for the service loops to end, and then for open connections to
/// finish their requests: twice this stays inside the unit's `TimeoutStopSec=30s`.
const DRAIN: Duration = Duration::from_secs(10);
/// Connections the admin API holds open at once: administrators and their scripts need a few;
/// the limit keeps a flood of them from taking the memory the phones need.
const ADMIN_CONNECTIONS: usize = 256;
/// Open files the daemon needs besides its connections: the store, the log, DNS and DHCP
/// sockets, firmware images being served.
const OTHER_FILES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Scep(#[from] crate::phone::scep::ChallengeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Token(#[from] admin::token::TokenError),
    #[error(transparent)]
    Dhcp(#[from] crate::dhcp::DhcpError),
    #[error("cannot listen on {addr} ({key}): {source}{}", bind_hint(*addr, key, source))]
    Bind {
        addr: SocketAddr,
        key: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Firmware(#[from] FirmwareError),
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    #[error("dns: {0}")]
    Dns(String),
    #[error("pnp: {0}")]
    Pnp(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the {0} thread: {1}")]
    Thread(&'static str, std::io::Error),
    #[error("{service}: {reason}; stopped so that the service manager starts edgeprov again")]
    Failed {
        service: &'static str,
        reason: String,
    },
}

/// What to do about a listener that cannot be bound, for the cases an installer meets first:
/// systemd-resolved's stub resolver (Ubuntu) holding `127.0.0.53:53`, which takes port 53 from
/// the packaged `0.0.0.0:53` too; another program on the port; a privileged port (the
/// package's 53, 67, 80, 443) started by hand without root or the unit's capability; an
/// address copied from another box's config.
fn bind_hint(addr: SocketAddr, key: &str, source: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match source.kind() {
        ErrorKind::AddrInUse if addr.port() == 53 && addr.ip().is_unspecified() => {
            " (systemd-resolved's stub at 127.0.0.53:53 takes the port from a wildcard address: \
             list this box's LAN addresses in dns.listen instead; `ss -lptun` shows who has it)"
                .into()
        }
        ErrorKind::AddrInUse => " (`ss -lptun` shows which program has it)".into(),
        ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            " (a port below 1024 needs CAP_NET_BIND_SERVICE, which the packaged \
             edgeprov.service grants: start it with `systemctl start edgeprov`, run by hand as \
             root, or give {key} a port above 1023)"
        ),
        ErrorKind::AddrNotAvailable => format!(
            " (no interface of this box has that address: `ip -br addr` lists them; give {key} \
             one of those or the wildcard {})",
            if addr.is_ipv4() { "0.0.0.0" } else { "[::]" }
        ),
        _ => String::new(),
    }
}

/// The addresses actually bound, written to `<data_dir>/listeners.json` for the CLI and tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Listeners {
    pub phone_https: Vec<SocketAddr>,
    pub phone_http: Vec<SocketAddr>,
    pub admin: SocketAddr,
    /// DNS responder addresses (UDP and TCP on each); empty when it is off.
    #[serde(default)]
    pub dns: Vec<SocketAddr>,
    /// The DHCP socket's address, when `[dhcp] enabled`.
    #[serde(default)]
    pub dhcp: Option<SocketAddr>,
    /// The plug-and-play socket's address, when `[pnp] enabled`.
    #[serde(default)]
    pub pnp: Option<SocketAddr>,
}

/// Connections the kernel queues on a listener until they are accepted. A boot storm's
/// arrivals, and connections waiting for a free slot (`phone.max_connections`), wait here
/// instead of having their SYNs dropped and retried a second later; the kernel caps it at
/// `net.core.somaxconn` (4,096 by default). tokio's own `bind` asks for 1,024.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr, key: &'static str) -> Result<TcpListener, DaemonError> {
    let err = |source| DaemonError::Bind { addr, key, source };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    // As the standard library's bind does: a restart may bind while old connections linger.
    socket.set_reuseaddr(true).map_err(err)?;
    // IPv6 only, as nginx's listen does: `[::]:443` would otherwise take IPv4 too (Linux's
    // default `bindv6only = 0`), and a config listing both `0.0.0.0:443` and `[::]:443` would
    // fail its start with "address in use".
    if addr.is_ipv6() {
        socket2::SockRef::from(&socket)
            .set_only_v6(true)
            .map_err(err)?;
    }
    socket.bind(addr).map_err(err)?;
    socket.listen(LISTEN_BACKLOG).map_err(err)
}

/// Raises the open-file limit for `needed` files, and warns when even the hard limit is lower:
/// connections beyond it would fail to be accepted.
fn raise_open_files(needed: usize) {
    match crate::open_files::raise() {
        Ok(limit) if limit.now < needed as u64 => tracing::warn!(
            limit = limit.now,
            needed,
            "the open-file limit is below what phone.max_connections (and dns.tcp_max_connections \
             when DNS is on) need; connections beyond it fail to be accepted: raise LimitNOFILE \
             (ulimit -n) or lower those limits"
        ),
        Ok(limit) if limit.now > limit.before => tracing::debug!(
            before = limit.before,
            now = limit.now,
            "open-file limit raised"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

/// Runs the daemon until SIGTERM or SIGINT. `log` lets a reload change the log level.
/// Static files stored by an edgeprov that did not yet read them for secrets (or read them
/// another way) are read once;
/// each that holds one is from now on served only to proven devices, which is alarmed, since
/// phones that fetched it without proof until now no longer can.
async fn protect_old_static_files(store: &Store, recorder: &Recorder) -> Result<(), StoreError> {
    let s = store.clone();
    let protected = tokio::task::spawn_blocking(move || {
        use crate::settings::secrets::{READING, secret_lines};
        s.backfill_static_flags(READING, |bytes| !secret_lines(bytes).is_empty())
    })
    .await
    .expect("static file read task")?;
    for (site, name) in protected {
        let source = match site.is_empty() {
            true => name,
            false => format!("{site}/{name}"),
        };
        tracing::warn!(file = %source, "a static file holds a secret: only proven devices get it now");
        recorder.alarm(
            crate::model::AlarmKind::StaticFileProtected,
            source,
            "it holds a password or PIN (edgeprov file list shows which lines), so from this \
             version on only a device that proves who it is gets it",
        );
    }
    Ok(())
}

/// Opens the store, upgrading an older file first. The upgrade of a long history takes minutes;
/// a SIGTERM meanwhile (systemd's stop timeout is 30 s) ends it after the chunk in hand instead
/// of waiting for all of it, and a SIGHUP is left for later: there is nothing to reload yet.
async fn open_store(db_path: PathBuf, signals: &mut Signals) -> Result<Store, StoreError> {
    let stop = Arc::new(AtomicBool::new(false));
    let asked = stop.clone();
    let mut open = tokio::task::spawn_blocking(move || {
        Store::open_reporting(&db_path, |p| {
            crate::notify::starting(&format!(
                "upgrading the database: {} of {} check-ins indexed by device",
                p.done, p.total
            ));
            match asked.load(Ordering::Relaxed) {
                true => ControlFlow::Break(()),
                false => ControlFlow::Continue(()),
            }
        })
    });
    loop {
        tokio::select! {
            opened = &mut open => return opened.expect("store open task"),
            signal = signals.next() => {
                if signal == Signal::Stop {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
    }
}

pub async fn run(loaded: Loaded, log: Option<LogControl>) -> Result<(), DaemonError> {
    // Installed first: a SIGHUP or SIGTERM that arrives right after READY must not kill the
    // process with the default action.
    let mut signals = Signals::install();
    let config = loaded.config.clone();
    let dns_tcp = match config.dns.listen.is_empty() {
        true => 0,
        false => config.dns.tcp_max_connections,
    };
    raise_open_files(config.phone.max_connections + ADMIN_CONNECTIONS + dns_tcp + OTHER_FILES);
    // Before anything is bound: an unusable challenge file stops the start with its reason.
    let scep = crate::phone::scep::ScepService::new(&config)?;
    let data_dir = config.data_dir.clone();
    crate::data_dir::prepare(&data_dir)?;
    // Held until the daemon exits: a restore refuses to swap the directory meanwhile.
    let _data_dir_lock = crate::data_dir::lock(&data_dir)?;
    crate::data_dir::prepare(&config.firmware.cache_dir(&data_dir))?;
    let db_path = config.db_path();
    let store = match open_store(db_path, &mut signals).await {
        Err(StoreError::UpgradeStopped { done, total }) => {
            tracing::info!(
                done,
                total,
                "stopped during the database upgrade; the next start goes on from there"
            );
            return Ok(());
        }
        opened => opened?,
    };
    if let (Some(log), Ok(Some(level))) = (&log, store.preferences().map(|p| p.log_level)) {
        // Said while the file's level is still in force: under the stored one (`error`, `off`)
        // the note would not pass, and it is then that the file's level seems ignored.
        if let Some(note) = crate::logging::preference_note(&level, &config.log_level) {
            tracing::warn!("{note}");
        }
        log.set_level(&level)
            .unwrap_or_else(|e| tracing::warn!("stored log level {level:?} not applied: {e}"));
    }
    let revoked = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.revoked_certs())
            .await
            .expect("store read task")?
    };
    let certs = Arc::new(LiveCerts::start(&config, Revocations::new(revoked))?);
    let pki = certs.pki();
    let admin_token = admin::token::load_or_create(&config.token_path())?;
    let token: Arc<str> = admin_token.token.into();
    let phone_tls: TlsSource = certs.phone_tls();

    let mut https = Vec::new();
    for addr in &config.phone.https_listen {
        https.push(bind(*addr, "phone.https_listen")?);
    }
    let mut http = Vec::new();
    for addr in &config.phone.http_listen {
        http.push(bind(*addr, "phone.http_listen")?);
    }
    let admin_listener = bind(config.admin.listen, "admin.listen")?;
    let dns_sockets = crate::dns::bind(&config.dns.listen)
        .await
        .map_err(|(addr, source)| DaemonError::Bind {
            addr,
            key: "dns.listen",
            source,
        })?;
    let dhcp_bound =
        match config.dhcp.enabled {
            true => Some(crate::dhcp::server::bind(&config.dhcp).map_err(|source| {
                DaemonError::Bind {
                    addr: config.dhcp.listen,
                    key: "dhcp.listen",
                    source,
                }
            })?),
            false => None,
        };
    let pnp_bound = match config.pnp.enabled {
        true => Some(
            crate::pnp::bind(&config.pnp).map_err(|(key, source)| DaemonError::Bind {
                addr: config.pnp.listen,
                key,
                source,
            })?,
        ),
        false => None,
    };
    let local = |l: &TcpListener| l.local_addr().expect("bound socket has an address");
    let listeners = Listeners {
        phone_https: https.iter().map(local).collect(),
        phone_http: http.iter().map(local).collect(),
        admin: local(&admin_listener),
        dns: dns_sockets.addrs.clone(),
        dhcp: dhcp_bound.as_ref().and_then(|b| b.local_addr()),
        pnp: pnp_bound.as_ref().and_then(|b| b.local_addr()),
    };
    let provisioning = crate::dns::Provisioning::derive(
        &config.dns,
        &config.pki.server_names,
        listeners.phone_https[0],
        listeners.phone_http.first().copied(),
    )
    .map_err(DaemonError::Dns)?;
    let dns_zone = {
        let (store, dns) = (store.clone(), config.dns.clone());
        tokio::task::spawn_blocking(move || crate::dns::DnsZone::load(store, &dns, provisioning))
            .await
            .expect("zone load task")?
    };

    let sync = crate::sync::SyncHandle::new(store.clone(), config.pki_dir(), config.cloud.clone());
    let (recorder, mut recorder_thread) =
        Recorder::start(store.clone()).map_err(|e| DaemonError::Thread(RECORDER, e))?;
    pki.revocations().alarm_to(recorder.clone());
    protect_old_static_files(&store, &recorder).await?;
    let firmware = {
        let (fw, dir, store, recorder) = (
            config.firmware.clone(),
            data_dir.clone(),
            store.clone(),
            recorder.clone(),
        );
        tokio::task::spawn_blocking(move || Firmware::open(&fw, &dir, store, recorder))
            .await
            .expect("firmware open task")?
    };
    let dhcp_stats = Arc::new(crate::dhcp::Stats::default());
    let dns_stats = Arc::new(crate::dns::Stats::default());
    let pnp_stats = Arc::new(crate::pnp::Stats::default());
    let metrics = Arc::new(crate::metrics::Metrics::new(Arc::new(
        ConnectionLimit::new(
            config.phone.max_connections,
            config.phone.connections_per_address(),
        ),
    )));
    let phone_state = Arc::new(
        PhoneState::new(
            store.clone(),
            recorder.clone(),
            pki.clone(),
            certs.clone(),
            firmware.clone(),
            metrics.clone(),
            &config.phone,
        )
        .with_scep(scep)
        .with_uploads(config.uploads.clone())
        .with_https_port(listeners.phone_https[0].port()),
    );
    let running = RunningConfig::new(config.clone());
    let admin_state = AdminState {
        store: store.clone(),
        recorder: recorder.clone(),
        pki: pki.clone(),
        guard: Arc::new(admin::Guard {
            box_token: token,
            limiter: admin::FailureLimiter::new(config.admin.auth_failures_per_minute),
        }),
        firmware: firmware.clone(),
        dhcp: dhcp_stats.clone(),
        dns: dns_stats.clone(),
        pnp: pnp_stats.clone(),
        config: running.clone(),
        metrics: metrics.clone(),
        log: log.clone(),
    };
    let limits = Arc::new(Limits {
        handshakes: metrics.phone_handshakes.clone(),
        handshake: Duration::from_millis(config.phone.handshake_timeout_ms),
        header: Duration::from_millis(config.phone.header_timeout_ms),
        send: Duration::from_millis(config.phone.send_timeout_ms),
        connections: metrics.phone_connections.clone(),
    });
    let admin_limits = Arc::new(Limits {
        connections: Arc::new(ConnectionLimit::new(ADMIN_CONNECTIONS, 0)),
        handshakes: metrics.admin_handshakes.clone(),
        ..*limits
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let graceful = Arc::new(GracefulShutdown::new());
    let mut loops = crate::supervise::Loops::default();

    let phone_service = move |state: Arc<PhoneState>| {
        move |info: ConnInfo| {
            let state = state.clone();
            let conn = Arc::new(phone::PhoneConn::new(info, &state));
            hyper::service::service_fn(move |req| phone::handle(state.clone(), conn.clone(), req))
        }
    };
    for (listener, tls) in https
        .into_iter()
        .map(|l| (l, Some(phone_tls.clone())))
        .chain(http.into_iter().map(|l| (l, None)))
    {
        loops.spawn(
            "phone listener",
            accept_loop(
                listener,
                tls,
                limits.clone(),
                phone_service(phone_state.clone()),
                stop_rx.clone(),
                graceful.clone(),
            ),
        );
    }
    if !config.dns.listen.is_empty() {
        loops.spawn_checked(
            "DNS",
            crate::dns::serve(
                dns_sockets,
                dns_zone.clone(),
                config.dns.clone(),
                dns_stats,
                stop_rx.clone(),
            ),
        );
    }
    if let Some(bound) = dhcp_bound {
        let url =
            crate::dhcp::provisioning_url_bound(&config, listeners.phone_https.first().copied())
                .inspect_err(|e| tracing::warn!("DHCP vendor defaults off: {e}"))
                .ok();
        let server = crate::dhcp::server::Server::prepare(
            bound,
            &config.dhcp,
            url,
            store.clone(),
            recorder.clone(),
            dhcp_stats,
        )
        .await?;
        loops.spawn_checked(
            "DHCP",
            server.serve(config.dhcp.subnets.clone(), stop_rx.clone()),
        );
    }
    if let Some(bound) = pnp_bound {
        // Unlike DHCP's vendor defaults, PnP has nothing to say without a URL: a URL that
        // cannot be made fails the start (a derived one only fails for a bad server name).
        let url =
            crate::pnp::url(&config, listeners.phone_https.first().copied()).map_err(|reason| {
                DaemonError::Failed {
                    service: "PnP",
                    reason,
                }
            })?;
        tracing::info!(joined = ?bound.joined, %url, "PnP: answering ua-profile SUBSCRIBEs");
        loops.spawn_checked(
            "PnP",
            crate::pnp::serve(bound, config.pnp.clone(), url, pnp_stats, stop_rx.clone()),
        );
    }
    loops.spawn(
        "firmware catalogue",
        firmware
            .clone()
            .follow_cloud(store.cloud_catalogue_changes(), stop_rx.clone()),
    );
    loops.spawn(
        "cloud sync",
        crate::sync::run(sync.clone(), recorder.clone(), stop_rx.clone()),
    );
    let jobs = Arc::new(crate::jobs::JobsHandle::default());
    loops.spawn(
        "jobs",
        crate::jobs::run(store.clone(), firmware, jobs.clone(), stop_rx.clone()),
    );
    let router = admin::router(admin_state)
        .layer(axum::Extension(dns_zone))
        .layer(axum::Extension(sync))
        .layer(axum::Extension(certs.clone()))
        .layer(axum::Extension(jobs));
    loops.spawn(
        "admin listener",
        accept_loop(
            admin_listener,
            Some(certs.admin_tls()),
            admin_limits,
            move |info: ConnInfo| {
                TowerToHyperService::new(router.clone().layer(axum::Extension(Arc::new(info))))
            },
            stop_rx.clone(),
            graceful.clone(),
        ),
    );
    loops.spawn(
        "retention",
        crate::retention::run(store.clone(), stop_rx.clone()),
    );
    loops.spawn(
        "certificate expiry",
        crate::pki::expiry::watch(
            certs.clone(),
            store.clone(),
            recorder.clone(),
            stop_rx.clone(),
        ),
    );
    loops.spawn("watchdog", crate::notify::watchdog(store.clone(), stop_rx));

    let listeners_path = config.listeners_path();
    let json = serde_json::to_vec_pretty(&listeners).expect("listener addresses serialize");
    crate::fsutil::write_atomic(&listeners_path, &json, 0o644).map_err(|source| {
        DaemonError::Io {
            path: listeners_path.clone(),
            source,
        }
    })?;
    let status = crate::start_notes::serving(&listeners);
    tracing::info!(
        phone_https = ?listeners.phone_https,
        phone_http = ?listeners.phone_http,
        admin = %listeners.admin,
        dns = ?listeners.dns,
        data_dir = %data_dir.display(),
        "{status}"
    );
    if admin_token.created {
        tracing::info!(
            "{}",
            crate::start_notes::first_start(&config.token_path(), loaded.source.as_deref())
        );
    }
    crate::notify::ready(&status);
    let mut reloader = Reloader {
        source: loaded.source.clone(),
        current: running,
        started: config.clone(),
        certs,
        log,
        store: store.clone(),
    };
    let failed = loop {
        tokio::select! {
            signal = signals.next() => {
                if signal == Signal::Stop {
                    break None;
                }
                crate::notify::reloading();
                // `systemctl reload` only sends the signal: the status is where `systemctl
                // status` shows that the file was refused, or what waits for a restart.
                let note = match reloader.reload() {
                    Ok(waiting) if waiting.is_empty() => String::new(),
                    Ok(waiting) => format!(
                        "; changed, applied at the next restart: {}",
                        waiting.join(", ")
                    ),
                    Err(e) => format!("; reload refused, still on the previous configuration: {e}"),
                };
                crate::notify::ready(&format!("{status}{note}"));
            }
            (service, reason) = loops.first_failure() => {
                tracing::error!(service, "{reason}: stopping");
                break Some((service, reason));
            }
            reason = recorder_thread.failed() => {
                // What it had taken is lost and what is still queued cannot be written; the
                // restart starts a new one.
                tracing::error!(service = RECORDER, "{reason}: stopping");
                break Some((RECORDER, reason));
            }
        }
    };
    crate::notify::stopping();
    tracing::info!("stopping: draining connections");
    let _ = stop_tx.send(true);
    loops.stop_within(DRAIN).await;
    match Arc::try_unwrap(graceful) {
        Ok(g) => {
            if tokio::time::timeout(DRAIN, g.shutdown()).await.is_err() {
                tracing::warn!("some connections did not finish within {DRAIN:?}; closing them");
            }
        }
        Err(_) => tracing::warn!("connection tracker still shared; not draining"),
    }
    if let Some((service, reason)) = &failed
        && *service != RECORDER
    {
        recorder.alarm(
            crate::model::AlarmKind::ServiceFailed,
            *service,
            format!("{reason}; edgeprov stopped to be started again"),
        );
    }
    recorder.stop();
    let _ = tokio::task::spawn_blocking(move || recorder_thread.join()).await;
    let _ = std::fs::remove_file(&listeners_path);
    drop(store);
    tracing::info!("stopped");
    match failed {
        Some((service, reason)) => Err(DaemonError::Failed { service, reason }),
        None => Ok(()),
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Signal {
    Stop,
    Reload,
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{SignalKind, signal};
        let get = |kind| signal(kind).expect("installing a signal handler");
        Signals {
            term: get(SignalKind::terminate()),
            int: get(SignalKind::interrupt()),
            hup: get(SignalKind::hangup()),
        }
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
