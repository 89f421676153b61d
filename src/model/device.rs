//! Devices and sites as stored and as the admin API shows them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Mac, model_key};

/// Whether a device may receive files that carry its secrets. A deactivated device keeps its
/// record (and its history) but is treated like a stranger for anything secret.
///
/// `active`/`inactive` are for devices managed here (created by a local administrator; they work
/// without any cloud). The other states are the cloud enrollment service's lifecycle, mirrored
/// by sync: only `activated` (and associated with this box's site) gets secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    #[default]
    Active,
    Inactive,
    Imported,
    Claimed,
    Associated,
    Activated,
    Deactivated,
    Released,
}

impl DeviceState {
    /// Every state.
    pub const ALL: [DeviceState; 8] = [
        DeviceState::Active,
        DeviceState::Inactive,
        DeviceState::Imported,
        DeviceState::Claimed,
        DeviceState::Associated,
        DeviceState::Activated,
        DeviceState::Deactivated,
        DeviceState::Released,
    ];

    /// The state's name, as the API and an inventory CSV file write it.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Active => "active",
            DeviceState::Inactive => "inactive",
            DeviceState::Imported => "imported",
            DeviceState::Claimed => "claimed",
            DeviceState::Associated => "associated",
            DeviceState::Activated => "activated",
            DeviceState::Deactivated => "deactivated",
            DeviceState::Released => "released",
        }
    }

    /// The state named `text` exactly (see [`DeviceState::as_str`]).
    pub fn parse(text: &str) -> Option<DeviceState> {
        DeviceState::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// Whether the state comes from the cloud's lifecycle (the cloud owns it, see
    /// docs/sync-protocol.md) rather than from a local administrator.
    pub fn is_cloud(self) -> bool {
        !matches!(self, DeviceState::Active | DeviceState::Inactive)
    }

    /// Whether a device in this state may receive its secret files; `associated_here` says
    /// whether its site is this box's site (only consulted for cloud-managed devices).
    pub fn may_receive_secrets(self, associated_here: bool) -> bool {
        match self {
            DeviceState::Active => true,
            DeviceState::Activated => associated_here,
            _ => false,
        }
    }
}

/// What the box last saw of a device: written in batches off the request path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CheckIn {
    pub last_seen: i64,
    pub peer_ip: String,
    pub user_agent: String,
    pub firmware: String,
    pub file: String,
    /// How the requester showed it was this device: anyone can name a MAC in a User-Agent or a
    /// path, so a check-in only claimed may be someone else's.
    #[serde(default)]
    pub proof: CheckInProof,
    /// With proof by a certificate of the box's CA: its serial, by which it can be revoked
    /// even when the box has no record of issuing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_serial: Option<String>,
}

/// How a check-in's device was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CheckInProof {
    /// Named, not proven: in the User-Agent or the path. (Also what a check-in recorded
    /// before proofs were recorded reads as.)
    #[default]
    Claim,
    /// Its client certificate.
    Certificate,
    /// Its HTTP credentials.
    Credential,
}

impl CheckInProof {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckInProof::Claim => "claim",
            CheckInProof::Certificate => "certificate",
            CheckInProof::Credential => "credential",
        }
    }
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
    /// Parameters set here; they override the cloud's (`cloud_params`) of the same name.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// Parameters the cloud sent for this device; replaced whole by every pull.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cloud_params: BTreeMap<String, String>,
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
            cloud_params: BTreeMap::new(),
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

/// Which devices a list (or a bulk job's selection) takes: every field given must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DeviceState>,
    /// Last seen before / after this Unix time (never-seen devices count as seen at 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_after: Option<i64>,
    /// Case-insensitive search over MAC, model, serial, site, group, label, parameter names and
    /// values, secret names, and the last check-in (IP, firmware, User-Agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

impl DeviceFilter {
    /// Whether no field is given (the filter takes every device).
    pub fn is_empty(&self) -> bool {
        *self == DeviceFilter::default()
    }

    pub fn matches(&self, d: &Device) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        // A model is one model however it is spelled (`SIP-T54W`, `T54W`, `t54w`), as for its
        // parameter layer and firmware; the exact spelling is tried first to spare the
        // allocation on the common path.
        let same_model = self
            .model
            .as_deref()
            .is_none_or(|w| w == d.model || model_key(w) == model_key(&d.model));
        if !(eq(&self.site, &d.site) && eq(&self.group, &d.group) && same_model) {
            return false;
        }
        let seen = d.checkin.as_ref().map_or(0, |c| c.last_seen);
        if self.state.is_some_and(|s| s != d.state)
            || self.seen_before.is_some_and(|t| seen >= t)
            || self.seen_after.is_some_and(|t| seen <= t)
        {
            return false;
        }
        let Some(needle) = self.q.as_deref().map(str::to_lowercase) else {
            return true;
        };
        // Without allocating per device: a listing searches 100,000 of them.
        let mut hex = [0u8; 12];
        for (i, o) in d.mac.octets().iter().enumerate() {
            hex[2 * i] = b"0123456789abcdef"[usize::from(o >> 4)];
            hex[2 * i + 1] = b"0123456789abcdef"[usize::from(o & 15)];
        }
        let mac = std::str::from_utf8(&hex).unwrap_or_default();
        let c = d.checkin.as_ref();
        [mac, &d.model, &d.serial, &d.site, &d.group, &d.label]
            .into_iter()
            .chain(c.map(|c| c.peer_ip.as_str()))
            .chain(c.map(|c| c.firmware.as_str()))
            .chain(c.map(|c| c.user_agent.as_str()))
            .chain(d.params.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]))
            .chain(d.secrets.keys().map(String::as_str))
            .any(|field| contains_folded(field, &needle))
    }
}

/// Whether `hay` contains `needle` (already lower-case), ignoring case.
fn contains_folded(hay: &str, needle: &str) -> bool {
    if needle.is_ascii() {
        let n = needle.as_bytes();
        n.is_empty()
            || hay
                .as_bytes()
                .windows(n.len())
                .any(|w| w.eq_ignore_ascii_case(n))
    } else {
        hay.to_lowercase().contains(needle)
    }
}

/// A customer site: devices are associated with one; parameters may be set for all of its
/// devices at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Site {
    pub name: String,
    #[serde(default)]
    pub label: String,
    /// Lets every device of the site use its HTTP credentials as proof.
    #[serde(default)]
    pub allow_http_auth: bool,
    /// The cloud's provisioning profile for the site, when the site comes from the cloud.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<SiteProfile>,
}

/// What the cloud's enrollment service tells new phones of a site (its redirect answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SiteProfile {
    pub provisioning_url: String,
    #[serde(default)]
    pub phone_group: String,
    /// PEM of the root CA the phones are told to trust.
    #[serde(default)]
    pub root_ca: String,
}

/// A device as the cloud describes it, already validated (see `sync::pull`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudDevice {
    pub mac: Mac,
    pub state: DeviceState,
    pub site: String,
    pub group: String,
    pub model: String,
    pub serial: String,
    pub params: BTreeMap<String, String>,
}

impl Device {
    /// Applies the cloud's view of a device. The cloud owns lifecycle state, site, group, model,
    /// serial and its own parameters; everything else (label, local parameters, secrets, HTTP
    /// credentials, check-in) stays as the local administrator and the phone left it, except
    /// that a move to another site drops the device's HTTP credential and its permission to use
    /// one: an operator of the old site may have set it, and it would otherwise go on opening
    /// the device's file, secrets of the new site included, to someone who holds no right there
    /// (the cloud is not bound by operators' sites). Certificates prove the device itself and
    /// are unaffected; an administrator of the new site sets a credential again if the phone
    /// needs one.
    pub fn apply_cloud(existing: Option<Device>, cloud: &CloudDevice) -> Device {
        let mut d = existing.unwrap_or_else(|| Device::new(cloud.mac));
        d.state = cloud.state;
        if d.site != cloud.site {
            d.http_credential = None;
            d.allow_http_auth = false;
        }
        d.site.clone_from(&cloud.site);
        d.group.clone_from(&cloud.group);
        if !cloud.model.is_empty() {
            d.model.clone_from(&cloud.model);
        }
        if !cloud.serial.is_empty() {
            d.serial.clone_from(&cloud.serial);
        }
        d.cloud_params.clone_from(&cloud.params);
        d
    }

    /// The device's own parameter layer: the cloud's parameters overridden by local ones.
    pub fn effective_params(&self) -> BTreeMap<String, String> {
        let mut out = self.cloud_params.clone();
        out.extend(self.params.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud(site: &str) -> CloudDevice {
        CloudDevice {
            mac: Mac::from_octets([2, 0, 0, 0, 0, 1]),
            state: DeviceState::Active,
            site: site.into(),
            group: String::new(),
            model: "J179".into(),
            serial: String::new(),
            params: BTreeMap::new(),
        }
    }

    /// An operator of `branch` set a credential while the cloud had the device there; when the
    /// cloud moved it back to `hq`, the credential still opened its file, `hq`'s SIP password
    /// included, to that operator.
    #[test]
    fn a_move_by_the_cloud_drops_the_http_credential() {
        let mut d = Device::apply_cloud(None, &cloud("branch"));
        d.allow_http_auth = true;
        d.http_credential = Some(HttpCredential {
            username: "u".into(),
            password: "p".into(),
        });
        d.secrets.insert("SIP_PASSWORD".into(), "hq-pw".into());
        let same = Device::apply_cloud(Some(d.clone()), &cloud("branch"));
        assert!(same.allow_http_auth && same.http_credential.is_some());
        let moved = Device::apply_cloud(Some(d), &cloud("hq"));
        assert_eq!(moved.site, "hq");
        assert!(!moved.allow_http_auth && moved.http_credential.is_none());
        assert_eq!(
            moved.secrets["SIP_PASSWORD"], "hq-pw",
            "the device's own secrets stay"
        );
    }

    /// A CSV file names states as the API does: each name reads back to its state.
    #[test]
    fn state_names_are_the_api_names() {
        for state in DeviceState::ALL {
            let json = serde_json::to_value(state).unwrap();
            assert_eq!(json, state.as_str());
            assert_eq!(DeviceState::parse(state.as_str()), Some(state));
        }
        assert_eq!(DeviceState::parse("Active"), None);
        assert_eq!(DeviceState::parse(""), None);
    }
}
