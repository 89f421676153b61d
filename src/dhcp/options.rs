//! DHCP options as bytes: the raw walk of a request's options (the authority for every option the
//! server acts on), typed option values from the configuration, and the writer that lays out a
//! reply's options in the client's preferred order, splitting long values (RFC 3396).
//!
//! Why a walk of our own: dhcproto stops decoding at the first option it cannot parse and keeps
//! no error, and it folds repeated codes into one. A phone that sends option 150 with two
//! addresses would silently lose its vendor class after it. The walk here only splits
//! code/length/value, concatenates repeated codes as RFC 3396 says, and reports truncation.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

pub const PAD: u8 = 0;
pub const SUBNET_MASK: u8 = 1;
pub const ROUTER: u8 = 3;
pub const DNS: u8 = 6;
pub const HOST_NAME: u8 = 12;
pub const DOMAIN_NAME: u8 = 15;
pub const BROADCAST: u8 = 28;
pub const NTP: u8 = 42;
pub const VENDOR_SPECIFIC: u8 = 43;
pub const REQUESTED_IP: u8 = 50;
pub const LEASE_TIME: u8 = 51;
pub const OVERLOAD: u8 = 52;
pub const MESSAGE_TYPE: u8 = 53;
pub const SERVER_ID: u8 = 54;
pub const PARAMETER_LIST: u8 = 55;
pub const MAX_MESSAGE_SIZE: u8 = 57;
pub const RENEWAL_TIME: u8 = 58;
pub const REBINDING_TIME: u8 = 59;
pub const VENDOR_CLASS: u8 = 60;
pub const CLIENT_ID: u8 = 61;
pub const TFTP_SERVER_NAME: u8 = 66;
pub const RELAY_AGENT_INFO: u8 = 82;
pub const CISCO_TFTP: u8 = 150;
pub const END: u8 = 255;

/// Codes the server sets itself from the lease and the request: configuration may not set them.
pub const SERVER_OWNED: &[u8] = &[
    PAD,
    REQUESTED_IP,
    LEASE_TIME,
    OVERLOAD,
    MESSAGE_TYPE,
    SERVER_ID,
    PARAMETER_LIST,
    MAX_MESSAGE_SIZE,
    RENEWAL_TIME,
    REBINDING_TIME,
    CLIENT_ID,
    RELAY_AGENT_INFO,
    END,
];

/// The largest configured option value (it goes out in several instances of 255 bytes).
pub const MAX_VALUE: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    #[error("option {code} at offset {at} is cut short")]
    Truncated { code: u8, at: usize },
    #[error("option {code} has length {len}, expected {expected}")]
    BadLength {
        code: u8,
        len: usize,
        expected: &'static str,
    },
}

/// A request's options after the walk: each code once, repeated instances concatenated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawOptions {
    entries: Vec<(u8, Vec<u8>)>,
}

impl RawOptions {
    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    pub fn codes(&self) -> impl Iterator<Item = u8> + '_ {
        self.entries.iter().map(|(c, _)| *c)
    }

    fn append(&mut self, code: u8, value: &[u8]) {
        match self.entries.iter_mut().find(|(c, _)| *c == code) {
            Some((_, v)) => v.extend_from_slice(value),
            None => self.entries.push((code, value.to_vec())),
        }
    }

    /// A four-byte address option; any other length is a malformed request.
    pub fn ip(&self, code: u8) -> Result<Option<Ipv4Addr>, WalkError> {
        match self.get(code) {
            None => Ok(None),
            Some(v) => <[u8; 4]>::try_from(v)
                .map(|b| Some(Ipv4Addr::from(b)))
                .map_err(|_| WalkError::BadLength {
                    code,
                    len: v.len(),
                    expected: "4",
                }),
        }
    }

    /// Text options (host name, vendor class) as the client sent them, invalid UTF-8 replaced.
    pub fn text(&self, code: u8) -> String {
        self.get(code)
            .map(|v| {
                String::from_utf8_lossy(v)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .unwrap_or_default()
    }
}

/// Walks `bytes` (the options area after the magic cookie) into `out`. Stops at END; running off
/// the end without END is accepted (several embedded clients omit it), a length that runs past
/// the end is not.
pub fn walk_into(bytes: &[u8], out: &mut RawOptions) -> Result<(), WalkError> {
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes[i];
        match code {
            PAD => i += 1,
            END => return Ok(()),
            _ => {
                let len = *bytes
                    .get(i + 1)
                    .ok_or(WalkError::Truncated { code, at: i })?
                    as usize;
                let value = bytes
                    .get(i + 2..i + 2 + len)
                    .ok_or(WalkError::Truncated { code, at: i })?;
                out.append(code, value);
                i += 2 + len;
            }
        }
    }
    Ok(())
}

pub fn walk(bytes: &[u8]) -> Result<RawOptions, WalkError> {
    let mut out = RawOptions::default();
    walk_into(bytes, &mut out)?;
    Ok(out)
}

/// An option value as written in the configuration: a string (typed by the code or by a
/// `hex:`/`ip:`/`u8:`/`u16:`/`u32:`/`text:` prefix), an integer, or a list of addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OptionValue {
    Text(String),
    Int(i64),
    List(Vec<String>),
}

/// How a code's value is encoded when the configuration does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ips,
    U8,
    U16,
    U32,
    Text,
}

fn kind_of(code: u8) -> Kind {
    match code {
        1 | 3..=11 | 16 | 21 | 28 | 32 | 33 | 41 | 42 | 44 | 45 | 48 | 49 | 65 | 68..=76 | 150 => {
            Kind::Ips
        }
        19 | 20 | 23 | 27 | 29..=31 | 34 | 36 | 39 | 46 => Kind::U8,
        13 | 22 | 26 => Kind::U16,
        2 | 24 | 35 | 38 => Kind::U32,
        _ => Kind::Text,
    }
}

fn parse_ips(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ip: Ipv4Addr = part
            .parse()
            .map_err(|_| format!("{part:?} is not an IPv4 address"))?;
        out.extend_from_slice(&ip.octets());
    }
    if out.is_empty() {
        return Err("expected at least one IPv4 address".into());
    }
    Ok(out)
}

fn parse_int(text: &str, kind: Kind) -> Result<Vec<u8>, String> {
    let n: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not an integer"))?;
    int_bytes(n, kind)
}

fn int_bytes(n: i64, kind: Kind) -> Result<Vec<u8>, String> {
    let range = |max: i64| {
        if n < 0 || n > max {
            Err(format!("{n} is out of range 0..={max}"))
        } else {
            Ok(())
        }
    };
    match kind {
        Kind::U8 => range(u8::MAX as i64).map(|_| vec![n as u8]),
        Kind::U16 => range(u16::MAX as i64).map(|_| (n as u16).to_be_bytes().to_vec()),
        Kind::U32 => {
            // Option 2 (time offset) is signed; every other 32-bit option is unsigned.
            if (i32::MIN as i64..=u32::MAX as i64).contains(&n) {
                Ok((n as u32).to_be_bytes().to_vec())
            } else {
                Err(format!("{n} does not fit in 32 bits"))
            }
        }
        Kind::Ips | Kind::Text => Err("an integer needs a u8:, u16: or u32: prefix here".into()),
    }
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b':' | b' ' | b'-'))
        .collect();
    if !digits.len().is_multiple_of(2) {
        return Err("hex needs an even number of digits".into());
    }
    digits
        .chunks(2)
        .map(|p| {
            let s = std::str::from_utf8(p).map_err(|_| "not hex".to_string())?;
            u8::from_str_radix(s, 16).map_err(|_| format!("{s:?} is not hex"))
        })
        .collect()
}

impl OptionValue {
    /// The bytes sent for this value under `code`.
    pub fn encode(&self, code: u8) -> Result<Vec<u8>, String> {
        let bytes = match self {
            OptionValue::List(items) => parse_ips(&items.join(","))?,
            OptionValue::Int(n) => int_bytes(*n, kind_of(code))?,
            OptionValue::Text(text) => match text.split_once(':') {
                Some(("hex", rest)) => parse_hex(rest)?,
                Some(("ip", rest)) => parse_ips(rest)?,
                Some(("u8", rest)) => parse_int(rest, Kind::U8)?,
                Some(("u16", rest)) => parse_int(rest, Kind::U16)?,
                Some(("u32", rest)) => parse_int(rest, Kind::U32)?,
                Some(("text", rest)) => rest.as_bytes().to_vec(),
                _ => match kind_of(code) {
                    Kind::Ips => parse_ips(text)?,
                    Kind::Text => text.as_bytes().to_vec(),
                    k => parse_int(text, k)?,
                },
            },
        };
        if bytes.is_empty() {
            return Err("the value is empty".into());
        }
        if bytes.len() > MAX_VALUE {
            return Err(format!("the value is longer than {MAX_VALUE} bytes"));
        }
        Ok(bytes)
    }
}

/// Parses an option code written as a TOML key.
pub fn parse_code(key: &str) -> Result<u8, String> {
    let code: u8 = key
        .trim()
        .parse()
        .map_err(|_| format!("{key:?} is not an option code (1-254)"))?;
    if SERVER_OWNED.contains(&code) {
        return Err(format!("option {code} is set by the server itself"));
    }
    Ok(code)
}

/// A reply's options in the order they are written, at most one entry per code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyOptions {
    entries: Vec<(u8, Vec<u8>)>,
}

impl ReplyOptions {
    /// Sets a code's value, replacing an earlier one in place.
    pub fn set(&mut self, code: u8, value: Vec<u8>) {
        match self.entries.iter_mut().find(|(c, _)| *c == code) {
            Some((_, v)) => *v = value,
            None => self.entries.push((code, value)),
        }
    }

    pub fn get(&self, code: u8) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, v)| v.as_slice())
    }

    pub fn iter(&self) -> impl Iterator<Item = (u8, &[u8])> {
        self.entries.iter().map(|(c, v)| (*c, v.as_slice()))
    }

    /// Writes `head` first (message type, server id, lease times), then the options the client
    /// asked for in the order of its parameter request list, then the rest in code order, then
    /// `tail` (option 82 is echoed last) and END, in at most `limit` bytes of options.
    ///
    /// When they do not all fit, option 52 (overload, RFC 2132 9.3) joins the head and the
    /// options that do not fit go to the `file` and then the `sname` header field, as ISC dhcpd
    /// and dnsmasq do: a client's maximum message size (576 bytes by default) leaves 308 bytes
    /// for options, which a long Avaya SSON and the network options outgrow. Each option goes
    /// whole to the first area with room, so no option is split between areas; one that fits
    /// nowhere is left out, so the ones the client ranked first are the ones that fit.
    pub fn write(
        &self,
        head: &ReplyOptions,
        prl: &[u8],
        tail: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Overflow {
        let order = self.in_order(head, prl);
        // Room for the END byte and the echoed relay information.
        let reserve = 1 + encoded_len(tail.len()) * usize::from(!tail.is_empty());
        let head_len: usize = head.entries.iter().map(|(_, v)| encoded_len(v.len())).sum();
        let room = limit.saturating_sub(reserve + head_len);
        let mut placed = place(&order, room, true);
        if placed
            .iter()
            .all(|area| *area != Area::File && *area != Area::Sname)
        {
            // Nothing overflowed into the header fields: no option 52, and its three bytes
            // are free for options.
            placed = place(&order, room, false);
        }
        let mut overflow = Overflow::default();
        let mut overload = 0u8;
        for ((code, value), area) in order.iter().zip(&placed) {
            match area {
                Area::File => {
                    put(&mut overflow.file, *code, value);
                    overload |= 1;
                }
                Area::Sname => {
                    put(&mut overflow.sname, *code, value);
                    overload |= 2;
                }
                Area::Options | Area::Left => {}
            }
        }
        for (code, value) in &head.entries {
            put(out, *code, value);
        }
        if overload != 0 {
            put(out, OVERLOAD, &[overload]);
        }
        for ((code, value), area) in order.iter().zip(&placed) {
            if *area == Area::Options {
                put(out, *code, value);
            }
        }
        if !tail.is_empty() {
            put(out, RELAY_AGENT_INFO, tail);
        }
        out.push(END);
        for field in [&mut overflow.file, &mut overflow.sname] {
            if !field.is_empty() {
                field.push(END);
            }
        }
        overflow
    }

    /// The options to write after `head`, each code once: those in the parameter request list
    /// in its order, then the rest in code order.
    fn in_order(&self, head: &ReplyOptions, prl: &[u8]) -> Vec<(u8, &[u8])> {
        let mut written: Vec<u8> = head.entries.iter().map(|(c, _)| *c).collect();
        let requested = prl
            .iter()
            .filter_map(|c| self.entries.iter().find(|(e, _)| e == c));
        let mut rest: Vec<&(u8, Vec<u8>)> = self.entries.iter().collect();
        rest.sort_by_key(|(c, _)| *c);
        let mut order = Vec::new();
        for (code, value) in requested.chain(rest) {
            if !written.contains(code) {
                written.push(*code);
                order.push((*code, value.as_slice()));
            }
        }
        order
    }
}

/// Bytes of the `file` header field (BOOTP's boot file name), usable for options under option 52.
pub const FILE_LEN: usize = 128;
/// Bytes of the `sname` header field (BOOTP's server host name), likewise.
pub const SNAME_LEN: usize = 64;

/// The options a reply carries in its `file` and `sname` header fields under option 52, each
/// ending with END; empty when the options field held them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overflow {
    pub file: Vec<u8>,
    pub sname: Vec<u8>,
}

/// Where an option of a reply goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Options,
    File,
    Sname,
    /// Nowhere: it does not fit.
    Left,
}

/// Where each option goes: all in the options field when they fit in its `room` bytes; else,
/// with `overload` (option 52 takes three of those bytes), in the options field or the `file` or
/// `sname` field less their END byte. Options are taken in order while the ones taken can still
/// be packed: a long option that only the options field can hold is not crowded out of it by
/// short ones after it, which fit in the header fields, and no option displaces one before it.
fn place(order: &[(u8, &[u8])], room: usize, overload: bool) -> Vec<Area> {
    let sizes: Vec<usize> = order.iter().map(|(_, v)| encoded_len(v.len())).collect();
    if sizes.iter().sum::<usize>() <= room {
        return vec![Area::Options; order.len()];
    }
    let areas = if overload {
        [
            (Area::Options, room.saturating_sub(3)),
            (Area::File, FILE_LEN - 1),
            (Area::Sname, SNAME_LEN - 1),
        ]
    } else {
        [(Area::Options, room), (Area::File, 0), (Area::Sname, 0)]
    };
    let mut kept: Vec<usize> = Vec::new();
    let mut placed = Vec::new();
    for i in 0..order.len() {
        kept.push(i);
        match pack(&kept, &sizes, areas) {
            Some(p) => placed = p,
            None => {
                kept.pop();
            }
        }
    }
    let mut out = vec![Area::Left; order.len()];
    for (i, area) in placed {
        out[i] = area;
    }
    out
}

/// Packs the options `which` (by index into `sizes`) into `areas`, largest first, each into the
/// first area with room; `None` when one does not fit.
fn pack(
    which: &[usize],
    sizes: &[usize],
    mut areas: [(Area, usize); 3],
) -> Option<Vec<(usize, Area)>> {
    let mut largest_first = which.to_vec();
    largest_first.sort_by_key(|&i| std::cmp::Reverse(sizes[i]));
    largest_first
        .into_iter()
        .map(|i| {
            let (area, free) = areas.iter_mut().find(|(_, free)| *free >= sizes[i])?;
            *free -= sizes[i];
            Some((i, *area))
        })
        .collect()
}

/// Bytes taken by a value of `len` once split into instances of at most 255 bytes.
pub fn encoded_len(len: usize) -> usize {
    len + 2 * len.div_ceil(255).max(1)
}

/// One option, split across consecutive instances when longer than 255 bytes (RFC 3396).
pub fn put(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    if value.is_empty() {
        out.extend_from_slice(&[code, 0]);
        return;
    }
    for chunk in value.chunks(255) {
        out.push(code);
        out.push(chunk.len() as u8);
        out.extend_from_slice(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_codes_concatenate_and_pads_skip() {
        let bytes = [0, 60, 3, b'c', b'c', b'p', 0, 60, 2, b'.', b'a', 255, 99];
        let opts = walk(&bytes).unwrap();
        assert_eq!(opts.get(60), Some(&b"ccp.a"[..]));
    }

    #[test]
    fn an_option_dhcproto_rejects_does_not_hide_later_ones() {
        // Option 150 with two addresses, then the vendor class: the walk sees both.
        let mut bytes = vec![150, 8, 10, 0, 0, 1, 10, 0, 0, 2];
        bytes.extend_from_slice(&[60, 13]);
        bytes.extend_from_slice(b"ccp.avaya.com");
        bytes.push(255);
        let opts = walk(&bytes).unwrap();
        assert_eq!(opts.text(60), "ccp.avaya.com");
    }

    #[test]
    fn truncation_is_an_error() {
        assert!(matches!(
            walk(&[53, 1]),
            Err(WalkError::Truncated { code: 53, .. })
        ));
        assert!(walk(&[53]).is_err());
        assert!(walk(&[53, 1, 1]).is_ok());
    }

    #[test]
    fn address_options_must_be_four_bytes() {
        let opts = walk(&[50, 3, 1, 2, 3, 255]).unwrap();
        assert!(opts.ip(50).is_err());
    }

    #[test]
    fn values_are_typed_by_code_or_prefix() {
        let t = |s: &str| OptionValue::Text(s.into());
        assert_eq!(
            t("10.0.0.1, 10.0.0.2").encode(150).unwrap(),
            vec![10, 0, 0, 1, 10, 0, 0, 2]
        );
        assert_eq!(t("https://x/").encode(66).unwrap(), b"https://x/".to_vec());
        assert_eq!(t("hex:01:04:36").encode(43).unwrap(), vec![1, 4, 0x36]);
        assert_eq!(t("u16:1500").encode(200).unwrap(), vec![5, 220]);
        assert_eq!(OptionValue::Int(64).encode(23).unwrap(), vec![64]);
        assert_eq!(
            OptionValue::Int(-3600).encode(2).unwrap(),
            (-3600i32).to_be_bytes().to_vec()
        );
        assert!(OptionValue::Int(7).encode(224).is_err());
        assert!(t("not-an-ip").encode(6).is_err());
        assert!(t("u8:300").encode(224).is_err());
        assert!(parse_code("53").is_err());
        assert!(parse_code("256").is_err());
        assert_eq!(parse_code("242"), Ok(242));
    }

    #[test]
    fn long_values_split_and_rejoin() {
        let value: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        let mut out = Vec::new();
        put(&mut out, 242, &value);
        assert_eq!(out.len(), 600 + 3 * 2);
        assert_eq!(walk(&out).unwrap().get(242), Some(value.as_slice()));
    }

    /// The codes written in an options area, in order, up to END.
    fn codes_in(area: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        let mut i = 0;
        while area[i] != END {
            v.push(area[i]);
            i += 2 + area[i + 1] as usize;
        }
        v
    }

    #[test]
    fn requested_options_come_first_and_overflow_goes_to_file_then_sname() {
        let mut opts = ReplyOptions::default();
        opts.set(6, vec![1, 1, 1, 1]);
        opts.set(66, vec![b'a'; 100]);
        opts.set(242, vec![b'b'; 100]);
        let mut head = ReplyOptions::default();
        head.set(MESSAGE_TYPE, vec![2]);
        let mut out = Vec::new();
        let overflow = opts.write(&head, &[242, 6], &[1, 2, 0xAA, 0xBB], 1000, &mut out);
        assert_eq!(codes_in(&out), vec![53, 242, 6, 66, 82]);
        assert_eq!(overflow, Overflow::default(), "no overload when all fit");

        // 120 bytes hold the head, option 52, 242 and 6; 66 overflows into `file`.
        let mut small = Vec::new();
        let overflow = opts.write(&head, &[242, 6], &[], 120, &mut small);
        assert!(small.len() <= 120);
        assert_eq!(codes_in(&small), vec![53, 52, 242, 6]);
        assert_eq!(walk(&small).unwrap().get(OVERLOAD), Some(&[1][..]));
        assert_eq!(codes_in(&overflow.file), vec![66]);
        assert!(overflow.file.len() <= FILE_LEN && overflow.sname.is_empty());

        // Then `sname`; an option that fits nowhere is left out.
        opts.set(15, vec![b'd'; 100]);
        opts.set(66, vec![b'a'; 50]);
        opts.set(224, vec![b'e'; 200]);
        let mut small = Vec::new();
        let overflow = opts.write(&head, &[242, 6], &[], 120, &mut small);
        assert_eq!(walk(&small).unwrap().get(OVERLOAD), Some(&[3][..]));
        assert_eq!(codes_in(&overflow.file), vec![15]);
        assert_eq!(codes_in(&overflow.sname), vec![66]);
        assert!(overflow.sname.len() <= SNAME_LEN);
        let all: Vec<u8> = [small, overflow.file, overflow.sname].concat();
        assert!(!all.windows(2).any(|w| w == [224, 200]), "224 fits nowhere");
    }
}
