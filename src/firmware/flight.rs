//! The one transfer of an image under way (a fetch or an operator's upload), which every
//! request for the image waits on, and its cancellation when the image's last release is
//! deleted.
//!
//! A deleted release's transfer used to go on: the vendor was asked for the whole image
//! anyway, the phones waiting on it were answered 503 from a publish that failed, and a
//! transfer that resumed after the deletion wrote a new partial file and published an image no
//! release names. Now the deletion stops it, waits for it to end, then removes what it wrote.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Firmware;
use super::fetch::FetchError;

/// How long a deletion waits for the transfer it stopped to end before it removes the files
/// anyway: a stopped transfer ends at its next network wait, or after the disk operation it
/// is in (hashing a large partial file, an fsync).
const STOP_WAIT: Duration = Duration::from_secs(30);

/// The outcome of a transfer, once there is one.
pub(super) type Outcome = Option<Result<(), FetchError>>;

/// One transfer of an image, as the map of flights holds it.
pub(super) struct Flight {
    /// Watched by every request waiting on the transfer.
    pub(super) outcome: watch::Receiver<Outcome>,
    /// Turned true to stop the transfer ([`Cancel`]).
    cancel: watch::Sender<bool>,
}

/// What a transfer checks to learn that its image's last release was deleted.
pub(super) struct Cancel(watch::Receiver<bool>);

impl Flight {
    /// A flight, the sender its transfer answers through, and what it is stopped by.
    pub(super) fn new() -> (Flight, watch::Sender<Outcome>, Cancel) {
        let (tx, outcome) = watch::channel(None);
        let (cancel, stopped) = watch::channel(false);
        (Flight { outcome, cancel }, tx, Cancel(stopped))
    }

    /// Whether this is the flight `outcome` watches: a transfer ending removes its own
    /// flight only, not one a later transfer of the image started meanwhile.
    pub(super) fn is(&self, outcome: &watch::Receiver<Outcome>) -> bool {
        self.outcome.same_channel(outcome)
    }
}

impl Cancel {
    pub(super) fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the transfer is to stop; never when its flight went without asking.
    pub(super) async fn set(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The flight of image `sha256` that can still answer: one whose task is gone without
/// answering (it panicked, or the upload that owned it was dropped) counts as none, so the
/// image is fetched or uploaded again instead of failing every phone until a restart.
pub(super) fn live_flight<'a>(
    flights: &'a HashMap<String, Flight>,
    sha256: &str,
) -> Option<&'a Flight> {
    flights
        .get(sha256)
        .filter(|f| f.outcome.has_changed().is_ok())
}

impl Firmware {
    /// Removes image `sha256` from the cache once no release names it (the catalogue is
    /// already reloaded without it): a transfer of it under way is stopped and waited for
    /// first, so that nothing it still writes is left behind (a partial file, or an image
    /// published after the removal). Returns whether a cached image was removed.
    pub async fn discard_image(self: &Arc<Self>, sha256: &str) -> std::io::Result<bool> {
        let running = {
            let flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            live_flight(&flights, sha256).map(|f| {
                let _ = f.cancel.send(true);
                f.outcome.clone()
            })
        };
        if let Some(mut outcome) = running {
            let ended = tokio::time::timeout(STOP_WAIT, outcome.wait_for(Option::is_some)).await;
            if ended.is_err() {
                tracing::warn!(sha = %sha256, "a stopped image transfer did not end in time; \
                    removing its files anyway");
            }
        }
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(sha256);
        let (this, sha) = (self.clone(), sha256.to_string());
        tokio::task::spawn_blocking(move || this.cache.remove(&sha))
            .await
            .map_err(std::io::Error::other)?
    }

    /// Removes the cached image `sha256` and any partial download of it, its release staying
    /// (`DELETE /firmware/images/{file}`). Refused while a transfer of it runs: removing its
    /// partial file under it used to make its publish fail, so the phones waiting on it were
    /// answered 503, or a resume wrote the image again right after. Checked and done under the
    /// flights lock, so that no transfer starts meanwhile. Blocking.
    pub fn remove_image(&self, sha256: &str) -> Result<bool, RemoveImageError> {
        let flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
        if live_flight(&flights, sha256).is_some() {
            return Err(RemoveImageError::Busy);
        }
        Ok(self.cache.remove(sha256)?)
    }

    /// Whether a release of the catalogue still names image `sha256`: a transfer starts only
    /// for one, so that none starts for a release just deleted.
    pub(super) fn named(&self, sha256: &str) -> bool {
        self.catalogue().releases.iter().any(|r| r.sha256 == sha256)
    }
}

/// Why a cached image was not removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveImageError {
    #[error("a download or upload of this image is in progress; try again when it ends")]
    Busy,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
