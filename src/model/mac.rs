//! A device's MAC address, the key phones are known by everywhere in edgeprov.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Six octets, written canonically as 12 lower-case hex digits without separators — the form
/// Avaya and Yealink use in file names — whatever form it arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac([u8; 6]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a MAC address: {0:?} (expected 12 hex digits, optionally separated by ':', '-' or '.')"
)]
pub struct MacError(pub String);

impl Mac {
    pub const fn from_octets(octets: [u8; 6]) -> Mac {
        Mac(octets)
    }

    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// Accepts `001122aabbcc`, `00:11:22:AA:BB:CC`, `00-11-22-aa-bb-cc` and `0011.22aa.bbcc`.
    /// Separators must be used consistently so that arbitrary hex strings of the right length
    /// with stray punctuation are not taken for addresses.
    pub fn parse(text: &str) -> Result<Mac, MacError> {
        let err = || MacError(text.chars().take(64).collect());
        let bytes = text.as_bytes();
        let hex: Vec<u8> = match bytes.len() {
            12 => bytes.to_vec(),
            17 => {
                let sep = bytes[2];
                if !(sep == b':' || sep == b'-') {
                    return Err(err());
                }
                let mut out = Vec::with_capacity(12);
                for (i, chunk) in bytes.chunks(3).enumerate() {
                    if i < 5 && chunk.get(2) != Some(&sep) {
                        return Err(err());
                    }
                    out.extend_from_slice(&chunk[..2]);
                }
                out
            }
            14 => {
                if bytes[4] != b'.' || bytes[9] != b'.' {
                    return Err(err());
                }
                bytes.iter().copied().filter(|b| *b != b'.').collect()
            }
            _ => return Err(err()),
        };
        if hex.len() != 12 {
            return Err(err());
        }
        let mut octets = [0u8; 6];
        for (i, pair) in hex.chunks(2).enumerate() {
            octets[i] =
                (hex_digit(pair[0]).ok_or_else(err)? << 4) | hex_digit(pair[1]).ok_or_else(err)?;
        }
        Ok(Mac(octets))
    }

    /// Finds a MAC inside free text such as a User-Agent (`MAC:c81fea83e85a`, `(00562b043615)`;
    /// never a certificate, whose MAC must stand where devices put it): the first run of 12 hex digits, or
    /// six colon/dash-separated pairs, that is not part of a longer hex run.
    pub fn find_in(text: &str) -> Option<Mac> {
        let b = text.as_bytes();
        let is_hex = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_hexdigit());
        let mut i = 0;
        while i < b.len() {
            if is_hex(i) && (i == 0 || !is_hex(i - 1)) {
                for len in [17usize, 12] {
                    if i + len <= b.len()
                        && !is_hex(i + len)
                        && let Some(s) = text.get(i..i + len)
                        && let Ok(mac) = Mac::parse(s)
                    {
                        return Some(mac);
                    }
                }
            }
            i += 1;
        }
        None
    }

    /// Colon-separated lower case, the form Yealink prints in its User-Agent.
    pub fn colon_form(&self) -> String {
        let o = self.0;
        format!(
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in self.0 {
            write!(f, "{o:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Mac {
    type Err = MacError;
    fn from_str(s: &str) -> Result<Mac, MacError> {
        Mac::parse(s)
    }
}

impl Serialize for Mac {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mac, D::Error> {
        let s = String::deserialize(d)?;
        Mac::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_forms_are_one_mac() {
        let want = Mac::parse("001122aabbcc").unwrap();
        for form in [
            "00:11:22:AA:BB:CC",
            "00-11-22-aa-bb-cc",
            "001122AABBCC",
            "0011.22aa.bbcc",
            "00:11:22:aa:bb:cc",
        ] {
            assert_eq!(Mac::parse(form).unwrap(), want, "{form}");
        }
        assert_eq!(want.to_string(), "001122aabbcc");
        assert_eq!(want.colon_form(), "00:11:22:aa:bb:cc");
    }

    #[test]
    fn bad_forms_are_refused() {
        for bad in [
            "",
            "001122aabbc",
            "001122aabbccd",
            "00:11:22-aa:bb:cc",
            "00:11:22:aa:bb:cg",
            "0011:22aa:bbcc",
            "ööööööööööö",
        ] {
            assert!(Mac::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_mac_in_text() {
        let mac = Mac::parse("c81fea83e85a").unwrap();
        assert_eq!(Mac::find_in("(MAC:c81fea83e85a)"), Some(mac));
        assert_eq!(Mac::find_in("SEPC81FEA83E85A"), Some(mac));
        assert_eq!(Mac::find_in("urn:dev:mac:c8-1f-ea-83-e8-5a"), Some(mac));
        assert_eq!(Mac::find_in("00112233445566778899"), None);
        assert_eq!(Mac::find_in("no mac here"), None);
    }
}
