//! [`Context`]: what every handler and periodic job of one running
//! reward-calculator shares.

use std::sync::Arc;
use std::time::Duration;

use haven_chain::signer::CustodyAddresses;
use haven_outbox::OutboxNotifier;
use sea_orm::DatabaseConnection;

use crate::emission::Emission;
use crate::metrics::Metrics;
use crate::rules::Rules;

/// Shared state, behind an `Arc`.
#[derive(Debug)]
pub struct Context {
    /// The database pool.
    pub db: DatabaseConnection,
    /// The checked reward rules.
    pub rules: Rules,
    /// Derives a new user's custodial wallet from its index.
    pub wallets: CustodyAddresses,
    /// Wakes the outbox relay after a commit that enqueued messages.
    pub outbox: OutboxNotifier,
    /// This service's instruments.
    pub metrics: Metrics,
    /// The emission budget and its periods.
    pub emission: Arc<Emission>,
    /// Length of a staking interest period.
    pub staking_period: Duration,
}
