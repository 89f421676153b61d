//! rustls server configurations built from the PKI, with the one crypto provider (aws-lc-rs).

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use super::own_ca::OwnCa;
use super::revoked::CheckRevoked;
use super::{Pki, PkiError, Revocations};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Random bytes from the system's CSPRNG via aws-lc.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).expect("the system random source is available");
    out
}

/// The phone listener's provider: the default suites with AES-128-GCM/SHA-256 first. Both ends'
/// keys are P-256 or X25519 (128-bit security), so AES-256 and SHA-384 add no strength, and
/// SHA-384 has no hardware help on x86 while SHA-256 has (SHA-NI): the AES-256/SHA-384 suite
/// cost a boot storm about 30 µs of key schedule per handshake.
fn phone_provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::aws_lc_rs::cipher_suite as cs;
    let preferred = [
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ];
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| !preferred.contains(s));
    Arc::new(provider)
}

/// Phone HTTPS: client certificates are requested but optional at the handshake — whether a
/// missing one matters depends on the file asked for. A certificate proves its device when it
/// chains to the edgeprov CA or a configured vendor root and is within its validity; one that
/// does not (foreign, expired) is let through and proves nothing (`Pki::proven` tells them
/// apart, see `pki::proven`); a revoked one fails the handshake.
pub fn phone_server_config(pki: &Pki) -> Result<Arc<ServerConfig>, PkiError> {
    let (chain, key) = pki.phone_identity();
    let verifier = Arc::new(pki.client_check.letting_through(pki.proven()));
    let mut config = ServerConfig::builder_with_provider(phone_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| PkiError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // The server's preference (strongest AEAD first), not whatever an old client lists first.
    config.ignore_client_order = true;
    // TLS 1.2 phones that do not take session tickets resume by session ID, for their next
    // file within milliseconds, or not at all: after their next boot they have forgotten it. An
    // entry holds the phone's certificate (~1.3 KB), so 4,096 of them (~5 MiB) cover more than
    // a second of a storm at full rate, where 16,384 took 21 MiB and a storm's peak RSS past
    // 64 MB.
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4_096);
    // Session tickets carry the session (with the phone's certificate) to the phone encrypted
    // instead of keeping it here: in TLS 1.3 every full handshake issued one, and a cache
    // entry of about 1 KB per phone made a 10,000-phone storm's memory grow by ~10 MB.
    config.ticketer =
        rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| PkiError::Tls(e.to_string()))?;
    // One TLS 1.3 ticket, not two: a phone rebooting after a power cut seldom resumes, and every
    // ticket is work.
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}

/// What the phone listener's handshake checks a client certificate with: a chain to the CA or
/// one of the trusted device `roots`, within its validity, and not `revoked` when `own` CA
/// issued it.
pub(super) fn client_verifier(
    roots: Arc<RootCertStore>,
    revoked: Arc<Revocations>,
    own: Arc<OwnCa>,
) -> Result<Arc<CheckRevoked>, PkiError> {
    let webpki = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| PkiError::Tls(e.to_string()))?;
    Ok(Arc::new(CheckRevoked::new(webpki, revoked, own)))
}

/// Admin API: server authentication only; clients prove themselves with a bearer token. Always
/// the generated certificate, whatever phones are presented: the CLI trusts only the CA.
pub fn admin_server_config(pki: &Pki) -> Result<Arc<ServerConfig>, PkiError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
        .map_err(|e| PkiError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}
