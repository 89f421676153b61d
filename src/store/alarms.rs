//! Alarms, deduplicated by kind and source.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

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

/// Distinct alarms kept before peers' new sources are counted together. A refusal's source
/// comes from the network (a peer's address): beyond this, an occurrence from a source not yet
/// alarmed is counted in its kind's alarm from [`OTHER_SOURCES`], so the table stays bounded
/// whatever the peers do. The box's own alarms ([`AlarmKind::source_from_peers`] false) are
/// always kept under their source: a full table of refusals must not hide a pin left without
/// its release, nor let the pin check clear it as stale.
pub(super) const MAX_ALARMS: u64 = 10_000;
pub(super) const OTHER_SOURCES: &str = "other sources";

fn key(kind: AlarmKind, source: &str) -> String {
    format!("{}|{}", kind.as_str(), source)
}

impl Store {
    pub fn list_alarms(&self) -> Result<Vec<Alarm>, StoreError> {
        let tx = self.db()?.begin_read()?;
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
            let read = |table: &redb::Table<&str, &[u8]>, k: &str| -> Result<_, StoreError> {
                table
                    .get(k)?
                    .map(|v| decode::<Alarm>("alarms", k, v.value()))
                    .transpose()
            };
            let mut k = key(ev.kind, &ev.source);
            let mut existing = read(&table, &k)?;
            let overflow;
            let ev = if existing.is_none()
                && ev.kind.source_from_peers()
                && table.len()? >= MAX_ALARMS
            {
                k = key(ev.kind, OTHER_SOURCES);
                existing = read(&table, &k)?;
                overflow = AlarmEvent {
                    source: OTHER_SOURCES.into(),
                    message: format!("{}: {}", ev.source, ev.message),
                    ..ev.clone()
                };
                &overflow
            } else {
                ev
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(source: String, at: i64) -> AlarmEvent {
        AlarmEvent {
            kind: AlarmKind::PathTraversal,
            severity: AlarmKind::PathTraversal.severity(),
            source,
            message: "refused path".into(),
            at,
        }
    }

    /// A peer that changes its address for every request (IPv6 gives it 2^64) must not grow
    /// the alarm table, which every alarm listing and metrics scrape reads whole.
    #[test]
    fn new_sources_beyond_the_bound_are_counted_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let tx = store.db().unwrap().begin_write().unwrap();
        let events: Vec<AlarmEvent> = (0..MAX_ALARMS + 5)
            .map(|i| refusal(format!("fd00::{i:x}"), 1_000 + i as i64))
            .collect();
        Store::raise_alarms(&tx, &events).unwrap();
        tx.commit().unwrap();
        let alarms = store.list_alarms().unwrap();
        assert_eq!(alarms.len() as u64, MAX_ALARMS + 1);
        let other = &alarms[0];
        assert_eq!(
            (other.kind, other.source.as_str(), other.count),
            (AlarmKind::PathTraversal, OTHER_SOURCES, 5)
        );
        assert!(other.message.contains("fd00::"), "{}", other.message);
        // A source already alarmed is still counted under its own name.
        let tx = store.db().unwrap().begin_write().unwrap();
        Store::raise_alarms(&tx, &[refusal("fd00::0".into(), 99_999)]).unwrap();
        tx.commit().unwrap();
        let alarms = store.list_alarms().unwrap();
        assert_eq!(alarms.len() as u64, MAX_ALARMS + 1);
        assert_eq!((alarms[0].source.as_str(), alarms[0].count), ("fd00::0", 2));
        // Clearing makes room for a new source again (the bound counts every alarm kept).
        for source in ["fd00::1", "fd00::2"] {
            store
                .clear_alarm(AlarmKind::PathTraversal, source)
                .unwrap()
                .unwrap();
        }
        let tx = store.db().unwrap().begin_write().unwrap();
        Store::raise_alarms(&tx, &[refusal("fd01::1".into(), 100_000)]).unwrap();
        tx.commit().unwrap();
        assert_eq!(store.list_alarms().unwrap()[0].source, "fd01::1");
    }

    /// With the table full of peers' refusals, an alarm of the box's own is still kept under
    /// its source, where the code that raised it finds it to clear it.
    #[test]
    fn the_boxs_own_alarms_are_kept_when_peers_filled_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let tx = store.db().unwrap().begin_write().unwrap();
        let events: Vec<AlarmEvent> = (0..MAX_ALARMS)
            .map(|i| refusal(format!("fd00::{i:x}"), 1_000 + i as i64))
            .collect();
        Store::raise_alarms(&tx, &events).unwrap();
        let pin = AlarmEvent {
            kind: AlarmKind::FirmwarePinOrphaned,
            severity: Severity::Warning,
            source: "global J179=4.1.3.0.6".into(),
            message: "kept".into(),
            at: 50_000,
        };
        Store::raise_alarms(&tx, &[pin.clone(), pin]).unwrap();
        tx.commit().unwrap();
        let alarms = store.list_alarms().unwrap();
        assert_eq!(alarms.len() as u64, MAX_ALARMS + 1);
        assert_eq!(
            (alarms[0].kind, alarms[0].source.as_str(), alarms[0].count),
            (AlarmKind::FirmwarePinOrphaned, "global J179=4.1.3.0.6", 2)
        );
        assert!(
            store
                .clear_alarm(AlarmKind::FirmwarePinOrphaned, "global J179=4.1.3.0.6")
                .unwrap()
                .is_some()
        );
    }
}
