//! The daemon's service loops (listeners, DNS, DHCP, sync, jobs, retention, expiry, watchdog),
//! each with a name, so that one that panics stops the daemon with an error naming it: left
//! alone, the others (the watchdog ping among them) would keep a half-working daemon alive,
//! and the service manager would never restart it.

use std::collections::HashMap;
use std::future::Future;

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

    /// Waits for every loop to end (after the stop signal went out).
    pub async fn join_all(&mut self) {
        while self.set.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
