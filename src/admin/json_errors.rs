//! Every error the admin API answers is its JSON error, `{"error": "..."}`, as the OpenAPI
//! document says. axum answers some requests itself before a handler runs (an unknown query
//! parameter, a body over the size limit, a method the route does not take) in plain text or
//! with no body at all, which a client reading JSON cannot show; this layer rewrites those,
//! keeping their status and headers (`Allow` on a 405 stays). A body over its route's limit
//! is said with the limit, so the client knows how far over it went. A query string that does not
//! read is said in the API's words (`query: FIELD: …`), not the framework's. A refused body the
//! client is still sending is read to its end after the answer (`refused_body`), so the client
//! gets it.

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
        (_, false) => query_error(&text).unwrap_or(text),
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

/// axum's refusal of a query string, in the API's words: `query: FIELD: …`, an unknown value of
/// a field that takes a set of them as `unknown value "X", expected one of …` (serde's "unknown
/// variant" is a Rust word); `None` for any other text.
fn query_error(text: &str) -> Option<String> {
    let rest = text.strip_prefix("Failed to deserialize query string: ")?;
    let rest = match rest.split_once("unknown variant `") {
        Some((field, after)) => match after.split_once('`') {
            Some((value, expected)) => format!("{field}unknown value {value:?}{expected}"),
            None => rest.to_string(),
        },
        None => rest.to_string(),
    };
    Some(format!("query: {rest}"))
}

/// serde_json's `message` about `body` without its " at line 1 column N" when the body is one
/// line: the column of a one-line body tells a person little the rest of the message does not,
/// and reads as noise; in a body of several lines the line is where to look, so it stays.
pub fn without_position(message: String, body: &[u8]) -> String {
    let one_line = !body.trim_ascii_end().contains(&b'\n');
    match message.rsplit_once(" at line ") {
        Some((said, at))
            if one_line
                && at.split_once(" column ").is_some_and(|(l, c)| {
                    [l, c]
                        .iter()
                        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                }) =>
        {
            said.to_string()
        }
        _ => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_error_names_the_field_and_the_values_it_takes() {
        assert_eq!(
            query_error(
                "Failed to deserialize query string: severity: unknown variant `bogus`, \
                 expected one of `critical`, `major`"
            )
            .unwrap(),
            "query: severity: unknown value \"bogus\", expected one of `critical`, `major`"
        );
        assert_eq!(query_error("Method Not Allowed"), None);
    }

    #[test]
    fn the_position_goes_only_for_a_one_line_body() {
        let m = || "invalid type: integer `5`, expected a string at line 1 column 11".to_string();
        assert_eq!(
            without_position(m(), b"{\"name\": 5}\n"),
            "invalid type: integer `5`, expected a string"
        );
        assert_eq!(without_position(m(), b"{\n\"name\": 5}"), m());
    }
}
