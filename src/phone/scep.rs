//! The SCEP route on the phone listeners (plain HTTP and HTTPS: a phone enrolling has no
//! certificate yet): moves bytes between HTTP and the pure protocol code in `crate::scep`,
//! gathers the facts the grant needs from the store and the PKI, and records what happened.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::PhoneState;
use crate::config::{ScepApproval, ScepConfig};
use crate::failure_limit::FailureLimiter;
use crate::firmware::{PhoneBody, full};
use crate::model::{AlarmKind, DeviceState, Mac, PendingEnrolment, PendingState};
use crate::scep::pending::{self, PollAnswer};
use crate::scep::policy::{Decision, Facts};
use crate::scep::recent::{Grant, RecentGrants, key_hash};
use crate::scep::reply::{Outcome, ReplyError, cert_rep};
use crate::scep::{ContentCipher, FailInfo, Header, MessageType, Operation, read_header};

type Resp = Response<PhoneBody>;

/// Where SCEP is served: the path clients are commonly given, and the one Cisco's and other
/// clients append to a bare host name.
const PATHS: [&str; 2] = ["/scep", "/cgi-bin/pkiclient.exe"];

/// Whether a request's path is the SCEP endpoint (letter case ignored, as phones' settings
/// are typed by hand).
pub fn is_scep_path(path: &str) -> bool {
    let path = path.strip_suffix('/').unwrap_or(path);
    PATHS.iter().any(|p| p.eq_ignore_ascii_case(path))
}

#[derive(Debug, thiserror::Error)]
pub enum ChallengeError {
    #[error("scep.challenge_file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("scep.challenge_file {path}: {reason}")]
    Unusable { path: PathBuf, reason: &'static str },
}

/// Reads the challenge: the file's first line, without surrounding white space. A file every
/// user may read is refused, as is an empty challenge, which anyone could send.
pub fn read_challenge(path: &Path) -> Result<String, ChallengeError> {
    use std::os::unix::fs::PermissionsExt;
    let read = |source| ChallengeError::Read {
        path: path.to_path_buf(),
        source,
    };
    let unusable = |reason| ChallengeError::Unusable {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if meta.permissions().mode() & 0o004 != 0 {
        return Err(unusable(
            "every user may read it: the challenge is a secret (chmod o-r)",
        ));
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let challenge = text.lines().next().unwrap_or_default().trim();
    if challenge.is_empty() {
        return Err(unusable("its first line is empty"));
    }
    Ok(challenge.to_string())
}

/// The SCEP service as configured at start.
pub struct ScepService {
    config: ScepConfig,
    refusals: FailureLimiter,
    /// Held from reading whether a device has a certificate to recording the one issued:
    /// two requests for one device at once (a cloned phone, a replay) would otherwise both
    /// find none and both be granted. Enrolments are rare; one at a time costs nothing.
    granting: std::sync::Mutex<()>,
    /// The grants of the last hour, to answer a retransmission with the certificate already
    /// issued (see `scep::recent`). Read and written under `granting`.
    recent: std::sync::Mutex<RecentGrants>,
    /// `pki.device_cert_warn_days`: the expiry alarm is checked again after each grant.
    warn_days: u32,
    /// `phone.header_timeout_ms`, for the body of a PKIOperation too.
    body_timeout: std::time::Duration,
}

impl ScepService {
    /// `None` when SCEP is off. The challenge file is read once here, so that an unusable one
    /// stops the start with its reason instead of failing each phone.
    pub fn new(config: &crate::config::Config) -> Result<Option<ScepService>, ChallengeError> {
        let (warn_days, body_timeout) = (
            config.pki.device_cert_warn_days,
            std::time::Duration::from_millis(config.phone.header_timeout_ms),
        );
        let config = &config.scep;
        if !config.enabled {
            return Ok(None);
        }
        read_challenge(&config.challenge_file)?;
        Ok(Some(ScepService {
            refusals: FailureLimiter::new(config.refusals_per_minute),
            granting: std::sync::Mutex::new(()),
            recent: std::sync::Mutex::new(RecentGrants::default()),
            config: config.clone(),
            warn_days,
            body_timeout,
        }))
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(full(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn binary(content_type: &'static str, body: Vec<u8>) -> Resp {
    let mut r = Response::new(full(Bytes::from(body)));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// The value of `name` in a query string, percent-decoded. A `+` stays a `+`: base64 uses it,
/// and clients (Avaya's among them) put the message in the URL unencoded; a space, which
/// base64 never holds, is read back as the `+` some encoders turned into one.
fn query_value(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(v)
                .decode_utf8_lossy()
                .replace(' ', "+")
        })
    })
}

/// Why a PKIOperation's message could not be read: the answer, and the reason the alarm gives.
type Unread = (Resp, &'static str);

/// The pkiMessage of a PKIOperation: the body of a POST, or the base64 `message` of a GET.
/// `body_timeout`: how long a POST's body may take to arrive (`phone.header_timeout_ms`: a
/// phone sends its few kilobytes at once, and one trickled in would hold its connection).
async fn message(
    req: Request<hyper::body::Incoming>,
    body_timeout: std::time::Duration,
) -> Result<Vec<u8>, Unread> {
    use base64::Engine;
    let too_large = || {
        (
            text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "a SCEP message is at most {} bytes\n",
                    crate::scep::MAX_MESSAGE
                ),
            ),
            "the message is larger than the bound",
        )
    };
    if req.method() == Method::POST {
        let limited = http_body_util::Limited::new(req.into_body(), crate::scep::MAX_MESSAGE);
        return match tokio::time::timeout(body_timeout, limited.collect()).await {
            Ok(Ok(body)) => Ok(body.to_bytes().to_vec()),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Ok(Err(_)) => Err((
                text(StatusCode::BAD_REQUEST, "the request body was cut off\n"),
                "the request body was cut off",
            )),
            Err(_) => Err((
                text(
                    StatusCode::REQUEST_TIMEOUT,
                    "the request body came too slowly\n",
                ),
                "the request body came too slowly",
            )),
        };
    }
    let Some(b64) = req.uri().query().and_then(|q| query_value(q, "message")) else {
        return Err((
            text(
                StatusCode::BAD_REQUEST,
                "PKIOperation by GET needs message= (base64)\n",
            ),
            "a GET without message=",
        ));
    };
    let b64: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if b64.len() > crate::scep::MAX_MESSAGE * 4 / 3 + 4 {
        return Err(too_large());
    }
    base64::engine::general_purpose::STANDARD_PAD_INDIFFERENT
        .decode(b64)
        .map_err(|e| {
            (
                text(
                    StatusCode::BAD_REQUEST,
                    format!("message: not base64: {e}\n"),
                ),
                "the message is not base64",
            )
        })
}

/// Answers one request to a SCEP path (see [`is_scep_path`]).
pub async fn handle(
    state: &Arc<PhoneState>,
    scep: &Arc<ScepService>,
    peer: IpAddr,
    req: Request<hyper::body::Incoming>,
) -> Resp {
    let method = req.method().clone();
    if method != Method::GET && method != Method::POST {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
        return r;
    }
    let operation = req
        .uri()
        .query()
        .and_then(|q| query_value(q, "operation"))
        .unwrap_or_default();
    match Operation::parse(&operation) {
        Some(Operation::GetCaCaps) => text(StatusCode::OK, crate::scep::capabilities()),
        Some(Operation::GetCaCert) => {
            let pki = state.pki.clone();
            let made = tokio::task::spawn_blocking(move || {
                let ra = pki.scep_ra().map_err(|e| e.to_string())?;
                crate::scep::reply::ca_certs(crate::scep::RaKey::cert_der(ra.key()), pki.ca_cert())
                    .map_err(|e| e.to_string())
            })
            .await;
            match made {
                Ok(Ok(der)) => binary("application/x-x509-ca-ra-cert", der),
                Ok(Err(e)) => unavailable(&e),
                Err(e) => unavailable(&e.to_string()),
            }
        }
        Some(Operation::PkiOperation) => {
            if let Some(b) = scep.refusals.blocked(peer, Instant::now()) {
                state
                    .metrics
                    .scep
                    .rate_limited
                    .fetch_add(1, Ordering::Relaxed);
                let mut r = text(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many refused enrolments from this address: try again later\n",
                );
                if let Ok(v) = HeaderValue::from_str(&b.wait.to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return r;
            }
            let body = match message(req, scep.body_timeout).await {
                Ok(b) => b,
                Err((resp, why)) => {
                    refused(state, scep, peer, None, why);
                    return resp;
                }
            };
            let (st, sc) = (state.clone(), scep.clone());
            let method = method.to_string();
            let resp =
                tokio::task::spawn_blocking(move || enrol(&st, &sc, peer, &method, &body)).await;
            match resp {
                Ok(Enrolled::Answer(der, granted)) => {
                    if granted {
                        // A device given a certificate no longer counts among those whose
                        // certificates expire, as after `pki issue-device`.
                        crate::pki::device_expiry::check(
                            &state.store,
                            &state.recorder,
                            scep.warn_days,
                        )
                        .await;
                    }
                    binary("application/x-pki-message", der)
                }
                Ok(Enrolled::Http(resp)) => resp,
                Err(e) => unavailable(&e.to_string()),
            }
        }
        None => text(
            StatusCode::BAD_REQUEST,
            "operation: GetCACaps, GetCACert or PKIOperation\n",
        ),
    }
}

fn unavailable(e: &str) -> Resp {
    tracing::error!(error = %e, "SCEP cannot answer");
    text(StatusCode::SERVICE_UNAVAILABLE, "try again later\n")
}

/// How an enrolment is answered: a pkiMessage (CertRep) and whether it granted, or an HTTP
/// error when no CertRep can be made.
enum Enrolled {
    Answer(Vec<u8>, bool),
    Http(Resp),
}

/// Counts, limits and alarms a refusal; nothing is stored.
fn refused(state: &PhoneState, scep: &ScepService, peer: IpAddr, mac: Option<Mac>, why: &str) {
    state.metrics.scep.refused.fetch_add(1, Ordering::Relaxed);
    scep.refusals.fail(peer, Instant::now());
    let source = match mac {
        Some(m) => format!("{peer} as {m}"),
        None => peer.to_string(),
    };
    tracing::warn!(%peer, mac = mac.map(tracing::field::display), reason = %why, "SCEP enrolment refused");
    state.recorder.alarm(
        AlarmKind::ScepRefused,
        source,
        format!("SCEP enrolment refused: {why}"),
    );
}

/// Answers one request with a CertRep: signed by the RA, to the request's transaction.
struct Replier<'a> {
    state: &'a PhoneState,
    scep: &'a ScepService,
    peer: IpAddr,
    ra: &'a dyn crate::scep::RaKey,
}

impl Replier<'_> {
    fn answer(&self, header: &Header, outcome: Outcome<'_>, granted: bool) -> Enrolled {
        match rep(self.ra, header, outcome) {
            Ok(der) => Enrolled::Answer(der, granted),
            Err(resp) => Enrolled::Http(*resp),
        }
    }

    fn refuse(&self, header: &Header, mac: Option<Mac>, fail: FailInfo, why: &str) -> Enrolled {
        refused(
            self.state,
            self.scep,
            self.peer,
            mac,
            &format!("{why} ({})", fail.name()),
        );
        self.answer(header, Outcome::Failed(fail), false)
    }

    /// The answer to a poll (a CertPoll, or the request sent again) for `held`.
    fn held(&self, header: &Header, cipher: ContentCipher, held: &PendingEnrolment) -> Enrolled {
        let valid = match device_facts(self.state, held.mac) {
            Ok((_, valid)) => valid,
            Err(e) => return Enrolled::Http(unavailable(&e.to_string())),
        };
        let cert_valid = pending::approved_cert_valid(held, &valid);
        let now = crate::model::now_unix();
        match pending::answer(held, now, self.scep.config.pending_days, cert_valid) {
            PollAnswer::Pending => self.answer(header, Outcome::Pending, false),
            PollAnswer::Granted { serial, cert } => {
                tracing::info!(peer = %self.peer, mac = %held.mac, %serial,
                    "SCEP poll answered with the certificate its approval issued");
                self.answer(
                    header,
                    Outcome::Granted {
                        cert: &cert,
                        cipher,
                    },
                    false,
                )
            }
            PollAnswer::Failed(r) => self.refuse(header, Some(held.mac), r.fail, &r.reason),
        }
    }
}

/// Hex SHA-256 of the key of the certificate that signed a request.
fn signer_key(header: &Header) -> Option<String> {
    use der::Encode;
    let spki = header
        .signer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .ok()?;
    Some(crate::phone::credentials::hex(&key_hash(&spki)))
}

/// One PKIOperation, from the message to the CertRep (blocking: RSA, the store).
fn enrol(
    state: &PhoneState,
    scep: &ScepService,
    peer: IpAddr,
    method: &str,
    body: &[u8],
) -> Enrolled {
    let ra = match state.pki.scep_ra() {
        Ok(ra) => ra,
        Err(e) => return Enrolled::Http(unavailable(&e.to_string())),
    };
    let signed = match read_header(body) {
        Ok(s) => s,
        Err(e) => {
            refused(state, scep, peer, None, &format!("not a SCEP request: {e}"));
            return Enrolled::Http(text(
                StatusCode::BAD_REQUEST,
                format!("not a SCEP pkiMessage: {e}\n"),
            ));
        }
    };
    let replier = Replier {
        state,
        scep,
        peer,
        ra: ra.key(),
    };
    if signed.header.message_type == MessageType::CertPoll {
        return poll(&replier, signed);
    }
    let request = match signed.open(ra.key(), scep.config.allow_single_des) {
        Ok(r) => r,
        Err(refused) => {
            let (header, r) = *refused;
            return replier.refuse(&header, None, r.fail, &r.reason);
        }
    };
    let (header, csr) = (&request.header, &request.csr);
    let challenge = match read_challenge(&scep.config.challenge_file) {
        Ok(c) => c,
        Err(e) => return Enrolled::Http(unavailable(&e.to_string())),
    };
    let granting = scep.granting.lock().unwrap_or_else(|p| p.into_inner());
    let (device_state, valid_serials) = match csr.mac.map(|mac| device_facts(state, mac)) {
        Some(Ok(facts)) => facts,
        Some(Err(e)) => return Enrolled::Http(unavailable(&e.to_string())),
        None => (None, Vec::new()),
    };
    let key = key_hash(&csr.spki);
    let operator_approval = scep.config.approval == ScepApproval::Operator;
    // The request held for this device's approval, if any. Sent again (same transaction, same
    // key), it is a poll: answered as the held request stands, not decided afresh (once
    // approved, the device's certificate would count against it).
    let held = match csr.mac.filter(|_| operator_approval) {
        Some(mac) if header.message_type == MessageType::PkcsReq => {
            match state.store.pending_enrolment(mac) {
                Ok(held) => held,
                Err(e) => return Enrolled::Http(unavailable(&e.to_string())),
            }
        }
        _ => None,
    };
    let key_hex = crate::phone::credentials::hex(&key);
    if let Some(h) = held.as_ref().filter(|h| {
        let cert_valid = pending::approved_cert_valid(h, &valid_serials);
        pending::is_resent(h, &header.transaction_id, &key_hex, cert_valid)
    }) {
        drop(granting);
        return replier.held(header, request.cipher, h);
    }
    // A retransmission of a request granted lately, whose certificate is still valid: it is
    // decided as the first was (the device's own certificate does not count against it) and
    // answered with the same certificate.
    let repeat = csr.mac.and_then(|mac| {
        let recent = scep.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .find(
                mac,
                header.message_type,
                &header.transaction_id,
                &key,
                Instant::now(),
            )
            .filter(|g| valid_serials.contains(&g.serial))
            .cloned()
    });
    let signer_rsa = header
        .signer
        .tbs_certificate()
        .subject_public_key_info()
        .algorithm
        .oid
        == crate::scep::oids::RSA_ENCRYPTION;
    let signer = (header.message_type == MessageType::RenewalReq)
        .then(|| state.pki.valid_own_device(&header.signer_der).ok())
        .flatten();
    let signer_device = signer.as_ref().map(|s| s.mac);
    let decision = crate::scep::policy::decide(&Facts {
        message_type: header.message_type,
        csr,
        challenge: &challenge,
        signer_rsa,
        in_inventory: device_state.is_some(),
        inactive: device_state.is_some_and(|s| {
            matches!(
                s,
                DeviceState::Inactive | DeviceState::Deactivated | DeviceState::Released
            )
        }),
        enrolment_open: scep
            .config
            .open_until
            .is_none_or(|end| crate::model::now_unix() < end),
        has_valid_cert: !valid_serials.is_empty() && repeat.is_none(),
        signer_device,
        operator_approval,
    });
    let (mac, renewal) = match decision {
        Decision::Grant { mac, renewal } => (mac, renewal),
        Decision::Hold { mac } => {
            let answer = hold(&replier, &request, mac, &key_hex, held.as_ref(), method);
            drop(granting);
            return answer;
        }
        Decision::Refuse { fail, reason } => {
            return replier.refuse(header, csr.mac, fail, &reason);
        }
    };
    if let Some(grant) = repeat {
        drop(granting);
        tracing::info!(%peer, %mac, serial = %grant.serial, transaction = %header.transaction_id,
            "SCEP request repeated: answered with the certificate it was granted");
        return replier.answer(
            header,
            Outcome::Granted {
                cert: &grant.cert,
                cipher: request.cipher,
            },
            false,
        );
    }
    let (cert, record) = match state
        .pki
        .issue_device_for_key(mac, scep.config.cert_days, &csr.spki)
    {
        Ok(issued) => issued,
        Err(e) => return Enrolled::Http(unavailable(&e.to_string())),
    };
    // The answer is made before the certificate is recorded: an answer that cannot be made
    // leaves nothing on record that would refuse the phone's next try.
    let der = match rep(
        ra.key(),
        header,
        Outcome::Granted {
            cert: &cert,
            cipher: request.cipher,
        },
    ) {
        Ok(der) => der,
        Err(resp) => return Enrolled::Http(*resp),
    };
    let how = if renewal { "renewal" } else { "enrolment" };
    let entry = crate::store::AuditEntry {
        seq: 0,
        time: crate::model::now_unix(),
        who: "scep".into(),
        source: peer.to_string(),
        method: method.to_string(),
        resource: format!("/scep/{mac}"),
        status: 200,
        summary: format!(
            "device certificate {} issued to {mac} by SCEP {how} ({} key, {})",
            record.serial,
            csr.key,
            request.cipher.name()
        ),
        changes: serde_json::json!({ "certificate": { "before": null, "after": &record } }),
    };
    let renewed_with = signer.as_ref().filter(|_| renewal);
    match state
        .store
        .record_issued_cert_audited(&record, entry, renewed_with)
    {
        Ok(_) => {}
        Err(e @ crate::store::StoreError::SignerRevoked { .. }) => {
            return replier.refuse(header, Some(mac), FailInfo::BadCertId, &e.to_string());
        }
        Err(e @ crate::store::StoreError::RevokedMeanwhile { .. }) => {
            return replier.refuse(header, Some(mac), FailInfo::BadRequest, &e.to_string());
        }
        Err(e) => return Enrolled::Http(unavailable(&e.to_string())),
    }
    scep.recent
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remember(Grant {
            mac,
            message_type: header.message_type,
            transaction_id: header.transaction_id.clone(),
            key_hash: key,
            serial: record.serial.clone(),
            cert: cert.to_vec(),
            at: Instant::now(),
        });
    // Recorded: a request for this device now finds it has a certificate.
    drop(granting);
    let counter = match renewal {
        true => &state.metrics.scep.renewed,
        false => &state.metrics.scep.granted,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    tracing::info!(%peer, %mac, serial = %record.serial, how, "device certificate issued by SCEP");
    Enrolled::Answer(der, true)
}

/// A CertPoll: answered as the request held for the device its subject names stands,
/// provided that request has the poll's transactionID and was signed by the poll's key;
/// otherwise FAILURE badCertId, as for a transaction the box does not know. Only that device's
/// record is read: another device's, even one unreadable, has no say in the answer.
fn poll(replier: &Replier<'_>, signed: crate::scep::request::Signed) -> Enrolled {
    let scep = replier.scep;
    let request = match signed.open_poll(replier.ra, scep.config.allow_single_des) {
        Ok(r) => r,
        Err(refused) => {
            let (header, r) = *refused;
            return replier.refuse(&header, None, r.fail, &r.reason);
        }
    };
    let header = &request.header;
    let mac = match pending::polled_device(&request.subject) {
        Ok(mac) => mac,
        Err(r) => return replier.refuse(header, None, r.fail, &r.reason),
    };
    let found = match replier.state.store.pending_enrolment(mac) {
        Ok(found) => found,
        Err(e) => return Enrolled::Http(unavailable(&e.to_string())),
    };
    let signer = signer_key(header).unwrap_or_default();
    match pending::poll_for(found.as_ref(), &header.transaction_id, &signer) {
        Ok(held) => replier.held(header, request.cipher, held),
        Err(r) => replier.refuse(header, Some(mac), r.fail, &r.reason),
    }
}

/// A first enrolment that passed every check, held for the operator: stored in place of
/// `held` (the device's earlier request, when [`pending::may_replace`] lets it), alarmed,
/// and answered PENDING. Called under `granting`.
fn hold(
    replier: &Replier<'_>,
    request: &crate::scep::PkiRequest,
    mac: Mac,
    key_hex: &str,
    held: Option<&PendingEnrolment>,
    method: &str,
) -> Enrolled {
    let (state, scep, peer) = (replier.state, replier.scep, replier.peer);
    let (header, csr) = (&request.header, &request.csr);
    let now = crate::model::now_unix();
    if let Some(Err(r)) = held.map(|h| pending::may_replace(h, now, scep.config.pending_days)) {
        return replier.refuse(header, Some(mac), r.fail, &r.reason);
    }
    let Some(signer_key_sha256) = signer_key(header) else {
        return replier.refuse(
            header,
            Some(mac),
            FailInfo::BadMessageCheck,
            "the signer certificate's key cannot be encoded",
        );
    };
    let request = PendingEnrolment {
        mac,
        transaction_id: header.transaction_id.clone(),
        spki: csr.spki.clone(),
        key_sha256: key_hex.to_string(),
        key: csr.key.to_string(),
        signer_key_sha256,
        source: peer.to_string(),
        method: method.to_string(),
        requested_at: now,
        state: PendingState::Pending,
    };
    match state.store.hold_enrolment(&request, held) {
        Ok(()) => {}
        Err(
            e @ (crate::store::StoreError::Superseded(_) | crate::store::StoreError::NotFound(_)),
        ) => {
            return replier.refuse(header, Some(mac), FailInfo::BadRequest, &e.to_string());
        }
        Err(e) => return Enrolled::Http(unavailable(&e.to_string())),
    }
    state.metrics.scep.pending.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(%peer, %mac, key = %csr.key, transaction = %header.transaction_id,
        "SCEP enrolment held for an operator's approval");
    state.recorder.alarm(
        AlarmKind::ScepPending,
        request.alarm_source(),
        format!(
            "SCEP enrolment of {mac} ({} key, SHA-256 {key_hex}) waits for an operator's approval: edgeprov pki approve --mac {mac} --key {}, or reject it",
            csr.key,
            request.key_short()
        ),
    );
    replier.answer(header, Outcome::Pending, false)
}

/// The CertRep for `outcome`, or the HTTP answer when none can be made: `400` when the
/// request's signer key cannot be encrypted to, `503` for a failure of the box.
fn rep(
    ra: &dyn crate::scep::RaKey,
    header: &Header,
    outcome: Outcome<'_>,
) -> Result<Vec<u8>, Box<Resp>> {
    cert_rep(ra, header, outcome).map_err(|e| {
        Box::new(match e {
            ReplyError::RecipientKey | ReplyError::Encrypt => {
                text(StatusCode::BAD_REQUEST, format!("{e}\n"))
            }
            e => unavailable(&e.to_string()),
        })
    })
}

/// The state of `mac` in the inventory (`None`: not in it), and the serials of its
/// certificates of the box's CA on record that are neither revoked nor expired.
fn device_facts(
    state: &PhoneState,
    mac: Mac,
) -> Result<(Option<DeviceState>, Vec<String>), crate::store::StoreError> {
    let device_state = state.store.get_device(mac)?.map(|d| d.state);
    let now = crate::model::now_unix();
    let valid = state
        .store
        .issued_certs_of(mac)?
        .into_iter()
        .filter(|c| c.revoked.is_none() && c.not_after.is_none_or(|end| end > now))
        .map(|c| c.serial)
        .collect();
    Ok((device_state, valid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scep_paths_are_matched_whole_in_any_case() {
        assert!(is_scep_path("/scep"));
        assert!(is_scep_path("/scep/"));
        assert!(is_scep_path("/cgi-bin/pkiclient.exe"));
        assert!(is_scep_path("/CGI-BIN/PKICLIENT.EXE"));
        assert!(!is_scep_path("/scep/other"));
        assert!(!is_scep_path("/x/scep"));
    }

    #[test]
    fn a_get_message_keeps_its_plus_signs() {
        assert_eq!(
            query_value("operation=PKIOperation&message=ab+c%2Fd%3D", "message").as_deref(),
            Some("ab+c/d=")
        );
        assert_eq!(
            query_value("message=ab c", "message").as_deref(),
            Some("ab+c")
        );
        assert_eq!(query_value("operation=GetCACaps", "message"), None);
    }

    #[test]
    fn a_challenge_file_every_user_may_read_or_empty_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("challenge");
        std::fs::write(&path, "  s3cret \nsecond line\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(read_challenge(&path).unwrap(), "s3cret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            read_challenge(&path)
                .unwrap_err()
                .to_string()
                .contains("every user")
        );
        std::fs::write(&path, "\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            read_challenge(&path)
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        assert!(read_challenge(&dir.path().join("missing")).is_err());
    }
}
