//! API errors as JSON `{"error": "..."}` with the status that says whose fault it is.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::model::Mac;
use crate::store::StoreError;

/// A MAC from a path or query, or 400 naming the `mac` field and what is wrong with it.
pub fn parse_mac(text: &str) -> Result<Mac, ApiError> {
    Mac::parse(text).map_err(|e| ApiError::BadRequest(format!("mac: {e}")))
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// A stored token presented after its expiry (its secret matched).
    #[error("token {id} expired at {}; ask an administrator for a new one", time_text(*.at))]
    TokenExpired { id: String, at: i64 },
    #[error("{0}")]
    Forbidden(String),
    #[error("too many wrong tokens from this address: try again in {0} s")]
    TooManyFailures(i64),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The body is bigger than what may hold it (an upload beyond the firmware cache).
    #[error("{0}")]
    TooLarge(String),
    /// Something the request needs is not available now (the audit log cannot be written).
    #[error("{0}")]
    Unavailable(String),
    /// The store is being opened again after a write failed on I/O and will be back in a
    /// moment: 503 with `Retry-After: 1`, so that a client retries instead of reporting a fault.
    #[error("{0}")]
    Reopening(String),
    /// The store's file system is full: 507, so that a client tells it from a fault of ours.
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Internal(String),
}

/// A Unix time as RFC 3339 UTC, or the number itself when out of range.
fn time_text(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Conflict(what) => ApiError::Conflict(format!("{what} already exists")),
            StoreError::InUse(why) => ApiError::Conflict(why),
            e @ (StoreError::CaseClash { .. } | StoreError::SameModel { .. }) => {
                ApiError::Conflict(e.to_string())
            }
            e @ (StoreError::NoPinnedRelease { .. } | StoreError::UnknownSite { .. }) => {
                ApiError::BadRequest(e.to_string())
            }
            e if e.is_transient() => {
                tracing::warn!(error = %e, "admin API request met the store while it reopens");
                ApiError::Reopening(format!(
                    "{e}: the database is being opened again after a write to it failed, so \
                     nothing was changed; try again in a second"
                ))
            }
            e if e.is_disk_full() => {
                tracing::error!(error = %e, "admin API write refused: the data directory is full");
                ApiError::InsufficientStorage(format!(
                    "{e}: the file system of the data directory is full, so nothing was \
                     changed; free space there and try again"
                ))
            }
            other => {
                tracing::error!(error = %other, "store error in admin API");
                ApiError::Internal(other.to_string())
            }
        }
    }
}

/// The `WWW-Authenticate` challenge of a 401 for an expired token (RFC 6750's `invalid_token`
/// with a description): what the CLI reads to say "give a new one" instead of listing the
/// causes of a wrong token, none of which is true of an expired one.
pub const EXPIRED_CHALLENGE: &str =
    "Bearer realm=\"edgeprov\", error=\"invalid_token\", error_description=\"the token expired\"";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let expired = matches!(self, ApiError::TokenExpired { .. });
        let status = match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::TokenExpired { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::TooManyFailures(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) | ApiError::Reopening(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let retry_after = match self {
            ApiError::TooManyFailures(secs) => Some(secs),
            ApiError::Reopening(_) => Some(1),
            _ => None,
        };
        let message = self.to_string();
        let mut resp = (status, Json(serde_json::json!({ "error": message }))).into_response();
        resp.extensions_mut()
            .insert(super::audit::Refusal(message.into()));
        if status == StatusCode::UNAUTHORIZED {
            let challenge = match expired {
                true => EXPIRED_CHALLENGE,
                false => "Bearer realm=\"edgeprov\"",
            };
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static(challenge),
            );
        }
        if let Some(secs) = retry_after {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request that used the store's handle just before a write on it failed meets redb's
    /// "Previous I/O error occurred": the store is being opened again, so 503 with
    /// `Retry-After`, not a 500 that tells the client the box is at fault for good.
    #[test]
    fn a_use_of_the_failed_handle_is_503_with_retry_after() {
        let resp = ApiError::from(StoreError::Db(redb::Error::PreviousIo)).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[axum::http::header::RETRY_AFTER], "1");
    }

    /// A store that cannot be opened again for another reason (the file was found damaged)
    /// stays an internal error: retrying will not help.
    #[test]
    fn an_open_again_that_fails_for_good_stays_500() {
        let e = StoreError::Unwritable {
            path: "/x".into(),
            message: "damaged".into(),
            disk_full: false,
            held: false,
        };
        assert_eq!(
            ApiError::from(e).into_response().status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
