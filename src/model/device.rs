//! Devices and sites as stored and as the admin API shows them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Mac;

/// Whether a device may receive files that carry its secrets. A deactivated device keeps its
/// record (and its history) but is treated like a stranger for anything secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    #[default]
    Active,
    Inactive,
}

/// What the box last saw of a device: written in batches off the request path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CheckIn {
    pub last_seen: i64,
    pub peer_ip: String,
    pub user_agent: String,
    pub firmware: String,
    pub file: String,
}

/// Per-device HTTP credentials, the opt-in proof for phones that cannot present a client
/// certificate. The password is a secret: it is never shown by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpCredential {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub mac: Mac,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub serial: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Parameters whose values only the device itself may read (SIP password, admin PIN).
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub state: DeviceState,
    /// Allows `http_credential` as proof of identity instead of a client certificate.
    #[serde(default)]
    pub allow_http_auth: bool,
    #[serde(default)]
    pub http_credential: Option<HttpCredential>,
    #[serde(default)]
    pub checkin: Option<CheckIn>,
    #[serde(default)]
    pub created: i64,
    #[serde(default)]
    pub updated: i64,
}

impl Device {
    pub fn new(mac: Mac) -> Device {
        Device {
            mac,
            model: String::new(),
            serial: String::new(),
            site: String::new(),
            group: String::new(),
            label: String::new(),
            params: BTreeMap::new(),
            secrets: BTreeMap::new(),
            state: DeviceState::Active,
            allow_http_auth: false,
            http_credential: None,
            checkin: None,
            created: 0,
            updated: 0,
        }
    }
}

/// A customer site: devices are associated with one; parameters may be set for all of its
/// devices at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub name: String,
    #[serde(default)]
    pub label: String,
    /// Lets every device of the site use its HTTP credentials as proof.
    #[serde(default)]
    pub allow_http_auth: bool,
}
