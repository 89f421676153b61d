//! `/api/v1/sync`: cloud sync status, registration, and "sync now".

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::Extension;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, parse_json};
use crate::sync::{SyncError, SyncHandle, SyncStatus};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    pub url: String,
    pub token: String,
}

fn api_error(e: SyncError) -> ApiError {
    match e {
        SyncError::NotConfigured | SyncError::Url(_) => ApiError::BadRequest(e.to_string()),
        SyncError::Store(s) => s.into(),
        // The cloud refused or could not be reached: the caller's to fix or retry.
        other => ApiError::BadRequest(format!("registration failed: {other}")),
    }
}

pub async fn status(
    Extension(sync): Extension<Arc<SyncHandle>>,
) -> Result<Json<SyncStatus>, ApiError> {
    sync.status()
        .await
        .map(Json)
        .map_err(|e| ApiError::Internal(e.to_string()))
}

pub async fn register(
    Extension(sync): Extension<Arc<SyncHandle>>,
    body: Bytes,
) -> Result<(StatusCode, Json<SyncStatus>), ApiError> {
    let req: RegisterBody = parse_json(&body)?;
    let status = sync
        .register(&req.url, &req.token)
        .await
        .map_err(api_error)?;
    Ok((StatusCode::CREATED, Json(status)))
}

pub async fn now(Extension(sync): Extension<Arc<SyncHandle>>) -> StatusCode {
    sync.wake();
    StatusCode::ACCEPTED
}
