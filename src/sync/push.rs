//! Push: deliver the outbox oldest first, in batches; remove a batch only after the cloud
//! acknowledged it. A lost answer means the batch is sent again; the cloud drops ids it has
//! seen, so every event counts exactly once.
//!
//! A batch the cloud refuses for what it holds (400, 413, 422: [`refused_for_good`]) is split
//! in halves, each sent on its own, down to the single events the cloud refuses; those are
//! moved to the rejected events (`Store::outbox_reject`) and the rest is delivered. Any other
//! failure leaves the batch where it is, to be sent again after the backoff.

use std::time::Duration;

use super::SyncError;
use super::client::CloudClient;
use super::protocol::{Event, EventAck, EventBatch, PATH_EVENTS, VERSION};
use crate::store::Store;

/// Whether an answer to an event post refuses the events themselves, so that sending the
/// same batch again can never succeed: 400 (malformed), 413 (too large: smaller batches may
/// pass) and 422 (well-formed, but the cloud will not take it). Every other status says
/// nothing against the events: 401/403 are about the box's identity, 408/429/5xx about the
/// cloud's load or health, and 404/405/410 mean the URL is wrong; all are retried with
/// backoff (and `sync_failed` once they last), never turned into rejected events, since that
/// would empty the whole outbox into the rejected events because of one misconfiguration.
pub fn refused_for_good(status: u16) -> bool {
    matches!(status, 400 | 413 | 422)
}

/// Delivers one batch; returns how many events it held (0: the outbox is empty), counting
/// those the cloud refused and were set apart.
pub async fn push_batch(
    client: &CloudClient,
    store: &Store,
    max: usize,
) -> Result<usize, SyncError> {
    let s = store.clone();
    let batch = super::blocking(move || s.outbox_peek(max)).await?;
    let n = batch.len();
    // Oldest first: the halves are taken from the end of the list.
    let mut parts = vec![batch];
    while let Some(part) = parts.pop() {
        if part.is_empty() {
            continue;
        }
        match send(client, &part).await {
            Ok(()) => {
                let delivered: Vec<(u64, String)> =
                    part.iter().map(|(seq, e)| (*seq, e.id.clone())).collect();
                let s = store.clone();
                super::blocking(move || s.outbox_ack(&delivered)).await?;
            }
            Err(SyncError::Status { status, detail, .. }) if refused_for_good(status) => {
                if let [(seq, event)] = part.as_slice() {
                    let (seq, id, s) = (*seq, event.id.clone(), store.clone());
                    tracing::warn!(%id, status, %detail, "the cloud refused an event: set apart");
                    super::blocking(move || s.outbox_reject(seq, &id, status, &detail)).await?;
                } else {
                    let (first, second) = halves(part);
                    parts.push(second);
                    parts.push(first);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Splits a batch into its first and second half (the first the smaller when odd).
fn halves<T>(mut part: Vec<T>) -> (Vec<T>, Vec<T>) {
    let second = part.split_off(part.len() / 2);
    (part, second)
}

/// Posts events; `Ok` once the cloud acknowledged them.
async fn send(client: &CloudClient, part: &[(u64, Event)]) -> Result<(), SyncError> {
    let body = EventBatch {
        version: VERSION,
        events: part.iter().map(|(_, e)| e.clone()).collect(),
    };
    let ack: EventAck = client.post(PATH_EVENTS, &body).await?;
    if ack.version != VERSION {
        return Err(SyncError::Schema(format!(
            "event acknowledgement has version {}",
            ack.version
        )));
    }
    Ok(())
}

/// Delay before retry number `failures` (1 = first retry): exponential from `min`, capped at
/// `max`, scaled by a jitter in [0.5, 1) so boxes that failed together do not retry together.
/// `jitter` is a random value in [0, 1).
pub fn backoff(failures: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let raw = min.saturating_mul(1u32 << exp).min(max);
    raw.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

/// Longest wait a `Retry-After` is followed for: a broken or hostile header ("wait a year")
/// must not stop a site's sync for longer than an operator would look for the cause.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The delay before the next round when the cloud asked to wait `asked` (`Retry-After`): never
/// sooner than asked (up to [`MAX_RETRY_AFTER`]) nor sooner than the backoff, and spread by up
/// to a tenth more with `jitter` (in [0, 1)) so that the boxes the cloud turned away together
/// do not all come back in the same second.
pub fn honour_retry_after(backoff: Duration, asked: Option<Duration>, jitter: f64) -> Duration {
    match asked {
        Some(asked) => {
            let asked = asked.min(MAX_RETRY_AFTER);
            backoff.max(asked.mul_f64(1.0 + jitter.clamp(0.0, 1.0) / 10.0))
        }
        None => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_of_the_events_set_them_apart() {
        for status in [400, 413, 422] {
            assert!(refused_for_good(status), "{status}");
        }
        for status in [401, 403, 404, 405, 408, 409, 410, 429, 500, 502, 503, 504] {
            assert!(!refused_for_good(status), "{status}");
        }
    }

    #[test]
    fn halves_keep_the_order() {
        assert_eq!(halves(vec![1, 2, 3]), (vec![1], vec![2, 3]));
        assert_eq!(halves(vec![1, 2]), (vec![1], vec![2]));
    }

    #[test]
    fn retry_after_is_waited_for_never_less_and_within_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(honour_retry_after(s(4), None, 0.5), s(4));
        assert_eq!(honour_retry_after(s(4), Some(s(2)), 0.0), s(4));
        assert_eq!(honour_retry_after(s(1), Some(s(120)), 0.0), s(120));
        let spread = honour_retry_after(s(1), Some(s(120)), 0.99);
        assert!(spread > s(131) && spread < s(132), "{spread:?}");
        assert_eq!(
            honour_retry_after(s(1), Some(s(86_400 * 365)), 0.0),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(60));
        assert_eq!(backoff(1, min, max, 1.0), Duration::from_secs(1));
        assert_eq!(backoff(3, min, max, 1.0), Duration::from_secs(4));
        assert_eq!(backoff(20, min, max, 1.0), max);
        assert_eq!(backoff(u32::MAX, min, max, 1.0), max);
        assert_eq!(backoff(3, min, max, 0.0), Duration::from_secs(2));
    }
}
