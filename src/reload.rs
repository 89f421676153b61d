//! SIGHUP: re-read the configuration and the certificates without dropping connections. New TLS
//! handshakes use the new certificate; open connections carry on with theirs. A new config that
//! does not load (or whose PKI does not) is refused with a log line and the running one kept.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::logging::LogControl;
use crate::pki::{self, Pki};
use crate::serve::TlsSource;

pub struct Reloader {
    pub source: Option<PathBuf>,
    pub current: Config,
    pub phone_tls: TlsSource,
    pub admin_tls: TlsSource,
    pub log: Option<LogControl>,
    /// Where a log level set at runtime (the preferences) is kept: it wins over the file's.
    pub store: crate::store::Store,
}

/// Settings a reload cannot apply to a running daemon (sockets are bound, files are open).
pub fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if old.data_dir != new.data_dir {
        keys.push("data_dir");
    }
    if old.phone.https_listen != new.phone.https_listen {
        keys.push("phone.https_listen");
    }
    if old.phone.http_listen != new.phone.http_listen {
        keys.push("phone.http_listen");
    }
    if old.admin.listen != new.admin.listen {
        keys.push("admin.listen");
    }
    if old.dns != new.dns {
        keys.push("dns");
    }
    if old.dhcp != new.dhcp {
        keys.push("dhcp");
    }
    // The sync task keeps the [cloud] table it started with.
    if old.cloud != new.cloud {
        keys.push("cloud");
    }
    // Config releases are merged into the store, and the cache opened, at start.
    if old.firmware != new.firmware {
        keys.push("firmware");
    }
    keys
}

fn swap(source: &TlsSource, config: Arc<rustls::ServerConfig>) {
    *source.write().unwrap_or_else(|p| p.into_inner()) = config;
}

impl Reloader {
    /// Applies what can be applied; returns false when the new configuration was refused.
    pub fn reload(&mut self) -> bool {
        let new = match &self.source {
            Some(path) => match Config::load(path) {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("reload refused, keeping the running configuration: {e}");
                    return false;
                }
            },
            None => Config::default(),
        };
        let pki = match Pki::load_or_init(&new.pki_dir(), &new.pki, &new.crl_url()) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("reload refused, keeping the running certificates: {e}");
                return false;
            }
        };
        let tls =
            pki::phone_server_config(&pki).and_then(|p| Ok((p, pki::admin_server_config(&pki)?)));
        let (phone, admin) = match tls {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("reload refused, keeping the running TLS configuration: {e}");
                return false;
            }
        };
        swap(&self.phone_tls, phone);
        swap(&self.admin_tls, admin);
        let runtime_level = self.store.preferences().ok().and_then(|p| p.log_level);
        if let Some(log) = &self.log
            && let Err(e) = log.set_level(runtime_level.as_deref().unwrap_or(&new.log_level))
        {
            tracing::warn!("log level not changed: {e}");
        }
        for key in restart_needed(&self.current, &new) {
            tracing::warn!(
                key,
                "changed in the configuration; takes effect after a restart"
            );
        }
        self.current = new;
        tracing::info!("configuration and certificates reloaded");
        true
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
    }
}
