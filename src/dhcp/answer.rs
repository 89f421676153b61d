//! Which options a client gets, worked out once at start from the configuration: the subnet's
//! network options, then the vendor-class defaults built from the provisioning URL, then
//! `[dhcp.options]`, then every matching `[[dhcp.vendor_class]]` (later entries win).

use std::net::Ipv4Addr;

use super::config::{DhcpConfig, encode_map};
use super::lease::Decision;
use super::options::{
    BROADCAST, DNS, DOMAIN_NAME, LEASE_TIME, NTP, REBINDING_TIME, RENEWAL_TIME, ROUTER,
    ReplyOptions, SERVER_ID, SUBNET_MASK,
};
use super::packet::{ACK, NAK, OFFER, Reply, Request};
use super::vendor::{Family, ProvisioningUrl};

type Opts = Vec<(u8, Vec<u8>)>;

pub struct Plan {
    subnets: Vec<(Opts, u32)>,
    url: Option<ProvisioningUrl>,
    vendor_defaults: bool,
    sson_option: u8,
    url_option: u8,
    global: Opts,
    classes: Vec<(String, Opts)>,
}

impl Plan {
    /// `config` has been validated, so its option maps encode.
    pub fn new(config: &DhcpConfig, url: Option<ProvisioningUrl>) -> Result<Plan, String> {
        let subnets = config
            .subnets
            .iter()
            .map(|s| {
                let mut o: Opts = vec![
                    (SUBNET_MASK, s.network.netmask().octets().to_vec()),
                    (BROADCAST, s.network.broadcast().octets().to_vec()),
                ];
                let ips = |v: &[Ipv4Addr]| v.iter().flat_map(|ip| ip.octets()).collect::<Vec<u8>>();
                if let Some(r) = s.router {
                    o.push((ROUTER, r.octets().to_vec()));
                }
                if !s.dns.is_empty() {
                    o.push((DNS, ips(&s.dns)));
                }
                if !s.ntp.is_empty() {
                    o.push((NTP, ips(&s.ntp)));
                }
                if !s.domain.is_empty() {
                    o.push((DOMAIN_NAME, s.domain.as_bytes().to_vec()));
                }
                (o, s.lease_seconds)
            })
            .collect();
        let classes = config
            .vendor_classes
            .iter()
            .map(|c| Ok((c.pattern.to_ascii_lowercase(), encode_map(&c.options)?)))
            .collect::<Result<_, String>>()?;
        Ok(Plan {
            subnets,
            url,
            vendor_defaults: config.vendor_defaults,
            sson_option: config.sson_option,
            url_option: config.url_option,
            global: encode_map(&config.options)?,
            classes,
        })
    }

    /// Every option other than the lease's own, for a client of `subnet` with `vendor_class`.
    pub fn body(&self, subnet: Option<usize>, vendor_class: &str) -> ReplyOptions {
        let mut out = ReplyOptions::default();
        let mut add = |opts: &[(u8, Vec<u8>)]| {
            for (c, v) in opts {
                out.set(*c, v.clone());
            }
        };
        if let Some((o, _)) = subnet.and_then(|s| self.subnets.get(s)) {
            add(o);
        }
        if self.vendor_defaults
            && let (Some(url), Some(family)) = (&self.url, Family::of(vendor_class))
        {
            add(&url.defaults(family, self.sson_option, self.url_option));
        }
        add(&self.global);
        let vc = vendor_class.to_ascii_lowercase();
        for (pattern, opts) in &self.classes {
            if !vc.is_empty() && vc.contains(pattern.as_str()) {
                add(opts);
            }
        }
        out
    }

    /// The reply a decision calls for, if any.
    pub fn reply(&self, req: &Request, decision: &Decision, server_id: Ipv4Addr) -> Option<Reply> {
        let mut head = ReplyOptions::default();
        head.set(SERVER_ID, server_id.octets().to_vec());
        let lease_head = |head: &mut ReplyOptions, secs: u32| {
            head.set(LEASE_TIME, secs.to_be_bytes().to_vec());
            head.set(RENEWAL_TIME, (secs / 2).to_be_bytes().to_vec());
            head.set(REBINDING_TIME, (secs / 8 * 7).to_be_bytes().to_vec());
        };
        let (msg_type, yiaddr, ciaddr, body) = match decision {
            Decision::Offer { ip, subnet } => {
                lease_head(&mut head, self.subnets[*subnet].1);
                (
                    OFFER,
                    *ip,
                    Ipv4Addr::UNSPECIFIED,
                    self.body(Some(*subnet), &req.vendor_class),
                )
            }
            Decision::Ack { subnet, lease } => {
                lease_head(&mut head, self.subnets[*subnet].1);
                (
                    ACK,
                    lease.ip,
                    req.ciaddr,
                    self.body(Some(*subnet), &req.vendor_class),
                )
            }
            // RFC 2131 4.3.5: no lease time and no yiaddr in the answer to an INFORM.
            Decision::InformAck { subnet } => (
                ACK,
                Ipv4Addr::UNSPECIFIED,
                req.ciaddr,
                self.body(*subnet, &req.vendor_class),
            ),
            Decision::Nak { .. } => (
                NAK,
                Ipv4Addr::UNSPECIFIED,
                Ipv4Addr::UNSPECIFIED,
                ReplyOptions::default(),
            ),
            Decision::Write(_) | Decision::Exhausted | Decision::Ignore(_) => return None,
        };
        Some(Reply {
            msg_type,
            yiaddr,
            ciaddr,
            head,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dhcp::options::OptionValue;

    fn plan(extra: impl FnOnce(&mut DhcpConfig)) -> Plan {
        let mut c: DhcpConfig = toml::from_str::<toml::Table>(
            r#"
[[subnet]]
network = "10.77.0.0/24"
ranges = [["10.77.0.100", "10.77.0.250"]]
router = "10.77.0.1"
dns = ["10.77.0.1", "10.77.0.2"]
domain = "prov.example.lan"
"#,
        )
        .unwrap()
        .try_into()
        .unwrap();
        extra(&mut c);
        Plan::new(
            &c,
            Some(ProvisioningUrl::parse("https://10.77.0.1:8443/").unwrap()),
        )
        .unwrap()
    }

    #[test]
    fn avaya_gets_sson_and_43_yealink_gets_66_and_160() {
        let p = plan(|_| {});
        let avaya = p.body(Some(0), "ccp.avaya.com");
        assert_eq!(
            avaya.get(242),
            Some(&b"TLSSRVR=10.77.0.1,TLSDIR=/,TLSPORT=8443"[..])
        );
        assert_eq!(&avaya.get(43).unwrap()[..6], b"\x01\x046889");
        assert_eq!(avaya.get(66), None);
        assert_eq!(avaya.get(6), Some(&[10, 77, 0, 1, 10, 77, 0, 2][..]));
        assert_eq!(avaya.get(1), Some(&[255, 255, 255, 0][..]));
        let y = p.body(Some(0), "yealink");
        assert_eq!(y.get(66), Some(&b"https://10.77.0.1:8443/"[..]));
        assert_eq!(y.get(160), Some(&b"https://10.77.0.1:8443/"[..]));
        assert_eq!(y.get(242), None);
        let other = p.body(Some(0), "udhcp 1.36");
        assert_eq!(other.get(66), None);
    }

    #[test]
    fn configured_options_override_defaults_and_classes_override_global() {
        let p = plan(|c| {
            c.sson_option = 176;
            c.options
                .insert("66".into(), OptionValue::Text("tftp.example".into()));
            c.vendor_classes
                .push(crate::dhcp::config::VendorClassConfig {
                    pattern: "CCP.AVAYA".into(),
                    options: [(
                        "176".to_string(),
                        OptionValue::Text("HTTPSRVR=10.77.0.9".into()),
                    )]
                    .into(),
                });
        });
        let avaya = p.body(Some(0), "ccp.avaya.com");
        assert_eq!(avaya.get(176), Some(&b"HTTPSRVR=10.77.0.9"[..]));
        assert_eq!(avaya.get(242), None);
        assert_eq!(avaya.get(66), Some(&b"tftp.example"[..]));
        assert_eq!(
            p.body(Some(0), "yealink").get(66),
            Some(&b"tftp.example"[..])
        );
    }
}
