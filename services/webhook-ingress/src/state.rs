//! The state every handler and extractor reaches, in its own module so that
//! neither the routes nor the extractors import each other for it.
//!
//! Extractors such as [`crate::auth::Operator`] take only the parts they need
//! through [`FromRef`], so they work with any state that provides them.

use std::sync::Arc;

use axum::extract::FromRef;
use haven_entity::redemptions::KycRule;
use haven_outbox::OutboxNotifier;
use sea_orm::DatabaseConnection;

use haven_common::auth::KeyGuard;

use crate::auth::RateLimit;
use crate::metrics::Metrics;
use crate::signature::{Partner, PartnerSecrets};

/// What every handler can reach; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// Where events, commands and their outbox rows are written.
    pub db: DatabaseConnection,
    /// Wakes the outbox relay after a commit.
    pub outbox: OutboxNotifier,
    /// Aurora's active secrets.
    pub aurora_secrets: PartnerSecrets,
    /// Tribe's active secrets.
    pub tribe_secrets: PartnerSecrets,
    /// Active API keys, behind the guess throttle.
    pub keys: KeyGuard,
    /// Per-key limit of the token commands.
    pub rate_limit: RateLimit,
    /// Largest body read.
    pub max_body_size: usize,
    /// What an unverified user may redeem.
    pub kyc: KycRule,
    /// This service's instruments.
    pub metrics: Metrics,
}

impl AppState {
    /// Wraps the shared state.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// The active secrets of `partner`.
    pub fn secrets(&self, partner: Partner) -> &PartnerSecrets {
        match partner {
            Partner::Aurora => &self.0.aurora_secrets,
            Partner::Tribe => &self.0.tribe_secrets,
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

// The parts the API-key extractor needs; all are reference-counted handles,
// so the clones per token command are cheap.

impl FromRef<AppState> for KeyGuard {
    fn from_ref(state: &AppState) -> Self {
        state.keys.clone()
    }
}

impl FromRef<AppState> for RateLimit {
    fn from_ref(state: &AppState) -> Self {
        state.rate_limit.clone()
    }
}

impl FromRef<AppState> for Metrics {
    fn from_ref(state: &AppState) -> Self {
        state.metrics.clone()
    }
}
