//! The upstream HTTP client: one GET per attempt, over plain TCP for `http://` URLs and over
//! rustls for `https://` URLs (trusting the PEM bundle in `firmware.upstream_ca_file`, the
//! system's by default, so no root-store crate is needed).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::masked::masked_url;

/// How long connecting (every address of the host, raced: see `connect`) and receiving the
/// response head may take.
const CONNECT: Duration = Duration::from_secs(10);

/// Each names the URL masked ([`masked_url`]): the error reaches alarms, logs and the admin API.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0}: not an http:// or https:// URL")]
    BadUrl(String),
    #[error("cannot reach {0}: {1}")]
    Connect(String, String),
    #[error("{0}: {1}")]
    Tls(String, String),
}

/// Redirects followed per request (vendor download links often point at a CDN).
const MAX_REDIRECTS: usize = 5;

/// Sends `GET url` (with `Range: bytes=offset-` when resuming), following redirects, and
/// returns the response head; the body streams from the returned response. The image is
/// verified by its hash, so where a redirect leads does not decide what is served.
pub async fn get(
    url: &str,
    offset: u64,
    ca_file: &std::path::Path,
) -> Result<Response<Incoming>, UpstreamError> {
    let mut url = url.to_string();
    // The first request, then one per redirect followed.
    for _ in 0..=MAX_REDIRECTS {
        let resp = get_once(&url, offset, ca_file).await?;
        if !resp.status().is_redirection() {
            return Ok(resp);
        }
        let Some(next) = resp
            .headers()
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
        else {
            return Ok(resp);
        };
        url = resolve(&url, &next);
    }
    Err(UpstreamError::Connect(
        masked_url(&url),
        "too many redirects".into(),
    ))
}

/// A `Location` relative to the URL that answered with it (RFC 3986 §5.2). An absolute one
/// is taken as it is whatever its scheme, so that one other than `http`/`https` is refused by
/// the next request, naming it, instead of being read as a path on the answering host; a
/// network-path one (`//cdn.example/fw.bin`, as CDNs send) keeps only the scheme.
fn resolve(base: &str, location: &str) -> String {
    let location = location.trim();
    if has_scheme(location) {
        return location.to_string();
    }
    let Ok(uri) = base.parse::<Uri>() else {
        return location.to_string();
    };
    let scheme = uri.scheme_str().unwrap_or("http");
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    let origin = format!("{scheme}://{}", uri.authority().map_or("", |a| a.as_str()));
    if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        let dir = uri.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{origin}{dir}/{location}")
    }
}

/// Whether a URI reference starts with a scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`
/// then `:`), which makes it absolute.
fn has_scheme(reference: &str) -> bool {
    reference.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    })
}

async fn get_once(
    url: &str,
    offset: u64,
    ca_file: &std::path::Path,
) -> Result<Response<Incoming>, UpstreamError> {
    let shown = masked_url(url);
    let uri: Uri = url
        .parse()
        .map_err(|_| UpstreamError::BadUrl(shown.clone()))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(UpstreamError::BadUrl(shown)),
    };
    let host = uri
        .host()
        .ok_or_else(|| UpstreamError::BadUrl(shown.clone()))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let authority = uri.authority().map_or(host.as_str(), |a| a.as_str());
    // The login a URL carries goes as Basic authorization, never in the Host header.
    let (login, authority) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(basic(userinfo)), hostport.to_string()),
        None => (None, authority.to_string()),
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let connect_err = |e: String| UpstreamError::Connect(shown.clone(), e);
    let tcp = super::connect::connect(&host, port, CONNECT)
        .await
        .map_err(connect_err)?;
    let _ = tcp.set_nodelay(true);
    let mut req = Request::get(path).header(http::header::HOST, authority);
    if offset > 0 {
        req = req.header(http::header::RANGE, format!("bytes={offset}-"));
    }
    if let Some(login) = login {
        req = req.header(http::header::AUTHORIZATION, login);
    }
    let req = req
        .header(
            http::header::USER_AGENT,
            concat!("edgeprov/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| connect_err(e.to_string()))?;
    if tls {
        let name = ServerName::try_from(host.clone())
            .map_err(|e| UpstreamError::Tls(shown.clone(), e.to_string()))?;
        let config = client_config(ca_file).map_err(|e| UpstreamError::Tls(shown.clone(), e))?;
        let stream = tokio::time::timeout(
            CONNECT,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| UpstreamError::Tls(shown.clone(), "handshake timed out".into()))?
        .map_err(|e| UpstreamError::Tls(shown.clone(), e.to_string()))?;
        send(TokioIo::new(stream), req, &shown).await
    } else {
        send(TokioIo::new(tcp), req, &shown).await
    }
}

/// `Basic` credentials from a URL's userinfo (`user:password`, percent-encoded as RFC 3986
/// has it).
fn basic(userinfo: &str) -> String {
    use base64::Engine;
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(userinfo).collect();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(decoded)
    )
}

async fn send<T>(
    io: T,
    req: Request<Empty<Bytes>>,
    url: &str,
) -> Result<Response<Incoming>, UpstreamError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let connect_err = |e: String| UpstreamError::Connect(url.to_string(), e);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| connect_err(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tokio::time::timeout(CONNECT, sender.send_request(req))
        .await
        .map_err(|_| connect_err("no response head in time".into()))?
        .map_err(|e| connect_err(e.to_string()))
}

fn client_config(ca_file: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("trusted roots {}: {e}", ca_file.display()))?;
    for c in certs.flatten() {
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(format!("no certificates in {}", ca_file.display()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #[test]
    fn redirects_resolve_against_the_answering_url() {
        let base = "http://h:8/a/b/fw.bin?x=1";
        assert_eq!(super::resolve(base, "https://cdn/x"), "https://cdn/x");
        assert_eq!(super::resolve(base, "/c/fw.bin"), "http://h:8/c/fw.bin");
        assert_eq!(super::resolve(base, "fw2.bin"), "http://h:8/a/b/fw2.bin");
    }

    /// A CDN's `Location: //cdn/path` names another host, and `ftp://…` another scheme: neither
    /// is a path on the host that answered.
    #[test]
    fn network_path_and_other_scheme_redirects_leave_the_answering_host() {
        let base = "https://h:8/a/fw.bin";
        assert_eq!(
            super::resolve(base, "//cdn.example:9/x/fw.bin"),
            "https://cdn.example:9/x/fw.bin"
        );
        assert_eq!(
            super::resolve("http://h/fw.bin", "//cdn/fw.bin"),
            "http://cdn/fw.bin"
        );
        assert_eq!(super::resolve(base, "ftp://cdn/fw.bin"), "ftp://cdn/fw.bin");
        assert_eq!(
            super::resolve(base, "HTTP://cdn/fw.bin"),
            "HTTP://cdn/fw.bin"
        );
        assert_eq!(super::resolve(base, "fw:2.bin"), "fw:2.bin");
        assert_eq!(
            super::resolve(base, "./fw:2.bin"),
            "https://h:8/a/./fw:2.bin"
        );
    }
}
