//! One phone request, from path to response. The decisions (identify, authorise, render) are
//! pure functions in sibling modules; this file sequences them and does the store I/O.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::PhoneState;
use super::authorize::{Decision, Proof, Target, authorize};
use super::credentials::{self, FailureOutcome, Verdict};
use super::identify::{Agent, mac_from_certificate, mac_from_path, parse_user_agent};
use super::path::{PathError, segments};
use crate::model::{AlarmKind, CheckIn, Mac, now_unix};
use crate::serve::ConnInfo;
use crate::settings::device_file::{Rendered, avaya_device_txt};
use crate::store::DeviceContext;

type Resp = Response<Full<Bytes>>;

fn text(status: StatusCode, body: &'static str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Request facts the decisions need, read once.
struct Asked<'a> {
    conn: &'a ConnInfo,
    method: Method,
    uri_path: String,
    user_agent: String,
    authorization: Option<String>,
    if_none_match: Option<String>,
    agent: Option<Agent>,
    cert_mac: Option<Mac>,
}

impl Asked<'_> {
    /// Names the requester in alarms: its address, and the device it proved to be.
    fn source(&self) -> String {
        match self.cert_mac {
            Some(m) => format!("{} as {m}", self.conn.peer.ip()),
            None => self.conn.peer.ip().to_string(),
        }
    }
}

pub async fn handle(
    state: Arc<PhoneState>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let header_text = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let user_agent = header_text(header::USER_AGENT).unwrap_or_default();
    let asked = Asked {
        conn: &conn,
        method: req.method().clone(),
        uri_path: req.uri().path().to_string(),
        agent: parse_user_agent(&user_agent),
        user_agent,
        authorization: header_text(header::AUTHORIZATION),
        if_none_match: header_text(header::IF_NONE_MATCH),
        cert_mac: conn
            .client_cert
            .as_ref()
            .and_then(|c| mac_from_certificate(c)),
    };
    let resp = respond(&state, &asked).await;
    tracing::debug!(
        peer = %conn.peer,
        path = %asked.uri_path,
        device = ?asked.cert_mac,
        status = resp.status().as_u16(),
        "phone request"
    );
    Ok(resp)
}

async fn respond(state: &PhoneState, asked: &Asked<'_>) -> Resp {
    if asked.method != Method::GET && asked.method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let segs = match segments(&asked.uri_path) {
        Ok(s) => s,
        Err(PathError::TooLong) => return text(StatusCode::URI_TOO_LONG, "path too long\n"),
        Err(PathError::Traversal) => {
            state.recorder.alarm(
                AlarmKind::PathTraversal,
                asked.source(),
                format!("refused path {:?}", truncate(&asked.uri_path)),
            );
            return text(StatusCode::BAD_REQUEST, "bad path\n");
        }
        Err(PathError::Malformed) => return text(StatusCode::BAD_REQUEST, "bad path\n"),
    };
    let Some(name) = segs.last() else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    if segs.len() == 1 && name == "ca.crl" {
        return match state.pki.crl_der() {
            Ok(der) => {
                let mut r = Response::new(Full::new(Bytes::from(der.as_ref().clone())));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/pkix-crl"),
                );
                r
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot sign the CRL");
                text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n")
            }
        };
    }
    let lower = name.to_ascii_lowercase();
    let file_mac = match mac_from_path(std::slice::from_ref(name)) {
        Some(m) if lower.ends_with(".txt") => m,
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    let store = state.store.clone();
    let ctx = match tokio::task::spawn_blocking(move || store.device_context(file_mac)).await {
        Ok(Ok(Some(ctx))) => ctx,
        Ok(Ok(None)) => return text(StatusCode::NOT_FOUND, "not found\n"),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "store read failed");
            return text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n");
        }
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n"),
    };
    let rendered = avaya_device_txt(&ctx);
    let proof = prove(state, asked, &ctx);
    let target = Target {
        device: file_mac,
        state: ctx.device.state,
        carries_secret: rendered.carries_secret,
    };
    match authorize(&target, proof) {
        Decision::Allow => {
            record_checkin(state, asked, file_mac, name);
            serve_file(asked, rendered)
        }
        Decision::Unauthenticated { alarm } => {
            state.recorder.alarm(
                alarm,
                asked.source(),
                format!("{name}: a secret file was asked for without proof of identity"),
            );
            let mut r = text(StatusCode::UNAUTHORIZED, "client certificate required\n");
            if http_auth_allowed(&ctx) {
                for c in credentials::challenges(&state.nonces, asked.conn.tls) {
                    if let Ok(v) = HeaderValue::from_str(&c) {
                        r.headers_mut().append(header::WWW_AUTHENTICATE, v);
                    }
                }
            }
            r
        }
        Decision::Forbidden { alarm } => {
            let why = match alarm {
                AlarmKind::InactiveDevice => format!("{name}: device {file_mac} is not active"),
                _ => format!("{name}: proven identity is not device {file_mac}"),
            };
            state.recorder.alarm(alarm, asked.source(), why);
            text(StatusCode::FORBIDDEN, "forbidden\n")
        }
    }
}

fn http_auth_allowed(ctx: &DeviceContext) -> bool {
    ctx.device.http_credential.is_some()
        && (ctx.device.allow_http_auth || ctx.site.as_ref().is_some_and(|s| s.allow_http_auth))
}

/// The strongest proof the request carries for the device the file belongs to.
fn prove(state: &PhoneState, asked: &Asked<'_>, ctx: &DeviceContext) -> Proof {
    if let Some(m) = asked.cert_mac {
        return Proof::Certificate(m);
    }
    let (Some(header), Some(cred)) = (&asked.authorization, &ctx.device.http_credential) else {
        return Proof::None;
    };
    if !http_auth_allowed(ctx) {
        return Proof::None;
    }
    let mac = ctx.device.mac;
    if state.lockouts.is_locked(mac) {
        state.recorder.alarm(
            AlarmKind::HttpAuthLockout,
            asked.source(),
            format!("credentials of device {mac} are locked after repeated failures"),
        );
        return Proof::None;
    }
    match credentials::verify(
        header,
        asked.method.as_str(),
        cred,
        &state.nonces,
        asked.conn.tls,
    ) {
        Verdict::Valid => {
            state.lockouts.success(mac);
            Proof::Credential(mac)
        }
        Verdict::BasicWithoutTls => Proof::None,
        Verdict::Invalid => {
            let (kind, message) = match state.lockouts.failure(mac) {
                FailureOutcome::Counted(n) => (
                    AlarmKind::HttpAuthFailed,
                    format!("wrong HTTP credentials for device {mac} ({n} in a row)"),
                ),
                FailureOutcome::LockedNow => (
                    AlarmKind::HttpAuthLockout,
                    format!("credentials of device {mac} locked after repeated failures"),
                ),
            };
            state.recorder.alarm(kind, asked.source(), message);
            Proof::None
        }
    }
}

fn serve_file(asked: &Asked<'_>, rendered: Rendered) -> Resp {
    let etag = etag(&rendered.bytes);
    let not_modified = asked
        .if_none_match
        .as_deref()
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if not_modified {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if asked.method == Method::HEAD {
        let mut r = Response::new(Full::new(Bytes::new()));
        r.headers_mut().insert(
            header::CONTENT_LENGTH,
            HeaderValue::from(rendered.bytes.len()),
        );
        r
    } else {
        Response::new(Full::new(Bytes::from(rendered.bytes)))
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if rendered.carries_secret {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// A strong ETag from the content, so an unchanged file is a 304 however it was produced.
fn etag(bytes: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    format!("\"{}\"", credentials::hex(&d.as_ref()[..16]))
}

fn record_checkin(state: &PhoneState, asked: &Asked<'_>, file_mac: Mac, file: &str) {
    let mac = asked
        .cert_mac
        .or(Some(file_mac))
        .or_else(|| asked.agent.as_ref().and_then(|a| a.mac));
    if let Some(mac) = mac {
        state.recorder.check_in(
            mac,
            CheckIn {
                last_seen: now_unix(),
                peer_ip: asked.conn.peer.ip().to_string(),
                user_agent: truncate(&asked.user_agent),
                firmware: asked
                    .agent
                    .as_ref()
                    .map(|a| a.firmware.clone())
                    .unwrap_or_default(),
                file: file.to_string(),
            },
        );
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(256).collect()
}
