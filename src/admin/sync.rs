//! `/api/v1/sync`: cloud sync status, registration, and "sync now".

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Query};
use axum::http::StatusCode;
use serde::Deserialize;

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::audit::with_change;
use super::{ApiError, parse_json};
use crate::store::DeadLetters;
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

/// Registers the box with the cloud, audited with the cloud and site before and after (never
/// the enrollment token): the entry's path alone did not say which cloud the box now obeys.
pub async fn register(
    Extension(sync): Extension<Arc<SyncHandle>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RegisterBody = parse_json(&body)?;
    let before = sync.status().await.map(|s| registration(&s)).ok();
    let status = sync
        .register(&req.url, &req.token)
        .await
        .map_err(api_error)?;
    let after = registration(&status);
    let summary = format!(
        "registered with the cloud at {} for site {}",
        status.url, status.site
    );
    let resp = (StatusCode::CREATED, Json(status)).into_response();
    Ok(with_change(resp, summary, before, after))
}

/// What an audit entry says of a registration.
fn registration(s: &SyncStatus) -> Value {
    json!({"registered": s.registered, "url": s.url, "site": s.site})
}

pub async fn now(Extension(sync): Extension<Arc<SyncHandle>>) -> StatusCode {
    sync.wake();
    StatusCode::ACCEPTED
}

/// `?limit=N` (default 100, at most 10,000: more is refused) for `GET /sync/rejected`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectedQuery {
    limit: Option<usize>,
}

/// The events the cloud refused, oldest first, with how many are kept and were dropped.
pub async fn rejected(
    Extension(sync): Extension<Arc<SyncHandle>>,
    Query(q): Query<RejectedQuery>,
) -> Result<Json<DeadLetters>, ApiError> {
    let limit = super::paging::limit(
        q.limit,
        100,
        10_000,
        "requeue them (POST /sync/rejected/requeue) or ask for fewer",
    )?;
    let store = sync.store.clone();
    Ok(Json(
        tokio::task::spawn_blocking(move || store.dead_letters(limit))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??,
    ))
}

/// Puts the events the cloud refused back in the outbox (once the cloud takes them again),
/// clears `sync_event_rejected`, and wakes the sync task; audited with how many.
pub async fn requeue(Extension(sync): Extension<Arc<SyncHandle>>) -> Result<Response, ApiError> {
    let store = sync.store.clone();
    let requeued = tokio::task::spawn_blocking(move || store.requeue_dead_letters())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    sync.wake();
    let summary = format!("{requeued} events the cloud refused put back in the outbox");
    Ok(with_change(
        Json(json!({ "requeued": requeued })).into_response(),
        summary,
        json!({ "rejected": requeued }),
        json!({ "rejected": 0 }),
    ))
}
