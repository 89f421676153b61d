//! Each simulated phone's TLS identity: a certificate minted in memory from the given CA and a
//! rustls client configuration of its own (so session resumption, when asked for, is per phone,
//! as on real phones).
//!
//! Identities are made before the clock starts, on every core: a phone arrives with its
//! certificate already in flash, so minting is not part of what a storm measures.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};

use super::StormError;
use crate::model::Mac;
use crate::pki::DeviceMinter;

/// Certificates are minted for the length of one storm; a day leaves room for clock skew.
const CERT_DAYS: u32 = 1;

/// Which TLS versions the phones offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsVersion {
    /// Both; the server picks (TLS 1.3 with edgeprov and current nginx).
    Any,
    #[value(name = "1.2")]
    V12,
    #[value(name = "1.3")]
    V13,
}

static ONLY_TLS12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
static ONLY_TLS13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];

impl TlsVersion {
    fn versions(self) -> &'static [&'static SupportedProtocolVersion] {
        match self {
            TlsVersion::Any => rustls::ALL_VERSIONS,
            TlsVersion::V12 => &ONLY_TLS12,
            TlsVersion::V13 => &ONLY_TLS13,
        }
    }
}

/// What every phone's client configuration shares.
pub struct Common {
    pub minter: DeviceMinter,
    pub roots: Arc<RootCertStore>,
    pub provider: Arc<CryptoProvider>,
    pub tls: TlsVersion,
    pub resume: bool,
}

impl Common {
    pub fn new(minter: DeviceMinter, tls: TlsVersion, resume: bool) -> Result<Common, StormError> {
        let mut roots = RootCertStore::empty();
        roots
            .add(minter.ca_cert().clone())
            .map_err(|e| StormError::Tls(format!("CA certificate: {e}")))?;
        Ok(Common {
            minter,
            roots: Arc::new(roots),
            provider: Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
            tls,
            resume,
        })
    }

    /// Mints the phone's certificate and builds its client configuration.
    pub fn client_config(&self, mac: Mac) -> Result<Arc<ClientConfig>, StormError> {
        let (cert, key) = self
            .minter
            .mint(mac, CERT_DAYS)
            .map_err(|e| StormError::Mint(e.to_string()))?;
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.tls.versions())
            .map_err(|e| StormError::Tls(e.to_string()))?
            .with_root_certificates(self.roots.clone())
            .with_client_auth_cert(vec![cert], key)
            .map_err(|e| StormError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // A handful of sessions is all one phone ever resumes; without --resume-sessions every
        // connection is a full handshake, as after a power cut.
        config.resumption = if self.resume {
            Resumption::in_memory_sessions(4)
        } else {
            Resumption::disabled()
        };
        Ok(Arc::new(config))
    }
}

/// Builds the identities of `macs` on every core, in order.
pub fn prepare(common: &Common, macs: &[Mac]) -> Result<Vec<Arc<ClientConfig>>, StormError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = macs.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = macs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|m| common.client_config(*m))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(macs.len());
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| StormError::Mint("a minting thread panicked".into()))??,
            );
        }
        Ok(out)
    })
}
