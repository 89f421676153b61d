//! SCEP enrolments held for approval (`scep.approval = "operator"`): list them, approve one
//! device's or every one of a site, reject one. An approval issues the certificate then, for
//! the key the phone sent, recorded and audited as an immediate grant is; the phone receives it
//! at its next poll. See docs/certificates.md.
//!
//! Approving is the administrator's (the guard refuses operators, saying why): the certificate
//! proves the device to whoever holds the request's key, and a site's operator holding the
//! challenge could send a request of its own and approve it. Listing and rejecting issue
//! nothing and stay the site's.

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::audit::with_change;
use super::{AdminState, ApiError, Principal, blocking, parse_json, parse_mac};
use crate::model::{
    AlarmKind, Device, DeviceState, KEY_DIGITS_NAMED, Mac, PendingEnrolment, PendingState, now_unix,
};
use crate::store::StoreError;

pub fn routes() -> Router<AdminState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/scep/pending", get(list))
        .route("/scep/pending/approve", post(approve_site))
        .route("/scep/pending/{mac}/approve", post(approve))
        .route("/scep/pending/{mac}/reject", post(reject))
}

/// A held request as the API shows it: what the operator decides on (device, where the
/// request came from, its key) and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingView {
    pub mac: Mac,
    /// The device's site and model in the inventory.
    pub site: String,
    pub model: String,
    /// The address the request came from.
    pub source: String,
    pub requested_at: i64,
    /// When it expires unless decided (`scep.pending_days` after the request).
    pub expires_at: i64,
    /// The key's kind and size ("RSA 2048").
    pub key: String,
    /// Hex SHA-256 of the key's SubjectPublicKeyInfo, to compare with the phone's.
    pub key_sha256: String,
    pub transaction_id: String,
    /// `pending`, `expired`, `approved` or `rejected`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<i64>,
    /// The certificate an approval issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

fn view(p: &PendingEnrolment, device: Option<&Device>, now: i64, days: u32) -> PendingView {
    let (status, decided_by, decided_at, serial) = match &p.state {
        PendingState::Pending if p.expired(now, days) => ("expired", None, None, None),
        PendingState::Pending => ("pending", None, None, None),
        PendingState::Approved { by, at, serial, .. } => (
            "approved",
            Some(by.clone()),
            Some(*at),
            Some(serial.clone()),
        ),
        PendingState::Rejected { by, at } => ("rejected", Some(by.clone()), Some(*at), None),
    };
    PendingView {
        mac: p.mac,
        site: device.map(|d| d.site.clone()).unwrap_or_default(),
        model: device.map(|d| d.model.clone()).unwrap_or_default(),
        source: p.source.clone(),
        requested_at: p.requested_at,
        expires_at: p.requested_at + i64::from(days) * 86_400,
        key: p.key.clone(),
        key_sha256: p.key_sha256.clone(),
        transaction_id: p.transaction_id.clone(),
        status: status.into(),
        decided_by,
        decided_at,
        serial,
    }
}

/// A request changed by the phone or another operator between this one's read and its write.
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Superseded(why) => ApiError::Conflict(why),
        e @ (StoreError::RevokedMeanwhile { .. } | StoreError::Conflict(_)) => {
            ApiError::Conflict(e.to_string())
        }
        e => e.into(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    site: Option<String>,
}

/// Every held request the caller may see (those of devices of its sites), in MAC order,
/// whatever its state: one still waiting, and what became of the others.
async fn list(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<PendingView>>, ApiError> {
    if let Some(site) = &q.site {
        who.require_site(site)?;
    }
    let store = st.store.clone();
    let days = st.config.get().scep.pending_days;
    let views = blocking(move || {
        // A misspelt site would list nothing, as if none of its phones waited.
        if let Some(site) = q.site.as_ref().filter(|s| !s.is_empty()) {
            store.require_sites("site", [site])?;
        }
        let now = now_unix();
        let mut out = Vec::new();
        for p in store.pending_enrolments()? {
            let device = store.get_device(p.mac)?;
            let site = device.as_ref().map(|d| d.site.as_str()).unwrap_or_default();
            if who.allows(site) && q.site.as_deref().is_none_or(|s| s == site) {
                out.push(view(&p, device.as_ref(), now, days));
            }
        }
        Ok(out)
    })
    .await?;
    Ok(Json(views))
}

/// The request of `mac` still waiting, with its device, once the caller may manage that
/// device. A request decided or expired is a conflict naming its state; none is 404.
async fn waiting(
    st: &AdminState,
    who: &Principal,
    mac: Mac,
) -> Result<(PendingEnrolment, Device), ApiError> {
    let store = st.store.clone();
    let (held, device) =
        blocking(move || Ok((store.pending_enrolment(mac)?, store.get_device(mac)?))).await?;
    let device = device.ok_or_else(|| ApiError::NotFound(format!("device {mac} not found")))?;
    who.require_device_site(mac, &device.site)?;
    let held = held
        .ok_or_else(|| ApiError::NotFound(format!("no SCEP enrolment request of {mac} is held")))?;
    let days = st.config.get().scep.pending_days;
    let v = view(&held, Some(&device), now_unix(), days);
    if v.status != "pending" {
        return Err(ApiError::Conflict(format!(
            "the SCEP enrolment request of {mac} is {}{}: nothing waits for approval",
            v.status,
            v.decided_by
                .map(|by| format!(" (by {by})"))
                .unwrap_or_default()
        )));
    }
    Ok((held, device))
}

/// Approves `held`: checks the device may still be given a first certificate, issues it for
/// the request's key, and records it with its audit entry and the approval in one
/// transaction. Answers the request as now stored.
async fn grant(
    st: &AdminState,
    who: &Principal,
    held: PendingEnrolment,
    device: Device,
) -> Result<PendingView, ApiError> {
    let mac = held.mac;
    if matches!(
        device.state,
        DeviceState::Inactive | DeviceState::Deactivated | DeviceState::Released
    ) {
        return Err(ApiError::Conflict(format!(
            "{mac} is marked inactive in the inventory: reject its request, or activate it first"
        )));
    }
    let (store, pki) = (st.store.clone(), st.pki.clone());
    let config = st.config.get();
    let (cert_days, pending_days) = (config.scep.cert_days, config.scep.pending_days);
    let user = who.user.clone();
    let approved = tokio::task::spawn_blocking(move || -> Result<PendingView, ApiError> {
        let now = now_unix();
        let has_valid = store
            .issued_certs_of(mac)
            .map_err(store_error)?
            .iter()
            .any(|c| c.revoked.is_none() && c.not_after.is_none_or(|end| end > now));
        if has_valid {
            return Err(ApiError::Conflict(format!(
                "{mac} already has a valid certificate from the box's CA: reject its request, or revoke that certificate first (edgeprov pki revoke)"
            )));
        }
        let (cert, record) = pki
            .issue_device_for_key(mac, cert_days, &held.spki)
            .map_err(|e| ApiError::Internal(format!("issuing the certificate: {e}")))?;
        let entry = crate::store::AuditEntry {
            seq: 0,
            time: now,
            who: "scep".into(),
            source: held.source.clone(),
            method: held.method.clone(),
            resource: format!("/scep/{mac}"),
            status: 200,
            summary: format!(
                "device certificate {} issued to {mac} by SCEP enrolment ({} key, approved by {user})",
                record.serial, held.key
            ),
            changes: serde_json::json!({ "certificate": { "before": null, "after": &record } }),
        };
        store
            .approve_enrolment(&held, &record, &cert, entry, &user)
            .map_err(store_error)?;
        decided(&store, &held);
        let stored = store
            .pending_enrolment(mac)
            .map_err(store_error)?
            .unwrap_or(held);
        Ok(view(&stored, Some(&device), now, pending_days))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    st.metrics
        .scep
        .granted
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(%mac, serial = ?approved.serial, by = %who.user, "SCEP enrolment approved: device certificate issued");
    let warn_days = st.config.get().pki.device_cert_warn_days;
    crate::pki::device_expiry::check(&st.store, &st.recorder, warn_days).await;
    Ok(approved)
}

/// Clears the `scep_pending` alarm of a request the operator has decided: it asked for that
/// decision, and left standing it would send the next operator to a request no longer waiting.
/// The decision is stored by then, so a failure to clear is only logged.
fn decided(store: &crate::store::Store, held: &PendingEnrolment) {
    if let Err(e) = store.clear_alarm(AlarmKind::ScepPending, &held.alarm_source()) {
        tracing::warn!(mac = %held.mac, error = %e, "scep_pending alarm not cleared");
    }
}

/// What an approval of one device's request names: the key the operator checked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveRequest {
    /// Hex SHA-256 of the request's key, as the list shows it: all 64 digits, or at least the
    /// first [`KEY_DIGITS_NAMED`].
    key_sha256: String,
}

/// The key fingerprint an approval names, in lower case; a clear error naming the field when
/// it is not 16 to 64 hex digits.
fn named_key(req: &ApproveRequest) -> Result<String, ApiError> {
    let key = req.key_sha256.trim().to_ascii_lowercase();
    if !(KEY_DIGITS_NAMED..=64).contains(&key.len()) || !key.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(ApiError::BadRequest(format!(
            "key_sha256: {:?} is not {KEY_DIGITS_NAMED} to 64 hex digits of the key's SHA-256 (as GET /scep/pending shows it)",
            req.key_sha256
        )));
    }
    Ok(key)
}

/// Approves the held request of one device, provided it is still the one the operator
/// checked: the body names its key (`{"key_sha256": …}`). A request for another key may have
/// taken its place since the list was read (a waiting one is replaced after an hour), and
/// approving by MAC alone would issue the certificate for that one, unchecked.
async fn approve(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(mac): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&mac)?;
    let (held, device) = waiting(&st, &who, mac).await?;
    let key = named_key(&parse_json(&body)?)?;
    if !held.key_sha256.starts_with(&key) {
        return Err(ApiError::Conflict(format!(
            "the SCEP enrolment request of {mac} held now is for key {} (from {}), not the key {key} named: list them again and check it before approving",
            held.key_sha256, held.source
        )));
    }
    let before = view(
        &held,
        Some(&device),
        now_unix(),
        st.config.get().scep.pending_days,
    );
    let after = grant(&st, &who, held, device).await?;
    let summary = format!(
        "SCEP enrolment of {mac} approved (key {}): certificate {} issued",
        after.key_sha256,
        after.serial.as_deref().unwrap_or_default()
    );
    Ok(with_change(
        Json(after.clone()).into_response(),
        summary,
        before,
        after,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteRequest {
    site: String,
}

/// One device's request the approval of a site could not grant, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotApproved {
    pub mac: Mac,
    pub error: String,
}

/// What approving a site's requests did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SiteApproval {
    pub approved: Vec<PendingView>,
    pub failed: Vec<NotApproved>,
}

/// Approves every request of the site's devices still waiting, each on its own: one that
/// cannot be granted (its device got a certificate meanwhile) is listed with why, and the
/// others are granted. It names no keys: it trusts whatever the site's LAN sent, and answers
/// each request it approved, with its key, for the operator to check after the fact.
async fn approve_site(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: SiteRequest = parse_json(&body)?;
    if req.site.is_empty() {
        return Err(ApiError::BadRequest("site: must not be empty".into()));
    }
    let store = st.store.clone();
    let site = req.site.clone();
    let days = st.config.get().scep.pending_days;
    let candidates = blocking(move || {
        let now = now_unix();
        let mut out = Vec::new();
        for p in store.pending_enrolments()? {
            if !p.waiting(now, days) {
                continue;
            }
            if let Some(d) = store.get_device(p.mac)?.filter(|d| d.site == site) {
                out.push((p, d));
            }
        }
        Ok(out)
    })
    .await?;
    let mut result = SiteApproval {
        approved: Vec::new(),
        failed: Vec::new(),
    };
    for (held, device) in candidates {
        let mac = held.mac;
        match grant(&st, &who, held, device).await {
            Ok(v) => result.approved.push(v),
            Err(e) => result.failed.push(NotApproved {
                mac,
                error: e.to_string(),
            }),
        }
    }
    let serials: Vec<String> = result
        .approved
        .iter()
        .map(|v| format!("{} ({})", v.mac, v.serial.as_deref().unwrap_or_default()))
        .collect();
    let summary = format!(
        "SCEP enrolments of site {} approved: {}{}",
        req.site,
        if serials.is_empty() {
            "none".to_string()
        } else {
            serials.join(", ")
        },
        if result.failed.is_empty() {
            String::new()
        } else {
            format!("; {} could not be", result.failed.len())
        }
    );
    Ok(with_change(
        Json(result.clone()).into_response(),
        summary,
        serde_json::Value::Null,
        &result,
    ))
}

/// Rejects the held request of one device: its polls are answered FAILURE from now on, and a
/// new request from it may be held at once.
async fn reject(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(mac): Path<String>,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&mac)?;
    let (held, device) = waiting(&st, &who, mac).await?;
    let days = st.config.get().scep.pending_days;
    let before = view(&held, Some(&device), now_unix(), days);
    let (store, user) = (st.store.clone(), who.user.clone());
    let rejected = tokio::task::spawn_blocking(move || {
        let rejected = store.reject_enrolment(&held, &user, now_unix())?;
        decided(&store, &held);
        Ok(rejected)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(store_error)?;
    let after = view(&rejected, Some(&device), now_unix(), days);
    tracing::warn!(%mac, source = %after.source, by = %who.user, "SCEP enrolment rejected");
    Ok(with_change(
        Json(after.clone()).into_response(),
        format!(
            "SCEP enrolment of {mac} rejected (request from {}, {} key)",
            after.source, after.key
        ),
        before,
        after,
    ))
}
