//! Who is asking: the MAC and model of a phone, read from its certificate, the path it asks
//! for, or its User-Agent. Pure functions over strings, so every vendor's format is unit-tested.

use crate::model::Mac;
pub use crate::model::Vendor;

/// What a User-Agent tells about a phone. Any part may be missing (Poly sends no MAC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub vendor: Vendor,
    pub model: String,
    pub firmware: String,
    pub mac: Option<Mac>,
}

/// Parses the agents in `phones.md`. Returns `None` for browsers, curl and unknown phones.
pub fn parse_user_agent(ua: &str) -> Option<Agent> {
    let lower = ua.to_ascii_lowercase();
    if let Some(i) = lower.find("avaya/") {
        // `AVAYA/J179-4.1.3.0.6 (MAC:c81fea83e85a)`: model and version joined by the first '-'.
        let token = ua[i + 6..].split_whitespace().next().unwrap_or("");
        let (model, firmware) = token.split_once('-').unwrap_or((token, ""));
        let mac = lower
            .find("mac:")
            .and_then(|j| Mac::find_in(&ua[j + 4..].chars().take(17).collect::<String>()));
        return Some(agent(Vendor::Avaya, model, firmware, mac));
    }
    if lower.starts_with("yealink") {
        // `Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37`
        let mut words = ua.split_whitespace().skip(1);
        let model = words.next().unwrap_or("");
        let model = model.strip_prefix("SIP-").unwrap_or(model);
        let firmware = words.next().unwrap_or("");
        let mac = words.next().and_then(|w| Mac::parse(w).ok());
        return Some(agent(Vendor::Yealink, model, firmware, mac));
    }
    if let Some(i) = lower.find("polycom") {
        // `FileTransport PolycomVVX-VVX_400-UA/4.1.4.7430 Type/Application`
        let token = ua[i..].split_whitespace().next().unwrap_or("");
        let mut parts = token.split('-');
        let _family = parts.next();
        let model = parts.next().unwrap_or("");
        let firmware = token.find("UA/").map(|j| &token[j + 3..]).unwrap_or("");
        return Some(agent(Vendor::Poly, model, firmware, None));
    }
    if let Some(rest) = ua.strip_prefix("Cisco-") {
        // `Cisco-CP-7832-3PCC/11.0.1 (00562b043615)`
        let token = rest.split_whitespace().next().unwrap_or("");
        let (model, firmware) = token.split_once('/').unwrap_or((token, ""));
        let mac = ua.find('(').and_then(|j| Mac::find_in(&ua[j..]));
        return Some(agent(Vendor::Cisco, model, firmware, mac));
    }
    if let Some(i) = lower.find("snom") {
        // `Mozilla/4.0 (compatible; snom710-SIP 8.7.5.35 1.1.5-IFX-05.01.12 000413741767)`
        let mut words = ua[i..].split_whitespace();
        let head = words.next().unwrap_or("");
        let model = head.split('-').next().unwrap_or(head);
        let firmware = words.next().unwrap_or("");
        let mac = ua[i..]
            .trim_end_matches(')')
            .split_whitespace()
            .last()
            .and_then(|w| Mac::parse(w.trim_end_matches(')')).ok());
        return Some(agent(Vendor::Snom, model, firmware, mac));
    }
    if lower.starts_with("grandstream") {
        // `Grandstream Model HW GXP1628 SW 1.0.4.138 DevId c074ad2bd859`
        let words: Vec<&str> = ua.split_whitespace().collect();
        let after = |key: &str| {
            words
                .iter()
                .position(|w| w.eq_ignore_ascii_case(key))
                .and_then(|p| words.get(p + 1))
                .copied()
                .unwrap_or("")
        };
        let mac = Mac::parse(after("DevId")).ok();
        return Some(agent(Vendor::Grandstream, after("HW"), after("SW"), mac));
    }
    None
}

fn agent(vendor: Vendor, model: &str, firmware: &str, mac: Option<Mac>) -> Agent {
    let clean = |s: &str| {
        s.trim_matches(|c: char| c == '(' || c == ')' || c == ';')
            .to_string()
    };
    Agent {
        vendor,
        model: clean(model),
        firmware: clean(firmware),
        mac,
    }
}

/// The MAC named by a requested file or directory: `{mac}.txt`, `{mac}.cfg`, `{mac}.boot`,
/// `{mac}-phone.cfg`, `SEP{MAC}.cnf.xml`, `CTL{MAC}.tlv`, `cfg{mac}.xml`, or a `$MACADDR`
/// directory such as `/c81fea9b650d/46xxsettings.txt`. Case-insensitive, as phones differ.
/// The all-zero MAC is the Poly/Yealink *common* file name, not a device.
pub fn mac_from_path(segments: &[String]) -> Option<Mac> {
    segments.iter().rev().find_map(|seg| mac_from_segment(seg))
}

fn mac_from_segment(seg: &str) -> Option<Mac> {
    let lower = seg.to_ascii_lowercase();
    let body = ["sep", "ctl", "cfg"]
        .iter()
        .find_map(|p| lower.strip_prefix(p))
        .unwrap_or(&lower);
    // Separated forms (`00-11-22-aa-bb-cc.txt`) first, then the plain 12 digits.
    [17, 12].into_iter().find_map(|len| {
        let candidate = body.get(..len)?;
        let rest = &body[len..];
        if !(rest.is_empty() || rest.starts_with('.') || rest.starts_with('-')) {
            return None;
        }
        let mac = Mac::parse(candidate).ok()?;
        (mac.octets() != [0; 6]).then_some(mac)
    })
}

/// The MAC an operator's file name holds, wherever it stands and however it is spelt: vendors
/// put it after a prefix (`spa{mac}.xml`, `snom710-{MAC}.htm`, `Config{MAC}.cfg`), before a
/// suffix (`{mac}_sip.cfg`), with `:`/`-` separators or in dotted groups. Only the first MAC-like
/// part of the name counts. A prefix may end in a hex letter (Cisco's `spa`), so when that part
/// is a run of 13 or 14 hex digits each 12 of them may be the MAC, and all are returned; a longer
/// run is a hash or a serial number, not a MAC. MACs of the all-zero OUI are the placeholder
/// names of common files (`y000000000108.cfg`, `000000000000.cfg`), not devices.
pub fn macs_in_name(name: &str) -> Vec<Mac> {
    let b = name.as_bytes();
    let device = |mac: &Mac| mac.octets()[..3] != [0; 3];
    for i in 0..b.len() {
        // Separated forms: `00:11:22:aa:bb:cc`, `00-11-22-aa-bb-cc`, `0011.22aa.bbcc`.
        for len in [17, 14] {
            if let Some(mac) = name.get(i..i + len).and_then(|s| Mac::parse(s).ok())
                && device(&mac)
            {
                return vec![mac];
            }
        }
        if !b[i].is_ascii_hexdigit() || (i > 0 && b[i - 1].is_ascii_hexdigit()) {
            continue;
        }
        let run = b[i..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if (12..=14).contains(&run) {
            let macs: Vec<Mac> = (i..=i + run - 12)
                .filter_map(|start| Mac::parse(&name[start..start + 12]).ok())
                .filter(device)
                .collect();
            if !macs.is_empty() {
                return macs;
            }
        }
    }
    Vec::new()
}

/// The MAC a client certificate speaks for: its subject CN, else Cisco's `S` element of the
/// subject, else a subject alternative name (see [`mac_of`] for the forms read).
pub fn mac_from_certificate(der: &[u8]) -> Option<Mac> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    mac_of(&cert)
}

/// What the phone listener reads of a client certificate once per connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub mac: Option<Mac>,
    /// Whether the box's own CA issued it, as `issued_here` told.
    pub issued_here: bool,
    /// The serial number, lower-case hex, as the box records and revokes it.
    pub serial: String,
    /// Its validity, Unix seconds, both ends included (as the handshake checks it).
    pub not_before: i64,
    pub not_after: i64,
}

/// The facts of a DER certificate, read in one parse; `None` when it does not parse.
/// `issued_here` tells whether the box's CA issued it (`LiveCerts::issued_here`).
pub fn certificate_facts(
    der: &[u8],
    issued_here: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> bool,
) -> Option<CertFacts> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(CertFacts {
        mac: mac_of(&cert),
        issued_here: issued_here(&cert),
        serial: super::credentials::hex(cert.raw_serial()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// The MAC a certificate names, read only where and as vendors write it, so that a subject
/// that merely holds twelve hex digits (a serial number, a hash, `L=88012BA01234`) names no
/// device:
/// - the subject CN in a form of [`mac_in_cn`];
/// - else the subject's stateOrProvinceName (`S`) when it is a MAC and nothing else: Cisco's
///   SPA phones and ATAs and its Multiplatform (3PCC) phones carry a unique client certificate
///   whose subject gives the product in OU, the serial number in L and the MAC in S
///   (`OU=SPA-962, L=88012BA01234, S=000e08abcdef`; a unit without its own certificate sends a
///   generic one, `S=ciscogeneric`, which names none). Sources: Cisco's Provisioning Guide for
///   the SPA100 and SPA200 series ATAs and the Cisco IP Phone 8800 Multiplatform Phones
///   Provisioning Guide, "Client Certificate" / "Multiplatform Phone CA Client Root
///   Certificate";
/// - else a subject alternative name in a form of [`mac_in_uri`], [`mac_in_dns_name`] or
///   [`mac_in_mailbox`], or a directory name (its CN as above, or its serialNumber when that is
///   a MAC). Twelve hex digits elsewhere in a SAN (a build tag, a batch number, a server's
///   `ipoffice-{mac}.avaya.com`) name no device.
fn mac_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<Mac> {
    let state = &x509_parser::oid_registry::OID_X509_STATE_OR_PROVINCE_NAME;
    let subject = cert.subject();
    let from_subject = mac_in_name(subject, false).or_else(|| exact_mac_in(subject, state));
    from_subject.or_else(|| {
        use x509_parser::extensions::GeneralName;
        let san = cert.subject_alternative_name().ok()??;
        san.value.general_names.iter().find_map(|n| match n {
            GeneralName::URI(s) => mac_in_uri(s),
            GeneralName::DNSName(s) => mac_in_dns_name(s),
            GeneralName::RFC822Name(s) => mac_in_mailbox(s),
            GeneralName::DirectoryName(name) => mac_in_name(name, true),
            _ => None,
        })
    })
}

/// The MAC a distinguished name gives in its CN ([`mac_in_cn`]), or (`serial_too`) as its
/// serialNumber. A factory certificate may name the device only in a directory name among its
/// alternative names, with the MAC as that name's CN or as its serial number (as secure
/// elements that provision device certificates write it, `34-C8-CE-AD-21-60`): without
/// reading it the phone proved nothing and could not get its own file. The subject's
/// serialNumber is not read: it is commonly a vendor's serial, and a CN is the established
/// place for the MAC.
fn mac_in_name(name: &x509_parser::x509::X509Name<'_>, serial_too: bool) -> Option<Mac> {
    let serial = &x509_parser::oid_registry::OID_X509_SERIALNUMBER;
    name.iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .find_map(mac_in_cn)
        .or_else(|| exact_mac_in(name, serial).filter(|_| serial_too))
}

/// The MAC a CN gives in a form devices' certificates use: the MAC alone (`001122aabbcc`,
/// `00:11:22:AA:BB:CC`, `00-11-22-aa-bb-cc`: edgeprov's own device certificates and factory
/// certificates that are "unique to a device, based on the MAC address"), or Cisco's device
/// name `SEP` + the MAC (`SEP001122AABBCC`, how Cisco phones name themselves and their
/// `SEP{MAC}.cnf.xml`), or the CN of a Cisco enterprise phone's manufacturing certificate (MIC),
/// `CP-{model}-SEP{MAC}` (`CP-7961G-GE-SEP001AA136C68A`, also the phone's 802.1X identity).
/// Anything else, even with twelve hex digits in it, names no MAC: `EVIL-SEP{MAC}` included,
/// which a substring match would take for that phone.
pub fn mac_in_cn(cn: &str) -> Option<Mac> {
    let cn = cn.trim();
    let device_name = cisco_mic_device_name(cn).unwrap_or(cn);
    let bare = device_name
        .get(..3)
        .filter(|p| p.eq_ignore_ascii_case("sep"))
        .map_or(device_name, |_| &device_name[3..]);
    Mac::parse(bare).ok()
}

/// The `SEP{MAC}` of a Cisco MIC's CN `CP-{model}-SEP{MAC}`, the model being letters, digits
/// and hyphens (`7961G-GE`); `None` for a CN of any other shape. The CN is the sender's own
/// text (a certificate request, a client certificate), so its last sixteen bytes are read as
/// bytes: a character across their fourth one makes it no device name, not a panic.
fn cisco_mic_device_name(cn: &str) -> Option<&str> {
    let rest = cn.get(..3).filter(|p| p.eq_ignore_ascii_case("cp-"))?;
    let rest = &cn[rest.len()..];
    let split = rest.len().checked_sub(16)?;
    let (model, device_name) = (rest.get(..split)?, rest.get(split..)?);
    let model_ok = !model.is_empty()
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let sep = device_name
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("-sep"));
    (model_ok && sep).then(|| &device_name[1..])
}

/// The MAC an attribute of `name` gives when its whole value is one.
fn exact_mac_in(
    name: &x509_parser::x509::X509Name<'_>,
    oid: &x509_parser::der_parser::oid::Oid<'_>,
) -> Option<Mac> {
    name.iter_by_oid(oid)
        .filter_map(|a| a.as_str().ok())
        .find_map(|v| Mac::parse(v.trim()).ok())
}

/// The MAC a DNS name gives as its first label, in a form of [`mac_in_cn`]: the host name a
/// device goes by (`001122aabbcc.phones.example`, Cisco's `SEP001122AABBCC.example`). The
/// `host/` prefix of a Windows machine identity (`host/SEP001122AABBCC.corp.example`, how
/// 802.1X supplicants and Microsoft CAs name a machine) is read past. A MAC inside a label
/// among other text (`fw-001122aabbcc-build.vendor.example`) or in a later label names none.
fn mac_in_dns_name(name: &str) -> Option<Mac> {
    let name = name
        .get(..5)
        .filter(|p| p.eq_ignore_ascii_case("host/"))
        .map_or(name, |_| &name[5..]);
    mac_in_cn(name.split('.').next()?)
}

/// The MAC an e-mail address gives as its whole local part (`001122aabbcc@phones.example`,
/// `SEP001122AABBCC@example.com`); an address without one names none.
fn mac_in_mailbox(address: &str) -> Option<Mac> {
    let (local, _domain) = address.rsplit_once('@')?;
    mac_in_cn(local)
}

/// The MAC a URI names: an RFC 9039 MAC device URN (`urn:dev:mac:001122aabbcc`, as edgeprov's
/// own device certificates carry it, any MAC spelling, or an EUI-64 carrying the MAC, see
/// [`mac_in_dev_urn`]; a `_` component suffix is allowed), else a URI whose host's first label
/// ([`mac_in_dns_name`]) or last path segment is the MAC in a form of [`mac_in_cn`]
/// (`https://devices.example/phones/001122aabbcc`). A MAC elsewhere in a URI
/// (`https://vendor.example/batch/001122aabbcc7`, `?mac=…`, `…/001122aabbcc.cfg`) names none.
fn mac_in_uri(uri: &str) -> Option<Mac> {
    if let Some(id) = uri
        .get(..12)
        .filter(|p| p.eq_ignore_ascii_case("urn:dev:mac:"))
        .map(|_| &uri[12..])
    {
        let eui = id.split_once('_').map_or(id, |(eui, _component)| eui);
        return Mac::parse(eui).ok().or_else(|| mac_in_dev_urn(uri));
    }
    let (_scheme, rest) = uri.split_once("://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_user, host)| host);
    let host = host.split(':').next().unwrap_or(host);
    let last_segment = path.trim_end_matches('/').rsplit('/').next();
    mac_in_dns_name(host).or_else(|| last_segment.and_then(mac_in_cn))
}

/// The MAC of an RFC 9039 device URN that gives it as an EUI-64 (`urn:dev:mac:0024befffe804ff1`):
/// an EUI-48 carried in an EUI-64 has `fffe` between its OUI and the rest, and is that MAC.
/// Any other EUI-64 names no MAC.
fn mac_in_dev_urn(uri: &str) -> Option<Mac> {
    let id = uri
        .get(..12)
        .filter(|p| p.eq_ignore_ascii_case("urn:dev:mac:"))
        .map(|_| &uri[12..])?;
    let hex = id
        .get(..16)
        .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let ends = id[16..]
        .bytes()
        .next()
        .is_none_or(|b| !b.is_ascii_hexdigit());
    (ends && hex[6..10].eq_ignore_ascii_case("fffe"))
        .then(|| Mac::parse(&format!("{}{}", &hex[..6], &hex[10..])).ok())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn mac(s: &str) -> Mac {
        Mac::parse(s).unwrap()
    }

    #[test]
    fn user_agents_of_every_vendor() {
        let cases = [
            (
                "Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J179-4.1.3.0.6 (MAC:c81fea83e85a)",
                Vendor::Avaya,
                "J179",
                "4.1.3.0.6",
                Some("c81fea83e85a"),
            ),
            (
                "Yealink SIP-T46G 28.72.0.1 00:15:65:4a:a9:37",
                Vendor::Yealink,
                "T46G",
                "28.72.0.1",
                Some("0015654aa937"),
            ),
            (
                "Yealink SIP-T54W 96.86.0.70",
                Vendor::Yealink,
                "T54W",
                "96.86.0.70",
                None,
            ),
            (
                "FileTransport PolycomVVX-VVX_400-UA/4.1.4.7430 Type/Application",
                Vendor::Poly,
                "VVX_400",
                "4.1.4.7430",
                None,
            ),
            (
                "Cisco-CP-7832-3PCC/11.0.1 (00562b043615)",
                Vendor::Cisco,
                "CP-7832-3PCC",
                "11.0.1",
                Some("00562b043615"),
            ),
            (
                "Mozilla/4.0 (compatible; snom710-SIP 8.7.5.35 1.1.5-IFX-05.01.12 000413741767)",
                Vendor::Snom,
                "snom710",
                "8.7.5.35",
                Some("000413741767"),
            ),
            (
                "Grandstream Model HW GXP1628 SW 1.0.4.138 DevId c074ad2bd859",
                Vendor::Grandstream,
                "GXP1628",
                "1.0.4.138",
                Some("c074ad2bd859"),
            ),
        ];
        for (ua, vendor, model, fw, m) in cases {
            let a = parse_user_agent(ua).unwrap_or_else(|| panic!("{ua}"));
            assert_eq!(a.vendor, vendor, "{ua}");
            assert_eq!(a.model, model, "{ua}");
            assert_eq!(a.firmware, fw, "{ua}");
            assert_eq!(a.mac, m.map(mac), "{ua}");
        }
    }

    #[test]
    fn browsers_are_not_phones() {
        assert_eq!(parse_user_agent("curl/8.5.0"), None);
        assert_eq!(
            parse_user_agent("Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0"),
            None
        );
        assert_eq!(parse_user_agent(""), None);
    }

    #[test]
    fn hostile_agents_do_not_panic() {
        for ua in [
            "AVAYA/",
            "Yealink",
            "Polycom",
            "Cisco-",
            "snom",
            "Grandstream HW",
            "AVAYA/é-ü (MAC:",
        ] {
            let _ = parse_user_agent(ua);
        }
    }

    #[test]
    fn mac_from_file_names() {
        let seg = |s: &str| vec![s.to_string()];
        let m = mac("c81fea9b650d");
        for name in [
            "c81fea9b650d.txt",
            "C81FEA9B650D.txt",
            "c81fea9b650d.cfg",
            "c81fea9b650d.boot",
            "c81fea9b650d-phone.cfg",
            "SEPC81FEA9B650D.cnf.xml",
            "cfgc81fea9b650d.xml",
            "cfgc81fea9b650d",
            "c8-1f-ea-9b-65-0d.txt",
            "C8:1F:EA:9B:65:0D.txt",
        ] {
            assert_eq!(mac_from_path(&seg(name)), Some(m), "{name}");
        }
        for name in [
            "46xxsettings.txt",
            "000000000000.cfg",
            "y000000000000.boot",
            "c81fea9b650d0.txt",
            "J100Supgrade.txt",
        ] {
            assert_eq!(mac_from_path(&seg(name)), None, "{name}");
        }
        let dir = vec!["c81fea9b650d".to_string(), "46xxsettings.txt".to_string()];
        assert_eq!(mac_from_path(&dir), Some(m));
    }

    #[test]
    fn macs_anywhere_in_an_operators_file_name() {
        let m = mac("001122aabbcc");
        for name in [
            "001122aabbcc.cfg",
            "spa001122aabbcc.xml",
            "snom710-001122AABBCC.htm",
            "Config001122AABBCC.cfg",
            "001122aabbcc_sip.cfg",
            "SEP001122AABBCC.cnf.xml",
            "cfg001122aabbcc",
            "0011.22aa.bbcc.xml",
            "phone-00:11:22:aa:bb:cc.cfg",
            "00-11-22-AA-BB-CC-phone.cfg",
        ] {
            assert!(macs_in_name(name).contains(&m), "{name}");
        }
        assert_eq!(
            macs_in_name("spa001122aabbcc.xml"),
            [mac("a001122aabbc"), m],
            "each 12 digits of a 13-digit run"
        );
        assert_eq!(
            macs_in_name("001122aabbcc-001122aabbcd.cfg"),
            [m],
            "only the first MAC of the name"
        );
        for name in [
            "46xxspecials.txt",
            "000000000000.cfg",
            "y000000000000.boot",
            "y000000000108.cfg",
            "logo-3f2a9c0d1e4b5a6978a1.png",
            "J100Supgrade.txt",
        ] {
            assert_eq!(macs_in_name(name), [], "{name}");
        }
    }

    #[test]
    fn device_urns_with_an_eui64_name_the_mac_it_carries() {
        let m = Some(mac("0024be804ff1"));
        assert_eq!(mac_in_dev_urn("urn:dev:mac:0024befffe804ff1"), m);
        assert_eq!(mac_in_dev_urn("URN:DEV:MAC:0024BEFFFE804FF1"), m);
        assert_eq!(mac_in_dev_urn("urn:dev:mac:0024befffe804ff1_eth0"), m);
        for not_one in [
            "urn:dev:mac:0024beffff804ff1",
            "urn:dev:mac:0024befffe804ff1a",
            "urn:dev:mac:0024be804ff1",
            "urn:dev:ow:0024befffe804ff1",
            "urn:dev:mac:",
            "urn:dev:mac:é",
        ] {
            assert_eq!(mac_in_dev_urn(not_one), None, "{not_one}");
        }
        let uri = vec!["urn:dev:mac:0024befffe804ff1".to_string()];
        assert_eq!(mac_from_certificate(&certificate("Phone", &uri)), m);
    }

    /// A CN names the device only as the MAC alone, Cisco's `SEP{MAC}` or a Cisco MIC's
    /// `CP-{model}-SEP{MAC}`; twelve hex digits
    /// elsewhere in it (a serial, a product string) name none.
    #[test]
    fn a_cn_names_a_mac_only_in_a_known_form() {
        let a = Some(mac("001122aabbcc"));
        for cn in [
            "001122aabbcc",
            "001122AABBCC",
            "00:11:22:aa:bb:cc",
            "00-11-22-AA-BB-CC",
            "SEP001122AABBCC",
            "sep001122aabbcc",
            "CP-7961G-GE-SEP001122AABBCC",
            "CP-8841-SEP001122AABBCC",
        ] {
            assert_eq!(mac_from_certificate(&certificate(cn, &[])), a, "{cn}");
        }
        for cn in [
            "Phone 001122aabbcc",
            "MAC:001122aabbcc",
            "001122aabbcc.example",
            "CP-8841-001122AABBCC",
            "EVIL-SEP001122AABBCC",
            "CP--SEP001122AABBCC",
            "CP-7961G SEP001122AABBCC",
            "CP-8841-SEP001122AABBCCDD",
            "CP-7961G/x-SEP001122AABBCC",
            "SEP 001122AABBCC",
            "SEP001122AABBCCDD",
            "x001122aabbcc",
            "Factory Device Certificate",
        ] {
            assert_eq!(mac_from_certificate(&certificate(cn, &[])), None, "{cn}");
        }
    }

    /// Reproduced by the `phone_identify` fuzz target: a CN shaped as a Cisco MIC's whose sixteen last
    /// bytes have a character across their fourth (`é` is two bytes) panicked when sliced.
    /// It names no MAC, from a certificate request or a client certificate alike.
    #[test]
    fn a_mic_shaped_cn_with_a_wide_character_names_no_mac() {
        let cn = "CP-A-SE\u{e9}bbccddeeff0";
        assert_eq!(mac_in_cn(cn), None);
        assert_eq!(mac_from_certificate(&certificate(cn, &[])), None);
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = crate::scep::test_support::csr(&key, cn, None);
        assert_eq!(crate::scep::read_csr(&csr).unwrap().mac, None);
    }

    /// Cisco SPA phones, ATAs and Multiplatform phones give the product in OU, the serial in L
    /// and the MAC in S; the serial is never the MAC, and the generic certificate names none.
    #[test]
    fn a_cisco_client_certificate_names_its_mac_in_the_s_element() {
        let subject = |ou: &str, l: &str, st: &str| {
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, ou);
            params.distinguished_name.push(DnType::LocalityName, l);
            if !st.is_empty() {
                params
                    .distinguished_name
                    .push(DnType::StateOrProvinceName, st);
            }
            let key = KeyPair::generate().unwrap();
            params.self_signed(&key).unwrap().der().to_vec()
        };
        assert_eq!(
            mac_from_certificate(&subject("SPA-962", "88012BA01234", "000e08abcdef")),
            Some(mac("000e08abcdef"))
        );
        assert_eq!(
            mac_from_certificate(&subject("CP-8841-3PCC", "88012BA01234", "000E08ABCDEF")),
            Some(mac("000e08abcdef"))
        );
        assert_eq!(
            mac_from_certificate(&subject("cisco.com", "ciscogeneric", "ciscogeneric")),
            None
        );
        assert_eq!(
            mac_from_certificate(&subject("SPA-962", "88012BA01234", "")),
            None
        );
        assert_eq!(
            mac_from_certificate(&subject("SPA-962", "x", "MAC 000e08abcdef")),
            None
        );
    }

    /// A SAN names the device only where devices' certificates put it: the first label of a DNS
    /// name (past a Windows `host/`), an e-mail local part, an RFC 9039 MAC URN, or a URI's
    /// host label or last path segment, each the MAC alone or `SEP{MAC}`.
    #[test]
    fn a_san_names_a_mac_only_in_a_known_form() {
        let a = Some(mac("001122aabbcc"));
        let dns = |s: &str| SanType::DnsName(s.try_into().unwrap());
        let mail = |s: &str| SanType::Rfc822Name(s.try_into().unwrap());
        let uri = |s: &str| SanType::URI(s.try_into().unwrap());
        for san in [
            dns("001122aabbcc.phones.example"),
            dns("00-11-22-AA-BB-CC.phones.example"),
            dns("SEP001122AABBCC.corp.example"),
            dns("001122aabbcc"),
            dns("host/SEP001122AABBCC.corp.example"),
            dns("HOST/001122aabbcc.corp.example"),
            mail("001122aabbcc@phones.example"),
            mail("SEP001122AABBCC@example.com"),
            uri("urn:dev:mac:001122aabbcc"),
            uri("urn:dev:mac:00-11-22-aa-bb-cc"),
            uri("URN:DEV:MAC:001122AABBCC_eth0"),
            uri("urn:dev:mac:001122fffeaabbcc"),
            uri("https://devices.example/phones/001122aabbcc"),
            uri("https://devices.example/phones/SEP001122AABBCC/?v=1"),
            uri("https://001122aabbcc.phones.example/config"),
            uri("https://ops@001122aabbcc.phones.example:8443/"),
        ] {
            let der = certificate_with_sans("Factory Device Certificate", vec![san.clone()]);
            assert_eq!(mac_from_certificate(&der), a, "{san:?}");
        }
        for san in [
            dns("fw-001122aabbcc-build.vendor.example"),
            dns("ipoffice-001122aabbcc.avaya.com"),
            dns("phones.001122aabbcc.example"),
            dns("mac001122aabbcc.example"),
            dns("EVIL-SEP001122AABBCC.example"),
            dns("001122aabbcc7.example"),
            mail("phone-001122aabbcc@vendor.example"),
            mail("ops@001122aabbcc.example"),
            mail("001122aabbcc"),
            uri("urn:dev:mac:x001122aabbcc"),
            uri("urn:dev:mac:001122aabbcc.1"),
            uri("urn:uuid:f81d4fae-7dec-11d0-a765-001122aabbcc"),
            uri("https://vendor.example/batch/001122aabbcc7"),
            uri("https://vendor.example/batch/001122aabbcc.cfg"),
            uri("https://vendor.example/001122aabbcc/batch"),
            uri("https://vendor.example/?mac=001122aabbcc"),
            uri("https://vendor.example/#001122aabbcc"),
            uri("https://vendor.example:8443/"),
        ] {
            let der = certificate_with_sans("Factory Device Certificate", vec![san.clone()]);
            assert_eq!(mac_from_certificate(&der), None, "{san:?}");
        }
    }

    /// A self-signed certificate with subject CN `cn` and the alternative names `sans`.
    fn certificate_with_sans(cn: &str, sans: Vec<SanType>) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = sans;
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    /// The strings that send `parse_user_agent` down a vendor's branch.
    const MARKERS: [&str; 6] = [
        "avaya/",
        "yealink",
        "polycom",
        "cisco-",
        "snom",
        "grandstream",
    ];

    /// A self-signed certificate with subject CN `cn` and the URI SANs `uris`, DER encoded.
    fn certificate(cn: &str, uris: &[String]) -> Vec<u8> {
        let sans = uris
            .iter()
            .map(|u| SanType::URI(u.as_str().try_into().unwrap()))
            .collect();
        certificate_with_sans(cn, sans)
    }

    /// A MAC in the dash-separated form (`00-11-22-aa-bb-cc`).
    fn dashed(mac: Mac) -> String {
        mac.colon_form().replace(':', "-")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The User-Agent is free text from any client: it must never panic the daemon, even
        /// when a vendor's marker is followed by anything at all, and only a vendor's marker
        /// makes it a phone.
        #[test]
        fn any_user_agent_is_parsed_without_panic(
            before in any::<String>(),
            marker in proptest::sample::select(
                &["AVAYA/", "Yealink", "Polycom", "Cisco-", "snom", "Grandstream", "(MAC:", ""][..],
            ),
            after in any::<String>(),
        ) {
            let ua = format!("{before}{marker}{after}");
            if parse_user_agent(&ua).is_some() {
                let lower = ua.to_ascii_lowercase();
                prop_assert!(MARKERS.iter().any(|m| lower.contains(m)), "{ua:?}");
            }
        }

        /// Every vendor's real User-Agent format, with any MAC, model number and firmware
        /// version, gives back exactly that MAC, model and firmware: a phone identified by its
        /// agent must be the phone it says it is.
        #[test]
        fn vendor_agents_give_back_their_mac(
            octets in any::<[u8; 6]>(),
            n in 100..10_000u32,
            fw in "[0-9]{1,2}(\\.[0-9]{1,4}){1,4}",
        ) {
            let mac = Mac::from_octets(octets);
            let upper = mac.to_string().to_ascii_uppercase();
            let cases = [
                (
                    format!("Mozilla/4.0 (compatible; MSIE 6.0) AVAYA/J{n}-{fw} (MAC:{mac})"),
                    Vendor::Avaya,
                    format!("J{n}"),
                ),
                (
                    format!("Yealink SIP-T{n}G {fw} {}", mac.colon_form()),
                    Vendor::Yealink,
                    format!("T{n}G"),
                ),
                (
                    format!("Cisco-CP-{n}-3PCC/{fw} ({mac})"),
                    Vendor::Cisco,
                    format!("CP-{n}-3PCC"),
                ),
                (
                    format!(
                        "Mozilla/4.0 (compatible; snom{n}-SIP {fw} 1.1.5-IFX-05.01.12 {upper})"
                    ),
                    Vendor::Snom,
                    format!("snom{n}"),
                ),
                (
                    format!("Grandstream Model HW GXP{n} SW {fw} DevId {mac}"),
                    Vendor::Grandstream,
                    format!("GXP{n}"),
                ),
            ];
            for (ua, vendor, model) in cases {
                prop_assert_eq!(
                    parse_user_agent(&ua),
                    Some(Agent { vendor, model, firmware: fw.clone(), mac: Some(mac) }),
                    "{}", ua
                );
            }
        }

        /// Request paths are client text: no segment may panic the daemon, and a MAC is only
        /// ever taken from a segment that spells it (never the all-zero common file name).
        #[test]
        fn a_mac_from_a_path_is_spelt_in_it(
            segs in proptest::collection::vec(
                prop_oneof![
                    any::<String>(),
                    "(sep|SEP|ctl|cfg)?[0-9a-fA-F:.-]{10,20}(\\.[a-z]{1,4})?",
                    "(0{12}|00(:00){5})(\\.cfg)?",
                ],
                0..4,
            ),
        ) {
            if let Some(mac) = mac_from_path(&segs) {
                prop_assert_ne!(mac.octets(), [0; 6]);
                let spelt = |s: &String| {
                    s.to_ascii_lowercase().replace([':', '-'], "").contains(&mac.to_string())
                };
                prop_assert!(segs.iter().any(spelt), "{segs:?} gave {mac}");
            }
        }

        /// Every file name form the vendors use, with any MAC, names that device; the
        /// all-zero MAC is the common file, which names no device.
        #[test]
        fn file_names_of_every_vendor_name_the_device(octets in any::<[u8; 6]>()) {
            let mac = Mac::from_octets(octets);
            let upper = mac.to_string().to_ascii_uppercase();
            let want = (octets != [0; 6]).then_some(mac);
            for name in [
                format!("{mac}.txt"),
                format!("{upper}.cfg"),
                format!("{mac}.boot"),
                format!("{mac}-phone.cfg"),
                format!("SEP{upper}.cnf.xml"),
                format!("CTL{upper}.tlv"),
                format!("cfg{mac}.xml"),
                format!("{}.txt", mac.colon_form()),
                format!("{}.txt", dashed(mac)),
            ] {
                prop_assert_eq!(mac_from_path(std::slice::from_ref(&name)), want, "{}", name);
            }
            let dir = [mac.to_string(), "46xxsettings.txt".to_string()];
            prop_assert_eq!(mac_from_path(&dir), want);
        }

        /// The client certificate is parsed before anything else is known about the peer:
        /// neither random bytes nor a real certificate with bytes changed may panic it.
        #[test]
        fn any_certificate_bytes_are_parsed_without_panic(
            random in proptest::collection::vec(any::<u8>(), 0..600),
            edits in proptest::collection::vec(
                (any::<proptest::sample::Index>(), any::<u8>()),
                1..4,
            ),
        ) {
            prop_assert_eq!(mac_from_certificate(&random), None);
            let mut der = certificate("SEP001122AABBCC", &["urn:dev:mac:00-11-22-aa-bb-cc".into()]);
            for (at, byte) in edits {
                let i = at.index(der.len());
                der[i] = byte;
            }
            let _ = mac_from_certificate(&der);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// A certificate names the device in its CN (`SEP<MAC>`, as factory certificates do)
        /// or, failing that, in a SAN; the CN wins when both name one.
        #[test]
        fn certificates_name_their_device(a in any::<[u8; 6]>(), b in any::<[u8; 6]>()) {
            let (a, b) = (Mac::from_octets(a), Mac::from_octets(b));
            let cn = format!("SEP{}", a.to_string().to_ascii_uppercase());
            let san = vec![format!("urn:dev:mac:{}", dashed(b))];
            prop_assert_eq!(mac_from_certificate(&certificate(&cn, &[])), Some(a));
            prop_assert_eq!(mac_from_certificate(&certificate("Phone", &san)), Some(b));
            prop_assert_eq!(mac_from_certificate(&certificate(&cn, &san)), Some(a));
        }
    }
}
