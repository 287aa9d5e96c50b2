//! Metrics of chain-minter.
//!
//! Shared instruments (HTTP, dependency health, AMQP, outbox relay) are
//! registered by the shared crates on this registry; these are the minter's
//! own, names and labels as constants (listed in `docs/metrics.md`).

use haven_common::metrics::{MetricsError, MetricsRegistry};
use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts,
};

/// Wei as ETH for a gauge: observational only (decisions compare wei).
fn eth(wei: alloy::primitives::U256) -> f64 {
    alloy::primitives::utils::format_ether(wei)
        .parse()
        .unwrap_or(f64::MAX)
}

/// Value of the constant `service` label on every metric of this service.
pub const SERVICE: &str = "chain-minter";

/// Token transactions finished, by kind and status.
pub const CHAIN_TXS_TOTAL: &str = "haven_chain_transactions_total";
/// Recipients per `batchMintWithRefs` sent.
pub const BATCH_SIZE: &str = "haven_chain_batch_size";
/// Chain transactions sent and not yet confirmed.
pub const IN_FLIGHT: &str = "haven_chain_in_flight";
/// Stuck transactions replaced with higher fees.
pub const REPLACEMENTS_TOTAL: &str = "haven_chain_replacements_total";
/// Send to confirmation, seconds.
pub const CONFIRMATION_SECONDS: &str = "haven_chain_confirmation_seconds";
/// Token transaction recorded (its row written) to confirmed, seconds.
pub const END_TO_END_SECONDS: &str = "haven_mint_end_to_end_seconds";
/// A mint's webhook (or command) accepted to its confirmation, seconds.
pub const SINCE_ACCEPTANCE_SECONDS: &str = "haven_mint_since_acceptance_seconds";
/// Send or confirm attempts that failed and were retried, by class.
pub const RETRIES_TOTAL: &str = "haven_chain_retries_total";
/// Gauge: nonces the leased signer has used that the node does not know
/// (its next nonce minus the node's pending count); above 0 for long, every
/// later transaction of the signer is stuck behind the hole.
pub const NONCE_GAP: &str = "haven_chain_nonce_gap";
/// Confirmed token transactions found final.
pub const FINALIZED_TOTAL: &str = "haven_chain_finalized_total";
/// Confirmed token transactions a reorganisation removed (sent again).
pub const REORGED_TOTAL: &str = "haven_chain_reorged_total";
/// Stuck token transactions the sweep sent to the queue again.
pub const SWEEP_REQUEUED_TOTAL: &str = "haven_chain_sweep_requeued_total";
/// Gauge: unfinished token transactions older than `TX_GIVE_UP_AFTER`,
/// which the sweep no longer drives: each needs an operator.
pub const STUCK: &str = "haven_chain_transactions_stuck";

/// Gauge: a pool signer's ETH balance (gas money), by `signer` address.
pub const SIGNER_BALANCE_ETH: &str = "haven_chain_signer_balance_eth";
/// Gauge: `SIGNER_MIN_BALANCE_ETH`, the balance under which a signer is low.
pub const SIGNER_MIN_BALANCE_ETH: &str = "haven_chain_signer_balance_min_eth";
/// A pool signer's address (from the settings: as many values as signers).
pub const LABEL_SIGNER: &str = "signer";

/// `mint` or `burn`.
pub const LABEL_KIND: &str = "kind";
/// `confirmed`, `failed`, `cancelled`.
pub const LABEL_STATUS: &str = "status";
/// Why a retry happened: `transport`, `reverted_batch_split`, `nonce`, `database`.
pub const LABEL_CLASS: &str = "class";

const CHAIN_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 60.0, 120.0, 300.0,
];

/// The chain's buckets and longer ones: a mint waits on the queues and on
/// reward-calculator too, and a backlog after an outage lasts minutes.
const ACCEPTANCE_BUCKETS: &[f64] = &[
    0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// The instruments of one running chain-minter.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: MetricsRegistry,
    txs: IntCounterVec,
    batch_size: Histogram,
    in_flight: IntGauge,
    replacements: IntCounter,
    confirmation: Histogram,
    end_to_end: Histogram,
    since_acceptance: Histogram,
    retries: IntCounterVec,
    nonce_gap: IntGauge,
    requeued: IntCounter,
    stuck: IntGauge,
    finalized: IntCounter,
    reorged: IntCounter,
    signer_balance: GaugeVec,
    signer_min_balance: Gauge,
}

impl Metrics {
    /// A fresh registry: no global state, so tests can run several copies of
    /// the service in one process.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = MetricsRegistry::new(SERVICE)?;
        let histogram =
            |name: &str, help: &str, buckets: &[f64]| -> Result<Histogram, MetricsError> {
                let h =
                    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                        .map_err(MetricsError::from)?;
                registry
                    .registry()
                    .register(Box::new(h.clone()))
                    .map_err(MetricsError::from)?;
                Ok(h)
            };
        let batch_buckets: Vec<f64> = [1, 2, 5, 10, 20, 50, 75, 100].map(f64::from).to_vec();
        Ok(Self {
            txs: registry.int_counter_vec(
                CHAIN_TXS_TOTAL,
                "Token transactions finished, by kind (mint, burn) and status (confirmed, failed, cancelled).",
                &[LABEL_KIND, LABEL_STATUS],
            )?,
            batch_size: histogram(BATCH_SIZE, "Recipients per batchMintWithRefs sent.", &batch_buckets)?,
            in_flight: registry.int_gauge(IN_FLIGHT, "Chain transactions sent and not yet confirmed.")?,
            replacements: registry.int_counter(
                REPLACEMENTS_TOTAL,
                "Stuck transactions replaced with higher fees.",
            )?,
            confirmation: histogram(
                CONFIRMATION_SECONDS,
                "Seconds from sending a transaction to its confirmation.",
                CHAIN_BUCKETS,
            )?,
            end_to_end: histogram(
                END_TO_END_SECONDS,
                "Seconds from recording a token transaction (its row) to its confirmation.",
                CHAIN_BUCKETS,
            )?,
            since_acceptance: histogram(
                SINCE_ACCEPTANCE_SECONDS,
                "Seconds from accepting the webhook (or operator command) a mint carries out to the mint's confirmation: the latency guests feel.",
                ACCEPTANCE_BUCKETS,
            )?,
            retries: registry.int_counter_vec(
                RETRIES_TOTAL,
                "Send, confirm or record attempts that failed and were retried, by class.",
                &[LABEL_CLASS],
            )?,
            nonce_gap: registry.int_gauge(
                NONCE_GAP,
                "Nonces the leased signer used that the node does not know (next nonce - pending count).",
            )?,
            finalized: registry.int_counter(
                FINALIZED_TOTAL,
                "Confirmed token transactions found buried under CHAIN_FINALITY_DEPTH blocks: final.",
            )?,
            reorged: registry.int_counter(
                REORGED_TOTAL,
                "Confirmed token transactions a chain reorganisation removed; each is sent again with the same reference.",
            )?,
            requeued: registry.int_counter(
                SWEEP_REQUEUED_TOTAL,
                "Unfinished token transactions unchanged for TX_STALE_AFTER that the sweep sent to the queue again.",
            )?,
            stuck: registry.int_gauge(
                STUCK,
                "Unfinished token transactions recorded more than TX_GIVE_UP_AFTER ago: the sweep no longer drives them; each needs an operator.",
            )?,
            signer_balance: {
                let gauge = GaugeVec::new(
                    Opts::new(SIGNER_BALANCE_ETH, "ETH balance (gas money) of each pool signer."),
                    &[LABEL_SIGNER],
                )
                .map_err(MetricsError::from)?;
                registry
                    .registry()
                    .register(Box::new(gauge.clone()))
                    .map_err(MetricsError::from)?;
                gauge
            },
            signer_min_balance: {
                let gauge = Gauge::new(
                    SIGNER_MIN_BALANCE_ETH,
                    "SIGNER_MIN_BALANCE_ETH: the ETH balance under which a signer is low on gas.",
                )
                .map_err(MetricsError::from)?;
                registry
                    .registry()
                    .register(Box::new(gauge.clone()))
                    .map_err(MetricsError::from)?;
                gauge
            },
            registry,
        })
    }

    /// Records a signer's balance, given in wei.
    pub fn signer_balance(&self, signer: alloy::primitives::Address, wei: alloy::primitives::U256) {
        self.signer_balance
            .with_label_values(&[signer.to_string().as_str()])
            .set(eth(wei));
    }

    /// Records the low-balance threshold, given in wei.
    pub fn signer_min_balance(&self, wei: u128) {
        self.signer_min_balance
            .set(eth(alloy::primitives::U256::from(wei)));
    }

    /// The registry `/metrics` exposes.
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }

    /// Counts finished token transactions.
    pub fn finished(&self, kind: &str, status: &str, n: u64) {
        self.txs.with_label_values(&[kind, status]).inc_by(n);
    }

    /// Records a batch sent.
    pub fn batch(&self, size: usize) {
        self.batch_size.observe(size as f64);
    }

    /// One more / one fewer transaction in flight.
    pub fn in_flight(&self, delta: i64) {
        self.in_flight.add(delta);
    }

    /// Counts replacements of a confirmed transaction.
    pub fn replaced(&self, n: usize) {
        self.replacements.inc_by(n as u64);
    }

    /// Records send-to-confirmed time.
    pub fn confirmed_after(&self, seconds: f64) {
        self.confirmation.observe(seconds);
    }

    /// Records recorded-to-confirmed time of one token transaction.
    pub fn end_to_end(&self, seconds: f64) {
        self.end_to_end.observe(seconds);
    }

    /// Records accepted-to-confirmed time of one mint.
    pub fn since_acceptance(&self, seconds: f64) {
        self.since_acceptance.observe(seconds);
    }

    /// Records the leased signer's nonce gap.
    pub fn nonce_gap(&self, gap: u64) {
        self.nonce_gap.set(i64::try_from(gap).unwrap_or(i64::MAX));
    }

    /// Counts transactions found final.
    pub fn finalized(&self, n: u64) {
        self.finalized.inc_by(n);
    }

    /// Counts a transaction removed by a reorganisation.
    pub fn reorged(&self) {
        self.reorged.inc();
    }

    /// Counts transactions the sweep queued again.
    pub fn requeued(&self, n: u64) {
        self.requeued.inc_by(n);
    }

    /// Sets how many transactions the sweep gave up on.
    pub fn stuck(&self, n: u64) {
        self.stuck.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a retry.
    pub fn retry(&self, class: &str) {
        self.retries.with_label_values(&[class]).inc();
    }
}
