//! Metrics of reward-calculator.
//!
//! Shared instruments (HTTP requests, dependency health, AMQP publish and
//! consume, the outbox relay) are registered by the shared crates on this
//! service's registry; the ones below are this service's own, names and
//! labels as constants (listed in `docs/metrics.md`).

use haven_common::metrics::{MetricsError, MetricsRegistry};
use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge};

use crate::rules::Rule;

/// Value of the constant `service` label on every metric of this service.
pub const SERVICE: &str = "reward-calculator";

/// Rewards by rule and outcome.
pub const REWARDS_TOTAL: &str = "haven_rewards_total";
/// Rewards held for a later emission period, now.
pub const REWARDS_HELD: &str = "haven_rewards_held";
/// Their total amount in HNV (an approximation for dashboards: amounts are exact in the database).
pub const REWARDS_HELD_HNV: &str = "haven_rewards_held_hnv";
/// HAVEN users created on first sight.
pub const USERS_CREATED_TOTAL: &str = "haven_users_created_total";
/// Staking interest periods paid.
pub const STAKING_ACCRUALS_TOTAL: &str = "haven_staking_accruals_total";

/// Clawbacks opened: reversed rewards whose tokens were spent.
pub const CLAWBACKS_OPENED_TOTAL: &str = "haven_clawbacks_opened_total";
/// Gauge: HNV owed by users for reversed rewards they had spent.
pub const CLAWBACK_OUTSTANDING_HNV: &str = "haven_clawback_outstanding_hnv";
/// Gauge: users who owe a clawback.
pub const CLAWBACK_USERS: &str = "haven_clawback_outstanding_users";

/// The rule (`booking`, `review`, ..., `staking_interest`).
pub const LABEL_RULE: &str = "rule";
/// What happened to the reward (see [`Outcome`]).
pub const LABEL_OUTCOME: &str = "outcome";

/// What happened to a reward, the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded with its mint request.
    Granted,
    /// Already recorded for this event: nothing done.
    Duplicate,
    /// Over the period's emission budget: recorded without a mint.
    Held,
    /// A held reward got its mint in a later period.
    Released,
    /// Withdrawn before its mint went out (or never granted: the booking
    /// was cancelled first).
    Cancelled,
    /// Taken back by a burn after its mint was confirmed.
    Reversed,
    /// The event earns nothing (a low rating, an absence, a zero amount, a
    /// cancellation with nothing to cancel).
    None,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Granted => "granted",
            Outcome::Duplicate => "duplicate",
            Outcome::Held => "held",
            Outcome::Released => "released",
            Outcome::Cancelled => "cancelled",
            Outcome::Reversed => "reversed",
            Outcome::None => "none",
        }
    }
}

/// The instruments of one running reward-calculator.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: MetricsRegistry,
    rewards: IntCounterVec,
    held: IntGauge,
    held_hnv: Gauge,
    users_created: IntCounter,
    staking_accruals: IntCounter,
    clawbacks_opened: IntCounter,
    clawback_hnv: Gauge,
    clawback_users: IntGauge,
}

impl Metrics {
    /// A fresh registry: no global state, so tests can run several copies of
    /// the service in one process.
    pub fn new() -> Result<Self, MetricsError> {
        let registry = MetricsRegistry::new(SERVICE)?;
        let held_hnv = Gauge::new(
            REWARDS_HELD_HNV,
            "Total amount of the held rewards, in HNV (approximate; exact in the database).",
        )
        .map_err(MetricsError::from)?;
        registry
            .registry()
            .register(Box::new(held_hnv.clone()))
            .map_err(MetricsError::from)?;
        let clawback_hnv = Gauge::new(
            CLAWBACK_OUTSTANDING_HNV,
            "HNV users owe for reversed rewards whose tokens they had spent, at the last periodic job (approximate; exact in the database).",
        )
        .map_err(MetricsError::from)?;
        registry
            .registry()
            .register(Box::new(clawback_hnv.clone()))
            .map_err(MetricsError::from)?;
        Ok(Self {
            rewards: registry.int_counter_vec(
                REWARDS_TOTAL,
                "Rewards by rule and outcome (granted, duplicate, held, released, cancelled, reversed, none).",
                &[LABEL_RULE, LABEL_OUTCOME],
            )?,
            held: registry.int_gauge(
                REWARDS_HELD,
                "Rewards held for a later emission period, at the last periodic job.",
            )?,
            held_hnv,
            users_created: registry.int_counter(
                USERS_CREATED_TOTAL,
                "HAVEN users (and custodial wallets) created the first time a partner mentioned them.",
            )?,
            staking_accruals: registry.int_counter(
                STAKING_ACCRUALS_TOTAL,
                "Staking interest periods paid (a reward granted or held per stake and period).",
            )?,
            clawbacks_opened: registry.int_counter(
                CLAWBACKS_OPENED_TOTAL,
                "Reversed rewards whose tokens were spent: the unburnable part is owed by the user (a clawback).",
            )?,
            clawback_hnv,
            clawback_users: registry.int_gauge(
                CLAWBACK_USERS,
                "Users who owe a clawback, at the last periodic job.",
            )?,
            registry,
        })
    }

    /// The registry `/metrics` exposes.
    pub fn registry(&self) -> &MetricsRegistry {
        &self.registry
    }

    /// Counts a reward outcome.
    pub fn reward(&self, rule: Rule, outcome: Outcome) {
        self.rewards
            .with_label_values(&[rule.as_str(), outcome.as_str()])
            .inc();
    }

    /// Counts a user created.
    pub fn user_created(&self) {
        self.users_created.inc();
    }

    /// Counts a staking period paid.
    pub fn staking_accrual(&self) {
        self.staking_accruals.inc();
    }

    /// Counts a clawback opened.
    pub fn clawback_opened(&self) {
        self.clawbacks_opened.inc();
    }

    /// Sets the clawback gauges.
    pub fn set_clawbacks(&self, wei: i128, users: u64) {
        // Display only: a float is fine for a dashboard, never for money.
        self.clawback_hnv
            .set(wei as f64 / haven_common::money::WEI_PER_HNV as f64);
        self.clawback_users
            .set(i64::try_from(users).unwrap_or(i64::MAX));
    }

    /// Sets the held gauges.
    pub fn set_held(&self, count: u64, wei: i128) {
        self.held.set(i64::try_from(count).unwrap_or(i64::MAX));
        // Display only: a float is fine for a dashboard, never for money.
        self.held_hnv
            .set(wei as f64 / haven_common::money::WEI_PER_HNV as f64);
    }
}
