//! The transactional outbox every HAVEN service publishes through.
//!
//! A service must never change the database and then publish to the broker
//! as two independent steps: a crash (or a broker outage) between them
//! either loses the message or announces a change that was rolled back.
//! Instead:
//!
//! 1. Inside the transaction that makes the change, [`enqueue`] writes the
//!    serialized envelope to the `outbox` table. The message exists if and
//!    only if the change is committed.
//! 2. After the commit, the caller wakes the [`Relay`] through its
//!    [`OutboxNotifier`] (a poll every [`RelaySettings::poll_interval`] is
//!    the fallback).
//! 3. The relay takes the oldest unpublished rows, publishes them with
//!    publisher confirms (concurrently, bounded), and marks each row
//!    published only after the broker confirmed it. While the broker is
//!    away, rows stay pending (their `attempts` and `last_error` record why)
//!    and the relay backs off (capped exponential); none is lost or skipped.
//!
//! ```text
//! handler txn: change + enqueue ──commit──▶ notifier.notify()
//!                                                 │
//! Relay::run: SELECT oldest unpublished [FOR UPDATE SKIP LOCKED]
//!             ──▶ publish_raw (confirm) ──▶ UPDATE published_at ──commit
//! ```
//!
//! # Guarantee: at least once
//!
//! A row is published at least once after its transaction commits, even
//! across crashes: a relay publishes whatever is pending as soon as it
//! starts. It can be published *more* than once: a crash (or a lost
//! database connection) after the broker's confirm but before the row is
//! marked republishes it, and so does a publish the [`Publisher`] resent
//! after a connection broke. Consumers therefore dedupe on the envelope's
//! `message_id`, which the relay sends as the AMQP `message-id` property.
//!
//! Within a batch publishes run concurrently, so the order of delivery
//! follows the order of insertion only roughly; consumers must not rely
//! on it.
//!
//! # Several replicas
//!
//! On PostgreSQL a batch is taken with `SELECT ... FOR UPDATE SKIP LOCKED`
//! in a transaction held until its rows are marked, so relays of several
//! replicas share the rows and none is published twice in normal
//! operation. SQLite (one process, one writer) takes a plain select and
//! holds no transaction while publishing, which would block the service's
//! other writes.
//!
//! # Wiring
//!
//! ```ignore
//! let relay = Relay::new(db.clone(), amqp.publisher(),
//!     RelayMetrics::new(metrics.registry())?, RelaySettings::default());
//! let notifier = relay.notifier();          // into the handlers' state
//! let relay_task = tokio::spawn(relay.run(shutdown.clone()));
//!
//! // in a handler:
//! let txn = haven_common::db::begin_write(&db).await?;
//! /* ... the change ... */
//! haven_outbox::enqueue(&txn, &envelope).await?;
//! txn.commit().await?;
//! notifier.notify();
//!
//! // at shutdown, before closing the AMQP client:
//! shutdown.cancel();
//! relay_task.await?;
//! ```
//!
//! [`Publisher`]: haven_common::amqp::Publisher

mod config;
mod error;
pub mod metrics;
mod relay;
mod store;

use haven_common::telemetry::TraceHeaders;
use haven_entity::linked::LinkedRow;
use haven_entity::outbox::{self as table, NewOutboxMessage};
use haven_messages::{Envelope, QueueMessage, names};
use sea_orm::ConnectionTrait;

pub use config::OutboxConfig;
pub use error::OutboxError;
pub use metrics::RelayMetrics;
pub use relay::{OutboxNotifier, Relay, RelaySettings};
pub use store::purge_published;

/// Writes `envelope` to the outbox, to be published on
/// [`names::EVENTS_EXCHANGE`] with its own routing key. Call it inside the
/// transaction that makes the change the message announces, then
/// [`OutboxNotifier::notify`] after the commit. Returns the row id.
///
/// The row keeps the trace context of the current span (the request's or
/// the consumer's), and the relay publishes the message with it, so its
/// consumer continues the same trace.
///
/// A second enqueue of the same `message_id` fails with
/// [`OutboxError::Database`] holding a unique violation
/// (`outbox_message_id_key`).
#[tracing::instrument(skip_all, fields(otel.kind = "producer", message_id = %envelope.message_id, kind = envelope.kind()))]
pub async fn enqueue<C: ConnectionTrait, P: QueueMessage>(
    db: &C,
    envelope: &Envelope<P>,
) -> Result<i64, OutboxError> {
    let id = table::enqueue(db, message_of(envelope, &TraceHeaders::current())?).await?;
    Ok(id)
}

/// The outbox row [`enqueue`] writes for `envelope` (with the current
/// span's trace context), as the last row of a
/// [`haven_entity::linked::insert`]: the message exists exactly when the
/// rows before it were written, in the same statement on PostgreSQL.
pub fn linked_row<P: QueueMessage>(envelope: &Envelope<P>) -> Result<LinkedRow, OutboxError> {
    Ok(table::linked_row(message_of(
        envelope,
        &TraceHeaders::current(),
    )?))
}

/// The outbox row of `envelope`: published on [`names::EVENTS_EXCHANGE`]
/// with its own routing key and the trace context `trace`.
fn message_of<P: QueueMessage>(
    envelope: &Envelope<P>,
    trace: &TraceHeaders,
) -> Result<NewOutboxMessage, OutboxError> {
    Ok(NewOutboxMessage {
        message_id: envelope.message_id,
        exchange: names::EVENTS_EXCHANGE.to_owned(),
        routing_key: envelope.routing_key(),
        payload: envelope.to_json()?,
        headers: trace.to_json(),
    })
}

/// Writes `envelopes` to the outbox as [`enqueue`] writes each (all with
/// the current span's trace context), a few hundred rows per statement.
/// Returns how many were written.
pub async fn enqueue_many<C: ConnectionTrait, P: QueueMessage>(
    db: &C,
    envelopes: &[Envelope<P>],
) -> Result<usize, OutboxError> {
    let trace = TraceHeaders::current();
    let messages = envelopes
        .iter()
        .map(|envelope| message_of(envelope, &trace))
        .collect::<Result<Vec<_>, _>>()?;
    table::enqueue_many(db, messages).await?;
    Ok(envelopes.len())
}

/// [`enqueue_many`] with each envelope's own trace context: a batch that
/// answers several requests (chain-minter's mint batch) continues each
/// one's trace.
pub async fn enqueue_many_traced<C: ConnectionTrait, P: QueueMessage>(
    db: &C,
    envelopes: &[(Envelope<P>, TraceHeaders)],
) -> Result<usize, OutboxError> {
    let messages = envelopes
        .iter()
        .map(|(envelope, trace)| message_of(envelope, trace))
        .collect::<Result<Vec<_>, _>>()?;
    table::enqueue_many(db, messages).await?;
    Ok(envelopes.len())
}
