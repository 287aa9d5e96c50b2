//! Who may read: with `READ_API_KEYS` set, every data route needs a key
//! (missing 403, wrong 401, an address guessing keys 429). The reads carry
//! emails and KYC status, so production sets it; without it the reads are
//! open, as the seed's are (the development default).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use haven_common::auth::{API_KEY_HEADER, KeyGuard, KeyRefusal};
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};

use crate::error::Error;
use crate::metrics::Metrics;

/// Name of the security scheme in the OpenAPI document.
pub const SCHEME: &str = "api_key";

/// The guard and where its refusals are counted.
#[derive(Debug, Clone)]
pub struct Access {
    pub guard: KeyGuard,
    pub metrics: Metrics,
}

/// Middleware: lets a request with a valid key through, refuses the rest.
pub async fn require_key(State(access): State<Access>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    match access.guard.check(request.headers(), peer) {
        Ok(_) => next.run(request).await,
        Err(refusal) => {
            access
                .metrics
                .auth_failures
                .with_label_values(&[refusal.reason()])
                .inc();
            match refusal {
                KeyRefusal::Missing => Error::MissingApiKey,
                KeyRefusal::Invalid => Error::InvalidApiKey,
                KeyRefusal::Throttled { retry_after_secs } => {
                    Error::TooManyWrongKeys { retry_after_secs }
                }
            }
            .into_response()
        }
    }
}

/// Declares the key on every operation of `api`, with its three refusals.
pub fn document(api: &mut OpenApi) {
    api.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                API_KEY_HEADER,
                "One of READ_API_KEYS",
            ))),
        );
    let detail = haven_common::openapi::detail_response;
    for item in api.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            operation.security = Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
            let responses = &mut operation.responses.responses;
            responses.insert("401".to_owned(), detail("`Invalid API key`").into());
            responses.insert("403".to_owned(), detail("`Missing API key`").into());
            responses.insert(
                "429".to_owned(),
                detail("Too many wrong API keys from this address (`Retry-After`)").into(),
            );
        }
    }
}
