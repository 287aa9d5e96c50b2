//! Metrics of webhook-ingress.
//!
//! Shared instruments (HTTP requests, dependency health, AMQP publish, the
//! outbox relay) are registered by the shared crates on this service's
//! registry; the ones below are this service's own, names and labels as
//! constants (listed in `docs/metrics.md`).

use haven_common::metrics::{MetricsError, MetricsRegistry};
use prometheus::{IntCounter, IntCounterVec};

/// Value of the constant `service` label on every metric of this service.
pub const SERVICE: &str = "webhook-ingress";

/// Partner webhooks by partner, outcome and reason.
pub const WEBHOOKS_TOTAL: &str = "haven_webhooks_total";
/// Token commands by command and outcome.
pub const TOKEN_COMMANDS_TOTAL: &str = "haven_token_commands_total";
/// Refused API keys by reason.
pub const AUTH_FAILURES_TOTAL: &str = "haven_auth_failures_total";
/// Token commands refused by the per-key rate limit.
pub const RATE_LIMITED_TOTAL: &str = "haven_rate_limited_total";

/// `aurora` or `tribe`.
pub const LABEL_PARTNER: &str = "partner";
/// `accepted`, `duplicate` or `rejected`.
pub const LABEL_OUTCOME: &str = "outcome";
/// Why a request was rejected (`none` when it was not).
pub const LABEL_REASON: &str = "reason";
/// `mint` or `redeem`.
pub const LABEL_COMMAND: &str = "command";

/// The instruments of one running webhook-ingress.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: MetricsRegistry,
    webhooks: IntCounterVec,
    commands: IntCounterVec,
    auth_failures: IntCounterVec,
    rate_limited: IntCounter,
}

impl Metrics {
    /// A fresh registry: no global state, so tests can run several copies of
    /// the service in one process.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = MetricsRegistry::new(SERVICE)?;
        Ok(Self {
            webhooks: registry.int_counter_vec(
                WEBHOOKS_TOTAL,
                "Partner webhooks answered, by partner, outcome (accepted, duplicate, rejected) and reason.",
                &[LABEL_PARTNER, LABEL_OUTCOME, LABEL_REASON],
            )?,
            commands: registry.int_counter_vec(
                TOKEN_COMMANDS_TOTAL,
                "Token commands answered, by command (mint, redeem), outcome and reason.",
                &[LABEL_COMMAND, LABEL_OUTCOME, LABEL_REASON],
            )?,
            auth_failures: registry.int_counter_vec(
                AUTH_FAILURES_TOTAL,
                "Requests refused for a missing or wrong API key, by reason.",
                &[LABEL_REASON],
            )?,
            rate_limited: registry.int_counter(
                RATE_LIMITED_TOTAL,
                "Token commands refused with 429 by the per-key rate limit.",
            )?,
            registry,
        })
    }

    /// The registry `/metrics` exposes.
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }

    /// Counts a webhook answer.
    pub fn webhook(&self, partner: &str, outcome: &str, reason: &str) {
        self.webhooks
            .with_label_values(&[partner, outcome, reason])
            .inc();
    }

    /// Counts a token command answer.
    pub fn command(&self, command: &str, outcome: &str, reason: &str) {
        self.commands
            .with_label_values(&[command, outcome, reason])
            .inc();
    }

    /// Counts a refused API key.
    pub fn auth_failure(&self, reason: &str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    /// Counts a 429.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }
}
