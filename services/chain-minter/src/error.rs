//! Why chain-minter could not start or stopped with an error.

use haven_common::amqp::AmqpError;
use haven_common::db::DbError;
use haven_common::metrics::MetricsError;

/// Everything that ends `run` with an error. The process prints it with its
/// whole cause chain and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The metrics registry could not be set up (a duplicate metric name).
    #[error("could not register metrics")]
    Metrics(#[from] MetricsError),
    /// The database settings are unusable (a malformed URL).
    #[error("could not set up the database pool")]
    Database(#[from] DbError),
    /// The broker settings are unusable (a malformed URL), or the client failed.
    #[error("could not set up the broker connection")]
    Amqp(#[from] AmqpError),
    /// The chain settings are unusable (a malformed key, mnemonic or URL).
    #[error("could not set up the chain client")]
    Chain(#[from] haven_chain::error::ChainError),
    /// The outbox relay could not be set up.
    #[error("could not set up the outbox relay")]
    Outbox(#[from] haven_outbox::OutboxError),
    /// The HTTP server or the service's teardown failed.
    #[error(transparent)]
    Service(#[from] haven_common::service::ServiceError),
}
