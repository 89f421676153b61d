//! The served zone as plain data: built from the configuration, the records stored through the
//! admin API and the box's own addresses, then looked up without I/O. Rebuilt whole on every
//! change (a provisioning zone holds tens of records, so a rebuild costs microseconds and no
//! reader ever sees a half-applied change).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use super::DnsConfig;
use super::record::{parse_name, txt};

/// Longest CNAME chain followed inside the zone before answering with what was found.
const MAX_CHAIN: usize = 8;

/// Resolves an owner name from the config: relative to `zone` unless it ends with a dot.
pub fn owner(text: &str, zone: &Name) -> Result<Name, String> {
    let text = text.trim();
    if text.ends_with('.') {
        return parse_name(text);
    }
    let rel = Name::from_ascii(text).map_err(|e| format!("{text:?} is not a DNS name: {e}"))?;
    rel.append_domain(zone)
        .map_err(|e| format!("{text:?} under {zone}: {e}"))
}

/// Why `rec` cannot join `present` (the records already at its name), or `None` when it can. A
/// CNAME says its name is an alias and nothing else (RFC 1034 §3.6.2): next to other data,
/// answers would depend on the type asked (A from the data, AAAA through the alias), and
/// resolvers that cached the CNAME would never see the rest.
pub fn cname_conflict(present: &[Record], rec: &Record) -> Option<String> {
    let name = &rec.name;
    let is_cname = |r: &Record| r.record_type() == RecordType::CNAME;
    if is_cname(rec) {
        let other = present
            .iter()
            .find(|r| !(is_cname(r) && r.data == rec.data))?;
        return Some(format!(
            "{name} already has a {} record; a CNAME cannot share its name with other data \
             (RFC 1034 section 3.6.2)",
            other.record_type()
        ));
    }
    present.iter().any(is_cname).then(|| {
        format!(
            "{name} is a CNAME (an alias), so it cannot also have a {} record \
             (RFC 1034 section 3.6.2)",
            rec.record_type()
        )
    })
}

/// What the discovery records say, derived once from the configuration and the bound listener
/// addresses (the real ports, even when the config says 0).
#[derive(Debug, Clone, PartialEq)]
pub struct Provisioning {
    pub origin: Name,
    pub server_name: Name,
    pub addresses: Vec<IpAddr>,
    pub host: Name,
    pub https_port: u16,
    pub http_port: Option<u16>,
    pub srv_https: Vec<Name>,
    pub srv_http: Vec<Name>,
    pub txt_name: Option<Name>,
    pub settings_url: String,
}

impl Provisioning {
    /// `pki_names` are `pki.server_names`; `https`/`http` the first bound phone listeners.
    /// Fails only on values [`DnsConfig::validate`] already refuses.
    pub fn derive(
        dns: &DnsConfig,
        pki_names: &[String],
        https: SocketAddr,
        http: Option<SocketAddr>,
    ) -> Result<Provisioning, String> {
        let origin = parse_name(&dns.domain)?;
        let server_name = if dns.server_name.is_empty() {
            pki_names
                .iter()
                .filter(|n| n.parse::<IpAddr>().is_err())
                .filter_map(|n| parse_name(n).ok())
                .find(|n| origin.zone_of(n))
                .map_or_else(|| owner("edgeprov", &origin), Ok)?
        } else {
            parse_name(&dns.server_name)?
        };
        let mut addresses = dns.addresses.clone();
        if addresses.is_empty() {
            addresses = pki_names.iter().filter_map(|n| n.parse().ok()).collect();
        }
        if addresses.is_empty() && !https.ip().is_unspecified() {
            addresses.push(https.ip());
        }
        let host = if dns.provisioning_host.is_empty() {
            server_name.clone()
        } else {
            parse_name(&dns.provisioning_host)?
        };
        let names = |list: &[String]| -> Result<Vec<Name>, String> {
            list.iter().map(|n| owner(n, &origin)).collect()
        };
        let settings_url = if dns.settings_url.is_empty() {
            let h = host.to_ascii();
            let h = h.trim_end_matches('.');
            match https.port() {
                443 => format!("https://{h}/"),
                p => format!("https://{h}:{p}/"),
            }
        } else {
            dns.settings_url.clone()
        };
        Ok(Provisioning {
            server_name,
            addresses,
            host,
            https_port: https.port(),
            http_port: http.map(|a| a.port()),
            srv_https: names(&dns.srv_https)?,
            srv_http: if http.is_some() {
                names(&dns.srv_http)?
            } else {
                Vec::new()
            },
            txt_name: (!dns.txt_name.is_empty())
                .then(|| owner(&dns.txt_name, &origin))
                .transpose()?,
            settings_url,
            origin,
        })
    }

    /// The generated records: SOA, NS, the box's addresses, SRV and TXT discovery records.
    fn records(&self, ttl: u32, negative_ttl: u32, serial: u32) -> Vec<Record> {
        let hostmaster = owner("hostmaster", &self.origin).unwrap_or_else(|_| self.origin.clone());
        let soa = SOA::new(
            self.server_name.clone(),
            hostmaster,
            serial,
            3600,
            600,
            86_400,
            negative_ttl,
        );
        let mut out = vec![
            Record::from_rdata(self.origin.clone(), ttl, RData::SOA(soa)),
            Record::from_rdata(
                self.origin.clone(),
                ttl,
                RData::NS(NS(self.server_name.clone())),
            ),
        ];
        for ip in &self.addresses {
            let data = match ip {
                IpAddr::V4(v4) => RData::A(A(*v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
            };
            out.push(Record::from_rdata(self.server_name.clone(), ttl, data));
        }
        let srv = |name: &Name, port| {
            let data = hickory_proto::rr::rdata::SRV::new(0, 0, port, self.host.clone());
            Record::from_rdata(name.clone(), ttl, RData::SRV(data))
        };
        out.extend(self.srv_https.iter().map(|n| srv(n, self.https_port)));
        if let Some(port) = self.http_port {
            out.extend(self.srv_http.iter().map(|n| srv(n, port)));
        }
        if let Some(name) = &self.txt_name {
            out.push(Record::from_rdata(
                name.clone(),
                ttl,
                RData::TXT(txt(&self.settings_url)),
            ));
        }
        out
    }
}

/// The outcome of looking a name up in the zone.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// Records for the name (and CNAME chain), with addresses of SRV/NS targets as extras.
    Answer {
        answers: Vec<Record>,
        additionals: Vec<Record>,
    },
    /// The name exists (or has names below it) but has no record of the type asked.
    NoData,
    NxDomain,
    /// Not ours: forward it.
    Elsewhere,
}

#[derive(Debug)]
pub struct Zone {
    pub provisioning: Provisioning,
    origin: LowerName,
    names: HashMap<LowerName, Vec<Record>>,
    /// Every owner name and all its ancestors inside the zone: a name in here is never
    /// NXDOMAIN (RFC 8020 empty non-terminals such as `_tcp.<domain>`).
    existing: HashSet<LowerName>,
    soa: Record,
    /// Records of `extra` left out because a CNAME would have shared a name with other data
    /// (written before that was refused, or configured beside a generated name), with why.
    pub skipped: Vec<(Record, String)>,
}

impl Zone {
    /// Builds the zone from the generated records plus `extra` (config and stored records,
    /// already validated). Records with the same owner, type and data collapse into one; an
    /// `extra` record that would put a CNAME beside other data at its name is left out (the
    /// earlier one wins: generated, then configured, then stored in order) and listed in
    /// `skipped`.
    pub fn build(
        provisioning: Provisioning,
        extra: &[Record],
        ttl: u32,
        negative_ttl: u32,
        serial: u32,
    ) -> Zone {
        let origin = LowerName::from(provisioning.origin.clone());
        let mut names: HashMap<LowerName, Vec<Record>> = HashMap::new();
        let mut existing = HashSet::new();
        let generated = provisioning.records(ttl, negative_ttl, serial);
        let soa = generated[0].clone();
        let mut skipped = Vec::new();
        let generated_count = generated.len();
        for (i, rec) in generated
            .into_iter()
            .chain(extra.iter().cloned())
            .enumerate()
        {
            let key = LowerName::from(rec.name.clone());
            if i >= generated_count
                && let Some(why) = cname_conflict(names.get(&key).map_or(&[], Vec::as_slice), &rec)
            {
                skipped.push((rec, why));
                continue;
            }
            let mut up = rec.name.clone();
            while origin.zone_of(&LowerName::from(up.clone())) {
                existing.insert(LowerName::from(up.clone()));
                if up.num_labels() == 0 {
                    break;
                }
                up = up.base_name();
            }
            let set = names.entry(key).or_default();
            if !set
                .iter()
                .any(|r| r.record_type() == rec.record_type() && r.data == rec.data)
            {
                set.push(rec);
            }
        }
        Zone {
            provisioning,
            origin,
            names,
            existing,
            soa,
            skipped,
        }
    }

    pub fn origin(&self) -> &LowerName {
        &self.origin
    }

    /// Why `rec` cannot be added next to what the zone holds at its name (generated, configured
    /// and stored records alike), or `None` when it can; see [`cname_conflict`].
    pub fn conflict(&self, rec: &Record) -> Option<String> {
        let present = self.names.get(&LowerName::from(rec.name.clone()));
        cname_conflict(present.map_or(&[], Vec::as_slice), rec)
    }

    /// The SOA for a negative answer's authority section, with the TTL negative answers may be
    /// cached for (RFC 2308: the lesser of the SOA's TTL and its MINIMUM).
    pub fn negative_soa(&self) -> Record {
        let mut soa = self.soa.clone();
        if let RData::SOA(data) = &soa.data {
            soa.ttl = soa.ttl.min(data.minimum);
        }
        soa
    }

    /// Every (name, type) the zone holds, for pre-encoding hot answers.
    pub fn keys(&self) -> impl Iterator<Item = (&LowerName, RecordType)> {
        self.names.iter().flat_map(|(name, recs)| {
            let types: HashSet<RecordType> = recs.iter().map(|r| r.record_type()).collect();
            types.into_iter().map(move |t| (name, t))
        })
    }

    pub fn lookup(&self, name: &LowerName, qtype: RecordType) -> Lookup {
        let Some(records) = self.names.get(name) else {
            if self.origin.zone_of(name) {
                return if self.existing.contains(name) {
                    Lookup::NoData
                } else {
                    Lookup::NxDomain
                };
            }
            return Lookup::Elsewhere;
        };
        let mut answers: Vec<Record> = matching(records, qtype);
        if answers.is_empty() && qtype != RecordType::CNAME {
            self.follow_cname(records, qtype, &mut answers);
        }
        if answers.is_empty() {
            return Lookup::NoData;
        }
        let additionals = self.additionals(&answers);
        Lookup::Answer {
            answers,
            additionals,
        }
    }

    fn follow_cname<'a>(
        &'a self,
        mut records: &'a [Record],
        qtype: RecordType,
        out: &mut Vec<Record>,
    ) {
        for _ in 0..MAX_CHAIN {
            let Some(cname) = records
                .iter()
                .find(|r| r.record_type() == RecordType::CNAME)
            else {
                return;
            };
            out.push(cname.clone());
            let RData::CNAME(target) = &cname.data else {
                return;
            };
            let Some(next) = self.names.get(&LowerName::from(target.0.clone())) else {
                return;
            };
            let found = matching(next, qtype);
            if !found.is_empty() {
                out.extend(found);
                return;
            }
            records = next;
        }
    }

    /// Addresses of SRV and NS targets held in the zone, so a phone needs no second query;
    /// none already in the answer section (a repeat costs bytes and tells the client nothing).
    fn additionals(&self, answers: &[Record]) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for rec in answers {
            let target = match &rec.data {
                RData::SRV(srv) => &srv.target,
                RData::NS(ns) => &ns.0,
                _ => continue,
            };
            if let Some(recs) = self.names.get(&LowerName::from(target.clone())) {
                for r in recs {
                    let addr = matches!(r.record_type(), RecordType::A | RecordType::AAAA);
                    if addr && !out.contains(r) && !answers.contains(r) {
                        out.push(r.clone());
                    }
                }
            }
        }
        out
    }
}

fn matching(records: &[Record], qtype: RecordType) -> Vec<Record> {
    records
        .iter()
        .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
        .cloned()
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::dns::record::RecordSpec;

    /// Operator records in `zone`, from (name, type, value), each with a TTL of 300.
    fn records(zone: &Name, rows: &[(&str, &str, &str)]) -> Vec<Record> {
        rows.iter()
            .map(|(n, t, v)| {
                RecordSpec {
                    name: (*n).into(),
                    rtype: (*t).into(),
                    value: (*v).into(),
                    ttl: 300,
                }
                .to_record(zone)
                .unwrap()
            })
            .collect()
    }

    pub fn sample() -> Zone {
        let dns = DnsConfig::default();
        let p = Provisioning::derive(
            &dns,
            &["prov.example.lan".into(), "10.0.0.5".into()],
            "0.0.0.0:8443".parse().unwrap(),
            Some("0.0.0.0:8080".parse().unwrap()),
        )
        .unwrap();
        let extra = records(
            &p.origin,
            &[
                ("sip.prov.example.lan", "A", "10.0.0.10"),
                ("alias.prov.example.lan", "CNAME", "sip.prov.example.lan"),
                (
                    "_sip._udp.prov.example.lan",
                    "SRV",
                    "0 0 5060 sip.prov.example.lan",
                ),
            ],
        );
        Zone::build(p, &extra, 300, 60, 1)
    }

    fn lower(s: &str) -> LowerName {
        LowerName::from(parse_name(s).unwrap())
    }

    #[test]
    fn derives_names_and_ports() {
        let z = sample();
        let p = &z.provisioning;
        assert_eq!(p.server_name.to_ascii(), "prov.example.lan.");
        assert_eq!(p.addresses, vec!["10.0.0.5".parse::<IpAddr>().unwrap()]);
        assert_eq!(p.settings_url, "https://prov.example.lan:8443/");
        assert_eq!(
            p.srv_https[0].to_ascii(),
            "_avaya-ep-config._tcp.prov.example.lan."
        );
    }

    #[test]
    fn srv_has_port_and_additional_address() {
        let z = sample();
        let Lookup::Answer {
            answers,
            additionals,
        } = z.lookup(&lower("_https._tcp.prov.example.lan"), RecordType::SRV)
        else {
            panic!("expected an answer");
        };
        let RData::SRV(srv) = &answers[0].data else {
            panic!()
        };
        assert_eq!(srv.port, 8443);
        assert_eq!(additionals.len(), 1);
        assert_eq!(additionals[0].record_type(), RecordType::A);
    }

    #[test]
    fn case_insensitive_and_negative_answers() {
        let z = sample();
        assert!(matches!(
            z.lookup(&lower("SIP.Prov.Example.LAN"), RecordType::A),
            Lookup::Answer { .. }
        ));
        assert_eq!(
            z.lookup(&lower("sip.prov.example.lan"), RecordType::AAAA),
            Lookup::NoData
        );
        assert_eq!(
            z.lookup(&lower("_tcp.prov.example.lan"), RecordType::A),
            Lookup::NoData
        );
        assert_eq!(
            z.lookup(&lower("nope.prov.example.lan"), RecordType::A),
            Lookup::NxDomain
        );
        assert_eq!(
            z.lookup(&lower("example.com"), RecordType::A),
            Lookup::Elsewhere
        );
        assert_eq!(z.negative_soa().ttl, 60);
    }

    #[test]
    fn cname_is_followed_inside_the_zone() {
        let z = sample();
        let Lookup::Answer { answers, .. } =
            z.lookup(&lower("alias.prov.example.lan"), RecordType::A)
        else {
            panic!("expected an answer");
        };
        assert_eq!(answers.len(), 2);
        assert_eq!(answers[1].record_type(), RecordType::A);
    }

    #[test]
    fn txt_carries_the_settings_url() {
        let z = sample();
        let Lookup::Answer { answers, .. } = z.lookup(
            &lower("_avaya-ep-config._tcp.prov.example.lan"),
            RecordType::TXT,
        ) else {
            panic!("expected an answer");
        };
        let RData::TXT(t) = &answers[0].data else {
            panic!()
        };
        assert_eq!(&*t.txt_data[0], b"https://prov.example.lan:8443/");
    }

    #[test]
    fn a_cname_cannot_share_its_name_either_way_round() {
        let z = sample();
        let zone = z.provisioning.origin.clone();
        let rec = |n: &str, t: &str, v: &str| {
            RecordSpec {
                name: n.into(),
                rtype: t.into(),
                value: v.into(),
                ttl: 300,
            }
            .to_record(&zone)
            .unwrap()
        };
        let e = z
            .conflict(&rec("SIP.prov.example.lan", "CNAME", "other.example.com"))
            .unwrap();
        assert!(e.contains("already has a A record"), "{e}");
        let e = z
            .conflict(&rec("alias.prov.example.lan", "AAAA", "fd00::1"))
            .unwrap();
        assert!(e.contains("is a CNAME"), "{e}");
        assert!(
            z.conflict(&rec("alias.prov.example.lan", "CNAME", "x.example.com"))
                .is_some(),
            "a second, different CNAME"
        );
        assert!(
            z.conflict(&rec(
                "_https._tcp.prov.example.lan",
                "CNAME",
                "x.example.com"
            ))
            .is_some(),
            "a generated record counts"
        );
        assert!(
            z.conflict(&rec(
                "alias.prov.example.lan",
                "CNAME",
                "sip.prov.example.lan"
            ))
            .is_none(),
            "the same CNAME again"
        );
        assert!(
            z.conflict(&rec("sip.prov.example.lan", "AAAA", "fd00::1"))
                .is_none()
        );
        assert!(
            z.conflict(&rec(
                "new.prov.example.lan",
                "CNAME",
                "sip.prov.example.lan"
            ))
            .is_none()
        );
    }

    /// Records that clash (stored before the check existed) are not served side by side.
    #[test]
    fn a_clashing_extra_record_is_left_out() {
        let base = sample();
        let extra = records(
            &base.provisioning.origin,
            &[
                ("sip.prov.example.lan", "A", "10.0.0.10"),
                ("sip.prov.example.lan", "CNAME", "other.example.com"),
                ("_https._tcp.prov.example.lan", "CNAME", "other.example.com"),
            ],
        );
        let z = Zone::build(base.provisioning.clone(), &extra, 300, 60, 1);
        assert_eq!(z.skipped.len(), 2, "{:?}", z.skipped);
        let sip = LowerName::from(Name::from_ascii("sip.prov.example.lan.").unwrap());
        assert_eq!(z.lookup(&sip, RecordType::AAAA), Lookup::NoData);
        assert!(matches!(
            z.lookup(&sip, RecordType::A),
            Lookup::Answer { .. }
        ));
    }
}
