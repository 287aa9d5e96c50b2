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

use axum::Router;

use crate::state::AppState;

/// Every API route of webhook-ingress.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(webhooks::router())
        .merge(token::router())
        .with_state(state)
        .merge(haven_common::openapi::docs_router({
            let mut doc = haven_common::openapi::document(crate::metrics::SERVICE);
            doc.merge(openapi::document());
            doc
        }))
}
