//! `/api/v1/sites` and `/api/v1/groups`. A site is a record (label, HTTP-credential policy, the
//! cloud's profile) plus a parameter layer; a site named by devices but never created (placed
//! there by the cloud's sync, or stored before devices had to name an existing site) is listed
//! too. Operators' writes name only a site listed here (`store::site_names`). Groups have no
//! record: they are the names devices carry, listed with their counts.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit::with_change;
use super::{AdminState, ApiError, Principal, blocking, parse_json};
use crate::model::{MAX_NAME, Site};
use crate::store::DeletedSite;

#[derive(Debug, Serialize, Deserialize)]
pub struct SiteView {
    #[serde(flatten)]
    pub site: Site,
    pub devices: usize,
    /// Whether a site record exists (false: only devices name it).
    pub created: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct GroupView {
    pub name: String,
    pub devices: usize,
}

/// A site record's name, given as `field`: as long as any site a device can name
/// ([`MAX_NAME`]). An import that creates its sites holds them to it too.
pub(super) fn check_name(field: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "{field}: {:?} must be 1 to {MAX_NAME} letters, digits, '-', '_' or '.'",
            name.chars().take(MAX_NAME + 1).collect::<String>()
        )))
    }
}

async fn all_sites(st: &AdminState) -> Result<Vec<SiteView>, ApiError> {
    let store = st.store.clone();
    let (sites, devices) =
        blocking(move || Ok((store.list_sites()?, store.list_devices()?))).await?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for d in devices.iter().filter(|d| !d.site.is_empty()) {
        *counts.entry(d.site.clone()).or_default() += 1;
    }
    let mut out: BTreeMap<String, SiteView> = counts
        .iter()
        .map(|(name, n)| {
            let site = Site {
                name: name.clone(),
                ..Site::default()
            };
            let view = SiteView {
                site,
                devices: *n,
                created: false,
            };
            (name.clone(), view)
        })
        .collect();
    for site in sites {
        let devices = counts.get(&site.name).copied().unwrap_or(0);
        out.insert(
            site.name.clone(),
            SiteView {
                site,
                devices,
                created: true,
            },
        );
    }
    Ok(out.into_values().collect())
}

pub async fn list(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
) -> Result<Json<Vec<SiteView>>, ApiError> {
    let mut sites = all_sites(&st).await?;
    sites.retain(|s| who.allows(&s.site.name));
    Ok(Json(sites))
}

pub async fn get(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
) -> Result<Json<SiteView>, ApiError> {
    who.require_site(&name)?;
    all_sites(&st)
        .await?
        .into_iter()
        .find(|s| s.site.name == name)
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("site {name} not found")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSite {
    name: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    allow_http_auth: bool,
}

/// A label is free text an operator reads in tables and the CLI prints: no control characters
/// (a terminal escape in a label would run in the reader's terminal), as for a device's label.
fn check_label(label: &str) -> Result<(), ApiError> {
    crate::model::check_field(label, crate::model::MAX_TEXT)
        .map_err(|e| ApiError::BadRequest(format!("label: {e}")))
}

pub async fn create(State(st): State<AdminState>, body: Bytes) -> Result<Response, ApiError> {
    let new: NewSite = parse_json(&body)?;
    check_name("name", &new.name)?;
    check_label(&new.label)?;
    let site = Site {
        name: new.name,
        label: new.label,
        allow_http_auth: new.allow_http_auth,
        profile: None,
    };
    let store = st.store.clone();
    let stored = site.clone();
    blocking(move || store.create_site(&stored)).await?;
    let summary = format!("site {} created", site.name);
    let resp = (StatusCode::CREATED, Json(&site)).into_response();
    Ok(with_change(resp, summary, Value::Null, &site))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SitePatch {
    label: Option<String>,
    allow_http_auth: Option<bool>,
}

/// Changes a site's label or HTTP-credential policy (creating its record if only devices
/// named it).
pub async fn update(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    who.require_site(&name)?;
    check_name("name", &name)?;
    let patch: SitePatch = parse_json(&body)?;
    if let Some(label) = &patch.label {
        check_label(label)?;
    }
    let store = st.store.clone();
    let key = name.clone();
    let (before, after) = blocking(move || {
        store.update_site(&key, |site| {
            if let Some(label) = patch.label {
                site.label = label;
            }
            if let Some(allow) = patch.allow_http_auth {
                site.allow_http_auth = allow;
            }
        })
    })
    .await?;
    let resp = Json(&after).into_response();
    Ok(with_change(
        resp,
        format!("site {name} changed"),
        &before,
        &after,
    ))
}

/// Removes a site with no devices, with its parameter layer, its static files and its firmware
/// policies; when it had policies, the firmware snapshot is reloaded before the answer, as
/// after a policy change, so its pin alarms and the releases kept for them go at once.
///
/// Every token that held the site loses it in the same transaction, and the audit entry names
/// them. Refusing the deletion instead would leave the administrator to revoke each operator's
/// token and hand out a new secret for its other sites, for a site nobody uses any more; a
/// site made again later under the name is a new one, given to tokens made for it.
pub async fn delete(
    State(st): State<AdminState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let (store, fw) = (st.store.clone(), st.firmware.clone());
    let key = name.clone();
    let deleted = blocking(move || {
        let deleted = store.delete_site(&key)?;
        if deleted
            .as_ref()
            .is_some_and(|d| !d.firmware_policies.is_empty())
        {
            fw.reload()?;
        }
        Ok(deleted)
    })
    .await?;
    let Some(DeletedSite {
        site,
        firmware_policies,
        static_files,
        tokens,
    }) = deleted
    else {
        return Err(ApiError::NotFound(format!("site {name} not found")));
    };
    let mut before = serde_json::to_value(&site).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut with = Vec::new();
    if !firmware_policies.is_empty() {
        before["firmware_policies"] = serde_json::json!(firmware_policies);
        with.push("firmware policies");
    }
    if !static_files.is_empty() {
        before["static_files"] = serde_json::json!(static_files);
        with.push("static files");
    }
    let mut summary = if with.is_empty() {
        format!("site {name} deleted")
    } else {
        format!("site {name} deleted with its {}", with.join(" and "))
    };
    if !tokens.is_empty() {
        let held: Vec<String> = tokens
            .iter()
            .map(|t| format!("{} ({})", t.id, t.user))
            .collect();
        let noun = if held.len() == 1 { "token" } else { "tokens" };
        summary.push_str(&format!(
            ", and taken from the sites of {noun} {}",
            held.join(", ")
        ));
        let ids: Vec<&str> = tokens.iter().map(|t| t.id.as_str()).collect();
        before["held_by_tokens"] = serde_json::json!(ids);
    }
    Ok(with_change(
        StatusCode::NO_CONTENT.into_response(),
        summary,
        &before,
        Value::Null,
    ))
}

/// Groups in use, with their device counts (an operator counts only its sites' devices).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GroupQuery {
    /// Only this site's devices are counted.
    site: Option<String>,
}

pub async fn groups(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    axum::extract::Query(q): axum::extract::Query<GroupQuery>,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    if let Some(site) = &q.site {
        who.require_site(site)?;
    }
    let store = st.store.clone();
    let devices = blocking(move || store.list_devices()).await?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for d in devices
        .iter()
        .filter(|d| !d.group.is_empty() && who.allows(&d.site))
        .filter(|d| q.site.as_ref().is_none_or(|s| &d.site == s))
    {
        *counts.entry(d.group.clone()).or_default() += 1;
    }
    Ok(Json(
        counts
            .into_iter()
            .map(|(name, devices)| GroupView { name, devices })
            .collect(),
    ))
}
