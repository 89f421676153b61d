//! The `[dns]` table. The responder is off unless `listen` names an address; everything else has
//! a default that follows from the rest of the configuration (the box's names from
//! `pki.server_names`, ports from `phone.*_listen`), so a site usually sets only `listen`,
//! `domain` and `upstream`.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::record::{RecordSpec, parse_name};

/// Most DNS TCP connections `dns.tcp_max_connections` may allow: each is a file descriptor the
/// open-file limit must also cover, and DNS over TCP is a fallback, not a bulk transport.
pub const MAX_TCP_CONNECTIONS: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// UDP and TCP addresses to answer on (`["0.0.0.0:53"]` in the package); empty turns the
    /// responder off.
    pub listen: Vec<SocketAddr>,
    /// The zone served authoritatively (SOA, NS, the box's names, discovery records).
    pub domain: String,
    /// Resolvers other names are forwarded to, tried in order (one that gave no answer is
    /// tried last for 20 seconds); empty answers them REFUSED.
    pub upstream: Vec<SocketAddr>,
    /// Clients allowed to query at all; everyone else gets REFUSED. Private ranges by default.
    pub allow_from: Vec<IpNet>,
    /// The box's own host name (SOA MNAME, NS target, SRV target). Default: the first
    /// `pki.server_names` entry inside `domain`, else `edgeprov.<domain>`.
    pub server_name: String,
    /// Addresses of `server_name`. Default: the IP addresses in `pki.server_names`, else the
    /// specific (non-wildcard) addresses of `phone.https_listen`.
    pub addresses: Vec<IpAddr>,
    /// Host that discovery records point phones at. Default: `server_name`. A host name, not
    /// an address (an SRV target must be a name): for an address, leave this empty and set
    /// `addresses`.
    pub provisioning_host: String,
    /// SRV owner names pointing at the HTTPS provisioning port; relative to `domain` unless
    /// they end with a dot. Vendors differ, so this is a list.
    pub srv_https: Vec<String>,
    /// SRV owner names pointing at the plain HTTP port (left out when `phone.http_listen` is
    /// empty).
    pub srv_http: Vec<String>,
    /// Owner of the TXT record that carries `settings_url`; empty leaves the TXT record out.
    pub txt_name: String,
    /// The URL the TXT record carries and `edgeprov dns check` expects. Default:
    /// `https://<provisioning_host>[:port]/`.
    pub settings_url: String,
    /// TTL of the generated records (SOA, NS, box addresses, SRV, TXT).
    pub ttl: u32,
    /// How long resolvers may cache "no such name" for this zone (SOA MINIMUM).
    pub negative_ttl: u32,
    /// Answers per second allowed to one client, over UDP and TCP together (one budget, so
    /// switching transport does not double it), so the box cannot be used to amplify traffic
    /// at a spoofed victim. A client inside `allow_from` is one address (an IPv6 /64), so a
    /// boot storm on a voice VLAN's /24 is not one client; any other source is its whole /24
    /// (IPv4) or /56 (IPv6). Beyond it a UDP query is answered truncated or not at all, and a
    /// TCP query, over any of the client's connections, waits for its answer (TCP is not
    /// spoofed, so it is slowed rather than dropped). 0 turns both off.
    pub rate_limit: u32,
    /// Forwarded answers kept in the cache (entries); 0 keeps none.
    pub cache_size: usize,
    /// How long to wait for each upstream before trying the next, then SERVFAIL.
    pub forward_timeout_ms: u64,
    /// Idle TCP connections are closed after this time (also the most a client may take to
    /// send one whole message).
    pub tcp_timeout_ms: u64,
    /// TCP connections open at once, from all clients. Each holds a file descriptor, so this
    /// bounds what DNS can take from the phone listener; beyond it new connections are closed
    /// as soon as accepted. Clients only use TCP after a truncated UDP reply, so few are open.
    pub tcp_max_connections: usize,
    /// TCP connections open at once from one client (an IPv4 address or an IPv6 /64), so one
    /// client cannot hold them all; beyond it its new connections are closed at once.
    /// Connections from outside `allow_from` are always closed at once.
    pub tcp_connections_per_client: usize,
    /// Records served in addition to the generated ones (`[[dns.record]]`).
    pub record: Vec<RecordSpec>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        let net = |s: &str| s.parse::<IpNet>().expect("built-in network parses");
        DnsConfig {
            listen: Vec::new(),
            domain: "prov.example.lan".into(),
            upstream: Vec::new(),
            allow_from: [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.0/8",
                "172.16.0.0/12",
                "192.168.0.0/16",
                "fc00::/7",
            ]
            .into_iter()
            .map(net)
            .collect(),
            server_name: String::new(),
            addresses: Vec::new(),
            provisioning_host: String::new(),
            srv_https: vec!["_avaya-ep-config._tcp".into(), "_https._tcp".into()],
            srv_http: vec!["_http._tcp".into()],
            txt_name: "_avaya-ep-config._tcp".into(),
            settings_url: String::new(),
            ttl: 300,
            negative_ttl: 60,
            rate_limit: 200,
            cache_size: 10_000,
            forward_timeout_ms: 1_000,
            tcp_timeout_ms: 5_000,
            tcp_max_connections: 256,
            tcp_connections_per_client: 16,
            record: Vec::new(),
        }
    }
}

impl DnsConfig {
    /// Checks what serde cannot: names parse, records are valid and inside the zone. The error
    /// is the key and a message naming the offending entry.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let zone = parse_name(&self.domain).map_err(|m| ("dns.domain", m))?;
        if zone.is_root() {
            return Err(("dns.domain", "must not be the root".into()));
        }
        for (key, value) in [
            ("dns.server_name", &self.server_name),
            ("dns.provisioning_host", &self.provisioning_host),
        ] {
            // An address would pass as a name ("10.77.0.1." is four labels) and go out as an
            // SRV, NS or SOA target, which must be a host name (RFC 2782, RFC 1035); phones
            // would look up a name that does not exist.
            if value.trim().parse::<IpAddr>().is_ok() {
                return Err((
                    key,
                    format!(
                        "{value:?} is an IP address, but this is a host name (SRV targets \
                         must be names, RFC 2782): leave it empty to use the box's own name, \
                         whose addresses dns.addresses sets, or name a host; dns.settings_url \
                         may still carry an address"
                    ),
                ));
            }
            if !value.is_empty() {
                parse_name(value).map_err(|m| (key, m))?;
            }
        }
        for (key, names) in [
            ("dns.srv_https", &self.srv_https),
            ("dns.srv_http", &self.srv_http),
        ] {
            for name in names {
                super::zone::owner(name, &zone).map_err(|m| (key, m))?;
            }
        }
        if !self.txt_name.is_empty() {
            super::zone::owner(&self.txt_name, &zone).map_err(|m| ("dns.txt_name", m))?;
        }
        // Each refusal names its own key, so that the error carries the line that sets it.
        for (key, ttl) in [
            ("dns.ttl", self.ttl),
            ("dns.negative_ttl", self.negative_ttl),
        ] {
            if ttl > super::record::MAX_TTL {
                return Err((
                    key,
                    format!("{ttl} is more than {} seconds", super::record::MAX_TTL),
                ));
            }
        }
        for (key, ms) in [
            ("dns.forward_timeout_ms", self.forward_timeout_ms),
            ("dns.tcp_timeout_ms", self.tcp_timeout_ms),
        ] {
            if ms == 0 {
                return Err((key, "must be greater than zero".into()));
            }
        }
        if !(1..=MAX_TCP_CONNECTIONS).contains(&self.tcp_max_connections) {
            return Err((
                "dns.tcp_max_connections",
                format!("must be between 1 and {MAX_TCP_CONNECTIONS}"),
            ));
        }
        if !(1..=self.tcp_max_connections).contains(&self.tcp_connections_per_client) {
            return Err((
                "dns.tcp_connections_per_client",
                "must be between 1 and dns.tcp_max_connections".into(),
            ));
        }
        let mut records: Vec<hickory_proto::rr::Record> = Vec::new();
        for (i, rec) in self.record.iter().enumerate() {
            let at = |e: String| {
                (
                    "dns.record",
                    format!("record {} ({}): {e}", i + 1, rec.name),
                )
            };
            let record = rec.to_record(&zone).map_err(|e| at(e.to_string()))?;
            let present: Vec<_> = records
                .iter()
                .filter(|r| r.name == record.name)
                .cloned()
                .collect();
            if let Some(why) = super::zone::cname_conflict(&present, &record) {
                return Err(at(format!("name: {why}")));
            }
            records.push(record);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn contract_keys_parse() {
        let c = parse(
            r#"
[dns]
listen = ["0.0.0.0:53"]
domain = "prov.example.lan"
upstream = ["10.0.0.1:53"]
allow_from = ["127.0.0.0/8", "::1/128", "10.0.0.0/8"]
[[dns.record]]
name = "sip.prov.example.lan"
type = "A"
value = "10.0.0.10"
ttl = 300
"#,
        )
        .unwrap();
        assert_eq!(c.dns.listen.len(), 1);
        assert_eq!(c.dns.record[0].value, "10.0.0.10");
    }

    #[test]
    fn default_is_off() {
        assert!(parse("").unwrap().dns.listen.is_empty());
    }

    #[test]
    fn bad_record_names_key_and_field() {
        let e = parse(
            "[[dns.record]]\nname = \"x.prov.example.lan\"\ntype = \"A\"\nvalue = \"nope\"\n",
        )
        .unwrap_err();
        assert!(e.contains("dns.record") && e.contains("value"), "{e}");
        let e = parse("[dns]\nallow_from = [\"10.0.0.0/33\"]\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = parse("[dns]\nlisen = []\n").unwrap_err();
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn an_address_where_a_host_name_goes_is_refused() {
        for (key, value) in [
            ("provisioning_host", "10.77.0.1"),
            ("provisioning_host", "fd00::1"),
            ("server_name", "10.77.0.1"),
        ] {
            let e = parse(&format!("[dns]\n{key} = \"{value}\"\n")).unwrap_err();
            assert!(
                e.contains(&format!("dns.{key}")) && e.contains("IP address"),
                "{e}"
            );
        }
        assert!(parse("[dns]\nprovisioning_host = \"prov.example.lan\"\n").is_ok());
    }

    #[test]
    fn a_cname_beside_other_configured_data_is_refused() {
        let e = parse(
            "[[dns.record]]\nname = \"sip.prov.example.lan\"\ntype = \"A\"\nvalue = \"10.0.0.1\"\n\
             [[dns.record]]\nname = \"SIP.prov.example.lan.\"\ntype = \"CNAME\"\n\
             value = \"other.example.com\"\n",
        )
        .unwrap_err();
        assert!(
            e.contains("dns.record") && e.contains("record 2") && e.contains("name:"),
            "{e}"
        );
    }
}
