//! Events the cloud refused for good, moved out of the outbox so that they hold back no later
//! event, and kept where an operator sees them (`GET /api/v1/sync/rejected`) until requeued.
//!
//! An event is moved in one transaction with its removal from the outbox and the local
//! `sync_event_rejected` alarm: it is in exactly one of the two tables, never in neither.

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use super::alarms::AlarmEvent;
use super::sync::{NEXT_SEQ, OUTBOX, OUTBOX_INDEX, Stored};
use super::{ALARMS, META, Store, StoreError, decode, encode};
use crate::model::{AlarmKind, MAX_MESSAGE, clip, now_unix};
use crate::sync::protocol::Event;

/// The outbox sequence the event had → [`DeadLetter`].
pub(crate) const DEAD_LETTERS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("sync_dead_letters");
/// How many rejected events were dropped, oldest first, to keep at most [`MAX_DEAD_LETTERS`].
const DROPPED: &str = "dead_letters_dropped";
/// Rejected events kept. A cloud that refuses everything moves the whole outbox here, one
/// event at a time; beyond this the oldest go, counted (in the status and the alarm).
pub const MAX_DEAD_LETTERS: u64 = 10_000;
/// Most characters of the cloud's reason kept with an event.
const REASON: usize = 256;

/// An event the cloud refused, with its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Its place in the outbox (delivery order) when it was refused.
    pub seq: u64,
    pub event: Event,
    /// Unix seconds.
    pub rejected_at: i64,
    /// The HTTP status the cloud answered (400, 413 or 422).
    pub status: u16,
    /// The start of the cloud's answer.
    pub reason: String,
}

/// `GET /api/v1/sync/rejected`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetters {
    /// Rejected events kept.
    pub count: u64,
    /// Rejected events dropped (oldest first) beyond [`MAX_DEAD_LETTERS`].
    pub dropped: u64,
    /// The oldest first, at most as many as asked for.
    pub events: Vec<DeadLetter>,
}

impl Store {
    /// Moves the outbox entry `seq` to the rejected events, if it still holds the event `id`
    /// (a newer check-in that replaced it meanwhile stays to be sent), and raises the local
    /// `sync_event_rejected` alarm, in one transaction. Returns whether it was moved.
    pub fn outbox_reject(
        &self,
        seq: u64,
        id: &str,
        status: u16,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let tx = self.begin_uncounted_write()?;
        let now = now_unix();
        let reason = clip(reason, REASON);
        {
            let mut outbox = tx.open_table(OUTBOX)?;
            let stored: Option<Stored> = match outbox.get(seq)? {
                Some(v) => Some(decode("outbox", &seq.to_string(), v.value())?),
                None => None,
            };
            let Some(stored) = stored.filter(|s| s.event.id == id) else {
                return Ok(false);
            };
            outbox.remove(seq)?;
            let mut index = tx.open_table(OUTBOX_INDEX)?;
            if let Some(k) = &stored.key
                && index.get(k.as_str())?.map(|v| v.value()) == Some(seq)
            {
                index.remove(k.as_str())?;
            }
            let kind = serde_json::to_value(&stored.event)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_string))
                .unwrap_or_default();
            let letter = DeadLetter {
                seq,
                event: stored.event,
                rejected_at: now,
                status,
                reason: reason.clone(),
            };
            let mut letters = tx.open_table(DEAD_LETTERS)?;
            letters.insert(seq, encode(&letter).as_slice())?;
            let mut meta = tx.open_table(META)?;
            let mut dropped = meta.get(DROPPED)?.map_or(0, |v| v.value());
            while letters.len()? > MAX_DEAD_LETTERS {
                letters.pop_first()?;
                dropped += 1;
            }
            meta.insert(DROPPED, dropped)?;
            let count = letters.len()?;
            let message = format!(
                "the cloud refused the {kind} event {id} (HTTP {status}: {reason}); it is kept \
                 with the rejected events ({count} now{}), which hold back no other event: see \
                 them with `edgeprov cloud rejected`, and requeue them with `edgeprov cloud \
                 rejected --requeue` once the cloud takes them",
                match dropped {
                    0 => String::new(),
                    n => format!(", {n} older ones dropped"),
                },
                id = letter.event.id,
            );
            Store::raise_alarms(
                &tx,
                &[AlarmEvent {
                    kind: AlarmKind::SyncEventRejected,
                    severity: AlarmKind::SyncEventRejected.severity(),
                    source: "sync".into(),
                    message: clip(&message, MAX_MESSAGE),
                    at: now,
                }],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// The rejected events, oldest first, at most `limit` of them, with how many there are.
    pub fn dead_letters(&self, limit: usize) -> Result<DeadLetters, StoreError> {
        let tx = self.db()?.begin_read()?;
        let letters = tx.open_table(DEAD_LETTERS)?;
        let mut events = Vec::new();
        for row in letters.iter()?.take(limit) {
            let (k, v) = row?;
            events.push(decode(
                "sync_dead_letters",
                &k.value().to_string(),
                v.value(),
            )?);
        }
        let dropped = tx.open_table(META)?.get(DROPPED)?.map_or(0, |v| v.value());
        Ok(DeadLetters {
            count: letters.len()?,
            dropped,
            events,
        })
    }

    /// Puts every rejected event back at the end of the outbox, as it was (same id: the cloud
    /// never took it), and clears the `sync_event_rejected` alarm, in one transaction. For
    /// when the cloud was fixed to take them. Returns how many were requeued.
    pub fn requeue_dead_letters(&self) -> Result<u64, StoreError> {
        let tx = self.begin_uncounted_write()?;
        let moved = {
            let mut letters = tx.open_table(DEAD_LETTERS)?;
            let mut outbox = tx.open_table(OUTBOX)?;
            let mut meta = tx.open_table(META)?;
            let mut next = meta.get(NEXT_SEQ)?.map_or(1, |v| v.value());
            let mut moved = 0;
            while let Some((k, v)) = letters.pop_first()? {
                let letter: DeadLetter =
                    decode("sync_dead_letters", &k.value().to_string(), v.value())?;
                // Not coalesced again: a newer entry for the same device may be pending.
                let stored = Stored {
                    key: None,
                    event: letter.event,
                };
                outbox.insert(next, encode(&stored).as_slice())?;
                next += 1;
                moved += 1;
            }
            meta.insert(NEXT_SEQ, next)?;
            let alarm = format!("{}|sync", AlarmKind::SyncEventRejected.as_str());
            tx.open_table(ALARMS)?.remove(alarm.as_str())?;
            moved
        };
        tx.commit()?;
        Ok(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Pending, Registration};
    use crate::sync::protocol::EventBody;

    fn sighting(mac: &str) -> Pending {
        Pending {
            key: Some(format!("seen|{mac}")),
            body: EventBody::SeenUnclaimed {
                mac: mac.into(),
                ip: String::new(),
                user_agent: String::new(),
                file: "f".into(),
                proof: Default::default(),
            },
        }
    }

    /// A refused event leaves the outbox for the rejected events in one step, with its
    /// alarm; one replaced meanwhile stays; requeued, it goes to the end of the outbox with
    /// its id, and the alarm goes.
    #[test]
    fn a_rejected_event_is_kept_apart_and_can_be_requeued() {
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
        let tx = s.db().unwrap().begin_write().unwrap();
        s.enqueue(&tx, vec![sighting("a"), sighting("b"), sighting("c")])
            .unwrap();
        tx.commit().unwrap();
        let batch = s.outbox_peek(10).unwrap();
        let (seq, bad) = (batch[1].0, batch[1].1.clone());
        assert!(!s.outbox_reject(seq, "another id", 422, "no").unwrap());
        assert!(
            s.outbox_reject(seq, &bad.id, 422, "mac b is blocked")
                .unwrap()
        );
        assert_eq!(s.outbox_depth().unwrap().events, 2);
        let letters = s.dead_letters(10).unwrap();
        assert_eq!(letters.count, 1);
        assert_eq!(letters.events[0].event, bad);
        assert_eq!(letters.events[0].status, 422);
        let alarms = s.list_alarms().unwrap();
        let alarm = alarms
            .iter()
            .find(|a| a.kind == AlarmKind::SyncEventRejected)
            .unwrap();
        assert!(
            alarm.message.contains("mac b is blocked"),
            "{}",
            alarm.message
        );
        assert!(alarm.message.contains(&bad.id), "{}", alarm.message);

        assert_eq!(s.requeue_dead_letters().unwrap(), 1);
        let again = s.outbox_peek(10).unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(again[2].1, bad);
        assert!(again[2].0 > again[1].0);
        assert_eq!(s.dead_letters(10).unwrap().count, 0);
        assert!(
            !s.list_alarms()
                .unwrap()
                .iter()
                .any(|a| a.kind == AlarmKind::SyncEventRejected)
        );
    }
}
