//! The HTTPS client for the cloud: HTTP/1.1 over tokio-rustls, the pinned cloud CA as the only
//! root, the appliance certificate as client identity. One connection per request: calls are
//! infrequent, and a fresh connection never inherits a half-dead one after a network fault.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{QUOTED, SyncError};
use crate::model::clip;

/// Largest answer accepted: a hostile or broken cloud cannot exhaust the box's memory.
const MAX_BODY: usize = 32 * 1024 * 1024;

pub struct CloudClient {
    host: String,
    port: u16,
    /// The base URL's path without a trailing slash (`/edge`), prefixed to every call.
    prefix: String,
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl CloudClient {
    pub fn new(
        url: &str,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<CloudClient, SyncError> {
        // Quoted masked: these errors reach the status, the `sync_failed` alarm, the log and
        // the audit log (a refused registration), and a login in the URL must not.
        let shown = crate::firmware::masked_url(url);
        let uri: Uri = url
            .parse()
            .map_err(|e| SyncError::Url(format!("{shown}: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(SyncError::Url(format!("{shown}: must be an https:// URL")));
        }
        let host = uri
            .host()
            .ok_or_else(|| SyncError::Url(format!("{shown}: no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(CloudClient {
            host,
            port: uri.port_u16().unwrap_or(443),
            prefix: uri.path().trim_end_matches('/').to_string(),
            tls: tokio_rustls::TlsConnector::from(tls),
            timeout,
        })
    }

    /// The answer's body as it came: a page is measured ([`super::page_items`]) before it is
    /// read with [`decode`].
    pub async fn get(&self, path_and_query: &str) -> Result<Bytes, SyncError> {
        self.call(Method::GET, path_and_query, Bytes::new()).await
    }

    pub async fn post<T: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<R, SyncError> {
        let payload = serde_json::to_vec(body).map_err(|e| SyncError::Schema(e.to_string()))?;
        let body = self.call(Method::POST, path, Bytes::from(payload)).await?;
        decode(&body)
    }

    /// One request with the whole exchange under the timeout; non-2xx is an error.
    async fn call(&self, method: Method, path: &str, payload: Bytes) -> Result<Bytes, SyncError> {
        tokio::time::timeout(self.timeout, self.exchange(method, path, payload))
            .await
            .map_err(|_| SyncError::Timeout(self.timeout))?
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        payload: Bytes,
    ) -> Result<Bytes, SyncError> {
        // Resolved apart from connecting, so that a name the box cannot resolve (its DNS
        // server) and a cloud that refuses or cannot be routed to (a firewall, the cloud
        // itself) are told apart in the status and the alarm.
        let addrs: Vec<std::net::SocketAddr> =
            tokio::net::lookup_host((self.host.as_str(), self.port))
                .await
                .map_err(|e| SyncError::Resolve(format!("{}: {e}", self.host)))?
                .collect();
        let tcp = tokio::net::TcpStream::connect(addrs.as_slice())
            .await
            .map_err(|e| SyncError::Connect(format!("{}:{}: {e}", self.host, self.port)))?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| SyncError::Url(format!("{}: {e}", self.host)))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| SyncError::Tls(tls_failure(&e, SystemTime::now())))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| SyncError::Http(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let authority = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.prefix))
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("edgeprov/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(payload))
            .map_err(|e| SyncError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| SyncError::Http(e.to_string()))?;
        let status = resp.status();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = retry_after(
            header(http::header::RETRY_AFTER).as_deref(),
            header(http::header::DATE).as_deref(),
            SystemTime::now(),
        );
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| SyncError::Http(e.to_string()))?
            .to_bytes();
        drop(sender);
        driver.abort();
        if !status.is_success() {
            let detail: String = String::from_utf8_lossy(&body).chars().take(200).collect();
            return Err(SyncError::Status {
                status: status.as_u16(),
                detail,
                retry_after,
            });
        }
        Ok(body)
    }
}

/// A failed handshake in words an operator can act on: rustls's reason, and for a certificate
/// the box refused, what most likely lies behind it.
fn tls_failure(e: &std::io::Error, now: SystemTime) -> String {
    use rustls::CertificateError as C;
    let Some(rustls::Error::InvalidCertificate(cert)) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return e.to_string();
    };
    let hint = match cert {
        C::UnknownIssuer | C::BadSignature | C::UnhandledCriticalExtension => {
            "the cloud's certificate is not issued by the CA pinned in [cloud] ca_file: if the \
             cloud changed its CA, install the new one there"
                .to_string()
        }
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            let secs = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!(
                "the certificate's validity is checked against this box's clock, which reads \
                 {secs} (Unix seconds): if that is wrong, set the time (NTP)"
            )
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            "the cloud's certificate does not name the host of the registered URL".to_string()
        }
        _ => return e.to_string(),
    };
    format!("{e} ({hint})")
}

/// How long an answer's `Retry-After` asks to wait: seconds (`120`), or an HTTP date. A date
/// is measured from the answer's own `Date` when it has one, not from `now`: the cloud's clock
/// may be far from the box's, and only the difference between its two times means anything.
/// A value that is neither is ignored (the backoff applies).
fn retry_after(value: Option<&str>, date: Option<&str>, now: SystemTime) -> Option<Duration> {
    let value = value?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let from = date
        .and_then(|d| httpdate::parse_http_date(d.trim()).ok())
        .unwrap_or(now);
    Some(at.duration_since(from).unwrap_or(Duration::ZERO))
}

/// Reads an answer. The message names where it is wrong (`devices[3].state`); what it quotes of
/// the answer (a value, or a map key in the path) is cut to [`QUOTED`] characters, and the
/// position is kept: a hostile answer may put megabytes in one string.
pub fn decode<R: DeserializeOwned>(body: &[u8]) -> Result<R, SyncError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| schema(&e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| schema(".", &e))?;
    Ok(value)
}

fn schema(path: &str, e: &serde_json::Error) -> SyncError {
    SyncError::Schema(described(path, e, true))
}

/// What `e` says went wrong at `path` (`.` for the whole), each cut to [`QUOTED`] characters,
/// followed by the position serde_json ends its message with when `position` (it is the
/// text's: for a part read on its own, not the answer's).
pub(super) fn described(path: &str, e: &serde_json::Error, position: bool) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let what = text.strip_suffix(&suffix).unwrap_or(&text);
    let at = if position { &text[what.len()..] } else { "" };
    let what = clip(what, QUOTED);
    match path {
        "." => format!("{what}{at}"),
        path => format!("{}: {what}{at}", clip(path, QUOTED)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    fn ca() -> (String, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        (pem, Issuer::new(params, key))
    }

    /// A TLS server on loopback presenting a certificate for 127.0.0.1 from `issuer`
    /// (`expired`: valid only in 2001); answers nothing beyond the handshake.
    async fn tls_server(issuer: &Issuer<'static, KeyPair>, expired: bool) -> u16 {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let cert = params.signed_by(&key, issuer).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let _ = acceptor.accept(tcp).await;
            }
        });
        port
    }

    async fn fail(url: &str, pinned_pem: &str) -> SyncError {
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("cloud-ca.pem");
        std::fs::write(&ca_file, pinned_pem).unwrap();
        let tls = crate::pki::cloud::cloud_client_config(&ca_file, None).unwrap();
        let client = CloudClient::new(url, tls, Duration::from_secs(5)).unwrap();
        match client.get("/v1/changes").await {
            Ok(_) => panic!("{url} answered"),
            Err(e) => e,
        }
    }

    /// A name that does not resolve, a port that refuses, a certificate from another CA and
    /// an expired one each fail in their own words, naming what to look at. The name has a
    /// label longer than DNS allows, which the resolver refuses without sending a query.
    #[tokio::test]
    async fn unresolvable_refused_and_refused_certificates_are_told_apart() {
        let (pinned, issuer) = ca();
        let name = format!("{}.test", "a".repeat(70));
        let e = fail(&format!("https://{name}:443/"), &pinned).await;
        assert!(matches!(e, SyncError::Resolve(_)), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("cannot resolve the cloud's host name {name}")),
            "{e}"
        );

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = fail(&format!("https://127.0.0.1:{port}/"), &pinned).await;
        assert!(matches!(e, SyncError::Connect(_)), "{e}");
        assert!(e.to_string().contains("refused"), "{e}");

        let (_, other) = ca();
        let port = tls_server(&other, false).await;
        let e = fail(&format!("https://127.0.0.1:{port}/"), &pinned).await;
        assert!(matches!(e, SyncError::Tls(_)), "{e}");
        assert!(
            e.to_string()
                .contains("not issued by the CA pinned in [cloud] ca_file"),
            "{e}"
        );

        let port = tls_server(&issuer, true).await;
        let e = fail(&format!("https://127.0.0.1:{port}/"), &pinned).await;
        assert!(matches!(e, SyncError::Tls(_)), "{e}");
        assert!(
            e.to_string().contains("this box's clock, which reads"),
            "{e}"
        );
    }

    /// Seconds, or a date measured against the answer's own `Date`: a cloud whose clock is a
    /// day off from the box's still asks for the two minutes it means.
    #[test]
    fn retry_after_in_seconds_or_as_a_date_of_the_clouds_clock() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_790_000_000);
        assert_eq!(
            retry_after(Some("120"), None, now),
            Some(Duration::from_secs(120))
        );
        let cloud_now = now + Duration::from_secs(86_400);
        let date = httpdate::fmt_http_date(cloud_now);
        let at = httpdate::fmt_http_date(cloud_now + Duration::from_secs(120));
        assert_eq!(
            retry_after(Some(&at), Some(&date), now),
            Some(Duration::from_secs(120))
        );
        let at = httpdate::fmt_http_date(now + Duration::from_secs(60));
        assert_eq!(
            retry_after(Some(&at), None, now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after(Some(&httpdate::fmt_http_date(now)), None, cloud_now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(Some("soon"), None, now), None);
        assert_eq!(retry_after(None, None, now), None);
    }
    use crate::sync::protocol::ChangesPage;

    /// serde quotes a bad value whole; the message keeps its first characters, where the
    /// answer is wrong and the position.
    #[test]
    fn a_bad_answer_is_named_in_a_bounded_message() {
        let huge = "x".repeat(2_000_000);
        let body = format!(
            r#"{{"version":1,"cursor":"","next_cursor":"c","devices":[{{"mac":"m","state":"{huge}"}}]}}"#
        );
        let Err(SyncError::Schema(m)) = decode::<ChangesPage>(body.as_bytes()) else {
            panic!("decoded")
        };
        assert!(m.len() < 2 * QUOTED, "{} bytes", m.len());
        assert!(
            m.starts_with("devices[0].state: unknown variant `xxx"),
            "{m}"
        );
        assert!(
            m.ends_with(&format!("at line 1 column {}", body.len() - 3)),
            "{m}"
        );

        let body = format!(
            r#"{{"version":1,"cursor":"","next_cursor":"c","devices":[{{"mac":"m","state":"claimed","params":{{"{huge}":7}}}}]}}"#
        );
        let Err(SyncError::Schema(m)) = decode::<ChangesPage>(body.as_bytes()) else {
            panic!("decoded")
        };
        assert!(m.len() < 2 * QUOTED, "{} bytes", m.len());
        assert!(m.starts_with("devices[0].params.xxx"), "{m}");

        let Err(SyncError::Schema(m)) = decode::<serde_json::Value>(b"{} x") else {
            panic!("decoded")
        };
        assert_eq!(m, "trailing characters at line 1 column 4");
    }
}
