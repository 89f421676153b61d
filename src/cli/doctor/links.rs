//! Whether the DHCP server can reach the links it is configured for: an interface it is told to
//! bind must exist (else the start fails), and a subnet it serves should be one this box is on
//! (else only clients behind a relay agent, whose requests name the subnet, get an address;
//! with no relay, phones there get nothing and nothing says why).

use std::net::Ipv4Addr;

use super::{Check, Level, check};
use crate::config::Config;
use crate::dhcp::DhcpMode;

/// This box's IPv4 addresses, by interface name.
pub fn local_addresses() -> Vec<(String, Ipv4Addr)> {
    match nix::ifaddrs::getifaddrs() {
        Ok(ifaddrs) => ifaddrs
            .filter_map(|a| {
                let ip = a.address?.as_sockaddr_in()?.ip();
                Some((a.interface_name, ip))
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The checks for `[dhcp]` against `addrs`, this box's addresses (interface name, address).
pub fn dhcp_links(c: &Config, addrs: &[(String, Ipv4Addr)]) -> Vec<Check> {
    if !c.dhcp.enabled {
        return Vec::new();
    }
    let mut out = Vec::new();
    for name in &c.dhcp.interfaces {
        if !addrs.iter().any(|(n, _)| n == name) {
            out.push(check(
                Level::Fail,
                "dhcp",
                format!("dhcp.interfaces names {name:?}, which has no IPv4 address on this box"),
                "name an interface of this box (ip -4 addr) or leave dhcp.interfaces empty",
            ));
        }
    }
    if c.dhcp.mode != DhcpMode::Server {
        return out;
    }
    // The links the server listens on: the listed interfaces, or every one.
    let served: Vec<Ipv4Addr> = addrs
        .iter()
        .filter(|(n, _)| c.dhcp.interfaces.is_empty() || c.dhcp.interfaces.contains(n))
        .map(|(_, ip)| *ip)
        .collect();
    for subnet in &c.dhcp.subnets {
        match served.iter().find(|ip| subnet.network.contains(*ip)) {
            Some(ip) => out.push(check(
                Level::Ok,
                "dhcp",
                format!("subnet {} is on this box ({ip})", subnet.network),
                "",
            )),
            None => out.push(check(
                Level::Warn,
                "dhcp",
                format!(
                    "no interface DHCP listens on has an address in subnet {}: only clients \
                     behind a relay agent there get addresses",
                    subnet.network
                ),
                "give the voice VLAN's interface an address in it (or fix dhcp.subnet.network), \
                 unless a relay forwards that VLAN's requests here",
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dhcp_config(toml_dhcp: &str) -> Config {
        let text = format!("[dhcp]\nenabled = true\n{toml_dhcp}");
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn a_subnet_no_interface_is_on_warns_and_a_missing_interface_fails() {
        let addrs = vec![
            ("lo".to_string(), Ipv4Addr::LOCALHOST),
            ("voice0".to_string(), Ipv4Addr::new(198, 51, 100, 1)),
        ];
        let c = dhcp_config(
            "[[dhcp.subnet]]\nnetwork = \"198.51.100.0/24\"\n\
             [[dhcp.subnet]]\nnetwork = \"192.0.2.0/24\"\n",
        );
        let checks = dhcp_links(&c, &addrs);
        let level = |net: &str| {
            checks
                .iter()
                .find(|ch| ch.message.contains(net))
                .map(|ch| ch.level)
        };
        assert_eq!(level("198.51.100.0/24"), Some(Level::Ok), "{checks:?}");
        assert_eq!(level("192.0.2.0/24"), Some(Level::Warn), "{checks:?}");

        let c = dhcp_config(
            "interfaces = [\"eth9\"]\n[[dhcp.subnet]]\nnetwork = \"198.51.100.0/24\"\n",
        );
        let checks = dhcp_links(&c, &addrs);
        assert!(
            checks
                .iter()
                .any(|ch| ch.level == Level::Fail && ch.message.contains("\"eth9\"")),
            "{checks:?}"
        );
        // Bound to eth9 only, voice0's address does not put the subnet on a served link.
        assert!(
            checks
                .iter()
                .any(|ch| ch.level == Level::Warn && ch.message.contains("198.51.100.0/24")),
            "{checks:?}"
        );
    }

    #[test]
    fn nothing_is_said_with_dhcp_off() {
        let c = Config::default();
        assert!(dhcp_links(&c, &[]).is_empty());
    }
}
