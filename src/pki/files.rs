//! Reading and writing PEM files, with errors that name the file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rcgen::KeyPair;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::PkiError;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, reason: impl ToString) -> PkiError {
    PkiError::Corrupt {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

pub fn ensure_dir(dir: &Path) -> Result<(), PkiError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

pub fn read_text(path: &Path) -> Result<String, PkiError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    String::from_utf8(bytes).map_err(|_| corrupt(path, "not a PEM text file"))
}

pub fn parse_one_cert(path: &Path, pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    let cert = CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| corrupt(path, format!("no PEM certificate ({e})")))?;
    x509_parser::parse_x509_certificate(&cert)
        .map_err(|e| corrupt(path, format!("certificate does not parse: {e}")))?;
    Ok(cert)
}

pub fn read_key_pair(path: &Path) -> Result<KeyPair, PkiError> {
    let pem = read_text(path)?;
    KeyPair::from_pem(&pem).map_err(|e| corrupt(path, format!("private key does not parse: {e}")))
}

pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PkiError> {
    let pem = read_text(path)?;
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| corrupt(path, format!("no PEM private key ({e})")))
}

/// The public key (the bits of its SubjectPublicKeyInfo) of a private key read from `path`.
pub fn public_key_of(path: &Path, key: &PrivateKeyDer<'_>) -> Result<Vec<u8>, PkiError> {
    use x509_parser::prelude::FromDer;
    let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(key)
        .map_err(|e| corrupt(path, format!("private key is not usable: {e}")))?;
    let spki = signer
        .public_key()
        .ok_or_else(|| corrupt(path, "the public key of this private key cannot be derived"))?;
    let (_, parsed) =
        x509_parser::x509::SubjectPublicKeyInfo::from_der(spki.as_ref()).map_err(|e| {
            corrupt(
                path,
                format!("private key's public key does not parse: {e}"),
            )
        })?;
    Ok(parsed.subject_public_key.data.to_vec())
}

/// Whether `cert` (read from `cert_path`) is for the public key `key_public` (the bits of a
/// SubjectPublicKeyInfo).
pub fn certifies(
    cert_path: &Path,
    cert: &CertificateDer<'_>,
    key_public: &[u8],
) -> Result<bool, PkiError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| corrupt(cert_path, format!("certificate does not parse: {e}")))?;
    Ok(parsed.public_key().subject_public_key.data.as_ref() == key_public)
}

/// Refuses a private key that is not the one `cert` (read from `cert_path`) certifies, naming
/// both files and `remedy`: a mismatched pair loads without complaint, then fails every
/// handshake or signs certificates nobody can verify, far from the files that caused it.
pub fn check_pair(
    cert_path: &Path,
    cert: &CertificateDer<'_>,
    key_path: &Path,
    key_public: &[u8],
    remedy: &'static str,
) -> Result<(), PkiError> {
    match certifies(cert_path, cert, key_public)? {
        true => Ok(()),
        false => Err(PkiError::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
            remedy,
        }),
    }
}

/// Every certificate of a PEM bundle; a file with none is an error, since a trust file that
/// silently trusts nothing leaves phones unable to prove themselves.
pub fn read_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let pem = std::fs::read(path).map_err(io(path))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .map(|c| c.map_err(|e| corrupt(path, format!("bad PEM certificate ({e})"))))
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(corrupt(path, "contains no PEM certificate"));
    }
    Ok(certs)
}

/// Adds every certificate of a PEM bundle to `roots` (see [`read_roots`]).
pub fn add_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), PkiError> {
    for cert in read_roots(path)? {
        roots
            .add(cert)
            .map_err(|e| corrupt(path, format!("not a usable trust anchor: {e}")))?;
    }
    Ok(())
}

/// Puts a new key left at `pending` in place at `key_path` when the certificate at `cert_path`
/// is its certificate: a pair is replaced key first to `pending`, then the certificate, then
/// the key renamed, so a stop in between leaves this to finish. A waiting key that is not the
/// certificate's stays where it is (its certificate was never written, or is yet to come).
pub fn finish_pending_key(
    cert_path: &Path,
    key_path: &Path,
    pending: &Path,
) -> Result<(), PkiError> {
    if !pending.exists() || !cert_path.exists() {
        return Ok(());
    }
    let cert = parse_one_cert(cert_path, &read_text(cert_path)?)?;
    let key = read_private_key(pending)?;
    if certifies(cert_path, &cert, &public_key_of(pending, &key)?)? {
        rename(pending, key_path)?;
        tracing::warn!(
            key = %key_path.display(),
            "put in place the new key a stop while replacing {} left waiting",
            cert_path.display()
        );
    }
    Ok(())
}

/// Removes a PKI file, if it is there, and makes the removal durable.
pub fn remove(path: &Path) -> Result<(), PkiError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(io(path))?,
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Renames a PKI file over another and makes the rename durable.
pub fn rename(from: &Path, to: &Path) -> Result<(), PkiError> {
    std::fs::rename(from, to).map_err(io(from))?;
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Reads a file holding one decimal number; `None` when there is no such file.
pub fn read_number(path: &Path) -> Result<Option<i64>, PkiError> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|e| corrupt(path, format!("not a decimal number ({e})"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// Writes a PKI file atomically with the given mode (keys 0600).
pub fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    crate::fsutil::write_atomic(path, bytes, mode).map_err(io(path))
}
