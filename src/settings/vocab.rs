//! The vendor-neutral parameter vocabulary: what every site sets, under one name, mapped to each
//! vendor's native settings. Names with a vendor prefix (`avaya:SIPDOMAIN`,
//! `yealink:local_time.time_zone`, `poly:reg.1.label`) pass through to that vendor only; a bare
//! name written as Avaya writes its settings (`SIPDOMAIN`: [`is_avaya_name`]) is taken as an
//! Avaya setting. See `docs/parameters.md`.

use std::collections::BTreeMap;

use super::secrets::{secret_name, url_logins};
use crate::model::Vendor;

/// Native settings, by name, in a stable order.
pub type Native = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VocabError {
    #[error(
        "{0}: not in the vocabulary (see docs/parameters.md), and not a vendor-prefixed native name"
    )]
    Unknown(String),
    #[error("{0}: a Poly setting is an XML attribute, whose name starts with a letter or '_'")]
    PolyName(String),
    #[error(
        "{0}: an Avaya phone reads APPNAME only from its family's upgrade script, which every phone of the family shares, so a device's reaches no phone; set firmware.file at the model:MODEL or group:NAME layer, or use a firmware policy"
    )]
    DeviceFirmware(String),
    #[error(
        "{name}: a bare name is an Avaya setting only as Avaya writes them, in upper-case letters, digits and '_' (SIPDOMAIN); {hint}"
    )]
    NotAvaya { name: String, hint: String },
    #[error("{name}: {expected}")]
    Value {
        name: String,
        expected: &'static str,
    },
}

/// Lines a phone may have; line parameters are `line.N.user` etc. with N in 1..=MAX_LINES.
pub const MAX_LINES: u32 = 16;

/// Neutral names without a line number.
const PLAIN: &[&str] = &[
    "sip.server",
    "sip.port",
    "sip.transport",
    "sip.domain",
    "ntp.server",
    "time.zone",
    "time.utc_offset",
    "language",
    "vlan.id",
    "admin.password",
    "provisioning.interval",
    "tls.trusted_ca",
    "firmware.file",
];
const LINE_FIELDS: &[&str] = &["user", "auth_user", "password", "display_name"];

/// A secret is never put into a file shared by several phones. Neutral secrets are listed; for
/// native names anything that looks like a credential counts, so a pass-through name cannot
/// leak one into a common file by accident. That is at least what the reading of uploaded
/// files counts ([`secret_name`]: `PROCPSWD`, `DOT1XPSWD`, `SIP_SECRET`, `user_pass1`,
/// Grandstream's `P34`, `yealink:static.auto_provision.aes_key_16.com`, `SIP_TOKEN`,
/// `snom:user_hash`, `yealink:static.snmp.community`), and more: a name holding password, passwd
/// or ending in pin counts even with a qualifier after it (`PASSWORD_MIN_LENGTH`), erring on the
/// side of proof.
pub fn is_secret(name: &str) -> bool {
    if name == "admin.password" || (name.starts_with("line.") && name.ends_with(".password")) {
        return true;
    }
    let lower = name.to_ascii_lowercase();
    lower.contains("password")
        || lower.contains("passwd")
        || lower.ends_with("pin")
        || secret_name(name.rsplit_once(':').map_or(name, |(_, native)| native))
}

/// Whether a parameter's value carries a credential whatever its name: a URL with a login
/// (`yealink:static.auto_provision.server.url` = `https://prov:pw@host/`), read as in an
/// uploaded file ([`url_logins`]). Such a value stays out of common files and makes the
/// device's own file need proof, as a secret's does.
pub fn is_secret_value(value: &str) -> bool {
    url_logins(value.as_bytes()).next().is_some()
}

/// Whether a plain parameter (`name` = `value`) is a secret, by its name or its value: what
/// the renderer keeps out of common files is what every admin view, audit entry, job and
/// export keeps from view.
pub fn is_secret_param(name: &str, value: &str) -> bool {
    is_secret(name) || is_secret_value(value)
}

/// The phone setting a parameter name reaches, one key for all its spellings: a vendor
/// prefix in any case (`AVAYA:X` is `avaya:X`), and for Avaya a bare upper-case name
/// (`SIP_TOKEN` is `avaya:SIP_TOKEN`, as [`to_native`] renders it) and the native name in any
/// case (Avaya phones upper-case the names they read). Secret-ness follows the setting, not the
/// spelling: a secret `SIP_TOKEN` at one layer must keep a plain `avaya:SIP_TOKEN` at another
/// out of the files every phone reads.
pub fn setting_key(name: &str) -> String {
    match name.split_once(':') {
        Some((prefix, native)) if prefix.eq_ignore_ascii_case(vendor_prefix(Vendor::Avaya)) => {
            format!("avaya:{}", native.to_ascii_uppercase())
        }
        Some((prefix, native)) => format!("{}:{native}", prefix.to_ascii_lowercase()),
        None if name.bytes().any(|b| b.is_ascii_uppercase()) => {
            format!("avaya:{}", name.to_ascii_uppercase())
        }
        None => name.to_string(),
    }
}

fn line_parts(name: &str) -> Option<(u32, &str)> {
    let rest = name.strip_prefix("line.")?;
    let (n, field) = rest.split_once('.')?;
    let n: u32 = n.parse().ok()?;
    ((1..=MAX_LINES).contains(&n) && LINE_FIELDS.contains(&field)).then_some((n, field))
}

fn is_neutral(name: &str) -> bool {
    PLAIN.contains(&name) || line_parts(name).is_some()
}

/// Whether `name` is one a parameter can be written under, whatever its value: a
/// vendor-prefixed native name (a Poly one an XML attribute name), a bare Avaya one
/// ([`is_avaya_name`]), or one of the vocabulary's. Apart from [`validate`] so that an import
/// checks a column's name once, in its header, rather than on every row that gives the column
/// a value.
///
/// Only writes are checked: a bare name with an upper-case letter stored before this check
/// (`Notes`) still renders as the Avaya setting it was taken for ([`to_native`]), and can be
/// removed.
pub fn check_name(name: &str) -> Result<(), VocabError> {
    if let Some((prefix, native)) = name.split_once(':') {
        if prefix.eq_ignore_ascii_case(vendor_prefix(Vendor::Poly)) && !is_xml_name(native) {
            // One such attribute makes the whole file unreadable to the phone.
            return Err(VocabError::PolyName(name.to_string()));
        }
        return Ok(());
    }
    if is_neutral(name) || is_avaya_name(name) {
        return Ok(());
    }
    if !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(VocabError::Unknown(name.to_string()));
    }
    // A spreadsheet's `Notes` or `Location` column, or a neutral name typed with capitals.
    let lower = name.to_ascii_lowercase();
    let hint = if is_neutral(&lower) {
        format!("the vocabulary's names are lower case: {lower}")
    } else {
        format!(
            "if it is a phone setting write avaya:{}, else leave it out",
            name.to_ascii_uppercase()
        )
    };
    Err(VocabError::NotAvaya {
        name: name.to_string(),
        hint,
    })
}

/// Checks a name a device's own parameters are to get, beyond [`check_name`]: Avaya's
/// `APPNAME` in any spelling is refused there, since the phone reads it only from its family's
/// upgrade script, never from a file of its own (docs/parameters.md). A neutral
/// `firmware.file` is not: it reaches a Yealink or Poly device's own files.
pub fn check_device_name(name: &str) -> Result<(), VocabError> {
    check_name(name)?;
    if setting_key(name) == "avaya:APPNAME" {
        return Err(VocabError::DeviceFirmware(name.to_string()));
    }
    Ok(())
}

/// Whether a bare name is written as Avaya writes its settings: upper-case letters, digits and
/// `_`, starting with a letter (`SIP_CONTROLLER_LIST`, `DOT1XSTAT`), as every `SET` of the
/// settings files from the field is. That form is the whole test: Avaya's settings are
/// hundreds, and each firmware release adds some, so a list of them would refuse real ones.
/// A name outside it (`Notes`, `Location`: a spreadsheet's columns) is no phone setting by
/// accident; a phone setting of another spelling can still be written `avaya:NAME`.
pub fn is_avaya_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// A name in the vendor's own syntax: a vendor prefix, or upper case (Avaya's). Wider than
/// what [`check_name`] lets a write take, so that a name stored before still renders.
fn is_native(name: &str) -> bool {
    name.contains(':') || name.bytes().any(|b| b.is_ascii_uppercase())
}

/// Checks a parameter at write time, so that every value can be rendered for every vendor.
pub fn validate(name: &str, value: &str) -> Result<(), VocabError> {
    check_name(name)?;
    if is_native(name) {
        return Ok(()); // native: the vendor's own syntax
    }
    let bad = |expected| {
        Err(VocabError::Value {
            name: name.to_string(),
            expected,
        })
    };
    match name {
        "sip.transport" if !["udp", "tcp", "tls"].contains(&value) => bad("udp, tcp or tls"),
        "sip.port" if value.parse::<u16>().map_or(true, |p| p == 0) => bad("a port 1-65535"),
        "vlan.id"
            if value
                .parse::<u16>()
                .map_or(true, |v| !(1..=4094).contains(&v)) =>
        {
            bad("a VLAN id 1-4094")
        }
        "provisioning.interval" if value.parse::<u32>().map_or(true, |m| m == 0) => {
            bad("minutes, at least 1")
        }
        "time.utc_offset" if utc_offset_seconds(value).is_none() => {
            bad("an offset like +1:00 or -5:30")
        }
        "language" if language(value).is_none() => {
            bad("one of en_US en_GB de_DE fr_FR es_ES it_IT nl_NL pt_BR")
        }
        _ => Ok(()),
    }
}

/// Whether a native name (letters, digits, `_`, `.`, `-`, as parameter names are) can be an
/// XML attribute's name: it must not start with a digit, `.` or `-`.
pub fn is_xml_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// `+H:MM`, `-HH:MM`, or whole hours (`+1`, `5`), in seconds. Hours and minutes are digits
/// only: integer parsing alone would take a sign of its own (`+-5:00`, `+5:-30`), which every
/// vendor's value is then rendered with.
fn utc_offset_seconds(v: &str) -> Option<i32> {
    let (sign, rest) = match v.as_bytes().first()? {
        b'+' => (1, &v[1..]),
        b'-' => (-1, &v[1..]),
        _ => (1, v),
    };
    let (h, m) = rest.split_once(':').unwrap_or((rest, "00"));
    let digits =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h, 2) || !digits(m, 2) || m.len() != 2 {
        return None;
    }
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 14 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// Yealink's and Poly's names for a locale.
fn language(v: &str) -> Option<(&'static str, &'static str)> {
    Some(match v {
        "en_US" => ("English", "English_United_States"),
        "en_GB" => ("English", "English_United_Kingdom"),
        "de_DE" => ("German", "German_Germany"),
        "fr_FR" => ("French", "French_France"),
        "es_ES" => ("Spanish", "Spanish_Spain"),
        "it_IT" => ("Italian", "Italian_Italy"),
        "nl_NL" => ("Dutch", "Dutch_Netherlands"),
        "pt_BR" => ("Portuguese", "Portuguese_Brazil"),
        _ => return None,
    })
}

/// Maps a set of parameters to one vendor's native settings. `base` is what lower layers
/// already set: composite settings (Avaya's `SIP_CONTROLLER_LIST` = server, port and transport)
/// are computed from `base` and `params` together, so a layer that changes only the port still
/// produces a complete value.
pub fn to_native(
    vendor: Vendor,
    params: &BTreeMap<String, String>,
    base: &BTreeMap<String, String>,
) -> Native {
    let mut out = Native::new();
    let lookup = |k: &str| params.get(k).or_else(|| base.get(k)).map(String::as_str);
    let mut put = |k: &str, v: &str| {
        out.insert(k.to_string(), v.to_string());
    };
    for (name, value) in params {
        if let Some((prefix, native)) = name.split_once(':') {
            if prefix.eq_ignore_ascii_case(vendor_prefix(vendor)) {
                // Avaya phones upper-case the names they read: `avaya:sip_token` is the
                // setting `SIP_TOKEN`, and written so it replaces a lower layer's value of it.
                if vendor == Vendor::Avaya {
                    put(&native.to_ascii_uppercase(), value);
                } else {
                    put(native, value);
                }
            }
            continue;
        }
        if !is_neutral(name) {
            if vendor == Vendor::Avaya && name.bytes().any(|b| b.is_ascii_uppercase()) {
                put(&name.to_ascii_uppercase(), value);
            }
            continue;
        }
        match vendor {
            Vendor::Avaya => avaya(name, value, &lookup, &mut put),
            Vendor::Yealink => yealink(name, value, &lookup, &mut put),
            Vendor::Poly => poly(name, value, &lookup, &mut put),
            _ => {}
        }
    }
    out
}

/// Whether a parameter can reach `vendor`'s files: neutral and bare names reach every vendor,
/// prefixed ones only their own.
pub fn applies_to(vendor: Vendor, name: &str) -> bool {
    match name.split_once(':') {
        Some((prefix, _)) => prefix.eq_ignore_ascii_case(vendor_prefix(vendor)),
        None => true,
    }
}

fn vendor_prefix(v: Vendor) -> &'static str {
    match v {
        Vendor::Avaya => "avaya",
        Vendor::Yealink => "yealink",
        Vendor::Poly => "poly",
        Vendor::Cisco => "cisco",
        Vendor::Snom => "snom",
        Vendor::Grandstream => "grandstream",
    }
}

type Lookup<'a> = dyn Fn(&str) -> Option<&'a str> + 'a;

fn avaya<'a>(name: &str, value: &str, lookup: &Lookup<'a>, put: &mut dyn FnMut(&str, &str)) {
    match name {
        "sip.server" | "sip.port" | "sip.transport" => {
            if let Some(server) = lookup("sip.server") {
                let transport = lookup("sip.transport").unwrap_or("tls");
                let default_port = if transport == "tls" { "5061" } else { "5060" };
                let port = lookup("sip.port").unwrap_or(default_port);
                put(
                    "SIP_CONTROLLER_LIST",
                    &format!("{server}:{port};transport={transport}"),
                );
            }
        }
        "sip.domain" => put("SIPDOMAIN", value),
        "ntp.server" => put("SNTPSRVR", value),
        "time.zone" => put("TIMEZONE", value),
        "time.utc_offset" => put("GMTOFFSET", value),
        "language" => put("ISO_SYSTEM_LANGUAGE", value),
        "vlan.id" => {
            put("L2Q", "1");
            put("L2QVLAN", value);
        }
        "admin.password" => put("ADMIN_PASSWORD", value),
        "tls.trusted_ca" => put("TRUSTCERTS", value),
        "firmware.file" => put("APPNAME", value),
        _ => match line_parts(name) {
            Some((1, "user")) => {
                put("FORCE_SIP_EXTENSION", value);
                if lookup("line.1.auth_user").is_none() {
                    put("FORCE_SIP_USERNAME", value);
                }
            }
            Some((1, "auth_user")) => put("FORCE_SIP_USERNAME", value),
            Some((1, "password")) => put("FORCE_SIP_PASSWORD", value),
            Some((1, "display_name")) => put("DISPLAY_NAME", value),
            _ => {}
        },
    }
}

fn yealink<'a>(name: &str, value: &str, _lookup: &Lookup<'a>, put: &mut dyn FnMut(&str, &str)) {
    match name {
        "sip.server" => put("account.1.sip_server.1.address", value),
        "sip.port" => put("account.1.sip_server.1.port", value),
        "sip.transport" => put(
            "account.1.sip_server.1.transport_type",
            match value {
                "tcp" => "1",
                "tls" => "2",
                _ => "0",
            },
        ),
        "ntp.server" => put("local_time.ntp_server1", value),
        "time.utc_offset" => put("local_time.time_zone", value.trim_end_matches(":00")),
        "language" => {
            if let Some((y, _)) = language(value) {
                put("lang.gui", y);
            }
        }
        "vlan.id" => {
            put("static.network.vlan.internet_port_enable", "1");
            put("static.network.vlan.internet_port_vid", value);
        }
        "admin.password" => put("static.security.user_password", &format!("admin:{value}")),
        "provisioning.interval" => {
            put("static.auto_provision.repeat.enable", "1");
            put("static.auto_provision.repeat.minutes", value);
        }
        "tls.trusted_ca" => put("static.trusted_certificates.url", value),
        "firmware.file" => put("static.firmware.url", value),
        _ => {
            if let Some((n, field)) = line_parts(name) {
                put(&format!("account.{n}.enable"), "1");
                let key = match field {
                    "user" => "user_name",
                    "auth_user" => "auth_name",
                    "password" => "password",
                    _ => "display_name",
                };
                put(&format!("account.{n}.{key}"), value);
            }
        }
    }
}

fn poly<'a>(name: &str, value: &str, _lookup: &Lookup<'a>, put: &mut dyn FnMut(&str, &str)) {
    match name {
        "sip.server" => put("reg.1.server.1.address", value),
        "sip.port" => put("reg.1.server.1.port", value),
        "sip.transport" => put(
            "reg.1.server.1.transport",
            match value {
                "tcp" => "TCPOnly",
                "tls" => "TLS",
                _ => "UDPOnly",
            },
        ),
        "ntp.server" => put("tcpIpApp.sntp.address", value),
        "time.utc_offset" => {
            if let Some(s) = utc_offset_seconds(value) {
                put("tcpIpApp.sntp.gmtOffset", &s.to_string());
            }
        }
        "language" => {
            if let Some((_, p)) = language(value) {
                put("lcl.ml.lang", p);
            }
        }
        "vlan.id" => {
            put("device.set", "1");
            put("device.net.vlanId.set", "1");
            put("device.net.vlanId", value);
        }
        "admin.password" => {
            put("device.set", "1");
            put("device.auth.localAdminPassword.set", "1");
            put("device.auth.localAdminPassword", value);
        }
        "provisioning.interval" => {
            put("prov.polling.enabled", "1");
            let seconds = value.parse::<u64>().unwrap_or(0) * 60;
            put("prov.polling.period", &seconds.to_string());
        }
        _ => {
            if let Some((n, field)) = line_parts(name) {
                let key = match field {
                    "user" => "address",
                    "auth_user" => "auth.userId",
                    "password" => "auth.password",
                    _ => "displayName",
                };
                put(&format!("reg.{n}.{key}"), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn neutral_names_map_to_each_vendor() {
        let p = map(&[
            ("sip.server", "pbx.example.com"),
            ("sip.transport", "tls"),
            ("line.1.user", "201"),
            ("line.1.password", "pw"),
            ("vlan.id", "20"),
            ("avaya:ENABLE_OPUS", "1"),
            ("yealink:local_time.time_zone_name", "Germany(Berlin)"),
        ]);
        let a = to_native(Vendor::Avaya, &p, &BTreeMap::new());
        assert_eq!(
            a["SIP_CONTROLLER_LIST"],
            "pbx.example.com:5061;transport=tls"
        );
        assert_eq!(a["FORCE_SIP_EXTENSION"], "201");
        assert_eq!(a["FORCE_SIP_USERNAME"], "201");
        assert_eq!(a["FORCE_SIP_PASSWORD"], "pw");
        assert_eq!(a["L2QVLAN"], "20");
        assert_eq!(a["ENABLE_OPUS"], "1");
        assert!(!a.contains_key("local_time.time_zone_name"));
        let y = to_native(Vendor::Yealink, &p, &BTreeMap::new());
        assert_eq!(y["account.1.sip_server.1.transport_type"], "2");
        assert_eq!(y["account.1.enable"], "1");
        assert_eq!(y["account.1.password"], "pw");
        assert_eq!(y["local_time.time_zone_name"], "Germany(Berlin)");
        assert!(!y.contains_key("ENABLE_OPUS"));
        let po = to_native(Vendor::Poly, &p, &BTreeMap::new());
        assert_eq!(po["reg.1.server.1.transport"], "TLS");
        assert_eq!(po["reg.1.auth.password"], "pw");
    }

    #[test]
    fn composite_uses_lower_layers() {
        let base = map(&[("sip.server", "10.0.0.1"), ("sip.transport", "udp")]);
        let a = to_native(Vendor::Avaya, &map(&[("sip.port", "5070")]), &base);
        assert_eq!(a["SIP_CONTROLLER_LIST"], "10.0.0.1:5070;transport=udp");
    }

    #[test]
    fn validation_names_the_problem() {
        assert!(validate("sip.transport", "tls").is_ok());
        assert!(validate("SIPDOMAIN", "x").is_ok());
        assert!(validate("avaya:anything", "x").is_ok());
        assert!(validate("line.1.user", "201").is_ok());
        for (n, v) in [
            ("sip.transport", "sctp"),
            ("sip.port", "0"),
            ("vlan.id", "5000"),
            ("line.17.user", "x"),
            ("sip.serverr", "x"),
            ("time.utc_offset", "+25"),
            ("time.utc_offset", "+-5:00"),
            ("time.utc_offset", "--5"),
            ("time.utc_offset", "++1:00"),
            ("time.utc_offset", "+5:-30"),
            ("time.utc_offset", "+5:+30"),
            ("time.utc_offset", "+5:3"),
            ("time.utc_offset", "+005:30"),
            ("time.utc_offset", "+1:"),
            ("time.utc_offset", ""),
            ("language", "tlh"),
            ("poly:1x", "1"),
            ("Poly:.x", "1"),
            ("poly:-x", "1"),
        ] {
            let e = validate(n, v).unwrap_err().to_string();
            assert!(e.starts_with(n), "{e}");
        }
        for offset in ["+1:00", "-5:30", "+14", "0:00", "5", "-09:30"] {
            assert!(validate("time.utc_offset", offset).is_ok(), "{offset}");
        }
        assert!(validate("poly:_x.1-a", "1").is_ok());
        assert!(validate("yealink:1x", "1").is_ok());
    }

    /// `APPNAME` at a device reached no phone: Avaya phones read it from the upgrade script
    /// only, and the device's own file leaves it out. It is refused there in every spelling;
    /// `firmware.file`, which reaches Yealink and Poly devices, is not.
    #[test]
    fn a_devices_appname_is_refused() {
        for name in ["APPNAME", "avaya:appname", "AVAYA:APPNAME"] {
            let e = check_device_name(name).unwrap_err().to_string();
            assert!(e.starts_with(name) && e.contains("model:MODEL"), "{e}");
            assert_eq!(check_name(name), Ok(()), "{name} at a layer");
        }
        assert_eq!(check_device_name("firmware.file"), Ok(()));
        assert_eq!(check_device_name("yealink:APPNAME"), Ok(()));
        assert!(check_device_name("Notes").is_err());
    }

    /// A bare name is an Avaya setting only written as Avaya writes them: a spreadsheet's
    /// `Notes` or `Location` column is refused, with how to write a real setting; the settings
    /// of the files from the field, and every other upper-case name, are taken.
    #[test]
    fn a_bare_name_is_avaya_only_in_avayas_form() {
        for name in [
            "SIPDOMAIN",
            "SIP_CONTROLLER_LIST",
            "DOT1XSTAT",
            "LANG1FILE",
            "ENABLE_G711A",
            "NOTES",
            "avaya:Notes",
            "AVAYA:sip_token",
        ] {
            assert_eq!(check_name(name), Ok(()), "{name}");
        }
        for (name, hint) in [
            ("Notes", "write avaya:NOTES"),
            ("Location", "write avaya:LOCATION"),
            ("Sip_Token", "write avaya:SIP_TOKEN"),
            ("_X", "write avaya:_X"),
            ("1X", "write avaya:1X"),
            ("SIP.X", "write avaya:SIP.X"),
            ("SIP-X", "write avaya:SIP-X"),
            ("Sip.Server", "lower case: sip.server"),
            ("LINE.1.USER", "lower case: line.1.user"),
        ] {
            let e = check_name(name).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("{name}: ")) && e.contains(hint),
                "{e}"
            );
            assert_eq!(validate(name, "x").map_err(|e| e.to_string()), Err(e));
        }
        // What an earlier edgeprov stored still renders as the setting it was taken for.
        let stored = BTreeMap::from([("Notes".to_string(), "desk".to_string())]);
        let native = to_native(Vendor::Avaya, &stored, &BTreeMap::new());
        assert_eq!(native.get("NOTES").map(String::as_str), Some("desk"));
    }

    #[test]
    fn secrets_are_known() {
        for s in [
            "line.3.password",
            "admin.password",
            "avaya:FORCE_SIP_PASSWORD",
            "ADMIN_PASSWORD",
            "poly:reg.1.auth.password",
            "avaya:PROCPSWD_PIN",
            "PROCPSWD",
            "avaya:DOT1XPSWD",
            "avaya:SIP_SECRET",
            "snom:user_pass1",
            "grandstream:P34",
            "wifi.passphrase",
            "poly:device.wifi.psk.key",
            "PASSWORD_MIN_LENGTH",
            "yealink:static.auto_provision.aes_key_16.com",
            "yealink:static.auto_provision.aes_key_16.mac",
            "yealink:phone_setting.phone_lock.unlock_pin",
            "yealink:static.snmp.community",
            "poly:device.sec.configEncryption.key",
            "poly:device.snmp.communityName",
            "cisco:SIP_Auth_Token_1_",
            "SIP_TOKEN",
            "avaya:sip_token",
            "SNMPSTRING",
            "snom:user_hash",
            "snom:keyboard_lock_pw",
            "yealink:openvpn.key",
        ] {
            assert!(is_secret(s), "{s}");
        }
        for s in [
            "sip.server",
            "line.1.user",
            "SIPDOMAIN",
            "bypass",
            "SPINNER",
            "yealink:linekey.1.type",
            "yealink:linekey.1.value",
            "yealink:programablekey.2.type",
            "yealink:memorykey.1.value",
            "yealink:expansion_module.1.key.1.value",
            "yealink:features.key_as_send",
            "yealink:phone_setting.keypad_lock.enable",
            "yealink:dialplan.replace.prefix.1",
            "yealink:static.auto_provision.aes_key_in_file",
            "yealink:static.auto_provision.server.url",
            "poly:key.scrolling.timeout",
            "poly:softkey.1.label",
            "poly:efk.efklist.1.mname",
            "poly:device.prov.serverName",
            "KEYPAD_LOCK",
            "SIG",
            "HOLIDAY_LIST",
            "SOFTKEY_CONFIGURATION",
            "snom:fkey1",
            "snom:keyboard_lock",
        ] {
            assert!(!is_secret(s), "{s}");
        }
    }

    /// A URL's login is a credential whatever the name it is set under; a URL without a
    /// password is not.
    #[test]
    fn a_url_with_a_login_is_a_secret_value() {
        for v in [
            "https://prov:Hunter2pw@host/",
            "ftp://PlcmSpIp:PlcmSpIp@host",
            "[--key k] https://admin:Pa55@host/$MA.cfg",
        ] {
            assert!(is_secret_value(v), "{v}");
        }
        for v in [
            "https://host/prov/",
            "ftp://anonymous@host/",
            "http://$MAC:$PWD@host/",
            "sip:100:x@pbx",
            "pbx.example.com",
            "",
        ] {
            assert!(!is_secret_value(v), "{v}");
        }
    }
}
