//! A device certificate the box's CA issued, and its revocation: the record that lets an
//! operator stop one stolen or superseded certificate without deactivating the device (which
//! would refuse the device's new certificate too).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Mac;

/// A device certificate issued by the box's CA. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCert {
    /// The serial number, lower-case hex of its DER bytes: what the CRL and the handshake check
    /// compare.
    pub serial: String,
    pub mac: Mac,
    /// Validity; unknown (`None`) for a certificate revoked by a serial the box only saw in
    /// the device's check-ins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<i64>,
    /// When the box issued it; `None` for a certificate issued before issuance was recorded
    /// (or outside the daemon with the CA's key), recorded when it was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<Revocation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub at: i64,
    pub reason: RevocationReason,
}

/// The CRL reason codes an operator of this box has a use for (RFC 5280 §5.3.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationReason {
    #[default]
    Unspecified,
    /// The private key was stolen or exposed.
    KeyCompromise,
    /// A newer certificate replaces it.
    Superseded,
    /// The device is out of service.
    CessationOfOperation,
}

impl RevocationReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            RevocationReason::Unspecified => "unspecified",
            RevocationReason::KeyCompromise => "key_compromise",
            RevocationReason::Superseded => "superseded",
            RevocationReason::CessationOfOperation => "cessation_of_operation",
        }
    }
}

impl std::fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the phone listener refuses: certificates revoked one by one, and for each device whose
/// certificates were all revoked, every certificate of the box's CA naming it that was issued
/// before then, recorded or not (issued before issuance was recorded, or with the CA's key
/// elsewhere). The CRL can list only the first: the others' serials are unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevokedCerts {
    pub certs: Vec<IssuedCert>,
    /// Per device, the Unix time of its latest "revoke all".
    pub issued_before: BTreeMap<Mac, i64>,
}
