//! Making certificates: the CA on first start, the server certificate, device certificates.

use std::collections::BTreeSet;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CrlDistributionPoint,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    RevocationReason as CrlReason, RevokedCertParams, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::files::{finish_pending_key, parse_one_cert, read_text, remove, rename, write};
use super::tls::random_bytes;
use super::{CA_CERT, CA_KEY, PkiError, SERVER_CERT, SERVER_KEY, SERVER_KEY_PENDING};
use crate::model::{IssuedCert, Mac, RevocationReason};

const CA_DAYS: i64 = 3650;
const SERVER_DAYS: i64 = 825;
/// A generated server certificate this close to expiry is renewed (at start, on reload and by
/// the daily check): the same margin as the expiry alarm, so a generated certificate only
/// alarms when renewing it failed.
const SERVER_RENEW_DAYS: i64 = super::expiry::ALARM_DAYS;

/// A device's certificate and private key, PEM encoded, with the CA that signed it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DeviceIdentity {
    pub certificate: String,
    pub private_key: String,
    pub ca_certificate: String,
}

fn gen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |e| PkiError::Generate {
        what,
        reason: e.to_string(),
    }
}

/// How far back a certificate's validity starts from its issue: an hour, as phones' clocks are
/// often a little behind right after boot. A "revoke all" relies on it to tell the certificates
/// issued before it from those issued after (`revoked.rs`).
pub(super) const NOT_BEFORE_SLACK_SECS: i64 = 3600;

fn base_params(cn: &str, days: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "edgeprov");
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::seconds(NOT_BEFORE_SLACK_SECS);
    p.not_after = now + Duration::days(days);
    p.serial_number = Some(SerialNumber::from_slice(&serial()));
    p
}

fn serial() -> [u8; 16] {
    let mut s = random_bytes::<16>();
    s[0] &= 0x7f; // positive INTEGER
    s
}

pub fn create_ca(dir: &Path) -> Result<(), PkiError> {
    let key = KeyPair::generate().map_err(gen_err("CA key"))?;
    let mut params = base_params("edgeprov device CA", CA_DAYS);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(gen_err("CA certificate"))?;
    write(&dir.join(CA_KEY), key.serialize_pem().as_bytes(), 0o600)?;
    write(&dir.join(CA_CERT), cert.pem().as_bytes(), 0o644)?;
    tracing::info!(dir = %dir.display(), "created a new device CA");
    Ok(())
}

/// Removes what a first start a stop interrupted had written (the CA and server files), so
/// that this start makes them anew; its marker goes once they are made.
pub fn discard_first_start(dir: &Path) -> Result<(), PkiError> {
    for name in [SERVER_CERT, SERVER_KEY, SERVER_KEY_PENDING, CA_CERT, CA_KEY] {
        remove(&dir.join(name))?;
    }
    tracing::warn!(dir = %dir.display(), "the first start was stopped before the PKI was made: making it again");
    Ok(())
}

/// Makes sure a server certificate for `names` exists, reissuing it from the CA when the
/// configured names changed or it is about to expire. Only on the very first start (no PKI file
/// existed) is a missing server certificate made; later it is an error naming the file.
pub fn ensure_server_cert(
    dir: &Path,
    issuer: &Issuer<'static, KeyPair>,
    names: &[String],
    crl_url: &str,
    first_start: bool,
) -> Result<(), PkiError> {
    if let Some(reason) = reissue_reason(dir, names, crl_url, first_start)? {
        issue_server(dir, issuer, names, crl_url)?;
        tracing::info!(%reason, "issued a new server certificate");
    }
    Ok(())
}

/// Why the generated server certificate must be issued anew, if it must.
pub fn reissue_reason(
    dir: &Path,
    names: &[String],
    crl_url: &str,
    first_start: bool,
) -> Result<Option<String>, PkiError> {
    let cert_path = dir.join(SERVER_CERT);
    let key_path = dir.join(SERVER_KEY);
    Ok(match (cert_path.exists(), key_path.exists()) {
        (false, false) if first_start => Some("first start".to_string()),
        (false, _) => return Err(PkiError::Missing { path: cert_path }),
        (_, false) => return Err(PkiError::Missing { path: key_path }),
        (true, true) => {
            let der = parse_one_cert(&cert_path, &read_text(&cert_path)?)?;
            let (_, cert) =
                x509_parser::parse_x509_certificate(&der).map_err(|e| PkiError::Corrupt {
                    path: cert_path.clone(),
                    reason: e.to_string(),
                })?;
            let have = cert_names(&cert);
            let want: BTreeSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
            let expires = cert.validity().not_after.timestamp();
            let starts = cert.validity().not_before.timestamp();
            let now = OffsetDateTime::now_utc();
            let renew_at = (now + Duration::days(SERVER_RENEW_DAYS)).unix_timestamp();
            let crl_now = crl_urls(&cert);
            if have != want {
                Some(format!("server names changed from {have:?} to {want:?}"))
            } else if crl_now != [crl_url] {
                Some(format!("CRL URL changed from {crl_now:?} to {crl_url}"))
            } else if expires < renew_at {
                Some(format!("it expires within {SERVER_RENEW_DAYS} days"))
            } else if starts > now.unix_timestamp() {
                // Issued while the clock was ahead (a box that booted without a real-time
                // clock, then corrected by NTP): every client refuses it until then, which may
                // be years away, and nothing else would renew it.
                Some(format!(
                    "it is not valid before {starts} (Unix time): issued while the clock was ahead"
                ))
            } else {
                None
            }
        }
    })
}

/// The DNS names and IP addresses a certificate is for, lower case.
pub fn cert_names(cert: &x509_parser::certificate::X509Certificate<'_>) -> BTreeSet<String> {
    use x509_parser::extensions::GeneralName;
    let mut out = BTreeSet::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    out.insert(d.to_ascii_lowercase());
                }
                GeneralName::IPAddress(ip) => {
                    let ip = match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip).ok().map(std::net::IpAddr::from),
                        16 => <[u8; 16]>::try_from(*ip).ok().map(std::net::IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        out.insert(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn crl_urls(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
    let mut out = Vec::new();
    for ext in cert.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for point in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &point.distribution_point {
                    for name in names {
                        if let GeneralName::URI(u) = name {
                            out.push(u.to_string());
                        }
                    }
                }
            }
        }
    }
    out
}

pub fn issue_server(
    dir: &Path,
    issuer: &Issuer<'static, KeyPair>,
    names: &[String],
    crl_url: &str,
) -> Result<(), PkiError> {
    let key = KeyPair::generate().map_err(gen_err("server key"))?;
    let mut params = base_params(&names[0], SERVER_DAYS);
    params.subject_alt_names = CertificateParams::new(names.to_vec())
        .map_err(gen_err("server certificate names"))?
        .subject_alt_names;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.crl_distribution_points = vec![CrlDistributionPoint {
        uris: vec![crl_url.to_string()],
    }];
    let cert = params
        .signed_by(&key, issuer)
        .map_err(gen_err("server certificate"))?;
    // Two files cannot be replaced at once: the new key waits beside the old one until the
    // certificate is written, so a crash in between leaves a pair [`finish_server_key`] completes
    // instead of a key and a certificate that do not belong together.
    let pending = dir.join(SERVER_KEY_PENDING);
    write(&pending, key.serialize_pem().as_bytes(), 0o600)?;
    write(&dir.join(SERVER_CERT), cert.pem().as_bytes(), 0o644)?;
    rename(&pending, &dir.join(SERVER_KEY))
}

/// Puts in place a new server key that a crash left waiting (see [`issue_server`]) when the
/// server certificate is already its certificate; otherwise the certificate was never written
/// and the old pair stands (the waiting key is replaced by the next issue).
pub fn finish_server_key(dir: &Path) -> Result<(), PkiError> {
    finish_pending_key(
        &dir.join(SERVER_CERT),
        &dir.join(SERVER_KEY),
        &dir.join(SERVER_KEY_PENDING),
    )
}

/// A client certificate whose subject CN is the device's MAC (the form phones' factory
/// certificates use), with the MAC also as a URI SAN so SAN-based identification finds it: the
/// profile shared by [`super::Pki::issue_device`] and the in-memory minter, a new ECDSA P-256
/// key and its certificate. It is valid for `days`, but not past `ca_not_after` (Unix
/// seconds), when its CA stops being valid and with it every certificate it signed: the
/// certificate and its record then say when it really stops working.
pub fn device_cert(
    issuer: &Issuer<'static, KeyPair>,
    ca_not_after: i64,
    mac: Mac,
    days: u32,
) -> Result<(rcgen::Certificate, KeyPair), PkiError> {
    let key = KeyPair::generate().map_err(gen_err("device key"))?;
    let cert = device_params(ca_not_after, mac, days)?
        .signed_by(&key, issuer)
        .map_err(gen_err("device certificate"))?;
    Ok((cert, key))
}

/// The certificate of [`device_cert`]'s profile for a key the device made itself and sent in
/// a certificate request (SCEP): `spki` is the request's SubjectPublicKeyInfo (DER). Only its
/// key is taken from the request; names, usages and validity are the profile's.
pub fn device_cert_for_key(
    issuer: &Issuer<'static, KeyPair>,
    ca_not_after: i64,
    mac: Mac,
    days: u32,
    spki: &[u8],
) -> Result<rcgen::Certificate, PkiError> {
    let key = rcgen::SubjectPublicKeyInfo::from_der(spki).map_err(gen_err("device key"))?;
    device_params(ca_not_after, mac, days)?
        .signed_by(&key, issuer)
        .map_err(gen_err("device certificate"))
}

fn device_params(ca_not_after: i64, mac: Mac, days: u32) -> Result<CertificateParams, PkiError> {
    let mut params = base_params(&mac.to_string(), i64::from(days));
    if let Ok(ca_end) = OffsetDateTime::from_unix_timestamp(ca_not_after) {
        params.not_after = params.not_after.min(ca_end);
    }
    params.subject_alt_names = vec![SanType::URI(
        format!("urn:dev:mac:{mac}")
            .try_into()
            .map_err(gen_err("device certificate SAN"))?,
    )];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

/// How long a published CRL is valid; it is re-signed daily, well before that.
const CRL_DAYS: i64 = 7;

/// The number of the next CRL at `now_millis` (Unix milliseconds), given the last one signed:
/// the time, unless the clock was set back to or before the last number, then one more than
/// it. RFC 5280 §5.2.3 asks for monotonically increasing CRL numbers, and a relying party may
/// keep the greatest one it saw and refuse lists numbered below it.
pub fn next_crl_number(now_millis: i64, last: Option<i64>) -> i64 {
    match last {
        Some(last) => now_millis.max(last.saturating_add(1)),
        None => now_millis,
    }
}

/// The CA's revocation list, DER encoded: a signed, current list of the device certificates
/// revoked, for TLS clients that check revocation and audits that ask for it.
/// `now_secs` (Unix seconds) is the clock reading the list is signed at: its thisUpdate and
/// nextUpdate follow the same reading as its number and the signed list's cache.
pub fn crl_der(
    issuer: &Issuer<'static, KeyPair>,
    revoked: &[IssuedCert],
    number: i64,
    now_secs: i64,
) -> Result<Vec<u8>, PkiError> {
    let now = OffsetDateTime::from_unix_timestamp(now_secs).map_err(|e| PkiError::Generate {
        what: "CRL",
        reason: format!("the clock reads {now_secs}: {e}"),
    })?;
    let revoked_certs = revoked
        .iter()
        .filter_map(|c| {
            let r = c.revoked.as_ref()?;
            let Some(serial) = serial_bytes(&c.serial) else {
                tracing::error!(serial = %c.serial, "a revoked serial is not hex: left out of the CRL");
                return None;
            };
            Some(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: OffsetDateTime::from_unix_timestamp(r.at).unwrap_or(now),
                reason_code: Some(match r.reason {
                    RevocationReason::Unspecified => CrlReason::Unspecified,
                    RevocationReason::KeyCompromise => CrlReason::KeyCompromise,
                    RevocationReason::Superseded => CrlReason::Superseded,
                    RevocationReason::CessationOfOperation => CrlReason::CessationOfOperation,
                }),
                invalidity_date: None,
            })
        })
        .collect();
    let params = CertificateRevocationListParams {
        this_update: now - Duration::hours(1),
        next_update: now + Duration::days(CRL_DAYS),
        crl_number: SerialNumber::from_slice(&number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: rcgen::KeyIdMethod::Sha256,
    };
    let crl = params.signed_by(issuer).map_err(gen_err("CRL"))?;
    Ok(crl.der().to_vec())
}

/// The bytes of a serial written as hex (an [`IssuedCert::serial`]).
fn serial_bytes(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::pki::files::read_key_pair;
    use crate::pki::{Pki, Revocations};

    fn ca_issuer(dir: &Path) -> Issuer<'static, KeyPair> {
        let pem = read_text(&dir.join(CA_CERT)).unwrap();
        Issuer::from_ca_cert_pem(&pem, read_key_pair(&dir.join(CA_KEY)).unwrap()).unwrap()
    }

    fn load(dir: &Path) -> Result<Pki, PkiError> {
        let config = Config::default();
        Pki::load_or_init(dir, &config.pki, &config.crl_url(), Revocations::none())
    }

    /// A box that booted with its clock a month ahead issued its server certificate then; once
    /// the clock is right, phones refuse that certificate until its start comes round. Before,
    /// nothing renewed it (names, CRL URL and expiry were all fine).
    #[test]
    fn a_server_certificate_issued_under_a_clock_ahead_is_issued_again() {
        let dir = tempfile::tempdir().unwrap();
        load(dir.path()).unwrap();
        let config = Config::default();
        let names = &config.pki.server_names;
        let ahead = OffsetDateTime::now_utc() + Duration::days(30);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.not_before = ahead - Duration::seconds(NOT_BEFORE_SLACK_SECS);
        params.not_after = ahead + Duration::days(SERVER_DAYS);
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![config.crl_url()],
        }];
        let cert = params.signed_by(&key, &ca_issuer(dir.path())).unwrap();
        write(
            &dir.path().join(SERVER_KEY),
            key.serialize_pem().as_bytes(),
            0o600,
        )
        .unwrap();
        write(&dir.path().join(SERVER_CERT), cert.pem().as_bytes(), 0o644).unwrap();

        let reason = reissue_reason(dir.path(), names, &config.crl_url(), false).unwrap();
        assert!(
            reason
                .as_deref()
                .is_some_and(|r| r.contains("clock was ahead")),
            "{reason:?}"
        );
        load(dir.path()).unwrap();
        let der = parse_one_cert(
            &dir.path().join(SERVER_CERT),
            &read_text(&dir.path().join(SERVER_CERT)).unwrap(),
        )
        .unwrap();
        let (_, now_served) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(now_served.validity().not_before.timestamp() <= crate::model::now_unix());
    }

    /// A first start stopped after writing the CA key (or the CA but not yet the server
    /// certificate) left files that every later start refused as a PKI missing some of them,
    /// to be restored from a backup that could not exist.
    #[test]
    fn a_first_start_stopped_while_making_the_pki_is_made_again() {
        let made = tempfile::tempdir().unwrap();
        create_ca(made.path()).unwrap();
        for left in [&[CA_KEY][..], &[CA_KEY, CA_CERT]] {
            let dir = tempfile::tempdir().unwrap();
            // What the first start writes before it begins.
            write(&dir.path().join(crate::pki::FIRST_START), b"", 0o600).unwrap();
            for name in left {
                std::fs::copy(made.path().join(name), dir.path().join(name)).unwrap();
            }
            let pki = load(dir.path()).unwrap();
            assert_ne!(
                pki.ca_cert_pem(),
                read_text(&made.path().join(CA_CERT)).unwrap()
            );
            for name in [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY] {
                assert!(dir.path().join(name).exists(), "{name}");
            }
            assert!(!dir.path().join(crate::pki::FIRST_START).exists());
            // A finished PKI is never made again.
            let again = load(dir.path()).unwrap();
            assert_eq!(again.ca_cert_pem(), pki.ca_cert_pem());
        }
    }

    /// Device certificates default to ten years, as long as the CA lives from its creation:
    /// before, every one issued after the CA's first day outlived it, and its record (and the
    /// API's answer) promised days it could never work.
    #[test]
    fn a_device_certificate_does_not_outlive_its_ca() {
        let dir = tempfile::tempdir().unwrap();
        load(dir.path()).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = base_params("short-lived CA", 100);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&ca_key).unwrap();
        let ca_end = params.not_after.unix_timestamp();
        write(
            &dir.path().join(CA_KEY),
            ca_key.serialize_pem().as_bytes(),
            0o600,
        )
        .unwrap();
        write(&dir.path().join(CA_CERT), ca.pem().as_bytes(), 0o644).unwrap();

        let pki = load(dir.path()).unwrap();
        let mac = Mac::parse("00:04:0d:11:22:33").unwrap();
        let (identity, record) = pki.issue_device(mac, 3650).unwrap();
        assert_eq!(record.not_after, Some(ca_end));
        let der = parse_one_cert(Path::new("device"), &identity.certificate).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(cert.validity().not_after.timestamp(), ca_end);

        // A shorter life than the CA's is kept as asked.
        let (_, record) = pki.issue_device(mac, 30).unwrap();
        assert!(record.not_after.unwrap() < ca_end - 60 * 86_400);
    }

    /// What a stop between writing the new server key and its certificate leaves: the new
    /// certificate, the old key, and the new key waiting. Before, the key was written first
    /// and the certificate after, and a stop in between left a new key with the old
    /// certificate: a pair nothing could load again.
    #[test]
    fn a_new_server_key_left_waiting_by_a_stop_is_put_in_place() {
        let dir = tempfile::tempdir().unwrap();
        load(dir.path()).unwrap();
        let old_key = std::fs::read(dir.path().join(SERVER_KEY)).unwrap();
        // Stopped before the certificate was written: the old pair stands.
        let stray = KeyPair::generate().unwrap().serialize_pem();
        write(
            &dir.path().join(SERVER_KEY_PENDING),
            stray.as_bytes(),
            0o600,
        )
        .unwrap();
        load(dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join(SERVER_KEY)).unwrap(), old_key);

        // Stopped after: the new key goes in place.
        let scratch = tempfile::tempdir().unwrap();
        let config = Config::default();
        issue_server(
            scratch.path(),
            &ca_issuer(dir.path()),
            &config.pki.server_names,
            &config.crl_url(),
        )
        .unwrap();
        let new_key = std::fs::read(scratch.path().join(SERVER_KEY)).unwrap();
        assert_ne!(new_key, old_key);
        std::fs::copy(
            scratch.path().join(SERVER_CERT),
            dir.path().join(SERVER_CERT),
        )
        .unwrap();
        write(&dir.path().join(SERVER_KEY_PENDING), &new_key, 0o600).unwrap();

        load(dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join(SERVER_KEY)).unwrap(), new_key);
        assert!(!dir.path().join(SERVER_KEY_PENDING).exists());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(SERVER_KEY))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
