//! Alarms, deduplicated by kind and source.

use redb::{ReadableDatabase, ReadableTable};

use super::{ALARMS, Store, StoreError, decode, encode, read_all};
use crate::model::{Alarm, AlarmKind, Severity};

/// One occurrence to be folded into the stored alarm of the same kind and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmEvent {
    pub kind: AlarmKind,
    /// Usually `kind.severity()`; the latest occurrence's severity is kept (a certificate
    /// expiry alarm turns critical as the date comes closer).
    pub severity: Severity,
    pub source: String,
    pub message: String,
    pub at: i64,
}

fn key(kind: AlarmKind, source: &str) -> String {
    format!("{}|{}", kind.as_str(), source)
}

impl Store {
    pub fn list_alarms(&self) -> Result<Vec<Alarm>, StoreError> {
        let tx = self.db.begin_read()?;
        let mut alarms: Vec<Alarm> = read_all(&tx.open_table(ALARMS)?, "alarms")?;
        alarms.sort_by_key(|a| std::cmp::Reverse(a.last));
        Ok(alarms)
    }

    /// Clears (removes) one alarm; returns it, or `None` when there was none.
    pub fn clear_alarm(&self, kind: AlarmKind, source: &str) -> Result<Option<Alarm>, StoreError> {
        let tx = self.begin_write()?;
        let k = key(kind, source);
        let removed = {
            let mut table = tx.open_table(ALARMS)?;
            let old = table.remove(k.as_str())?;
            old.map(|v| decode::<Alarm>("alarms", &k, v.value()))
                .transpose()?
        };
        tx.commit()?;
        Ok(removed)
    }

    pub(super) fn raise_alarms(
        tx: &redb::WriteTransaction,
        events: &[AlarmEvent],
    ) -> Result<(), StoreError> {
        let mut table = tx.open_table(ALARMS)?;
        for ev in events {
            let k = key(ev.kind, &ev.source);
            let existing: Option<Alarm> = match table.get(k.as_str())? {
                Some(v) => Some(decode("alarms", &k, v.value())?),
                None => None,
            };
            let alarm = match existing {
                Some(mut a) => {
                    a.count += 1;
                    a.last = a.last.max(ev.at);
                    a.severity = ev.severity;
                    a.message.clone_from(&ev.message);
                    a
                }
                None => Alarm {
                    kind: ev.kind,
                    severity: ev.severity,
                    source: ev.source.clone(),
                    message: ev.message.clone(),
                    count: 1,
                    first: ev.at,
                    last: ev.at,
                },
            };
            table.insert(k.as_str(), encode(&alarm).as_slice())?;
        }
        Ok(())
    }
}
