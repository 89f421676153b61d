//! Static files uploaded by an operator. A file of the same name as a generated one wins; a
//! site's file wins over a box-wide one.

use std::collections::HashSet;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::devices::site_exists;
use super::{STATIC_FILES, Store, StoreError};

/// Largest static file accepted (settings files; firmware images have their own cache).
pub const MAX_STATIC_FILE: usize = 4 * 1024 * 1024;

/// Where a static file applies: the whole box, or one site.
fn key(site: Option<&str>, name: &str) -> String {
    format!("{}|{}", site.unwrap_or(""), name.to_ascii_lowercase())
}

/// A key's site and file name. Split at the last `|`: a file name holds none (the admin API
/// takes letters, digits, `.`, `-` and `_`), while a site an earlier version stored may.
fn split_key(key: &str) -> Option<(&str, &str)> {
    key.rsplit_once('|')
}

/// The static files of `site`, removed inside `tx` with their flags; returns their names.
pub(super) fn remove_site_files(
    tx: &redb::WriteTransaction,
    site: &str,
) -> Result<Vec<String>, StoreError> {
    let mut files = tx.open_table(STATIC_FILES)?;
    let mut flags = tx.open_table(STATIC_FLAGS)?;
    let prefix = format!("{site}|");
    let mut keys = Vec::new();
    for row in files.range(prefix.as_str()..)? {
        let (k, _) = row?;
        let k = k.value();
        if !k.starts_with(&prefix) {
            break;
        }
        // Among them may be a key of a site whose stored name starts with "{site}|".
        if split_key(k).is_some_and(|(s, _)| s == site) {
            keys.push(k.to_string());
        }
    }
    let mut names = Vec::new();
    for k in keys {
        files.remove(k.as_str())?;
        flags.remove(k.as_str())?;
        if let Some((_, name)) = split_key(&k) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Key as in [`STATIC_FILES`]; value: the reading of files that made it (`settings::secrets::
/// READING`) shifted left by one, plus 1 when the file holds a secret. Written in the
/// transaction that writes the file, so the two never disagree.
pub(crate) const STATIC_FLAGS: TableDefinition<&str, u8> =
    TableDefinition::new("static_file_flags");

fn flag(holds_secret: bool, reading: u8) -> u8 {
    reading << 1 | u8::from(holds_secret)
}

/// A static file and whether it holds a secret (see `settings::secrets`); `None` for a file
/// stored before that was recorded, until [`Store::backfill_static_flags`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticFile {
    pub bytes: Vec<u8>,
    pub holds_secret: Option<bool>,
}

impl Store {
    /// Stores a static file with whether it holds a secret (as `reading` read it), in one
    /// transaction. A site's file is refused while the site does not exist (no record, no
    /// device naming it), checked in this transaction as for its parameters and firmware
    /// policies: it would wait unseen for a site of that exact name. Returns the bytes it
    /// replaced (for the audit).
    pub fn put_static_file(
        &self,
        site: Option<&str>,
        name: &str,
        bytes: &[u8],
        holds_secret: bool,
        reading: u8,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key(site, name);
        let tx = self.begin_write()?;
        if let Some(site) = site.filter(|s| !s.is_empty())
            && !site_exists(&tx, site)?
        {
            return Err(StoreError::NotFound(format!("site {site}")));
        }
        let old = tx
            .open_table(STATIC_FILES)?
            .insert(key.as_str(), bytes)?
            .map(|v| v.value().to_vec());
        tx.open_table(STATIC_FLAGS)?
            .insert(key.as_str(), flag(holds_secret, reading))?;
        tx.commit()?;
        Ok(old)
    }

    /// Removes a file; returns the bytes it held (for the audit), `None` when there was none.
    pub fn delete_static_file(
        &self,
        site: Option<&str>,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key(site, name);
        let tx = self.begin_write()?;
        let removed = tx
            .open_table(STATIC_FILES)?
            .remove(key.as_str())?
            .map(|v| v.value().to_vec());
        tx.open_table(STATIC_FLAGS)?.remove(key.as_str())?;
        tx.commit()?;
        Ok(removed)
    }

    /// The file stored under exactly `site` (`None`: the box-wide one), with no fall-back to
    /// the box-wide file: a download of a site's file must not give out one of no site.
    pub fn own_static_file(
        &self,
        site: Option<&str>,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(STATIC_FILES)?;
        Ok(table
            .get(key(site, name).as_str())?
            .map(|v| v.value().to_vec()))
    }

    /// The file a phone of `site` gets for `name`: the site's own, else the box-wide one; read
    /// with its flag in one transaction.
    pub fn static_file(
        &self,
        site: Option<&str>,
        name: &str,
    ) -> Result<Option<StaticFile>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(STATIC_FILES)?;
        let flags = tx.open_table(STATIC_FLAGS)?;
        let site_key = site.filter(|s| !s.is_empty()).map(|s| key(Some(s), name));
        for k in site_key.into_iter().chain([key(None, name)]) {
            if let Some(v) = table.get(k.as_str())? {
                return Ok(Some(StaticFile {
                    bytes: v.value().to_vec(),
                    holds_secret: flags.get(k.as_str())?.map(|f| f.value() & 1 == 1),
                }));
            }
        }
        Ok(None)
    }

    /// Reads again, with `holds_secret` (the reading `reading`), each static file stored
    /// without a flag (by an edgeprov before flags were kept) or with a flag of another
    /// reading; returns the (site, name) of those that hold a secret and were not known to,
    /// which from now on only a proven device gets.
    pub fn backfill_static_flags(
        &self,
        reading: u8,
        holds_secret: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let tx = self.begin_write()?;
        let mut protected = Vec::new();
        {
            let files = tx.open_table(STATIC_FILES)?;
            let mut flags = tx.open_table(STATIC_FLAGS)?;
            for row in files.iter()? {
                let (k, v) = row?;
                let old = flags.get(k.value())?.map(|f| f.value());
                if old.is_some_and(|f| f >> 1 == reading) {
                    continue;
                }
                let holds = holds_secret(v.value());
                flags.insert(k.value(), flag(holds, reading))?;
                let known = old.is_some_and(|f| f & 1 == 1);
                if holds
                    && !known
                    && let Some((site, name)) = split_key(k.value())
                {
                    protected.push((site.to_string(), name.to_string()));
                }
            }
        }
        tx.commit()?;
        Ok(protected)
    }

    /// Which static files exist, so a request reads one only when it is there.
    pub fn static_index(&self) -> Result<StaticIndex, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(STATIC_FILES)?;
        let mut keys = HashSet::new();
        for row in table.iter()? {
            let (k, _) = row?;
            keys.insert(k.value().to_string());
        }
        Ok(StaticIndex { keys })
    }

    /// Every static file as (site, name, size, what `read` makes of its bytes); site is empty
    /// for box-wide files.
    pub fn list_static_files<T>(
        &self,
        read: impl Fn(&[u8]) -> T,
    ) -> Result<Vec<(String, String, usize, T)>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(STATIC_FILES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            if let Some((site, name)) = split_key(k.value()) {
                let bytes = v.value();
                out.push((site.to_string(), name.to_string(), bytes.len(), read(bytes)));
            }
        }
        Ok(out)
    }
}

/// The names of the static files at one moment (see [`Store::static_index`]).
#[derive(Debug, Default)]
pub struct StaticIndex {
    keys: HashSet<String>,
}

impl StaticIndex {
    /// Whether [`Store::static_file`] finds a file for `site` and `name`.
    pub fn contains(&self, site: Option<&str>, name: &str) -> bool {
        site.filter(|s| !s.is_empty())
            .is_some_and(|s| self.keys.contains(&key(Some(s), name)))
            || self.keys.contains(&key(None, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CheckIn, Mac};
    use crate::store::Recorder;

    #[test]
    fn the_index_resolves_as_static_file_does_and_changes_raise_the_generation() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        s.create_site(&crate::model::Site {
            name: "hq".into(),
            ..Default::default()
        })
        .unwrap();
        let before = s.generation();
        s.put_static_file(Some("hq"), "A.txt", b"site", false, 1)
            .unwrap();
        assert!(s.generation() > before);
        s.put_static_file(None, "b.txt", b"box", true, 1).unwrap();
        let index = s.static_index().unwrap();
        for (site, name) in [
            (Some("hq"), "a.txt"),
            (Some("branch"), "a.txt"),
            (None, "a.txt"),
            (Some("branch"), "B.TXT"),
            (None, "b.txt"),
            (Some(""), "b.txt"),
        ] {
            assert_eq!(
                index.contains(site, name),
                s.static_file(site, name).unwrap().is_some(),
                "{site:?} {name}"
            );
        }

        // The flag is read with the file, and goes with it.
        assert_eq!(
            s.static_file(None, "b.txt").unwrap().unwrap().holds_secret,
            Some(true)
        );
        assert_eq!(
            s.static_file(Some("hq"), "a.txt")
                .unwrap()
                .unwrap()
                .holds_secret,
            Some(false)
        );
        s.delete_static_file(None, "b.txt").unwrap();
        s.put_static_file(None, "b.txt", b"box again", false, 1)
            .unwrap();
        assert_eq!(
            s.static_file(None, "b.txt").unwrap().unwrap().holds_secret,
            Some(false)
        );

        // Check-ins change nothing a phone is served: they leave the generation as it was.
        let at = s.generation();
        let (recorder, thread) = Recorder::start(s.clone()).expect("recorder thread");
        recorder.check_in(Mac::from_octets([2, 0, 0, 0, 0, 1]), CheckIn::default());
        recorder.stop();
        thread.join().unwrap();
        assert_eq!(s.generation(), at);
        assert_eq!(
            s.checkins_of(Mac::from_octets([2, 0, 0, 0, 0, 1]), 10)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn files_stored_without_a_flag_are_read_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        s.put_static_file(None, "kept.txt", b"SET PW 1", false, 1)
            .unwrap();
        // As an edgeprov that kept no flags stored them.
        let tx = s.db().unwrap().begin_write().unwrap();
        {
            let mut files = tx.open_table(STATIC_FILES).unwrap();
            files
                .insert(key(Some("hq"), "old.txt").as_str(), b"SET PW 1".as_slice())
                .unwrap();
            files
                .insert(key(None, "plain.txt").as_str(), b"SET X 1".as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(
            s.static_file(Some("hq"), "old.txt")
                .unwrap()
                .unwrap()
                .holds_secret,
            None
        );

        let holds = |b: &[u8]| b.starts_with(b"SET PW");
        assert_eq!(
            s.backfill_static_flags(1, holds).unwrap(),
            [("hq".to_string(), "old.txt".to_string())]
        );
        assert_eq!(
            s.static_file(Some("hq"), "old.txt")
                .unwrap()
                .unwrap()
                .holds_secret,
            Some(true)
        );
        assert_eq!(
            s.static_file(None, "plain.txt")
                .unwrap()
                .unwrap()
                .holds_secret,
            Some(false)
        );
        // A flag of this reading is not read again (kept.txt said false at upload).
        assert_eq!(
            s.static_file(None, "kept.txt")
                .unwrap()
                .unwrap()
                .holds_secret,
            Some(false)
        );
        assert!(s.backfill_static_flags(1, holds).unwrap().is_empty());
        // One of another reading is read again; a file already known to hold one is not new.
        assert_eq!(
            s.backfill_static_flags(2, holds).unwrap(),
            [(String::new(), "kept.txt".to_string())]
        );
        assert_eq!(
            s.static_file(None, "kept.txt")
                .unwrap()
                .unwrap()
                .holds_secret,
            Some(true)
        );
        assert!(s.backfill_static_flags(3, holds).unwrap().is_empty());
    }
}
