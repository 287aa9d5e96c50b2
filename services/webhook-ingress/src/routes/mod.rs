//! The HTTP API of webhook-ingress: one router per route group, merged here,
//! each route registered together with its OpenAPI operation
//! (`utoipa-axum`), so the document lists exactly the routes served.
//!
//! - [`webhooks`]: the nine signed partner webhooks of SPEC.md.
//! - [`token`]: the API-key token commands (`/token/mint`, `/token/redeem`).
//! - [`users`]: operators' decisions about users (`/users/{user_id}/kyc`).
//!
//! `/health` and `/metrics` come from the shared ops router (see `run`); the
//! document is served at `/openapi.json` and browsable at `/docs`.

pub mod body;
pub mod token;
pub mod users;
pub mod webhooks;

use axum::Router;
use utoipa::openapi::OpenApi;

use crate::state::AppState;

/// Every API route of webhook-ingress, and its part of the OpenAPI document
/// (the service skeleton serves it with the shared part at `/openapi.json`).
pub fn router(state: AppState) -> (Router, OpenApi) {
    let (routes, api) = api();
    (routes.with_state(state), api)
}

/// The routes and their operations, before the state is given.
fn api() -> (Router<AppState>, OpenApi) {
    utoipa_axum::router::OpenApiRouter::new()
        .merge(webhooks::router())
        .merge(token::router())
        .merge(users::router())
        .split_for_parts()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routes::token::API_KEY_SCHEME;
    use crate::routes::webhooks::ROUTES;

    #[test]
    fn every_route_is_in_the_document() {
        let (_, doc) = api();
        for (path, _, _) in ROUTES {
            assert!(
                doc.paths
                    .paths
                    .get(path)
                    .and_then(|item| item.post.as_ref())
                    .is_some(),
                "{path}"
            );
        }
        for path in ["/token/mint", "/token/redeem", "/users/{user_id}/kyc"] {
            assert!(doc.paths.paths[path].post.is_some(), "{path}");
        }
        assert_eq!(doc.paths.paths.len(), ROUTES.len() + 3);

        // Served with the shared part: /livez, /health, /metrics, /openapi.json, /docs.
        let mut full = haven_common::openapi::document("webhook-ingress");
        full.merge(doc);
        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        for path in ["/livez", "/health", "/metrics"] {
            assert!(json["paths"][path]["get"].is_object(), "{path}");
        }
        // The commands name a security scheme that exists.
        let mint = &json["paths"]["/token/mint"]["post"];
        assert!(mint["security"][0][API_KEY_SCHEME].is_array(), "{mint}");
        assert_eq!(
            json["components"]["securitySchemes"][API_KEY_SCHEME]["in"],
            "header"
        );
        assert_eq!(
            json["components"]["schemas"]["MintBody"]["properties"]["amount"]["$ref"],
            "#/components/schemas/HnvAmount"
        );
        let webhook = &json["paths"]["/webhooks/aurora/booking-created"]["post"];
        assert_eq!(webhook["tags"][0], "aurora");
        assert!(webhook["responses"]["401"].is_object());
    }
}
