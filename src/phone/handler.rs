//! One phone request, from path to response. The decisions (identify, authorise, render) are
//! pure functions in sibling modules; this file sequences them and does the store I/O.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::PhoneState;
use super::authorize::{Decision, Proof, Target, authorize};
use super::cache::{FileKey, Published, Ready};
use super::credentials::{self, FailureOutcome, Verdict};
use super::identify::{Agent, certificate_facts, mac_from_path, macs_in_name, parse_user_agent};
use super::path::{PathError, segments};
use crate::firmware::{self, Catalogue, PhoneBody, full};
use crate::model::{AlarmKind, CheckIn, CheckInProof, DeviceState, Mac, now_unix};
use crate::serve::ConnInfo;
use crate::settings::layered::{SECRET_MASK, mask_secrets};
use crate::settings::render::{
    Common, FileName, Rendered, Requester, classify, file_device, render_common, render_device,
    requester_part,
};
use crate::settings::secrets::secret_lines;
use crate::store::{DeviceContext, Store, StoreError};

pub(super) type Resp = Response<PhoneBody>;

pub(super) fn text(status: StatusCode, body: &'static str) -> Resp {
    let mut r = Response::new(full(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The answer to a request for a file with a secret that came without proof of identity.
///
/// With HTTP credentials allowed for the device, 401 carrying their challenges. Without, 403:
/// a client certificate is not an HTTP authentication scheme, so there is no challenge to give,
/// and RFC 9110 §15.5.2 forbids a 401 without one. Some phones (Avaya J100) also prompt the
/// user for a name and password on any 401, which a boot storm of certificate-less phones must
/// not cause. Apache answers a failed `SSLRequire` with 403 too.
fn proof_required(challenges: Vec<String>) -> Resp {
    let values: Vec<HeaderValue> = challenges
        .iter()
        .filter_map(|c| HeaderValue::from_str(c).ok())
        .collect();
    if values.is_empty() {
        return text(StatusCode::FORBIDDEN, "client certificate required\n");
    }
    let mut r = text(StatusCode::UNAUTHORIZED, "client certificate required\n");
    for v in values {
        r.headers_mut().append(header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Request facts the decisions need, read once.
pub(super) struct Asked<'a> {
    pub conn: &'a ConnInfo,
    pub method: Method,
    pub uri: http::Uri,
    user_agent: String,
    authorization: Option<String>,
    if_none_match: Option<String>,
    range: Option<String>,
    if_range: Option<String>,
    host: Option<String>,
    agent: Option<Agent>,
    pub cert_mac: Option<Mac>,
    /// The serial of that certificate, when the box's CA issued it.
    cert_serial: Option<&'a str>,
    /// Why the client certificate presented proves nothing, when one was and does not.
    cert_unproven: Option<&'a str>,
}

impl Asked<'_> {
    /// Names the requester in alarms: its address, and the device it proved to be.
    pub(super) fn source(&self) -> String {
        match self.cert_mac {
            Some(m) => format!("{} as {m}", self.conn.peer.ip()),
            None => self.conn.peer.ip().to_string(),
        }
    }

    /// What an alarm about a request without proof adds when a client certificate was
    /// presented but proves nothing: the operator's first question.
    fn unproven_note(&self) -> String {
        self.cert_unproven
            .map(|why| format!(" (its client certificate proves nothing: {why})"))
            .unwrap_or_default()
    }
}

/// A phone connection: its TLS facts, with the certificate's MAC read once at accept time
/// rather than on every request of a keep-alive connection.
pub struct PhoneConn {
    pub info: ConnInfo,
    /// The MAC the certificate names, whether or not it has been revoked since.
    named: Option<Mac>,
    /// The certificate's validity (Unix seconds, both ends included): the handshake checked it
    /// then, but a session resumed later, or a connection kept open, carries the certificate
    /// past its end without a new check.
    valid: (i64, i64),
    /// The certificate's serial when the box's CA issued it (signed it with its key, see
    /// `LiveCerts::issued_here`): check-ins record it, so that a certificate the box has no record of
    /// issuing can be found and revoked, and only such a certificate is looked up among the
    /// revocations.
    own_serial: Option<String>,
    /// The revocations' version the certificate was last checked against.
    checked: AtomicU64,
    /// Revoked, or no longer chaining to a trusted root: it proves nothing from then on.
    revoked: AtomicBool,
    /// Why the certificate proves nothing, once a check found so: alarms say it.
    unproven: OnceLock<String>,
    /// The phone TLS configuration under whose trust the certificate was last found valid: the
    /// handshake's, until a reload replaces it. Weak, but it keeps the configuration's
    /// allocation, so no later configuration can have its address.
    trusted_under: Mutex<Weak<rustls::ServerConfig>>,
}

impl PhoneConn {
    /// A revoked certificate proves nothing: the handshake refuses one, but a TLS session
    /// resumed from before the revocation carries the certificate without that check.
    pub fn new(info: ConnInfo, state: &PhoneState) -> PhoneConn {
        // Whether the box's CA issued the certificate, decided once, under the trusted roots
        // of now (see `cert_mac`).
        let facts = info.client_cert.as_ref().and_then(|c| {
            certificate_facts(c, |parsed| {
                state.certs.issued_here(parsed, &info.client_intermediates)
            })
        });
        let named = facts.as_ref().and_then(|f| f.mac);
        let valid = facts
            .as_ref()
            .map_or((0, -1), |f| (f.not_before, f.not_after));
        let own_serial = facts.filter(|f| f.issued_here).map(|f| f.serial);
        // A certificate the handshake let through without proving it is checked in full by
        // the first `cert_mac`, as one whose trust may have changed since is.
        let trusted_under = match info.proved {
            true => info.verified_by.clone(),
            false => Weak::new(),
        };
        let conn = PhoneConn {
            trusted_under: Mutex::new(trusted_under),
            info,
            named,
            valid,
            own_serial,
            checked: AtomicU64::new(u64::MAX),
            revoked: AtomicBool::new(false),
            unproven: OnceLock::new(),
        };
        conn.cert_mac(state);
        conn
    }

    /// The device the certificate proves, as of now: a connection opened before its
    /// certificate was revoked or its root stopped being trusted, or resumed or kept open past
    /// its expiry, stops proving the device at its next request.
    pub fn cert_mac(&self, state: &PhoneState) -> Option<Mac> {
        let pki = &state.pki;
        let Some(mac) = self.named else {
            // It proves no device whatever its check says; but one the handshake let through
            // unproven is still checked once, so that it is counted and the alarms say why,
            // as one naming a device is.
            if !self.info.proved && self.info.client_cert.is_some() && self.unproven.get().is_none()
            {
                self.still_trusted(state);
            }
            return None;
        };
        let now = now_unix();
        if now < self.valid.0 || now > self.valid.1 {
            let why = match now < self.valid.0 {
                true => rustls::CertificateError::NotValidYet,
                false => rustls::CertificateError::Expired,
            };
            if self.unproven.get().is_none() {
                let why = crate::pki::why_unproven(&rustls::Error::InvalidCertificate(why));
                self.proves_nothing(why, &state.metrics);
            }
            return None;
        }
        // Trust first: whether the box's CA issued the certificate was decided under the
        // trusted roots current when the connection was set up, and holds once it still
        // passes the listener's check under the roots trusted now.
        if !self.revoked.load(Ordering::Acquire) && !self.still_trusted(state) {
            self.revoked.store(true, Ordering::Release);
        }
        let version = pki.revocations().version();
        if !self.revoked.load(Ordering::Acquire)
            && self.own_serial.is_some()
            && self.checked.swap(version, Ordering::AcqRel) != version
            && self
                .info
                .client_cert
                .as_ref()
                .is_some_and(|c| pki.refuses_own(c))
        {
            self.revoked.store(true, Ordering::Release);
        }
        (!self.revoked.load(Ordering::Acquire)).then_some(mac)
    }

    /// Keeps why the certificate proves nothing for the alarms, and counts the connection,
    /// once.
    fn proves_nothing(&self, why: String, metrics: &crate::metrics::Metrics) {
        if self.unproven.set(why).is_ok() {
            metrics
                .unproven_certificates
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the certificate passes the phone listener's current check: at once while the
    /// configuration is the one it was last checked under, else checked again (once per
    /// reload) against the roots now trusted.
    fn still_trusted(&self, state: &PhoneState) -> bool {
        let certs = &state.certs;
        let current = certs.phone_config();
        let mut under = self
            .trusted_under
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if std::ptr::eq(under.as_ptr(), Arc::as_ptr(&current)) {
            return true;
        }
        let Some(leaf) = &self.info.client_cert else {
            return false;
        };
        if let Err(e) = certs
            .pki()
            .verifies_client(leaf, &self.info.client_intermediates)
        {
            let why = crate::pki::why_unproven(&e);
            match self.info.proved {
                true => {
                    tracing::warn!(peer = %self.info.peer, reason = %why, "an open connection's client certificate is no longer trusted")
                }
                false => {
                    tracing::debug!(peer = %self.info.peer, reason = %why, "a client certificate proves nothing")
                }
            }
            self.proves_nothing(why, &state.metrics);
            return false;
        }
        *under = Arc::downgrade(&current);
        true
    }
}

pub async fn handle(
    state: Arc<PhoneState>,
    conn: Arc<PhoneConn>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    // SCEP before anything reads the request as a file's: it takes POST and a body.
    if let Some(scep) = &state.scep
        && super::scep::is_scep_path(req.uri().path())
    {
        let resp = super::scep::handle(&state, scep, conn.info.peer.ip(), req).await;
        state.metrics.request("scep", resp.status().as_u16());
        return Ok(resp);
    }
    let header_text = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let user_agent = header_text(header::USER_AGENT).unwrap_or_default();
    let cert_mac = conn.cert_mac(&state);
    let asked = Asked {
        conn: &conn.info,
        method: req.method().clone(),
        uri: req.uri().clone(),
        agent: parse_user_agent(&user_agent),
        user_agent,
        authorization: header_text(header::AUTHORIZATION),
        if_none_match: header_text(header::IF_NONE_MATCH),
        range: header_text(header::RANGE),
        if_range: header_text(header::IF_RANGE),
        host: header_text(header::HOST),
        cert_mac,
        cert_serial: cert_mac.and(conn.own_serial.as_deref()),
        cert_unproven: conn.unproven.get().map(String::as_str),
    };
    let mut kind = "other";
    let resp = match asked.method == Method::PUT && state.uploads.enabled {
        true => {
            // Only a path phones may upload to counts as an upload; a PUT anywhere else is
            // a 405 of no file.
            if segments(asked.uri.path()).is_ok_and(|s| super::upload::target(&s).is_some()) {
                kind = "upload";
            }
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
            super::upload::put(&state, &conn, &asked, declared, req.into_body()).await
        }
        false => respond(&state, &asked, &mut kind).await,
    };
    state.metrics.request(kind, resp.status().as_u16());
    tracing::debug!(
        peer = %conn.info.peer,
        path = %asked.uri.path(),
        device = asked.cert_mac.map(tracing::field::display),
        status = resp.status().as_u16(),
        "phone request"
    );
    Ok(resp)
}

/// The kind of file a request resolved to, as `/metrics` labels it: the name as the file
/// lookup saw it (percent-decoded, in any letter case, under any directory), never the raw
/// path, so every spelling of a file counts under one label and the label set stays bounded
/// (no path or MAC becomes a label). A generated file is `device` or `common` by the file it
/// is; an operator's file is `device` when its name holds a MAC, else `common`.
fn loaded_kind(loaded: &Loaded) -> &'static str {
    match (&loaded.file, &loaded.static_file) {
        (Some(f), _) if file_device(f).is_some() => "device",
        (Some(_), _) => "common",
        (None, Some(_)) if loaded.owner.is_some() => "device",
        (None, Some(_)) => "common",
        (None, None) => "other",
    }
}

/// 405 for a method phones may not use on this path. `Allow` names PUT only on a path phones
/// may upload to, while uploads are on (RFC 9110 §15.5.6: the methods the target supports).
pub(super) fn method_not_allowed(state: &PhoneState, asked: &Asked<'_>) -> Resp {
    let writable = state.uploads.enabled
        && segments(asked.uri.path()).is_ok_and(|segs| super::upload::target(&segs).is_some());
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    let allow = match writable {
        true => "GET, HEAD, PUT",
        false => "GET, HEAD",
    };
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// The request's path as decoded segments, or the answer to a path that is refused (an alarm
/// for one that tries to leave the served tree), boxed: a response is large, and the path that
/// goes on carries only the segments.
pub(super) fn path_segments(
    state: &PhoneState,
    asked: &Asked<'_>,
) -> Result<Vec<String>, Box<Resp>> {
    match segments(asked.uri.path()) {
        Ok(s) => Ok(s),
        Err(PathError::TooLong) => Err(Box::new(text(StatusCode::URI_TOO_LONG, "path too long\n"))),
        Err(PathError::Traversal) => {
            state.recorder.alarm(
                AlarmKind::PathTraversal,
                asked.source(),
                format!("refused path {:?}", truncate(asked.uri.path())),
            );
            Err(Box::new(text(StatusCode::BAD_REQUEST, "bad path\n")))
        }
        Err(PathError::Malformed) => Err(Box::new(text(StatusCode::BAD_REQUEST, "bad path\n"))),
    }
}

/// `kind`: set to what the request resolved to as soon as that is known ([`loaded_kind`]);
/// left as it was for a request that resolves to no file.
async fn respond(state: &PhoneState, asked: &Asked<'_>, kind: &mut &'static str) -> Resp {
    if asked.method != Method::GET && asked.method != Method::HEAD {
        return method_not_allowed(state, asked);
    }
    let segs = match path_segments(state, asked) {
        Ok(s) => s,
        Err(refused) => return *refused,
    };
    let Some(name) = segs.last() else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    if segs.len() == 1 && name == "ca.crl" {
        *kind = "crl";
        return match state.pki.crl_der() {
            Ok(der) => {
                let mut r = Response::new(full(Bytes::from(der.as_ref().clone())));
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
    // The box's CA certificate, which phones are given to trust the box's HTTPS by (Avaya
    // `TRUSTCERTS`, Yealink `static.trusted_certificates.url`): public, and fetched over plain
    // HTTP before the phone can check the box's certificate, from whatever directory the
    // phone's settings name.
    if name.eq_ignore_ascii_case(super::CA_FILE) {
        *kind = "ca";
        let pem = Bytes::from(state.pki.ca_cert_pem().to_owned());
        return serve_file(asked, name, Ready::new(pem), false);
    }
    // What a phone uploaded is read back from where it was written, never rendered.
    if let Some((file, mac)) = super::upload::target(&segs) {
        *kind = "upload";
        return super::upload::read_back(state, asked, name, file, mac);
    }
    let requester_mac = asked
        .cert_mac
        .or_else(|| mac_from_path(&segs))
        .or_else(|| asked.agent.as_ref().and_then(|a| a.mac));
    let catalogue = state.firmware.catalogue();
    // Firmware is not secret: any phone may download an image in the catalogue, at `/{file}`,
    // `/firmware/{file}` or under any sub-directory its settings name.
    if let Some(release) = catalogue.by_file(name) {
        *kind = "firmware";
        let resp = firmware::respond(
            &state.firmware,
            release,
            &firmware::Asked {
                method: &asked.method,
                range: asked.range.as_deref(),
                if_range: asked.if_range.as_deref(),
                if_none_match: asked.if_none_match.as_deref(),
            },
        )
        .await;
        if resp.status().is_success() {
            record_checkin(state, asked, requester_mac, name, false);
        }
        return resp;
    }
    let published = match state.cache.current(&state.store, &catalogue) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "store read failed");
            return text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n");
        }
    };
    // A few redb read transactions on pages the OS has cached: microseconds, so they run
    // inline instead of paying a thread hand-off per request in a boot storm.
    let who = Requester {
        vendor: asked.agent.as_ref().map(|a| a.vendor),
        model: asked
            .agent
            .as_ref()
            .map(|a| a.model.clone())
            .unwrap_or_default(),
        firmware: asked
            .agent
            .as_ref()
            .map(|a| a.firmware.clone())
            .unwrap_or_default(),
    };
    let loaded = match load(
        &state.store,
        &published,
        name,
        (requester_mac, asked.cert_mac),
        &who.model,
        (
            &firmware_base(asked, || state.certs.first_server_name()),
            state.scep.is_some(),
            state.https_port,
        ),
    ) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "store read failed");
            return text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n");
        }
    };
    *kind = loaded_kind(&loaded);
    let common_key = common_key(&loaded, &who);
    if let Some(ready) = common_key.as_ref().and_then(|k| published.file(k)) {
        record_checkin(state, asked, requester_mac, name, false);
        return serve_file(asked, name, ready, false);
    }
    let Some(served) = decide(&loaded, &who) else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    // An operator's common file that holds a secret goes only to a device of the inventory
    // that proves it is the device it says it is, as its own file would.
    let shared_secret = served.device.is_none() && served.rendered.carries_secret;
    let Some(file_mac) = served.device.or(requester_mac.filter(|_| shared_secret)) else {
        if shared_secret {
            state.recorder.alarm(
                AlarmKind::SecretWithoutProof,
                asked.source(),
                format!(
                    "{name}: a file with a secret was asked for by no known device{}",
                    asked.unproven_note()
                ),
            );
            return proof_required(Vec::new());
        }
        let ready = Ready::new(Bytes::from(served.rendered.bytes));
        if let Some(key) = common_key {
            published.keep(key, &ready);
        }
        record_checkin(state, asked, requester_mac, name, false);
        return serve_file(asked, name, ready, false);
    };
    let requester_ctx = match shared_secret {
        true => match state.store.device_context(file_mac) {
            Ok(ctx) => ctx,
            Err(e) => {
                tracing::error!(error = %e, "store read failed");
                return text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n");
            }
        },
        false => None,
    };
    let ctx = match shared_secret {
        true => requester_ctx.as_ref(),
        false => loaded.target.as_ref(),
    };
    let associated_here = ctx.is_some_and(|c| {
        loaded
            .home_site
            .as_deref()
            .is_some_and(|home| !home.is_empty() && home == c.device.site)
    });
    let guarded = Guarded {
        name,
        act: "asked for",
        device: file_mac,
        ctx,
        associated_here,
        carries_secret: served.rendered.carries_secret,
    };
    match gate(state, asked, &guarded) {
        Ok(by_credential) => {
            record_checkin(state, asked, Some(file_mac), name, by_credential);
            let secret = served.rendered.carries_secret;
            serve_file(
                asked,
                name,
                Ready::new(Bytes::from(served.rendered.bytes)),
                secret,
            )
        }
        Err(refused) => *refused,
    }
}

/// A file of one device, as [`gate`] decides who may have it (or write it).
pub(super) struct Guarded<'a> {
    /// The file's name, for the alarms.
    pub name: &'a str,
    /// What the requester did, for the alarms: "asked for", "sent".
    pub act: &'a str,
    pub device: Mac,
    /// The device's record; `None` when it is not in the inventory.
    pub ctx: Option<&'a DeviceContext>,
    /// The device's site is the site this box serves per its cloud registration.
    pub associated_here: bool,
    pub carries_secret: bool,
}

/// The rule for a file of one device ([`authorize`]): `Ok` with whether HTTP credentials
/// proved the requester, or the refusal to answer with, its alarm raised. A device outside
/// the inventory gets no secret, whether the file is a common one or an operator's file that
/// names it: nothing says the operator meant it for that device.
pub(super) fn gate(
    state: &PhoneState,
    asked: &Asked<'_>,
    file: &Guarded<'_>,
) -> Result<bool, Box<Resp>> {
    let (name, file_mac, ctx) = (file.name, file.device, file.ctx);
    let (proof, stale_nonce) = match ctx {
        Some(ctx) => prove(state, asked, ctx),
        None => (
            asked.cert_mac.map_or(Proof::None, Proof::Certificate),
            false,
        ),
    };
    let unknown = ctx.is_none();
    let target = Target {
        device: file_mac,
        state: ctx.map_or(DeviceState::Inactive, |c| c.device.state),
        associated_here: file.associated_here,
        carries_secret: file.carries_secret,
    };
    match authorize(&target, proof) {
        Decision::Allow => Ok(matches!(proof, Proof::Credential(_))),
        Decision::Unauthenticated { alarm } => {
            // A right answer on an old nonce is a phone about to retry, not a stranger.
            if !stale_nonce {
                state.recorder.alarm(
                    alarm,
                    asked.source(),
                    format!(
                        "{name}: a secret file was {} without proof of identity{}",
                        file.act,
                        asked.unproven_note()
                    ),
                );
            }
            let challenges = match ctx.is_some_and(http_auth_allowed) {
                true => credentials::challenges(&state.nonces, asked.conn.tls, stale_nonce),
                false => Vec::new(),
            };
            Err(Box::new(proof_required(challenges)))
        }
        Decision::Forbidden { alarm } => {
            let why = match alarm {
                AlarmKind::InactiveDevice if unknown => {
                    format!("{name}: device {file_mac} is not in the inventory")
                }
                AlarmKind::InactiveDevice => format!("{name}: device {file_mac} is not active"),
                _ => format!("{name}: proven identity is not device {file_mac}"),
            };
            state.recorder.alarm(alarm, asked.source(), why);
            Err(Box::new(text(StatusCode::FORBIDDEN, "forbidden\n")))
        }
    }
}

/// The bytes device `mac` would receive for `name`, as if it asked with its own certificate
/// (the admin API's "what does this phone get"), with every secret value generated into it (or
/// given in an operator's static file) shown as [`SECRET_MASK`]: secrets are write-only.
/// Blocking: call off the runtime. Reads the store afresh rather than through the phone path's
/// cache. `firmware_base` stands in for the address the phone would reach this server at (see
/// [`preview_firmware_base`]): a Yealink family file names its firmware under it. `scep` and
/// `https_port` ([`preview_https_port`]) are what the phone listener is given, so the SCEP URL
/// shown is the one phones get.
pub fn preview(
    store: &Store,
    catalogue: &Arc<Catalogue>,
    mac: Mac,
    name: &str,
    (firmware_base, scep, https_port): (&str, bool, Option<u16>),
) -> Result<Option<Rendered>, StoreError> {
    let published = Published::read(store, catalogue.clone(), store.generation())?;
    let device = store.get_device(mac)?;
    let who = Requester {
        vendor: device
            .as_ref()
            .and_then(|d| crate::model::Vendor::from_model(&d.model)),
        model: device.as_ref().map(|d| d.model.clone()).unwrap_or_default(),
        firmware: device
            .and_then(|d| d.checkin.map(|c| c.firmware))
            .unwrap_or_default(),
    };
    let mut loaded = load(
        store,
        &published,
        name,
        (Some(mac), Some(mac)),
        &who.model,
        (firmware_base, scep, https_port),
    )?;
    if let Some(ctx) = loaded.target.as_mut() {
        mask_secrets(ctx);
    }
    // An operator's file is shown as uploaded but for the values its secrets are given.
    if let Some(bytes) = loaded.static_file.as_mut() {
        *bytes = crate::settings::secrets::mask_secrets(bytes, SECRET_MASK);
    }
    Ok(decide(&loaded, &who).and_then(|served| {
        // Another device's own file is not what this device would get, with or without a
        // secret: it is rendered from that device's record and its site's layers, which the
        // caller may not hold (an operator of one site read another site's parameters so).
        match served.device {
            Some(owner) if owner != mac => None,
            _ => Some(served.rendered),
        }
    }))
}

/// The key a generated common file is kept under: such a file is the same for every phone of a
/// site in a generation (given its firmware base and [`requester_part`]). `None` for a
/// per-device file or an operator's static file.
fn common_key(loaded: &Loaded, who: &Requester) -> Option<FileKey> {
    match (&loaded.file, &loaded.static_file) {
        (Some(file), None) if file_device(file).is_none() => Some(FileKey {
            site: loaded.site.clone(),
            file: *file,
            firmware_base: loaded.firmware_base.clone(),
            requester: requester_part(file, who),
        }),
        _ => None,
    }
}

/// What the store holds for one request.
struct Loaded {
    /// The requested name as a file edgeprov generates, if it is one.
    file: Option<FileName>,
    /// The device the requested file is about: the MAC of a generated per-device file, or one
    /// that the name of any other file holds (an operator's static file).
    owner: Option<Mac>,
    /// The device the requested file is about (per-device files), if in the inventory.
    target: Option<DeviceContext>,
    /// The site whose files the requester gets (`None` for no site).
    site: Option<String>,
    /// An operator's static file of that name for the requester's site (or box-wide).
    static_file: Option<Vec<u8>>,
    /// Whether that static file holds a secret ([`crate::settings::secrets::secret_lines`]).
    static_secret: bool,
    /// The common data of that site, with the firmware the policies choose for it; shared by
    /// every request of the generation, so without a firmware base.
    common: Arc<Common>,
    /// The model the file is about and the firmware the policies choose for it, when
    /// `common` leaves the model out ([`Published::own_firmware`]): the device's model for a
    /// per-device file, the requester's for a common one.
    own_firmware: Option<(String, String)>,
    /// URL prefix of firmware downloads, as the requester reached this server.
    firmware_base: String,
    /// The SCEP URL the Avaya settings file names, when `[scep]` is on (see [`scep_url`]).
    scep_url: String,
    /// The site this box serves per its cloud registration (cloud-activated devices of other
    /// sites get no secrets here).
    home_site: Option<String>,
}

/// `requester`: who asks, as far as known (for its site); `proven`: the MAC its certificate
/// proves, which picks the owner of a name that holds more than one. `model`: the requester's
/// model, as far as known. `https_port`: see [`scep_url`].
fn load(
    store: &Store,
    published: &Published,
    name: &str,
    (requester, proven): (Option<Mac>, Option<Mac>),
    model: &str,
    (firmware_base, scep, https_port): (&str, bool, Option<u16>),
) -> Result<Loaded, StoreError> {
    let file = classify(name);
    let (owner, target) = match file.as_ref() {
        Some(f) => {
            let owner = file_device(f);
            let target = owner.map(|m| store.device_context(m)).transpose()?;
            (owner, target.flatten())
        }
        None => owner_of(store, name, proven)?,
    };
    let site = match (&target, requester) {
        (Some(ctx), _) => Some(ctx.device.site.clone()),
        (None, Some(m)) => store.device_site(m)?,
        (None, None) => None,
    }
    .filter(|s| !s.is_empty());
    let stored = published.static_file(store, site.as_deref(), name)?;
    // Read with the file, so it is the flag of these bytes; a file stored before flags were
    // kept (and not yet read at a start) is read here.
    let static_secret = stored.as_ref().is_some_and(|f| {
        f.holds_secret
            .unwrap_or_else(|| !secret_lines(&f.bytes).is_empty())
    });
    let common = published.common(store, site.as_deref())?;
    let model = match &target {
        Some(ctx) => &ctx.device.model,
        None => model,
    };
    Ok(Loaded {
        static_file: stored.map(|f| f.bytes),
        static_secret,
        own_firmware: published.own_firmware(&common, site.as_deref(), model),
        common,
        firmware_base: firmware_base.to_string(),
        scep_url: match scep {
            true => scep_url(firmware_base, https_port),
            false => String::new(),
        },
        home_site: published.home_site.clone(),
        file,
        owner,
        target,
        site,
    })
}

/// The device a name that edgeprov does not generate belongs to, and its record. A name may
/// hold several MACs (`spa001122aabbcc.xml` holds `a001122aabbc` too): the one the requester's
/// certificate proves when that device is in the inventory, else the first that is in the
/// inventory, else the proven one, else the first. A proven MAC outside the inventory does not
/// outrank a device of it: the name's other reading would make a stranger the owner of that
/// device's file.
fn owner_of(
    store: &Store,
    name: &str,
    proven: Option<Mac>,
) -> Result<(Option<Mac>, Option<DeviceContext>), StoreError> {
    let macs = macs_in_name(name);
    let proven = proven.filter(|m| macs.contains(m));
    if let Some(m) = proven
        && let Some(ctx) = store.device_context(m)?
    {
        return Ok((Some(m), Some(ctx)));
    }
    for &m in &macs {
        if let Some(ctx) = store.device_context(m)? {
            return Ok((Some(m), Some(ctx)));
        }
    }
    Ok((proven.or(macs.first().copied()), None))
}

/// The file to send, and the device it belongs to when it is a per-device file.
struct Served {
    rendered: Rendered,
    device: Option<Mac>,
}

/// Static file first, else the generated one. A static file whose name holds a MAC (anywhere,
/// see [`macs_in_name`]) is treated as that device's own file and as carrying a secret: an
/// operator's upload of `{mac}.cfg` or `spa{mac}.xml` usually holds its SIP password. Any
/// other static file carries a secret when one of its lines gives a password or PIN a value.
fn decide(loaded: &Loaded, who: &Requester) -> Option<Served> {
    if let Some(bytes) = &loaded.static_file {
        let device = loaded.owner;
        return Some(Served {
            rendered: Rendered {
                bytes: bytes.clone(),
                carries_secret: device.is_some() || loaded.static_secret,
            },
            device,
        });
    }
    let file = loaded.file.as_ref()?;
    // Yealink files name the firmware URL (the family file, and a device's own `{mac}.cfg`
    // for its model), so with a firmware base they get a copy of the shared data with the
    // requester's; and so does a file about a model only a family release covers, with that
    // model's firmware.
    let with_base;
    let common = if loaded.firmware_base.is_empty() && loaded.own_firmware.is_none() {
        &loaded.common
    } else {
        let mut c = Common::clone(&loaded.common);
        c.firmware_base.clone_from(&loaded.firmware_base);
        c.scep_url.clone_from(&loaded.scep_url);
        c.firmware.extend(loaded.own_firmware.clone());
        with_base = c;
        &with_base
    };
    match file_device(file) {
        Some(mac) => Some(Served {
            rendered: render_device(file, loaded.target.as_ref()?, common, who)?,
            device: Some(mac),
        }),
        None => Some(Served {
            rendered: render_common(file, common, who)?,
            device: None,
        }),
    }
}

fn http_auth_allowed(ctx: &DeviceContext) -> bool {
    ctx.device.http_credential.is_some()
        && (ctx.device.allow_http_auth || ctx.site.as_ref().is_some_and(|s| s.allow_http_auth))
}

/// The strongest proof the request carries for the device the file belongs to, and whether it
/// carried a right Digest answer to a nonce no longer honoured ([`Verdict::Stale`]).
fn prove(state: &PhoneState, asked: &Asked<'_>, ctx: &DeviceContext) -> (Proof, bool) {
    if let Some(m) = asked.cert_mac {
        return (Proof::Certificate(m), false);
    }
    let (Some(header), Some(cred)) = (&asked.authorization, &ctx.device.http_credential) else {
        return (Proof::None, false);
    };
    if !http_auth_allowed(ctx) {
        return (Proof::None, false);
    }
    let mac = ctx.device.mac;
    if state.lockouts.is_locked(mac) {
        state.recorder.alarm(
            AlarmKind::HttpAuthLockout,
            asked.source(),
            format!("credentials of device {mac} are locked after repeated failures"),
        );
        return (Proof::None, false);
    }
    let target = asked.uri.path_and_query().map_or("/", |p| p.as_str());
    let proof = match credentials::verify(
        header,
        asked.method.as_str(),
        target,
        cred,
        &state.nonces,
        asked.conn.tls,
    ) {
        Verdict::Valid => {
            state.lockouts.success(mac);
            Proof::Credential(mac)
        }
        Verdict::BasicWithoutTls => {
            // Refused unread, but the password has crossed the network in clear: whoever was
            // listening has it, so the operator must learn to change it.
            state.recorder.alarm(
                AlarmKind::HttpAuthFailed,
                asked.source(),
                format!(
                    "device {mac}'s HTTP Basic credentials were sent over plain HTTP, in clear: \
                     refused; change them"
                ),
            );
            Proof::None
        }
        Verdict::Stale => return (Proof::None, true),
        Verdict::Replayed => {
            state.recorder.alarm(
                AlarmKind::HttpAuthFailed,
                asked.source(),
                format!("a used HTTP Digest answer of device {mac} was sent again (a replay)"),
            );
            Proof::None
        }
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
    };
    (proof, false)
}

/// `name`: the file's name as asked for, which gives its `Content-Type`.
pub(super) fn serve_file(
    asked: &Asked<'_>,
    name: &str,
    ready: Ready,
    carries_secret: bool,
) -> Resp {
    // Weakly compared, as for firmware: a phone or proxy that kept the tag as `W/"…"` has the
    // same bytes. Only reached once the requester may have the file, so a 304 reveals nothing.
    let not_modified = asked
        .if_none_match
        .as_deref()
        .zip(ready.etag.to_str().ok())
        .is_some_and(|(v, tag)| firmware::matches_none(v, tag));
    let mut r = if not_modified {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if asked.method == Method::HEAD {
        let mut r = Response::new(full(Bytes::new()));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(ready.bytes.len()));
        r
    } else {
        Response::new(full(ready.bytes))
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::media_type::for_name(name)),
    );
    h.insert(header::ETAG, ready.etag);
    if carries_secret {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// Records who fetched a file. Only after a successful response, so a refused request cannot
/// fake a device's check-in.
/// Records that the device this request was from (its certificate's, else the one it named)
/// fetched `file`; `by_credential` when its HTTP credentials proved it.
pub(super) fn record_checkin(
    state: &PhoneState,
    asked: &Asked<'_>,
    identified: Option<Mac>,
    file: &str,
    by_credential: bool,
) {
    let proof = match (asked.cert_mac, by_credential) {
        (Some(_), _) => CheckInProof::Certificate,
        (None, true) => CheckInProof::Credential,
        (None, false) => CheckInProof::Claim,
    };
    let mac = asked.cert_mac.or(identified);
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
                proof,
                cert_serial: asked.cert_serial.map(str::to_string),
            },
        );
    }
}

/// `scheme://host/firmware/` as the phone reached us, so a phone is sent back to the same
/// address (and listener) for its image. The host is, as RFC 9112 §3.2.2 has it, the
/// authority of an absolute-form request target (`GET https://box:8443/y000000000028.cfg`),
/// which wins over Host; else Host; else (an HTTP/1.0 request without Host, or a Host that is
/// no plain host[:port], which is never echoed into a settings file) the box's first
/// `pki.server_names` entry with the port the request came in on. Empty, so the file names no
/// firmware, only when there is none of these.
fn firmware_base(asked: &Asked<'_>, server_name: impl FnOnce() -> Option<String>) -> String {
    let scheme = if asked.conn.tls { "https" } else { "http" };
    let target = asked
        .uri
        .authority()
        .and_then(|a| a.as_str().rsplit('@').next());
    if let Some(host) = target
        .filter(|h| plain_host(h))
        .or_else(|| asked.host.as_deref().filter(|h| plain_host(h)))
    {
        return format!("{scheme}://{host}/firmware/");
    }
    let name = server_name().map(|name| match name.contains(':') && !name.starts_with('[') {
        true => format!("[{name}]"),
        false => name,
    });
    let Some(name) = name.filter(|n| plain_host(n)) else {
        return String::new();
    };
    match (asked.conn.tls, asked.conn.local_port) {
        (true, 443) | (false, 80) | (_, 0) => format!("{scheme}://{name}/firmware/"),
        (_, port) => format!("{scheme}://{name}:{port}/firmware/"),
    }
}

/// The box's SCEP URL at the address a request reached it: its firmware base
/// (`scheme://host[:port]/firmware/`) with `/scep` for the directory; empty when that address
/// is unknown. A phone that fetched its settings over plain HTTP is sent to the same host's
/// HTTPS listener (`https_port`) instead: GetCACert over plain HTTP could be answered by anyone
/// on the path, and the phone would then encrypt its request and challenge to an RA of the
/// attacker's. Over HTTPS the phone checks the box by the CA the same file makes it trust
/// (`TRUSTCERTS`).
fn scep_url(firmware_base: &str, https_port: Option<u16>) -> String {
    let Some(root) = firmware_base.strip_suffix("/firmware/") else {
        return String::new();
    };
    match (root.strip_prefix("http://"), https_port) {
        (Some(authority), Some(port)) => {
            let host = match authority.find(']') {
                Some(end) if authority.starts_with('[') => &authority[..=end],
                _ => authority.split(':').next().unwrap_or(authority),
            };
            match port {
                443 => format!("https://{host}/scep"),
                port => format!("https://{host}:{port}/scep"),
            }
        }
        _ => format!("{root}/scep"),
    }
}

/// A host[:port] that may be written into a settings file as it is: a well-formed authority
/// with a host (an IPv6 address in brackets) and nothing a file could be broken with. A Host
/// such as `2001:db8::1` (unbracketed), `:80` or `[::1` would be written as a URL naming
/// another host or none, so the box's own name is used instead.
fn plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        && host.parse::<http::uri::Authority>().is_ok_and(|a| {
            let after_host = host.rsplit_once(']').map_or(host, |(_, rest)| rest);
            !a.host().is_empty() && (!after_host.contains(':') || a.port_u16().is_some())
        })
}

/// The firmware base of a preview: the one a phone gets when it reaches this server at the URL
/// edgeprov's DHCP hands out (`dhcp.provisioning_url`, else the first `pki.server_names` name
/// and the first `phone.https_listen` port). A phone sends that host and port as its Host, and
/// [`firmware_base`] echoes it; a phone pointed at another name of the box gets that name in
/// its firmware URL instead. Empty (no firmware URL) when no such URL can be made.
pub fn preview_firmware_base(config: &crate::config::Config) -> String {
    let Ok(url) = crate::dhcp::provisioning_url(config) else {
        return String::new();
    };
    let (scheme, default) = if url.tls {
        ("https", 443)
    } else {
        ("http", 80)
    };
    match url.port {
        p if p == default => format!("{scheme}://{}/firmware/", url.host),
        p => format!("{scheme}://{}:{p}/firmware/", url.host),
    }
}

/// The HTTPS port the phone listener names in a SCEP URL (the first `phone.https_listen`), as a
/// preview can know it from the configuration: `None` for an ephemeral port (`0`), which only
/// the running listener knows.
pub fn preview_https_port(config: &crate::config::Config) -> Option<u16> {
    config
        .phone
        .https_listen
        .first()
        .map(|a| a.port())
        .filter(|&p| p != 0)
}

fn truncate(s: &str) -> String {
    s.chars().take(256).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_common_file_gets_the_requesters_firmware_base_and_the_shared_data_keeps_none() {
        let mut common = Common::default();
        common
            .firmware
            .insert("T46S".into(), "T46S-66.86.0.15.rom".into());
        let name = "y000000000066.cfg";
        let mut loaded = Loaded {
            file: classify(name),
            owner: None,
            target: None,
            site: None,
            static_file: None,
            static_secret: false,
            common: Arc::new(common),
            own_firmware: None,
            firmware_base: "https://box:8443/firmware/".into(),
            scep_url: String::new(),
            home_site: None,
        };
        let served = decide(&loaded, &Requester::default()).unwrap();
        let text = String::from_utf8(served.rendered.bytes).unwrap();
        assert!(
            text.contains("static.firmware.url = https://box:8443/firmware/T46S-66.86.0.15.rom"),
            "{text}"
        );
        assert!(loaded.common.firmware_base.is_empty());

        loaded.firmware_base.clear();
        let served = decide(&loaded, &Requester::default()).unwrap();
        let text = String::from_utf8(served.rendered.bytes).unwrap();
        assert!(!text.contains("firmware.url"), "{text}");
    }

    /// The admin preview of the settings file names the SCEP URL phones get: a provisioning
    /// URL over plain HTTP sends them to the HTTPS listener.
    #[test]
    fn the_preview_names_the_https_scep_url_phones_get() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let catalogue = Arc::new(Catalogue::default());
        let mac: Mac = "00040d112233".parse().unwrap();
        let base = "http://10.0.0.5/firmware/";
        let shown = |https_port| {
            let r = preview(
                &store,
                &catalogue,
                mac,
                "46xxsettings.txt",
                (base, true, https_port),
            )
            .unwrap()
            .unwrap();
            String::from_utf8(r.bytes).unwrap()
        };
        let text = shown(Some(8443));
        assert!(
            text.contains("SET MYCERTURL https://10.0.0.5:8443/scep\n"),
            "{text}"
        );
        let text = shown(None);
        assert!(
            text.contains("SET MYCERTURL http://10.0.0.5/scep\n"),
            "{text}"
        );
    }

    #[test]
    fn the_preview_s_https_port_is_the_first_configured_one_unless_ephemeral() {
        let mut config = crate::config::Config::default();
        config.phone.https_listen = vec!["0.0.0.0:443".parse().unwrap()];
        assert_eq!(preview_https_port(&config), Some(443));
        config.phone.https_listen = vec!["127.0.0.1:0".parse().unwrap()];
        assert_eq!(preview_https_port(&config), None);
    }

    #[test]
    fn only_a_well_formed_authority_is_written_into_a_file() {
        for good in [
            "box",
            "box:8443",
            "10.0.0.5",
            "[2001:db8::1]",
            "[2001:db8::1]:8443",
        ] {
            assert!(plain_host(good), "{good}");
        }
        for bad in ["2001:db8::1", ":80", "[::1", "box:port", "", "a b", "x\"y"] {
            assert!(!plain_host(bad), "{bad}");
        }
    }

    #[test]
    fn the_scep_url_is_the_firmware_base_s_root_with_scep() {
        assert_eq!(
            scep_url("https://box:8443/firmware/", Some(443)),
            "https://box:8443/scep"
        );
        assert_eq!(
            scep_url("http://[2001:db8::1]/firmware/", None),
            "http://[2001:db8::1]/scep"
        );
        assert_eq!(scep_url("", Some(443)), "");
    }

    /// Settings fetched over plain HTTP send the phone to the HTTPS listener of the same host
    /// to enrol: over plain HTTP an attacker on the path could hand it his own RA.
    #[test]
    fn over_plain_http_the_scep_url_is_the_https_listener() {
        assert_eq!(
            scep_url("http://10.0.0.5:8080/firmware/", Some(8443)),
            "https://10.0.0.5:8443/scep"
        );
        assert_eq!(
            scep_url("http://box/firmware/", Some(443)),
            "https://box/scep"
        );
        assert_eq!(
            scep_url("http://[2001:db8::1]:80/firmware/", Some(443)),
            "https://[2001:db8::1]/scep"
        );
    }

    /// Names match in any letter case, so every spelling of a common file is one cache entry:
    /// keyed by spelling, a stream of case variants filled the bounded cache with copies.
    #[test]
    fn every_spelling_of_a_common_file_has_one_cache_key() {
        let loaded = |name: &str| Loaded {
            file: classify(name),
            owner: None,
            target: None,
            site: Some("hq".into()),
            static_file: None,
            static_secret: false,
            common: Arc::new(Common::default()),
            own_firmware: None,
            firmware_base: "https://box:8443/firmware/".into(),
            scep_url: String::new(),
            home_site: None,
        };
        let who = Requester::default();
        for spellings in [
            &["46xxsettings.txt", "46XXSETTINGS.TXT", "46xXsettings.txt"][..],
            &["y000000000066.cfg", "Y000000000066.CFG"],
            &["J100Supgrade.txt", "j100supgrade.TXT"],
        ] {
            let keys: Vec<_> = spellings
                .iter()
                .map(|n| common_key(&loaded(n), &who).unwrap())
                .collect();
            assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        }
    }

    /// A request that names no host gets the box's first name with the port it came in on,
    /// an IPv6 address in brackets and the scheme's default port left out.
    #[test]
    fn without_a_host_the_firmware_base_names_the_box() {
        let conn = |tls, local_port| ConnInfo {
            peer: "127.0.0.1:5000".parse().unwrap(),
            local_port,
            tls,
            client_cert: None,
            client_intermediates: Vec::new(),
            verified_by: Weak::new(),
            proved: false,
        };
        let base = |conn: &ConnInfo, name: &str| {
            let asked = Asked {
                conn,
                method: Method::GET,
                uri: "/y000000000066.cfg".parse().unwrap(),
                user_agent: String::new(),
                authorization: None,
                if_none_match: None,
                range: None,
                if_range: None,
                host: None,
                agent: None,
                cert_mac: None,
                cert_serial: None,
                cert_unproven: None,
            };
            firmware_base(&asked, || Some(name.to_string()))
        };
        assert_eq!(
            base(&conn(true, 443), "fd00::5"),
            "https://[fd00::5]/firmware/"
        );
        assert_eq!(
            base(&conn(false, 8080), "prov.lan"),
            "http://prov.lan:8080/firmware/"
        );
        assert_eq!(base(&conn(false, 80), "prov lan"), "");
    }

    #[test]
    fn a_preview_names_firmware_where_dhcp_points_phones() {
        let mut config = crate::config::Config::default();
        config.pki.server_names = vec!["prov.example.lan".into()];
        config.phone.https_listen = vec!["0.0.0.0:443".parse().unwrap()];
        assert_eq!(
            preview_firmware_base(&config),
            "https://prov.example.lan/firmware/"
        );
        config.phone.https_listen = vec!["0.0.0.0:8443".parse().unwrap()];
        assert_eq!(
            preview_firmware_base(&config),
            "https://prov.example.lan:8443/firmware/"
        );
        config.dhcp.provisioning_url = "http://10.0.0.5/prov/".into();
        assert_eq!(preview_firmware_base(&config), "http://10.0.0.5/firmware/");
    }
}
