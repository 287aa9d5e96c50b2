//! Graceful shutdown: one [`CancellationToken`] per process, cancelled on
//! SIGINT or SIGTERM, passed down to `run`; and [`drain`] to wait for
//! in-flight work tracked by a [`TaskTracker`] with a bounded grace period.
//!
//! Tests cancel the token themselves instead of sending signals, which is why
//! `run` takes the token from its caller (as in mini-redis).

use std::time::Duration;

pub use tokio_util::sync::CancellationToken;
pub use tokio_util::task::TaskTracker;

/// Runs `job` at once and then every `period` until `stop` is cancelled:
/// the periodic jobs (sweeps, reconciliation, gauges) written once. A run
/// that takes longer than the period delays the next one, never stacks
/// runs; a run in progress is not cut short by `stop` (each job stops at a
/// safe point of its own).
pub async fn every<F, Fut>(period: Duration, stop: &CancellationToken, mut job: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        job().await;
    }
}

/// A token cancelled on the first SIGINT (Ctrl-C) or SIGTERM (what
/// orchestrators send). Must be called inside a Tokio runtime.
///
/// Fails only if the signal handlers cannot be installed, in which case the
/// process could not be stopped gracefully and should not start.
pub fn signal_token() -> std::io::Result<CancellationToken> {
    let token = CancellationToken::new();
    let signals = Signals::install()?;
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = signals.recv().await;
        tracing::info!(signal = name, "shutdown requested; draining");
        cancel.cancel();
    });
    Ok(token)
}

#[cfg(unix)]
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self)
    }

    async fn recv(self) -> &'static str {
        // Without a handler the process would die on Ctrl-C, so a failure
        // here is treated as a request to stop.
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// In-flight work was still running when the grace period ended.
#[derive(Debug, thiserror::Error)]
#[error("{remaining} task(s) still running after the {grace:?} shutdown grace period")]
pub struct DrainTimeout {
    /// Tasks that had not finished.
    pub remaining: usize,
    /// The grace period that ran out.
    pub grace: Duration,
}

/// Closes `tracker` (no new tasks are expected) and waits up to `grace` for
/// the tracked tasks to finish. On timeout the tasks are left running (they
/// die with the runtime); their unacknowledged messages are redelivered by the
/// broker, so nothing is lost, only retried.
pub async fn drain(tracker: &TaskTracker, grace: Duration) -> Result<(), DrainTimeout> {
    tracker.close();
    match tokio::time::timeout(grace, tracker.wait()).await {
        Ok(()) => Ok(()),
        Err(_) => Err(DrainTimeout {
            remaining: tracker.len(),
            grace,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_tracked_work() {
        let tracker = TaskTracker::new();
        let token = CancellationToken::new();
        let child = token.clone();
        tracker.spawn(async move {
            child.cancelled().await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        });
        token.cancel();
        drain(&tracker, Duration::from_secs(5)).await.unwrap();
        assert!(tracker.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn drain_gives_up_after_the_grace_period() {
        let tracker = TaskTracker::new();
        tracker.spawn(futures::future::pending::<()>());
        let err = drain(&tracker, Duration::from_secs(5)).await.unwrap_err();
        assert_eq!(err.remaining, 1);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        let token = signal_token().unwrap();
        assert!(!token.is_cancelled());
        // Our own handler is installed, so this does not kill the test process.
        let pid = std::process::id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(10), token.cancelled())
            .await
            .expect("SIGTERM should cancel the token");
    }
}
