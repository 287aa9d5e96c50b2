//! Metrics of redemption-payout.
//!
//! Shared instruments (HTTP requests, dependency health, AMQP publish and
//! consume, the outbox relay) are registered by the shared crates on this
//! service's registry; the ones below are this service's own, names and
//! labels as constants (listed in `docs/metrics.md`).

use std::time::Duration;

use haven_common::metrics::{LATENCY_BUCKETS, MetricsError, MetricsRegistry};
use haven_entity::redemptions::RedemptionState;
use prometheus::{
    Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};

use crate::provider::ErrorClass;

/// Value of the constant `service` label on every metric of this service.
pub const SERVICE: &str = "redemption-payout";

/// Redemptions in each state, counted by the last sweep.
pub const REDEMPTIONS: &str = "haven_redemptions";
/// State changes this process made, by the state entered.
pub const REDEMPTION_TRANSITIONS_TOTAL: &str = "haven_redemption_transitions_total";
/// Time from the redemption request to the payout being paid.
pub const PAYOUT_LATENCY_SECONDS: &str = "haven_payout_latency_seconds";
/// Time one provider request took.
pub const PAYOUT_PROVIDER_REQUEST_SECONDS: &str = "haven_payout_provider_request_duration_seconds";
/// Failed provider requests, by class.
pub const PAYOUT_PROVIDER_ERRORS_TOTAL: &str = "haven_payout_provider_errors_total";
/// Refund mints queued after a payout was refused for good.
pub const REDEMPTION_REFUNDS_TOTAL: &str = "haven_redemption_refunds_total";
/// Lookups by reference of a payout whose creation's outcome was unknown,
/// by outcome.
pub const PAYOUT_LOOKUPS_TOTAL: &str = "haven_payout_lookups_total";
/// Redemptions in `payout_unknown` for longer than the stale age: the
/// provider has not said whether their payout exists.
pub const PAYOUTS_UNRESOLVED: &str = "haven_redemption_payouts_unresolved";
/// HNV reserved by redemptions whose burn is not confirmed yet.
pub const REDEMPTIONS_RESERVED_HNV: &str = "haven_redemptions_reserved_hnv";

/// The state (`reserved`, ..., `refunded`).
pub const LABEL_STATE: &str = "state";
/// The provider error class (see [`ErrorClass`]).
pub const LABEL_CLASS: &str = "class";
/// The provider call: `create`, `status` or `lookup`.
pub const LABEL_OPERATION: &str = "operation";
/// What a lookup found (see [`Lookup`]).
pub const LABEL_OUTCOME: &str = "outcome";

/// What asking the provider by reference gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The payout exists.
    Found,
    /// The provider said there is none.
    None,
    /// No answer that proves either (a bare 404, a timeout, a 5xx...).
    Unresolved,
}

impl Lookup {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Found => "found",
            Lookup::None => "none",
            Lookup::Unresolved => "unresolved",
        }
    }
}

/// Buckets of the end-to-end payout latency: a burn waits for blocks and a
/// provider may settle in minutes, so from 1 s to 1 h.
const PAYOUT_LATENCY_BUCKETS: &[f64] = &[
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// The instruments of one running redemption-payout.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: MetricsRegistry,
    redemptions: IntGaugeVec,
    transitions: IntCounterVec,
    payout_latency: Histogram,
    provider_seconds: HistogramVec,
    provider_errors: IntCounterVec,
    refunds: IntCounter,
    lookups: IntCounterVec,
    unresolved: IntGauge,
    reserved_hnv: Gauge,
}

impl Metrics {
    /// A fresh registry: no global state, so tests can run several copies of
    /// the service in one process.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = MetricsRegistry::new(SERVICE)?;
        let reserved_hnv = Gauge::new(
            REDEMPTIONS_RESERVED_HNV,
            "HNV reserved by redemptions whose burn is not confirmed yet (approximate; exact in the database).",
        )
        .map_err(MetricsError::from)?;
        registry
            .registry()
            .register(Box::new(reserved_hnv.clone()))
            .map_err(MetricsError::from)?;
        let payout_latency = Histogram::with_opts(
            HistogramOpts::new(
                PAYOUT_LATENCY_SECONDS,
                "Time from the redemption request to its payout being paid.",
            )
            .buckets(PAYOUT_LATENCY_BUCKETS.to_vec()),
        )
        .map_err(MetricsError::from)?;
        registry
            .registry()
            .register(Box::new(payout_latency.clone()))
            .map_err(MetricsError::from)?;
        Ok(Self {
            redemptions: registry.int_gauge_vec(
                REDEMPTIONS,
                "Redemptions in each state, at the last recovery sweep.",
                &[LABEL_STATE],
            )?,
            transitions: registry.int_counter_vec(
                REDEMPTION_TRANSITIONS_TOTAL,
                "Redemption state changes made by this process, by the state entered.",
                &[LABEL_STATE],
            )?,
            payout_latency,
            provider_seconds: registry.histogram_vec(
                PAYOUT_PROVIDER_REQUEST_SECONDS,
                "Time one request to the payout provider took, by operation (create, status, lookup).",
                &[LABEL_OPERATION],
                LATENCY_BUCKETS,
            )?,
            provider_errors: registry.int_counter_vec(
                PAYOUT_PROVIDER_ERRORS_TOTAL,
                "Failed payout provider requests by class (timeout, connect, server, throttled, auth, rejected, invalid_response, other).",
                &[LABEL_CLASS],
            )?,
            refunds: registry.int_counter(
                REDEMPTION_REFUNDS_TOTAL,
                "Refund mints queued because the provider refused a payout for good after the burn.",
            )?,
            lookups: registry.int_counter_vec(
                PAYOUT_LOOKUPS_TOTAL,
                "Lookups by reference of payouts whose creation's outcome was unknown, by outcome (found, none, unresolved).",
                &[LABEL_OUTCOME],
            )?,
            unresolved: registry.int_gauge(
                PAYOUTS_UNRESOLVED,
                "Redemptions whose payout may exist and that the provider has not resolved for longer than REDEMPTION_STALE_AFTER (state payout_unknown), at the last sweep.",
            )?,
            reserved_hnv,
            registry,
        })
    }

    /// The registry `/metrics` exposes.
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }

    /// Counts a state entered.
    pub fn transition(&self, state: RedemptionState) {
        self.transitions.with_label_values(&[state.as_str()]).inc();
    }

    /// Records a payout paid `elapsed` after its request.
    pub fn paid_after(&self, elapsed: Duration) {
        self.payout_latency.observe(elapsed.as_secs_f64());
    }

    /// Records one provider request.
    pub fn provider_request(&self, operation: &str, elapsed: Duration) {
        self.provider_seconds
            .with_label_values(&[operation])
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a failed provider request.
    pub fn provider_error(&self, class: ErrorClass) {
        self.provider_errors
            .with_label_values(&[class.as_str()])
            .inc();
    }

    /// Counts a refund queued.
    pub fn refund(&self) {
        self.refunds.inc();
    }

    /// Counts a lookup by reference.
    pub fn lookup(&self, outcome: Lookup) {
        self.lookups.with_label_values(&[outcome.as_str()]).inc();
    }

    /// Sets how many redemptions wait on an unresolved payout.
    pub fn set_unresolved(&self, n: u64) {
        self.unresolved.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Sets the per-state gauge (states not in `counts` are 0).
    pub fn set_states(&self, counts: &[(RedemptionState, i64)]) {
        for state in RedemptionState::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| *s == state)
                .map_or(0, |(_, n)| *n);
            self.redemptions.with_label_values(&[state.as_str()]).set(n);
        }
    }

    /// Sets the reserved amount outstanding, from exact wei.
    pub fn set_reserved(&self, wei: i128) {
        // Display only: a float is fine for a dashboard, never for money.
        self.reserved_hnv
            .set(wei as f64 / haven_common::money::WEI_PER_HNV as f64);
    }
}
