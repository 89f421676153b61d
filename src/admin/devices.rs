//! `/api/v1/devices`: the inventory. Secret values are write-only: the API shows which secrets
//! a device has, never their values.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::audit::{changes, secret_values, with_change, with_changes, with_secret_changes};
use super::{AdminState, ApiError, Principal, blocking, parse_json, parse_mac};
use crate::model::{CheckIn, Device, DeviceFilter, DeviceState, HttpCredential, MAX_TEXT, Mac};

/// A device as the API shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceView {
    pub mac: Mac,
    pub model: String,
    pub serial: String,
    pub site: String,
    pub group: String,
    pub label: String,
    /// The device's parameters but those whose name makes them secrets (docs/parameters.md:
    /// `admin.password`, `SIP_PASSWORD`, … set as plain parameters): those are in `secrets`,
    /// by name only. Masking their values here instead would make a JSON export, imported
    /// again, set each such parameter to the mask.
    pub params: BTreeMap<String, String>,
    /// Parameters from the cloud (local `params` of the same name win). The cloud has no
    /// channel for secrets of its own, so it sends a SIP password as a parameter: a value whose
    /// name says it is a secret is shown masked, as the effective view and the preview show it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cloud_params: BTreeMap<String, String>,
    /// Names of the secret parameters set on the device, and of its parameters whose name
    /// makes them secrets.
    pub secrets: Vec<String>,
    pub state: DeviceState,
    pub allow_http_auth: bool,
    /// The HTTP credential's user name, if one is set (the password is never shown).
    pub http_username: Option<String>,
    pub checkin: Option<CheckIn>,
    pub created: i64,
    pub updated: i64,
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> Self {
        let (params, secrets) = super::secret_named::split(d.params, d.secrets.into_keys());
        DeviceView {
            mac: d.mac,
            model: d.model,
            serial: d.serial,
            site: d.site,
            group: d.group,
            label: d.label,
            params,
            cloud_params: d
                .cloud_params
                .into_iter()
                .map(|(name, value)| {
                    let value = if crate::settings::vocab::is_secret_param(&name, &value) {
                        crate::settings::layered::SECRET_MASK.to_string()
                    } else {
                        value
                    };
                    (name, value)
                })
                .collect(),
            secrets,
            state: d.state,
            allow_http_auth: d.allow_http_auth,
            http_username: d.http_credential.map(|c| c.username),
            checkin: d.checkin,
            created: d.created,
            updated: d.updated,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
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
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub state: DeviceState,
    #[serde(default)]
    pub allow_http_auth: bool,
    #[serde(default)]
    pub http_credential: Option<HttpCredential>,
}

/// A partial update: absent fields are kept; in `params` and `secrets` a `null` removes a name.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DevicePatch {
    pub model: Option<String>,
    pub serial: Option<String>,
    pub site: Option<String>,
    pub group: Option<String>,
    pub label: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub secrets: BTreeMap<String, Option<String>>,
    pub state: Option<DeviceState>,
    pub allow_http_auth: Option<bool>,
    /// `null` removes the credential; giving one is the administrator's
    /// ([`Principal::require_admin_for_credential`]).
    #[serde(default, with = "double_option")]
    pub http_credential: Option<Option<HttpCredential>>,
}

/// Tells an absent field (keep) from an explicit `null` (remove).
mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn check_text(field: &str, value: &str) -> Result<(), ApiError> {
    if value.len() > MAX_TEXT || value.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "{field}: at most {MAX_TEXT} characters, no control characters"
        )));
    }
    Ok(())
}

/// Checks one of a device's text fields. Model, site and group name parameter layers, so they
/// take the layers' rule ([`crate::model::check_name`]); serial and label are free text.
pub(super) fn check_field(field: &str, value: &str) -> Result<(), ApiError> {
    match field {
        "model" | "site" | "group" => crate::model::check_name(value),
        _ => crate::model::check_field(value, MAX_TEXT),
    }
    .map_err(|e| ApiError::BadRequest(format!("{field}: {e}")))
}

fn check_params<'a>(
    field: &str,
    entries: impl Iterator<Item = (&'a String, Option<&'a String>)>,
) -> Result<(), ApiError> {
    for (name, value) in entries {
        check_device_param(field, name, value.map(String::as_str))?;
    }
    Ok(())
}

/// [`super::settings::check_param`] for a device's own parameter, which also refuses a name
/// that can reach no phone from a device ([`vocab::check_device_name`]). Removing one
/// (`value` `None`) is allowed, so what an earlier version stored can be cleared.
pub(super) fn check_device_param(
    field: &str,
    name: &str,
    value: Option<&str>,
) -> Result<(), ApiError> {
    super::settings::check_param(field, name, value)?;
    match value {
        Some(_) => crate::settings::vocab::check_device_name(name)
            .map_err(|e| ApiError::BadRequest(format!("{field}: {e}"))),
        None => Ok(()),
    }
}

/// Refuses to put a device managed here (`from`: its state now, `None` for a new device) in a
/// state of the cloud's enrollment lifecycle. Only the cloud's sync gives a device such a
/// state (docs/sync-protocol.md), and jobs leave a device in one to the cloud: a device put in
/// one by hand was out of reach of every activate and deactivate job, on a box with no cloud
/// to change it. A device the cloud's lifecycle holds may be set as before (the next pull
/// that names it replaces the state).
fn check_state_change(from: Option<DeviceState>, to: DeviceState) -> Result<(), ApiError> {
    if !to.is_cloud() || from.is_some_and(DeviceState::is_cloud) {
        return Ok(());
    }
    Err(ApiError::BadRequest(format!(
        "state: {:?} is a state of the cloud enrollment service's lifecycle, which only its sync \
         gives a device; a device managed here is \"active\" or \"inactive\"",
        to.as_str()
    )))
}

fn check_credential(c: &HttpCredential) -> Result<(), ApiError> {
    if c.username.is_empty() || c.username.contains(':') || c.password.is_empty() {
        return Err(ApiError::BadRequest(
            "http_credential: username (without ':') and password must not be empty".into(),
        ));
    }
    check_text("http_credential.username", &c.username)?;
    check_text("http_credential.password", &c.password)
}

impl NewDevice {
    /// A device of nothing but its MAC, as an import row starts one.
    pub(super) fn with_mac(mac: Mac) -> NewDevice {
        NewDevice {
            mac,
            model: String::new(),
            serial: String::new(),
            site: String::new(),
            group: String::new(),
            label: String::new(),
            params: BTreeMap::new(),
            secrets: BTreeMap::new(),
            state: DeviceState::default(),
            allow_http_auth: false,
            http_credential: None,
        }
    }

    pub(super) fn validate(&self) -> Result<(), ApiError> {
        for (field, v) in [
            ("model", &self.model),
            ("serial", &self.serial),
            ("site", &self.site),
            ("group", &self.group),
            ("label", &self.label),
        ] {
            check_field(field, v)?;
        }
        check_params("params", self.params.iter().map(|(k, v)| (k, Some(v))))?;
        check_params("secrets", self.secrets.iter().map(|(k, v)| (k, Some(v))))?;
        self.http_credential
            .as_ref()
            .map(check_credential)
            .transpose()?;
        Ok(())
    }

    pub(super) fn into_device(self) -> Device {
        let mut d = Device::new(self.mac);
        d.model = self.model;
        d.serial = self.serial;
        d.site = self.site;
        d.group = self.group;
        d.label = self.label;
        d.params = self.params;
        d.secrets = self.secrets;
        d.state = self.state;
        d.allow_http_auth = self.allow_http_auth;
        d.http_credential = self.http_credential;
        d
    }
}

impl DevicePatch {
    fn validate(&self) -> Result<(), ApiError> {
        for (field, v) in [
            ("model", &self.model),
            ("serial", &self.serial),
            ("site", &self.site),
            ("group", &self.group),
            ("label", &self.label),
        ] {
            if let Some(v) = v {
                check_field(field, v)?;
            }
        }
        check_params("params", self.params.iter().map(|(k, v)| (k, v.as_ref())))?;
        check_params("secrets", self.secrets.iter().map(|(k, v)| (k, v.as_ref())))?;
        if let Some(Some(c)) = &self.http_credential {
            check_credential(c)?;
        }
        Ok(())
    }

    pub(super) fn apply(self, d: &mut Device) {
        let set = |target: &mut String, v: Option<String>| {
            if let Some(v) = v {
                *target = v;
            }
        };
        set(&mut d.model, self.model);
        set(&mut d.serial, self.serial);
        set(&mut d.site, self.site);
        set(&mut d.group, self.group);
        set(&mut d.label, self.label);
        for (map, changes) in [(&mut d.params, self.params), (&mut d.secrets, self.secrets)] {
            for (name, value) in changes {
                match value {
                    Some(v) => map.insert(name, v),
                    None => map.remove(&name),
                };
            }
        }
        if let Some(s) = self.state {
            d.state = s;
        }
        if let Some(a) = self.allow_http_auth {
            d.allow_http_auth = a;
        }
        if let Some(c) = self.http_credential {
            d.http_credential = c;
        }
    }
}

/// `GET /devices` filters, search, sort and paging.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub site: Option<String>,
    pub group: Option<String>,
    pub model: Option<String>,
    pub state: Option<DeviceState>,
    /// Last seen before / after this Unix time (never-seen devices count as seen at 0).
    pub seen_before: Option<i64>,
    pub seen_after: Option<i64>,
    /// Case-insensitive search over MAC, model, serial, site, group, label, parameter names and
    /// values, and the last check-in (IP, firmware, User-Agent).
    pub q: Option<String>,
    /// `mac` (default), `model`, `site`, `group`, `label`, `last_seen`, `created`, `updated`.
    pub sort: Option<String>,
    /// `asc` (default) or `desc`.
    pub order: Option<String>,
    #[serde(default)]
    pub offset: usize,
    pub limit: Option<usize>,
}

fn seen(d: &Device) -> i64 {
    d.checkin.as_ref().map_or(0, |c| c.last_seen)
}

impl ListQuery {
    /// The filter part of the query (bulk jobs select devices with the same filter).
    pub fn filter(&self) -> DeviceFilter {
        DeviceFilter {
            site: self.site.clone(),
            group: self.group.clone(),
            model: self.model.clone(),
            state: self.state,
            seen_before: self.seen_before,
            seen_after: self.seen_after,
            q: self.q.clone(),
        }
    }
}

/// The fields `GET /devices` sorts by, as a refusal of another lists them.
const SORT_FIELDS: &str = "mac, model, site, group, label, last_seen, created, updated";

/// Filters (the query's, and `keep`: the caller's sites), sorts and pages; returns the page
/// and the number of matches. Works on references so that only the page is copied.
pub fn select(
    devices: &[Device],
    q: &ListQuery,
    keep: impl Fn(&Device) -> bool,
) -> Result<(Vec<Device>, usize), ApiError> {
    let filter = q.filter();
    let mut found: Vec<&Device> = devices
        .iter()
        .filter(|d| keep(d) && filter.matches(d))
        .collect();
    let key = q.sort.as_deref().unwrap_or("mac");
    match key {
        "mac" => {}
        "model" => found.sort_by(|a, b| a.model.cmp(&b.model)),
        "site" => found.sort_by(|a, b| a.site.cmp(&b.site)),
        "group" => found.sort_by(|a, b| a.group.cmp(&b.group)),
        "label" => found.sort_by(|a, b| a.label.cmp(&b.label)),
        "last_seen" => found.sort_by_key(|d| seen(d)),
        "created" => found.sort_by_key(|d| d.created),
        "updated" => found.sort_by_key(|d| d.updated),
        other => {
            return Err(ApiError::BadRequest(format!(
                "sort: {other:?} is not one of {SORT_FIELDS}"
            )));
        }
    }
    match q.order.as_deref() {
        None | Some("asc") => {}
        Some("desc") => found.reverse(),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "order: {other:?} is not asc or desc"
            )));
        }
    }
    let (page, total) = super::paging::window(found.into_iter(), q.offset, q.limit);
    Ok((page.into_iter().cloned().collect(), total))
}

/// The inventory, filtered; the total number of matches is in `X-Total-Count`.
pub async fn list(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<([(&'static str, String); 1], Json<Vec<DeviceView>>), ApiError> {
    if let Some(site) = &q.site {
        who.require_site(site)?;
    }
    let store = st.store.clone();
    let devices = blocking(move || store.devices_snapshot()).await?;
    let (page, total) = select(&devices, &q, |d| who.allows(&d.site))?;
    Ok((
        super::paging::total_count(total),
        Json(page.into_iter().map(DeviceView::from).collect()),
    ))
}

pub async fn create(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let new: NewDevice = parse_json(&body)?;
    new.validate()?;
    check_state_change(None, new.state)?;
    who.require_site(&new.site)?;
    if new.http_credential.is_some() {
        who.require_admin_for_credential("http_credential")?;
    }
    let store = st.store.clone();
    let mac = new.mac;
    // A device that exists is changed, not added again: say how, since `device add` run twice
    // (to set a secret a moved inventory lacks, say) is the natural first try.
    let device = blocking(move || store.create_device(new.into_device()))
        .await
        .map_err(|e| match e {
            ApiError::Conflict(why) => ApiError::Conflict(format!(
                "{why}; change it with `edgeprov device set {mac} …` (PATCH /api/v1/devices/{mac})"
            )),
            other => other,
        })?;
    tracing::info!(mac = %device.mac, "device added");
    let view = DeviceView::from(device);
    let summary = format!("device {} added", view.mac);
    let resp = (StatusCode::CREATED, Json(&view)).into_response();
    Ok(with_change(resp, summary, Value::Null, &view))
}

pub async fn get(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(mac): Path<String>,
) -> Result<Json<DeviceView>, ApiError> {
    let mac = parse_mac(&mac)?;
    Ok(Json(scoped(&st, &who, mac).await?.into()))
}

/// The device, if the caller may see its site: 404 when there is none, 403 when it belongs to a
/// site the caller does not have.
pub async fn scoped(st: &AdminState, who: &Principal, mac: Mac) -> Result<Device, ApiError> {
    let store = st.store.clone();
    let device = blocking(move || store.get_device(mac))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("device {mac} not found")))?;
    who.require_device_site(mac, &device.site)?;
    Ok(device)
}

pub async fn update(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(mac): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&mac)?;
    let patch: DevicePatch = parse_json(&body)?;
    patch.validate()?;
    if matches!(patch.http_credential, Some(Some(_))) {
        who.require_admin_for_credential("http_credential")?;
    }
    let removals = (patch.params.clone(), patch.secrets.clone());
    let store = st.store.clone();
    let (before, device) = blocking(move || {
        let mut before = None;
        store
            .update_device(mac, |d| {
                // Both where the device is and where the change would put it must be the
                // caller's; a refusal leaves the device as it was.
                who.require_device_site(mac, &d.site)?;
                if let Some(to) = patch.state {
                    check_state_change(Some(d.state), to)?;
                }
                before = Some(d.clone());
                patch.apply(d);
                who.require_site(&d.site)
            })
            .map(|r| r.map(|d| (before, d)))
    })
    .await??;
    let not_set = before.as_ref().map_or_else(Vec::new, |b| {
        super::settings::not_set(&removals.0, &removals.1, &b.params, &b.secrets)
    });
    let changes = device_changes(before.as_ref(), Some(&device));
    let unchanged = changes.as_object().is_some_and(serde_json::Map::is_empty);
    let summary = match (unchanged, not_set.is_empty()) {
        (false, _) => format!("device {mac} changed"),
        (true, true) => format!("device {mac} unchanged"),
        (true, false) => format!(
            "device {mac} unchanged: not set on it: {}",
            not_set.join(", ")
        ),
    };
    let resp = Json(PatchedDevice {
        device: DeviceView::from(device),
        not_set,
    })
    .into_response();
    Ok(with_changes(resp, summary, changes))
}

/// A `PATCH`'s answer: the device, and the names it asked to remove (`null`) that the device
/// did not have, so `device set --unset` of a misspelt name is said, not taken as done.
#[derive(Debug, Serialize)]
struct PatchedDevice {
    #[serde(flatten)]
    device: DeviceView,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    not_set: Vec<String>,
}

/// What an audit entry says changed on a device: the difference of its views, and the
/// secrets and HTTP password whose value changed, masked (a view shows no secret value, so a
/// new password alone left an empty difference).
pub fn device_changes(before: Option<&Device>, after: Option<&Device>) -> Value {
    let view = |d: Option<&Device>| {
        d.map_or(Value::Null, |d| {
            serde_json::to_value(DeviceView::from(d.clone())).unwrap_or_default()
        })
    };
    let diff = changes(view(before), view(after));
    let (Some(b), Some(a)) = (before, after) else {
        return diff;
    };
    let password = match (&b.http_credential, &a.http_credential) {
        (Some(old), Some(new)) => Some((
            "http_credential.password".to_string(),
            old.password != new.password,
        )),
        _ => None,
    };
    // The view leaves out the values of parameters named as secrets: their changes, masked.
    let (params_before, params_after) = (
        super::secret_named::values(&b.params),
        super::secret_named::values(&a.params),
    );
    with_secret_changes(
        diff,
        secret_values("secrets", &b.secrets, &a.secrets)
            .chain(secret_values("params", &params_before, &params_after))
            .chain(password),
    )
}

pub async fn delete(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(mac): Path<String>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&mac)?;
    scoped(&st, &who, mac).await?;
    let store = st.store.clone();
    match blocking(move || store.delete_device(mac)).await? {
        Some(old) => {
            tracing::info!(%mac, "device removed");
            let resp = StatusCode::NO_CONTENT.into_response();
            Ok(with_change(
                resp,
                format!("device {mac} removed"),
                DeviceView::from(old),
                Value::Null,
            ))
        }
        None => Err(ApiError::NotFound(format!("device {mac} not found"))),
    }
}

/// The most check-ins one request lists (see `paging`).
const MAX_CHECKINS: usize = 10_000;

/// `?limit=N` (default 100, at most [`MAX_CHECKINS`]: more is refused).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    limit: Option<usize>,
}

/// A device's check-in history, newest first.
pub async fn checkins(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(mac): Path<String>,
    Query(q): Query<HistoryQuery>,
) -> Result<Json<Vec<CheckIn>>, ApiError> {
    let mac = parse_mac(&mac)?;
    scoped(&st, &who, mac).await?;
    st.recorder.flush().await;
    let store = st.store.clone();
    let limit = super::paging::limit(
        q.limit,
        100,
        MAX_CHECKINS,
        "ask for at most that many (the newest come first)",
    )?;
    Ok(Json(blocking(move || store.checkins_of(mac, limit)).await?))
}

#[cfg(test)]
mod view_tests {
    use super::*;

    /// An operator of the device's site read the cloud's SIP password in clear in the device
    /// view and listing, while the effective view masked it.
    #[test]
    fn cloud_parameters_that_are_secrets_are_masked() {
        let mut d = Device::new(Mac::from_octets([2, 0, 0, 0, 0, 1]));
        d.cloud_params = BTreeMap::from([
            ("SIP_PASSWORD".to_string(), "cloud-secret-1".to_string()),
            ("voicemail.pin".into(), "4711".into()),
            ("SIPDOMAIN".into(), "example.com".into()),
        ]);
        let view = serde_json::to_string(&DeviceView::from(d)).unwrap();
        assert!(
            !view.contains("cloud-secret-1") && !view.contains("4711"),
            "{view}"
        );
        assert!(view.contains(r#""SIP_PASSWORD":"********""#), "{view}");
        assert!(view.contains(r#""SIPDOMAIN":"example.com""#), "{view}");
    }
}

#[cfg(test)]
mod secret_named_params {
    use super::*;

    /// A plain parameter named as a secret (`SIP_PASSWORD`) showed its value in the device view
    /// and, through it, in the audit entry of every change: the view lists its name with the
    /// secrets, and the audit entry says it changed, masked.
    #[test]
    fn are_listed_by_name_and_audited_masked() {
        let mut before = Device::new(Mac::from_octets([2, 0, 0, 0, 0, 1]));
        before.params = BTreeMap::from([
            ("SIP_PASSWORD".to_string(), "old-secret".to_string()),
            ("SIPDOMAIN".into(), "example.com".into()),
        ]);
        let mut after = before.clone();
        after
            .params
            .insert("SIP_PASSWORD".into(), "new-secret".into());
        let view = DeviceView::from(after.clone());
        assert_eq!(view.secrets, ["SIP_PASSWORD"]);
        assert_eq!(view.params.keys().collect::<Vec<_>>(), ["SIPDOMAIN"]);
        let audited = device_changes(Some(&before), Some(&after)).to_string();
        assert!(
            !audited.contains("old-secret") && !audited.contains("new-secret"),
            "{audited}"
        );
        assert!(audited.contains("params.SIP_PASSWORD"), "{audited}");
    }
}

#[cfg(test)]
mod list_tests {
    use super::*;

    fn device(i: u8, site: &str, model: &str, seen: i64) -> Device {
        let mut d = Device::new(Mac::from_octets([2, 0, 0, 0, 0, i]));
        d.site = site.into();
        d.model = model.into();
        d.label = format!("desk {i}");
        if seen > 0 {
            d.checkin = Some(CheckIn {
                last_seen: seen,
                firmware: "4.1.3".into(),
                ..Default::default()
            });
        }
        d
    }

    /// Builds a query the way axum's `Query` extractor does, from `a=b&c=d`.
    fn q(text: &str) -> ListQuery {
        let uri: axum::http::Uri = format!("/x?{text}").parse().unwrap();
        Query::<ListQuery>::try_from_uri(&uri).unwrap().0
    }

    #[test]
    fn filter_search_sort_page() {
        let all = vec![
            device(1, "hq", "J179", 100),
            device(2, "hq", "T46S", 300),
            device(3, "branch", "J179", 0),
            device(4, "hq", "J179", 200),
        ];
        let macs = |r: (Vec<Device>, usize)| {
            (
                r.0.iter().map(|d| d.mac.octets()[5]).collect::<Vec<_>>(),
                r.1,
            )
        };
        assert_eq!(
            macs(select(&all, &q("site=hq&model=J179"), |_| true).unwrap()),
            (vec![1, 4], 2)
        );
        assert_eq!(
            macs(select(&all, &q("sort=last_seen&order=desc"), |_| true).unwrap()),
            (vec![2, 4, 1, 3], 4)
        );
        assert_eq!(
            macs(select(&all, &q("seen_after=150"), |_| true).unwrap()),
            (vec![2, 4], 2)
        );
        assert_eq!(
            macs(select(&all, &q("seen_before=150"), |_| true).unwrap()),
            (vec![1, 3], 2)
        );
        assert_eq!(
            macs(select(&all, &q("q=DESK%203"), |_| true).unwrap()),
            (vec![3], 1)
        );
        assert_eq!(
            macs(select(&all, &q("q=020000000002"), |_| true).unwrap()),
            (vec![2], 1)
        );
        assert_eq!(
            macs(select(&all, &q("offset=1&limit=2"), |_| true).unwrap()),
            (vec![2, 3], 4)
        );
        assert!(select(&all, &q("sort=colour"), |_| true).is_err());
    }
}
