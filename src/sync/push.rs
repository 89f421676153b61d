//! Push: deliver the outbox oldest first, in batches; remove a batch only after the cloud
//! acknowledged it. A lost answer means the batch is sent again; the cloud drops ids it has
//! seen, so every event counts exactly once.

use std::time::Duration;

use super::SyncError;
use super::client::CloudClient;
use super::protocol::{EventAck, EventBatch, PATH_EVENTS, VERSION};
use crate::store::Store;

/// Delivers one batch; returns how many events it held (0: the outbox is empty).
pub async fn push_batch(
    client: &CloudClient,
    store: &Store,
    max: usize,
) -> Result<usize, SyncError> {
    let s = store.clone();
    let batch = super::blocking(move || s.outbox_peek(max)).await?;
    if batch.is_empty() {
        return Ok(0);
    }
    let delivered: Vec<(u64, String)> = batch.iter().map(|(seq, e)| (*seq, e.id.clone())).collect();
    let body = EventBatch {
        version: VERSION,
        events: batch.into_iter().map(|(_, e)| e).collect(),
    };
    let ack: EventAck = client.post(PATH_EVENTS, &body).await?;
    if ack.version != VERSION {
        return Err(SyncError::Schema(format!(
            "event acknowledgement has version {}",
            ack.version
        )));
    }
    let n = delivered.len();
    let s = store.clone();
    super::blocking(move || s.outbox_ack(&delivered)).await?;
    Ok(n)
}

/// Delay before retry number `failures` (1 = first retry): exponential from `min`, capped at
/// `max`, scaled by a jitter in [0.5, 1) so boxes that failed together do not retry together.
/// `jitter` is a random value in [0, 1).
pub fn backoff(failures: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    let raw = min.saturating_mul(1u32 << exp).min(max);
    raw.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

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
