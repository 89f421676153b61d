//! What each phone family reads from DHCP to find this box, built from its provisioning URL:
//! Avaya the SSON string (option 242 by default) and option 43 with enterprise number 6889,
//! Yealink and Poly option 66 and a custom URL option (160), Cisco option 66 with the host and,
//! when the host is an address, option 150.

use std::net::Ipv4Addr;

use super::options::{CISCO_TFTP, TFTP_SERVER_NAME, VENDOR_SPECIFIC};

/// The phone families told apart by their vendor class (option 60).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Avaya,
    Yealink,
    Poly,
    Cisco,
}

impl Family {
    /// Avaya phones send `ccp.avaya.com`; Yealink `yealink`; Poly `Polycom-<model>`; Cisco
    /// `Cisco Systems, Inc. IP Phone <model>`. Matched case-insensitively as substrings.
    pub fn of(vendor_class: &str) -> Option<Family> {
        let v = vendor_class.to_ascii_lowercase();
        if v.contains("avaya") {
            Some(Family::Avaya)
        } else if v.contains("yealink") {
            Some(Family::Yealink)
        } else if v.contains("polycom") || v.starts_with("poly") {
            Some(Family::Poly)
        } else if v.contains("cisco") {
            Some(Family::Cisco)
        } else {
            None
        }
    }
}

/// The box's provisioning URL taken apart as the option strings need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisioningUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Starts with `/`.
    pub path: String,
}

impl ProvisioningUrl {
    /// Accepts `http(s)://host[:port][/path]`. The host and path end up in Avaya's SSON, which
    /// has no escaping: `,` `=` `"` `'` and spaces are refused rather than sent broken.
    pub fn parse(url: &str) -> Result<ProvisioningUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(format!("{url:?}: expected http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
            ),
            None => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
        {
            return Err(format!(
                "{url:?}: the host must be an IPv4 address or a DNS name"
            ));
        }
        if path
            .bytes()
            .any(|b| matches!(b, b',' | b'=' | b'"' | b'\'') || b <= b' ' || b >= 0x7f)
        {
            return Err(format!(
                "{url:?}: the path must not contain , = quotes, spaces or control characters"
            ));
        }
        if path.len() > 127 {
            return Err(format!("{url:?}: the path is longer than 127 characters"));
        }
        let parsed = ProvisioningUrl {
            tls,
            host: host.to_string(),
            port,
            path: path.to_string(),
        };
        // A DHCP option holds at most 255 bytes, and option 43 writes each part's length in
        // one byte: a longer host would wrap it and corrupt the option every phone reads.
        let longest = [
            parsed.avaya_43().len(),
            parsed.sson().len(),
            parsed.url().len(),
        ];
        if longest.iter().any(|&n| n > 255) {
            return Err(format!(
                "{url:?}: too long for a DHCP option (255 bytes, with the host and path of \
                 Avaya's option 43 at most 238 together)"
            ));
        }
        Ok(parsed)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}{}", self.host, self.port, self.path)
    }

    pub fn host_ip(&self) -> Option<Ipv4Addr> {
        self.host.parse().ok()
    }

    /// The Avaya SSON string, e.g. `TLSSRVR=10.0.0.5,TLSDIR=/,TLSPORT=8443`.
    pub fn sson(&self) -> String {
        let (srv, dir, port) = if self.tls {
            ("TLSSRVR", "TLSDIR", "TLSPORT")
        } else {
            ("HTTPSRVR", "HTTPDIR", "HTTPPORT")
        };
        format!(
            "{srv}={},{dir}={},{port}={}",
            self.host, self.path, self.port
        )
    }

    /// Avaya option 43: sub-option 1 is the enterprise number `6889` (without it the phone
    /// ignores the option), then server, directory and port as sub-options 5/6/7 for TLS or
    /// 2/3/4 for HTTP.
    pub fn avaya_43(&self) -> Vec<u8> {
        let base = if self.tls { 5 } else { 2 };
        let port = self.port.to_string();
        let mut out = Vec::new();
        for (sub, value) in [
            (1u8, "6889"),
            (base, self.host.as_str()),
            (base + 1, self.path.as_str()),
            (base + 2, port.as_str()),
        ] {
            out.push(sub);
            out.push(value.len() as u8);
            out.extend_from_slice(value.as_bytes());
        }
        out
    }

    /// The default discovery options for a family; `sson_option` and `url_option` are the site's
    /// choice of code.
    pub fn defaults(&self, family: Family, sson_option: u8, url_option: u8) -> Vec<(u8, Vec<u8>)> {
        let url = self.url().into_bytes();
        match family {
            Family::Avaya => vec![
                (sson_option, self.sson().into_bytes()),
                (VENDOR_SPECIFIC, self.avaya_43()),
            ],
            Family::Yealink | Family::Poly => {
                vec![(TFTP_SERVER_NAME, url.clone()), (url_option, url)]
            }
            // Cisco phones read their configuration server from option 150 (a list of IPv4
            // addresses), else from option 66 (a host name or an address, as its TFTP server
            // name). Option 150 cannot carry a name: with a DNS name as the host, only option
            // 66 points the phone here (before, a name left Cisco phones without either).
            // The host alone goes in 66, not the URL: that is the form every Cisco phone reads
            // there; a site whose phones want the whole URL sets it in a
            // `[[dhcp.vendor_class]]` entry (`match = "cisco"`, option 160 for MPP phones).
            Family::Cisco => {
                let mut out: Vec<(u8, Vec<u8>)> = self
                    .host_ip()
                    .map(|ip| (CISCO_TFTP, ip.octets().to_vec()))
                    .into_iter()
                    .collect();
                out.push((TFTP_SERVER_NAME, self.host.clone().into_bytes()));
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_by_vendor_class() {
        assert_eq!(Family::of("ccp.avaya.com"), Some(Family::Avaya));
        assert_eq!(Family::of("yealink"), Some(Family::Yealink));
        assert_eq!(Family::of("Polycom-VVX400"), Some(Family::Poly));
        assert_eq!(
            Family::of("Cisco Systems, Inc. IP Phone CP-7841"),
            Some(Family::Cisco)
        );
        assert_eq!(Family::of("udhcp 1.36.1"), None);
    }

    #[test]
    fn sson_and_43_from_url() {
        let u = ProvisioningUrl::parse("https://10.77.0.1:8443/").unwrap();
        assert_eq!(u.sson(), "TLSSRVR=10.77.0.1,TLSDIR=/,TLSPORT=8443");
        let o43 = u.avaya_43();
        assert_eq!(&o43[..6], &[1, 4, b'6', b'8', b'8', b'9']);
        assert_eq!(o43[6], 5);
        let h = ProvisioningUrl::parse("http://prov.example.lan/avaya").unwrap();
        assert_eq!(
            h.sson(),
            "HTTPSRVR=prov.example.lan,HTTPDIR=/avaya,HTTPPORT=80"
        );
        assert_eq!(h.url(), "http://prov.example.lan:80/avaya");
    }

    #[test]
    fn urls_that_would_break_the_sson_are_refused() {
        for bad in [
            "ftp://x/",
            "https://a,b/",
            "https:///",
            "https://x:99999/",
            "https://x/a=b",
            "https://x/a b",
        ] {
            assert!(ProvisioningUrl::parse(bad).is_err(), "{bad}");
        }
        // A host of 240 bytes (labels of 59) would wrap option 43's one-byte length.
        let host = vec!["a".repeat(59); 4].join(".");
        let err = ProvisioningUrl::parse(&format!("https://{host}/")).unwrap_err();
        assert!(err.contains("too long for a DHCP option"), "{err}");
        let fits = vec!["a".repeat(59); 3].join(".");
        let o43 = ProvisioningUrl::parse(&format!("https://{fits}/"))
            .unwrap()
            .avaya_43();
        assert!(o43.len() <= 255 && o43[7] as usize == fits.len());
    }

    /// Option 150 holds addresses only; with a DNS name as the host, Cisco phones are
    /// pointed here by option 66 alone (before, they got nothing at all).
    #[test]
    fn cisco_gets_66_with_the_host_and_150_with_an_address() {
        let ip = ProvisioningUrl::parse("https://10.0.0.5/").unwrap();
        assert_eq!(
            ip.defaults(Family::Cisco, 242, 160),
            vec![(150, vec![10, 0, 0, 5]), (66, b"10.0.0.5".to_vec())]
        );
        let name = ProvisioningUrl::parse("https://prov.lan/").unwrap();
        assert_eq!(
            name.defaults(Family::Cisco, 242, 160),
            vec![(66, b"prov.lan".to_vec())]
        );
        let y = name.defaults(Family::Yealink, 242, 161);
        assert_eq!(y[1].0, 161);
    }
}
