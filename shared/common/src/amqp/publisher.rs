//! The confirmed publisher.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use haven_messages::{Envelope, QueueMessage, names};
use lapin::{
    BasicProperties, Channel, Confirmation,
    options::{BasicPublishOptions, ConfirmSelectOptions},
    types::{FieldTable, ShortString},
};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::error::{AmqpError, short};
use super::link::{LinkRx, wait_link};
use super::metrics::AmqpMetrics;
use super::topology::Topology;
use crate::telemetry::TraceHeaders;

/// Persistent: written to disk by the broker (quorum queues store every
/// message anyway, but the flag is what other queue types and tools read).
const PERSISTENT: u8 = 2;
/// Pause before retrying a publish that failed with a broken connection.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Publishes with publisher confirms on one shared channel.
///
/// Cheap to clone; concurrent publishes are pipelined on the channel (the
/// broker confirms them out of band), so throughput comes from calling it
/// from many tasks, not from batching. A publish returns `Ok` only once the
/// broker has confirmed it; a nack or an unroutable return is an error.
/// While the broker is away a publish waits (up to the configured publish
/// timeout) for the reconnect, then publishes; if the connection breaks
/// after the message was sent, it is sent again within that time, which can
/// duplicate it: consumers are idempotent on the message id.
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<Shared>,
}

struct Shared {
    link: LinkRx,
    stop: CancellationToken,
    topology: Topology,
    metrics: AmqpMetrics,
    timeout: Duration,
    /// The confirm-mode channel and the connection generation it belongs to.
    channel: Mutex<Option<(u64, Channel)>>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("namespace", self.shared.topology.namespace())
            .field("timeout", &self.shared.timeout)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    pub(crate) fn new(
        link: LinkRx,
        stop: CancellationToken,
        topology: Topology,
        metrics: AmqpMetrics,
        timeout: Duration,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                link,
                stop,
                topology,
                metrics,
                timeout,
                channel: Mutex::new(None),
            }),
        }
    }

    /// Publishes `envelope` on the events exchange with its own routing
    /// key, carrying the current trace context (`traceparent`) in its
    /// headers so the consumer's span continues this trace.
    #[tracing::instrument(skip_all, fields(otel.kind = "producer", message_id = %envelope.message_id, kind = envelope.kind()))]
    pub async fn publish<P: QueueMessage>(&self, envelope: &Envelope<P>) -> Result<(), AmqpError> {
        let body = envelope.to_json()?;
        let mut headers = FieldTable::default();
        super::headers::insert_trace(&mut headers, &TraceHeaders::current());
        self.publish_raw(
            names::EVENTS_EXCHANGE,
            &envelope.routing_key(),
            envelope.message_id,
            &body,
            headers,
        )
        .await
    }

    /// Publishes already-serialized bytes (the outbox relay's path) with
    /// `headers` (the relay passes the row's trace context).
    /// `exchange` is the logical name, e.g. [`names::EVENTS_EXCHANGE`]; the
    /// namespace is applied here.
    pub async fn publish_raw(
        &self,
        exchange: &str,
        routing_key: &str,
        message_id: Uuid,
        body: &[u8],
        headers: FieldTable,
    ) -> Result<(), AmqpError> {
        let exchange = self.shared.topology.namespace().name(exchange);
        self.send(
            &exchange,
            routing_key,
            Some(message_id_of(message_id)),
            body,
            headers,
        )
        .await
    }

    /// Publishes to a broker-side exchange name (namespace already applied).
    pub(crate) async fn send(
        &self,
        exchange: &str,
        routing_key: &str,
        message_id: Option<ShortString>,
        body: &[u8],
        headers: FieldTable,
    ) -> Result<(), AmqpError> {
        let exchange_name = short(exchange)?;
        let routing_key_name = short(routing_key)?;
        let mut properties = BasicProperties::default()
            .with_delivery_mode(PERSISTENT)
            .with_content_type("application/json".into())
            .with_headers(headers);
        if let Some(id) = message_id.clone() {
            properties = properties.with_message_id(id);
        }
        let id_text = message_id.as_ref().map_or("", |id| id.as_str());

        let deadline = Instant::now() + self.shared.timeout;
        let result = loop {
            let attempt = async {
                let channel = self.channel(deadline).await?;
                let confirm = channel
                    .basic_publish(
                        exchange_name.clone(),
                        routing_key_name.clone(),
                        BasicPublishOptions {
                            // Unroutable messages come back instead of vanishing.
                            mandatory: true,
                            // Not supported by RabbitMQ; would close the channel.
                            immediate: false,
                        },
                        body,
                        properties.clone(),
                    )
                    .await
                    .map_err(AmqpError::broker("basic.publish"))?;
                confirm
                    .await
                    .map_err(AmqpError::broker("publisher confirm"))
            };
            match attempt.await {
                Ok(Confirmation::Ack(None)) => break Ok(()),
                Ok(Confirmation::Ack(Some(returned))) => {
                    break Err(AmqpError::Unroutable {
                        message_id: id_text.to_owned(),
                        exchange: exchange.to_owned(),
                        routing_key: routing_key.to_owned(),
                        reply: returned.reply_text.to_string(),
                    });
                }
                Ok(Confirmation::Nack(_)) | Ok(Confirmation::NotRequested) => {
                    // NotRequested cannot happen on our confirm-mode channel;
                    // treat it like a nack rather than assume success.
                    break Err(AmqpError::Nacked {
                        message_id: id_text.to_owned(),
                    });
                }
                Err(e) if e.is_connection_error() && Instant::now() + RETRY_PAUSE < deadline => {
                    tracing::warn!(error = ?e, message_id = id_text, "publish interrupted; retrying on a new channel");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
                Err(e) => break Err(e),
            }
        };
        let label = match &result {
            Ok(()) => "ok",
            Err(AmqpError::Nacked { .. }) => "nacked",
            Err(AmqpError::Unroutable { .. }) => "unroutable",
            Err(_) => "error",
        };
        self.shared
            .metrics
            .published
            .with_label_values(&[label])
            .inc();
        result
    }

    /// The confirm channel of the current connection, opened on first use
    /// after each reconnect.
    async fn channel(&self, deadline: Instant) -> Result<Channel, AmqpError> {
        let wait = wait_link(self.shared.link.clone(), &self.shared.stop);
        let link = tokio::time::timeout_at(deadline, wait)
            .await
            .map_err(|_| AmqpError::NotConnected(self.shared.timeout))??;
        let mut cached = self.shared.channel.lock().await;
        if let Some((generation, channel)) = cached.as_ref()
            && *generation == link.generation
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        let channel = link
            .connection
            .create_channel()
            .await
            .map_err(AmqpError::broker("channel.open"))?;
        channel
            // Confirms: the broker tells us when it has taken responsibility
            // for each message; wait for select-ok so none is published unconfirmed.
            .confirm_select(ConfirmSelectOptions { nowait: false })
            .await
            .map_err(AmqpError::broker("confirm.select"))?;
        *cached = Some((link.generation, channel.clone()));
        Ok(channel)
    }
}

/// The message id property for an envelope id.
fn message_id_of(id: Uuid) -> lapin::types::ShortString {
    // A hyphenated UUID is 36 bytes, far below the 255-byte limit.
    lapin::types::ShortString::try_new(id.to_string())
        .expect("a UUID is shorter than an AMQP short string")
}
