//! SIGHUP: re-read the configuration and the certificates without dropping connections. New TLS
//! handshakes use the new certificate; open connections carry on with theirs. A new config that
//! does not load (or whose PKI does not) is refused with a log line and the running one kept.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::logging::LogControl;
use crate::pki::LiveCerts;

/// The configuration as last loaded, at start or by a reload: what the admin API works from
/// (the level a cleared runtime log level returns to, the copy a backup carries).
#[derive(Clone)]
pub struct RunningConfig(Arc<RwLock<Arc<Config>>>);

impl RunningConfig {
    pub fn new(config: Config) -> RunningConfig {
        RunningConfig(Arc::new(RwLock::new(Arc::new(config))))
    }

    pub fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, config: Config) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }
}

pub struct Reloader {
    pub source: Option<PathBuf>,
    pub current: RunningConfig,
    /// The configuration the daemon started with: what a key that waits for a restart still
    /// runs on, and what DNS and DHCP made their records from, however many reloads since.
    pub started: Config,
    /// The certificates and the TLS configurations the listeners read (shared with the admin
    /// API, whose certificate changes go through the same path).
    pub certs: Arc<LiveCerts>,
    pub log: Option<LogControl>,
    /// Where a log level set at runtime (the preferences) is kept: it wins over the file's.
    pub store: crate::store::Store,
}

/// What the daemon works from after a reload to `new`: its log level and `[pki]`, everything
/// else as it runs now. The certificates are loaded from the running data directory (a new
/// one would mean a new CA, which no phone's or the CLI's certificate chains to), the CRL URL
/// names the ports actually served, and the admin API (backups, previews) works from the
/// same running values until the restart that [`restart_needed`] asks for.
pub fn in_effect(old: &Config, new: Config) -> Config {
    Config {
        log_level: new.log_level,
        pki: new.pki,
        ..old.clone()
    }
}

/// Settings a reload cannot apply to a running daemon (sockets are bound, files are open):
/// every key but `log_level` and `[pki]`, and `pki.server_names` too where DNS or DHCP made
/// their records and provisioning URL from it at start.
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.data_dir != new.data_dir {
        keys.push("data_dir");
    }
    // The phone listeners, their limits and the lockout policy are set up once, at start.
    let (o, n) = (&old.phone, &new.phone);
    for (key, changed) in [
        ("phone.https_listen", o.https_listen != n.https_listen),
        ("phone.http_listen", o.http_listen != n.http_listen),
        (
            "phone.handshake_timeout_ms",
            o.handshake_timeout_ms != n.handshake_timeout_ms,
        ),
        (
            "phone.header_timeout_ms",
            o.header_timeout_ms != n.header_timeout_ms,
        ),
        (
            "phone.send_timeout_ms",
            o.send_timeout_ms != n.send_timeout_ms,
        ),
        (
            "phone.max_connections",
            o.max_connections != n.max_connections,
        ),
        (
            "phone.max_connections_per_address",
            o.max_connections_per_address != n.max_connections_per_address,
        ),
        (
            "phone.auth_max_failures",
            o.auth_max_failures != n.auth_max_failures,
        ),
        (
            "phone.auth_lockout_secs",
            o.auth_lockout_secs != n.auth_lockout_secs,
        ),
    ] {
        if changed {
            keys.push(key);
        }
    }
    if old.admin.listen != new.admin.listen {
        keys.push("admin.listen");
    }
    // The token limiter is made once, at start.
    if old.admin.auth_failures_per_minute != new.admin.auth_failures_per_minute {
        keys.push("admin.auth_failures_per_minute");
    }
    let derived = !old.dns.listen.is_empty() || old.dhcp.enabled || old.pnp.enabled;
    if derived && old.pki.server_names != new.pki.server_names {
        keys.push("pki.server_names (DNS records, DHCP and PnP provisioning URL)");
    }
    if old.dns != new.dns {
        keys.push("dns");
    }
    if old.dhcp != new.dhcp {
        keys.push("dhcp");
    }
    // The PnP socket is bound, and its URL made, at start, as DHCP's are.
    if old.pnp != new.pnp {
        keys.push("pnp");
    }
    // The sync task keeps the [cloud] table it started with.
    if old.cloud != new.cloud {
        keys.push("cloud");
    }
    // The SCEP route is set up with the phone service at start (its challenge file is read
    // at each enrolment, so a new challenge needs no restart).
    if old.scep != new.scep {
        keys.push("scep");
    }
    // Config releases are merged into the store, and the cache opened, at start.
    if old.firmware != new.firmware {
        keys.push("firmware");
    }
    // The phone service is given its upload bounds at start.
    if old.uploads != new.uploads {
        keys.push("uploads");
    }
    keys
}

impl Reloader {
    /// Applies what can be applied. Returns the keys that changed but wait for a restart, or
    /// why the new configuration was refused (the daemon's status shows either).
    pub fn reload(&mut self) -> Result<Vec<&'static str>, String> {
        let new = match &self.source {
            Some(path) => match Config::load(path) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("reload refused, keeping the running configuration: {e}");
                    return Err(e.to_string());
                }
            },
            None => Config::default(),
        };
        let changed = restart_needed(&self.started, &new);
        let new = in_effect(&self.started, new);
        if let Err(e) = self.certs.apply(&new) {
            tracing::error!("reload refused, keeping the running certificates: {e}");
            return Err(e.to_string());
        }
        let runtime_level = self.store.preferences().ok().and_then(|p| p.log_level);
        if let Some(log) = &self.log {
            let base = log.base(&new.log_level);
            // Said under the file's level, a moment before the runtime one applies again: under
            // that one (`error`, `off`) the note would not pass, and it is then that a changed
            // `log_level` seems to do nothing.
            if let Some(note) = runtime_level
                .as_deref()
                .and_then(|level| crate::logging::preference_note(level, &new.log_level))
                && log.set_level(base).is_ok()
            {
                tracing::warn!("{note}");
            }
            if let Err(e) = log.set_level(runtime_level.as_deref().unwrap_or(base)) {
                tracing::warn!("log level not changed: {e}");
            }
        }
        for key in &changed {
            tracing::warn!(
                key,
                "changed in the configuration; takes effect after a restart"
            );
        }
        self.current.set(new);
        tracing::info!("configuration and certificates reloaded");
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_need_a_restart_level_does_not() {
        let old = Config::default();
        let mut new = old.clone();
        new.log_level = "debug".into();
        new.pki.server_names.push("prov.example.lan".into());
        assert!(restart_needed(&old, &new).is_empty());
        new.admin.listen = "127.0.0.1:9999".parse().unwrap();
        new.phone.http_listen.clear();
        assert_eq!(
            restart_needed(&old, &new),
            ["phone.http_listen", "admin.listen"]
        );
        new.phone.max_connections = 100;
        new.phone.header_timeout_ms = 5_000;
        assert_eq!(
            restart_needed(&old, &new),
            [
                "phone.http_listen",
                "phone.header_timeout_ms",
                "phone.max_connections",
                "admin.listen"
            ]
        );
        new.phone.max_connections_per_address = Some(10);
        assert!(restart_needed(&old, &new).contains(&"phone.max_connections_per_address"));
    }

    #[test]
    fn the_token_limit_and_names_dns_and_dhcp_derive_from_need_a_restart() {
        let old = Config::default();
        let mut new = old.clone();
        new.admin.auth_failures_per_minute = 100;
        assert_eq!(
            restart_needed(&old, &new),
            ["admin.auth_failures_per_minute"]
        );

        let mut new = old.clone();
        new.pnp.enabled = true;
        assert_eq!(restart_needed(&old, &new), ["pnp"]);

        // The SCEP route is set up at start; a reload keeps the running [scep].
        let mut new = old.clone();
        new.scep.enabled = true;
        new.scep.challenge_file = "/etc/edgeprov/scep".into();
        assert_eq!(restart_needed(&old, &new), ["scep"]);
        let mut uploads = old.clone();
        uploads.uploads.max_total_bytes *= 2;
        assert_eq!(restart_needed(&old, &uploads), ["uploads"]);
        assert_eq!(in_effect(&old, uploads).uploads, old.uploads);
        assert!(!in_effect(&old, new).scep.enabled);

        let mut old = Config::default();
        old.dns.listen = vec!["127.0.0.1:5353".parse().unwrap()];
        let mut new = old.clone();
        new.pki.server_names = vec!["prov.example.lan".into()];
        assert_eq!(
            restart_needed(&old, &new),
            ["pki.server_names (DNS records, DHCP and PnP provisioning URL)"]
        );
    }

    #[test]
    fn a_reload_takes_the_level_and_pki_and_keeps_what_needs_a_restart() {
        let old = Config::default();
        let mut new = old.clone();
        new.data_dir = "/elsewhere".into();
        new.log_level = "debug".into();
        new.pki.server_names = vec!["prov.example.lan".into()];
        new.admin.auth_failures_per_minute = 100;
        new.phone.http_listen.clear();
        let running = in_effect(&old, new.clone());
        assert_eq!(running.data_dir, old.data_dir);
        assert_eq!(running.admin, old.admin);
        assert_eq!(running.phone, old.phone);
        assert_eq!(running.log_level, "debug");
        assert_eq!(running.pki, new.pki);
    }
}
