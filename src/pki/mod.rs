//! The box's own PKI: a device CA made on first start, a server certificate it signs, device
//! certificates issued on demand, and the set of roots trusted for client certificates.
//!
//! Only this module reads key files. The CA is never regenerated silently: losing it would
//! orphan every certificate already on a phone, so a missing or unreadable file is an error
//! that names the file.

pub mod cloud;
mod files;
mod issue;
mod minter;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{Issuer, KeyPair};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::PkiConfig;
pub use issue::{DeviceIdentity, cert_names};
pub use minter::DeviceMinter;
pub use tls::{admin_server_config, phone_server_config, random_bytes};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.crt";
pub const SERVER_KEY: &str = "server.key";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is missing while other PKI files exist in {dir}; restore it from a backup (edgeprov never regenerates a CA silently)",
        dir = .path.parent().map(|p| p.display().to_string()).unwrap_or_default()
    )]
    Missing { path: PathBuf },
    #[error("{path} is not usable: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot generate {what}: {reason}")]
    Generate { what: &'static str, reason: String },
    #[error("TLS configuration: {0}")]
    Tls(String),
}

/// The loaded PKI. Cheap to share behind an `Arc`.
pub struct Pki {
    dir: PathBuf,
    ca_cert_pem: String,
    ca_cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    device_roots: Arc<RootCertStore>,
    /// The last signed CRL and when it was signed (Unix seconds).
    crl: std::sync::Mutex<Option<(i64, Arc<Vec<u8>>)>>,
}

/// A CRL older than this is signed anew when asked for.
const CRL_REFRESH_SECS: i64 = 86_400;

impl Pki {
    /// Loads the PKI from `dir`, creating it when the directory holds none of its files.
    /// `crl_url` is written into the server certificate (see `Config::crl_url`).
    pub fn load_or_init(dir: &Path, config: &PkiConfig, crl_url: &str) -> Result<Pki, PkiError> {
        files::ensure_dir(dir)?;
        let present: Vec<bool> = [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY]
            .iter()
            .map(|f| dir.join(f).exists())
            .collect();
        let first_start = present.iter().all(|p| !p);
        if first_start {
            issue::create_ca(dir)?;
        } else if let Some(missing) = [CA_CERT, CA_KEY].iter().zip(&present).find(|(_, p)| !**p) {
            return Err(PkiError::Missing {
                path: dir.join(missing.0),
            });
        }
        let ca_cert_pem = files::read_text(&dir.join(CA_CERT))?;
        let ca_cert = files::parse_one_cert(&dir.join(CA_CERT), &ca_cert_pem)?;
        let ca_key = files::read_key_pair(&dir.join(CA_KEY))?;
        let issuer =
            Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).map_err(|e| PkiError::Corrupt {
                path: dir.join(CA_CERT),
                reason: e.to_string(),
            })?;
        issue::ensure_server_cert(dir, &issuer, &config.server_names, crl_url, first_start)?;
        let server_chain = vec![files::parse_one_cert(
            &dir.join(SERVER_CERT),
            &files::read_text(&dir.join(SERVER_CERT))?,
        )?];
        let server_key = files::read_private_key(&dir.join(SERVER_KEY))?;

        let mut roots = RootCertStore::empty();
        roots.add(ca_cert.clone()).map_err(|e| PkiError::Corrupt {
            path: dir.join(CA_CERT),
            reason: e.to_string(),
        })?;
        for path in &config.trusted_device_roots {
            files::add_roots(&mut roots, path)?;
        }
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca_cert_pem,
            ca_cert,
            issuer,
            server_chain,
            server_key,
            device_roots: Arc::new(roots),
            crl: std::sync::Mutex::new(None),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    pub fn ca_cert(&self) -> &CertificateDer<'static> {
        &self.ca_cert
    }

    pub fn device_roots(&self) -> Arc<RootCertStore> {
        self.device_roots.clone()
    }

    /// The current CRL (DER), re-signed once a day.
    pub fn crl_der(&self) -> Result<Arc<Vec<u8>>, PkiError> {
        let now = crate::model::now_unix();
        let mut cached = self.crl.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, der)) = cached.as_ref()
            && now - at < CRL_REFRESH_SECS
        {
            return Ok(der.clone());
        }
        let der = Arc::new(issue::crl_der(&self.issuer)?);
        *cached = Some((now, der.clone()));
        Ok(der)
    }

    /// Issues a client certificate for a device (softphones, tests, the boot-storm simulator).
    pub fn issue_device(
        &self,
        mac: crate::model::Mac,
        days: u32,
    ) -> Result<DeviceIdentity, PkiError> {
        issue::device_identity(&self.issuer, &self.ca_cert_pem, mac, days)
    }
}

/// Reads one PEM certificate (for `doctor`'s expiry checks).
pub fn read_cert(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    files::parse_one_cert(path, &files::read_text(path)?)
}

/// Reads the CA certificate a client needs to trust the admin API (used by the CLI).
pub fn read_ca_cert(data_pki_dir: &Path) -> Result<CertificateDer<'static>, PkiError> {
    let path = data_pki_dir.join(CA_CERT);
    files::parse_one_cert(&path, &files::read_text(&path)?)
}
