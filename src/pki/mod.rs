//! The box's own PKI: a device CA made on first start, a server certificate it signs, device
//! certificates issued on demand, and the set of roots trusted for client certificates.
//!
//! Only this module reads key files. The CA is never regenerated silently: losing it would
//! orphan every certificate already on a phone, so a missing or unreadable file is an error
//! that names the file.

pub mod cloud;
pub mod device_expiry;
pub mod expiry;
mod files;
mod identity;
mod inspect;
mod issue;
mod live;
mod minter;
mod own_ca;
mod pkcs12;
mod proven;
mod revoked;
pub mod roots;
mod scep_ra;
mod tls;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{Issuer, KeyPair};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::config::PkiConfig;
pub use identity::{IdentityError, ServerIdentity};
pub use inspect::{CertInfo, fingerprint, normalise_fingerprint};
pub use issue::{DeviceIdentity, cert_names};
pub use live::{CertError, LiveCerts};
pub use minter::DeviceMinter;
pub use pkcs12::{Pkcs12Error, Pkcs12Form, check_pkcs12_password};
pub use proven::{Proven, why_unproven};
pub use revoked::{Revocations, RevokedSet};
pub use roots::RootError;
pub use scep_ra::ScepRa;
pub use tls::{admin_server_config, phone_server_config, random_bytes};

pub const CA_CERT: &str = "ca.crt";
pub const CA_KEY: &str = "ca.key";
pub const SERVER_CERT: &str = "server.crt";
pub const SERVER_KEY: &str = "server.key";
/// Present while a first start makes the PKI: one a stop interrupted is made again from the
/// start (nothing can have been issued with it), where the files it had written would have
/// been taken for a PKI missing some of them.
const FIRST_START: &str = "first-start.incomplete";
/// A new server key written before its certificate (see `issue::issue_server`).
const SERVER_KEY_PENDING: &str = "server.key.new";
/// The SCEP registration authority (see `scep_ra`), made at the first enrolment.
pub const SCEP_RA_CERT: &str = "scep-ra.crt";
pub const SCEP_RA_KEY: &str = "scep-ra.key";
/// An installed server identity (chain and key in one file, so they never disagree).
pub const INSTALLED: &str = "installed.pem";
/// The number of the last CRL signed (decimal text), so that the next one is greater even
/// after a restart on a clock set back (RFC 5280 §5.2.3: CRL numbers increase).
const CRL_NUMBER: &str = "crl.number";

/// What to do about a CA certificate and key that do not belong together.
const CA_PAIR_REMEDY: &str = "put back ca.crt and ca.key together from one backup (edgeprov never makes a new CA: the phones' certificates chain to this one)";
/// What to do about a server certificate and key that do not belong together.
const SERVER_PAIR_REMEDY: &str = "put back server.crt and server.key together from one backup";

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
    #[error(
        "{key} is not the private key of the certificate {cert} (the two files do not belong together); {remedy}"
    )]
    KeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        /// What the operator can do about it.
        remedy: &'static str,
    },
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
    /// Tells the CA's certificates, which it can revoke, from those of namesakes.
    own: Arc<own_ca::OwnCa>,
    /// When the CA stops being valid (Unix seconds): no certificate it signs outlives it.
    ca_not_after: i64,
    issuer: Issuer<'static, KeyPair>,
    /// The generated server certificate: the admin API always presents it (the CLI trusts only
    /// the CA), phones get it unless an identity is installed.
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    /// A server identity the operator installed; phones get it instead.
    installed: Option<ServerIdentity>,
    device_roots: Arc<RootCertStore>,
    /// The trusted device roots besides the CA, for the overview.
    roots: Vec<TrustedRoot>,
    /// Revoked device certificates, shared with every PKI loaded after this one.
    revoked: Arc<Revocations>,
    /// The client certificates the phone listener's handshakes proved under these roots; a
    /// reload starts an empty one.
    proven: Arc<Proven>,
    /// The phone listener's check of a client certificate under these roots, built once: the
    /// handshakes use it, and a connection whose certificate they did not prove is checked
    /// again with it.
    client_check: Arc<revoked::CheckRevoked>,
    crl: std::sync::Mutex<Option<SignedCrl>>,
    /// The SCEP RA once an enrolment needed it.
    scep_ra: std::sync::Mutex<Option<Arc<ScepRa>>>,
}

/// The last signed CRL, with when it was signed and for which revocations.
struct SignedCrl {
    /// Unix seconds.
    at: i64,
    /// [`RevokedSet::version`] it lists.
    version: u64,
    /// Its CRL number.
    number: i64,
    der: Arc<Vec<u8>>,
}

/// A CRL older than this is signed anew when asked for.
const CRL_REFRESH_SECS: i64 = 86_400;

impl Pki {
    /// Loads the PKI from `dir`, creating it when the directory holds none of its files.
    /// `crl_url` is written into the server certificate (see `Config::crl_url`); `revoked` is
    /// what the phone listener's handshakes check and the CRL lists.
    pub fn load_or_init(
        dir: &Path,
        config: &PkiConfig,
        crl_url: &str,
        revoked: Arc<Revocations>,
    ) -> Result<Pki, PkiError> {
        files::ensure_dir(dir)?;
        if dir.join(FIRST_START).exists() {
            issue::discard_first_start(dir)?;
        }
        issue::finish_server_key(dir)?;
        let present: Vec<bool> = [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY]
            .iter()
            .map(|f| dir.join(f).exists())
            .collect();
        let first_start = present.iter().all(|p| !p);
        if first_start {
            files::write(&dir.join(FIRST_START), b"", 0o600)?;
            issue::create_ca(dir)?;
        } else if let Some(missing) = [CA_CERT, CA_KEY].iter().zip(&present).find(|(_, p)| !**p) {
            return Err(PkiError::Missing {
                path: dir.join(missing.0),
            });
        }
        let ca_cert_pem = files::read_text(&dir.join(CA_CERT))?;
        let ca_cert = files::parse_one_cert(&dir.join(CA_CERT), &ca_cert_pem)?;
        let (ca_subject, ca_not_after) = x509_parser::parse_x509_certificate(&ca_cert)
            .map(|(_, c)| {
                (
                    c.subject().as_raw().to_vec(),
                    c.validity().not_after.timestamp(),
                )
            })
            .map_err(|e| PkiError::Corrupt {
                path: dir.join(CA_CERT),
                reason: e.to_string(),
            })?;
        let ca_key = files::read_key_pair(&dir.join(CA_KEY))?;
        // Before anything is signed with it: a server certificate issued with the wrong key
        // would be written over the working one.
        files::check_pair(
            &dir.join(CA_CERT),
            &ca_cert,
            &dir.join(CA_KEY),
            ca_key.public_key_raw(),
            CA_PAIR_REMEDY,
        )?;
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
        files::check_pair(
            &dir.join(SERVER_CERT),
            &server_chain[0],
            &dir.join(SERVER_KEY),
            &files::public_key_of(&dir.join(SERVER_KEY), &server_key)?,
            SERVER_PAIR_REMEDY,
        )?;
        if first_start {
            files::remove(&dir.join(FIRST_START))?;
        }
        let installed_path = dir.join(INSTALLED);
        // Not checked for expiry here: an expired installed identity raises a critical alarm
        // but must not keep the daemon from starting.
        let installed = match installed_path.exists() {
            true => Some(
                ServerIdentity::from_stored_pem(&files::read_text(&installed_path)?).map_err(
                    |e| PkiError::Corrupt {
                        path: installed_path.clone(),
                        reason: e.to_string(),
                    },
                )?,
            ),
            false => None,
        };

        let mut store = RootCertStore::empty();
        store.add(ca_cert.clone()).map_err(|e| PkiError::Corrupt {
            path: dir.join(CA_CERT),
            reason: e.to_string(),
        })?;
        let mut seen = std::collections::BTreeSet::from([fingerprint(&ca_cert)]);
        let mut trusted = Vec::new();
        for path in &config.trusted_device_roots {
            for (i, cert) in files::read_roots(path)?.into_iter().enumerate() {
                roots::require_ca(path, i + 1, &cert)?;
                store.add(cert.clone()).map_err(|e| PkiError::Corrupt {
                    path: path.clone(),
                    reason: format!("not a usable trust anchor: {e}"),
                })?;
                if seen.insert(fingerprint(&cert)) {
                    trusted.push(TrustedRoot {
                        cert,
                        path: Some(path.clone()),
                    });
                }
            }
        }
        for roots::StoredRoot { file, cert } in roots::load_stored(dir)? {
            roots::require_ca(&file, 1, &cert)?;
            let fp = fingerprint(&cert);
            store.add(cert.clone()).map_err(|e| PkiError::Corrupt {
                path: file,
                reason: format!("not a usable trust anchor: {e}"),
            })?;
            if seen.insert(fp) {
                trusted.push(TrustedRoot { cert, path: None });
            }
        }
        let own = Arc::new(own_ca::OwnCa::new(
            ca_cert.clone(),
            ca_subject,
            trusted.iter().map(|r| &r.cert),
        ));
        let device_roots = Arc::new(store);
        let client_check =
            tls::client_verifier(device_roots.clone(), revoked.clone(), own.clone())?;
        Ok(Pki {
            dir: dir.to_path_buf(),
            ca_cert_pem,
            ca_cert,
            own,
            ca_not_after,
            issuer,
            server_chain,
            server_key,
            installed,
            device_roots,
            roots: trusted,
            revoked,
            proven: Arc::default(),
            client_check,
            crl: std::sync::Mutex::new(None),
            scep_ra: std::sync::Mutex::new(None),
        })
    }

    /// What phones are presented: the installed identity, else the generated certificate.
    fn phone_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        match &self.installed {
            Some(id) => (id.chain.clone(), id.key.clone_key()),
            None => (self.server_chain.clone(), self.server_key.clone_key()),
        }
    }

    /// Every certificate described as of `now` (Unix seconds).
    pub fn overview(&self, now: i64) -> Result<CertOverview, PkiError> {
        let describe = |der: &CertificateDer<'_>, file: &str| {
            inspect::describe(der, now).map_err(|reason| PkiError::Corrupt {
                path: self.dir.join(file),
                reason,
            })
        };
        let admin = describe(&self.server_chain[0], SERVER_CERT)?;
        let server = match &self.installed {
            Some(id) => ServerCert {
                cert: describe(&id.chain[0], INSTALLED)?,
                source: ServerSource::Installed,
                chain_len: id.chain.len(),
            },
            None => ServerCert {
                cert: admin.clone(),
                source: ServerSource::Generated,
                chain_len: self.server_chain.len(),
            },
        };
        let roots = self
            .roots
            .iter()
            .map(|r| {
                Ok(RootInfo {
                    cert: describe(&r.cert, roots::DIR)?,
                    origin: match r.path {
                        Some(_) => RootOrigin::Config,
                        None => RootOrigin::Api,
                    },
                    path: r.path.as_ref().map(|p| p.display().to_string()),
                })
            })
            .collect::<Result<_, PkiError>>()?;
        Ok(CertOverview {
            ca: describe(&self.ca_cert, CA_CERT)?,
            server,
            admin,
            roots,
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

    /// The revoked device certificates.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revoked
    }

    /// Whether `cert` (DER), a certificate of the CA ([`LiveCerts::issued_here`]), is revoked; a
    /// presented one is alarmed. The handshake refuses such a certificate, but a session
    /// resumed from before the revocation carries it without a new check: the phone listener
    /// asks again at accept.
    pub fn refuses_own(&self, cert: &[u8]) -> bool {
        self.revoked.refuses(cert, |_| true)
    }

    /// The client certificates the phone listener's handshakes under this PKI proved: the
    /// listener asks it which of them a connection's is.
    pub fn proven(&self) -> Arc<Proven> {
        self.proven.clone()
    }

    /// Whether a client certificate (with the intermediates its client sent) passes the phone
    /// listener's check with this PKI's trusted roots and revocations, now: a connection
    /// accepted under roots since removed, or let through without proof, proves nothing.
    pub fn verifies_client(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        use rustls::server::danger::ClientCertVerifier;
        self.client_check
            .verify_client_cert(leaf, intermediates, rustls_pki_types::UnixTime::now())
            .map(|_| ())
    }

    /// The current CRL (DER), re-signed once a day and whenever the revocations change.
    pub fn crl_der(&self) -> Result<Arc<Vec<u8>>, PkiError> {
        let millis = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        self.crl_der_at(millis)
    }

    /// [`Pki::crl_der`] with the clock read as `millis` (Unix milliseconds).
    fn crl_der_at(&self, millis: i64) -> Result<Arc<Vec<u8>>, PkiError> {
        let now = millis.div_euclid(1000);
        let revoked = self.revoked.current();
        let mut cached = self.crl.lock().unwrap_or_else(|p| p.into_inner());
        // Not a list signed "later" than now: the clock was ahead then (a box that booted
        // without a real-time clock, corrected by NTP), and its thisUpdate is still in the
        // future, where relying parties refuse it, until the clock catches up.
        if let Some(signed) = cached.as_ref()
            && (0..CRL_REFRESH_SECS).contains(&(now - signed.at))
            && signed.version == revoked.version()
        {
            return Ok(signed.der.clone());
        }
        // CRL numbers must grow: milliseconds keep two lists signed in one second apart, and
        // the last number, kept in a file, keeps them growing when the clock steps back, also
        // across restarts. It is written before the list is served.
        let number_file = self.dir.join(CRL_NUMBER);
        let last = files::read_number(&number_file)?
            .into_iter()
            .chain(cached.as_ref().map(|c| c.number))
            .max();
        let number = issue::next_crl_number(millis, last);
        let der = Arc::new(issue::crl_der(&self.issuer, revoked.certs(), number, now)?);
        files::write(&number_file, number.to_string().as_bytes(), 0o644)?;
        *cached = Some(SignedCrl {
            at: now,
            version: revoked.version(),
            number,
            der: der.clone(),
        });
        Ok(der)
    }

    /// Issues a client certificate for a device (softphones, tests, the boot-storm simulator),
    /// with the record of it to keep, by which it can be revoked.
    pub fn issue_device(
        &self,
        mac: crate::model::Mac,
        days: u32,
    ) -> Result<(DeviceIdentity, crate::model::IssuedCert), PkiError> {
        let (cert, key) = issue::device_cert(&self.issuer, self.ca_not_after, mac, days)?;
        let record = self.record_of(cert.der(), mac)?;
        let identity = DeviceIdentity {
            certificate: cert.pem(),
            private_key: key.serialize_pem(),
            ca_certificate: self.ca_cert_pem.clone(),
        };
        Ok((identity, record))
    }

    /// The SCEP registration authority, loaded from the PKI directory or made there on first
    /// need (see `scep_ra`).
    pub fn scep_ra(&self) -> Result<Arc<ScepRa>, PkiError> {
        self.scep_ra_at(crate::model::now_unix())
    }

    /// [`Pki::scep_ra`] at `now` (Unix seconds): the RA kept in memory is used while it is not
    /// due for renewal (a compare), and made again once it is.
    fn scep_ra_at(&self, now: i64) -> Result<Arc<ScepRa>, PkiError> {
        let mut ra = self.scep_ra.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(ra) = ra.as_ref().filter(|ra| !ra.due(now, self.ca_not_after)) {
            return Ok(ra.clone());
        }
        let loaded = Arc::new(ScepRa::load_or_make(
            &self.dir,
            &self.issuer,
            &self.ca_cert,
            self.ca_not_after,
            now,
        )?);
        *ra = Some(loaded.clone());
        Ok(loaded)
    }

    /// Issues a device certificate of [`Pki::issue_device`]'s profile for a key the device
    /// made itself (SCEP): `spki` is the public key of its certificate request (DER). Answers
    /// the certificate (DER) and the record to keep.
    pub fn issue_device_for_key(
        &self,
        mac: crate::model::Mac,
        days: u32,
        spki: &[u8],
    ) -> Result<(CertificateDer<'static>, crate::model::IssuedCert), PkiError> {
        let cert = issue::device_cert_for_key(&self.issuer, self.ca_not_after, mac, days, spki)?;
        let record = self.record_of(cert.der(), mac)?;
        Ok((cert.der().clone(), record))
    }

    /// What the box keeps of a device certificate it just issued.
    fn record_of(
        &self,
        der: &CertificateDer<'_>,
        mac: crate::model::Mac,
    ) -> Result<crate::model::IssuedCert, PkiError> {
        let info = inspect::describe(der, crate::model::now_unix()).map_err(|reason| {
            PkiError::Generate {
                what: "device certificate",
                reason,
            }
        })?;
        Ok(issued_record(info, mac, Some(crate::model::now_unix())))
    }

    /// The device a certificate (DER) of this CA proves now: signed by the CA, valid today,
    /// not revoked, naming a MAC. What a SCEP renewal is signed with; the error says why a
    /// certificate is none of that. Answered as the record the store checks the certificate's
    /// revocation by again when the renewal is recorded: `issued_at` is the latest time it can
    /// have been issued (its start plus the slack the CA dates certificates back by).
    pub fn valid_own_device(&self, der: &[u8]) -> Result<crate::model::IssuedCert, String> {
        let der = CertificateDer::from(der.to_vec());
        let mac = self.own_device_of(&der)?;
        if self.refuses_own(&der) {
            return Err("it has been revoked".into());
        }
        let info = inspect::describe(&der, crate::model::now_unix())?;
        let issued_at = info.not_before + issue::NOT_BEFORE_SLACK_SECS;
        Ok(issued_record(info, mac, Some(issued_at)))
    }

    /// The MAC of a certificate this CA signed that is valid now (not checked for
    /// revocation).
    fn own_device_of(&self, der: &CertificateDer<'_>) -> Result<crate::model::Mac, String> {
        let mut ca_only = RootCertStore::empty();
        ca_only
            .add(self.ca_cert.clone())
            .map_err(|e| e.to_string())?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(ca_only),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .map_err(|e| e.to_string())?;
        verifier
            .verify_client_cert(der, &[], rustls_pki_types::UnixTime::now())
            .map_err(|e| format!("not a valid certificate of this box's CA: {e}"))?;
        crate::phone::identify::mac_from_certificate(der)
            .ok_or_else(|| "it names no MAC address".to_string())
    }

    /// Reads a device certificate (PEM) this CA issued to `mac`, for revoking one the box has
    /// no record of. The error says why it is not one: not PEM, not signed by this CA (or
    /// expired: no longer accepted anyway), or for another device.
    pub fn own_device_cert(
        &self,
        pem: &str,
        mac: crate::model::Mac,
    ) -> Result<crate::model::IssuedCert, String> {
        use rustls_pki_types::pem::PemObject;
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| format!("not a PEM certificate: {e}"))?;
        match self.own_device_of(&der)? {
            m if m == mac => {}
            m => return Err(format!("it was issued to {m}, not {mac}")),
        }
        let info = inspect::describe(&der, crate::model::now_unix())?;
        Ok(issued_record(info, mac, None))
    }
}

/// A trusted device root besides the CA: from a file the configuration names, or added
/// through the API (`path` is `None`).
struct TrustedRoot {
    cert: CertificateDer<'static>,
    path: Option<PathBuf>,
}

/// Where the certificate phones are presented comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerSource {
    /// Issued by the edgeprov CA for `pki.server_names`, renewed automatically.
    Generated,
    /// Installed by the operator (PEM or PKCS#12); never replaced automatically.
    Installed,
}

/// Where a trusted device root comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootOrigin {
    /// A file in `pki.trusted_device_roots`: changed by editing the configuration.
    Config,
    /// Added through the admin API.
    Api,
}

/// The certificate phones are presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerCert {
    #[serde(flatten)]
    pub cert: CertInfo,
    pub source: ServerSource,
    /// Certificates sent in the handshake (leaf and intermediates).
    pub chain_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootInfo {
    #[serde(flatten)]
    pub cert: CertInfo,
    pub origin: RootOrigin,
    /// The configured file it was read from (`origin: config`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `GET /api/v1/certs`: every certificate the box uses or trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertOverview {
    /// The device CA: signs the generated server certificate and device certificates, and is
    /// always trusted for client certificates.
    pub ca: CertInfo,
    /// What phones are presented.
    pub server: ServerCert,
    /// What the admin API presents: always the generated certificate (the same as `server`
    /// unless an identity is installed).
    pub admin: CertInfo,
    /// Trusted device roots besides the CA.
    pub roots: Vec<RootInfo>,
}

/// The PKI files a backup carries, by name relative to the PKI directory: the CA, the
/// generated server certificate, an installed identity, the roots added through the API and
/// the appliance's cloud identity.
/// A root is carried under the fingerprint of the certificate it holds, once, whatever its
/// file is named here (a file renamed by hand is restored under its right name).
pub fn files_for_backup(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, PkiError> {
    let mut names: Vec<(String, PathBuf)> = [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY]
        .map(|n| (n.to_string(), dir.join(n)))
        .into();
    if dir.join(INSTALLED).exists() {
        names.push((INSTALLED.to_string(), dir.join(INSTALLED)));
    }
    if cloud::has_identity(dir) {
        names.extend(cloud::BACKUP_FILES.map(|n| (n.to_string(), dir.join(n))));
    }
    let mut roots_seen = std::collections::BTreeSet::new();
    for root in roots::load_stored(dir)? {
        let fp = fingerprint(&root.cert);
        if roots_seen.insert(fp.clone()) {
            names.push((format!("{}/{fp}.crt", roots::DIR), root.file));
        }
    }
    names
        .into_iter()
        .map(|(name, path)| {
            std::fs::read(&path)
                .map(|b| (name, b))
                .map_err(|source| PkiError::Io { path, source })
        })
        .collect()
}

/// The mode a PKI file of a backup is kept with, as the daemon writes it: a certificate is
/// public (`ca.crt` is meant to be copied to phones and to the remote CLI's machine), every
/// other file holds a key (`installed.pem` holds its key beside the chain).
pub fn backup_file_mode(name: &str) -> u32 {
    match name.ends_with(".crt") {
        true => 0o644,
        false => 0o600,
    }
}

/// Whether `name` is one of the PKI files a backup may restore.
pub fn is_backup_file(name: &str) -> bool {
    [CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, INSTALLED].contains(&name)
        || cloud::BACKUP_FILES.contains(&name)
        || roots::is_root_file(name)
}

/// Reads one PEM certificate (for `doctor`'s expiry checks, and the box's CA that `edgeprov
/// --url … --ca-cert FILE` trusts).
pub fn read_cert(path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    files::parse_one_cert(path, &files::read_text(path)?)
}

/// Reads the CA certificate a client needs to trust the admin API (used by the CLI).
pub fn read_ca_cert(data_pki_dir: &Path) -> Result<CertificateDer<'static>, PkiError> {
    let path = data_pki_dir.join(CA_CERT);
    files::parse_one_cert(&path, &files::read_text(&path)?)
}

/// The record of a device certificate of this CA described by `info`, issued to `mac` at
/// `issued_at` (`None`: not known).
fn issued_record(
    info: inspect::CertInfo,
    mac: crate::model::Mac,
    issued_at: Option<i64>,
) -> crate::model::IssuedCert {
    crate::model::IssuedCert {
        serial: info.serial,
        mac,
        not_before: Some(info.not_before),
        not_after: Some(info.not_after),
        issued_at,
        revoked: None,
    }
}
