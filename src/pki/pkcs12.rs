//! A device identity (certificate, private key and the CA) as one password-protected PKCS#12
//! file: the form softphones (Avaya Workplace on Windows, macOS and Android) and desk phones
//! (Avaya J100 `PKCS12URL`, whose password the user types on the phone) import a client
//! identity in.
//!
//! Two forms. The default is today's (OpenSSL 3's default): keys and certificates encrypted
//! with PBES2 (PBKDF2-HMAC-SHA-256, AES-256-CBC), integrity by HMAC-SHA-256. Importers built
//! before PBES2 was common (older Windows, macOS/iOS keychains and Java releases; the phone
//! vendors' documents name no algorithm) refuse it, often as "wrong password". `Legacy` is the
//! form they were all built for: 3DES (pbeWithSHAAnd3-KeyTripleDES-CBC) for both, HMAC-SHA-1,
//! 2,048 rounds, as OpenSSL 1.x wrote by default (but 3DES for the certificates too, not
//! RC2-40, which OpenSSL 3 reads only with its legacy provider).

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
    PrivateKeyChain,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::DeviceIdentity;

/// Which PKCS#12 encryption and integrity algorithms a file is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkcs12Form {
    /// PBES2/AES-256-CBC with PBKDF2-HMAC-SHA-256, HMAC-SHA-256 integrity.
    Modern,
    /// pbeWithSHAAnd3-KeyTripleDES-CBC, HMAC-SHA-1 integrity: for importers that predate PBES2.
    Legacy,
}

/// Rounds of key derivation for the modern form: PBKDF2's cost to whoever guesses passwords
/// against a file that got out, and a few milliseconds on a phone's CPU at import.
const MODERN_ROUNDS: u32 = 10_000;
/// OpenSSL 1.x's count, the one every legacy importer was tried with.
const LEGACY_ROUNDS: u32 = 2_048;

/// Why a PKCS#12 file was not made.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs12Error {
    #[error("pkcs12 password: {0}")]
    Password(&'static str),
    #[error("pkcs12: the {what} is not usable: {reason}")]
    Input { what: &'static str, reason: String },
    #[error("pkcs12: cannot write the file: {0}")]
    Write(String),
}

/// Whether `password` can protect a PKCS#12 file for a phone: not empty (an empty password
/// leaves the key readable by anyone who gets the file), and printable ASCII only — what a
/// phone's keypad and every PKCS#12 reader agree on (readers turn other characters into the
/// BMPString the key derivation takes in different ways, so the same password would not open
/// the file everywhere).
pub fn check_pkcs12_password(password: &str) -> Result<(), Pkcs12Error> {
    if password.is_empty() {
        return Err(Pkcs12Error::Password(
            "empty (an empty password leaves the private key open to anyone with the file)",
        ));
    }
    if !password.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
        return Err(Pkcs12Error::Password(
            "only printable ASCII characters (letters, digits, space and punctuation): phones type nothing else, and PKCS#12 readers encode other characters differently",
        ));
    }
    Ok(())
}

impl DeviceIdentity {
    /// This identity as a PKCS#12 file: the key, under the name `alias` (the device's MAC),
    /// with its certificate and then the CA's, protected by `password` in `form`.
    pub fn to_pkcs12(
        &self,
        alias: &str,
        password: &str,
        form: Pkcs12Form,
    ) -> Result<Vec<u8>, Pkcs12Error> {
        check_pkcs12_password(password)?;
        let cert = |what, pem: &str| {
            let der =
                CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| Pkcs12Error::Input {
                    what,
                    reason: e.to_string(),
                })?;
            Certificate::from_der(&der).map_err(|e| Pkcs12Error::Input {
                what,
                reason: e.to_string(),
            })
        };
        let leaf = cert("certificate", &self.certificate)?;
        let ca = cert("CA certificate", &self.ca_certificate)?;
        let bad_key = |reason: String| Pkcs12Error::Input {
            what: "private key",
            reason,
        };
        let key = match PrivateKeyDer::from_pem_slice(self.private_key.as_bytes()) {
            Ok(PrivateKeyDer::Pkcs8(k)) => {
                PrivateKey::from_der(k.secret_pkcs8_der()).map_err(|e| bad_key(e.to_string()))?
            }
            Ok(_) => return Err(bad_key("not PKCS#8".into())),
            Err(e) => return Err(bad_key(e.to_string())),
        };
        // The certificate's SHA-1 fingerprint ties the key to it, as OpenSSL and Windows do.
        let key_id =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, leaf.as_der());
        let chain = PrivateKeyChain::new(key_id.as_ref(), key, [leaf, ca]);
        let mut store = KeyStore::new();
        store.add_entry(alias, KeyStoreEntry::PrivateKeyChain(chain));
        let (encryption, mac, rounds) = match form {
            Pkcs12Form::Modern => (
                EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
                MacAlgorithm::HmacSha256,
                MODERN_ROUNDS,
            ),
            Pkcs12Form::Legacy => (
                EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
                MacAlgorithm::HmacSha1,
                LEGACY_ROUNDS,
            ),
        };
        store
            .writer(password)
            .encryption_algorithm(encryption)
            .encryption_iterations(rounds)
            .mac_algorithm(mac)
            .mac_iterations(rounds)
            .write()
            .map_err(|e| Pkcs12Error::Write(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_a_phone_cannot_type_or_that_protect_nothing_are_refused() {
        for good in ["Secr3t-pw", "a b!~", "x"] {
            assert!(check_pkcs12_password(good).is_ok(), "{good:?}");
        }
        for bad in ["", "pässwort", "tab\there", "line\n"] {
            assert!(check_pkcs12_password(bad).is_err(), "{bad:?}");
        }
    }
}
