//! A server identity supplied by the operator — a certificate chain and its private key, as PEM
//! or PKCS#12 — checked completely before anything is written: every certificate parses, the key
//! is usable and belongs to one of them (the leaf), and the leaf is valid now and meant for TLS
//! servers.

use base64::Engine;
use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::inspect::CertInfo;

/// A certificate whose `not_before` is at most this far ahead is accepted (clock skew between
/// the machine that issued it and this box).
const NOT_BEFORE_SLACK_SECS: i64 = 300;

/// Why an identity was refused; each message names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error(
        "no PEM private key found (PKCS#8, SEC1 or PKCS#1; an encrypted key is not supported, use PKCS#12 with a password)"
    )]
    NoPrivateKey,
    #[error("certificate {index} (counting from 1) is not usable: {reason}")]
    BadCertificate { index: usize, reason: String },
    #[error("the private key is not usable: {0}")]
    BadKey(String),
    #[error("the private key does not belong to any of the certificates given")]
    KeyMismatch,
    #[error("the certificate for the key ({subject}) expired at {not_after} (Unix time)")]
    Expired { subject: String, not_after: i64 },
    #[error("the certificate for the key ({subject}) is not valid before {not_before} (Unix time)")]
    NotYetValid { subject: String, not_before: i64 },
    #[error(
        "the certificate for the key ({subject}) is not for TLS servers: its extended key usage lacks serverAuth"
    )]
    NotForServers { subject: String },
    #[error("pkcs12: not base64 ({0})")]
    Base64(String),
    #[error("pkcs12: wrong password, or the file is damaged (its integrity check failed)")]
    WrongPassword,
    #[error("pkcs12: not a usable PKCS#12 file ({0})")]
    Pkcs12(String),
    #[error("pkcs12: the file holds no private key")]
    Pkcs12NoKey,
}

/// A checked server identity: the leaf first, then the rest of the chain as given.
#[derive(Debug)]
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The leaf, described.
    pub leaf: CertInfo,
}

impl ServerIdentity {
    /// Certificates and one private key from PEM text, in any order.
    pub fn from_pem(text: &str, now: i64) -> Result<ServerIdentity, IdentityError> {
        ServerIdentity::parse_pem(text, Some(now))
    }

    /// An identity stored by [`ServerIdentity::to_pem`]: checked like a new one, except that it
    /// may have expired since (that raises an alarm, not a failed start).
    pub fn from_stored_pem(text: &str) -> Result<ServerIdentity, IdentityError> {
        ServerIdentity::parse_pem(text, None)
    }

    fn parse_pem(text: &str, now: Option<i64>) -> Result<ServerIdentity, IdentityError> {
        let certs = CertificateDer::pem_slice_iter(text.as_bytes())
            .enumerate()
            .map(|(i, c)| {
                c.map_err(|e| IdentityError::BadCertificate {
                    index: i + 1,
                    reason: format!("bad PEM ({e})"),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_slice(text.as_bytes())
            .map_err(|_| IdentityError::NoPrivateKey)?;
        ServerIdentity::checked(certs, key, now)
    }

    /// A PKCS#12 file given as base64 text, with its password (may be empty).
    pub fn from_pkcs12_base64(
        b64: &str,
        password: &str,
        now: i64,
    ) -> Result<ServerIdentity, IdentityError> {
        let compact: String = b64.split_ascii_whitespace().collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(|e| IdentityError::Base64(e.to_string()))?;
        ServerIdentity::from_pkcs12(&der, password, now)
    }

    /// A PKCS#12 file (PBES2/AES or the legacy 3DES/RC2 encryptions) and its password.
    pub fn from_pkcs12(
        der: &[u8],
        password: &str,
        now: i64,
    ) -> Result<ServerIdentity, IdentityError> {
        let store = KeyStore::from_pkcs12(der, password, Pkcs12ImportPolicy::Relaxed).map_err(
            |e| match e {
                p12_keystore::error::Error::MacError(_) => IdentityError::WrongPassword,
                other => IdentityError::Pkcs12(other.to_string()),
            },
        )?;
        let mut key = None;
        let mut certs = Vec::new();
        // Certificates bound to the key first (leaf first), then any others in the file.
        for (_, entry) in store.entries() {
            if let KeyStoreEntry::PrivateKeyChain(chain) = entry
                && key.is_none()
            {
                key = Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                    chain.key().as_der().to_vec(),
                )));
                certs.extend(
                    chain
                        .certs()
                        .iter()
                        .map(|c| CertificateDer::from(c.as_der().to_vec())),
                );
            }
        }
        for (_, entry) in store.entries() {
            if let KeyStoreEntry::Certificate(c) = entry {
                certs.push(CertificateDer::from(c.as_der().to_vec()));
            }
        }
        let key = key.ok_or(IdentityError::Pkcs12NoKey)?;
        ServerIdentity::checked(certs, key, Some(now))
    }

    /// `now`: check the leaf's validity period as of then; `None` skips that check.
    fn checked(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        now: Option<i64>,
    ) -> Result<ServerIdentity, IdentityError> {
        let described_at = now.unwrap_or_else(crate::model::now_unix);
        if certs.is_empty() {
            return Err(IdentityError::NoCertificate);
        }
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
            .map_err(|e| IdentityError::BadKey(e.to_string()))?;
        let spki = signer
            .public_key()
            .ok_or_else(|| IdentityError::BadKey("its public key cannot be derived".to_string()))?;
        let mut leaf = None;
        for (i, der) in certs.iter().enumerate() {
            let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| {
                IdentityError::BadCertificate {
                    index: i + 1,
                    reason: e.to_string(),
                }
            })?;
            if leaf.is_none() && cert.public_key().raw == spki.as_ref() {
                let eku_ok = match cert.extended_key_usage() {
                    Ok(Some(eku)) => eku.value.server_auth || eku.value.any,
                    Ok(None) => true,
                    Err(e) => {
                        return Err(IdentityError::BadCertificate {
                            index: i + 1,
                            reason: e.to_string(),
                        });
                    }
                };
                let info = super::inspect::describe_parsed(&cert, der, described_at);
                if !eku_ok {
                    return Err(IdentityError::NotForServers {
                        subject: info.subject,
                    });
                }
                leaf = Some((i, info));
            }
        }
        let (index, info) = leaf.ok_or(IdentityError::KeyMismatch)?;
        if let Some(now) = now {
            if info.not_after <= now {
                return Err(IdentityError::Expired {
                    subject: info.subject,
                    not_after: info.not_after,
                });
            }
            if info.not_before > now + NOT_BEFORE_SLACK_SECS {
                return Err(IdentityError::NotYetValid {
                    subject: info.subject,
                    not_before: info.not_before,
                });
            }
        }
        let mut chain = certs;
        let leaf_der = chain.remove(index);
        chain.insert(0, leaf_der);
        Ok(ServerIdentity {
            chain,
            key,
            leaf: info,
        })
    }

    /// The chain and the key as one PEM text (how an installed identity is stored).
    pub fn to_pem(&self) -> String {
        let tag = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        let mut blocks: Vec<pem::Pem> = self
            .chain
            .iter()
            .map(|c| pem::Pem::new("CERTIFICATE", c.to_vec()))
            .collect();
        blocks.push(pem::Pem::new(tag, self.key.secret_der().to_vec()));
        pem::encode_many_config(
            &blocks,
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair};

    fn now() -> i64 {
        crate::model::now_unix()
    }

    fn self_signed(eku: Vec<ExtendedKeyUsagePurpose>) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["prov.example.lan".to_string()]).unwrap();
        params.extended_key_usages = eku;
        params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(10);
        (params.self_signed(&key).unwrap().pem(), key)
    }

    #[test]
    fn pem_with_matching_key_round_trips() {
        let (cert, key) = self_signed(vec![ExtendedKeyUsagePurpose::ServerAuth]);
        let id =
            ServerIdentity::from_pem(&format!("{}{cert}", key.serialize_pem()), now()).unwrap();
        assert_eq!(id.chain.len(), 1);
        assert_eq!(id.leaf.names, ["prov.example.lan"]);
        let again = ServerIdentity::from_pem(&id.to_pem(), now()).unwrap();
        assert_eq!(again.chain, id.chain);
        assert_eq!(again.key.secret_der(), id.key.secret_der());
    }

    #[test]
    fn refusals_name_the_problem() {
        let (cert, _) = self_signed(vec![]);
        let other = KeyPair::generate().unwrap();
        let err = ServerIdentity::from_pem(&format!("{cert}{}", other.serialize_pem()), now());
        assert!(matches!(err, Err(IdentityError::KeyMismatch)), "{err:?}");
        assert!(matches!(
            ServerIdentity::from_pem(&cert, now()),
            Err(IdentityError::NoPrivateKey)
        ));
        assert!(matches!(
            ServerIdentity::from_pem(&other.serialize_pem(), now()),
            Err(IdentityError::NoCertificate)
        ));
        let (client, key) = self_signed(vec![ExtendedKeyUsagePurpose::ClientAuth]);
        let err = ServerIdentity::from_pem(&format!("{client}{}", key.serialize_pem()), now());
        assert!(matches!(err, Err(IdentityError::NotForServers { .. })));
        let (cert, key) = self_signed(vec![]);
        let later = now() + 20 * 86_400;
        let err = ServerIdentity::from_pem(&format!("{cert}{}", key.serialize_pem()), later);
        assert!(matches!(err, Err(IdentityError::Expired { .. })), "{err:?}");
    }

    #[test]
    fn garbage_pkcs12_is_refused_without_panicking() {
        assert!(matches!(
            ServerIdentity::from_pkcs12_base64("!!!", "", now()),
            Err(IdentityError::Base64(_))
        ));
        assert!(matches!(
            ServerIdentity::from_pkcs12(b"\x30\x03\x02\x01\x03", "", now()),
            Err(IdentityError::Pkcs12(_))
        ));
    }
}
