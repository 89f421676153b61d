//! `/api/v1/dns/records`: records the DNS responder serves in addition to the generated and
//! configured ones. A change is written durably, then the served zone is rebuilt, then the API
//! answers: a record acknowledged is already being answered. A CNAME next to other data at its
//! name (either way round) is refused with 409 naming `name`, and nothing is stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::audit::with_change;
use super::{AdminState, ApiError, blocking, parse_json};
use crate::dns::{AddError, DnsZone, RecordSpec};
use crate::store::DnsRecordEntry;

pub async fn list(State(st): State<AdminState>) -> Result<Json<Vec<DnsRecordEntry>>, ApiError> {
    let store = st.store.clone();
    Ok(Json(blocking(move || store.list_dns_records()).await?))
}

/// Adds a record, audited with what it is (the entry's path alone said nothing of it).
pub async fn create(
    Extension(zone): Extension<DnsZone>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let spec: RecordSpec = parse_json(&body)?;
    let entry = tokio::task::spawn_blocking(move || zone.add(&spec, crate::model::now_unix()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            AddError::Invalid(e) => ApiError::BadRequest(e.to_string()),
            AddError::Conflict(e) => ApiError::Conflict(e.to_string()),
            AddError::Store(e) => ApiError::from(e),
        })?;
    let summary = format!(
        "DNS record {} ({} {}) added",
        entry.id, entry.name, entry.rtype
    );
    let resp = (StatusCode::CREATED, Json(&entry)).into_response();
    Ok(with_change(resp, summary, Value::Null, &entry))
}

pub async fn delete(
    State(st): State<AdminState>,
    Extension(zone): Extension<DnsZone>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("id: {id:?} is not a record number")))?;
    let store = st.store.clone();
    let old = blocking(move || {
        let old = store.delete_dns_record(id)?;
        zone.reload()?;
        Ok(old)
    })
    .await?;
    // The entry says which record it was: once it is gone, its number says nothing.
    let summary = format!("DNS record {id} ({} {}) deleted", old.name, old.rtype);
    Ok(with_change(
        StatusCode::NO_CONTENT.into_response(),
        summary,
        &old,
        Value::Null,
    ))
}
