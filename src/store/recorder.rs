//! The recorder: check-ins and alarms are written by one thread in batches, one transaction per
//! batch, so a phone's response never waits for a disk sync and a boot storm of thousands of
//! phones costs a handful of commits instead of thousands. Once an event arrives the thread
//! keeps gathering for [`LINGER`] (or until a batch is full, or someone waits on a flush), so
//! under load every commit — and its disk sync — carries hundreds of check-ins. While it
//! gathers it sleeps rather than waiting on the channel: a check-in then costs the request no
//! wake-up of this thread; a flush or stop wakes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::Thread;
use std::time::{Duration, Instant};

use redb::ReadableTable;

use super::alarms::AlarmEvent;
use super::sync::Pending;
use super::{DEVICES, Store, StoreError, decode, encode};
use crate::log_throttle::LogThrottle;
use crate::model::{
    AlarmKind, CheckIn, CheckInProof, Device, MAX_MESSAGE, Mac, Severity, clip, now_unix,
};
use crate::supervise::Watched;
use crate::sync::protocol::EventBody;

/// Queue bound: beyond this the request path drops events (counted, then alarmed) rather than
/// block or grow memory without limit. Counted by hand over an unbounded channel, whose memory
/// follows what is queued: a bounded one allocates every slot up front (about 9 MB for this
/// bound, resident all the time).
const QUEUE: usize = 65_536;
/// Largest batch written in one transaction.
const BATCH: usize = 8_192;
/// How long a batch keeps gathering after its first event. Nothing waits on a check-in (a
/// flush cuts the wait short), and a boot storm then costs about ten commits a second.
const LINGER: Duration = Duration::from_millis(100);

pub enum RecorderEvent {
    CheckIn(Mac, CheckIn),
    Alarm {
        kind: AlarmKind,
        severity: Severity,
        source: String,
        message: String,
    },
    /// Asks for everything queued so far to be committed, then answers.
    Flush(std::sync::mpsc::Sender<()>),
    Stop,
}

/// A cloneable sender into the recorder thread.
#[derive(Clone)]
pub struct Recorder {
    tx: Sender<RecorderEvent>,
    dropped: Arc<AtomicU64>,
    /// Check-ins and alarms sent and not yet taken by the thread.
    queued: Arc<AtomicUsize>,
    /// The recorder thread, woken when someone waits for a commit.
    thread: Thread,
    /// Log lines of alarms a peer causes, per kind ([`AlarmKind::source_from_peers`]).
    peer_alarm_lines: Arc<Mutex<HashMap<AlarmKind, LogThrottle>>>,
}

impl Recorder {
    /// Starts the writer thread; join the handle after sending [`Recorder::stop`], and watch
    /// it meanwhile ([`Watched::failed`]): without it check-ins and alarms only queue.
    pub fn start(store: Store) -> std::io::Result<(Recorder, Watched)> {
        let (tx, rx) = channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        let (counter, taken) = (dropped.clone(), queued.clone());
        let handle = Watched::spawn("check-in recorder", "edgeprov-recorder", move || {
            run(store, rx, counter, taken);
            Ok::<(), std::convert::Infallible>(())
        })?;
        Ok((
            Recorder {
                tx,
                dropped,
                queued,
                thread: handle.thread().clone(),
                peer_alarm_lines: Arc::default(),
            },
            handle,
        ))
    }

    pub fn check_in(&self, mac: Mac, checkin: CheckIn) {
        self.send(RecorderEvent::CheckIn(mac, checkin));
    }

    pub fn alarm(&self, kind: AlarmKind, source: impl Into<String>, message: impl Into<String>) {
        self.alarm_with_severity(kind, kind.severity(), source, message);
    }

    /// An alarm whose severity depends on the occurrence, not only on its kind. Every alarm
    /// passes here, so this is where its message is cut to [`MAX_MESSAGE`]: whatever a caller
    /// quoted, no alarm, log line or cloud event grows with it. An alarm a peer causes (a
    /// refused request) is logged at most once per [`crate::log_throttle::EVERY`] per kind,
    /// with the number of its kind not logged since: one connection can send thousands of
    /// refused requests a second, and journald, past its rate limit, would drop the box's
    /// other lines. The alarm table counts every one.
    pub fn alarm_with_severity(
        &self,
        kind: AlarmKind,
        severity: Severity,
        source: impl Into<String>,
        message: impl Into<String>,
    ) {
        let source = source.into();
        let message = clip(&message.into(), MAX_MESSAGE);
        let lines = match kind.source_from_peers() {
            true => self
                .peer_alarm_lines
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(kind)
                .or_default()
                .occurred(Instant::now()),
            false => Some(1),
        };
        match lines {
            Some(1) => tracing::warn!(alarm = kind.as_str(), %source, "{message}"),
            Some(n) => tracing::warn!(
                alarm = kind.as_str(),
                %source,
                not_logged = n - 1,
                "{message} (and {} more of this kind since the last line)",
                n - 1
            ),
            None => {}
        }
        self.send(RecorderEvent::Alarm {
            kind,
            severity,
            source,
            message,
        });
    }

    /// Waits until everything sent before this call is committed (used by the admin API so an
    /// alarm list read right after a refusal shows it).
    pub async fn flush(&self) {
        let recorder = self.clone();
        let _ = tokio::task::spawn_blocking(move || recorder.flush_blocking()).await;
    }

    /// [`Recorder::flush`] for a thread that may block (start-up, `spawn_blocking`).
    pub fn flush_blocking(&self) {
        let (done_tx, done_rx) = channel();
        if self.tx.send(RecorderEvent::Flush(done_tx)).is_ok() {
            self.thread.unpark();
            let _ = done_rx.recv();
        }
    }

    /// Commits what is queued and ends the thread.
    pub fn stop(&self) {
        let _ = self.tx.send(RecorderEvent::Stop);
        self.thread.unpark();
    }

    fn send(&self, ev: RecorderEvent) {
        let full = self.queued.fetch_add(1, Ordering::Relaxed) >= QUEUE;
        if full || self.tx.send(ev).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What one commit writes, and who waits for it.
#[derive(Default)]
struct Batch {
    checkins: Vec<(Mac, CheckIn)>,
    alarms: Vec<AlarmEvent>,
    waiters: Vec<Sender<()>>,
    stop: bool,
}

impl Batch {
    fn take(&mut self, ev: RecorderEvent, queued: &AtomicUsize) {
        match ev {
            RecorderEvent::CheckIn(mac, c) => {
                queued.fetch_sub(1, Ordering::Relaxed);
                self.checkins.push((mac, c));
            }
            RecorderEvent::Alarm {
                kind,
                severity,
                source,
                message,
            } => {
                queued.fetch_sub(1, Ordering::Relaxed);
                self.alarms.push(AlarmEvent {
                    kind,
                    severity,
                    source,
                    message,
                    at: now_unix(),
                });
            }
            RecorderEvent::Flush(w) => self.waiters.push(w),
            RecorderEvent::Stop => self.stop = true,
        }
    }

    fn full(&self) -> bool {
        self.checkins.len() + self.alarms.len() >= BATCH
    }
}

fn run(
    store: Store,
    rx: Receiver<RecorderEvent>,
    dropped: Arc<AtomicU64>,
    queued: Arc<AtomicUsize>,
) {
    let mut stop = false;
    // Events of batches that could not be written (a full disk), and why: said in an alarm
    // with the next batch that commits, so that their loss is on record, not only in the log.
    let mut unstored: u64 = 0;
    let mut why = String::new();
    while !stop {
        let Ok(first) = rx.recv() else { break };
        let deadline = Instant::now() + LINGER;
        let mut batch = Batch::default();
        batch.take(first, &queued);
        while !batch.stop && !batch.full() {
            match rx.try_recv() {
                Ok(ev) => batch.take(ev, &queued),
                Err(TryRecvError::Disconnected) => batch.stop = true,
                Err(TryRecvError::Empty) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if !batch.waiters.is_empty() || left.is_zero() {
                        break;
                    }
                    // A flush or stop wakes this thread; a spurious wake-up only looks again.
                    std::thread::park_timeout(left);
                }
            }
        }
        stop = batch.stop;
        let Batch {
            checkins,
            mut alarms,
            waiters,
            ..
        } = batch;
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            alarms.push(AlarmEvent {
                kind: AlarmKind::RecorderOverflow,
                severity: AlarmKind::RecorderOverflow.severity(),
                source: "recorder".into(),
                message: format!("{lost} check-in or alarm events dropped: the queue was full"),
                at: now_unix(),
            });
        }
        let events = (checkins.len() + alarms.len()) as u64 - u64::from(lost > 0);
        if unstored > 0 {
            alarms.push(AlarmEvent {
                kind: AlarmKind::RecorderOverflow,
                severity: AlarmKind::RecorderOverflow.severity(),
                source: "recorder: database".into(),
                message: format!(
                    "{unstored} check-in or alarm events were not stored: writing the database \
                     failed ({why})"
                ),
                at: now_unix(),
            });
        }
        match write_batch(&store, &checkins, &alarms) {
            Ok(()) => unstored = 0,
            Err(e) => {
                tracing::error!(error = %e, checkins = checkins.len(), alarms = alarms.len(), "recorder batch lost");
                // The queue overflow counted into this batch is counted again for the next.
                dropped.fetch_add(lost, Ordering::Relaxed);
                unstored += events;
                why = e.to_string();
            }
        }
        for w in waiters {
            let _ = w.send(());
        }
    }
}

fn write_batch(
    store: &Store,
    checkins: &[(Mac, CheckIn)],
    alarms: &[AlarmEvent],
) -> Result<(), StoreError> {
    if checkins.is_empty() && alarms.is_empty() {
        return Ok(());
    }
    let tx = store.begin_uncounted_write()?;
    // A phone fetches several files per boot: its device record is read and rewritten once per
    // batch, with its latest check-in (the history below keeps every one; the outbox keeps one
    // check-in event per device anyway). A check-in the device proved wins over a later one
    // that only named its MAC, which anyone can send.
    let mut latest: HashMap<Mac, &CheckIn> = HashMap::with_capacity(checkins.len());
    for (mac, checkin) in checkins {
        let kept = latest.entry(*mac).or_insert(checkin);
        if proven(checkin) || !proven(kept) {
            *kept = checkin;
        }
    }
    let mut events = Vec::with_capacity(latest.len() + alarms.len());
    let mut written = Vec::with_capacity(latest.len());
    {
        let mut table = tx.open_table(DEVICES)?;
        for (mac, checkin) in latest {
            let key = mac.to_string();
            let device: Option<Device> = match table.get(key.as_str())? {
                Some(v) => Some(decode("devices", &key, v.value())?),
                None => None,
            };
            let known = device.is_some();
            if let Some(mut device) = device {
                // A claim does not replace what the device proved: it stays in the history.
                if !proven(checkin) && device.checkin.as_ref().is_some_and(proven) {
                    continue;
                }
                device.checkin = Some(checkin.clone());
                table.insert(key.as_str(), encode(&device).as_slice())?;
                written.push((mac, checkin.clone()));
            }
            events.push(checkin_event(&key, checkin, known));
        }
    }
    let history: Vec<(Mac, &CheckIn)> = checkins.iter().map(|(m, c)| (*m, c)).collect();
    Store::append_checkins(&tx, &history, super::history::MAX_CHECKIN_ROWS)?;
    events.extend(alarms.iter().map(alarm_event));
    // The cloud's copy of these events commits with them (or not at all).
    let overflow = store.enqueue(&tx, events)?;
    Store::raise_alarms(&tx, alarms)?;
    Store::raise_alarms(&tx, &overflow)?;
    store.commit_checkins(tx, &written)?;
    Ok(())
}

fn proven(c: &CheckIn) -> bool {
    c.proof != CheckInProof::Claim
}

/// A check-in of a known device, or a sighting of an unknown one; both coalesced per device.
fn checkin_event(mac: &str, c: &CheckIn, known: bool) -> Pending {
    let (key, body) = if known {
        (
            format!("checkin|{mac}"),
            EventBody::CheckIn {
                mac: mac.to_string(),
                ip: c.peer_ip.clone(),
                firmware: c.firmware.clone(),
                user_agent: c.user_agent.clone(),
                file: c.file.clone(),
                proof: c.proof,
            },
        )
    } else {
        (
            format!("seen|{mac}"),
            EventBody::SeenUnclaimed {
                mac: mac.to_string(),
                ip: c.peer_ip.clone(),
                user_agent: c.user_agent.clone(),
                file: c.file.clone(),
                proof: c.proof,
            },
        )
    };
    Pending {
        key: Some(key),
        body,
    }
}

/// An alarm for the cloud. Sync's own failures are coalesced per kind and source, as check-ins
/// are per device: they repeat at every retry for as long as the cloud misbehaves, which would
/// otherwise fill the outbox with copies of one alarm (the alarm table counts them anyway).
/// An exhausted DHCP pool repeats the same way for as long as it stays full, and so does a
/// refused request: a phone with the wrong certificate asks again every few seconds, and one
/// connection can send thousands a second, which filled the outbox (while the cloud was out of
/// reach) until every phone's check-in, and then enrollment events, were dropped.
fn alarm_event(a: &AlarmEvent) -> Pending {
    let key = (a.kind.is_refusal()
        || matches!(
            a.kind,
            AlarmKind::SyncRejected | AlarmKind::SyncFailed | AlarmKind::DhcpPoolExhausted
        ))
    .then(|| format!("alarm|{}|{}", a.kind.as_str(), a.source));
    let body = if a.kind.is_refusal() {
        EventBody::Refusal {
            kind: a.kind.as_str().into(),
            source: a.source.clone(),
            message: a.message.clone(),
        }
    } else {
        EventBody::Alarm {
            kind: a.kind.as_str().into(),
            severity: format!("{:?}", a.severity).to_lowercase(),
            source: a.source.clone(),
            message: a.message.clone(),
        }
    };
    Pending { key, body }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An alarm quoting something huge is kept, listed and sent to the cloud cut short.
    #[test]
    fn alarm_messages_are_cut_to_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        store
            .put_registration(&crate::store::Registration {
                url: "https://cloud".into(),
                site: "hq".into(),
                appliance_id: String::new(),
                registered_at: 0,
                generation: 0,
            })
            .unwrap();
        let (recorder, thread) = Recorder::start(store.clone()).expect("recorder thread");
        recorder.alarm(AlarmKind::SyncRejected, "sync", "é".repeat(2_000_000));
        recorder.stop();
        thread.join().unwrap();
        let alarms = store.list_alarms().unwrap();
        assert_eq!(alarms[0].message, format!("{}…", "é".repeat(MAX_MESSAGE)));
        let events = store.outbox_peek(10).unwrap();
        let EventBody::Alarm { message, .. } = &events[0].1.body else {
            panic!("{events:?}")
        };
        assert_eq!(message, &alarms[0].message);
    }
}
