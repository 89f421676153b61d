//! Certificates: the CA, the server certificate phones get (generated or installed), the admin
//! certificate and the trusted device roots, with expiry; regenerate, install an identity (PEM
//! or PKCS#12), add or remove roots. Every change applies to new connections at once, without a
//! restart, and re-runs the expiry check. See docs/certificates.md.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::{AdminState, ApiError, audit, parse_json};
use crate::pki::{CertError, CertInfo, LiveCerts, ServerIdentity};

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/certs", get(overview))
        .route("/certs/server", put(install))
        .route("/certs/server/regenerate", post(regenerate))
        .route("/certs/roots", get(list_roots).post(add_roots))
        .route(
            "/certs/roots/{fingerprint}",
            axum::routing::delete(remove_root),
        )
}

impl From<CertError> for ApiError {
    fn from(e: CertError) -> Self {
        match e {
            CertError::Identity(e) => ApiError::BadRequest(e.to_string()),
            CertError::Root(e) => ApiError::BadRequest(e.to_string()),
            CertError::NotFound(m) => ApiError::NotFound(m),
            CertError::Refused(m) => ApiError::Conflict(m),
            CertError::Pki(e) => {
                tracing::error!(error = %e, "certificate change failed");
                ApiError::Internal(e.to_string())
            }
        }
    }
}

/// Runs certificate work (key generation, file writes, PKCS#12 key derivation) off the runtime.
async fn off_runtime<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CertError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::from)
}

/// After a change: the expiry alarms follow the certificates now in use.
async fn recheck(st: &AdminState, certs: &LiveCerts) {
    crate::pki::expiry::check(certs, &st.store, &st.recorder).await;
}

/// A certificate in an audit entry: what identifies it, never key material.
fn audited(c: &CertInfo) -> serde_json::Value {
    serde_json::json!({
        "subject": c.subject,
        "serial": c.serial,
        "not_after": c.not_after,
        "sha256": c.sha256,
    })
}

async fn overview(
    Extension(certs): Extension<Arc<LiveCerts>>,
) -> Result<Json<crate::pki::CertOverview>, ApiError> {
    Ok(Json(off_runtime(move || Ok(certs.overview()?)).await?))
}

async fn regenerate(
    State(st): State<AdminState>,
    Extension(certs): Extension<Arc<LiveCerts>>,
) -> Result<Response, ApiError> {
    change_server(
        &st,
        &certs,
        |live| live.regenerate(),
        |cert| {
            format!(
                "server certificate regenerated: serial {}, expires {}",
                cert.serial,
                crate::cli::time_text(cert.not_after)
            )
        },
    )
    .await
}

/// `{"pem": "<chain and key>"}` or `{"pkcs12": "<base64>", "password": "..."}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InstallBody {
    pem: Option<String>,
    pkcs12: Option<String>,
    password: Option<String>,
}

async fn install(
    State(st): State<AdminState>,
    Extension(certs): Extension<Arc<LiveCerts>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: InstallBody = parse_json(&body)?;
    let now = crate::model::now_unix();
    let identity = match (body.pem, body.pkcs12, body.password) {
        (Some(pem), None, None) => {
            off_runtime(move || Ok(ServerIdentity::from_pem(&pem, now)?)).await?
        }
        (None, Some(p12), password) => {
            off_runtime(move || {
                Ok(ServerIdentity::from_pkcs12_base64(
                    &p12,
                    password.as_deref().unwrap_or(""),
                    now,
                )?)
            })
            .await?
        }
        (Some(_), None, Some(_)) => {
            return Err(ApiError::BadRequest(
                "password: only for pkcs12 (an encrypted PEM key is not supported)".into(),
            ));
        }
        _ => {
            return Err(ApiError::BadRequest(
                "request body: give either pem, or pkcs12 (base64) with its password".into(),
            ));
        }
    };
    change_server(
        &st,
        &certs,
        move |live| live.install(&identity),
        |cert| {
            format!(
                "server identity installed: {} (serial {}), expires {}",
                cert.subject,
                cert.serial,
                crate::cli::time_text(cert.not_after)
            )
        },
    )
    .await
}

/// Applies a change of the server certificate, re-checks the expiry alarms, and answers with
/// the new overview, audited with the certificate before and after (never key material).
async fn change_server(
    st: &AdminState,
    certs: &Arc<LiveCerts>,
    change: impl FnOnce(&LiveCerts) -> Result<crate::pki::CertOverview, CertError> + Send + 'static,
    summary: impl FnOnce(&CertInfo) -> String,
) -> Result<Response, ApiError> {
    let live = certs.clone();
    let before = off_runtime(move || Ok(live.overview()?)).await?;
    let live = certs.clone();
    let after = off_runtime(move || change(&live)).await?;
    recheck(st, certs).await;
    let summary = summary(&after.server.cert);
    let (b, a) = (audited(&before.server.cert), audited(&after.server.cert));
    Ok(audit::with_change(
        Json(after).into_response(),
        summary,
        b,
        a,
    ))
}

async fn list_roots(
    Extension(certs): Extension<Arc<LiveCerts>>,
) -> Result<Json<Vec<crate::pki::RootInfo>>, ApiError> {
    Ok(Json(
        off_runtime(move || Ok(certs.overview()?.roots)).await?,
    ))
}

/// `{"pem": "<one or more CA certificates>"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RootBody {
    pem: String,
}

async fn add_roots(
    State(st): State<AdminState>,
    Extension(certs): Extension<Arc<LiveCerts>>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: RootBody = parse_json(&body)?;
    let now = crate::model::now_unix();
    let offered = off_runtime(move || Ok(crate::pki::roots::parse_new(&body.pem, now)?)).await?;
    let live = certs.clone();
    let added = off_runtime(move || live.add_roots(&offered)).await?;
    recheck(&st, &certs).await;
    let summary = format!(
        "trusted device root added: {}",
        added
            .iter()
            .map(|r| format!("{} ({})", r.cert.subject, r.cert.sha256))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let after: Vec<_> = added.iter().map(|r| audited(&r.cert)).collect();
    let resp = (StatusCode::CREATED, Json(added)).into_response();
    Ok(audit::with_change(
        resp,
        summary,
        serde_json::Value::Null,
        after,
    ))
}

async fn remove_root(
    State(st): State<AdminState>,
    Extension(certs): Extension<Arc<LiveCerts>>,
    Path(fingerprint): Path<String>,
) -> Result<Response, ApiError> {
    let fp = crate::pki::normalise_fingerprint(&fingerprint).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "fingerprint: {fingerprint:?} is not a SHA-256 fingerprint (64 hex digits)"
        ))
    })?;
    let live = certs.clone();
    let removed = off_runtime(move || live.remove_root(&fp)).await?;
    recheck(&st, &certs).await;
    let summary = format!(
        "trusted device root removed: {} ({})",
        removed.cert.subject, removed.cert.sha256
    );
    Ok(audit::with_change(
        StatusCode::NO_CONTENT.into_response(),
        summary,
        audited(&removed.cert),
        serde_json::Value::Null,
    ))
}
