//! One phone's boot over the network: TCP, the mutual-TLS handshake, then its files over HTTP/1.1.
//! Thin I/O: which files, and whether an answer is right, are decided in `phone.rs`.
//!
//! Connections: by default a phone opens one connection, makes one full handshake and fetches its
//! whole sequence over it (keep-alive), the way HTTP/1.1 clients in current phone firmware
//! behave; when the server closes it after an answer, the phone opens a new one for its next
//! file. With `--resume-sessions` it opens a new connection for every file and resumes the
//! TLS session of its first one, which measures the server's resumption path (phones that
//! close after each file).

use std::net::SocketAddr;
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
use tokio::net::TcpStream;

use super::phone::{Phone, Step, firmware_named};
use super::stats::{ErrorKind, Tally};

/// Where the phones go and how patient they are.
pub struct Plan {
    pub addr: SocketAddr,
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

/// Boots one phone; counts everything in `tally`; true when every file arrived and checked out.
pub async fn boot(phone: &Phone, tls: Arc<ClientConfig>, plan: &Plan, tally: &mut Tally) -> bool {
    let agent = phone.user_agent();
    let mut steps = phone.sequence(plan.device_only);
    let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
    let mut all_ok = true;
    let mut firmware_asked = false;
    let mut i = 0;
    while let Some(step) = steps.get(i).cloned() {
        i += 1;
        if plan.resume || !reusable(&mut sender, plan.timeout).await {
            match connect(plan, tls.clone(), tally).await {
                Ok(s) => sender = Some(s),
                Err(kind) => {
                    tally.error(Some(step.label), kind);
                    return false;
                }
            }
        }
        let Some(s) = sender.as_mut() else {
            return false;
        };
        let keep_body = step.label != FIRMWARE_LABEL;
        let started = Instant::now();
        let fetched = tokio::time::timeout(
            plan.timeout,
            fetch(s, &step.path, &plan.authority, &agent, keep_body),
        )
        .await
        .unwrap_or(Err(ErrorKind::Timeout));
        let (status, body, len) = match fetched {
            Ok(answer) => answer,
            Err(kind) => {
                tally.error(Some(step.label), kind);
                return false;
            }
        };
        tally.answered(step.label, started.elapsed(), len);
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
async fn reusable(sender: &mut Option<SendRequest<Empty<Bytes>>>, timeout: Duration) -> bool {
    let Some(s) = sender.as_mut() else {
        return false;
    };
    matches!(tokio::time::timeout(timeout, s.ready()).await, Ok(Ok(())))
}

/// TCP connect and TLS handshake within the deadline; the HTTP connection is driven by its own
/// task, which ends when the returned sender is dropped.
async fn connect(
    plan: &Plan,
    tls: Arc<ClientConfig>,
    tally: &mut Tally,
) -> Result<SendRequest<Empty<Bytes>>, ErrorKind> {
    let started = Instant::now();
    let work = async {
        let tcp = TcpStream::connect(plan.addr)
            .await
            .map_err(|_| ErrorKind::Refused)?;
        let _ = tcp.set_nodelay(true);
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(plan.server_name.clone(), tcp)
            .await
            .map_err(|_| ErrorKind::Tls)?;
        let resumed = stream.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| ErrorKind::Http)?;
        tokio::spawn(conn);
        Ok::<_, ErrorKind>((sender, resumed))
    };
    let (sender, resumed) = tokio::time::timeout(plan.timeout, work)
        .await
        .unwrap_or(Err(ErrorKind::Timeout))?;
    tally.handshake.record(started.elapsed());
    if resumed {
        tally.resumed_handshakes += 1;
    } else {
        tally.full_handshakes += 1;
    }
    Ok(sender)
}

/// One GET; returns the status, the body (when `keep_body`) and the body's length.
async fn fetch(
    sender: &mut SendRequest<Empty<Bytes>>,
    path: &str,
    authority: &str,
    agent: &str,
    keep_body: bool,
) -> Result<(u16, Vec<u8>, usize), ErrorKind> {
    sender.ready().await.map_err(|e| classify(&e))?;
    let req = http::Request::get(path)
        .header(header::HOST, authority)
        .header(header::USER_AGENT, agent)
        .body(Empty::new())
        .map_err(|_| ErrorKind::Http)?;
    let resp = sender.send_request(req).await.map_err(|e| classify(&e))?;
    let status = resp.status().as_u16();
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
    Ok((status, kept, len))
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
