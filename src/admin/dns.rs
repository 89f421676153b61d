//! `/api/v1/dns/records`: records the DNS responder serves in addition to the generated and
//! configured ones. A change is written durably, then the served zone is rebuilt, then the API
//! answers: a record acknowledged is already being answered.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;

use super::{AdminState, ApiError, blocking, parse_json};
use crate::dns::{DnsZone, RecordSpec};
use crate::store::DnsRecordEntry;

pub async fn list(State(st): State<AdminState>) -> Result<Json<Vec<DnsRecordEntry>>, ApiError> {
    let store = st.store.clone();
    Ok(Json(blocking(move || store.list_dns_records()).await?))
}

pub async fn create(
    State(st): State<AdminState>,
    Extension(zone): Extension<DnsZone>,
    body: Bytes,
) -> Result<(StatusCode, Json<DnsRecordEntry>), ApiError> {
    let spec: RecordSpec = parse_json(&body)?;
    spec.to_record(zone.origin())
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let store = st.store.clone();
    let entry = blocking(move || {
        let entry = store.add_dns_record(&spec, crate::model::now_unix())?;
        zone.reload()?;
        Ok(entry)
    })
    .await?;
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
