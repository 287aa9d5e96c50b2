//! `/health` and `/metrics`: the operations router every service mounts.
//!
//! A service registers one [`Probe`] per dependency (database, broker, chain
//! RPC); `/health` runs them all concurrently with a short timeout and answers
//! 200 `{"status":"healthy","database":"connected",...}` or 503
//! `{"status":"unhealthy","database":"disconnected",...}` naming what is down.

use futures::future::BoxFuture;

/// One dependency whose reachability `/health` reports.
pub trait Probe: Send + Sync + 'static {
    /// Key in the `/health` body, e.g. `"database"`, `"amqp"`, `"blockchain"`.
    fn name(&self) -> &'static str;
    /// `Ok` when the dependency answers now; `Err` says why not (logged, never returned to clients).
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}
