//! RabbitMQ plumbing every service shares: a supervised connection that
//! reconnects by itself, the idempotent topology, a confirmed publisher and
//! the one consumer loop with ack / retry / dead-letter decided in one place.
//!
//! ```text
//!                      routing key                 ┌──────────────────────┐
//! publisher ──▶ haven.events (topic) ─────────────▶│ <queue> (quorum)     │──▶ consume()
//!                                                   └──────────────────────┘
//!   Outcome::Retry:   haven.retry.<tier> (fanout) ──▶ haven.retry.<tier> (TTL queue)
//!                       routing key = <queue>          │ expires, dead-letters with
//!                                                      ▼ the routing key kept
//!                     haven.requeue (direct) ──▶ <queue> (bound by its own name)
//!   Outcome::DeadLetter / undecodable / x-delivery-limit exceeded:
//!                     haven.dead (direct) ──▶ <queue>.dead (bound by <queue>)
//! ```
//!
//! Every exchange and queue name is prefixed by [`AmqpConfig::amqp_namespace`]
//! (`<namespace>.<name>`), so tests and several stacks share one broker.
//!
//! Why a supervisor of our own rather than lapin's `enable_auto_recover()`:
//! lapin's recovery gives up after a fixed number of attempts (16 by default)
//! and replays consumers on a new channel while our handlers still hold
//! deliveries of the old one; here one task owns the connection, retries
//! forever with a capped backoff, publishes each new connection on a watch
//! channel, and the publisher and every consumer loop open fresh channels
//! from it. Every delivery tag therefore belongs to exactly one channel, and
//! the behaviour is proven by the integration tests in `tests/amqp.rs`.
//!
//! [`AmqpConfig::amqp_namespace`]: crate::config::AmqpConfig::amqp_namespace

mod client;
mod consumer;
pub mod headers;
pub mod metrics;
mod publisher;
mod topology;

use std::time::Duration;

use uuid::Uuid;

pub use client::{AmqpClient, AmqpClientBuilder, AmqpProbe};
pub use consumer::{
    ConsumerOptions, DeliveryContext, FnHandler, Handler, Outcome, consume, handler_fn,
};
pub use lapin::types::{AMQPValue, FieldTable};
pub use metrics::AmqpMetrics;
pub use publisher::Publisher;
pub use topology::{
    DEAD_EXCHANGE, DEFAULT_DELIVERY_LIMIT, Namespace, REQUEUE_EXCHANGE, RETRY_EXCHANGE_PREFIX,
    Topology,
};

/// Everything that can go wrong talking to the broker.
///
/// [`AmqpError::is_transient`] tells a caller whether trying again later can help.
#[derive(Debug, thiserror::Error)]
pub enum AmqpError {
    /// The URL cannot be parsed: a configuration error, reported at start-up.
    #[error("invalid AMQP URL: {0}")]
    InvalidUrl(String),
    /// No connection to the broker came up within the allowed wait.
    #[error("not connected to the broker (waited {0:?})")]
    NotConnected(Duration),
    /// The client was closed; nothing more can be published or consumed.
    #[error("the AMQP client is closed")]
    Closed,
    /// A broker operation failed (connection or channel error).
    #[error("broker operation `{op}` failed")]
    Broker {
        /// What was being done.
        op: &'static str,
        /// The lapin error.
        #[source]
        source: lapin::Error,
    },
    /// The broker refused to take responsibility for a published message.
    #[error("the broker nacked message {message_id}")]
    Nacked {
        /// Id of the refused message.
        message_id: String,
    },
    /// No queue is bound for the routing key: the message was returned (`mandatory`).
    #[error(
        "message {message_id} is unroutable: nothing bound on `{exchange}` for `{routing_key}` ({reply})"
    )]
    Unroutable {
        /// Id of the returned message.
        message_id: String,
        /// Exchange it was published to.
        exchange: String,
        /// Routing key it was published with.
        routing_key: String,
        /// The broker's reply text (usually `NO_ROUTE`).
        reply: String,
    },
    /// The envelope could not be serialized.
    #[error("could not serialize message")]
    Serialize(#[from] serde_json::Error),
    /// A name or routing key longer than AMQP's 255-byte limit.
    #[error("`{0}` is longer than 255 bytes, the AMQP limit for names and routing keys")]
    NameTooLong(String),
    /// The consumer was asked to consume a queue this client's topology does not declare.
    #[error("queue `{0}` is not part of this client's topology")]
    UnknownQueue(String),
    /// The Prometheus metrics could not be registered.
    #[error("could not register AMQP metrics")]
    Metrics(#[from] prometheus::Error),
}

impl AmqpError {
    pub(crate) fn broker(op: &'static str) -> impl FnOnce(lapin::Error) -> AmqpError {
        move |source| AmqpError::Broker { op, source }
    }

    /// A broker error other than a channel-level refusal (a soft error such
    /// as NOT_FOUND would fail again the same way on a new channel).
    pub(crate) fn is_connection_error(&self) -> bool {
        matches!(self, AmqpError::Broker { source, .. } if !source.is_amqp_soft_error())
    }

    /// True when the same operation may succeed later (broker down, connection
    /// lost mid-publish). Publishing again is safe: consumers are idempotent
    /// on the message id.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AmqpError::NotConnected(_) | AmqpError::Broker { .. } | AmqpError::Nacked { .. }
        )
    }
}

/// AMQP short strings (names, routing keys, message ids) are at most 255
/// bytes; lapin's `From<&str>` panics beyond that, so every string that can
/// come from outside goes through here.
pub(crate) fn short(s: &str) -> Result<lapin::types::ShortString, AmqpError> {
    lapin::types::ShortString::try_new(s).map_err(|_| AmqpError::NameTooLong(s.to_owned()))
}

/// The message id property for an envelope id.
pub(crate) fn message_id_of(id: Uuid) -> lapin::types::ShortString {
    // A hyphenated UUID is 36 bytes, far below the 255-byte limit.
    lapin::types::ShortString::try_new(id.to_string())
        .expect("a UUID is shorter than an AMQP short string")
}
