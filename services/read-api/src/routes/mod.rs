//! The HTTP API of read-api: one router per route group, merged here, each
//! route registered together with its OpenAPI operation (`utoipa-axum`), so
//! the document lists exactly the routes served.
//!
//! - [`balance`]: `GET /token/balance/{user_id}` and the look-up by wallet or email.
//! - [`analytics`]: `GET /analytics/user/{user_id}`, `/analytics/token-stats`,
//!   `/analytics/transactions/{user_id}`, `/analytics/reconciliation`.
//! - [`history`]: `GET /token/transactions/{tx_id}` and
//!   `/token/redemptions/{request_id}`, what happened to one of them.
//!
//! `/health`, `/metrics`, `/openapi.json` and `/docs` come from haven-common
//! (see `run`).

pub mod access;
pub mod analytics;
pub mod balance;
pub mod extract;
pub mod history;
mod state;

use axum::Router;
use utoipa::openapi::OpenApi;
use utoipa::openapi::tag::TagBuilder;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use self::state::{AppState, Inner};

/// Every API route of read-api, and their OpenAPI operations; behind
/// `access` (an API key on every route) when `READ_API_KEYS` is set.
pub fn router(state: AppState, access: Option<access::Access>) -> (Router, OpenApi) {
    let (router, mut api) = OpenApiRouter::new()
        .routes(routes!(balance::balance))
        .routes(routes!(balance::lookup))
        .routes(routes!(analytics::user))
        .routes(routes!(analytics::token_stats))
        .routes(routes!(analytics::transactions))
        .routes(routes!(analytics::reconciliation))
        .routes(routes!(history::transaction))
        .routes(routes!(history::redemption))
        .split_for_parts();
    api.tags = Some(vec![
        TagBuilder::new()
            .name(balance::TAG)
            .description(Some("Balances of users, for guests' apps and partners"))
            .build(),
        TagBuilder::new()
            .name(analytics::TAG)
            .description(Some(
                "Per-user figures and histories, token totals and the ledger/chain reconciliation",
            ))
            .build(),
        TagBuilder::new()
            .name(history::TAG)
            .description(Some(
                "What happened to one mint, burn or redemption: its steps, chain transaction, who asked and ledger movements",
            ))
            .build(),
    ]);
    let router = router.with_state(state);
    let Some(access) = access else {
        return (router, api);
    };
    access::document(&mut api);
    let router = router.route_layer(axum::middleware::from_fn_with_state(
        access,
        access::require_key,
    ));
    (router, api)
}
