//! Phones' uploads (Poly): `PUT {dir}/logs/{mac}-app.log` and `-boot.log`, and
//! `{dir}/overrides/{mac}-phone.cfg` and `-web.cfg`, under any leading directory as GETs are.
//! A file of one device, written and read back by that device alone, under the rule of a file
//! with a secret: an override may hold the passwords its user typed into the phone. Logs are
//! not served back to phones: Poly sends its whole log with each PUT, and reads none back
//! before it does (README "Uploads from phones").

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::PhoneState;
use super::cache::Ready;
use super::handler::{
    Asked, Guarded, PhoneConn, Resp, gate, method_not_allowed, path_segments, record_checkin,
    serve_file, text,
};
use super::upload_slots::Busy;
use crate::firmware::full;
use crate::model::{AlarmKind, Device, Mac, UploadFile, UploadKind, now_unix};
use crate::store::{DeviceContext, NotStored, StoreError};

/// The upload a path names: its last two segments are the file's directory (`logs`,
/// `overrides`, any letter case) and its name (`{mac}-app.log`…, the MAC's twelve digits in
/// any letter case); what comes before them is the phone's provisioning directory, whatever
/// it is. `None` for every other path.
pub fn target(segs: &[String]) -> Option<(UploadFile, Mac)> {
    let [.., dir, name] = segs else {
        return None;
    };
    UploadFile::parse(name).filter(|(file, _)| dir.eq_ignore_ascii_case(file.directory()))
}

/// Whether `device` is of the site this box serves, `home` (its cloud registration's).
fn of_home_site(home: Option<&str>, device: &Device) -> bool {
    home.is_some_and(|h| !h.is_empty() && h == device.site)
}

/// What [`gate`] needs of the device, and the site the write's own check needs.
struct Found {
    /// The device's record; `None` when it is not in the inventory.
    ctx: Option<DeviceContext>,
    /// It is of this box's site.
    associated_here: bool,
    /// This box's site, as its cloud registration names it.
    home: Option<String>,
}

/// The device's record and this box's site; `Err` with the answer when the store cannot be
/// read.
fn device(state: &PhoneState, mac: Mac) -> Result<Found, Box<Resp>> {
    let read = || -> Result<_, StoreError> {
        let ctx = state.store.device_context(mac)?;
        let home = state.store.home_site()?;
        let associated_here = ctx
            .as_ref()
            .is_some_and(|c| of_home_site(home.as_deref(), &c.device));
        Ok(Found {
            ctx,
            associated_here,
            home,
        })
    };
    read().map_err(|e| {
        tracing::error!(error = %e, "store read failed");
        Box::new(text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n"))
    })
}

/// An override only over HTTPS, whatever the proof: Digest (qop=auth) proves who sent a
/// request but not its body, so over plain HTTP a man in the middle could rewrite an override
/// that the phone is then given back at every boot, and the passwords an override may hold
/// would cross the wire in clear both ways. Refused with 403 saying so, and the alarm a
/// secret file asked for without proof raises. Logs are still taken over plain HTTP.
fn over_https(
    state: &PhoneState,
    asked: &Asked<'_>,
    name: &str,
    act: &str,
) -> Result<(), Box<Resp>> {
    if asked.conn.tls {
        return Ok(());
    }
    state.recorder.alarm(
        AlarmKind::SecretWithoutProof,
        asked.source(),
        format!("{name}: an override was {act} over plain HTTP, which cannot protect it; refused (HTTPS is required)"),
    );
    Err(Box::new(text(
        StatusCode::FORBIDDEN,
        "HTTPS is required for overrides\n",
    )))
}

/// A GET or HEAD of an upload path: an override, to its own device, as stored; 404 when there
/// is none. A log is never served to a phone.
pub fn read_back(
    state: &PhoneState,
    asked: &Asked<'_>,
    name: &str,
    file: UploadFile,
    mac: Mac,
) -> Resp {
    if file.kind() == UploadKind::Log {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if let Err(refused) = over_https(state, asked, name, "asked for") {
        return *refused;
    }
    let Found {
        ctx,
        associated_here,
        ..
    } = match device(state, mac) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let guarded = Guarded {
        name,
        act: "asked for",
        device: mac,
        ctx: ctx.as_ref(),
        associated_here,
        carries_secret: true,
    };
    let by_credential = match gate(state, asked, &guarded) {
        Ok(by_credential) => by_credential,
        Err(refused) => return *refused,
    };
    match state.store.get_upload(mac, file) {
        Ok(Some(upload)) => {
            record_checkin(state, asked, Some(mac), name, by_credential);
            serve_file(asked, name, Ready::new(Bytes::from(upload.bytes)), true)
        }
        Ok(None) => text(StatusCode::NOT_FOUND, "not found\n"),
        Err(e) => {
            tracing::error!(error = %e, "store read failed");
            text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n")
        }
    }
}

/// A PUT: 201 when the file is new, 204 when it replaced one (RFC 9110 §9.3.4), the write
/// durable before either is sent. Refused before its body is read when the requester is not
/// proven as the device (401/403 and the alarm a secret file's refusal raises), sends an
/// override over plain HTTP (403, see [`over_https`]), declares a body over
/// `uploads.max_file_bytes` (413), or finds no slot free (503, or 409 for a device with an
/// upload being read: see [`busy`]); a body that grows past the bound is 413 too, read no
/// further. Nothing is stored on any refusal.
pub async fn put(
    state: &PhoneState,
    conn: &PhoneConn,
    asked: &Asked<'_>,
    declared: Option<u64>,
    body: Incoming,
) -> Resp {
    let segs = match path_segments(state, asked) {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    let (Some((file, mac)), Some(name)) = (target(&segs), segs.last()) else {
        return method_not_allowed(state, asked);
    };
    let kind = file.kind().as_str();
    let (resp, result) = store_upload(state, conn, asked, (name, file, mac), declared, body).await;
    state.metrics.upload(kind, result);
    tracing::debug!(device = %mac, file = name.as_str(), status = resp.status().as_u16(), result, "phone upload");
    resp
}

/// The answer when no slot is free, and the result it is counted under. The daemon's slots
/// taken: 503 with `Retry-After` at once rather than waiting for one, since a waiting request
/// would keep its connection, and the phone's own timer running, for as long as other
/// phones' bodies take (up to `phone.header_timeout_ms` each), while a Poly phone sends its
/// upload again later anyway. A device with an upload being read already: 409, as the state
/// of its files (one being written) conflicts with a second write; it is no shortage of the
/// box's, which 503 would say.
fn busy(busy: Busy) -> (Resp, &'static str) {
    match busy {
        Busy::Daemon => {
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many uploads at once; try again later\n",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            (r, "busy")
        }
        Busy::Device => (
            text(
                StatusCode::CONFLICT,
                "an upload of this device is being received already\n",
            ),
            "in_progress",
        ),
    }
}

/// Why a body was not read whole.
enum BodyError {
    TooLarge,
    Cut,
}

/// Reads a body of at most `max` bytes into one buffer, sized up front to the length it
/// declares (already checked against `max`), so it is neither copied again nor grown past
/// what it holds.
async fn read_body(
    mut body: Incoming,
    declared: Option<u64>,
    max: u64,
) -> Result<Vec<u8>, BodyError> {
    let capacity = usize::try_from(declared.unwrap_or(0).min(max)).unwrap_or(0);
    let mut buf = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyError::Cut)?.into_data() else {
            continue;
        };
        if (buf.len() + data.len()) as u64 > max {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf)
}

/// [`put`] after the path: the answer, and the result it is counted under.
async fn store_upload(
    state: &PhoneState,
    conn: &PhoneConn,
    asked: &Asked<'_>,
    (name, file, mac): (&str, UploadFile, Mac),
    declared: Option<u64>,
    body: Incoming,
) -> (Resp, &'static str) {
    if file.kind() == UploadKind::Override
        && let Err(refused) = over_https(state, asked, name, "sent")
    {
        return (*refused, "refused");
    }
    let Found {
        ctx,
        associated_here,
        home,
    } = match device(state, mac) {
        Ok(found) => found,
        Err(refused) => return (*refused, "failed"),
    };
    let guarded = Guarded {
        name,
        act: "sent",
        device: mac,
        ctx: ctx.as_ref(),
        associated_here,
        carries_secret: true,
    };
    if let Err(refused) = gate(state, asked, &guarded) {
        return (*refused, "refused");
    }
    let max = state.uploads.max_file_bytes;
    let too_large = || {
        (
            text_owned(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("an upload is at most {max} bytes\n"),
            ),
            "too_large",
        )
    };
    if declared.is_some_and(|n| n > max) {
        return too_large();
    }
    // Held until the upload is stored or refused: its body is in memory until then.
    let slot = match state.upload_slots.try_take(mac) {
        Ok(slot) => slot,
        Err(b) => return busy(b),
    };
    let bytes = match tokio::time::timeout(state.body_timeout, read_body(body, declared, max)).await
    {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(BodyError::TooLarge)) => return too_large(),
        Ok(Err(BodyError::Cut)) => {
            return (
                text(StatusCode::BAD_REQUEST, "the request body was cut off\n"),
                "bad_body",
            );
        }
        Err(_) => {
            return (
                text(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body came too slowly\n",
                ),
                "bad_body",
            );
        }
    };
    // A certificate revoked (or expired, or no longer trusted) while the body came proves
    // nothing now.
    if let Some(proven) = asked.cert_mac
        && conn.cert_mac(state) != Some(proven)
    {
        state.recorder.alarm(
            AlarmKind::RevokedCertificate,
            proven.to_string(),
            format!(
                "{name}: not stored: the client certificate stopped proving the device \
                 (revoked, expired or no longer trusted) while the upload came"
            ),
        );
        return (text(StatusCode::FORBIDDEN, "forbidden\n"), "refused");
    }
    let store = state.store.clone();
    let from = asked.conn.peer.ip().to_string();
    let max_total = state.uploads.max_total_bytes;
    // The gate's rule again, on the device as the write's transaction sees it.
    let allowed = move |d: &Device| {
        d.state
            .may_receive_secrets(of_home_site(home.as_deref(), d))
    };
    // The slot goes with the bytes: a client gone while the write runs drops this future,
    // not the write, and the bytes are held until the write ends.
    let written = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        store.put_upload(mac, file, &bytes, (now_unix(), &from), max_total, allowed)
    })
    .await;
    match written {
        Ok(Ok(Ok(stored))) => {
            for (m, f) in &stored.dropped {
                tracing::info!(device = %m, file = %f.name(*m), "upload dropped to make room (uploads.max_total_bytes)");
            }
            match stored.replaced {
                true => (status_only(StatusCode::NO_CONTENT), "replaced"),
                false => (status_only(StatusCode::CREATED), "stored"),
            }
        }
        Ok(Ok(Err(NotStored::NoRoom(no_room)))) => {
            state.recorder.alarm(
                AlarmKind::UploadStorageFull,
                mac.to_string(),
                format!("{name}: not stored: {no_room} (uploads.max_total_bytes)"),
            );
            (
                text(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "no room for this upload\n",
                ),
                "no_room",
            )
        }
        // Deleted, or made unable to receive its secrets, since it was authorised.
        Ok(Ok(Err(NotStored::NotAllowed))) => {
            state.recorder.alarm(
                AlarmKind::InactiveDevice,
                asked.source(),
                format!("{name}: not stored: device {mac} was deleted or deactivated while the upload came"),
            );
            (text(StatusCode::FORBIDDEN, "forbidden\n"), "refused")
        }
        Ok(Err(e)) if e.is_disk_full() => {
            tracing::error!(error = %e, "phone upload refused: the data directory is full");
            (
                text(StatusCode::INSUFFICIENT_STORAGE, "the box's disk is full\n"),
                "failed",
            )
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "phone upload not stored");
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n");
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            (r, "failed")
        }
        Err(e) => {
            tracing::error!(error = %e, "phone upload task failed");
            (
                text(StatusCode::INTERNAL_SERVER_ERROR, "upload failed\n"),
                "failed",
            )
        }
    }
}

fn status_only(status: StatusCode) -> Resp {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

fn text_owned(status: StatusCode, body: String) -> Resp {
    let mut r = Response::new(full(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        super::super::path::segments(path).unwrap()
    }

    #[test]
    fn upload_paths_are_the_four_files_in_their_directories_under_any_directory() {
        let a: Mac = "0004f2000001".parse().unwrap();
        for (path, want) in [
            ("/logs/0004f2000001-app.log", UploadFile::AppLog),
            ("/prov/poly/LOGS/0004F2000001-boot.log", UploadFile::BootLog),
            (
                "/overrides/0004f2000001-phone.cfg",
                UploadFile::PhoneOverrides,
            ),
            (
                "/x/Overrides/0004f2000001-WEB.CFG",
                UploadFile::WebOverrides,
            ),
        ] {
            assert_eq!(target(&segs(path)), Some((want, a)), "{path}");
        }
        for path in [
            // The per-device file edgeprov renders, at the root or anywhere but `overrides/`.
            "/0004f2000001-phone.cfg",
            "/logs/0004f2000001-phone.cfg",
            "/overrides/0004f2000001-app.log",
            "/0004f2000001-app.log",
            "/logs",
            "/logs/0004f2000001.cfg",
            "/overrides/0004f2000001-license.cfg",
            "/logs/00:04:f2:00:00:01-app.log",
            "/",
        ] {
            assert_eq!(target(&segs(path)), None, "{path}");
        }
    }
}
