//! SCEP (RFC 8894): how desk phones (Avaya J100 `MYCERTURL`, Yealink, Poly) get their client
//! certificate from the box's CA. Pure protocol code: the request parsed, checked and opened
//! ([`request`], [`poll`]), the grant decided ([`policy`]; a request held for the operator:
//! [`pending`]), the answers built ([`reply`]). The phone
//! listener's route (`phone/scep.rs`) only moves bytes and does the store I/O.
//!
//! The CA's key is ECDSA, which RSA key transport cannot reach, so a registration authority
//! with an RSA key (`pki::ScepRa`, whose [`RsaKey`] is the [`RaKey`]) opens the requests and signs the answers;
//! the certificates themselves are the CA's, of the same profile as `pki issue-device` ones.

mod cipher;
mod csr;
mod implicit_rejection;
pub(crate) mod oids;
pub mod pending;
pub mod policy;
pub mod poll;
pub mod recent;
pub mod reply;
pub mod request;
mod rsa_key;

pub use cipher::ContentCipher;
pub use csr::{CsrFacts, KeyKind, read_csr};
pub use request::{Header, PkiRequest, PollRequest, Refusal, parse_request, read_header};
pub use rsa_key::{RsaKey, RsaKeyError};

/// Largest pkiMessage accepted (a CSR with an RSA 4096 key, a signer certificate and the
/// envelopes around them is under 8 KB; GET carries it base64 in the URL).
pub const MAX_MESSAGE: usize = 64 * 1024;

/// The RA's operations the protocol needs; its key never leaves `pki`.
pub trait RaKey {
    /// The RA certificate (DER).
    fn cert_der(&self) -> &[u8];
    /// RSA PKCS#1 v1.5 decryption of a content-encryption key sent to the RA.
    fn decrypt_key(&self, encrypted: &[u8]) -> Option<Vec<u8>>;
    /// The secret the content key of a failed key transport is derived with (see
    /// `implicit_rejection`): fixed for as long as the RA key is, so that the same encrypted
    /// key always gets the same answer, and unknown outside the box.
    fn rejection_secret(&self) -> &[u8; 32];
    /// An RSA PKCS#1 v1.5 signature with SHA-256.
    fn sign_sha256(&self, message: &[u8]) -> Option<Vec<u8>>;
}

/// The SCEP operation a request names (`operation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    GetCaCaps,
    GetCaCert,
    PkiOperation,
}

impl Operation {
    /// Operation names are matched exactly, as RFC 8894 §4.1 writes them.
    pub fn parse(name: &str) -> Option<Operation> {
        match name {
            "GetCACaps" => Some(Operation::GetCaCaps),
            "GetCACert" => Some(Operation::GetCaCert),
            "PKIOperation" => Some(Operation::PkiOperation),
            _ => None,
        }
    }
}

/// The `GetCACaps` answer: what this server does. SHA-1 and single DES are accepted from
/// clients that use them regardless (single DES only where `scep.allow_single_des` says so),
/// but never advertised, so a client that reads the list picks SHA-256 and AES or 3DES.
pub fn capabilities() -> &'static str {
    "POSTPKIOperation\nSHA-256\nAES\nDES3\nSCEPStandard\nRenewal\n"
}

/// The messageType of a pkiMessage (RFC 8894 §3.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    CertRep,
    RenewalReq,
    PkcsReq,
    CertPoll,
    GetCert,
    GetCrl,
}

impl MessageType {
    pub fn parse(text: &str) -> Option<MessageType> {
        match text {
            "3" => Some(MessageType::CertRep),
            "17" => Some(MessageType::RenewalReq),
            "19" => Some(MessageType::PkcsReq),
            "20" => Some(MessageType::CertPoll),
            "21" => Some(MessageType::GetCert),
            "22" => Some(MessageType::GetCrl),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            MessageType::CertRep => "3",
            MessageType::RenewalReq => "17",
            MessageType::PkcsReq => "19",
            MessageType::CertPoll => "20",
            MessageType::GetCert => "21",
            MessageType::GetCrl => "22",
        }
    }
}

/// Why a request failed, as the CertRep's failInfo says it (RFC 8894 §3.2.1.4.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailInfo {
    /// Unrecognized or unsupported algorithm.
    BadAlg,
    /// Integrity check (signature or digest) failed.
    BadMessageCheck,
    /// Transaction not permitted or supported.
    BadRequest,
    /// The signingTime attribute was not close enough to the system time.
    BadTime,
    /// No certificate could be identified matching the provided criteria.
    BadCertId,
}

impl FailInfo {
    pub fn code(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "0",
            FailInfo::BadMessageCheck => "1",
            FailInfo::BadRequest => "2",
            FailInfo::BadTime => "3",
            FailInfo::BadCertId => "4",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "badAlg",
            FailInfo::BadMessageCheck => "badMessageCheck",
            FailInfo::BadRequest => "badRequest",
            FailInfo::BadTime => "badTime",
            FailInfo::BadCertId => "badCertId",
        }
    }
}

/// Why a pkiMessage could not be used. Those that still let the sender be answered (the
/// signed envelope was read, so its transaction and nonce are known) carry a [`FailInfo`];
/// the rest are answered with HTTP 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScepError {
    #[error("the message is not a CMS SignedData: {0}")]
    NotSignedData(String),
    #[error("the message's signer: {0}")]
    Signer(String),
    #[error("signed attribute {0}: {1}")]
    Attribute(&'static str, String),
    /// The signature was read and the transaction is known, but the request cannot be served.
    #[error("{reason}")]
    Refused { fail: FailInfo, reason: String },
}

/// Requests and keys built in tests, the way clients build them.
#[cfg(test)]
pub(crate) mod test_support {
    /// A PKCS#10 request for `key` naming `cn`, with a challengePassword (PrintableString).
    pub fn csr(key: &rcgen::KeyPair, cn: &str, challenge: Option<&str>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let attrs = challenge
            .map(|pw| {
                let mut value = vec![0x13, pw.len() as u8];
                value.extend_from_slice(pw.as_bytes());
                let mut set = vec![0x31, value.len() as u8];
                set.extend(value);
                vec![rcgen::Attribute {
                    oid: &[1, 2, 840, 113549, 1, 9, 7],
                    values: set,
                }]
            })
            .unwrap_or_default();
        params
            .serialize_request_with_attributes(key, attrs)
            .unwrap()
            .der()
            .to_vec()
    }
}

#[cfg(test)]
mod tests;
