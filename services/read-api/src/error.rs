//! The one error type of read-api: why it could not start, and why a
//! request was refused. Each variant documents its HTTP status; the mapping
//! to a response is written once, in [`IntoResponse`].
//!
//! 4xx bodies tell the client what to fix, `{"detail": ...}`; 5xx bodies say
//! nothing internal (the log line carries the whole cause chain).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use haven_chain::error::ChainError;
use haven_common::db::DbError;
use haven_common::metrics::MetricsError;
use haven_common::openapi::Detail;
use haven_common::telemetry::ErrorChain;
use haven_entity::EntityError;

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
    /// The chain settings are unusable (RPC_URL is not an http(s) URL).
    #[error("could not set up the chain connection")]
    Chain(#[source] ChainError),
    /// The HTTP server or the service's teardown failed.
    #[error(transparent)]
    Service(#[from] haven_common::service::ServiceError),
    /// `reconcile` needs the chain.
    #[error("reconciliation needs RPC_URL and CONTRACT_ADDRESS")]
    ChainNotConfigured,
    /// The reconciliation report could not be written.
    #[error("could not write the reconciliation report")]
    Report(#[source] std::io::Error),

    // ----------------------------------------------------------- requests
    /// 403: `READ_API_KEYS` is set and the request has no `X-API-Key`.
    #[error("Missing API key")]
    MissingApiKey,
    /// 401: a key that is none of `READ_API_KEYS`.
    #[error("Invalid API key")]
    InvalidApiKey,
    /// 429: too many wrong keys from this address; `Retry-After` says when.
    #[error("Too many wrong API keys from this address; retry in {retry_after_secs} s")]
    TooManyWrongKeys {
        /// Seconds until the address may try again.
        retry_after_secs: u64,
    },
    /// 404: no user with this id (or wallet address, or email).
    #[error("User not found")]
    UserNotFound,
    /// 404: no token transaction with this `tx_id`.
    #[error("Transaction not found")]
    TransactionNotFound,
    /// 404: no redemption with this `request_id`.
    #[error("Redemption not found")]
    RedemptionNotFound,
    /// 404: no reconciliation report to show.
    #[error("{0}")]
    NoReport(&'static str),
    /// 409: an email shared by several users; look them up by id instead.
    #[error("Several users have this email; look the user up by user_id or wallet_address")]
    AmbiguousEmail,
    /// 422: a path or query parameter is malformed; the message names it.
    #[error("{0}")]
    Validation(String),
    /// 503: the chain could not be read (reconciliation).
    #[error("the chain could not be read")]
    ChainRead(#[source] ChainError),
    /// 503: the database failed (down, timed out).
    #[error("the database is unavailable")]
    Store(#[source] EntityError),
    /// 503: the stored reconciliation report could not be read.
    #[error("the database is unavailable")]
    JobStore(#[source] haven_common::jobs::JobStoreError),
}

impl Error {
    /// The HTTP status of a request error (500 for start-up errors).
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingApiKey => StatusCode::FORBIDDEN,
            Self::InvalidApiKey => StatusCode::UNAUTHORIZED,
            Self::TooManyWrongKeys { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UserNotFound
            | Self::TransactionNotFound
            | Self::RedemptionNotFound
            | Self::NoReport(_) => StatusCode::NOT_FOUND,
            Self::AmbiguousEmail => StatusCode::CONFLICT,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::ChainRead(_)
            | Self::JobStore(_)
            | Self::Store(EntityError::Db(_) | EntityError::Contention(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Store(_)
            | Self::Metrics(_)
            | Self::Database(_)
            | Self::Chain(_)
            | Self::Service(_)
            | Self::ChainNotConfigured
            | Self::Report(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
                "Service temporarily unavailable; retry later".to_owned()
            } else {
                "Internal error; retry later".to_owned()
            }
        } else {
            self.to_string()
        };
        let mut response = (status, Json(Detail { detail })).into_response();
        let retry_after = match &self {
            Self::TooManyWrongKeys { retry_after_secs } => Some(*retry_after_secs),
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
