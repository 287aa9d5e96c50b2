//! `POST /users/{user_id}/kyc`: an operator records the outcome of a user's
//! KYC check, behind an API key ([`Operator`]). Every decision is kept with
//! who asked (the key's name, never the key) and when; the user's
//! `kyc_verified` becomes the latest, which the redemption threshold reads.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use haven_common::openapi::Detail;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::tag::TagBuilder;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::body::{identifier, parse_body, read_capped, require_json};
use crate::auth::Operator;
use crate::error::Error;
use crate::state::AppState;
use crate::store::{self, KycCommand};

/// Tag of the user administration routes.
pub const TAG: &str = "users";

/// The user administration routes, each registered with its operation.
pub fn router() -> OpenApiRouter<AppState> {
    let mut router = OpenApiRouter::new().routes(routes!(record_kyc));
    router.get_openapi_mut().tags = Some(vec![
        TagBuilder::new()
            .name(TAG)
            .description(Some("Operators' decisions about users, behind an API key"))
            .build(),
    ]);
    router
}

/// `POST /users/{user_id}/kyc` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct KycBody {
    /// Whether the user passed the check.
    verified: bool,
    /// The check's reference at the KYC vendor (kept with the decision).
    #[serde(default)]
    #[schema(max_length = 255)]
    reference: Option<String>,
}

/// The user's KYC status after the decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct KycAnswer {
    /// The partners' id of the user.
    pub user_id: String,
    /// The status now.
    pub kyc_verified: bool,
    /// When it was recorded.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

#[utoipa::path(
    post,
    path = "/users/{user_id}/kyc",
    tag = TAG,
    summary = "Record the outcome of a user's KYC check",
    params(("user_id" = String, Path, description = "The partners' id of the user")),
    request_body = KycBody,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Recorded; the user's status now", body = KycAnswer),
        (status = 401, description = "`Invalid API key`", body = Detail),
        (status = 403, description = "`Missing API key`", body = Detail),
        (status = 404, description = "`User not found`", body = Detail),
        (status = 413, description = "The body is larger than MAX_BODY_SIZE", body = Detail),
        (status = 415, description = "Content-Type is not JSON", body = Detail),
        (status = 422, description = "An invalid field", body = Detail),
        (status = 429, description = "The key's rate limit is used up, or this address sent too many wrong keys (`Retry-After`)", body = Detail),
        (status = 503, description = "Nothing was recorded; retry", body = Detail),
    )
)]
#[tracing::instrument(skip_all, fields(requested_by = %operator.name))]
async fn record_kyc(
    operator: Operator,
    State(state): State<AppState>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<KycAnswer>, Error> {
    let raw = read_capped(&headers, body, state.max_body_size).await?;
    require_json(&headers)?;
    let body: KycBody = parse_body(&raw)?;
    let command = KycCommand {
        user_id: identifier("user_id", user_id)?,
        verified: body.verified,
        reference: body
            .reference
            .map(|reference| identifier("reference", reference))
            .transpose()?,
        decided_by: operator.name,
    };
    let user = store::record_kyc(&state.db, command).await?;
    tracing::info!(user_id = %user.external_id, kyc_verified = user.kyc_verified, "KYC decision recorded");
    Ok(Json(KycAnswer {
        user_id: user.external_id,
        kyc_verified: user.kyc_verified,
        updated_at: user.updated_at,
    }))
}
