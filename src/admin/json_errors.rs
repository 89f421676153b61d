//! Every error the admin API answers is its JSON error, `{"error": "..."}`, as the OpenAPI
//! document says. axum answers some requests itself before a handler runs (an unknown query
//! parameter, a body over the size limit, a method the route does not take) in plain text or
//! with no body at all, which a client reading JSON cannot show; this layer rewrites those,
//! keeping their status and headers (`Allow` on a 405 stays). A body over its route's limit
//! is said with the limit, so the client knows how far over it went. A refused body the client
//! is still sending is read to its end after the answer (`refused_body`), so the client gets it.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::refused_body::Leftover;

/// Most of an error body read to quote it: axum's own are one line.
const MAX_QUOTED: usize = 4096;

pub async fn as_json(req: Request, next: Next) -> Response {
    let limit = match req.uri().path().ends_with("/devices/import") {
        true => super::IMPORT_BODY_MAX,
        false => super::BODY_MAX - 1,
    };
    let leftover = Leftover::default();
    let resp = next.run(leftover.watch(req)).await;
    let status = resp.status();
    let json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return leftover.after(resp);
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_QUOTED)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = match (status, text.is_empty()) {
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            format!("request body: over the {limit} bytes this route takes; nothing was changed")
        }
        (_, false) => text,
        (_, true) => status.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({ "error": message }).to_string();
    leftover.after(Response::from_parts(parts, Body::from(body)))
}
