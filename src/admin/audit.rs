//! Audit: a middleware writes an entry for every change and every refused attempt, with the
//! caller, its address and, when the handler says what changed, the before/after difference.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{AdminState, ApiError, blocking};
use crate::serve::ConnInfo;
use crate::store::AuditEntry;

/// Put into a response's extensions by a handler that changed something.
#[derive(Debug, Clone)]
pub struct Change {
    pub summary: String,
    pub before: Value,
    pub after: Value,
}

/// Only what differs, by dotted path: `{"params.SIPDOMAIN": {"before": "a", "after": "b"}}`.
pub fn diff(before: &Value, after: &Value) -> Value {
    fn walk(path: &str, b: &Value, a: &Value, out: &mut Map<String, Value>) {
        // A resource created or deleted: compare its fields against nothing.
        let empty = Value::Object(Map::new());
        let (b, a) = match (b, a) {
            (Value::Null, Value::Object(_)) => (&empty, a),
            (Value::Object(_), Value::Null) => (b, &empty),
            _ => (b, a),
        };
        match (b, a) {
            (Value::Object(bo), Value::Object(ao)) => {
                let keys: std::collections::BTreeSet<&String> =
                    bo.keys().chain(ao.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(
                        &p,
                        bo.get(k).unwrap_or(&Value::Null),
                        ao.get(k).unwrap_or(&Value::Null),
                        out,
                    );
                }
            }
            _ if b != a => {
                out.insert(path.to_string(), json!({"before": b, "after": a}));
            }
            _ => {}
        }
    }
    let mut out = Map::new();
    walk("", before, after, &mut out);
    Value::Object(out)
}

/// Fields that change on every write and say nothing to an auditor.
fn without_noise(mut v: Value) -> Value {
    if let Value::Object(o) = &mut v {
        o.remove("updated");
        o.remove("checkin");
    }
    v
}

/// What an entry says while its request runs; it stays so if the daemon stops before the
/// request ends, so no change is ever committed without an entry.
const UNFINISHED: &str = "started; the daemon stopped before it answered";

/// Audits a request. A request that may change something (any method but GET and HEAD) is
/// entered **before** it runs, then the entry is completed with its outcome: the change and
/// its entry are two commits, and a `kill -9` or power loss between them must not leave a
/// change that the log does not show. When the log cannot be written, the request is refused
/// (503) rather than run unaudited. Reads are entered only when refused.
pub async fn record(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    // The full path as the client sent it, not the part below the `/api/v1` nest.
    let resource = req
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map(|u| u.path().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let source = req
        .extensions()
        .get::<Arc<ConnInfo>>()
        .map(|c| c.peer.ip().to_string())
        .unwrap_or_default();
    let read = method == Method::GET || method == Method::HEAD;
    let entry = |who: String, status: StatusCode, summary: String, changes: Value| AuditEntry {
        seq: 0,
        time: crate::model::now_unix(),
        who,
        source: source.clone(),
        method: method.to_string(),
        resource: resource.clone(),
        status: status.as_u16(),
        summary,
        changes,
    };
    let started = match read {
        true => None,
        false => {
            let store = st.store.clone();
            let first = AuditEntry {
                status: 0,
                ..entry(
                    "unknown".into(),
                    StatusCode::OK,
                    UNFINISHED.into(),
                    Value::Null,
                )
            };
            match blocking(move || store.append_audit(first)).await {
                Ok(seq) => Some(seq),
                Err(e) => {
                    tracing::error!(error = %e, "audit log not writable: request refused");
                    return ApiError::Unavailable("the audit log cannot be written".into())
                        .into_response();
                }
            }
        }
    };
    let resp = next.run(req).await;
    let who = resp
        .extensions()
        .get::<super::auth::Who>()
        .map_or("anonymous", |w| w.0.as_str())
        .to_string();
    let status = resp.status();
    let refused = matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    );
    if read && !refused {
        return resp;
    }
    let change = resp.extensions().get::<Change>().cloned();
    let summary = change
        .as_ref()
        .map(|c| c.summary.clone())
        .unwrap_or_else(|| {
            if refused {
                "refused".into()
            } else {
                status.canonical_reason().unwrap_or("").to_lowercase()
            }
        });
    let changes = change
        .map(|c| diff(&without_noise(c.before), &without_noise(c.after)))
        .unwrap_or(Value::Null);
    let done = entry(who, status, summary, changes);
    let store = st.store.clone();
    let written = match started {
        Some(seq) => blocking(move || store.complete_audit(seq, done)).await,
        None => blocking(move || store.append_audit(done)).await.map(|_| ()),
    };
    if let Err(e) = written {
        tracing::error!(error = %e, "audit entry not completed");
    }
    resp
}

/// Attaches a change to a response for the audit middleware.
pub fn with_change(
    mut resp: Response,
    summary: String,
    before: impl serde::Serialize,
    after: impl serde::Serialize,
) -> Response {
    resp.extensions_mut().insert(Change {
        summary,
        before: serde_json::to_value(before).unwrap_or(Value::Null),
        after: serde_json::to_value(after).unwrap_or(Value::Null),
    });
    resp
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub who: Option<String>,
    pub source: Option<String>,
    pub method: Option<String>,
    /// Entries whose resource starts with this path.
    pub resource: Option<String>,
    pub status: Option<u16>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Case-insensitive search in the summary and the changes.
    pub q: Option<String>,
    pub limit: Option<usize>,
}

pub async fn list(
    State(st): State<AdminState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let store = st.store.clone();
    let limit = q.limit.unwrap_or(1000).min(100_000);
    let needle = q.q.as_deref().map(str::to_lowercase);
    let entries = blocking(move || {
        store.list_audit(limit, |e| {
            q.who.as_deref().is_none_or(|w| e.who == w)
                && q.source.as_deref().is_none_or(|s| e.source == s)
                && q.method
                    .as_deref()
                    .is_none_or(|m| e.method.eq_ignore_ascii_case(m))
                && q.resource
                    .as_deref()
                    .is_none_or(|r| e.resource.starts_with(r))
                && q.status.is_none_or(|s| e.status == s)
                && q.since.is_none_or(|t| e.time >= t)
                && q.until.is_none_or(|t| e.time <= t)
                && needle.as_deref().is_none_or(|n| {
                    e.summary.to_lowercase().contains(n)
                        || e.changes.to_string().to_lowercase().contains(n)
                })
        })
    })
    .await?;
    Ok(Json(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_keeps_only_changes() {
        let before = json!({"model": "J179", "params": {"A": "1", "B": "2"}, "secrets": ["PW"]});
        let after =
            json!({"model": "J179", "params": {"A": "1", "B": "3", "C": "4"}, "secrets": ["PW"]});
        assert_eq!(
            diff(&before, &after),
            json!({
                "params.B": {"before": "2", "after": "3"},
                "params.C": {"before": null, "after": "4"},
            })
        );
        assert_eq!(
            diff(&Value::Null, &json!({"a": 1})),
            json!({"a": {"before": null, "after": 1}})
        );
    }
}
