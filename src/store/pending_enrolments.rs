//! SCEP enrolments held for an operator's approval, one per device.
//!
//! Every change is made against the record its caller read (compare and swap): the phone's
//! route and the admin API both change these records, and a request replaced by the phone
//! while an operator approved the old one must not be approved in its place, nor an approved
//! one overwritten by a late replacement.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{DEVICES, Store, StoreError, decode, encode, read_all};
use crate::model::{IssuedCert, Mac, PendingEnrolment, PendingState};

/// Key: the device's MAC (`Mac` display form); value: a [`PendingEnrolment`].
pub(crate) const PENDING_ENROLMENTS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("scep_pending_enrolments");

const TABLE: &str = "scep_pending_enrolments";

fn changed_meanwhile(mac: Mac) -> StoreError {
    StoreError::Superseded(format!(
        "the SCEP enrolment request of {mac} changed meanwhile (replaced, approved or rejected): list them again"
    ))
}

impl Store {
    /// The request held for `mac`, whatever its state.
    pub fn pending_enrolment(&self, mac: Mac) -> Result<Option<PendingEnrolment>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(PENDING_ENROLMENTS)?;
        let key = mac.to_string();
        let found = table.get(key.as_str())?;
        found.map(|v| decode(TABLE, &key, v.value())).transpose()
    }

    /// Every held request, whatever its state, in MAC order. One per device at most, so as many
    /// as the inventory at worst.
    pub fn pending_enrolments(&self) -> Result<Vec<PendingEnrolment>, StoreError> {
        let tx = self.db()?.begin_read()?;
        read_all(&tx.open_table(PENDING_ENROLMENTS)?, TABLE)
    }

    /// Holds `request` for its device in place of `replacing`, the record the caller read
    /// (`None`: there was none). Refused with [`StoreError::Superseded`] when the stored record
    /// is no longer that one, and with [`StoreError::NotFound`] when the device is no longer in
    /// the inventory: deleted since the route checked it, its request would otherwise outlive
    /// it (deleting a device forgets its request in the transaction that removes it).
    pub fn hold_enrolment(
        &self,
        request: &PendingEnrolment,
        replacing: Option<&PendingEnrolment>,
    ) -> Result<(), StoreError> {
        let tx = self.begin_uncounted_write()?;
        {
            let key = request.mac.to_string();
            if tx.open_table(DEVICES)?.get(key.as_str())?.is_none() {
                return Err(StoreError::NotFound(format!(
                    "device {} (deleted from the inventory meanwhile)",
                    request.mac
                )));
            }
            let mut table = tx.open_table(PENDING_ENROLMENTS)?;
            let current: Option<PendingEnrolment> = table
                .get(key.as_str())?
                .map(|v| decode(TABLE, &key, v.value()))
                .transpose()?;
            if current.as_ref() != replacing {
                return Err(changed_meanwhile(request.mac));
            }
            table.insert(key.as_str(), encode(request).as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Approves `held` (as the caller read it, still pending): records `cert`, issued for its
    /// key, with `entry` as [`Store::record_issued_cert_audited`] does, and keeps the
    /// certificate (`cert_der`) in the request for the phone's next poll, all in one
    /// transaction. Answers the audit entry's sequence number.
    pub fn approve_enrolment(
        &self,
        held: &PendingEnrolment,
        cert: &IssuedCert,
        cert_der: &[u8],
        entry: super::audit::AuditEntry,
        by: &str,
    ) -> Result<u64, StoreError> {
        let tx = self.begin_uncounted_write()?;
        let seq = {
            let mut table = tx.open_table(PENDING_ENROLMENTS)?;
            let key = held.mac.to_string();
            let current: Option<PendingEnrolment> = table
                .get(key.as_str())?
                .map(|v| decode(TABLE, &key, v.value()))
                .transpose()?;
            if current.as_ref() != Some(held) || held.state != PendingState::Pending {
                return Err(changed_meanwhile(held.mac));
            }
            let at = entry.time;
            let seq = super::device_certs::record_audited_in(&tx, cert, entry, None)?;
            let approved = PendingEnrolment {
                state: PendingState::Approved {
                    by: by.to_string(),
                    at,
                    serial: cert.serial.clone(),
                    cert: cert_der.to_vec(),
                },
                ..held.clone()
            };
            table.insert(key.as_str(), encode(&approved).as_slice())?;
            seq
        };
        tx.commit()?;
        Ok(seq)
    }

    /// Rejects `held` (as the caller read it, still pending): its polls are answered FAILURE
    /// from now on. Answers the record as now stored.
    pub fn reject_enrolment(
        &self,
        held: &PendingEnrolment,
        by: &str,
        at: i64,
    ) -> Result<PendingEnrolment, StoreError> {
        let tx = self.begin_uncounted_write()?;
        let rejected = {
            let mut table = tx.open_table(PENDING_ENROLMENTS)?;
            let key = held.mac.to_string();
            let current: Option<PendingEnrolment> = table
                .get(key.as_str())?
                .map(|v| decode(TABLE, &key, v.value()))
                .transpose()?;
            if current.as_ref() != Some(held) || held.state != PendingState::Pending {
                return Err(changed_meanwhile(held.mac));
            }
            let rejected = PendingEnrolment {
                state: PendingState::Rejected {
                    by: by.to_string(),
                    at,
                },
                ..held.clone()
            };
            table.insert(key.as_str(), encode(&rejected).as_slice())?;
            rejected
        };
        tx.commit()?;
        Ok(rejected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac::from_octets([0, 4, 13, 1, 2, 3]);

    fn held(tx: &str) -> PendingEnrolment {
        PendingEnrolment {
            mac: A,
            transaction_id: tx.into(),
            spki: vec![0x30, 0x00],
            key_sha256: format!("key-{tx}"),
            key: "RSA 2048".into(),
            signer_key_sha256: "signer".into(),
            source: "10.0.0.7".into(),
            method: "POST".into(),
            requested_at: 100,
            state: PendingState::Pending,
        }
    }

    fn entry() -> crate::store::AuditEntry {
        crate::store::AuditEntry {
            seq: 0,
            time: 500,
            who: "scep".into(),
            source: "10.0.0.7".into(),
            method: "POST".into(),
            resource: format!("/scep/{A}"),
            status: 200,
            summary: "approved".into(),
            changes: serde_json::Value::Null,
        }
    }

    fn cert(serial: &str) -> IssuedCert {
        IssuedCert {
            serial: serial.into(),
            mac: A,
            not_before: Some(500),
            not_after: Some(900),
            issued_at: Some(500),
            revoked: None,
        }
    }

    /// A store with device `A` in the inventory.
    fn store_with_a(path: &std::path::Path) -> Store {
        let store = Store::open(path).unwrap();
        store.place_device(crate::model::Device::new(A));
        store
    }

    /// A request is held, found by its device, survives the store being opened again, and is
    /// gone with its device.
    #[test]
    fn a_held_request_is_kept_found_and_removed_with_its_device() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        store_with_a(&path)
            .hold_enrolment(&held("tx-1"), None)
            .unwrap();
        let store = Store::open(&path).unwrap();
        assert_eq!(store.pending_enrolment(A).unwrap(), Some(held("tx-1")));
        store.delete_device(A).unwrap();
        assert!(store.pending_enrolments().unwrap().is_empty());
    }

    /// A request for a device the inventory no longer has (deleted after the route checked
    /// it) is refused, naming the device, and nothing is stored.
    #[test]
    fn a_request_for_a_device_deleted_meanwhile_is_not_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        match store.hold_enrolment(&held("tx-1"), None) {
            Err(e @ StoreError::NotFound(_)) => assert!(e.to_string().contains(&A.to_string())),
            other => panic!("{other:?}"),
        }
        assert!(store.pending_enrolments().unwrap().is_empty());
    }

    /// A database of this schema written before held requests were kept (no such table)
    /// opens without a migration, gains the table, and holds requests from then on.
    #[test]
    fn a_database_written_before_the_table_opens_and_gains_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let db = redb::Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(super::super::META)
                .unwrap()
                .insert("schema_version", super::super::SCHEMA_VERSION)
                .unwrap();
            tx.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.schema_version().unwrap(),
            super::super::SCHEMA_VERSION
        );
        assert!(store.pending_enrolments().unwrap().is_empty());
        store.place_device(crate::model::Device::new(A));
        store.hold_enrolment(&held("tx-1"), None).unwrap();
        assert_eq!(store.pending_enrolments().unwrap().len(), 1);
    }

    /// Each change is made against the record read: a replacement, an approval or a rejection
    /// of a record changed meanwhile is refused and leaves the stored one, and the certificate
    /// table and the audit log, as they were.
    #[test]
    fn changes_to_a_record_changed_meanwhile_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_a(&dir.path().join("db.redb"));
        let (first, second) = (held("tx-1"), held("tx-2"));
        store.hold_enrolment(&first, None).unwrap();
        assert!(matches!(
            store.hold_enrolment(&second, None),
            Err(StoreError::Superseded(_))
        ));
        store.hold_enrolment(&second, Some(&first)).unwrap();
        assert!(matches!(
            store.approve_enrolment(&first, &cert("0a"), b"der", entry(), "admin"),
            Err(StoreError::Superseded(_))
        ));
        assert!(matches!(
            store.reject_enrolment(&first, "admin", 600),
            Err(StoreError::Superseded(_))
        ));
        assert!(store.issued_certs_of(A).unwrap().is_empty());
        assert!(store.list_audit(10, |_| true).unwrap().is_empty());

        store
            .approve_enrolment(&second, &cert("0b"), b"der", entry(), "admin")
            .unwrap();
        let stored = store.pending_enrolment(A).unwrap().unwrap();
        assert_eq!(
            stored.state,
            PendingState::Approved {
                by: "admin".into(),
                at: 500,
                serial: "0b".into(),
                cert: b"der".to_vec()
            }
        );
        assert_eq!(store.issued_certs_of(A).unwrap().len(), 1);
        assert_eq!(store.list_audit(10, |_| true).unwrap().len(), 1);
        // Decided once: neither approved again nor rejected.
        assert!(store.reject_enrolment(&stored, "admin", 700).is_err());
        assert!(
            store
                .approve_enrolment(&stored, &cert("0c"), b"der", entry(), "admin")
                .is_err()
        );
        assert_eq!(store.issued_certs_of(A).unwrap().len(), 1);
    }
}
