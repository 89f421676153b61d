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

    /// Every static file as (site, name, size); site is empty for box-wide files.
    pub fn list_static_files(&self) -> Result<Vec<(String, String, usize)>, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(STATIC_FILES)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            if let Some((site, name)) = k.value().split_once('|') {
                out.push((site.to_string(), name.to_string(), v.value().len()));
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
