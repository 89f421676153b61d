//! No service dies silently. The daemon's long-lived work each has a name, and the end of any
//! of it by a panic or an error stops the daemon with an error naming it (logged at error level,
//! exit status non-zero, so the service manager's `Restart=on-failure` starts it again): left
//! alone, the others (the watchdog ping among them) would keep a half-working daemon alive —
//! ACKed leases never stored, check-ins and alarms queued until the stop drops them.
//!
//! What is watched, and how:
//! - the async loops (phone and admin listeners, DNS, DHCP, cloud sync, jobs, retention,
//!   certificate expiry, watchdog) run in [`Loops`]; a loop that panics, or returns an error
//!   through [`Loops::spawn_checked`], is reported by [`Loops::first_failure`];
//! - the std threads (the check-in recorder, the DHCP lease writer, one DNS UDP thread per
//!   socket) are started by [`Watched::spawn`], which catches a panic or an error the thread
//!   ends with and hands it to its owner through [`Watched::failed`]: the DNS and DHCP loops
//!   end with that error (so [`Loops`] reports it), the daemon watches the recorder itself
//!   (it outlives the loops: it commits what they queued while they stop);
//! - the tasks a loop starts for its own parts (DNS TCP accept loops, DHCP receive loops and
//!   the reservation refresh) are joined by that loop, which ends with an error when one
//!   panics.
//!
//! A thread or loop that ends normally (at stop, or the watchdog outside systemd) is let go.
//! Nothing is restarted in place: a dead lease writer took its queue with it, and a restart of
//! the whole daemon starts every part from the store, where each change is one transaction.
//! Work that lives for one request (a connection, a query, a fetch) is not here: its end is its
//! caller's answer.

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::{Id, JoinError, JoinSet};

/// Why a task or thread ended early: the panic's message or the error it returned.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    format!("panicked: {text}")
}

/// The reason a joined task failed, `None` if it was cancelled (only the stop cancels).
pub fn join_failure(e: JoinError) -> Option<String> {
    e.try_into_panic().ok().map(|p| panic_message(p.as_ref()))
}

#[derive(Default)]
pub struct Loops {
    set: JoinSet<Result<(), String>>,
    names: HashMap<Id, &'static str>,
}

impl Loops {
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.spawn_checked(name, async move {
            task.await;
            Ok(())
        });
    }

    /// A loop that may end with an error (the part of it that died, and why).
    pub fn spawn_checked(
        &mut self,
        name: &'static str,
        task: impl Future<Output = Result<(), String>> + Send + 'static,
    ) {
        let handle = self.set.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// The name of the first loop that panics or ends with an error, and why. Loops that end
    /// normally are let go (the watchdog outside systemd ends at once); pending for as long as
    /// none fails.
    pub async fn first_failure(&mut self) -> (&'static str, String) {
        while let Some(done) = self.set.join_next_with_id().await {
            let failed = match done {
                Ok((_, Ok(()))) => None,
                Ok((id, Err(reason))) => Some((id, reason)),
                Err(e) => {
                    let id = e.id();
                    join_failure(e).map(|reason| (id, reason))
                }
            };
            if let Some((id, reason)) = failed {
                return (self.names.get(&id).copied().unwrap_or("service"), reason);
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

/// A std thread whose panic or error reaches its owner through [`Watched::failed`] instead of
/// vanishing with the thread.
pub struct Watched {
    name: &'static str,
    handle: JoinHandle<()>,
    /// How the thread ended; `None` once that was read.
    ended: Option<oneshot::Receiver<Result<(), String>>>,
}

impl Watched {
    /// Starts `body` on a thread called `thread_name`; `name` is what the logs and the daemon's
    /// exit error call it.
    pub fn spawn<E: Display>(
        name: &'static str,
        thread_name: &str,
        body: impl FnOnce() -> Result<(), E> + Send + 'static,
    ) -> std::io::Result<Watched> {
        let (tx, ended) = oneshot::channel();
        let handle = std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || {
                let outcome = match catch_unwind(AssertUnwindSafe(body)) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(format!("failed: {e}")),
                    Err(payload) => Err(panic_message(payload.as_ref())),
                };
                if let Err(reason) = &outcome {
                    tracing::error!(service = name, "{reason}");
                }
                let _ = tx.send(outcome);
            })?;
        Ok(Watched {
            name,
            handle,
            ended: Some(ended),
        })
    }

    pub fn thread(&self) -> &Thread {
        self.handle.thread()
    }

    /// Waits for the thread to end; for a thread that may block.
    pub fn join(self) -> std::thread::Result<()> {
        self.handle.join()
    }

    /// Resolves with why once the thread panicked or returned an error; pending forever if it
    /// ended normally. Cancel-safe: a `select!` may poll it again.
    pub async fn failed(&mut self) -> String {
        std::future::poll_fn(|cx| self.poll_failed(cx)).await
    }

    fn poll_failed(&mut self, cx: &mut Context<'_>) -> Poll<String> {
        let Some(ended) = self.ended.as_mut() else {
            return Poll::Pending;
        };
        let Poll::Ready(outcome) = Pin::new(ended).poll(cx) else {
            return Poll::Pending;
        };
        self.ended = None;
        match outcome {
            Ok(Ok(())) => Poll::Pending,
            Ok(Err(reason)) => Poll::Ready(reason),
            // Only a panic that escaped the catch (one while dropping its payload) gets here.
            Err(_) => Poll::Ready("ended without saying why".into()),
        }
    }
}

/// The first of `threads` to fail, as "name reason"; pending while none has.
pub async fn any_failed(threads: &mut [Watched]) -> String {
    std::future::poll_fn(|cx| {
        threads
            .iter_mut()
            .find_map(|t| match t.poll_failed(cx) {
                Poll::Ready(reason) => Some(format!("{} {reason}", t.name)),
                Poll::Pending => None,
            })
            .map_or(Poll::Pending, Poll::Ready)
    })
    .await
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
        let named = tokio::time::timeout(Duration::from_secs(5), loops.first_failure()).await;
        let (name, reason) = named.expect("the panic was noticed");
        assert_eq!(name, "sync");
        assert!(reason.contains("a bug in the sync loop"), "{reason}");

        let mut calm = Loops::default();
        calm.spawn("watchdog", async {});
        calm.spawn("jobs", std::future::pending());
        let waited = tokio::time::timeout(Duration::from_millis(100), calm.first_failure()).await;
        assert!(waited.is_err(), "no loop failed: {waited:?}");
    }

    #[tokio::test]
    async fn a_loop_ending_with_an_error_is_named_with_it() {
        let mut loops = Loops::default();
        loops.spawn("jobs", std::future::pending());
        loops.spawn_checked("DHCP", async { Err("lease writer panicked: boom".into()) });
        let named = tokio::time::timeout(Duration::from_secs(5), loops.first_failure()).await;
        assert_eq!(
            named.ok(),
            Some(("DHCP", "lease writer panicked: boom".to_string()))
        );
    }

    #[tokio::test]
    async fn a_thread_that_panics_is_reported_with_its_message() {
        let mut t = Watched::spawn("lease writer", "test-panics", || -> Result<(), String> {
            panic!("disk on fire")
        })
        .expect("thread");
        let reason = tokio::time::timeout(Duration::from_secs(5), t.failed()).await;
        assert_eq!(reason.ok().as_deref(), Some("panicked: disk on fire"));
        assert!(t.join().is_ok(), "the panic was caught on the thread");
    }

    #[tokio::test]
    async fn a_thread_that_returns_an_error_is_reported_with_it() {
        let mut t = Watched::spawn("recorder", "test-errs", || Err("store gone")).expect("thread");
        let reason = tokio::time::timeout(Duration::from_secs(5), t.failed()).await;
        assert_eq!(reason.ok().as_deref(), Some("failed: store gone"));
    }

    #[tokio::test]
    async fn a_thread_that_ends_normally_at_stop_is_not_reported() {
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let mut threads = vec![
            Watched::spawn("DNS UDP", "test-stops", move || {
                let _ = stop_rx.recv();
                Ok::<(), String>(())
            })
            .expect("thread"),
            Watched::spawn("DNS UDP", "test-stops", || Ok::<(), String>(())).expect("thread"),
        ];
        let _ = stop_tx.send(());
        let waited =
            tokio::time::timeout(Duration::from_millis(200), any_failed(&mut threads)).await;
        assert!(waited.is_err(), "a normal end was reported: {waited:?}");
        for t in threads {
            assert!(t.join().is_ok());
        }
    }

    #[tokio::test]
    async fn the_failing_one_of_several_threads_is_found() {
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let mut threads = vec![
            Watched::spawn("UDP thread", "test-holds", move || {
                let _ = hold_rx.recv();
                Ok::<(), String>(())
            })
            .expect("thread"),
            Watched::spawn("lease writer", "test-dies", || -> Result<(), String> {
                panic!("index out of bounds")
            })
            .expect("thread"),
        ];
        let reason = tokio::time::timeout(Duration::from_secs(5), any_failed(&mut threads)).await;
        assert_eq!(
            reason.ok().as_deref(),
            Some("lease writer panicked: index out of bounds")
        );
        drop(hold_tx);
    }
}
