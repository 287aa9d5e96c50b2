//! Metrics of read-api.
//!
//! Shared instruments (HTTP requests, dependency health) are registered by
//! haven-common on this service's registry; the chain reads and the
//! reconciliation register theirs here, with their names as constants
//! (listed in `docs/metrics.md`).

use haven_common::metrics::{MetricsError, MetricsRegistry};
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec};

/// Value of the constant `service` label on every metric of this service.
pub const SERVICE: &str = "read-api";

/// Gauge: 1 when token-stats' last chain read succeeded, 0 when it failed.
pub const STATS_CHAIN_UP: &str = "haven_token_stats_chain_up";
/// Gauge: differences between ledger and chain found by the last
/// reconciliation, by `kind`, not explained by transactions in flight.
pub const RECONCILIATION_MISMATCHES: &str = "haven_reconciliation_mismatches";
/// Gauge: differences the last reconciliation found on accounts with
/// transactions in flight (expected to settle), by `kind`.
pub const RECONCILIATION_UNSETTLED: &str = "haven_reconciliation_unsettled";
/// Counter: reconciliation runs by `outcome` (`matched`, `mismatched`, `failed`).
pub const RECONCILIATION_RUNS: &str = "haven_reconciliation_runs_total";
/// Gauge: Unix time the last reconciliation finished (0 before the first).
pub const RECONCILIATION_LAST_RUN: &str = "haven_reconciliation_last_run_timestamp_seconds";
/// Label: what was compared (`user_balance`, `total_minted`, `total_burned`, `total_supply`).
/// Reads refused for a missing or wrong API key, or a throttled address.
pub const AUTH_FAILURES_TOTAL: &str = "haven_auth_failures_total";
/// `missing_api_key`, `invalid_api_key` or `throttled`.
pub const LABEL_REASON: &str = "reason";
pub const LABEL_KIND: &str = "kind";
/// Label: how a run ended.
pub const LABEL_OUTCOME: &str = "outcome";

/// Every `kind` a reconciliation compares, so each gauge is exported (at 0)
/// from the first run on.
pub const RECONCILIATION_KINDS: [&str; 4] = [
    "user_balance",
    "total_minted",
    "total_burned",
    "total_supply",
];

/// The instruments of one running read-api.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: MetricsRegistry,
    pub stats_chain_up: IntGauge,
    /// [`RECONCILIATION_MISMATCHES`].
    pub mismatches: IntGaugeVec,
    /// [`RECONCILIATION_UNSETTLED`].
    pub unsettled: IntGaugeVec,
    /// [`RECONCILIATION_RUNS`].
    pub runs: IntCounterVec,
    /// [`RECONCILIATION_LAST_RUN`].
    pub last_run: IntGauge,
    /// [`AUTH_FAILURES_TOTAL`].
    pub auth_failures: IntCounterVec,
}

impl Metrics {
    /// A fresh registry: no global state, so tests can run several copies of
    /// the service in one process.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = MetricsRegistry::new(SERVICE)?;
        Ok(Self {
            stats_chain_up: registry.int_gauge(
                STATS_CHAIN_UP,
                "1 when the last chain read of /analytics/token-stats succeeded, 0 when it failed.",
            )?,
            mismatches: registry.int_gauge_vec(
                RECONCILIATION_MISMATCHES,
                "Ledger/chain differences found by the last reconciliation, by kind, not explained by transactions in flight.",
                &[LABEL_KIND],
            )?,
            unsettled: registry.int_gauge_vec(
                RECONCILIATION_UNSETTLED,
                "Ledger/chain differences of the last reconciliation on accounts with transactions in flight, by kind.",
                &[LABEL_KIND],
            )?,
            runs: registry.int_counter_vec(
                RECONCILIATION_RUNS,
                "Reconciliation runs by outcome: matched, mismatched or failed.",
                &[LABEL_OUTCOME],
            )?,
            last_run: registry.int_gauge(
                RECONCILIATION_LAST_RUN,
                "Unix time the last reconciliation finished.",
            )?,
            auth_failures: registry.int_counter_vec(
                AUTH_FAILURES_TOTAL,
                "Reads refused for a missing or wrong API key, or from a throttled address, by reason.",
                &[LABEL_REASON],
            )?,
            registry,
        })
    }

    /// The registry `/metrics` exposes.
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }
}
