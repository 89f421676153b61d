//! The HTTPS client for the cloud: HTTP/1.1 over tokio-rustls, the pinned cloud CA as the only
//! root, the appliance certificate as client identity. One connection per request: calls are
//! infrequent, and a fresh connection never inherits a half-dead one after a network fault.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::SyncError;

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
        let uri: Uri = url
            .parse()
            .map_err(|e| SyncError::Url(format!("{url}: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(SyncError::Url(format!("{url}: must be an https:// URL")));
        }
        let host = uri
            .host()
            .ok_or_else(|| SyncError::Url(format!("{url}: no host")))?
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

    pub async fn get<R: DeserializeOwned>(&self, path_and_query: &str) -> Result<R, SyncError> {
        let body = self.call(Method::GET, path_and_query, Bytes::new()).await?;
        serde_json::from_slice(&body).map_err(|e| SyncError::Schema(e.to_string()))
    }

    pub async fn post<T: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &T,
    ) -> Result<R, SyncError> {
        let payload = serde_json::to_vec(body).map_err(|e| SyncError::Schema(e.to_string()))?;
        let body = self.call(Method::POST, path, Bytes::from(payload)).await?;
        serde_json::from_slice(&body).map_err(|e| SyncError::Schema(e.to_string()))
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
        let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| SyncError::Connect(format!("{}:{}: {e}", self.host, self.port)))?;
        let name = ServerName::try_from(self.host.clone())
            .map_err(|e| SyncError::Url(format!("{}: {e}", self.host)))?;
        let tls = self
            .tls
            .connect(name, tcp)
            .await
            .map_err(|e| SyncError::Tls(e.to_string()))?;
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
            });
        }
        Ok(body)
    }
}
