//! The `[pnp]` table. Off by default: a site that already has a PBX or a vendor tool answering
//! plug-and-play would have its phones taken over by whichever server answers first, so
//! answering every phone's PnP SUBSCRIBE must be asked for.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PnpConfig {
    pub enabled: bool,
    /// Where SUBSCRIBEs are read (UDP, IPv4). Phones multicast to port 5060, which needs no
    /// privilege; only a wildcard address (`0.0.0.0`) also receives the multicast ones, a
    /// specific address gets the unicast ones alone.
    pub listen: SocketAddr,
    /// Interfaces on which the group 224.0.1.75 is joined. Empty: every interface that is up,
    /// can multicast and has an IPv4 address when edgeprov starts.
    pub interfaces: Vec<String>,
    /// The URL sent to phones. Empty: the one DHCP gives (`dhcp.provisioning_url`, else built
    /// from `pki.server_names` and `phone.https_listen`).
    pub url: String,
    /// Datagrams read per second from one source (an IPv4 address or an IPv6 /64), one second
    /// of burst; beyond it they are dropped unread. 0: no limit.
    pub rate_limit: u32,
}

impl Default for PnpConfig {
    fn default() -> Self {
        PnpConfig {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 5060)),
            interfaces: Vec::new(),
            url: String::new(),
            rate_limit: 10,
        }
    }
}

impl PnpConfig {
    /// Checks what serde cannot; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.listen.is_ipv6() {
            return Err((
                "pnp.listen",
                "plug-and-play multicast (224.0.1.75) is IPv4: use an IPv4 address".into(),
            ));
        }
        // Phones send to the group, but a socket bound to it is the one `bind` adds beside a
        // specific address: as `listen` it made the start fail with "address in use", as if
        // another program held the port. Nothing is ever received on the broadcast address.
        let ip = self.listen.ip();
        if ip.is_multicast() {
            return Err((
                "pnp.listen",
                format!(
                    "{ip} is a multicast address: listen on this box's address or 0.0.0.0 (the \
                     group 224.0.1.75 is joined on pnp.interfaces)"
                ),
            ));
        }
        if let std::net::IpAddr::V4(v4) = ip
            && v4.is_broadcast()
        {
            return Err((
                "pnp.listen",
                format!("{ip} is the broadcast address: listen on this box's address or 0.0.0.0"),
            ));
        }
        if self.interfaces.iter().any(|i| i.is_empty() || i.len() > 15) {
            return Err((
                "pnp.interfaces",
                "interface names are 1-15 characters".into(),
            ));
        }
        for (i, name) in self.interfaces.iter().enumerate() {
            if self.interfaces[..i].contains(name) {
                return Err(("pnp.interfaces", format!("{name:?} is listed twice")));
            }
        }
        if !self.url.is_empty() {
            crate::dhcp::vendor::ProvisioningUrl::parse(&self.url).map_err(|e| ("pnp.url", e))?;
        }
        Ok(())
    }
}
