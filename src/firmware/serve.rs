//! Answers a phone's request for a firmware image: fetch into the cache if needed, then
//! 200/206/304/416 with the file streamed from disk.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::Firmware;
use super::body::{FileBody, PhoneBody, full, on_disk};
use super::catalogue::Release;
use super::fetch::FetchError;
use super::range::{Plan, plan};
use crate::model::AlarmKind;

/// The request headers that matter for a download.
pub struct Asked<'a> {
    pub method: &'a Method,
    pub range: Option<&'a str>,
    pub if_range: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
}

/// A strong ETag naming the content: the image's hash.
fn etag(rel: &Release) -> String {
    format!("\"{}\"", rel.sha256.get(..32).unwrap_or(&rel.sha256))
}

fn plain(status: StatusCode, text: &'static str) -> Response<PhoneBody> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

pub async fn respond(fw: &Arc<Firmware>, rel: &Release, asked: &Asked<'_>) -> Response<PhoneBody> {
    let tag = etag(rel);
    if asked.if_none_match.is_some_and(|v| matches_none(v, &tag)) {
        let mut r = Response::new(full(""));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        if let Ok(v) = HeaderValue::from_str(&tag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        return r;
    }
    // A cached file can vanish (eviction, an operator's rm) or become unreadable between
    // lookup and open: it is fetched again over it, once.
    let mut opened = None;
    for _ in 0..2 {
        let (path, size) = match tokio::time::timeout(fw.phone_wait, fw.ensure(rel)).await {
            Ok(Ok(found)) => found,
            // Deleted meanwhile: what a phone asking for a file no release names is told.
            Ok(Err(FetchError::Removed(_))) => return plain(StatusCode::NOT_FOUND, "not found\n"),
            Ok(Err(e)) => return unavailable(rel, &e),
            Err(_) => return unavailable(rel, &"still fetching; the fetch goes on"),
        };
        // Off the runtime's workers: during a boot storm a slow disk would otherwise stall
        // every connection a worker serves while it waits for one open.
        let to_open = path.clone();
        let Ok(open) = on_disk(move || std::fs::File::open(to_open)).await else {
            return unavailable(rel, &"the daemon is stopping");
        };
        match open {
            Ok(f) => {
                opened = Some((f, size));
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => fw.cache.forget(&rel.sha256),
            Err(e) if exhausted(&e) => return unavailable(rel, &e),
            Err(e) => unreadable(fw, rel, &path, &e),
        }
    }
    let Some((file, size)) = opened else {
        return unavailable(rel, &"the cached image cannot be opened");
    };
    let (status, start, len) = match plan(asked.range, asked.if_range, &tag, size) {
        Plan::Full => (StatusCode::OK, 0, size),
        Plan::Partial { start, end } => (StatusCode::PARTIAL_CONTENT, start, end - start + 1),
        Plan::Unsatisfiable => {
            let mut r = plain(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let body = if *asked.method == Method::HEAD {
        full("")
    } else {
        http_body_util::BodyExt::boxed(FileBody::new(file, start, len))
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{size}", start + len - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    r
}

/// Whether `If-None-Match` names the representation tagged `tag`, so 304 is the answer.
/// RFC 9110 §13.1.2 compares weakly here: a client that keeps the tag as `W/"…"` (a proxy may
/// weaken it) still has these bytes, and sending them again would cost a download for nothing.
/// Shared by firmware images and settings files, so both answer a conditional request alike.
pub fn matches_none(if_none_match: &str, tag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == tag)
}

/// A cached image that is there but cannot be opened (its permissions or owner changed, a
/// disk error): phones cannot get it from this copy whatever they retry, so the cache forgets
/// it, the next [`Firmware::ensure`] fetches it again (publishing over it), and an alarm names
/// the file, since what made it unreadable may need the operator (and may make the new copy
/// fail to publish too: that fetch's failure then answers phones 503 with `Retry-After`).
fn unreadable(fw: &Firmware, rel: &Release, path: &std::path::Path, e: &std::io::Error) {
    tracing::error!(file = %rel.file, path = %path.display(), error = %e,
        "cannot open cached image; fetching it again");
    fw.recorder.alarm(
        AlarmKind::FirmwareCacheUnreadable,
        path.display().to_string(),
        format!(
            "{}: the cached image {} cannot be opened: {e}; it is fetched again",
            rel.file,
            path.display()
        ),
    );
    fw.cache.forget(&rel.sha256);
}

/// Whether opening a file failed for want of a resource the process shares (file
/// descriptors, memory), not for anything about the file: a boot storm can exhaust them, and
/// the cached image is then still good, so it is neither dropped nor fetched again.
fn exhausted(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    matches!(
        Errno::from_io_error(e),
        Some(Errno::MFILE | Errno::NFILE | Errno::NOMEM)
    )
}

/// The image cannot be provided now: the phone should retry later (the alarm is raised by
/// the fetch, once, not per waiting phone).
fn unavailable(rel: &Release, why: &dyn std::fmt::Display) -> Response<PhoneBody> {
    tracing::warn!(file = %rel.file, error = %why, "firmware image not available");
    let mut r = plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "firmware not available yet\n",
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn if_none_match_compares_weakly() {
        let tag = "\"abc\"";
        for v in ["\"abc\"", "W/\"abc\"", " \"x\", W/\"abc\" ", "*"] {
            assert!(super::matches_none(v, tag), "{v}");
        }
        for v in ["\"abd\"", "w/\"abc\"", "W/abc", ""] {
            assert!(!super::matches_none(v, tag), "{v}");
        }
    }
}
