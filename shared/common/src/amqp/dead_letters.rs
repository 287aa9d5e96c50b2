//! The dead-letter queues for an operator (`havenctl dead-letters`): read
//! them without losing a message, send chosen ones back to the queue they
//! came from, or drop them.
//!
//! Every operation scans one dead queue with `basic.get` (manual
//! acknowledgement) on a channel of its own and holds what it read
//! unacknowledged; closing that channel at the end gives back every message
//! it kept, and so does a crash or a lost connection at any point. A scan
//! reads at most the number of messages the queue held when it started (and
//! at most its limit), so a message dead-lettered again while the scan runs
//! is not read twice.
//!
//! Replay publishes a copy to the requeue exchange with the work queue's
//! name as routing key (the road an expired retry takes: it reaches exactly
//! the queue it came from, no other binding of the events exchange), with
//! the attempt header back at 0 and the dead reason removed
//! ([`headers::replayed`]), waits for the broker's confirm, and only then
//! acks the dead letter. A crash between the two leaves both copies, never
//! neither: the consumers are idempotent on the message id.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::Serialize;

use super::client::AmqpClient;
use super::error::{AmqpError, short};
use super::headers;

/// Longest wait for the broker's close-ok when a scan ends: the kept
/// messages go back when the channel closes, whether or not we hear the ok.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// One message of a dead-letter queue, as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// The work queue it was dead-lettered from (un-prefixed name).
    pub queue: String,
    /// The AMQP `message-id` (the envelope's id).
    pub message_id: Option<String>,
    /// The envelope's correlation id, when the body is an envelope.
    pub correlation_id: Option<String>,
    /// The envelope's `kind`, when the body is an envelope.
    pub kind: Option<String>,
    /// When the fact the message reports happened (the envelope's `occurred_at`).
    pub occurred_at: Option<DateTime<Utc>>,
    /// Why it was dead-lettered ([`headers::dead_reason`]).
    pub reason: String,
    /// How many times it was handled ([`headers::attempt`]).
    pub attempts: u32,
    /// Size of the body in bytes.
    pub bytes: usize,
}

impl DeadLetter {
    fn read(queue: &str, delivery: &Delivery) -> Self {
        let headers = delivery.properties.headers().as_ref();
        let body: Option<serde_json::Value> = serde_json::from_slice(&delivery.data).ok();
        let field = |name: &str| {
            body.as_ref()
                .and_then(|b| b.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Self {
            queue: queue.to_owned(),
            message_id: delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.as_str().to_owned()),
            correlation_id: field("correlation_id"),
            kind: field("kind"),
            occurred_at: field("occurred_at").and_then(|t| t.parse().ok()),
            reason: headers::dead_reason(headers).unwrap_or_else(|| "unknown".to_owned()),
            attempts: headers::attempt(headers),
            bytes: delivery.data.len(),
        }
    }
}

/// Which dead letters a replay or a drop takes. Every condition set must
/// hold; none set takes every message (the caller asks for `--all`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The message id or the correlation id.
    pub id: Option<String>,
    /// A piece of the reason, case ignored.
    pub reason_contains: Option<String>,
    /// Only messages whose event occurred before this instant.
    pub occurred_before: Option<DateTime<Utc>>,
}

impl Selection {
    /// Whether `letter` is selected.
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        let id = self.id.as_deref().is_none_or(|id| {
            letter.message_id.as_deref() == Some(id) || letter.correlation_id.as_deref() == Some(id)
        });
        let reason = self
            .reason_contains
            .as_deref()
            .is_none_or(|part| letter.reason.to_lowercase().contains(&part.to_lowercase()));
        let age = self
            .occurred_before
            .is_none_or(|before| letter.occurred_at.is_some_and(|at| at < before));
        id && reason && age
    }
}

/// What a scan does with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Keep,
    Replay,
    Drop,
}

/// The dead-letter queues of a client's topology.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    client: AmqpClient,
}

impl DeadLetters {
    /// Works through `client` (its topology names the queues, its confirmed
    /// publisher replays).
    pub fn new(client: AmqpClient) -> Self {
        Self { client }
    }

    /// Up to `limit` messages of `queue`'s dead-letter queue, oldest first;
    /// every one stays in the queue.
    pub async fn list(&self, queue: &str, limit: usize) -> Result<Vec<DeadLetter>, AmqpError> {
        let seen = self.scan(queue, limit, |_| Action::Keep).await?;
        Ok(seen.into_iter().map(|(letter, _)| letter).collect())
    }

    /// Sends the selected messages (among the first `limit`) back to
    /// `queue` with their attempt count reset; returns them.
    pub async fn replay(
        &self,
        queue: &str,
        selection: &Selection,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, AmqpError> {
        self.take(queue, selection, limit, Action::Replay).await
    }

    /// Deletes the selected messages (among the first `limit`); returns them.
    pub async fn drop_selected(
        &self,
        queue: &str,
        selection: &Selection,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, AmqpError> {
        self.take(queue, selection, limit, Action::Drop).await
    }

    /// Applies `action` to the selected messages among the first `limit`,
    /// keeps the rest; returns the ones it took.
    async fn take(
        &self,
        queue: &str,
        selection: &Selection,
        limit: usize,
        action: Action,
    ) -> Result<Vec<DeadLetter>, AmqpError> {
        let seen = self
            .scan(queue, limit, |letter| {
                if selection.matches(letter) {
                    action
                } else {
                    Action::Keep
                }
            })
            .await?;
        Ok(taken(seen))
    }

    /// Runs `decide` on each message; returns every message read with what
    /// was done to it.
    async fn scan(
        &self,
        queue: &str,
        limit: usize,
        mut decide: impl FnMut(&DeadLetter) -> Action,
    ) -> Result<Vec<(DeadLetter, Action)>, AmqpError> {
        let topology = self.client.topology();
        if !topology.has_queue(queue) {
            return Err(AmqpError::UnknownQueue(queue.to_owned()));
        }
        let link = self.client.link().await?;
        let channel = link
            .connection
            .create_channel()
            .await
            .map_err(AmqpError::broker("channel.open"))?;
        let result = self.scan_on(&channel, queue, limit, &mut decide).await;
        // Gives back every message read and not acked: the kept ones, and
        // any left by an error.
        let close = channel.close(200, "dead-letter scan done".into());
        if !matches!(tokio::time::timeout(CLOSE_TIMEOUT, close).await, Ok(Ok(()))) {
            tracing::warn!(
                queue,
                "the scan's channel did not close cleanly; its unacked messages go back when the connection closes"
            );
        }
        result
    }

    async fn scan_on(
        &self,
        channel: &Channel,
        queue: &str,
        limit: usize,
        decide: &mut impl FnMut(&DeadLetter) -> Action,
    ) -> Result<Vec<(DeadLetter, Action)>, AmqpError> {
        let topology = self.client.topology();
        let dead_queue = short(&topology.dead_queue(queue))?;
        let held = channel
            .queue_declare(
                dead_queue.clone(),
                // Passive: only read its depth; never create or change it.
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(AmqpError::broker("queue.declare"))?
            .message_count();
        let budget = limit.min(usize::try_from(held).unwrap_or(usize::MAX));
        let publisher = self.client.publisher();
        let requeue = topology.requeue_exchange();
        let mut out = Vec::new();
        for _ in 0..budget {
            let got = channel
                // Manual ack: a message leaves the dead queue only when we ack it.
                .basic_get(dead_queue.clone(), BasicGetOptions { no_ack: false })
                .await
                .map_err(AmqpError::broker("basic.get"))?;
            let Some(got) = got else { break };
            let delivery = got.delivery;
            let letter = DeadLetter::read(queue, &delivery);
            let action = decide(&letter);
            match action {
                Action::Keep => {
                    out.push((letter, action));
                    continue;
                }
                Action::Replay => {
                    // Write, then ack: confirmed by the broker before the
                    // dead letter goes.
                    publisher
                        .send(
                            &requeue,
                            queue,
                            delivery.properties.message_id().clone(),
                            &delivery.data,
                            headers::replayed(delivery.properties.headers().as_ref()),
                        )
                        .await?;
                    tracing::info!(queue, message_id = ?letter.message_id, reason = %letter.reason, "dead letter replayed");
                }
                Action::Drop => {
                    tracing::warn!(queue, message_id = ?letter.message_id, reason = %letter.reason, "dead letter dropped");
                }
            }
            ack(&delivery, &letter).await?;
            out.push((letter, action));
        }
        Ok(out)
    }
}

/// The messages replayed or dropped.
fn taken(seen: Vec<(DeadLetter, Action)>) -> Vec<DeadLetter> {
    seen.into_iter()
        .filter(|(_, action)| *action != Action::Keep)
        .map(|(letter, _)| letter)
        .collect()
}

async fn ack(delivery: &Delivery, letter: &DeadLetter) -> Result<(), AmqpError> {
    let not_acked = || AmqpError::NotAcked {
        message_id: letter.message_id.clone().unwrap_or_default(),
    };
    match delivery
        .acker
        .ack(BasicAckOptions { multiple: false })
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_acked()),
        Err(source) => {
            tracing::warn!(error = %source, "basic.ack failed");
            Err(not_acked())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter() -> DeadLetter {
        DeadLetter {
            queue: "q".into(),
            message_id: Some("m-1".into()),
            correlation_id: Some("c-1".into()),
            kind: Some("mint".into()),
            occurred_at: Some("2026-01-01T00:00:00Z".parse().unwrap()),
            reason: "Gave up after 10 attempts: database away".into(),
            attempts: 10,
            bytes: 3,
        }
    }

    #[test]
    fn a_selection_needs_every_condition_it_sets() {
        let l = letter();
        assert!(Selection::default().matches(&l));
        let by = |id: &str| Selection {
            id: Some(id.into()),
            ..Selection::default()
        };
        assert!(by("m-1").matches(&l));
        assert!(by("c-1").matches(&l));
        assert!(!by("m-2").matches(&l));
        let reason = Selection {
            reason_contains: Some("DATABASE".into()),
            ..Selection::default()
        };
        assert!(reason.matches(&l));
        let older = |t: &str| Selection {
            occurred_before: Some(t.parse().unwrap()),
            ..Selection::default()
        };
        assert!(older("2026-06-01T00:00:00Z").matches(&l));
        assert!(!older("2025-06-01T00:00:00Z").matches(&l));
        // A message without a time is never "older than".
        let timeless = DeadLetter {
            occurred_at: None,
            ..letter()
        };
        assert!(!older("2026-06-01T00:00:00Z").matches(&timeless));
        let both = Selection {
            id: Some("m-1".into()),
            reason_contains: Some("nope".into()),
            occurred_before: None,
        };
        assert!(!both.matches(&l));
    }
}
