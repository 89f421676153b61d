//! Admin API tokens, keyed by their public id.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{Store, StoreError, decode, encode, read_all};
use crate::model::ApiToken;

pub(crate) const TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("tokens");

/// Ids drawn at most for one new token. With 32-bit ids and even a million tokens stored, a
/// draw collides once in four thousand; sixteen in a row do not happen by chance, only with a
/// broken generator, which this then reports instead of looping for ever.
const ID_TRIES: u32 = 16;

/// Seconds a token's recorded last use may lag behind its last use: a use within this long
/// after the recorded one is not written.
pub const LAST_USED_EVERY: i64 = 60;

/// Takes `site` from the sites of every token that holds it, inside `tx` (the site's deletion):
/// tokens hold sites by name, so a token that kept a deleted site's name would get the site
/// made again later under it, which its holder was never given. Returns the tokens changed, as
/// they are now. An operator's token left with no site stays, granting no site, until it is
/// revoked: its holder's requests are refused as outside its sites, not as an unknown token.
pub(super) fn remove_site_from_tokens(
    tx: &WriteTransaction,
    site: &str,
) -> Result<Vec<ApiToken>, StoreError> {
    let mut table = tx.open_table(TOKENS)?;
    let mut changed = Vec::new();
    for row in table.iter()? {
        let (k, v) = row?;
        let mut token: ApiToken = decode("tokens", k.value(), v.value())?;
        if token.sites.remove(site) {
            changed.push(token);
        }
    }
    for token in &changed {
        table.insert(token.id.as_str(), encode(token).as_slice())?;
    }
    Ok(changed)
}

impl Store {
    pub fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let tx = self.db()?.begin_read()?;
        read_all(&tx.open_table(TOKENS)?, "tokens")
    }

    /// The token whose secret hashes to `hash`, if any.
    pub fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        Ok(self.list_tokens()?.into_iter().find(|t| t.hash == hash))
    }

    /// Stores a new token under the first id from `new_id` that is not taken, and returns it
    /// with that id. Ids are short random handles, so one may collide with a stored token; the
    /// user asked for a token, not for an id, and must not be refused for the draw. Trying
    /// again in the same transaction means no other writer can take the id in between.
    pub fn add_token(
        &self,
        mut token: ApiToken,
        mut new_id: impl FnMut() -> String,
    ) -> Result<ApiToken, StoreError> {
        let tx = self.begin_write()?;
        {
            let mut table = tx.open_table(TOKENS)?;
            let mut tries = 0;
            token.id = loop {
                let id = new_id();
                if table.get(id.as_str())?.is_none() {
                    break id;
                }
                tries += 1;
                if tries == ID_TRIES {
                    return Err(StoreError::Conflict(format!("token {id}")));
                }
            };
            table.insert(token.id.as_str(), encode(&token).as_slice())?;
        }
        tx.commit()?;
        Ok(token)
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

    /// Notes a successful use of `token` (as just read) at `now`, to the minute
    /// ([`LAST_USED_EVERY`]). A use within the minute of the one recorded writes nothing and
    /// opens no write transaction: one that writes nothing still waits for, and holds off,
    /// every other writer, and a script's requests come many a second.
    pub fn touch_token(&self, token: &ApiToken, now: i64) -> Result<(), StoreError> {
        if now - token.last_used < LAST_USED_EVERY {
            return Ok(());
        }
        let id = token.id.as_str();
        let tx = self.begin_uncounted_write()?;
        {
            let mut table = tx.open_table(TOKENS)?;
            let found = table
                .get(id)?
                .map(|v| decode::<ApiToken>("tokens", id, v.value()))
                .transpose()?;
            // Another request may have noted a use since `token` was read.
            match found {
                Some(mut t) if now - t.last_used >= LAST_USED_EVERY => {
                    t.last_used = now;
                    table.insert(id, encode(&t).as_slice())?;
                }
                _ => return Ok(()),
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Role;

    fn token(user: &str) -> ApiToken {
        ApiToken {
            id: String::new(),
            user: user.into(),
            role: Role::Administrator,
            sites: Default::default(),
            hash: format!("hash-of-{user}"),
            created: 0,
            created_by: "admin".into(),
            last_used: 0,
            expires: None,
        }
    }

    /// A new token whose first id is taken is stored under the next one drawn: the user never
    /// sees a conflict over an id they did not choose, and the token holding it is untouched.
    #[test]
    fn a_colliding_id_is_drawn_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let first = store
            .add_token(token("ada"), || "0a1b2c3d".to_string())
            .unwrap();
        assert_eq!(first.id, "0a1b2c3d");

        let mut draws = ["0a1b2c3d", "0a1b2c3d", "ffee0011"].into_iter();
        let second = store
            .add_token(token("olivia"), || draws.next().unwrap().to_string())
            .unwrap();
        assert_eq!(second.id, "ffee0011");
        assert_eq!(draws.next(), None, "each draw tried once");
        let listed: Vec<(String, String)> = store
            .list_tokens()
            .unwrap()
            .into_iter()
            .map(|t| (t.id, t.user))
            .collect();
        assert_eq!(
            listed,
            [
                ("0a1b2c3d".to_string(), "ada".to_string()),
                ("ffee0011".to_string(), "olivia".to_string())
            ]
        );

        // A generator that only ever repeats itself is reported, not looped on.
        let stuck = store.add_token(token("eve"), || "0a1b2c3d".to_string());
        assert!(matches!(stuck, Err(StoreError::Conflict(_))), "{stuck:?}");
        assert_eq!(store.list_tokens().unwrap().len(), 2);
    }

    /// A use within the minute of the recorded one opens no write transaction: it neither
    /// waits for another writer nor holds one off. It opened one on every request, and so
    /// waited here for as long as the writer below was held.
    #[test]
    fn a_use_within_the_minute_takes_no_write_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let t = store.add_token(token("ada"), || "0a1b2c3d".into()).unwrap();
        let last_used = |store: &Store| store.list_tokens().unwrap()[0].last_used;
        store.touch_token(&t, 1_000).unwrap();
        assert_eq!(last_used(&store), 1_000, "the first use is written");
        let t = store.list_tokens().unwrap().remove(0);

        let writer = store.db().unwrap().begin_write().unwrap();
        let (done, finished) = std::sync::mpsc::channel();
        let other = store.clone();
        let again = t.clone();
        std::thread::spawn(move || done.send(other.touch_token(&again, 1_059)));
        let answer = finished.recv_timeout(std::time::Duration::from_secs(5));
        writer.abort().unwrap();
        assert!(
            matches!(answer, Ok(Ok(()))),
            "waited for the writer: {answer:?}"
        );
        assert_eq!(last_used(&store), 1_000, "kept to the minute");

        store.touch_token(&t, 1_060).unwrap();
        assert_eq!(last_used(&store), 1_060, "a minute on, written");
        // A copy read before that write notes nothing older over it.
        store.touch_token(&t, 1_061).unwrap();
        assert_eq!(last_used(&store), 1_060);
    }
}
