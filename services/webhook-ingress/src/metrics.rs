//! Metrics of webhook-ingress.
//!
//! Shared instruments (HTTP requests, dependency health, AMQP publish/consume) are
//! registered by haven-common on this service's registry; behaviour added by
//! later issues registers its own here, with its names as constants.

use haven_common::metrics::{MetricsError, MetricsRegistry};

/// Value of the constant `service` label on every metric of this service.
pub const SERVICE: &str = "webhook-ingress";

/// The instruments of one running webhook-ingress.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: MetricsRegistry,
}

impl Metrics {
    /// A fresh registry: no global state, so tests can run several copies of
    /// the service in one process.
    pub fn new() -> Result<Self, MetricsError> {
        Ok(Self {
            registry: MetricsRegistry::new(SERVICE)?,
        })
    }

    /// The registry `/metrics` exposes.
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }
}
