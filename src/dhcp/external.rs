//! Ready-to-paste option definitions for a site that keeps its own DHCP server: the same options
//! this box would send, for ISC dhcpd, Kea, dnsmasq and Windows `netsh`.

use super::vendor::{Family, ProvisioningUrl};

/// The formats `edgeprov dhcp options --format` knows.
pub const FORMATS: &[&str] = &["isc", "kea", "dnsmasq", "netsh"];

struct Class {
    name: &'static str,
    /// What the vendor class (option 60) starts with or contains.
    pattern: &'static str,
    options: Vec<(u8, Vec<u8>)>,
}

fn classes(url: &ProvisioningUrl, sson: u8, url_option: u8) -> Vec<Class> {
    [
        ("avaya", "ccp.avaya.com", Family::Avaya),
        ("yealink", "yealink", Family::Yealink),
        ("polycom", "Polycom", Family::Poly),
        ("cisco", "Cisco", Family::Cisco),
    ]
    .into_iter()
    .map(|(name, pattern, family)| Class {
        name,
        pattern,
        options: url.defaults(family, sson, url_option),
    })
    .filter(|c| !c.options.is_empty())
    .collect()
}

fn hex(bytes: &[u8], sep: &str) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ip(bytes: &[u8]) -> String {
    bytes
        .chunks(4)
        .map(|c| c.iter().map(u8::to_string).collect::<Vec<_>>().join("."))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Renders one format; `None` for an unknown format name.
pub fn render(format: &str, url: &ProvisioningUrl, sson: u8, url_option: u8) -> Option<String> {
    let cs = classes(url, sson, url_option);
    let mut out = String::new();
    let head = format!("provisioning URL {}", url.url());
    match format {
        "isc" => {
            out.push_str(&format!("# ISC dhcpd (dhcpd.conf): {head}\n"));
            out.push_str(&format!("option avaya-sson code {sson} = text;\n"));
            out.push_str(&format!("option phone-url code {url_option} = text;\n"));
            out.push_str("option cisco-tftp code 150 = array of ip-address;\n");
            for c in &cs {
                out.push_str(&format!(
                    "class \"{}-phones\" {{\n  match if substring(option vendor-class-identifier, 0, {}) = \"{}\";\n",
                    c.name,
                    c.pattern.len(),
                    c.pattern
                ));
                for (code, v) in &c.options {
                    let line = match *code {
                        43 => format!("option vendor-encapsulated-options {};", hex(v, ":")),
                        66 => format!("option tftp-server-name \"{}\";", text(v)),
                        150 => format!("option cisco-tftp {};", ip(v)),
                        c if c == sson => format!("option avaya-sson \"{}\";", text(v)),
                        _ => format!("option phone-url \"{}\";", text(v)),
                    };
                    out.push_str(&format!("  {line}\n"));
                }
                out.push_str("}\n");
            }
        }
        "kea" => {
            // Hex data with csv-format off: the SSON's commas would otherwise split the value.
            let classes: Vec<serde_json::Value> = cs
                .iter()
                .map(|c| {
                    let data: Vec<serde_json::Value> = c
                        .options
                        .iter()
                        .map(|(code, v)| {
                            serde_json::json!({"code": code, "csv-format": false, "data": hex(v, "")})
                        })
                        .collect();
                    serde_json::json!({
                        "name": format!("{}-phones", c.name),
                        "test": format!("substring(option[60].text, 0, {}) == '{}'", c.pattern.len(), c.pattern),
                        "option-data": data,
                    })
                })
                .collect();
            let doc = serde_json::json!({ "Dhcp4": { "client-classes": classes } });
            out.push_str(&format!(
                "// Kea (kea-dhcp4.conf, merge into Dhcp4): {head}\n"
            ));
            out.push_str(&serde_json::to_string_pretty(&doc).unwrap_or_default());
            out.push('\n');
        }
        "dnsmasq" => {
            out.push_str(&format!("# dnsmasq: {head}\n"));
            for c in &cs {
                out.push_str(&format!("dhcp-vendorclass=set:{},{}\n", c.name, c.pattern));
                for (code, v) in &c.options {
                    let value = match *code {
                        43 => hex(v, ":"),
                        150 => ip(v).replace(' ', ""),
                        _ => format!("\"{}\"", text(v)),
                    };
                    out.push_str(&format!("dhcp-option=tag:{},{code},{value}\n", c.name));
                }
            }
        }
        "netsh" => {
            out.push_str(&format!(
                "REM Windows DHCP server (netsh, server-wide; add \"scope <net>\" after \"server\" for one scope): {head}\n"
            ));
            let mut done: Vec<(u8, &[u8])> = Vec::new();
            for c in &cs {
                for (code, v) in &c.options {
                    if let Some((_, first)) = done.iter().find(|(d, _)| d == code) {
                        // Server-wide, one value per code: say which phones need another.
                        if *first != v.as_slice() {
                            out.push_str(&format!(
                                "REM {} phones need option {code} = \"{}\": set it in a policy for them\n",
                                c.name,
                                text(v)
                            ));
                        }
                        continue;
                    }
                    done.push((*code, v));
                    let (kind, value) = match *code {
                        43 => ("BINARY", hex(v, "")),
                        150 => ("IPADDRESS", ip(v).replace(',', "")),
                        _ => ("STRING", format!("\"{}\"", text(v))),
                    };
                    if ![43u8, 66].contains(code) {
                        let array = u8::from(*code == 150);
                        out.push_str(&format!(
                            "netsh dhcp server add optiondef {code} \"edgeprov {code}\" {kind} {array}\n"
                        ));
                    }
                    out.push_str(&format!(
                        "netsh dhcp server set optionvalue {code} {kind} {value}\n"
                    ));
                }
            }
        }
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_carries_the_sson_and_url() {
        let url = ProvisioningUrl::parse("https://10.77.0.1:8443/").unwrap();
        for f in FORMATS {
            let out = render(f, &url, 242, 160).unwrap();
            let sson_hex = hex(b"TLSSRVR=10.77.0.1,TLSDIR=/,TLSPORT=8443", "");
            assert!(
                out.contains("TLSSRVR=10.77.0.1,TLSDIR=/,TLSPORT=8443") || out.contains(&sson_hex),
                "{f}: {out}"
            );
            assert!(out.contains("242"), "{f}");
            assert!(out.contains("10.77.0.1"), "{f}");
        }
        let kea = render("kea", &url, 242, 160).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(kea.split_once('\n').unwrap().1).unwrap();
        assert_eq!(json["Dhcp4"]["client-classes"].as_array().unwrap().len(), 4);
        assert!(
            render("isc", &url, 242, 160)
                .unwrap()
                .contains("option cisco-tftp 10.77.0.1;")
        );
        assert!(render("nope", &url, 242, 160).is_none());
    }

    /// With a DNS name as the host, Cisco phones still get a class: option 66 with the name
    /// (option 150 holds addresses only). Before, the class was left out of every format.
    #[test]
    fn a_host_name_gives_cisco_option_66() {
        let url = ProvisioningUrl::parse("https://prov.example.lan:8443/").unwrap();
        let isc = render("isc", &url, 242, 160).unwrap();
        let cisco = isc.split("class \"cisco-phones\"").nth(1).expect(&isc);
        assert!(
            cisco.contains("option tftp-server-name \"prov.example.lan\";"),
            "{isc}"
        );
        assert!(!cisco.contains("option cisco-tftp "), "{isc}");
        let dnsmasq = render("dnsmasq", &url, 242, 160).unwrap();
        assert!(
            dnsmasq.contains("dhcp-option=tag:cisco,66,\"prov.example.lan\""),
            "{dnsmasq}"
        );
        let netsh = render("netsh", &url, 242, 160).unwrap();
        assert!(
            netsh.contains("REM cisco phones need option 66 = \"prov.example.lan\""),
            "{netsh}"
        );
    }
}
