//! Revoked device certificates: the set the phone listener's handshake checks and the CRL lists.
//!
//! The store keeps the record; this is its in-memory copy, shared by every TLS configuration
//! built from the PKI (a reload keeps it), so a revocation applies from the next handshake on.
//! webpki's own CRL check verifies the CRL's signature on every handshake it consults it for
//! (an ECDSA verification, about 38 µs, a sixth of a phone's server CPU in a boot storm); this
//! check is a hash lookup, and costs nothing while nothing is revoked.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::issue::NOT_BEFORE_SLACK_SECS;
use super::own_ca::OwnCa;
use super::proven::Proven;
use crate::model::{AlarmKind, IssuedCert, Mac, RevokedCerts};
use crate::phone::credentials::hex;
use crate::store::Recorder;

/// The revoked certificates as of one refresh.
#[derive(Default)]
pub struct RevokedSet {
    serials: HashSet<String>,
    certs: Vec<IssuedCert>,
    /// Devices whose every certificate was revoked, and when ([`RevokedCerts::issued_before`]).
    issued_before: BTreeMap<Mac, i64>,
    /// Moves on with every refresh, so a CRL signed for an older set is signed anew.
    version: u64,
}

impl RevokedSet {
    pub fn certs(&self) -> &[IssuedCert] {
        &self.certs
    }

    pub fn version(&self) -> u64 {
        self.version
    }
}

/// The shared, refreshable set of revoked device certificates.
#[derive(Default)]
pub struct Revocations {
    current: RwLock<Arc<RevokedSet>>,
    /// [`RevokedSet::version`] of `current`, readable without the lock: an open connection
    /// checks it on every request to learn that it must check its certificate again.
    version: AtomicU64,
    /// Serialises refreshes, so a slower one cannot put back a list a later one replaced.
    refreshing: Mutex<()>,
    /// Where a presented revoked certificate is alarmed (set once the recorder runs).
    alarms: OnceLock<Recorder>,
}

impl Revocations {
    /// No certificate revoked: tools and checks that run no phone listener of the daemon.
    pub fn none() -> Arc<Revocations> {
        Arc::new(Revocations::default())
    }

    /// The set as the store holds it.
    pub fn new(revoked: RevokedCerts) -> Arc<Revocations> {
        let r = Revocations::default();
        r.set(revoked, 1);
        Arc::new(r)
    }

    fn set(&self, revoked: RevokedCerts, version: u64) {
        let set = RevokedSet {
            serials: revoked.certs.iter().map(|c| c.serial.clone()).collect(),
            certs: revoked.certs,
            issued_before: revoked.issued_before,
            version,
        };
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        self.version.store(version, Ordering::Release);
    }

    /// Moves on with every refresh (0 before the first).
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Replaces the set with what `read` returns (the store's list, read after a change was
    /// committed); on error the set stays as it was.
    pub fn refresh<E>(&self, read: impl FnOnce() -> Result<RevokedCerts, E>) -> Result<(), E> {
        let _one_at_a_time = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        let revoked = read()?;
        let version = self.current().version + 1;
        self.set(revoked, version);
        Ok(())
    }

    pub fn current(&self) -> Arc<RevokedSet> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Alarms a presented revoked certificate through `recorder` from now on.
    pub fn alarm_to(&self, recorder: Recorder) {
        let _ = self.alarms.set(recorder);
    }

    /// Whether the CA issued `end_entity` (as `issued_here` tells) and it is revoked, by its
    /// serial or by its device's "revoke all"; if so it is logged and alarmed. Certificates of
    /// other CAs (vendors' factory roots, namesakes of the CA) are not looked up: their serials
    /// are theirs to number. `issued_here` is only asked while something is revoked.
    pub(super) fn refuses(
        &self,
        end_entity: &[u8],
        issued_here: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> bool,
    ) -> bool {
        let set = self.current();
        if set.serials.is_empty() && set.issued_before.is_empty() {
            return false;
        }
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity) else {
            return false;
        };
        if !issued_here(&cert) {
            return false;
        }
        let serial = hex(cert.raw_serial());
        let mac = crate::phone::identify::mac_from_certificate(end_entity);
        // The CA dates a certificate back by its slack: one issued at or after the revocation
        // starts at most that much before it.
        let revoked_with_all = mac
            .and_then(|m| set.issued_before.get(&m))
            .is_some_and(|&at| cert.validity().not_before.timestamp() < at - NOT_BEFORE_SLACK_SECS);
        if !revoked_with_all && !set.serials.contains(&serial) {
            return false;
        }
        let who = mac
            .map(|m| m.to_string())
            .unwrap_or_else(|| cert.subject().to_string());
        // The alarm logs a line too, at most one per interval: each handshake of a peer that
        // keeps presenting the certificate must not add a line of its own.
        match self.alarms.get() {
            Some(recorder) => recorder.alarm(
                AlarmKind::RevokedCertificate,
                who,
                format!(
                    "certificate serial {serial} was presented after it was revoked; it was refused"
                ),
            ),
            None => {
                tracing::warn!(device = %who, %serial, "a revoked device certificate was presented")
            }
        }
        true
    }
}

/// The phone listener's client verifier: webpki's chain and validity checks, then the
/// revocation check for certificates the box's CA issued.
#[derive(Debug, Clone)]
pub(super) struct CheckRevoked {
    inner: Arc<dyn ClientCertVerifier>,
    revoked: Arc<Revocations>,
    /// Built from the same trusted roots as `inner`.
    own: Arc<OwnCa>,
    /// The handshakes' verifier has it: a certificate the checks do not prove is let through
    /// unproven and a proved one written down here ([`super::proven::let_through`]). Without
    /// it, the full check an unproved connection's certificate is checked again with.
    proven: Option<Arc<Proven>>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("revoked", &self.current().serials.len())
            .finish()
    }
}

impl CheckRevoked {
    pub(super) fn new(
        inner: Arc<dyn ClientCertVerifier>,
        revoked: Arc<Revocations>,
        own: Arc<OwnCa>,
    ) -> CheckRevoked {
        CheckRevoked {
            inner,
            revoked,
            own,
            proven: None,
        }
    }

    /// This check as the handshakes' verifier, writing down what it proves in `proven`.
    pub(super) fn letting_through(&self, proven: Arc<Proven>) -> CheckRevoked {
        CheckRevoked {
            proven: Some(proven),
            ..self.clone()
        }
    }

    /// The full check: a chain to a trusted root, within its validity, not revoked.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        match self
            .revoked
            .refuses(end_entity, |cert| self.own.signed(cert, intermediates))
        {
            false => Ok(verified),
            true => Err(rustls::Error::InvalidCertificate(CertificateError::Revoked)),
        }
    }
}

impl ClientCertVerifier for CheckRevoked {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let checked = self.check(end_entity, intermediates, now);
        match &self.proven {
            Some(proven) => super::proven::let_through(checked, end_entity, proven),
            None => checked,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.inner.requires_raw_public_keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mac, Revocation, RevocationReason};
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber};

    /// Whether `r` refuses `cert`, as the phone listener's handshake asks it.
    fn refuses(r: &Revocations, cert: &[u8], own: &OwnCa) -> bool {
        r.refuses(cert, |c| own.signed(c, &[]))
    }

    fn ca(name: &str) -> (OwnCa, Issuer<'static, KeyPair>) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        let subject = parsed.subject().as_raw().to_vec();
        let own = OwnCa::new(cert.der().clone(), subject, []);
        (own, Issuer::new(p, key))
    }

    fn leaf(issuer: &Issuer<'static, KeyPair>, serial: u8) -> Vec<u8> {
        leaf_of(issuer, serial, "001122aabbcc", 0)
    }

    fn leaf_of(issuer: &Issuer<'static, KeyPair>, serial: u8, cn: &str, from: i64) -> Vec<u8> {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.serial_number = Some(SerialNumber::from_slice(&[serial]));
        p.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
        let key = KeyPair::generate().unwrap();
        p.signed_by(&key, issuer).unwrap().der().to_vec()
    }

    fn only(certs: Vec<IssuedCert>) -> RevokedCerts {
        RevokedCerts {
            certs,
            ..Default::default()
        }
    }

    fn revoked(serial: &str) -> IssuedCert {
        IssuedCert {
            serial: serial.into(),
            mac: Mac::from_octets([0, 0x11, 0x22, 0xaa, 0xbb, 0xcc]),
            not_before: None,
            not_after: None,
            issued_at: None,
            revoked: Some(Revocation {
                at: 0,
                reason: RevocationReason::KeyCompromise,
            }),
        }
    }

    #[test]
    fn only_the_own_cas_revoked_serials_are_refused() {
        let (own_ca, own) = ca("edgeprov device CA");
        let (_, vendor) = ca("vendor factory root");
        let r = Revocations::new(only(vec![revoked("2a")]));
        assert!(refuses(&r, &leaf(&own, 0x2a), &own_ca));
        assert!(!refuses(&r, &leaf(&own, 0x2b), &own_ca));
        // The same serial from a vendor's root is the vendor's certificate, not ours.
        assert!(!refuses(&r, &leaf(&vendor, 0x2a), &own_ca));
        assert!(!refuses(&r, b"not a certificate", &own_ca));

        // A refresh replaces the set; a failed one leaves it as it was.
        r.refresh(|| Ok::<_, ()>(only(vec![revoked("2b")])))
            .unwrap();
        assert!(!refuses(&r, &leaf(&own, 0x2a), &own_ca));
        assert!(refuses(&r, &leaf(&own, 0x2b), &own_ca));
        assert!(r.refresh(|| Err(())).is_err());
        assert!(refuses(&r, &leaf(&own, 0x2b), &own_ca));
        assert!(!refuses(&Revocations::none(), &leaf(&own, 0x2b), &own_ca));
    }

    /// "Revoke all" of a device refuses every certificate of the box's CA naming it that was
    /// issued before then, with no serial on record (issued before issuance was recorded, or
    /// with the CA's key elsewhere); one issued after (its validity starts at most the CA's
    /// slack before it) is the device's new certificate and passes, as do other devices' and
    /// other issuers'.
    #[test]
    fn revoking_all_refuses_what_the_ca_issued_the_device_before() {
        let (own_ca, own) = ca("edgeprov device CA");
        let (_, vendor) = ca("vendor factory root");
        let at = 1_800_000_000;
        let mac = Mac::from_octets([0, 0x11, 0x22, 0xaa, 0xbb, 0xcc]);
        let r = Revocations::new(RevokedCerts {
            certs: Vec::new(),
            issued_before: BTreeMap::from([(mac, at)]),
        });
        let issued_at = |t: i64| t - NOT_BEFORE_SLACK_SECS;
        assert!(refuses(
            &r,
            &leaf_of(&own, 1, "001122aabbcc", issued_at(at - 1)),
            &own_ca
        ));
        assert!(refuses(&r, &leaf_of(&own, 2, "001122AABBCC", 0), &own_ca));
        assert!(!refuses(
            &r,
            &leaf_of(&own, 3, "001122aabbcc", issued_at(at)),
            &own_ca
        ));
        assert!(!refuses(&r, &leaf_of(&own, 4, "001122aabbcd", 0), &own_ca));
        assert!(!refuses(
            &r,
            &leaf_of(&vendor, 5, "001122aabbcc", 0),
            &own_ca
        ));
    }
}

#[cfg(test)]
mod crl_tests {
    use super::*;
    use crate::model::{Mac, Revocation, RevocationReason};

    fn crl(pki: &super::super::Pki) -> (Vec<Vec<u8>>, Vec<u8>) {
        let der = pki.crl_der().unwrap();
        let (_, crl) = x509_parser::parse_x509_crl(&der).unwrap();
        let serials = crl
            .iter_revoked_certificates()
            .map(|c| c.raw_serial().to_vec())
            .collect();
        (serials, crl.crl_number().unwrap().to_bytes_be())
    }

    #[test]
    fn the_crl_is_signed_anew_with_a_greater_number_when_revocations_change() {
        let dir = tempfile::tempdir().unwrap();
        let revoked = Revocations::none();
        let pki = super::super::Pki::load_or_init(
            dir.path(),
            &crate::config::PkiConfig::default(),
            "",
            revoked.clone(),
        )
        .unwrap();
        let (none, first) = crl(&pki);
        assert!(none.is_empty());
        // Unchanged: the same list.
        assert_eq!(crl(&pki).1, first);

        let (cert, _) = pki
            .issue_device(Mac::from_octets([2, 0, 0, 0, 0, 1]), 1)
            .unwrap();
        let der: CertificateDer<'static> =
            rustls_pki_types::pem::PemObject::from_pem_slice(cert.certificate.as_bytes()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let record = IssuedCert {
            serial: hex(parsed.raw_serial()),
            mac: Mac::from_octets([2, 0, 0, 0, 0, 1]),
            not_before: None,
            not_after: None,
            issued_at: None,
            revoked: Some(Revocation {
                at: 1_800_000_000,
                reason: RevocationReason::KeyCompromise,
            }),
        };
        revoked
            .refresh(|| {
                Ok::<_, ()>(RevokedCerts {
                    certs: vec![record],
                    ..Default::default()
                })
            })
            .unwrap();
        let (listed, second) = crl(&pki);
        assert_eq!(listed, [parsed.raw_serial().to_vec()]);
        let as_number = |b: &[u8]| b.iter().fold(0u128, |n, d| n << 8 | u128::from(*d));
        assert!(as_number(&second) > as_number(&first));
        assert!(pki.refuses_own(&der));
    }

    fn number(der: &[u8]) -> u128 {
        let (_, crl) = x509_parser::parse_x509_crl(der).unwrap();
        crl.crl_number()
            .unwrap()
            .to_bytes_be()
            .iter()
            .fold(0u128, |n, d| n << 8 | u128::from(*d))
    }

    /// A CRL signed, then the daemon restarted on a clock set back an hour (NTP correcting a
    /// box that booted ahead): the next CRL's number is still greater. Before, the last number
    /// was kept only in memory, and the new list took the earlier time as its number.
    #[test]
    fn crl_numbers_grow_across_a_restart_on_a_clock_set_back() {
        let dir = tempfile::tempdir().unwrap();
        let load = || {
            super::super::Pki::load_or_init(
                dir.path(),
                &crate::config::PkiConfig::default(),
                "",
                Revocations::none(),
            )
            .unwrap()
        };
        let t = 1_800_000_000_000;
        let first = number(&load().crl_der_at(t).unwrap());
        assert_eq!(first, u128::from(t.unsigned_abs()));
        let again = number(&load().crl_der_at(t - 3_600_000).unwrap());
        assert_eq!(again, first + 1);
        // The clock catches up: the time is the number again.
        let later = number(&load().crl_der_at(t + 60_000).unwrap());
        assert_eq!(later, first + 60_000);
    }

    /// A CRL signed while the clock was a month ahead (a box booted without a real-time clock),
    /// then asked for once NTP set the clock back: the list is signed anew, dated by the clock
    /// now. Before, the cached list, dated a month ahead, was served until the clock caught
    /// up, and relying parties refuse a list whose thisUpdate is in the future.
    #[test]
    fn a_crl_signed_under_a_clock_ahead_is_signed_anew_once_the_clock_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let pki = super::super::Pki::load_or_init(
            dir.path(),
            &crate::config::PkiConfig::default(),
            "",
            Revocations::none(),
        )
        .unwrap();
        let this_update = |der: &[u8]| {
            let (_, crl) = x509_parser::parse_x509_crl(der).unwrap();
            crl.last_update().timestamp()
        };
        let t = 1_800_000_000_000;
        let ahead = pki.crl_der_at(t + 30 * 86_400_000).unwrap();
        assert!(this_update(&ahead) > t / 1000 + 29 * 86_400);

        let back = pki.crl_der_at(t).unwrap();

        assert!(
            this_update(&back) <= t / 1000,
            "the list is dated ahead of the clock"
        );
        assert_eq!(number(&back), number(&ahead) + 1);
    }

    #[test]
    fn the_next_crl_number_is_the_time_unless_the_clock_went_back() {
        use super::super::issue::next_crl_number;
        assert_eq!(next_crl_number(1_000, None), 1_000);
        assert_eq!(next_crl_number(1_000, Some(500)), 1_000);
        assert_eq!(next_crl_number(1_000, Some(1_000)), 1_001);
        assert_eq!(next_crl_number(1_000, Some(5_000)), 5_001);
        assert_eq!(next_crl_number(0, Some(i64::MAX)), i64::MAX);
    }

    /// A number file that is not a number is an error naming it, not a list numbered from
    /// the clock as if none had been signed.
    #[test]
    fn a_garbled_crl_number_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let pki = super::super::Pki::load_or_init(
            dir.path(),
            &crate::config::PkiConfig::default(),
            "",
            Revocations::none(),
        )
        .unwrap();
        std::fs::write(dir.path().join("crl.number"), "twelve").unwrap();
        let e = pki.crl_der().unwrap_err().to_string();
        assert!(
            e.contains("crl.number") && e.contains("not a decimal number"),
            "{e}"
        );
    }
}
