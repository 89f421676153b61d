//! The content ciphers of SCEP envelopes: CBC with PKCS#7 padding over AES or (triple) DES.
//! The answer is encrypted with the cipher the request came in, the one the client is known to
//! speak.

use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use der::asn1::{ObjectIdentifier, OctetString};
use der::{Any, Decode, Encode};
use x509_cert::spki::AlgorithmIdentifierOwned;

use super::oids;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCipher {
    /// Single DES: 56-bit keys, broken by exhaustive search. Accepted only when
    /// `scep.allow_single_des` is set, for clients that speak nothing else.
    DesCbc,
    DesEde3Cbc,
    Aes128Cbc,
    Aes256Cbc,
}

impl ContentCipher {
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<ContentCipher> {
        match *oid {
            oids::DES_CBC => Some(ContentCipher::DesCbc),
            oids::DES_EDE3_CBC => Some(ContentCipher::DesEde3Cbc),
            oids::AES128_CBC => Some(ContentCipher::Aes128Cbc),
            oids::AES256_CBC => Some(ContentCipher::Aes256Cbc),
            _ => None,
        }
    }

    pub fn oid(self) -> ObjectIdentifier {
        match self {
            ContentCipher::DesCbc => oids::DES_CBC,
            ContentCipher::DesEde3Cbc => oids::DES_EDE3_CBC,
            ContentCipher::Aes128Cbc => oids::AES128_CBC,
            ContentCipher::Aes256Cbc => oids::AES256_CBC,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ContentCipher::DesCbc => "DES-CBC",
            ContentCipher::DesEde3Cbc => "DES-EDE3-CBC",
            ContentCipher::Aes128Cbc => "AES-128-CBC",
            ContentCipher::Aes256Cbc => "AES-256-CBC",
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            ContentCipher::DesCbc => 8,
            ContentCipher::DesEde3Cbc => 24,
            ContentCipher::Aes128Cbc => 16,
            ContentCipher::Aes256Cbc => 32,
        }
    }

    fn iv_len(self) -> usize {
        match self {
            ContentCipher::DesCbc | ContentCipher::DesEde3Cbc => 8,
            ContentCipher::Aes128Cbc | ContentCipher::Aes256Cbc => 16,
        }
    }

    /// The cipher and IV an envelope names (the IV is the algorithm's OCTET STRING
    /// parameter, RFC 3370 §5.1/RFC 3565 §4.1).
    pub fn from_algorithm(
        alg: &AlgorithmIdentifierOwned,
    ) -> Result<(ContentCipher, Vec<u8>), String> {
        let cipher = ContentCipher::from_oid(&alg.oid)
            .ok_or_else(|| format!("content encryption {} is not supported", alg.oid))?;
        let iv = alg
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<OctetString>().ok())
            .map(|o| o.as_bytes().to_vec())
            .filter(|iv| iv.len() == cipher.iv_len())
            .ok_or_else(|| {
                format!(
                    "{}: the IV parameter is missing or of the wrong size",
                    cipher.name()
                )
            })?;
        Ok((cipher, iv))
    }

    /// The algorithm identifier naming this cipher with `iv`.
    pub fn algorithm(self, iv: &[u8]) -> Result<AlgorithmIdentifierOwned, der::Error> {
        let iv = OctetString::new(iv)?;
        Ok(AlgorithmIdentifierOwned {
            oid: self.oid(),
            parameters: Some(Any::from_der(&iv.to_der()?)?),
        })
    }

    /// A fresh key and IV of this cipher's sizes.
    pub fn fresh_key_iv(self) -> (Vec<u8>, Vec<u8>) {
        let mut key = vec![0; self.key_len()];
        let mut iv = vec![0; self.iv_len()];
        // SystemRandom only fails where the kernel has no entropy source at all, which the
        // daemon's TLS could not run without either.
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let _ = aws_lc_rs::rand::SecureRandom::fill(&rng, &mut key);
        let _ = aws_lc_rs::rand::SecureRandom::fill(&rng, &mut iv);
        (key, iv)
    }

    pub fn encrypt(self, key: &[u8], iv: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
        fn run<C: KeyIvInit + BlockModeEncrypt>(
            key: &[u8],
            iv: &[u8],
            plain: &[u8],
        ) -> Option<Vec<u8>> {
            Some(
                C::new_from_slices(key, iv)
                    .ok()?
                    .encrypt_padded_vec::<Pkcs7>(plain),
            )
        }
        match self {
            ContentCipher::DesCbc => run::<cbc::Encryptor<des::Des>>(key, iv, plain),
            ContentCipher::DesEde3Cbc => run::<cbc::Encryptor<des::TdesEde3>>(key, iv, plain),
            ContentCipher::Aes128Cbc => run::<cbc::Encryptor<aes::Aes128>>(key, iv, plain),
            ContentCipher::Aes256Cbc => run::<cbc::Encryptor<aes::Aes256>>(key, iv, plain),
        }
    }

    /// `None` for a key or IV of the wrong size, or a text whose padding is wrong (a key that
    /// was not the sender's).
    pub fn decrypt(self, key: &[u8], iv: &[u8], encrypted: &[u8]) -> Option<Vec<u8>> {
        fn run<C: KeyIvInit + BlockModeDecrypt>(
            key: &[u8],
            iv: &[u8],
            enc: &[u8],
        ) -> Option<Vec<u8>> {
            C::new_from_slices(key, iv)
                .ok()?
                .decrypt_padded_vec::<Pkcs7>(enc)
                .ok()
        }
        match self {
            ContentCipher::DesCbc => run::<cbc::Decryptor<des::Des>>(key, iv, encrypted),
            ContentCipher::DesEde3Cbc => run::<cbc::Decryptor<des::TdesEde3>>(key, iv, encrypted),
            ContentCipher::Aes128Cbc => run::<cbc::Decryptor<aes::Aes128>>(key, iv, encrypted),
            ContentCipher::Aes256Cbc => run::<cbc::Decryptor<aes::Aes256>>(key, iv, encrypted),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cipher_round_trips_and_names_itself_by_its_oid() {
        for c in [
            ContentCipher::DesCbc,
            ContentCipher::DesEde3Cbc,
            ContentCipher::Aes128Cbc,
            ContentCipher::Aes256Cbc,
        ] {
            let (key, iv) = c.fresh_key_iv();
            let enc = c.encrypt(&key, &iv, b"a certificate request").unwrap();
            assert_ne!(&enc[..], b"a certificate request");
            assert_eq!(
                c.decrypt(&key, &iv, &enc).unwrap(),
                b"a certificate request"
            );
            let alg = c.algorithm(&iv).unwrap();
            assert_eq!(
                ContentCipher::from_algorithm(&alg).unwrap(),
                (c, iv.clone())
            );
            // A short IV is refused, not a panic in the cipher.
            let short = c.algorithm(&iv[..4]).unwrap();
            assert!(ContentCipher::from_algorithm(&short).is_err());
            assert!(c.decrypt(&key[..4], &iv, &enc).is_none());
        }
    }
}
