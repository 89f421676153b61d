//! The runtime preferences, one JSON record.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{Store, StoreError, decode, encode};
use crate::model::Preferences;

pub(crate) const PREFERENCES: TableDefinition<&str, &[u8]> = TableDefinition::new("preferences");
const KEY: &str = "preferences";

impl Store {
    pub fn preferences(&self) -> Result<Preferences, StoreError> {
        let tx = self.db()?.begin_read()?;
        let table = tx.open_table(PREFERENCES)?;
        let found = table.get(KEY)?;
        Ok(found
            .map(|v| decode("preferences", KEY, v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Changes the preferences inside one transaction, so a change committed meanwhile is
    /// never written back over. `change` may refuse (its error is returned and nothing is
    /// written). Returns the preferences before and after.
    pub fn update_preferences<E>(
        &self,
        change: impl FnOnce(&mut Preferences) -> Result<(), E>,
    ) -> Result<Result<(Preferences, Preferences), E>, StoreError> {
        let tx = self.begin_write()?;
        let changed = {
            let mut table = tx.open_table(PREFERENCES)?;
            let before: Preferences = match table.get(KEY)? {
                Some(v) => decode("preferences", KEY, v.value())?,
                None => Preferences::default(),
            };
            let mut after = before.clone();
            if let Err(e) = change(&mut after) {
                return Ok(Err(e));
            }
            table.insert(KEY, encode(&after).as_slice())?;
            (before, after)
        };
        tx.commit()?;
        Ok(Ok(changed))
    }
}
