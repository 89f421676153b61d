//! The DHCP server: leases on a voice VLAN, or only the provisioning option strings (DHCPINFORM)
//! for sites that keep their own server.
//!
//! Pure code: `options` (raw option walk, typed values, RFC 3396 splitting), `packet` (dhcproto
//! glue), `vendor` (what each phone family reads), `answer` (which options a client gets),
//! `lease` (the lease engine), `reservations`, `external` (definitions for other servers).
//! Thin I/O: `server` (sockets and group commit).

pub mod answer;
pub mod config;
pub mod external;
pub mod lease;
pub mod options;
pub mod packet;
pub mod reservations;
pub mod server;
pub mod vendor;

pub use config::{DhcpConfig, DhcpMode};
pub use server::{Stats, StatsView};

use crate::config::Config;
use vendor::ProvisioningUrl;

#[derive(Debug, thiserror::Error)]
pub enum DhcpError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("dhcp: {0}")]
    Config(String),
    #[error("dhcp socket: {0}")]
    Io(std::io::Error),
    #[error("dhcp start-up task failed: {0}")]
    Task(String),
}

/// The URL phones are pointed at: `dhcp.provisioning_url`, else built from the first
/// `pki.server_names` entry and the port of the first `phone.https_listen` address.
pub fn provisioning_url(config: &Config) -> Result<ProvisioningUrl, String> {
    provisioning_url_bound(config, None)
}

/// [`provisioning_url`] with the port the first HTTPS listener is actually bound to, when known:
/// a configured port 0 is chosen by the kernel at start-up, and phones sent to port 0 find
/// nothing.
pub fn provisioning_url_bound(
    config: &Config,
    bound_https: Option<std::net::SocketAddr>,
) -> Result<ProvisioningUrl, String> {
    if !config.dhcp.provisioning_url.is_empty() {
        return ProvisioningUrl::parse(&config.dhcp.provisioning_url);
    }
    let host = config
        .pki
        .server_names
        .first()
        .map(String::as_str)
        .unwrap_or("localhost");
    let port = bound_https
        .or_else(|| config.phone.https_listen.first().copied())
        .map(|a| a.port())
        .unwrap_or(443);
    ProvisioningUrl::parse(&format!("https://{host}:{port}/")).map_err(|e| {
        format!(
            "{e}; set dhcp.provisioning_url (derived from pki.server_names and phone.https_listen)"
        )
    })
}

/// Validation of the `[dhcp]` table, with the provisioning URL it derives from other tables.
pub fn validate(config: &Config) -> Result<(), (&'static str, String)> {
    config.dhcp.validate()?;
    if config.dhcp.enabled && config.dhcp.vendor_defaults {
        provisioning_url(config).map_err(|e| ("dhcp.provisioning_url", e))?;
    }
    Ok(())
}
