//! DNS records added through the admin API, keyed by a number that is never reused.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError, decode, encode};
use crate::dns::RecordSpec;

pub(crate) const DNS_RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("dns_records");

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
        let tx = self.db.begin_read()?;
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
            let id = table.last()?.map_or(1, |(k, _)| k.value() + 1);
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
