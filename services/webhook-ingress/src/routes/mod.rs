//! The HTTP API of webhook-ingress: one router per route group, merged here.
//!
//! - [`webhooks`]: the nine signed partner webhooks of SPEC.md.
//! - [`token`]: the API-key token commands (`/token/mint`, `/token/redeem`).
//!
//! `/health` and `/metrics` come from the shared ops router (see `run`);
//! [`openapi`] documents every route, served at `/openapi.json` and `/docs`.

pub mod body;
pub mod openapi;
pub mod token;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use haven_common::money::Wei;
use haven_outbox::OutboxNotifier;
use sea_orm::DatabaseConnection;

use crate::auth::{ApiKeys, RateLimit};
use crate::metrics::Metrics;
use crate::signature::{Partner, PartnerSecrets};

/// What every handler can reach; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The contents of [`AppState`].
#[derive(Debug)]
pub struct Inner {
    /// The database.
    pub db: DatabaseConnection,
    /// Wakes the outbox relay after a commit.
    pub outbox: OutboxNotifier,
    /// Aurora's active secrets.
    pub aurora_secrets: PartnerSecrets,
    /// Tribe's active secrets.
    pub tribe_secrets: PartnerSecrets,
    /// Active API keys.
    pub api_keys: ApiKeys,
    /// Per-key limit of the token commands.
    pub rate_limit: RateLimit,
    /// Largest body read.
    pub max_body_size: usize,
    /// Redemptions above this need KYC.
    pub kyc_threshold: Wei,
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

/// Every API route of webhook-ingress, and its part of the OpenAPI document.
pub fn router(state: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let router = Router::new()
        .merge(webhooks::router())
        .merge(token::router())
        .with_state(state);
    (router, openapi::document())
}
