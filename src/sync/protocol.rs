//! Every type that travels between the box and the cloud enrollment service, in one file so the
//! wire format can be read (and reviewed against docs/sync-protocol.md) in one place.
//!
//! Compatibility rules: unknown fields are ignored (the cloud may add them freely); a field
//! without `#[serde(default)]` is required and a message missing it is rejected whole; a
//! message whose `version` differs from [`VERSION`] is rejected.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    #[serde(default, deserialize_with = "at_most")]
    pub firmware: Vec<FirmwareRelease>,
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
