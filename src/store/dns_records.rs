//! DNS records added through the admin API, keyed by a number that is never reused.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{META, Store, StoreError, decode, encode};
use crate::dns::RecordSpec;

pub(crate) const DNS_RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("dns_records");

/// The last record number handed out; numbers are never reused, even after a delete.
const LAST_DNS_RECORD_ID: &str = "last_dns_record_id";

/// A stored record: the operator's fields plus its id and creation time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecordEntry {
    pub id: u64,
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub value: String,
    pub ttl: u32,
    pub created: i64,
}

impl DnsRecordEntry {
    pub fn spec(&self) -> RecordSpec {
        RecordSpec {
            name: self.name.clone(),
            rtype: self.rtype.clone(),
            value: self.value.clone(),
            ttl: self.ttl,
        }
    }
}

impl Store {
    pub fn list_dns_records(&self) -> Result<Vec<DnsRecordEntry>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(DNS_RECORDS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push(decode("dns_records", &k.value().to_string(), v.value())?);
        }
        Ok(out)
    }

    /// Stores a validated record; durable when this returns.
    pub fn add_dns_record(
        &self,
        spec: &RecordSpec,
        now: i64,
    ) -> Result<DnsRecordEntry, StoreError> {
        let tx = self.begin_write()?;
        let entry = {
            let mut table = tx.open_table(DNS_RECORDS)?;
            let mut meta = tx.open_table(META)?;
            // Past the last number handed out, even when that record was deleted since (and
            // past every stored one: databases written before the counter was kept).
            let last_given = meta.get(LAST_DNS_RECORD_ID)?.map_or(0, |v| v.value());
            let last_stored = table.last()?.map_or(0, |(k, _)| k.value());
            let id = last_given.max(last_stored) + 1;
            meta.insert(LAST_DNS_RECORD_ID, id)?;
            let entry = DnsRecordEntry {
                id,
                name: spec.name.trim().to_string(),
                rtype: spec.rtype.trim().to_ascii_uppercase(),
                value: spec.value.trim().to_string(),
                ttl: spec.ttl,
                created: now,
            };
            table.insert(id, encode(&entry).as_slice())?;
            entry
        };
        tx.commit()?;
        Ok(entry)
    }

    pub fn delete_dns_record(&self, id: u64) -> Result<DnsRecordEntry, StoreError> {
        let tx = self.begin_write()?;
        let removed = {
            let mut table = tx.open_table(DNS_RECORDS)?;
            let removed = table.remove(id)?;
            match removed {
                Some(v) => decode::<DnsRecordEntry>("dns_records", &id.to_string(), v.value())?,
                None => return Err(StoreError::NotFound(format!("DNS record {id}"))),
            }
        };
        tx.commit()?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that retries a DELETE of a record (its first answer was lost) must not remove
    /// a record added since under the same number.
    #[test]
    fn a_deleted_records_number_is_not_given_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let spec = |value: &str| RecordSpec {
            name: "x.example.lan".into(),
            rtype: "A".into(),
            value: value.into(),
            ttl: 60,
        };
        let first = store.add_dns_record(&spec("10.0.0.1"), 1).unwrap();
        let second = store.add_dns_record(&spec("10.0.0.2"), 2).unwrap();
        store.delete_dns_record(second.id).unwrap();
        let third = store.add_dns_record(&spec("10.0.0.3"), 3).unwrap();
        assert!(third.id > second.id, "{} after {}", third.id, second.id);
        assert!(matches!(
            store.delete_dns_record(second.id),
            Err(StoreError::NotFound(_))
        ));
        let left: Vec<u64> = store
            .list_dns_records()
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(left, [first.id, third.id]);
    }
}
