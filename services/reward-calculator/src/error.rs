//! Why reward-calculator could not start or stopped with an error.

use haven_common::amqp::AmqpError;
use haven_common::db::DbError;
use haven_common::metrics::MetricsError;
use haven_outbox::OutboxError;

use crate::rules::RulesError;

/// Everything that ends `run` with an error. The process prints it with its
/// whole cause chain and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The rules file is missing, unreadable or wrong (names the key).
    #[error("the reward rules are unusable")]
    Rules(#[from] RulesError),
    /// The metrics registry could not be set up (a duplicate metric name).
    #[error("could not register metrics")]
    Metrics(#[from] MetricsError),
    /// The outbox relay's metrics could not be registered.
    #[error("could not set up the outbox relay")]
    Outbox(#[source] OutboxError),
    /// The database settings are unusable (a malformed URL).
    #[error("could not set up the database pool")]
    Database(#[from] DbError),
    /// The broker settings are unusable (a malformed URL), or the client failed.
    #[error("could not set up the broker connection")]
    Amqp(#[from] AmqpError),
    /// RPC_URL is unusable (not http or https).
    #[error("the chain settings are unusable")]
    Chain(#[source] haven_chain::error::ChainError),
    /// The HTTP server or the service's teardown failed.
    #[error(transparent)]
    Service(#[from] haven_common::service::ServiceError),
}
