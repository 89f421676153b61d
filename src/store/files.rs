//! Static files uploaded by an operator. A file of the same name as a generated one wins; a
//! site's file wins over a box-wide one.

use std::collections::HashSet;

use redb::{ReadableDatabase, ReadableTable};

use super::{STATIC_FILES, Store, StoreError};

/// Largest static file accepted (settings files; firmware images have their own cache).
pub const MAX_STATIC_FILE: usize = 4 * 1024 * 1024;

/// Where a static file applies: the whole box, or one site.
fn key(site: Option<&str>, name: &str) -> String {
    format!("{}|{}", site.unwrap_or(""), name.to_ascii_lowercase())
}

impl Store {
    pub fn put_static_file(
        &self,
        site: Option<&str>,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        tx.open_table(STATIC_FILES)?
            .insert(key(site, name).as_str(), bytes)?;
        tx.commit()?;
        Ok(())
    }

    pub fn delete_static_file(&self, site: Option<&str>, name: &str) -> Result<bool, StoreError> {
        let tx = self.begin_write()?;
        let removed = tx
            .open_table(STATIC_FILES)?
            .remove(key(site, name).as_str())?
            .is_some();
        tx.commit()?;
        Ok(removed)
    }

    /// The file a phone of `site` gets for `name`: the site's own, else the box-wide one.
    pub fn static_file(
        &self,
        site: Option<&str>,
        name: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(STATIC_FILES)?;
        if let Some(site) = site.filter(|s| !s.is_empty())
            && let Some(v) = table.get(key(Some(site), name).as_str())?
        {
            return Ok(Some(v.value().to_vec()));
        }
        Ok(table
            .get(key(None, name).as_str())?
            .map(|v| v.value().to_vec()))
    }

    /// Which static files exist, so a request reads one only when it is there.
    pub fn static_index(&self) -> Result<StaticIndex, StoreError> {
        let tx = self.db.begin_read()?;
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
        let tx = self.db.begin_read()?;
        let table = tx.open_table(STATIC_FILES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            if let Some((site, name)) = k.value().split_once('|') {
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
        let before = s.generation();
        s.put_static_file(Some("hq"), "A.txt", b"site").unwrap();
        assert!(s.generation() > before);
        s.put_static_file(None, "b.txt", b"box").unwrap();
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

        // Check-ins change nothing a phone is served: they leave the generation as it was.
        let at = s.generation();
        let (recorder, thread) = Recorder::start(s.clone());
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
}
