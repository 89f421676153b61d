//! Fixed addresses from the inventory: a device whose parameter `dhcp:address` holds an IPv4
//! address inside a configured subnet always gets that address. The `dhcp:` prefix keeps the
//! parameter out of every phone's settings file; the device's site needs no DHCP meaning because
//! the address itself says which subnet (and so which site's network) it belongs to.
//!
//! The parameter is read from the device's own layer as rendering reads it: the cloud's
//! parameters (`cloud_params`, see docs/sync-protocol.md) with a local one of the same name on
//! top, so a reservation made in the cloud holds here and an administrator can still override
//! it on the box.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::config::SubnetConfig;
use crate::model::{Device, Mac};

/// The device parameter that holds a reservation.
pub const PARAM: &str = "dhcp:address";

/// A reservation that cannot be honoured: whose it is and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub mac: Mac,
    pub message: String,
}

/// The reservations, and a message for each one that cannot be honoured. `own` are this
/// server's addresses (its server identifiers, configured or worked out from the routes, and its
/// interfaces' addresses).
pub fn from_devices(
    devices: &[Device],
    subnets: &[SubnetConfig],
    own: &[Ipv4Addr],
) -> (HashMap<Mac, Ipv4Addr>, Vec<Refused>) {
    let mut map = HashMap::new();
    let mut owner: HashMap<Ipv4Addr, Mac> = HashMap::new();
    let mut problems = Vec::new();
    for d in devices {
        let Some(text) = d.params.get(PARAM).or_else(|| d.cloud_params.get(PARAM)) else {
            continue;
        };
        let mut refuse = |message: String| {
            problems.push(Refused {
                mac: d.mac,
                message,
            })
        };
        let Ok(ip) = text.trim().parse::<Ipv4Addr>() else {
            refuse(format!(
                "device {}: {PARAM} {text:?} is not an IPv4 address",
                d.mac
            ));
            continue;
        };
        let Some(subnet) = subnets.iter().find(|s| {
            s.network.contains(&ip) && ip != s.network.network() && ip != s.network.broadcast()
        }) else {
            refuse(format!(
                "device {}: {PARAM} {ip} is not inside a [[dhcp.subnet]]",
                d.mac
            ));
            continue;
        };
        // Handing a phone the gateway's or this server's own address breaks the whole subnet.
        let taken = if subnet.router == Some(ip) {
            Some("the router")
        } else if subnet.server_id == Some(ip) || own.contains(&ip) {
            Some("this server's address")
        } else {
            None
        };
        if let Some(what) = taken {
            refuse(format!(
                "device {}: {PARAM} {ip} is {what} of {}",
                d.mac, subnet.network
            ));
            continue;
        }
        if let Some(other) = owner.get(&ip) {
            refuse(format!(
                "device {}: {PARAM} {ip} is already reserved for {other}",
                d.mac
            ));
            continue;
        }
        owner.insert(ip, d.mac);
        map.insert(d.mac, ip);
    }
    (map, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_become_reservations() {
        let subnet: SubnetConfig = toml::from_str("network = \"10.77.0.0/24\"").unwrap();
        let dev = |n: u8, addr: &str| {
            let mut d = Device::new(Mac::from_octets([0, 0, 0, 0, 0, n]));
            d.params.insert(PARAM.into(), addr.into());
            d
        };
        let devices = [
            dev(1, "10.77.0.20"),
            dev(2, "10.77.0.20"),
            dev(3, "10.99.0.1"),
            dev(4, "x"),
            Device::new(Mac::from_octets([9; 6])),
        ];
        let (map, problems) = from_devices(&devices, &[subnet], &[]);
        assert_eq!(map.len(), 1);
        assert_eq!(
            map[&Mac::from_octets([0, 0, 0, 0, 0, 1])],
            Ipv4Addr::new(10, 77, 0, 20)
        );
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    /// A reservation the cloud sent (a device parameter of the pulled page, kept in
    /// `cloud_params`) holds like a local one; a local one of the same name overrides it, and
    /// two devices given one address are refused by name.
    #[test]
    fn reservations_from_the_cloud_hold_and_local_ones_override_them() {
        let subnet: SubnetConfig = toml::from_str("network = \"10.77.0.0/24\"").unwrap();
        let dev = |n: u8, cloud: &str, local: Option<&str>| {
            let mut d = Device::new(Mac::from_octets([0, 0, 0, 0, 0, n]));
            d.cloud_params.insert(PARAM.into(), cloud.into());
            if let Some(l) = local {
                d.params.insert(PARAM.into(), l.into());
            }
            d
        };
        let devices = [
            dev(1, "10.77.0.20", None),
            dev(2, "10.77.0.21", Some("10.77.0.30")),
            dev(3, "10.77.0.20", None),
            dev(4, "10.99.0.1", None),
        ];
        let (map, problems) = from_devices(&devices, &[subnet], &[]);
        let at = |n: u8| map.get(&Mac::from_octets([0, 0, 0, 0, 0, n])).copied();
        assert_eq!(at(1), Some(Ipv4Addr::new(10, 77, 0, 20)));
        assert_eq!(at(2), Some(Ipv4Addr::new(10, 77, 0, 30)), "local wins");
        assert_eq!((at(3), at(4)), (None, None));
        let refused: Vec<_> = problems.iter().map(|p| p.mac.octets()[5]).collect();
        assert_eq!(refused, vec![3, 4], "{problems:?}");
        assert!(
            problems[0].message.contains("already reserved for"),
            "{problems:?}"
        );
        assert!(
            problems[1].message.contains("not inside a [[dhcp.subnet]]"),
            "{problems:?}"
        );
    }

    #[test]
    fn the_router_and_server_addresses_are_never_reserved() {
        let subnet: SubnetConfig = toml::from_str(
            "network = \"10.77.0.0/24\"\nrouter = \"10.77.0.1\"\nserver_id = \"10.77.0.2\"",
        )
        .unwrap();
        let devices: Vec<Device> = ["10.77.0.1", "10.77.0.2", "10.77.0.3"]
            .iter()
            .enumerate()
            .map(|(n, addr)| {
                let mut d = Device::new(Mac::from_octets([0, 0, 0, 0, 0, n as u8]));
                d.params.insert(PARAM.into(), (*addr).into());
                d
            })
            .collect();
        // 10.77.0.3: the address the server worked out for a socket with no server_id.
        let (map, problems) = from_devices(&devices, &[subnet], &[Ipv4Addr::new(10, 77, 0, 3)]);
        assert!(map.is_empty(), "{map:?}");
        assert!(
            problems[0].message.contains("10.77.0.1 is the router"),
            "{problems:?}"
        );
        assert!(
            problems[1]
                .message
                .contains("10.77.0.2 is this server's address"),
            "{problems:?}"
        );
        assert!(
            problems[2]
                .message
                .contains("10.77.0.3 is this server's address"),
            "{problems:?}"
        );
    }
}
