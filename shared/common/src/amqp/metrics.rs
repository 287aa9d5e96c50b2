//! Prometheus metrics of the broker plumbing. Names and labels are constants
//! so the metrics table (`docs/metrics.md`) and dashboards can refer to them.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Counter: deliveries settled by the consumer loop, by queue and outcome.
pub const CONSUMED_TOTAL: &str = "haven_amqp_consumed_total";
/// Histogram: seconds a handler took, by queue.
pub const HANDLER_SECONDS: &str = "haven_amqp_handler_duration_seconds";
/// Counter: publishes by result (`ok`, `nacked`, `unroutable`, `error`).
pub const PUBLISHED_TOTAL: &str = "haven_amqp_published_total";
/// Gauge: 1 while the broker connection is open.
pub const CONNECTED: &str = "haven_amqp_connected";
/// Counter: connections opened after the first one.
pub const RECONNECTS_TOTAL: &str = "haven_amqp_reconnects_total";
/// Gauge: messages ready in a work queue or its dead-letter queue, sampled
/// by the consumer of that queue, by queue (`<queue>` or `<queue>.dead`).
pub const QUEUE_MESSAGES: &str = "haven_amqp_queue_messages";
/// Gauge: consumers attached to a work queue, sampled by one of them, by queue.
pub const QUEUE_CONSUMERS: &str = "haven_amqp_queue_consumers";

/// Label: the un-prefixed work queue name.
pub const LABEL_QUEUE: &str = "queue";
/// Label: how a delivery was settled, one of the `OUTCOME_*` values.
pub const LABEL_OUTCOME: &str = "outcome";
/// Label: how a publish ended.
pub const LABEL_RESULT: &str = "result";

/// Handler returned `Ack`; the delivery was acked.
pub const OUTCOME_ACK: &str = "ack";
/// Handler returned `Retry`; parked in a tier queue.
pub const OUTCOME_RETRY: &str = "retry";
/// Handler returned `DeadLetter`, or retries ran out.
pub const OUTCOME_DEAD_LETTER: &str = "dead_letter";
/// The body could not be decoded; dead-lettered.
pub const OUTCOME_UNDECODABLE: &str = "undecodable";
/// The retry/dead-letter publish failed; handed back to the broker for redelivery.
pub const OUTCOME_REQUEUED: &str = "requeued";

/// The AMQP metrics of one client.
#[derive(Debug, Clone)]
pub struct AmqpMetrics {
    pub(crate) consumed: IntCounterVec,
    pub(crate) handler_seconds: HistogramVec,
    pub(crate) published: IntCounterVec,
    pub(crate) connected: IntGauge,
    pub(crate) reconnects: IntCounter,
    pub(crate) queue_messages: IntGaugeVec,
    pub(crate) queue_consumers: IntGaugeVec,
}

impl AmqpMetrics {
    /// Creates the metrics and registers them in `registry` when one is given
    /// (without one they still count, but nothing exports them).
    pub fn new(registry: Option<&Registry>) -> Result<Self, prometheus::Error> {
        let m = Self {
            consumed: IntCounterVec::new(
                Opts::new(CONSUMED_TOTAL, "Deliveries settled by the consumer loop"),
                &[LABEL_QUEUE, LABEL_OUTCOME],
            )?,
            handler_seconds: HistogramVec::new(
                HistogramOpts::new(HANDLER_SECONDS, "Time spent in message handlers").buckets(
                    vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    ],
                ),
                &[LABEL_QUEUE],
            )?,
            published: IntCounterVec::new(
                Opts::new(
                    PUBLISHED_TOTAL,
                    "Messages published with confirms, by result",
                ),
                &[LABEL_RESULT],
            )?,
            connected: IntGauge::new(CONNECTED, "1 while the broker connection is open")?,
            reconnects: IntCounter::new(RECONNECTS_TOTAL, "Broker connections re-opened")?,
            queue_messages: IntGaugeVec::new(
                Opts::new(
                    QUEUE_MESSAGES,
                    "Messages ready in a work queue or its dead-letter queue, as its consumer last saw",
                ),
                &[LABEL_QUEUE],
            )?,
            queue_consumers: IntGaugeVec::new(
                Opts::new(
                    QUEUE_CONSUMERS,
                    "Consumers attached to a work queue, as its consumer last saw",
                ),
                &[LABEL_QUEUE],
            )?,
        };
        if let Some(registry) = registry {
            registry.register(Box::new(m.consumed.clone()))?;
            registry.register(Box::new(m.handler_seconds.clone()))?;
            registry.register(Box::new(m.published.clone()))?;
            registry.register(Box::new(m.connected.clone()))?;
            registry.register(Box::new(m.reconnects.clone()))?;
            registry.register(Box::new(m.queue_messages.clone()))?;
            registry.register(Box::new(m.queue_consumers.clone()))?;
        }
        Ok(m)
    }
}
