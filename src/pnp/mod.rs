//! SIP plug-and-play (RFC 6080 `ua-profile`): phones that get no provisioning URL from DHCP
//! (a site whose router's DHCP the installer cannot change) multicast a SUBSCRIBE to
//! 224.0.1.75:5060 at boot; this answers it and sends the URL in a NOTIFY, as PBXs and vendor
//! tools do. Yealink phones ask by default, as do Snom, Grandstream, Fanvil and others.
//!
//! Pure code: `message` (a SIP message from one datagram), `profile` (what a message is and the
//! answers to it), `transactions` (retransmission and repeated requests, time passed in).
//! Thin I/O: `server` (the sockets and the one loop that owns them).
//!
//! Nothing here proves who a phone is: the NOTIFY only tells it where to ask, and the phone
//! service decides what it gets. So a SUBSCRIBE records no check-in; it is logged at debug.

pub mod config;
pub mod message;
pub mod profile;
pub mod server;
pub mod transactions;

pub use config::PnpConfig;
pub use server::{Bound, Stats, bind, serve};

use crate::config::Config;

/// The URL phones are sent: `pnp.url` as written, else the one DHCP gives them (see
/// [`crate::dhcp::provisioning_url_bound`]: the first `pki.server_names` entry, so that over
/// HTTPS it names a host in the server certificate, and the port actually bound).
pub fn url(config: &Config, bound_https: Option<std::net::SocketAddr>) -> Result<String, String> {
    if !config.pnp.url.is_empty() {
        return Ok(config.pnp.url.clone());
    }
    crate::dhcp::provisioning_url_bound(config, bound_https).map(|u| u.url())
}

/// Validation of the `[pnp]` table, with the URL it derives from other tables: a server name
/// no URL can be made of fails the load, naming `pnp.url` (where it can be set instead).
pub fn validate(config: &Config) -> Result<(), (&'static str, String)> {
    config.pnp.validate()?;
    if config.pnp.enabled {
        url(config, None).map_err(|e| ("pnp.url", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_pnp_url_else_the_one_dhcp_gives() {
        let mut c = Config::default();
        c.pki.server_names = vec!["prov.example.lan".into()];
        let bound = "0.0.0.0:8443".parse().ok();
        assert_eq!(url(&c, bound).unwrap(), "https://prov.example.lan:8443/");
        c.dhcp.provisioning_url = "https://other.example.lan/p/".into();
        assert_eq!(url(&c, bound).unwrap(), "https://other.example.lan:443/p/");
        c.pnp.url = "http://10.0.0.5/snom/settings.htm".into();
        assert_eq!(url(&c, bound).unwrap(), "http://10.0.0.5/snom/settings.htm");
    }
}
