//! Why a command did not do what it was asked: one line for the operator,
//! and the exit status it ends with.

use haven_common::amqp::AmqpError;
use haven_common::db::DbError;
use haven_common::telemetry::ErrorChain;
use haven_entity::EntityError;

/// Everything that ends a command with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// What was asked for does not exist. Exit status 1.
    #[error("{0}")]
    NotFound(String),
    /// It exists, but the command does not apply to it (a refund that is not
    /// waiting for an operator, a lease held by someone else). Nothing was changed. Exit status 1.
    #[error("{0}")]
    Refused(String),
    /// The database settings are unusable (a malformed URL; never printed).
    #[error("cannot use the database")]
    DbConfig(#[from] DbError),
    /// A database read or write failed.
    #[error("database error")]
    Database(#[from] EntityError),
    /// The broker cannot be reached or refused an operation.
    #[error("broker error")]
    Amqp(#[from] AmqpError),
    /// The chain cannot be reached or read.
    #[error("chain error")]
    Chain(#[source] haven_chain::error::ChainError),
    /// A service step failed (its own words).
    #[error("{0}")]
    Step(String),
    /// read-api's reconciliation could not run.
    #[error("reconciliation could not run")]
    Reconcile(#[source] read_api::Error),
}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        Error::Database(EntityError::from(err))
    }
}

impl Error {
    /// The whole cause chain on one line (never a URL: none of the causes
    /// carries one).
    pub fn line(&self) -> String {
        ErrorChain(self).to_string()
    }
}
