//! Every type that travels between the box and the cloud enrollment service, in one file so the
//! wire format can be read (and reviewed against docs/sync-protocol.md) in one place.
//!
//! Compatibility rules: unknown fields are ignored (the cloud may add them freely); a field
//! without `#[serde(default)]` is required and a message missing it is rejected whole (but for
//! a firmware release of a page, which is refused alone: see [`ChangesPage::firmware`]); a
//! message whose `version` differs from [`VERSION`] is rejected.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::model::CheckInProof;

/// The protocol version this box speaks; sent in every message and checked in every answer.
pub const VERSION: u32 = 1;

/// Most items of any one kind in a page; more is treated as hostile. Counted while the page is
/// read ([`at_most`]): an answer of up to 32 MiB of tiny items would otherwise be held whole
/// in memory first (about 200 MB for a million devices) and refused only then.
pub const MAX_ITEMS: usize = 10_000;

/// Paths the client calls, relative to the cloud's base URL (see docs/sync-openapi.json).
pub const PATH_REGISTER: &str = "/v1/appliances/register";
pub const PATH_CHANGES: &str = "/v1/changes";
pub const PATH_EVENTS: &str = "/v1/events";

/// `POST /v1/appliances/register`: one-time token and a CSR for the appliance key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub version: u32,
    pub token: String,
    /// PKCS#10 in PEM; the key never leaves the box.
    pub csr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub version: u32,
    /// The appliance certificate (PEM), used for mutual TLS on every later call.
    pub certificate: String,
    /// The customer site this box serves: only devices associated with it get secrets here.
    pub site: String,
    #[serde(default)]
    pub appliance_id: String,
}

/// Cloud lifecycle states, as the wire spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Imported,
    Claimed,
    Associated,
    Activated,
    Deactivated,
    Released,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceChange {
    pub mac: String,
    pub state: Lifecycle,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub phone_group: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub serial: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteChange {
    pub name: String,
    #[serde(default)]
    pub label: String,
    pub profile: SiteProfileWire,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteProfileWire {
    pub provisioning_url: String,
    #[serde(default)]
    pub phone_group: String,
    #[serde(default)]
    pub root_ca: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareRelease {
    pub model: String,
    pub version: String,
    pub url: String,
    pub sha256: String,
    /// The cloud withdrew this release (model and version): the box drops its copy. The
    /// protocol is otherwise upsert-only, and a withdrawn image must stop being offered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

/// Firmware policy per site and model: `same_as_account`, `latest`, `off` or a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwarePolicy {
    pub site: String,
    pub model: String,
    pub policy: String,
}

/// A device locked out of enrollment (three wrong codes) until `until` (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lockout {
    pub mac: String,
    pub until: i64,
}

/// `GET /v1/changes?cursor=C&limit=N`: one page of changes after `cursor`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChangesPage {
    pub version: u32,
    /// The cursor this page continues from; a page for another cursor (out of order, replayed)
    /// is rejected.
    pub cursor: String,
    /// Where the next request starts; stored with the page's changes in one transaction.
    pub next_cursor: String,
    /// More pages are ready now.
    #[serde(default)]
    pub more: bool,
    #[serde(default, deserialize_with = "at_most")]
    pub devices: Vec<DeviceChange>,
    #[serde(default, deserialize_with = "at_most")]
    pub sites: Vec<SiteChange>,
    /// Each a [`FirmwareRelease`], kept as the cloud wrote it and read one by one when the
    /// page is checked (`sync::pull`): a release that cannot be read as one (a field missing
    /// or of the wrong type) is refused alone, as one with a bad value is, instead of failing
    /// the page's read and with it every device and site of the page. The text, not a parsed
    /// JSON value: an item's unknown members are never built in memory.
    #[serde(default, deserialize_with = "at_most")]
    pub firmware: Vec<Box<RawValue>>,
    #[serde(default, deserialize_with = "at_most")]
    pub policies: Vec<FirmwarePolicy>,
    #[serde(default, deserialize_with = "at_most")]
    pub lockouts: Vec<Lockout>,
}

/// A list of at most [`MAX_ITEMS`] items, refused at the first item beyond.
fn at_most<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct Bounded<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for Bounded<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a list of at most {MAX_ITEMS} items")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                if items.len() == MAX_ITEMS {
                    return Err(de::Error::invalid_length(MAX_ITEMS + 1, &self));
                }
                items.push(item);
            }
            Ok(items)
        }
    }

    d.deserialize_seq(Bounded(PhantomData))
}

/// One event for the cloud. `id` is unique (random); the cloud drops an id it has seen, which
/// makes at-least-once delivery exactly-once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub at: i64,
    #[serde(flatten)]
    pub body: EventBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventBody {
    /// A known device fetched a file (coalesced per device: only the latest is kept).
    CheckIn {
        mac: String,
        ip: String,
        firmware: String,
        user_agent: String,
        file: String,
        /// `certificate`, `credential`, or `claim` (the MAC was only named).
        #[serde(default)]
        proof: CheckInProof,
    },
    /// A device not in the inventory asked for files: "seen, unclaimed".
    SeenUnclaimed {
        mac: String,
        ip: String,
        user_agent: String,
        file: String,
        #[serde(default)]
        proof: CheckInProof,
    },
    /// The box applied a lifecycle change pulled from the cloud.
    Enrollment {
        mac: String,
        state: String,
        site: String,
        /// Whether the device now gets its secret files from this box.
        serving_secrets: bool,
    },
    /// A phone request was refused (certificate mismatch, no proof, inactive device...).
    Refusal {
        kind: String,
        source: String,
        message: String,
    },
    Alarm {
        kind: String,
        severity: String,
        source: String,
        message: String,
    },
    /// The outbox was full and `dropped` check-ins were not kept.
    OutboxOverflow { dropped: u64 },
}

/// `POST /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    pub version: u32,
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAck {
    pub version: u32,
    /// How many of the batch's events were new to the cloud (duplicates are not counted).
    #[serde(default)]
    pub accepted: u64,
}

/// A new random event id: 128 bits as hex.
pub fn new_event_id() -> String {
    crate::phone::credentials::hex(&crate::pki::random_bytes::<16>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_ignored_missing_required_rejected() {
        let ok = r#"{"version":1,"cursor":"","next_cursor":"5","shiny":true,
            "devices":[{"mac":"001122aabbcc","state":"activated","extra":1}]}"#;
        let page: ChangesPage = serde_json::from_str(ok).unwrap();
        assert_eq!(page.devices[0].state, Lifecycle::Activated);
        let missing = r#"{"version":1,"cursor":"","devices":[]}"#;
        assert!(serde_json::from_str::<ChangesPage>(missing).is_err());
        let no_state = r#"{"version":1,"cursor":"","next_cursor":"1","devices":[{"mac":"x"}]}"#;
        assert!(serde_json::from_str::<ChangesPage>(no_state).is_err());
    }

    /// A list longer than [`MAX_ITEMS`] is refused as it is read, at the first item beyond,
    /// naming the list; a list of exactly that many is taken.
    #[test]
    fn lists_are_bounded_while_read() {
        let page = |kind: &str, n: usize, item: &str| {
            let items = vec![item; n].join(",");
            format!(r#"{{"version":1,"cursor":"","next_cursor":"c","{kind}":[{items}]}}"#)
        };
        let device = r#"{"mac":"a","state":"claimed"}"#;
        let full: ChangesPage = serde_json::from_str(&page("devices", MAX_ITEMS, device)).unwrap();
        assert_eq!(full.devices.len(), MAX_ITEMS);
        // What comes after the item beyond is never read: here, not even valid JSON.
        let mut over = page("devices", MAX_ITEMS + 1, device);
        over.truncate(over.len() - 2);
        over.push_str(",garbage");
        let mut de = serde_json::Deserializer::from_str(&over);
        let e = serde_path_to_error::deserialize::<_, ChangesPage>(&mut de).unwrap_err();
        assert_eq!(e.path().to_string(), "devices");
        assert!(
            e.inner()
                .to_string()
                .starts_with("invalid length 10001, expected a list of at most 10000 items"),
            "{e}"
        );
        let lockout = r#"{"mac":"a","until":1}"#;
        assert!(
            serde_json::from_str::<ChangesPage>(&page("lockouts", MAX_ITEMS + 1, lockout)).is_err()
        );
    }

    #[test]
    fn events_are_flat_with_a_type_tag() {
        let e = Event {
            id: "ab".into(),
            at: 5,
            body: EventBody::OutboxOverflow { dropped: 3 },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "outbox_overflow");
        assert_eq!(v["dropped"], 3);
        assert_eq!(serde_json::from_value::<Event>(v).unwrap(), e);
    }

    /// The JSON examples of docs/sync-protocol.md: each ```json block and each inline message
    /// (`{"version":1, ...}`), by the type that reads it.
    fn doc_examples() -> Vec<serde_json::Value> {
        let doc = include_str!("../../docs/sync-protocol.md");
        let blocks = doc
            .split("```json\n")
            .skip(1)
            .filter_map(|b| b.split("```").next());
        let inline = doc
            .split('`')
            .filter(|s| s.starts_with("{\"version\":1"))
            .map(|s| s.replace(":N}", ":3}"));
        blocks
            .map(str::to_string)
            .chain(inline)
            .map(|text| match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => panic!("docs/sync-protocol.md example does not parse: {e}\n{text}"),
            })
            .collect()
    }

    /// Reads `example` as a `T` and writes it back: the result must be the example, so the
    /// doc names no field the box ignores (unknown fields are ignored, not refused) and leaves
    /// out none it writes.
    fn round_trip<T: Serialize + serde::de::DeserializeOwned>(
        example: &serde_json::Value,
    ) -> serde_json::Value {
        let value: T = match serde_json::from_value(example.clone()) {
            Ok(v) => v,
            Err(e) => panic!("{example}: {e}"),
        };
        let back = serde_json::to_value(&value).unwrap();
        assert_eq!(
            &back, example,
            "the doc's example and what the box makes of it"
        );
        back
    }

    /// Every example message in docs/sync-protocol.md is one the protocol types read and write
    /// back field for field.
    #[test]
    fn the_protocol_doc_examples_round_trip() {
        let mut seen = BTreeMap::new();
        for example in doc_examples() {
            let kind = if example.get("next_cursor").is_some() {
                round_trip::<ChangesPage>(&example);
                "changes"
            } else if example.get("events").is_some() {
                round_trip::<EventBatch>(&example);
                "events"
            } else if example.get("csr").is_some() {
                round_trip::<RegisterRequest>(&example);
                "register"
            } else if example.get("certificate").is_some() {
                round_trip::<RegisterResponse>(&example);
                "registered"
            } else if example.get("accepted").is_some() {
                round_trip::<EventAck>(&example);
                "ack"
            } else {
                panic!("an example of no known message: {example}");
            };
            *seen.entry(kind).or_insert(0) += 1;
        }
        assert_eq!(
            seen.keys().copied().collect::<Vec<_>>(),
            ["ack", "changes", "events", "register", "registered"]
        );
    }

    /// One event of each type.
    fn every_event_body() -> Vec<EventBody> {
        let text = || String::from("x");
        vec![
            EventBody::CheckIn {
                mac: text(),
                ip: text(),
                firmware: text(),
                user_agent: text(),
                file: text(),
                proof: CheckInProof::default(),
            },
            EventBody::SeenUnclaimed {
                mac: text(),
                ip: text(),
                user_agent: text(),
                file: text(),
                proof: CheckInProof::default(),
            },
            EventBody::Enrollment {
                mac: text(),
                state: text(),
                site: text(),
                serving_secrets: true,
            },
            EventBody::Refusal {
                kind: text(),
                source: text(),
                message: text(),
            },
            EventBody::Alarm {
                kind: text(),
                severity: text(),
                source: text(),
                message: text(),
            },
            EventBody::OutboxOverflow { dropped: 1 },
        ]
    }

    /// The event type table of docs/sync-protocol.md names every event type with the fields
    /// the box sends for it.
    #[test]
    fn the_event_table_names_every_type_and_field() {
        let mut in_code = BTreeMap::new();
        for body in every_event_body() {
            let v = serde_json::to_value(&body).unwrap();
            let mut fields: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            fields.retain(|f| f != "type");
            fields.sort();
            in_code.insert(v["type"].as_str().unwrap().to_string(), fields);
        }
        let doc = include_str!("../../docs/sync-protocol.md");
        let table = &doc[doc.find("| type | when | fields |").unwrap()..];
        let mut documented = BTreeMap::new();
        for line in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let kind = cells[1].trim_matches('`').to_string();
            let mut fields: Vec<String> = cells[3].split(", ").map(String::from).collect();
            fields.sort();
            documented.insert(kind, fields);
        }
        assert_eq!(documented, in_code);
    }

    /// Where `schema` differs from the type `reads` stands for: its properties must be the
    /// fields of `sample` (as the type writes it), and its required ones those without which
    /// the type cannot read it.
    fn schema_differences(
        name: &str,
        schema: &serde_json::Value,
        sample: &serde_json::Value,
        reads: &dyn Fn(serde_json::Value) -> bool,
    ) -> Vec<String> {
        let mut wrong = Vec::new();
        let mut props: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
        props.sort();
        let mut fields: Vec<&String> = sample.as_object().unwrap().keys().collect();
        fields.sort();
        if props != fields {
            wrong.push(format!("{name}: schema {props:?}, type {fields:?}"));
        }
        let mut required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        required.sort_unstable();
        let needed: Vec<&str> = fields
            .iter()
            .filter(|f| {
                let mut without = sample.clone();
                without.as_object_mut().unwrap().remove(f.as_str());
                !reads(without)
            })
            .map(|f| f.as_str())
            .collect();
        if required != needed {
            wrong.push(format!(
                "{name}: schema requires {required:?}, the type {needed:?}"
            ));
        }
        wrong
    }

    fn reads<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> bool {
        serde_json::from_value::<T>(v).is_ok()
    }

    /// The schemas of docs/sync-openapi.json have the fields the types write, and call
    /// required exactly those a message cannot be read without; each event type's schema
    /// (the common `EventBase` and its own) those of its event.
    #[test]
    fn the_openapi_schemas_match_the_types() {
        let text = include_str!("../../docs/sync-openapi.json");
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        let schemas = &doc["components"]["schemas"];
        let examples = doc_examples();
        let find = |key: &str| {
            examples
                .iter()
                .find(|e| e.get(key).is_some())
                .unwrap()
                .clone()
        };
        let page = find("next_cursor");
        // The item of a list that shows the most fields: optional ones appear in one item only
        // (a withdrawn release's `removed`).
        let fullest = |list: &serde_json::Value| {
            list.as_array()
                .unwrap()
                .iter()
                .max_by_key(|item| item.as_object().map_or(0, |o| o.len()))
                .unwrap()
                .clone()
        };
        type Reads = fn(serde_json::Value) -> bool;
        let messages: [(&str, serde_json::Value, Reads); 11] = [
            ("RegisterRequest", find("csr"), reads::<RegisterRequest>),
            (
                "RegisterResponse",
                find("certificate"),
                reads::<RegisterResponse>,
            ),
            ("ChangesPage", page.clone(), reads::<ChangesPage>),
            (
                "DeviceChange",
                page["devices"][0].clone(),
                reads::<DeviceChange>,
            ),
            ("SiteChange", page["sites"][0].clone(), reads::<SiteChange>),
            (
                "SiteProfile",
                page["sites"][0]["profile"].clone(),
                reads::<SiteProfileWire>,
            ),
            (
                "FirmwareRelease",
                fullest(&page["firmware"]),
                reads::<FirmwareRelease>,
            ),
            (
                "FirmwarePolicy",
                page["policies"][0].clone(),
                reads::<FirmwarePolicy>,
            ),
            ("Lockout", page["lockouts"][0].clone(), reads::<Lockout>),
            ("EventBatch", find("events"), reads::<EventBatch>),
            ("EventAck", find("accepted"), reads::<EventAck>),
        ];
        let mut wrong = Vec::new();
        for (name, sample, reads) in messages {
            wrong.extend(schema_differences(name, &schemas[name], &sample, &reads));
        }

        let mapping = &schemas["Event"]["discriminator"]["mapping"];
        for body in every_event_body() {
            let event = serde_json::to_value(Event {
                id: "ab".into(),
                at: 1,
                body,
            })
            .unwrap();
            let kind = event["type"].as_str().unwrap();
            let Some(name) = mapping[kind].as_str().and_then(|r| r.rsplit('/').next()) else {
                wrong.push(format!("Event: no schema for type {kind}"));
                continue;
            };
            let own = &schemas[name]["allOf"][1];
            let mut merged = schemas["EventBase"].clone();
            for (key, extra) in [
                ("properties", &own["properties"]),
                ("required", &own["required"]),
            ] {
                match (&mut merged[key], extra) {
                    (serde_json::Value::Object(m), serde_json::Value::Object(e)) => {
                        m.extend(e.clone())
                    }
                    (serde_json::Value::Array(m), serde_json::Value::Array(e)) => {
                        m.extend(e.iter().cloned())
                    }
                    _ => wrong.push(format!("{name}: no {key}")),
                }
            }
            wrong.extend(schema_differences(name, &merged, &event, &reads::<Event>));
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// The OpenAPI document parses and describes every path this client calls.
    #[test]
    fn openapi_lists_every_client_path() {
        let text = include_str!("../../docs/sync-openapi.json");
        let doc: serde_json::Value = serde_json::from_str(text).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for path in [PATH_REGISTER, PATH_CHANGES, PATH_EVENTS] {
            assert!(doc["paths"].get(path).is_some(), "{path} missing");
        }
    }
}
