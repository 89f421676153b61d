//! The PKCS#10 certificate request inside a SCEP envelope: what the grant decision reads of it.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::model::Mac;

/// The kind and size of the key a request asks a certificate for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    Rsa {
        bits: usize,
    },
    /// The curve's OID, dotted.
    Ec {
        curve: String,
    },
    Other(String),
}

impl KeyKind {
    /// The keys a device certificate may be issued for: EC P-256 or P-384, RSA of 2048 bits
    /// or more (weaker keys would make the mutual-TLS proof weaker than the box's own).
    pub fn acceptable(&self) -> bool {
        match self {
            KeyKind::Rsa { bits } => (2048..=8192).contains(bits),
            KeyKind::Ec { curve } => curve == "1.2.840.10045.3.1.7" || curve == "1.3.132.0.34",
            KeyKind::Other(_) => false,
        }
    }
}

impl std::fmt::Display for KeyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA {bits}"),
            KeyKind::Ec { curve } => write!(f, "EC on curve {curve}"),
            KeyKind::Other(oid) => write!(f, "key algorithm {oid}"),
        }
    }
}

/// What a well-formed, self-signed certificate request says. Its Debug leaves the challenge
/// out: a request printed in a log must not give the challenge away.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrFacts {
    /// The MAC its subject CN names, in a form device certificates use (see
    /// `phone::identify::mac_in_cn`).
    pub mac: Option<Mac>,
    /// The subject CN as written, for alarms (cut to 64 characters).
    pub cn: String,
    pub challenge: Option<String>,
    pub key: KeyKind,
    /// The SubjectPublicKeyInfo (DER) the certificate is to be issued for.
    pub spki: Vec<u8>,
}

impl std::fmt::Debug for CsrFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsrFacts")
            .field("mac", &self.mac)
            .field("cn", &self.cn)
            .field("challenge", &self.challenge.as_ref().map(|_| "<redacted>"))
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Reads a PKCS#10 request (DER) and checks its self-signature: a request not signed by the
/// key it names proves nobody holds that key.
pub fn read_csr(der: &[u8]) -> Result<CsrFacts, String> {
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| format!("the certificate request does not parse: {e}"))?;
    if !rest.is_empty() {
        return Err("the certificate request has trailing bytes".into());
    }
    csr.verify_signature()
        .map_err(|e| format!("the certificate request's signature does not verify: {e}"))?;
    let info = &csr.certification_request_info;
    let cn = info
        .subject
        .iter_common_name()
        .filter_map(|a| a.as_str().ok())
        .next()
        .unwrap_or_default();
    let challenge = info
        .iter_attributes()
        .find_map(|a| match a.parsed_attribute() {
            ParsedCriAttribute::ChallengePassword(p) => Some(p.0.clone()),
            _ => None,
        });
    let spki = &info.subject_pki;
    let key = match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => KeyKind::Rsa {
            bits: rsa.key_size(),
        },
        Ok(PublicKey::EC(_)) => KeyKind::Ec {
            curve: spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default(),
        },
        _ => KeyKind::Other(spki.algorithm.algorithm.to_id_string()),
    };
    Ok(CsrFacts {
        mac: crate::phone::identify::mac_in_cn(cn),
        cn: cn.chars().take(64).collect(),
        challenge,
        key,
        spki: spki.raw.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::test_support::csr;

    #[test]
    fn a_request_gives_its_mac_challenge_and_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let facts = read_csr(&csr(&key, "00:04:0D:11:22:33", Some("s3cret"))).unwrap();
        assert_eq!(facts.mac, Mac::parse("00040d112233").ok());
        assert_eq!(facts.challenge.as_deref(), Some("s3cret"));
        assert_eq!(
            facts.key,
            KeyKind::Ec {
                curve: "1.2.840.10045.3.1.7".into()
            }
        );
        assert!(facts.key.acceptable());

        let rsa =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .unwrap();
        let facts = read_csr(&csr(&rsa, "phone", None)).unwrap();
        assert_eq!(facts.mac, None);
        assert_eq!(facts.challenge, None);
        assert_eq!(facts.key, KeyKind::Rsa { bits: 2048 });
    }

    #[test]
    fn debug_output_leaves_the_challenge_out() {
        let key = rcgen::KeyPair::generate().unwrap();
        let facts = read_csr(&csr(&key, "00040d112233", Some("s3cret-Pw"))).unwrap();
        let shown = format!("{facts:?}");
        assert!(!shown.contains("s3cret-Pw"), "{shown}");
        assert!(
            shown.contains("<redacted>") && shown.contains("00040d112233"),
            "{shown}"
        );
    }

    #[test]
    fn weak_keys_and_forged_requests_are_refused() {
        assert!(!KeyKind::Rsa { bits: 1024 }.acceptable());
        assert!(
            !KeyKind::Ec {
                curve: "1.3.132.0.35".into()
            }
            .acceptable()
        );
        let key = rcgen::KeyPair::generate().unwrap();
        let mut der = csr(&key, "00040d112233", None);
        let last = der.len() - 1;
        der[last] ^= 1;
        assert!(read_csr(&der).unwrap_err().contains("signature"));
        assert!(read_csr(b"\x30\x03\x02\x01\x00").is_err());
    }
}
