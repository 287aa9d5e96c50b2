//! [`Failure`]: why a saga step did not complete, and the one place that
//! decides between trying again and giving up.

use haven_common::amqp::Outcome;
use haven_common::telemetry::ErrorChain;
use haven_entity::EntityError;
use haven_outbox::OutboxError;
use sea_orm::DbErr;

/// A step that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another try later: the database or the payout provider is
    /// away, a race was lost. The consumer retries with backoff (and the
    /// recovery sweep resumes the redemption anyway).
    Transient(String),
    /// Can never succeed as it is: an unknown redemption, a message that
    /// contradicts its row, a corrupt row. The consumer dead-letters it with
    /// the reason.
    Permanent(String),
}

impl Failure {
    /// A permanent failure with this reason.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent(reason.into())
    }

    /// A transient failure with this reason.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient(reason.into())
    }

    /// The consumer's decision.
    pub fn into_outcome(self) -> Outcome {
        match self {
            Failure::Transient(reason) => Outcome::Retry(reason),
            Failure::Permanent(reason) => Outcome::DeadLetter(reason),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transient(reason) => write!(f, "transient: {reason}"),
            Failure::Permanent(reason) => write!(f, "permanent: {reason}"),
        }
    }
}

impl From<EntityError> for Failure {
    fn from(err: EntityError) -> Self {
        let reason = ErrorChain(&err).to_string();
        match err {
            // The database is down or busy, or another writer won a race
            // whose result the next attempt will see.
            EntityError::Db(_)
            | EntityError::Contention(_)
            | EntityError::UniqueViolation(_)
            | EntityError::ForeignKeyViolation(_) => Failure::Transient(reason),
            EntityError::Unbalanced { .. }
            | EntityError::InvalidMovement(_)
            | EntityError::InsufficientBalance { .. }
            | EntityError::DerivationIndexExhausted
            | EntityError::WalletDerivation(_)
            | EntityError::Corrupt(_) => Failure::Permanent(reason),
        }
    }
}

impl From<DbErr> for Failure {
    fn from(err: DbErr) -> Self {
        EntityError::from(err).into()
    }
}

impl From<OutboxError> for Failure {
    fn from(err: OutboxError) -> Self {
        match err {
            OutboxError::Database(err) => err.into(),
            other => Failure::Permanent(ErrorChain(&other).to_string()),
        }
    }
}
