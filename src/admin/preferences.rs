//! `/api/v1/preferences`: the log level, changed at once without a restart, and how long the
//! check-in history and the audit log are kept (applied at once, then hourly).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::audit::with_change;
use super::{AdminState, ApiError, blocking, parse_json};
use crate::model::{Preferences, RETENTION_DAYS};

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
    let store = st.store.clone();
    let before = blocking(move || store.preferences()).await?;
    let mut after = before.clone();
    if let Some(level) = patch.log_level {
        after.log_level = level;
    }
    if let Some(d) = patch.checkin_retention_days {
        after.checkin_retention_days = d;
    }
    if let Some(d) = patch.audit_retention_days {
        after.audit_retention_days = d;
    }
    // The level is tried first: a filter that does not parse changes nothing.
    if after.log_level != before.log_level
        && let Some(log) = &st.log
    {
        let level = after.log_level.as_deref().unwrap_or(&st.config.log_level);
        log.set_level(level)
            .map_err(|e| ApiError::BadRequest(format!("log_level: {e}")))?;
    }
    let store = st.store.clone();
    let stored = after.clone();
    blocking(move || {
        store.put_preferences(&stored)?;
        crate::retention::prune_once(&store, crate::model::now_unix())
    })
    .await?;
    tracing::info!(?after, "preferences changed");
    let resp = Json(&after).into_response();
    Ok(with_change(
        resp,
        "preferences changed".into(),
        &before,
        &after,
    ))
}
