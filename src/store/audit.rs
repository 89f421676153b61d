//! The audit log: every change made through the admin API and every refused attempt, in order.

use std::ops::Bound;

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{AUDIT, Store, StoreError, decode, encode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    #[serde(default)]
    pub seq: u64,
    pub time: i64,
    /// The caller: `admin` for the administrator's token, `anonymous` for a missing or wrong one.
    pub who: String,
    /// The caller's IP address.
    pub source: String,
    pub method: String,
    pub resource: String,
    pub status: u16,
    pub summary: String,
    /// Only the fields that changed: `{"field": {"before": …, "after": …}}`.
    #[serde(default)]
    pub changes: serde_json::Value,
}

impl Store {
    /// Appends an entry (durably) and returns its sequence number.
    pub fn append_audit(&self, mut entry: AuditEntry) -> Result<u64, StoreError> {
        // Uncounted: no file a phone gets depends on the log, so an entry must not make the
        // phone path read and render anew.
        let tx = self.begin_uncounted_write()?;
        let seq = {
            let mut table = tx.open_table(AUDIT)?;
            let seq = table.last()?.map(|(k, _)| k.value() + 1).unwrap_or(1);
            entry.seq = seq;
            table.insert(seq, encode(&entry).as_slice())?;
            seq
        };
        tx.commit()?;
        Ok(seq)
    }

    /// Writes the final form of the entry `seq` (durably), replacing what
    /// [`Store::append_audit`] wrote when the request began.
    pub fn complete_audit(&self, seq: u64, mut entry: AuditEntry) -> Result<(), StoreError> {
        let tx = self.begin_uncounted_write()?;
        {
            let mut table = tx.open_table(AUDIT)?;
            entry.seq = seq;
            table.insert(seq, encode(&entry).as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Entries from newest to oldest that pass `keep`, at most `limit`.
    pub fn list_audit(
        &self,
        limit: usize,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.list_audit_before(None, limit, keep)
    }

    /// As [`Store::list_audit`], from the entry before sequence number `before` on (`None`:
    /// from the newest). The next page starts before the last entry of this one: unlike an
    /// offset or a time, the sequence number neither shifts as entries are appended nor is
    /// shared by two entries, so paging sees every entry once.
    pub fn list_audit_before(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&AuditEntry) -> bool,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(AUDIT)?;
        let mut out = Vec::new();
        let end = before.map_or(Bound::Unbounded, Bound::Excluded);
        for row in table.range((Bound::Unbounded, end))?.rev() {
            if out.len() >= limit {
                break;
            }
            let (k, v) = row?;
            let entry: AuditEntry = decode("audit", &k.value().to_string(), v.value())?;
            if keep(&entry) {
                out.push(entry);
            }
        }
        Ok(out)
    }
}
