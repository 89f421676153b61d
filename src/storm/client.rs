//! One phone's boot over the network: TCP, the mutual-TLS handshake, then its files over HTTP/1.1.
//! Thin I/O: which files, and whether an answer is right, are decided in `phone.rs`.
//!
//! Connections: by default a phone opens one connection, makes one full handshake and fetches its
//! whole sequence over it (keep-alive), the way HTTP/1.1 clients in current phone firmware
//! behave; when the server closes it after an answer, the phone opens a new one for its next
//! file (a reconnect when the server closed it without saying so; see `boot`). With
//! `--resume-sessions` it opens a new connection for every file and resumes the TLS session of
//! its first one, which measures the server's resumption path (phones that close after each
//! file).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::HandshakeKind;
use rustls_pki_types::ServerName;
use tokio::task::JoinHandle;

use super::addresses::Addresses;
use super::counted::{BytesRead, Counted};
use super::phone::{Phone, Step, firmware_named};
use super::stats::{ErrorKind, Tally};

/// Where the phones go and how patient they are.
pub struct Plan {
    pub addrs: Addresses,
    pub server_name: ServerName<'static>,
    /// The `Host` header (`HOST:PORT` of the target).
    pub authority: String,
    pub timeout: Duration,
    pub device_only: bool,
    pub firmware: bool,
    pub resume: bool,
}

const FIRMWARE_LABEL: &str = "firmware";

/// Most of a file the simulator keeps to check. A phone's settings files are far smaller (the
/// whole Avaya settings template is about 1 MB); a larger answer fails the check rather than
/// make the simulator's memory grow with what a server sends (images are counted, not kept).
const MAX_KEPT: usize = 8 << 20;

/// A phone's open connection.
struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    /// Plaintext bytes read: answer bytes.
    read: BytesRead,
    /// Bytes read off the socket, TLS records included.
    wire: BytesRead,
    /// With TLS 1.3, `wire` when the phone's handshake ended; `None` with TLS 1.2.
    tls13_handshake_end: Option<u64>,
    /// A TLS 1.3 handshake not counted yet: see [`Conn::count_handshake`].
    uncounted: Option<Handshake>,
    /// The last answer on it said the server would close it (`Connection: close`, or HTTP/1.0
    /// without keep-alive): a new connection for the next file is then no reconnect.
    closing: bool,
    /// The task that drives the connection: it owns the socket, and ends with why the
    /// connection broke. `None` once that was taken ([`Conn::broken_by`]).
    driver: Option<JoinHandle<Result<(), ErrorKind>>>,
}

impl Conn {
    /// Whether the server may not have finished its half of the handshake yet. A TLS 1.3 client
    /// ends its handshake when it sends its certificate and Finished, before the server has
    /// checked them (RFC 8446 §4.4); the server's first record after that (a session ticket,
    /// an alert, an answer) is the first sign it did. A connection that breaks before any such
    /// record broke in the handshake as far as the phone can tell: a `tls` error, as the same
    /// reset is with TLS 1.2 (whose handshake ends with the server's Finished), not an `http` one.
    fn handshake_unconfirmed(&self) -> bool {
        self.tls13_handshake_end
            .is_some_and(|end| self.wire.get() == end)
    }

    /// Counts the connection's TLS 1.3 handshake once the first request on it has ended, unless
    /// the server refused it: a TLS 1.3 phone finishes its half before the server has checked
    /// its certificate, so a handshake the server then refused (an alert, a reset, silence) is
    /// no handshake, as it is none with TLS 1.2.
    fn count_handshake(&mut self, ended: &Result<Answer, Failed>, tally: &mut Tally) {
        let refused = matches!(
            ended,
            Err(Failed::Unanswered(ErrorKind::Tls) | Failed::Broken(ErrorKind::Tls))
        );
        if let Some(handshake) = self.uncounted.take()
            && !refused
            && !self.handshake_unconfirmed()
        {
            handshake.count(tally);
        }
    }

    /// Closes the connection and waits until its socket is closed. The open-file limit is
    /// checked against one socket per phone in flight: a phone that opened its next connection
    /// while its last one was still closing would hold two, and a storm at the limit would fail
    /// connections it was told it had room for. A server that does not take the close within
    /// `timeout` has the socket dropped under it.
    async fn close(self, timeout: Duration) {
        let Conn { sender, driver, .. } = self;
        drop(sender);
        let Some(mut driver) = driver else { return };
        if tokio::time::timeout(timeout, &mut driver).await.is_err() {
            driver.abort();
            let _ = driver.await;
        }
    }

    /// Why the connection broke, as its task saw it, when a request on it failed with nothing
    /// better than an HTTP error. The task reads whatever the server sends, request or not: when
    /// it read the server's alert (a TLS 1.3 server refusing the phone's certificate after the
    /// phone's half of the handshake) before the phone's request went out, the request fails
    /// with only "connection closed", and the alert is in the task's error.
    async fn broken_by(&mut self, timeout: Duration) -> ErrorKind {
        let Some(driver) = self.driver.as_mut() else {
            return ErrorKind::Http;
        };
        let Ok(ended) = tokio::time::timeout(timeout, driver).await else {
            return ErrorKind::Http;
        };
        self.driver = None;
        match ended {
            Ok(Err(kind)) => kind,
            Ok(Ok(())) | Err(_) => ErrorKind::Http,
        }
    }
}

/// Closes the phone's connection, if it has one (see [`Conn::close`]).
async fn close(conn: &mut Option<Conn>, timeout: Duration) {
    if let Some(c) = conn.take() {
        c.close(timeout).await;
    }
}

/// A handshake the phone made: connect + TLS handshake.
struct Handshake {
    took: Duration,
    resumed: bool,
}

impl Handshake {
    fn count(&self, tally: &mut Tally) {
        tally.handshake.record(self.took);
        if self.resumed {
            tally.resumed_handshakes += 1;
        } else {
            tally.full_handshakes += 1;
        }
    }
}

/// One answered request.
struct Answer {
    status: u16,
    body: Vec<u8>,
    len: usize,
    took: Duration,
}

/// Boots one phone; counts everything in `tally`; true when every file arrived and checked out.
///
/// A server may close an idle keep-alive connection without saying so, and the phone's next
/// request can cross the close. A phone then reconnects, and an HTTP client retries an
/// idempotent GET whose connection closed before any byte of the answer; so the simulator opens
/// a new connection (a new handshake) and asks once more, counted as a reconnect, and counts an
/// error only when that fails too.
pub async fn boot(phone: &Phone, tls: Arc<ClientConfig>, plan: &Plan, tally: &mut Tally) -> bool {
    let mut conn = None;
    let ok = sequence(phone, tls, plan, tally, &mut conn).await;
    close(&mut conn, plan.timeout).await;
    ok
}

/// The phone's files in order, on `conn` (the phone's connection, opened as needed and left
/// open for [`boot`] to close).
async fn sequence(
    phone: &Phone,
    tls: Arc<ClientConfig>,
    plan: &Plan,
    tally: &mut Tally,
    conn: &mut Option<Conn>,
) -> bool {
    let agent = phone.user_agent();
    let mut steps = phone.sequence(plan.device_only);
    let mut all_ok = true;
    let mut firmware_asked = false;
    let mut i = 0;
    while let Some(step) = steps.get(i).cloned() {
        i += 1;
        let reused = match conn.as_mut() {
            Some(c) if !plan.resume => {
                let open = reusable(&mut c.sender, plan.timeout).await;
                if !open && !c.closing {
                    tally.reconnects += 1;
                }
                open
            }
            _ => false,
        };
        if !reused {
            close(conn, plan.timeout).await;
            match connect(plan, tls.clone(), tally).await {
                Ok(c) => *conn = Some(c),
                Err(kind) => {
                    tally.error(Some(step.label), kind);
                    return false;
                }
            }
        }
        let Some(c) = conn.as_mut() else {
            return false;
        };
        let keep_body = step.label != FIRMWARE_LABEL;
        let mut answer = ask(c, &step.path, plan, &agent, keep_body, tally).await;
        if reused && matches!(answer, Err(Failed::Unanswered(_))) {
            tally.reconnects += 1;
            close(conn, plan.timeout).await;
            match connect(plan, tls.clone(), tally).await {
                Ok(fresh) => {
                    let fresh = conn.insert(fresh);
                    answer = ask(fresh, &step.path, plan, &agent, keep_body, tally).await
                }
                Err(kind) => answer = Err(Failed::Broken(kind)),
            }
        }
        let Answer {
            status,
            body,
            len,
            took,
        } = match answer {
            Ok(answer) => answer,
            Err(Failed::Unanswered(kind) | Failed::Broken(kind)) => {
                tally.error(Some(step.label), kind);
                return false;
            }
        };
        tally.answered(step.label, took, len);
        if status != 200 {
            tally.error(Some(step.label), ErrorKind::Status(status));
            all_ok = false;
            continue;
        }
        // An image is checked only for having bytes: what the bytes are is the firmware
        // cache's business, and its tests'.
        let checked = if keep_body {
            phone.check(&step, &body).is_ok()
        } else {
            len > 0
        };
        if !checked {
            tally.error(Some(step.label), ErrorKind::Check);
            all_ok = false;
            continue;
        }
        tally.file_ok(step.label);
        // Any file may name the image: edgeprov names a Yealink phone's own model's in its
        // `{mac}.cfg` when the models of its family do not all run the same.
        if plan.firmware
            && !firmware_asked
            && let Some(path) = firmware_named(phone.vendor, &body)
        {
            firmware_asked = true;
            steps.push(Step {
                label: FIRMWARE_LABEL,
                path,
                device_file: false,
            });
        }
    }
    // Asked to fetch firmware, a storm whose files named none has not shown what it was asked
    // to: the phone fails rather than pass without the download.
    if plan.firmware && !firmware_asked && all_ok {
        tally.error(Some(FIRMWARE_LABEL), ErrorKind::Check);
        return false;
    }
    all_ok
}

/// Whether the phone's open connection can carry its next request. A server may close it after
/// an answer (`Connection: close`, or an HTTP/1.0 answer without keep-alive), as HTTP/1.1
/// allows; a phone then opens a new one for its next file, and so does the simulator, instead of
/// counting the server's legitimate close as a broken connection.
async fn reusable(sender: &mut SendRequest<Empty<Bytes>>, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, sender.ready()).await,
        Ok(Ok(()))
    )
}

/// Why a request got no usable answer.
enum Failed {
    /// Failed before any byte of an answer arrived (not by the deadline): the server may have
    /// closed the connection as the request crossed it, and asking again is safe.
    Unanswered(ErrorKind),
    /// Timed out, or broke part way through the answer.
    Broken(ErrorKind),
}

/// One GET of `path` on `conn` within the deadline; records whether the server said it closes,
/// and counts the handshake it shows the server accepted.
async fn ask(
    conn: &mut Conn,
    path: &str,
    plan: &Plan,
    agent: &str,
    keep_body: bool,
    tally: &mut Tally,
) -> Result<Answer, Failed> {
    let ended = ask_once(conn, path, plan, agent, keep_body).await;
    conn.count_handshake(&ended, tally);
    ended
}

/// The GET itself, for [`ask`].
async fn ask_once(
    conn: &mut Conn,
    path: &str,
    plan: &Plan,
    agent: &str,
    keep_body: bool,
) -> Result<Answer, Failed> {
    // A path no request can carry (a server's file may name any image) fails whatever the
    // connection: not one to ask again.
    let req = http::Request::get(path)
        .header(header::HOST, &plan.authority)
        .header(header::USER_AGENT, agent)
        .body(Empty::new())
        .map_err(|_| Failed::Broken(ErrorKind::Http))?;
    let read_before = conn.read.get();
    let started = Instant::now();
    let fetched = match tokio::time::timeout(plan.timeout, fetch(&mut conn.sender, req, keep_body))
        .await
        .unwrap_or(Err(ErrorKind::Timeout))
    {
        Err(ErrorKind::Http) => Err(conn.broken_by(plan.timeout).await),
        fetched => fetched,
    };
    match fetched {
        Ok(f) => {
            conn.closing = f.closing;
            Ok(Answer {
                status: f.status,
                body: f.body,
                len: f.len,
                took: started.elapsed(),
            })
        }
        Err(ErrorKind::Http) if conn.handshake_unconfirmed() => {
            Err(Failed::Unanswered(ErrorKind::Tls))
        }
        Err(kind) if kind != ErrorKind::Timeout && conn.read.get() == read_before => {
            Err(Failed::Unanswered(kind))
        }
        Err(kind) => Err(Failed::Broken(kind)),
    }
}

/// TCP connect and TLS handshake within the deadline; the HTTP connection is driven by its own
/// task, which ends when the returned sender is dropped.
async fn connect(
    plan: &Plan,
    tls: Arc<ClientConfig>,
    tally: &mut Tally,
) -> Result<Conn, ErrorKind> {
    let started = Instant::now();
    let work = async {
        let tcp = plan.addrs.connect().await?;
        let _ = tcp.set_nodelay(true);
        let (tcp, wire) = Counted::new(tcp);
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(plan.server_name.clone(), tcp)
            .await
            .map_err(|_| ErrorKind::Tls)?;
        let session = stream.get_ref().1;
        let resumed = session.handshake_kind() == Some(HandshakeKind::Resumed);
        let tls13_handshake_end = (session.protocol_version()
            == Some(rustls::ProtocolVersion::TLSv1_3))
        .then(|| wire.get());
        let (stream, read) = Counted::new(stream);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ErrorKind::Http)?;
        Ok::<_, ErrorKind>((
            Conn {
                sender,
                read,
                wire,
                tls13_handshake_end,
                uncounted: None,
                closing: false,
                driver: Some(tokio::spawn(
                    async move { conn.await.map_err(|e| classify(&e)) },
                )),
            },
            resumed,
        ))
    };
    let (mut conn, resumed) = tokio::time::timeout(plan.timeout, work)
        .await
        .unwrap_or(Err(ErrorKind::Timeout))?;
    let handshake = Handshake {
        took: started.elapsed(),
        resumed,
    };
    if conn.tls13_handshake_end.is_some() {
        conn.uncounted = Some(handshake);
    } else {
        handshake.count(tally);
    }
    Ok(conn)
}

/// What one GET brought back.
struct Fetched {
    status: u16,
    /// The body when asked to keep it.
    body: Vec<u8>,
    len: usize,
    closing: bool,
}

/// One request.
async fn fetch(
    sender: &mut SendRequest<Empty<Bytes>>,
    req: http::Request<Empty<Bytes>>,
    keep_body: bool,
) -> Result<Fetched, ErrorKind> {
    sender.ready().await.map_err(|e| classify(&e))?;
    let resp = sender.send_request(req).await.map_err(|e| classify(&e))?;
    let status = resp.status().as_u16();
    let closing = announces_close(resp.version(), resp.headers());
    let mut body = resp.into_body();
    let mut kept = Vec::new();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| classify(&e))?;
        if let Some(data) = frame.data_ref() {
            len += data.len();
            if keep_body {
                if kept.len() + data.len() > MAX_KEPT {
                    return Err(ErrorKind::Check);
                }
                kept.extend_from_slice(data);
            }
        }
    }
    Ok(Fetched {
        status,
        body: kept,
        len,
        closing,
    })
}

/// Whether an answer tells the client the server closes the connection after it: HTTP/1.1's
/// `Connection: close`, or HTTP/1.0 without `Connection: keep-alive`.
fn announces_close(version: http::Version, headers: &http::HeaderMap) -> bool {
    let has = |token: &str| {
        headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has("close") || (version <= http::Version::HTTP_10 && !has("keep-alive"))
}

/// A failure after the handshake is a TLS one when rustls is behind it (in TLS 1.3 a refused
/// client certificate is only reported with the first read), else an HTTP one.
fn classify(e: &hyper::Error) -> ErrorKind {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Tls;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return ErrorKind::Tls;
        }
        source = err.source();
    }
    ErrorKind::Http
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Version};

    fn headers(connection: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in connection {
            h.append(header::CONNECTION, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn which_answers_announce_a_close() {
        assert!(!announces_close(Version::HTTP_11, &headers(&[])));
        assert!(!announces_close(
            Version::HTTP_11,
            &headers(&["keep-alive"])
        ));
        assert!(announces_close(Version::HTTP_11, &headers(&["Close"])));
        assert!(announces_close(
            Version::HTTP_11,
            &headers(&["upgrade", "te, close"])
        ));
        assert!(announces_close(Version::HTTP_10, &headers(&[])));
        assert!(!announces_close(
            Version::HTTP_10,
            &headers(&["Keep-Alive"])
        ));
    }
}
