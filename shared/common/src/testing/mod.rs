//! Test helpers (feature `test-util`): every integration test gets its own
//! database and broker namespace, and a TCP proxy it can cut to simulate outages.

pub mod amqp;
pub mod app;
pub mod browser;
pub mod config;
pub mod db;
pub mod gateway;
pub mod proxy;
pub mod traces;
mod workspace;

pub use self::workspace::workspace_root;

use std::future::Future;
use std::time::Duration;

/// What a check passed to [`eventually`] returns: `true`/`Some(value)` once
/// the awaited state holds.
pub trait Settled {
    /// What [`eventually`] hands back once the state holds.
    type Value;
    /// `Some` once the state holds.
    fn settled(self) -> Option<Self::Value>;
}

impl Settled for bool {
    type Value = ();
    fn settled(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Settled for Option<T> {
    type Value = T;
    fn settled(self) -> Option<T> {
        self
    }
}

/// Polls `check` every 50 ms until it reports the state it waits for
/// (`true` or `Some(value)`) and returns that value; panics naming `what`
/// when `within` has passed first. For states another task or process
/// reaches in its own time (a message consumed, a row written).
pub async fn eventually<R, F, Fut>(what: &str, within: Duration, mut check: F) -> R::Value
where
    R: Settled,
    F: FnMut() -> Fut,
    Fut: Future<Output = R>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await.settled() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
