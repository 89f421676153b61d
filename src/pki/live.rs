//! The certificates of the running daemon, changed without a restart: the TLS configurations
//! the listeners read at each handshake are rebuilt from the PKI directory and swapped in, so
//! new connections get the new certificate or trust while open ones carry on with theirs. The
//! SIGHUP reload and every change made through the admin API go through here, one at a time.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use rustls_pki_types::CertificateDer;

use super::own_ca::OwnCa;
use super::{
    CertOverview, INSTALLED, IdentityError, Pki, PkiError, Revocations, RootError, RootInfo,
    RootOrigin, SERVER_CERT, SERVER_KEY, SERVER_KEY_PENDING, ServerIdentity, files, issue, roots,
};
use crate::config::{Config, PkiConfig};
use crate::serve::{TlsSetup, TlsSource};

/// Why a certificate change was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The identity offered is not usable (the caller's fault).
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The root offered is not usable (the caller's fault).
    #[error(transparent)]
    Root(#[from] RootError),
    #[error("{0}")]
    NotFound(String),
    /// The change is not allowed (removing the CA, or a root the configuration names).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Pki(#[from] PkiError),
}

/// What the PKI is loaded from: the configuration's part of it.
#[derive(Clone)]
struct Settings {
    dir: PathBuf,
    config: PkiConfig,
    crl_url: String,
    /// Not from the configuration: the store's revocations, kept across reloads.
    revoked: Arc<Revocations>,
}

impl Settings {
    fn of(config: &Config, revoked: Arc<Revocations>) -> Settings {
        Settings {
            dir: config.pki_dir(),
            config: config.pki.clone(),
            crl_url: config.crl_url(),
            revoked,
        }
    }

    fn load(&self) -> Result<Pki, PkiError> {
        Pki::load_or_init(&self.dir, &self.config, &self.crl_url, self.revoked.clone())
    }
}

struct Current {
    settings: Settings,
    pki: Arc<Pki>,
}

/// The running daemon's certificates and the TLS configurations built from them.
pub struct LiveCerts {
    phone: TlsSource,
    admin: TlsSource,
    /// The CA as the phone configuration's trust tells its certificates from namesakes',
    /// swapped with it: read once per phone connection, never waiting for a reload's work.
    own: RwLock<Arc<OwnCa>>,
    current: Mutex<Current>,
    /// The first `pki.server_names` entry as last (re)loaded: the phone path names the box by
    /// it when a request names no host. Apart from `current`, so that such a request never
    /// waits for a reload's work.
    server_name: RwLock<Option<String>>,
    /// Woken when a reload changed the certificates (the expiry check runs again).
    reloaded: tokio::sync::Notify,
    /// Serialises expiry checks, so a slow one cannot raise an alarm a later one cleared.
    pub(super) checking: tokio::sync::Mutex<()>,
}

fn swap(source: &TlsSource, setup: TlsSetup) {
    *source.write().unwrap_or_else(|p| p.into_inner()) = setup;
}

/// The phone listeners' TLS set-up of `pki`: its configuration and what that proves.
fn phone_setup(pki: &Pki) -> Result<TlsSetup, PkiError> {
    Ok(TlsSetup {
        config: super::phone_server_config(pki)?,
        proven: Some(pki.proven()),
    })
}

/// The admin listener's: it asks for no client certificate.
fn admin_setup(pki: &Pki) -> Result<TlsSetup, PkiError> {
    Ok(TlsSetup {
        config: super::admin_server_config(pki)?,
        proven: None,
    })
}

/// A file's content and mode before a change, to put back if the change cannot be applied.
type Saved = (PathBuf, Option<(Vec<u8>, u32)>);

fn save(paths: &[PathBuf]) -> Result<Vec<Saved>, PkiError> {
    use std::os::unix::fs::PermissionsExt;
    paths
        .iter()
        .map(|p| {
            let io = |source| PkiError::Io {
                path: p.clone(),
                source,
            };
            match std::fs::read(p) {
                Ok(bytes) => {
                    let mode = std::fs::metadata(p).map_err(io)?.permissions().mode() & 0o777;
                    Ok((p.clone(), Some((bytes, mode))))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((p.clone(), None)),
                Err(e) => Err(io(e)),
            }
        })
        .collect()
}

fn put_back(saved: Vec<Saved>) {
    for (path, content) in saved {
        let result = match content {
            Some((bytes, mode)) => files::write(&path, &bytes, mode),
            None => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(PkiError::Io { path, source: e })
                }
                _ => Ok(()),
            },
        };
        if let Err(e) = result {
            tracing::error!("could not undo a refused certificate change: {e}");
        }
    }
}

impl LiveCerts {
    /// Loads (or on first start creates) the PKI and builds the TLS configurations; phones'
    /// handshakes check `revoked`, which the admin API refreshes after each revocation.
    pub fn start(config: &Config, revoked: Arc<Revocations>) -> Result<LiveCerts, PkiError> {
        let settings = Settings::of(config, revoked);
        let pki = settings.load()?;
        let phone = Arc::new(std::sync::RwLock::new(phone_setup(&pki)?));
        let admin = Arc::new(std::sync::RwLock::new(admin_setup(&pki)?));
        Ok(LiveCerts {
            phone,
            admin,
            own: RwLock::new(pki.own.clone()),
            server_name: RwLock::new(settings.config.server_names.first().cloned()),
            current: Mutex::new(Current {
                settings,
                pki: Arc::new(pki),
            }),
            reloaded: tokio::sync::Notify::new(),
            checking: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether the box's CA issued `cert`, a client certificate the phone listener accepted
    /// with the `intermediates` its client sent: whether the CA's key signed it, not merely
    /// whether it names the CA as its issuer (every edgeprov box's CA bears the same name).
    /// Only such certificates are revoked by serial and have their serial recorded. Costs
    /// nothing unless a trusted root or a sent certificate bears the CA's name; then one
    /// signature check: ask once per connection.
    pub fn issued_here(
        &self,
        cert: &x509_parser::certificate::X509Certificate<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> bool {
        let own = self.own.read().unwrap_or_else(|p| p.into_inner()).clone();
        own.signed(cert, intermediates)
    }

    /// The PKI as loaded last.
    pub fn pki(&self) -> Arc<Pki> {
        self.lock().pki.clone()
    }

    /// The first `pki.server_names` entry as last (re)loaded, if any.
    pub fn first_server_name(&self) -> Option<String> {
        self.server_name
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// `pki.device_cert_warn_days` as last (re)loaded.
    pub fn device_cert_warn_days(&self) -> u32 {
        self.lock().settings.config.device_cert_warn_days
    }

    /// What the phone HTTPS listeners read at each handshake.
    pub fn phone_tls(&self) -> TlsSource {
        self.phone.clone()
    }

    /// The phone listeners' TLS configuration as of now: one other than a connection's own
    /// means the trust may have changed since its handshake.
    pub fn phone_config(&self) -> Arc<rustls::ServerConfig> {
        self.phone
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .config
            .clone()
    }

    /// What the admin listener reads at each handshake.
    pub fn admin_tls(&self) -> TlsSource {
        self.admin.clone()
    }

    /// Resolves after the next reload ([`LiveCerts::apply`]).
    pub async fn reloaded(&self) {
        self.reloaded.notified().await
    }

    fn lock(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads the PKI and swaps in its TLS configurations; on error nothing changes.
    fn load_and_swap(&self, current: &mut Current, settings: Settings) -> Result<(), PkiError> {
        let pki = settings.load()?;
        let phone = phone_setup(&pki)?;
        let admin = admin_setup(&pki)?;
        swap(&self.phone, phone);
        *self.own.write().unwrap_or_else(|p| p.into_inner()) = pki.own.clone();
        swap(&self.admin, admin);
        *self.server_name.write().unwrap_or_else(|p| p.into_inner()) =
            settings.config.server_names.first().cloned();
        *current = Current {
            settings,
            pki: Arc::new(pki),
        };
        Ok(())
    }

    /// Reload (SIGHUP): the PKI part of a new configuration, and whatever changed on disk.
    pub fn apply(&self, config: &Config) -> Result<(), PkiError> {
        let mut current = self.lock();
        let revoked = current.settings.revoked.clone();
        self.load_and_swap(&mut current, Settings::of(config, revoked))?;
        self.reloaded.notify_one();
        Ok(())
    }

    /// Every certificate, described as of now.
    pub fn overview(&self) -> Result<CertOverview, PkiError> {
        self.pki().overview(crate::model::now_unix())
    }

    /// Runs `change` (which writes under the PKI directory only files in `touched`), then
    /// reloads; when either fails, the touched files are put back as they were.
    fn change(
        &self,
        touched: &[PathBuf],
        change: impl FnOnce(&Current) -> Result<(), CertError>,
    ) -> Result<CertOverview, CertError> {
        let mut current = self.lock();
        let saved = save(touched)?;
        let settings = current.settings.clone();
        let result = change(&current).and_then(|()| {
            self.load_and_swap(&mut current, settings)
                .map_err(CertError::from)
        });
        if let Err(e) = result {
            put_back(saved);
            return Err(e);
        }
        Ok(current.pki.overview(crate::model::now_unix())?)
    }

    /// A new key and server certificate from the CA for `pki.server_names`; an installed
    /// identity is removed, so phones get the generated certificate again.
    pub fn regenerate(&self) -> Result<CertOverview, CertError> {
        let dir = self.lock().settings.dir.clone();
        let touched = [SERVER_CERT, SERVER_KEY, SERVER_KEY_PENDING, INSTALLED].map(|f| dir.join(f));
        self.change(&touched, |current| {
            let s = &current.settings;
            issue::issue_server(
                &s.dir,
                &current.pki.issuer,
                &s.config.server_names,
                &s.crl_url,
            )?;
            match std::fs::remove_file(s.dir.join(INSTALLED)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(PkiError::Io {
                    path: s.dir.join(INSTALLED),
                    source: e,
                }
                .into()),
                _ => Ok(()),
            }
        })
    }

    /// Installs a checked server identity for phones; it stays until replaced or regenerated.
    pub fn install(&self, identity: &ServerIdentity) -> Result<CertOverview, CertError> {
        let path = self.lock().settings.dir.join(INSTALLED);
        self.change(std::slice::from_ref(&path), |_| {
            Ok(files::write(&path, identity.to_pem().as_bytes(), 0o600)?)
        })
    }

    /// Trusts checked roots for client certificates; roots already trusted are left as they
    /// are. Returns every root offered, as now trusted.
    pub fn add_roots(&self, certs: &[CertificateDer<'static>]) -> Result<Vec<RootInfo>, CertError> {
        let dir = self.lock().settings.dir.clone();
        let fps: Vec<String> = certs.iter().map(|c| super::fingerprint(c)).collect();
        let touched: Vec<PathBuf> = fps.iter().map(|fp| roots::path(&dir, fp)).collect();
        let overview = self.change(&touched, |current| {
            let known = current.pki.overview(crate::model::now_unix())?;
            for cert in certs {
                let fp = super::fingerprint(cert);
                let trusted =
                    fp == known.ca.sha256 || known.roots.iter().any(|r| r.cert.sha256 == fp);
                if !trusted {
                    roots::store(&dir, cert)?;
                }
            }
            Ok(())
        })?;
        Ok(overview
            .roots
            .into_iter()
            .filter(|r| fps.contains(&r.cert.sha256))
            .collect())
    }

    /// Stops trusting a root added through the API, by SHA-256 fingerprint.
    pub fn remove_root(&self, fingerprint: &str) -> Result<RootInfo, CertError> {
        let overview = self.overview()?;
        if overview.ca.sha256 == fingerprint {
            return Err(CertError::Refused(
                "that is the edgeprov device CA: it is always trusted".into(),
            ));
        }
        let root = overview
            .roots
            .into_iter()
            .find(|r| r.cert.sha256 == fingerprint)
            .ok_or_else(|| CertError::NotFound(format!("no trusted root {fingerprint}")))?;
        if root.origin == RootOrigin::Config {
            return Err(CertError::Refused(format!(
                "root {fingerprint} comes from {} in pki.trusted_device_roots: remove it there and reload",
                root.path.as_deref().unwrap_or("a file")
            )));
        }
        // By what the files hold, not their names: a file renamed or copied by hand is still
        // removed by the fingerprint the listing shows, every copy of it.
        let files = roots::files_of(&self.lock().settings.dir, fingerprint)?;
        self.change(&files, |_| {
            for path in &files {
                std::fs::remove_file(path).map_err(|source| {
                    CertError::Pki(PkiError::Io {
                        path: path.clone(),
                        source,
                    })
                })?;
            }
            Ok(())
        })?;
        Ok(root)
    }

    /// Renews the generated server certificate when it is within the renewal margin (or the
    /// names or CRL URL changed); returns whether it did.
    pub fn renew_if_due(&self) -> Result<bool, PkiError> {
        let mut current = self.lock();
        let s = current.settings.clone();
        if issue::reissue_reason(&s.dir, &s.config.server_names, &s.crl_url, false)?.is_none() {
            return Ok(false);
        }
        self.load_and_swap(&mut current, s)?;
        Ok(true)
    }
}
