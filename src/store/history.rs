//! Check-in history and retention. Every check-in is appended (in the recorder's batch) to a
//! table keyed by a rising sequence number, so the oldest entries are at the front: pruning by
//! age, for check-ins as for the audit log, removes from the front until an entry is young
//! enough; an entry that cannot be read is removed when it reaches the front. A second table indexes the rows by device, so one device's history is read without
//! going through every other device's rows (a boot storm leaves one row per file fetched).

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::{AUDIT, Store, StoreError, decode, encode};
use crate::model::{CheckIn, Mac};

/// Key: sequence number; value: a [`CheckinRecord`].
pub(crate) const CHECKINS: TableDefinition<u64, &[u8]> = TableDefinition::new("checkins");
/// Key: (the MAC as a number, the sequence number of its row in [`CHECKINS`]). Written and
/// removed in the transactions that write and remove those rows, so the two always agree;
/// built from [`CHECKINS`] when a database from before it (schema 1) is opened.
pub(crate) const CHECKINS_BY_MAC: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("checkins_by_mac");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckinRecord {
    pub mac: Mac,
    #[serde(flatten)]
    pub checkin: CheckIn,
}

/// Check-ins of a device read at most for a serial it presented (about 0.1 s): anyone can
/// add rows to a device's history by naming its MAC, and a revocation must not wait on them.
const PRESENTED_ROWS: usize = 100_000;

/// Entries removed at most per transaction, so a large backlog does not hold the writer long.
const PRUNE_CHUNK: usize = 10_000;

/// Check-in rows kept at most, whatever their age: every request that names a MAC adds one
/// (a claim in the User-Agent is enough, over plain HTTP), and one connection sent 10,000 a
/// second, each row a few hundred bytes, so retention by age alone let any host on the network
/// fill the disk in hours. A million rows (some 400 MB) hold twenty boot storms of 10,000
/// phones fetching five files each; beyond it the oldest rows go first.
pub(crate) const MAX_CHECKIN_ROWS: u64 = 1_000_000;

impl Store {
    /// Appends check-ins inside the caller's transaction, then removes the oldest rows beyond
    /// `max_rows` ([`MAX_CHECKIN_ROWS`]).
    pub(crate) fn append_checkins(
        tx: &WriteTransaction,
        records: &[(Mac, &CheckIn)],
        max_rows: u64,
    ) -> Result<(), StoreError> {
        let mut table = tx.open_table(CHECKINS)?;
        let mut index = tx.open_table(CHECKINS_BY_MAC)?;
        let first = table.last()?.map_or(1, |(k, _)| k.value() + 1);
        for (seq, (mac, checkin)) in (first..).zip(records) {
            let record = CheckinRecord {
                mac: *mac,
                checkin: (*checkin).clone(),
            };
            table.insert(seq, encode(&record).as_slice())?;
            index.insert((mac_key(*mac), seq), ())?;
        }
        let mut unreadable = Vec::new();
        for _ in max_rows..table.len()? {
            let Some((seq, value)) = table.pop_first()? else {
                break;
            };
            let seq = seq.value();
            match serde_json::from_slice::<CheckinRecord>(value.value()) {
                Ok(r) => {
                    index.remove((mac_key(r.mac), seq))?;
                }
                Err(_) => unreadable.push(seq),
            }
        }
        // As when pruning by age: a row that cannot be read does not say whose it was.
        if !unreadable.is_empty() {
            tracing::warn!(
                removed = unreadable.len(),
                "check-in history rows that could not be read were removed"
            );
            index.retain(|(_, seq), ()| !unreadable.contains(&seq))?;
        }
        Ok(())
    }

    /// A device's check-ins, newest first, at most `limit`: a range of the device index, then
    /// one lookup per row returned.
    pub fn checkins_of(&self, mac: Mac, limit: usize) -> Result<Vec<CheckIn>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let index = tx.open_table(CHECKINS_BY_MAC)?;
        let table = tx.open_table(CHECKINS)?;
        let m = mac_key(mac);
        let mut out = Vec::new();
        for row in index.range((m, 0)..=(m, u64::MAX))?.rev().take(limit) {
            let seq = row?.0.value().1;
            let Some(v) = table.get(seq)? else {
                return Err(StoreError::Corrupt {
                    table: "checkins_by_mac",
                    key: format!("{mac}|{seq}"),
                    message: "names a check-in that is not stored".into(),
                });
            };
            let r: CheckinRecord = decode("checkins", &seq.to_string(), v.value())?;
            out.push(r.checkin);
        }
        Ok(out)
    }

    /// Which of `serials` the device presented, by its newest [`PRESENTED_ROWS`] check-ins
    /// with a certificate of the box's CA; `None` when none. A read transaction: the writer is
    /// not held while a long history is read, and a row that cannot be read is passed over.
    pub(crate) fn presented_serial(
        &self,
        mac: Mac,
        serials: &[&str],
    ) -> Result<Option<String>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let index = tx.open_table(CHECKINS_BY_MAC)?;
        let table = tx.open_table(CHECKINS)?;
        let m = mac_key(mac);
        let rows = index
            .range((m, 0)..=(m, u64::MAX))?
            .rev()
            .take(PRESENTED_ROWS);
        for row in rows {
            let seq = row?.0.value().1;
            let Some(v) = table.get(seq)? else { continue };
            let Ok(r) = decode::<CheckinRecord>("checkins", &seq.to_string(), v.value()) else {
                continue;
            };
            if let Some(s) = r
                .checkin
                .cert_serial
                .filter(|s| serials.contains(&s.as_str()))
            {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// Removes check-ins seen before `cutoff`, with their index rows. Only the MAC and the time
    /// are decoded, so a row whose other fields no longer read is still dated.
    pub fn prune_checkins(&self, cutoff: i64) -> Result<Pruning, StoreError> {
        #[derive(Deserialize)]
        struct Stamp {
            mac: Mac,
            last_seen: i64,
        }
        self.prune(
            CHECKINS,
            "checkins",
            |v| serde_json::from_slice(v).map(|s: Stamp| (s.last_seen < cutoff).then_some(s.mac)),
            |tx, old, unreadable| {
                let mut index = tx.open_table(CHECKINS_BY_MAC)?;
                for (seq, mac) in old {
                    index.remove((mac_key(*mac), *seq))?;
                }
                // A row that cannot be read does not say whose it was, so its index row (if it
                // was indexed while it could be read) is found by going through the whole
                // index, holding the writer meanwhile (seconds on a history of tens of millions).
                // Rows become unreadable only by damage: this is rare, and then once per chunk.
                if !unreadable.is_empty() {
                    index.retain(|(_, seq), ()| unreadable.binary_search(&seq).is_err())?;
                }
                Ok(())
            },
        )
    }

    /// Removes audit entries written before `cutoff`.
    pub fn prune_audit(&self, cutoff: i64) -> Result<Pruning, StoreError> {
        #[derive(Deserialize)]
        struct Stamp {
            time: i64,
        }
        self.prune(
            AUDIT,
            "audit",
            |v| serde_json::from_slice(v).map(|s: Stamp| (s.time < cutoff).then_some(())),
            |_, _, _| Ok(()),
        )
    }

    /// Removes entries from the front while `old` finds them old, in transactions of at most
    /// [`PRUNE_CHUNK`]. `old` answers `None` for the first entry young enough, else what
    /// `dependents` needs to remove, in the same transaction, the rows that point at the entry;
    /// `dependents` also gets the keys, in order, of the entries removed as unreadable.
    ///
    /// An entry that `old` cannot read is removed too, counted and logged. Its key is a
    /// sequence number, not a time, so it cannot be dated; but every entry before it was old,
    /// and nobody can use it (it fails every listing that reaches it). Stopping there, as
    /// pruning did, failed every pass from then on and let the table grow without bound.
    fn prune<T>(
        &self,
        table_def: TableDefinition<u64, &[u8]>,
        name: &'static str,
        old: impl Fn(&[u8]) -> serde_json::Result<Option<T>>,
        dependents: impl Fn(&WriteTransaction, &[(u64, T)], &[u64]) -> Result<(), StoreError>,
    ) -> Result<Pruning, StoreError> {
        let mut pruned = Pruning::default();
        loop {
            let tx = self.begin_uncounted_write()?;
            let (n, unreadable) = {
                let mut table = tx.open_table(table_def)?;
                let (mut doomed, mut unreadable) = (Vec::new(), Vec::new());
                let mut first_error = None;
                for row in table.iter()? {
                    if doomed.len() + unreadable.len() >= PRUNE_CHUNK {
                        break;
                    }
                    let (k, v) = row?;
                    match old(v.value()) {
                        Ok(Some(what)) => doomed.push((k.value(), what)),
                        Ok(None) => break,
                        Err(e) => {
                            first_error.get_or_insert(e);
                            unreadable.push(k.value());
                        }
                    }
                }
                if let (Some(error), Some(first)) = (first_error, unreadable.first()) {
                    tracing::warn!(
                        table = name,
                        count = unreadable.len(),
                        first,
                        %error,
                        "entries that cannot be read removed by retention"
                    );
                }
                for k in doomed.iter().map(|(k, _)| k).chain(&unreadable) {
                    table.remove(k)?;
                }
                dependents(&tx, &doomed, &unreadable)?;
                (doomed.len() + unreadable.len(), unreadable.len())
            };
            tx.commit()?;
            pruned.removed += n as u64;
            pruned.unreadable += unreadable as u64;
            if n < PRUNE_CHUNK {
                tracing::debug!(table = name, pruned.removed, pruned.unreadable, "pruned");
                return Ok(pruned);
            }
        }
    }
}

/// What pruning a table removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruning {
    pub removed: u64,
    /// Of those, entries that could not be read (so not dated).
    pub unreadable: u64,
}

/// A MAC as the first part of a [`CHECKINS_BY_MAC`] key: its six octets read as one number.
pub(super) fn mac_key(mac: Mac) -> u64 {
    let [a, b, c, d, e, f] = mac.octets();
    u64::from_be_bytes([0, 0, a, b, c, d, e, f])
}

#[cfg(test)]
pub(super) mod tests {
    //! Also the helpers of the schema upgrade's tests, which read the same tables.

    use super::*;

    pub(in crate::store) const A: Mac = Mac::from_octets([2, 0, 0, 0, 0, 0xa]);
    pub(in crate::store) const B: Mac = Mac::from_octets([2, 0, 0, 0, 0, 0xb]);

    pub(in crate::store) fn seen(last_seen: i64) -> CheckIn {
        CheckIn {
            last_seen,
            file: format!("file-{last_seen}"),
            ..CheckIn::default()
        }
    }

    /// Appends as the recorder does, one transaction for all of them.
    pub(in crate::store) fn append(s: &Store, rows: &[(Mac, i64)]) {
        let checkins: Vec<(Mac, CheckIn)> = rows.iter().map(|(m, t)| (*m, seen(*t))).collect();
        let records: Vec<(Mac, &CheckIn)> = checkins.iter().map(|(m, c)| (*m, c)).collect();
        let tx = s.begin_uncounted_write().unwrap();
        Store::append_checkins(&tx, &records, MAX_CHECKIN_ROWS).unwrap();
        tx.commit().unwrap();
    }

    pub(in crate::store) fn times(history: &[CheckIn]) -> Vec<i64> {
        history.iter().map(|c| c.last_seen).collect()
    }

    pub(in crate::store) fn index_rows(s: &Store) -> Vec<(u64, u64)> {
        let tx = s.db().unwrap().begin_read().unwrap();
        let index = tx.open_table(CHECKINS_BY_MAC).unwrap();
        index
            .iter()
            .unwrap()
            .map(|r| r.unwrap().0.value())
            .collect()
    }

    /// However many check-ins arrive, the history keeps the newest rows up to its bound, and
    /// the index keeps naming exactly those (a damaged row at the front goes too).
    #[test]
    fn the_history_keeps_the_newest_rows_up_to_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        let appended = |rows: &[(Mac, i64)]| {
            let checkins: Vec<(Mac, CheckIn)> = rows.iter().map(|(m, t)| (*m, seen(*t))).collect();
            let records: Vec<(Mac, &CheckIn)> = checkins.iter().map(|(m, c)| (*m, c)).collect();
            let tx = s.begin_uncounted_write().unwrap();
            Store::append_checkins(&tx, &records, 4).unwrap();
            tx.commit().unwrap();
        };
        appended(&[(A, 1), (B, 2), (A, 3)]);
        let tx = s.begin_uncounted_write().unwrap();
        tx.open_table(CHECKINS)
            .unwrap()
            .insert(1, b"not json".as_slice())
            .unwrap();
        tx.commit().unwrap();
        appended(&[(B, 4), (A, 5), (B, 6)]);
        appended(&[(A, 7)]);
        assert_eq!(times(&s.checkins_of(A, 10).unwrap()), [7, 5]);
        assert_eq!(times(&s.checkins_of(B, 10).unwrap()), [6, 4]);
        let seqs: Vec<u64> = index_rows(&s).iter().map(|(_, seq)| *seq).collect();
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [4, 5, 6, 7]);
    }

    /// One device's history comes from its own rows only: newest first, cut at the limit,
    /// none of another device's, and another device's row that cannot be read (it was read,
    /// and failed the whole listing, while the history was scanned) does not matter.
    #[test]
    fn a_devices_history_is_its_own_rows_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        append(&s, &[(A, 1), (B, 2), (A, 3)]);
        append(&s, &[(B, 4), (A, 5), (B, 6)]);

        assert_eq!(times(&s.checkins_of(A, 10).unwrap()), [5, 3, 1]);
        assert_eq!(times(&s.checkins_of(A, 2).unwrap()), [5, 3]);
        assert!(s.checkins_of(A, 0).unwrap().is_empty());
        assert_eq!(times(&s.checkins_of(B, 10).unwrap()), [6, 4, 2]);
        let other = Mac::from_octets([2, 0, 0, 0, 0, 0xc]);
        assert!(s.checkins_of(other, 10).unwrap().is_empty());

        // B's newest row (sequence 6) damaged.
        let tx = s.begin_uncounted_write().unwrap();
        tx.open_table(CHECKINS)
            .unwrap()
            .insert(6, b"not json".as_slice())
            .unwrap();
        tx.commit().unwrap();
        assert_eq!(times(&s.checkins_of(A, 10).unwrap()), [5, 3, 1]);
        assert!(matches!(
            s.checkins_of(B, 10),
            Err(StoreError::Corrupt { .. })
        ));
    }

    /// Pruning removes a row's index entry with it: no index row outlives its check-in, and
    /// once the whole history is pruned and sequence numbers start again at 1, a device's
    /// history does not pick up another device's new rows.
    #[test]
    fn pruning_removes_the_index_rows_too() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        append(&s, &[(A, 1), (A, 2), (B, 3), (A, 4)]);

        assert_eq!(s.prune_checkins(3).unwrap().removed, 2);
        assert_eq!(times(&s.checkins_of(A, 10).unwrap()), [4]);
        assert_eq!(
            index_rows(&s),
            [(mac_key(A), 4), (mac_key(B), 3)],
            "only the rows left are indexed"
        );

        assert_eq!(s.prune_checkins(100).unwrap().removed, 2);
        assert!(index_rows(&s).is_empty());
        append(&s, &[(B, 200), (B, 201)]);
        assert!(s.checkins_of(A, 10).unwrap().is_empty());
        assert_eq!(times(&s.checkins_of(B, 10).unwrap()), [201, 200]);
    }
}
