//! The one error type of this crate.

use haven_entity::error::EntityError;
use sea_orm::DbErr;

/// Everything that can go wrong enqueueing or relaying outbox messages.
///
/// Publish failures are not here: the relay records them on the row
/// (`attempts`, `last_error`) and in its metrics, and tries again.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The database failed or refused the row. A duplicate message id is
    /// [`EntityError::UniqueViolation`] (`outbox_message_id_key`).
    #[error("outbox database operation failed")]
    Database(#[source] EntityError),
    /// The envelope could not be serialized to JSON.
    #[error("could not serialize the envelope")]
    Serialize(#[from] serde_json::Error),
    /// The relay's Prometheus metrics could not be registered (a name is
    /// already taken in that registry).
    #[error("could not register outbox metrics")]
    Metrics(#[from] prometheus::Error),
}

impl From<EntityError> for OutboxError {
    fn from(err: EntityError) -> Self {
        Self::Database(err)
    }
}

impl From<DbErr> for OutboxError {
    /// Goes through [`EntityError`] so constraint violations keep their own variants.
    fn from(err: DbErr) -> Self {
        Self::Database(EntityError::from(err))
    }
}

/// A database failure is as transient as the entity layer says; an envelope
/// that cannot be serialized or metrics that cannot be registered fail the
/// same way every time.
impl From<OutboxError> for haven_common::amqp::Failure {
    fn from(err: OutboxError) -> Self {
        match err {
            OutboxError::Database(err) => err.into(),
            other => Self::Permanent(haven_common::telemetry::ErrorChain(&other).to_string()),
        }
    }
}
