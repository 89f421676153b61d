//! The CLI's HTTPS client for the admin API. On the box it finds the address (the daemon's
//! listener file, else the config) and the token (`$EDGEPROV_TOKEN`, else
//! `<data_dir>/admin.token`), and trusts only the box's own CA. From another machine
//! (`--url`) all three are given: the URL, the box's CA certificate file and the token.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use serde_json::Value;

use super::UsageError;
use super::progress::Progress;
use crate::config::Config;
use crate::daemon::Listeners;

pub struct ApiClient {
    /// `HOST:PORT`: where the CLI connects, the `Host` it sends, and what errors name.
    addr: String,
    token: String,
    /// Where the token came from and where the trusted CA is, named when either is refused.
    token_source: TokenSource,
    ca_path: std::path::PathBuf,
    /// Whether the box was named with `--url`: the fixes errors suggest differ.
    remote: bool,
    tls: tokio_rustls::TlsConnector,
    /// The name the admin certificate is checked against: see [`admin_server_name`].
    server_name: ServerName<'static>,
}

/// Where the CLI's token came from: the fix for a refused one depends on it.
enum TokenSource {
    Env,
    /// The daemon's own token file, in its data directory.
    File(std::path::PathBuf),
    /// A file given with `--token-file`.
    Given(std::path::PathBuf),
}

/// How the CLI reaches a box from another machine: `edgeprov --url https://HOST:PORT
/// --ca-cert FILE` (or `$EDGEPROV_URL`, `$EDGEPROV_CA_CERT`), with the token in
/// `$EDGEPROV_TOKEN` or `--token-file`.
pub struct RemoteTarget {
    pub url: String,
    pub ca_cert: Option<std::path::PathBuf>,
    pub token_file: Option<std::path::PathBuf>,
}

impl ApiClient {
    pub fn from_config(config: &Config) -> Result<ApiClient> {
        let addr = admin_address(config);
        let server_name = admin_server_name(config, addr)?;
        let (token, token_source) = match std::env::var("EDGEPROV_TOKEN") {
            Ok(t) if !t.trim().is_empty() => (t.trim().to_string(), TokenSource::Env),
            _ => (
                std::fs::read_to_string(config.token_path())
                    .with_context(|| {
                        format!(
                            "cannot read the admin token {} (run as the daemon's user, or set EDGEPROV_TOKEN)",
                            config.token_path().display()
                        )
                    })?
                    .trim()
                    .to_string(),
                TokenSource::File(config.token_path()),
            ),
        };
        let ca_path = config.pki_dir().join(crate::pki::CA_CERT);
        let ca = crate::pki::read_ca_cert(&config.pki_dir()).with_context(|| {
            format!(
                "cannot read the box's CA certificate {}, the only issuer the CLI trusts for the \
                 admin API (run as root or the daemon's user, with the daemon's --config)",
                ca_path.display()
            )
        })?;
        Ok(ApiClient {
            addr: addr.to_string(),
            token,
            token_source,
            ca_path,
            remote: false,
            tls: trusting_only(ca)?,
            server_name,
        })
    }

    /// A client for the box at `target.url`, from any machine: nothing is read from a data
    /// directory. The server certificate must chain to the given CA certificate and name the
    /// URL's host, as a phone checks it; there is no trust on first use and no way to skip the
    /// check, so a box answering with another certificate is never sent the token.
    pub fn from_url(target: &RemoteTarget) -> Result<ApiClient> {
        let (host, port) = https_host_port(&target.url)?;
        let server_name = ServerName::try_from(host.clone()).map_err(|e| {
            UsageError(format!(
                "--url {}: {host:?} is not a host name or IP address: {e}",
                target.url
            ))
        })?;
        let (token, token_source) = match &target.token_file {
            Some(path) => (first_line(path)?, TokenSource::Given(path.clone())),
            None => match std::env::var("EDGEPROV_TOKEN") {
                Ok(t) if !t.trim().is_empty() => (t.trim().to_string(), TokenSource::Env),
                _ => {
                    return Err(UsageError(
                        "--url needs a token: set EDGEPROV_TOKEN (or give --token-file FILE) to \
                         a token of that box, made there with `edgeprov token create` (a token is \
                         never taken on the command line, where other users can see it)"
                            .into(),
                    )
                    .into());
                }
            },
        };
        let Some(ca_path) = target.ca_cert.clone() else {
            return Err(UsageError(
                "--url needs --ca-cert FILE (or EDGEPROV_CA_CERT): the box's CA certificate, the \
                 only issuer trusted for its admin API; copy it from the box (DATA_DIR/pki/ca.crt, \
                 /var/lib/edgeprov/pki/ca.crt when packaged, readable by all) or take the ca.crt \
                 that `edgeprov pki issue-device` writes"
                    .into(),
            )
            .into());
        };
        let ca = crate::pki::read_cert(&ca_path).context("--ca-cert, the box's CA certificate")?;
        let addr = match host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{host}]:{port}"),
            Err(_) => format!("{host}:{port}"),
        };
        Ok(ApiClient {
            addr,
            token,
            token_source,
            ca_path,
            remote: true,
            tls: trusting_only(ca)?,
            server_name,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        let bytes = self.raw(Method::GET, path, Bytes::new()).await?;
        json_of(&bytes)
    }

    /// A GET of one page of a list, with how many entries the whole list has when the API
    /// says (`X-Total-Count`).
    pub async fn get_page(&self, path: &str) -> Result<(Value, Option<u64>)> {
        let (status, total, bytes) = self
            .exchange_with(Method::GET, path, Bytes::new(), None, None)
            .await?;
        Ok((json_of(&check(status, bytes)?)?, total))
    }

    /// A GET with one extra header, whose answer is a file.
    pub async fn get_bytes_with(&self, path: &str, header: Option<(&str, &str)>) -> Result<Bytes> {
        let (status, _, bytes) = self
            .exchange_with(Method::GET, path, Bytes::new(), header, None)
            .await?;
        check(status, bytes)
    }

    /// A GET whose answer is a file, not JSON.
    pub async fn get_bytes(&self, path: &str) -> Result<Bytes> {
        self.raw(Method::GET, path, Bytes::new()).await
    }

    /// A PUT of raw bytes (file uploads).
    pub async fn put_bytes(&self, path: &str, body: Vec<u8>) -> Result<Value> {
        let bytes = self.raw(Method::PUT, path, Bytes::from(body)).await?;
        json_of(&bytes)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.request(Method::POST, path, Some(body)).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Result<Value> {
        self.request(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.request(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        self.request(Method::DELETE, path, None).await
    }

    async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        let payload = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let bytes = self.raw(method, path, payload).await?;
        json_of(&bytes)
    }

    /// One request; a non-2xx answer becomes an error carrying the API's message.
    async fn raw(&self, method: Method, path: &str, payload: Bytes) -> Result<Bytes> {
        let (status, _, bytes) = self
            .exchange_with(method, path, payload, None, None)
            .await?;
        check(status, bytes)
    }

    /// A POST of raw bytes whose answer is JSON even when refused (imports report every bad
    /// row), drawing the upload's progress: returns whether it succeeded, and the answer.
    pub async fn post_bytes_progress(
        &self,
        path: &str,
        body: Vec<u8>,
        progress: Arc<Progress>,
    ) -> Result<(bool, Value)> {
        let (status, _, bytes) = self
            .exchange_with(Method::POST, path, Bytes::from(body), None, Some(progress))
            .await?;
        refused_report(status, bytes)
    }

    /// A GET of a file with one extra header, drawing the download's progress.
    pub async fn get_bytes_progress(
        &self,
        path: &str,
        header: Option<(&str, &str)>,
        progress: Arc<Progress>,
    ) -> Result<Bytes> {
        let (status, _, bytes) = self
            .exchange_with(Method::GET, path, Bytes::new(), header, Some(progress))
            .await?;
        check(status, bytes)
    }
}

/// A TLS client configuration that trusts `ca` and nothing else.
fn trusting_only(
    ca: rustls_pki_types::CertificateDer<'static>,
) -> Result<tokio_rustls::TlsConnector> {
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(tls)))
}

/// The host (an IPv6 address without its brackets) and port of an `https://HOST[:PORT]` URL;
/// anything else is a usage error naming the URL. Plain `http://` is refused: the token would
/// cross the network in clear, and the admin API speaks only HTTPS anyway.
fn https_host_port(url: &str) -> Result<(String, u16)> {
    let bad = |why: &str| -> anyhow::Error { UsageError(format!("--url {url}: {why}")).into() };
    let uri: http::Uri = url
        .parse()
        .map_err(|e| bad(&format!("not a URL ({e}); give https://HOST:PORT")))?;
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => {
            return Err(bad(
                "plain http:// is refused: the admin API speaks only HTTPS, and the token must \
                 not cross the network in clear; give https://HOST:PORT",
            ));
        }
        _ => return Err(bad("give https://HOST:PORT")),
    }
    let Some(authority) = uri.authority() else {
        return Err(bad("no host; give https://HOST:PORT"));
    };
    if authority.as_str().contains('@') {
        return Err(bad(
            "a user or token in the URL is refused; set EDGEPROV_TOKEN (or --token-file)",
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(bad("only https://HOST:PORT, without a path"));
    }
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host.to_string(), uri.port_u16().unwrap_or(443)))
}

/// The first line of a token file, without the spaces at its ends.
fn first_line(path: &std::path::Path) -> Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.lines().next().unwrap_or_default().trim();
    if token.is_empty() {
        bail!("the token file {} is empty", path.display());
    }
    Ok(token.to_string())
}

/// A refusal from the admin API: its message and status. Typed, so that a command can tell it
/// from a failure to reach the API and name what it sent (the file a body came from).
#[derive(Debug, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub struct ApiRefusal {
    pub status: u16,
    pub message: String,
}

impl ApiRefusal {
    /// `e` with `file` named first when it is the API's 400 for what was sent, which is what
    /// `file` held: the API never sees the file's name (`srv.key: no PEM certificate found`).
    pub fn naming_file(e: anyhow::Error, file: &std::path::Path) -> anyhow::Error {
        match e.downcast_ref::<ApiRefusal>() {
            Some(r) if r.status == 400 => e.context(file.display().to_string()),
            _ => e,
        }
    }
}

/// A non-2xx answer becomes an [`ApiRefusal`] carrying the API's message.
fn check(status: StatusCode, bytes: Bytes) -> Result<Bytes> {
    if !status.is_success() {
        return Err(ApiRefusal {
            status: status.as_u16(),
            message: error_message(&bytes),
        }
        .into());
    }
    Ok(bytes)
}

/// Longest part of a refusal's plain-text body shown in an error.
const MAX_ERROR_TEXT: usize = 500;

/// What a refusal says: the `error` field of a JSON body, else the body's text (a refused query
/// string is answered in plain text, naming the field).
fn error_message(bytes: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(bytes)
        && let Some(msg) = value.get("error").and_then(Value::as_str)
    {
        return msg.to_string();
    }
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return "no detail".into();
    }
    match text.char_indices().nth(MAX_ERROR_TEXT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// One path segment or query value, percent-encoded, so a name with a space, `/`, `?` or `#`
/// reaches the API as that name instead of breaking the request line or naming another route.
pub fn encode(text: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b':');
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

/// How long the CLI waits for the admin API to take its connection and finish the TLS
/// handshake. A stopped (SIGSTOP) or wedged daemon, or another program on the port, still lets
/// the kernel accept the connection; without a limit the command, and the script running it
/// against many sites, would wait forever. The request itself has none: a backup of a large
/// store takes as long as it takes.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl ApiClient {
    /// A TLS connection to the admin API, trusting only the box's CA.
    async fn connect(&self) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
        let tcp = tokio::net::TcpStream::connect(self.addr.as_str())
            .await
            .with_context(|| match self.remote {
                true => format!(
                    "cannot reach the edgeprov admin API at {} (is the daemon running, with \
                     admin.listen on an address this machine can reach?)",
                    self.addr
                ),
                false => format!(
                    "cannot reach the edgeprov admin API at {} (is the daemon running?)",
                    self.addr
                ),
            })?;
        self.tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| {
                let refused = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>());
                let untrusted = refused.is_some_and(|e| {
                    matches!(
                        e,
                        rustls::Error::InvalidCertificate(
                            rustls::CertificateError::UnknownIssuer
                                | rustls::CertificateError::BadSignature
                        )
                    )
                });
                let other_name = refused.is_some_and(|e| {
                    matches!(
                        e,
                        rustls::Error::InvalidCertificate(
                            rustls::CertificateError::NotValidForName
                                | rustls::CertificateError::NotValidForNameContext { .. }
                        )
                    )
                });
                if self.remote && untrusted {
                    anyhow!(
                        "the admin API at {} presented a certificate not signed by the CA in {}: \
                         give that box's own CA certificate (its DATA_DIR/pki/ca.crt) with \
                         --ca-cert",
                        self.addr,
                        self.ca_path.display()
                    )
                } else if self.remote && other_name {
                    anyhow!(
                        "the admin API at {} presented a certificate that does not name {:?} \
                         ({e}): connect by one of the box's pki.server_names, or add this one \
                         there",
                        self.addr,
                        self.server_name.to_str()
                    )
                } else if untrusted {
                    anyhow!(
                        "the admin API at {} presented a certificate that the box's CA in {} does \
                     not vouch for ({e}): the daemon on that port is not the one of this \
                     configuration; give its --config (or run where its data directory is)",
                        self.addr,
                        self.ca_path.display()
                    )
                } else {
                    anyhow::Error::new(e)
                        .context(format!("TLS with the admin API at {}", self.addr))
                }
            })
    }

    /// The failure of an answer that is not the admin API's: every refusal of the admin API is
    /// its JSON error, so another one comes from another server on that port, most likely the
    /// box's phone listener (the same certificate, so TLS alone does not tell them apart),
    /// whose bare `404` said nothing of the port being the wrong one.
    fn not_the_admin_api(&self, status: StatusCode, headers: &http::HeaderMap) -> anyhow::Error {
        let kind = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| "no content type".to_string(), str::to_string);
        let fix = match self.remote {
            true => "give --url the port of the box's admin.listen (9443 unless configured)",
            false => {
                "the CLI reads the admin address from the daemon's listeners.json, else \
                 admin.listen of the --config it is given: give the daemon's --config"
            }
        };
        anyhow!(
            "{} did not answer as the edgeprov admin API (HTTP {}, {kind}, not its JSON error): \
             perhaps it is a phone listener; the admin API listens on admin.listen, a port of \
             its own; {fix}",
            self.addr,
            status.as_u16()
        )
    }

    /// A refused token, named by where it came from, with what to do about it. An `expired`
    /// one (the API's challenge says so) was right until its expiry: mistyped, revoked or
    /// another box's is none of what happened, a new one is the only fix.
    fn refused_token(&self, bytes: &[u8], expired: bool) -> anyhow::Error {
        let msg = error_message(bytes);
        if expired {
            let place = match &self.token_source {
                TokenSource::Env => "$EDGEPROV_TOKEN".to_string(),
                TokenSource::File(path) | TokenSource::Given(path) => path.display().to_string(),
            };
            let maker = match self.remote {
                true => "edgeprov token create on that box",
                false => "edgeprov token create",
            };
            return anyhow!(
                "the admin API at {} refused the token in {place} ({msg}): replace it with a new \
                 one ({maker} makes one; --expires sets how long it lasts)",
                self.addr
            );
        }
        match &self.token_source {
            TokenSource::Env if self.remote => anyhow!(
                "the admin API at {} refused the token in $EDGEPROV_TOKEN ({msg}): it is \
                 mistyped, revoked or for another box; give a valid one (edgeprov token create \
                 on that box makes one)",
                self.addr
            ),
            TokenSource::Env => anyhow!(
                "the admin API at {} refused the token in $EDGEPROV_TOKEN ({msg}): it is \
                 mistyped, revoked or for another box; give a valid one (edgeprov token create \
                 makes one), or unset EDGEPROV_TOKEN to use the daemon's own",
                self.addr
            ),
            TokenSource::Given(path) => anyhow!(
                "the admin API at {} refused the token in {} ({msg}): it is mistyped, revoked \
                 or for another box; give a valid one (edgeprov token create on that box makes \
                 one)",
                self.addr,
                path.display()
            ),
            TokenSource::File(path) => anyhow!(
                "the admin API at {} refused the token in {} ({msg}): that file is not the \
                 running daemon's; give the daemon's --config, or set EDGEPROV_TOKEN",
                self.addr,
                path.display()
            ),
        }
    }

    /// Sends one request and returns the status, the answer's `X-Total-Count` (how many
    /// entries a paged list has over all its pages) when it has one, and the body; `progress`,
    /// when given, follows the upload when there is a body, else the download.
    async fn exchange_with(
        &self,
        method: Method,
        path: &str,
        payload: Bytes,
        header: Option<(&str, &str)>,
        progress: Option<Arc<Progress>>,
    ) -> Result<(StatusCode, Option<u64>, Bytes)> {
        let is_get = method == Method::GET;
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| {
                anyhow!(
                    "the edgeprov admin API at {} did not answer within {} s (is the daemon \
                     stopped or hung, or is another program on that port?)",
                    self.addr,
                    CONNECT_TIMEOUT.as_secs()
                )
            })??;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}"))
            .header(http::header::HOST, self.addr.as_str())
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(http::header::CONTENT_TYPE, "application/json");
        let req = match header {
            Some((name, value)) => req.header(name, value),
            None => req,
        }
        .body(Upload {
            progress: progress.clone().filter(|_| !payload.is_empty()),
            data: payload,
            sent: 0,
        })?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        if !status.is_success() && !is_json(resp.headers()) {
            return Err(self.not_the_admin_api(status, resp.headers()));
        }
        let total = resp
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let expired = resp
            .headers()
            .get(http::header::WWW_AUTHENTICATE)
            .is_some_and(|v| v == crate::admin::EXPIRED_CHALLENGE);
        let Some(progress) = progress.filter(|_| is_get) else {
            let bytes = resp.into_body().collect().await?.to_bytes();
            if status == StatusCode::UNAUTHORIZED {
                return Err(self.refused_token(&bytes, expired));
            }
            return Ok((status, total, bytes));
        };
        if let Some(len) = resp
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok())
        {
            progress.set_total(len);
        }
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                progress.add(data.len() as u64);
                out.extend_from_slice(&data);
            }
        }
        progress.finish();
        if status == StatusCode::UNAUTHORIZED {
            return Err(self.refused_token(&out, expired));
        }
        Ok((status, total, Bytes::from(out)))
    }
}

/// A request body sent in 64 KiB frames, counting each into a progress bar as hyper takes it.
struct Upload {
    data: Bytes,
    sent: usize,
    progress: Option<Arc<Progress>>,
}

const UPLOAD_FRAME: usize = 64 * 1024;

impl hyper::body::Body for Upload {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let start = self.sent;
        if start >= self.data.len() {
            if let Some(p) = self.progress.take() {
                p.finish();
            }
            return std::task::Poll::Ready(None);
        }
        let end = (start + UPLOAD_FRAME).min(self.data.len());
        self.sent = end;
        if let Some(p) = &self.progress {
            p.add((end - start) as u64);
        }
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(
            self.data.slice(start..end),
        ))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent >= self.data.len()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact((self.data.len() - self.sent) as u64)
    }
}

/// The answer of a POST whose refusals carry a report (imports): a refusal without one (bad
/// query, a body too large) becomes an error with the API's message; a refused token never
/// gets here.
fn refused_report(status: StatusCode, bytes: Bytes) -> Result<(bool, Value)> {
    if status.is_success() {
        return Ok((true, json_of(&bytes)?));
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) if value.get("error").is_none() => Ok((false, value)),
        _ => check(status, bytes).map(|_| (false, Value::Null)),
    }
}

/// Whether an answer says it is JSON, as every refusal of the admin API is.
fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

fn json_of(bytes: &[u8]) -> Result<Value> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes)
        .map_err(|e| anyhow!("admin API answered with a body that is not JSON: {e}"))
}

/// The name to check the admin certificate against. The daemon presents its generated server
/// certificate, issued for `pki.server_names`: the address the CLI connects to when that list
/// names it (the default holds 127.0.0.1), else the list's first name. Checking the bare address
/// failed every command on a box whose names were only its LAN ones (`prov.example.com`), with
/// trust still resting on the box's own CA.
fn admin_server_name(config: &Config, addr: SocketAddr) -> Result<ServerName<'static>> {
    let ip = addr.ip();
    let names = &config.pki.server_names;
    if names
        .iter()
        .any(|n| n.parse::<std::net::IpAddr>().is_ok_and(|n| n == ip))
    {
        return Ok(ServerName::IpAddress(ip.into()));
    }
    let first = names.first().map(String::as_str).unwrap_or("localhost");
    ServerName::try_from(first.to_string()).map_err(|e| {
        anyhow!(
            "pki.server_names {first:?}: not a name to check the admin certificate against: {e}"
        )
    })
}

/// The running daemon's admin address: from its listener file when present (it knows the real
/// port even when the config says 0), else from the config, with a wildcard address replaced by
/// loopback.
fn admin_address(config: &Config) -> SocketAddr {
    let from_file = std::fs::read(config.listeners_path())
        .ok()
        .and_then(|b| serde_json::from_slice::<Listeners>(&b).ok())
        .map(|l| l.admin);
    let mut addr = from_file.unwrap_or(config.admin.listen);
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    addr
}
