//! Device certificates minted in memory from a CA given as files, for tools that act as many
//! phones at once (the boot-storm simulator). Same profile as the certificates the daemon
//! issues, so a simulated phone proves itself exactly as a real one enrolled by edgeprov would.

use std::path::Path;

use rcgen::{Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::files::{check_pair, parse_one_cert, read_key_pair, read_text};
use super::issue::device_cert;
use super::{CA_PAIR_REMEDY, PkiError};
use crate::model::Mac;

/// A CA able to sign device certificates, loaded once; minting is then pure CPU.
pub struct DeviceMinter {
    issuer: Issuer<'static, KeyPair>,
    ca_cert: CertificateDer<'static>,
    /// Unix seconds.
    ca_not_after: i64,
}

impl DeviceMinter {
    /// Loads the CA certificate and its private key (PEM), naming the file that is unusable.
    pub fn from_files(cert_path: &Path, key_path: &Path) -> Result<DeviceMinter, PkiError> {
        let pem = read_text(cert_path)?;
        let ca_cert = parse_one_cert(cert_path, &pem)?;
        let key = read_key_pair(key_path)?;
        // Certificates signed by another key name this CA as issuer yet fail every server's
        // check: a mismatched pair is refused here, naming both files, rather than as every
        // phone's TLS error.
        check_pair(
            cert_path,
            &ca_cert,
            key_path,
            key.public_key_raw(),
            CA_PAIR_REMEDY,
        )?;
        let issuer = Issuer::from_ca_cert_pem(&pem, key).map_err(|e| PkiError::Corrupt {
            path: cert_path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let ca_not_after = x509_parser::parse_x509_certificate(&ca_cert)
            .map(|(_, c)| c.validity().not_after.timestamp())
            .map_err(|e| PkiError::Corrupt {
                path: cert_path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(DeviceMinter {
            issuer,
            ca_cert,
            ca_not_after,
        })
    }

    pub fn ca_cert(&self) -> &CertificateDer<'static> {
        &self.ca_cert
    }

    /// A new key and a certificate for `mac`, valid for `days`, ready for a TLS client.
    pub fn mint(
        &self,
        mac: Mac,
        days: u32,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), PkiError> {
        let (cert, key) = device_cert(&self.issuer, self.ca_not_after, mac, days)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((cert.der().clone(), key))
    }
}
