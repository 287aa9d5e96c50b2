//! The OpenAPI 3.1 document of webhook-ingress, served at `/openapi.json`
//! (browsable at `/docs`) by [`super::router`].
//!
//! The token commands come from their handlers' `#[utoipa::path]`
//! annotations ([`super::token`]); the nine webhook routes share one handler
//! and are generated from the same table that routes them
//! ([`super::webhooks::ROUTES`]), so the document lists exactly the routes
//! served. The types here describe answers the handlers build as JSON
//! values; they are documentation only.

use haven_common::openapi::{Detail, HnvAmount};
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ContentBuilder, HttpMethod, ObjectBuilder, OpenApi, Ref, Required, ResponseBuilder, Type,
};
use utoipa::{PartialSchema, ToSchema};

use super::webhooks::ROUTES;
use crate::payloads::WebhookKind;
use crate::signature::{Partner, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP};

/// Name of the API-key security scheme.
pub const API_KEY_SCHEME: &str = "api_key";
/// Tag of the token commands.
pub const TOKEN_TAG: &str = "token commands";

/// `POST /token/mint` answer.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct MintAnswer {
    /// `queued` the first time, `duplicate` for a key seen before.
    #[schema(example = "queued")]
    status: String,
    /// The idempotency key (or a generated id).
    tx_id: String,
    /// The partners' id of the user.
    user_id: String,
    /// Amount.
    #[schema(value_type = HnvAmount)]
    amount: f64,
    /// Why.
    reason: String,
}

/// `POST /token/redeem` answer.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct RedeemAnswer {
    /// `queued` the first time, `duplicate` for a key seen before.
    #[schema(example = "queued")]
    status: String,
    /// The redemption's id.
    request_id: String,
    /// The partners' id of the user.
    user_id: String,
    /// Amount redeemed.
    #[schema(value_type = HnvAmount, example = 500.0)]
    amount: f64,
    /// Burned on chain: the whole amount.
    #[schema(value_type = HnvAmount, example = 500.0)]
    burn_amount: f64,
    /// Paid out: 98 % of the amount.
    #[schema(value_type = HnvAmount, example = 490.0)]
    payout_amount: f64,
    /// The 2 % fee.
    #[schema(value_type = HnvAmount, example = 10.0)]
    fee_amount: f64,
    /// `bank_transfer`, `paypal` or `crypto`.
    withdrawal_method: String,
}

/// A webhook's answer.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct WebhookAnswer {
    /// `accepted` once durably queued, `duplicate` for an event accepted before.
    #[schema(example = "accepted")]
    status: String,
}

/// The document's webhook-ingress part: token commands and webhooks.
pub fn document() -> OpenApi {
    let mut doc = <super::token::TokenApi as utoipa::OpenApi>::openapi();
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert(WebhookAnswer::name().into_owned(), WebhookAnswer::schema());
    components.add_security_scheme(
        API_KEY_SCHEME,
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-API-Key",
            "An operator's API key (API_KEYS); missing: 403, wrong: 401",
        ))),
    );
    for (path, partner, kind) in ROUTES {
        doc.paths.add_path_operation(
            path,
            vec![HttpMethod::Post],
            webhook_operation(partner, kind),
        );
    }
    doc.tags = Some(vec![
        TagBuilder::new()
            .name("aurora")
            .description(Some("Signed webhooks of the Aurora PMS"))
            .build(),
        TagBuilder::new()
            .name("tribe")
            .description(Some("Signed webhooks of the Tribe community app"))
            .build(),
        TagBuilder::new()
            .name(TOKEN_TAG)
            .description(Some(
                "Operators' mint and redeem commands, behind an API key",
            ))
            .build(),
    ]);
    doc
}

fn webhook_operation(partner: Partner, kind: WebhookKind) -> utoipa::openapi::path::Operation {
    let header = |name: &str, description: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(description))
            .schema(Some(String::schema()))
            .build()
    };
    let detail = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name(Detail::name())))
                    .build(),
            )
            .build()
    };
    let (summary, fields) = describe(kind);
    OperationBuilder::new()
        .tag(partner.as_str())
        .operation_id(Some(format!("{}_{kind:?}", partner.as_str())))
        .summary(Some(summary))
        .description(Some(format!(
            "Accepted once durably queued (`accepted`), or `duplicate` for an event accepted before. \
             The signature is checked over the raw body before anything is parsed: \
             `{}` (hex HMAC-SHA256 of the raw body or of its canonical JSON), or the three \
             Standard Webhooks headers. Fields (either spelling): {fields}.",
            partner.signature_header()
        )))
        .parameter(header(
            partner.signature_header(),
            "Hex HMAC-SHA256 of the raw body (or of the canonical JSON) with the partner's secret",
        ))
        .parameter(header(WEBHOOK_ID, "Standard Webhooks: the delivery id (the dedupe key when given)"))
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

/// Summary and fields of each webhook (SPEC.md "Payload field names").
fn describe(kind: WebhookKind) -> (&'static str, &'static str) {
    match kind {
        WebhookKind::BookingCreated => (
            "Aurora booking created: 2 HNV per CAD, x1.2 above one night",
            "`id`|`booking_id`, `guest_id`|`guestId`, `guest_email`|`email`, `total_price`|`totalPrice`, `nights`|`numberOfNights`, `check_in`|`checkIn`, `check_out`|`checkOut`",
        ),
        WebhookKind::BookingCompleted => (
            "Aurora booking completed",
            "`id`|`booking_id`, `guest_id`|`guestId`",
        ),
        WebhookKind::BookingCancelled => (
            "Aurora booking cancelled: reverses the booking reward",
            "`id`|`booking_id`, `guest_id`|`guestId`, `cancellation_reason`",
        ),
        WebhookKind::ReviewSubmitted => (
            "Aurora review submitted: 50 HNV for a rating of 4 or 5",
            "`id`, `booking_id`, `guest_id`, `rating` (1..5)",
        ),
        WebhookKind::EventAttendance => (
            "Tribe event attendance",
            "`id`|`event_id`, `attendee_id`|`user_id`, `name`|`event_name`, `type`|`event_type`, `attended` (default true), `timestamp`",
        ),
        WebhookKind::Contribution => (
            "Tribe contribution",
            "`id`, `user_id`, `type`, `quality_score`",
        ),
        WebhookKind::StakingStarted => ("Tribe staking started", "`id`, `user_id`, `amount`"),
        WebhookKind::CoachingMilestone => (
            "Tribe coaching milestone",
            "`user_id`, `milestone_name`, `tier`",
        ),
        WebhookKind::ReferralSuccess => (
            "Tribe referral success: rewards the referrer",
            "`referrer_id`, `referred_id`, `tier`",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_document() {
        let doc = document();
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
        for path in ["/token/mint", "/token/redeem"] {
            assert!(doc.paths.paths[path].post.is_some(), "{path}");
        }
        assert_eq!(doc.paths.paths.len(), ROUTES.len() + 2);

        // Served with the shared part: /health, /metrics, /openapi.json, /docs.
        let mut full = haven_common::openapi::document("webhook-ingress");
        full.merge(doc);
        let json = serde_json::to_value(&full).unwrap();
        assert_eq!(json["openapi"], "3.1.0");
        for path in ["/health", "/metrics"] {
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
