//! A SCEP enrolment held for an operator's approval (`scep.approval = "operator"`): what the
//! phone asked for, and what became of it. Kept per device (one at a time) until the device is
//! deleted or a later request replaces it, so a phone polling after the answer was decided
//! still gets it.

use serde::{Deserialize, Serialize};

use super::Mac;

/// The fewest leading hex digits of a key's SHA-256 an approval may name, and what the
/// operator is shown to type: 64 bits, more than anyone can match by making keys.
pub const KEY_DIGITS_NAMED: usize = 16;

/// One held request. Times are Unix seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingEnrolment {
    pub mac: Mac,
    /// The SCEP transactionID the phone polls with.
    pub transaction_id: String,
    /// The SubjectPublicKeyInfo (DER) of the self-signed certificate request: the certificate
    /// is issued for it once approved. The request itself is not kept: it carries the
    /// challenge password in clear, which has no place in the database and its backups.
    #[serde(with = "base64_bytes")]
    pub spki: Vec<u8>,
    /// Hex SHA-256 of the request's SubjectPublicKeyInfo: a resent request is the same one
    /// only with the same key.
    pub key_sha256: String,
    /// The key's kind and size as shown to the operator ("RSA 2048", "EC on curve …").
    pub key: String,
    /// Hex SHA-256 of the SubjectPublicKeyInfo of the certificate that signed the request:
    /// a poll must be signed by the same key, and the answer is encrypted to it.
    pub signer_key_sha256: String,
    /// The address the request came from.
    pub source: String,
    /// The HTTP method it came by (the grant's audit entry says it, as an immediate one does).
    pub method: String,
    pub requested_at: i64,
    pub state: PendingState,
}

/// Where a held request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PendingState {
    /// Waiting for the operator.
    Pending,
    /// Approved: the certificate issued for it (DER), which the next poll receives.
    Approved {
        by: String,
        at: i64,
        serial: String,
        #[serde(with = "base64_bytes")]
        cert: Vec<u8>,
    },
    Rejected {
        by: String,
        at: i64,
    },
}

impl PendingEnrolment {
    /// Whether it still waits for the operator at `now`: pending, and not older than
    /// `pending_days`.
    pub fn waiting(&self, now: i64, pending_days: u32) -> bool {
        self.state == PendingState::Pending && !self.expired(now, pending_days)
    }

    /// The first [`KEY_DIGITS_NAMED`] hex digits of the key's SHA-256: what an operator reads
    /// in a table or an alarm and names when approving.
    pub fn key_short(&self) -> &str {
        self.key_sha256
            .get(..KEY_DIGITS_NAMED)
            .unwrap_or(&self.key_sha256)
    }

    /// The source of the `scep_pending` alarm its hold raises (`IP as MAC`), by which the
    /// operator's decision clears it again.
    pub fn alarm_source(&self) -> String {
        format!("{} as {}", self.source, self.mac)
    }

    /// Whether a request still pending at `now` has waited longer than `pending_days`.
    pub fn expired(&self, now: i64, pending_days: u32) -> bool {
        self.state == PendingState::Pending
            && now.saturating_sub(self.requested_at) > i64::from(pending_days) * 86_400
    }
}

/// Bytes as standard base64 in the JSON the store keeps.
mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(requested_at: i64, state: PendingState) -> PendingEnrolment {
        PendingEnrolment {
            mac: Mac::parse("00040d112233").unwrap(),
            transaction_id: "tx".into(),
            spki: vec![0x30, 0x00, 0xff],
            key_sha256: "ab".into(),
            key: "RSA 2048".into(),
            signer_key_sha256: "cd".into(),
            source: "10.0.0.7".into(),
            method: "POST".into(),
            requested_at,
            state,
        }
    }

    #[test]
    fn a_request_waits_until_decided_or_past_its_days() {
        let day = 86_400;
        let p = held(1000, PendingState::Pending);
        assert!(p.waiting(1000 + 7 * day, 7));
        assert!(!p.waiting(1001 + 7 * day, 7) && p.expired(1001 + 7 * day, 7));
        let rejected = held(
            1000,
            PendingState::Rejected {
                by: "admin".into(),
                at: 1100,
            },
        );
        assert!(!rejected.waiting(1000, 7) && !rejected.expired(1000 + 30 * day, 7));
    }

    #[test]
    fn its_key_is_named_by_the_first_digits_of_its_hash() {
        let mut p = held(0, PendingState::Pending);
        assert_eq!(p.key_short(), "ab", "a hash shorter than the digits named");
        p.key_sha256 = "0123456789abcdef".repeat(4);
        assert_eq!(p.key_short(), "0123456789abcdef");
    }

    #[test]
    fn it_keeps_its_bytes_through_json() {
        let p = held(
            5,
            PendingState::Approved {
                by: "admin".into(),
                at: 6,
                serial: "0a".into(),
                cert: vec![1, 2, 250],
            },
        );
        let json = serde_json::to_string(&p).unwrap();
        assert!(json.contains("\"state\":\"approved\""), "{json}");
        assert_eq!(serde_json::from_str::<PendingEnrolment>(&json).unwrap(), p);
    }
}
