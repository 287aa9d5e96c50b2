//! The one error type of webhook-ingress: why it could not start, and why a
//! request was refused. Each variant documents its HTTP status; the mapping
//! to a response is written once, in [`IntoResponse`].
//!
//! 4xx bodies tell the client what to fix, `{"detail": ...}`; 5xx bodies say
//! nothing internal (the log line carries the whole cause chain). No variant
//! ever holds a secret, a key or a signature.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use haven_common::amqp::AmqpError;
use haven_common::db::DbError;
use haven_common::metrics::MetricsError;
use haven_common::telemetry::ErrorChain;
use haven_entity::EntityError;
use serde_json::json;

/// Everything that ends `run` with an error or refuses a request.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // ----------------------------------------------------------- start-up
    /// The metrics registry could not be set up (a duplicate metric name).
    #[error("could not register metrics")]
    Metrics(#[from] MetricsError),
    /// The database settings are unusable (a malformed URL).
    #[error("could not set up the database pool")]
    Database(#[from] DbError),
    /// The broker settings are unusable (a malformed URL), or the client failed.
    #[error("could not set up the broker connection")]
    Amqp(#[from] AmqpError),
    /// The outbox relay could not be set up.
    #[error("could not set up the outbox relay")]
    Outbox(#[source] haven_outbox::OutboxError),
    /// The HTTP server or the service's teardown failed.
    #[error(transparent)]
    Service(#[from] haven_common::service::ServiceError),

    // ----------------------------------------------------------- requests
    /// 413: the body is larger than `MAX_BODY_SIZE`.
    #[error("Request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The configured cap.
        limit: usize,
    },
    /// 400: the body could not be read (the client went away mid-body).
    #[error("Request body could not be read")]
    UnreadableBody,
    /// 401: no signature header of any scheme.
    #[error("Missing webhook signature")]
    MissingSignature,
    /// 401: a signature that matches no active secret, or a Standard
    /// Webhooks timestamp outside the tolerance (the reason is public: the
    /// sender knows what it sent).
    #[error("Invalid signature{}", .0.map(|why| format!(": {why}")).unwrap_or_default())]
    InvalidSignature(Option<&'static str>),
    /// 415: a `Content-Type` that is not JSON.
    #[error("Content-Type must be application/json")]
    UnsupportedMediaType,
    /// 422: the body is not valid for the route; the message names the field.
    #[error("{0}")]
    Validation(String),
    /// 403: no `X-API-Key` header.
    #[error("Missing API key")]
    MissingApiKey,
    /// 401: an `X-API-Key` that is not active.
    #[error("Invalid API key")]
    InvalidApiKey,
    /// 429: the key's rate limit is used up; `Retry-After` says when to retry.
    #[error("Rate limit exceeded; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the next request passes.
        retry_after_secs: u64,
    },
    /// 429: too many wrong API keys from this address; `Retry-After` says
    /// when it may try again.
    #[error("Too many wrong API keys from this address; retry in {retry_after_secs} s")]
    TooManyWrongKeys {
        /// Seconds until the address may try again.
        retry_after_secs: u64,
    },
    /// 404: no user with this id.
    #[error("User not found")]
    UserNotFound,
    /// 400: the amount exceeds the user's available balance.
    #[error("Insufficient balance")]
    InsufficientBalance,
    /// 403: a user without KYC whose redemptions within the window, this
    /// one included, would exceed the threshold.
    #[error(
        "Redemptions adding up to more than {threshold} HNV within {window} need a KYC-verified user"
    )]
    KycRequired {
        /// The threshold in HNV, as a decimal.
        threshold: String,
        /// The rolling window, e.g. `30 days`.
        window: String,
    },
    /// 422: an idempotency key reused with a different request.
    #[error(
        "Idempotency key `{0}` was already used with a different request; use a new key for a new request"
    )]
    IdempotencyMismatch(String),
    /// 503: the database failed (down, timed out); nothing was written.
    #[error("the database is unavailable")]
    Store(#[source] EntityError),
}

impl Error {
    /// The HTTP status of a request error (500 for start-up errors).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnreadableBody | Self::InsufficientBalance => StatusCode::BAD_REQUEST,
            Self::MissingSignature | Self::InvalidSignature(_) | Self::InvalidApiKey => {
                StatusCode::UNAUTHORIZED
            }
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) | Self::IdempotencyMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MissingApiKey | Self::KycRequired { .. } => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } | Self::TooManyWrongKeys { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::UserNotFound => StatusCode::NOT_FOUND,
            Self::Store(EntityError::Db(_) | EntityError::Contention(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Store(_)
            | Self::Metrics(_)
            | Self::Database(_)
            | Self::Amqp(_)
            | Self::Outbox(_)
            | Self::Service(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `reason` label of the request metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge { .. } => "too_large",
            Self::UnreadableBody => "unreadable_body",
            Self::MissingSignature => "missing_signature",
            Self::InvalidSignature(_) => "invalid_signature",
            Self::UnsupportedMediaType => "content_type",
            Self::Validation(_) => "invalid_payload",
            Self::MissingApiKey => "missing_api_key",
            Self::InvalidApiKey => "invalid_api_key",
            Self::RateLimited { .. } => "rate_limited",
            Self::TooManyWrongKeys { .. } => "throttled",
            Self::UserNotFound => "user_not_found",
            Self::InsufficientBalance => "insufficient_balance",
            Self::KycRequired { .. } => "kyc_required",
            Self::IdempotencyMismatch(_) => "idempotency_mismatch",
            Self::Store(_) => "unavailable",
            Self::Metrics(_)
            | Self::Database(_)
            | Self::Amqp(_)
            | Self::Outbox(_)
            | Self::Service(_) => "internal",
        }
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        Self::Store(EntityError::from(err))
    }
}

impl From<EntityError> for Error {
    fn from(err: EntityError) -> Self {
        Self::Store(err)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = if status.is_server_error() {
            tracing::error!(error = %ErrorChain(&self), "request failed");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                "Service temporarily unavailable; nothing was recorded, retry later".to_owned()
            } else {
                "Internal error; nothing was recorded, retry later".to_owned()
            }
        } else {
            self.to_string()
        };
        let mut response = (status, Json(json!({ "detail": detail }))).into_response();
        let retry_after = match &self {
            Self::RateLimited { retry_after_secs }
            | Self::TooManyWrongKeys { retry_after_secs } => Some(*retry_after_secs),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
