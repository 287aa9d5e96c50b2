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
pub mod dead_letters;
mod error;
mod failure;
pub mod headers;
mod link;
pub mod metrics;
mod publisher;
mod topology;

pub use client::{AmqpClient, AmqpClientBuilder, AmqpProbe};
pub use consumer::{
    ConsumerOptions, DeliveryContext, FnHandler, Handler, Outcome, consume, handler_fn,
};
pub use dead_letters::{DeadLetter, DeadLetters, Selection};
pub use error::AmqpError;
pub use failure::Failure;
pub use lapin::types::{AMQPValue, FieldTable};
pub use metrics::AmqpMetrics;
pub use publisher::Publisher;
pub use topology::{
    DEAD_EXCHANGE, DEFAULT_DELIVERY_LIMIT, Namespace, REQUEUE_EXCHANGE, RETRY_EXCHANGE_PREFIX,
    Topology,
};
