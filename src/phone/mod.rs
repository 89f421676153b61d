//! The phone-facing HTTP(S) service: identify the device, authorise, render, respond.

pub mod authorize;
mod cache;
pub mod credentials;
mod handler;
pub mod identify;
mod media_type;
pub mod path;
pub mod scep;
mod upload;
mod upload_slots;

use std::sync::Arc;
use std::time::Duration;

pub use handler::{PhoneConn, handle, preview, preview_firmware_base, preview_https_port};

use crate::config::PhoneConfig;
use crate::firmware::Firmware;
use crate::pki::{LiveCerts, Pki};
use crate::store::{Recorder, Store};
use cache::RenderCache;
use credentials::{Lockouts, NonceKey};

/// The name the box's CA certificate (PEM) is served at, to anyone, under any directory and in
/// any letter case: named for the box, so it does not take a name an operator's file may have.
pub const CA_FILE: &str = "edgeprov-ca.crt";

/// Everything a phone request needs, shared by all connections.
pub struct PhoneState {
    pub store: Store,
    pub recorder: Recorder,
    /// For the CA's revocation list, served at `/ca.crl`, and its certificate ([`CA_FILE`]).
    pub pki: Arc<Pki>,
    /// The certificates as reloaded: an open connection's certificate is checked again against
    /// the trusted roots once they may have changed.
    pub certs: Arc<LiveCerts>,
    /// Requests are counted here for `/metrics`.
    pub metrics: Arc<crate::metrics::Metrics>,
    pub nonces: NonceKey,
    pub lockouts: Lockouts,
    pub firmware: Arc<Firmware>,
    /// SCEP enrolment, when `[scep]` enables it.
    pub scep: Option<Arc<scep::ScepService>>,
    /// The port of the first HTTPS phone listener, which the SCEP URL of a settings file
    /// fetched over plain HTTP names (see `handler::scep_url`).
    pub https_port: Option<u16>,
    /// What requests of the current store generation share (layers, rendered common files).
    cache: RenderCache,
    /// `[uploads]`: whether phones may upload, and how much.
    pub uploads: crate::config::UploadsConfig,
    /// The uploads being read now (`uploads.max_in_flight`, one per device).
    upload_slots: upload_slots::UploadSlots,
    /// How long an upload's body may take to arrive (`phone.header_timeout_ms`).
    body_timeout: Duration,
}

impl PhoneState {
    pub fn new(
        store: Store,
        recorder: Recorder,
        pki: Arc<Pki>,
        certs: Arc<LiveCerts>,
        firmware: Arc<Firmware>,
        metrics: Arc<crate::metrics::Metrics>,
        config: &PhoneConfig,
    ) -> PhoneState {
        PhoneState {
            store,
            recorder,
            pki,
            certs,
            firmware,
            metrics,
            scep: None,
            https_port: None,
            cache: RenderCache::default(),
            upload_slots: upload_slots::UploadSlots::new(
                crate::config::UploadsConfig::default().max_in_flight,
            ),
            uploads: crate::config::UploadsConfig::default(),
            body_timeout: Duration::from_millis(config.header_timeout_ms),
            nonces: NonceKey::new(),
            lockouts: Lockouts::new(
                config.auth_max_failures,
                Duration::from_secs(config.auth_lockout_secs),
            ),
        }
    }

    /// Serves SCEP with `scep` (`None`: `[scep]` is off).
    pub fn with_scep(self, scep: Option<scep::ScepService>) -> PhoneState {
        PhoneState {
            scep: scep.map(Arc::new),
            ..self
        }
    }

    /// Takes uploads from phones as `uploads` says.
    pub fn with_uploads(self, uploads: crate::config::UploadsConfig) -> PhoneState {
        PhoneState {
            upload_slots: upload_slots::UploadSlots::new(uploads.max_in_flight),
            uploads,
            ..self
        }
    }

    /// Names `port`, the first HTTPS phone listener's, in SCEP URLs.
    pub fn with_https_port(self, port: u16) -> PhoneState {
        PhoneState {
            https_port: Some(port),
            ..self
        }
    }
}
