//! The daemon's service loops (listeners, DNS, DHCP, sync, jobs, retention, expiry, watchdog),
//! each with a name, so that one that panics stops the daemon with an error naming it: left
//! alone, the others (the watchdog ping among them) would keep a half-working daemon alive,
//! and the service manager would never restart it.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use tokio::task::{Id, JoinSet};

#[derive(Default)]
pub struct Loops {
    set: JoinSet<()>,
    names: HashMap<Id, &'static str>,
}

impl Loops {
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// The name of the first loop that panics. Loops that end normally are let go (the
    /// watchdog outside systemd ends at once); pending for as long as none panics.
    pub async fn first_panic(&mut self) -> &'static str {
        while let Some(done) = self.set.join_next_with_id().await {
            if let Err(e) = done
                && e.is_panic()
            {
                return self.names.get(&e.id()).copied().unwrap_or("service");
            }
        }
        std::future::pending().await
    }

    /// Waits up to `limit` for every loop to end (after the stop signal went out), then cancels
    /// those still running, naming each: a loop in the middle of something slow (a pull from a
    /// cloud that takes a minute to answer) must not hold the stop past the service manager's
    /// `TimeoutStopSec=`, whose SIGKILL would lose the check-ins still queued. What a cancelled
    /// loop was doing is left as a restart would find it: each store change is one transaction.
    pub async fn stop_within(&mut self, limit: Duration) {
        if tokio::time::timeout(limit, async {
            while self.set.join_next().await.is_some() {}
        })
        .await
        .is_ok()
        {
            return;
        }
        self.set.abort_all();
        while let Some(done) = self.set.join_next_with_id().await {
            if let Err(e) = done
                && e.is_cancelled()
            {
                let name = self.names.get(&e.id()).copied().unwrap_or("service");
                tracing::warn!(service = name, "did not stop within {limit:?}: cancelled");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_panicking_loop_is_named_and_normal_ends_are_let_go() {
        let mut loops = Loops::default();
        loops.spawn("watchdog", async {});
        loops.spawn("jobs", std::future::pending());
        loops.spawn("sync", async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            panic!("a bug in the sync loop");
        });
        let named = tokio::time::timeout(Duration::from_secs(5), loops.first_panic()).await;
        assert_eq!(named.ok(), Some("sync"), "the panic was noticed");

        let mut calm = Loops::default();
        calm.spawn("watchdog", async {});
        calm.spawn("jobs", std::future::pending());
        let waited = tokio::time::timeout(Duration::from_millis(100), calm.first_panic()).await;
        assert!(waited.is_err(), "no loop panicked: {waited:?}");
    }
}
