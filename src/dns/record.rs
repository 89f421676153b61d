//! One record as an operator writes it (`name`, `type`, `value`, `ttl`), in the config file or
//! through the admin API, and its parse into a wire record. Both sources share this shape so a
//! record that is valid in one is valid in the other.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::{A, AAAA, CNAME, PTR, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record};
use serde::{Deserialize, Serialize};

/// The record types an operator may add; the rest of DNS has no use on a provisioning LAN.
pub const TYPES: &[&str] = &["A", "AAAA", "CNAME", "SRV", "TXT", "PTR"];

/// Upper bound for TTLs (one week), so a typo cannot pin a wrong answer in phones for years.
pub const MAX_TTL: u32 = 604_800;

fn default_ttl() -> u32 {
    300
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordSpec {
    /// Fully qualified owner name; a trailing dot is optional.
    pub name: String,
    /// One of [`TYPES`], case-insensitive.
    #[serde(rename = "type")]
    pub rtype: String,
    /// A/AAAA: an address; CNAME/PTR: a name; SRV: `priority weight port target`;
    /// TXT: the text (split into 255-byte strings on the wire).
    pub value: String,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
}

/// What is wrong with a record, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RecordError {
    pub field: &'static str,
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> RecordError {
    RecordError {
        field,
        message: message.into(),
    }
}

/// Parses a name written by a person: trailing dot optional, always fully qualified.
pub fn parse_name(text: &str) -> Result<Name, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("must not be empty".into());
    }
    let mut name =
        Name::from_ascii(text).map_err(|e| format!("{text:?} is not a DNS name: {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// Whether a name belongs to a reverse-mapping tree, where PTR records live outside the zone.
pub fn is_reverse(name: &Name) -> bool {
    let text = name.to_ascii().to_ascii_lowercase();
    text.ends_with(".in-addr.arpa.") || text.ends_with(".ip6.arpa.")
}

impl RecordSpec {
    /// Checks every field and builds the wire record. `zone` is the served domain: names must be
    /// inside it (or, for PTR, under a reverse tree), since answering for anyone else's names
    /// would shadow what upstream resolvers say about them.
    pub fn to_record(&self, zone: &Name) -> Result<Record, RecordError> {
        let name = parse_name(&self.name).map_err(|m| err("name", m))?;
        let rtype = self.rtype.trim().to_ascii_uppercase();
        if !TYPES.contains(&rtype.as_str()) {
            return Err(err(
                "type",
                format!("{:?} is not one of {}", self.rtype, TYPES.join(", ")),
            ));
        }
        if !(zone.zone_of(&name) || (rtype == "PTR" && is_reverse(&name))) {
            return Err(err(
                "name",
                format!("{name} is outside the served domain {zone}"),
            ));
        }
        if self.ttl > MAX_TTL {
            return Err(err("ttl", format!("must be at most {MAX_TTL} seconds")));
        }
        let value = self.value.trim();
        let rdata = match rtype.as_str() {
            "A" => RData::A(A(value.parse::<Ipv4Addr>().map_err(|_| {
                err("value", format!("{value:?} is not an IPv4 address"))
            })?)),
            "AAAA" => {
                RData::AAAA(AAAA(value.parse::<Ipv6Addr>().map_err(|_| {
                    err("value", format!("{value:?} is not an IPv6 address"))
                })?))
            }
            "CNAME" => {
                if name == *zone {
                    return Err(err("name", "the zone apex cannot be a CNAME"));
                }
                RData::CNAME(CNAME(parse_name(value).map_err(|m| err("value", m))?))
            }
            "PTR" => RData::PTR(PTR(parse_name(value).map_err(|m| err("value", m))?)),
            "SRV" => RData::SRV(parse_srv(value)?),
            _ => {
                if value.is_empty() {
                    return Err(err("value", "TXT text must not be empty"));
                }
                if value.len() > 4000 {
                    return Err(err("value", "TXT text is limited to 4000 bytes"));
                }
                RData::TXT(txt(value))
            }
        };
        Ok(Record::from_rdata(name, self.ttl, rdata))
    }
}

/// A TXT record from one text, split into the 255-byte character-strings the wire allows.
pub fn txt(text: &str) -> TXT {
    TXT::from_bytes(text.as_bytes().chunks(255).collect())
}

fn parse_srv(value: &str) -> Result<SRV, RecordError> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [priority, weight, port, target] = parts.as_slice() else {
        return Err(err(
            "value",
            "SRV value is \"priority weight port target\", e.g. \"0 0 443 prov.example.lan\"",
        ));
    };
    let number = |what: &str, text: &str| {
        text.parse::<u16>().map_err(|_| {
            err(
                "value",
                format!("SRV {what} {text:?} is not a number 0-65535"),
            )
        })
    };
    Ok(SRV::new(
        number("priority", priority)?,
        number("weight", weight)?,
        number("port", port)?,
        parse_name(target).map_err(|m| err("value", m))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, rtype: &str, value: &str) -> RecordSpec {
        RecordSpec {
            name: name.into(),
            rtype: rtype.into(),
            value: value.into(),
            ttl: 300,
        }
    }

    fn zone() -> Name {
        parse_name("prov.example.lan").unwrap()
    }

    #[test]
    fn parses_each_type() {
        for (t, v) in [
            ("A", "10.0.0.10"),
            ("aaaa", "fd00::10"),
            ("CNAME", "sip.prov.example.lan"),
            ("SRV", "0 0 5061 sip.prov.example.lan."),
            ("TXT", "hello world"),
        ] {
            let r = spec("x.prov.example.lan", t, v).to_record(&zone()).unwrap();
            assert_eq!(r.record_type().to_string(), t.to_ascii_uppercase());
        }
        let ptr = spec("10.0.0.10.in-addr.arpa", "PTR", "sip.prov.example.lan");
        assert!(ptr.to_record(&zone()).is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let e = spec("other.lan", "A", "10.0.0.1")
            .to_record(&zone())
            .unwrap_err();
        assert_eq!(e.field, "name");
        let e = spec("a.prov.example.lan", "MX", "x")
            .to_record(&zone())
            .unwrap_err();
        assert_eq!(e.field, "type");
        let e = spec("a.prov.example.lan", "A", "10.0.0")
            .to_record(&zone())
            .unwrap_err();
        assert_eq!(e.field, "value");
        let e = spec("a.prov.example.lan", "SRV", "0 0 x t")
            .to_record(&zone())
            .unwrap_err();
        assert!(e.message.contains("port"), "{e}");
        let e = spec("prov.example.lan", "CNAME", "x.lan")
            .to_record(&zone())
            .unwrap_err();
        assert_eq!(e.field, "name");
    }

    #[test]
    fn long_txt_is_split() {
        let text = "x".repeat(600);
        let t = txt(&text);
        assert_eq!(t.txt_data.len(), 3);
    }
}
