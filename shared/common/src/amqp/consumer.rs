//! The one consumer loop every worker uses.
//!
//! All ack / retry / dead-letter decisions are made in [`Worker::settle`]:
//! the handler only says what happened ([`Outcome`]).

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt, future::BoxFuture};
use haven_messages::{Envelope, QueueMessage};
use lapin::{
    Channel, Consumer,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    },
    types::FieldTable,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::client::AmqpClient;
use super::error::{AmqpError, short};
use super::headers;
use super::link::Link;
use super::metrics::{
    AmqpMetrics, OUTCOME_ACK, OUTCOME_DEAD_LETTER, OUTCOME_REQUEUED, OUTCOME_RETRY,
    OUTCOME_UNDECODABLE,
};
use super::publisher::Publisher;
use super::topology::Topology;
use crate::retry::RetryPolicy;

/// Longest wait for the broker's reply to a cancel or a close at shutdown:
/// shutdown must finish even if the broker stops answering.
const BROKER_REPLY_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before reopening a consumer whose channel could not be opened.
const REOPEN_PAUSE: Duration = Duration::from_secs(1);
/// How often a consumer samples the depth of its queue and dead-letter queue.
const DEPTH_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// What a handler decided about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: its effects are committed. The delivery is acked.
    Ack,
    /// A transient failure: handle it again later (backoff through the tier
    /// queues); dead-lettered once the retry policy's attempts are used up.
    Retry(String),
    /// A permanent failure: park it in `<queue>.dead` with this reason.
    DeadLetter(String),
}

/// What the loop knows about a delivery besides the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryContext {
    /// The work queue (un-prefixed name).
    pub queue: &'static str,
    /// How many times this message was handled before (0 on first delivery).
    pub attempt: u32,
    /// The broker redelivered it (a previous consumer died before acking):
    /// the effects of that earlier run may already be committed.
    pub redelivered: bool,
    /// The routing key it was delivered with.
    pub routing_key: String,
}

/// Handles the messages of one queue. Must be idempotent on the message id:
/// delivery is at least once.
pub trait Handler<P>: Send + Sync + 'static {
    /// Processes one message. Return only once its effects are committed:
    /// the ack follows immediately.
    fn handle(&self, msg: Envelope<P>, ctx: DeliveryContext) -> BoxFuture<'_, Outcome>;
}

/// A [`Handler`] made from an async closure; see [`handler_fn`].
pub struct FnHandler<F>(F);

impl<F> fmt::Debug for FnHandler<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnHandler")
    }
}

/// Wraps `async |envelope, ctx| -> Outcome` as a [`Handler`].
pub fn handler_fn<P, F, Fut>(f: F) -> FnHandler<F>
where
    F: Fn(Envelope<P>, DeliveryContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    FnHandler(f)
}

impl<P, F, Fut> Handler<P> for FnHandler<F>
where
    P: QueueMessage,
    F: Fn(Envelope<P>, DeliveryContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    fn handle(&self, msg: Envelope<P>, ctx: DeliveryContext) -> BoxFuture<'_, Outcome> {
        Box::pin((self.0)(msg, ctx))
    }
}

/// Tuning of one consumer loop.
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Unacked deliveries the broker may push (basic.qos); default: the client's `AMQP_PREFETCH`.
    pub prefetch: Option<u16>,
    /// Handlers running at once; default: the prefetch.
    pub concurrency: Option<usize>,
    /// Backoff and attempt limit of `Outcome::Retry`.
    pub retry: RetryPolicy,
    /// How long shutdown waits for in-flight handlers before abandoning them
    /// (their messages are then redelivered).
    pub drain_timeout: Duration,
    /// Consume only while this is `true` (e.g. while the replica holds the
    /// lease its handlers need). When it turns `false` the consumer is
    /// cancelled, in-flight handlers finish and the channel closes, which
    /// gives its prefetched messages back to the queue for a replica that
    /// can handle them; consuming resumes when it turns `true`. `None`:
    /// always consume.
    pub gate: Option<watch::Receiver<bool>>,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        Self {
            prefetch: None,
            concurrency: None,
            retry: RetryPolicy::STANDARD,
            drain_timeout: Duration::from_secs(30),
            gate: None,
        }
    }
}

/// Consumes `P::QUEUE` until `shutdown` is cancelled.
///
/// Each delivery is decoded and handed to `handler` (at most `concurrency`
/// at once); the delivery is acked only after the handler returned and,
/// for a retry or a dead-letter, after the republished copy is confirmed.
/// An undecodable message is dead-lettered with the reason. When the
/// connection is lost the loop waits for the client's reconnect and resumes.
/// On shutdown it cancels the consumer, lets in-flight handlers finish (and
/// acks them), and closes the channel, which returns prefetched but
/// unhandled messages to the queue.
///
/// Returns an error only when it cannot start (the queue is not in the
/// client's topology) or the client was closed underneath it.
pub async fn consume<P, H>(
    client: &AmqpClient,
    handler: H,
    options: ConsumerOptions,
    shutdown: CancellationToken,
) -> Result<(), AmqpError>
where
    P: QueueMessage,
    H: Handler<P>,
{
    let spec = P::QUEUE;
    let topology = client.topology().clone();
    if !topology.has_queue(spec.name) {
        return Err(AmqpError::UnknownQueue(spec.name.to_owned()));
    }
    let queue = topology.work_queue(spec.name);
    let prefetch = options.prefetch.unwrap_or(client.prefetch()).max(1);
    let concurrency = options.concurrency.unwrap_or(usize::from(prefetch)).max(1);
    let worker = Arc::new(Worker {
        handler,
        queue: spec.name,
        retry: options.retry,
        publisher: client.publisher(),
        topology,
        metrics: client.metrics().clone(),
        _message: PhantomData,
    });
    let limiter = Arc::new(Semaphore::new(concurrency));
    let mut in_flight = JoinSet::new();

    let mut gate = options.gate.clone();
    loop {
        if let Some(gate) = gate.as_mut()
            && !*gate.borrow_and_update()
        {
            tracing::info!(
                queue = spec.name,
                "not consuming until this replica can handle messages"
            );
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                opened = gate.wait_for(|open| *open) => if opened.is_err() {
                    // The gate's owner is gone: the service is stopping.
                    return Ok(());
                },
            }
        }
        let link = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            link = client.link() => link?,
        };
        let (channel, mut consumer) = match open(&link, &queue, prefetch).await {
            Ok(session) => session,
            Err(e) => {
                tracing::warn!(queue = spec.name, error = ?e, "cannot start consuming; retrying");
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(REOPEN_PAUSE) => continue,
                }
            }
        };
        tracing::info!(
            queue = spec.name,
            generation = link.generation,
            prefetch,
            concurrency,
            "consuming"
        );

        let sampler = tokio::spawn(sample_depth(
            Arc::clone(&link),
            worker.topology.clone(),
            spec.name,
            worker.metrics.clone(),
        ));
        let end = run_session(
            &worker,
            &mut consumer,
            &limiter,
            &mut in_flight,
            &shutdown,
            client.lost(link.generation),
            gate_closes(gate.clone()),
        )
        .await;
        sampler.abort();

        match end {
            SessionEnd::Shutdown => {
                stop_consuming(&channel, &consumer, spec.name).await;
                drain(&mut in_flight, options.drain_timeout).await;
                close(&channel, "consumer shut down").await;
                tracing::info!(queue = spec.name, "consumer stopped");
                return Ok(());
            }
            SessionEnd::Gated => {
                stop_consuming(&channel, &consumer, spec.name).await;
                drain(&mut in_flight, options.drain_timeout).await;
                close(&channel, "consumer paused").await;
                tracing::info!(
                    queue = spec.name,
                    "consumer paused; its prefetched messages went back to the queue"
                );
            }
            SessionEnd::Lost(reason) => {
                tracing::warn!(queue = spec.name, %reason, "consumer interrupted; resuming when the broker is back");
                // Let the old handlers finish before consuming again: their
                // messages are redelivered, and running the same message twice
                // at the same time is a race idempotency need not survive.
                drain(&mut in_flight, options.drain_timeout).await;
                close(&channel, "consumer restarting").await;
            }
        }
    }
}

enum SessionEnd {
    Shutdown,
    Lost(String),
    /// The gate closed: stop consuming until it opens.
    Gated,
}

/// Resolves when `gate` turns `false` (never without a gate).
async fn gate_closes(gate: Option<watch::Receiver<bool>>) {
    match gate {
        Some(mut gate) => {
            if gate.wait_for(|open| !*open).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// `basic.cancel`: no new deliveries, so a drain is not racing new work.
async fn stop_consuming(channel: &Channel, consumer: &Consumer, queue: &str) {
    let cancel = channel.basic_cancel(consumer.tag(), BasicCancelOptions { nowait: false });
    match tokio::time::timeout(BROKER_REPLY_TIMEOUT, cancel).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(queue, error = %e, "basic.cancel failed"),
        Err(_) => tracing::warn!(queue, "basic.cancel timed out"),
    }
}

async fn open(link: &Link, queue: &str, prefetch: u16) -> Result<(Channel, Consumer), AmqpError> {
    let channel = link
        .connection
        .create_channel()
        .await
        .map_err(AmqpError::broker("channel.open"))?;
    channel
        // Per consumer (global: false): bounds the unacked deliveries this
        // loop holds, and so its memory and the work lost if it dies.
        .basic_qos(prefetch, BasicQosOptions { global: false })
        .await
        .map_err(AmqpError::broker("basic.qos"))?;
    let consumer = channel
        .basic_consume(
            short(queue)?,
            // Empty: the broker generates a unique tag; we read it back to cancel.
            "".into(),
            BasicConsumeOptions {
                // Irrelevant for queues; kept at the AMQP default.
                no_local: false,
                // Manual acks: a message leaves the queue only after its handler committed.
                no_ack: false,
                // Several replicas of a service consume the same queue.
                exclusive: false,
                // Wait for consume-ok so a missing queue surfaces here.
                nowait: false,
            },
            FieldTable::default(),
        )
        .await
        .map_err(AmqpError::broker("basic.consume"))?;
    Ok((channel, consumer))
}

async fn run_session<P, H>(
    worker: &Arc<Worker<P, H>>,
    consumer: &mut Consumer,
    limiter: &Arc<Semaphore>,
    in_flight: &mut JoinSet<()>,
    shutdown: &CancellationToken,
    lost: impl Future<Output = ()>,
    gated: impl Future<Output = ()>,
) -> SessionEnd
where
    P: QueueMessage,
    H: Handler<P>,
{
    let mut lost = std::pin::pin!(lost);
    let mut gated = std::pin::pin!(gated);
    loop {
        while let Some(done) = in_flight.try_join_next() {
            log_join(done);
        }
        // A free handler slot first, then a delivery: never take a message
        // we cannot start on.
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return SessionEnd::Shutdown,
            _ = &mut lost => return SessionEnd::Lost("the broker connection was lost".to_owned()),
            () = &mut gated => return SessionEnd::Gated,
            permit = limiter.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // The semaphore is never closed; if it were, stop as on shutdown.
                Err(_) => return SessionEnd::Shutdown,
            },
        };
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return SessionEnd::Shutdown,
            _ = &mut lost => return SessionEnd::Lost("the broker connection was lost".to_owned()),
            () = &mut gated => return SessionEnd::Gated,
            next = consumer.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                let worker = Arc::clone(worker);
                in_flight.spawn(worker.process(delivery, permit));
            }
            Some(Err(e)) => return SessionEnd::Lost(e.to_string()),
            None => return SessionEnd::Lost("the consumer was cancelled by the broker".to_owned()),
        }
    }
}

/// Every [`DEPTH_SAMPLE_INTERVAL`] while a session lasts: how many messages
/// wait in `queue` and in its dead-letter queue, and how many consumers the
/// work queue has, for the `haven_amqp_queue_*` gauges (the autoscaler and
/// the dead-letter alert read them). A passive declare on its own channel,
/// so a failed sample can never close the consuming channel.
async fn sample_depth(
    link: Arc<Link>,
    topology: Topology,
    queue: &'static str,
    metrics: AmqpMetrics,
) {
    let dead_label = haven_messages::names::dead_queue(queue);
    let targets = [
        (topology.work_queue(queue), queue.to_owned()),
        (topology.dead_queue(queue), dead_label),
    ];
    let mut channel: Option<Channel> = None;
    let mut ticks = tokio::time::interval(DEPTH_SAMPLE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if !channel.as_ref().is_some_and(|c| c.status().connected()) {
            channel = match link.connection.create_channel().await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::debug!(queue, error = %e, "cannot open a channel to sample queue depth");
                    continue;
                }
            };
        }
        let Some(ch) = channel.as_ref() else { continue };
        for (name, label) in &targets {
            let Ok(name) = short(name) else { continue };
            let declared = ch
                .queue_declare(
                    name,
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await;
            match declared {
                Ok(q) => {
                    metrics
                        .queue_messages
                        .with_label_values(&[label.as_str()])
                        .set(i64::from(q.message_count()));
                    if label == queue {
                        metrics
                            .queue_consumers
                            .with_label_values(&[label.as_str()])
                            .set(i64::from(q.consumer_count()));
                    }
                }
                Err(e) => {
                    tracing::debug!(queue = label.as_str(), error = %e, "queue depth sample failed");
                    break;
                }
            }
        }
    }
}

/// Waits for in-flight handlers, up to `timeout`.
async fn drain(in_flight: &mut JoinSet<()>, timeout: Duration) {
    if in_flight.is_empty() {
        return;
    }
    tracing::info!(in_flight = in_flight.len(), "draining in-flight handlers");
    let deadline = Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, in_flight.join_next()).await {
            Ok(Some(done)) => log_join(done),
            Ok(None) => return,
            Err(_) => {
                tracing::warn!(
                    abandoned = in_flight.len(),
                    "drain timed out; abandoning handlers (their messages will be redelivered)"
                );
                in_flight.abort_all();
                while in_flight.join_next().await.is_some() {}
                return;
            }
        }
    }
}

async fn close(channel: &Channel, why: &'static str) {
    if !channel.status().connected() {
        return;
    }
    match tokio::time::timeout(BROKER_REPLY_TIMEOUT, channel.close(200, why.into())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "closing the consumer channel failed"),
        Err(_) => tracing::warn!("closing the consumer channel timed out"),
    }
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && !e.is_cancelled()
    {
        tracing::error!(error = %e, "a delivery task failed");
    }
}

/// How a delivery leaves the queue.
enum Settle {
    Ack,
    Retry { reason: String },
    DeadLetter { reason: String, attempts: u32 },
}

struct Worker<P, H> {
    handler: H,
    queue: &'static str,
    retry: RetryPolicy,
    publisher: Publisher,
    topology: Topology,
    metrics: AmqpMetrics,
    _message: PhantomData<fn() -> P>,
}

impl<P, H> Worker<P, H>
where
    P: QueueMessage,
    H: Handler<P>,
{
    async fn process(self: Arc<Self>, delivery: Delivery, permit: OwnedSemaphorePermit) {
        let attempt = headers::attempt(delivery.properties.headers().as_ref());
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default();
        // A consumer span (`consume <queue>`) continuing the trace of
        // whoever published the message (its `traceparent` header): the
        // handler's spans, the messages it publishes and the chain
        // transaction it sends all join that trace.
        let span = tracing::info_span!(
            "consume",
            otel.name = %format_args!("consume {}", self.queue),
            otel.kind = "consumer",
            queue = self.queue,
            message_id = %message_id,
            correlation_id = tracing::field::Empty,
            attempt,
            kind = tracing::field::Empty,
            redelivered = delivery.redelivered,
        );
        headers::trace(delivery.properties.headers().as_ref()).set_parent_of(&span);
        async {
            let (label, settle) = self.decide(&delivery, attempt).await;
            let label = match self.settle(&delivery, attempt, settle).await {
                Ok(()) => label,
                Err(e) => {
                    tracing::error!(error = ?e, "could not republish; handing the message back to the broker");
                    requeue(&delivery).await;
                    OUTCOME_REQUEUED
                }
            };
            self.metrics
                .consumed
                .with_label_values(&[self.queue, label])
                .inc();
        }
        .instrument(span)
        .await;
        drop(permit);
    }

    /// Runs the handler (or rejects the bytes) and decides how to settle.
    async fn decide(&self, delivery: &Delivery, attempt: u32) -> (&'static str, Settle) {
        let envelope = match Envelope::<P>::decode(&delivery.data) {
            Ok(envelope) => envelope,
            Err(e) => {
                // Logged once, by `settle` ("dead-lettered" with this reason);
                // the loop carries on with the next delivery.
                return (
                    OUTCOME_UNDECODABLE,
                    Settle::DeadLetter {
                        reason: format!("undecodable: {e}"),
                        attempts: attempt,
                    },
                );
            }
        };
        let span = tracing::Span::current();
        span.record("kind", envelope.kind());
        span.record(
            "correlation_id",
            tracing::field::display(envelope.correlation_id),
        );
        let ctx = DeliveryContext {
            queue: self.queue,
            attempt,
            redelivered: delivery.redelivered,
            routing_key: delivery.routing_key.to_string(),
        };
        let started = Instant::now();
        let outcome = AssertUnwindSafe(self.handler.handle(envelope, ctx))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                // A panic is a bug, but possibly a transient one (a poisoned
                // pool, an unexpected reply): retry it rather than lose it.
                let reason = format!("handler panicked: {}", panic_message(panic.as_ref()));
                tracing::error!(%reason, "handler panicked");
                Outcome::Retry(reason)
            });
        self.metrics
            .handler_seconds
            .with_label_values(&[self.queue])
            .observe(started.elapsed().as_secs_f64());

        let handled = attempt.saturating_add(1);
        match outcome {
            Outcome::Ack => (OUTCOME_ACK, Settle::Ack),
            Outcome::Retry(reason) if self.retry.exhausted(attempt) => (
                OUTCOME_DEAD_LETTER,
                Settle::DeadLetter {
                    reason: format!("gave up after {handled} attempts: {reason}"),
                    attempts: handled,
                },
            ),
            Outcome::Retry(reason) => (OUTCOME_RETRY, Settle::Retry { reason }),
            Outcome::DeadLetter(reason) => (
                OUTCOME_DEAD_LETTER,
                Settle::DeadLetter {
                    reason,
                    attempts: handled,
                },
            ),
        }
    }

    /// Republishes if needed (confirmed), then acks.
    async fn settle(
        &self,
        delivery: &Delivery,
        attempt: u32,
        settle: Settle,
    ) -> Result<(), AmqpError> {
        let original = delivery.properties.headers().as_ref();
        let message_id = delivery.properties.message_id().clone();
        match settle {
            Settle::Ack => {}
            Settle::Retry { reason } => {
                let tier = self.retry.tier_for_attempt(attempt);
                let next = attempt.saturating_add(1);
                // The routing key is the work queue's name: the tier queue
                // keeps it when it dead-letters into the requeue exchange.
                self.publisher
                    .send(
                        &self.topology.retry_exchange(&tier),
                        self.queue,
                        message_id,
                        &delivery.data,
                        headers::republish(original, next, None),
                    )
                    .await?;
                tracing::info!(%reason, tier = tier.label, next_attempt = next, "retrying later");
            }
            Settle::DeadLetter { reason, attempts } => {
                self.publisher
                    .send(
                        &self.topology.dead_exchange(),
                        self.queue,
                        message_id,
                        &delivery.data,
                        headers::republish(original, attempts, Some(&reason)),
                    )
                    .await?;
                tracing::warn!(%reason, "dead-lettered");
            }
        }
        match delivery
            .acker
            .ack(BasicAckOptions { multiple: false })
            .await
        {
            Ok(true) => {}
            // The channel died after the handler committed: the broker will
            // redeliver, and the idempotent handler will ack it next time.
            Ok(false) => {
                tracing::warn!("channel closed before the ack; the message will be redelivered")
            }
            Err(e) => tracing::warn!(error = %e, "ack failed; the message will be redelivered"),
        }
        Ok(())
    }
}

/// Gives the delivery back for immediate redelivery; the queue's delivery
/// limit stops this from looping forever.
async fn requeue(delivery: &Delivery) {
    let nack = delivery
        .acker
        .nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        })
        .await;
    if let Err(e) = nack {
        tracing::warn!(error = %e, "nack failed; the message will be redelivered when the channel closes");
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
