//! Device certificates: issue one for an inventory device (softphones, tests, simulators), list
//! those the box issued to a device, and revoke them. A revocation applies from the next
//! handshake on and is listed in `/ca.crl`; see docs/certificates.md.
//!
//! Issuing is the administrator's (the guard refuses operators, saying why): the answer holds
//! the private key, and whoever holds it is served everything the device is, secrets included,
//! until the certificate expires. Listing and revoking give out nothing and stay the site's.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Deserialize;

use super::audit::with_change;
use super::{AdminState, ApiError, Principal, blocking, parse_json, parse_mac};
use crate::model::{IssuedCert, Mac, RevocationReason};
use crate::store::RevokeWhich;

pub fn routes() -> Router<AdminState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/devices/{mac}/certificate", post(issue))
        .route("/devices/{mac}/certificates", get(list))
        .route("/devices/{mac}/certificates/revoke", post(revoke))
}

/// Whether the caller may manage `mac`'s certificates: those of a device of one of its sites;
/// an administrator's also once the device is gone from the inventory (its certificate still
/// passes the handshake until it expires or is revoked).
async fn scope(st: &AdminState, who: &Principal, mac: Mac) -> Result<(), ApiError> {
    let store = st.store.clone();
    match blocking(move || store.get_device(mac)).await? {
        Some(device) => who.require_device_site(mac, &device.site),
        None if who.is_admin() => Ok(()),
        None => Err(ApiError::NotFound(format!("device {mac} not found"))),
    }
}

/// After an issue or a revocation: the device certificate expiry alarm follows (a device given
/// a new certificate no longer counts; a revoked one never does).
async fn device_expiry(st: &AdminState) {
    let warn_days = st.config.get().pki.device_cert_warn_days;
    crate::pki::device_expiry::check(&st.store, &st.recorder, warn_days).await;
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    days: Option<u32>,
}

/// Issues a client certificate for an inventory device, and records it so it can be revoked.
/// Only an administrator reaches it; [`super::devices::scoped`] finds the device (404 without).
async fn issue(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(mac): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&mac)?;
    let req: IssueRequest = if body.is_empty() {
        IssueRequest::default()
    } else {
        parse_json(&body)?
    };
    let days = req.days.unwrap_or(3650);
    if !(1..=3650).contains(&days) {
        return Err(ApiError::BadRequest("days: must be 1 to 3650".into()));
    }
    super::devices::scoped(&st, &who, mac).await?;
    let pki = st.pki.clone();
    let (identity, record) = tokio::task::spawn_blocking(move || pki.issue_device(mac, days))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let store = st.store.clone();
    let kept = record.clone();
    blocking(move || store.record_issued_cert(&kept)).await?;
    tracing::info!(%mac, days, serial = %record.serial, "device certificate issued");
    device_expiry(&st).await;
    let summary = format!("device certificate {} issued to {mac}", record.serial);
    Ok(with_change(
        (StatusCode::CREATED, Json(identity)).into_response(),
        summary,
        serde_json::Value::Null,
        record,
    ))
}

/// The certificates the box issued to the device, newest first.
async fn list(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(mac): Path<String>,
) -> Result<Json<Vec<IssuedCert>>, ApiError> {
    let mac = parse_mac(&mac)?;
    scope(&st, &who, mac).await?;
    let store = st.store.clone();
    Ok(Json(blocking(move || store.issued_certs_of(mac)).await?))
}

/// Which certificate to revoke: exactly one of `serial`, `all` or `pem`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeRequest {
    /// A certificate the box issued to the device, or one of its CA the device presented (its
    /// check-ins record the serial), by serial (hex, any case, colons allowed).
    serial: Option<String>,
    /// Every certificate the box issued to the device, and every other of its CA's naming the
    /// device issued before now, recorded or not.
    #[serde(default)]
    all: bool,
    /// A certificate of the box's CA for the device that the box has no record of (issued
    /// before issuance was recorded), given whole.
    pem: Option<String>,
    #[serde(default)]
    reason: RevocationReason,
}

/// A serial as a number in lower-case hex, without separators, in whole bytes and without
/// leading zero bytes: tools print it with or without the sign byte (`openssl x509 -serial`
/// drops it) and as an integer without a leading zero digit; the store finds it either way.
fn normalise_serial(text: &str) -> Result<String, ApiError> {
    let mut hex: String = text
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.is_empty() || hex.len() > 42 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ApiError::BadRequest(format!(
            "serial: {text:?} is not a certificate serial (hex digits)"
        )));
    }
    if hex.len() % 2 == 1 {
        hex.insert(0, '0');
    }
    while hex.len() > 2 && hex.starts_with("00") {
        hex.drain(..2);
    }
    Ok(hex)
}

/// Revokes device certificates; answers with them as now recorded (a certificate already
/// revoked keeps its first revocation).
async fn revoke(
    State(st): State<AdminState>,
    Extension(who): Extension<Principal>,
    Path(mac): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mac = parse_mac(&mac)?;
    let req: RevokeRequest = parse_json(&body)?;
    let which = match (req.serial, req.all, req.pem) {
        (Some(serial), false, None) => RevokeWhich::Serial(normalise_serial(&serial)?),
        (None, true, None) => RevokeWhich::All,
        (None, false, Some(pem)) => {
            let pki = st.pki.clone();
            let cert = tokio::task::spawn_blocking(move || pki.own_device_cert(&pem, mac))
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map_err(|e| ApiError::BadRequest(format!("pem: {e}")))?;
            RevokeWhich::Cert(cert)
        }
        _ => {
            return Err(ApiError::BadRequest(
                "request body: give exactly one of serial, all (true) or pem".into(),
            ));
        }
    };
    let all = matches!(which, RevokeWhich::All);
    scope(&st, &who, mac).await?;
    // A serial may be known only from the device's check-ins: those queued count too.
    st.recorder.flush().await;
    let (store, reason) = (st.store.clone(), req.reason);
    let revocations = st.pki.revocations().clone();
    let now = crate::model::now_unix();
    // One blocking task for the commit and the refresh: it runs to its end even when the
    // client goes away meanwhile, so a stored revocation is never left unenforced.
    let revoked = blocking(move || {
        let revoked = store.revoke_certs(mac, which, reason, now)?;
        revocations.refresh(|| store.revoked_certs())?;
        Ok(revoked)
    })
    .await?;
    device_expiry(&st).await;
    let serials: Vec<&str> = revoked.iter().map(|c| c.serial.as_str()).collect();
    tracing::warn!(%mac, serials = ?serials, %reason, all, "device certificates revoked");
    let summary = match all {
        true => format!(
            "every device certificate of {mac} issued until now revoked ({reason}); on record: {}",
            if serials.is_empty() {
                "none".into()
            } else {
                serials.join(", ")
            }
        ),
        false => format!(
            "device certificate{} {} of {mac} revoked ({reason})",
            if serials.len() == 1 { "" } else { "s" },
            serials.join(", ")
        ),
    };
    Ok(with_change(
        Json(revoked.clone()).into_response(),
        summary,
        serde_json::Value::Null,
        revoked,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_in_every_spelling_become_one() {
        for (given, want) in [
            ("3F:1A:00", "3f1a00"),
            ("003f1a00", "3f1a00"),
            ("0080ff", "80ff"),
            ("80FF", "80ff"),
            ("a", "0a"),
            ("00", "00"),
        ] {
            assert_eq!(normalise_serial(given).unwrap(), want, "{given}");
        }
        for bad in ["", "xyz", "12 34", &"0".repeat(43)] {
            assert!(normalise_serial(bad).is_err(), "{bad:?}");
        }
    }
}
