//! The SCEP registration authority (RA): an RSA key and a certificate the box's CA signs for it.
//!
//! SCEP (RFC 8894) moves its requests in CMS envelopes encrypted to the server by RSA key
//! transport, and the CA's own key is ECDSA, which cannot receive them: the RA's RSA key
//! decrypts the requests and signs the answers, while the certificates phones get are still
//! signed by the CA. The RA is made the first time a phone enrols (a box that never enables
//! SCEP never has one) and kept beside the CA in the PKI directory. It is no trust anchor: a
//! lost RA is made again and phones fetch the new one with `GetCACert` before they enrol.

use std::path::Path;

use rcgen::{
    CertificateParams, DistinguishedName, DnType, Issuer, KeyPair, KeyUsagePurpose, RsaKeySize,
    SerialNumber,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use super::files::{check_pair, parse_one_cert, read_text, write};
use super::tls::random_bytes;
use super::{PkiError, SCEP_RA_CERT, SCEP_RA_KEY};
use crate::scep::RsaKey;

/// An RA certificate within this many days of its end is made again.
const RENEW_DAYS: i64 = 30;
const RA_DAYS: i64 = 730;

/// What an RA certificate and key that do not belong together call for.
const RA_PAIR_REMEDY: &str =
    "remove scep-ra.crt and scep-ra.key: edgeprov makes a new RA at the next enrolment";

/// The RA, loaded: its certificate and key, which sign answers and open the envelopes phones
/// encrypt to it.
pub struct ScepRa {
    key: RsaKey,
    /// The end of the certificate (Unix seconds): a cached RA is checked against it at each
    /// use, so a daemon that runs for years still remakes it in time.
    not_after: i64,
}

impl std::fmt::Debug for ScepRa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScepRa").finish_non_exhaustive()
    }
}

impl ScepRa {
    /// Loads the RA from `dir`, making it (again) when it is missing, expires within
    /// [`RENEW_DAYS`] of `now` (Unix seconds), or was signed by another CA than `ca_cert` (a CA
    /// restored from a backup).
    pub(super) fn load_or_make(
        dir: &Path,
        issuer: &Issuer<'static, KeyPair>,
        ca_cert: &CertificateDer<'_>,
        ca_not_after: i64,
        now: i64,
    ) -> Result<ScepRa, PkiError> {
        let (cert_path, key_path) = (dir.join(SCEP_RA_CERT), dir.join(SCEP_RA_KEY));
        if cert_path.exists()
            && key_path.exists()
            && still_good(&cert_path, ca_cert, ca_not_after, now)?
        {
            match load(dir) {
                Ok(ra) => return Ok(ra),
                // A stop between writing the key and the certificate (see [`make`]).
                Err(PkiError::KeyMismatch { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        make(dir, issuer, ca_not_after)?;
        load(dir)
    }

    /// Whether the RA is to be made again at `now` (Unix seconds): within [`RENEW_DAYS`] of
    /// its end, unless it ends with the CA (`ca_not_after`), which a new one could not outlast:
    /// remade then, a new RSA key would be made for every request.
    pub(super) fn due(&self, now: i64, ca_not_after: i64) -> bool {
        self.not_after <= now + RENEW_DAYS * 86_400 && self.not_after < ca_not_after
    }

    /// The key and certificate that open requests and sign answers.
    pub fn key(&self) -> &RsaKey {
        &self.key
    }
}

fn load(dir: &Path) -> Result<ScepRa, PkiError> {
    let (cert_path, key_path) = (dir.join(SCEP_RA_CERT), dir.join(SCEP_RA_KEY));
    let cert = parse_one_cert(&cert_path, &read_text(&cert_path)?)?;
    let key_pem = read_text(&key_path)?;
    let corrupt = |reason: String| PkiError::Corrupt {
        path: key_path.clone(),
        reason,
    };
    let pkcs8 = pem::parse(&key_pem)
        .map_err(|e| corrupt(format!("no PEM private key ({e})")))?
        .into_contents();
    let not_after = x509_parser::parse_x509_certificate(&cert)
        .map_err(|e| PkiError::Corrupt {
            path: cert_path.clone(),
            reason: e.to_string(),
        })?
        .1
        .validity()
        .not_after
        .timestamp();
    let key = RsaKey::new(cert.to_vec(), &pkcs8).map_err(|e| corrupt(e.to_string()))?;
    check_pair(
        &cert_path,
        &cert,
        &key_path,
        key.public_key(),
        RA_PAIR_REMEDY,
    )?;
    Ok(ScepRa { key, not_after })
}

/// Whether the stored RA certificate is still one to use at `now`: signed by the CA now in use
/// and not about to end (or ending with the CA, which a new one could not outlast).
fn still_good(
    cert_path: &Path,
    ca_cert: &CertificateDer<'_>,
    ca_not_after: i64,
    now: i64,
) -> Result<bool, PkiError> {
    let der = parse_one_cert(cert_path, &read_text(cert_path)?)?;
    let corrupt = |reason: String| PkiError::Corrupt {
        path: cert_path.to_path_buf(),
        reason,
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| corrupt(e.to_string()))?;
    let (_, ca) =
        x509_parser::parse_x509_certificate(ca_cert).map_err(|e| corrupt(e.to_string()))?;
    let end = cert.validity().not_after.timestamp();
    Ok(cert.verify_signature(Some(ca.public_key())).is_ok()
        && (end > now + RENEW_DAYS * 86_400 || end >= ca_not_after))
}

/// A new RSA 2048 key and its RA certificate (digitalSignature for the answers it signs,
/// keyEncipherment for the envelopes: clients pick the certificate to encrypt to by it). The
/// key is written before the certificate, so a stop in between leaves a pair that fails
/// [`check_pair`], and the next enrolment makes both again.
fn make(dir: &Path, issuer: &Issuer<'static, KeyPair>, ca_not_after: i64) -> Result<(), PkiError> {
    let gen_err = |what: &'static str| {
        move |e: rcgen::Error| PkiError::Generate {
            what,
            reason: e.to_string(),
        }
    };
    let key = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
        .map_err(gen_err("SCEP RA key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "edgeprov");
    dn.push(DnType::CommonName, "edgeprov SCEP RA");
    params.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::seconds(super::issue::NOT_BEFORE_SLACK_SECS);
    params.not_after = now + Duration::days(RA_DAYS);
    if let Ok(ca_end) = OffsetDateTime::from_unix_timestamp(ca_not_after) {
        params.not_after = params.not_after.min(ca_end);
    }
    let mut serial = random_bytes::<16>();
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(gen_err("SCEP RA certificate"))?;
    write(
        &dir.join(SCEP_RA_KEY),
        key.serialize_pem().as_bytes(),
        0o600,
    )?;
    write(&dir.join(SCEP_RA_CERT), cert.pem().as_bytes(), 0o644)?;
    tracing::info!(dir = %dir.display(), "made the SCEP registration authority's key and certificate");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::pki::{CA_CERT, Pki, Revocations};
    use crate::scep::RaKey;

    fn load(dir: &Path) -> Pki {
        let config = Config::default();
        Pki::load_or_init(dir, &config.pki, &config.crl_url(), Revocations::none()).unwrap()
    }

    /// Made at the first need, signed by the CA for encipherment and signatures, kept across
    /// restarts, and made again when its key file no longer matches its certificate.
    #[test]
    fn the_ra_is_made_once_signed_by_the_ca_and_remade_when_its_pair_breaks() {
        let dir = tempfile::tempdir().unwrap();
        let pki = load(dir.path());
        assert!(!dir.path().join(SCEP_RA_CERT).exists());
        let ra = pki.scep_ra().unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(ra.key().cert_der()).unwrap();
        let ca_der = parse_one_cert(
            &dir.path().join(CA_CERT),
            &read_text(&dir.path().join(CA_CERT)).unwrap(),
        )
        .unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert!(cert.verify_signature(Some(ca.public_key())).is_ok());
        let usage = cert.key_usage().unwrap().unwrap().value;
        assert!(usage.key_encipherment() && usage.digital_signature());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(SCEP_RA_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let again = load(dir.path()).scep_ra().unwrap();
        assert_eq!(again.key().cert_der(), ra.key().cert_der());
        // The implicit rejection secret lasts as long as the key, across restarts.
        assert_eq!(again.key().rejection_secret(), ra.key().rejection_secret());

        // A stop between the new key and its certificate leaves a broken pair.
        let stray = KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048).unwrap();
        write(
            &dir.path().join(SCEP_RA_KEY),
            stray.serialize_pem().as_bytes(),
            0o600,
        )
        .unwrap();
        let remade = load(dir.path()).scep_ra().unwrap();
        assert_ne!(remade.key().cert_der(), ra.key().cert_der());
        assert_ne!(remade.key().rejection_secret(), ra.key().rejection_secret());
        let signature = remade.key().sign_sha256(b"answer").unwrap();
        assert_eq!(signature.len(), 256);
    }

    /// A daemon that runs on: the RA it keeps is checked at each use and made again once
    /// within 30 days of its end, not only at the first use.
    #[test]
    fn a_cached_ra_is_made_again_when_its_end_nears() {
        let dir = tempfile::tempdir().unwrap();
        let pki = load(dir.path());
        let now = crate::model::now_unix();
        let ra = pki.scep_ra_at(now).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(ra.key().cert_der()).unwrap();
        let end = cert.validity().not_after.timestamp();
        let later = pki.scep_ra_at(end - 31 * 86_400).unwrap();
        assert_eq!(later.key().cert_der(), ra.key().cert_der());
        let due = pki.scep_ra_at(end - 29 * 86_400).unwrap();
        assert_ne!(due.key().cert_der(), ra.key().cert_der());
        // The new one is on disk: the next start loads it.
        assert_eq!(
            load(dir.path()).scep_ra().unwrap().key().cert_der(),
            due.key().cert_der()
        );
    }
}
