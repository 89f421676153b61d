//! Which certificates the box's CA issued: decided by its key, never by its name alone.
//!
//! Every edgeprov box names its CA alike ("edgeprov device CA"), and a vendor's CA or one of
//! another site (trusted as a device root, or restored from its backup) may carry that name
//! too. A certificate naming this CA as its issuer is ours only when this CA's key signed it:
//! only then do this box's revocations (by serial, or all of a device's) apply to it, and only
//! then do check-ins record its serial as one of this CA's.

use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::parse_x509_certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

/// The box's CA, as the phone listener tells its certificates from namesakes'.
#[derive(Debug)]
pub(super) struct OwnCa {
    /// The CA certificate's public key (its DER SubjectPublicKeyInfo), what signed every
    /// certificate it issued: taken from the certificate once, so that telling a namesake's
    /// certificates from ours does not parse the certificate again on every connection (only
    /// these few bytes are read into x509-parser's view of a key). `None` when the certificate
    /// does not parse: then no certificate a namesake may have signed is taken for ours.
    key: Option<Vec<u8>>,
    /// Its subject name (DER), the issuer name its certificates carry.
    subject: Vec<u8>,
    /// Whether another trusted device root bears the same subject name.
    namesake_trusted: bool,
}

impl OwnCa {
    /// The CA `cert` (DER, subject `subject`) among the other trusted device roots `roots`.
    pub(super) fn new<'a>(
        cert: CertificateDer<'static>,
        subject: Vec<u8>,
        roots: impl IntoIterator<Item = &'a CertificateDer<'static>>,
    ) -> OwnCa {
        let namesake_trusted = roots
            .into_iter()
            .any(|r| *r != cert && subject_of(r).is_some_and(|s| s == subject));
        let key = parse_x509_certificate(&cert)
            .ok()
            .map(|(_, c)| c.public_key().raw.to_vec());
        OwnCa {
            key,
            subject,
            namesake_trusted,
        }
    }

    /// Whether this CA's key signed `leaf`, a certificate the phone listener's verifier (built
    /// from the same trusted roots) accepted with the `intermediates` its client sent.
    ///
    /// The verifier checked the leaf's signature under the key of a trusted certificate that
    /// bears the leaf's issuer name. When that can only be this CA (no other trusted root and
    /// no certificate the client sent bears its name, the usual case), that settles it with no
    /// further work; otherwise the signature is checked under this CA's key, an ECDSA
    /// verification (~40 µs) that callers make at most once per connection.
    pub(super) fn signed(
        &self,
        leaf: &X509Certificate<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> bool {
        if leaf.issuer().as_raw() != self.subject.as_slice() {
            return false;
        }
        let namesake_sent = intermediates
            .iter()
            .any(|c| subject_of(c).is_some_and(|s| s == self.subject));
        if !self.namesake_trusted && !namesake_sent {
            return true;
        }
        let Some(Ok((_, key))) = self.key.as_deref().map(SubjectPublicKeyInfo::from_der) else {
            return false;
        };
        leaf.verify_signature(Some(&key)).is_ok()
    }
}

fn subject_of(der: &[u8]) -> Option<Vec<u8>> {
    parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c.subject().as_raw().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    };

    /// A CA named like every edgeprov box's, with a key of its own.
    fn namesake() -> (CertificateDer<'static>, Issuer<'static, KeyPair>) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = DistinguishedName::new();
        p.distinguished_name
            .push(DnType::OrganizationName, "edgeprov");
        p.distinguished_name
            .push(DnType::CommonName, "edgeprov device CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap().der().clone();
        (cert, Issuer::new(p, key))
    }

    fn leaf(issuer: &Issuer<'static, KeyPair>) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "001122aabbcc");
        p.signed_by(&key, issuer).unwrap().der().to_vec()
    }

    fn signed(own: &OwnCa, leaf: &[u8], intermediates: &[CertificateDer<'_>]) -> bool {
        own.signed(&parse_x509_certificate(leaf).unwrap().1, intermediates)
    }

    #[test]
    fn a_namesakes_certificates_are_told_from_ours_by_the_key() {
        let (ours, our_issuer) = namesake();
        let (theirs, their_issuer) = namesake();
        let subject = subject_of(&ours).unwrap();
        assert_eq!(Some(subject.clone()), subject_of(&theirs));
        let (mine, foreign) = (leaf(&our_issuer), leaf(&their_issuer));

        // Trusted alongside ours: each certificate's signature decides.
        let both = OwnCa::new(ours.clone(), subject.clone(), [&ours, &theirs]);
        assert!(signed(&both, &mine, &[]));
        assert!(!signed(&both, &foreign, &[]));

        // Not trusted: the verifier can only have accepted ours, unless the client sent a
        // certificate bearing the CA's name, and then the signature decides again.
        let alone = OwnCa::new(ours.clone(), subject.clone(), [&ours]);
        assert!(signed(&alone, &mine, &[]));
        assert!(signed(&alone, &mine, std::slice::from_ref(&theirs)));
        assert!(!signed(&alone, &foreign, std::slice::from_ref(&theirs)));

        // Another issuer name is never ours.
        let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
        other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        other
            .distinguished_name
            .push(DnType::CommonName, "vendor factory root");
        let vendor = Issuer::new(other, KeyPair::generate().unwrap());
        assert!(!signed(&alone, &leaf(&vendor), &[]));
    }
}
