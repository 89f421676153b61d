//! What cloud sync keeps: the registration, the pull cursor, the cloud's catalogue data, and the
//! outbox of events for the cloud.
//!
//! The outbox is written in the same transaction as the change that caused each event (the
//! recorder's batch, a pulled page), so an event exists exactly when its cause does. It is keyed
//! by a monotonically increasing sequence number, which is the delivery order.

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use serde::{Deserialize, Serialize};

use super::alarms::AlarmEvent;
use super::{DEVICES, META, SITES, Store, StoreError, decode, encode};
use crate::model::{AlarmKind, CloudDevice, Device, DeviceState, Site, now_unix};
use crate::sync::protocol::{Event, EventBody, Lockout, new_event_id};

/// `registration`, `cursor`.
pub(crate) const SYNC_STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("sync_state");
/// The cloud's firmware catalogue, policies and lockouts: `firmware|MODEL|VERSION`,
/// `policy|SITE|MODEL`, `lockout|MAC`, each the item's JSON, `firmware_refused|MODEL|VERSION`,
/// a release of a page refused for its fields (`crate::firmware::cloud::Refused`), and
/// `firmware_unread`, the refusals of the last page's releases that named no model and version
/// (a list of them). The firmware, refusal and policy rows are read into the catalogue phones
/// are served from (`crate::firmware::cloud`).
pub(crate) const CLOUD_DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("cloud_data");
pub(crate) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// Coalescing key (`checkin|MAC`, `seen|MAC`, `alarm|KIND|SOURCE`, `overflow`) → the sequence
/// holding it.
pub(crate) const OUTBOX_INDEX: TableDefinition<&str, u64> = TableDefinition::new("outbox_index");

/// The key prefix of the cloud's lockouts in `cloud_data`.
const LOCKOUT: &str = "lockout|";
/// The key prefixes of the cloud's firmware releases and policies in `cloud_data`.
pub(crate) const CLOUD_FIRMWARE: &str = "firmware|";
pub(crate) const CLOUD_POLICY: &str = "policy|";
/// The key prefix of the cloud's releases refused at the pull (`sync::pull`), by the model and
/// version the cloud gave (quoted when they are not names).
pub(crate) const CLOUD_REFUSED: &str = "firmware_refused|";
/// The key of the refusals of the releases of the last page that brought releases that named
/// no model and version (`sync::pull`): such a refusal names no release the cloud could send
/// again or withdraw, so it lasts until the cloud's next releases rather than for good.
pub(crate) const CLOUD_UNREAD: &str = "firmware_unread";

fn is_catalogue_key(key: &str) -> bool {
    [CLOUD_FIRMWARE, CLOUD_POLICY, CLOUD_REFUSED, CLOUD_UNREAD]
        .iter()
        .any(|prefix| key.starts_with(prefix))
}
pub(super) const NEXT_SEQ: &str = "outbox_next_seq";
/// The coalescing key of the `outbox_overflow` event still open to new drops.
const OVERFLOW: &str = "overflow";

/// This box's registration with the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub url: String,
    /// The site this box serves (from the cloud's answer).
    pub site: String,
    #[serde(default)]
    pub appliance_id: String,
    pub registered_at: i64,
    /// Counts registrations (set by [`Store::put_registration`]): a page is applied only under
    /// the registration it was pulled under, never after the box registered again meanwhile.
    #[serde(default)]
    pub generation: u64,
}

/// One pulled page, validated and converted to model types (see `sync::pull`).
#[derive(Debug, Clone, Default)]
pub struct PullUpdate {
    /// The cursor the page continued from: the apply is refused if the stored one differs.
    pub from_cursor: String,
    /// The registration's generation the page was pulled under: the apply is refused if the
    /// box registered again since (the cursor alone may well match: it starts empty again).
    pub registration: u64,
    pub next_cursor: String,
    pub devices: Vec<CloudDevice>,
    pub sites: Vec<Site>,
    /// Key → the item's JSON, or `None` to remove the key (a release the cloud withdrew).
    pub cloud_data: Vec<(String, Option<Vec<u8>>)>,
}

impl PullUpdate {
    /// No change, and the cursor stays: the answer to every pull once caught up.
    pub fn changes_nothing(&self) -> bool {
        self.devices.is_empty()
            && self.sites.is_empty()
            && self.cloud_data.is_empty()
            && self.next_cursor == self.from_cursor
    }
}

/// An event to enqueue; events with a key replace a pending one with the same key in place.
#[derive(Debug, Clone)]
pub struct Pending {
    pub key: Option<String>,
    pub body: EventBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Stored {
    #[serde(default)]
    pub(super) key: Option<String>,
    pub(super) event: Event,
}

/// Outbox depth and the age of its oldest event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxDepth {
    pub events: u64,
    pub oldest_at: Option<i64>,
}

impl Store {
    pub fn registration(&self) -> Result<Option<Registration>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(SYNC_STATE)?;
        let found = t.get("registration")?;
        found
            .map(|v| decode("sync_state", "registration", v.value()))
            .transpose()
    }

    /// The site this box serves, when registered.
    pub fn home_site(&self) -> Result<Option<String>, StoreError> {
        Ok(self.registration()?.map(|r| r.site))
    }

    /// Records a registration, as the next generation after the one it replaces, and starts
    /// pulling from the beginning; turns the outbox on. Returns the registration as stored.
    pub fn put_registration(&self, reg: &Registration) -> Result<Registration, StoreError> {
        let tx = self.begin_write()?;
        let stored = {
            let mut t = tx.open_table(SYNC_STATE)?;
            let before: Option<Registration> = match t.get("registration")? {
                Some(v) => Some(decode("sync_state", "registration", v.value())?),
                None => None,
            };
            let stored = Registration {
                generation: before.map_or(0, |r| r.generation) + 1,
                ..reg.clone()
            };
            t.insert("registration", encode(&stored).as_slice())?;
            t.insert("cursor", encode(&String::new()).as_slice())?;
            stored
        };
        tx.commit()?;
        self.set_outbox_enabled(true);
        Ok(stored)
    }

    pub fn cursor(&self) -> Result<String, StoreError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(SYNC_STATE)?;
        let found = t.get("cursor")?;
        Ok(found
            .map(|v| decode("sync_state", "cursor", v.value()))
            .transpose()?
            .unwrap_or_default())
    }

    /// Applies one pulled page and its new cursor in one transaction, with the enrollment
    /// events the changes cause. A cursor that moved meanwhile is a conflict: nothing is written.
    /// A page that changes nothing commits nothing: a commit costs a disk sync and moves the
    /// generation on, which drops every file rendered for phones.
    pub fn apply_pull(&self, update: &PullUpdate) -> Result<(), StoreError> {
        if update.changes_nothing() {
            return Ok(());
        }
        let tx = self.begin_write()?;
        let mut pending = Vec::new();
        let mut catalogue_changed = false;
        {
            let mut state = tx.open_table(SYNC_STATE)?;
            let cursor: String = match state.get("cursor")? {
                Some(v) => decode("sync_state", "cursor", v.value())?,
                None => String::new(),
            };
            if cursor != update.from_cursor {
                return Err(StoreError::Conflict(format!(
                    "sync cursor moved from {:?} to {cursor:?}",
                    update.from_cursor
                )));
            }
            let reg: Option<Registration> = match state.get("registration")? {
                Some(v) => Some(decode("sync_state", "registration", v.value())?),
                None => None,
            };
            let generation = reg.as_ref().map_or(0, |r| r.generation);
            if generation != update.registration {
                return Err(StoreError::Superseded(format!(
                    "the page was pulled under registration {} and the box has registered \
                     again since (now {generation}): it is not applied",
                    update.registration
                )));
            }
            let home = reg.map(|r| r.site).unwrap_or_default();
            let mut devices = tx.open_table(DEVICES)?;
            let now = now_unix();
            for cloud in &update.devices {
                let key = cloud.mac.to_string();
                let old: Option<Device> = match devices.get(key.as_str())? {
                    Some(v) => Some(decode("devices", &key, v.value())?),
                    None => None,
                };
                let before = old.as_ref().map(|d| (d.state, d.site.clone()));
                let mut new = Device::apply_cloud(old, cloud);
                if before.is_none() {
                    new.created = now;
                }
                new.updated = now;
                devices.insert(key.as_str(), encode(&new).as_slice())?;
                if before != Some((new.state, new.site.clone())) {
                    pending.push(Pending {
                        key: None,
                        body: EventBody::Enrollment {
                            mac: key,
                            state: state_name(&new),
                            site: new.site.clone(),
                            serving_secrets: new
                                .state
                                .may_receive_secrets(!home.is_empty() && new.site == home),
                        },
                    });
                }
            }
            let mut sites = tx.open_table(SITES)?;
            for site in &update.sites {
                let old: Option<Site> = match sites.get(site.name.as_str())? {
                    Some(v) => Some(decode("sites", &site.name, v.value())?),
                    None => None,
                };
                let mut merged = site.clone();
                // Local: whether HTTP credentials count as proof is the site administrator's call.
                merged.allow_http_auth = old.is_some_and(|s| s.allow_http_auth);
                sites.insert(site.name.as_str(), encode(&merged).as_slice())?;
            }
            let mut data = tx.open_table(CLOUD_DATA)?;
            for (k, v) in &update.cloud_data {
                let before = match v {
                    Some(v) => data.insert(k.as_str(), v.as_slice())?,
                    None => data.remove(k.as_str())?,
                }
                .map(|old| old.value().to_vec());
                catalogue_changed |= is_catalogue_key(k) && before != *v;
            }
            // A device the cloud released is no longer in its inventory for this box: what
            // the cloud kept about it here goes with it (a later lockout in a later page is
            // stored again). Lockouts that ran out are dropped: they hold nothing any more.
            for cloud in &update.devices {
                if cloud.state == DeviceState::Released {
                    data.remove(lockout_key(&cloud.mac.to_string()).as_str())?;
                }
            }
            prune_expired_lockouts(&mut data, now)?;
            state.insert("cursor", encode(&update.next_cursor).as_slice())?;
        }
        // The releases kept for pins are checked again, as after a local change. A row that
        // cannot be read (it fails before anything is removed) must not refuse the page, or
        // the sync would stop at it for good: the check is left to the next change.
        if catalogue_changed {
            match super::firmware::drop_unneeded_kept(&tx) {
                Ok(()) => {}
                Err(e @ StoreError::Corrupt { .. }) => tracing::warn!(error = %e,
                    "firmware releases kept for pins not checked after a cloud pull"),
                Err(e) => return Err(e),
            }
        }
        let overflow = self.enqueue(&tx, pending)?;
        Store::raise_alarms(&tx, &overflow)?;
        self.commit_devices(tx)?;
        if catalogue_changed {
            self.cloud_catalogue.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// Moves on after every applied page that changed the cloud's firmware releases or
    /// policies (not at every page: the cloud may repeat them unchanged), so that the firmware
    /// service reloads the catalogue phones are served from.
    pub fn cloud_catalogue_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.cloud_catalogue.subscribe()
    }

    /// Cloud catalogue data stored by pulls, by key prefix (`firmware|`, `policy|`, `lockout|`).
    pub fn cloud_data(&self, prefix: &str) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(CLOUD_DATA)?;
        let mut out = Vec::new();
        for row in t.range(prefix..)? {
            let (k, v) = row?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((
                k.value().to_string(),
                decode("cloud_data", k.value(), v.value())?,
            ));
        }
        Ok(out)
    }

    /// Adds events to the outbox inside `tx`. Keyed events replace their pending predecessor in
    /// place (a new id, the old position); when the outbox is at its bound, check-ins and
    /// sightings are dropped and counted, other events are kept up to twice the bound. Returns the
    /// local alarm to raise, in the same transaction, when anything was dropped.
    pub(super) fn enqueue(
        &self,
        tx: &WriteTransaction,
        items: Vec<Pending>,
    ) -> Result<Vec<AlarmEvent>, StoreError> {
        let Some(max) = self.outbox_bound() else {
            return Ok(Vec::new());
        };
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut outbox = tx.open_table(OUTBOX)?;
        let mut index = tx.open_table(OUTBOX_INDEX)?;
        let mut meta = tx.open_table(META)?;
        let mut next = meta.get(NEXT_SEQ)?.map(|v| v.value()).unwrap_or(1);
        let mut len = outbox.len()?;
        let now = now_unix();
        let mut dropped = 0u64;
        let mut put = |outbox: &mut redb::Table<u64, &[u8]>,
                       index: &mut redb::Table<&str, u64>,
                       key: Option<String>,
                       body: EventBody|
         -> Result<bool, StoreError> {
            let stored = Stored {
                key: key.clone(),
                event: Event {
                    id: new_event_id(),
                    at: now,
                    body,
                },
            };
            if let Some(k) = &key
                && let Some(seq) = index.get(k.as_str())?.map(|v| v.value())
                && outbox.get(seq)?.is_some()
            {
                outbox.insert(seq, encode(&stored).as_slice())?;
                return Ok(false);
            }
            outbox.insert(next, encode(&stored).as_slice())?;
            if let Some(k) = &key {
                index.insert(k.as_str(), next)?;
            }
            next += 1;
            Ok(true)
        };
        for item in items {
            let replaceable = match &item.key {
                Some(k) => index.get(k.as_str())?.is_some(),
                None => false,
            };
            let bound = if droppable(&item.body) { max } else { max * 2 };
            if !replaceable && len >= bound {
                dropped += 1;
                continue;
            }
            if put(&mut outbox, &mut index, item.key, item.body)? {
                len += 1;
            }
        }
        let mut alarms = Vec::new();
        if dropped > 0 {
            let before = match index.get(OVERFLOW)?.map(|v| v.value()) {
                Some(seq) => match outbox.get(seq)? {
                    Some(v) => match decode::<Stored>("outbox", "overflow", v.value())?
                        .event
                        .body
                    {
                        EventBody::OutboxOverflow { dropped } => dropped,
                        _ => 0,
                    },
                    None => 0,
                },
                None => 0,
            };
            let total = before + dropped;
            put(
                &mut outbox,
                &mut index,
                Some(OVERFLOW.to_string()),
                EventBody::OutboxOverflow { dropped: total },
            )?;
            alarms.push(AlarmEvent {
                kind: AlarmKind::OutboxOverflow,
                severity: AlarmKind::OutboxOverflow.severity(),
                source: "sync".into(),
                message: format!(
                    "cloud outbox full: {total} events not kept since the cloud was last told"
                ),
                at: now,
            });
        }
        meta.insert(NEXT_SEQ, next)?;
        Ok(alarms)
    }

    /// The oldest `limit` events, in delivery order, taken for delivery. The `outbox_overflow`
    /// event among them, if any, is closed: later drops are counted in a new one. Once taken,
    /// its count may reach the cloud (even when the answer is lost), so it must not grow
    /// under a new id as check-ins are replaced: the cloud would count the same drops twice.
    /// Closed or not, an entry leaves the outbox only when acknowledged.
    pub fn outbox_peek(&self, limit: usize) -> Result<Vec<(u64, Event)>, StoreError> {
        let tx = self.db()?.begin_read()?;
        let batch = first_events(&tx.open_table(OUTBOX)?, limit)?;
        let open = tx
            .open_table(OUTBOX_INDEX)?
            .get(OVERFLOW)?
            .map(|v| v.value());
        if !open.is_some_and(|seq| batch.iter().any(|(s, _)| *s == seq)) {
            return Ok(batch);
        }
        // Read again under the write lock, so that no drop is added to the entry between
        // reading what is sent and closing it.
        let tx = self.begin_uncounted_write()?;
        let batch = {
            let batch = first_events(&tx.open_table(OUTBOX)?, limit)?;
            let mut index = tx.open_table(OUTBOX_INDEX)?;
            let open = index.get(OVERFLOW)?.map(|v| v.value());
            if open.is_some_and(|seq| batch.iter().any(|(s, _)| *s == seq)) {
                index.remove(OVERFLOW)?;
            }
            batch
        };
        tx.commit()?;
        Ok(batch)
    }

    /// Removes delivered events. An entry replaced since it was read (a newer check-in under
    /// the same sequence, with a new id) stays to be delivered next time. Uncounted: no file
    /// depends on the outbox, and a delivered batch (one a second in a boot storm) must not
    /// drop every file rendered for phones.
    pub fn outbox_ack(&self, delivered: &[(u64, String)]) -> Result<(), StoreError> {
        let tx = self.begin_uncounted_write()?;
        {
            let mut outbox = tx.open_table(OUTBOX)?;
            let mut index = tx.open_table(OUTBOX_INDEX)?;
            for (seq, id) in delivered {
                let stored: Option<Stored> = match outbox.get(*seq)? {
                    Some(v) => Some(decode("outbox", &seq.to_string(), v.value())?),
                    None => None,
                };
                let Some(stored) = stored.filter(|s| &s.event.id == id) else {
                    continue;
                };
                outbox.remove(*seq)?;
                if let Some(k) = stored.key
                    && index.get(k.as_str())?.map(|v| v.value()) == Some(*seq)
                {
                    index.remove(k.as_str())?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn outbox_depth(&self) -> Result<OutboxDepth, StoreError> {
        let tx = self.db()?.begin_read()?;
        let t = tx.open_table(OUTBOX)?;
        let oldest_at = match t.first()? {
            Some((k, v)) => Some(
                decode::<Stored>("outbox", &k.value().to_string(), v.value())?
                    .event
                    .at,
            ),
            None => None,
        };
        Ok(OutboxDepth {
            events: t.len()?,
            oldest_at,
        })
    }
}

fn lockout_key(mac: &str) -> String {
    format!("{LOCKOUT}{mac}")
}

/// Removes what the cloud keeps here about one device (its lockout), inside `tx`: called by
/// every change that removes the device, so no row outlives it.
pub(super) fn forget_cloud_device(tx: &WriteTransaction, mac: &str) -> Result<(), StoreError> {
    tx.open_table(CLOUD_DATA)?
        .remove(lockout_key(mac).as_str())?;
    Ok(())
}

/// Removes the lockouts whose `until` has passed.
fn prune_expired_lockouts(data: &mut redb::Table<&str, &[u8]>, now: i64) -> Result<(), StoreError> {
    let mut expired = Vec::new();
    for row in data.range(LOCKOUT..)? {
        let (k, v) = row?;
        if !k.value().starts_with(LOCKOUT) {
            break;
        }
        let lockout: Lockout = decode("cloud_data", k.value(), v.value())?;
        if lockout.until < now {
            expired.push(k.value().to_string());
        }
    }
    for key in expired {
        data.remove(key.as_str())?;
    }
    Ok(())
}

/// The first `limit` events of the outbox table, in delivery order.
fn first_events(
    table: &impl ReadableTable<u64, &'static [u8]>,
    limit: usize,
) -> Result<Vec<(u64, Event)>, StoreError> {
    let mut out = Vec::new();
    for row in table.iter()?.take(limit) {
        let (k, v) = row?;
        let stored: Stored = decode("outbox", &k.value().to_string(), v.value())?;
        out.push((k.value(), stored.event));
    }
    Ok(out)
}

/// Check-ins and sightings give way first when the outbox is full: the device's record keeps
/// its latest check-in anyway. So do refusals: peers cause them at will (one per kind and
/// source is pending, but a host may use many addresses), and the local alarm table counts
/// them. Other alarms and enrollment events (coalesced or not) are kept up to twice the bound.
fn droppable(body: &EventBody) -> bool {
    matches!(
        body,
        EventBody::CheckIn { .. } | EventBody::SeenUnclaimed { .. } | EventBody::Refusal { .. }
    )
}

fn state_name(d: &Device) -> String {
    serde_json::to_value(d.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::{DeviceState, Mac};

    fn store(max: u64) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        s.put_registration(&Registration {
            url: "https://cloud".into(),
            site: "hq".into(),
            appliance_id: String::new(),
            registered_at: 0,
            generation: 0,
        })
        .unwrap();
        s.set_outbox_max(max);
        (dir, s)
    }

    fn checkin(mac: &str, file: &str) -> Pending {
        Pending {
            key: Some(format!("checkin|{mac}")),
            body: EventBody::CheckIn {
                mac: mac.into(),
                ip: String::new(),
                firmware: String::new(),
                user_agent: String::new(),
                file: file.into(),
                proof: Default::default(),
            },
        }
    }

    fn alarm(n: u32) -> Pending {
        Pending {
            key: None,
            body: EventBody::Alarm {
                kind: "x".into(),
                severity: "minor".into(),
                source: n.to_string(),
                message: String::new(),
            },
        }
    }

    fn enqueue(s: &Store, items: Vec<Pending>) -> Vec<AlarmEvent> {
        let tx = s.db().unwrap().begin_write().unwrap();
        let alarms = s.enqueue(&tx, items).unwrap();
        tx.commit().unwrap();
        alarms
    }

    #[test]
    fn nothing_is_kept_before_registration() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("db")).unwrap();
        enqueue(&s, vec![alarm(1)]);
        assert_eq!(s.outbox_depth().unwrap().events, 0);
    }

    #[test]
    fn checkins_coalesce_in_place_and_a_replaced_entry_survives_its_ack() {
        let (_d, s) = store(100);
        enqueue(&s, vec![checkin("a", "1"), alarm(1), checkin("a", "2")]);
        let first = s.outbox_peek(10).unwrap();
        assert_eq!(first.len(), 2);
        assert!(matches!(&first[0].1.body, EventBody::CheckIn { file, .. } if file == "2"));
        // A newer check-in replaces the one in flight: acknowledging the old id keeps it.
        enqueue(&s, vec![checkin("a", "3")]);
        let sent: Vec<_> = first.iter().map(|(q, e)| (*q, e.id.clone())).collect();
        let generation = s.generation();
        s.outbox_ack(&sent).unwrap();
        assert_eq!(s.generation(), generation, "rendered files stay");
        let left = s.outbox_peek(10).unwrap();
        assert_eq!(left.len(), 1);
        assert!(matches!(&left[0].1.body, EventBody::CheckIn { file, .. } if file == "3"));
        s.outbox_ack(&[(left[0].0, left[0].1.id.clone())]).unwrap();
        assert_eq!(s.outbox_depth().unwrap().events, 0);
        // The index was cleared: a later check-in is a new entry at the end.
        enqueue(&s, vec![alarm(2), checkin("a", "4")]);
        let again = s.outbox_peek(10).unwrap();
        assert!(again[0].0 < again[1].0);
    }

    #[test]
    fn overflow_drops_checkins_keeps_alarms_and_says_so() {
        let (_d, s) = store(3);
        let mut items: Vec<Pending> = (0..5).map(|i| checkin(&i.to_string(), "f")).collect();
        items.extend((0..3).map(alarm));
        let raised = enqueue(&s, items);
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].kind, AlarmKind::OutboxOverflow);
        // Counts coalesce until the overflow event is taken for delivery...
        enqueue(&s, vec![checkin("9", "f")]);
        let events = s.outbox_peek(100).unwrap();
        let alarms = events
            .iter()
            .filter(|(_, e)| matches!(e.body, EventBody::Alarm { .. }))
            .count();
        assert_eq!(alarms, 3, "alarms are kept beyond the bound");
        let overflows = |events: &[(u64, Event)]| -> Vec<EventBody> {
            events
                .iter()
                .filter(|(_, e)| matches!(e.body, EventBody::OutboxOverflow { .. }))
                .map(|(_, e)| e.body.clone())
                .collect()
        };
        assert_eq!(
            overflows(&events),
            [EventBody::OutboxOverflow { dropped: 3 }]
        );
        // ... then later drops are counted in a new one.
        enqueue(&s, vec![checkin("10", "f")]);
        assert_eq!(
            overflows(&s.outbox_peek(100).unwrap()),
            [
                EventBody::OutboxOverflow { dropped: 3 },
                EventBody::OutboxOverflow { dropped: 1 }
            ]
        );
    }

    /// Refusals are the peers' to cause: from as many sources as a host has addresses, they
    /// fill the outbox only to its bound, as sightings do, and leave the rest to the box's
    /// own alarms and enrollment events.
    #[test]
    fn refusals_give_way_at_the_bound() {
        let (_d, s) = store(3);
        let refusal = |n: u32| Pending {
            key: Some(format!("alarm|secret_without_proof|10.0.0.{n}")),
            body: EventBody::Refusal {
                kind: "secret_without_proof".into(),
                source: format!("10.0.0.{n}"),
                message: String::new(),
            },
        };
        let raised = enqueue(&s, (0..10).map(refusal).collect());
        assert_eq!(raised.len(), 1, "the drop is alarmed");
        // Twice the bound, less the refusals and the overflow event.
        enqueue(&s, (0..2).map(alarm).collect());
        let events = s.outbox_peek(100).unwrap();
        let count = |refusals: bool| {
            events
                .iter()
                .filter(|(_, e)| matches!(e.body, EventBody::Refusal { .. }) == refusals)
                .filter(|(_, e)| !matches!(e.body, EventBody::OutboxOverflow { .. }))
                .count()
        };
        assert_eq!(count(true), 3, "refusals up to the bound only");
        assert_eq!(count(false), 2, "the box's alarms still fit");
    }

    /// Sync's own alarms recur at every retry, and an exhausted DHCP pool while it stays full:
    /// each kind and source takes one outbox entry (the latest message), kept beyond the
    /// check-ins' bound, while the alarm table counts every one.
    #[test]
    fn repeated_sync_alarms_take_one_outbox_entry_each() {
        let (_d, s) = store(3);
        enqueue(
            &s,
            vec![checkin("a", "f"), checkin("b", "f"), checkin("c", "f")],
        );
        let (recorder, thread) = super::super::Recorder::start(s.clone()).expect("recorder thread");
        for i in 0..5 {
            recorder.alarm(AlarmKind::SyncRejected, "sync", format!("bad page {i}"));
            recorder.alarm(AlarmKind::SyncFailed, "sync", format!("failing {i}"));
            recorder.alarm(
                AlarmKind::DhcpPoolExhausted,
                "10.0.0.0/24",
                format!("full {i}"),
            );
            recorder.flush_blocking();
        }
        recorder.stop();
        thread.join().unwrap();
        let alarms: Vec<(String, String)> = s
            .outbox_peek(100)
            .unwrap()
            .into_iter()
            .filter_map(|(_, e)| match e.body {
                EventBody::Alarm { kind, message, .. } => Some((kind, message)),
                _ => None,
            })
            .collect();
        assert_eq!(
            alarms,
            [
                ("sync_rejected".to_string(), "bad page 4".to_string()),
                ("sync_failed".to_string(), "failing 4".to_string()),
                ("dhcp_pool_exhausted".to_string(), "full 4".to_string())
            ]
        );
        let counted = s.list_alarms().unwrap();
        assert!(
            counted
                .iter()
                .any(|a| a.kind == AlarmKind::SyncRejected && a.count == 5),
            "{counted:?}"
        );
    }

    /// The overflow count taken for delivery is closed: drops after that go into a new
    /// event, so the counts the cloud keeps (one per id) add up to the drops, whether the
    /// first delivery is acknowledged or its answer is lost and it is sent again.
    #[test]
    fn overflow_counts_add_up_across_deliveries() {
        let overflows = |batches: &[&Vec<(u64, Event)>]| -> BTreeMap<String, u64> {
            batches
                .iter()
                .flat_map(|b| b.iter())
                .filter_map(|(_, e)| match e.body {
                    EventBody::OutboxOverflow { dropped } => Some((e.id.clone(), dropped)),
                    _ => None,
                })
                .collect()
        };
        let ack = |s: &Store, batch: &Vec<(u64, Event)>| {
            let sent: Vec<_> = batch.iter().map(|(q, e)| (*q, e.id.clone())).collect();
            s.outbox_ack(&sent).unwrap();
        };
        for answer_lost in [false, true] {
            let (_d, s) = store(1);
            enqueue(
                &s,
                vec![checkin("a", "f"), checkin("b", "f"), checkin("c", "f")],
            );
            let first = s.outbox_peek(10).unwrap();
            enqueue(&s, vec![checkin("d", "f"), checkin("e", "f")]);
            if !answer_lost {
                ack(&s, &first);
            }
            let second = s.outbox_peek(10).unwrap();
            ack(&s, &second);
            let counted = overflows(&[&first, &second]);
            assert_eq!(counted.values().sum::<u64>(), 4, "{counted:?}");
            assert_eq!(s.outbox_depth().unwrap().events, 0);
        }
    }

    fn cloud_device(mac: Mac, state: DeviceState) -> CloudDevice {
        CloudDevice {
            mac,
            state,
            site: String::new(),
            group: String::new(),
            model: String::new(),
            serial: String::new(),
            params: BTreeMap::new(),
        }
    }

    fn lockout(mac: Mac, until: i64) -> (String, Option<Vec<u8>>) {
        let l = Lockout {
            mac: mac.to_string(),
            until,
        };
        (
            format!("lockout|{mac}"),
            Some(serde_json::to_vec(&l).unwrap()),
        )
    }

    fn locked_out(s: &Store) -> Vec<String> {
        s.cloud_data("lockout|")
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    }

    /// A page that changes the cloud's firmware releases or policies signals the firmware
    /// service to reload; one that repeats them unchanged (the cloud may send them with every
    /// page) does not. A withdrawn release (`None`) is deleted, leaving the catalogue.
    #[test]
    fn a_catalogue_change_is_signalled_and_a_withdrawn_release_removed() {
        let (_d, s) = store(100);
        let mut changes = s.cloud_catalogue_changes();
        let release = crate::sync::protocol::FirmwareRelease {
            model: "J179".into(),
            version: "4.1.3".into(),
            url: "https://fw.example/j179.bin".into(),
            sha256: "a".repeat(64),
            removed: false,
        };
        let key = "firmware|J179|4.1.3".to_string();
        let page = |from: &str, to: &str, value: Option<Vec<u8>>| PullUpdate {
            from_cursor: from.into(),
            registration: 1,
            next_cursor: to.into(),
            cloud_data: vec![(key.clone(), value)],
            ..PullUpdate::default()
        };
        let json = Some(serde_json::to_vec(&release).unwrap());
        s.apply_pull(&page("", "1", json.clone())).unwrap();
        assert!(changes.has_changed().unwrap());
        assert_eq!(s.firmware_catalogue().unwrap().releases[0].file, "j179.bin");
        changes.mark_unchanged();

        s.apply_pull(&page("1", "2", json)).unwrap();
        assert!(!changes.has_changed().unwrap(), "the same release again");

        s.apply_pull(&page("2", "3", None)).unwrap();
        assert!(changes.has_changed().unwrap());
        assert!(s.cloud_data("firmware|").unwrap().is_empty());
        assert!(s.firmware_catalogue().unwrap().releases.is_empty());
    }

    /// What the cloud keeps here about a device (its lockout) goes in the same transaction
    /// as the device: deleted locally, or released by the cloud. Lockouts that ran out go
    /// with the next applied page. Catalogue rows (firmware, policies) stay.
    #[test]
    fn cloud_data_of_gone_devices_is_removed() {
        let (_d, s) = store(100);
        let mac = |n: u8| Mac::parse(&format!("0011220000{n:02x}")).unwrap();
        let later = now_unix() + 3600;
        let mut data = vec![lockout(mac(1), later), lockout(mac(2), later)];
        data.push(lockout(mac(3), later));
        data.push(lockout(mac(4), now_unix() - 1));
        data.push(("policy|hq|J179".into(), Some(b"{}".to_vec())));
        s.apply_pull(&PullUpdate {
            from_cursor: String::new(),
            registration: 1,
            next_cursor: "1".into(),
            devices: (1..=4)
                .map(|n| cloud_device(mac(n), DeviceState::Claimed))
                .collect(),
            cloud_data: data,
            ..PullUpdate::default()
        })
        .unwrap();
        // The expired one went with the page that brought it.
        assert_eq!(
            locked_out(&s),
            [1, 2, 3].map(|n| format!("lockout|{}", mac(n)))
        );

        s.delete_device(mac(1)).unwrap().unwrap();
        assert_eq!(
            locked_out(&s),
            [2, 3].map(|n| format!("lockout|{}", mac(n)))
        );

        s.apply_pull(&PullUpdate {
            from_cursor: "1".into(),
            registration: 1,
            next_cursor: "2".into(),
            devices: vec![
                cloud_device(mac(2), DeviceState::Released),
                cloud_device(mac(3), DeviceState::Deactivated),
            ],
            ..PullUpdate::default()
        })
        .unwrap();
        assert_eq!(locked_out(&s), [format!("lockout|{}", mac(3))]);
        assert_eq!(s.cloud_data("policy|").unwrap().len(), 1);
    }

    /// A page pulled under one registration is refused once the box registered again, even
    /// though the cursor (empty again) matches; nothing of it is written.
    #[test]
    fn a_page_from_before_registering_again_is_not_applied() {
        let (_d, s) = store(100);
        let reg = s.registration().unwrap().unwrap();
        assert_eq!(reg.generation, 1);
        let page = PullUpdate {
            from_cursor: String::new(),
            registration: reg.generation,
            next_cursor: "1".into(),
            devices: vec![cloud_device(
                Mac::parse("001122aabbcc").unwrap(),
                DeviceState::Claimed,
            )],
            ..PullUpdate::default()
        };
        let again = s
            .put_registration(&Registration {
                url: "https://other-cloud".into(),
                ..reg
            })
            .unwrap();
        assert_eq!(again.generation, 2);
        let generation = s.generation();
        let e = s.apply_pull(&page).unwrap_err();
        assert!(matches!(e, StoreError::Superseded(_)), "{e}");
        assert_eq!(s.generation(), generation);
        assert_eq!(s.cursor().unwrap(), "");
        assert!(s.list_devices().unwrap().is_empty());
        assert_eq!(s.outbox_depth().unwrap().events, 0);
        s.apply_pull(&PullUpdate {
            registration: 2,
            ..page
        })
        .unwrap();
        assert_eq!(s.cursor().unwrap(), "1");
    }

    #[test]
    fn pull_applies_with_its_cursor_or_not_at_all() {
        let (_d, s) = store(100);
        let mac = Mac::parse("001122aabbcc").unwrap();
        let update = PullUpdate {
            from_cursor: String::new(),
            registration: 1,
            next_cursor: "1".into(),
            devices: vec![CloudDevice {
                mac,
                state: DeviceState::Activated,
                site: "hq".into(),
                group: "7".into(),
                model: "J179".into(),
                serial: String::new(),
                params: [("A".to_string(), "cloud".to_string())].into(),
            }],
            ..PullUpdate::default()
        };
        s.apply_pull(&update).unwrap();
        assert_eq!(s.cursor().unwrap(), "1");
        // Caught up: a page with nothing and the same cursor writes nothing.
        let generation = s.generation();
        s.apply_pull(&PullUpdate {
            from_cursor: "1".into(),
            registration: 1,
            next_cursor: "1".into(),
            ..PullUpdate::default()
        })
        .unwrap();
        assert_eq!(s.generation(), generation);
        let events = s.outbox_peek(10).unwrap();
        assert!(matches!(&events[0].1.body,
            EventBody::Enrollment { serving_secrets: true, state, .. } if state == "activated"));
        // The same page again (stale cursor): refused, nothing written.
        assert!(matches!(
            s.apply_pull(&update),
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(s.outbox_peek(10).unwrap().len(), 1);
        // Local parameters win over the cloud's when rendering.
        s.update_device(mac, |d| {
            d.params.insert("A".into(), "local".into());
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
        let ctx = s.device_context(mac).unwrap().unwrap();
        assert_eq!(ctx.device.params["A"], "local");
    }
}
