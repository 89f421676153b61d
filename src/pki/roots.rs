//! Trusted device roots added through the admin API, one PEM file each under
//! `<pki>/roots/<sha256>.crt`, next to the roots the configuration names
//! (`pki.trusted_device_roots`). Phones' client certificates must chain to the edgeprov CA or
//! to one of these.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::PkiError;
use super::files::{parse_one_cert, read_text};
use super::inspect::{fingerprint, is_ca};

pub const DIR: &str = "roots";

/// Why a root offered through the API was refused.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("no PEM certificate found")]
    NoCertificate,
    #[error("certificate {index} (counting from 1) is not usable: {reason}")]
    Bad { index: usize, reason: String },
    #[error(
        "certificate {index} ({subject}) is not a CA certificate (basic constraints cA is not set)"
    )]
    NotCa { index: usize, subject: String },
    #[error("certificate {index} ({subject}) has expired")]
    Expired { index: usize, subject: String },
}

/// The file a root added through the API is kept in.
pub fn path(pki_dir: &Path, fingerprint: &str) -> PathBuf {
    pki_dir.join(DIR).join(format!("{fingerprint}.crt"))
}

/// Whether `name` (relative to the PKI directory) is a stored root's file.
pub fn is_root_file(name: &str) -> bool {
    name.strip_prefix("roots/")
        .and_then(|n| n.strip_suffix(".crt"))
        .and_then(super::inspect::normalise_fingerprint)
        .is_some_and(|fp| name == format!("roots/{fp}.crt"))
}

/// A root added through the API, with the file it is kept in. The file's name is normally its
/// fingerprint, but a file copied or renamed by hand may hold another certificate: it is
/// removed, and backed up, by the fingerprint of what it holds, which is what the listing shows.
pub struct StoredRoot {
    pub file: PathBuf,
    pub cert: CertificateDer<'static>,
}

/// The roots added through the API, in file-name order.
pub fn load_stored(pki_dir: &Path) -> Result<Vec<StoredRoot>, PkiError> {
    let dir = pki_dir.join(DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(PkiError::Io { path: dir, source }),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PkiError::Io {
            path: dir.clone(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_root_file(&format!("{DIR}/{name}")) {
            paths.push(entry.path());
        } else if !name.ends_with(".tmp") {
            // Most likely a vendor's root copied here by hand, which the operator expects
            // trusted: say so rather than leave phones failing their handshakes unexplained.
            tracing::warn!(
                file = %entry.path().display(),
                "not trusted: only roots added through the API are kept here (as <sha256>.crt); \
                 list other root files in pki.trusted_device_roots"
            );
        }
    }
    paths.sort();
    let mut out = Vec::new();
    for file in paths {
        let cert = parse_one_cert(&file, &read_text(&file)?)?;
        let fp = fingerprint(&cert);
        if file.file_stem().and_then(|n| n.to_str()) != Some(fp.as_str()) {
            tracing::warn!(
                file = %file.display(),
                sha256 = %fp,
                "this root file is named for another certificate: it is trusted, listed and \
                 removed as {fp}, the fingerprint of the certificate it holds"
            );
        }
        out.push(StoredRoot { file, cert });
    }
    Ok(out)
}

/// The files under `pki_dir` holding the root added through the API whose fingerprint is
/// `fingerprint` (more than one when a copy was made by hand under another name).
pub fn files_of(pki_dir: &Path, fingerprint: &str) -> Result<Vec<PathBuf>, PkiError> {
    Ok(load_stored(pki_dir)?
        .into_iter()
        .filter(|r| super::fingerprint(&r.cert) == fingerprint)
        .map(|r| r.file)
        .collect())
}

/// Parses the roots an operator offers (one or more PEM certificates): each must be a CA
/// certificate, unexpired and usable as a trust anchor. All or nothing.
pub fn parse_new(pem: &str, now: i64) -> Result<Vec<CertificateDer<'static>>, RootError> {
    let mut out = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let index = i + 1;
        let cert = cert.map_err(|e| RootError::Bad {
            index,
            reason: format!("bad PEM ({e})"),
        })?;
        let (_, parsed) =
            x509_parser::parse_x509_certificate(&cert).map_err(|e| RootError::Bad {
                index,
                reason: e.to_string(),
            })?;
        let subject = parsed.subject().to_string();
        if !is_ca(&parsed) {
            return Err(RootError::NotCa { index, subject });
        }
        if parsed.validity().not_after.timestamp() <= now {
            return Err(RootError::Expired { index, subject });
        }
        RootCertStore::empty()
            .add(cert.clone())
            .map_err(|e| RootError::Bad {
                index,
                reason: format!("not a usable trust anchor ({e})"),
            })?;
        out.push(cert);
    }
    if out.is_empty() {
        return Err(RootError::NoCertificate);
    }
    Ok(out)
}

/// Refuses a root read from a file (`pki.trusted_device_roots`, or one put in `roots/` by hand)
/// that is not a CA certificate, as [`parse_new`] refuses one offered through the API. webpki
/// takes any certificate as a trust anchor (its name and key only): a device's own certificate
/// listed by mistake would let whoever holds that device's key sign certificates naming any
/// other device, and be given that device's secrets. Expiry is left to the expiry alarm.
pub(super) fn require_ca(
    path: &Path,
    index: usize,
    cert: &CertificateDer<'_>,
) -> Result<(), PkiError> {
    let corrupt = |reason: String| PkiError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| {
        corrupt(
            RootError::Bad {
                index,
                reason: e.to_string(),
            }
            .to_string(),
        )
    })?;
    match is_ca(&parsed) {
        true => Ok(()),
        false => Err(corrupt(format!(
            "{}; a trusted device root must be the CA that signs the devices' certificates",
            RootError::NotCa {
                index,
                subject: parsed.subject().to_string(),
            }
        ))),
    }
}

/// Writes a root added through the API; returns its fingerprint.
pub fn store(pki_dir: &Path, cert: &CertificateDer<'_>) -> Result<String, PkiError> {
    super::files::ensure_dir(&pki_dir.join(DIR))?;
    let fp = fingerprint(cert);
    let text = pem::encode_config(
        &pem::Pem::new("CERTIFICATE", cert.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    super::files::write(&path(pki_dir, &fp), text.as_bytes(), 0o644)?;
    Ok(fp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    fn cert(ca: bool) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn only_ca_certificates_are_roots() {
        let now = crate::model::now_unix();
        assert_eq!(parse_new(&cert(true), now).unwrap().len(), 1);
        let both = format!("{}{}", cert(true), cert(false));
        assert!(matches!(
            parse_new(&both, now),
            Err(RootError::NotCa { index: 2, .. })
        ));
        assert!(matches!(
            parse_new("nothing", now),
            Err(RootError::NoCertificate)
        ));
    }

    /// A leaf copied into `roots/` by hand, named by its fingerprint, would be trusted as an
    /// anchor: the load refuses it, naming the file.
    #[test]
    fn a_stored_root_that_is_not_a_ca_stops_the_load_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::Config::default();
        let load = || {
            super::super::Pki::load_or_init(
                dir.path(),
                &config.pki,
                &config.crl_url(),
                super::super::Revocations::none(),
            )
        };
        assert!(load().is_ok());
        let leaf = cert(false);
        let der = CertificateDer::from_pem_slice(leaf.as_bytes()).unwrap();
        let file = path(dir.path(), &fingerprint(&der));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &leaf).unwrap();

        let err = load()
            .err()
            .expect("a leaf was loaded as a trusted root")
            .to_string();

        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains("not a CA certificate"), "{err}");
    }

    #[test]
    fn root_file_names_are_fingerprints() {
        let fp = "ab".repeat(32);
        assert!(is_root_file(&format!("roots/{fp}.crt")));
        assert!(!is_root_file(&format!("roots/{}.crt", fp.to_uppercase())));
        assert!(!is_root_file("roots/../ca.key"));
        assert!(!is_root_file(&format!("roots/{fp}.pem")));
    }
}
