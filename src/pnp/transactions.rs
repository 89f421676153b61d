//! The NOTIFYs in flight and the SUBSCRIBEs recently answered, with the time passed in: what
//! is due to be sent again, which answer a repeated SUBSCRIBE gets, which dialogs a SUBSCRIBE
//! sent inside one may name, and which NOTIFY a phone's response ends.
//!
//! A dialog is known while a transaction in it is remembered: one made by a SUBSCRIBE answered
//! in the last [`REMEMBER`], or refreshed since. That covers a phone that sends a refresh right
//! after the first answer; a dialog older than that (or from before a restart) is answered 481,
//! and the phone starts again, which costs it one round trip.
//!
//! Retransmission is RFC 3261 §17.1.2.2's for a non-INVITE request over UDP (Timer E: T1 =
//! 500 ms, doubling), but bounded tighter than Timer F's 32 s: [`SENDS`] transmissions over
//! 3.5 s, then [`LAST_WAIT`] for a late answer. A phone one hop away on a LAN answers within
//! milliseconds; each retransmission is also traffic that a SUBSCRIBE with a forged source
//! address aims at someone else.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::profile::{NotifyResponse, Refusal, SubscribeKey};

/// Timer E's first interval.
pub const T1: Duration = Duration::from_millis(500);
/// Transmissions of one NOTIFY, the first included (at 0, 0.5, 1.5 and 3.5 s).
pub const SENDS: u32 = 4;
/// How long after the last transmission an answer is still waited for.
pub const LAST_WAIT: Duration = Duration::from_secs(4);
/// How long an answered SUBSCRIBE is remembered, so that a phone that missed our 200 and sends
/// it again gets the same answer (and no second NOTIFY): Timer J, 64 × T1.
pub const REMEMBER: Duration = Duration::from_secs(32);

/// How the phone answered a NOTIFY (one it never answers is counted by [`Transactions::due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Acknowledged,
    /// An error (3xx–6xx).
    Refused,
}

/// A NOTIFY as sent: its bytes and what its answer is matched on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub bytes: Vec<u8>,
    /// Its top Via's branch.
    pub branch: String,
    /// Its CSeq number (its Call-ID is the SUBSCRIBE's).
    pub cseq: u32,
}

/// A SUBSCRIBE answered: where from, the dialog's tag and what was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub peer: SocketAddr,
    /// Our tag, the To tag of the dialog our 200 made (or the SUBSCRIBE came in).
    pub tag: String,
    /// Our 200 to the SUBSCRIBE, sent again if the SUBSCRIBE is.
    pub ok: Vec<u8>,
    pub notify: Notify,
}

/// A dialog of ours (RFC 3261 §12): the Call-ID, the phone's tag and ours.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Dialog {
    call_id: String,
    from_tag: Option<String>,
    tag: String,
}

impl Dialog {
    fn of(key: &SubscribeKey, tag: &str) -> Dialog {
        Dialog {
            call_id: key.call_id.clone(),
            from_tag: key.from_tag.clone(),
            tag: tag.to_string(),
        }
    }
}

struct Entry {
    answered: Answered,
    sent: u32,
    /// When the NOTIFY is next due, or (after the last) given up on; `None` once answered.
    next: Option<Instant>,
    /// When the entry is forgotten.
    forget: Instant,
}

/// Every SUBSCRIBE answered in the last [`REMEMBER`], with its NOTIFY's state; at most
/// `capacity` of them, and at most `per_source` from one address, so that a few hosts cannot
/// keep the table full and turn every real phone away.
///
/// The loop asks for the next deadline at every datagram and admits every SUBSCRIBE, so the
/// times are kept in order ([`BTreeSet`]s) beside the entries: neither looks at every
/// transaction, which with a full table (a few hosts can keep it full) made each datagram of
/// a flood, even one dropped over the rate limit, cost a scan of thousands.
pub struct Transactions {
    capacity: usize,
    per_source: usize,
    entries: HashMap<SubscribeKey, Entry>,
    /// Entries by the address they came from; an address with none is not kept.
    by_source: HashMap<IpAddr, usize>,
    /// Each dialog with an entry, and its latest one (the highest CSeq the phone sent in it).
    dialogs: HashMap<Dialog, SubscribeKey>,
    by_branch: HashMap<String, SubscribeKey>,
    /// Each NOTIFY in flight by when it is next due (its entry's `next`).
    due_at: BTreeSet<(Instant, SubscribeKey)>,
    /// Each entry by when it is forgotten (its `forget`).
    forget_at: BTreeSet<(Instant, SubscribeKey)>,
    /// NOTIFYs forgotten while still unanswered (only after the loop was held up for longer
    /// than [`REMEMBER`]), counted by the next [`Transactions::due`].
    given_up: u64,
}

/// What to do about a SUBSCRIBE.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit<'a> {
    /// New, outside any dialog: answer it in a new one (a new tag, the NOTIFY's CSeq 1) and
    /// [`Transactions::start`] its NOTIFY.
    New,
    /// A refresh in a dialog of ours: answer it with this tag and a NOTIFY of this CSeq (the
    /// next in the dialog), and [`Transactions::start`] it.
    Refresh { tag: String, cseq: u32 },
    /// Seen already: send this same 200 again, nothing else.
    Repeat(&'a [u8]),
    /// Sent inside a dialog, but not one it may be in: answer this refusal, nothing else.
    Refused(Refusal),
    /// As many transactions as allowed are in hand: drop it (the phone asks again).
    Full,
    /// As many as one address may have are in hand from this one: drop it.
    SourceFull,
}

/// Something to send now.
#[derive(Debug, PartialEq, Eq)]
pub struct Send {
    pub peer: SocketAddr,
    pub bytes: Vec<u8>,
}

impl Transactions {
    pub fn new(capacity: usize, per_source: usize) -> Transactions {
        Transactions {
            capacity,
            per_source,
            entries: HashMap::new(),
            by_source: HashMap::new(),
            dialogs: HashMap::new(),
            by_branch: HashMap::new(),
            due_at: BTreeSet::new(),
            forget_at: BTreeSet::new(),
            given_up: 0,
        }
    }

    /// Transactions remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// What to do about the SUBSCRIBE `key` from `source`, whose To tag is `to_tag`.
    pub fn admit(
        &mut self,
        key: &SubscribeKey,
        to_tag: Option<&str>,
        source: IpAddr,
        now: Instant,
    ) -> Admit<'_> {
        self.forget_old(now);
        if let Some(entry) = self.entries.get(key)
            && to_tag.is_none_or(|tag| entry.answered.tag == tag)
        {
            return Admit::Repeat(&entry.answered.ok);
        }
        let mut refresh = None;
        if let Some(tag) = to_tag {
            // RFC 3261 §12.2.2: a request inside a dialog we do not have is 481, and one
            // below the dialog's last CSeq is out of order.
            let dialog = Dialog::of(key, tag);
            let Some((latest, entry)) = self
                .dialogs
                .get(&dialog)
                .and_then(|k| Some((k, self.entries.get(k)?)))
            else {
                return Admit::Refused(Refusal::NoDialog);
            };
            if latest.cseq >= key.cseq {
                return Admit::Refused(Refusal::OutOfOrder);
            }
            refresh = Some(Admit::Refresh {
                tag: dialog.tag,
                cseq: entry.answered.notify.cseq.saturating_add(1),
            });
        }
        if self.by_source.get(&source).copied().unwrap_or(0) >= self.per_source {
            return Admit::SourceFull;
        }
        if self.entries.len() >= self.capacity {
            return Admit::Full;
        }
        refresh.unwrap_or(Admit::New)
    }

    /// Records a SUBSCRIBE answered, whose NOTIFY was sent for the first time `now`.
    pub fn start(&mut self, key: SubscribeKey, answered: Answered, now: Instant) {
        if let Some(old) = self.entries.remove(&key) {
            self.unindex(&key, &old);
        }
        let (next, forget) = (now + T1, now + REMEMBER);
        *self.by_source.entry(answered.peer.ip()).or_default() += 1;
        self.dialogs
            .insert(Dialog::of(&key, &answered.tag), key.clone());
        self.by_branch
            .insert(answered.notify.branch.clone(), key.clone());
        self.due_at.insert((next, key.clone()));
        self.forget_at.insert((forget, key.clone()));
        self.entries.insert(
            key,
            Entry {
                answered,
                sent: 1,
                next: Some(next),
                forget,
            },
        );
    }

    /// Takes the source, branch and times of `entry`, removed from `entries`, out of the
    /// indexes.
    fn unindex(&mut self, key: &SubscribeKey, entry: &Entry) {
        let source = entry.answered.peer.ip();
        if let Some(n) = self.by_source.get_mut(&source) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.by_source.remove(&source);
            }
        }
        let dialog = Dialog::of(key, &entry.answered.tag);
        if self.dialogs.get(&dialog) == Some(key) {
            self.dialogs.remove(&dialog);
        }
        self.by_branch.remove(&entry.answered.notify.branch);
        if let Some(next) = entry.next {
            self.due_at.remove(&(next, key.clone()));
        }
        self.forget_at.remove(&(entry.forget, key.clone()));
    }

    /// A final response from `peer` to one of our NOTIFYs: its outcome, the first time (a
    /// repeated response, or one for a NOTIFY not ours or from another address, is `None`).
    ///
    /// It is matched by the transaction, as RFC 3261 §17.1.3 matches a response (the branch,
    /// with the Call-ID and CSeq that NOTIFY carried), and by the address, not the port: a
    /// phone may answer from its SIP listener rather than the socket it subscribed from, and
    /// the branch is 64 random bits no one else has seen.
    pub fn answered(&mut self, response: &NotifyResponse, peer: SocketAddr) -> Option<Outcome> {
        if response.code < 200 {
            return None;
        }
        let key = self.by_branch.get(&response.branch)?;
        let entry = self.entries.get_mut(key)?;
        if entry.answered.peer.ip() != peer.ip()
            || key.call_id != response.call_id
            || entry.answered.notify.cseq != response.cseq
        {
            return None;
        }
        let next = entry.next.take()?;
        self.due_at.remove(&(next, key.clone()));
        Some(match response.code {
            200..=299 => Outcome::Acknowledged,
            _ => Outcome::Refused,
        })
    }

    /// The NOTIFYs due again at `now`, and the number given up on since the last call. Each
    /// NOTIFY due moves on by one step, however late the call.
    pub fn due(&mut self, now: Instant) -> (Vec<Send>, u64) {
        let mut ready = Vec::new();
        while let Some(first) = self.due_at.first()
            && first.0 <= now
        {
            ready.extend(self.due_at.pop_first());
        }
        let mut sends = Vec::new();
        let mut unanswered = 0;
        for (at, key) in ready {
            let Some(entry) = self.entries.get_mut(&key) else {
                continue;
            };
            if entry.sent >= SENDS {
                entry.next = None;
                unanswered += 1;
                continue;
            }
            sends.push(Send {
                peer: entry.answered.peer,
                bytes: entry.answered.notify.bytes.clone(),
            });
            entry.sent += 1;
            let next = match entry.sent {
                SENDS => at + LAST_WAIT,
                n => at + T1 * 2u32.pow(n - 1),
            };
            entry.next = Some(next);
            self.due_at.insert((next, key));
        }
        self.forget_old(now);
        (sends, unanswered + std::mem::take(&mut self.given_up))
    }

    /// When something is next due, if anything waits.
    pub fn next_deadline(&self) -> Option<Instant> {
        let due = self.due_at.first().map(|(at, _)| *at);
        let forget = self.forget_at.first().map(|(at, _)| *at);
        due.into_iter().chain(forget).min()
    }

    /// Drops what is past remembering. A NOTIFY still waiting for its answer then (the loop
    /// was held up) is counted as given up on by the next [`Transactions::due`].
    fn forget_old(&mut self, now: Instant) {
        while let Some(first) = self.forget_at.first()
            && first.0 <= now
        {
            let Some((_, key)) = self.forget_at.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&key) {
                self.given_up += u64::from(entry.next.is_some());
                self.unindex(&key, &entry);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> SubscribeKey {
        SubscribeKey {
            call_id: format!("call-{n}"),
            from_tag: Some("t".into()),
            cseq: 1,
        }
    }

    fn peer() -> SocketAddr {
        "10.0.0.9:5060".parse().unwrap()
    }

    /// Another host.
    fn elsewhere() -> IpAddr {
        "10.0.0.10".parse().unwrap()
    }

    /// `key(n)` answered from `peer` in the dialog of tag `d<n>`: `ok`, then `notify` with the
    /// branch `b<n>`, CSeq 1.
    fn answered(n: u32, peer: SocketAddr, ok: &[u8], notify: &[u8]) -> Answered {
        Answered {
            peer,
            tag: format!("d{n}"),
            ok: ok.to_vec(),
            notify: Notify {
                bytes: notify.to_vec(),
                branch: format!("b{n}"),
                cseq: 1,
            },
        }
    }

    /// The phone's answer `code` to the NOTIFY of `key(n)`.
    fn answer(n: u32, code: u16) -> NotifyResponse {
        NotifyResponse {
            branch: format!("b{n}"),
            call_id: key(n).call_id,
            cseq: 1,
            code,
        }
    }

    #[test]
    fn an_unanswered_notify_is_sent_four_times_with_doubling_gaps_then_given_up() {
        let t0 = Instant::now();
        let mut t = Transactions::new(8, 8);
        assert_eq!(t.admit(&key(1), None, peer().ip(), t0), Admit::New);
        t.start(key(1), answered(1, peer(), b"ok", b"notify"), t0);
        let mut times = vec![Duration::ZERO];
        let mut now = t0;
        let mut given_up = 0;
        for _ in 0..20 {
            now = t.next_deadline().unwrap();
            let (sends, gone) = t.due(now);
            given_up += gone;
            if !sends.is_empty() {
                assert_eq!(
                    sends,
                    [Send {
                        peer: peer(),
                        bytes: b"notify".to_vec()
                    }]
                );
                times.push(now - t0);
            }
            if given_up > 0 {
                break;
            }
        }
        let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 500, 1500, 3500]);
        assert_eq!(given_up, 1);
        assert_eq!(now - t0, Duration::from_millis(7500));
        // Still remembered for a repeated SUBSCRIBE, then forgotten.
        assert_eq!(
            t.admit(&key(1), None, peer().ip(), now),
            Admit::Repeat(b"ok")
        );
        assert_eq!(
            t.admit(&key(1), None, peer().ip(), t0 + REMEMBER),
            Admit::New
        );
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn an_answer_stops_retransmission_once_and_only_from_the_phone() {
        let t0 = Instant::now();
        let mut t = Transactions::new(8, 8);
        t.start(key(1), answered(1, peer(), b"ok", b"n"), t0);
        let stranger = SocketAddr::new(elsewhere(), 5060);
        assert_eq!(t.answered(&answer(1, 200), stranger), None);
        assert_eq!(t.answered(&answer(1, 180), peer()), None);
        let mut wrong = answer(1, 200);
        wrong.branch = "nope".into();
        assert_eq!(t.answered(&wrong, peer()), None);
        let mut wrong = answer(1, 200);
        wrong.call_id = "call-2".into();
        assert_eq!(t.answered(&wrong, peer()), None, "another Call-ID");
        let mut wrong = answer(1, 200);
        wrong.cseq = 2;
        assert_eq!(t.answered(&wrong, peer()), None, "another CSeq");
        // From the phone's address but another port (its SIP listener): the same phone.
        let listener: SocketAddr = "10.0.0.9:5062".parse().unwrap();
        assert_eq!(
            t.answered(&answer(1, 200), listener),
            Some(Outcome::Acknowledged)
        );
        assert_eq!(t.answered(&answer(1, 200), peer()), None, "a repeated 200");
        let (sends, gone) = t.due(t0 + Duration::from_secs(10));
        assert!(sends.is_empty());
        assert_eq!(gone, 0);

        t.start(key(2), answered(2, peer(), b"ok", b"n"), t0);
        assert_eq!(t.answered(&answer(2, 481), peer()), Some(Outcome::Refused));
    }

    #[test]
    fn the_table_is_bounded() {
        let t0 = Instant::now();
        let mut t = Transactions::new(2, 2);
        for n in 0..2 {
            t.start(key(n), answered(n, peer(), b"", b""), t0);
        }
        assert_eq!(t.admit(&key(9), None, elsewhere(), t0), Admit::Full);
        assert_eq!(t.admit(&key(0), None, peer().ip(), t0), Admit::Repeat(b""));
        t.answered(&answer(0, 200), peer());
        t.answered(&answer(1, 200), peer());
        assert_eq!(
            t.admit(&key(9), None, elsewhere(), t0 + REMEMBER),
            Admit::New
        );
    }

    /// RFC 3261 §12.2.2 for a SUBSCRIBE sent inside a dialog: one we made and still know is a
    /// refresh, whose NOTIFY goes on from the dialog's last CSeq; a repeat of it is a repeat;
    /// a CSeq below the dialog's last is out of order; any other To tag, or a dialog forgotten
    /// (as after a restart), names no dialog of ours.
    #[test]
    fn a_subscribe_inside_a_dialog_is_a_refresh_only_of_one_we_know() {
        let t0 = Instant::now();
        let mut t = Transactions::new(8, 8);
        let ip = peer().ip();
        t.start(key(1), answered(1, peer(), b"ok1", b""), t0);
        let in_dialog = |cseq| SubscribeKey { cseq, ..key(1) };

        assert_eq!(
            t.admit(&in_dialog(2), Some("d9"), ip, t0),
            Admit::Refused(Refusal::NoDialog),
            "not our tag"
        );
        let other_call = SubscribeKey {
            call_id: "call-2".into(),
            ..in_dialog(2)
        };
        assert_eq!(
            t.admit(&other_call, Some("d1"), ip, t0),
            Admit::Refused(Refusal::NoDialog),
            "our tag, another Call-ID"
        );
        let refresh = Admit::Refresh {
            tag: "d1".into(),
            cseq: 2,
        };
        assert_eq!(t.admit(&in_dialog(2), Some("d1"), ip, t0), refresh);
        let mut second = answered(1, peer(), b"ok2", b"");
        second.notify.cseq = 2;
        second.notify.branch = "b1-2".into();
        t.start(in_dialog(2), second, t0 + Duration::from_secs(20));

        let later = t0 + Duration::from_secs(21);
        assert_eq!(
            t.admit(&in_dialog(2), Some("d1"), ip, later),
            Admit::Repeat(b"ok2")
        );
        assert_eq!(
            t.admit(&in_dialog(1), Some("d1"), ip, later),
            Admit::Repeat(b"ok1"),
            "the first, sent again, is still a repeat"
        );
        assert_eq!(
            t.admit(&in_dialog(5), Some("d1"), ip, later),
            Admit::Refresh {
                tag: "d1".into(),
                cseq: 3
            }
        );
        // The first transaction is forgotten; the refresh keeps the dialog known.
        let after_first = t0 + REMEMBER + Duration::from_secs(1);
        assert_eq!(
            t.admit(&in_dialog(1), Some("d1"), ip, after_first),
            Admit::Refused(Refusal::OutOfOrder)
        );
        assert_eq!(t.len(), 1);
        // Once every transaction of it is forgotten, so is the dialog.
        let after_all = t0 + Duration::from_secs(20) + REMEMBER;
        assert_eq!(
            t.admit(&in_dialog(3), Some("d1"), ip, after_all),
            Admit::Refused(Refusal::NoDialog)
        );
        assert!(t.dialogs.is_empty() && t.by_branch.is_empty());
    }

    /// A few hosts must not keep the table full: one address has at most `per_source`
    /// transactions in hand, its repeats are still answered, and others still get in.
    #[test]
    fn one_source_holds_at_most_its_share() {
        let t0 = Instant::now();
        let mut t = Transactions::new(8, 2);
        for n in 0..2 {
            assert_eq!(t.admit(&key(n), None, peer().ip(), t0), Admit::New);
            t.start(key(n), answered(n, peer(), b"ok", b""), t0);
        }
        // Another port of the same host is the same source.
        let other_port = SocketAddr::new(peer().ip(), 5070);
        assert_eq!(
            t.admit(&key(2), None, other_port.ip(), t0),
            Admit::SourceFull
        );
        assert_eq!(
            t.admit(&key(0), None, peer().ip(), t0),
            Admit::Repeat(b"ok")
        );
        assert_eq!(t.admit(&key(2), None, elsewhere(), t0), Admit::New);
        // A transaction started again under the same key is still one.
        t.start(key(1), answered(9, peer(), b"ok", b""), t0);
        assert_eq!(t.admit(&key(2), None, peer().ip(), t0), Admit::SourceFull);
        // Once its transactions are forgotten the host is welcome again.
        assert_eq!(
            t.admit(&key(2), None, peer().ip(), t0 + REMEMBER),
            Admit::New
        );
        assert!(t.by_source.is_empty());
    }

    /// The loop asks for the next deadline at every datagram, and admits every SUBSCRIBE:
    /// with the table full (4,096 transactions, which a few hosts can keep it at), neither may
    /// look at every transaction, or a flood of datagrams (even ones dropped over the rate
    /// limit) costs the loop a scan of the whole table each.
    #[test]
    fn a_full_table_is_not_scanned_per_datagram() {
        let t0 = Instant::now();
        let full = 4_096;
        let mut t = Transactions::new(full, full);
        for n in 0..full as u32 {
            t.start(key(n), answered(n, peer(), &[0; 600], &[0; 700]), t0);
        }
        let asks = 20_000u32;
        let started = Instant::now();
        for n in 0..asks {
            assert!(t.next_deadline().is_some());
            assert_eq!(
                t.admit(&key(full as u32 + n), None, elsewhere(), t0),
                Admit::Full
            );
        }
        let spent = started.elapsed();
        assert!(
            spent < Duration::from_secs(1),
            "{asks} datagrams against a full table took {spent:?}"
        );
    }
}
