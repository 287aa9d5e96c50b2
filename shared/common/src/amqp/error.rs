//! [`AmqpError`] and the checked conversion to AMQP short strings, in a
//! module of their own so that the client, topology, publisher and consumer
//! share them without importing `amqp`, which imports them.

use std::time::Duration;

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
    /// A message was handled but could not be acked (its channel closed
    /// first): it stays in its queue and comes back.
    #[error("message {message_id} could not be acked: its channel closed; it stays in its queue")]
    NotAcked {
        /// Id of the message.
        message_id: String,
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
