//! An RSA key with its certificate, as SCEP uses one on either side: the box's RA opens the
//! envelopes phones encrypt to it and signs its answers with it, and a client (the tests')
//! opens the answers encrypted to the key that signed its request. One implementation of
//! [`RaKey`] for both, so what the tests exercise is what the RA runs.

use aws_lc_rs::rsa::{KeyPair, Pkcs1PrivateDecryptingKey, PrivateDecryptingKey};
use aws_lc_rs::signature::RSA_PKCS1_SHA256;

use super::RaKey;

/// Why a private key cannot be an [`RsaKey`].
#[derive(Debug, thiserror::Error)]
pub enum RsaKeyError {
    #[error("not an RSA private key: {0}")]
    NotRsa(String),
    #[error("not usable for RSA decryption")]
    NoDecryption,
}

pub struct RsaKey {
    cert: Vec<u8>,
    signer: KeyPair,
    decrypter: Pkcs1PrivateDecryptingKey,
    /// HMAC-SHA256 of a fixed label under the private key (PKCS#8): the implicit rejection
    /// secret, the same across restarts while the key is.
    rejection_secret: [u8; 32],
}

impl std::fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKey").finish_non_exhaustive()
    }
}

impl RsaKey {
    /// `cert`: the certificate (DER); `pkcs8`: its private key (PKCS#8 DER). Whether the two
    /// belong together is the caller's to check ([`RsaKey::public_key`]).
    pub fn new(cert: Vec<u8>, pkcs8: &[u8]) -> Result<RsaKey, RsaKeyError> {
        let signer = KeyPair::from_pkcs8(pkcs8).map_err(|e| RsaKeyError::NotRsa(e.to_string()))?;
        let decrypter = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .ok()
            .and_then(|k| Pkcs1PrivateDecryptingKey::new(k).ok())
            .ok_or(RsaKeyError::NoDecryption)?;
        let tag = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, pkcs8),
            b"edgeprov SCEP implicit rejection",
        );
        let mut rejection_secret = [0; 32];
        rejection_secret.copy_from_slice(tag.as_ref());
        Ok(RsaKey {
            cert,
            signer,
            decrypter,
            rejection_secret,
        })
    }

    /// The public key (PKCS#1 DER), to check the certificate names it.
    pub fn public_key(&self) -> &[u8] {
        aws_lc_rs::signature::KeyPair::public_key(&self.signer).as_ref()
    }
}

impl RaKey for RsaKey {
    fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    fn decrypt_key(&self, encrypted: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0; self.decrypter.min_output_size()];
        let plain = self.decrypter.decrypt(encrypted, &mut out).ok()?;
        Some(plain.to_vec())
    }

    fn rejection_secret(&self) -> &[u8; 32] {
        &self.rejection_secret
    }

    fn sign_sha256(&self, message: &[u8]) -> Option<Vec<u8>> {
        let mut sig = vec![0; self.signer.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.signer
            .sign(&RSA_PKCS1_SHA256, &rng, message, &mut sig)
            .ok()?;
        Some(sig)
    }
}
