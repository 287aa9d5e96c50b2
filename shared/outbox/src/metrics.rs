//! Prometheus metrics of the relay. Names are constants so the metrics table
//! (`docs/metrics.md`) and dashboards can refer to them.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Registry};

use crate::OutboxError;

/// Counter: outbox rows the broker confirmed.
pub const PUBLISHED_TOTAL: &str = "haven_outbox_published_total";
/// Counter: publish attempts that failed (the row stays pending and is retried).
pub const PUBLISH_FAILURES_TOTAL: &str = "haven_outbox_publish_failures_total";
/// Gauge: unpublished outbox rows the last poll left behind.
pub const PENDING: &str = "haven_outbox_pending";
/// Gauge: age in seconds of the oldest outbox row the last poll left
/// unpublished (0 when none). It grows while the broker is away or the relay is
/// stuck, whatever the consumers do.
pub const OLDEST_PENDING_AGE_SECONDS: &str = "haven_outbox_oldest_pending_age_seconds";
/// Histogram: seconds from a row's `created_at` to the broker's confirm.
pub const RELAY_LAG_SECONDS: &str = "haven_outbox_relay_lag_seconds";

/// Lag buckets in seconds: milliseconds when all is well, up to half an hour
/// after a broker outage.
const LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// The relay's instruments, registered on the service's registry. Cheap to
/// clone (the instruments are shared inside).
#[derive(Debug, Clone)]
pub struct RelayMetrics {
    pub(crate) published: IntCounter,
    pub(crate) failures: IntCounter,
    pub(crate) pending: IntGauge,
    pub(crate) oldest_age: IntGauge,
    pub(crate) lag: Histogram,
}

impl RelayMetrics {
    /// Creates the metrics and registers them on `registry` (normally
    /// `MetricsRegistry::registry()`, which adds the `service` label).
    /// Fails if `registry` already holds them: one relay per registry.
    pub fn new(registry: &Registry) -> Result<Self, OutboxError> {
        let metrics = Self {
            published: IntCounter::new(PUBLISHED_TOTAL, "Outbox rows confirmed by the broker")?,
            failures: IntCounter::new(
                PUBLISH_FAILURES_TOTAL,
                "Outbox publish attempts that failed and will be retried",
            )?,
            pending: IntGauge::new(PENDING, "Unpublished outbox rows the last poll left behind")?,
            oldest_age: IntGauge::new(
                OLDEST_PENDING_AGE_SECONDS,
                "Age in seconds of the oldest outbox row the last poll left unpublished",
            )?,
            lag: Histogram::with_opts(
                HistogramOpts::new(
                    RELAY_LAG_SECONDS,
                    "Seconds from an outbox row's creation to the broker's confirm",
                )
                .buckets(LAG_BUCKETS.to_vec()),
            )?,
        };
        registry.register(Box::new(metrics.published.clone()))?;
        registry.register(Box::new(metrics.failures.clone()))?;
        registry.register(Box::new(metrics.pending.clone()))?;
        registry.register(Box::new(metrics.oldest_age.clone()))?;
        registry.register(Box::new(metrics.lag.clone()))?;
        Ok(metrics)
    }
}
