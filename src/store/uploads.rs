//! Files phones upload (`model::UploadFile`), per device: their bytes, what is known of them,
//! and an index of the logs by age, from which room is made when the uploads together would
//! pass their bound. Uploads are no input of any rendered file, so their writes do not move
//! the store's generation.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{DEVICES, META, Store, StoreError, decode, encode};
use crate::model::{Device, Held, Mac, NoRoom, UploadFile, UploadInfo, UploadKind, logs_to_drop};

/// Key (MAC, file name as the phone names it, lower case); value: the bytes.
pub(crate) const UPLOADS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("uploads");
/// Key as in [`UPLOADS`]; value: an [`UploadInfo`], written in the same transaction.
pub(crate) const UPLOAD_INFO: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("upload_info");
/// Key (time received, MAC, file name) of every uploaded log; value: its size. Read oldest
/// first when room must be made, so a full store does not read every upload to find them.
pub(crate) const LOGS_BY_AGE: TableDefinition<(i64, &str, &str), u64> =
    TableDefinition::new("upload_logs_by_age");
/// Key in [`META`]: the bytes all uploads hold together, kept with every write of them.
const TOTAL: &str = "upload_bytes";

/// What storing an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// It replaced an upload of the same name (PUT answers 204 rather than 201).
    pub replaced: bool,
    /// The logs dropped to make room for it, oldest first.
    pub dropped: Vec<(Mac, UploadFile)>,
}

/// Why an upload was not stored, nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotStored {
    /// No room even with every log dropped.
    #[error(transparent)]
    NoRoom(#[from] NoRoom),
    /// The device was deleted, or may no longer receive secrets, since the request was
    /// authorised (while its body came).
    #[error("the device is gone or may no longer receive its secrets")]
    NotAllowed,
}

/// An upload as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub info: UploadInfo,
    pub bytes: Vec<u8>,
}

impl Store {
    /// Stores `bytes` as `file` of device `mac`, received now from `from`, in one durable
    /// transaction. When the uploads together would then hold more than `max_total` bytes, the
    /// oldest logs of any device are dropped in that transaction; an upload that does not fit
    /// even then (overrides are never dropped) stores nothing and answers [`NotStored::NoRoom`].
    /// `allowed` is asked, in the same transaction, whether the device as it is now may still
    /// write: the request was authorised before its body came, up to `phone.header_timeout_ms`
    /// earlier, and a device deleted or deactivated since then gets nothing stored
    /// ([`NotStored::NotAllowed`]; nothing of a deleted device is kept).
    pub fn put_upload(
        &self,
        mac: Mac,
        file: UploadFile,
        bytes: &[u8],
        (received, from): (i64, &str),
        max_total: u64,
        allowed: impl FnOnce(&Device) -> bool,
    ) -> Result<Result<Stored, NotStored>, StoreError> {
        let (m, name) = (mac.to_string(), file.name(mac));
        let size = bytes.len() as u64;
        let tx = self.begin_uncounted_write()?;
        let stored = {
            let device: Option<Device> = match tx.open_table(DEVICES)?.get(m.as_str())? {
                Some(v) => Some(decode("devices", &m, v.value())?),
                None => None,
            };
            if !device.as_ref().is_some_and(allowed) {
                return Ok(Err(NotStored::NotAllowed));
            }
            let mut meta = tx.open_table(META)?;
            let total = meta.get(TOTAL)?.map_or(0, |v| v.value());
            let old: Option<UploadInfo> = match tx.open_table(UPLOAD_INFO)?.get((&*m, &*name))? {
                Some(v) => Some(decode("upload_info", &name, v.value())?),
                None => None,
            };
            let old_size = old.as_ref().map_or(0, |o| o.size);
            let after = total.saturating_sub(old_size).saturating_add(size);
            let dropped = match after > max_total {
                false => Vec::new(),
                true => {
                    let mut held = oldest_logs(&tx, (&m, &name), after - max_total)?;
                    let replaced = old.as_ref().map(|o| {
                        held.push(Held {
                            mac,
                            file,
                            size: o.size,
                            received: o.received,
                        });
                        (mac, file)
                    });
                    match logs_to_drop(&held, total, replaced, size, max_total) {
                        Ok(d) => d,
                        Err(no_room) => return Ok(Err(no_room.into())),
                    }
                }
            };
            let mut freed = 0;
            for &(dm, df) in &dropped {
                freed += remove(&tx, dm, df)?.map_or(0, |i| i.size);
            }
            if let Some(o) = &old
                && o.file.kind() == UploadKind::Log
            {
                tx.open_table(LOGS_BY_AGE)?
                    .remove((o.received, &*m, &*name))?;
            }
            let info = UploadInfo {
                file,
                size,
                received,
                from: from.to_string(),
            };
            tx.open_table(UPLOADS)?.insert((&*m, &*name), bytes)?;
            tx.open_table(UPLOAD_INFO)?
                .insert((&*m, &*name), encode(&info).as_slice())?;
            if file.kind() == UploadKind::Log {
                tx.open_table(LOGS_BY_AGE)?
                    .insert((received, &*m, &*name), size)?;
            }
            let total = total.saturating_sub(old_size + freed).saturating_add(size);
            meta.insert(TOTAL, total)?;
            Stored {
                replaced: old.is_some(),
                dropped,
            }
        };
        tx.commit()?;
        Ok(Ok(stored))
    }

    /// What device `mac` has uploaded, in file order.
    pub fn list_uploads(&self, mac: Mac) -> Result<Vec<UploadInfo>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(UPLOAD_INFO)?;
        let m = mac.to_string();
        let mut out = Vec::new();
        for row in table.range((m.as_str(), "")..)? {
            let (k, v) = row?;
            let (km, name) = k.value();
            if km != m {
                break;
            }
            out.push(decode("upload_info", name, v.value())?);
        }
        Ok(out)
    }

    /// One upload of device `mac`, with its bytes; `None` when there is none.
    pub fn get_upload(&self, mac: Mac, file: UploadFile) -> Result<Option<Upload>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let (m, name) = (mac.to_string(), file.name(mac));
        let Some(info) = tx.open_table(UPLOAD_INFO)?.get((&*m, &*name))? else {
            return Ok(None);
        };
        let info: UploadInfo = decode("upload_info", &name, info.value())?;
        let bytes = tx
            .open_table(UPLOADS)?
            .get((&*m, &*name))?
            .map(|v| v.value().to_vec())
            .ok_or_else(|| StoreError::Corrupt {
                table: "uploads",
                key: name.clone(),
                message: "listed in upload_info without its bytes".into(),
            })?;
        Ok(Some(Upload { info, bytes }))
    }

    /// Removes one upload; returns what it was, `None` when there was none.
    pub fn delete_upload(
        &self,
        mac: Mac,
        file: UploadFile,
    ) -> Result<Option<UploadInfo>, StoreError> {
        let tx = self.begin_uncounted_write()?;
        let removed = remove(&tx, mac, file)?;
        if let Some(info) = &removed {
            subtract(&tx, info.size)?;
        }
        tx.commit()?;
        Ok(removed)
    }

    /// The bytes all uploads hold together: what the tests check the kept total against.
    #[cfg(test)]
    pub fn upload_bytes(&self) -> Result<u64, StoreError> {
        let tx = self.db()?.begin_read()?;
        Ok(tx.open_table(META)?.get(TOTAL)?.map_or(0, |v| v.value()))
    }
}

/// The oldest logs, other than `except`, until they hold at least `needed` bytes (or all of
/// them): all [`logs_to_drop`] may choose from.
fn oldest_logs(
    tx: &WriteTransaction,
    except: (&str, &str),
    needed: u64,
) -> Result<Vec<Held>, StoreError> {
    let table = tx.open_table(LOGS_BY_AGE)?;
    let (mut out, mut sum) = (Vec::new(), 0u64);
    for row in table.iter()? {
        if sum >= needed {
            break;
        }
        let (k, v) = row?;
        let (received, m, name) = k.value();
        if (m, name) == except {
            continue;
        }
        let Some((file, mac)) = UploadFile::parse(name) else {
            return Err(StoreError::Corrupt {
                table: "upload_logs_by_age",
                key: name.to_string(),
                message: "not the name of an upload".into(),
            });
        };
        sum += v.value();
        out.push(Held {
            mac,
            file,
            size: v.value(),
            received,
        });
    }
    Ok(out)
}

/// Removes one upload from every table inside `tx` (the total is the caller's to change).
fn remove(
    tx: &WriteTransaction,
    mac: Mac,
    file: UploadFile,
) -> Result<Option<UploadInfo>, StoreError> {
    let (m, name) = (mac.to_string(), file.name(mac));
    let removed = tx
        .open_table(UPLOAD_INFO)?
        .remove((&*m, &*name))?
        .map(|v| v.value().to_vec());
    let Some(info) = removed else {
        return Ok(None);
    };
    let info: UploadInfo = decode("upload_info", &name, &info)?;
    tx.open_table(UPLOADS)?.remove((&*m, &*name))?;
    if file.kind() == UploadKind::Log {
        tx.open_table(LOGS_BY_AGE)?
            .remove((info.received, &*m, &*name))?;
    }
    Ok(Some(info))
}

fn subtract(tx: &WriteTransaction, bytes: u64) -> Result<(), StoreError> {
    let mut meta = tx.open_table(META)?;
    let total = meta.get(TOTAL)?.map_or(0, |v| v.value());
    meta.insert(TOTAL, total.saturating_sub(bytes))?;
    Ok(())
}

/// Removes every upload of device `mac` inside `tx`: the transaction that deletes the device.
pub(super) fn forget_device_uploads(tx: &WriteTransaction, mac: &str) -> Result<(), StoreError> {
    let Ok(mac) = mac.parse::<Mac>() else {
        return Ok(());
    };
    let mut freed = 0;
    for file in UploadFile::ALL {
        freed += remove(tx, mac, file)?.map_or(0, |i| i.size);
    }
    if freed > 0 {
        subtract(tx, freed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Device;

    const A: Mac = Mac::from_octets([0, 4, 0xf2, 0, 0, 1]);
    const B: Mac = Mac::from_octets([0, 4, 0xf2, 0, 0, 2]);

    fn store_with(devices: &[Mac]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        for &mac in devices {
            store.create_device(Device::new(mac)).unwrap();
        }
        (dir, store)
    }

    fn put(
        s: &Store,
        mac: Mac,
        file: UploadFile,
        len: usize,
        at: i64,
    ) -> Result<Stored, NotStored> {
        s.put_upload(mac, file, &vec![b'x'; len], (at, "127.0.0.1"), 100, |_| {
            true
        })
        .unwrap()
    }

    fn names(s: &Store, mac: Mac) -> Vec<String> {
        s.list_uploads(mac)
            .unwrap()
            .into_iter()
            .map(|i| i.file.name(mac))
            .collect()
    }

    /// Past the bound the oldest logs of any device go, in the write's own transaction; an
    /// override never does, and one that cannot fit leaves everything as it was.
    #[test]
    fn logs_make_room_and_overrides_stay() {
        let (_dir, s) = store_with(&[A, B]);
        assert_eq!(
            put(&s, A, UploadFile::PhoneOverrides, 30, 1),
            Ok(Stored {
                replaced: false,
                dropped: vec![]
            })
        );
        put(&s, A, UploadFile::AppLog, 30, 2).unwrap();
        put(&s, B, UploadFile::BootLog, 30, 3).unwrap();
        assert_eq!(s.upload_bytes().unwrap(), 90);
        let stored = put(&s, B, UploadFile::AppLog, 30, 4).unwrap();
        assert_eq!(stored.dropped, [(A, UploadFile::AppLog)]);
        assert_eq!(names(&s, A), ["0004f2000001-phone.cfg"]);
        assert_eq!(s.upload_bytes().unwrap(), 90);

        // An override that needs more than every log frees: refused, nothing changed.
        let refused = put(&s, B, UploadFile::WebOverrides, 71, 5);
        assert_eq!(
            refused,
            Err(NotStored::NoRoom(NoRoom {
                needed: 71,
                available: 70
            }))
        );
        assert_eq!(
            names(&s, B),
            ["0004f2000002-app.log", "0004f2000002-boot.log"]
        );
        assert_eq!(s.upload_bytes().unwrap(), 90);

        // One that fits once both logs are gone takes their room.
        let stored = put(&s, B, UploadFile::WebOverrides, 70, 6).unwrap();
        assert_eq!(
            stored.dropped,
            [(B, UploadFile::BootLog), (B, UploadFile::AppLog)]
        );
        assert_eq!(names(&s, B), ["0004f2000002-web.cfg"]);
        assert_eq!(s.upload_bytes().unwrap(), 100);
    }

    /// A replacement frees the bytes it replaces, keeps its file's place in the age order as
    /// of its new time, and is told apart from a new file.
    #[test]
    fn a_replacement_is_counted_once() {
        let (_dir, s) = store_with(&[A]);
        put(&s, A, UploadFile::AppLog, 60, 1).unwrap();
        let again = put(&s, A, UploadFile::AppLog, 90, 2).unwrap();
        assert_eq!(
            again,
            Stored {
                replaced: true,
                dropped: vec![]
            }
        );
        assert_eq!(s.upload_bytes().unwrap(), 90);
        let got = s.get_upload(A, UploadFile::AppLog).unwrap().unwrap();
        assert_eq!((got.bytes.len(), got.info.received), (90, 2));
        // The boot log pushes out the app log, now the oldest, not a stale age entry.
        let stored = put(&s, A, UploadFile::BootLog, 20, 3).unwrap();
        assert_eq!(stored.dropped, [(A, UploadFile::AppLog)]);
        assert_eq!(s.upload_bytes().unwrap(), 20);
    }

    /// Deleting a device deletes its uploads in that transaction, and gives back their room;
    /// a device not in the inventory gets nothing stored.
    #[test]
    fn uploads_go_with_their_device() {
        let (_dir, s) = store_with(&[A, B]);
        put(&s, A, UploadFile::AppLog, 10, 1).unwrap();
        put(&s, A, UploadFile::PhoneOverrides, 10, 1).unwrap();
        put(&s, B, UploadFile::AppLog, 10, 1).unwrap();
        s.delete_device(A).unwrap().unwrap();
        assert!(s.list_uploads(A).unwrap().is_empty());
        assert_eq!(s.get_upload(A, UploadFile::PhoneOverrides).unwrap(), None);
        assert_eq!(names(&s, B), ["0004f2000002-app.log"]);
        assert_eq!(s.upload_bytes().unwrap(), 10);
        assert_eq!(
            s.put_upload(A, UploadFile::AppLog, b"x", (2, "127.0.0.1"), 100, |_| true)
                .unwrap(),
            Err(NotStored::NotAllowed)
        );
        assert_eq!(
            s.delete_upload(B, UploadFile::AppLog)
                .unwrap()
                .map(|i| i.size),
            Some(10)
        );
        assert_eq!(s.upload_bytes().unwrap(), 0);
        assert_eq!(s.delete_upload(B, UploadFile::AppLog).unwrap(), None);
    }

    /// The rule the write is made under sees the device as the transaction does: one that
    /// says no leaves everything as it was.
    #[test]
    fn a_device_refused_by_the_rule_gets_nothing_stored() {
        let (_dir, s) = store_with(&[A]);
        put(&s, A, UploadFile::AppLog, 10, 1).unwrap();
        let refused = s.put_upload(
            A,
            UploadFile::AppLog,
            b"new",
            (2, "127.0.0.1"),
            100,
            |d: &Device| d.mac != A,
        );
        assert_eq!(refused.unwrap(), Err(NotStored::NotAllowed));
        let kept = s.get_upload(A, UploadFile::AppLog).unwrap().unwrap();
        assert_eq!((kept.bytes.len(), kept.info.received), (10, 1));
        assert_eq!(s.upload_bytes().unwrap(), 10);
    }

    /// A database of this schema written before uploads existed opens, gains the tables and
    /// takes uploads: adding tables needs no new schema version.
    #[test]
    fn a_database_from_before_uploads_gains_their_tables() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let db = redb::Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert("schema_version", super::super::SCHEMA_VERSION)
                .unwrap();
            tx.open_table(DEVICES)
                .unwrap()
                .insert(A.to_string().as_str(), encode(&Device::new(A)).as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert!(s.list_uploads(A).unwrap().is_empty());
        put(&s, A, UploadFile::BootLog, 5, 1).unwrap();
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(names(&s, A), ["0004f2000001-boot.log"]);
    }
}
