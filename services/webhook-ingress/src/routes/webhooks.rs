//! `POST /webhooks/aurora/*` and `POST /webhooks/tribe/*`: signed partner
//! events, answered `200 {"status":"accepted"}` once durably queued and
//! `200 {"status":"duplicate"}` for an event already accepted.
//!
//! Order of checks (nothing is parsed or stored before the signature holds):
//! body size cap (413) -> signature over the raw bytes (401) -> content type
//! (415) -> payload (422) -> one transaction: dedupe record + outbox row.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use serde_json::{Value, json};

use super::body::{read_capped, require_json};
use crate::error::Error;
use crate::payloads::{self, WebhookKind};
use crate::signature::{self, Partner, Refusal};
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

/// The webhook routes.
pub fn router() -> Router<AppState> {
    ROUTES
        .into_iter()
        .fold(Router::new(), |router, (path, partner, kind)| {
            router.route(
                path,
                post(
                    move |state: State<AppState>, headers: HeaderMap, body: Body| {
                        receive(partner, kind, state, headers, body)
                    },
                ),
            )
        })
}

#[tracing::instrument(skip_all, fields(partner = partner.as_str(), kind = ?kind))]
async fn receive(
    partner: Partner,
    kind: WebhookKind,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, Error> {
    let answer = accept(partner, kind, &state, &headers, body).await;
    match &answer {
        Ok(Stored::Accepted(())) => {
            state.outbox.notify();
            state.metrics.webhook(partner.as_str(), "accepted", "none");
        }
        Ok(Stored::Duplicate(())) => {
            state.metrics.webhook(partner.as_str(), "duplicate", "none");
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
    let status = match answer? {
        Stored::Accepted(()) => "accepted",
        Stored::Duplicate(()) => "duplicate",
    };
    Ok(Json(json!({ "status": status })))
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
        payloads::parse(kind, &verified.body).map_err(|e| Error::Validation(e.to_string()))?;
    // The sender's delivery id when it gave one (Standard Webhooks), else the
    // "once per" key of SPEC.md's rules table.
    let event_key = match verified.delivery_id {
        Some(id) if id.is_empty() || id.len() > 255 => {
            return Err(Error::Validation(
                "header `webhook-id` must be 1 to 255 characters".to_owned(),
            ));
        }
        Some(id) => id,
        None => event.once_per_key(),
    };
    store::accept_event(&state.db, event, event_key).await
}
