//! `/api/v1/preferences`: the log level, changed at once without a restart, and how long the
//! check-in history and the audit log are kept (applied at once, then hourly).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::audit::with_change;
use super::{AdminState, ApiError, blocking, parse_json};
use crate::model::{Preferences, RETENTION_DAYS, now_unix};

pub async fn get(State(st): State<AdminState>) -> Result<Json<Preferences>, ApiError> {
    let store = st.store.clone();
    Ok(Json(blocking(move || store.preferences()).await?))
}

/// A change: absent fields stay; `"log_level": null` returns to the configuration's level.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreferencesPatch {
    #[serde(default, with = "double_option")]
    log_level: Option<Option<String>>,
    checkin_retention_days: Option<u32>,
    audit_retention_days: Option<u32>,
}

/// Tells "absent" from "null" for one field.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

pub async fn update(State(st): State<AdminState>, body: Bytes) -> Result<Response, ApiError> {
    let patch: PreferencesPatch = parse_json(&body)?;
    for (field, days) in [
        ("checkin_retention_days", patch.checkin_retention_days),
        ("audit_retention_days", patch.audit_retention_days),
    ] {
        if days.is_some_and(|d| !RETENTION_DAYS.contains(&d)) {
            return Err(ApiError::BadRequest(format!(
                "{field}: must be {} to {} days",
                RETENTION_DAYS.start(),
                RETENTION_DAYS.end()
            )));
        }
    }
    // Read, changed and written in one transaction: a concurrent change to another field is
    // kept. A log filter that does not parse refuses the change and writes nothing.
    let store = st.store.clone();
    let config_level = st.config.get().log_level.clone();
    let fallback = config_level.clone();
    let (before, after) = blocking(move || {
        store.update_preferences(|p| {
            if let Some(level) = patch.log_level {
                p.log_level = level;
            }
            if let Some(d) = patch.checkin_retention_days {
                p.checkin_retention_days = d;
            }
            if let Some(d) = patch.audit_retention_days {
                p.audit_retention_days = d;
            }
            let level = p.log_level.as_deref().unwrap_or(&fallback);
            crate::logging::check_level(level)
                .map_err(|e| ApiError::BadRequest(format!("log_level: {e}")))
        })
    })
    .await??;
    if after.log_level != before.log_level
        && let Some(log) = &st.log
        && let Err(e) = log.set_level(
            after
                .log_level
                .as_deref()
                .unwrap_or(log.base(&config_level)),
        )
    {
        tracing::error!("stored log level not applied: {e}");
    }
    // The change is stored: a failed pass is retried by the hourly one, not reported as a
    // failed change.
    let store = st.store.clone();
    if let Err(e) = blocking(move || crate::retention::prune_once(&store, now_unix())).await {
        tracing::error!(error = %e, "retention pass after a preferences change failed");
    }
    tracing::info!(?after, "preferences changed");
    let resp = Json(&after).into_response();
    Ok(with_change(
        resp,
        "preferences changed".into(),
        &before,
        &after,
    ))
}
