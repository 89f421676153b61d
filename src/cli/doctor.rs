//! `edgeprov doctor`: checks what an installer gets wrong (ports, certificates, the clock, the
//! store, DNS/DHCP settings that point phones somewhere they cannot reach) and says how to fix
//! each. Works with the daemon running or stopped.

use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

use crate::config::Config;
use crate::daemon::Listeners;

mod clock;
mod links;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub level: Level,
    pub area: &'static str,
    pub message: String,
    /// What to do about it (empty when nothing).
    pub fix: String,
}

fn check(
    level: Level,
    area: &'static str,
    message: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        level,
        area,
        message: message.into(),
        fix: fix.into(),
    }
}

/// Every configured listening address, with its key.
fn addresses(c: &Config) -> Vec<(&'static str, SocketAddr, bool)> {
    let mut out: Vec<(&'static str, SocketAddr, bool)> = Vec::new();
    out.extend(
        c.phone
            .https_listen
            .iter()
            .map(|a| ("phone.https_listen", *a, true)),
    );
    out.extend(
        c.phone
            .http_listen
            .iter()
            .map(|a| ("phone.http_listen", *a, true)),
    );
    out.push(("admin.listen", c.admin.listen, true));
    out.extend(c.dns.listen.iter().map(|a| ("dns.listen", *a, false)));
    if c.dhcp.enabled {
        out.push(("dhcp.listen", c.dhcp.listen, false));
    }
    if c.pnp.enabled {
        out.push(("pnp.listen", c.pnp.listen, false));
    }
    out
}

/// Binds `addr` as the daemon does, IPv6 sockets IPv6-only (`daemon::bind`), then lets it go:
/// a dual-stack probe of `[::]:443` would call the port taken by whatever holds `0.0.0.0:443`.
fn try_bind(addr: SocketAddr, tcp: bool) -> std::io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let kind = if tcp { Type::STREAM } else { Type::DGRAM };
    let socket = Socket::new(Domain::for_address(addr), kind, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if tcp {
        socket.set_reuse_address(true)?;
    }
    socket.bind(&addr.into())?;
    if tcp {
        socket.listen(1)?;
    }
    Ok(())
}

fn ports(c: &Config, running: Option<&Listeners>) -> Vec<Check> {
    let ours = |a: &SocketAddr| {
        running.is_some_and(|l| {
            l.phone_https.contains(a)
                || l.phone_http.contains(a)
                || l.admin == *a
                || l.dns.contains(a)
                || l.dhcp == Some(*a)
                || l.pnp == Some(*a)
        })
    };
    addresses(c)
        .into_iter()
        .map(|(key, addr, tcp)| {
            let bound = try_bind(addr, tcp);
            match bound {
                Ok(()) if addr.port() == 0 => check(Level::Ok, "ports", format!("{key} {addr}: the kernel picks a port"), ""),
                Ok(()) => check(Level::Ok, "ports", format!("{key} {addr} is free"), ""),
                Err(_) if ours(&addr) => check(Level::Ok, "ports", format!("{key} {addr} is bound by edgeprov"), ""),
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => check(
                    Level::Fail,
                    "ports",
                    format!("{key} {addr}: permission denied"),
                    "ports below 1024 need CAP_NET_BIND_SERVICE: run through the systemd unit, which grants it",
                ),
                Err(e) => check(
                    Level::Fail,
                    "ports",
                    format!("{key} {addr} is in use by another program ({e})"),
                    "stop that program (see `ss -lptun`) or change the address in the config",
                ),
            }
        })
        .collect()
}

fn certificates(c: &Config) -> Vec<Check> {
    let now = crate::model::now_unix();
    let mut out = Vec::new();
    // An identity installed through `edgeprov cert install` is what phones see instead of
    // server.crt; it is checked when present.
    let installed = c.pki_dir().join(crate::pki::INSTALLED).exists();
    let files = [
        ("ca.crt", 90),
        ("server.crt", 90),
        (crate::pki::INSTALLED, 90),
    ];
    for (name, warn_days) in files
        .into_iter()
        .filter(|(n, _)| *n != crate::pki::INSTALLED || installed)
    {
        let path = c.pki_dir().join(name);
        let der = match crate::pki::read_cert(&path) {
            Ok(d) => d,
            Err(e) if !path.exists() => {
                out.push(check(
                    Level::Warn,
                    "certificates",
                    format!("{e}"),
                    "start the daemon once: it creates its PKI",
                ));
                continue;
            }
            Err(e) => {
                out.push(check(
                    Level::Fail,
                    "certificates",
                    e.to_string(),
                    "restore the PKI directory from a backup",
                ));
                continue;
            }
        };
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
            continue;
        };
        let (start, end) = (
            cert.validity().not_before.timestamp(),
            cert.validity().not_after.timestamp(),
        );
        let days = (end - now) / 86_400;
        if now < start {
            out.push(check(
                Level::Fail,
                "clock",
                format!("{name} is valid only from {}: the clock is behind", crate::cli::time_text(start)),
                "set the time (enable NTP: timedatectl set-ntp true); phones refuse certificates from the future",
            ));
        } else if days < 0 {
            out.push(check(
                Level::Fail,
                "certificates",
                format!("{name} expired {} days ago", -days),
                "renew it (server: restart or reload edgeprov; CA: restore or re-enroll)",
            ));
        } else if days < warn_days {
            out.push(check(
                Level::Warn,
                "certificates",
                format!("{name} expires in {days} days"),
                if name == crate::pki::INSTALLED {
                    "install a renewed identity (edgeprov cert install)"
                } else {
                    "reload edgeprov to renew the server certificate"
                },
            ));
        } else {
            out.push(check(
                Level::Ok,
                "certificates",
                format!("{name} valid for {days} more days"),
                "",
            ));
        }
        if name == "server.crt" {
            let names = crate::pki::cert_names(&cert);
            let missing: Vec<&String> = c
                .pki
                .server_names
                .iter()
                .filter(|n| !names.contains(&n.to_ascii_lowercase()))
                .collect();
            if !missing.is_empty() {
                out.push(check(
                    Level::Warn,
                    "certificates",
                    format!("server.crt does not name {missing:?}"),
                    "reload or restart edgeprov to reissue it",
                ));
            }
        }
    }
    let year = time::OffsetDateTime::now_utc().year();
    if !(2024..2100).contains(&year) {
        out.push(check(
            Level::Fail,
            "clock",
            format!("the clock says the year is {year}"),
            "set the time (timedatectl set-ntp true)",
        ));
    }
    out
}

/// The store, opened once for every check that reads it (the open reads the whole file) when
/// the daemon is stopped and the file exists.
type Inspected = Option<Result<crate::store::Store, crate::store::StoreError>>;

fn inspect(c: &Config, running: bool) -> Inspected {
    (!running && c.db_path().exists()).then(|| crate::store::Store::inspect(&c.db_path()))
}

fn store(c: &Config, running: bool, inspected: &Inspected) -> Check {
    if running {
        return check(Level::Ok, "store", "in use by the running daemon", "");
    }
    let Some(inspected) = inspected else {
        return check(
            Level::Warn,
            "store",
            format!("{} does not exist yet", c.db_path().display()),
            "start the daemon once",
        );
    };
    match inspected
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|s| {
            let facts = || -> Result<_, crate::store::StoreError> {
                Ok((
                    s.schema_version()?,
                    s.count_devices()?,
                    s.upgrade_pending()?,
                ))
            };
            facts().map_err(|e| e.to_string())
        }) {
        Ok((v, n, pending)) => {
            let upgrade = match (v < crate::store::SCHEMA_VERSION, pending) {
                (true, _) => format!(
                    " (moves to schema {} at the next start)",
                    crate::store::SCHEMA_VERSION
                ),
                (false, Some(p)) => format!(
                    " (its upgrade stopped part-way: {} of {} check-ins indexed by device; \
                     the next start goes on)",
                    p.done, p.total
                ),
                (false, None) => String::new(),
            };
            check(
                Level::Ok,
                "store",
                format!(
                    "{}: schema {v}, {n} devices{upgrade}",
                    c.db_path().display()
                ),
                "",
            )
        }
        Err(e) => check(
            Level::Fail,
            "store",
            e,
            "restore the database from a backup (edgeprov backup/restore)",
        ),
    }
}

/// A config that no longer lists the release a firmware policy pins: the next start keeps it
/// (or, when it cannot, leaves the pin without any) and raises `firmware_pin_orphaned`; this
/// says so before the start. Only with the daemon stopped, since the running one holds the
/// store (its alarms report what its own start found).
/// A store that could not be opened is the store check's failure, not said again here.
fn firmware(c: &Config, inspected: &Inspected) -> Vec<Check> {
    let Some(Ok(store)) = inspected else {
        return Vec::new();
    };
    let problems = match store.config_release_problems(&c.firmware.releases) {
        Ok(p) => p,
        Err(e) => {
            return vec![check(
                Level::Fail,
                "firmware",
                e.to_string(),
                "restore the database from a backup (edgeprov backup/restore)",
            )];
        }
    };
    if problems.is_empty() {
        return vec![check(
            Level::Ok,
            "firmware",
            "every pinned firmware version has a release",
            "",
        )];
    }
    problems
        .iter()
        .map(|p| {
            check(
                Level::Warn,
                "firmware",
                format!("at the next start: {}", p.message()),
                format!(
                    "list a release of {} for {} in [[firmware.release]] again, or change the \
                     policies of {} (edgeprov firmware policy {} MODEL=POLICY …)",
                    p.pin.version, p.pin.model, p.pin.scope, p.pin.scope
                ),
            )
        })
        .collect()
}

/// Where phones are sent (DHCP options, DNS SRV/TXT) must be reachable by them. A configured
/// HTTPS port of 0 is the one the running daemon is bound to, as its DHCP server sends it.
fn discovery(c: &Config, running: Option<&Listeners>) -> Vec<Check> {
    let mut out = Vec::new();
    let host = c.pki.server_names.first().cloned().unwrap_or_default();
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let pnp_derived = c.pnp.enabled && c.pnp.url.is_empty();
    if (c.dhcp.enabled || !c.dns.listen.is_empty() || pnp_derived) && loopback {
        out.push(check(
            Level::Fail,
            "discovery",
            format!("phones are told to fetch from {host:?}, which is this box only to itself"),
            "put the box's LAN address or name first in pki.server_names",
        ));
    } else if loopback {
        // No discovery of its own: phones learn the address from another DHCP server, whose
        // options `edgeprov dhcp options` prints from this same name.
        out.push(check(
            Level::Warn,
            "discovery",
            format!(
                "edgeprov dhcp options would send phones to {host:?}, which is this box only to \
                 itself, and its certificate names no LAN address"
            ),
            "put the box's LAN address or name first in pki.server_names",
        ));
    }
    if c.dhcp.enabled {
        let bound_https = running.and_then(|l| l.phone_https.first().copied());
        match crate::dhcp::provisioning_url_bound(c, bound_https) {
            Ok(url) if url.port == 0 => out.push(check(
                Level::Warn,
                "discovery",
                "phone.https_listen has port 0, so the port DHCP sends is not fixed: the kernel \
                 chooses it when the daemon starts, and external DHCP servers cannot follow",
                "set a fixed port in phone.https_listen, or dhcp.provisioning_url",
            )),
            Ok(url) => {
                let (https_ports, http_ports): (Vec<u16>, Vec<u16>) = match running {
                    Some(l) => (
                        l.phone_https.iter().map(|a| a.port()).collect(),
                        l.phone_http.iter().map(|a| a.port()).collect(),
                    ),
                    None => (
                        c.phone.https_listen.iter().map(|a| a.port()).collect(),
                        c.phone.http_listen.iter().map(|a| a.port()).collect(),
                    ),
                };
                let served = if url.tls {
                    https_ports.contains(&url.port)
                } else {
                    http_ports.contains(&url.port)
                };
                if served {
                    out.push(check(
                        Level::Ok,
                        "discovery",
                        format!(
                            "DHCP sends {}://{}:{}{}",
                            if url.tls { "https" } else { "http" },
                            url.host,
                            url.port,
                            url.path
                        ),
                        "",
                    ));
                } else {
                    out.push(check(
                        Level::Fail,
                        "discovery",
                        format!(
                            "DHCP sends port {} but edgeprov does not listen there",
                            url.port
                        ),
                        "fix dhcp.provisioning_url or phone.https_listen/http_listen",
                    ));
                }
            }
            Err(e) => out.push(check(
                Level::Fail,
                "discovery",
                e,
                "set dhcp.provisioning_url",
            )),
        }
        if c.dhcp.subnets.is_empty() && c.dhcp.mode == crate::dhcp::DhcpMode::Server {
            out.push(check(
                Level::Fail,
                "discovery",
                "DHCP is enabled in server mode without any [[dhcp.subnet]]",
                "add a subnet or set dhcp.mode = \"inform\"",
            ));
        }
    }
    if out.is_empty() {
        out.push(check(
            Level::Ok,
            "discovery",
            "DNS and DHCP settings are consistent",
            "",
        ));
    }
    out
}

/// Runs every check. `running` is the daemon's listener file, when it is up.
pub fn run_checks(c: &Config, running: Option<&Listeners>) -> Vec<Check> {
    let mut out = ports(c, running);
    match unreadable_data_dir(c) {
        Some(unreadable) => out.push(unreadable),
        None => {
            out.extend(ownership(c));
            out.extend(certificates(c));
            let inspected = inspect(c, running.is_some());
            out.push(store(c, running.is_some(), &inspected));
            out.extend(firmware(c, &inspected));
        }
    }
    out.extend(discovery(c, running));
    out.extend(links::dhcp_links(c, &links::local_addresses()));
    out.push(clock::judge(clock::kernel_clock()));
    out
}

fn user_name(uid: u32) -> String {
    match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        Ok(Some(user)) => user.name,
        _ => format!("uid {uid}"),
    }
}

/// Files in the data directory or the firmware cache that the daemon's user (the directory's
/// owner) cannot open: left by `edgeprov serve` run once by hand as root. The daemon then fails
/// its start; doctor, run as root, would otherwise see nothing wrong.
fn ownership(c: &Config) -> Vec<Check> {
    use std::os::unix::fs::MetadataExt;
    let cache = c.firmware.cache_dir(&c.data_dir);
    let mut dirs = vec![c.data_dir.clone()];
    if !cache.starts_with(&c.data_dir) {
        dirs.push(cache);
    }
    let mut out = Vec::new();
    for dir in dirs.iter().filter(|d| d.exists()) {
        let owner = match std::fs::metadata(dir) {
            Ok(m) => (m.uid(), m.gid()),
            Err(e) => {
                out.push(check(
                    Level::Fail,
                    "data",
                    format!("{}: {e}", dir.display()),
                    "",
                ));
                continue;
            }
        };
        match crate::data_dir::foreign_owned(dir) {
            Ok(foreign) if foreign.is_empty() => out.push(check(
                Level::Ok,
                "data",
                format!("{} is all {}'s", dir.display(), user_name(owner.0)),
                "",
            )),
            Ok(foreign) => {
                let listed: Vec<String> = foreign
                    .iter()
                    .take(3)
                    .map(|(p, uid)| format!("{} ({})", p.display(), user_name(*uid)))
                    .collect();
                let more = match foreign.len() {
                    n if n > 3 => format!(" and {} more", n - 3),
                    _ => String::new(),
                };
                let group = nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(owner.1))
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_else(|| owner.1.to_string());
                out.push(check(
                    Level::Fail,
                    "data",
                    format!(
                        "{}{more} belong to another user than {}, who owns {} and runs edgeprov: the daemon \
                         cannot open them",
                        listed.join(", "),
                        user_name(owner.0),
                        dir.display()
                    ),
                    format!("chown -R {}:{group} {}", user_name(owner.0), dir.display()),
                ));
            }
            Err(e) => out.push(check(
                Level::Fail,
                "data",
                format!("{}: {e}", dir.display()),
                "",
            )),
        }
    }
    out
}

/// The data directory as this user may not read it: an administrator's own account on a
/// packaged box, where it is the service user's (0750). Its certificates and store would look
/// missing ("start the daemon once"), so this says what is wrong instead of those checks.
fn unreadable_data_dir(c: &Config) -> Option<Check> {
    [c.data_dir.clone(), c.pki_dir()]
        .into_iter()
        .find_map(|dir| match std::fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(check(
                Level::Fail,
                "data",
                format!("{}: {e}", dir.display()),
                "run edgeprov doctor as root, or as the service user \
                 (sudo -u edgeprov edgeprov doctor --config …)",
            )),
            _ => None,
        })
}

/// Prints the checks; returns false when any failed.
pub fn run(c: &Config, json: bool) -> anyhow::Result<bool> {
    let running = super::running::listeners(c);
    let checks = run_checks(c, running.as_ref());
    if json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for ch in &checks {
            let tag = match ch.level {
                Level::Ok => "ok  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            println!("{tag} {:<12} {}", ch.area, ch.message);
            if !ch.fix.is_empty() {
                println!("     {:<12} fix: {}", "", ch.fix);
            }
        }
    }
    Ok(checks.iter().all(|c| c.level != Level::Fail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_provisioning_host_fails() {
        let mut c = Config::default();
        c.dns.listen = vec!["127.0.0.1:0".parse().unwrap()];
        let checks = discovery(&c, None);
        assert!(
            checks
                .iter()
                .any(|ch| ch.level == Level::Fail && ch.message.contains("localhost"))
        );
        c.pki.server_names = vec!["10.0.0.5".into()];
        assert!(discovery(&c, None).iter().all(|ch| ch.level == Level::Ok));
    }

    /// PnP sends phones the URL made from the first server name too; with `pnp.url` set, the
    /// name is not what they are sent.
    #[test]
    fn plug_and_play_to_a_loopback_host_fails() {
        let mut c = Config::default();
        c.pnp.enabled = true;
        let fails = |c: &Config| {
            discovery(c, None)
                .iter()
                .any(|ch| ch.level == Level::Fail && ch.message.contains("localhost"))
        };
        assert!(fails(&c));
        c.pnp.url = "https://prov.example.lan/".into();
        assert!(!fails(&c));
    }

    #[test]
    fn a_loopback_provisioning_host_warns_without_discovery_of_its_own() {
        let mut c = Config::default();
        assert!(c.dns.listen.is_empty() && !c.dhcp.enabled);
        let checks = discovery(&c, None);
        assert!(
            checks
                .iter()
                .any(|ch| ch.level == Level::Warn && ch.message.contains("dhcp options")),
            "{checks:?}"
        );
        c.pki.server_names = vec!["prov.example.lan".into()];
        assert!(discovery(&c, None).iter().all(|ch| ch.level == Level::Ok));
    }

    /// `edgeprov serve` once run by hand as root leaves files only root may open; doctor, run
    /// as root, must still name them. Needs root (to give a file away), as the suite does.
    #[test]
    fn files_the_daemons_user_does_not_own_fail() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        std::fs::create_dir_all(c.pki_dir()).unwrap();
        std::fs::write(c.pki_dir().join("ca.key"), "k").unwrap();
        std::fs::write(c.db_path(), "db").unwrap();
        let fails = |c: &Config| {
            ownership(c)
                .into_iter()
                .filter(|ch| ch.level == Level::Fail)
                .collect::<Vec<_>>()
        };
        assert!(fails(&c).is_empty(), "{:?}", ownership(&c));
        let stranger = Some(54_321);
        std::os::unix::fs::chown(c.pki_dir().join("ca.key"), stranger, None).unwrap();
        let found = fails(&c);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("ca.key (uid 54321)"), "{found:?}");
        assert!(
            found[0]
                .message
                .ends_with("runs edgeprov: the daemon cannot open them"),
            "{found:?}"
        );
        assert!(found[0].fix.starts_with("chown -R "), "{found:?}");
        // The same when only the firmware cache (elsewhere) holds such a file.
        std::os::unix::fs::chown(
            c.pki_dir().join("ca.key"),
            Some(rustix::process::getuid().as_raw()),
            None,
        )
        .unwrap();
        let cache = tempfile::tempdir().unwrap();
        c.firmware.cache_dir = cache.path().to_path_buf();
        std::fs::create_dir(cache.path().join("sha256")).unwrap();
        std::fs::write(cache.path().join("sha256/img"), "x").unwrap();
        std::os::unix::fs::chown(cache.path().join("sha256/img"), stranger, None).unwrap();
        assert_eq!(fails(&c).len(), 1, "{:?}", ownership(&c));
    }

    #[test]
    fn busy_port_fails_unless_it_is_ours() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let mut c = Config::default();
        c.phone.https_listen = vec![addr];
        c.phone.http_listen.clear();
        c.admin.listen = "127.0.0.1:0".parse().unwrap();
        let fails = |l: Option<&Listeners>| {
            ports(&c, l)
                .iter()
                .filter(|ch| ch.level == Level::Fail)
                .count()
        };
        assert_eq!(fails(None), 1);
        let ours = Listeners {
            phone_https: vec![addr],
            phone_http: vec![],
            admin: "127.0.0.1:1".parse().unwrap(),
            dns: vec![],
            dhcp: None,
            pnp: None,
        };
        assert_eq!(fails(Some(&ours)), 0);
    }
}
