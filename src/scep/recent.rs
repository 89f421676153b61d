//! The certificates granted lately, to answer a retransmission with the certificate already
//! issued.
//!
//! A phone whose answer was lost (a dropped connection, a crash between recording and
//! answering) sends its request again, with the same transactionID and key (RFC 8894 §3.3.1:
//! the server answers a repeated transaction the same way). By then its certificate is on
//! record, and a fresh decision would refuse it as already enrolled: the phone would be locked
//! out until the operator revokes a certificate it never received. Kept in memory and bounded:
//! a retransmission comes within minutes, and a restart only costs the phone a revocation.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::MessageType;
use crate::model::Mac;

/// Grants remembered at most.
pub const CAPACITY: usize = 1024;
/// How long after a grant a retransmission is answered with it.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// One grant: which transaction of which device, for which key, and what it was given.
#[derive(Clone)]
pub struct Grant {
    pub mac: Mac,
    /// PKCSReq or RenewalReq: a client that derives its transactionID from its key (micromdm's)
    /// renews with the transactionID it enrolled with, and that renewal is no repeat.
    pub message_type: MessageType,
    pub transaction_id: String,
    /// SHA-256 of the SubjectPublicKeyInfo the certificate was issued for.
    pub key_hash: [u8; 32],
    pub serial: String,
    /// The certificate (DER).
    pub cert: Vec<u8>,
    pub at: Instant,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("mac", &self.mac)
            .field("transaction_id", &self.transaction_id)
            .field("serial", &self.serial)
            .finish_non_exhaustive()
    }
}

/// SHA-256 of a SubjectPublicKeyInfo (DER).
pub fn key_hash(spki: &[u8]) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki).as_ref());
    out
}

#[derive(Debug, Default)]
pub struct RecentGrants {
    grants: VecDeque<Grant>,
}

impl RecentGrants {
    /// Remembers `grant`, forgetting the oldest past [`CAPACITY`].
    pub fn remember(&mut self, grant: Grant) {
        if self.grants.len() >= CAPACITY {
            self.grants.pop_front();
        }
        self.grants.push_back(grant);
    }

    /// The grant a request repeats: same device, message type, transactionID and key, within
    /// [`WINDOW`] of `now`. A request with the transactionID but another key is no
    /// retransmission (someone else reusing a guessable transactionID).
    pub fn find(
        &self,
        mac: Mac,
        message_type: MessageType,
        transaction_id: &str,
        key_hash: &[u8; 32],
        now: Instant,
    ) -> Option<&Grant> {
        self.grants.iter().rev().find(|g| {
            g.mac == mac
                && g.message_type == message_type
                && g.transaction_id == transaction_id
                && &g.key_hash == key_hash
                && now.saturating_duration_since(g.at) <= WINDOW
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(mac: &str, tx: &str, key: &[u8], at: Instant) -> Grant {
        Grant {
            mac: Mac::parse(mac).unwrap(),
            message_type: MessageType::PkcsReq,
            transaction_id: tx.into(),
            key_hash: key_hash(key),
            serial: format!("{tx}-serial"),
            cert: key.to_vec(),
            at,
        }
    }

    #[test]
    fn a_repeat_is_found_only_for_the_same_device_transaction_and_key_within_the_window() {
        let t0 = Instant::now();
        let mut recent = RecentGrants::default();
        recent.remember(grant("00040d112233", "tx-1", b"key-a", t0));
        let mac = Mac::parse("00040d112233").unwrap();
        let found = recent.find(
            mac,
            MessageType::PkcsReq,
            "tx-1",
            &key_hash(b"key-a"),
            t0 + WINDOW,
        );
        assert_eq!(found.map(|g| g.serial.as_str()), Some("tx-1-serial"));
        assert!(
            recent
                .find(mac, MessageType::PkcsReq, "tx-1", &key_hash(b"key-b"), t0)
                .is_none()
        );
        assert!(
            recent
                .find(mac, MessageType::PkcsReq, "tx-2", &key_hash(b"key-a"), t0)
                .is_none()
        );
        let other = Mac::parse("00040d999999").unwrap();
        assert!(
            recent
                .find(other, MessageType::PkcsReq, "tx-1", &key_hash(b"key-a"), t0)
                .is_none()
        );
        let renewal = recent.find(
            mac,
            MessageType::RenewalReq,
            "tx-1",
            &key_hash(b"key-a"),
            t0,
        );
        assert!(renewal.is_none());
        let late = t0 + WINDOW + Duration::from_secs(1);
        assert!(
            recent
                .find(mac, MessageType::PkcsReq, "tx-1", &key_hash(b"key-a"), late)
                .is_none()
        );
    }

    #[test]
    fn the_oldest_grant_is_forgotten_past_the_capacity() {
        let t0 = Instant::now();
        let mut recent = RecentGrants::default();
        for i in 0..=CAPACITY {
            recent.remember(grant("00040d112233", &format!("tx-{i}"), b"k", t0));
        }
        let mac = Mac::parse("00040d112233").unwrap();
        assert!(
            recent
                .find(mac, MessageType::PkcsReq, "tx-0", &key_hash(b"k"), t0)
                .is_none()
        );
        assert!(
            recent
                .find(mac, MessageType::PkcsReq, "tx-1", &key_hash(b"k"), t0)
                .is_some()
        );
        assert!(
            recent
                .find(
                    mac,
                    MessageType::PkcsReq,
                    &format!("tx-{CAPACITY}"),
                    &key_hash(b"k"),
                    t0
                )
                .is_some()
        );
    }
}
