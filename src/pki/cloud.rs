//! The appliance's identity towards the cloud, under `<pki>/cloud/`: a key made here (it never
//! leaves the box), the certificate the cloud issued for it at registration, and the pinned
//! cloud CA that is the only root trusted for the cloud's server certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::PkiError;
use super::files::{
    add_roots, check_pair, ensure_dir, finish_pending_key, parse_one_cert, public_key_of,
    read_key_pair, read_private_key, read_text, rename, write,
};

const DIR: &str = "cloud";
const KEY: &str = "appliance.key";
/// A key waiting for its certificate: becomes `appliance.key` only when the cloud's certificate
/// for it is installed, so a failed registration never breaks a working identity.
const PENDING_KEY: &str = "appliance.key.pending";
const CERT: &str = "appliance.crt";

fn dir(pki_dir: &Path) -> PathBuf {
    pki_dir.join(DIR)
}

/// The identity's files, relative to the PKI directory, as a backup carries them: a box
/// restored from its backup is the same appliance to the cloud, as it keeps the registration
/// (in the database) that goes with them.
pub const BACKUP_FILES: [&str; 2] = ["cloud/appliance.crt", "cloud/appliance.key"];

/// Whether the box has an appliance identity (both files; a registration still waiting for
/// its certificate has none yet).
pub fn has_identity(pki_dir: &Path) -> bool {
    BACKUP_FILES.iter().all(|f| pki_dir.join(f).exists())
}

/// Makes a new appliance key and returns a CSR (PEM) for it.
pub fn appliance_csr(pki_dir: &Path, name: &str) -> Result<String, PkiError> {
    let dir = dir(pki_dir);
    ensure_dir(&dir)?;
    let gen_err = |what: &'static str| {
        move |e: rcgen::Error| PkiError::Generate {
            what,
            reason: e.to_string(),
        }
    };
    let key = KeyPair::generate().map_err(gen_err("appliance key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "edgeprov");
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    let csr = params
        .serialize_request(&key)
        .map_err(gen_err("appliance CSR"))?;
    let pem = csr.pem().map_err(gen_err("appliance CSR"))?;
    write(
        &dir.join(PENDING_KEY),
        key.serialize_pem().as_bytes(),
        0o600,
    )?;
    Ok(pem)
}

/// Installs the certificate the cloud issued for the pending key, after checking it is for
/// that key.
pub fn install_appliance_cert(pki_dir: &Path, cert_pem: &str) -> Result<(), PkiError> {
    let dir = dir(pki_dir);
    let pending = dir.join(PENDING_KEY);
    let key = read_key_pair(&pending)?;
    let cert_path = dir.join(CERT);
    let der = parse_one_cert(&cert_path, cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Corrupt {
        path: cert_path.clone(),
        reason: e.to_string(),
    })?;
    if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(PkiError::Corrupt {
            path: cert_path,
            reason: "the cloud's certificate is not for the key this box sent".into(),
        });
    }
    // A stop between these two leaves the pending key for `appliance_identity` to finish.
    write(&cert_path, cert_pem.as_bytes(), 0o644)?;
    rename(&pending, &dir.join(KEY))
}

/// The appliance certificate chain and key for mutual TLS with the cloud.
pub fn appliance_identity(
    pki_dir: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
    let dir = dir(pki_dir);
    let cert_path = dir.join(CERT);
    let key_path = dir.join(KEY);
    finish_pending_key(&cert_path, &key_path, &dir.join(PENDING_KEY))?;
    let cert = parse_one_cert(&cert_path, &read_text(&cert_path)?)?;
    let key = read_private_key(&key_path)?;
    check_pair(
        &cert_path,
        &cert,
        &key_path,
        &public_key_of(&key_path, &key)?,
        "put back both files from one backup, or register the appliance with the cloud again",
    )?;
    Ok((vec![cert], key))
}

/// A TLS client configuration that trusts only the pinned cloud CA (`cloud.ca_file`) and, once
/// registered, presents the appliance certificate.
pub fn cloud_client_config(
    ca_file: &Path,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<ClientConfig>, PkiError> {
    let mut roots = RootCertStore::empty();
    add_roots(&mut roots, ca_file)?;
    let builder = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| PkiError::Tls(e.to_string()))?
    .with_root_certificates(roots);
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| PkiError::Tls(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backup_names_are_the_identity_files() {
        assert_eq!(
            BACKUP_FILES.map(PathBuf::from),
            [CERT, KEY].map(|f| Path::new(DIR).join(f))
        );
    }

    /// A certificate and a key made apart, as a restore of the wrong key leaves them.
    fn write_mismatched(pki_dir: &Path) {
        let dir = dir(pki_dir);
        std::fs::create_dir_all(&dir).unwrap();
        let certified = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["appliance".to_string()])
            .unwrap()
            .self_signed(&certified)
            .unwrap();
        std::fs::write(dir.join(CERT), cert.pem()).unwrap();
        let other = KeyPair::generate().unwrap();
        std::fs::write(dir.join(KEY), other.serialize_pem()).unwrap();
    }

    #[test]
    fn an_appliance_key_not_of_its_certificate_is_refused_naming_both_files() {
        let pki = tempfile::tempdir().unwrap();
        write_mismatched(pki.path());
        let err = appliance_identity(pki.path()).unwrap_err().to_string();
        let (cert, key) = (dir(pki.path()).join(CERT), dir(pki.path()).join(KEY));
        assert!(
            err.contains(&format!(
                "{} is not the private key of the certificate {}",
                key.display(),
                cert.display()
            )),
            "{err}"
        );
        assert!(err.contains("register"), "says what to do: {err}");
    }

    /// What a stop between writing the cloud's certificate and putting its key in place leaves:
    /// the new certificate, the old key, the new key pending. Before, that identity was taken as
    /// it was, and every round's handshake failed until the appliance was registered again.
    #[test]
    fn a_registration_stopped_before_its_key_was_put_in_place_is_finished() {
        let pki = tempfile::tempdir().unwrap();
        let dir = dir(pki.path());
        std::fs::create_dir_all(&dir).unwrap();
        let old = KeyPair::generate().unwrap();
        std::fs::write(dir.join(KEY), old.serialize_pem()).unwrap();
        appliance_csr(pki.path(), "box").unwrap();
        let pending = std::fs::read_to_string(dir.join(PENDING_KEY)).unwrap();
        let new = KeyPair::from_pem(&pending).unwrap();
        let cert = CertificateParams::new(vec!["box".to_string()])
            .unwrap()
            .self_signed(&new)
            .unwrap();
        std::fs::write(dir.join(CERT), cert.pem()).unwrap();

        appliance_identity(pki.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join(KEY)).unwrap(), pending);
        assert!(!dir.join(PENDING_KEY).exists());
    }
}
