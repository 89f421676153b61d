//! The device certificates the box's CA issued, by serial, and which of them are revoked.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{Store, StoreError, decode, encode, read_all};
use crate::model::{IssuedCert, Mac, Revocation, RevocationReason, RevokedCerts};

/// Key: the serial (lower-case hex); value: an [`IssuedCert`].
pub(crate) const DEVICE_CERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("device_certs");

/// Key: a device's MAC (its six octets); value: the Unix time of its latest "revoke all":
/// every certificate of the box's CA naming it issued before then is refused.
pub(crate) const REVOKED_BEFORE: TableDefinition<[u8; 6], i64> =
    TableDefinition::new("device_certs_revoked_before");

/// Which of a device's certificates to revoke.
#[derive(Debug, Clone)]
pub enum RevokeWhich {
    /// One recorded certificate, by serial.
    Serial(String),
    /// Every certificate recorded for the device, and every other one of the CA's naming it
    /// issued before now.
    All,
    /// A certificate read from its PEM and checked to be the CA's and the device's: recorded
    /// first when the box has no record of it (issued before issuance was recorded).
    Cert(IssuedCert),
}

impl Store {
    /// Records a certificate just issued; a serial already recorded is refused.
    pub fn record_issued_cert(&self, cert: &IssuedCert) -> Result<(), StoreError> {
        let tx = self.begin_uncounted_write()?;
        {
            let mut table = tx.open_table(DEVICE_CERTS)?;
            if table.get(cert.serial.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "device certificate {}",
                    cert.serial
                )));
            }
            table.insert(cert.serial.as_str(), encode(cert).as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a certificate issued outside the admin API (a SCEP enrolment) together with
    /// its audit entry, in one transaction: the log never misses a certificate that was
    /// recorded, nor names one that was not. Answers the entry's sequence number.
    ///
    /// `renewed_with`: for a renewal, the certificate that signed it (`issued_at`: the latest
    /// time it can have been issued). Checked again inside the transaction, so a revocation
    /// that lands between the renewal's check and this write refuses it with
    /// [`StoreError::SignerRevoked`] instead of leaving a certificate issued on a revoked one;
    /// one landing between the issuing of `cert` and this write refuses it with
    /// [`StoreError::RevokedMeanwhile`].
    pub fn record_issued_cert_audited(
        &self,
        cert: &IssuedCert,
        entry: super::audit::AuditEntry,
        renewed_with: Option<&IssuedCert>,
    ) -> Result<u64, StoreError> {
        let tx = self.begin_uncounted_write()?;
        let seq = record_audited_in(&tx, cert, entry, renewed_with)?;
        tx.commit()?;
        Ok(seq)
    }

    /// The certificates recorded for `mac`, newest first.
    pub fn issued_certs_of(&self, mac: Mac) -> Result<Vec<IssuedCert>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let all: Vec<IssuedCert> = read_all(&tx.open_table(DEVICE_CERTS)?, "device_certs")?;
        Ok(newest_first(all.into_iter().filter(|c| c.mac == mac)))
    }

    /// The certificates not revoked of devices in the inventory, for the expiry alarm: those
    /// of a device deleted since concern no phone here.
    pub fn issued_certs_in_inventory(&self) -> Result<Vec<IssuedCert>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let all: Vec<IssuedCert> = read_all(&tx.open_table(DEVICE_CERTS)?, "device_certs")?;
        let devices = tx.open_table(super::DEVICES)?;
        let mut out = Vec::new();
        for cert in all.into_iter().filter(|c| c.revoked.is_none()) {
            if devices.get(cert.mac.to_string().as_str())?.is_some() {
                out.push(cert);
            }
        }
        Ok(out)
    }

    /// Every revoked certificate, for the CRL and the handshake check.
    pub fn revoked_certs(&self) -> Result<RevokedCerts, StoreError> {
        let tx = self.db()?.begin_read()?;
        let all: Vec<IssuedCert> = read_all(&tx.open_table(DEVICE_CERTS)?, "device_certs")?;
        let mut issued_before = BTreeMap::new();
        for row in tx.open_table(REVOKED_BEFORE)?.iter()? {
            let (mac, at) = row?;
            issued_before.insert(Mac::from_octets(mac.value()), at.value());
        }
        Ok(RevokedCerts {
            certs: all.into_iter().filter(|c| c.revoked.is_some()).collect(),
            issued_before,
        })
    }

    /// Revokes `which` of `mac`'s certificates in one transaction and returns those on record
    /// as now stored, newest first. A certificate already revoked keeps its first revocation.
    /// Nothing changes when the serial is not one of `mac`'s.
    pub fn revoke_certs(
        &self,
        mac: Mac,
        which: RevokeWhich,
        reason: RevocationReason,
        now: i64,
    ) -> Result<Vec<IssuedCert>, StoreError> {
        // Read before the writer is taken: a device's history can be long.
        let presented = match &which {
            RevokeWhich::Serial(serial) => {
                self.presented_serial(mac, &[serial, &format!("00{serial}")])?
            }
            _ => None,
        };
        let tx = self.begin_uncounted_write()?;
        let revoked = {
            let mut table = tx.open_table(DEVICE_CERTS)?;
            let mut chosen: Vec<IssuedCert> = match which {
                RevokeWhich::Serial(serial) => {
                    // Stored as the certificate holds it: with a zero sign byte when the
                    // number's top bit is set.
                    let signed = format!("00{serial}");
                    let stored = match table.get(serial.as_str())? {
                        Some(v) => Some(v),
                        None => table.get(signed.as_str())?,
                    };
                    let found = stored
                        .map(|v| decode::<IssuedCert>("device_certs", &serial, v.value()))
                        .transpose()?;
                    match found {
                        Some(c) if c.mac == mac => vec![c],
                        Some(_) => return Err(not_issued(&serial, mac)),
                        // Not issued through the admin API (before issuance was recorded, or
                        // with the CA's key elsewhere), but presented by the device: its.
                        None => match presented {
                            Some(serial) => vec![IssuedCert {
                                serial,
                                mac,
                                not_before: None,
                                not_after: None,
                                issued_at: None,
                                revoked: None,
                            }],
                            None => return Err(not_issued(&serial, mac)),
                        },
                    }
                }
                RevokeWhich::All => {
                    // Later is more: a second "revoke all" refuses what was issued in between.
                    let mut before = tx.open_table(REVOKED_BEFORE)?;
                    let since = before
                        .get(mac.octets())?
                        .map_or(now, |t| t.value().max(now));
                    before.insert(mac.octets(), since)?;
                    let all: Vec<IssuedCert> = read_all(&table, "device_certs")?;
                    all.into_iter().filter(|c| c.mac == mac).collect()
                }
                RevokeWhich::Cert(cert) => {
                    let stored = table
                        .get(cert.serial.as_str())?
                        .map(|v| decode::<IssuedCert>("device_certs", &cert.serial, v.value()))
                        .transpose()?;
                    vec![stored.unwrap_or(cert)]
                }
            };
            for cert in &mut chosen {
                if cert.revoked.is_none() {
                    cert.revoked = Some(Revocation { at: now, reason });
                }
                table.insert(cert.serial.as_str(), encode(cert).as_slice())?;
            }
            chosen
        };
        tx.commit()?;
        Ok(newest_first(revoked.into_iter()))
    }
}

/// [`Store::record_issued_cert_audited`] inside `tx`: the checks, the record and the audit
/// entry, for whatever else the transaction changes with them (an approved SCEP enrolment).
pub(super) fn record_audited_in(
    tx: &redb::WriteTransaction,
    cert: &IssuedCert,
    mut entry: super::audit::AuditEntry,
    renewed_with: Option<&IssuedCert>,
) -> Result<u64, StoreError> {
    let mut table = tx.open_table(DEVICE_CERTS)?;
    if let Some(signer) = renewed_with {
        let revoked = table
            .get(signer.serial.as_str())?
            .map(|v| decode::<IssuedCert>("device_certs", &signer.serial, v.value()))
            .transpose()?
            .is_some_and(|c| c.revoked.is_some());
        let all_revoked = tx
            .open_table(REVOKED_BEFORE)?
            .get(signer.mac.octets())?
            .is_some_and(|at| signer.issued_at.is_none_or(|t| t < at.value()));
        if revoked || all_revoked {
            return Err(StoreError::SignerRevoked {
                serial: signer.serial.clone(),
                mac: signer.mac,
            });
        }
    }
    // A "revoke all" of the device that landed after this certificate was issued and
    // before it is recorded revokes it too (the handshake refuses it by its date), so it
    // must not be recorded as valid: it would count as the device's certificate and
    // refuse the phone's next enrolment, while the CRL would not list it.
    let revoked_meanwhile = tx
        .open_table(REVOKED_BEFORE)?
        .get(cert.mac.octets())?
        .is_some_and(|at| cert.issued_at.is_some_and(|t| t < at.value()));
    if revoked_meanwhile {
        return Err(StoreError::RevokedMeanwhile {
            serial: cert.serial.clone(),
            mac: cert.mac,
        });
    }
    if table.get(cert.serial.as_str())?.is_some() {
        return Err(StoreError::Conflict(format!(
            "device certificate {}",
            cert.serial
        )));
    }
    table.insert(cert.serial.as_str(), encode(cert).as_slice())?;
    let mut audit = tx.open_table(super::AUDIT)?;
    let seq = audit.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
    entry.seq = seq;
    audit.insert(seq, encode(&entry).as_slice())?;
    Ok(seq)
}

fn not_issued(serial: &str, mac: Mac) -> StoreError {
    StoreError::NotFound(format!(
        "a certificate with serial {serial} issued to or presented by {mac}"
    ))
}

fn newest_first(certs: impl Iterator<Item = IssuedCert>) -> Vec<IssuedCert> {
    let mut out: Vec<IssuedCert> = certs.collect();
    out.sort_by(|a, b| (b.not_before, &b.serial).cmp(&(a.not_before, &a.serial)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        (dir, store)
    }

    fn cert(serial: &str, mac: Mac, not_before: i64) -> IssuedCert {
        IssuedCert {
            serial: serial.into(),
            mac,
            not_before: Some(not_before),
            not_after: Some(not_before + 86_400),
            issued_at: Some(not_before),
            revoked: None,
        }
    }

    const A: Mac = Mac::from_octets([2, 0, 0, 0, 0, 1]);
    const B: Mac = Mac::from_octets([2, 0, 0, 0, 0, 2]);

    /// A certificate and its audit entry are written together: a serial already recorded
    /// leaves neither a second record nor an entry naming it.
    #[test]
    fn an_enrolled_certificate_is_recorded_with_its_audit_entry_or_not_at_all() {
        let (_dir, store) = store();
        let mac = Mac::from_octets([0, 4, 13, 1, 2, 3]);
        let entry = |summary: &str| crate::store::AuditEntry {
            seq: 0,
            time: 1,
            who: "scep".into(),
            source: "10.0.0.7".into(),
            method: "POST".into(),
            resource: format!("/scep/{mac}"),
            status: 200,
            summary: summary.into(),
            changes: serde_json::Value::Null,
        };
        let seq = store
            .record_issued_cert_audited(&cert("0a", mac, 100), entry("first"), None)
            .unwrap();
        assert!(matches!(
            store.record_issued_cert_audited(&cert("0a", mac, 200), entry("again"), None),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(store.issued_certs_of(mac).unwrap().len(), 1);
        let log = store.list_audit(10, |_| true).unwrap();
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!((log[0].seq, log[0].summary.as_str()), (seq, "first"));
    }

    /// The audit entry a SCEP grant for device `A` is recorded with.
    fn scep_entry(summary: &str) -> crate::store::AuditEntry {
        crate::store::AuditEntry {
            seq: 0,
            time: 1,
            who: "scep".into(),
            source: "10.0.0.7".into(),
            method: "POST".into(),
            resource: format!("/scep/{A}"),
            status: 200,
            summary: summary.into(),
            changes: serde_json::Value::Null,
        }
    }

    /// A renewal checked just before a revocation and recorded just after is refused: the
    /// signer's revocation is read again in the transaction that records the new certificate,
    /// whether the signer was revoked by serial, or with all of the device's, recorded or not.
    #[test]
    fn a_renewal_whose_signer_was_revoked_meanwhile_is_not_recorded() {
        let (_dir, store) = store();
        let entry = scep_entry("renewal");
        let signer = IssuedCert {
            issued_at: Some(150),
            ..cert("0a", A, 100)
        };
        store.record_issued_cert(&signer).unwrap();
        store
            .revoke_certs(
                A,
                RevokeWhich::Serial("0a".into()),
                RevocationReason::Superseded,
                500,
            )
            .unwrap();
        assert!(matches!(
            store.record_issued_cert_audited(&cert("0b", A, 600), entry.clone(), Some(&signer)),
            Err(StoreError::SignerRevoked { .. })
        ));
        // A signer the box has no record of, refused by a later "revoke all" of its device.
        let unrecorded = IssuedCert {
            issued_at: Some(150),
            ..cert("1a", B, 100)
        };
        let renewed = cert("1b", B, 600);
        store
            .record_issued_cert_audited(&renewed, entry.clone(), Some(&unrecorded))
            .unwrap();
        store
            .revoke_certs(B, RevokeWhich::All, RevocationReason::Superseded, 700)
            .unwrap();
        assert!(matches!(
            store.record_issued_cert_audited(&cert("1c", B, 800), entry, Some(&unrecorded)),
            Err(StoreError::SignerRevoked { .. })
        ));
        assert_eq!(store.issued_certs_of(A).unwrap().len(), 1);
        assert_eq!(store.issued_certs_of(B).unwrap().len(), 1);
        assert_eq!(store.list_audit(10, |_| true).unwrap().len(), 1);
    }

    /// A certificate issued before a "revoke all" of its device and recorded after it is not
    /// recorded: it is revoked by its date, and on record it would count as the device's valid
    /// certificate. One issued after the revocation is recorded.
    #[test]
    fn a_certificate_issued_before_a_revoke_all_that_landed_meanwhile_is_not_recorded() {
        let (_dir, store) = store();
        let entry = scep_entry("enrolment");
        store
            .revoke_certs(A, RevokeWhich::All, RevocationReason::Superseded, 700)
            .unwrap();
        assert!(matches!(
            store.record_issued_cert_audited(&cert("2a", A, 650), entry.clone(), None),
            Err(StoreError::RevokedMeanwhile { .. })
        ));
        assert!(store.issued_certs_of(A).unwrap().is_empty());
        assert!(store.list_audit(10, |_| true).unwrap().is_empty());
        store
            .record_issued_cert_audited(&cert("2b", A, 800), entry, None)
            .unwrap();
        assert_eq!(store.issued_certs_of(A).unwrap().len(), 1);
    }

    #[test]
    fn revoking_one_all_or_a_pem_certificate() {
        let (_d, s) = store();
        s.record_issued_cert(&cert("0a", A, 100)).unwrap();
        s.record_issued_cert(&cert("0b", A, 200)).unwrap();
        s.record_issued_cert(&cert("0c", B, 300)).unwrap();
        assert!(matches!(
            s.record_issued_cert(&cert("0a", B, 400)),
            Err(StoreError::Conflict(_))
        ));
        let serials = |v: Vec<IssuedCert>| v.into_iter().map(|c| c.serial).collect::<Vec<_>>();
        assert_eq!(serials(s.issued_certs_of(A).unwrap()), ["0b", "0a"]);

        // Another device's serial, or one never issued: nothing changes.
        for serial in ["0c", "ff"] {
            let r = s.revoke_certs(A, RevokeWhich::Serial(serial.into()), Default::default(), 1);
            assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
        }
        assert_eq!(s.revoked_certs().unwrap(), RevokedCerts::default());

        let one = s
            .revoke_certs(
                A,
                RevokeWhich::Serial("0a".into()),
                RevocationReason::KeyCompromise,
                500,
            )
            .unwrap();
        assert_eq!(
            one[0].revoked,
            Some(Revocation {
                at: 500,
                reason: RevocationReason::KeyCompromise
            })
        );
        // All of A's: the first revocation of 0a stays as it was.
        let all = s
            .revoke_certs(A, RevokeWhich::All, RevocationReason::Superseded, 600)
            .unwrap();
        assert_eq!(serials(all.clone()), ["0b", "0a"]);
        assert_eq!(all[1].revoked.as_ref().unwrap().at, 500);
        assert_eq!(all[0].revoked.as_ref().unwrap().at, 600);
        assert_eq!(serials(s.revoked_certs().unwrap().certs), ["0a", "0b"]);

        // A device with no certificate on record: nothing listed, yet whatever the CA issued
        // it before now is refused; a later "revoke all" moves that on, an earlier one not.
        let unrecorded = Mac::from_octets([2, 0, 0, 0, 0, 9]);
        let none = s
            .revoke_certs(unrecorded, RevokeWhich::All, Default::default(), 650)
            .unwrap();
        assert!(none.is_empty());
        s.revoke_certs(unrecorded, RevokeWhich::All, Default::default(), 640)
            .unwrap();
        assert_eq!(
            s.revoked_certs().unwrap().issued_before,
            BTreeMap::from([(A, 600), (unrecorded, 650)])
        );

        // A serial whose top bit is set is stored with its sign byte; found without it too.
        s.record_issued_cert(&cert("0080ff", A, 800)).unwrap();
        let signed = s
            .revoke_certs(
                A,
                RevokeWhich::Serial("80ff".into()),
                Default::default(),
                900,
            )
            .unwrap();
        assert_eq!(serials(signed), ["0080ff"]);

        // An unrecorded certificate given by its PEM is recorded as revoked.
        let mut old = cert("0d", B, 50);
        old.issued_at = None;
        s.revoke_certs(B, RevokeWhich::Cert(old), Default::default(), 700)
            .unwrap();
        assert_eq!(serials(s.issued_certs_of(B).unwrap()), ["0c", "0d"]);
        assert_eq!(
            serials(s.revoked_certs().unwrap().certs),
            ["0080ff", "0a", "0b", "0d"]
        );
    }
}
