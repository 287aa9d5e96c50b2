//! Exchange and queue names, and their idempotent declaration.

use haven_messages::names::{self, QueueSpec};
use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};

use super::error::{AmqpError, short};
use crate::retry::{RETRY_TIERS, RetryTier};

/// Direct exchange of the dead-letter queues; routing key = the work queue's name.
pub const DEAD_EXCHANGE: &str = "haven.dead";
/// Direct exchange tier queues dead-letter into; every work queue is bound to
/// it by its own name, so an expired retry returns to the queue it came from.
pub const REQUEUE_EXCHANGE: &str = "haven.requeue";
/// Prefix of the per-tier fanout exchanges and TTL queues: `haven.retry.5s`.
pub const RETRY_EXCHANGE_PREFIX: &str = "haven.retry";
/// Deliveries of one message (crashes, lost connections) before the broker
/// itself dead-letters it: a guard against a message that kills its consumer
/// every time, which the handler's own retry accounting never sees.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 20;

/// The prefix put in front of every exchange and queue name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Namespace(String);

impl Namespace {
    /// `prefix` may be empty (production); otherwise names become `<prefix>.<name>`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self(prefix.into())
    }

    /// The prefix as configured.
    pub fn prefix(&self) -> &str {
        &self.0
    }

    /// The broker-side name of `name` in this namespace.
    pub fn name(&self, name: &str) -> String {
        if self.0.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.0)
        }
    }
}

/// The whole broker topology one client declares: the events exchange, the
/// retry and dead-letter machinery, and one work queue per [`QueueSpec`].
///
/// Declaration is idempotent (same names, same arguments), so every service
/// declares the complete topology on every (re)connect and start order never
/// matters: a publisher never hits an unbound routing key because the
/// consumer service has not started yet.
#[derive(Debug, Clone)]
pub struct Topology {
    namespace: Namespace,
    queues: Vec<QueueSpec>,
    delivery_limit: u32,
}

impl Topology {
    /// The topology of `queues` in `namespace`.
    pub fn new(namespace: Namespace, queues: &[QueueSpec]) -> Self {
        Self {
            namespace,
            queues: queues.to_vec(),
            delivery_limit: DEFAULT_DELIVERY_LIMIT,
        }
    }

    /// Overrides [`DEFAULT_DELIVERY_LIMIT`].
    ///
    /// Changing it for an existing queue makes the declaration fail
    /// (PRECONDITION_FAILED): queue arguments are fixed at creation.
    pub fn with_delivery_limit(mut self, limit: u32) -> Self {
        self.delivery_limit = limit;
        self
    }

    /// The namespace every name is prefixed with.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// The work queues declared.
    pub fn queues(&self) -> &[QueueSpec] {
        &self.queues
    }

    /// True when `queue` (by its un-prefixed name) is one of the declared work queues.
    pub fn has_queue(&self, queue: &str) -> bool {
        self.queues.iter().any(|q| q.name == queue)
    }

    /// Broker-side name of the events exchange.
    pub fn events_exchange(&self) -> String {
        self.namespace.name(names::EVENTS_EXCHANGE)
    }

    /// Broker-side name of the dead-letter exchange.
    pub fn dead_exchange(&self) -> String {
        self.namespace.name(DEAD_EXCHANGE)
    }

    /// Broker-side name of the requeue exchange.
    pub fn requeue_exchange(&self) -> String {
        self.namespace.name(REQUEUE_EXCHANGE)
    }

    /// Broker-side name of the exchange (and of the TTL queue) of a retry tier.
    pub fn retry_exchange(&self, tier: &RetryTier) -> String {
        self.namespace
            .name(&format!("{RETRY_EXCHANGE_PREFIX}.{}", tier.label))
    }

    /// Broker-side name of a work queue.
    pub fn work_queue(&self, queue: &str) -> String {
        self.namespace.name(queue)
    }

    /// Broker-side name of a work queue's dead-letter queue.
    pub fn dead_queue(&self, queue: &str) -> String {
        self.namespace.name(&names::dead_queue(queue))
    }

    /// Every exchange this topology declares (for test cleanup).
    pub fn exchange_names(&self) -> Vec<String> {
        let mut out = vec![
            self.events_exchange(),
            self.dead_exchange(),
            self.requeue_exchange(),
        ];
        out.extend(RETRY_TIERS.iter().map(|t| self.retry_exchange(t)));
        out
    }

    /// Every queue this topology declares (for test cleanup).
    pub fn queue_names(&self) -> Vec<String> {
        let mut out: Vec<String> = RETRY_TIERS.iter().map(|t| self.retry_exchange(t)).collect();
        for q in &self.queues {
            out.push(self.work_queue(q.name));
            out.push(self.dead_queue(q.name));
        }
        out
    }

    /// Declares everything on `channel`. Safe to run any number of times.
    #[tracing::instrument(skip_all, fields(namespace = %self.namespace.prefix()))]
    pub async fn declare(&self, channel: &Channel) -> Result<(), AmqpError> {
        let events = self.events_exchange();
        let dead = self.dead_exchange();
        let requeue = self.requeue_exchange();

        // Topic: consumers bind patterns such as `partner.#`.
        declare_exchange(channel, &events, ExchangeKind::Topic).await?;
        // Direct: exactly one dead queue per work queue, keyed by its name.
        declare_exchange(channel, &dead, ExchangeKind::Direct).await?;
        // Direct: an expired retry carries its work queue's name as routing key.
        declare_exchange(channel, &requeue, ExchangeKind::Direct).await?;

        for tier in RETRY_TIERS {
            let name = self.retry_exchange(tier);
            // Fanout: the routing key (the work queue's name) is not used to
            // reach the tier queue but must survive to the requeue exchange.
            declare_exchange(channel, &name, ExchangeKind::Fanout).await?;
            let mut args = quorum_args();
            // The whole point of the tier: every message waits exactly this long.
            args.insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(i64::try_from(tier.ttl.as_millis()).unwrap_or(i64::MAX)),
            );
            // Expired messages go back through the requeue exchange; no
            // x-dead-letter-routing-key, so the message keeps the routing key
            // it was published with (its work queue's name).
            args.insert("x-dead-letter-exchange".into(), long(&requeue));
            at_least_once_dead_lettering(&mut args);
            declare_queue(channel, &name, args).await?;
            bind(channel, &name, &name, "").await?;
        }

        for spec in &self.queues {
            let queue = self.work_queue(spec.name);
            let dead_queue = self.dead_queue(spec.name);

            // The dead queue is quorum too: it holds what needs a human, and
            // must survive a node loss.
            declare_queue(channel, &dead_queue, quorum_args()).await?;
            bind(channel, &dead_queue, &dead, spec.name).await?;

            let mut args = quorum_args();
            // Redeliveries (crashed consumer, lost connection) are capped by
            // the broker; the limit's victims land in the dead queue.
            args.insert(
                "x-delivery-limit".into(),
                AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
            );
            args.insert("x-dead-letter-exchange".into(), long(&dead));
            // Without this the broker would dead-letter with the original
            // topic routing key, which no dead queue is bound by.
            args.insert("x-dead-letter-routing-key".into(), long(spec.name));
            at_least_once_dead_lettering(&mut args);
            declare_queue(channel, &queue, args).await?;
            for pattern in spec.bindings {
                bind(channel, &queue, &events, pattern).await?;
            }
            bind(channel, &queue, &requeue, spec.name).await?;
        }
        Ok(())
    }
}

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Quorum queues: replicated, durable, and they count deliveries (which
/// `x-delivery-limit` needs). Classic queues would lose messages with a node.
fn quorum_args() -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), long("quorum"));
    args
}

/// By default a quorum queue dead-letters at most once (a message can be lost
/// if the target is unavailable at that moment). At-least-once needs the
/// `reject-publish` overflow mode, which only matters with a length limit
/// (none is set).
fn at_least_once_dead_lettering(args: &mut FieldTable) {
    args.insert("x-dead-letter-strategy".into(), long("at-least-once"));
    args.insert("x-overflow".into(), long("reject-publish"));
}

async fn declare_exchange(
    channel: &Channel,
    name: &str,
    kind: ExchangeKind,
) -> Result<(), AmqpError> {
    channel
        .exchange_declare(
            short(name)?,
            kind,
            ExchangeDeclareOptions {
                // Survives a broker restart: bindings of durable queues need it.
                durable: true,
                // Never deleted when the last binding goes (a consumer
                // restarting must not take the exchange with it).
                auto_delete: false,
                // Publishers publish to it directly.
                internal: false,
                // Create it if missing; an existing one with other settings is an error we want to see.
                passive: false,
                // Wait for declare-ok so a failure surfaces here.
                nowait: false,
            },
            FieldTable::default(),
        )
        .await
        .map_err(AmqpError::broker("exchange.declare"))
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), AmqpError> {
    channel
        .queue_declare(
            short(name)?,
            QueueDeclareOptions {
                // Quorum queues must be durable; messages outlive restarts.
                durable: true,
                // Shared by every replica of the consuming service.
                exclusive: false,
                // Work must wait for a consumer, never vanish with the last one.
                auto_delete: false,
                passive: false,
                // Wait for declare-ok so an argument mismatch surfaces here.
                nowait: false,
            },
            args,
        )
        .await
        .map(|_| ())
        .map_err(AmqpError::broker("queue.declare"))
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), AmqpError> {
    channel
        .queue_bind(
            short(queue)?,
            short(exchange)?,
            short(key)?,
            // Wait for bind-ok: publishing before the binding exists would be unroutable.
            QueueBindOptions { nowait: false },
            FieldTable::default(),
        )
        .await
        .map_err(AmqpError::broker("queue.bind"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed_only_when_a_namespace_is_set() {
        let prod = Topology::new(Namespace::default(), names::ALL_QUEUES);
        assert_eq!(prod.events_exchange(), "haven.events");
        assert_eq!(
            prod.dead_queue(names::PARTNER_EVENTS.name),
            "reward-calculator.partner-events.dead"
        );
        assert_eq!(prod.retry_exchange(&RETRY_TIERS[1]), "haven.retry.5s");

        let t = Topology::new(Namespace::new("t-1"), names::ALL_QUEUES);
        assert_eq!(t.events_exchange(), "t-1.haven.events");
        assert_eq!(
            t.work_queue(names::CHAIN_REQUESTS.name),
            "t-1.chain-minter.requests"
        );
        assert!(t.has_queue(names::CHAIN_REQUESTS.name));
        assert!(!t.has_queue("t-1.chain-minter.requests"));
        assert_eq!(
            t.queue_names().len(),
            RETRY_TIERS.len() + 2 * names::ALL_QUEUES.len()
        );
        assert!(t.exchange_names().iter().all(|n| n.starts_with("t-1.")));
        assert!(t.queue_names().iter().all(|n| n.starts_with("t-1.")));
    }
}
