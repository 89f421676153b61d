//! The runtime preferences, one JSON record.

use redb::{ReadableDatabase, TableDefinition};

use super::{Store, StoreError, decode, encode};
use crate::model::Preferences;

pub(crate) const PREFERENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("preferences");
const KEY: &str = "preferences";

impl Store {
    pub fn preferences(&self) -> Result<Preferences, StoreError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(PREFERENCES)?;
        let found = table.get(KEY)?;
        Ok(found
            .map(|v| decode("preferences", KEY, v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn put_preferences(&self, prefs: &Preferences) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        tx.open_table(PREFERENCES)?
            .insert(KEY, encode(prefs).as_slice())?;
        tx.commit()?;
        Ok(())
    }
}
