//! Admin API tokens, keyed by their public id.

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{Store, StoreError, decode, encode, read_all};
use crate::model::ApiToken;

pub(crate) const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");

impl Store {
    pub fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let tx = self.db.begin_read()?;
        read_all(&tx.open_table(TOKENS)?, "tokens")
    }

    /// The token whose secret hashes to `hash`, if any.
    pub fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        Ok(self.list_tokens()?.into_iter().find(|t| t.hash == hash))
    }

    /// Stores a new token; refused if the id is taken.
    pub fn add_token(&self, token: &ApiToken) -> Result<(), StoreError> {
        let tx = self.begin_write()?;
        {
            let mut table = tx.open_table(TOKENS)?;
            if table.get(token.id.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!("token {}", token.id)));
            }
            table.insert(token.id.as_str(), encode(token).as_slice())?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Revokes a token: it stops working at once. Returns what was removed.
    pub fn revoke_token(&self, id: &str) -> Result<Option<ApiToken>, StoreError> {
        let tx = self.begin_write()?;
        let removed = {
            let mut table = tx.open_table(TOKENS)?;
            let old = table.remove(id)?;
            old.map(|v| decode::<ApiToken>("tokens", id, v.value()))
                .transpose()?
        };
        tx.commit()?;
        Ok(removed)
    }

    /// Notes a successful use, at most once a minute per token so reads stay reads.
    pub fn touch_token(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let tx = self.begin_uncounted_write()?;
        {
            let mut table = tx.open_table(TOKENS)?;
            let found = table
                .get(id)?
                .map(|v| decode::<ApiToken>("tokens", id, v.value()))
                .transpose()?;
            if let Some(mut t) = found {
                if now - t.last_used < 60 {
                    return Ok(());
                }
                t.last_used = now;
                table.insert(id, encode(&t).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}
