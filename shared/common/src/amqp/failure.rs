//! [`Failure`]: why a handler's step did not complete, written once for
//! every consumer: the one place a step's error becomes the loop's
//! [`Outcome`] (try again later, or park it in the dead-letter queue).
//!
//! Errors that know whether another attempt could help convert into it
//! where they are defined (`haven_entity::EntityError`,
//! `haven_outbox::OutboxError`), so a handler uses `?` and never decides
//! retry versus dead-letter itself.

use super::Outcome;

/// A step that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another try later: a dependency is away, a race was lost, a
    /// transaction it waits on is in flight. The consumer retries with
    /// backoff.
    Transient(String),
    /// Can never succeed as it is: a malformed message, a message that
    /// contradicts its row, a corrupt row. The consumer dead-letters it with
    /// the reason.
    Permanent(String),
}

impl Failure {
    /// A transient failure with this reason.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self::Transient(reason.into())
    }

    /// A permanent failure with this reason.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent(reason.into())
    }

    /// Whether another attempt could succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    /// The consumer loop's decision.
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

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Self {
        failure.into_outcome()
    }
}

/// A database error straight from the driver: the database is down or busy,
/// or another writer won a race whose result the next attempt will see.
impl From<sea_orm::DbErr> for Failure {
    fn from(err: sea_orm::DbErr) -> Self {
        Failure::Transient(crate::telemetry::ErrorChain(&err).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_retries_and_permanent_dead_letters() {
        assert_eq!(
            Failure::transient("db away").into_outcome(),
            Outcome::Retry("db away".into())
        );
        assert_eq!(
            Outcome::from(Failure::permanent("corrupt row")),
            Outcome::DeadLetter("corrupt row".into())
        );
        assert_eq!(Failure::transient("x").to_string(), "transient: x");
        assert!(!Failure::permanent("x").is_transient());
    }

    #[test]
    fn driver_errors_are_transient() {
        let failure = Failure::from(sea_orm::DbErr::Conn(sea_orm::RuntimeErr::Internal(
            "connection refused".into(),
        )));
        assert!(failure.is_transient(), "{failure}");
    }
}
