//! Check-in history and retention. Every check-in is appended (in the recorder's batch) to a
//! table keyed by a rising sequence number, so the oldest entries are at the front: pruning by
//! age, for check-ins as for the audit log, removes from the front until an entry is young
//! enough.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{AUDIT, Store, StoreError, decode, encode};
use crate::model::{CheckIn, Mac};

/// Key: sequence number; value: a [`CheckinRecord`].
pub(crate) const CHECKINS: TableDefinition<u64, &[u8]> = TableDefinition::new("checkins");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinRecord {
    pub mac: Mac,
    #[serde(flatten)]
    pub checkin: CheckIn,
}

/// Entries removed at most per transaction, so a large backlog does not hold the writer long.
const PRUNE_CHUNK: usize = 10_000;

impl Store {
    /// Appends check-ins inside the caller's transaction.
    pub(crate) fn append_checkins(
        tx: &WriteTransaction,
        records: &[(Mac, &CheckIn)],
    ) -> Result<(), StoreError> {
        let mut table = tx.open_table(CHECKINS)?;
        let first = table.last()?.map_or(1, |(k, _)| k.value() + 1);
        for (seq, (mac, checkin)) in (first..).zip(records) {
            let record = CheckinRecord {
                mac: *mac,
                checkin: (*checkin).clone(),
            };
            table.insert(seq, encode(&record).as_slice())?;
        }
        Ok(())
    }

    /// A device's check-ins, newest first, at most `limit`.
    pub fn checkins_of(&self, mac: Mac, limit: usize) -> Result<Vec<CheckIn>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(CHECKINS)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = row?;
            let r: CheckinRecord = decode("checkins", &k.value().to_string(), v.value())?;
            if r.mac == mac {
                out.push(r.checkin);
            }
        }
        Ok(out)
    }

    /// Removes check-ins seen before `cutoff`; returns how many.
    pub fn prune_checkins(&self, cutoff: i64) -> Result<u64, StoreError> {
        self.prune(CHECKINS, "checkins", |v| {
            decode::<CheckinRecord>("checkins", "", v).map(|r| r.checkin.last_seen < cutoff)
        })
    }

    /// Removes audit entries written before `cutoff`; returns how many.
    pub fn prune_audit(&self, cutoff: i64) -> Result<u64, StoreError> {
        self.prune(AUDIT, "audit", |v| {
            decode::<super::AuditEntry>("audit", "", v).map(|e| e.time < cutoff)
        })
    }

    fn prune(
        &self,
        table_def: TableDefinition<u64, &[u8]>,
        name: &str,
        old: impl Fn(&[u8]) -> Result<bool, StoreError>,
    ) -> Result<u64, StoreError> {
        let mut removed = 0u64;
        loop {
            let tx = self.begin_uncounted_write()?;
            let n = {
                let mut table = tx.open_table(table_def)?;
                let mut doomed = Vec::new();
                for row in table.iter()? {
                    let (k, v) = row?;
                    if doomed.len() >= PRUNE_CHUNK || !old(v.value())? {
                        break;
                    }
                    doomed.push(k.value());
                }
                for k in &doomed {
                    table.remove(k)?;
                }
                doomed.len()
            };
            tx.commit()?;
            removed += n as u64;
            if n < PRUNE_CHUNK {
                tracing::debug!(table = name, removed, "pruned");
                return Ok(removed);
            }
        }
    }
}
