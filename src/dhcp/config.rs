//! The `[dhcp]` table. Off by default: handing out addresses on a network that already has a
//! DHCP server is the one thing this box can do that breaks a site, so it must be asked for.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::options::{self, OptionValue};

/// `server` hands out leases; `inform` only answers DHCPINFORM with the option strings, for sites
/// that keep their own DHCP server (which then needs `edgeprov dhcp options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DhcpMode {
    #[default]
    Server,
    Inform,
}

/// Option code → value, as written under `[dhcp.options]` or a vendor class's `options`.
pub type OptionMap = BTreeMap<String, OptionValue>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DhcpConfig {
    pub enabled: bool,
    /// The server port; clients are answered on the next port up (68 for 67), the convention
    /// ISC dhcpd and Kea follow when run on another port.
    pub listen: SocketAddr,
    /// Interfaces to bind to (SO_BINDTODEVICE); empty means all, with one socket that learns
    /// each request's interface (IP_PKTINFO) and answers a client out of it, from its subnet.
    pub interfaces: Vec<String>,
    pub mode: DhcpMode,
    /// NAK requests for addresses that are wrong for the client's network or that this server
    /// has no record of (it is the only server there: the client must start over rather than
    /// keep an address the server may give to another); when false such requests are ignored,
    /// leaving them to another server.
    pub authoritative: bool,
    /// The URL phones are pointed at. Empty: `https://<first pki.server_names entry>:<port of
    /// the first phone.https_listen>/`.
    pub provisioning_url: String,
    /// Give Avaya, Yealink, Poly and Cisco classes their discovery options from the
    /// provisioning URL unless configured otherwise.
    pub vendor_defaults: bool,
    /// The Avaya site-specific option (SSON) the phones are set to read.
    pub sson_option: u8,
    /// The custom URL option Yealink and Poly phones read besides option 66. Must differ from
    /// `sson_option`: one code cannot carry both strings.
    pub url_option: u8,
    /// How long an offered address is held for the client it was offered to.
    pub offer_hold_seconds: u32,
    /// How long an address a client declined (someone else answers ARP for it) is kept out of use.
    pub decline_seconds: u32,
    #[serde(rename = "subnet")]
    pub subnets: Vec<SubnetConfig>,
    #[serde(rename = "vendor_class")]
    pub vendor_classes: Vec<VendorClassConfig>,
    /// Sent to every client.
    pub options: OptionMap,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetConfig {
    pub network: Ipv4Net,
    /// Inclusive first/last address pairs handed out dynamically. The server's own addresses
    /// are skipped (with a warning at start) should a range hold one.
    #[serde(default)]
    pub ranges: Vec<[Ipv4Addr; 2]>,
    #[serde(default)]
    pub router: Option<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    #[serde(default)]
    pub ntp: Vec<Ipv4Addr>,
    #[serde(default)]
    pub domain: String,
    #[serde(default = "default_lease_seconds")]
    pub lease_seconds: u32,
    /// This box's address as the subnet's clients see it (option 54). Default: the source
    /// address the kernel routes toward the subnet (or toward the relay), looked up at start.
    #[serde(default)]
    pub server_id: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorClassConfig {
    /// A case-insensitive substring of the client's option 60.
    #[serde(rename = "match")]
    pub pattern: String,
    #[serde(default)]
    pub options: OptionMap,
}

fn default_lease_seconds() -> u32 {
    86_400
}

impl Default for DhcpConfig {
    fn default() -> Self {
        DhcpConfig {
            enabled: false,
            listen: SocketAddr::from(([0, 0, 0, 0], 67)),
            interfaces: Vec::new(),
            mode: DhcpMode::Server,
            authoritative: true,
            provisioning_url: String::new(),
            vendor_defaults: true,
            sson_option: 242,
            url_option: 160,
            offer_hold_seconds: 30,
            decline_seconds: 3_600,
            subnets: Vec::new(),
            vendor_classes: Vec::new(),
            options: OptionMap::new(),
        }
    }
}

/// Encodes an option map, naming the offending code.
pub fn encode_map(map: &OptionMap) -> Result<Vec<(u8, Vec<u8>)>, String> {
    map.iter()
        .map(|(key, value)| {
            let code = options::parse_code(key)?;
            let bytes = value
                .encode(code)
                .map_err(|e| format!("option {code}: {e}"))?;
            Ok((code, bytes))
        })
        .collect()
}

fn u32_of(ip: Ipv4Addr) -> u32 {
    u32::from(ip)
}

impl DhcpConfig {
    /// Checks what serde cannot; the error names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.listen.ip().is_ipv6() {
            return Err(("dhcp.listen", "DHCP is IPv4: use an IPv4 address".into()));
        }
        // Clients are answered on the port after the server's (`packet::destination`); after
        // 65535 that would wrap to port 0, where no client listens and no reply arrives.
        if self.listen.port() == u16::MAX {
            return Err((
                "dhcp.listen",
                format!(
                    "port {} leaves no port for the clients, who are answered on the next port \
                     up (68 for 67)",
                    u16::MAX
                ),
            ));
        }
        if self.interfaces.iter().any(|i| i.is_empty() || i.len() > 15) {
            return Err((
                "dhcp.interfaces",
                "interface names are 1-15 characters".into(),
            ));
        }
        // One socket per listed interface shares the port (`server::bind`); a name listed twice
        // would get two, each handed every broadcast request, so each would be answered twice.
        for (i, name) in self.interfaces.iter().enumerate() {
            if let Some(first) = self.interfaces[..i].iter().position(|n| n == name) {
                return Err((
                    "dhcp.interfaces",
                    format!(
                        "{name:?} is listed twice (entries {} and {})",
                        first + 1,
                        i + 1
                    ),
                ));
            }
        }
        for (key, code) in [
            ("dhcp.sson_option", self.sson_option),
            ("dhcp.url_option", self.url_option),
        ] {
            if options::SERVER_OWNED.contains(&code) {
                return Err((key, format!("option {code} is set by the server itself")));
            }
        }
        // One code for both would make the Avaya SSON and the Yealink/Poly URL overwrite each
        // other in a reply, and the ISC dhcpd export would define that code twice.
        if self.sson_option == self.url_option {
            return Err((
                "dhcp.url_option",
                format!(
                    "option {} is also dhcp.sson_option: the SSON and the URL need two codes",
                    self.url_option
                ),
            ));
        }
        if self.offer_hold_seconds == 0 {
            return Err(("dhcp.offer_hold_seconds", "must be at least 1".into()));
        }
        if self.decline_seconds == 0 {
            return Err((
                "dhcp.decline_seconds",
                "must be at least 1: a declined address is in use by another host (RFC 2131 \
                 4.3.3), and 0 would hand it out again at once"
                    .into(),
            ));
        }
        if !self.provisioning_url.is_empty() {
            super::vendor::ProvisioningUrl::parse(&self.provisioning_url)
                .map_err(|e| ("dhcp.provisioning_url", e))?;
        }
        encode_map(&self.options).map_err(|e| ("dhcp.options", e))?;
        for class in &self.vendor_classes {
            if class.pattern.trim().is_empty() {
                return Err(("dhcp.vendor_class.match", "must not be empty".into()));
            }
            encode_map(&class.options).map_err(|e| {
                (
                    "dhcp.vendor_class.options",
                    format!("{:?}: {e}", class.pattern),
                )
            })?;
        }
        if self.enabled && self.mode == DhcpMode::Server && self.subnets.is_empty() {
            return Err((
                "dhcp.subnet",
                "server mode needs at least one [[dhcp.subnet]]".into(),
            ));
        }
        let mut seen: Vec<Ipv4Net> = Vec::new();
        for s in &self.subnets {
            let net = s.network;
            let name = net.to_string();
            if net.prefix_len() > 30 {
                return Err((
                    "dhcp.subnet.network",
                    format!("{name}: a prefix longer than /30 has no room for clients"),
                ));
            }
            if let Some(other) = seen.iter().find(|o| o.contains(&net) || net.contains(*o)) {
                return Err(("dhcp.subnet.network", format!("{name} overlaps {other}")));
            }
            seen.push(net);
            if s.lease_seconds < 60 {
                return Err(("dhcp.subnet.lease_seconds", format!("{name}: at least 60")));
            }
            let inside =
                |ip: &Ipv4Addr| net.contains(ip) && *ip != net.network() && *ip != net.broadcast();
            let mut ranges: Vec<(u32, u32)> = Vec::new();
            for [first, last] in &s.ranges {
                if !inside(first) || !inside(last) {
                    return Err((
                        "dhcp.subnet.ranges",
                        format!(
                            "{first}-{last} is not inside {name} (network and broadcast addresses excluded)"
                        ),
                    ));
                }
                if u32_of(*first) > u32_of(*last) {
                    return Err((
                        "dhcp.subnet.ranges",
                        format!("{first}-{last}: first is after last"),
                    ));
                }
                let r = (u32_of(*first), u32_of(*last));
                if ranges.iter().any(|o| r.0 <= o.1 && o.0 <= r.1) {
                    return Err((
                        "dhcp.subnet.ranges",
                        format!("{first}-{last} overlaps another range"),
                    ));
                }
                ranges.push(r);
            }
            let in_range =
                |ip: &Ipv4Addr| ranges.iter().any(|r| (r.0..=r.1).contains(&u32_of(*ip)));
            if let Some(router) = &s.router {
                if !inside(router) {
                    return Err((
                        "dhcp.subnet.router",
                        format!("{router} is not inside {name}"),
                    ));
                }
                if in_range(router) {
                    return Err((
                        "dhcp.subnet.router",
                        format!("{router} lies inside a range of {name}"),
                    ));
                }
            }
            if let Some(id) = &s.server_id
                && in_range(id)
            {
                return Err((
                    "dhcp.subnet.server_id",
                    format!("{id} lies inside a range of {name}"),
                ));
            }
            if s.domain.len() > 255 {
                return Err((
                    "dhcp.subnet.domain",
                    format!("{name}: longer than 255 bytes"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DhcpConfig, String> {
        #[derive(Deserialize)]
        struct W {
            dhcp: DhcpConfig,
        }
        let w: W = toml::from_str(text).map_err(|e| e.to_string())?;
        w.dhcp.validate().map_err(|(k, m)| format!("{k}: {m}"))?;
        Ok(w.dhcp)
    }

    const ISSUE: &str = r#"
[dhcp]
enabled = false
listen = "0.0.0.0:67"
interfaces = []
mode = "server"
authoritative = true
[[dhcp.subnet]]
network = "10.77.0.0/24"
ranges = [["10.77.0.100", "10.77.0.250"]]
router = "10.77.0.1"
dns = ["10.77.0.1"]
ntp = ["10.77.0.1"]
domain = "prov.example.lan"
lease_seconds = 86400
[[dhcp.vendor_class]]
match = "ccp.avaya.com"
options = { 242 = "HTTPSRVR=10.77.0.1,HTTPDIR=/" }
[dhcp.options]
66 = "https://10.77.0.1:443/"
"#;

    #[test]
    fn the_issue_example_parses() {
        let c = parse(ISSUE).unwrap();
        assert_eq!(c.subnets[0].ranges.len(), 1);
        assert_eq!(c.vendor_classes[0].pattern, "ccp.avaya.com");
        assert_eq!(
            encode_map(&c.options).unwrap(),
            vec![(66, b"https://10.77.0.1:443/".to_vec())]
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            (
                ISSUE.replace("10.77.0.250", "10.78.0.250"),
                "dhcp.subnet.ranges",
            ),
            (
                ISSUE.replace("router = \"10.77.0.1\"", "router = \"10.77.0.150\""),
                "dhcp.subnet.router",
            ),
            (ISSUE.replace("66 =", "53 ="), "dhcp.options"),
            (
                ISSUE.replace("66 = \"https://10.77.0.1:443/\"", "6 = \"nope\""),
                "dhcp.options",
            ),
            (
                ISSUE.replace("lease_seconds = 86400", "lease_seconds = 5"),
                "dhcp.subnet.lease_seconds",
            ),
            (
                format!("{ISSUE}\n[[dhcp.subnet]]\nnetwork = \"10.77.0.0/16\"\n"),
                "dhcp.subnet.network",
            ),
        ];
        for (text, key) in cases {
            let err = parse(&text).unwrap_err();
            assert!(err.starts_with(key), "{key}: {err}");
        }
        let err = parse("[dhcp]\nsson_option = 200\nurl_option = 200\n").unwrap_err();
        assert!(
            err.starts_with("dhcp.url_option") && err.contains("dhcp.sson_option"),
            "{err}"
        );
        let err = parse("[dhcp]\nenabeld = true\n").unwrap_err();
        assert!(err.contains("enabeld"), "{err}");
        let err = parse("[dhcp]\nenabled = true\n").unwrap_err();
        assert!(err.contains("dhcp.subnet"), "{err}");
    }
}
