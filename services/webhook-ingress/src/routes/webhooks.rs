//! `POST /webhooks/aurora/*` and `POST /webhooks/tribe/*`: signed partner
//! events, answered `200 {"status":"accepted"}` once durably queued and
//! `200 {"status":"duplicate"}` for an event already accepted.
//!
//! Order of checks (nothing is parsed or stored before the signature holds):
//! body size cap (413) -> signature over the raw bytes (401) -> content type
//! (415) -> payload (422) -> one transaction: dedupe record + outbox row.
//!
//! The nine routes share one handler; each is registered together with its
//! OpenAPI operation, generated from the same [`ROUTES`] table, so the
//! document lists exactly the routes served.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde::Serialize;
use utoipa::openapi::path::{Operation, OperationBuilder, ParameterBuilder, ParameterIn, Paths};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ContentBuilder, HttpMethod, ObjectBuilder, Ref, Required, ResponseBuilder, Type,
};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;

use super::body::{read_capped, require_json};
use crate::error::Error;
use crate::payloads::{self, WebhookKind};
use crate::signature::{self, Partner, Refusal, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};
use crate::state::AppState;
use crate::store::{self, Stored};

/// Every webhook route: path, partner, kind.
pub const ROUTES: [(&str, Partner, WebhookKind); 9] = [
    (
        "/webhooks/aurora/booking-created",
        Partner::Aurora,
        WebhookKind::BookingCreated,
    ),
    (
        "/webhooks/aurora/booking-completed",
        Partner::Aurora,
        WebhookKind::BookingCompleted,
    ),
    (
        "/webhooks/aurora/booking-cancelled",
        Partner::Aurora,
        WebhookKind::BookingCancelled,
    ),
    (
        "/webhooks/aurora/review-submitted",
        Partner::Aurora,
        WebhookKind::ReviewSubmitted,
    ),
    (
        "/webhooks/tribe/event-attendance",
        Partner::Tribe,
        WebhookKind::EventAttendance,
    ),
    (
        "/webhooks/tribe/contribution",
        Partner::Tribe,
        WebhookKind::Contribution,
    ),
    (
        "/webhooks/tribe/staking-started",
        Partner::Tribe,
        WebhookKind::StakingStarted,
    ),
    (
        "/webhooks/tribe/coaching-milestone",
        Partner::Tribe,
        WebhookKind::CoachingMilestone,
    ),
    (
        "/webhooks/tribe/referral-success",
        Partner::Tribe,
        WebhookKind::ReferralSuccess,
    ),
];

/// Whether an event was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    /// Durably queued now.
    Accepted,
    /// Accepted before: nothing new was written.
    Duplicate,
}

impl WebhookStatus {
    /// As answered, and as the metric's outcome label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
        }
    }
}

/// A webhook's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub struct WebhookAnswer {
    /// `accepted` once durably queued, `duplicate` for an event accepted before.
    pub status: WebhookStatus,
}

/// The webhook routes, each registered with its OpenAPI operation, and the
/// partners' tags.
pub fn router() -> OpenApiRouter<AppState> {
    let mut schemas = vec![(WebhookAnswer::name().into_owned(), WebhookAnswer::schema())];
    WebhookAnswer::schemas(&mut schemas);
    let mut router =
        ROUTES
            .into_iter()
            .fold(OpenApiRouter::new(), |router, (path, partner, kind)| {
                let mut paths = Paths::new();
                paths.add_path_operation(path, vec![HttpMethod::Post], operation(partner, kind));
                let handler = post(
                    move |state: State<AppState>, headers: HeaderMap, body: Body| {
                        receive(partner, kind, state, headers, body)
                    },
                );
                router.routes((schemas.clone(), paths, handler))
            });
    router.get_openapi_mut().tags = Some(vec![
        TagBuilder::new()
            .name(Partner::Aurora.as_str())
            .description(Some("Signed webhooks of the Aurora PMS"))
            .build(),
        TagBuilder::new()
            .name(Partner::Tribe.as_str())
            .description(Some("Signed webhooks of the Tribe community app"))
            .build(),
    ]);
    router
}

#[tracing::instrument(skip_all, fields(partner = partner.as_str(), kind = ?kind))]
async fn receive(
    partner: Partner,
    kind: WebhookKind,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<WebhookAnswer>, Error> {
    let answer = accept(partner, kind, &state, &headers, body)
        .await
        .map(|stored| match stored {
            Stored::Accepted(()) => WebhookStatus::Accepted,
            Stored::Duplicate(()) => WebhookStatus::Duplicate,
        });
    match &answer {
        Ok(status) => {
            if *status == WebhookStatus::Accepted {
                state.outbox.notify();
            }
            state
                .metrics
                .webhook(partner.as_str(), status.as_str(), "none");
        }
        Err(err) => {
            tracing::info!(
                status = err.status().as_u16(),
                reason = err.reason(),
                "webhook refused"
            );
            state
                .metrics
                .webhook(partner.as_str(), "rejected", err.reason());
        }
    }
    Ok(Json(WebhookAnswer { status: answer? }))
}

async fn accept(
    partner: Partner,
    kind: WebhookKind,
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Stored<()>, Error> {
    let raw = read_capped(headers, body, state.max_body_size).await?;
    let now = chrono::Utc::now().timestamp();
    let verified = signature::verify_request(partner, state.secrets(partner), headers, raw, now)
        .map_err(|refusal| match refusal {
            Refusal::Missing => Error::MissingSignature,
            Refusal::Invalid(why) => Error::InvalidSignature(why),
        })?;
    require_json(headers)?;
    let event =
        payloads::parse(kind, verified.body()).map_err(|e| Error::Validation(e.to_string()))?;
    // Deduplicated by the event's "once per" key whatever the scheme; the
    // Standard Webhooks delivery id is spent too, so a delivery replayed to
    // another route within its window is a duplicate there.
    let delivery_id = match verified.delivery_id() {
        Some(id) if id.is_empty() || id.chars().count() > payloads::MAX_ID_LEN => {
            return Err(Error::Validation(
                "header `webhook-id` must be 1 to 255 characters".to_owned(),
            ));
        }
        Some(id) => Some(id.to_owned()),
        None => None,
    };
    store::accept_event(&state.db, event, delivery_id).await
}

/// The OpenAPI operation of one webhook route.
fn operation(partner: Partner, kind: WebhookKind) -> Operation {
    let header = |name: &str, description: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(String::schema()))
            .build()
    };
    let detail = haven_common::openapi::detail_response;
    let summary = summary(kind);
    let fields = kind
        .field_spellings()
        .map(|spellings| format!("`{}`", spellings.join("`|`")))
        .collect::<Vec<_>>()
        .join(", ");
    OperationBuilder::new()
        .tag(partner.as_str())
        .operation_id(Some(format!("{}_{kind:?}", partner.as_str())))
        .summary(Some(summary))
        .description(Some(format!(
            "Accepted once durably queued (`accepted`), or `duplicate` for an event accepted before. \
             The signature is checked over the raw body before anything is parsed: \
             `{}` (hex HMAC-SHA256 of the raw body or of its canonical JSON), or the three \
             Standard Webhooks headers (recommended: they bind the delivery to one route). \
             Fields (either spelling): {fields}. A field that only other routes' bodies carry \
             is refused with 422.",
            partner.signature_header()
        )))
        .parameter(header(
            partner.signature_header(),
            "Hex HMAC-SHA256 of the raw body (or of the canonical JSON) with the partner's secret",
        ))
        .parameter(header(WEBHOOK_ID, "Standard Webhooks: the delivery id, spent once per partner (1 to 255 characters)"))
        .parameter(header(WEBHOOK_TIMESTAMP, "Standard Webhooks: Unix seconds, within 300 s of now"))
        .parameter(header(
            WEBHOOK_SIGNATURE,
            "Standard Webhooks: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated",
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::Object).build()))
                        .build(),
                )
                .build(),
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("`accepted` or `duplicate`")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(WebhookAnswer::name())))
                        .build(),
                )
                .build(),
        )
        .response("401", detail("`Missing webhook signature` or `Invalid signature`"))
        .response("413", detail("The body is larger than MAX_BODY_SIZE"))
        .response("415", detail("Content-Type is not JSON"))
        .response("422", detail("The payload is invalid; the detail names the field"))
        .response("503", detail("Nothing was recorded; retry"))
        .build()
}

/// The one-line summary of each webhook; its fields come from the parser's table.
fn summary(kind: WebhookKind) -> &'static str {
    match kind {
        WebhookKind::BookingCreated => {
            "Aurora booking created: 2 HNV per CAD, x1.2 above one night"
        }
        WebhookKind::BookingCompleted => "Aurora booking completed",
        WebhookKind::BookingCancelled => "Aurora booking cancelled: reverses the booking reward",
        WebhookKind::ReviewSubmitted => "Aurora review submitted: 50 HNV for a rating of 4 or 5",
        WebhookKind::EventAttendance => "Tribe event attendance",
        WebhookKind::Contribution => "Tribe contribution",
        WebhookKind::StakingStarted => "Tribe staking started",
        WebhookKind::CoachingMilestone => "Tribe coaching milestone",
        WebhookKind::ReferralSuccess => "Tribe referral success: rewards the referrer",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_serialize_as_the_json_maps_they_replaced() {
        for (status, text) in [
            (WebhookStatus::Accepted, "accepted"),
            (WebhookStatus::Duplicate, "duplicate"),
        ] {
            assert_eq!(status.as_str(), text);
            assert_eq!(
                serde_json::to_string(&WebhookAnswer { status }).unwrap(),
                serde_json::json!({ "status": text }).to_string()
            );
        }
    }
}
