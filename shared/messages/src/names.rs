//! Names of every exchange, queue, routing key and header on the broker.
//!
//! The broker topology (declared by `haven_common::amqp`) is derived from
//! these constants only, so a newcomer finds every name in one file.

/// Durable topic exchange every piece of work is published to.
pub const EVENTS_EXCHANGE: &str = "haven.events";

/// Suffix of the dead-letter queue that belongs to each work queue.
pub const DEAD_SUFFIX: &str = ".dead";

/// Header carrying how many times a message has been handled before (0 on first delivery).
pub const HEADER_ATTEMPT: &str = "x-haven-attempt";
/// Header carrying why a message was dead-lettered.
pub const HEADER_DEAD_REASON: &str = "x-haven-dead-reason";

/// A work queue consumed by one service, and the routing-key patterns that
/// bind it to [`EVENTS_EXCHANGE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSpec {
    /// Queue name (before any namespace prefix).
    pub name: &'static str,
    /// Topic patterns bound on [`EVENTS_EXCHANGE`].
    pub bindings: &'static [&'static str],
}

/// Partner webhooks accepted by webhook-ingress, consumed by reward-calculator.
pub const PARTNER_EVENTS: QueueSpec = QueueSpec {
    name: "reward-calculator.partner-events",
    bindings: &["partner.#"],
};

/// Mint and burn requests, consumed by chain-minter.
pub const CHAIN_REQUESTS: QueueSpec = QueueSpec {
    name: "chain-minter.requests",
    bindings: &["chain.request.#"],
};

/// Redemption requests accepted by webhook-ingress, consumed by redemption-payout.
pub const REDEMPTION_REQUESTS: QueueSpec = QueueSpec {
    name: "redemption-payout.requests",
    bindings: &["redemption.#"],
};

/// Outcomes of chain transactions, consumed by redemption-payout (burns of redemptions).
pub const CHAIN_EVENTS: QueueSpec = QueueSpec {
    name: "redemption-payout.chain-events",
    bindings: &["chain.event.#"],
};

/// Every work queue of the system.
pub const ALL_QUEUES: &[QueueSpec] = &[
    PARTNER_EVENTS,
    CHAIN_REQUESTS,
    REDEMPTION_REQUESTS,
    CHAIN_EVENTS,
];

/// Routing-key prefix of partner events: `partner.<partner>.<event>`.
pub const PARTNER_ROUTING_PREFIX: &str = "partner";
/// Routing-key prefix of chain requests: `chain.request.<mint|burn>`.
pub const CHAIN_REQUEST_ROUTING_PREFIX: &str = "chain.request";
/// Routing-key prefix of chain outcomes: `chain.event.<outcome>`.
pub const CHAIN_EVENT_ROUTING_PREFIX: &str = "chain.event";
/// Routing-key prefix of redemption commands: `redemption.<command>`.
pub const REDEMPTION_ROUTING_PREFIX: &str = "redemption";

/// Name of the dead-letter queue of `queue`.
pub fn dead_queue(queue: &str) -> String {
    format!("{queue}{DEAD_SUFFIX}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_queue_has_a_unique_name_and_a_binding() {
        let mut names: Vec<_> = ALL_QUEUES.iter().map(|q| q.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL_QUEUES.len());
        assert!(ALL_QUEUES.iter().all(|q| !q.bindings.is_empty()));
        assert_eq!(
            dead_queue(PARTNER_EVENTS.name),
            "reward-calculator.partner-events.dead"
        );
    }
}
