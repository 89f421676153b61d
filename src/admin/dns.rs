//! `/api/v1/dns/records`: records the DNS responder serves in addition to the generated and
//! configured ones. A change is written durably, then the served zone is rebuilt, then the API
//! answers: a record acknowledged is already being answered. A CNAME next to other data at its
//! name (either way round) is refused with 409 naming `name`, and nothing is stored.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;

use super::{AdminState, ApiError, blocking, parse_json};
use crate::dns::{AddError, DnsZone, RecordSpec};
use crate::store::DnsRecordEntry;

pub async fn list(State(st): State<AdminState>) -> Result<Json<Vec<DnsRecordEntry>>, ApiError> {
    let store = st.store.clone();
    Ok(Json(blocking(move || store.list_dns_records()).await?))
}

pub async fn create(
    Extension(zone): Extension<DnsZone>,
    body: Bytes,
) -> Result<(StatusCode, Json<DnsRecordEntry>), ApiError> {
    let spec: RecordSpec = parse_json(&body)?;
    let entry = tokio::task::spawn_blocking(move || zone.add(&spec, crate::model::now_unix()))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            AddError::Invalid(e) => ApiError::BadRequest(e.to_string()),
            AddError::Conflict(e) => ApiError::Conflict(e.to_string()),
            AddError::Store(e) => ApiError::from(e),
        })?;
    Ok((StatusCode::CREATED, Json(entry)))
}

pub async fn delete(
    State(st): State<AdminState>,
    Extension(zone): Extension<DnsZone>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: u64 = id
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("id: {id:?} is not a record number")))?;
    let store = st.store.clone();
    blocking(move || {
        store.delete_dns_record(id)?;
        zone.reload()
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
