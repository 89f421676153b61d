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
    /// What the entry's `changes` say: a [`diff`], or what a handler that changes many things
    /// at once made of it (an import).
    pub changes: Value,
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

/// What changed from `before` to `after` (a resource's JSON, `null` for none), as an entry
/// says it: the [`diff`] without the fields that change on every write.
pub fn changes(before: Value, after: Value) -> Value {
    diff(&without_noise(before), &without_noise(after))
}

/// Adds to `changes` (a [`changes`] result) the secrets whose value changed under the same
/// name, masked: views list a secret's name only, so a new SIP password or HTTP password left
/// an empty difference and the log did not show that a secret was changed at all.
pub fn with_secret_changes(
    mut changes: Value,
    changed: impl IntoIterator<Item = (String, bool)>,
) -> Value {
    if let Value::Object(o) = &mut changes {
        for (path, differs) in changed {
            if differs {
                let mask = crate::settings::layered::SECRET_MASK;
                o.insert(path, json!({"before": mask, "after": mask}));
            }
        }
    }
    changes
}

/// The names (as `{field}.{name}`) of the secrets set both before and after, each with
/// whether its value differs.
pub fn secret_values<'a>(
    field: &'a str,
    before: &'a std::collections::BTreeMap<String, String>,
    after: &'a std::collections::BTreeMap<String, String>,
) -> impl Iterator<Item = (String, bool)> + 'a {
    before.iter().filter_map(move |(name, old)| {
        let new = after.get(name)?;
        Some((format!("{field}.{name}"), old != new))
    })
}

/// Fields that change on every write and say nothing to an auditor.
fn without_noise(mut v: Value) -> Value {
    if let Value::Object(o) = &mut v {
        o.remove("updated");
        o.remove("checkin");
    }
    v
}

/// What an entry says while its request runs; it stays so only if the daemon stops before the
/// request ends (the request runs to its end even when its client goes away).
const UNFINISHED: &str = "started; the daemon stopped before it answered";

/// Put on a response whose entry [`intent`] has written.
#[derive(Debug, Clone, Copy)]
struct Audited;

/// Put on an error answer with the message it gave the client, so that the entry of a refused
/// request says why, as the client was told: "bad request" alone left an auditor guessing
/// which field of a refused import or change was wrong. Messages name fields, lines and files,
/// not values (secrets are write-only).
#[derive(Debug, Clone)]
pub struct Refusal(pub Arc<str>);

/// The longest refusal message an entry keeps.
const MAX_REFUSAL: usize = 300;

/// Put by the guard on a refusal that repeats one already entered (a 429 after the first of
/// its address's window): an address held off must not cost a durable write per request.
#[derive(Debug, Clone, Copy)]
pub struct Repeated;

/// The longest request path an entry keeps: a path is the client's to choose, and the log keeps
/// every entry for a year.
const MAX_RESOURCE: usize = 512;

/// What identifies a request in its entry.
struct Asked {
    method: Method,
    resource: String,
    source: String,
}

impl Asked {
    fn of(req: &Request) -> Asked {
        Asked {
            method: req.method().clone(),
            // The full path as the client sent it, not the part below the `/api/v1` nest.
            resource: cut(
                req.extensions()
                    .get::<axum::extract::OriginalUri>()
                    .map_or_else(|| req.uri().path(), |u| u.path()),
                MAX_RESOURCE,
            ),
            source: req
                .extensions()
                .get::<Arc<ConnInfo>>()
                .map(|c| c.peer.ip().to_string())
                .unwrap_or_default(),
        }
    }

    fn is_read(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }

    fn entry(&self, who: String, status: u16, summary: String, changes: Value) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time: crate::model::now_unix(),
            who,
            source: self.source.clone(),
            method: self.method.to_string(),
            resource: self.resource.clone(),
            status,
            summary,
            changes,
        }
    }

    /// The entry for a request of `who` (else the one the guard names on `resp`) that ended
    /// with `resp`.
    fn finished(&self, resp: &Response, who: Option<String>) -> AuditEntry {
        let who = who.unwrap_or_else(|| {
            resp.extensions()
                .get::<super::auth::Who>()
                .map_or("anonymous", |w| w.0.as_str())
                .to_string()
        });
        let status = resp.status();
        let change = resp.extensions().get::<Change>().cloned();
        let summary = change
            .as_ref()
            .map(|c| c.summary.clone())
            .unwrap_or_else(|| {
                let outcome = match refused(status) {
                    true => "refused".into(),
                    false => status.canonical_reason().unwrap_or("").to_lowercase(),
                };
                match resp.extensions().get::<Refusal>() {
                    Some(why) if status.is_client_error() || status.is_server_error() => {
                        format!("{outcome}: {}", cut(&why.0, MAX_REFUSAL))
                    }
                    _ => outcome,
                }
            });
        let changes = change.map(|c| c.changes).unwrap_or(Value::Null);
        self.entry(who, status.as_u16(), summary, changes)
    }
}

/// `text` cut to `max` bytes at a character boundary, marked with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn refused(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::TOO_MANY_REQUESTS
    )
}

/// The outer audit layer, around the guard: enters what the guard refused (reads included),
/// after the fact, since nothing was changed, and a read whose handler says what it gave out
/// (a backup, holding every secret and the CA key). What passed the guard [`intent`] enters.
pub async fn record(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    let asked = Asked::of(&req);
    let resp = next.run(req).await;
    if resp.extensions().get::<Audited>().is_some()
        || resp.extensions().get::<Repeated>().is_some()
        || (asked.is_read()
            && !refused(resp.status())
            && resp.extensions().get::<Change>().is_none())
    {
        return resp;
    }
    let entry = asked.finished(&resp, None);
    let store = st.store.clone();
    if let Err(e) = blocking(move || store.append_audit(entry)).await {
        tracing::error!(error = %e, "audit entry lost");
    }
    resp
}

/// The inner audit layer, inside the guard: a request that may change something (any method
/// but GET and HEAD) is entered **before** it runs, under the caller's name, then its entry is
/// completed with the outcome. The change and its entry are two commits, and a `kill -9` or a
/// power loss between them must not leave a change the log does not show. The request and
/// the completion run as a task of their own, so a client that goes away does not cut them
/// short. When the log cannot be written, the request is refused (503) rather than run
/// unaudited.
pub async fn intent(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    let asked = Asked::of(&req);
    if asked.is_read() {
        return next.run(req).await;
    }
    let who = req
        .extensions()
        .get::<super::Principal>()
        .map_or_else(|| "anonymous".to_string(), |p| p.user.clone());
    let started = asked.entry(who.clone(), 0, UNFINISHED.into(), Value::Null);
    let store = st.store.clone();
    let seq = match blocking(move || store.append_audit(started)).await {
        Ok(seq) => seq,
        Err(e) => {
            tracing::error!(error = %e, "audit log not writable: request refused");
            return match e {
                ApiError::InsufficientStorage(why) => {
                    ApiError::InsufficientStorage(format!("the audit log cannot be written: {why}"))
                }
                ApiError::Reopening(why) => {
                    ApiError::Reopening(format!("the audit log cannot be written: {why}"))
                }
                other => ApiError::Unavailable(format!("the audit log cannot be written: {other}")),
            }
            .into_response();
        }
    };
    let run = tokio::spawn(async move {
        let mut resp = next.run(req).await;
        let entry = asked.finished(&resp, Some(who));
        let store = st.store.clone();
        if let Err(e) = blocking(move || store.complete_audit(seq, entry)).await {
            tracing::error!(error = %e, seq, "audit entry not completed");
        }
        resp.extensions_mut().insert(Audited);
        resp
    });
    match run.await {
        Ok(resp) => resp,
        Err(e) => {
            tracing::error!(error = %e, seq, "admin request failed");
            ApiError::Internal("the request failed".into()).into_response()
        }
    }
}

/// Attaches a change to a response for the audit middleware.
pub fn with_change(
    resp: Response,
    summary: String,
    before: impl serde::Serialize,
    after: impl serde::Serialize,
) -> Response {
    let before = serde_json::to_value(before).unwrap_or(Value::Null);
    let after = serde_json::to_value(after).unwrap_or(Value::Null);
    with_changes(resp, summary, changes(before, after))
}

/// Attaches a change already described (see [`Change::changes`]) to a response.
pub fn with_changes(mut resp: Response, summary: String, changes: Value) -> Response {
    resp.extensions_mut().insert(Change { summary, changes });
    resp
}

/// The most entries one page holds. A larger `limit` is refused, not cut to this: a script
/// asking for more would take the page for the whole log.
const MAX_PAGE: usize = 100_000;

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
    /// Only entries older than this sequence number: the next page after a page whose last
    /// entry has it.
    pub before: Option<u64>,
}

pub async fn list(
    State(st): State<AdminState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, ApiError> {
    let limit = super::paging::limit(
        q.limit,
        1000,
        MAX_PAGE,
        "ask for the next page with before=SEQ",
    )?;
    let store = st.store.clone();
    let needle = q.q.as_deref().map(str::to_lowercase);
    let entries = blocking(move || {
        store.list_audit_before(q.before, limit, |e| {
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
