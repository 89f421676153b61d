//! A client certificate that does not prove anything is no reason to refuse the phone.
//!
//! A phone whose certificate the box cannot verify (a vendor root not installed, a factory
//! certificate past its end, as Cisco's MICs and many vendors' are after ten years, a
//! certificate of the box's CA that expired while the phone was in a drawer) would fail the
//! handshake and get nothing at all, not even the common files every phone without a
//! certificate gets; phones do not retry without their certificate. Refusing it protects
//! nothing: the same phone, or anyone, may connect without a certificate. So the phone listener
//! lets such a handshake through, as nginx's `ssl_verify_client optional_no_ca` does, and the
//! certificate then proves no device: the phone gets what a phone without one gets, and its
//! own file only with another proof.
//!
//! rustls tells a connection only which certificate its peer sent, not whether the verifier
//! proved it, so the verifier ([`let_through`]) writes down the certificates it proved in
//! [`Proven`], and the listener asks it after the handshake. Forgetting one is safe: a connection whose
//! certificate is not found there is checked again in full when its first request needs it
//! (as a TLS session resumed after its entry has gone is); only a proved certificate is ever
//! written down, and the table belongs to one PKI, so a reload that changes the trusted
//! roots starts an empty one.
//!
//! A revoked certificate of the box's CA is still refused at the handshake: the operator
//! revoked it to shut that device out, and the refusal tells the device so. Only while it is
//! otherwise valid: the revocation is looked up after the chain and validity checks pass, so
//! one that has also expired is let through unproven, as any expired one is.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, PoisonError};

use rustls::CertificateError;
use rustls::server::danger::ClientCertVerified;

/// How many proved certificates are remembered. A handshake's entry is looked up within
/// microseconds of being written; the rest is for TLS sessions resumed soon after (a phone
/// fetching each file on a new connection). 32 bytes of digest each, so some hundreds of
/// kilobytes at the most.
const REMEMBERED: usize = 8_192;

type Digest = [u8; 32];

fn digest(cert: &[u8]) -> Digest {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The client certificates the phone listener's handshakes proved (a chain to a trusted root,
/// within its validity, not revoked), by the SHA-256 of their DER: the whole certificate, so
/// that no other certificate can pass for one of them.
#[derive(Debug, Default)]
pub struct Proven {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    digests: HashSet<Digest>,
    /// Oldest first: the first forgotten when the table is full.
    order: VecDeque<Digest>,
}

impl Proven {
    fn record(&self, cert: &[u8]) {
        let d = digest(cert);
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if !kept.digests.insert(d) {
            return;
        }
        kept.order.push_back(d);
        if kept.order.len() > REMEMBERED
            && let Some(oldest) = kept.order.pop_front()
        {
            kept.digests.remove(&oldest);
        }
    }

    /// Whether a handshake proved `cert`. `false` means "not known", not "unproven": the
    /// certificate is then checked again before it proves anything.
    pub fn holds(&self, cert: &[u8]) -> bool {
        let d = digest(cert);
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .digests
            .contains(&d)
    }
}

/// Why a client certificate proves nothing, in an operator's words, from the check's error.
pub fn why_unproven(e: &rustls::Error) -> String {
    use CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "it does not chain to the box's CA or a trusted device root".into(),
            C::Expired | C::ExpiredContext { .. } => "it has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "it is not valid yet".into(),
            C::Revoked => "it has been revoked".into(),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                "it is not for client authentication (extended key usage)".into()
            }
            C::BadSignature => "its issuer's signature does not verify".into(),
            C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                "it is signed with an algorithm that is not accepted".into()
            }
            other => format!("it does not verify ({other:?})"),
        },
        other => other.to_string(),
    }
}

/// The phone listener's verdict on a client certificate from the full check's (`checked`):
/// a proved certificate is written down in `proven`; one that cannot be proved is let through
/// unproven, but a revoked one fails the handshake. rustls still checks the handshake's
/// signature with the certificate's key, so the peer holds that key either way.
pub(super) fn let_through(
    checked: Result<ClientCertVerified, rustls::Error>,
    cert: &[u8],
    proven: &Proven,
) -> Result<ClientCertVerified, rustls::Error> {
    match checked {
        Ok(verified) => {
            proven.record(cert);
            Ok(verified)
        }
        Err(e @ rustls::Error::InvalidCertificate(CertificateError::Revoked)) => Err(e),
        Err(e @ rustls::Error::InvalidCertificate(_)) => {
            tracing::debug!(
                reason = %why_unproven(&e),
                "a client certificate that proves nothing was let through"
            );
            Ok(ClientCertVerified::assertion())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_certificate_is_refused_any_other_failure_let_through_unproven() {
        let proven = Proven::default();
        let invalid = |e| Err(rustls::Error::InvalidCertificate(e));
        assert!(let_through(invalid(CertificateError::Revoked), b"r", &proven).is_err());
        for e in [CertificateError::UnknownIssuer, CertificateError::Expired] {
            assert!(let_through(invalid(e), b"u", &proven).is_ok());
        }
        let other = Err(rustls::Error::General("no".into()));
        assert!(let_through(other, b"g", &proven).is_err());
        assert!(!proven.holds(b"r") && !proven.holds(b"u") && !proven.holds(b"g"));
        let ok = let_through(Ok(ClientCertVerified::assertion()), b"p", &proven);
        assert!(ok.is_ok() && proven.holds(b"p"));
    }

    #[test]
    fn only_what_was_recorded_is_held_and_the_oldest_is_forgotten_first() {
        let proven = Proven::default();
        let cert = |i: usize| format!("certificate {i}").into_bytes();
        proven.record(&cert(0));
        assert!(proven.holds(&cert(0)));
        assert!(!proven.holds(&cert(1)));
        // Recording one again does not make it take two places.
        proven.record(&cert(0));
        for i in 1..REMEMBERED {
            proven.record(&cert(i));
        }
        assert!(proven.holds(&cert(0)), "the table is exactly full");
        proven.record(&cert(REMEMBERED));
        assert!(!proven.holds(&cert(0)), "the oldest goes first");
        assert!(proven.holds(&cert(1)));
        assert!(proven.holds(&cert(REMEMBERED)));
        let kept = proven.kept.lock().unwrap();
        assert_eq!(kept.digests.len(), REMEMBERED);
        assert_eq!(kept.order.len(), REMEMBERED);
    }
}
